#!/usr/bin/env bash
# Measures what hot reloads cost: starts a release container with the hello
# app, reloads it N times (default 100) through the admin API, and prints
# the reload latency (median, p90, max) and the container's RSS before and
# after, with the images kept loaded and the bytes they map.
#
#   scripts/reload-memory.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100}
token=reload-memory-token-0123456789

# bench/run.sh has built everything already (and must not pick up edits
# made while it runs).
[ -n "${RELOAD_NO_BUILD:-}" ] || cargo build --release -q -p crabcat -p hello
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/deploy"
cp target/release/libhello.so "$work/deploy/hello.so"
CRABCAT_ADMIN_TOKEN=$token RUST_LOG=warn target/release/crabcat serve \
    --listen 127.0.0.1:0 --admin-listen 127.0.0.1:18981 --deploy-dir "$work/deploy" \
    2>"$work/log" &
pid=$!
admin=http://127.0.0.1:18981
for _ in $(seq 100); do curl -sf "$admin/health" >/dev/null && break; sleep 0.05; done

rss() { awk '/VmRSS/ {print $2}' "/proc/$pid/status"; }
rss_before=$(rss)
: >"$work/times"
for _ in $(seq "$n"); do
    curl -sf -o /dev/null -w '%{time_total}\n' -X POST -H "Authorization: Bearer $token" \
        "$admin/apps/hello/reload" >>"$work/times"
done
sleep 0.5 # let the last old instance drain and be destroyed
rss_after=$(rss)
app=$(curl -sf -H "Authorization: Bearer $token" "$admin/apps/hello")
images=$(sed -n 's/.*"images":\([0-9]*\).*/\1/p' <<<"$app")
image_bytes=$(sed -n 's/.*"image_bytes":\([0-9]*\).*/\1/p' <<<"$app")
sort -n "$work/times" -o "$work/times"
pick() { sed -n "$(( ($1 * n + 99) / 100 ))p" "$work/times"; }

printf 'reloads:                 %d\n' "$n"
printf 'reload latency (ms):     median %.1f  p90 %.1f  max %.1f\n' \
    "$(bc -l <<<"$(pick 50)*1000")" "$(bc -l <<<"$(pick 90)*1000")" "$(bc -l <<<"$(tail -n1 "$work/times")*1000")"
printf 'RSS before:              %d kB\n' "$rss_before"
printf 'RSS after:               %d kB\n' "$rss_after"
printf 'RSS per reload:          %d kB\n' "$(( (rss_after - rss_before) / n ))"
printf 'images kept loaded:      %s (mapping %d kB in all, %d kB each)\n' \
    "$images" "$(( image_bytes / 1024 ))" "$(( image_bytes / 1024 / images ))"
