#!/usr/bin/env bash
# `make prod-like-stop`: stop a `make prod-like` by the pid it wrote; it stops what it started.
set -euo pipefail
export RUN_DIR=${RUN_DIR:-.run/prod-like}
. "$(dirname "$0")/env.sh"
PIDFILE="$RUN/prod-like.pid"
pid=$(cat "$PIDFILE" 2>/dev/null || true)
if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null || ! tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "scripts/prod-like.sh"; then
  echo "make prod-like is not running (no live pid in $PIDFILE)."
  rm -f "$PIDFILE"
  exit 0
fi
kill -TERM "$pid"
for _ in $(seq 400); do
  # gone, or a zombie its parent has not reaped yet (kill -0 still succeeds on one)
  ps -o stat= -p "$pid" 2>/dev/null | grep -qv Z || { echo "make prod-like (pid $pid) stopped."; exit 0; }
  sleep 0.1
done
echo "make prod-like (pid $pid) did not stop within 40 s." >&2
exit 1
