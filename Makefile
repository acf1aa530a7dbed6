# Perseus testbed. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Compose v2 plugin when present, else docker-compose v1 (1.29) (scripts/lib.sh).
COMPOSE ?= $(shell scripts/lib.sh compose_command)
CARGO ?= cargo
# Where the testbed runs: compose (one machine) or swarm (a Docker Swarm stack, docs/swarm.md).
ENGINE ?= compose
ifeq ($(filter compose swarm,$(ENGINE)),)
$(error ENGINE must be compose or swarm (got '$(ENGINE)'))
endif
ifeq ($(ENGINE),swarm)
# Its own tag: perseus:latest is rebuilt by whoever runs the Compose testbed.
IMAGE ?= perseus:swarm
# lab runs loadgen and chaos on this machine: the nodes' published ports.
export LAB_NODES ?= http://127.0.0.1:8081,http://127.0.0.1:8082,http://127.0.0.1:8083
export WATCH_NODES ?= $(LAB_NODES)
endif
IMAGE ?= perseus:latest
BASE_IMAGE ?= perseus-base:bookworm
BUILD_DIR := compose/.build
HOSTS := a1 a2 a3
ETCD_HOSTS := e1 e2 e3
ZK_HOSTS := z1 z2 z3
NATS_HOSTS := j1 j2 j3
GALERA_HOSTS := g1 g2 g3
POSTGRES_HOSTS := q1 q2 q3
SENTINEL_HOSTS := r1 r2 r3
# The hosts of the systems other than Perseus (host faults by name: make kill-z2).
OTHER_HOSTS := $(ETCD_HOSTS) $(ZK_HOSTS) $(NATS_HOSTS) $(GALERA_HOSTS) $(POSTGRES_HOSTS) $(SENTINEL_HOSTS)
# The system under test (docs/systems.md): perseus, etcd (v2 API), etcd3 (the same cluster
# through the v3 API), zookeeper, nats, galera, postgres, sentinel. `make up|load|kill-leader|experiment|smoke SYSTEM=s`.
SYSTEM ?= perseus
# Controls (docs/tools.md): a system's known non-linearizable variant, run by the same targets
# (`make experiment SYSTEM=etcd-stale-reads WORKLOAD=register`); SYSTEM becomes its system.
CONTROLS := etcd-stale-reads zookeeper-no-sync sentinel-primary-cut
CONTROL := $(filter $(CONTROLS),$(SYSTEM))
ifneq ($(CONTROL),)
override SYSTEM := $(word 1,$(subst -, ,$(CONTROL)))
endif
# `make experiment`: counter (each client its own key) or register (many clients on a few
# shared keys: reads, blind writes, compare-and-sets), judged from the run's history.jsonl
WORKLOAD ?= counter
# Which system `leader` (and `make heal`) refers to when SYSTEM is perseus (the default): auto
# (the one that is up, Perseus first), or a system's name. E.g. `make kill-leader TARGET=etcd`
# (the same as SYSTEM=etcd).
TARGET ?= auto
CHAOS_TARGET := $(if $(filter-out perseus,$(SYSTEM)),$(SYSTEM),$(TARGET))
SYSTEMS_IMAGE ?= perseus-systems:latest
ETCD_NODES := http://10.77.0.21:2379,http://10.77.0.22:2379,http://10.77.0.23:2379
# How long `make load` runs the load generator (seconds); it always stops by itself.
LOADGEN_DURATION ?= 300
# `make load`: connections per node, and which keys they use: `own` (one key per connection)
# or `shared:N` (all connections of all nodes race on N keys), e.g. KEYS=shared:1 CONNECTIONS=10
CONNECTIONS ?= 1
KEYS ?= own
BENCH_DURATION ?= 10
BENCH_ROUNDS ?= 3
BENCH_CONNECTIONS ?= 1 4 16
# make bench-catchup: keys on the acceptors when one is wiped
CATCHUP_KEYS ?= 100000
# `make experiment` / `make soak`
SCENARIO ?= kill-and-isolate
DURATION ?= 300
SEED ?= 1
# `make watch`: the load stops by itself after this many seconds (or on q)
WATCH_DURATION ?= 3600
UP_TIMEOUT ?= 90
# Fault parameters (docs/faults.md): make loss-a1 PERCENT=30 SCOPE=peers|all, make limit-a1
# RATE=256kbit, make delay-a1 DELAY=50ms JITTER=10ms, make partition SHAPE="a1 | a2 a3".
PERCENT ?= 30
SCOPE ?= peers
RATE ?= 256kbit
DELAY ?= 50ms
JITTER ?= 10ms
SHAPE ?= majorities-ring
# `make truncate-HOST BYTES=4096`: how many bytes to cut off the tail of the host's log
BYTES ?= 4096
# `make matrix` and `make compare`: systems, faults (each hits the leader) and runs per combination
SYSTEMS ?= perseus etcd
FAULTS ?= kill isolate pause
RUNS ?= 10
export COMPOSE BASE_IMAGE UP_TIMEOUT SYSTEMS_IMAGE
export SWARM_IMAGE := $(IMAGE)

