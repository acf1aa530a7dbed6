#!/usr/bin/env bash
# Memory bound check (`make node-memory`, a few minutes): KEYS (3000) keys with a value of
# VALUE_BYTES (65000) each written through node p1, PARALLEL (16) requests at a time; prints
# p1's resident memory before and after and fails if it is above BOUND_MB (150, the bound
# docs/design-proposer.md states for the default settings). Starts from a clean slate, ends
# with make down; run it under the docker lock.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
KEYS="${KEYS:-3000}"
VALUE_BYTES="${VALUE_BYTES:-65000}"
PARALLEL="${PARALLEL:-16}"
BOUND_MB="${BOUND_MB:-150}"
teardown() { echo "--- make down"; make -s down >/dev/null 2>&1; }
trap 'teardown; exit 1' INT TERM
rss_kb() { # the node process's VmRSS in p1's container (the node is its PID 1)
  docker exec "$(cid p1)" sh -c 'grep VmRSS /proc/1/status' | awk '{print $2}'
}

make -s down >/dev/null 2>&1 || true
make -s up || { echo "NODE-MEMORY FAIL: make up"; teardown; exit 1; }
echo "p1 runs: $(docker exec "$(cid p1)" cat /proc/1/cmdline | tr '\0' ' ')"
before="$(rss_kb)"
echo "p1 resident memory before: $((before / 1024)) MB"
body="$(mktemp)"
{ printf 'value='; head -c "$VALUE_BYTES" /dev/zero | tr '\0' 'x'; } >"$body"
start=$(date +%s)
failed="$(seq 1 "$KEYS" | xargs -P "$PARALLEL" -I{} curl -sS -m 10 -o /dev/null -w '%{http_code}\n' \
  -X PUT -H 'Content-Type: application/x-www-form-urlencoded' --data-binary "@$body" \
  "http://127.0.0.1:8081/v2/keys/memory-{}" | grep -cv '^20[01]$')"
rm -f "$body"
after="$(rss_kb)"
echo "wrote $KEYS keys x $VALUE_BYTES bytes through p1 in $(($(date +%s) - start)) s ($failed not 200/201)"
echo "p1 resident memory after: $((after / 1024)) MB (bound $BOUND_MB MB)"
teardown
if [ "$((after / 1024))" -le "$BOUND_MB" ] && [ "$failed" -eq 0 ]; then
  echo "node-memory: OK"
else
  echo "node-memory: FAIL"
  exit 1
fi
