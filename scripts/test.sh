#!/usr/bin/env bash
# Run every check: ruff, the doctests, the README's code, the test suite.
# Starts a throw-away PostgreSQL server on loopback for the multi-worker tuning
# tests (TABRESNET_PG_URL); with CI=true a test that finds a service missing fails.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

export PYTHONHASHSEED=0
export MPLBACKEND=Agg

pg_dir=""
cleanup() {
  if [ -n "$pg_dir" ] && [ -f "$pg_dir/data/postmaster.pid" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || \
      "$PG_BIN/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

if [ -z "${TABRESNET_PG_URL:-}" ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$PG_BIN" ] && [ -x "$PG_BIN/initdb" ]; then
    pg_dir=$(mktemp -d /tmp/tabresnet-pg.XXXXXX)
    port=$(( 20000 + RANDOM % 20000 ))
    as_pg=()
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$pg_dir"; as_pg=(runuser -u postgres --); fi
    "${as_pg[@]}" "$PG_BIN/initdb" -D "$pg_dir/data" -A trust -U tabresnet >/dev/null
    "${as_pg[@]}" "$PG_BIN/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
      -o "-p $port -k $pg_dir -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    "${as_pg[@]}" "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U tabresnet tabresnet
    export TABRESNET_PG_URL="postgresql+psycopg://tabresnet@127.0.0.1:$port/tabresnet"
    echo "test: PostgreSQL on 127.0.0.1:$port"
  fi
fi

echo "test: ruff"
$PY -m ruff check .
echo "test: pytest"
$PY -m pytest -n 2 --dist loadgroup "$@"
