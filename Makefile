# Perseus testbed. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Compose v2 plugin when present, else docker-compose v1 (1.29) (scripts/lib.sh).
COMPOSE ?= $(shell scripts/lib.sh compose_command)
CARGO ?= cargo
# Where the testbed runs (docs/swarm.md): compose (one machine), swarm (a Docker Swarm stack) or
# cluster (the stack across Docker engines in containers, `make cluster-up`; the default while
# one is up).
CLUSTER_STATE := compose/.cluster
ENGINE ?= $(if $(wildcard $(CLUSTER_STATE)/hosts),cluster,compose)
ifeq ($(filter compose swarm cluster,$(ENGINE)),)
$(error ENGINE must be compose, swarm or cluster (got '$(ENGINE)'))
endif
# `make cluster-up ENGINES=3`: how many engines (machines) the simulated cluster has
ENGINES ?= 3
MACHINE_IMAGE ?= perseus-machine:bookworm
SWARM_ROUTE := $(filter swarm cluster,$(ENGINE))
ifeq ($(ENGINE),cluster)
IMAGE ?= perseus:swarm
# The nodes' published ports on their machines (written by scripts/cluster.sh up), and the
# hosts file that tells chaos which engine runs each host.
CLUSTER_NODES := $(shell cat $(CLUSTER_STATE)/nodes 2>/dev/null)
export LAB_NODES ?= $(CLUSTER_NODES)
export WATCH_NODES ?= $(LAB_NODES)
export CHAOS_HOSTS_FILE ?= $(CURDIR)/$(CLUSTER_STATE)/hosts
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
comma := ,
CHAOS_TARGET := $(if $(filter-out perseus,$(SYSTEM)),$(SYSTEM),$(TARGET))
SYSTEMS_IMAGE ?= perseus-systems:latest
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
# `make experiment` / `make soak`; a control runs the scenario that shows it (its own, e.g.
# sentinel-primary-cut: isolate-primary) unless SCENARIO is given
SCENARIO ?= $(if $(filter sentinel-primary-cut,$(CONTROL)),isolate-primary,kill-and-isolate)
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
# `make delay LINKS="a1-a2=11ms a1-a3=85ms a2-a3=95ms"`: one-way delays per link (each ±JITTER
# when written a1-a2=11ms,2ms); `make clock-a1 OFFSET=+300s` (or JUMP=-60s, DRIFT=+1000ppm)
LINKS ?= a1-a2=10.9ms a1-a3=84.5ms a2-a3=94.6ms
# `make truncate-HOST BYTES=4096`: how many bytes to cut off the tail of the host's log
BYTES ?= 4096
# `make matrix` and `make compare`: systems, faults (each hits the leader; any fault kind, with
# its parameters: FAULTS="kill loss:30") and runs per combination
SYSTEMS ?= perseus etcd
FAULTS ?= kill isolate pause
RUNS ?= 10
export COMPOSE BASE_IMAGE UP_TIMEOUT SYSTEMS_IMAGE ENGINES MACHINE_IMAGE
export SWARM_IMAGE := $(IMAGE)

# Every profile of docker-compose.yml (where they are defined), so that `make down` removes
# every system.
ALL_PROFILES := $(addprefix --profile ,$(sort $(subst $(comma), ,$(shell sed -n 's/^ *profiles: *\[\(.*\)\].*/\1/p' docker-compose.yml | tr -d '" '))))
ifneq ($(SWARM_ROUTE),)
CHAOS := scripts/swarm.sh chaos --target $(TARGET)
else
CHAOS := $(COMPOSE) --profile chaos run --rm -T chaos --target $(CHAOS_TARGET)
endif
# The client container, running or not (by label, see scripts/lib.sh).
CLIENT_ID = $$(scripts/lib.sh cid client)

.PHONY: help swarm-check cluster-up cluster-down machine-image up up-etcd load load-etcd bench status logs down test e2e base binaries images systems-image ci heal experiment soak watch partition \
        compare matrix results smoke amnesia-check rollback-check accept-loss idle-reconnect node-memory contention bench-catchup snapshot

help: ## Show this help
	@echo "Perseus testbed (compose: $(COMPOSE))"
	@grep -hE '^[^ #]+:.*## ' $(MAKEFILE_LIST) | \
	  sed -E 's/^\$$\(HOSTS:%=([a-z-]+)-%\).*## /\1-HOST\t/; s/^([^ :]+):[^#]*## /\1\t/' | \
	  awk -F'\t' '{printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  make VERB-HOST       a fault: VERB is any chaos command (target/release/chaos --help lists them;"
	@echo "                       partition-HOST isolates, isolate-in/-out cut one way; loss, limit and delay"
	@echo "                       take PERCENT=30 SCOPE=peers|all, RATE=256kbit, DELAY=50ms JITTER=10ms;"
	@echo "                       clock takes OFFSET=+300s, JUMP=-60s or DRIFT=+1000ppm)"
	@echo "  make VERB-LAYER-HOST one layer of a Perseus host: kill/start/pause/cut-acceptor-a1, ...-node-a1"
	@echo "  HOST is a host of any system or leader (make kill-a1, make kill-leader SYSTEM=zookeeper);"
	@echo "  SYSTEM picks the system for up, load, the leader faults, experiment and smoke"
	@echo "  (perseus by default; docs/systems.md lists the systems and their hosts)."

