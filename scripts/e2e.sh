#!/usr/bin/env bash
# End-to-end scenario of the Perseus testbed (`make e2e`):
#   down (clean slate) → up → loadgen in the client container for E2E_DURATION (70) s; the 30 s after the heal leave room for slow chaos commands on a loaded machine:
#   t≈10 s kill a1 → t≈20 s start a1 → t≈30 s isolate a1 → t≈40 s heal a1 → end → down.
# Docker-level checks here: kill leaves both containers exited with 137; an isolated p1 still
# answers the client (HTTP 503) but cannot reach a2/a3; heal leaves no PERSEUS rule and is
# idempotent; loadgen exits 0; after down no perseus container, network, volume or host
# iptables rule remains. What the recorded load must show (n1 at 0 while a1 is down, n2/n3
# always serving, n1 back within 5 s, no consistency violation) is checked by `lab check`
# against compose/e2e-expect.toml, which also prints the per-second table with the faults
# marked; `lab report` writes the run's report.html and `lab browser-check` opens it in headless
# Chromium (charts drawn, no console error, screenshot report.png kept with the run). Then:
#   - a2's Redis container restarted on its own (`docker restart`): `make status` must flag p2
#     as running in a namespace that is no longer a2's, `make up` must repair it, p2 must
#     answer on its published port and a short load must see all three nodes serving;
#   - every other fault kind at once (loss, limit, delay or its clear refusal, one-way cut,
#     client cut, node-only pause, acceptor-only kill, a majorities-ring partition), then
#     `make heal`; then the remaining kinds at once (the other one-way cut, acceptor-only and
#     node-only cuts, isolation, acceptor-only pause, loss of every packet, a bridge
#     partition, node-only kill, pause of a host), `make heal`; then a killed host, `make heal`.
#     After each heal: no PERSEUS rule, no shaping qdisc, no paused or stopped container and no
#     killed acceptor may remain, and every node is healthy. Output: results/e2e-*/.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

DURATION="${E2E_DURATION:-70}"
T_KILL=10 T_START=20 T_ISOLATE=30 T_HEAL=40
LAB=target/release/lab

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="results/e2e-$stamp"
ctr_out="/results/e2e-$stamp" # the same folder, as the client and chaos containers see it
mkdir -p "$out"
log="$out/loadgen.txt"
failures=0
fail() { echo "E2E FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "e2e ok: $*"; }
chaos() { $COMPOSE --profile chaos run --rm -T chaos --events "$ctr_out/events.jsonl" "$@"; }
now_ms() { date +%s%3N; }

cleanup_done=0
teardown() {
  [ "$cleanup_done" = 1 ] && return
  cleanup_done=1
  echo "--- make down"
  make -s down >/dev/null 2>&1 || $COMPOSE --profile load --profile chaos down -v --remove-orphans -t 2
}
trap 'teardown; exit 1' INT TERM

echo "=== e2e: clean slate, then make up"
make -s down >/dev/null 2>&1 || true
if ! make up; then
  echo "E2E FAIL: make up failed" >&2
  teardown
  exit 1
fi

echo "=== e2e: loadgen for ${DURATION} s in the client container"
LOADGEN_DURATION="$DURATION" LOADGEN_OUT="$ctr_out/load.jsonl" \
  $COMPOSE --profile load up -d --no-deps --force-recreate client
client="$(cid client)"
[ -n "$client" ] || { fail "no client container"; teardown; exit 1; }

if ! start_ms="$($LAB wait-start "$out/load.jsonl" --timeout 15)"; then
  fail "loadgen wrote no start record to $out/load.jsonl within 15 s"
  docker logs "$client" 2>&1 | tail -20
  teardown
  exit 1
fi
echo "loadgen started at unix_ms=$start_ms"

# Sleeps until loadgen second T (relative to its start).
at() {
  local target=$((start_ms + $1 * 1000)) now
  now="$(now_ms)"
  if [ "$now" -lt "$target" ]; then sleep "$(printf '%d.%03d' $(((target - now) / 1000)) $(((target - now) % 1000)))"; fi
}

a1="$(cid a1)" p1="$(cid p1)"

at $T_KILL
echo "=== t=$T_KILL kill a1"
chaos kill a1 || fail "chaos kill a1"
sleep 1
for c in "$a1" "$p1"; do
  st="$(docker inspect -f '{{.Name}} {{.State.Status}} {{.State.ExitCode}}' "$c")"
  case "$st" in *" exited 137") ok "after kill: $st" ;; *) fail "after kill expected exited 137, got: $st" ;; esac
