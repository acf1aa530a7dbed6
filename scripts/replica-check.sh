#!/usr/bin/env bash
# `make replica-check`: a deliberately diverged replica is reported. On Galera: a short register
# load whose end-of-run replica comparison must find the three hosts' copies equal; then one
# key changed on g2 alone (wsrep_on=OFF: the statement is not replicated) and the comparison
# run again (loadgen --compare-replicas-only, same run id): it must name node 2's copy as a
# replica-divergence and exit 1. Leaves the testbed down. About a minute, plus `make up`.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
failures=0
fail() { echo "REPLICA-CHECK FAIL: $*" >&2; failures=$((failures + 1)); }
down() { make -s down >/dev/null 2>&1 || fail "make down failed"; }
trap 'down; exit 1' INT TERM

down
make -s -o images up SYSTEM=galera || { fail "make up SYSTEM=galera failed"; down; exit 1; }
run="replica-check-$(date -u +%Y%m%dT%H%M%SZ)"
args=(--system galera --run-id "$run" --keys shared:1 --connections 2)
out="$(target/release/loadgen "${args[@]}" --workload register --duration 5 2>&1)"
echo "$out" | grep '^# replicas' || fail "the run printed no replica comparison"
echo "$out" | grep -q '^# replicas: .* 0 divergences$' || fail "replicas differ after a clean run"
g2="$(docker ps -q --filter label=com.docker.compose.service=g2)"
[ -n "$g2" ] || fail "no g2 container"
docker exec "$g2" mariadb -uroot perseus \
  -e "SET SESSION wsrep_on = OFF; UPDATE kv SET v = -7 WHERE k = '$run-s0'" ||
  fail "could not change g2's copy"
out="$(target/release/loadgen "${args[@]}" --compare-replicas-only 2>&1)"
rc=$?
echo "$out"
[ "$rc" = 1 ] || fail "the comparison exited $rc, not 1"
echo "$out" | grep -q "^# replica divergence on node 2: replica-divergence key=$run-s0 .*got=\[n2 holds -7\]" ||
  fail "node 2's changed copy was not reported"
down
if [ "$failures" -gt 0 ]; then
  echo "replica-check: $failures failure(s)" >&2
  exit 1
fi
echo "replica-check: passed (a clean run's replicas agree; g2's changed copy reported)"
