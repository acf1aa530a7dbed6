# Perseus testbed. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

# Compose v2 plugin when present, else docker-compose v1 (1.29) (scripts/lib.sh).
COMPOSE ?= $(shell scripts/lib.sh compose_command)
CARGO ?= cargo
IMAGE ?= perseus:latest
BASE_IMAGE ?= perseus-base:bookworm
BUILD_DIR := compose/.build
HOSTS := a1 a2 a3
ETCD_HOSTS := e1 e2 e3
# Which system `leader` (and `make heal`) refers to: auto (etcd when only etcd is up, else
# Perseus), perseus or etcd. E.g. `make kill-leader TARGET=etcd`.
TARGET ?= auto
ETCD_NODES := http://10.77.0.21:2379,http://10.77.0.22:2379,http://10.77.0.23:2379
# How long `make load` runs the load generator (seconds); it always stops by itself.
LOADGEN_DURATION ?= 300
# `make load`: connections per node, and which keys they use: `own` (one key per connection)
# or `shared:N` (all connections of all nodes race on N keys), e.g. KEYS=shared:1 CONNECTIONS=10
CONNECTIONS ?= 1
KEYS ?= own
BENCH_DURATION ?= 20
BENCH_CONNECTIONS ?= 1 4 16
# `make experiment` / `make soak`
SCENARIO ?= kill-and-isolate
DURATION ?= 300
SEED ?= 1
# `make watch`: the load stops by itself after this many seconds (or on q)
WATCH_DURATION ?= 3600
UP_TIMEOUT ?= 90
# `make matrix`: systems, faults (each hits the leader) and runs per combination
SYSTEMS ?= perseus etcd
FAULTS ?= kill isolate pause
RUNS ?= 10
export COMPOSE BASE_IMAGE UP_TIMEOUT

CLUSTER := a1 a2 a3 p1 p2 p3
ALL_PROFILES := --profile load --profile chaos --profile etcd
CHAOS := $(COMPOSE) --profile chaos run --rm -T chaos --target $(TARGET)
# The client container, running or not (by label, see scripts/lib.sh).
CLIENT_ID = $$(scripts/lib.sh cid client)

.PHONY: help up up-etcd load load-etcd bench status logs down test e2e base binaries images ci heal experiment soak watch \
        compare matrix etcd-smoke \
        $(foreach v,kill start restart partition heal pause resume,$(HOSTS:%=$(v)-%) $(ETCD_HOSTS:%=$(v)-%) $(v)-leader)

help: ## Show this help
	@echo "Perseus testbed (compose: $(COMPOSE))"
	@grep -hE '^[^ #]+:.*## ' $(MAKEFILE_LIST) | \
	  sed -E 's/^\$$\(HOSTS:%=([a-z]+)-%\).*## /\1-HOST\t/; s/^([^ :]+):[^#]*## /\1\t/' | \
	  awk -F'\t' '{printf "  make %-16s %s\n", $$1, $$2}'
	@echo "  HOST is a1, a2, a3 (Perseus), e1, e2, e3 (etcd, after make up-etcd) or leader"
	@echo "  (e.g. make kill-a1, make partition-e2, make kill-leader TARGET=etcd)."

base: ## Build the base image (debian:bookworm-slim, or debootstrap from this machine's apt mirror when no registry answers)
	BASE_IMAGE=$(BASE_IMAGE) compose/make-base.sh

binaries: ## cargo build --release of node, loadgen, chaos, lab and watch
	$(CARGO) build --release -p perseus-node -p loadgen -p chaos -p perseus-lab -p perseus-watch

images: base binaries ## Build the perseus:latest image (base + the three binaries + configs)
	rm -rf $(BUILD_DIR) && mkdir -p $(BUILD_DIR)
	cp target/release/node target/release/loadgen target/release/chaos $(BUILD_DIR)/
	cp compose/redis.conf compose/p1.toml compose/p2.toml compose/p3.toml $(BUILD_DIR)/
	docker build -q --build-arg BASE=$(BASE_IMAGE) -t $(IMAGE) -f compose/Dockerfile $(BUILD_DIR)

up: images ## Build what is missing, start a1..a3 and p1..p3, wait until all nodes are healthy
	$(COMPOSE) up -d $(CLUSTER)
	scripts/wait-healthy.sh

up-etcd: images ## Build what is missing, start the etcd cluster e1..e3, wait until healthy
	$(COMPOSE) --profile etcd up -d $(ETCD_HOSTS)
	scripts/wait-healthy.sh etcd

load: up ## Run the load generator (LOADGEN_DURATION=300 s, CONNECTIONS=1 per node, KEYS=own|shared:N)
	LOADGEN_DURATION=$(LOADGEN_DURATION) LOADGEN_CONNECTIONS=$(CONNECTIONS) LOADGEN_KEYS=$(KEYS) $(COMPOSE) --profile load up -d --no-deps --force-recreate client
	@id=$(CLIENT_ID); \
	  docker logs -f $$id; \
	  code=$$(docker wait $$id); echo "# loadgen exited with $$code"; exit $$code

