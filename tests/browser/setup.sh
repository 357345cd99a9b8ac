#!/bin/bash
# The test suite's headless browser: install Debian's chromium (root only; idempotent).
# Never fails the build: writes why chromium is unavailable to .chromium-unavailable at the repository
# root instead, and the browser tests then skip with that reason (tests/test_report_browser.py).
here="$(cd "$(dirname "$0")" && pwd)"
reason_file="$here/../../.chromium-unavailable"
rm -f "$reason_file"
fail() { echo "chromium unavailable: $1" | tee "$reason_file" >&2; exit 0; }
if command -v chromium >/dev/null; then
    echo "chromium: $(command -v chromium)"
    exit 0
fi
[ "$(id -u)" = 0 ] || fail "not root (installing Debian's chromium needs root: sudo bash tests/browser/setup.sh)"
command -v apt-get >/dev/null || fail "no apt-get to install chromium with"
log=$(mktemp)
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends chromium >"$log" 2>&1; then
    # the package lists may be missing or stale: refresh them once and retry
    { apt-get update && apt-get install -y --no-install-recommends chromium; } >"$log" 2>&1 ||
        fail "package install failed: $(tail -1 "$log")"
fi
rm -f "$log"
command -v chromium >/dev/null || fail "apt-get installed chromium but it is not on PATH"
echo "chromium: $(command -v chromium)"
