#!/usr/bin/env bash
# Idle reconnection check (`make idle-reconnect`, about a minute after the images are built): a
# node that sent nothing while its Redis acceptors restarted must serve its next request.
#   1. make up; one PUT per node (every connection in use);
#   2. restart the Redis acceptors of a1 and a2 (kill, start), one after the other: a restarted
#      Redis counts again only once the membership task has caught it up (two restarted at
#      once cannot be proven complete: the data-loss verdict, docs/design-acceptor-recovery.md),
#      so each is waited for (member again in p1's /health); send nothing, wait 3 s;
#   3. one PUT to each idle node: every one must succeed (200/201).
# The nodes find dead connections with a keepalive PING, not with a client's request
# (docs/design-proposer.md). Starts from a clean slate, ends with make down; run it under the
# docker lock.
set -uo pipefail
cd "$(dirname "$0")/.."
failures=0
put() { # put NODE KEY VALUE: prints the status code
  curl -sS -m 5 -o /tmp/idle-reconnect.body -w '%{http_code}' -X PUT \
    "http://127.0.0.1:808${1#p}/v2/keys/$2" -d "value=$3" 2>/dev/null
}
teardown() { echo "--- make down"; make -s down >/dev/null 2>&1; }
trap 'teardown; exit 1' INT TERM

make -s down >/dev/null 2>&1 || true
make -s up || { echo "IDLE-RECONNECT FAIL: make up"; teardown; exit 1; }
key="idle-$(date +%s%N)"
for node in p1 p2 p3; do
  code="$(put "$node" "$key-$node" before)"
  echo "PUT via $node before the restarts: $code"
done
member_again() { # member_again ADDRESS: waits (60 s at most) until p1's /health says member
  local t0=$SECONDS
  sleep 3 # the next inspections see it restarted first
  while [ $((SECONDS - t0)) -lt 60 ]; do
    curl -sS -m 3 http://127.0.0.1:8081/health 2>/dev/null | grep -q "\"name\":\"$1\",\"state\":\"member\"" && return 0
    sleep 1
  done
  return 1
}
for host in a1 a2; do
  make -s "kill-acceptor-$host" 2>&1 | grep -v "^Creating" || echo "kill-acceptor-$host failed"
  make -s "start-acceptor-$host" 2>&1 | grep -v "^Creating" || echo "start-acceptor-$host failed"
  address="10.77.0.1${host#a}:6379"
  member_again "$address" && echo "$host caught up and a member again" || {
    echo "IDLE-RECONNECT FAIL: $host not a member again within 60 s"; failures=$((failures + 1)); }
done
echo "restarted the Redis acceptors of a1 and a2; waiting 3 s with no traffic"
sleep 3
for node in p1 p2 p3; do
  code="$(put "$node" "$key-$node" after)"
  echo "PUT via idle $node: $code $(head -c 300 /tmp/idle-reconnect.body)"
  case "$code" in
    200 | 201) ;;
    *) echo "IDLE-RECONNECT FAIL: PUT via $node answered $code"; failures=$((failures + 1)) ;;
  esac
done
teardown
if [ "$failures" -eq 0 ]; then echo "idle-reconnect: OK, every PUT succeeded"; else echo "idle-reconnect: $failures failure(s)"; exit 1; fi
