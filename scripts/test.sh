#!/usr/bin/env bash
# The README's test command: every test of the workspace, then two closing lines: the total
# passed and failed, and how many tests could not run here and why (a tool or permission this
# machine lacks). Under CI=true a test that cannot run fails instead (CI installs everything).
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test suite image`: the integration
# tests are one binary, `suite`, whose modules are named by the filter).
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

mkdir -p target
export CALLBACK_HOST_TEST_SKIPS="$PWD/target/test-skips.log"
: >"$CALLBACK_HOST_TEST_SKIPS"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT

cargo test --workspace --no-fail-fast "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
skipped=$(wc -l <"$CALLBACK_HOST_TEST_SKIPS")
if [[ "$skipped" -eq 0 ]]; then
  echo "0 skipped"
else
  echo "$skipped skipped: what could not run here, and why:"
  sed 's/^SKIPPED: /  /' "$CALLBACK_HOST_TEST_SKIPS"
fi
exit "$status"
