# Sourced by scripts/run.sh, manage.sh and stop.sh: the environment of a `make run`, so that every
# `manage.py` hint works as printed. A running `make run` writes its choices (ports, URLs) to
# $RUN/env; a later `make manage` / `make superuser` / `make stop` reads them from there.
# RUN_DIR (default .run) holds the database, logs, Redis data, the secret key and the pid file.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
RUN=${RUN_DIR:-.run}
mkdir -p "$RUN"
RUN=$(cd "$RUN" && pwd)
PIDFILE="$RUN/run.pid"
# shellcheck disable=SC1091
[ -s "$RUN/env" ] && . "$RUN/env"
REDIS_PORT=${REDIS_PORT:-6390}
WEB_PORT=${WEB_PORT:-8000}
for name in secret_key metrics_token; do
  [ -s "$RUN/$name" ] || "$BIN/python" -c "import secrets; print(secrets.token_urlsafe(40))" > "$RUN/$name"
done
export SECRET_KEY=${SECRET_KEY:-$(cat "$RUN/secret_key")}
export METRICS_TOKEN=${METRICS_TOKEN:-$(cat "$RUN/metrics_token")}
export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT/0}
export DATABASE_URL=${DATABASE_URL:-sqlite:///$RUN/db.sqlite3}
export DJANGO_SETTINGS_MODULE=aicache_project.settings
# Hints printed for this run: with a RUN_DIR of its own, each make command must name it too.
MAKE_PREFIX=""
[ "$RUN" = "$(pwd)/.run" ] || MAKE_PREFIX="RUN_DIR=$RUN "
