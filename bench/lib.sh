# Shared by bench/run.sh, bench/ws.sh, bench/static.sh and bench/callgrind.sh; sourced from the
# repository root.

# need TOOL...: installs each tool that is missing, from Debian's packages.
need() {
    for tool; do
        command -v "$tool" >/dev/null && continue
        echo "==> installing $tool"
        apt-get update -qq && apt-get install -y -qq "$tool" >/dev/null
    done
}

# scratch: makes the work directory $work and an empty list $pids; on
# exit, kills every process in $pids and removes $work (kept, and named,
# when BENCH_KEEP is set).
scratch() {
    work=$(mktemp -d)
    pids=()
    trap scratch_cleanup EXIT
}

scratch_cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    [ -n "${BENCH_KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"
}

# wait_for URL SECONDS: until URL answers 200.
wait_for() {
    for _ in $(seq $(($2 * 20))); do curl -sf -o /dev/null "$1" && return 0; sleep 0.05; done
    echo "no answer from $1" >&2
    return 1
}

# databases DIR PREFIX: sets backend, native_url and module_url: SQLite
# files in DIR, or, when CRABCAT_BENCH_POSTGRES_URL is set, the databases
# PREFIX_native and PREFIX_module on that server, dropped and created anew.
databases() {
    backend=sqlite
    native_url="sqlite://$1/native.db"
    module_url="sqlite://$1/module.db"
    [ -n "${CRABCAT_BENCH_POSTGRES_URL:-}" ] || return 0
    backend=postgres
    local server=${CRABCAT_BENCH_POSTGRES_URL%/*} db
    for db in "$2_native" "$2_module"; do
        psql -q "$CRABCAT_BENCH_POSTGRES_URL" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
    done
    native_url="$server/$2_native"
    module_url="$server/$2_module"
}

# publish NAME: copies $work/table.md to $BENCH_RESULTS_DIR (bench/results)
# as <date>-NAME.md and prints it.
publish() {
    local dir=${BENCH_RESULTS_DIR:-bench/results}
    mkdir -p "$dir"
    local out="$dir/$(date -u +%Y%m%d-%H%M)-$1.md"
    cp "$work/table.md" "$out"
    echo
    cat "$out"
    echo
    echo "written to $out"
}