CLUSTER := a1 a2 a3 p1 p2 p3
# Every profile, so that `make down` removes every system.
ALL_PROFILES := --profile load --profile chaos --profile etcd --profile zookeeper --profile nats \
  --profile galera --profile postgres --profile sentinel
ifeq ($(ENGINE),swarm)
CHAOS := scripts/swarm.sh chaos --target $(TARGET)
else
CHAOS := $(COMPOSE) --profile chaos run --rm -T chaos --target $(CHAOS_TARGET)
endif
# The client container, running or not (by label, see scripts/lib.sh).
CLIENT_ID = $$(scripts/lib.sh cid client)

.PHONY: help swarm-check up up-etcd load load-etcd bench status logs down test e2e base binaries images systems-image ci heal experiment soak watch partition \
        compare matrix results etcd-smoke smoke amnesia-check rollback-check accept-loss idle-reconnect node-memory contention bench-catchup \
        $(foreach v,kill start restart partition heal pause resume loss limit delay isolate-in isolate-out cut-clients amnesia wipe snapshot rollback truncate,$(HOSTS:%=$(v)-%) $(OTHER_HOSTS:%=$(v)-%) $(v)-leader) \
        $(foreach v,kill start pause cut,$(HOSTS:%=$(v)-acceptor-%) $(HOSTS:%=$(v)-node-%)) \
        $(foreach v,wipe rollback truncate,$(HOSTS:%=$(v)-acceptor-%)) snapshot

help: ## Show this help
	@echo "Perseus testbed (compose: $(COMPOSE))"
	@grep -hE '^[^ #]+:.*## ' $(MAKEFILE_LIST) | \
	  sed -E 's/^\$$\(HOSTS:%=([a-z-]+)-%\).*## /\1-HOST\t/; s/^([^ :]+):[^#]*## /\1\t/' | \
	  awk -F'\t' '{printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  HOST is a1..a3 (Perseus), e1..e3 (etcd, etcd3), z1..z3 (zookeeper), j1..j3 (nats) or leader"
	@echo "  (e.g. make kill-a1, make partition-e2, make kill-leader SYSTEM=zookeeper)."
	@echo "  SYSTEM=perseus (default), etcd, etcd3, zookeeper or nats picks the system for up, load,"
	@echo "  the leader faults, experiment and smoke (docs/systems.md)."

base: ## Build the base image (debian:bookworm-slim, or debootstrap from this machine's apt mirror when no registry answers)
	BASE_IMAGE=$(BASE_IMAGE) compose/make-base.sh

binaries: ## cargo build --release of node, loadgen, chaos, lab and watch (installs protoc for etcd's gRPC client when missing)
	scripts/lib.sh need protoc protobuf-compiler
	scripts/lib.sh need /usr/include/google/protobuf/descriptor.proto libprotobuf-dev
	$(CARGO) build --release -p perseus-node -p loadgen -p chaos -p perseus-lab -p perseus-watch

