# The image of the replicated databases (MariaDB Galera, PostgreSQL 15 with Patroni and HAProxy,
# Redis with Sentinel), all from Debian bookworm packages, on top of the Perseus base image.
# Build context: compose/sysdb/ (the configs and start scripts).
ARG BASE=perseus-base:bookworm
FROM ${BASE}
# No service may start while packages install (there is no init in a container), and Debian's
# postgresql-common must not create its default cluster: Patroni creates and owns the data.
RUN printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
 && mkdir -p /etc/postgresql-common \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf \
 && apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      mariadb-server mariadb-client galera-4 rsync \
      postgresql-15 patroni python3-etcd haproxy \
      redis-server redis-sentinel redis-tools \
 && rm -rf /var/lib/apt/lists/* /var/lib/mysql/* \
 && rm -f /usr/sbin/policy-rc.d
COPY . /etc/sysdb/
RUN chmod +x /etc/sysdb/*.sh && ln -s /etc/sysdb/*.sh /usr/local/bin/ 2>/dev/null; true
