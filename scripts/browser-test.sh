#!/usr/bin/env bash
# The chat and guestbook sample apps and the operations console in a real
# browser: starts the container with chat, guestbook and hello deployed,
# the probe fixture (its /panic gives the console's charts errors) and the
# probe fixture again as "evil" (its init fails with an error made of
# HTML), on free ports with a temporary deploy and data directory, and
# ChromeDriver; then runs tests/browser/chat_test.py, which drives two
# headless Chromium windows through the W3C WebDriver API,
# tests/browser/guestbook_test.py (sessions, CSRF, a static stylesheet),
# and tests/browser/console_test.py, which drives the console at /console
# on the admin listener (and uploads the versioned-a fixture through its
# file picker). Screenshots go to target/browser/. Installs Debian's
# chromium and chromium-driver if
# they are missing. Stops everything it started, and fails on any error.
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
    echo "==> installing chromium and chromium-driver"
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver
fi

echo "==> building crabcat, chat, guestbook, hello and the probe and versioned-a fixtures"
cargo build -p crabcat -p chat -p guestbook -p hello -p probe -p versioned-a
target=${CARGO_TARGET_DIR:-target}
crabcat=$(cd "$target/debug" && pwd)/crabcat
screenshots="$target/browser"
mkdir -p "$screenshots"
rm -f "$screenshots"/*.png

work=$(mktemp -d "${TMPDIR:-/tmp}/crabcat-browser.XXXXXX")
pids=()
cleanup() {
    local status=$?
    for pid in "${pids[@]}"; do
        # ChromeDriver runs in a process group of its own, with its browsers.
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    done
    # Browsers that outlived ChromeDriver: only ours, by their profile directory.
    for pid in $(pgrep -f -- "--user-data-dir=$work/" || true); do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ $status -ne 0 && -f $work/crabcat.log ]]; then
        echo "--- the container's log (last 40 lines) ---" >&2
        tail -n 40 "$work/crabcat.log" >&2
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT

# Waits up to 30 s until FILE has a line matching PATTERN; prints the line.
wait_for_line() {
    local file=$1 pattern=$2 line
    for _ in $(seq 300); do
        line=$(grep -m 1 -E "$pattern" "$file" 2>/dev/null || true)
        if [[ -n $line ]]; then echo "$line"; return 0; fi
        sleep 0.1
    done
    echo "timed out waiting for /$pattern/ in $file" >&2
    return 1
}

echo "==> starting the container (chat, guestbook, hello, probe and evil deployed) in $work"
mkdir -p "$work/deploy" "$work/data" "$work/profiles"
cp "$target/debug/libchat.so" "$work/deploy/chat.so"
cp "$target/debug/libguestbook.so" "$work/deploy/guestbook.so"
cp "$target/debug/libhello.so" "$work/deploy/hello.so"
cp "$target/debug/libprobe.so" "$work/deploy/probe.so"
cp "$target/debug/libprobe.so" "$work/deploy/evil.so"
guestbook_static=$(pwd)/apps/guestbook/static
admin_token="browser-test-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
(
    cd "$work"
    exec env RUST_LOG=info CRABCAT_ADMIN_TOKEN="$admin_token" \
        CRABCAT__DATASOURCES__DEFAULT__URL="sqlite://$work/data/chat.db" \
        CRABCAT__APPS__GUESTBOOK__STATIC_DIR="$guestbook_static" \
        CRABCAT__APPS__EVIL__CONFIG__INIT=error \
        CRABCAT__APPS__EVIL__CONFIG__ERROR='<img src=x onerror=alert(1)>' \
        setsid "$crabcat" serve --listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 \
        --deploy-dir "$work/deploy" >"$work/crabcat.log" 2>&1
) &
pids+=("$!")
listen=$(wait_for_line "$work/crabcat.log" "INFO crabcat: listening addr=")
admin=$(wait_for_line "$work/crabcat.log" "admin API listening addr=")
# The address is the first field after addr= (the line goes on: scheme=...).
listen=${listen##*addr=}
admin=${admin##*addr=}
base_url="http://${listen%% *}"
admin_url="http://${admin%% *}"
wait_for_line "$work/crabcat.log" 'deployed app="chat"' >/dev/null
wait_for_line "$work/crabcat.log" 'deployed app="guestbook"' >/dev/null
curl -fsS -o /dev/null "$base_url/chat/"
echo "    container at $base_url, admin API at $admin_url"

echo "==> starting ChromeDriver"
driver_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid /usr/bin/chromedriver --port="$driver_port" --log-path="$work/chromedriver.log" >/dev/null 2>&1 &
pids+=("$!")
for _ in $(seq 100); do
    curl -fsS "http://127.0.0.1:$driver_port/status" 2>/dev/null | grep -q '"ready": *true' && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$driver_port/status" | grep -q '"ready": *true' ||
    { echo "ChromeDriver did not start" >&2; cat "$work/chromedriver.log" >&2; exit 1; }
echo "    ChromeDriver $(/usr/bin/chromedriver --version | cut -d' ' -f2) on port $driver_port, $(/usr/bin/chromium --version 2>/dev/null)"

echo "==> tests/browser/chat_test.py"
python3 tests/browser/chat_test.py --base-url "$base_url" --admin-url "$admin_url" --admin-token "$admin_token" \
    --webdriver "http://127.0.0.1:$driver_port" --screenshots "$screenshots" --profiles "$work/profiles"
echo "==> tests/browser/guestbook_test.py"
python3 tests/browser/guestbook_test.py --base-url "$base_url" --admin-url "$admin_url" --admin-token "$admin_token" \
    --webdriver "http://127.0.0.1:$driver_port" --screenshots "$screenshots" --profiles "$work/profiles"
echo "==> the chat and guestbook apps work in a real browser"

echo "==> tests/browser/console_test.py"
wait_for_line "$work/crabcat.log" 'app="evil"' >/dev/null
python3 tests/browser/console_test.py --base-url "$base_url" --admin-url "$admin_url" --admin-token "$admin_token" \
    --module "$target/debug/libversioned_a.so" \
    --webdriver "http://127.0.0.1:$driver_port" --screenshots "$screenshots" --profiles "$work/profiles"
echo "==> the console works in a real browser; screenshots in $screenshots/"
