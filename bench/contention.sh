#!/usr/bin/env bash
# What a reference count that every worker thread writes costs, against
# one kept in stripes (crabcat's StripedArc, which the request path takes
# its app's slot, instance share and quota permit through). One thread per
# core takes and drops references, with some work of its own between them.
# Prints nanoseconds per reference for each and the difference.
#
#   bench/contention.sh
#
# The figure grows with the number of cores: on two it is small.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p crabcat --example contention
