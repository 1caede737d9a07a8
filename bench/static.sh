#!/usr/bin/env bash
# Static files: the container versus nginx serving the same directory, in
# one run, on this machine. The directory holds a 1 kB and a 1 MB file; the
# container serves it from a module-less mount (`[static."/"]`, no app, the
# access log on as shipped, to a file), nginx (Debian's package, installed
# if missing) with `sendfile on`, `access_log off` and 2 workers, started
# from a configuration in a temporary directory (no root needed). wrk
# loads each file on each server, the servers taking turns round after
# round so that drift on a shared machine favours neither.
#
#   bench/static.sh
#   BENCH_DURATION=1s BENCH_ROUNDS=1 BENCH_WARMUP=1s bench/static.sh   # a smoke run
#
# Knobs: BENCH_DURATION (10s per run), BENCH_ROUNDS (3), BENCH_WARMUP (2s),
# BENCH_CONNECTIONS (64), BENCH_RESULTS_DIR (bench/results). Prints a table
# and writes it to $BENCH_RESULTS_DIR/<date>-static.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

duration=${BENCH_DURATION:-10s}
rounds=${BENCH_ROUNDS:-3}
warmup=${BENCH_WARMUP:-2s}
connections=${BENCH_CONNECTIONS:-64}
token=bench-admin-token-0123456789
nginx_port=18971
crabcat_port=18972

PATH="$PATH:/usr/sbin"
need wrk nginx
echo "==> building (release)"
cargo build --release -q -p crabcat

scratch
mkdir -p "$work/public" "$work/deploy" "$work/nginx"
line="Crabcat static file benchmark, one line of text."
head -c 1024 <(yes "$line") >"$work/public/1k.txt"
head -c 1048576 <(yes "$line") >"$work/public/1m.txt"

cat >"$work/nginx.conf" <<EOF
daemon off;
worker_processes 2;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
$([ "$(id -u)" = 0 ] && echo "user root;")
events { worker_connections 4096; }
http {
    include /etc/nginx/mime.types;
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $work/nginx/body;
    proxy_temp_path $work/nginx/proxy;
    fastcgi_temp_path $work/nginx/fastcgi;
    uwsgi_temp_path $work/nginx/uwsgi;
    scgi_temp_path $work/nginx/scgi;
    server {
        listen 127.0.0.1:$nginx_port;
        root $work/public;
    }
}
EOF
nginx -e "$work/nginx/error.log" -p "$work/nginx" -c "$work/nginx.conf" &
pids+=($!)
nginx_pid=$!

cat >"$work/crabcat.toml" <<EOF
[static."/"]
dir = "public"
EOF
env -u RUST_LOG CRABCAT__DATASOURCES__DEFAULT__URL="sqlite://$work/crabcat.db" CRABCAT_ADMIN_TOKEN=$token \
    target/release/crabcat serve --config "$work/crabcat.toml" --listen "127.0.0.1:$crabcat_port" \
    --admin-listen "127.0.0.1:$((crabcat_port + 1))" --deploy-dir "$work/deploy" 2>"$work/crabcat.log" &
