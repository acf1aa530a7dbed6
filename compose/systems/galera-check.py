#!/usr/bin/env python3
"""The Galera health check on port 9200, as HAProxy setups of Galera use one (clustercheck):
GET / answers 200 when this host is Synced with the primary component (wsrep_local_state 4
and wsrep_ready ON), 503 otherwise (joining, donor, non-primary, or the server is down)."""
import subprocess
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

QUERY = ("SELECT variable_name, variable_value FROM information_schema.global_status "
         "WHERE variable_name IN ('wsrep_local_state', 'wsrep_ready', 'wsrep_cluster_status')")


def state():
    try:
        out = subprocess.run(["mariadb", "-N", "-B", "-e", QUERY], capture_output=True,
                             text=True, timeout=2).stdout
    except (subprocess.TimeoutExpired, OSError):
        return None
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


class Check(BaseHTTPRequestHandler):
    def do_GET(self):
        s = state() or {}
        ok = (s.get("WSREP_LOCAL_STATE") == "4" and s.get("WSREP_READY") == "ON"
              and s.get("WSREP_CLUSTER_STATUS") == "Primary")
        body = (("synced" if ok else "not synced: %r" % s) + "\n").encode()
        self.send_response(200 if ok else 503)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", 9200), Check).serve_forever()
