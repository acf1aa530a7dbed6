#!/usr/bin/env bash
# `make matrix SYSTEMS="perseus etcd" FAULTS="kill isolate pause" RUNS=10 [SEED=1]`: every
# system × every fault, RUNS times each, from a fresh cluster every run (make down, then the
# system's up target: new containers, volumes and keys), the fault hitting the leader at a
# seeded random offset (MATRIX_AT_MIN..+MATRIX_AT_SPREAD ms), held MATRIX_HOLD s, then
# MATRIX_AFTER s of load after the recovery. Runs go round by round (run 1 of every
# combination, then run 2, …) so that an interrupted matrix still covers every combination.
# Writes results/<UTC>-matrix/ (runs/<system>-<fault>-<i>/ are `lab run` folders) and, at the
# end, `lab matrix` turns the finished runs into matrix.md, matrix.json and matrix.png.
# Prints an estimate first and progress after every run; on a terminal, a progress bar with
# the time elapsed and left (scripts/lib.sh progress_start). Ctrl-C stops the run in progress,
# heals, takes the cluster down and still writes the results of the finished runs.
# Needs the Docker engine to itself (one cluster at a time): hold the shared lock around it.
set -uo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

SYSTEMS="${SYSTEMS:-perseus etcd}"
FAULTS="${FAULTS:-kill isolate pause}"
RUNS="${RUNS:-10}"
SEED="${SEED:-1}"
HOLD_S="${MATRIX_HOLD:-8}"
AFTER_S="${MATRIX_AFTER:-15}"
AT_MIN_MS="${MATRIX_AT_MIN:-7000}"
AT_SPREAD_MS="${MATRIX_AT_SPREAD:-3000}"
CONNECTIONS="${MATRIX_CONNECTIONS:-1}"
# Seconds a run costs besides its load (down, up until healthy, report): measured on the
# project's 2-core machine; the estimate is corrected by the measured pace as runs finish.
OVERHEAD_S="${MATRIX_OVERHEAD:-30}"
LAB=target/release/lab
CHAOS=target/release/chaos
out="${MATRIX_OUT:-results/$(date -u +%Y%m%dT%H%M%SZ)-matrix}"
# The command `lab results` quotes under the figures (docs/results.md).
export LAB_COMMAND="make matrix SYSTEMS=\"$SYSTEMS\" FAULTS=\"$FAULTS\" RUNS=$RUNS SEED=$SEED"

die() { echo "matrix: $*" >&2; exit 2; }
case "$RUNS" in '' | *[!0-9]*) die "RUNS must be a whole number (got '$RUNS')" ;; esac
[ "$RUNS" -ge 1 ] || die "RUNS must be at least 1"
case "$SEED" in '' | *[!0-9]*) die "SEED must be a whole number (got '$SEED')" ;; esac
for tool in "$LAB" "$CHAOS"; do [ -x "$tool" ] || die "$tool is missing: run make binaries"; done
# The plan: every run's scenario (the fault on the leader, then what undoes it) and its
# matrix-run.json, seeded, in the order to run them (lab/src/plan.rs). lab refuses an unknown
# system or fault, naming it.
mkdir -p "$out/runs" || die "cannot create $out"
"$LAB" matrix-plan "$out" --systems "$SYSTEMS" --faults "$FAULTS" --runs "$RUNS" --seed "$SEED" \
  --hold "${HOLD_S}s" --after "${AFTER_S}s" --at-min "${AT_MIN_MS}ms" --spread "${AT_SPREAD_MS}ms" \
  >/dev/null || die "no plan (see above)"

read -ra systems <<<"$SYSTEMS"
read -ra faults <<<"$FAULTS"
total=$((RUNS * ${#systems[@]} * ${#faults[@]}))
# Load per run: the fault offset (mean), the hold and the time after.
load_s=$(((AT_MIN_MS + AT_SPREAD_MS / 2) / 1000 + HOLD_S + AFTER_S))
estimate_s=$((total * (load_s + OVERHEAD_S)))
clock() { date -u -d "@$1" +%H:%M; }
mins() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

{
  echo "Date: $(date -u +%Y-%m-%dT%H:%MZ). Commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')."
  echo "Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GB", $2 / 1048576}' /proc/meminfo) memory."
  echo "Settings: SYSTEMS=\"$SYSTEMS\" FAULTS=\"$FAULTS\" RUNS=$RUNS SEED=$SEED; the fault hits the leader"
  echo "${AT_MIN_MS}–$((AT_MIN_MS + AT_SPREAD_MS)) ms into the load, lasts ${HOLD_S} s, then ${AFTER_S} s of load;"
  echo "$CONNECTIONS client(s) per node; a fresh cluster (make down + up) for every run."
} >"$out/header.md"

echo "=== matrix: ${#systems[@]} system(s) × ${#faults[@]} fault(s) × $RUNS run(s) = $total runs"
echo "=== matrix: estimate $(mins "$estimate_s") (about ${load_s} s of load + ${OVERHEAD_S} s of down/up per run), until about $(clock $(($(date +%s) + estimate_s))) UTC"
echo "=== matrix: results in $out"
progress_start "$out/progress.feed" "$total" matrix $((load_s + OVERHEAD_S))

interrupted=0
trap 'interrupted=1' INT TERM
down() { make -s down >/dev/null 2>&1 || echo "matrix: make down failed" >&2; }

# Stops here when Ctrl-C came during the last command.
check_interrupt() {
  if [ "$interrupted" = 1 ]; then
    progress_end
    echo
    echo "=== matrix: interrupted: healing, taking the cluster down, keeping the finished runs"
    [ -n "${current_target:-}" ] && "$CHAOS" --target "$current_target" heal >/dev/null 2>&1
    return 0
  fi
  return 1
}

began=$(date +%s)
done_runs=0
stopped=0
while IFS=$'\t' read -r -u 3 dir system fault at_s; do
  i=$((done_runs + 1))
  progress_say "=== matrix: run $i of $total: $system, $fault at $at_s s"
  progress_now "$system $fault run $(basename "$dir")"
  current_target=""
  down
  check_interrupt && { stopped=1; break; }
  if ! make -s -o images up SYSTEM="$system" >"$dir/up.log" 2>&1; then
    check_interrupt && { stopped=1; break; }
    progress_say "matrix: bringing $system up failed (see $dir/up.log); run skipped"
    done_runs=$((done_runs + 1))
    progress_step
    continue
  fi
  current_target="$system"
  "$LAB" run "$dir/scenario.toml" --out "$dir" --store "$system" \
    --connections "$CONNECTIONS" --target "$system" \
    >"$dir/lab.log" 2>&1
  rc=$?
  check_interrupt && { stopped=1; break; }
  echo "$rc" >"$dir/done"
  [ "$rc" = 0 ] || progress_say "matrix: lab run exited with $rc (see $dir/lab.log)"
  done_runs=$((done_runs + 1))
  progress_step
  elapsed=$(($(date +%s) - began))
  remaining=$((elapsed * (total - done_runs) / done_runs))
  progress_say "=== matrix: $done_runs of $total done, elapsed $(mins "$elapsed"), remaining about $(mins "$remaining") (until $(clock $(($(date +%s) + remaining))) UTC)"
done 3<"$out/plan.tsv"
trap - INT TERM
progress_end
down
elapsed=$(($(date +%s) - began))
echo "=== matrix: $done_runs run(s) in $(mins "$elapsed") (estimate was $(mins "$estimate_s")); writing $out/matrix.md"
"$LAB" matrix "$out"
status=$?
[ "$stopped" = 1 ] && status=130
exit $status
