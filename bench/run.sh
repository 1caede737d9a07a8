#!/usr/bin/env bash
# Benchmarks a module against the same handlers compiled natively, in one
# run, on this machine: apps/bench in the crabcat container versus
# bench/native (plain axum + sqlx, same SQL, same pool settings). Both are
# built in release mode, started on loopback, warmed up, and loaded by wrk
# with the same connections and duration. Then the container's own
# figures: start to first answer with every sample app, idle RSS, hot
# reload latency and RSS after 100 reloads. The two servers run side by
# side and take turns, round after round, so that drift on a shared
# machine does not favour either.
#
#   bench/run.sh                      # SQLite
#   CRABCAT_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/run.sh
#
# Knobs: BENCH_DURATION (5s per run), BENCH_ROUNDS (5), BENCH_WARMUP (3s),
# BENCH_CONNECTIONS (64), BENCH_ENDPOINTS (all six), BENCH_RESULTS_DIR
# (bench/results). Prints a
# table and writes it to $BENCH_RESULTS_DIR/<date>-<backend>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

duration=${BENCH_DURATION:-5s}
rounds=${BENCH_ROUNDS:-5}
warmup=${BENCH_WARMUP:-3s}
connections=${BENCH_CONNECTIONS:-64}
endpoints=${BENCH_ENDPOINTS:-"plaintext json db queries?queries=20 fortunes updates?queries=20"}
token=bench-admin-token-0123456789

need wrk
echo "==> building (release)"
cargo build --release -q -p crabcat -p bench -p bench-native -p hello -p guestbook -p bank

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${BENCH_KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT

databases "$work" crabcat_bench
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }

# run NAME URL: one wrk run; appends "rps p50 p99" to $work/NAME.runs.
run() {
    local name=$1 url=$2 rps p50 p99 errors
    wrk -t2 -c"$connections" -d"$duration" --latency "$url" >"$work/wrk.txt"
    rps=$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt")
    p50=$(awk '$1 == "50%" {print $2}' "$work/wrk.txt")
    p99=$(awk '$1 == "99%" {print $2}' "$work/wrk.txt")
    errors=$(awk '/Non-2xx|Socket errors/ {print}' "$work/wrk.txt" | tr '\n' ' ')
    [ -n "$errors" ] && echo "   $name $url: $errors" >&2
    echo "$rps $p50 $p99" >>"$work/$name.runs"
}

# Both servers run side by side (the idle one costs nothing) and take
# turns: rounds alternate which goes first, so a machine that speeds up or
# slows down during the run (2 shared cores here) biases neither. Each
# endpoint reports the median of its rounds; the ratio is the median of
# the per-round ratios.
echo "==> native and module ($backend): $rounds rounds of $duration per endpoint"
target/release/bench-native 127.0.0.1:18990 "$native_url" 2>"$work/native.log" &
pids+=($!)
native_pid=$!
mkdir -p "$work/deploy"
cp target/release/libbench.so "$work/deploy/bench.so"
CRABCAT__SERVER__ACCESS_LOG=false CRABCAT__DATASOURCES__DEFAULT__URL="$module_url" CRABCAT__DEPLOY__WATCH=false \
    CRABCAT_ADMIN_TOKEN=$token RUST_LOG=warn target/release/crabcat serve \
    --listen 127.0.0.1:18991 --admin-listen 127.0.0.1:18992 --deploy-dir "$work/deploy" 2>"$work/module.log" &
pids+=($!)
module_pid=$!
wait_for http://127.0.0.1:18990/plaintext 30
wait_for http://127.0.0.1:18991/bench/plaintext 30
for pid in "$native_pid" "$module_pid"; do # not some older server on the port
    kill -0 "$pid" 2>/dev/null || { echo "a server did not start; see its log:" >&2; cat "$work"/*.log >&2; exit 1; }
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for endpoint in $endpoints; do
    native=http://127.0.0.1:18990/$endpoint
    module=http://127.0.0.1:18991/bench/$endpoint
    wrk -t2 -c"$connections" -d"$warmup" "$native" >/dev/null
    wrk -t2 -c"$connections" -d"$warmup" "$module" >/dev/null
    rm -f "$work/native.runs" "$work/module.runs"
    for round in $(seq "$rounds"); do
        if [ $((round % 2)) -eq 1 ]; then
            run native "$native"; run module "$module"
        else
            run module "$module"; run native "$native"
        fi
    done
    ratios=$(paste -d' ' "$work/native.runs" "$work/module.runs" | awk '{ printf "%.2f\n", $4 / $1 }')
    {
        echo -n "${endpoint%%\?*} "
        for name in native module; do
            # the round with the median req/s gives the latencies too
            awk -v m="$(cut -d' ' -f1 "$work/$name.runs" | median)" '$1 == m { print $1, $2, $3; exit }
                END { if (NR == 0) print "- - -" }' "$work/$name.runs" | tr '\n' ' '
        done
        echo "$(echo "$ratios" | median) $(echo "$ratios" | sort -g | head -1) $(echo "$ratios" | sort -g | tail -1)"
    } >>"$work/results.txt"
done
rss_kb "$native_pid" >"$work/native.rss"
rss_kb "$module_pid" >"$work/module.rss"
kill "$native_pid" "$module_pid"

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
    echo "wrk -t2 -c$connections -d$duration, $rounds alternating rounds per endpoint (after a $warmup warm-up each),"
    echo "$(nproc) cores, $(uname -m). req/s and latencies: the median round; module/native: the median of the"
    echo "per-round ratios, and their range."
    echo
    echo "| endpoint | native req/s | module req/s | module/native | (rounds: min-max) | native p50 | module p50 | native p99 | module p99 |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    while read -r ep nrps np50 np99 mrps mp50 mp99 ratio low high; do
        echo "| $ep | $nrps | $mrps | $ratio | $low-$high | $np50 | $mp50 | $np99 | $mp99 |"
    done <"$work/results.txt"
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
