#!/usr/bin/env bash
# Waits (at most UP_TIMEOUT s, default 90) until every host of SYSTEM ($1: any of
# model/src/system.rs; perseus by default) answers its health check, with chaos's own health
# wait (`chaos health`, the same wait `chaos start` does); on timeout prints the containers'
# state and recent logs and fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
system="${1:-perseus}"
eval "$(target/release/chaos --target "$system" describe)"
if target/release/chaos --project "$PROJECT" --target "$system" --wait "${UP_TIMEOUT:-90}" health; then
  case "$system" in
    perseus) echo "Perseus nodes answer on http://127.0.0.1:8081 .. :8083" ;;
    etcd | etcd3) echo "etcd members answer on http://127.0.0.1:2381 .. :2383 ($nodes)" ;;
    *) echo "$title serves on $nodes" ;;
  esac
  exit 0
fi
# shellcheck disable=SC2086
$COMPOSE ${profile:+--profile "$profile"} ps >&2 || true
for s in $services; do
  echo "----- last logs of $s -----" >&2
  $COMPOSE ${profile:+--profile "$profile"} logs --tail=20 "$s" >&2 || true
done
exit 1
