# The Perseus base image on a machine that can pull from a registry: the same packages
# make-base.sh installs with debootstrap when none is reachable.
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      redis-server iptables iproute2 procps curl ca-certificates etcd-server etcd-client \
 && rm -rf /var/lib/apt/lists/*
