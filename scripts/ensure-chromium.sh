#!/usr/bin/env bash
# Make sure Debian's chromium exists for the browser tests (tests/browser): install it when root,
# else say what to do. The tests drive it with the pinned `playwright` package; playwright's own
# browser download is never used. Without Chromium those tests skip and say why.
set -euo pipefail
CHROMIUM=${AICACHE_CHROMIUM:-/usr/bin/chromium}
if [ -x "$CHROMIUM" ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found: installing Debian's chromium package (browser tests)..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  [ -x "$CHROMIUM" ] && exit 0
fi
echo "chromium not found at $CHROMIUM: the browser tests will skip (Debian: sudo apt-get install chromium)." >&2
exit 0
