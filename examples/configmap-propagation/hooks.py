#!/usr/bin/env python3
"""Hooks of the ConfigMap propagation example.

POST /customize: declares the source ConfigMap as the parent's only related object.
POST /sync:      desires one copy of the source in every target namespace.

Usage: python3 hooks.py [--port 8080] [--host 127.0.0.1]
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def customize(parent):
    source = parent["spec"]["source"]
    return {
        "relatedResources": [
            {
                "apiVersion": "v1",
                "resource": "configmaps",
                "namespace": source["namespace"],
                "names": [source["name"]],
            }
        ]
    }


def sync(parent, children, related):
    source = parent["spec"]["source"]
    targets = [ns for ns in parent["spec"].get("targetNamespaces") or [] if ns != source["namespace"]]
    # Version 2 hooks key namespaced objects as namespace/name.
    original = related.get("ConfigMap.v1", {}).get("%s/%s" % (source["namespace"], source["name"]))
    copies = children.get("ConfigMap.v1", {})
    status = {"wantedCopies": len(targets), "copies": len(copies), "sourceFound": original is not None}
    if original is None:
        # Keep the copies that exist until the source comes back: returning them unchanged.
        return {"status": status, "children": [strip(c) for c in copies.values()]}
    desired = [
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": source["name"],
                "namespace": ns,
                "labels": {"propagated-from": source["namespace"]},
            },
            "data": original.get("data") or {},
        }
        for ns in targets
    ]
    return {"status": status, "children": desired}


def strip(obj):
    """The parts of an observed copy the controller owns."""
    meta = obj["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": meta.get("labels") or {}},
        "data": obj.get("data") or {},
    }


class Hooks(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        request = json.loads(self.rfile.read(length))
        if self.path == "/customize":
            reply = customize(request["parent"])
        elif self.path == "/sync":
            reply = sync(request["parent"], request["children"], request.get("related") or {})
        else:
            self.send_error(404)
            return
        body = json.dumps(reply).encode()
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
    ThreadingHTTPServer((args.host, args.port), Hooks).serve_forever()
