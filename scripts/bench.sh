#!/usr/bin/env bash
# `make bench`: the healthy cluster's throughput and latency, no faults, and where the time
# goes. For each system of BENCH_SYSTEMS (default "perseus"; `make bench SYSTEMS="perseus
# etcd"`), runs the load generator in the client container once per level of
# BENCH_CONNECTIONS (connections per node, default "1 4 16") for BENCH_DURATION seconds each
# (default 20). Around each level it reads, from the machine:
#   - CPU: each container's cgroup CPU counter (cpuacct.usage, or cpu.stat on cgroup v2)
#     before and after, for the nodes p1..p3, the Redis acceptors a1..a3, the etcd members
#     e1..e3; the client's is sampled every half second while it runs (its cgroup goes when
#     it exits), so up to half a second of its CPU at the very end is not counted;
#   - Perseus's Redis: script calls (EVALSHA/EVAL) and commands executed, those inside the
#     scripts included (INFO commandstats, INFO itself left out), and AOF
#     writes, each followed by an fsync under `appendfsync always`: the redis-server
#     process's write system calls (/proc/PID/io syscw) minus its writes to clients (INFO
#     stats total_writes_processed);
#   - etcd: its WAL fsyncs (the etcd_disk_wal_fsync_duration_seconds_count metric).
# `lab bench` prints per level iterations/s, p50/p99, the CPU share of each group, the Redis
# calls and fsyncs per iteration, and with two systems the ratio per level. Perseus runs
# first (`make bench` brought it up); for etcd the Perseus containers are paused (no CPU) and
# etcd is brought up, and the Perseus containers are resumed at the end. The system
# `perseus-full-rounds` is the same Perseus cluster with quorum reads off (every read a full
# CASPaxos round that writes): its nodes are recreated with PERSEUS_QUORUM_READS=false for
# its levels and put back as configured at the end, so `make bench SYSTEMS="perseus
# perseus-full-rounds etcd"` shows both read modes and etcd in one run, with the ratios.
# `perseus-every-acceptor` likewise recreates them with PERSEUS_THRIFTY=false: every phase
# asks all three acceptors at once instead of a quorum first.
# Output kept in results/bench-<time>/.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

LEVELS="${BENCH_CONNECTIONS:-1 4 16}"
DURATION="${BENCH_DURATION:-20}"
SYSTEMS="${BENCH_SYSTEMS:-perseus}"
ETCD_NODES="${ETCD_NODES:-http://10.77.0.21:2379,http://10.77.0.22:2379,http://10.77.0.23:2379}"
name="bench-$(date -u +%Y%m%dT%H%M%SZ)"
out="results/$name"
mkdir -p "$out"

# Cumulative CPU nanoseconds of a container (by id), or nothing when its cgroup is not found.
cpu_ns() {
  local id f
  id="$(docker inspect -f '{{.Id}}' "$1" 2>/dev/null)" || return 0
  for f in "/sys/fs/cgroup/cpuacct/docker/$id/cpuacct.usage" \
    "/sys/fs/cgroup/cpu,cpuacct/docker/$id/cpuacct.usage"; do
    [ -r "$f" ] && { cat "$f"; return 0; }
  done
  for f in "/sys/fs/cgroup/system.slice/docker-$id.scope/cpu.stat" "/sys/fs/cgroup/docker/$id/cpu.stat"; do
    [ -r "$f" ] && { awk '/^usage_usec/ { printf "%d\n", $2 * 1000 }' "$f"; return 0; }
  done
  return 0 # gone (the client just exited) or not found: nothing
}

# The summed CPU ns of the services given (empty when any is unknown).
group_cpu() {
  local total=0 s v
  for s in "$@"; do
    v="$(cpu_ns "$(cid "$s")")"
    [ -n "$v" ] || return 0
    total=$((total + v))
  done
  echo "$total"
}

# Redis counters of one acceptor: "scripts calls aof_writes": the script calls the nodes
# made (EVAL, EVALSHA), every command executed (those inside the scripts included; INFO's own
# left out), and the AOF writes.
redis_counters() {
  local c pid stats scripts calls replies syscw
  c="$(cid "$1")"
  stats="$(docker exec "$c" redis-cli info commandstats | tr -d '\r')"
  scripts="$(awk -F'calls=' '/^cmdstat_eval/ { split($2, x, ","); s += x[1] } END { printf "%.0f\n", s }' <<<"$stats")"
  calls="$(awk -F'calls=' '/^cmdstat_/ && !/^cmdstat_info:/ { split($2, x, ","); s += x[1] } END { printf "%.0f\n", s }' <<<"$stats")"
  replies="$(docker exec "$c" redis-cli info stats | tr -d '\r' | awk -F: '/^total_writes_processed:/ { print $2 + 0 }')"
  pid="$(docker exec "$c" redis-cli info server | tr -d '\r' | awk -F: '/^process_id:/ { print $2 + 0 }')"
  syscw="$(docker exec "$c" cat "/proc/$pid/io" | awk '/^syscw:/ { print $2 }')"
  echo "$scripts $calls $((syscw - replies))"
}