done

at $T_START
echo "=== t=$T_START start a1"
chaos start a1 || fail "chaos start a1"

at $T_ISOLATE
echo "=== t=$T_ISOLATE isolate a1"
chaos isolate a1 || fail "chaos isolate a1"
code="$(docker exec "$client" curl -s -o /dev/null -w '%{http_code}' -m 5 -X PUT \
  --data-urlencode value=probe http://10.77.0.11:8080/v2/keys/e2e-probe-isolated)"
if [ "$code" = 503 ]; then ok "isolated p1 answers the client with 503"; else fail "isolated p1 answered the client with HTTP '$code' (want 503)"; fi
for peer in 10.77.0.12 10.77.0.13; do
  if docker exec "$a1" curl -s -o /dev/null -m 2 "http://$peer:8080/health"; then
    fail "isolated a1/p1 can still reach $peer"
  else ok "isolated a1/p1 cannot reach $peer"; fi
done

at $T_HEAL
echo "=== t=$T_HEAL heal a1"
chaos heal a1 || fail "chaos heal a1"
if docker exec "$a1" iptables -S | grep -q PERSEUS; then fail "PERSEUS rules left in a1 after heal"; else ok "no PERSEUS rule in a1 after heal"; fi
for peer in 10.77.0.12 10.77.0.13; do
  docker exec "$a1" curl -fsS -o /dev/null -m 3 "http://$peer:8080/health" \
    && ok "healed a1/p1 reaches $peer" || fail "healed a1/p1 cannot reach $peer"
done
chaos heal a1 >/dev/null 2>&1 && ok "heal is idempotent" || fail "second heal failed"

echo "=== waiting for loadgen to finish"
code="$(timeout $((DURATION + 60)) docker wait "$client" || echo timeout)"
docker logs "$client" >"$log" 2>&1
if [ "$code" = 0 ]; then ok "loadgen exit code 0 (no consistency violation)"; else fail "loadgen exit code $code"; fi

echo "=== per-second table (second N = [start+N-1 s, start+N s), start unix_ms=$start_ms; killed/isolated = the whole second inside the fault)"
$LAB check "$out" --expect compose/e2e-expect.toml | tee "$out/table.txt"
[ "${PIPESTATUS[0]}" = 0 ] && ok "the recorded load meets compose/e2e-expect.toml" ||
  fail "the recorded load does not meet compose/e2e-expect.toml (see check FAIL above)"
tail -n 15 "$log"

echo "=== the run's report.html in a real browser (headless Chromium): charts drawn, no console error, screenshot kept"
$LAB report "$out" >"$out/report.log" 2>&1 || fail "lab report (see $out/report.log)"
if $LAB browser-check "$out"; then ok "report.html renders in Chromium ($out/report.png)"; else fail "report.html did not render in Chromium"; fi

echo "=== e2e: a2's Redis container restarted on its own (docker restart)"
docker restart -t 2 "$(cid a2)" >/dev/null || fail "docker restart a2"
make -s status 2>&1
netns="$(chaos --get netns status a2)"
[ "$netns" = detached ] && ok "chaos status flags p2 as detached from a2's namespace" ||
  fail "chaos status says a2's namespace is '$netns', not detached"
make up 2>&1 | tee "$out/up-repair.txt" | tail -5
netns="$(chaos --get netns status a2)"
[ "$netns" = shared ] && ok "make up repaired p2 (a2's namespace shared again)" ||
  fail "after make up a2's namespace is '$netns', not shared"
code="$(curl -s -o /dev/null -w '%{http_code}' -m 3 http://127.0.0.1:8082/health)"
[ "$code" = 200 ] && ok "p2 answers /health on 127.0.0.1:8082 after the repair" ||
  fail "p2 answered '$code' on 127.0.0.1:8082 after make up"
mkdir -p "$out/after-repair"
LOADGEN_DURATION=8 LOADGEN_OUT="$ctr_out/after-repair/load.jsonl" \
  $COMPOSE --profile load up -d --no-deps --force-recreate client >/dev/null 2>&1
client="$(cid client)"
code="$(timeout 60 docker wait "$client" || echo timeout)"
docker logs "$client" >"$out/loadgen-after-repair.txt" 2>&1
[ "$code" = 0 ] && ok "load after the repair: exit 0 (no violation)" || fail "load after the repair exited $code"
$LAB check "$out/after-repair" --no-table --expect "others-serve from=2s" --expect "seconds min=3 from=2s" &&
  ok "load after the repair: n1, n2 and n3 all serve in every second from 3 on" ||
  fail "load after the repair: a node did not serve (see $out/loadgen-after-repair.txt)"

