#!/usr/bin/env bash
# Makes sure the local Postgres and Redis answer; starts them when they are installed but stopped.
# With DATABASE_URL/REDIS_URL pointing elsewhere, it only checks those.
set -u
start=${1:-start}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 -t 2 2>/dev/null; }
redis_up() { redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; }

if ! pg_up; then
  if [ "$start" = start ] && command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "postgres: not answering on 127.0.0.1:5432, starting the local cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 30); do pg_up && break; sleep 0.5; done
  fi
  pg_up || { echo "postgres: not answering on 127.0.0.1:5432. Start it (pg_ctlcluster <version> main start) or set DATABASE_URL." >&2; exit 1; }
fi

if ! redis_up; then
  if [ "$start" = start ] && command -v redis-server >/dev/null; then
    echo "redis: not answering on 127.0.0.1:6379, starting a local redis-server"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
    for _ in $(seq 1 30); do redis_up && break; sleep 0.5; done
  fi
  redis_up || { echo "redis: not answering on 127.0.0.1:6379. Start it (redis-server --daemonize yes) or set REDIS_URL." >&2; exit 1; }
fi