load-etcd: up-etcd ## The same load against the etcd cluster (LOADGEN_DURATION, CONNECTIONS, KEYS as for load)
	LOADGEN_NODES=$(ETCD_NODES) LOADGEN_DURATION=$(LOADGEN_DURATION) LOADGEN_CONNECTIONS=$(CONNECTIONS) LOADGEN_KEYS=$(KEYS) $(COMPOSE) --profile load up -d --no-deps --force-recreate client
	@id=$(CLIENT_ID); \
	  docker logs -f $$id; \
	  code=$$(docker wait $$id); echo "# loadgen exited with $$code"; exit $$code

bench: up ## Throughput and latency of the healthy cluster at BENCH_CONNECTIONS="1 4 16" per node (BENCH_DURATION=20 s each)
	BENCH_DURATION=$(BENCH_DURATION) BENCH_CONNECTIONS="$(BENCH_CONNECTIONS)" scripts/bench.sh

logs: ## Show the load generator's output (follows it while it runs)
	@id=$(CLIENT_ID); \
	  if [ -z "$$id" ]; then echo "no client container: run make load" >&2; exit 1; fi; \
	  docker logs -f $$id

status: ## Hosts, their containers' states, isolation, addresses
	@$(CHAOS) status

$(HOSTS:%=kill-%) $(ETCD_HOSTS:%=kill-%) kill-leader: kill-%: ## SIGKILL HOST (acceptor and node, or the etcd member)
	@$(CHAOS) kill $*
$(HOSTS:%=start-%) $(ETCD_HOSTS:%=start-%) start-leader: start-%: ## start HOST again and wait until it answers /health
	@$(CHAOS) start $*
$(HOSTS:%=restart-%) $(ETCD_HOSTS:%=restart-%) restart-leader: restart-%: ## kill + start
	@$(CHAOS) restart $*
$(HOSTS:%=partition-%) $(ETCD_HOSTS:%=partition-%) partition-leader: partition-%: ## cut HOST off from the other hosts (clients still reach it)
	@$(CHAOS) isolate $*
$(HOSTS:%=heal-%) $(ETCD_HOSTS:%=heal-%) heal-leader: heal-%: ## remove HOST's partition rules
	@$(CHAOS) heal $*
heal: ## Remove the partition rules of every host (of TARGET)
	@$(CHAOS) heal
$(HOSTS:%=pause-%) $(ETCD_HOSTS:%=pause-%) pause-leader: pause-%: ## freeze HOST (docker pause)
	@$(CHAOS) pause $*
$(HOSTS:%=resume-%) $(ETCD_HOSTS:%=resume-%) resume-leader: resume-%: ## thaw HOST
	@$(CHAOS) resume $*

down: ## Remove all containers, networks and volumes of the testbed
	$(COMPOSE) $(ALL_PROFILES) down -v --remove-orphans -t 2

test: ## fmt --check, clippy -D warnings, cargo test (installs redis-server for the node tests when missing)
	scripts/lib.sh need redis-server
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) test --workspace

experiment: up ## Run compose/scenarios/SCENARIO.toml (default kill-and-isolate) into results/UTC-SCENARIO/
	@test -f compose/scenarios/$(SCENARIO).toml || { echo "no scenario compose/scenarios/$(SCENARIO).toml; there are: $$(ls compose/scenarios | sed 's/.toml//' | tr '\n' ' ')" >&2; exit 2; }
	target/release/lab run compose/scenarios/$(SCENARIO).toml \
	  --out results/$$(date -u +%Y%m%dT%H%M%SZ)-$(SCENARIO)

watch: up ## Live terminal view of the load: charts per node, faults marked, keys act (q quits, writes a report)
	target/release/watch --duration $(WATCH_DURATION) \
	  --out results/$$(date -u +%Y%m%dT%H%M%SZ)-watch

soak: up ## Random faults for DURATION (300) s with SEED, all undone at the end; fails on any violation
	target/release/lab soak --duration $(DURATION) --seed $(SEED) \
	  --out results/$$(date -u +%Y%m%dT%H%M%SZ)-soak-$(SEED)

compare: ## Same scenario (compose/scenarios/compare.toml) on Perseus, then on etcd; one table
	scripts/compare.sh

matrix: images ## SYSTEMS × FAULTS × RUNS fresh-cluster runs; the six measures as distributions in results/UTC-matrix/matrix.md
	SYSTEMS="$(SYSTEMS)" FAULTS="$(FAULTS)" RUNS="$(RUNS)" SEED="$(SEED)" scripts/matrix.sh

etcd-smoke: ## Short etcd run for CI: up-etcd, load, kill the leader, start it, down
	scripts/etcd-smoke.sh

e2e: ## End-to-end: up, load with kill/start/isolate/heal of a1, assertions, down
	scripts/e2e.sh

ci: ## What CI runs (.ci/run)
	.ci/run
