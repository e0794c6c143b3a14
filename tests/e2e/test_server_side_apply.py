"""Server-side apply end to end: the engine under `--apply-strategy=server-side-apply` applies
children as its own field manager, and Python's `kubernetes` client applies, conflicts and
forces against the embedded server."""
import json
import time

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from conftest import Cluster, wait_until

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "configsets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "ConfigSet", "plural": "configsets", "singular": "configset"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                "spec": {"type": "object", "properties": {
                    "data": {"type": "object", "additionalProperties": {"type": "string"}}}},
                "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}},
        }],
    },
}

# One ConfigMap per ConfigSet holding the parent's spec.data; counts its calls.
HOOK = '''
import argparse, json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

calls = 0

class H(BaseHTTPRequestHandler):
    def do_POST(self):
        global calls
        calls += 1
        req = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        parent = req["parent"]
        child = {"apiVersion": "v1", "kind": "ConfigMap",
                 "metadata": {"name": parent["metadata"]["name"], "labels": {"app": "configset"}},
                 "data": parent.get("spec", {}).get("data", {})}
        body = json.dumps({"status": {"configMaps": len(req["children"]["ConfigMap.v1"])},
                           "children": [child]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        body = str(calls).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass

p = argparse.ArgumentParser()
p.add_argument("--port", type=int)
ThreadingHTTPServer(("127.0.0.1", p.parse_args().port), H).serve_forever()
'''

CONTROLLER = """
apiVersion: metacontroller.k8s.io/v1alpha1
kind: CompositeController
metadata:
  name: configset-controller
spec:
  generateSelector: true
  parentResource:
    apiVersion: example.com/v1
    resource: configsets
  childResources:
  - apiVersion: v1
    resource: configmaps
    updateStrategy:
      method: InPlace
  hooks:
    sync:
      webhook:
        url: URL/sync
"""


@pytest.fixture
def ssa_cluster(tmp_path, request):
    c = Cluster(tmp_path, extra_args=("--apply-strategy=server-side-apply",))
    yield c
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        import sys
        sys.stderr.write(f"\n--- metacontroller dev log ---\n{c.logs()}\n")
    c.stop()


def managers(obj):
    return {(e.get("manager"), e["operation"]): e.get("fieldsV1", {})
            for e in obj["metadata"].get("managedFields", [])}


def test_engine_applies_children_as_its_own_field_manager(ssa_cluster, tmp_path, start_hook,
                                                           kubectl_available):
    cluster = ssa_cluster
    script = tmp_path / "hook.py"
    script.write_text(HOOK)
    hook = start_hook(script)
    crd = tmp_path / "crd.json"
    crd.write_text(json.dumps(CRD))
    cluster.kubectl("apply", "-f", str(crd))
    cluster.kubectl("wait", "--for=condition=established", "crd/configsets.example.com",
                    "--timeout=30s")
    cluster.kubectl("apply", "-f", "-", input=CONTROLLER.replace("URL", hook.url))
    parent = {"apiVersion": "example.com/v1", "kind": "ConfigSet",
              "metadata": {"name": "s", "namespace": "default"},
              "spec": {"data": {"a": "1", "b": "2"}}}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(parent))

    def child():
        return json.loads(cluster.kubectl("get", "configmap", "s", "-o", "json",
                                          "--show-managed-fields").stdout)

    wait_until(lambda: cluster.exists("configmap", "s") and child().get("data") == {"a": "1", "b": "2"},
               what="the child ConfigMap")
    cm = child()
    owned = managers(cm)
    assert ("metacontroller", "Apply") in owned, cm["metadata"]
    assert "kubectl.kubernetes.io/last-applied-configuration" not in \
        cm["metadata"].get("annotations", {})
    assert cm["metadata"]["ownerReferences"][0]["controller"] is True

    # Another manager adds a field of its own.
    cluster.kubectl("label", "configmap", "s", "team=blue")
    cluster.kubectl("patch", "configmap", "s", "--type=merge", "--field-manager=editor",
                    "-p", json.dumps({"data": {"extra": "x"}}))
    # The hook drops b: it is removed, the other manager's fields stay.
    parent["spec"]["data"] = {"a": "1"}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(parent))
    wait_until(lambda: "b" not in child().get("data", {}), what="b removed")
    cm = child()
    assert cm["data"] == {"a": "1", "extra": "x"}
    labels = cm["metadata"]["labels"]
    assert labels["app"] == "configset" and labels["team"] == "blue", labels

    # Steady state: no hook calls and no writes until something changes.
    wait_until(lambda: cluster.get_json("configset", "s").get("status", {}).get("configMaps") == 1,
               what="parent status")
    time.sleep(1.0)
    import urllib.request
    calls = int(urllib.request.urlopen(hook.url).read())
    rv = child()["metadata"]["resourceVersion"]
    time.sleep(3.0)
    assert int(urllib.request.urlopen(hook.url).read()) == calls
    assert child()["metadata"]["resourceVersion"] == rv


def test_python_client_server_side_apply_conflicts_and_force(cluster):
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    core = client.CoreV1Api(api)
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py"},
            "data": {"owner": "alice"}}
    apply = "application/apply-patch+yaml"
    core.patch_namespaced_config_map("py", "default", body, field_manager="alice",
                                     _content_type=apply)
    cm = core.read_namespaced_config_map("py", "default")
    assert cm.data == {"owner": "alice"}
    assert [(m.manager, m.operation) for m in cm.metadata.managed_fields] == [("alice", "Apply")]

    steal = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py"},
             "data": {"owner": "bob"}}
    with pytest.raises(ApiException) as e:
        core.patch_namespaced_config_map("py", "default", steal, field_manager="bob",
                                         _content_type=apply)
    assert e.value.status == 409
    status = json.loads(e.value.body)
    assert status["reason"] == "Conflict"
    assert status["details"]["causes"][0]["field"] == ".data.owner"
    assert "alice" in status["details"]["causes"][0]["message"]

    core.patch_namespaced_config_map("py", "default", steal, field_manager="bob", force=True,
                                     _content_type=apply)
    cm = core.read_namespaced_config_map("py", "default")
    assert cm.data == {"owner": "bob"}
    assert [(m.manager, m.operation) for m in cm.metadata.managed_fields] == [("bob", "Apply")]


def test_python_client_sees_schema_validation(cluster):
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    client.ApiextensionsV1Api(api).create_custom_resource_definition(CRD)
    custom = client.CustomObjectsApi(api)

    def established():
        crd = client.ApiextensionsV1Api(api).read_custom_resource_definition(
            "configsets.example.com")
        return any(c.type == "Established" and c.status == "True"
                   for c in (crd.status.conditions or []))

    wait_until(established, what="the CRD established")
    bad = {"apiVersion": "example.com/v1", "kind": "ConfigSet", "metadata": {"name": "bad"},
           "spec": {"data": {"n": 1}, "unknown": True}}
    with pytest.raises(ApiException) as e:
        custom.create_namespaced_custom_object("example.com", "v1", "default", "configsets", bad)
    assert e.value.status == 422
    status = json.loads(e.value.body)
    assert status["details"]["causes"][0]["field"] == "spec.data.n"
    # Unknown fields are pruned.
    bad["spec"]["data"] = {"n": "1"}
    made = custom.create_namespaced_custom_object("example.com", "v1", "default", "configsets",
                                                  bad)
    assert made["spec"] == {"data": {"n": "1"}}
