#!/usr/bin/env bash
# Waits (at most UP_TIMEOUT s, default 90) until p1, p2 and p3 (NODES="e1 e2 e3": the etcd
# members) answer GET /health where their users stand: the port published on this machine
# (found with `docker port` on the container that owns the node's network namespace), never
# from inside the node (a node left in an orphaned namespace still answers its own loopback).
# On timeout prints their state, `chaos status`-style advice and recent logs, and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
COMPOSE="${COMPOSE:-docker-compose}"
timeout_s="${UP_TIMEOUT:-90}"
nodes="${NODES:-p1 p2 p3}"
project="${COMPOSE_PROJECT_NAME:-perseus}"
deadline=$((SECONDS + timeout_s))

cid() {
  docker ps -aq --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" --filter "label=com.docker.compose.oneoff=False"
}
# The published address of a node's client port: its namespace owner's `docker port`.
published() {
  local id="$1" port="$2" mode
  mode="$(docker inspect -f '{{.HostConfig.NetworkMode}}' "$id" 2>/dev/null)" || return 1
  case "$mode" in container:*) id="${mode#container:}" ;; esac
  docker port "$id" "$port/tcp" 2>/dev/null | sed -n 's/^0\.0\.0\.0:/127.0.0.1:/; /^[0-9]/{p;q}'
}

pending="$nodes"
declare -A addr
while [ -n "$pending" ]; do
  still=""
  for n in $pending; do
    id="$(cid "$n")"
    case "$n" in e*) port=2379 ;; *) port=8080 ;; esac
    a="${addr[$n]:-}"
    [ -n "$a" ] || { [ -n "$id" ] && a="$(published "$id" "$port")" && addr[$n]="$a"; } || true
    if [ -z "$a" ] || ! curl -fsS -o /dev/null -m 2 "http://$a/health" 2>/dev/null; then
      still="$still $n"
    fi
  done
  pending="${still# }"
  [ -z "$pending" ] && break
  if [ "$SECONDS" -ge "$deadline" ]; then
    echo "ERROR: node(s) $pending do not answer /health on their published ports after ${timeout_s} s" >&2
    $COMPOSE ps >&2 || true
    echo "(\`make status\` says whether a node runs in a namespace that is no longer its host's)" >&2
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
list=""
for n in $nodes; do list="$list $n=http://${addr[$n]}"; done
echo "all nodes healthy where their users stand:$list"
