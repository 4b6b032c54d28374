#!/usr/bin/env bash
# Builds this plugin into ../{{name}}.wasm (the host's plugin directory), written under a
# temporary name and renamed into place so a running host never reads it half-written.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
{{toolchains}}
need cargo "install Rust with rustup (https://rustup.rs), then: rustup target add wasm32-wasip2"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "build.sh: the wasm32-wasip2 target is missing: rustup target add wasm32-wasip2" >&2
  exit 1
fi
# A CARGO_TARGET_DIR shared by several plugins builds their common dependencies once.
cargo build --quiet --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm" ../.{{name}}.wasm.tmp
mv -f ../.{{name}}.wasm.tmp ../{{name}}.wasm
echo "built ../{{name}}.wasm"
