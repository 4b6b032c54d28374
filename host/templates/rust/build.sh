#!/usr/bin/env bash
# Builds this plugin into ../{{name}}.wasm (the host's plugin directory), written under a
# temporary name and renamed into place so a running host never reads it half-written.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
# A CARGO_TARGET_DIR shared by several plugins builds their common dependencies once.
cargo build --quiet --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/{{crate}}.wasm" ../.{{name}}.wasm.tmp
mv -f ../.{{name}}.wasm.tmp ../{{name}}.wasm
echo "built ../{{name}}.wasm"
