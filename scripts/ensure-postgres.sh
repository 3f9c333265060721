#!/usr/bin/env bash
# Start the machine's PostgreSQL (127.0.0.1:5432) if it is installed and not running.
# Tests marked `postgres` need it; everything else runs without it.
set -u
ready() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
command -v pg_isready >/dev/null 2>&1 || { echo "ensure-postgres: PostgreSQL client tools not installed"; exit 1; }
ready && exit 0
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  for version in $(ls /etc/postgresql); do
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
  done
fi
for _ in $(seq 1 60); do ready && exit 0; sleep 0.5; done
echo "ensure-postgres: PostgreSQL is not answering on 127.0.0.1:5432"
exit 1