images: base binaries ## Build the perseus:latest image (base + the three binaries + configs)
	rm -rf $(BUILD_DIR) && mkdir -p $(BUILD_DIR)
	cp target/release/node target/release/loadgen target/release/chaos $(BUILD_DIR)/
	cp compose/perseus-acceptor compose/perseus-host compose/redis.conf compose/p1.toml compose/p2.toml compose/p3.toml $(BUILD_DIR)/
	docker build -q --build-arg BASE=$(BASE_IMAGE) -t $(IMAGE) -f compose/Dockerfile $(BUILD_DIR)

up: images ## Build what is missing, start SYSTEM's hosts (perseus: a1..a3 + p1..p3, repairing a node left in an old namespace), wait until all serve (ENGINE=swarm: deploy the stack)
ifeq ($(ENGINE),swarm)
	scripts/swarm.sh up
else
	@scripts/swarm.sh guard
	scripts/up.sh $(SYSTEM)
endif

up-etcd: ## The same as make up SYSTEM=etcd: start the etcd cluster e1..e3, wait until healthy
	$(MAKE) up SYSTEM=etcd

systems-image: ## Build the image of the other systems (perseus-systems:latest: compose/systems/, Debian packages)
	scripts/systems-image.sh

load: up ## Run the load generator against SYSTEM (LOADGEN_DURATION=300 s, CONNECTIONS=1 per node, KEYS=own|shared:N)
ifeq ($(ENGINE),swarm)
	LOADGEN_DURATION=$(LOADGEN_DURATION) LOADGEN_CONNECTIONS=$(CONNECTIONS) LOADGEN_KEYS=$(KEYS) scripts/swarm.sh load
else
	LOADGEN_SYSTEM=$(SYSTEM) LOADGEN_NODES=$(LOADGEN_NODES) LOADGEN_DURATION=$(LOADGEN_DURATION) LOADGEN_CONNECTIONS=$(CONNECTIONS) LOADGEN_KEYS=$(KEYS) $(COMPOSE) --profile load up -d --no-deps --force-recreate client
	@id=$(CLIENT_ID); \
	  docker logs -f $$id; \
	  code=$$(docker wait $$id); echo "# loadgen exited with $$code"; exit $$code
endif

load-etcd: ## The same as make load SYSTEM=etcd (LOADGEN_DURATION, CONNECTIONS, KEYS as for load)
	$(MAKE) load SYSTEM=etcd

# `make bench` measures Perseus; `make bench SYSTEMS="perseus etcd"` adds etcd (SYSTEMS's own
# default is the matrix's, so bench reads it only when given).
BENCH_SYSTEMS ?= $(if $(filter command line environment,$(origin SYSTEMS)),$(SYSTEMS),perseus)
bench: up ## Throughput, latency, CPU per component, Redis calls and fsyncs per iteration at BENCH_CONNECTIONS="1 4 16" per node (BENCH_DURATION=10 s, median of BENCH_ROUNDS=3 turns; SYSTEMS="perseus etcd" adds etcd, taking turns)
	BENCH_DURATION=$(BENCH_DURATION) BENCH_ROUNDS=$(BENCH_ROUNDS) BENCH_CONNECTIONS="$(BENCH_CONNECTIONS)" BENCH_SYSTEMS="$(BENCH_SYSTEMS)" scripts/bench.sh

logs: ## Show the load generator's output (follows it while it runs)
	@id=$(CLIENT_ID); \
	  if [ -z "$$id" ]; then echo "no client container: run make load" >&2; exit 1; fi; \
	  docker logs -f $$id

status: ## Hosts: containers' states, shared namespace, health from outside, faults, addresses
	@$(CHAOS) status

$(HOSTS:%=kill-%) $(OTHER_HOSTS:%=kill-%) kill-leader: kill-%: ## SIGKILL HOST (acceptor and node, or the etcd member)
	@$(CHAOS) kill $*
$(HOSTS:%=start-%) $(OTHER_HOSTS:%=start-%) start-leader: start-%: ## start HOST again and wait until it answers /health
	@$(CHAOS) start $*
$(HOSTS:%=restart-%) $(OTHER_HOSTS:%=restart-%) restart-leader: restart-%: ## kill + start
	@$(CHAOS) restart $*
