#!/bin/bash
# The delayer's own cost (`make bench-delayer`): at 0 ms delay, how much latency it adds to a
# packet and how much CPU it spends on one. No Docker: a fresh network namespace (unshare -n,
# as root) with only loopback, a redis-server in it, and redis-benchmark's PING from one
# connection, first plain, then with every packet of that connection (both directions) sent
# through a netfilter queue the delayer serves with `QUEUE=0ms`. Rounds alternate; each prints
# the mean and p99 round trip, the round trip added, the latency added per packet (a round
# trip crosses the queue twice: request and reply), and the delayer's own CPU per packet as it
# reports it on exit (getrusage over the packets it released).
#   delayer/bench.sh [DELAYER]    BENCH_DELAYER_REQUESTS=20000 BENCH_DELAYER_ROUNDS=3
set -euo pipefail
delayer="$(realpath "${1:-target/release/delayer}")"
requests="${BENCH_DELAYER_REQUESTS:-20000}"
rounds="${BENCH_DELAYER_ROUNDS:-3}"
[ -x "$delayer" ] || { echo "bench-delayer: no $delayer (cargo build --release -p delayer)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "bench-delayer: needs root (a network namespace and iptables)" >&2; exit 2; }
for tool in redis-server redis-benchmark iptables unshare; do
  command -v "$tool" >/dev/null || { echo "bench-delayer: $tool missing (apt-get install redis-server iptables util-linux)" >&2; exit 2; }
done

if [ -z "${BENCH_DELAYER_INSIDE:-}" ]; then
  exec env BENCH_DELAYER_INSIDE=1 unshare -n "$0" "$delayer"
fi

work="$(mktemp -d)"
cleanup() {
  [ -n "${dpid:-}" ] && kill "$dpid" 2>/dev/null || true
  redis-cli -p 7777 shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
ip link set lo up
redis-server --port 7777 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
  --logfile "$work/redis.log" --dir "$work"
for _ in $(seq 50); do redis-cli -p 7777 ping >/dev/null 2>&1 && break; sleep 0.1; done

# "PING_INLINE","rps","avg_latency_ms","min","p50","p95","p99","max" → "avg p99" in us
measure() {
  redis-benchmark -p 7777 -c 1 -n "$requests" -t ping_inline --csv 2>/dev/null |
    awk -F'"' '/PING_INLINE/ { printf "%.1f %.1f\n", $6 * 1000, $14 * 1000 }'
}
rules() {
  for dir in --dport --sport; do
    iptables -w -t mangle "$1" OUTPUT -o lo -p tcp "$dir" 7777 -j NFQUEUE --queue-num 7700 --queue-bypass
  done
}

echo "# delayer at 0 ms: redis PING round trips over loopback, one connection, $requests per run, $(nproc) cores, $(date -u +%Y-%m-%dT%H:%MZ)"
printf '%-6s %-24s %-24s %-14s %-16s %s\n' round "plain mean/p99 (us)" "delayed mean/p99 (us)" "added RTT (us)" "added/packet (us)" "delayer CPU/packet (us), packets"
for r in $(seq "$rounds"); do
  read -r base_avg base_p99 < <(measure)
  "$delayer" 7700=0ms >"$work/delayer.out" 2>&1 &
  dpid=$!
  for _ in $(seq 50); do grep -q '^delayer: serving' "$work/delayer.out" && break; sleep 0.1; done
  rules -A
  read -r del_avg del_p99 < <(measure)
  rules -D
  kill -TERM "$dpid"; wait "$dpid" || true; dpid=""
  # delayer: released N packets (most held at once M), cpu C s = X us/packet over T s
  read -r packets per < <(awk '/released/ { for (i = 1; i <= NF; i++) { if ($i == "released") n = $(i+1); if ($i == "us/packet") u = $(i-1) } print n, u }' "$work/delayer.out")
  added=$(awk -v a="$del_avg" -v b="$base_avg" 'BEGIN { printf "%.1f", a - b }')
  perpkt=$(awk -v a="$del_avg" -v b="$base_avg" 'BEGIN { printf "%.1f", (a - b) / 2 }')
  printf '%-6s %-24s %-24s %-14s %-16s %s\n' "$r" "$base_avg / $base_p99" "$del_avg / $del_p99" "$added" "$perpkt" "${per:-?}, ${packets:-?}"
done
