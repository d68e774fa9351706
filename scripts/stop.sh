#!/usr/bin/env bash
# `make stop`: stop a `make run` started in the background (or in another terminal), by the pid it
# wrote to $RUN/run.pid; it stops what it started and exits 0.
set -euo pipefail
. "$(dirname "$0")/env.sh"
pid=$(cat "$PIDFILE" 2>/dev/null || true)
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null || ! tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "scripts/run.sh"; then
  echo "make run is not running (no live pid in $PIDFILE)."
  rm -f "$PIDFILE"
  exit 0
fi
kill -TERM "$pid"
for _ in $(seq 300); do
  kill -0 "$pid" 2>/dev/null || { echo "make run (pid $pid) stopped."; exit 0; }
  sleep 0.1
done
echo "make run (pid $pid) did not stop within 30 s." >&2
exit 1
