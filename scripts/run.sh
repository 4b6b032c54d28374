#!/usr/bin/env bash
# The README's run command: builds what is needed and serves the example plugins on
# 127.0.0.1:10006 (OpenIM's default webhook url), listening as soon as the host is built:
#   1. the host's release build (the longest step) starts at once; beside it, the prebuilt
#      plugin toolchains install (downloads, in parallel);
#   2. the server starts; the example plugins build in the background, Rust, JavaScript and
#      Python first, then C and Go (whose wit-bindgen-cli and wasm-tools cargo builds from
#      source), each published into plugins/ with a rename, and the running host's hot reload
#      loads each as it lands. target/run-plugins.log says how the builds went.
# Extra arguments go to `callback-host serve` (e.g. --listen 127.0.0.1:10016).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
mkdir -p target plugins

cargo build --release --locked -p callback-host &
host=$!
if ! bash scripts/install-toolchains.sh quick > target/run-plugins.log 2>&1; then
  echo "run.sh: installing the plugin toolchains failed, see target/run-plugins.log" >&2
fi
wait "$host"

( bash scripts/build-plugins.sh --quick && bash scripts/build-plugins.sh ) >> target/run-plugins.log 2>&1 \
  && echo "run.sh: every example plugin is built and loaded" >&2 \
  || echo "run.sh: a plugin build failed, see target/run-plugins.log" >&2 &
exec target/release/callback-host serve --config callback-host.toml "$@"
