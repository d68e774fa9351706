#!/usr/bin/env bash
# `make manage ARGS="..."`, `make superuser`: manage.py in the environment `make run` uses.
set -euo pipefail
. "$(dirname "$0")/env.sh"
exec "$BIN/python" manage.py "$@"
