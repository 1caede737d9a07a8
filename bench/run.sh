#!/usr/bin/env bash
# Benchmarks a module against the same handlers compiled natively, in one
# run, on this machine: apps/bench in the crabcat container versus
# bench/native (plain axum + sqlx, same SQL, same pool settings). Both are
# built in release mode, started on loopback, warmed up, and loaded by wrk
# with the same connections and duration. Then the container's own
# figures: start to first answer with every sample app, idle RSS, hot
# reload latency and RSS after 100 reloads.
#
#   bench/run.sh                      # SQLite
#   CRABCAT_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/run.sh
#
# Knobs: BENCH_DURATION (10s), BENCH_WARMUP (3s), BENCH_CONNECTIONS (64),
# BENCH_ENDPOINTS (all six), BENCH_RESULTS_DIR (bench/results). Prints a
# table and writes it to $BENCH_RESULTS_DIR/<date>-<backend>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

duration=${BENCH_DURATION:-10s}
warmup=${BENCH_WARMUP:-3s}
connections=${BENCH_CONNECTIONS:-64}
endpoints=${BENCH_ENDPOINTS:-"plaintext json db queries?queries=20 fortunes updates?queries=20"}
token=bench-admin-token-0123456789

if ! command -v wrk >/dev/null; then
    echo "==> installing wrk"
    apt-get update -qq && apt-get install -y -qq wrk >/dev/null
fi
echo "==> building (release)"
cargo build --release -q -p crabcat -p bench -p bench-native -p hello -p guestbook -p bank

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

backend=sqlite
native_url="sqlite://$work/native.db"
module_url="sqlite://$work/module.db"
if [ -n "${CRABCAT_BENCH_POSTGRES_URL:-}" ]; then
    backend=postgres
    server=${CRABCAT_BENCH_POSTGRES_URL%/*}
    for db in crabcat_bench_native crabcat_bench_module; do
        psql -q "$CRABCAT_BENCH_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    done
    native_url="$server/crabcat_bench_native"
    module_url="$server/crabcat_bench_module"
fi

wait_for() { # URL: until it answers 200, at most 30 s
    for _ in $(seq 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done
    echo "no answer from $1" >&2
    return 1
}
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# measure NAME BASE_URL PID: one wrk run per endpoint; lines "endpoint rps p50 p99".
measure() {
    local name=$1 base=$2 pid=$3
    for endpoint in $endpoints; do
        wrk -t2 -c"$connections" -d"$warmup" "$base/$endpoint" >/dev/null
        wrk -t2 -c"$connections" -d"$duration" --latency "$base/$endpoint" >"$work/wrk.txt"
        local rps p50 p99 errors
        rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
        p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
        p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
        errors=$(awk '/Non-2xx|Socket errors/ {print}' "$work/wrk.txt" | tr '\n' ' ')
        [ -n "$errors" ] && echo "   $name $endpoint: $errors" >&2
        echo "${endpoint%%\?*} $rps $p50 $p99" >>"$work/$name.txt"
    done
    rss_kb "$pid" >"$work/$name.rss"
}

echo "==> native ($backend)"
target/release/bench-native 127.0.0.1:18990 "$native_url" 2>"$work/native.log" &
pids+=($!)
wait_for http://127.0.0.1:18990/plaintext
measure native http://127.0.0.1:18990 "${pids[-1]}"
kill "${pids[-1]}"

echo "==> module in crabcat ($backend)"
mkdir -p "$work/deploy"
cp target/release/libbench.so "$work/deploy/bench.so"
CRABCAT__SERVER__ACCESS_LOG=false CRABCAT__DATASOURCES__DEFAULT__URL="$module_url" CRABCAT__DEPLOY__WATCH=false \
    CRABCAT_ADMIN_TOKEN=$token RUST_LOG=warn target/release/crabcat serve \
    --listen 127.0.0.1:18991 --admin-listen 127.0.0.1:18992 --deploy-dir "$work/deploy" 2>"$work/module.log" &
pids+=($!)
wait_for http://127.0.0.1:18991/bench/plaintext
measure module http://127.0.0.1:18991/bench "${pids[-1]}"
kill "${pids[-1]}"

echo "==> container start with every sample app, idle RSS"
mkdir -p "$work/all"
for app in hello guestbook bank bench; do cp "target/release/lib$app.so" "$work/all/$app.so"; done
start_ms() {
    local t0 pid ms
    rm -f "$work/all.db"*
    t0=$(date +%s%N)
    CRABCAT__DATASOURCES__DEFAULT__URL="sqlite://$work/all.db" CRABCAT_ADMIN_TOKEN=$token RUST_LOG=warn \
        target/release/crabcat serve --listen 127.0.0.1:18993 --admin-listen 127.0.0.1:18994 \
        --deploy-dir "$work/all" 2>>"$work/all.log" &
    pid=$!
    for _ in $(seq 2000); do curl -sf -o /dev/null http://127.0.0.1:18993/hello/ && break; done
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    "$@" "$pid"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$ms"
}
first_start=$(start_ms true)          # creates and fills the database (migrations)
warm_start=$(start_ms true)           # the usual restart: migrations already applied
idle_rss=$(start_ms sh -c 'sleep 1; awk "/VmRSS/ {print \$2}" /proc/$0/status > '"$work/idle.rss" >/dev/null; cat "$work/idle.rss")

echo "==> hot reload of hello (100 reloads)"
reload=$(scripts/reload-memory.sh 100)

# The table.
{
    echo "# Crabcat benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $backend"
    echo
    echo "wrk -t2 -c$connections -d$duration (after a $warmup warm-up), $(nproc) cores, $(uname -m)."
    echo
    echo "| endpoint | native req/s | module req/s | module/native | native p50 | module p50 | native p99 | module p99 |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|"
    paste -d' ' "$work/native.txt" "$work/module.txt" | while read -r ep nrps np50 np99 _ mrps mp50 mp99; do
        ratio=$(awk -v m="$mrps" -v n="$nrps" 'BEGIN { if (n > 0) printf "%.2f", m / n; else print "-" }')
        echo "| $ep | $nrps | $mrps | $ratio | $np50 | $mp50 | $np99 | $mp99 |"
    done
    echo
    echo "| process | RSS after the load |"
    echo "|---|---:|"
    echo "| native | $(( $(cat "$work/native.rss") / 1024 )) MB |"
    echo "| crabcat + bench | $(( $(cat "$work/module.rss") / 1024 )) MB |"
    echo
    echo "Container with hello, guestbook, bank and bench deployed (SQLite):"
    echo
    echo "- start to first answered request: $warm_start ms ($first_start ms on the very first start, which creates and fills the tables)"
    echo "- idle RSS: $(( idle_rss / 1024 )) MB"
    echo
    echo "Hot reload of hello (scripts/reload-memory.sh 100):"
    echo
    echo '```'
    echo "$reload"
    echo '```'
} >"$work/table.md"
results_dir=${BENCH_RESULTS_DIR:-bench/results}
mkdir -p "$results_dir"
out="$results_dir/$(date -u +%Y%m%d-%H%M)-$backend.md"
cp "$work/table.md" "$out"
cat "$out"
echo
echo "written to $out"
