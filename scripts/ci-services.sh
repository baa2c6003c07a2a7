#!/usr/bin/env bash
# Start PostgreSQL and Redis on loopback for the scale-out test run (CI and local use).
#   scripts/ci-services.sh start   install (apt, only if missing), start, wait, create role/db
#   scripts/ci-services.sh stop    stop both
# Idempotent: running `start` twice is harmless. Prints nothing but progress; the URLs to use:
#   DATABASE_URL=postgres://stepstone:stepstone@127.0.0.1:5432/stepstone
#   REDIS_URL=redis://127.0.0.1:6379/0
set -euo pipefail
PG_USER=${PG_USER:-stepstone}
PG_PASSWORD=${PG_PASSWORD:-stepstone}
PG_DB=${PG_DB:-stepstone}

install_missing() {
  local missing=()
  command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql)
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  if [ ${#missing[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

pg_cluster() {  # "<version> <name>" of the first cluster
  pg_lsclusters --no-header | awk 'NR==1 {print $1, $2}'
}

start() {
  install_missing
  read -r version name < <(pg_cluster)
  if ! pg_lsclusters --no-header | awk 'NR==1 {print $4}' | grep -q online; then
    # Loopback only; fsync off: throw-away test data, speed over durability.
    cat > "/etc/postgresql/$version/$name/conf.d/stepstone-ci.conf" <<'CONF'
listen_addresses = '127.0.0.1'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
    pg_ctlcluster "$version" "$name" start
  fi
  if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes \
      --pidfile /tmp/stepstone-ci-redis.pid --logfile /tmp/stepstone-ci-redis.log
  fi
  for _ in $(seq 1 100); do
    if pg_isready -q -h 127.0.0.1 && redis-cli -h 127.0.0.1 ping 2>/dev/null | grep -q PONG; then
      break
    fi
    sleep 0.2
  done
  pg_isready -h 127.0.0.1
  redis-cli -h 127.0.0.1 ping
  # CREATEDB: pytest-django creates test_<name>, and each test installation its own database.
  su postgres -c "psql -q -v ON_ERROR_STOP=1" <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  ELSE
    ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD '$PG_PASSWORD';
  END IF;
END \$\$;
SQL
  if ! su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname = '$PG_DB'\"" | grep -q 1; then
    su postgres -c "createdb -O $PG_USER $PG_DB"
  fi
}

stop() {
  if command -v pg_lsclusters >/dev/null 2>&1; then
    read -r version name < <(pg_cluster) || true
    [ -n "${version:-}" ] && pg_ctlcluster "$version" "$name" stop 2>/dev/null || true
  fi
  redis-cli -h 127.0.0.1 shutdown nosave 2>/dev/null || true
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
