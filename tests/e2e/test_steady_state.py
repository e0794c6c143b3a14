"""Steady state means zero writes: once every example converged, `metacontroller dev` makes no
write and calls no hook while nothing changes. Writes are counted by the API server
(`apiserver_request_total` on its /metrics), hook calls by a counting proxy in front of each
example's hook process.

Two clusters run side by side so one quiet window covers everything: the tutorial's verbatim
v1beta1 CRD (no status subresource) with the service-per-pod DecoratorController and the
ConfigMap propagation example, and the tutorial's v1 CRD (status subresource) with CatSet.
Together they cover Pods, Services, ConfigMaps and ControllerRevisions as children."""
import json
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from conftest import ROOT, Cluster, wait_until

HELLO = ROOT / "examples" / "hello-world"
PROPAGATION = ROOT / "examples" / "configmap-propagation"
SERVICE_PER_POD = ROOT / "examples" / "service-per-pod"
CATSET = ROOT / "examples" / "catset"
QUIET_SECONDS = 10
WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")


class CountingProxy:
    """Forwards every POST to a hook process and counts the calls."""

    def __init__(self, target):
        self.calls = 0
        lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                with lock:
                    proxy.calls += 1
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                request = urllib.request.Request(
                    target + self.path, data=body, method="POST",
                    headers={"Content-Type": self.headers.get("content-type", "application/json")})
                try:
                    with urllib.request.urlopen(request, timeout=10) as response:
                        code, reply = response.status, response.read()
                except urllib.error.HTTPError as e:
                    code, reply = e.code, e.read()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, fmt, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def api_writes(cluster):
    """Write requests the API server served, events excluded."""
    total = 0
    for line in cluster.kubectl("get", "--raw", "/metrics").stdout.splitlines():
        if not line.startswith("apiserver_request_total{") or 'resource="events"' in line:
            continue
        if any(f'verb="{v}"' in line for v in WRITE_VERBS):
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def with_url(path, proxy, old="http://127.0.0.1:8080"):
    return path.read_text().replace(old, proxy.url)


def start_hello(cluster, proxy, crd_file):
    cluster.kubectl("create", "namespace", "hello")
    cluster.kubectl("apply", "-f", str(crd_file))
    cluster.kubectl("wait", "--for=condition=established", "crd/helloworlds.example.com",
                    "--timeout=30s")
    cluster.kubectl("apply", "-f", "-", input=with_url(HELLO / "controller.yaml", proxy))
    cluster.kubectl("-n", "hello", "apply", "-f", str(HELLO / "hello.yaml"))


def hello_converged(cluster):
    parent = cluster.get_json("helloworld", "your-name", "-n", "hello")
    status = parent.get("status") or {}
    return status.get("pods") == 1 and \
        status.get("observedGeneration") == parent["metadata"]["generation"]


def start_service_per_pod(cluster, proxy):
    cluster.kubectl("apply", "-f", "-", input=with_url(SERVICE_PER_POD / "controller.yaml", proxy))
    cluster.kubectl("apply", "-f", str(SERVICE_PER_POD / "pod.yaml"))


def service_per_pod_converged(cluster):
    if not cluster.exists("service", "web-0"):
        return False
    labels = cluster.get_json("pod", "web-0")["metadata"].get("labels") or {}
    return labels.get("service-per-pod.example.com/pod") == "web-0"


def start_propagation(cluster, proxy):
    for ns in ["shared", "team-a", "team-b"]:
        cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-f", str(PROPAGATION / "crd.yaml"))
    cluster.kubectl("wait", "--for=condition=established",
                    "crd/configmappropagations.example.com", "--timeout=30s")
    cluster.kubectl("apply", "-f", "-", input=with_url(PROPAGATION / "controller.yaml", proxy))
    cluster.kubectl("apply", "-f", str(PROPAGATION / "propagation.yaml"))


def propagation_converged(cluster):
    status = cluster.get_json("configmappropagation", "settings").get("status") or {}
    return status.get("copies") == 2


