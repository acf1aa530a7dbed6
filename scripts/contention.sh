#!/usr/bin/env bash
# `make contention`: clients racing on ONE key with read + compare-and-swap increments
# (`--keys shared:1`), 3 clients (one per node) and then 30 (ten per node), on Perseus and then
# on etcd, each on a fresh cluster for LOADGEN_DURATION (30) s. Prints one row per run: 5xx
# share, errors by kind, the contention figures (acknowledged, refused, unknown,
# failed_but_applied, final value) with the unknown share of increments, and the violations;
# for Perseus also what its nodes' follow-up reads proved about writes of unknown outcome
# (`perseus_outcome_resolutions_total`, summed over p1..p3). CONTENTION_CONNECTIONS (default
# "1 10") and CONTENTION_SYSTEMS (default "perseus etcd") choose the runs. Ends with make down;
# run it under the docker lock.
set -uo pipefail
cd "$(dirname "$0")/.."
DURATION="${LOADGEN_DURATION:-30}"
CONNS="${CONTENTION_CONNECTIONS:-1 10}"
SYSTEMS="${CONTENTION_SYSTEMS:-perseus etcd}"
rows=()
trap 'make -s down >/dev/null 2>&1; exit 1' INT TERM

# The nodes' outcome verdicts, summed over p1..p3 (published on 127.0.0.1:8081..8083).
verdicts() {
  for port in 8081 8082 8083; do
    curl -s --max-time 5 "http://127.0.0.1:$port/metrics" || true
  done | awk '/^perseus_outcome_resolutions_total\{/ {
      match($0, /verdict="[^"]*"/); v = substr($0, RSTART + 9, RLENGTH - 10); n[v] += $NF
    }
    END { for (v in n) printf "%s=%d ", v, n[v] }'
}

run() { # run SYSTEM CONNECTIONS_PER_NODE
  local target=load
  [ "$1" = etcd ] && target=load-etcd
  make -s down >/dev/null 2>&1 || true
  echo "=== $1, $((3 * $2)) clients on one key, $DURATION s (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
  local out
  out="$(make -s "$target" KEYS=shared:1 CONNECTIONS="$2" LOADGEN_DURATION="$DURATION" 2>&1)"
  grep '^#' <<<"$out" | grep -E '^# (requests|errors|contention keys|violations|result)' >&2
  local req err con vio share res=""
  req="$(grep -m1 '^# requests' <<<"$out" | sed 's/^# requests //')"
  err="$(grep -m1 '^# errors' <<<"$out" | sed 's/^# errors //')"
  con="$(grep -m1 '^# contention keys' <<<"$out" | sed 's/^# contention keys=[^ ]* //')"
  vio="$(grep -m1 '^# violations' <<<"$out" | sed 's/^# violations //')"
  share="$(awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } }
    END { if (f["increments_sent"] > 0) printf "%.3f", 100 * f["unknown"] / f["increments_sent"]; else print "-" }' <<<"$con")"
  if [ "$1" = perseus ]; then
    res="$(verdicts)"
    echo "# node verdicts on unknown outcomes: ${res:-none}" >&2
    res=" resolutions: ${res:-none}"
  fi
  rows+=("$(printf '%-8s clients=%-3s %s errors: %s %s unknown_pct=%s violations:%s%s' "$1" "$((3 * $2))" "$req" "${err:-none}" "$con" "$share" "$vio" "$res")")
}
for s in $SYSTEMS; do
  for c in $CONNS; do run "$s" "$c"; done
done
make -s down >/dev/null 2>&1
echo "--- one key, CAS increments, ${DURATION} s each"
printf '%s\n' "${rows[@]}"
