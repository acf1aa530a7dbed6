#!/usr/bin/env bash
# Several machines on one (docs/swarm.md, "Three engines on one machine"): Docker engines in
# containers joined into one swarm, with a registry, running the swarm stack one host per
# engine. The Makefile calls it for `make cluster-up` / `make cluster-down` (ENGINE=cluster):
#   cluster.sh up     the machines' network; the registry (Debian's docker-registry) with the
#                     project's image pushed from this engine; ENGINES engines (Debian's
#                     docker.io in containers m1..mN, each its own /var/lib/docker volume); a
#                     swarm across them (every engine a manager, so the swarm survives one
#                     machine's power cut), node mN labelled perseus.host=aN; the hosts file
#                     for chaos; then the stack deployed through m1 (scripts/swarm.sh up)
#   cluster.sh down   every container, volume and network `up` made on this engine (the swarm
#                     goes with its engines); this engine's own swarm state is never touched
#   cluster.sh check  the leftovers `down` must not leave (non-zero when there are any)
# Run under the machine's docker lock (the caller's flock); images are built before.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINES="${ENGINES:-3}"
LABEL=perseus.cluster=perseus
NETWORK=perseus-machines
SUBNET_PREFIX=10.79.0 # .2 the registry, .11.. the machines
REGISTRY_NAME=perseus-registry
REGISTRY_PORT="${CLUSTER_REGISTRY_PORT:-5079}" # on 127.0.0.1 of this machine, for the push
MACHINE_IMAGE="${MACHINE_IMAGE:-perseus-machine:bookworm}"
IMAGE="${SWARM_IMAGE:-perseus:swarm}"
# What the engines pull: the registry by its name on the machines' network.
REMOTE_IMAGE="registry:5000/${IMAGE}"
STATE=compose/.cluster
HOSTS_FILE="$STATE/hosts"
API_PORT=2375

say() { echo "cluster: $*"; }
die() { echo "cluster: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }
machine_ip() { echo "$SUBNET_PREFIX.$((10 + $1))"; }
on() { local i="$1"; shift; docker -H "tcp://$(machine_ip "$i"):$API_PORT" "$@"; }

case "$ENGINES" in [1-9]) ;; *) die "ENGINES must be 1..9 (got '$ENGINES')" ;; esac

