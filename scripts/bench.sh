#!/usr/bin/env bash
# `make bench`: the healthy cluster's throughput and latency, no faults. Runs the load
# generator in the client container once per level of BENCH_CONNECTIONS (connections per
# node, default "1 4 16") for BENCH_DURATION seconds each (default 20), all in one run; `lab
# bench` prints cluster iterations/s, the ratio to the first level, and iteration latency
# percentiles from the recorded summaries. Output kept in results/bench-<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

LEVELS="${BENCH_CONNECTIONS:-1 4 16}"
DURATION="${BENCH_DURATION:-20}"
name="bench-$(date -u +%Y%m%dT%H%M%SZ)"
out="results/$name"
mkdir -p "$out"

files=()
for c in $LEVELS; do
  echo "=== bench: $c connection(s) per node, ${DURATION} s"
  LOADGEN_CONNECTIONS="$c" LOADGEN_DURATION="$DURATION" LOADGEN_OUT="/results/$name/load-$c.jsonl" \
    $COMPOSE --profile load up -d --no-deps --force-recreate client >/dev/null 2>&1
  id="$(cid client)"
  [ -n "$id" ] || { echo "bench: no client container" >&2; exit 1; }
  code="$(docker wait "$id")"
  docker logs "$id" >"$out/loadgen-$c.txt" 2>&1
  grep -E '^# (iterations|latency_ms iteration|errors|violations)' "$out/loadgen-$c.txt" || true
  [ "$code" = 0 ] || { echo "bench: the load generator exited with $code (see $out/loadgen-$c.txt)" >&2; exit 1; }
  files+=("$out/load-$c.jsonl")
done

target/release/lab bench "${files[@]}" | tee "$out/bench.txt"
