#!/usr/bin/env bash
# The testbed on Docker Swarm (docs/swarm.md); the Makefile calls it for ENGINE=swarm:
#   swarm.sh up       refuse if a Compose project runs on this engine; enter a single-node swarm
#                     when the engine is in none (and remember it in a node label); deploy
#                     compose/swarm-stack.yml as the stack perseus; start hosts left killed;
#                     wait until every host answers /health on its published port
#   swarm.sh down     remove the stack, wait for its containers and network to go, remove its
#                     volumes (on every engine of the hosts file too); leave the swarm if `up`
#                     entered it (and remove the docker_gwbridge network it made)
#   swarm.sh load     the load generator: on this machine against the published ports
#                     (LOADGEN_AT=machine, the default; LOADGEN_NODES to aim elsewhere), or in a
#                     container on the stack's overlay network (LOADGEN_AT=overlay)
#   swarm.sh chaos ARGS...   chaos for the stack (CHAOS_HOSTS_FILE: which engine runs each host)
#   swarm.sh guard    what plain `make up` runs first: refuse while the stack runs
# Every command that starts or removes containers must run under the docker lock of this
# machine (the caller's flock); this script never takes it itself.
set -euo pipefail
cd "$(dirname "$0")/.."

STACK="${COMPOSE_PROJECT_NAME:-perseus}"
IMAGE="${SWARM_IMAGE:-perseus:swarm}"
NETWORK="${STACK}_perseus"
STACK_FILE=compose/swarm-stack.yml
CHAOS_BIN="${CHAOS_BIN:-target/release/chaos}"
HOSTS=(a1 a2 a3)
# Node labels that remember what `up` did to the engine, so that `down` undoes exactly that.
ENTERED=perseus.swarm-entered
MADE_GWBRIDGE=perseus.gwbridge-made

say() { echo "swarm: $*"; }
die() { echo "swarm: $*" >&2; exit 1; }
# A refusal (the other testbed runs on this engine): exit 3, which swarm-check tells apart.
refuse() { echo "swarm: refusing: $*" >&2; exit 3; }

swarm_state() { docker info --format '{{.Swarm.LocalNodeState}}'; }
node_id() { docker info --format '{{.Swarm.NodeID}}'; }
node_label() { docker node inspect self --format "{{index .Spec.Labels \"$1\"}}" 2>/dev/null || true; }

# Running containers of any Compose project: turning swarm mode on or off disturbs their
# networks, and the stack would take their published ports.
compose_projects() {
  docker ps --filter label=com.docker.compose.project \
    --format '{{.Label "com.docker.compose.project"}}' | sort -u | tr '\n' ' '
}

