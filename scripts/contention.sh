#!/usr/bin/env bash
# `make contention`: clients racing on ONE key with read + compare-and-swap increments
# (`--keys shared:1`), 3 clients (one per node) and then 30 (ten per node), on Perseus and then
# on etcd, each on a fresh cluster for LOADGEN_DURATION (30) s. Prints one row per run: 5xx
# share, the contention figures (acknowledged, unknown, failed_but_applied, final value) and
# the violations. Ends with make down; run it under the docker lock.
set -uo pipefail
cd "$(dirname "$0")/.."
DURATION="${LOADGEN_DURATION:-30}"
CONNS="${CONTENTION_CONNECTIONS:-1 10}"
rows=()
trap 'make -s down >/dev/null 2>&1; exit 1' INT TERM
run() { # run SYSTEM CONNECTIONS_PER_NODE
  local target=load
  [ "$1" = etcd ] && target=load-etcd
  make -s down >/dev/null 2>&1 || true
  echo "=== $1, $((3 * $2)) clients on one key, $DURATION s" >&2
  local out
  out="$(make -s "$target" KEYS=shared:1 CONNECTIONS="$2" LOADGEN_DURATION="$DURATION" 2>&1)"
  grep '^#' <<<"$out" | grep -E '^# (requests|contention keys|violations|result)' >&2
  local req con vio
  req="$(grep -m1 '^# requests' <<<"$out" | sed 's/^# requests //')"
  con="$(grep -m1 '^# contention keys' <<<"$out" | sed 's/^# contention keys=[^ ]* //')"
  vio="$(grep -m1 '^# violations' <<<"$out" | sed 's/^# violations //')"
  rows+=("$(printf '%-8s clients=%-3s %s %s violations:%s' "$1" "$((3 * $2))" "$req" "$con" "$vio")")
}
for c in $CONNS; do run perseus "$c"; done
for c in $CONNS; do run etcd "$c"; done
make -s down >/dev/null 2>&1
echo "--- one key, CAS increments, ${DURATION} s each"
printf '%s\n' "${rows[@]}"
