#!/usr/bin/env bash
# `make contention`: clients racing on ONE key with read + compare-and-swap increments
# (`--keys shared:1`), 3 clients (one per node) and then 30 (ten per node), on Perseus and then
# on etcd, each on a fresh cluster for LOADGEN_DURATION (30) s. Prints one row per run (`lab
# summary` of the run's load file): requests and 5xx share, errors by kind, the contention
# figures (acknowledged, refused, unknown, failed_but_applied, final value) with the unknown
# share of increments, and the violations; for Perseus also what its nodes' follow-up reads
# proved about writes of unknown outcome (`lab metrics perseus_outcome_resolutions_total`,
# summed over p1..p3). CONTENTION_CONNECTIONS (default "1 10") and CONTENTION_SYSTEMS (default
# "perseus etcd") choose the runs. Output: results/contention-*/. Ends with make down; run it
# under the docker lock.
set -uo pipefail
cd "$(dirname "$0")/.."
DURATION="${LOADGEN_DURATION:-30}"
CONNS="${CONTENTION_CONNECTIONS:-1 10}"
SYSTEMS="${CONTENTION_SYSTEMS:-perseus etcd}"
LAB=target/release/lab
out="results/contention-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"
rows=()
trap 'make -s down >/dev/null 2>&1; exit 1' INT TERM

run() { # run SYSTEM CONNECTIONS_PER_NODE
  local target=load name="$1-$((3 * $2))"
  [ "$1" = etcd ] && target=load-etcd
  make -s down >/dev/null 2>&1 || true
  echo "=== $1, $((3 * $2)) clients on one key, $DURATION s (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  # The client container writes the load file into ./results, mounted at /results.
  LOADGEN_OUT="/$out/$name.jsonl" make -s "$target" KEYS=shared:1 CONNECTIONS="$2" \
    LOADGEN_DURATION="$DURATION" >"$out/$name.log" 2>&1
  local row res=""
  row="$($LAB summary "$out/$name.jsonl" --label "$(printf '%-8s clients=%-3s' "$1" "$((3 * $2))")")" ||
    row="$(printf '%-8s clients=%-3s no summary (see %s)' "$1" "$((3 * $2))" "$out/$name.log")"
  echo "$row" >&2
  if [ "$1" = perseus ]; then
    res="$($LAB metrics perseus_outcome_resolutions_total --by verdict \
      --nodes http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083)"
    echo "# node verdicts on unknown outcomes: ${res:-none}" >&2
    row="$row resolutions: ${res:-none}"
  fi
  rows+=("$row")
}
for s in $SYSTEMS; do
  for c in $CONNS; do run "$s" "$c"; done
done
make -s down >/dev/null 2>&1
echo "--- one key, CAS increments, ${DURATION} s each (load files in $out)"
printf '%s\n' "${rows[@]}"
