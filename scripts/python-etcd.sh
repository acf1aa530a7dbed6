#!/usr/bin/env bash
# The etcd v2 Python client (python-etcd) against a running cluster: a multi-host client with
# allow_reconnect (it reads /v2/machines at construction), then write, read, compare-and-swap
# (test_and_set, and a failing one), compare-and-delete, delete, read of the deleted key.
# Installs python-etcd into a virtualenv (PYETCD_VENV, default ~/.cache/perseus/python-etcd)
# when missing. ENDPOINTS: host:port list, default the Perseus nodes published by `make up`;
# e.g. ENDPOINTS=127.0.0.1:2381,127.0.0.1:2382,127.0.0.1:2383 after `make up-etcd`.
set -euo pipefail

ENDPOINTS="${ENDPOINTS:-127.0.0.1:8081,127.0.0.1:8082,127.0.0.1:8083}"
VENV="${PYETCD_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/perseus/python-etcd}"

if ! command -v python3 >/dev/null; then
  echo "python3 is missing: apt-get install python3 python3-venv" >&2
  exit 2
fi
if ! "$VENV/bin/python" -c 'import etcd' 2>/dev/null; then
  echo "# installing python-etcd into $VENV"
  python3 -m venv "$VENV" || { echo "cannot create a virtualenv: apt-get install python3-venv" >&2; exit 2; }
  "$VENV/bin/pip" install -q python-etcd
fi

ENDPOINTS="$ENDPOINTS" exec "$VENV/bin/python" - <<'PY'
import os, sys, time
import etcd

hosts = tuple((h, int(p)) for h, p in (e.rsplit(":", 1) for e in os.environ["ENDPOINTS"].split(",")))
client = etcd.Client(host=hosts, allow_reconnect=True, read_timeout=5)
print("machines:", client.machines)
key = "/python-etcd-check-%d" % int(time.time() * 1000)
failures = []

def check(what, ok, detail=""):
    print("%-36s %s %s" % (what, "ok" if ok else "FAILED", detail))
    if not ok:
        failures.append(what)

r = client.write(key, "1")
check("write", r.value == "1", "index=%s" % r.modifiedIndex)
r = client.read(key)
check("read", r.value == "1", "value=%s" % r.value)
r = client.test_and_set(key, "2", "1")
check("test_and_set (CAS by value)", r.value == "2", "index=%s" % r.modifiedIndex)
try:
    client.test_and_set(key, "3", "1")
    check("test_and_set with a stale value", False, "was applied")
except etcd.EtcdCompareFailed as e:
    check("test_and_set with a stale value", True, "EtcdCompareFailed: %s" % e)
r = client.write(key, "4", prevIndex=r.modifiedIndex)
check("write prevIndex (CAS by index)", r.value == "4", "index=%s" % r.modifiedIndex)
try:
    client.delete(key, prevValue="nope")
    check("compare-and-delete, wrong value", False, "was applied")
except etcd.EtcdCompareFailed:
    check("compare-and-delete, wrong value", True, "EtcdCompareFailed")
r = client.delete(key, prevIndex=r.modifiedIndex)
check("compare-and-delete", r.action == "compareAndDelete", "action=%s" % r.action)
try:
    client.read(key)
    check("read after delete", False, "key still there")
except etcd.EtcdKeyNotFound:
    check("read after delete", True, "EtcdKeyNotFound")
r = client.write(key, "5", prevExist=False)
check("create after delete", r.value == "5", "index=%s" % r.modifiedIndex)
r = client.delete(key)
check("delete", r.action == "delete", "action=%s" % r.action)

print("result:", "ok" if not failures else "FAILED " + ", ".join(failures))
sys.exit(1 if failures else 0)
PY
