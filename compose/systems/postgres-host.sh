#!/bin/bash
# One PostgreSQL host: Patroni (which runs PostgreSQL 15) and HAProxy in one container, so that
# a fault hits both like a machine. Patroni runs as the postgres user (PostgreSQL refuses root).
set -euo pipefail
mkdir -p /data /run/postgresql
chown postgres:postgres /data /run/postgresql
chmod 700 /data
haproxy -f /etc/perseus/haproxy.cfg &
runuser -u postgres -- patroni /etc/perseus/patroni.yml &
wait -n
