#!/usr/bin/env bash
# `make etcd-smoke` (part of .ci/run): keeps the etcd side of the testbed working in about a
# minute. make down → make up-etcd → lab run compose/scenarios/etcd-smoke.toml (24 s of load;
# kill the leader at 8 s, start it at 15 s) → make down. lab run fails unless both chaos steps
# worked, loadgen exited 0 and the scenario's [[expect]] blocks hold (no violation; the kill
# and the start hit the same resolved member eN). Then: down leaves nothing of the project.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
out="results/etcd-smoke-$(date -u +%Y%m%dT%H%M%SZ)"
failures=0
fail() { echo "ETCD-SMOKE FAIL: $*" >&2; failures=$((failures + 1)); }
down() { make -s down >/dev/null 2>&1 || fail "make down failed"; }
trap 'down; exit 1' INT TERM

down
if ! make up-etcd; then
  fail "make up-etcd failed"
  down
  exit 1
fi
target/release/lab run compose/scenarios/etcd-smoke.toml --out "$out" --target etcd \
  --system "etcd 3.4" \
  --nodes http://10.77.0.21:2379,http://10.77.0.22:2379,http://10.77.0.23:2379 >"$out.log" 2>&1
rc=$?
grep '^check ' "$out.log" || true
[ "$rc" = 0 ] && echo "etcd-smoke ok: lab run exited 0 (chaos steps ok, loadgen 0, expectations hold)" ||
  { fail "lab run exited $rc (see $out.log)"; tail -30 "$out.log" >&2; }
down
left="$(leftovers | tr '\n' ' ')"
[ -z "${left// /}" ] && echo "etcd-smoke ok: nothing left after down" || fail "left behind after down: $left"
if [ "$failures" -gt 0 ]; then
  echo "etcd-smoke: $failures failure(s); data in $out" >&2
  exit 1
fi
echo "etcd-smoke: passed; data in $out"
