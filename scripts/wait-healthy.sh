#!/usr/bin/env bash
# Waits (at most UP_TIMEOUT s, default 90) until every host of SYSTEM ($1: perseus, the
# default, or etcd) answers its health URL, with chaos's own health wait (`chaos health`,
# the same wait `chaos start` does); on timeout prints the containers' state and recent logs
# and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
system="${1:-perseus}"
if target/release/chaos --project "$PROJECT" --target "$system" --wait "${UP_TIMEOUT:-90}" health; then
  case "$system" in
    etcd) echo "etcd members answer on http://127.0.0.1:2381 .. :2383" ;;
    *) echo "Perseus nodes answer on http://127.0.0.1:8081 .. :8083" ;;
  esac
  exit 0
fi
$COMPOSE --profile etcd ps >&2 || true
case "$system" in etcd) services="e1 e2 e3" ;; *) services="a1 p1 a2 p2 a3 p3" ;; esac
for s in $services; do
  echo "----- last logs of $s -----" >&2
  $COMPOSE --profile etcd logs --tail=20 "$s" >&2 || true
done
exit 1
