#!/usr/bin/env bash
# Runs every test: builds the container, the sample apps and the fixture
# modules once, then runs the whole suite against them.
#
# Needs only the Rust toolchain. The PostgreSQL tests run
# when CRABCAT_TEST_POSTGRES_URL is set (e.g. postgres://postgres@127.0.0.1:5432/test),
# the MySQL/MariaDB tests when CRABCAT_TEST_MYSQL_URL is set (e.g.
# mysql://root@127.0.0.1:3306/test); each creates and drops a database of its
# own, and fails (never skips) when its variable is set but the server is
# unreachable.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> building the container, the sample apps and the test fixtures"
cargo build --workspace --locked
echo "==> building the panic = \"abort\" fixture (its own workspace)"
cargo build --manifest-path tests/fixtures/abort-app/Cargo.toml --target-dir "${CARGO_TARGET_DIR:-target}/abort-fixture"
echo "==> running the tests"
cargo test --workspace --locked "$@"