pids+=($!)
crabcat_pid=$!
wait_for "http://127.0.0.1:$nginx_port/1k.txt" 30
wait_for "http://127.0.0.1:$crabcat_port/1k.txt" 30
for pid in "$nginx_pid" "$crabcat_pid"; do # not some older server on the port
    kill -0 "$pid" 2>/dev/null || { echo "a server did not start; see its log:" >&2; cat "$work"/*.log "$work"/nginx/*.log >&2; exit 1; }
done
cmp <(curl -sf "http://127.0.0.1:$nginx_port/1m.txt") <(curl -sf "http://127.0.0.1:$crabcat_port/1m.txt")

# run NAME FILE URL: one wrk run; appends "rps MB/s p50 p99" to $work/NAME-FILE.runs.
run() {
    local out=$work/wrk.txt errors
    wrk -t2 -c"$connections" -d"$duration" --latency "$3" >"$out"
    errors=$(awk '/Non-2xx|Socket errors/ {print}' "$out" | tr '\n' ' ')
    [ -n "$errors" ] && echo "   $1 $3: $errors" >&2
    awk '/Requests\/sec/ { rps = $2 }
         /Transfer\/sec/ { v = $2; u = substr(v, length(v) - 1); n = v + 0
                           mb = (u == "GB") ? n * 1024 : (u == "KB") ? n / 1024 : (u == "MB") ? n : n / 1048576 }
         $1 == "50%" { p50 = $2 } $1 == "99%" { p99 = $2 }
         END { printf "%s %.1f %s %s\n", rps, mb, p50, p99 }' "$out" >>"$work/$1-$2.runs"
}

files="1k 1m"
load_before="$(cut -d' ' -f1 /proc/loadavg), $(pgrep -c rustc || true) rustc processes"
echo "==> nginx and crabcat: $rounds rounds of $duration per file, wrk -t2 -c$connections"
for file in $files; do
    for name in nginx crabcat; do
        port_var=${name}_port
        wrk -t2 -c"$connections" -d"$warmup" "http://127.0.0.1:${!port_var}/$file.txt" >/dev/null
    done
done
for round in $(seq "$rounds"); do
    for file in $files; do
        order="nginx crabcat"
        [ $((round % 2)) = 0 ] && order="crabcat nginx"
        for name in $order; do
            port_var=${name}_port
            run "$name" "$file" "http://127.0.0.1:${!port_var}/$file.txt"
        done
    done
done
for pid in "$nginx_pid" "$crabcat_pid"; do
    kill -0 "$pid" 2>/dev/null || { echo "a server died; see its log:" >&2; cat "$work"/*.log "$work"/nginx/*.log >&2; exit 1; }
done
access_lines=$(grep -c '" 200 ' "$work/crabcat.log" || true)
load_after="$(cut -d' ' -f1 /proc/loadavg), $(pgrep -c rustc || true) rustc processes"

# median_of NAME FILE COLUMN: COLUMN of the median round by req/s (the
# lower middle one for an even number of rounds).
median_of() {
    sort -g "$work/$1-$2.runs" | awk -v c="$3" '{ r[NR] = $c } END { print NR ? r[int((NR + 1) / 2)] : "-" }'
}
# ratios FILE: "median min-max" of the per-round crabcat/nginx req/s.
ratios() {
    paste -d' ' "$work/crabcat-$1.runs" "$work/nginx-$1.runs" | awk '{ printf "%.2f\n", $1 / $5 }' | sort -g |
        awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
                                  printf "%.2f | %s-%s", m, v[1], v[NR] }'
}
label() { case $1 in 1k) echo "1 kB" ;; 1m) echo "1 MB" ;; esac; }

{
    echo "# Crabcat static files against nginx, $(date -u +%Y-%m-%dT%H:%MZ)"
    echo
    echo "wrk -t2 -c$connections -d$duration, $rounds alternating rounds per file (after a $warmup warm-up each),"
    echo "$(nproc) cores, $(uname -m), loopback; wrk shares the cores with the server. req/s, MB/s and latencies:"
    echo "the median round; crabcat/nginx: the median of the per-round ratios of req/s, and their range."
    echo
    echo "- nginx $(nginx -v 2>&1 | sed 's|.*/||'): Debian's package, 2 workers, \`sendfile on\`, \`access_log off\`."
    echo "- crabcat: \`[static.\"/\"] dir = \"public\"\`, no app, otherwise as shipped (access log on, to a file)."
    echo
    echo "| file | nginx req/s | crabcat req/s | crabcat/nginx | (rounds) | nginx MB/s | crabcat MB/s | nginx p50 | crabcat p50 | nginx p99 | crabcat p99 |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for file in $files; do
        echo "| $(label "$file") | $(median_of nginx "$file" 1) | $(median_of crabcat "$file" 1) | $(ratios "$file") |" \
            "$(median_of nginx "$file" 2) | $(median_of crabcat "$file" 2) |" \
            "$(median_of nginx "$file" 3) | $(median_of crabcat "$file" 3) |" \
            "$(median_of nginx "$file" 4) | $(median_of crabcat "$file" 4) |"
    done
    echo
    echo "Access log of the container: $access_lines lines with status 200 written."
    echo "Machine load (1-minute load average, compilers running) at the start: $load_before; at the end: $load_after."
} >"$work/table.md"
publish static
