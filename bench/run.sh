#!/usr/bin/env bash
# Benchmarks a module against the same handlers compiled natively, in one
# run, on this machine: apps/bench in the crabcat container versus
# bench/native (plain axum + sqlx, same SQL, same pool settings). The
# container runs twice: as shipped (no settings) and tuned (no deploy
# watcher, no access log). All are built in release mode, started on
# loopback, warmed up, and loaded by wrk with the same connections and
# duration; they run side by side and take turns, round after round, so
# that drift on a shared machine favours none. Then: idle CPU and RSS after
# start and after the load, the container's start to first answer with
# every sample app, hot reload latency and RSS after 100 reloads.
#
#   bench/run.sh                      # SQLite
#   CRABCAT_BENCH_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test bench/run.sh
#
# Knobs: BENCH_DURATION (3s per run), BENCH_ROUNDS (11), BENCH_COST_ROUNDS (3),
# BENCH_COST_DURATION (5s), BENCH_WARMUP (3s),
# BENCH_CONNECTIONS (64), BENCH_ENDPOINTS (all six), BENCH_IDLE (10s: the
# idle CPU windows), BENCH_RELOADS (100), BENCH_RESULTS_DIR (bench/results). Prints a
# table and writes it to $BENCH_RESULTS_DIR/<date>-<backend>.md.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

duration=${BENCH_DURATION:-3s}
rounds=${BENCH_ROUNDS:-11}
cost_rounds=${BENCH_COST_ROUNDS:-3}
cost_duration=${BENCH_COST_DURATION:-5s}
warmup=${BENCH_WARMUP:-3s}
idle=${BENCH_IDLE:-10s}
connections=${BENCH_CONNECTIONS:-64}
endpoints=${BENCH_ENDPOINTS:-"plaintext json db queries?queries=20 fortunes updates?queries=20"}
token=bench-admin-token-0123456789

need wrk
echo "==> building (release)"
cargo build --release -q -p crabcat -p bench -p bench-native -p hello -p guestbook -p bank

scratch

databases "$work" crabcat_bench
# The tuned container gets a database of its own.
if [ "$backend" = postgres ]; then
    psql -q "$CRABCAT_BENCH_POSTGRES_URL" -c "DROP DATABASE IF EXISTS crabcat_bench_tuned WITH (FORCE)" \
        -c "CREATE DATABASE crabcat_bench_tuned"
    tuned_url="${CRABCAT_BENCH_POSTGRES_URL%/*}/crabcat_bench_tuned"
else
    tuned_url="sqlite://$work/tuned.db"
fi
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

