#!/usr/bin/env bash
# The testbed on Docker Swarm, end to end (`make swarm-check`, CI): on this engine, as a
# single-node swarm,
#   make up ENGINE=swarm → make load ENGINE=swarm LOADGEN_DURATION=30, during which
#   t≈5 s make kill-a1, t≈12 s make start-a1, t≈17 s make partition-a2, t≈24 s make heal-a2
#   (all ENGINE=swarm) → lab check against compose/swarm-expect.toml (the faulted column at 0,
#   n3 always serving, recovery within 5 s, no violation) → plain `make up` must refuse while
#   the stack runs → make down ENGINE=swarm, which must leave no service, container, network,
#   volume or swarm state behind: the engine's swarm state must be what it was before.
# Refuses to start while a Compose project runs on the engine (entering swarm mode would disturb
# its networks). The swarm state is restored even when a step fails or the run is interrupted.
# Run it under the machine's docker lock; it does not take the lock itself.
set -uo pipefail
cd "$(dirname "$0")/.."

LAB=target/release/lab
DURATION=30 T_KILL=5 T_START=12 T_ISOLATE=17 T_HEAL=24
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="results/swarm-check-$stamp"
failures=0
fail() { echo "SWARM-CHECK FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "swarm-check ok: $*"; }
swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}'; }

scripts/swarm.sh refuse-if-compose || exit 2
before="$(swarm_state)"
gw_before="$(docker network ls -q --filter name='^docker_gwbridge$')"
mkdir -p "$out"
echo "=== swarm-check: engine swarm state before: $before; results in $out"

load_pid=""
restored=0
restore() {
  [ "$restored" = 1 ] && return
  restored=1
  [ -n "$load_pid" ] && kill "$load_pid" 2>/dev/null
  echo "=== make down ENGINE=swarm"
  make -s down ENGINE=swarm 2>&1 | tee "$out/down.txt"
  if [ "$(swarm_state)" != "$before" ] && [ "$before" = inactive ]; then
    echo "swarm-check: down left the engine in swarm mode: leaving it" >&2
    docker swarm leave --force >/dev/null 2>&1
    [ -z "$gw_before" ] && docker network rm docker_gwbridge >/dev/null 2>&1
  fi
}
trap 'restore' EXIT
trap 'exit 1' INT TERM

echo "=== make up ENGINE=swarm"
if ! make up ENGINE=swarm 2>&1 | tee "$out/up.txt"; then
  fail "make up ENGINE=swarm"
  exit 1
fi
make -s status ENGINE=swarm | tee "$out/status-up.txt"
healthy="$(scripts/swarm.sh chaos --get healthy status a1)"
engine="$(scripts/swarm.sh chaos --get engine status a1)"
case "$healthy $engine" in
  "true local" | "true unix://"*) ok "status shows a1 healthy and its engine ($engine)" ;;
  *) fail "status does not show a1 healthy with its engine (healthy: $healthy, engine: $engine)" ;;
esac

echo "=== plain make up must refuse while the stack runs"
if make -s up >"$out/compose-up.txt" 2>&1; then
  fail "make up (Compose) started while the swarm stack runs"
  make -s down >/dev/null 2>&1
else
  # make up runs the guard first; its refusal exits 3 (scripts/swarm.sh).
  scripts/swarm.sh guard 2>>"$out/compose-up.txt"
  [ $? = 3 ] && ok "make up refuses: the swarm stack runs ($out/compose-up.txt)" ||
    fail "make up failed without the refusal: $(tail -3 "$out/compose-up.txt")"
fi

echo "=== make load ENGINE=swarm LOADGEN_DURATION=$DURATION (in the background)"
export CHAOS_EVENTS="$out/events.jsonl"
LOADGEN_OUT="$out/load.jsonl" make -s load ENGINE=swarm LOADGEN_DURATION="$DURATION" >"$out/loadgen.txt" 2>&1 &
load_pid=$!
if ! start_ms="$($LAB wait-start "$out/load.jsonl" --timeout 90)"; then
  fail "the load generator wrote no start record within 90 s"
  tail -20 "$out/loadgen.txt" >&2
  exit 1
fi
at() {
  local target=$((start_ms + $1 * 1000)) now
  now="$(date +%s%3N)"
  if [ "$now" -lt "$target" ]; then sleep "$(printf '%d.%03d' $(((target - now) / 1000)) $(((target - now) % 1000)))"; fi
}
a1="$(docker ps -aq --filter label=com.docker.swarm.service.name=perseus_a1 | head -1)"

at $T_KILL
echo "=== t=$T_KILL make kill-a1 ENGINE=swarm"
make -s kill-a1 ENGINE=swarm || fail "make kill-a1 ENGINE=swarm"
sleep 1
st="$(docker inspect -f '{{.State.Status}} {{.State.ExitCode}}' "$a1")"
[ "$st" = "exited 137" ] && ok "a1's container exited with 137 and stays down (restart policy none)" ||
  fail "after kill a1 expected exited 137, got: $st"

at $T_START
echo "=== t=$T_START make start-a1 ENGINE=swarm"
make -s start-a1 ENGINE=swarm || fail "make start-a1 ENGINE=swarm"

at $T_ISOLATE
echo "=== t=$T_ISOLATE make partition-a2 ENGINE=swarm"
make -s partition-a2 ENGINE=swarm || fail "make partition-a2 ENGINE=swarm"
make -s status ENGINE=swarm | tee "$out/status-partition.txt"

at $T_HEAL
echo "=== t=$T_HEAL make heal-a2 ENGINE=swarm"
make -s heal-a2 ENGINE=swarm || fail "make heal-a2 ENGINE=swarm"

echo "=== waiting for the load to finish"
wait "$load_pid"
code=$?
load_pid=""
[ "$code" = 0 ] && ok "make load ENGINE=swarm exited 0 (no consistency violation)" ||
  fail "make load ENGINE=swarm exited $code (see $out/loadgen.txt)"
echo "=== per-second table (start unix_ms=$start_ms)"
$LAB check "$out" --expect compose/swarm-expect.toml | tee "$out/table.txt"
[ "${PIPESTATUS[0]}" = 0 ] && ok "the recorded load meets compose/swarm-expect.toml" ||
  fail "the recorded load does not meet compose/swarm-expect.toml"

restore
echo "=== after down: leftovers?"
after="$(swarm_state)"
[ "$after" = "$before" ] && ok "swarm state $after, as before" || fail "swarm state $after, was $before"
left="$(docker ps -aq --filter label=com.docker.stack.namespace=perseus) $(docker volume ls -q --filter label=com.docker.stack.namespace=perseus) $(docker network ls -q --filter label=com.docker.stack.namespace=perseus)"
[ -z "${left// /}" ] && ok "no stack container, volume or network left" || fail "left behind: $left"
if [ "$after" = active ]; then
  docker service ls -q --filter label=com.docker.stack.namespace=perseus | grep -q . && fail "stack services left"
fi
if [ -z "$gw_before" ]; then
  [ -z "$(docker network ls -q --filter name='^docker_gwbridge$')" ] && ok "no docker_gwbridge left" ||
    fail "docker_gwbridge left behind"
fi

if [ "$failures" -gt 0 ]; then
  echo "=== SWARM-CHECK FAILED: $failures check(s) failed (results in $out)" >&2
  exit 1
fi
echo "=== SWARM-CHECK PASSED (results in $out)"
