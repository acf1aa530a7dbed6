#!/usr/bin/env bash
# End-to-end scenario of the Perseus testbed (`make e2e`):
#   down (clean slate) → up → loadgen in the client container for E2E_DURATION (55) s:
#   t≈10 s kill a1 → t≈20 s start a1 → t≈30 s isolate a1 → t≈40 s heal a1 → end → down.
# Asserts: while a1 is killed or isolated, n1 is 0 in every full second; n2 and n3 are above
# zero in every second after warm-up; n1 serves again within RECOVERY_S (5) s of start and of
# heal; kill leaves both containers exited with 137; an isolated p1 still answers the client
# (HTTP 503) but cannot reach a2/a3; heal leaves no PERSEUS rule; loadgen exits 0 (zero
# consistency violations); after down no perseus container, network, volume or host iptables
# rule remains. Prints the per-second table with the faults marked. Then:
#   - a2's Redis container restarted on its own (`docker restart`): `make status` must flag p2
#     as running in a namespace that is no longer a2's, `make up` must repair it, p2 must
#     answer on its published port and a short load must see all three nodes serving;
#   - every other fault kind at once (loss, limit, delay or its clear refusal, one-way cut,
#     client cut, node-only pause, acceptor-only kill, a majorities-ring partition), then
#     `make heal`: no PERSEUS rule, no shaping qdisc, no paused container and no killed acceptor
#     may remain. Output: results/e2e-*/.
set -uo pipefail
cd "$(dirname "$0")/.."

COMPOSE="${COMPOSE:-$(if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi)}"
export COMPOSE
PROJECT="${COMPOSE_PROJECT_NAME:-perseus}"
DURATION="${E2E_DURATION:-55}"
WARMUP="${E2E_WARMUP:-3}"
RECOVERY_S="${RECOVERY_S:-5}"
T_KILL=10 T_START=20 T_ISOLATE=30 T_HEAL=40

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
out="results/e2e-$stamp"
mkdir -p "$out"
events_host="$out/events.jsonl"
events_ctr="/results/e2e-$stamp/events.jsonl" # the same file, as the chaos container sees it
log="$out/loadgen.txt"
failures=0
fail() { echo "E2E FAIL: $*" >&2; failures=$((failures + 1)); }
ok() { echo "e2e ok: $*"; }
chaos() { $COMPOSE --profile chaos run --rm -T chaos --events "$events_ctr" "$@"; }
cid() { # a service's container, running or not (labels: `compose ps` differs between v1 and v2)
  docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
    --filter "label=com.docker.compose.service=$1" --filter "label=com.docker.compose.oneoff=False"
}
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
LOADGEN_DURATION="$DURATION" $COMPOSE --profile load up -d --no-deps --force-recreate client
client="$(cid client)"
[ -n "$client" ] || { fail "no client container"; teardown; exit 1; }

start_ms=""
for _ in $(seq 1 150); do
  start_ms="$(docker logs "$client" 2>/dev/null | sed -n 's/^# start=.* unix_ms=\([0-9]*\).*/\1/p' | head -1)"
  [ -n "$start_ms" ] && break
  sleep 0.1
done
if [ -z "$start_ms" ]; then
  fail "loadgen printed no '# start=... unix_ms=...' header within 15 s"
  docker logs "$client" 2>&1 | tail -20
  teardown
  exit 1
fi
echo "loadgen started at unix_ms=$start_ms"

