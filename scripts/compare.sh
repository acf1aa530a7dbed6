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
#
# With FAULTS="wipe rollback truncate" (any of them) it compares storage faults instead: for
# each system, for each fault, a fresh cluster (make down, make up SYSTEM=s) runs
# compose/scenarios/storage-FAULT.toml into results/<UTC>-compare/<system>-<fault>/, then
# `lab storage` writes storage.md: per system and fault, refused / repaired / silently rejoined,
# every lost acknowledged write, stale reads, downtime, when the node served again. Losing
# data is what these runs measure, so a run's violations do not fail the script; a run that
# produced no data does.
#
# COMPARE_LOCK=FILE (a shared machine): take `flock FILE` around each system's runs only
# (make up … make down, the Docker images rebuilt inside), so that others can use Docker
# between two systems. Never together with an outer flock on the same file (it would wait for
# itself). The time the runs held Docker is printed at the end, apart from the time spent
# waiting for the lock.
set -uo pipefail
cd "$(dirname "$0")/.."

SCENARIO="${COMPARE_SCENARIO:-compose/scenarios/compare.toml}"
SYSTEMS="${SYSTEMS:-perseus etcd}"
CONNECTIONS="${COMPARE_CONNECTIONS:-1}"
out="results/$(date -u +%Y%m%dT%H%M%SZ)-compare"
# The command `lab results` quotes under the figures (docs/results.md).
export LAB_COMMAND="make compare SYSTEMS=\"$SYSTEMS\"${FAULTS:+ FAULTS=\"$FAULTS\"}"
LAB=target/release/lab
status=0

[ -f "$SCENARIO" ] || { echo "compare: no scenario $SCENARIO" >&2; exit 2; }
down() { make -s down >/dev/null 2>&1 || echo "compare: make down failed" >&2; }
# Docker is ours (to clean up on an interrupt) unless we wait for COMPARE_LOCK.
holding=1
[ -z "${COMPARE_LOCK:-}" ] || holding=0
trap '[ "$holding" = 0 ] || down; exit 1' INT TERM

# With COMPARE_LOCK, Docker is someone else's until the lock is ours: no make down before.
if [ -z "${COMPARE_LOCK:-}" ]; then
  echo "=== compare: clean slate (make down)"
  down
fi
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

FAULTS="${FAULTS:-}"
if [ -n "${FAULTS// /}" ]; then
  for f in $FAULTS; do
    case "$f" in
      wipe | rollback | truncate) [ -f "compose/scenarios/storage-$f.toml" ] || { echo "compare: no compose/scenarios/storage-$f.toml" >&2; exit 2; } ;;
      *) echo "compare: FAULTS takes storage faults (wipe rollback truncate); got '$f' (process and network faults: make matrix)" >&2; exit 2 ;;
    esac
  done
  dirs=()
  held=0
  started=$SECONDS
  for s in $SYSTEMS; do
    if [ -n "${COMPARE_LOCK:-}" ]; then
      echo "=== compare: waiting for $COMPARE_LOCK ($s)"
      exec 9>"$COMPARE_LOCK"
      flock 9
      holding=1
      down
    fi
    from=$SECONDS
    for f in $FAULTS; do
      echo "=== compare: $s, $f (make up SYSTEM=$s; lab run compose/scenarios/storage-$f.toml)"
      if make up SYSTEM="$s"; then
        $LAB run "compose/scenarios/storage-$f.toml" --out "$out/$s-$f" --store "$s" --target "$s" \
          --connections "$CONNECTIONS" 2>&1 | tee "$out/$s-$f.log"
        echo "=== compare: the $s $f run exited with ${PIPESTATUS[0]} (violations are what it measures)"
        make -s status SYSTEM="$s" 2>&1 | tee "$out/$s-$f.status" | tail -n 5
        # What each host said about its data when it started again (why it refused, repaired).
        mkdir -p "$out/$s-$f/hosts"
        for c in $(docker ps -aq --filter "label=com.docker.compose.project=${COMPOSE_PROJECT_NAME:-perseus}"); do
          name=$(docker inspect -f '{{index .Config.Labels "com.docker.compose.service"}}' "$c")
          docker logs --tail 300 "$c" >"$out/$s-$f/hosts/$name.log" 2>&1
        done
      else
        echo "compare: make up SYSTEM=$s failed" >&2
        status=1
      fi
      echo "=== compare: make down"
      down
      if [ -f "$out/$s-$f/load.jsonl" ]; then dirs+=("$out/$s-$f"); else status=1; fi
    done
    held=$((held + SECONDS - from))
    echo "=== compare: $s took $((SECONDS - from)) s"
    if [ -n "${COMPARE_LOCK:-}" ]; then
      holding=0
      flock -u 9
      exec 9>&-
    fi
  done
  [ ${#dirs[@]} -gt 0 ] || { echo "compare: no run produced data" >&2; exit 1; }
  echo
  echo "=== compare: storage faults, side by side"
  $LAB storage "${dirs[@]}" --out "$out" || status=1
  took="The runs (make up, the scenario, make status, make down per system and fault) took $held s; $((SECONDS - started)) s in all, the rest waiting for the lock."
  echo "=== compare: $took"
  [ -f "$out/storage.md" ] && printf '\n%s\n' "$took" >>"$out/storage.md"
  exit $status
fi

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