refuse_if_compose() {
  local running
  running="$(compose_projects)"
  if [ -n "${running// /}" ]; then
    refuse "Compose project(s) running on this engine: ${running% }. Turning swarm mode on or
  off would disturb their networks and the stack needs their ports: run \`make down\` first."
  fi
}

# The stack's containers (any state) and networks on this engine.
stack_containers() { docker ps -aq --filter "label=com.docker.stack.namespace=$STACK"; }
stack_networks() { docker network ls -q --filter "label=com.docker.stack.namespace=$STACK"; }

# For plain `make up`: the Compose cluster and the stack cannot share the engine's ports.
guard() {
  if [ -n "$(docker ps -q --filter "label=com.docker.stack.namespace=$STACK")" ]; then
    refuse "the swarm stack $STACK runs on this engine (make up ENGINE=swarm); run
  \`make down ENGINE=swarm\` first: the Compose cluster needs the same ports."
  fi
  if [ "$(swarm_state)" = active ]; then
    echo "note: this engine is in swarm mode (not the testbed's stack); the Compose cluster still" \
      "works, but entering or leaving the swarm while it runs would disturb its network." >&2
  fi
}

enter_swarm() {
  local state
  state="$(swarm_state)"
  case "$state" in
    inactive)
      local gw=false
      [ -n "$(docker network ls -q --filter name='^docker_gwbridge$')" ] || gw=true
      # Loopback only: a single-node swarm for this run, reachable from nowhere else.
      docker swarm init --advertise-addr 127.0.0.1 --listen-addr 127.0.0.1:2377 >/dev/null
      docker node update --label-add "$ENTERED=true" --label-add "$MADE_GWBRIDGE=$gw" \
        "$(node_id)" >/dev/null
      say "entered a single-node swarm for the testbed (make down ENGINE=swarm leaves it)"
      ;;
    active)
      [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ] ||
        die "this engine is a swarm worker: run make up ENGINE=swarm on a manager"
      ;;
    *) die "the engine's swarm state is '$state' (want inactive or active): fix it by hand first" ;;
  esac
}

# PERSEUS_PLACE_AN: the node labelled perseus.host=aN, else the node deploying.
placements() {
  local h self
  self="$(node_id)"
  for h in "${HOSTS[@]}"; do
    local var="PERSEUS_PLACE_${h^^}"
    if [ -n "$(docker node ls -q --filter "node.label=perseus.host=$h")" ]; then
      export "$var=node.labels.perseus.host==$h"
    else
      export "$var=node.id==$self"
    fi
    say "$h placed by ${!var}"
  done
}

chaos() {
  [ -x "$CHAOS_BIN" ] || die "no $CHAOS_BIN: run make binaries"
  "$CHAOS_BIN" --project "$STACK" "$@"
}

up() {
  refuse_if_compose
  # SWARM_FROM_REGISTRY=1 (scripts/cluster.sh): every machine pulls the image from a registry,
  # and the manager pins its digest so that all run the same; else it is local (built here)
  # and no registry is asked.
  local resolve=never
  if [ "${SWARM_FROM_REGISTRY:-0}" = 1 ]; then
    resolve=always
  else
    docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE: run make images IMAGE=$IMAGE"
  fi
  enter_swarm
  placements
  PERSEUS_IMAGE="$IMAGE" docker stack deploy --resolve-image "$resolve" -c "$STACK_FILE" "$STACK" ||
    die "docker stack deploy failed"
  # Each host's newest task must have left the starting states (later a killed task stays
  # failed: that is the point of restart policy none, and chaos starts its container again).
  local deadline=$((SECONDS + ${UP_TIMEOUT:-90})) h state waiting
  while :; do
    waiting=""
    for h in "${HOSTS[@]}"; do
      state="$(docker service ps --format '{{.CurrentState}}' "${STACK}_$h" 2>/dev/null | head -1)"
      case "$state" in
        Running* | Failed* | Complete* | Shutdown*) ;;
        Rejected*) docker service ps --no-trunc "${STACK}_$h" >&2; die "$h's task was rejected" ;;
        *) waiting="$waiting $h(${state%% *})" ;;
      esac
    done
    [ -z "$waiting" ] && break
    if [ "$SECONDS" -ge "$deadline" ]; then
      docker stack ps --no-trunc "$STACK" >&2 || true
      die "tasks not started within ${UP_TIMEOUT:-90} s:$waiting"
    fi
    sleep 1
  done
  # Hosts left killed by an earlier run: start their containers (as `make up` with Compose).
  chaos --target perseus --wait 0 start
  chaos --target perseus --wait "${UP_TIMEOUT:-90}" health
  say "Perseus nodes answer on the published ports 8081 .. 8083 of their machines"
}

# The tasks' addresses on the overlay network (the swarm manager knows them for every node).
overlay_nodes() {
  local h task addr nodes=()
  for h in "${HOSTS[@]}"; do
    task="$(docker service ps -q --no-trunc "${STACK}_$h" | head -1)"
    addr="$(docker inspect --format \
      "{{range .NetworksAttachments}}{{if eq .Network.Spec.Name \"$NETWORK\"}}{{index .Addresses 0}}{{end}}{{end}}" \
      "$task")"
    [ -n "$addr" ] || die "no overlay address for $h (task $task)"
    nodes+=("http://${addr%/*}:8080")
  done
  (IFS=,; echo "${nodes[*]}")
}

load() {
  local at="${LOADGEN_AT:-machine}"
  case "$at" in
    machine)
      local bin=target/release/loadgen
      [ -x "$bin" ] || die "no $bin: run make binaries"
      LOADGEN_NODES="${LOADGEN_NODES:-http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083}" \
        LOADGEN_OUT="${LOADGEN_OUT:-/dev/null}" "$bin"
      ;;
    overlay)
      local nodes
      nodes="${LOADGEN_NODES:-$(overlay_nodes)}"
      docker rm -f "$STACK-swarm-client" >/dev/null 2>&1 || true
      docker run --rm --name "$STACK-swarm-client" --network "$NETWORK" \
        -v "$PWD/results:/results" -e LOADGEN_NODES="$nodes" \
        -e LOADGEN_DURATION="${LOADGEN_DURATION:-300}" -e LOADGEN_CONNECTIONS="${LOADGEN_CONNECTIONS:-1}" \
        -e LOADGEN_KEYS="${LOADGEN_KEYS:-own}" -e LOADGEN_OUT="${LOADGEN_OUT:-/dev/null}" \
        "$IMAGE" loadgen
      ;;
    *) die "LOADGEN_AT must be machine or overlay (got '$at')" ;;
  esac
}

# `docker -H` options for each engine of the hosts file (one line per engine).
hosts_file_engines() {
  local file="${CHAOS_HOSTS_FILE:-}"
  [ -n "$file" ] && [ -f "$file" ] || return 0
  sed 's/#.*//' "$file" | awk 'NF >= 2 { print }' | while read -r _ endpoint rest; do
    local opts="-H $endpoint" o
    for o in $rest; do
      case "$o" in
        certs=*) local d="${o#certs=}"
          opts="$opts --tlsverify --tlscacert $d/ca.pem --tlscert $d/cert.pem --tlskey $d/key.pem" ;;
      esac
    done
    echo "$opts"
  done | sort -u
}

down() {
  local state
  state="$(swarm_state)"
  if [ "$state" = active ] && [ "$(docker info --format '{{.Swarm.ControlAvailable}}')" = true ] &&
    docker stack ls --format '{{.Name}}' | grep -qx "$STACK"; then
    docker stack rm "$STACK"
  fi
  # Task containers go away asynchronously after `stack rm`.
  local i
  for i in $(seq 60); do
    [ -z "$(stack_containers)" ] && break
    sleep 1
  done
  stack_containers | xargs -r docker rm -f >/dev/null
  # By the stack's label: the Compose cluster's network has the same name (perseus_perseus).
  for i in $(seq 30); do
    [ -z "$(stack_networks)" ] && break
    sleep 1
  done
  stack_networks | xargs -r docker network rm >/dev/null
  docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | xargs -r docker volume rm >/dev/null
  local opts
  while read -r opts; do
    [ -n "$opts" ] || continue
    # shellcheck disable=SC2086
    docker $opts volume ls -q --filter "label=com.docker.stack.namespace=$STACK" |
      xargs -r docker $opts volume rm >/dev/null ||
      echo "swarm: could not remove the stack's volumes through $opts" >&2
  done < <(hosts_file_engines)
  if [ "$state" = active ] && [ "$(node_label "$ENTERED")" = true ]; then
    local running
    running="$(compose_projects)"
    if [ -n "${running// /}" ]; then
      die "stack removed, but NOT leaving the swarm that make up ENGINE=swarm entered: Compose
  project(s) ${running% } run on this engine and leaving would disturb their networks; run
  \`make down ENGINE=swarm\` again once they are down."
    fi
    local gw
    gw="$(node_label "$MADE_GWBRIDGE")"
    docker swarm leave --force >/dev/null
    if [ "$gw" = true ]; then
      for i in $(seq 15); do docker network rm docker_gwbridge >/dev/null 2>&1 && break; sleep 1; done
    fi
    say "left the single-node swarm that make up ENGINE=swarm entered"
  fi
  say "down: swarm state $(swarm_state), stack containers: $(stack_containers | wc -l)," \
    "volumes: $(docker volume ls -q --filter "label=com.docker.stack.namespace=$STACK" | wc -l)"
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  up) up ;;
  down) down ;;
  load) load ;;
  chaos) chaos "$@" ;;
  guard) guard ;;
  refuse-if-compose) refuse_if_compose ;;
  *) die "usage: scripts/swarm.sh up|down|load|chaos ARGS|guard" ;;
esac
