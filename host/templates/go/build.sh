#!/usr/bin/env bash
# Builds this plugin into ../{{name}}.wasm (the host's plugin directory), written under a
# temporary name and renamed into place. Needs Go 1.25 or later (set GO to use a go that is not on
# PATH), wit-bindgen-cli 0.61.1 and wasm-tools 1.243.0 (cargo install --locked ...), and
# preferably Wizer 10.0.0 (see below).
# wasi_snapshot_preview1.reactor.wasm is the WASI adapter of the host's wasmtime release: it
# turns Go's wasip1 module into a component.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
{{toolchains}}
need "${GO:-go}" "run scripts/install-toolchains.sh quick in the callback-host clone (Go 1.25 or later)"
need wit-bindgen "cargo install --locked wit-bindgen-cli@0.61.1 (scripts/install-toolchains.sh slow)"
need wasm-tools "cargo install --locked wasm-tools@1.243.0 (scripts/install-toolchains.sh slow)"
rm -rf build && mkdir -p build
wit-bindgen go wit --world {{world}} --format=false --out-dir build >build/bindgen.log 2>&1 \
  || { cat build/bindgen.log >&2; exit 1; }
# This project's go.mod over the generated one, the package you write, and the helpers.
sed 's#=> ./go-wit#=> ../go-wit#' go.mod > build/go.mod
cp -r export_openim_callback_{{module}} openim_helpers build/
(cd build && GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
  "${GO:-go}" build -buildmode=c-shared -o core.wasm .)
# Pre-initialized with Wizer when there is one (set WIZER to use one that is not on PATH): Go's
# runtime starts once, here, and each fresh instance begins from that snapshot.
if command -v "${WIZER:-wizer}" >/dev/null; then
  "${WIZER:-wizer}" --allow-wasi --init-func _initialize -o build/core.init.wasm build/core.wasm
else
  echo "no wizer (npm install -g @bytecodealliance/wizer@10.0.0, or set WIZER): each fresh" \
    "instance will start Go's runtime again (slower, same behaviour)" >&2
  cp build/core.wasm build/core.init.wasm
fi
wasm-tools component embed wit --world {{world}} build/core.init.wasm -o build/embedded.wasm
wasm-tools component new build/embedded.wasm \
  --adapt wasi_snapshot_preview1=wasi_snapshot_preview1.reactor.wasm -o ../.{{name}}.wasm.tmp
mv -f ../.{{name}}.wasm.tmp ../{{name}}.wasm
echo "built ../{{name}}.wasm"
