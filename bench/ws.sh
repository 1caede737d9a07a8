#!/usr/bin/env bash
# WebSocket fan-out benchmark: N clients in one chat room, messages fanned
# out through the container's hub (the bench app's /ws/room/{room}) versus
# the same room in bench/native (axum's WebSocket and a tokio broadcast
# channel per room), in one run, on this machine. Both are built in release
# mode and loaded in turn by bench/ws-load, which reports: the connections
# held, the server's RSS per idle connection and its CPU with them all
# idle, then the fan-out latency (arrival - send) of M messages published
# by one client at R per second: to all N (measured at K of them) and, when
# N > K, to a room of K clients while the other N - K stay connected.
#
#   bench/ws.sh
#   WS_CLIENTS=50 WS_FANOUT_CLIENTS=20 WS_MESSAGES=20 bench/ws.sh    # a smoke run
#
# Knobs: WS_CLIENTS (10000), WS_FANOUT_CLIENTS (1000), WS_MESSAGES (200),
# WS_RATE (50 a second), WS_IDLE (5: seconds of the idle CPU window),
# WS_CONNECT_CONCURRENCY (64 handshakes at once), BENCH_RESULTS_DIR
# (bench/results). Prints a table and writes it to
# $BENCH_RESULTS_DIR/<date>-ws.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

clients=${WS_CLIENTS:-10000}
fanout=${WS_FANOUT_CLIENTS:-1000}
messages=${WS_MESSAGES:-200}
rate=${WS_RATE:-50}
idle=${WS_IDLE:-5}
concurrency=${WS_CONNECT_CONCURRENCY:-64}
token=bench-admin-token-0123456789
[ "$fanout" -gt "$clients" ] && fanout=$clients

# Each server and the load generator hold one descriptor per connection.
need_fds=$((clients + 1000))
wanted_fds=$((need_fds > 30000 ? need_fds : 30000))
fd_note="open-file limit $wanted_fds"
if ! ulimit -n "$wanted_fds" 2>/dev/null; then
    hard=$(ulimit -Hn)
    ulimit -n "$hard" 2>/dev/null || true
    fd_note="open-file limit $(ulimit -n) (the hard limit: raising it to $wanted_fds was refused)"
fi
fds=$(ulimit -n)
if [ "$fds" != unlimited ] && [ "$fds" -lt "$need_fds" ]; then
    echo "bench/ws.sh: $clients clients need an open-file limit of at least $need_fds, and this shell" >&2
    echo "can raise it only to $fds (its hard limit). Raise the hard limit (root: ulimit -Hn $wanted_fds;" >&2
    echo "a service: LimitNOFILE) or lower WS_CLIENTS." >&2
    exit 1
fi

# The container as shipped: only the ports, the deploy directory and, so
# that nothing is written into the clone, the database file and the admin
# token are set. One setting more if N needs it.
container_env=(CRABCAT__DATASOURCES__DEFAULT__URL=placeholder CRABCAT_ADMIN_TOKEN=$token)
settings_note="no settings but the listen ports, the deploy directory, the database file and the admin token"
if [ "$clients" -gt 10000 ]; then
    container_env+=(CRABCAT__SERVER__MAX_CONNECTIONS=$((clients + 100)))
    settings_note="$settings_note; server.max_connections = $((clients + 100)) (the default, 10000, is below N)"
fi

echo "==> building (release)"
cargo build --release -q -p crabcat -p bench -p bench-native -p ws-load

scratch
container_env[0]=CRABCAT__DATASOURCES__DEFAULT__URL=sqlite://$work/crabcat.db

