#!/usr/bin/env bash
# Builds the container and every sample app in release mode, deploys the
# apps into deploy/, and runs the container in the foreground.
# Extra arguments go to `crabcat serve` (e.g. --listen 0.0.0.0:8080).
set -euo pipefail
cd "$(dirname "$0")/.."

apps=()
for manifest in apps/*/Cargo.toml; do
    apps+=("$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$manifest" | head -n 1)")
done

echo "==> building crabcat and ${apps[*]} (release)"
packages=(-p crabcat)
for app in "${apps[@]}"; do packages+=(-p "$app"); done
cargo build --release "${packages[@]}"

mkdir -p deploy
case "$(uname -s)" in
    Darwin) prefix=lib; ext=dylib ;;
    MINGW* | MSYS* | CYGWIN*) prefix=""; ext=dll ;;
    *) prefix=lib; ext=so ;;
esac
for app in "${apps[@]}"; do
    lib="target/release/${prefix}${app//-/_}.${ext}"
    # Write to a hidden name, then rename: the container never sees half a file.
    cp "$lib" "deploy/.${app}.${ext}.tmp"
    mv "deploy/.${app}.${ext}.tmp" "deploy/${app}.${ext}"
    echo "==> deployed ${app} -> deploy/${app}.${ext}"
done

# The guestbook's stylesheet is a static file of its own (a bundle would
# carry it; here the directory is configured).
export CRABCAT__APPS__GUESTBOOK__STATIC_DIR=${CRABCAT__APPS__GUESTBOOK__STATIC_DIR:-apps/guestbook/static}
exec target/release/crabcat serve "$@"
