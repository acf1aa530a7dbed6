#!/usr/bin/env bash
# `make bench`: the healthy cluster's throughput and latency, no faults, and where the time
# goes. For each system of BENCH_SYSTEMS (default "perseus"; `make bench SYSTEMS="perseus
# etcd"`), runs the load generator in the client container at each level of
# BENCH_CONNECTIONS (connections per node, default "1 4 16") for BENCH_DURATION seconds
# (default 10), BENCH_ROUNDS times (default 3). The systems take turns at each level, round
# after round (perseus 1, etcd 1, perseus 4, etcd 4, ...): this machine's CPU is shared with
# other guests (steal was 20-30 % at times) and drifts over minutes, so systems compared at
# the same level are measured seconds apart, and `lab bench` reports each level's median
# round. Around each level `lab bench-counters` and `lab bench-costs` count what it cost (the
# CPU of each group of containers from their cgroups, the load generator's from its last line,
# Perseus's Redis script calls, commands and AOF writes, etcd's WAL fsyncs, the CPU stolen by
# the hypervisor; lab/src/bench/measure.rs says how) into NAME.costs next to NAME.jsonl.
# `lab bench` prints per level iterations/s, p50/p99, the CPU share of each group, the Redis
# calls and fsyncs per iteration, and with two systems the ratio per level. The system not
# measured is paused (no CPU); one just unpaused is given 3 s to settle and must answer its
# health check first; a system whose processes are new (first turn, started, recreated)
# first runs BENCH_WARMUP seconds (default 3) of load that is not measured. The system
# `perseus-full-rounds` is the same Perseus cluster with quorum reads off (every read a full
# CASPaxos round that writes): its nodes are recreated with PERSEUS_QUORUM_READS=false for
# its turns, and put back as configured for perseus's and at the end, so `make bench
# SYSTEMS="perseus perseus-full-rounds etcd"` shows both read modes and etcd in one run, with
# the ratios. `perseus-every-acceptor` likewise recreates them with PERSEUS_THRIFTY=false:
# every phase asks all three acceptors at once instead of a quorum first. `etcd3` is the same
# etcd cluster through its v3 API over gRPC (the etcd-client crate), `etcd3-gateway` through
# etcd's JSON gateway (HTTP/1.1): `make bench SYSTEMS="etcd etcd3 etcd3-gateway"` shows the
# three clients of one cluster side by side.
# Output kept in results/bench-<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

LEVELS="${BENCH_CONNECTIONS:-1 4 16}"
DURATION="${BENCH_DURATION:-10}"
ROUNDS="${BENCH_ROUNDS:-3}"
WARMUP="${BENCH_WARMUP:-3}"
warmed="" fresh=0 thawed=0
SYSTEMS="${BENCH_SYSTEMS:-perseus}"
ETCD_NODES="${ETCD_NODES:-http://10.77.0.21:2379,http://10.77.0.22:2379,http://10.77.0.23:2379}"
export ETCD_NODES
LAB="${LAB:-target/release/lab}"
name="bench-$(date -u +%Y%m%dT%H%M%SZ)"
# The command `lab results` quotes under the figures (docs/results.md).
export LAB_COMMAND="make bench SYSTEMS=\"$SYSTEMS\" BENCH_CONNECTIONS=\"$LEVELS\" BENCH_ROUNDS=$ROUNDS"
out="results/$name"
mkdir -p "$out"

# The running system is the one measured; the other is paused (no CPU). Containers paused
# here, unpaused when the other system's turn comes and at the end.
perseus_services="a1 a2 a3 p1 p2 p3"
etcd_services="e1 e2 e3"
paused=()
pause() {
  local s c
  for s in "$@"; do
    c="$(cid "$s")"
    [ -n "$c" ] && [ "$(docker inspect -f '{{.State.Status}}' "$c")" = running ] &&
      docker pause "$c" >/dev/null && paused+=("$c")
  done
  return 0
}
unpause() {
  local s c keep=() p
  for s in "$@"; do
    c="$(cid "$s")"
    [ -n "$c" ] && [ "$(docker inspect -f '{{.State.Status}}' "$c")" = paused ] && docker unpause "$c" >/dev/null && thawed=1
    for p in "${paused[@]}"; do [ "$p" = "$c" ] || keep+=("$p"); done
    paused=("${keep[@]}") keep=()
  done
  return 0
}
resume() {
  [ ${#paused[@]} -gt 0 ] && docker unpause "${paused[@]}" >/dev/null 2>&1 || true
  paused=()
}
# The setting p1..p3 run with now: "" as configured, else NAME=value (recreate_nodes).
nodes_setting=""
restore_nodes() {
  if [ -n "$nodes_setting" ]; then
    nodes_setting=""
    make -s up >/dev/null || echo "bench: putting the nodes' settings back failed: run make up" >&2
  fi
}
trap 'resume; restore_nodes' EXIT

# Makes $1 the running system: the other paused, p1..p3 recreated when the Perseus variant
# needs another setting ($2, as NAME=value; "" as configured), and the system healthy again.
# A system just unpaused finds its timers expired (Redis connections silent past their
# liveness, etcd's election timeout), so it is given a few seconds to settle first.
activate() {
  local system=$1 setting=$2
  thawed=0
  case " $warmed " in *" $system "*) fresh=0 ;; *) fresh=1 warmed="$warmed $system" ;; esac
  # the load generator's client: etcd v2 (the default, also Perseus's), v3 over gRPC or
  # through the JSON gateway
  case "$system" in
    etcd3) loadgen_env=(LOADGEN_SYSTEM=etcd3 LOADGEN_ETCD3_GATEWAY=false) ;;
    etcd3-gateway) loadgen_env=(LOADGEN_SYSTEM=etcd3 LOADGEN_ETCD3_GATEWAY=true) ;;
    etcd) loadgen_env=(LOADGEN_SYSTEM=etcd LOADGEN_ETCD3_GATEWAY=false) ;;
    *) loadgen_env=(LOADGEN_SYSTEM=perseus LOADGEN_ETCD3_GATEWAY=false) ;;
  esac
  if [ "$(family "$system")" = etcd ]; then
    pause $perseus_services
    if [ -z "$(cid e1)" ]; then
      make -s up-etcd
      fresh=1
    else
      unpause $etcd_services
      settle etcd
    fi
    nodes="$ETCD_NODES"
    return
  fi
  pause $etcd_services
  unpause $perseus_services
  if [ "$setting" != "$nodes_setting" ]; then
    echo "=== bench: recreating p1..p3 with ${setting:-the settings configured}"
    nodes_setting="$setting"
    env ${setting:+"$setting"} make -s up >/dev/null
    fresh=1
  else
    settle perseus
  fi
  nodes=""
}

