#!/usr/bin/env bash
# Builds this plugin into ../{{name}}.wasm (the host's plugin directory), written under a
# temporary name and renamed into place. Needs Go 1.25 or later (set GO to use a go that is not on
# PATH), wit-bindgen-cli 0.61.1 and wasm-tools 1.243.0 (cargo install --locked ...).
# wasi_snapshot_preview1.reactor.wasm is the WASI adapter of the host's wasmtime release: it
# turns Go's wasip1 module into a component.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
rm -rf build && mkdir -p build
wit-bindgen go wit --world {{world}} --format=false --out-dir build >build/bindgen.log 2>&1 \
  || { cat build/bindgen.log >&2; exit 1; }
# This project's go.mod over the generated one, and the package you write.
sed 's#=> ./go-wit#=> ../go-wit#' go.mod > build/go.mod
cp -r export_openim_callback_{{module}} build/
(cd build && GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
  "${GO:-go}" build -buildmode=c-shared -o core.wasm .)
wasm-tools component embed wit --world {{world}} build/core.wasm -o build/embedded.wasm
wasm-tools component new build/embedded.wasm \
  --adapt wasi_snapshot_preview1=wasi_snapshot_preview1.reactor.wasm -o ../.{{name}}.wasm.tmp
mv -f ../.{{name}}.wasm.tmp ../{{name}}.wasm
echo "built ../{{name}}.wasm"
