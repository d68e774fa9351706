#!/usr/bin/env bash
# `make run`: a project-local Redis, migrations, a Celery worker and beat, and the web server;
# Ctrl-C stops all of it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
REDIS_PORT=${REDIS_PORT:-6390}
WEB_PORT=${WEB_PORT:-8000}
RUN=.run
mkdir -p "$RUN/redis" "$RUN/logs"
# One Prometheus multiprocess directory for every process (web, worker, beat, the demo): /metrics sums them.
export PROMETHEUS_MULTIPROC_DIR=$RUN/prometheus
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

if [ -z "${SECRET_KEY:-}" ]; then
  [ -s "$RUN/secret_key" ] || "$BIN/python" -c "import secrets; print(secrets.token_urlsafe(50))" > "$RUN/secret_key"
  SECRET_KEY=$(cat "$RUN/secret_key")
fi
export SECRET_KEY
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}
export DJANGO_SETTINGS_MODULE=aicache_project.settings

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  echo "Stopped everything make run started."
}
trap cleanup INT TERM EXIT

if "$BIN/python" - "$REDIS_PORT" <<'PY'
import socket, sys
s = socket.socket(); s.settimeout(0.3)
sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)
PY
then
  echo "Port $REDIS_PORT is already in use; using the Redis that listens there." >&2
else
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN/redis" --save "" --appendonly no \
    --logfile "$(pwd)/$RUN/logs/redis.log" &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

"$BIN/python" manage.py migrate --noinput
"$BIN/python" manage.py check

# Celery: a worker for the monitoring queue and beat for the periodic jobs (cleanup, compact,
# snapshot_redis), both on the project-local Redis (broker on database 1).
"$BIN/celery" -A aicache_project worker -Q celery,aicache_monitoring --concurrency=2 --loglevel=INFO \
  --logfile="$RUN/logs/celery-worker.log" &
pids+=($!)
"$BIN/celery" -A aicache_project beat --loglevel=INFO --schedule="$RUN/celerybeat-schedule" \
  --logfile="$RUN/logs/celery-beat.log" &
pids+=($!)

cat <<MSG

aicache is running:
  home       http://127.0.0.1:$WEB_PORT/
  health     http://127.0.0.1:$WEB_PORT/health/
  admin      http://127.0.0.1:$WEB_PORT/admin/   (create a user: .venv/bin/python manage.py createsuperuser)
  dashboard  http://127.0.0.1:$WEB_PORT/admin/aicache/dashboard/   (and /admin/aicache/entries/)
  metrics    http://127.0.0.1:$WEB_PORT/metrics   (staff login, or AICACHE METRICS_TOKEN)
  redis      127.0.0.1:$REDIS_PORT; Celery worker + beat (logs in $RUN/logs/)
Press Ctrl-C to stop.

MSG
"$BIN/python" manage.py runserver "127.0.0.1:$WEB_PORT" --noreload --insecure &
pids+=($!)
# A short demo through the reference processor, so the API, the admin and /metrics have data.
"$BIN/python" manage.py aicache_demo --requests 200 --patterns 20 --concurrency 4 --latency 0.2 ||
  echo "aicache_demo failed (see above); the stack keeps running." >&2
wait -n "${pids[@]}"