$(HOSTS:%=partition-%) $(OTHER_HOSTS:%=partition-%) partition-leader: partition-%: ## cut HOST off from the other hosts (clients still reach it)
	@$(CHAOS) isolate $*
$(HOSTS:%=heal-%) $(OTHER_HOSTS:%=heal-%) heal-leader: heal-%: ## undo every fault on HOST
	@$(CHAOS) heal $*
heal: ## Undo every fault on every host (of TARGET): rules, qdiscs, pauses, killed acceptors and hosts
	@$(CHAOS) heal
$(HOSTS:%=pause-%) $(OTHER_HOSTS:%=pause-%) pause-leader: pause-%: ## freeze HOST (docker pause)
	@$(CHAOS) pause $*
$(HOSTS:%=resume-%) $(OTHER_HOSTS:%=resume-%) resume-leader: resume-%: ## thaw HOST
	@$(CHAOS) resume $*
$(HOSTS:%=loss-%) $(OTHER_HOSTS:%=loss-%) loss-leader: loss-%: ## drop PERCENT (30) % of HOST's packets to/from its peers (SCOPE=all: every packet)
	@$(CHAOS) --scope $(SCOPE) loss $* $(PERCENT)
$(HOSTS:%=limit-%) $(OTHER_HOSTS:%=limit-%) limit-leader: limit-%: ## limit HOST's outgoing bandwidth to RATE (256kbit)
	@$(CHAOS) limit $* $(RATE)
$(HOSTS:%=delay-%) $(OTHER_HOSTS:%=delay-%) delay-leader: delay-%: ## delay HOST's packets by DELAY (50ms) ± JITTER (10ms); needs netem
	@$(CHAOS) delay $* $(DELAY) $(JITTER)
$(HOSTS:%=isolate-in-%) $(OTHER_HOSTS:%=isolate-in-%) isolate-in-leader: isolate-in-%: ## one way: HOST's peers cannot reach it (it reaches them)
	@$(CHAOS) isolate-inbound $*
$(HOSTS:%=isolate-out-%) $(OTHER_HOSTS:%=isolate-out-%) isolate-out-leader: isolate-out-%: ## one way: HOST cannot reach its peers (they reach it)
	@$(CHAOS) isolate-outbound $*
$(HOSTS:%=cut-clients-%) $(OTHER_HOSTS:%=cut-clients-%) cut-clients-leader: cut-clients-%: ## HOST's clients cannot reach it (its peers can)
	@$(CHAOS) cut-clients $*
$(HOSTS:%=amnesia-%) $(OTHER_HOSTS:%=amnesia-%) amnesia-leader: amnesia-%: ## stop HOST, erase its data volume, start it empty (may lose acknowledged writes)
	@$(CHAOS) amnesia $*
$(HOSTS:%=wipe-%) $(OTHER_HOSTS:%=wipe-%) wipe-leader: wipe-%: ## stop HOST, empty its data directory, start it (docs/faults.md: storage faults)
	@$(CHAOS) wipe $*
$(HOSTS:%=snapshot-%) $(OTHER_HOSTS:%=snapshot-%) snapshot-leader: snapshot-%: ## save a copy of HOST's data directory (frozen while copied) for rollback
	@$(CHAOS) snapshot $*
snapshot: ## save a copy of the data directory of every host (of TARGET)
	@$(CHAOS) snapshot
$(HOSTS:%=rollback-%) $(OTHER_HOSTS:%=rollback-%) rollback-leader: rollback-%: ## stop HOST, put its snapshot back in place of its data, start it (may lose acknowledged writes)
	@$(CHAOS) rollback $*
$(HOSTS:%=truncate-%) $(OTHER_HOSTS:%=truncate-%) truncate-leader: truncate-%: ## stop HOST, cut BYTES (4096) off its log's tail, repair it as its tools advise, start it
	@$(CHAOS) truncate $* $(BYTES)
$(HOSTS:%=wipe-acceptor-%): wipe-acceptor-%: ## the same for HOST's Redis acceptor alone (the node keeps running)
	@$(CHAOS) --layer acceptor wipe $*
