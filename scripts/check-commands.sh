#!/usr/bin/env bash
# Runs every shell command of README.md and the book (docs/src/*.md) and
# compares its output with the output the document shows, so the docs
# cannot drift from the program. Run by .ci/run; prints how many blocks it
# ran and skipped, and every skipped block with its reason. The work is
# done by scripts/check_commands.py; this script builds what the commands
# use first (in release mode, as scripts/run.sh does).
#
#     scripts/check-commands.sh [--keep] [DOC.md ...]   # default: README.md, then the book in SUMMARY order
#
# Conventions for the documents
#
# * Which blocks run: fenced blocks whose info string starts with `sh`,
#   `bash`, `shell` or `console`. In `console` blocks, lines starting with
#   `$ ` are commands and the lines below one, up to the next `$ `, are its
#   output. In `sh` blocks every line is a command, and `# ` lines right
#   below a command (no blank line between) are its output; a comment
#   after a blank line is only a comment. A trailing `\` continues a
#   command on the next line, in both.
# * Where they run: each document in one bash session (so `cd` and
#   `export` carry over from block to block), starting at the root of a
#   scratch copy of the clone (the files git tracks or would add), whose
#   `target/` is the real target directory (so write paths in target/ as
#   commands print them, e.g. `crabcat deploy "$(crabcat package)"`). Documents run in order in the
#   same copy, so a chapter may build on an earlier one (Deploying builds
#   the `notes` app of Writing an app). HOME is a fresh directory per
#   document, CARGO_TARGET_DIR the real target directory (so `cargo` reuses
#   what is built), PATH starts with target/release (the chapters call
#   `crabcat` by name), and a command that fails (non-zero exit) fails the
#   check: show an expected failure as `cmd; echo "exit $?"`.
# * The container: before a document's first block, a container is
#   started for it in the copy, as `scripts/run.sh` starts one (release
#   build, every app of apps/ in deploy/, fresh data/, the guestbook's
#   static directory), on free ports: `127.0.0.1:8080`/`localhost:8080` and
#   `:8081` in commands and shown output are rewritten to its ports, and
#   CRABCAT_ADMIN_URL points the admin commands at it. A comment anywhere in
#   the document changes that setup:
#       <!-- check-commands: apps=hello,tour token=T fixtures=versioned-a,bad-abi container=no -->
#   `apps=` the apps deployed at start (empty: none; `old:bad-abi` deploys
#   the bad-abi fixture as old.so), `token=` the admin
#   token it is configured with, `fixtures=` test fixture libraries copied
#   into the starting directory as lib<name>.so, `container=no` none.
# * Output: each shown line must appear in the output, in that order
#   (other lines may come between). Runs of spaces match any spaces, `…`
#   matches anything, and values that change from run to run match any
#   value of their kind: the container's scratch paths (/tmp/crabcat-PID/…),
#   dates and timestamps, hexadecimal hashes,
#   decimals and versions, and numbers of four digits or more. Small counts are compared exactly. An
#   output that is one JSON document may be shown pretty-printed (indented
#   by two spaces).
# * Markers, an HTML comment on the line right before the fence (invisible
#   in the rendered page, explicit in the source):
#       <!-- no-run: REASON -->            the block is not run (counted
#                                          and listed as skipped, with REASON)
#       <!-- no-output-check: REASON -->   run, but the output not compared
#       <!-- file: PATH -->                the block's text is written to PATH
#                                          (relative to the session's current
#                                          directory), as the reader is told to
#   Use no-run only for what CI cannot do: a command that runs in the
#   foreground until Ctrl-C (scripts/run.sh), the whole test suite or the
#   benchmarks (.ci/run runs those itself), `sudo`, a real port 80, another
#   host. Say why in REASON.
# * Documents left out: SUMMARY.md, the book's table of contents (see
#   EXCLUDED in scripts/check_commands.py).
set -euo pipefail
cd "$(dirname "$0")/.."

apps=()
for manifest in apps/*/Cargo.toml; do
    apps+=("$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n 1)")
done
packages=(-p crabcat -p versioned-a -p versioned-b -p bad-abi)
for app in "${apps[@]}"; do packages+=(-p "$app"); done
echo "==> building crabcat, ${apps[*]} and the fixtures the docs use (release)"
cargo build --release --locked "${packages[@]}"

echo "==> running the commands of README.md and docs/src/*.md"
exec python3 scripts/check_commands.py "$@"