# The three servers run side by side (an idle one costs nothing) and take
# turns: each round starts with the next of them, so a machine that speeds
# up or slows down during the run (2 shared cores here) biases none. Each
# endpoint reports the median of its rounds; a ratio is the median of the
# per-round ratios.
#
# "shipped" is the container as a user runs it: no settings at all (the
# deploy directory watched, the access log on, RUST_LOG unset), its stderr
# going to a file. "tuned" switches off what a benchmark can do without:
# CRABCAT__DEPLOY__WATCH=false CRABCAT__SERVER__ACCESS_LOG=false RUST_LOG=warn.
echo "==> native, shipped and tuned container ($backend): $rounds rounds of $duration per endpoint"
target/release/bench-native 127.0.0.1:18990 "$native_url" 2>"$work/native.log" &
pids+=($!)
native_pid=$!
# start_container NAME PORT ENV...: the container with bench and hello
# deployed, on PORT (admin on PORT+1), its stderr in $work/NAME.log.
start_container() {
    local name=$1 port=$2
    shift 2
    mkdir -p "$work/$name"
    cp target/release/libbench.so "$work/$name/bench.so"
    cp target/release/libhello.so "$work/$name/hello.so"
    env -u RUST_LOG "$@" CRABCAT_ADMIN_TOKEN=$token \
        target/release/crabcat serve --listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$((port + 1))" \
        --deploy-dir "$work/$name" 2>"$work/$name.log" &
    pids+=($!)
}
start_container shipped 18991 CRABCAT__DATASOURCES__DEFAULT__URL="$module_url"
shipped_pid=$!
start_container tuned 18993 CRABCAT__DATASOURCES__DEFAULT__URL="$tuned_url" CRABCAT__DEPLOY__WATCH=false CRABCAT__SERVER__ACCESS_LOG=false RUST_LOG=warn
tuned_pid=$!
wait_for http://127.0.0.1:18990/plaintext 30
wait_for http://127.0.0.1:18991/bench/plaintext 30
wait_for http://127.0.0.1:18993/bench/plaintext 30
for pid in "$native_pid" "$shipped_pid" "$tuned_pid"; do # not some older server on the port
    kill -0 "$pid" 2>/dev/null || { echo "a server did not start; see its log:" >&2; cat "$work"/*.log >&2; exit 1; }
done

# Idle cost: CPU time (utime + stime, in clock ticks) over $idle, as a
# percentage of one core, and RSS.
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
idle_cpu() { # PID...: prints "pct pct ..." over one window of $idle
    local before=() after=() pid i=0 hz secs
    hz=$(getconf CLK_TCK)
    secs=${idle%s}
    for pid; do before+=("$(ticks "$pid")"); done
    sleep "$idle"
    for pid; do after+=("$(ticks "$pid")"); done
    for pid; do
        awk -v t=$((after[i] - before[i])) -v hz="$hz" -v s="$secs" 'BEGIN { printf "%.2f%% ", 100 * t / hz / s }'
        i=$((i + 1))
    done
    echo
}
echo "==> idle for $idle after start"
read -r native_idle0 shipped_idle0 tuned_idle0 < <(idle_cpu "$native_pid" "$shipped_pid" "$tuned_pid")
for name in native shipped tuned; do
    pid_var=${name}_pid
    rss_kb "${!pid_var}" >"$work/$name.rss0"
done

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { paste -d' ' "$work/$1.runs" "$work/$2.runs" | awk '{ printf "%.2f\n", $4 / $1 }'; }
# summary NAME: "rps p50 p99 " of the median round by req/s (the lower
# middle one for an even number of rounds)
summary() {
    sort -g "$work/$1.runs" | awk '{ r[NR] = $1 " " $2 " " $3 } END { printf "%s ", NR ? r[int((NR + 1) / 2)] : "- - -" }'
}
# spread NAME_A NAME_B: "median min-max" of the per-round ratios B/A
spread() {
    local r
    r=$(ratio "$1" "$2")
    echo -n "$(echo "$r" | median) $(echo "$r" | sort -g | head -1)-$(echo "$r" | sort -g | tail -1) "
}
# measure ENDPOINT URL...: warm-up, then rounds over the servers in turn.
measure() {
    local endpoint=$1 names=() urls=() round i n
    shift
    while [ $# -gt 0 ]; do names+=("$1"); urls+=("$2"); shift 2; done
    n=${#names[@]}
    for i in "${!names[@]}"; do
        wrk -t2 -c"$connections" -d"$warmup" "${urls[$i]}" >/dev/null
        rm -f "$work/${names[$i]}.runs"
    done
    for round in $(seq "$rounds"); do
        for i in $(seq 0 $((n - 1))); do
            local k=$(((round + i) % n))
            run "${names[$k]}" "${urls[$k]}"
        done
    done
}
# cost ENDPOINT: CPU time per request of native and of one container
# loaded at once (one wrk -t1 each, half the connections), shipped and
# tuned in turn, $cost_rounds rounds of $cost_duration: the two servers
# see the same machine at the same moment, so one round moves less than a
# round of requests/s of one server at a time, which on a small shared
# machine moves with the scheduling of the server's and wrk's threads on
# the same cores; it says what a difference is made of (work or waiting).
# Prints "native_us shipped_us tuned_us native/shipped native/tuned":
# medians of the rounds (native's over all of them).
cost() {
    local endpoint=$1 round name pid pid_var url load native_before native_after native_us before after
    rm -f "$work/cost.native" "$work/cost.shipped" "$work/cost.tuned"
    for round in $(seq "$cost_rounds"); do
        for name in shipped tuned; do
            pid_var=${name}_pid
            pid=${!pid_var}
            url=http://127.0.0.1:$([ "$name" = shipped ] && echo 18991 || echo 18993)/bench/$endpoint
            native_before=$(ticks "$native_pid")
            before=$(ticks "$pid")
            wrk -t1 -c$((connections / 2)) -d"$cost_duration" "http://127.0.0.1:18990/$endpoint" >"$work/cost.n.txt" &
            load=$!
            wrk -t1 -c$((connections / 2)) -d"$cost_duration" "$url" >"$work/cost.x.txt"
            wait "$load"
            native_after=$(ticks "$native_pid")
            after=$(ticks "$pid")
            native_us=$(per_request "$((native_after - native_before))" "$work/cost.n.txt")
            echo "$native_us" >>"$work/cost.native"
            echo "$native_us $(per_request "$((after - before))" "$work/cost.x.txt")" >>"$work/cost.$name"
        done
    done
    median <"$work/cost.native" | awk '{ printf "%.1f ", $1 }'
    for name in shipped tuned; do
        awk '{ print $2 }' "$work/cost.$name" | median | awk '{ printf "%.1f ", $1 }'
    done
    for name in shipped tuned; do
        awk '{ print ($2 ? $1 / $2 : 0) }' "$work/cost.$name" | median | awk '{ printf "%.2f ", $1 }'
    done
}
# per_request TICKS WRK_OUTPUT: microseconds of CPU per request.
per_request() {
    awk -v t="$1" -v hz="$(getconf CLK_TCK)" '/requests in/ { printf "%.3f\n", $1 ? 1e6 * t / hz / $1 : 0 }' "$2"
}
for endpoint in $endpoints; do
    measure "$endpoint" native "http://127.0.0.1:18990/$endpoint" \
        shipped "http://127.0.0.1:18991/bench/$endpoint" tuned "http://127.0.0.1:18993/bench/$endpoint"
    echo "${endpoint%%\?*} $(summary native)$(summary shipped)$(summary tuned)$(spread native shipped)$(spread native tuned)$(spread tuned shipped)" \
        >>"$work/results.txt"
    echo "${endpoint%%\?*} $(cost "$endpoint")" >>"$work/cost.txt"
done
# The access log's cost where the handler does least: hello's greeting.
measure hello shipped http://127.0.0.1:18991/hello/ tuned http://127.0.0.1:18993/hello/
echo "hello - - - $(summary shipped)$(summary tuned)- - - - $(spread tuned shipped)" >>"$work/results.txt"

echo "==> idle for $idle after the load"
read -r native_idle1 shipped_idle1 tuned_idle1 < <(idle_cpu "$native_pid" "$shipped_pid" "$tuned_pid")
for name in native shipped tuned; do
    pid_var=${name}_pid
    rss_kb "${!pid_var}" >"$work/$name.rss1"
done
access_lines=$(grep -c '" 200 ' "$work/shipped.log" || true)
dropped=$(curl -sf -H "Authorization: Bearer $token" http://127.0.0.1:18992/metrics |
    awk '/^crabcat_access_log_dropped_lines_total/ { print $2 }')
kill "$native_pid" "$shipped_pid" "$tuned_pid"

echo "==> container start with every sample app, idle RSS"
mkdir -p "$work/all"
for app in hello guestbook bank bench; do cp "target/release/lib$app.so" "$work/all/$app.so"; done
start_ms() {
    local t0 pid ms
    rm -f "$work/all.db"*
    t0=$(date +%s%N)
    env -u RUST_LOG CRABCAT__DATASOURCES__DEFAULT__URL="sqlite://$work/all.db" CRABCAT_ADMIN_TOKEN=$token \
        target/release/crabcat serve --listen 127.0.0.1:18995 --admin-listen 127.0.0.1:18996 \
        --deploy-dir "$work/all" 2>>"$work/all.log" &
    pid=$!
    for _ in $(seq 2000); do curl -sf -o /dev/null http://127.0.0.1:18995/hello/ && break; done
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    "$@" "$pid"
    kill "$pid"; wait "$pid" 2>/dev/null || true
    echo "$ms"
}
first_start=$(start_ms true)          # creates and fills the database (migrations)
warm_start=$(start_ms true)           # the usual restart: migrations already applied
idle_rss=$(start_ms sh -c 'sleep 1; awk "/VmRSS/ {print \$2}" /proc/$0/status > '"$work/idle.rss" >/dev/null; cat "$work/idle.rss")

echo "==> hot reload of hello (100 reloads)"
reload=$(RELOAD_NO_BUILD=1 scripts/reload-memory.sh "${BENCH_RELOADS:-100}")

# The table.
{
    echo "# Crabcat benchmark, $(date -u +%Y-%m-%dT%H:%MZ), $backend"
    echo
    echo "wrk -t2 -c$connections -d$duration, $rounds alternating rounds per endpoint (after a $warmup warm-up each),"
    echo "$(nproc) cores, $(uname -m). req/s and latencies: the median round; module/native: the median of the"
    echo "per-round ratios, and their range."
    echo
    echo "| endpoint | native req/s | shipped req/s | tuned req/s | shipped/native | (rounds) | tuned/native | (rounds) | shipped/tuned | (rounds) |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    while read -r ep nrps _ _ srps _ _ trps _ _ sn snr tn tnr st str; do
        echo "| $ep | $nrps | $srps | $trps | $sn | $snr | $tn | $tnr | $st | $str |"
    done <"$work/results.txt"
    echo
    echo "hello: \`/hello/\` of the hello app (no native twin): shipped/tuned is what the access log costs."
    echo
    echo "CPU time per request (µs), native and one container loaded at once (wrk -t1 -c$((connections / 2)) -d$cost_duration"
    echo "each; shipped, then tuned; median of $cost_rounds rounds): the two share the same machine at the same moment,"
    echo "so one such round moves less than one round of requests/s (the medians of both still move by a few"
    echo "hundredths between runs). native/X is native's CPU per request over X's, in the same runs (1.00: the"
    echo "same cost; lower: the container costs more)."
    echo
    echo "| endpoint | native µs | shipped µs | tuned µs | native/shipped | native/tuned |"
    echo "|---|---:|---:|---:|---:|---:|"
    while read -r ep n s t ns nt; do
        echo "| $ep | $n | $s | $t | $ns | $nt |"
    done <"$work/cost.txt"
    echo
    echo "| endpoint | native p50 | shipped p50 | tuned p50 | native p99 | shipped p99 | tuned p99 |"
    echo "|---|---:|---:|---:|---:|---:|---:|"
    while read -r ep _ np50 np99 _ sp50 sp99 _ tp50 tp99 _; do
        echo "| $ep | $np50 | $sp50 | $tp50 | $np99 | $sp99 | $tp99 |"
    done <"$work/results.txt"
    echo
    echo "Idle: CPU over $idle (percent of one core), RSS:"
    echo
    echo "| process | CPU idle after start | CPU idle after the load | RSS after start | RSS after the load |"
    echo "|---|---:|---:|---:|---:|"
    echo "| native | $native_idle0 | $native_idle1 | $(( $(cat "$work/native.rss0") / 1024 )) MB | $(( $(cat "$work/native.rss1") / 1024 )) MB |"
    echo "| crabcat shipped | $shipped_idle0 | $shipped_idle1 | $(( $(cat "$work/shipped.rss0") / 1024 )) MB | $(( $(cat "$work/shipped.rss1") / 1024 )) MB |"
    echo "| crabcat tuned | $tuned_idle0 | $tuned_idle1 | $(( $(cat "$work/tuned.rss0") / 1024 )) MB | $(( $(cat "$work/tuned.rss1") / 1024 )) MB |"
    echo
    echo "Access log of the shipped container: $access_lines lines with status 200 written, ${dropped:-0} dropped."
    echo
    echo "Container with hello, guestbook, bank and bench deployed (SQLite, configuration as shipped):"
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
publish "$backend"
