#!/bin/bash
# One Redis Sentinel host: a Redis server (port 6379) and a sentinel (port 26379) in one
# container, so that a fault hits both like a machine. HOST_INDEX is 1..3; host 1 starts as the
# primary, the others as its replicas. Configs are copied to the data volume on first start only:
# Redis and Sentinel rewrite them (a replica promoted by a failover stays promoted after a
# restart, a sentinel remembers the epoch it voted in), as on a real machine.
set -euo pipefail
i="${HOST_INDEX:?HOST_INDEX=1..3}"
primary=10.77.0.81
mkdir -p /data
if [ ! -f /data/redis.conf ]; then
  cp /etc/perseus/sentinel-redis.conf /data/redis.conf
  [ "$i" = 1 ] || echo "replicaof $primary 6379" >> /data/redis.conf
fi
[ -f /data/sentinel.conf ] || cp /etc/perseus/sentinel.conf /data/sentinel.conf
redis-server /data/redis.conf &
redis-sentinel /data/sentinel.conf &
# Either process ending ends the host.
wait -n
