#!/usr/bin/env python3
"""A stand-in for the Kubernetes API server's pod endpoints, for
tests/deploy.rs: there is no Kubernetes on the CI machines.

    python3 k8s_api.py PODS.json PORT

PODS.json is a list of Pod objects (v1) as the test built them from the
manifests: metadata, spec (containers with ports and readiness probes) and
status.podIP. The stand-in does what the kubelet and the API server would
for what the kubernetes discovery strategy reads:

- it probes each pod's readinessProbe (httpGet path and port, a named
  port resolved through the container's ports) every periodSeconds at the
  pod IP, and keeps the pod's Ready condition from the answer;
- GET /api/v1/namespaces/{ns}/pods?labelSelector=k=v,... answers a
  PodList of the pods in that namespace whose labels match;
- with watch=true it streams watch events (one JSON object per line,
  chunked): MODIFIED when a pod's readiness changes, until the client's
  timeoutSeconds ends the watch.

It logs each request and each readiness change to standard error.
"""
import copy
import json
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

LOCK = threading.Condition()
STATE = {"version": 1, "pods": [], "events": []}


def log(*args):
    print("k8s-api:", *args, file=sys.stderr, flush=True)


def probe_target(pod):
    container = pod["spec"]["containers"][0]
    probe = container.get("readinessProbe", {}).get("httpGet")
    if probe is None:
        return None, 1
    port = probe["port"]
    if isinstance(port, str):
        port = next(p["containerPort"] for p in container.get("ports", []) if p.get("name") == port)
    period = container["readinessProbe"].get("periodSeconds", 10)
    return f"http://{pod['status']['podIP']}:{port}{probe['path']}", period


def set_ready(pod, ready):
    pod["status"]["conditions"] = [{"type": "Ready", "status": "True" if ready else "False"}]


def prober():
    while True:
        period = 10
        for i, pod in enumerate(list(STATE["pods"])):
            url, period = probe_target(pod)
            ready = True
            if url is not None:
                try:
                    with urllib.request.urlopen(url, timeout=1) as r:
                        ready = r.status == 200
                except Exception:
                    ready = False
            with LOCK:
                current = STATE["pods"][i]
                was = current["status"]["conditions"][0]["status"] == "True"
                if was != ready:
                    STATE["version"] += 1
                    updated = copy.deepcopy(current)
                    set_ready(updated, ready)
                    updated["metadata"]["resourceVersion"] = str(STATE["version"])
                    STATE["pods"][i] = updated
                    STATE["events"].append((STATE["version"], "MODIFIED", updated))
                    LOCK.notify_all()
                    log(f"{updated['metadata']['name']} ready={ready}")
        time.sleep(period)


def matches(pod, selector):
    labels = pod["metadata"].get("labels", {})
    for term in filter(None, (selector or "").split(",")):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


class Api(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        log(fmt % args)

    def do_GET(self):
        url = urlparse(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 5 or parts[:3] != ["api", "v1", "namespaces"] or parts[4] != "pods":
            return self.answer(404, {"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                     "reason": "NotFound", "code": 404, "message": url.path})
        ns = parts[3]
        q = {k: v[-1] for k, v in parse_qs(url.query).items()}
        selector = q.get("labelSelector")
        wanted = lambda p: p["metadata"]["namespace"] == ns and matches(p, selector)
        if q.get("watch") in ("true", "1"):
            return self.watch(wanted, int(q.get("resourceVersion") or 0),
                              float(q.get("timeoutSeconds") or 290))
        with LOCK:
            items = [p for p in STATE["pods"] if wanted(p)]
            version = STATE["version"]
        self.answer(200, {"apiVersion": "v1", "kind": "PodList",
                          "metadata": {"resourceVersion": str(version)}, "items": items})

    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def watch(self, wanted, since, timeout):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                with LOCK:
                    LOCK.wait(timeout=1)
                    due = [(v, t, p) for v, t, p in STATE["events"] if v > since and wanted(p)]
                for v, kind, pod in due:
                    line = (json.dumps({"type": kind, "object": pod}) + "\n").encode()
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                    self.wfile.flush()
                    since = v
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    pods = json.load(open(sys.argv[1]))
    for pod in pods:
        set_ready(pod, False)
        pod["metadata"]["resourceVersion"] = "1"
    STATE["pods"] = pods
    threading.Thread(target=prober, daemon=True).start()
    server = ThreadingHTTPServer(("0.0.0.0", int(sys.argv[2])), Api)
    log(f"serving {len(pods)} pods on port {sys.argv[2]}")
    server.serve_forever()


if __name__ == "__main__":
    main()
