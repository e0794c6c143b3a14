#!/usr/bin/env python3
"""The client side of the `hello-load` benchmark: a plain Python client (standard library
only, one keep-alive HTTPS connection per thread) against the API server in a kubeconfig.

  parents  creates N HelloWorld parents (the engine and the hook do the rest);
  floor    does the whole job itself: for each parent, create it, create the Pod the
           tutorial's sync hook wants (with the parent as controller owner) and write the
           status the hook would report (`pods: 1`): the least work any controller could do.

N parents are shared out among --clients threads. Prints "go" just before the first request
and "done <failures>" at the end.

Usage: python3 hello_client.py KUBECONFIG SYNC_PY MODE N CLIENTS
"""
import base64
import http.client
import importlib.util
import json
import os
import re
import ssl
import sys
import tempfile
import threading
import urllib.parse

NAMESPACE = "default"
PARENTS = "/apis/example.com/v1/namespaces/%s/helloworlds" % NAMESPACE
PODS = "/api/v1/namespaces/%s/pods" % NAMESPACE


def kubeconfig(path):
    text = open(path).read()

    def field(name):
        m = re.search(r"^\s*%s:\s*(\S+)\s*$" % name, text, re.M)
        return m.group(1) if m else None

    return field("server"), field("certificate-authority-data"), field("token")


def load(path):
    spec = importlib.util.spec_from_file_location("hello_sync", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Client:
    def __init__(self, server, context, token):
        url = urllib.parse.urlsplit(server)
        if url.scheme == "https":
            self.conn = http.client.HTTPSConnection(url.hostname, url.port, context=context)
        else:
            self.conn = http.client.HTTPConnection(url.hostname, url.port)
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = "Bearer " + token

    def send(self, method, path, body, content_type="application/json"):
        headers = dict(self.headers)
        headers["Content-Type"] = content_type
        self.conn.request(method, path, json.dumps(body), headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status >= 300:
            raise RuntimeError("%s %s: %d %s" % (method, path, resp.status, data[:200]))
        return json.loads(data)


def main():
    config_path, sync_path, mode, n, clients = sys.argv[1:6]
    n, clients = int(n), max(1, int(clients))
    server, ca_data, token = kubeconfig(config_path)
    context = None
    if ca_data:
        with tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False) as ca:
            ca.write(base64.b64decode(ca_data))
        context = ssl.create_default_context(cafile=ca.name)
        os.unlink(ca.name)
    sync = load(sync_path).sync

    next_index = iter(range(n))
    lock = threading.Lock()
    failures = []

    def work():
        client = Client(server, context, token)
        while True:
            with lock:
                i = next(next_index, None)
            if i is None:
                return
            name = "hello-%05d" % i
            try:
                parent = client.send("POST", PARENTS, {
                    "apiVersion": "example.com/v1", "kind": "HelloWorld",
                    "metadata": {"name": name}, "spec": {"who": name},
                })
                if mode != "floor":
                    continue
                pod = sync(parent, {"Pod.v1": {}})["children"][0]
                pod["metadata"]["ownerReferences"] = [{
                    "apiVersion": "example.com/v1", "kind": "HelloWorld", "name": name,
                    "uid": parent["metadata"]["uid"], "controller": True,
                    "blockOwnerDeletion": True,
                }]
                pod = client.send("POST", PODS, pod)
                status = sync(parent, {"Pod.v1": {pod["metadata"]["name"]: pod}})["status"]
                client.send("PATCH", "%s/%s/status" % (PARENTS, name), {"status": status},
                            "application/merge-patch+json")
            except Exception as e:  # counted and reported; the run goes on
                with lock:
                    failures.append(str(e))

    threads = [threading.Thread(target=work) for _ in range(clients)]
    print("go", flush=True)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in failures[:5]:
        print("failure: " + f, file=sys.stderr)
    print("done %d" % len(failures), flush=True)


if __name__ == "__main__":
    main()
