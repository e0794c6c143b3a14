#!/usr/bin/env python3
"""Hooks of the service-per-pod example (a DecoratorController).

POST /sync:     labels the Pod with its own name and attaches a Service selecting it.
POST /finalize: asks for no Service and no label; finalized once the Service is gone.

Usage: python3 hooks.py [--port 8080] [--host 127.0.0.1]
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT_ANNOTATION = "service-per-pod.example.com/port"
POD_LABEL = "service-per-pod.example.com/pod"


def sync(pod):
    name = pod["metadata"]["name"]
    annotations = pod["metadata"].get("annotations") or {}
    try:
        port = int(annotations.get(PORT_ANNOTATION, "80"))
    except ValueError:
        port = 80
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "selector": {POD_LABEL: name},
            "ports": [{"port": port, "targetPort": port}],
        },
    }
    return {
        "labels": {POD_LABEL: name},
        "annotations": {"service-per-pod.example.com/service": name},
        "attachments": [service],
    }


def finalize(pod, attachments):
    remaining = attachments.get("Service.v1") or {}
    return {
        "labels": {POD_LABEL: None},
        "annotations": {"service-per-pod.example.com/service": None},
        "attachments": [],
        "finalized": len(remaining) == 0,
    }


class Hooks(BaseHTTPRequestHandler):
    def do_POST(self):
        length = int(self.headers.get("content-length", 0))
        request = json.loads(self.rfile.read(length))
        if self.path == "/sync":
            reply = sync(request["object"])
        elif self.path == "/finalize":
            reply = finalize(request["object"], request.get("attachments") or {})
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
