#!/usr/bin/env bash
# Runs the real host at saturation for MINUTES (default 10) with good plugins, a hostile one and
# hot reloads (see bench/src/soak.rs); prints failures, memory, file descriptors and p99 per
# minute. `scripts/soak.sh 10 --write-readme docs/production.md` also puts the result there.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-10}"
shift || true
bash scripts/build-plugins.sh
cargo build --quiet --release --target wasm32-wasip2 --manifest-path tests/fixtures/Cargo.toml \
    --target-dir target/wasm
cargo build --quiet --release -p callback-host -p callback-bench
target/release/callback-bench soak --minutes "$minutes" "$@"