# Sleeps until loadgen second T (relative to its start).
at() {
  local target=$((start_ms + $1 * 1000)) now
  now="$(now_ms)"
  if [ "$now" -lt "$target" ]; then sleep "$(awk -v d=$((target - now)) 'BEGIN{printf "%.3f", d/1000}')"; fi
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
ev() { # ev COMMAND FIELD → value from the events file (first ok event of that command for a1)
  grep "\"command\":\"$1\"" "$events_host" | grep '"host":"a1"' | grep '"ok":true' | head -1 |
    sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p"
}
kill_ms="$(ev kill unix_ms)"; start_b="$(ev start begin_unix_ms)"
iso_ms="$(ev isolate unix_ms)"; heal_b="$(ev heal begin_unix_ms)"; heal_ms="$(ev heal unix_ms)"
for v in kill_ms start_b iso_ms heal_b heal_ms; do
  [ -n "${!v}" ] || { fail "event $v missing from $events_host"; }
done

awk -F'\t' -v s="$start_ms" -v warm="$WARMUP" -v rec="$RECOVERY_S" \
    -v k="${kill_ms:-0}" -v st="${start_b:-0}" -v i="${iso_ms:-0}" -v hb="${heal_b:-0}" -v h="${heal_ms:-0}" '
  function mark(lo, hi) {
    if (lo >= k && hi <= st) return "killed"
    if (lo >= i && hi <= hb) return "isolated"
    m = ""
    if (k >= lo && k < hi) m = m " kill"
    if (st >= lo && st < hi) m = m " start"
    if (i >= lo && i < hi) m = m " isolate"
    if (h >= lo && h < hi) m = m " heal"
    sub(/^ /, "", m)
    return m
  }
  /^#/ || NF != 5 { next }
  {
    n = $1; lo = s + (n - 1) * 1000; hi = s + n * 1000
    mk = mark(lo, hi); bad = ""
    if ((mk == "killed" || mk == "isolated") && $3 != 0) { bad = bad " n1>0-during-fault"; errs++ }
    if (n >= warm && ($4 <= 0 || $5 <= 0)) { bad = bad " survivor-down"; errs++ }
    if (!rs && lo >= st && $3 > 0) { rs = 1; if (lo > st + rec * 1000) { bad = bad " late-recovery"; errs++ } ; rec_start = n }
    if (!rh && lo >= h && $3 > 0) { rh = 1; if (lo > h + rec * 1000) { bad = bad " late-recovery"; errs++ } ; rec_heal = n }
    if (n >= warm) { tot += $2; cnt++ }
    if (mk == "killed" || mk == "isolated") faultsec[mk]++
    printf "%4d\t%6d\t%6d\t%6d\t%6d\t%s%s\n", n, $2, $3, $4, $5, mk, (bad == "" ? "" : "   <-- " bad)
  }
  BEGIN { print "   s\tcluster\t    n1\t    n2\t    n3\tfault" }
  END {
    if (cnt < 20) { print "E2E FAIL: only " cnt " data seconds after warm-up"; errs++ }
    if (faultsec["killed"] < 3) { print "E2E FAIL: fewer than 3 full seconds of kill"; errs++ }
    if (faultsec["isolated"] < 3) { print "E2E FAIL: fewer than 3 full seconds of isolation"; errs++ }
    if (!rs) { print "E2E FAIL: n1 never served after start"; errs++ }
    if (!rh) { print "E2E FAIL: n1 never served after heal"; errs++ }
    printf "summary: %d s after warm-up, mean cluster throughput %.0f ops/s; n1 back in second %s after start, %s after heal\n", cnt, (cnt ? tot / cnt : 0), rec_start, rec_heal
    exit (errs > 0)
  }' "$log" | tee "$out/table.txt"
[ "${PIPESTATUS[0]}" = 0 ] && ok "per-second assertions hold" || fail "per-second assertions (see the <-- marks)"
grep '^#' "$log" | tail -15

echo "=== e2e: a2's Redis container restarted on its own (docker restart)"
docker restart -t 2 "$(cid a2)" >/dev/null || fail "docker restart a2"
st="$(make -s status 2>&1)"
echo "$st"
if grep -q "p2 runs in a network namespace that is no longer a2's (a2 was restarted on its own)" <<<"$st"; then
  ok "make status flags p2 as detached from a2's namespace"
else fail "make status did not flag the detached p2"; fi
make up 2>&1 | tee "$out/up-repair.txt" | tail -5
grep -q "restarted p2 into a2's current network namespace" "$out/up-repair.txt" &&
  ok "make up repaired p2" || fail "make up did not say it repaired p2"
code="$(curl -s -o /dev/null -w '%{http_code}' -m 3 http://127.0.0.1:8082/health)"
[ "$code" = 200 ] && ok "p2 answers /health on 127.0.0.1:8082 after the repair" ||
  fail "p2 answered '$code' on 127.0.0.1:8082 after make up"
LOADGEN_DURATION=8 $COMPOSE --profile load up -d --no-deps --force-recreate client >/dev/null 2>&1
client="$(cid client)"
code="$(timeout 60 docker wait "$client" || echo timeout)"
docker logs "$client" >"$out/loadgen-after-repair.txt" 2>&1
[ "$code" = 0 ] && ok "load after the repair: exit 0 (no violation)" || fail "load after the repair exited $code"
awk -F'\t' '/^#/ || NF != 5 { next } $1 >= 3 && ($3 <= 0 || $4 <= 0 || $5 <= 0) { bad++ } $1 >= 3 { n++ }
  END { exit !(n >= 3 && bad == 0) }' "$out/loadgen-after-repair.txt" &&
  ok "load after the repair: n1, n2 and n3 all serve in every second from 3 on" ||
  fail "load after the repair: a node did not serve (see $out/loadgen-after-repair.txt)"

echo "=== e2e: every fault kind at once, then make heal"
chaos loss a1 30 || fail "chaos loss a1 30"
chaos limit a2 256kbit || fail "chaos limit a2 256kbit"
if chaos delay a3 50ms 10ms 2>"$out/delay.err"; then ok "delay applied (this kernel has netem)"
elif grep -q sch_netem "$out/delay.err"; then ok "delay refused with a clear error naming sch_netem"
else fail "delay failed without naming sch_netem: $(cat "$out/delay.err")"; fi
chaos isolate-inbound a3 || fail "chaos isolate-inbound a3"
chaos cut-clients a1 || fail "chaos cut-clients a1"
chaos --layer node pause a2 || fail "chaos --layer node pause a2"
chaos --layer acceptor kill a3 || fail "chaos --layer acceptor kill a3"
chaos partition majorities-ring || fail "chaos partition majorities-ring"
make -s status | tee "$out/status-faults.txt"
make -s heal || fail "make heal"
for h in a1 a2 a3; do
  c="$(cid "$h")"
  n="$(docker exec "$c" sh -c 'iptables -S | grep -c PERSEUS')"
  [ "$n" = 0 ] && ok "no PERSEUS rule in $h after heal" || fail "$n PERSEUS rule(s) left in $h"
  q="$(docker exec "$c" tc qdisc show dev eth0)"
  grep -qE 'tbf|netem|htb' <<<"$q" && fail "shaping qdisc left in $h: $q" || ok "no shaping qdisc in $h after heal"
  docker exec "$c" test -e /run/perseus-acceptor.down && fail "$h's acceptor still down after heal" ||
    ok "$h's acceptor runs after heal"
done
paused="$(docker ps -q --filter "label=com.docker.compose.project=$PROJECT" --filter status=paused)"
[ -z "$paused" ] && ok "no paused container after heal" || fail "paused containers left: $paused"

teardown
echo "=== after down: leftovers?"
left_c="$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")"
left_n="$(docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")"
left_v="$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")"
[ -z "$left_c$left_n$left_v" ] && ok "no perseus container, network or volume left" ||
  fail "left behind: containers [$left_c] networks [$left_n] volumes [$left_v]"
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
