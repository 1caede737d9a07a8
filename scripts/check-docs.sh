#!/usr/bin/env bash
# Builds the book (docs/, mdBook) into target/book/ and checks every
# relative link and #anchor of README.md, CHANGELOG.md and docs/src/*.md.
# Installs the pinned mdBook with `cargo install` if `mdbook` is missing
# (a few minutes, once: it stays in ~/.cargo/bin). External links are not
# fetched.
set -euo pipefail
cd "$(dirname "$0")/.."

mdbook_version=0.4.52
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"

if ! command -v mdbook >/dev/null || [ "$(mdbook --version)" != "mdbook v$mdbook_version" ]; then
    echo "==> installing mdbook $mdbook_version (cargo install)"
    # Without the `serve` and `watch` features: `mdbook build` needs neither.
    cargo install mdbook --locked --version "$mdbook_version" --no-default-features --features search
fi

echo "==> mdbook build docs (into target/book)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# mdBook logs problems (a missing chapter, a bad include) as errors or
# warnings without always failing: treat both as failures.
if ! mdbook build docs 2>&1 | tee "$out"; then
    exit 1
fi
if grep -E '\[(ERROR|WARN)\]' "$out" >/dev/null; then
    echo "mdbook reported problems (above)" >&2
    exit 1
fi
[ -f target/book/index.html ] || { echo "mdbook wrote no target/book/index.html" >&2; exit 1; }

echo "==> links"
python3 scripts/check_links.py
