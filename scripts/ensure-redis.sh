#!/usr/bin/env bash
# Make sure redis-server and redis-cli exist (the Cluster tests run `redis-cli --cluster`; the
# Sentinel tests run `redis-server --sentinel`): install Debian's package when root, else say what to do.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "redis-server not found: installing Debian's redis-server package..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && exit 0
fi
echo "redis-server and redis-cli are required. Install it (Debian/Ubuntu: sudo apt-get install redis-server) and retry." >&2
exit 1
