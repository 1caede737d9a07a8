#!/usr/bin/env bash
# A cluster on one machine: N crabcat nodes on loopback ports sharing one
# PostgreSQL (deployments, sessions, the hub, the apps' data), and nginx
# (Debian's package, installed if missing) in front of them.
#
#   scripts/cluster.sh [N]      start N nodes (default 3) and nginx, deploy the
#                               sample apps through node 1, and wait; Ctrl-C
#                               stops everything it started
#   scripts/cluster.sh up [N]   the same, left running in the background
#   scripts/cluster.sh down     stop everything `up` started
#   scripts/cluster.sh node K   start node K again (after it was stopped or killed)
#   scripts/cluster.sh status   which processes run, and what every node runs
#
# Environment:
#   CLUSTER_DATABASE_URL  the PostgreSQL of the cluster
#                         [postgres://postgres@127.0.0.1:5432/test]
#   CLUSTER_PORT          nginx's port [8080]
#   CLUSTER_BASE_PORT     node K serves HTTP on BASE+K and its admin API on
#                         BASE+100+K [9080]
#   CLUSTER_DIR           the nodes' and nginx's files and logs [target/cluster]
#   CLUSTER_PROFILE       the cargo profile to build and run [release]
#   CLUSTER_BUILD         0: do not build (use what CRABCAT_BIN's directory holds)
#   CRABCAT_BIN           the container binary [target/$CLUSTER_PROFILE/crabcat]
#   CLUSTER_APPS          the sample apps `up` deploys ["hello chat guestbook"]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

