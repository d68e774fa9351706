#!/usr/bin/env bash
# `make prod-like`: the project as it runs in production, on this machine, loopback only:
#   gunicorn (3 workers, Prometheus multiprocess mode) with DEBUG off and static files collected and
#   served by WhiteNoise; a Celery worker and beat; a project-local Redis (cache, broker, throttles);
#   a throwaway PostgreSQL cluster (initdb into $RUN/pg, removed on stop); every process logging
#   JSON lines to stdout (LOG_FORMAT=json).
# Ctrl-C, `make prod-like-stop`, or SIGTERM to this script stop all of it, remove the PostgreSQL
# cluster and exit 0. Tested by tests/load/test_prod_like.py.
# RUN_DIR (default .run/prod-like), REDIS_PORT (6392), WEB_PORT (8002), GUNICORN_WORKERS (3),
# AICACHE_PROCESSOR_LATENCY (0.2 s per model call), AICACHE_PROCESS_RATE (6000/minute) may be set.
set -euo pipefail
if [ -z "${AICACHE_RUN_SIGNALS:-}" ]; then  # see run.sh: INT and TERM at their defaults
  export AICACHE_RUN_SIGNALS=1
  exec env --default-signal=INT,TERM "$0" "$@"
fi
unset AICACHE_RUN_SIGNALS
export RUN_DIR=${RUN_DIR:-.run/prod-like}
export REDIS_PORT=${REDIS_PORT:-6392}
export WEB_PORT=${WEB_PORT:-8002}
. "$(dirname "$0")/env.sh"
PIDFILE="$RUN/prod-like.pid"
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
[ -x "$PGBIN/initdb" ] || PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ ! -x "${PGBIN:-}/initdb" ]; then
  echo "make prod-like needs PostgreSQL (apt-get install postgresql)." >&2
  exit 1
fi

export DEBUG=0 LOG_FORMAT=json
export GUNICORN_WORKERS=${GUNICORN_WORKERS:-3}
export GUNICORN_BIND=127.0.0.1:$WEB_PORT
export STATIC_ROOT=$RUN/static
export CELERY_BROKER_URL=redis://127.0.0.1:$REDIS_PORT/1
export CELERY_RESULT_BACKEND=redis://127.0.0.1:$REDIS_PORT/2
export DEFAULT_CACHE_URL=redis://127.0.0.1:$REDIS_PORT/3
export AICACHE_PROCESSOR_LATENCY=${AICACHE_PROCESSOR_LATENCY:-0.2}
export AICACHE_PROCESS_RATE=${AICACHE_PROCESS_RATE:-6000/minute}
export PROMETHEUS_MULTIPROC_DIR=$RUN/prometheus

pids=()
names=()
pg_owner=$(id -un)
as_pg=()
if [ "$(id -u)" = "0" ]; then  # initdb refuses root: the cluster belongs to the postgres user
  pg_owner=postgres
  id -u "$pg_owner" >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash "$pg_owner"
  as_pg=(runuser -u "$pg_owner" --)
fi
PGDIR=""  # a mktemp dir under /tmp: the postgres user must reach it, whatever RUN_DIR's parents allow

stop_all() {
  trap - INT TERM EXIT
  local pid
  echo "$(date -u +%T) stopping ${names[*]}" >&2
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 200); do  # 20 s for a graceful stop (Celery finishes its batch), then KILL
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ "$alive" = 0 ] && break
    sleep 0.1
  done
  for i in "${!pids[@]}"; do
    kill -0 "${pids[$i]}" 2>/dev/null || continue
    echo "${names[$i]} (pid ${pids[$i]}) did not stop within 20 s: killing its process group." >&2
    kill -KILL -- "-${pids[$i]}" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -n "$PGDIR" ] && [ -d "$PGDIR/data" ]; then
    "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast -w stop >/dev/null 2>&1 || true
  fi
  [ -n "$PGDIR" ] && rm -rf "$PGDIR"
  rm -rf "$PIDFILE" "$RUN/env" "$RUN/pgdir" "$PROMETHEUS_MULTIPROC_DIR"
  echo "$(date -u +%T) Stopped everything make prod-like started." >&2
}
on_signal() {
  echo "Stopping ($1)..." >&2
  stop_all
  exit 0
}
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM
trap stop_all EXIT

