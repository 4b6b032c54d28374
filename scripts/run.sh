#!/usr/bin/env bash
# The README's run command: builds what is needed and serves the example plugins on
# 127.0.0.1:10006 (OpenIM's default webhook url), as soon as the host and the plugins whose
# toolchains install quickly are ready:
#   1. the host's release build starts at once, in the background;
#   2. meanwhile the prebuilt toolchains install (in parallel) and the Rust, JavaScript and
#      Python plugins build;
#   3. the server starts; the C guard's toolchains (built from source by cargo) and the C guard
#      follow in the background, and hot reload loads it when it lands in plugins/
#      (target/run-c-plugin.log says how it went).
# Extra arguments go to `callback-host serve` (e.g. --listen 127.0.0.1:10016).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p target

cargo build --release --locked -p callback-host &
host=$!
bash scripts/build-plugins.sh --no-c
wait "$host"

( bash scripts/build-plugins.sh > target/run-c-plugin.log 2>&1 \
    && echo "run.sh: the C guard is built; hot reload loads it" >&2 \
    || echo "run.sh: building the C guard failed, see target/run-c-plugin.log" >&2 ) &
exec target/release/callback-host serve --config callback-host.toml "$@"
