#!/usr/bin/env python3
"""The CatSet sync hook: a StatefulSet-like controller. Each CatSet gets Pods named
`<name>-0`, `<name>-1`, ... created in order (the next one only once every lower one is Ready)
and removed from the highest ordinal down, one at a time.

Rolling out a new Pod template is Metacontroller's job (see controller.yaml): this hook only
says what each Pod should look like for the CatSet it is given.

Serves POST /sync as a JSON webhook. Usage: python3 sync.py [--port 8080] [--host 127.0.0.1]
"""
import argparse
import copy
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def is_ready(pod):
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def ordinal(parent_name, pod_name):
    prefix = parent_name + "-"
    if not pod_name.startswith(prefix):
        return None
    suffix = pod_name[len(prefix):]
    return int(suffix) if suffix.isdigit() else None


def new_pod(parent, index):
    name = parent["metadata"]["name"]
    spec = parent.get("spec", {})
    template = copy.deepcopy(spec.get("template", {}))
    meta = template.get("metadata", {})
    pod_spec = template.get("spec", {})
    pod_spec["hostname"] = f"{name}-{index}"
    if spec.get("serviceName"):
        pod_spec["subdomain"] = spec["serviceName"]
    metadata = {"name": f"{name}-{index}", "labels": meta.get("labels", {})}
    if meta.get("annotations"):
        metadata["annotations"] = meta["annotations"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def sync(parent, children):
    name = parent["metadata"]["name"]
    replicas = int(parent.get("spec", {}).get("replicas", 1))
    observed = {}
    for pod_name, pod in children.get("Pod.v1", {}).items():
        index = ordinal(name, pod_name)
        if index is not None:
            observed[index] = pod

    # Keep every existing Pod below `replicas`; create the lowest missing one only when all
    # lower Pods exist and are Ready (ordered startup).
    wanted = [i for i in range(replicas) if i in observed]
    for i in range(replicas):
        if i not in observed:
            if all(j in observed and is_ready(observed[j]) for j in range(i)):
                wanted.append(i)
            break
    # Scale down from the top, one Pod per sync: keep all extra Pods but the highest.
    extra = sorted(i for i in observed if i >= replicas)
    wanted += extra[:-1]

    status = {
        "replicas": len(observed),
        "readyReplicas": sum(1 for p in observed.values() if is_ready(p)),
    }
    return {"status": status, "children": [new_pod(parent, i) for i in sorted(wanted)]}


class Controller(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        observed = json.loads(self.rfile.read(length))
        desired = sync(observed["parent"], observed["children"])
        body = json.dumps(desired).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):  # keep the terminal quiet
        pass


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Controller).serve_forever()