database=${CLUSTER_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/test}
port=${CLUSTER_PORT:-8080}
base=${CLUSTER_BASE_PORT:-9080}
dir=${CLUSTER_DIR:-target/cluster}
profile=${CLUSTER_PROFILE:-release}
bin=${CRABCAT_BIN:-target/$profile/crabcat}
apps=${CLUSTER_APPS-hello chat guestbook}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
case "$bin" in /*) ;; *) bin=$root/$bin ;; esac

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_for URL SECONDS: until URL answers at all.
wait_for() {
    for _ in $(seq $((${2} * 10))); do
        curl -s -o /dev/null "$1" && return 0
        sleep 0.1
    done
    return 1
}

token() {
    [ -s "$dir/admin.token" ] || (umask 077 && head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"$dir/admin.token")
    cat "$dir/admin.token"
}

# start_node K: writes node K's configuration and starts it.
start_node() {
    local k=$1 node=$dir/node-$1
    if alive "$node/pid"; then echo "node $k is running (pid $(cat "$node/pid"))" >&2; return 1; fi
    mkdir -p "$node/deploy"
    cat >"$node/crabcat.toml" <<EOF
# Node $k of the cluster (written by scripts/cluster.sh).
[server]
listen = "127.0.0.1:$((base + k))"
# nginx is in front: its X-Forwarded-Proto is believed.
trusted_proxies = ["127.0.0.1"]

[admin]
listen = "127.0.0.1:$((base + 100 + k))"
# The token is the cluster's (CRABCAT_ADMIN_TOKEN, from $dir/admin.token).
token_file = "$node/admin.token"

[deploy]
dir = "$node/deploy"

[datasources.default]
url = "$database"

[cluster]
datasource = "default"
node = "node-$k"

[sessions]
datasource = "default"

[apps.guestbook]
static_dir = "$root/apps/guestbook/static"
EOF
    echo "==> node $k: http://127.0.0.1:$((base + k)), admin http://127.0.0.1:$((base + 100 + k)), log $node/crabcat.log"
    CRABCAT_ADMIN_TOKEN=$(token) setsid "$bin" serve --config "$node/crabcat.toml" >>"$node/crabcat.log" 2>&1 </dev/null &
    echo $! >"$node/pid"
    wait_for "http://127.0.0.1:$((base + 100 + k))/health" 30 ||
        { echo "node $k did not start; its log:" >&2; tail -n 30 "$node/crabcat.log" >&2; return 1; }
}

start_nginx() {
    local n=$1 servers="" k
    command -v nginx >/dev/null || { echo "==> installing nginx"; apt-get update -qq && apt-get install -y -qq nginx >/dev/null; }
    for k in $(seq "$n"); do
        # Passive health checks: after a failure the node rests 2 s.
        servers+="        server 127.0.0.1:$((base + k)) max_fails=1 fail_timeout=2s;"$'\n'
    done
    mkdir -p "$dir/nginx"
    cat >"$dir/nginx.conf" <<EOF
# nginx in front of the cluster (written by scripts/cluster.sh).
daemon off;
worker_processes 1;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
$([ "$(id -u)" = 0 ] && echo "user root;")
events { worker_connections 4096; }
http {
    access_log $dir/nginx/access.log;
    client_body_temp_path $dir/nginx/body;
    proxy_temp_path $dir/nginx/proxy;
    fastcgi_temp_path $dir/nginx/fastcgi;
    uwsgi_temp_path $dir/nginx/uwsgi;
    scgi_temp_path $dir/nginx/scgi;

    upstream crabcat {
$servers        keepalive 64;
    }
    # A WebSocket handshake passes its Upgrade on; other requests keep the
    # upstream connection alive.
    map \$http_upgrade \$connection_upgrade {
        default upgrade;
        ''      '';
    }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://crabcat;
            proxy_http_version 1.1;
            proxy_set_header Host \$http_host;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto \$scheme;
            # A node that fails or drains: try the next one. nginx never
            # resends a POST (or any non-idempotent request) it has sent.
            proxy_next_upstream error timeout http_502 http_503;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 1s;
            # Streams and WebSockets live long; stream bodies as they come.
            proxy_read_timeout 1h;
            proxy_buffering off;
            client_max_body_size 0;
        }
    }
}
EOF
    setsid nginx -e "$dir/nginx/error.log" -p "$dir/nginx" -c "$dir/nginx.conf" </dev/null >>"$dir/nginx/stderr.log" 2>&1 &
    echo $! >"$dir/nginx/pid"
    wait_for "http://127.0.0.1:$port/" 10 || { echo "nginx did not start:" >&2; cat "$dir/nginx/error.log" >&2; return 1; }
    echo "==> nginx: http://127.0.0.1:$port/ in front of $n nodes"
}

deploy_apps() {
    local app lib
    for app in $apps; do
        lib=$(dirname "$bin")/lib${app//-/_}.so
        [ -f "$lib" ] || { echo "$lib is missing: build $app first" >&2; return 1; }
        CRABCAT_ADMIN_TOKEN=$(token) "$bin" deploy "$lib" --name "$app" --admin "http://127.0.0.1:$((base + 101))"
    done
}

down() {
    local pidfile pids=()
    for pidfile in "$dir"/node-*/pid "$dir/nginx/pid"; do
        alive "$pidfile" && pids+=("$(cat "$pidfile")")
    done
    [ ${#pids[@]} -eq 0 ] && { echo "==> nothing runs"; return 0; }
    echo "==> stopping ${#pids[@]} processes"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for _ in $(seq 100); do
        local left=0 pid
        for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && left=1; done
        [ $left = 0 ] && break
        sleep 0.1
    done
    kill -KILL "${pids[@]}" 2>/dev/null || true
    rm -f "$dir"/node-*/pid "$dir/nginx/pid"
}

up() {
    local n=${1:-3} k
    if [ "${CLUSTER_BUILD:-1}" != 0 ]; then
        local packages=(-p crabcat) app
        for app in $apps; do packages+=(-p "$app"); done
        echo "==> building crabcat and $apps ($profile)"
        cargo build --profile "$profile" "${packages[@]}"
    fi
    for k in $(seq "$n"); do start_node "$k"; done
    start_nginx "$n"
    [ -z "$apps" ] || deploy_apps
    echo "==> the cluster: http://127.0.0.1:$port/ (admin token in $dir/admin.token)"
    echo "    CRABCAT_ADMIN_TOKEN=\$(cat $dir/admin.token) $bin apps --cluster --admin http://127.0.0.1:$((base + 101))"
}

status() {
    local pidfile
    for pidfile in "$dir"/node-*/pid "$dir/nginx/pid"; do
        [ -f "$pidfile" ] || continue
        if alive "$pidfile"; then echo "$(dirname "$pidfile"): running (pid $(cat "$pidfile"))"; else echo "$(dirname "$pidfile"): stopped"; fi
    done
    CRABCAT_ADMIN_TOKEN=$(token) "$bin" apps --cluster --admin "http://127.0.0.1:$((base + 101))" || true
}

case "${1:-}" in
    up) up "${2:-3}" ;;
    down) down ;;
    node) start_node "${2:?which node?}" ;;
    status) status ;;
    "" | [0-9]*)
        trap down EXIT
        trap 'exit 130' INT TERM
        up "${1:-3}"
        echo "==> Ctrl-C stops the cluster"
        while sleep 3600; do :; done
        ;;
    *) sed -n '2,24p' "$0" >&2; exit 2 ;;
esac
