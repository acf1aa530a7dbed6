#!/usr/bin/env bash
# `make smoke SYSTEM=s` (CI runs it for every system): make down → make up SYSTEM=s → lab run
# compose/scenarios/smoke.toml --store s (24 s of load; kill the leader at 8 s, start it at
# 15 s) → make down. Fails when lab run fails (a chaos step failed, violations, an expectation
# of the scenario broke), when a node column never served in the whole run, or when down leaves
# anything behind. About a minute per system, plus the image builds.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
system="${1:-perseus}"
out="results/smoke-$system-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p results
failures=0
fail() { echo "SMOKE FAIL ($system): $*" >&2; failures=$((failures + 1)); }
down() { make -s down >/dev/null 2>&1 || fail "make down failed"; }
trap 'down; exit 1' INT TERM

down
# `make smoke` built the images first (its prerequisite): do not build them again here.
if ! make -s -o images up SYSTEM="$system"; then
  fail "make up SYSTEM=$system failed"
  down
  exit 1
fi
target/release/lab run compose/scenarios/smoke.toml --out "$out" --store "$system" >"$out.log" 2>&1
rc=$?
# The scenario's verdicts, as lab run judged them (the per-second table is in $out.log).
target/release/lab check "$out" --no-table --expect compose/scenarios/smoke.toml || true
[ "$rc" = 0 ] && echo "smoke $system ok: lab run exited 0 (chaos steps ok, the expectations hold)" ||
  { fail "lab run exited $rc (see $out.log)"; tail -30 "$out.log" >&2; }
# Every node column served in some second.
if [ ! -f "$out/load.jsonl" ]; then
  fail "no $out/load.jsonl"
elif target/release/lab check "$out" --no-table --expect each-node-serves; then
  echo "smoke $system ok: every node column served"
else fail "a node column never served (lab check above)"
fi
down
left="$(leftovers | tr '\n' ' ')"
[ -z "${left// /}" ] && echo "smoke $system ok: nothing left after down" || fail "left behind after down: $left"
if [ "$failures" -gt 0 ]; then
  echo "smoke $system: $failures failure(s); data in $out" >&2
  exit 1
fi
echo "smoke $system: passed; data in $out"
