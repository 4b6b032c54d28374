#!/usr/bin/env bash
# Installs, pinned, every toolchain the example plugins need, skipping what is already there:
#   Rust  wasm32-wasip2 target (rustup)
#   Python componentize-py 0.25.1 in a project-local venv (.tools/py)
#   JS    @bytecodealliance/componentize-js 0.23.0 (npm ci, from plugins/guard-js/package-lock.json)
#   C     clang-14, lld-14, wasi-libc (Debian), wit-bindgen-cli 0.61.1 and wasm-tools 1.243.0 (cargo)
#   Redis redis-server (Debian), which the key-value tests start on a free loopback port
#   HAProxy haproxy (Debian), the load balancer of the scaling-out test and benchmark
#   Tests openssl and curl (Debian): the TLS test makes a certificate and calls over HTTPS
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

COMPONENTIZE_PY=0.25.1
WIT_BINDGEN_CLI=0.61.1
WASM_TOOLS=1.243.0
APT_PACKAGES=(clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32 redis-server haproxy openssl curl)

say() { echo "install-toolchains: $*" >&2; }

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  say "rustup target add wasm32-wasip2"
  rustup target add wasm32-wasip2
fi

if ! .tools/py/bin/componentize-py --version 2>/dev/null | grep -qx "componentize-py $COMPONENTIZE_PY"; then
  say "componentize-py $COMPONENTIZE_PY into .tools/py"
  python3 -m venv .tools/py
  .tools/py/bin/pip install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
fi

if [ ! -x plugins/guard-js/node_modules/.bin/componentize-js ]; then
  say "npm ci in plugins/guard-js"
  (cd plugins/guard-js && npm ci --no-audit --no-fund --loglevel=error)
fi

missing=()
for package in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "apt-get install ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    say "not root: run 'sudo apt-get install ${missing[*]}' first"
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

cargo_tool() { # <binary> <crate> <version>
  if ! "$1" --version 2>/dev/null | grep -q " $3"; then
    say "cargo install $2@$3"
    cargo install --quiet --locked "$2@$3"
  fi
}
cargo_tool wit-bindgen wit-bindgen-cli "$WIT_BINDGEN_CLI"
cargo_tool wasm-tools wasm-tools "$WASM_TOOLS"
