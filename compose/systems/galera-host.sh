#!/bin/bash
# One Galera host (HOST_INDEX 1..3, address 10.77.0.6N). Host 1 bootstraps a new cluster the
# first time (no data yet) when no other host answers; every later start, a start of host 1
# with its data lost while the others run (chaos wipe), and every start of hosts 2 and 3, joins
# the running cluster (hosts 2 and 3 wait until host 1 answers first, then take a full state
# transfer by rsync). Bootstrapping beside a running cluster would make a second one.
set -euo pipefail
i="${HOST_INDEX:?HOST_INDEX=1..3}"
addr="10.77.0.6$i"
mkdir -p /data /run/mysqld
chown mysql:mysql /data /run/mysqld
args=(--defaults-file=/etc/perseus/galera.cnf --wsrep-node-address="$addr" --wsrep-node-name="g$i")
# The health check (port 9200) runs beside the server; either ending ends the host.
python3 /etc/perseus/galera-check.py &
peer_answers() {
  for p in 1 2 3; do
    [ "$p" = "$i" ] && continue
    (exec 3<>"/dev/tcp/10.77.0.6$p/4567") 2>/dev/null && return 0
  done
  return 1
}
if [ ! -d /data/mysql/mysql ]; then
  mariadb-install-db --defaults-file=/etc/perseus/galera.cnf --user=mysql --skip-test-db >/dev/null
  if [ "$i" = 1 ] && ! peer_answers; then
    mariadbd "${args[@]}" --wsrep-new-cluster --init-file=/etc/perseus/galera-init.sql &
    wait -n
    exit $?
  fi
fi
# Join: wait (bounded) until some other host's Galera port answers.
joined=0
for _ in $(seq 1 120); do
  if peer_answers; then joined=1; break; fi
  sleep 1
done
[ "$joined" = 1 ] || { echo "no other Galera host answers: cannot join" >&2; exit 1; }
mariadbd "${args[@]}" &
wait -n
