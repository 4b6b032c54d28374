#!/usr/bin/env bash
# Builds this plugin into ../{{name}}.wasm (the host's plugin directory), written under a
# temporary name and renamed into place. Needs Node.js and npm.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
{{toolchains}}
need npm "install Node.js 20 or later with npm (apt-get install nodejs npm)"
[ -x node_modules/.bin/componentize-js ] || npm install --no-audit --no-fund --loglevel=error
# The host grants no HTTP: build without the wasi:http features.
./node_modules/.bin/componentize-js --wit wit --world-name {{world}} --disable http fetch-event \
  --out ../.{{name}}.wasm.tmp plugin.js
mv -f ../.{{name}}.wasm.tmp ../{{name}}.wasm
echo "built ../{{name}}.wasm"