# The privileged container where the engine allows it; else every capability the engine can
# give (its bounding set lacks one, and --privileged asks for all), unconfined, with a private
# cgroup namespace; compose/perseus-machine makes the mounts writable.
MACHINE_OPTS=()
machine_opts() {
  [ ${#MACHINE_OPTS[@]} -gt 0 ] && return
  if [ "${MACHINE_PRIVILEGED:-auto}" != no ] &&
    docker run --rm --privileged --entrypoint true "$MACHINE_IMAGE" >/dev/null 2>&1; then
    MACHINE_OPTS=(--privileged)
  else
    local missing=()
    local cap
    for cap in SYS_RESOURCE; do missing+=(--cap-drop "$cap"); done
    MACHINE_OPTS=(--cap-add ALL "${missing[@]}" --security-opt seccomp=unconfined
      --security-opt apparmor=unconfined --security-opt systempaths=unconfined
      --cgroupns private)
    say "--privileged is refused by this engine: machines get every capability but SYS_RESOURCE"
  fi
}

wait_engine() {
  local i="$1" deadline=$((SECONDS + ${2:-60}))
  until on "$i" version --format '{{.Server.Version}}' >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || {
      docker logs --tail 20 "perseus-m$i" >&2 || true
      die "the engine of m$i does not answer on $(machine_ip "$i"):$API_PORT"
    }
    sleep 0.5
  done
}

up() {
  docker image inspect "$IMAGE" >/dev/null 2>&1 || die "no image $IMAGE: run make images IMAGE=$IMAGE"
  docker image inspect "$MACHINE_IMAGE" >/dev/null 2>&1 || die "no image $MACHINE_IMAGE: run make machine-image"
  if [ -f "$HOSTS_FILE" ] && [ -n "$(docker ps -q --filter "label=$LABEL")" ]; then
    # A second deploy would replace the tasks chaos replaced (their spec differs by the
    # forced update): with the stack in place only start what is killed and wait for health.
    if on 1 stack ls --format '{{.Name}}' 2>/dev/null | grep -qx "${COMPOSE_PROJECT_NAME:-perseus}"; then
      say "the cluster and its stack are up: starting what is killed"
      CHAOS_HOSTS_FILE="$PWD/$HOSTS_FILE" scripts/swarm.sh chaos --target perseus --wait 0 start
      CHAOS_HOSTS_FILE="$PWD/$HOSTS_FILE" scripts/swarm.sh chaos --target perseus --wait "${UP_TIMEOUT:-90}" health
      return
    fi
    say "the cluster is up ($(docker ps -q --filter "label=$LABEL" | wc -l) containers): deploying the stack"
    deploy
    return
  fi
  [ -z "$(docker ps -aq --filter "label=$LABEL")" ] || die "a cluster is half up: run make cluster-down first"
  local t0 t
  t0="$(now_ms)"
  mkdir -p "$STATE"
  docker network create --label "$LABEL" --subnet "$SUBNET_PREFIX.0/24" \
    -o com.docker.network.driver.mtu=1500 "$NETWORK" >/dev/null
  docker volume create --label "$LABEL" perseus-registry-data >/dev/null
  docker run -d --name "$REGISTRY_NAME" --label "$LABEL" --hostname registry \
    --network "$NETWORK" --ip "$SUBNET_PREFIX.2" --network-alias registry \
    -p "127.0.0.1:$REGISTRY_PORT:5000" -v perseus-registry-data:/var/lib/docker-registry \
    "$MACHINE_IMAGE" docker-registry serve /etc/perseus/registry.yml >/dev/null
  machine_opts
  local i
  for i in $(seq "$ENGINES"); do
    docker volume create --label "$LABEL" "perseus-m$i-docker" >/dev/null
    docker run -d --name "perseus-m$i" --label "$LABEL" --hostname "m$i" "${MACHINE_OPTS[@]}" \
      --network "$NETWORK" --ip "$(machine_ip "$i")" -v "perseus-m$i-docker:/var/lib/docker" \
      "$MACHINE_IMAGE" >/dev/null
  done
  # The push, while the engines start: tag for the registry's port on this machine's loopback
  # (an insecure registry to every engine by default), push, drop the tag.
  t="$(now_ms)"
  local pushed="127.0.0.1:$REGISTRY_PORT/$IMAGE" tries=0
  docker tag "$IMAGE" "$pushed"
  until docker push "$pushed" >/dev/null 2>"$STATE/push.err"; do
    tries=$((tries + 1))
    [ "$tries" -lt 20 ] || { docker rmi "$pushed" >/dev/null; cat "$STATE/push.err" >&2; die "push to the registry failed"; }
    sleep 0.5
  done
  docker rmi "$pushed" >/dev/null
  say "pushed $IMAGE to the registry in $(($(now_ms) - t)) ms"
  for i in $(seq "$ENGINES"); do wait_engine "$i" 90; done
  say "$ENGINES engines answer ($(on 1 version --format '{{.Server.Version}}'), storage $(on 1 info --format '{{.Driver}}')) after $(($(now_ms) - t0)) ms"
  # Every engine pulls the image from the registry (in parallel), as machines would.
  t="$(now_ms)"
  local pids=()
  for i in $(seq "$ENGINES"); do on "$i" pull -q "$REMOTE_IMAGE" >/dev/null & pids+=($!); done
  for i in "${pids[@]}"; do wait "$i" || die "an engine could not pull $REMOTE_IMAGE"; done
  say "the engines pulled $REMOTE_IMAGE in $(($(now_ms) - t)) ms"
  # The swarm: m1 creates it, the others join as managers (three managers keep a quorum when
  # one machine is down); node mN carries perseus.host=aN.
  on 1 swarm init --advertise-addr "$(machine_ip 1)" --listen-addr "$(machine_ip 1):2377" >/dev/null
  local token
  token="$(on 1 swarm join-token -q manager)"
  for i in $(seq 2 "$ENGINES"); do
    on "$i" swarm join --token "$token" --advertise-addr "$(machine_ip "$i")" "$(machine_ip 1):2377" >/dev/null
  done
  for i in $(seq "$ENGINES"); do
    [ "$i" -le 3 ] && on 1 node update --label-add "perseus.host=a$i" "m$i" >/dev/null
  done
  say "swarm of $ENGINES engines: $(on 1 node ls --format '{{.Hostname}}:{{.ManagerStatus}}' | tr '\n' ' ')"
  # The hosts file: chaos reaches host aN through the engine of mN (a1..a3 on m1 when there
  # is one engine), and `machine=` names the container a power cut stops.
  {
    echo "# written by scripts/cluster.sh up: which engine runs each host (docs/swarm.md)"
    local h m
    for h in 1 2 3; do
      m=$(((h - 1) % ENGINES + 1))
      echo "a$h tcp://$(machine_ip "$m"):$API_PORT machine=perseus-m$m"
    done
  } >"$HOSTS_FILE"
  # Where the load generator, lab and watch reach each node: its published port on its machine.
  local nodes=()
  for h in 1 2 3; do nodes+=("http://$(machine_ip $(((h - 1) % ENGINES + 1))):808$h"); done
  (IFS=,; echo "${nodes[*]}") >"$STATE/nodes"
  say "machines up in $(($(now_ms) - t0)) ms"
  deploy
  say "cluster up in $(($(now_ms) - t0)) ms"
}

# The stack through m1, hosts placed by the labels; then every host healthy.
deploy() {
  DOCKER_HOST="tcp://$(machine_ip 1):$API_PORT" SWARM_IMAGE="$REMOTE_IMAGE" SWARM_FROM_REGISTRY=1 \
    PERSEUS_ACCEPTORS_BY=name CHAOS_HOSTS_FILE="$PWD/$HOSTS_FILE" scripts/swarm.sh up
}

leftovers() {
  docker ps -aq --filter "label=$LABEL"
  docker volume ls -q --filter "label=$LABEL"
  docker network ls -q --filter "label=$LABEL"
  docker images -q "127.0.0.1:$REGISTRY_PORT/*"
}

down() {
  local t0
  t0="$(now_ms)"
  # The engines go with their containers, their swarm and their volumes' contents.
  docker ps -aq --filter "label=$LABEL" | xargs -r docker rm -f -v >/dev/null
  docker volume ls -q --filter "label=$LABEL" | xargs -r docker volume rm >/dev/null
  docker network ls -q --filter "label=$LABEL" | xargs -r docker network rm >/dev/null
  docker images --format '{{.Repository}}:{{.Tag}}' "127.0.0.1:$REGISTRY_PORT/*" | xargs -r docker rmi >/dev/null
  rm -rf "$STATE"
  local left
  left="$(leftovers | tr '\n' ' ')"
  [ -z "${left// /}" ] || die "left behind: $left"
  say "down in $(($(now_ms) - t0)) ms: no machine, registry, volume or network left; this engine's swarm: $(docker info --format '{{.Swarm.LocalNodeState}}')"
}

cmd="${1:-}"
case "$cmd" in
  up) up ;;
  down) down ;;
  check) left="$(leftovers | tr '\n' ' ')"; [ -z "${left// /}" ] || die "left behind: $left" ;;
  *) die "usage: scripts/cluster.sh up|down|check (ENGINES=3)" ;;
esac