# load NAME PID URL: runs the load generator against the server PID at
# URL; its report goes to $work/NAME.out, and the machine's load to
# $work/NAME.load.
load() {
    local name=$1 pid=$2 url=$3
    echo "==> $name: $clients clients, fan-out of $messages messages at $rate/s"
    echo "$(cut -d' ' -f1 /proc/loadavg) $(pgrep -c rustc || true)" >"$work/$name.load"
    target/release/ws-load --url "$url" --pid "$pid" --clients "$clients" --fanout "$fanout" \
        --messages "$messages" --rate "$rate" --idle-secs "$idle" --concurrency "$concurrency" \
        | tee "$work/$name.out"
    echo "$(cut -d' ' -f1 /proc/loadavg) $(pgrep -c rustc || true)" >>"$work/$name.load"
    kill -0 "$pid" 2>/dev/null || { echo "$name died; see its log:" >&2; cat "$work/$name.log" >&2; exit 1; }
    kill "$pid"
    wait "$pid" 2>/dev/null || true
}

mkdir -p "$work/deploy"
cp target/release/libbench.so "$work/deploy/bench.so"
env -u RUST_LOG "${container_env[@]}" target/release/crabcat serve \
    --listen 127.0.0.1:18961 --admin-listen 127.0.0.1:18962 --deploy-dir "$work/deploy" 2>"$work/crabcat.log" &
pids+=($!)
crabcat_pid=$!
wait_for http://127.0.0.1:18961/bench/plaintext 30
kill -0 "$crabcat_pid" 2>/dev/null || { echo "crabcat did not start:" >&2; cat "$work/crabcat.log" >&2; exit 1; }
load crabcat "$crabcat_pid" ws://127.0.0.1:18961/bench/ws/room

target/release/bench-native 127.0.0.1:18960 "sqlite://$work/native.db" 2>"$work/native.log" &
pids+=($!)
native_pid=$!
wait_for http://127.0.0.1:18960/plaintext 30
kill -0 "$native_pid" 2>/dev/null || { echo "bench-native did not start:" >&2; cat "$work/native.log" >&2; exit 1; }
load native "$native_pid" ws://127.0.0.1:18960/ws/room

# field NAME STEP KEY [NTH]: KEY's value on the NTH "ws-load STEP" line.
field() {
    awk -v step="$2" -v key="$3" -v nth="${4:-1}" '
        $1 == "ws-load" && $2 == step && ++n == nth {
            for (i = 3; i <= NF; i++) { j = index($i, "="); if (substr($i, 1, j - 1) == key) print substr($i, j + 1) }
        }' "$work/$1.out"
}
# row LABEL STEP KEY [NTH [SCALE]]: a table row, crabcat | native | ratio;
# SCALE divides both values (e.g. 1024 for KiB to MiB).
row() {
    local c n
    c=$(field crabcat "$2" "$3" "${4:-1}")
    n=$(field native "$2" "$3" "${4:-1}")
    awk -v label="$1" -v c="$c" -v n="$n" -v s="${5:-1}" 'BEGIN {
        if (c == "" || n == "") { printf "| %s | %s | %s | - |\n", label, c, n; exit }
        r = (n + 0 == 0) ? "-" : sprintf("%.2f", c / n)
        if (s == 1) printf "| %s | %s | %s | %s |\n", label, c, n, r
        else printf "| %s | %.1f | %.1f | %s |\n", label, c / s, n / s, r
    }'
}
# delivered NAME NTH: "delivered/expected" of the NTH fan-out, at the recorders.
delivered() { echo "$(field "$1" fanout delivered "$2")/$(field "$1" fanout expected "$2")"; }
room_delivered() { echo "$(field "$1" fanout room_delivered "$2")/$(field "$1" fanout room_expected "$2")"; }
# verdict NAME: the targets, for the container: ≤ 16 KiB per idle connection, p99 < 50 ms to K.
fanout_k=$([ "$clients" -gt "$fanout" ] && echo 2 || echo 1)
verdict() {
    awk -v b="$(field crabcat idle per_connection_bytes)" -v p="$(field crabcat fanout p99_ms "$fanout_k")" 'BEGIN {
        printf "RSS per idle connection %.1f KiB: %s (target: at most 16 KiB). ", b / 1024, (b <= 16384) ? "met" : "NOT met"
        printf "Fan-out p99 to the room of K: %s ms: %s (target: under 50 ms).\n", p, (p < 50) ? "met" : "NOT met"
    }'
}
load_note() {
    read -r l0 r0 <<<"$(head -1 "$work/$1.load")"
    read -r l1 r1 <<<"$(tail -1 "$work/$1.load")"
    echo "$1 run: 1-minute load average $l0 at its start, $l1 at its end; rustc processes running: $r0 then $r1"
}