$(HOSTS:%=rollback-acceptor-%): rollback-acceptor-%: ## put the snapshot back under HOST's Redis alone
	@$(CHAOS) --layer acceptor rollback $*
$(HOSTS:%=truncate-acceptor-%): truncate-acceptor-%: ## cut the tail of HOST's Redis AOF alone
	@$(CHAOS) --layer acceptor truncate $* $(BYTES)
$(HOSTS:%=kill-acceptor-%): kill-acceptor-%: ## SIGKILL only HOST's Redis acceptor (the node keeps serving through the others)
	@$(CHAOS) --layer acceptor kill $*
$(HOSTS:%=start-acceptor-%): start-acceptor-%: ## start HOST's Redis acceptor again
	@$(CHAOS) --layer acceptor start $*
$(HOSTS:%=kill-node-%): kill-node-%: ## SIGKILL only HOST's node pN (its Redis keeps serving the others)
	@$(CHAOS) --layer node kill $*
$(HOSTS:%=start-node-%): start-node-%: ## start HOST's node again
	@$(CHAOS) --layer node start $*
$(HOSTS:%=pause-acceptor-%): pause-acceptor-%: ## freeze only HOST's Redis acceptor
	@$(CHAOS) --layer acceptor pause $*
$(HOSTS:%=pause-node-%): pause-node-%: ## freeze only HOST's node
	@$(CHAOS) --layer node pause $*
$(HOSTS:%=cut-acceptor-%): cut-acceptor-%: ## the other nodes cannot reach HOST's Redis (its node still reaches everything)
	@$(CHAOS) --layer acceptor isolate $*
$(HOSTS:%=cut-node-%): cut-node-%: ## HOST's node cannot reach the other acceptors (its Redis still serves them)
	@$(CHAOS) --layer node isolate $*
partition: ## Partition the hosts (of TARGET) by SHAPE: "a1 | a2 a3", halves, bridge, majorities-ring
	@$(CHAOS) partition "$(SHAPE)"

down: ## Remove all containers, networks and volumes of the testbed, every system (ENGINE=swarm: the stack, and the swarm if up entered it)
ifeq ($(ENGINE),swarm)
	scripts/swarm.sh down
else
	$(COMPOSE) $(ALL_PROFILES) down -v --remove-orphans -t 2
	@# the snapshot volumes chaos made (make snapshot-HOST): Compose does not know them
	@docker volume ls -q --filter label=perseus.snapshot.project=$${COMPOSE_PROJECT_NAME:-perseus} | xargs -r docker volume rm >/dev/null
endif

test: ## fmt --check, clippy -D warnings, cargo test (installs redis-server for the node tests, protoc for etcd's gRPC client and chromium for the report's browser check when missing)
	scripts/lib.sh need redis-server
	scripts/lib.sh need protoc protobuf-compiler
	scripts/lib.sh need /usr/include/google/protobuf/descriptor.proto libprotobuf-dev
	@scripts/lib.sh need chromium || echo "######## no chromium: the browser check of report.html will be SKIPPED ########" >&2
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	PERSEUS_REQUIRE_BROWSER=$$(command -v chromium >/dev/null && echo 1 || echo 0) $(CARGO) test --workspace

experiment: up ## Run compose/scenarios/SCENARIO.toml (default kill-and-isolate) on SYSTEM into results/UTC-SCENARIO/
	@test -f compose/scenarios/$(SCENARIO).toml || { echo "no scenario compose/scenarios/$(SCENARIO).toml; there are: $$(ls compose/scenarios | sed 's/.toml//' | tr '\n' ' ')" >&2; exit 2; }
	target/release/lab run compose/scenarios/$(SCENARIO).toml $(if $(filter-out perseus,$(SYSTEM)),--store $(SYSTEM)) \
	  $(if $(CONTROL),--control $(CONTROL)) --workload $(WORKLOAD) \
	  --out results/$$(date -u +%Y%m%dT%H%M%SZ)-$(SCENARIO)$(if $(filter-out perseus,$(SYSTEM)),-$(or $(CONTROL),$(SYSTEM)))$(if $(filter-out counter,$(WORKLOAD)),-$(WORKLOAD))

