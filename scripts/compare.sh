#!/usr/bin/env bash
# `make compare`: the same load and the same faults (COMPARE_SCENARIO, default
# compose/scenarios/compare.toml: crash the leader, start it, isolate the leader, heal) on
# Perseus and then on a 3-member etcd cluster, one cluster at a time, from a clean slate:
#   make down → make up → lab run (Perseus) → make down → make up-etcd → lab run (etcd) →
#   make down → lab compare.
# Prints one table (also results/<UTC>-compare/compare.md) and stacks both throughput plots in
# compare.png. Exit code: non-zero when a run failed (chaos step, loadgen, violations).
set -uo pipefail
cd "$(dirname "$0")/.."

SCENARIO="${COMPARE_SCENARIO:-compose/scenarios/compare.toml}"
ETCD_NODES="${ETCD_NODES:-http://10.77.0.21:2379,http://10.77.0.22:2379,http://10.77.0.23:2379}"
PERSEUS_NODES="${PERSEUS_NODES:-http://10.77.0.11:8080,http://10.77.0.12:8080,http://10.77.0.13:8080}"
CONNECTIONS="${COMPARE_CONNECTIONS:-1}"
out="results/$(date -u +%Y%m%dT%H%M%SZ)-compare"
LAB=target/release/lab
status=0

[ -f "$SCENARIO" ] || { echo "compare: no scenario $SCENARIO" >&2; exit 2; }
down() { make -s down >/dev/null 2>&1 || echo "compare: make down failed" >&2; }
trap 'down; exit 1' INT TERM

echo "=== compare: clean slate (make down)"
down
mkdir -p "$out"

# One cluster: bring it up with `make UP_TARGET`, run the scenario into $out/NAME, take it down.
run_on() {
  local name="$1" up_target="$2" nodes="$3" target="$4" system="$5" rc
  echo "=== compare: $name (make $up_target; lab run $SCENARIO)"
  if make "$up_target"; then
    $LAB run "$SCENARIO" --out "$out/$name" --nodes "$nodes" --connections "$CONNECTIONS" \
      --system "$system" --target "$target" 2>&1 | tee "$out/$name.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || { echo "compare: the $name run failed (exit $rc)" >&2; status=1; }
  else
    echo "compare: make $up_target failed" >&2
    status=1
  fi
  echo "=== compare: make down"
  down
}

run_on perseus up "$PERSEUS_NODES" perseus "Perseus (CASPaxos, leaderless)"
run_on etcd up-etcd "$ETCD_NODES" etcd "etcd 3.4 (Raft, v2 API)"

dirs=()
for d in "$out/perseus" "$out/etcd"; do [ -f "$d/load.jsonl" ] && dirs+=("$d"); done
if [ ${#dirs[@]} -eq 0 ]; then
  echo "compare: no run produced data" >&2
  exit 1
fi
echo
echo "=== compare: $SCENARIO, side by side (${dirs[*]})"
$LAB compare "${dirs[@]}" --out "$out" || status=1
exit $status