{
    echo "# Crabcat WebSocket fan-out benchmark, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "$clients clients in one room, at most $concurrency handshakes at once; $messages messages at $rate/s"
    echo "published by one client, with latencies recorded at $fanout clients. $(nproc) cores, $(uname -m), loopback;"
    echo "the load generator shares the cores with the server. bench/ws.sh, $fd_note."
    echo
    echo "- crabcat: the bench app's \`/ws/room/{room}\` (hub topic \`room:{room}\`), the container with $settings_note."
    echo "  Its hub queues up to 256 messages per subscriber, its WebSocket read buffer is 4 KiB."
    echo "- native: bench-native's \`/ws/room/{room}\`, axum \`ws\` configured alike: \`read_buffer_size(4096)\`,"
    echo "  a 1 MiB message limit, a \`tokio::sync::broadcast\` of 256 per room, 1008 for a lagging subscriber."
    echo "  Unlike the container it sends no pings (the container pings every 30 s)."
    echo
    echo "| figure | crabcat | native | crabcat/native |"
    echo "|---|---:|---:|---:|"
    row "connections held (of $clients)" idle held
    row "connect time for all (s)" connect secs
    row "handshakes retried" connect retries
    row "RSS before connecting (MiB)" idle rss_before_kb 1 1024
    row "RSS with $clients idle connections (MiB)" idle rss_idle_kb 1 1024
    row "RSS per idle connection (KiB)" idle per_connection_bytes 1 1024
    row "CPU with them idle, over ${idle}s (% of one core)" idle cpu_pct
    if [ "$clients" -gt "$fanout" ]; then
        row "fan-out to a room of $fanout (others connected): p50 (ms)" fanout p50_ms 2
        row "fan-out to a room of $fanout: p99 (ms)" fanout p99_ms 2
        row "fan-out to a room of $fanout: max (ms)" fanout max_ms 2
        echo "| fan-out to a room of $fanout: delivered | $(delivered crabcat 2) | $(delivered native 2) | - |"
        row "fan-out to a room of $fanout: server CPU per delivery (µs)" fanout cpu_us_per_delivery 2
        row "fan-out to all $clients (latency at $fanout): p50 (ms)" fanout p50_ms 1
        row "fan-out to all $clients: p99 (ms)" fanout p99_ms 1
        row "fan-out to all $clients: max (ms)" fanout max_ms 1
        echo "| fan-out to all $clients: delivered to all | $(room_delivered crabcat 1) | $(room_delivered native 1) | - |"
        row "fan-out to all $clients: first send to last arrival (s)" fanout secs 1
        row "fan-out to all $clients: server CPU per delivery (µs)" fanout cpu_us_per_delivery 1
    else
        row "fan-out to $clients clients: p50 (ms)" fanout p50_ms
        row "fan-out to $clients clients: p99 (ms)" fanout p99_ms
        row "fan-out to $clients clients: max (ms)" fanout max_ms
        echo "| fan-out to $clients clients: delivered | $(delivered crabcat 1) | $(delivered native 1) | - |"
        row "fan-out to $clients clients: server CPU per delivery (µs)" fanout cpu_us_per_delivery
    fi
    row "connections open at the end" end open
    row "RSS at the end (MiB)" end rss_kb 1 1024
    echo "| connections ending, by close code | $(field crabcat end closes) | $(field native end closes) | - |"
    echo
    verdict
    echo
    echo "- $(load_note crabcat)"
    echo "- $(load_note native)"
} >"$work/table.md"
publish ws
