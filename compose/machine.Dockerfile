# A machine of the simulated cluster (make cluster-up, docs/swarm.md): Debian's own Docker
# engine (docker.io) run in a container, and Debian's registry (docker-registry), on the
# Perseus base image (debian:bookworm-slim, or the debootstrap import where no image registry
# answers). Build context: compose/.
ARG BASE=perseus-base:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      docker.io docker-registry iptables iproute2 procps ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY perseus-machine /usr/local/bin/perseus-machine
COPY registry.yml /etc/perseus/registry.yml
CMD ["perseus-machine"]