# A system just unpaused ($thawed): 3 s to settle, then its health check.
settle() {
  [ "$thawed" = 1 ] || return 0
  sleep 3
  scripts/wait-healthy.sh "$1" >/dev/null
}

# A warm-up load of WARMUP seconds, not measured, at $1 connections per node on a system
# whose processes are new (first turn, just started or recreated): etcd's first seconds
# after start ran at half its rate (WAL files, leader's caches), and a new node has no
# connections nor cached ballots yet.
warm_up() {
  [ "$fresh" = 1 ] && [ "$WARMUP" -gt 0 ] || return 0
  start_client "$1" "$WARMUP" /dev/null "$out/compose-warm-up.txt"
  docker wait "$id" >/dev/null
}

# Starts the load generator on the running system ($nodes; empty for Perseus) with $1
# connections per node for $2 s, its --out at $3 (inside the container), compose's output
# into $4; sets $id to the client's container.
start_client() {
  # shellcheck disable=SC2086
  env "${loadgen_env[@]}" LOADGEN_CONNECTIONS="$1" LOADGEN_DURATION="$2" LOADGEN_OUT="$3" ${nodes:+LOADGEN_NODES=$nodes} \
    $COMPOSE --profile load up -d --no-deps --force-recreate client >"$4" 2>&1 ||
    { echo "bench: starting the client failed:" >&2; cat "$4" >&2; exit 1; }
  id="$(cid client)"
  [ -n "$id" ] || { echo "bench: no client container" >&2; exit 1; }
}

# The setting of each Perseus variant.
setting_of() {
  case "$1" in
    perseus) echo "" ;;
    perseus-full-rounds) echo "PERSEUS_QUORUM_READS=false" ;;
    perseus-every-acceptor) echo "PERSEUS_THRIFTY=false" ;;
    etcd | etcd3 | etcd3-gateway) echo "" ;;
    *) echo "bench: unknown system $1 (perseus, perseus-full-rounds, perseus-every-acceptor, etcd, etcd3 or etcd3-gateway)" >&2; return 2 ;;
  esac
}
# Which cluster a system runs on: etcd's members, or Perseus's hosts.
family() {
  case "$1" in etcd*) echo etcd ;; *) echo perseus ;; esac
}
loadgen_env=()
for system in $SYSTEMS; do setting_of "$system" >/dev/null || exit 2; done
case "$ROUNDS" in '' | *[!0-9]* | 0) echo "bench: BENCH_ROUNDS must be a positive number, not '$ROUNDS'" >&2; exit 2 ;; esac
case "$WARMUP" in '' | *[!0-9]*) echo "bench: BENCH_WARMUP must be a number of seconds, not '$WARMUP'" >&2; exit 2 ;; esac

files=()
for round in $(seq 1 "$ROUNDS"); do
  for c in $LEVELS; do
    for system in $SYSTEMS; do
      activate "$system" "$(setting_of "$system")"
      warm_up "$c"
      echo "=== bench: round $round of $ROUNDS, $system, $c connection(s) per node, ${DURATION} s"
      base="$out/$system-$c-r$round"
      run="$system-$c-r$round"
      $LAB bench-counters "$system" --out "$base.before" ||
        { echo "bench: counting before $run failed" >&2; exit 1; }
      t0="$(date +%s%N)"
      start_client "$c" "$DURATION" "/results/$name/$run.jsonl" "$out/compose-$run.txt"
      code="$(docker wait "$id")"
      t1="$(date +%s%N)"
      docker logs "$id" >"$out/loadgen-$run.txt" 2>&1
      [ "$code" = 0 ] || { echo "bench: the load generator exited with $code (see $out/loadgen-$run.txt)" >&2; exit 1; }
      # The costs of the level: every counter's growth, the wall time, the client's CPU.
      $LAB bench-costs "$system" --before "$base.before" --wall-ns "$((t1 - t0))" \
        --loadgen-log "$out/loadgen-$run.txt" --run "$out/$run.jsonl" --out "$base.costs" ||
        { echo "bench: counting the costs of $run failed" >&2; exit 1; }
      rm -f "$base.before"
      files+=("$out/$run.jsonl")
    done
  done
done
resume
restore_nodes

$LAB bench "${files[@]}" | tee "$out/bench.txt"
