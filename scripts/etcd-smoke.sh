#!/usr/bin/env bash
# `make etcd-smoke` (part of .ci/run): keeps the etcd side of the testbed working in about a
# minute. make down → make up-etcd → lab run compose/scenarios/etcd-smoke.toml (24 s of load;
# kill the leader at 8 s, start it at 15 s) → make down. Asserts: lab exits 0 (both chaos
# steps ok, loadgen exit 0, no consistency violation), the kill and the start name the same
# resolved host eN, and down leaves no etcd container or volume.
set -uo pipefail
cd "$(dirname "$0")/.."
PROJECT="${COMPOSE_PROJECT_NAME:-perseus}"
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
grep '^| ' "$out/report.md" 2>/dev/null | head -4 || true
[ "$rc" = 0 ] && echo "etcd-smoke ok: lab run exited 0 (chaos steps ok, loadgen 0, no violation)" ||
  { fail "lab run exited $rc (see $out.log)"; tail -30 "$out.log" >&2; }
killed="$(sed -n 's/.*"command":"kill","host":"\(e[123]\)","ok":true.*/\1/p' "$out/events.jsonl" 2>/dev/null | head -1)"
started="$(sed -n 's/.*"command":"start","host":"\(e[123]\)","ok":true.*/\1/p' "$out/events.jsonl" 2>/dev/null | head -1)"
if [ -n "$killed" ] && [ "$killed" = "$started" ]; then
  echo "etcd-smoke ok: kill leader hit $killed, start leader started $started"
else
  fail "events: kill leader hit [${killed}], start leader started [${started}] (see $out/events.jsonl)"
fi
down
left="$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")$(docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT")"
[ -z "$left" ] && echo "etcd-smoke ok: nothing left after down" || fail "left behind after down: $left"
if [ "$failures" -gt 0 ]; then
  echo "etcd-smoke: $failures failure(s); data in $out" >&2
  exit 1
fi
echo "etcd-smoke: passed; data in $out"
