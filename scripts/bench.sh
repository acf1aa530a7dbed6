#!/usr/bin/env bash
# `make bench`: the healthy cluster's throughput and latency, no faults. Runs the load
# generator in the client container once per level of BENCH_CONNECTIONS (connections per
# node, default "1 4 16") for BENCH_DURATION seconds each (default 20), all in one run, and
# prints cluster iterations/s, the ratio to the first level, and iteration latency
# percentiles. Output kept in results/bench-<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE="${COMPOSE:-$(if docker compose version >/dev/null 2>&1; then echo "docker compose"; else echo docker-compose; fi)}"
PROJECT="${COMPOSE_PROJECT_NAME:-perseus}"
LEVELS="${BENCH_CONNECTIONS:-1 4 16}"
DURATION="${BENCH_DURATION:-20}"
out="results/bench-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

client_id() {
  docker ps -aq --filter "label=com.docker.compose.project=$PROJECT" \
    --filter label=com.docker.compose.service=client --filter label=com.docker.compose.oneoff=False
}

rows=()
for c in $LEVELS; do
  echo "=== bench: $c connection(s) per node, ${DURATION} s"
  LOADGEN_CONNECTIONS="$c" LOADGEN_DURATION="$DURATION" \
    $COMPOSE --profile load up -d --no-deps --force-recreate client >/dev/null 2>&1
  id="$(client_id)"
  [ -n "$id" ] || { echo "bench: no client container" >&2; exit 1; }
  code="$(docker wait "$id")"
  docker logs "$id" >"$out/loadgen-$c.txt" 2>&1
  grep -E '^# (iterations|latency_ms iteration|errors|violations)' "$out/loadgen-$c.txt" || true
  [ "$code" = 0 ] || { echo "bench: the load generator exited with $code (see $out/loadgen-$c.txt)" >&2; exit 1; }
  rate="$(sed -n 's/^# iterations total=[0-9]* mean_per_s=\([0-9.]*\).*/\1/p' "$out/loadgen-$c.txt")"
  lat="$(sed -n 's/^# latency_ms iteration .* p50=\([0-9.]*\) p90=[0-9.]* p99=\([0-9.]*\) max=\([0-9.]*\).*/\1 \2 \3/p' "$out/loadgen-$c.txt")"
  [ -n "$rate" ] && [ -n "$lat" ] || { echo "bench: no summary in $out/loadgen-$c.txt" >&2; exit 1; }
  rows+=("$c $rate $lat")
done

{
  echo "# bench on $(nproc) cores, ${DURATION} s per level, 3 nodes, no faults ($(date -u +%FT%TZ))"
  printf '%-12s %8s %14s %8s %9s %9s %9s\n' "conn/node" clients "iterations/s" ratio "p50 ms" "p99 ms" "max ms"
  first=""
  for row in "${rows[@]}"; do
    set -- $row
    [ -n "$first" ] || first="$2"
    awk -v c="$1" -v r="$2" -v f="$first" -v p50="$3" -v p99="$4" -v mx="$5" \
      'BEGIN { printf "%-12s %8d %14.0f %7.2fx %9.2f %9.2f %9.2f\n", c, 3*c, r, r/f, p50, p99, mx }'
  done
} | tee "$out/bench.txt"
