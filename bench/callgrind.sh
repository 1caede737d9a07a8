#!/usr/bin/env bash
# Instructions per request, native versus module, counted by callgrind:
# stable on a noisy machine where requests/s move by ±10% between runs.
# Each server runs under valgrind with instrumentation off; after a warm-up
# it is switched on while wrk sends a fixed load, then off again. Prints the total
# instructions per request for each server, the ratio, and the top
# functions by self cost for the module.
#
#   bench/callgrind.sh                 # /plaintext
#   bench/callgrind.sh json            # any endpoint of apps/bench
#   CALLGRIND_SHIPPED=1 bench/callgrind.sh   # the container as shipped
#
# By default the container runs tuned (access log and deploy watcher off,
# as bench/run.sh's "tuned"); CALLGRIND_SHIPPED=1 keeps the configuration
# as shipped, so the difference is what the access log costs (its writer
# thread included: callgrind counts every thread).
#
# Needs valgrind (installed if missing) and wrk. SQLite, or PostgreSQL when
# CRABCAT_BENCH_POSTGRES_URL is set (as for bench/run.sh). Counts only the
# server process, not the database server.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
endpoint=${1:-plaintext}
duration=${CALLGRIND_DURATION:-5s}

need valgrind wrk
cargo build --release -q -p crabcat -p bench -p bench-native

work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    wait 2>/dev/null || true
    [ -n "${CALLGRIND_KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}
trap cleanup EXIT


# profile NAME URL CMD...: prints "instructions requests".
profile() {
    local name=$1 url=$2
    shift 2
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$work/$name.out" "$@" 2>"$work/$name.log" &
    pid=$!
    wait_for "$url" 120
    wrk -t1 -c4 -d2s "$url" >/dev/null
    callgrind_control --instr=on "$pid" >/dev/null
    wrk -t1 -c4 -d"$duration" "$url" >"$work/$name.wrk"
    callgrind_control --instr=off "$pid" >/dev/null
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=
    local requests ir
    requests=$(awk '/requests in/ {print $1}' "$work/$name.wrk")
    ir=$(awk '/^totals:/ {print $2}' "$work/$name.out")
    echo "$ir $requests $work/$name.out"
}

databases "$work" crabcat_callgrind
read -r native_ir native_req _ < <(profile native "http://127.0.0.1:18980/$endpoint" \
    target/release/bench-native 127.0.0.1:18980 "$native_url")
mkdir -p "$work/deploy"
cp target/release/libbench.so "$work/deploy/bench.so"
read -r module_ir module_req module_dump < <(
    [ -z "${CALLGRIND_SHIPPED:-}" ] && export CRABCAT__SERVER__ACCESS_LOG=false CRABCAT__DEPLOY__WATCH=false
    CRABCAT__DATASOURCES__DEFAULT__URL="$module_url" \
    CRABCAT_ADMIN_TOKEN=callgrind-admin-token-0123456789 RUST_LOG=warn \
    profile module "http://127.0.0.1:18981/bench/$endpoint" \
    target/release/crabcat serve --listen 127.0.0.1:18981 --admin-listen 127.0.0.1:18982 --deploy-dir "$work/deploy")

awk -v e="$endpoint" -v ni="$native_ir" -v nr="$native_req" -v mi="$module_ir" -v mr="$module_req" 'BEGIN {
    n = ni / nr; m = mi / mr
    printf "/%s  native %d instructions/request (%d requests)\n", e, n, nr
    printf "/%s  module %d instructions/request (%d requests)\n", e, m, mr
    printf "module/native instructions: %.2f  (extra per request: %d)\n", m / n, m - n
}'
echo
echo "module, top functions by own instructions per request:"
callgrind_annotate --inclusive=no "$module_dump" 2>/dev/null |
    awk -v r="$module_req" 'match($0, /^ *[0-9,]+ \( *[0-9.]+%\) +/) && !/PROGRAM TOTALS/ {
        name = substr($0, RSTART + RLENGTH); count = $1; gsub(",", "", count)
        if (++n <= 20) printf "%8d %s\n", count / r, name }' |
    sed 's|/root/.cargo/registry/src/[^/]*/||; s|/rustc/[0-9a-f]*/||' | cut -c1-160