if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "make prod-like is already running (pid $(cat "$PIDFILE")): make prod-like-stop" >&2
  trap - EXIT
  exit 1
fi
echo $$ > "$PIDFILE"
mkdir -p "$RUN/redis"
rm -rf "$PROMETHEUS_MULTIPROC_DIR" && mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
PGDIR=$(mktemp -d /tmp/aicache-prod-like-pg.XXXXXX)
chown "$pg_owner" "$PGDIR"
chmod 700 "$PGDIR"

start() {  # children in sessions of their own: a signal reaches this script, which stops them in order
  local name=$1
  shift
  setsid "$@" &
  pids+=($!)
  names+=("$name")
}
free_port() { "$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$RUN/redis" --save "" --appendonly no \
  --logfile "$RUN/redis.log"
PG_PORT=${PG_PORT:-$(free_port)}
echo "$PGDIR" > "$RUN/pgdir"
"${as_pg[@]}" "$PGBIN/initdb" -D "$PGDIR/data" -U "$pg_owner" --auth=trust -E UTF8 >/dev/null
"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/pg.log" -w \
  -o "-p $PG_PORT -k $PGDIR -c listen_addresses=127.0.0.1" start >/dev/null
export DATABASE_URL="postgres://$pg_owner@127.0.0.1:$PG_PORT/postgres"
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
cat > "$RUN/env" <<ENV
: "\${REDIS_PORT:=$REDIS_PORT}"
: "\${WEB_PORT:=$WEB_PORT}"
: "\${REDIS_URL:=$REDIS_URL}"
: "\${DATABASE_URL:=$DATABASE_URL}"
: "\${PG_PORT:=$PG_PORT}"
ENV

"$BIN/python" manage.py migrate --noinput -v 0
"$BIN/python" manage.py collectstatic --noinput -v 0
"$BIN/python" manage.py check --fail-level ERROR >&2

# gunicorn first: its on_starting empties PROMETHEUS_MULTIPROC_DIR, which Celery's processes share.
start gunicorn "$BIN/gunicorn" -c aicache_project/gunicorn.conf.py --no-control-socket
for _ in $(seq 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$WEB_PORT") 2>/dev/null && break
  kill -0 "${pids[-1]}" 2>/dev/null || break
  sleep 0.1
done
start celery-worker "$BIN/celery" -A aicache_project -q worker -Q celery,aicache_monitoring --concurrency=2 \
  --loglevel=INFO --without-mingle --without-gossip
start celery-beat "$BIN/celery" -A aicache_project -q beat --loglevel=INFO --schedule="$RUN/celerybeat-schedule"
cat >&2 <<MSG
aicache (prod-like) is running on http://127.0.0.1:$WEB_PORT/ : gunicorn x$GUNICORN_WORKERS, Celery worker + beat,
Redis 127.0.0.1:$REDIS_PORT, PostgreSQL 127.0.0.1:$PG_PORT ($RUN). Stop: Ctrl-C or make prod-like-stop.
  metrics    curl -H "Authorization: Bearer \$(cat $RUN/metrics_token)" http://127.0.0.1:$WEB_PORT/metrics
  a staff user for the admin and the API (gone at stop, with the throwaway PostgreSQL):
             RUN_DIR=$RUN make manage ARGS="createsuperuser"
MSG

set +e
wait -n "${pids[@]}"
status=$?
set -e
for i in "${!pids[@]}"; do
  kill -0 "${pids[$i]}" 2>/dev/null || echo "${names[$i]} (pid ${pids[$i]}) exited with status $status; stopping the rest." >&2
done
exit "$status"
