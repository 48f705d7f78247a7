#!/usr/bin/env bash
# `npm run cluster`: scale-out mode on this machine, for a person to try: Redis, PostgreSQL, 2 API servers and 2
# generation workers (the built code: run `npm run build` first). Ctrl-C stops everything (workers drain first).
#
#   API_SERVERS=2 WORKERS=2 BASE_PORT=4000 npm run cluster
#   REDIS_URL=redis://... DATABASE_URL=postgres://... npm run cluster   # use services you already run
#
# Without REDIS_URL / DATABASE_URL it starts redis-server and a PostgreSQL cluster under data/cluster/ (Debian:
# apt-get install redis-server postgresql). Logs go to data/cluster/*.log.
set -euo pipefail
cd "$(dirname "$0")/.."
API_SERVERS=${API_SERVERS:-2}
WORKERS=${WORKERS:-2}
BASE_PORT=${BASE_PORT:-4000}
DIR=${CLUSTER_DIR:-data/cluster}
mkdir -p "$DIR"
test -f dist/src/server/main.js || { echo "not built: run npm run build first" >&2; exit 1; }
pids=()
cleanup() {
  echo "stopping (workers drain their turns back to the queue)..."
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${PG_STARTED:-}" ]; then su_pg "$PG_BIN/pg_ctl -D $DIR/pg -m fast stop" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT INT TERM

su_pg() { if [ "$(id -u)" = 0 ]; then su postgres -c "$1"; else bash -c "$1"; fi; }

if [ -z "${REDIS_URL:-}" ]; then
  redis-server --port $((BASE_PORT + 379)) --bind 127.0.0.1 --save '' --appendonly no >"$DIR/redis.log" 2>&1 &
  pids+=($!)
  export REDIS_URL="redis://127.0.0.1:$((BASE_PORT + 379))"
fi
if [ -z "${DATABASE_URL:-}" ]; then
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  test -n "$PG_BIN" || { echo "PostgreSQL not found: apt-get install postgresql, or set DATABASE_URL" >&2; exit 1; }
  PG_PORT=$((BASE_PORT + 432))
  if [ ! -d "$DIR/pg" ]; then
    [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    su_pg "$PG_BIN/initdb -D $DIR/pg -A trust -U postgres" >/dev/null
  fi
  su_pg "$PG_BIN/pg_ctl -D $DIR/pg -o '-p $PG_PORT -k /tmp -c listen_addresses=127.0.0.1' -l $DIR/pg.log -w start" >/dev/null
  PG_STARTED=1
  psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'codraw'" | grep -q 1 ||
    psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qc 'CREATE DATABASE codraw'
  export DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/codraw"
fi

# The first API server applies the migrations; the others and the workers start after it.
for i in $(seq 0 $((API_SERVERS - 1))); do
  PORT=$((BASE_PORT + i)) node --enable-source-maps dist/src/server/main.js >"$DIR/api-$i.log" 2>&1 &
  pids+=($!)
  until curl -sf "http://127.0.0.1:$((BASE_PORT + i))/healthz" >/dev/null; do sleep 0.3; done
  echo "API server $i: http://127.0.0.1:$((BASE_PORT + i))/   (log $DIR/api-$i.log)"
done
for i in $(seq 0 $((WORKERS - 1))); do
  node --enable-source-maps dist/src/server/workerMain.js >"$DIR/worker-$i.log" 2>&1 &
  pids+=($!)
  echo "generation worker $i   (log $DIR/worker-$i.log)"
done
echo "Redis $REDIS_URL, PostgreSQL $DATABASE_URL. Ctrl-C stops the cluster."
wait
