#!/usr/bin/env bash
# Builds this plugin into ../{{name}}.wasm (the host's plugin directory), written under a
# temporary name and renamed into place. Needs componentize-py 0.25.1
# (`pip install componentize-py==0.25.1`); set COMPONENTIZE_PY to use one that is not on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
{{toolchains}}
need "${COMPONENTIZE_PY:-componentize-py}" \
  "run scripts/install-toolchains.sh quick in the callback-host clone, or pip install componentize-py==0.25.1"
"${COMPONENTIZE_PY:-componentize-py}" -d wit -w {{world}} componentize app -o ../.{{name}}.wasm.tmp
mv -f ../.{{name}}.wasm.tmp ../{{name}}.wasm
echo "built ../{{name}}.wasm"
