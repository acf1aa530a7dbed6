#!/usr/bin/env bash
# `make compare SYSTEMS="perseus etcd etcd3 zookeeper nats"`: the same load and the same faults
# (COMPARE_SCENARIO, default compose/scenarios/compare.toml: crash the leader, start it,
# isolate the leader, heal, a partition, heal) on each system in turn, one cluster at a time,
# from a clean slate: make down → for each system: make up SYSTEM=s → lab run --store s →
# make down; then lab compare.
# Prints one table (also results/<UTC>-compare/compare.md); each system's folder has its
# throughput plot with the fault spans shaded and its report.html, and compare.png stacks
# them. On a terminal each run shows a progress bar (elapsed, left; which system of how many). Exit code: non-zero
# when a run failed (chaos step, loadgen, violations).
set -uo pipefail
cd "$(dirname "$0")/.."

SCENARIO="${COMPARE_SCENARIO:-compose/scenarios/compare.toml}"
SYSTEMS="${SYSTEMS:-perseus etcd}"
CONNECTIONS="${COMPARE_CONNECTIONS:-1}"
out="results/$(date -u +%Y%m%dT%H%M%SZ)-compare"
# The command `lab results` quotes under the figures (docs/results.md).
export LAB_COMMAND="make compare SYSTEMS=\"$SYSTEMS\""
LAB=target/release/lab
status=0

[ -f "$SCENARIO" ] || { echo "compare: no scenario $SCENARIO" >&2; exit 2; }
down() { make -s down >/dev/null 2>&1 || echo "compare: make down failed" >&2; }
trap 'down; exit 1' INT TERM

echo "=== compare: clean slate (make down)"
down
mkdir -p "$out"

# One system: bring it up, run the scenario into $out/NAME, take it down.
run_on() {
  local name="$1" rc
  echo "=== compare: $name (make up SYSTEM=$name; lab run $SCENARIO)"
  if make up SYSTEM="$name"; then
    LAB_PROGRESS_LABEL="compare: $name ($2 of $3)" $LAB run "$SCENARIO" --out "$out/$name" --store "$name" --target "$name" \
      --connections "$CONNECTIONS" 2>&1 | tee "$out/$name.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" = 0 ] || { echo "compare: the $name run failed (exit $rc)" >&2; status=1; }
  else
    echo "compare: make up SYSTEM=$name failed" >&2
    status=1
  fi
  echo "=== compare: make down"
  down
}

dirs=()
read -ra systems <<<"$SYSTEMS"
i=0
for s in "${systems[@]}"; do
  i=$((i + 1))
  run_on "$s" "$i" "${#systems[@]}"
  [ -f "$out/$s/load.jsonl" ] && dirs+=("$out/$s")
done
if [ ${#dirs[@]} -eq 0 ]; then
  echo "compare: no run produced data" >&2
  exit 1
fi
echo
echo "=== compare: $SCENARIO, side by side (${dirs[*]})"
$LAB compare "${dirs[@]}" --out "$out" || status=1
exit $status