# etcd's WAL fsyncs so far, summed over the members.
etcd_fsyncs() {
  local total=0 url v
  for url in ${ETCD_NODES//,/ }; do
    v="$(curl -s -m 3 "$url/metrics" | awk '/^etcd_disk_wal_fsync_duration_seconds_count/ { print $2 + 0 }')"
    [ -n "$v" ] || return 0
    total=$((total + v))
  done
  echo "$total"
}

# Everything counted before/after a level, as "key value" lines.
snapshot() {
  local system=$1 c a
  if [ "$system" != etcd ]; then
    echo "cpu_nodes_ns $(group_cpu p1 p2 p3)"
    echo "cpu_redis_ns $(group_cpu a1 a2 a3)"
    local sc=0 c=0 a=0 rs rc ra
    for h in a1 a2 a3; do
      read -r rs rc ra < <(redis_counters "$h")
      sc=$((sc + rs)) c=$((c + rc)) a=$((a + ra))
    done
    echo "redis_scripts $sc"
    echo "redis_calls $c"
    echo "fsyncs $a"
  else
    echo "cpu_etcd_ns $(group_cpu e1 e2 e3)"
    echo "fsyncs $(etcd_fsyncs)"
  fi
}

paused=()
resume() {
  [ ${#paused[@]} -gt 0 ] && docker unpause "${paused[@]}" >/dev/null 2>&1 || true
  paused=()
}
# Nodes recreated with a setting changed (recreate_nodes): put back as configured.
nodes_changed=0
restore_nodes() {
  if [ "$nodes_changed" = 1 ]; then
    nodes_changed=0
    make -s up >/dev/null || echo "bench: putting the nodes' settings back failed: run make up" >&2
  fi
}
trap 'resume; restore_nodes' EXIT

# A Perseus variant: p1..p3 recreated with one setting changed ($1, as NAME=value) for its
# levels, put back as configured at the end.
recreate_nodes() {
  resume
  echo "=== bench: recreating p1..p3 with $2 ($1)"
  nodes_changed=1
  env "$1" make -s up >/dev/null
  nodes=""
}

files=()
for system in $SYSTEMS; do
  case "$system" in
    perseus) nodes="" ;;
    perseus-full-rounds) recreate_nodes PERSEUS_QUORUM_READS=false "quorum reads off" ;;
    perseus-every-acceptor) recreate_nodes PERSEUS_THRIFTY=false "every acceptor asked at once" ;;
    etcd)
      # Perseus idles meanwhile: paused, so it takes no CPU from the etcd levels.
      for s in a1 a2 a3 p1 p2 p3; do
        c="$(cid "$s")"
        [ -n "$c" ] && [ "$(docker inspect -f '{{.State.Status}}' "$c")" = running ] && docker pause "$c" >/dev/null && paused+=("$c")
      done
      make -s up-etcd
      nodes="$ETCD_NODES"
      ;;
    *) echo "bench: unknown system $system (perseus, perseus-full-rounds, perseus-every-acceptor or etcd)" >&2; exit 2 ;;
  esac
  for c in $LEVELS; do
    echo "=== bench: $system, $c connection(s) per node, ${DURATION} s"
    base="$out/$system-$c"
    snapshot "$system" >"$base.before"
    t0="$(date +%s%N)"
    # shellcheck disable=SC2086
    env LOADGEN_CONNECTIONS="$c" LOADGEN_DURATION="$DURATION" LOADGEN_OUT="/results/$name/$system-$c.jsonl" \
      ${nodes:+LOADGEN_NODES=$nodes} $COMPOSE --profile load up -d --no-deps --force-recreate client \
      >"$out/compose-$system-$c.txt" 2>&1 ||
      { echo "bench: starting the client failed:" >&2; cat "$out/compose-$system-$c.txt" >&2; exit 1; }
    id="$(cid client)"
    [ -n "$id" ] || { echo "bench: no client container" >&2; exit 1; }
    loadgen_cpu=""
    while [ "$(docker inspect -f '{{.State.Running}}' "$id" 2>/dev/null)" = true ]; do
      v="$(cpu_ns "$id" || true)"
      [ -n "$v" ] && loadgen_cpu="$v"
      sleep 0.5
    done
    code="$(docker wait "$id")"
    t1="$(date +%s%N)"
    snapshot "$system" >"$base.after"
    docker logs "$id" >"$out/loadgen-$system-$c.txt" 2>&1
    grep -E '^# (iterations|latency_ms iteration|errors|violations)' "$out/loadgen-$system-$c.txt" || true
    [ "$code" = 0 ] || { echo "bench: the load generator exited with $code (see $out/loadgen-$system-$c.txt)" >&2; exit 1; }
    # The costs of the level: deltas of every counter, the wall time, the client's CPU.
    {
      echo "system $system"
      echo "cores $(nproc)"
      echo "wall_ns $((t1 - t0))"
      [ -n "$loadgen_cpu" ] && echo "cpu_loadgen_ns $loadgen_cpu"
      join <(sort "$base.before") <(sort "$base.after") |
        awk 'NF == 3 { printf "%s %.0f\n", $1, $3 - $2 }'
    } >"$base.costs" || { echo "bench: counting the costs of $system-$c failed" >&2; exit 1; }
    rm -f "$base.before" "$base.after"
    files+=("$out/$system-$c.jsonl")
  done
done
resume
restore_nodes

target/release/lab bench "${files[@]}" | tee "$out/bench.txt"
