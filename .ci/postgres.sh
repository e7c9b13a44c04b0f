#!/usr/bin/env bash
# Install Debian's PostgreSQL if missing, start it, and create the test role and database.
# Idempotent, so it can run on a machine that already has them.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    apt-get update -qq
    apt-get install -y -qq postgresql >/dev/null
fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
if [ ! -d "/etc/postgresql/$version/main" ]; then
    pg_createcluster "$version" main >/dev/null
fi
pg_ctlcluster "$version" main start 2>/dev/null || pg_ctlcluster "$version" main status >/dev/null

for _ in $(seq 1 30); do
    pg_isready -q -h 127.0.0.1 -p 5432 && break
    sleep 1
done
as_postgres() { su postgres -c "psql -v ON_ERROR_STOP=1 -qAt -c \"$1\""; }
if [ "$(as_postgres "SELECT 1 FROM pg_roles WHERE rolname='envwatch'")" != "1" ]; then
    as_postgres "CREATE ROLE envwatch LOGIN SUPERUSER PASSWORD 'envwatch'"
fi
if [ "$(as_postgres "SELECT 1 FROM pg_database WHERE datname='envwatch_test'")" != "1" ]; then
    as_postgres "CREATE DATABASE envwatch_test OWNER envwatch"
fi
echo "postgresql $version ready on 127.0.0.1:5432"
