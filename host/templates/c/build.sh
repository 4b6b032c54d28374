#!/usr/bin/env bash
# Builds this plugin into ../{{name}}.wasm (the host's plugin directory), written under a
# temporary name and renamed into place. Needs clang-14, lld-14, wasi-libc and
# libclang-rt-14-dev-wasm32 (Debian), wit-bindgen-cli 0.61.1 and wasm-tools 1.243.0 (cargo install).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
{{toolchains}}
need clang-14 "apt-get install clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32"
need wit-bindgen "cargo install --locked wit-bindgen-cli@0.61.1 (scripts/install-toolchains.sh slow)"
need wasm-tools "cargo install --locked wasm-tools@1.243.0 (scripts/install-toolchains.sh slow)"
mkdir -p build
wit-bindgen c wit --world {{world}} --out-dir build >/dev/null 2>&1
clang-14 --target=wasm32-wasi -O2 -Wall -I build -I . -c plugin.c -o build/plugin.o
clang-14 --target=wasm32-wasi -O2 -c build/{{world_snake}}.c -o build/bindings.o
clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,--no-entry \
  build/plugin.o build/bindings.o build/{{world_snake}}_component_type.o -o build/core.wasm
wasm-tools component new build/core.wasm -o ../.{{name}}.wasm.tmp
mv -f ../.{{name}}.wasm.tmp ../{{name}}.wasm
echo "built ../{{name}}.wasm"
