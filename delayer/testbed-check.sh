#!/bin/bash
# The round trips through the delayer and the clock faults on a running Perseus testbed
# (`make up` first): p1's round trip to a2's Redis healthy, with
# make delay-a1 DELAY=50ms (±10ms), after make heal; the paper's three links (make delay LINKS=...);
# make clock-aN OFFSET/JUMP/DRIFT with each node's HTTP Date against the true time; make heal.
# Prints what docs/results/60-time-distance.md records. Leaves the testbed healed, not down.
set -u
cd "$(dirname "$0")/.."
C=$(scripts/lib.sh compose_command)
cid() { $C ps -q "$1"; }
rtt() { # from container $1 to redis at $2: avg and p99 of 200 PINGs
  docker exec "$(cid $1)" redis-benchmark -h "$2" -c 1 -n "${3:-200}" -t ping_inline --csv 2>/dev/null |
    awk -F'"' '/PING_INLINE/ { printf "avg %.1f ms, p99 %.1f ms\n", $6, $14 }'
}
echo "## $(date -u +%FT%TZ) commit $(git rev-parse --short HEAD)"
echo "## baseline"; echo "p1->a2: $(rtt p1 10.77.0.12)"; echo "p1->a3: $(rtt p1 10.77.0.13)"
echo "## make delay-a1 DELAY=50ms JITTER="; make delay-a1 DELAY=50ms JITTER=
make status 2>&1 | sed -n '1,4p'
echo "p1->a2: $(rtt p1 10.77.0.12)"; echo "p2->a3: $(rtt p2 10.77.0.13)"
echo "## make delay-a1 DELAY=50ms JITTER=10ms"; make delay-a1 DELAY=50ms JITTER=10ms
echo "p1->a2: $(rtt p1 10.77.0.12)"
echo "## make heal"; make heal
docker exec "$(cid a1)" iptables -t mangle -S | grep -c PERSEUS | sed 's/^/PERSEUS rules in a1 mangle: /'
docker ps -a --filter label=perseus.delayer.host --format '{{.Names}}' | wc -l | sed 's/^/delayer containers: /'
echo "p1->a2: $(rtt p1 10.77.0.12)"
echo '## make delay LINKS="a1-a2=10.9ms a1-a3=84.5ms a2-a3=94.6ms"'; make delay LINKS="a1-a2=10.9ms a1-a3=84.5ms a2-a3=94.6ms"
make status 2>&1 | sed -n '1,4p'
echo "p1->a2: $(rtt p1 10.77.0.12 100)"; echo "p1->a3: $(rtt p1 10.77.0.13 100)"; echo "p2->a3: $(rtt p2 10.77.0.13 100)"
echo "## make heal"; make heal
for h in a1 a2 a3; do docker exec "$(cid $h)" iptables -t mangle -S | grep -c PERSEUS | sed "s/^/PERSEUS rules in $h mangle: /"; done
docker ps -a --filter label=perseus.delayer.host --format '{{.Names}}' | wc -l | sed 's/^/delayer containers: /'
echo "p1->a2: $(rtt p1 10.77.0.12)"
echo "## clock"
date_of() { curl -sI "http://127.0.0.1:808$1/health" | awk -F': ' 'tolower($1)=="date" {print $2}' | tr -d '\r'; }
make clock-a1 OFFSET=+300s; echo "true: $(date -u '+%a, %d %b %Y %T GMT')  p1 Date: $(date_of 1)"
make clock-a2 JUMP=-60s; echo "true: $(date -u '+%a, %d %b %Y %T GMT')  p2 Date: $(date_of 2)"
make clock-a3 DRIFT=+1000ppm; echo "true: $(date -u '+%a, %d %b %Y %T GMT')  p3 Date: $(date_of 3)"
make status 2>&1 | sed -n '1,4p'
echo "## make heal"; make heal
make status 2>&1 | sed -n '1,4p'
for n in 1 2 3; do echo "p$n Date: $(date_of $n) (true $(date -u '+%T'))"; done
