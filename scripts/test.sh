#!/usr/bin/env bash
# Runs every test: builds the container, the sample apps and the fixture
# modules once, then runs the whole suite against them.
#
# Needs only the Rust toolchain. The PostgreSQL tests run
# when CRABCAT_TEST_POSTGRES_URL is set (e.g. postgres://postgres@127.0.0.1:5432/test);
# each creates and drops a database of its own.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building the container, the sample apps and the test fixtures"
cargo build --workspace --locked
echo "==> building the panic = \"abort\" fixture (its own workspace)"
cargo build --manifest-path tests/fixtures/abort-app/Cargo.toml --target-dir "${CARGO_TARGET_DIR:-target}/abort-fixture"
echo "==> running the tests"
cargo test --workspace --locked "$@"
