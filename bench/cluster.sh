#!/usr/bin/env bash
# The cluster of scripts/cluster.sh, measured: requests/s through nginx with
# 1, 2 and 3 nodes (and one node without nginx), on /hello/ and on a
# PostgreSQL read (/chat/rooms/lobby/messages), and how long a deployment
# through node 1 takes to be served by every node.
#
# On a 2-core machine more nodes do not add cores: the figures show what the
# proxy and the extra processes cost, not how a cluster scales.
#
# Environment: CLUSTER_DATABASE_URL (a PostgreSQL server; a database
# crabcat_cluster_bench is dropped and created on it)
# [postgres://postgres@127.0.0.1:5432/test], BENCH_DURATION [10s],
# BENCH_CONNECTIONS [64], BENCH_NODES ["1 2 3"], BENCH_RESULTS_DIR [bench/results].
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

need wrk psql
server_url=${CLUSTER_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
duration=${BENCH_DURATION:-10s}
connections=${BENCH_CONNECTIONS:-64}
nodes=${BENCH_NODES:-1 2 3}
psql -q "$server_url" -c "DROP DATABASE IF EXISTS crabcat_cluster_bench WITH (FORCE)" -c "CREATE DATABASE crabcat_cluster_bench"

echo "==> building crabcat, the sample apps and two versions of a test app (release)"
cargo build --release -p crabcat -p hello -p chat -p guestbook -p versioned-a -p versioned-b
scratch
export CLUSTER_DIR=$work/cluster CLUSTER_BUILD=0 CLUSTER_PROFILE=release
export CLUSTER_DATABASE_URL=${server_url%/*}/crabcat_cluster_bench
export CLUSTER_PORT=18990 CLUSTER_BASE_PORT=18880
trap 'scripts/cluster.sh down >/dev/null; scratch_cleanup' EXIT

# rps URL: requests/s of one wrk run.
rps() {
    wrk -t2 -c"$connections" -d"$duration" "$1" >"$work/wrk.txt"
    grep -E "Non-2xx|Socket errors" "$work/wrk.txt" >&2 || true
    awk '/Requests\/sec/ { printf "%.0f", $2 }' "$work/wrk.txt"
}

# propagation APP PACKAGE BODY: ms from the start of a deploy through node 1
# until every node serves BODY; prints one figure per node.
propagation() {
    local start k t lib=target/release/lib${2//-/_}.so
    start=$(date +%s%N)
    CRABCAT_ADMIN_TOKEN=$(cat "$CLUSTER_DIR/admin.token") target/release/crabcat deploy "$lib" --name "$1" \
        --admin "http://127.0.0.1:$((CLUSTER_BASE_PORT + 101))" >/dev/null
    for k in $(seq "$n"); do
        until [ "$(curl -s "http://127.0.0.1:$((CLUSTER_BASE_PORT + k))/$1/")" = "$3" ]; do sleep 0.005; done
        t=$(($(date +%s%N) - start))
        printf "%s " "$((t / 1000000))"
    done
}

{
    echo "# The cluster: $(date -u +'%Y-%m-%d %H:%M') UTC"
    echo
    echo "scripts/cluster.sh (release build) behind nginx (Debian's, 1 worker), PostgreSQL $(psql -tA "$server_url" -c 'SHOW server_version'), wrk -t2 -c$connections -d$duration, $(nproc) cores."
    echo "Load before: $(cut -d' ' -f1 /proc/loadavg). Each node runs the shipped configuration."
    echo
    echo "| nodes | /hello/ through nginx | /chat/rooms/lobby/messages through nginx | deploy served by every node (ms from the start of \`crabcat deploy\`, per node) |"
    echo "|---:|---:|---:|---|"
} >"$work/table.md"
direct=""
for n in $nodes; do
    echo "==> $n node(s)"
    scripts/cluster.sh up "$n" >"$work/up-$n.log" 2>&1 || { cat "$work/up-$n.log"; exit 1; }
    wait_for "http://127.0.0.1:$CLUSTER_PORT/chat/rooms/lobby/messages" 30
    for k in $(seq "$n"); do wait_for "http://127.0.0.1:$((CLUSTER_BASE_PORT + k))/hello/" 30; done
    wrk -t2 -c"$connections" -d2s "http://127.0.0.1:$CLUSTER_PORT/hello/" >/dev/null # warm-up
    hello=$(rps "http://127.0.0.1:$CLUSTER_PORT/hello/")
    db=$(rps "http://127.0.0.1:$CLUSTER_PORT/chat/rooms/lobby/messages")
    [ "$n" = 1 ] && direct=$(rps "http://127.0.0.1:$((CLUSTER_BASE_PORT + 1))/hello/")
    spread="$(propagation demo versioned-a "version a")/ $(propagation demo versioned-b "version b")"
    echo "| $n | $hello | $db | $spread |" >>"$work/table.md"
    echo "   /hello/ $hello req/s, db $db req/s, propagation $spread"
    scripts/cluster.sh down >/dev/null
done
{
    echo
    [ -n "$direct" ] && echo "One node without nginx: /hello/ $direct req/s."
    echo "Propagation: two deployments (version a, then b) per row; each figure is when one node first served the new version."
} >>"$work/table.md"
publish cluster
