#!/usr/bin/env bash
# `make run`: a project-local Redis, migrations, a Celery worker and beat, and the web server.
# Ctrl-C, `make stop`, or SIGINT/SIGTERM to this script (or to its process group) stop all of it
# and exit 0. Tested by tests/install/test_make_run.py.
set -euo pipefail
# A shell started in the background by a non-interactive shell inherits SIGINT ignored, and bash
# cannot trap a signal ignored on entry: start again with INT and TERM at their defaults.
if [ -z "${AICACHE_RUN_SIGNALS:-}" ]; then
  export AICACHE_RUN_SIGNALS=1
  exec env --default-signal=INT,TERM "$0" "$@"
fi
unset AICACHE_RUN_SIGNALS
. "$(dirname "$0")/env.sh"
mkdir -p "$RUN/redis" "$RUN/logs"
# One Prometheus multiprocess directory for every process (web, worker, beat, the demo): /metrics sums them.
export PROMETHEUS_MULTIPROC_DIR=$RUN/prometheus
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

pids=()
names=()
stop_all() {
  trap - INT TERM EXIT
  local pid
  [ -n "${demo:-}" ] && kill -TERM "$demo" 2>/dev/null
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 150); do  # 15 s for a graceful stop (Celery finishes its current task), then KILL
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -f "$PIDFILE" "$RUN/env"
  echo "Stopped everything make run started."
}
on_signal() {
  echo
  echo "Stopping ($1)..."
  stop_all
  exit 0
}
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM
trap stop_all EXIT

if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "make run is already running (pid $(cat "$PIDFILE")): ${MAKE_PREFIX}make stop" >&2
  trap - EXIT
  exit 1
fi
echo $$ > "$PIDFILE"
cat > "$RUN/env" <<ENV
: "\${REDIS_PORT:=$REDIS_PORT}"
: "\${WEB_PORT:=$WEB_PORT}"
: "\${REDIS_URL:=$REDIS_URL}"
: "\${DATABASE_URL:=$DATABASE_URL}"
ENV

# Children run in sessions of their own: Ctrl-C reaches this script only, which stops them in order.
start() {
  local name=$1
  shift
  setsid "$@" &
  pids+=($!)
  names+=("$name")
}

if "$BIN/python" - "$REDIS_PORT" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(0.3)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
then
  echo "Port $REDIS_PORT is already in use; using the Redis that listens there." >&2
else
  start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN/redis" --save "" \
    --appendonly no --logfile "$RUN/logs/redis.log"
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

"$BIN/python" manage.py migrate --noinput
"$BIN/python" manage.py check

# Celery: a worker for the monitoring queue and beat for the periodic jobs (cleanup, compact,
# snapshot_redis), both on the project-local Redis (broker on database 1).
start celery-worker "$BIN/celery" -A aicache_project worker -Q celery,aicache_monitoring --concurrency=2 \
  --loglevel=INFO --logfile="$RUN/logs/celery-worker.log"
start celery-beat "$BIN/celery" -A aicache_project beat --loglevel=INFO \
  --schedule="$RUN/celerybeat-schedule" --logfile="$RUN/logs/celery-beat.log"

start web "$BIN/python" manage.py runserver "127.0.0.1:$WEB_PORT" --noreload --insecure
# The banner comes once the web server answers, after the processes' own start-up output.
for _ in $(seq 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$WEB_PORT") 2>/dev/null && break
  kill -0 "${pids[-1]}" 2>/dev/null || break
  sleep 0.1
done
# A short demo through the reference processor, so the API, the admin and /metrics have data. In the
# background, so that a signal meanwhile is handled at once; its failure leaves the stack running.
"$BIN/python" manage.py aicache_demo --requests 200 --patterns 20 --concurrency 4 --latency 0.2 &
demo=$!
wait "$demo" || echo "aicache_demo failed (see above); the stack keeps running." >&2
demo=

P=$MAKE_PREFIX
URL="http://127.0.0.1:$WEB_PORT"
cat <<MSG

aicache is running:
  home       $URL/   (links to the dashboard, API docs, /metrics and health)
  health     curl $URL/health/
  metrics    curl -H "Authorization: Bearer \$(cat $RUN/metrics_token)" $URL/metrics
  admin      $URL/admin/   (create a user first: ${P}make superuser)
  dashboard  $URL/admin/aicache/dashboard/   (and $URL/admin/aicache/entries/)
  manage.py  ${P}make manage ARGS="check"   (any command, in this run's environment)
  redis      127.0.0.1:$REDIS_PORT; Celery worker + beat (logs in $RUN/logs/)
Stop: Ctrl-C here, or ${P}make stop from another shell.

MSG

set +e
wait -n "${pids[@]}"
status=$?
set -e
for i in "${!pids[@]}"; do
  kill -0 "${pids[$i]}" 2>/dev/null || echo "${names[$i]} (pid ${pids[$i]}) exited with status $status; stopping the rest." >&2
done
exit "$status"
