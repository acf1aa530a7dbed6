#!/usr/bin/env bash
# Waits (at most UP_TIMEOUT s, default 90) until p1, p2 and p3 answer GET /health inside
# their hosts (NODES="e1 e2 e3": the etcd members on :2379); on timeout prints their state and
# recent logs and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE="${COMPOSE:-docker-compose}"
timeout_s="${UP_TIMEOUT:-90}"
nodes="${NODES:-p1 p2 p3}"
project="${COMPOSE_PROJECT_NAME:-perseus}"
deadline=$((SECONDS + timeout_s))
pending="$nodes"
while [ -n "$pending" ]; do
  still=""
  for n in $pending; do
    id="$(docker ps -q --filter "label=com.docker.compose.project=$project" \
      --filter "label=com.docker.compose.service=$n" --filter "label=com.docker.compose.oneoff=False")"
    case "$n" in e*) port=2379 ;; *) port=8080 ;; esac
    if [ -z "$id" ] || ! docker exec "$id" curl -fsS -o /dev/null -m 2 "http://127.0.0.1:$port/health" 2>/dev/null; then
      still="$still $n"
    fi
  done
  pending="${still# }"
  [ -z "$pending" ] && break
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "ERROR: node(s) $pending not healthy after ${timeout_s} s" >&2
    $COMPOSE ps >&2 || true
    for n in $pending; do
      echo "----- last logs of $n -----" >&2
      $COMPOSE --profile etcd logs --tail=30 "$n" >&2 || true
      case "$n" in p*)
        h="a${n#p}"
        echo "----- last logs of $h -----" >&2
        $COMPOSE logs --tail=10 "$h" >&2 || true ;;
      esac
    done
    exit 1
  fi
  sleep 1
done
case "$nodes" in
  e*) echo "all nodes healthy: $nodes (http://127.0.0.1:2381 .. :2383)" ;;
  *) echo "all nodes healthy: $nodes (http://127.0.0.1:8081 .. :8083)" ;;
esac
