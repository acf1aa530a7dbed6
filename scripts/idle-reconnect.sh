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
. scripts/lib.sh
failures=0
put() { # put NODE KEY VALUE: prints the node's answer (lab kv: STATUS VALUE ERRORCODE ...)
  kv "$1" put "$2" "$3"
}
teardown() { echo "--- make down"; make -s down >/dev/null 2>&1; }
trap 'teardown; exit 1' INT TERM

make -s down >/dev/null 2>&1 || true
make -s up || { echo "IDLE-RECONNECT FAIL: make up"; teardown; exit 1; }
key="idle-$(date +%s%N)"
for node in p1 p2 p3; do
  echo "PUT via $node before the restarts: $(put "$node" "$key-$node" before)"
done
member_again() { # member_again HOST: waits (60 s at most) until p1 sees its acceptor a member
  sleep 3 # the next inspections see it restarted first
  wait_until 60 is_member "$1"
}
is_member() { [ "$(acceptor_state a1 "$1")" = member ]; }
for host in a1 a2; do
  make -s "kill-acceptor-$host" >/dev/null 2>&1 || echo "kill-acceptor-$host failed"
  make -s "start-acceptor-$host" >/dev/null 2>&1 || echo "start-acceptor-$host failed"
  member_again "$host" && echo "$host caught up and a member again" || {
    echo "IDLE-RECONNECT FAIL: $host not a member again within 60 s"; failures=$((failures + 1)); }
done
echo "restarted the Redis acceptors of a1 and a2; waiting 3 s with no traffic"
sleep 3
for node in p1 p2 p3; do
  r="$(put "$node" "$key-$node" after)"
  echo "PUT via idle $node: $r"
  read -r code _ <<<"$r"
  case "$code" in
    200 | 201) ;;
    *) echo "IDLE-RECONNECT FAIL: PUT via $node answered $code"; failures=$((failures + 1)) ;;
  esac
done
teardown
if [ "$failures" -eq 0 ]; then echo "idle-reconnect: OK, every PUT succeeded"; else echo "idle-reconnect: $failures failure(s)"; exit 1; fi