.PHONY: bench-checker
bench-checker: ## The history checker: a million counter-loop operations checked (time, memory), the register search at 10 and 100 clients per key
	$(CARGO) build --release -p perseus-lab
	target/release/lab bench-checker

watch: up ## Live terminal view of the load: charts per node, faults marked, keys act (q quits, writes a report)
	target/release/watch --duration $(WATCH_DURATION) \
	  --out results/$$(date -u +%Y%m%dT%H%M%SZ)-watch

soak: up ## Random faults of every kind (MIX, default all but amnesia) for DURATION (300) s with SEED, all undone at the end; fails on any violation
	target/release/lab soak --duration $(DURATION) --seed $(SEED) $(if $(MIX),--mix "$(MIX)") \
	  --out results/$$(date -u +%Y%m%dT%H%M%SZ)-soak-$(SEED)

compare: ## Same scenario (compose/scenarios/compare.toml) on each of SYSTEMS ("perseus etcd"), one at a time; one table, one plot per system. FAULTS="wipe rollback truncate": the storage faults instead (storage.md)
	SYSTEMS="$(SYSTEMS)" FAULTS="$(if $(filter command line environment,$(origin FAULTS)),$(FAULTS))" scripts/compare.sh

matrix: images ## SYSTEMS × FAULTS × RUNS fresh-cluster runs; the six measures as distributions in results/UTC-matrix/matrix.md
	SYSTEMS="$(SYSTEMS)" FAULTS="$(FAULTS)" RUNS="$(RUNS)" SEED="$(SEED)" scripts/matrix.sh

results: ## Regenerate docs/results.md from the runs in results/ (their summary.json) and the figures kept in docs/results/
	$(CARGO) build -q --release -p perseus-lab
	target/release/lab results

etcd-smoke: ## Short etcd run for CI: up-etcd, load, kill the leader, start it, down
	scripts/etcd-smoke.sh

smoke: images ## Short run of SYSTEM for CI: up, 24 s of load, kill the leader, start it, down; fails on violations or a node never serving
	scripts/smoke.sh $(SYSTEM)

amnesia-check: ## FLUSHALL an acceptor: the four steps of the amnesia bug, then in the middle of load; 0 lost writes
	scripts/amnesia-check.sh

rollback-check: images ## An acceptor rolled back to an old copy, then two acceptors wiped: never a 404 or a second create, data loss said and kept until make accept-loss
	scripts/rollback-check.sh

idle-reconnect: images ## Restart two Redis acceptors, wait 3 s, one PUT to each idle node: all must succeed (then make down)
	scripts/idle-reconnect.sh

contention: images ## 3 then 30 clients CAS-incrementing ONE key (LOADGEN_DURATION=30 s each), Perseus then etcd: one row per run (then make down)
	LOADGEN_DURATION=$(or $(filter-out 300,$(LOADGEN_DURATION)),30) scripts/contention.sh

bench-catchup: ## Catch-up rate of a wiped acceptor (CATCHUP_KEYS=100000), on loopback redis-servers, batches and end to end through 3 nodes, without and with the default load (no Docker)
	scripts/lib.sh need redis-server
	CATCHUP_KEYS=$(CATCHUP_KEYS) $(CARGO) test --release -p loadgen --test catch_up_bench -- --ignored --nocapture

node-memory: images ## 3,000 keys x 64 KB through p1: its resident memory before/after against the documented bound (then make down)
	scripts/node-memory.sh

accept-loss: ## After a majority of acceptors lost their data: make them all members again, accepting the loss
	$(COMPOSE) exec -T p1 node accept-loss --config /etc/perseus/p1.toml

swarm-check: ## The swarm route end to end: up ENGINE=swarm, load with kill-a1 and partition-a2, down, engine left as found
	scripts/swarm-check.sh

e2e: ## End-to-end: up, load with kill/start/isolate/heal of a1, assertions, down
	scripts/e2e.sh

ci: ## What CI runs (.ci/run)
	.ci/run
