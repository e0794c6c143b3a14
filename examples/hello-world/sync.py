#!/usr/bin/env python3
"""The hello-world sync hook: one Pod per HelloWorld that prints a greeting.

Serves POST /sync as a JSON webhook. Usage: python3 sync.py [--port 8080] [--host 127.0.0.1]
"""
import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def sync(parent, children):
    # Compute status from the observed state.
    desired_status = {"pods": len(children["Pod.v1"])}

    # Generate the desired child object(s).
    who = parent.get("spec", {}).get("who", "World")
    desired_pods = [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": parent["metadata"]["name"]},
            "spec": {
                "restartPolicy": "OnFailure",
                "containers": [
                    {
                        "name": "hello",
                        "image": "busybox",
                        "command": ["echo", "Hello, %s!" % who],
                    }
                ],
            },
        }
    ]
    return {"status": desired_status, "children": desired_pods}


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
