#!/usr/bin/env bash
# Builds every example plugin from source into plugins/*.wasm (the drop directory the host loads).
# Installs the wasm32-wasip2 Rust target if it is missing. Safe to run again: cargo only rebuilds
# what changed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "installing the wasm32-wasip2 target" >&2
  rustup target add wasm32-wasip2
fi

out="$root/target/wasm/wasm32-wasip2/release"
cargo build --quiet --manifest-path plugins/Cargo.toml --target wasm32-wasip2 --release \
  --target-dir "$root/target/wasm"

# The file name sets the order plugins run in: the guard decides before the audit logs.
install_plugin() { # <built name> <plugin file name>
  # Write beside the target, then rename: the host never sees a half-written file.
  cp "$out/$1.wasm" "plugins/.$2.tmp"
  mv -f "plugins/.$2.tmp" "plugins/$2"
  echo "built plugins/$2" >&2
}
install_plugin guard 10-guard.wasm
install_plugin audit 20-audit.wasm
