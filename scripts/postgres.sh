#!/usr/bin/env bash
# A throwaway PostgreSQL cluster from Debian's packages, on a local socket only: for the test
# suite's second pass (FMU_GATEWAY_TEST_POSTGRES) and for trying FMU_GATEWAY_DATABASE_URL on a
# laptop. Installs `postgresql` with apt when missing. The cluster trusts local connections
# and runs without fsync (a crash of PostgreSQL loses no commit, a crash of the machine may):
# it is for tests, never for data you keep (docs/scaling.md says how to run a real one).
#
#   scripts/postgres.sh start DIR   # prints the admin URL (database `postgres`, user `postgres`)
#   scripts/postgres.sh stop DIR
#   scripts/postgres.sh restart DIR # a fast stop and start, as a crash and recovery would be
set -euo pipefail
cmd="${1:?usage: scripts/postgres.sh start|stop|restart DIR}"
dir="${2:?usage: scripts/postgres.sh start|stop|restart DIR}"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$bin" ]; then
  echo "== installing postgresql (apt)" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq postgresql >/dev/null
  bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
fi
# PostgreSQL refuses to run as root: as root, the cluster belongs to the `postgres` user the
# package creates.
run() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ "$(id -u)" = 0 ] && chown postgres "$dir"
case "$cmd" in
  start)
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      run "$bin/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --locale=C >"$dir/initdb.log"
    fi
    run "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -s \
      -o "-k $dir -c listen_addresses='' -c fsync=off -c full_page_writes=off -c max_connections=400" start >&2
    echo "postgres://postgres@localhost/postgres?host=$dir"
    ;;
  stop) run "$bin/pg_ctl" -D "$dir/data" -m fast -w -s stop >&2 ;;
  restart) run "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -m immediate -w -s restart >&2 ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
