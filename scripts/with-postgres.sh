#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster: initdb into a temp dir as a non-root user,
# start it on a free loopback port, export AICACHE_TEST_DATABASE_URL, run "$@", stop and remove it.
# Installs Debian's postgresql when root and missing; skips (exit 0, with the reason) only where
# PostgreSQL cannot be had.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
if [ ! -x "$PGBIN/initdb" ] && [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "PostgreSQL not found: installing Debian's postgresql..." >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
fi
if [ ! -x "$PGBIN/initdb" ]; then
  echo "SKIPPED: PostgreSQL tests (no initdb under $PGBIN; install postgresql)" >&2
  exit 0
fi

as_user=()
owner=$(id -un)
if [ "$(id -u)" = "0" ]; then
  owner=postgres
  id -u "$owner" >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash "$owner"
  as_user=(runuser -u "$owner" --)
fi
dir=$(mktemp -d /tmp/aicache-pg.XXXXXX)
chown "$owner" "$dir"
chmod 700 "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() {
  "${as_user[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
"${as_user[@]}" "$PGBIN/initdb" -D "$dir/data" -U "$owner" --auth=trust -E UTF8 >/dev/null
"${as_user[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" start >/dev/null
export AICACHE_TEST_DATABASE_URL="postgres://$owner@127.0.0.1:$port/postgres"
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$port" >&2
"$@"