base: ## Build the base image (debian:bookworm-slim, or debootstrap from this machine's apt mirror when no registry answers)
	BASE_IMAGE=$(BASE_IMAGE) compose/make-base.sh

binaries: ## cargo build --release of node, loadgen, chaos, lab and watch (installs protoc for etcd's gRPC client when missing)
	scripts/lib.sh need protoc protobuf-compiler
	scripts/lib.sh need /usr/include/google/protobuf/descriptor.proto libprotobuf-dev
	$(CARGO) build --release -p perseus-node -p loadgen -p chaos -p perseus-lab -p perseus-watch -p delayer

images: base binaries ## Build the perseus:latest image (base + the binaries + configs + libfaketime for clock faults)
	scripts/lib.sh need faketime
	rm -rf $(BUILD_DIR) && mkdir -p $(BUILD_DIR)
	cp target/release/node target/release/loadgen target/release/chaos target/release/delayer $(BUILD_DIR)/
	cp "$$(dpkg -L libfaketime | grep '/libfaketime\.so\.1$$' | head -1)" $(BUILD_DIR)/
	cp compose/perseus-acceptor compose/perseus-host compose/redis.conf compose/p1.toml compose/p2.toml compose/p3.toml $(BUILD_DIR)/
	docker build -q --build-arg BASE=$(BASE_IMAGE) -t $(IMAGE) -f compose/Dockerfile $(BUILD_DIR)

up: images $(if $(filter cluster,$(ENGINE)),machine-image) ## Build what is missing, start SYSTEM's hosts (perseus: a1..a3 + p1..p3, repairing a node left in an old namespace), wait until all serve (ENGINE=swarm: deploy the stack; cluster: make cluster-up)
ifeq ($(ENGINE),cluster)
	scripts/cluster.sh up
else ifeq ($(ENGINE),swarm)
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
ifeq ($(ENGINE),cluster)
	LOADGEN_NODES=$(or $(LOADGEN_NODES),$(CLUSTER_NODES),$$(cat $(CLUSTER_STATE)/nodes)) LOADGEN_DURATION=$(LOADGEN_DURATION) LOADGEN_CONNECTIONS=$(CONNECTIONS) LOADGEN_KEYS=$(KEYS) scripts/swarm.sh load
else ifeq ($(ENGINE),swarm)
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

heal: ## Undo every fault on every host (of TARGET): rules, qdiscs, pauses, killed acceptors and hosts
	@$(CHAOS) heal
snapshot: ## save a copy of the data directory of every host (of TARGET) for rollback
	@$(CHAOS) snapshot
partition: ## Partition the hosts (of TARGET) by SHAPE: "a1 | a2 a3", halves, bridge, majorities-ring
	@$(CHAOS) partition "$(SHAPE)"
delay: ## One-way delays per link: LINKS="a1-a2=11ms a1-a3=85ms a2-a3=95ms" (the hosts name the system); make heal undoes them
	@$(CHAOS) delay-links "$(LINKS)"
.PHONY: delay bench-delayer
bench-delayer: ## The delayer's own added latency and CPU per packet at 0 ms delay (loopback in a fresh network namespace, no Docker; as root)
	$(CARGO) build -q --release -p delayer
	delayer/bench.sh target/release/delayer

# Fault targets, VERB-HOST and VERB-LAYER-HOST (make help): any target without a rule of its
# own is handed to chaos, which knows every fault kind and every host (model/src/fault/kinds.rs,
# model/src/system.rs), so a new kind or system needs no line here. The make names that are
# not chaos's own: partition-HOST and cut-LAYER-HOST isolate; isolate-in/-out are the one-way
# cuts. loss, limit, delay and truncate take their parameters from PERCENT/SCOPE, RATE,
# DELAY/JITTER and BYTES.
FAULT_ALIAS_partition := isolate
FAULT_ALIAS_cut := isolate
FAULT_ALIAS_isolate-in := isolate-inbound
FAULT_ALIAS_isolate-out := isolate-outbound
FAULT_OPTIONS_loss = --scope $(SCOPE)
FAULT_PARAMS_loss = :$(PERCENT)
FAULT_PARAMS_limit = :$(RATE)
FAULT_PARAMS_delay = :$(DELAY)$(if $(JITTER),$(comma)$(JITTER))
FAULT_PARAMS_truncate = $(if $(BYTES),:$(BYTES))
FAULT_PARAMS_clock = :$(if $(OFFSET),offset=$(OFFSET),$(if $(JUMP),jump=$(JUMP),$(if $(DRIFT),drift=$(DRIFT))))
# `kill` → `kill`, `loss` → `--scope peers loss:30`, `partition` → `isolate`; a kind without
# a named parameter variable takes PARAMS (`make corrupt-a1 PARAMS=5` → `corrupt:5`).
fault_verb = $(FAULT_OPTIONS_$(1)) $(or $(FAULT_ALIAS_$(1)),$(1))$(or $(FAULT_PARAMS_$(1)),$(if $(PARAMS),:$(PARAMS)))
# `kill-acceptor` → `--layer acceptor kill`
fault_command = $(if $(filter %-acceptor %-node,$(1)),--layer $(lastword $(subst -, ,$(1))) $(call fault_verb,$(patsubst %-acceptor,%,$(patsubst %-node,%,$(1)))),$(call fault_verb,$(1)))
fault_host = $(lastword $(subst -, ,$(1)))
.DEFAULT:
	@$(if $(findstring -,$@),$(CHAOS) $(call fault_command,$(patsubst %-$(call fault_host,$@),%,$@)) $(call fault_host,$@),echo "make: no target '$@' (make help lists them)" >&2; exit 2)

