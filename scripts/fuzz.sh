#!/usr/bin/env bash
# Fuzzes everything an untrusted party controls (request bodies of every command, typed and JSON
# plugin answers, the config file, webhooks.yml) for SECONDS per target (default 600), in release
# mode. A failing input is saved under target/fuzz-failures/ with the seed that replays it
# (FUZZ_SEED=<seed> scripts/fuzz.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-600}"
FUZZ_SECONDS="$seconds" cargo test --release -p callback-host --test suite -- fuzz:: --nocapture --test-threads 1 2>&1 |
    grep -oE 'fuzz [a-z_]+: .*|panicked.*|.*FUZZ_SEED.*|test result.*'
