#!/usr/bin/env bash
# Updates docs/console.png, the README's picture of the console: runs the test that drives the
# console in Chromium and copies its screenshot. The test run alone never writes into docs/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
UPDATE_CONSOLE_SCREENSHOT=1 cargo test -p callback-host --test suite -- --exact \
  console::the_console_in_a_real_browser_shows_a_dropped_plugin_and_who_refused_a_callback
echo "updated docs/console.png"
