#!/usr/bin/env bash
# The README's run command: builds what is needed and serves the example plugins on
# 127.0.0.1:10006 (OpenIM's default webhook url) as soon as the host is built:
#   - the host's release build runs in the foreground, at full priority: it is the longest step;
#   - meanwhile, at low priority, the prebuilt toolchains install (in parallel) and the Rust,
#     JavaScript and Python plugins build; then the toolchains cargo builds from source
#     (wit-bindgen-cli, wasm-tools) and the C and Go plugins. Each plugin is published into
#     plugins/ with a rename as it is done, and the running host's hot reload loads it
#     (target/run-plugins.log says how the builds went).
# Extra arguments go to `callback-host serve` (e.g. --listen 127.0.0.1:10016).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p target plugins

( nice -n 10 bash scripts/build-plugins.sh --quick && nice -n 10 bash scripts/build-plugins.sh ) \
  > target/run-plugins.log 2>&1 \
  && echo "run.sh: every example plugin is built" >&2 \
  || echo "run.sh: a plugin build failed, see target/run-plugins.log" >&2 &
cargo build --release --locked -p callback-host
exec target/release/callback-host serve --config callback-host.toml "$@"
