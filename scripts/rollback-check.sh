#!/usr/bin/env bash
# Rollback and majority-loss check of Perseus (`make rollback-check`, about 3 min after the
# images are built): an acceptor whose data goes back in time never costs an acknowledged
# write, and a majority that lost its data is said so, never re-initialised.
#   R. a1's data saved (a copy of its AOF directory, Redis running); a3 frozen; PUT k=v1 via p1
#      (201: on a1 and a2); a3 thawed; a1's Redis killed, its data put back to the copy, started
#      (it no longer holds v1, its identity record is the old one); a2 cut off; GET k via p3 is
#      v1 or a 503, never 404; a create (prevExist=false) via p3 is never 201; heal; within 60 s
#      a1 is a member again and every node answers v1.
#   K. a3 KILLED instead of frozen, a1 rolled back while a3 is still down, then a3 started: a
#      restarted Redis cannot prove it lost nothing either, and a1 cannot be caught up while
#      a3 is away (its pass needs every other acceptor), so two acceptors are unproven: GET via
#      p3 never 404, no second create, every node answers 503 errorCode 310 (data loss);
#      `make accept-loss` keeps v1 (a2 holds it): every node answers v1. (Started before the
#      rollback, a3 is caught up within a second or two, and then only a1 is unproven: the
#      cluster serves v1, which is right, but is case R again.)
#   W. k2 written with a3 frozen, then a1 and a2 wiped (FLUSHALL): every node answers 503
#      errorCode 310 for k2 (never 404), `chaos status` says data-loss, and nothing is
#      re-initialised (a1 and a2 still carry no identity record 5 s later) until
#      `make accept-loss`.
# The node's answers are read as fields (`lab kv`, `chaos status --get`), never as text.
# Starts from a clean slate and ends with make down. Run it under the docker lock.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
failures=0
fail() { echo "ROLLBACK FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "rollback ok: $*"; }
save_a1() { docker exec "$(cid a1)" sh -c 'rm -rf /data/.saved && mkdir /data/.saved && cp -a /data/appendonlydir /data/.saved/'; }
# a1's Redis killed, its AOF directory replaced by the saved copy, started again.
roll_back_a1() {
  make -s kill-acceptor-a1 >/dev/null || fail "kill-acceptor-a1"
  docker run --rm -v "${PROJECT}_a1-data:/data" --entrypoint sh perseus:latest \
    -c 'rm -rf /data/appendonlydir && cp -a /data/.saved/appendonlydir /data/' || fail "restoring a1's copy"
  make -s start-acceptor-a1 >/dev/null || fail "start-acceptor-a1"
}
every_node_answers() { # every_node_answers KEY VALUE
  local n code value
  for n in p1 p2 p3; do
    read -r code value _ <<<"$(kv "$n" get "$1")"
    [ "$code" = 200 ] && [ "$value" = "$2" ] || return 1
  done
}
every_node_data_loss() { # every_node_data_loss KEY: 503 errorCode 310 from every node
  local n code ecode
  for n in p1 p2 p3; do
    read -r code _ ecode _ <<<"$(kv "$n" get "$1")"
    [ "$code" = 503 ] && [ "$ecode" = 310 ] || return 1
  done
}
a1_member() { [ "$(acceptor_state a3 a1)" = member ]; }
# Any host's node says data loss (chaos status, one verdict a line).
says_data_loss() {
  local v
  while read -r v; do [ "$v" = data-loss ] && return 0; done < <(target/release/chaos --project "$PROJECT" --get verdict status)
  return 1
}
serving() { # serving NODE KEY: the key answered (200) or missing (404), not refused
  local code
  read -r code _ <<<"$(kv "$1" get "$2")"
  [ "$code" = 200 ] || [ "$code" = 404 ]
}
fresh() {
  make -s down >/dev/null 2>&1 || true
  make -s up || { fail "make up"; teardown; exit 1; }
}
teardown() { echo "--- make down"; make -s down >/dev/null 2>&1; }
trap 'teardown; exit 1' INT TERM

echo "=== R. a1 rolled back to a copy taken before the write"
fresh
key="rollback-$(date +%s%N)"
save_a1 && echo "a1's data saved"
make -s pause-acceptor-a3 >/dev/null || fail "pause-acceptor-a3"
written p1 create "$key" "a3 frozen"
make -s resume-a3 >/dev/null || fail "resume-a3"
roll_back_a1 && echo "a1 rolled back to its copy and started"
make -s partition-a2 >/dev/null || fail "partition-a2"
never_404_nor_created p3 "$key"
make -s heal >/dev/null || fail "heal"
wait_until 60 a1_member && ok "a1 a member again (caught up)" ||
  fail "a1 is '$(acceptor_state a3 a1)' 60 s after heal"
wait_until 10 every_node_answers "$key" v1 && ok "every node answers v1" || fail "not every node answers v1"

echo "=== K. a3 killed, a1 rolled back while a3 is down, a3 started: two unproven acceptors"
fresh
key="rollback-k-$(date +%s%N)"
save_a1 && echo "a1's data saved"
make -s kill-a3 >/dev/null || fail "kill-a3"
written p1 create "$key" "a3 down"
roll_back_a1 && echo "a1 rolled back to its copy and started (a3 still down)"
# start waits for a healthy p3, which never comes here: two unproven acceptors are data loss,
# so /health answers 503. What counts is that p3 answers at all (next line).
make -s start-a3 >/dev/null 2>&1 || echo "start-a3: p3 not healthy, as expected (data loss)"
wait_until 30 curl -sS -m 2 -o /dev/null "$(node_url p3)/health" || fail "p3 does not answer after start-a3"
never_404_nor_created p3 "$key"
wait_until 20 every_node_data_loss "$key" && ok "every node answers 503 errorCode 310 (data loss)" ||
  fail "not every node answers data loss: $(kv p1 get "$key")"
make -s accept-loss || fail "make accept-loss"
wait_until 20 every_node_answers "$key" v1 && ok "after accept-loss every node answers v1" ||
  fail "after accept-loss: $(kv p1 get "$key")"

echo "=== W. a1 and a2 wiped while a3 never saw the key"
fresh
key="wipe-$(date +%s%N)"
make -s pause-acceptor-a3 >/dev/null || fail "pause-acceptor-a3"
written p1 create "$key" "a3 frozen"
make -s resume-a3 >/dev/null || fail "resume-a3"
for h in a1 a2; do docker exec "$(cid "$h")" redis-cli FLUSHALL >/dev/null; done
echo "FLUSHALL on a1 and a2"
wait_until 20 every_node_data_loss "$key" && ok "every node answers 503 errorCode 310 (data loss)" ||
  fail "not every node answers data loss: $(kv p3 get "$key")"
says_data_loss && ok "chaos status says data-loss" || { fail "chaos status does not say data-loss"; make -s status; }
sleep 5
for h in a1 a2; do
  # Only the nodes' recovering mark (it counts for nothing), never a member again.
  e="$(docker exec "$(cid "$h")" redis-cli HGET perseus-identity state)"
  [ "$e" = recovering ] && ok "$h not re-initialised (marked recovering)" || fail "$h: state '$e', not recovering"
done
r="$(kv p2 create "$key" v2)"; echo "create via p2: $r"
read -r code _ <<<"$r"
[ "$code" = 201 ] && fail "a second create was acknowledged" || ok "the create was refused ($code)"
make -s accept-loss || fail "make accept-loss"
wait_until 20 serving p1 "$key" &&
  ok "serving again after accept-loss" || fail "not serving after accept-loss"

teardown
if [ "$failures" -gt 0 ]; then echo "rollback check: $failures failure(s)"; exit 1; fi
echo "rollback check: passed"