def start_catset(cluster, proxy):
    cluster.kubectl("create", "namespace", "cats")
    cluster.kubectl("apply", "-f", str(CATSET / "crd.yaml"))
    cluster.kubectl("wait", "--for=condition=established", "crd/catsets.ctl.example.com",
                    "--timeout=30s")
    cluster.kubectl("apply", "-f", "-", input=with_url(CATSET / "controller.yaml", proxy))
    cluster.kubectl("-n", "cats", "apply", "-f", str(CATSET / "my-catset.yaml"))


def catset_converged(cluster):
    """Marks the CatSet's Pods Ready as they appear (as the walk-through does) until all three
    are, and the rollout condition says so."""
    subprocess.run([sys.executable, str(CATSET / "mark-ready.py"), "-n", "cats", "-l", "app=nginx"],
                   env=cluster.env, check=True, capture_output=True, timeout=60)
    status = cluster.get_json("catset", "nginx-backend", "-n", "cats").get("status") or {}
    updated = [c for c in status.get("conditions", []) if c["type"] == "Updated"]
    return status.get("readyReplicas") == 3 and updated and \
        updated[0].get("reason") == "OnLatestRevision"


def settle(clusters, proxies):
    """Waits until no cluster's writes and no proxy's calls moved for two seconds."""
    def snapshot():
        return [api_writes(c) for c in clusters], [p.calls for p in proxies]

    last, since = snapshot(), time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() - since < 2:
        assert time.monotonic() < deadline, f"never settled: {last}"
        time.sleep(0.3)
        now = snapshot()
        if now != last:
            last, since = now, time.monotonic()
    return last


def test_everything_converged_stays_quiet(cluster, start_hook, tmp_path, kubectl_available):
    other_dir = tmp_path / "second-cluster"
    other_dir.mkdir()
    other = Cluster(other_dir)
    proxies = []
    try:
        def proxied(script):
            proxy = CountingProxy(start_hook(script).url)
            proxies.append(proxy)
            return proxy

        # Cluster one: the tutorial's original CRD, a DecoratorController, ConfigMap children.
        start_hello(cluster, proxied(HELLO / "sync.py"), HELLO / "legacy" / "crd.yaml")
        start_service_per_pod(cluster, proxied(SERVICE_PER_POD / "hooks.py"))
        start_propagation(cluster, proxied(PROPAGATION / "hooks.py"))
        # Cluster two: the tutorial's v1 CRD with a status subresource, and CatSet.
        start_hello(other, proxied(HELLO / "sync.py"), HELLO / "crd.yaml")
        start_catset(other, proxied(CATSET / "sync.py"))

        wait_until(lambda: hello_converged(cluster), what="hello-world (v1beta1 CRD) converged")
        wait_until(lambda: service_per_pod_converged(cluster), what="service-per-pod converged")
        wait_until(lambda: propagation_converged(cluster), what="propagation converged")
        wait_until(lambda: hello_converged(other), what="hello-world (v1 CRD) converged")
        wait_until(lambda: catset_converged(other), timeout=60, interval=0.5,
                   what="CatSet converged")

        writes, calls = settle([cluster, other], proxies)
        time.sleep(QUIET_SECONDS)
        assert [api_writes(c) for c in (cluster, other)] == writes, \
            "writes while nothing changed"
        assert [p.calls for p in proxies] == calls, "hook calls while nothing changed"
        # Every example was really exercised through its proxy.
        assert all(c > 0 for c in calls), calls

        # The status-subresource advice is given once, on the parent that lacks it.
        events = cluster.get_json("events", "-n", "hello",
                                  "--field-selector", "reason=NoStatusSubresource")["items"]
        assert len(events) == 1, json.dumps(events)
        assert events[0]["type"] == "Warning"
        assert events[0]["involvedObject"]["name"] == "your-name"
        assert not other.get_json("events", "-n", "hello",
                                  "--field-selector", "reason=NoStatusSubresource")["items"]
    finally:
        for p in proxies:
            p.stop()
        other.stop()