# After `make heal`: no PERSEUS rule, no shaping qdisc, no killed acceptor in any host, no
# paused or stopped container, every host healthy again ($1 names the round).
heal_leaves_nothing() {
  local round=$1 h c n q paused stopped
  make -s heal || fail "make heal ($round)"
  for h in a1 a2 a3; do
    c="$(cid "$h")"
    n="$(docker exec "$c" sh -c 'iptables -S | grep -c PERSEUS')"
    [ "$n" = 0 ] && ok "$round: no PERSEUS rule in $h after heal" || fail "$round: $n PERSEUS rule(s) left in $h"
    q="$(docker exec "$c" tc qdisc show dev eth0)"
    grep -qE 'tbf|netem|htb' <<<"$q" && fail "$round: shaping qdisc left in $h: $q" || ok "$round: no shaping qdisc in $h after heal"
    docker exec "$c" test -e /run/perseus-acceptor.down && fail "$round: $h's acceptor still down after heal" ||
      ok "$round: $h's acceptor runs after heal"
  done
  paused="$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter status=paused)"
  [ -z "$paused" ] && ok "$round: no paused container after heal" || fail "$round: paused containers left: $paused"
  stopped="$(for s in a1 a2 a3 p1 p2 p3; do docker ps -q --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$s" --filter status=exited; done)"
  [ -z "$stopped" ] && ok "$round: no stopped host or node after heal" || fail "$round: stopped containers left: $stopped"
  scripts/wait-healthy.sh >/dev/null 2>&1 && ok "$round: p1..p3 healthy after heal" || fail "$round: a node is unhealthy after heal"
}

echo "=== e2e: every fault kind at once, then make heal"
chaos loss a1 30 || fail "chaos loss a1 30"
chaos limit a2 256kbit || fail "chaos limit a2 256kbit"
# chaos exits 3 when the kernel lacks what the fault needs (sch_netem here).
chaos delay a3 50ms 10ms 2>"$out/delay.err"
case $? in
  0) ok "delay applied (this kernel has netem)" ;;
  3) ok "delay refused as unsupported by this kernel: $(cat "$out/delay.err")" ;;
  *) fail "delay failed, and not for want of sch_netem: $(cat "$out/delay.err")" ;;
esac
chaos isolate-inbound a3 || fail "chaos isolate-inbound a3"
chaos cut-clients a1 || fail "chaos cut-clients a1"
chaos --layer node pause a2 || fail "chaos --layer node pause a2"
chaos --layer acceptor kill a3 || fail "chaos --layer acceptor kill a3"
chaos partition majorities-ring || fail "chaos partition majorities-ring"
make -s status | tee "$out/status-faults.txt"
heal_leaves_nothing "round 1"

echo "=== e2e: the remaining fault kinds at once, then make heal"
chaos isolate-outbound a1 || fail "chaos isolate-outbound a1"
chaos --layer acceptor isolate a1 || fail "chaos --layer acceptor isolate a1"
chaos --layer node isolate a2 || fail "chaos --layer node isolate a2"
chaos isolate a3 || fail "chaos isolate a3"
chaos --scope all loss a2 20 || fail "chaos --scope all loss a2 20"
chaos partition bridge || fail "chaos partition bridge"
chaos --layer acceptor pause a3 || fail "chaos --layer acceptor pause a3"
chaos --layer node kill a1 || fail "chaos --layer node kill a1"
chaos pause a2 || fail "chaos pause a2"
make -s status | tee "$out/status-faults-2.txt"
heal_leaves_nothing "round 2"
chaos kill a3 || fail "chaos kill a3"
heal_leaves_nothing "round 3 (killed host)"

teardown
echo "=== after down: leftovers?"
left="$(leftovers | tr '\n' ' ')"
[ -z "${left// /}" ] && ok "no perseus container, network or volume left" || fail "left behind: $left"
if command -v iptables-save >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  if { iptables-save 2>/dev/null; iptables-legacy-save 2>/dev/null || true; } | grep -q PERSEUS; then
    fail "PERSEUS rules on the host"
  else ok "no PERSEUS rule on the host (iptables-save, iptables-legacy-save)"; fi
else
  echo "e2e: note: host iptables-save not checked (not root or no iptables); rules only ever live in container namespaces"
fi

echo "results in $out"
if [ "$failures" -gt 0 ]; then
  echo "=== E2E FAILED: $failures check(s) failed" >&2
  exit 1
fi
echo "=== E2E PASSED"