# The power of a machine (docs/swarm.md): `make kill-machine-1` cuts the power of the machine
# that runs a1 (m1 with make cluster-up), `make start-machine-1` brings it back; HOST works too
# (kill-machine-a2).
kill-machine-%:
	@$(CHAOS) kill-machine $(if $(filter a%,$*),$*,a$*)
start-machine-%:
	@$(CHAOS) start-machine $(if $(filter a%,$*),$*,a$*)

down: ## Remove all containers, networks and volumes of the testbed, every system (ENGINE=swarm: the stack, and the swarm if up entered it; cluster: make cluster-down)
ifeq ($(ENGINE),cluster)
	scripts/cluster.sh down
else ifeq ($(ENGINE),swarm)
	scripts/swarm.sh down
else
	$(COMPOSE) $(ALL_PROFILES) down -v --remove-orphans -t 2
	@# the snapshot volumes chaos made (make snapshot-HOST): Compose does not know them
	@docker volume ls -q --filter label=perseus.snapshot.project=$${COMPOSE_PROJECT_NAME:-perseus} | xargs -r docker volume rm >/dev/null
endif

test: ## fmt --check, clippy -D warnings, cargo test (installs redis-server and faketime for the node tests, protoc for etcd's gRPC client and chromium for the report's browser check when missing)
	scripts/lib.sh need redis-server
	scripts/lib.sh need faketime
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
bench-checker: ## The history checker: a million counter-loop operations checked (time, memory), the register search at 10, 30 and 100 clients per key
	$(CARGO) build --release -p perseus-lab
	target/release/lab bench-checker

watch: up ## Live terminal view of the load: charts per node, faults marked, keys act (q quits, writes a report)
	target/release/watch --store $(SYSTEM) --duration $(WATCH_DURATION) \
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

smoke: images ## Short run of SYSTEM for CI: up, 24 s of load, kill the leader, start it, down; fails on violations or a node never serving
	scripts/smoke.sh $(SYSTEM)

.PHONY: replica-check
replica-check: images ## Galera: a clean run's replicas agree, then one key changed on g2 alone is reported as a replica-divergence (scripts/replica-check.sh)
	scripts/replica-check.sh

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
	CATCHUP_KEYS=$(CATCHUP_KEYS) $(CARGO) test --release -p loadgen --test catch_up_bench -- --ignored --nocapture --test-threads=1 $(BENCH_ONLY)

node-memory: images ## 3,000 keys x 64 KB through p1: its resident memory before/after against the documented bound (then make down)
	scripts/node-memory.sh

accept-loss: ## After a majority of acceptors lost their data: make them all members again, accepting the loss
	$(COMPOSE) exec -T p1 node accept-loss --config /etc/perseus/p1.toml

cluster-up: ## ENGINES=3 Docker engines in containers (machines m1..), a registry with the project's image, one swarm, the stack a1/a2/a3 one per engine (docs/swarm.md)
	$(MAKE) up ENGINE=cluster ENGINES=$(ENGINES)

cluster-down: ## Remove the simulated machines, their swarm, the registry, their volumes and network
	scripts/cluster.sh down

machine-image: base ## The image of a simulated machine: Debian's docker.io and docker-registry on the base image
	docker build -q --build-arg BASE=$(BASE_IMAGE) -t $(MACHINE_IMAGE) -f compose/machine.Dockerfile compose

swarm-check: ## The swarm route end to end: up ENGINE=swarm, load with kill-a1 and partition-a2, down, engine left as found
	scripts/swarm-check.sh

e2e: ## End-to-end: up, load with kill/start/isolate/heal of a1, assertions, down
	scripts/e2e.sh

ci: ## What CI runs (.ci/run)
	.ci/run
