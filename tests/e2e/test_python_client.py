"""The embedded API server as seen by Python's `kubernetes` client: CRUD on core and custom
objects, status writes, and a watch stream."""
import threading

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from conftest import wait_until

CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object",
                                           "x-kubernetes-preserve-unknown-fields": True}},
        }],
    },
}


@pytest.fixture
def api(cluster):
    return config.new_client_from_config(config_file=str(cluster.kubeconfig))


def test_core_crud(api):
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "py"}})
    cm = core.create_namespaced_config_map("py", {"metadata": {"name": "c1", "labels": {"a": "b"}},
                                                  "data": {"k": "v"}})
    assert cm.metadata.uid and cm.metadata.resource_version
    got = core.read_namespaced_config_map("c1", "py")
    assert got.data == {"k": "v"}

    got.data["k"] = "v2"
    updated = core.replace_namespaced_config_map("c1", "py", got)
    assert updated.data["k"] == "v2"
    assert updated.metadata.resource_version != cm.metadata.resource_version

    # A stale resourceVersion is a conflict.
    with pytest.raises(ApiException) as e:
        core.replace_namespaced_config_map("c1", "py", got)
    assert e.value.status == 409

    patched = core.patch_namespaced_config_map("c1", "py", {"data": {"x": "y"}})
    assert patched.data == {"k": "v2", "x": "y"}

    items = core.list_namespaced_config_map("py", label_selector="a=b").items
    assert [i.metadata.name for i in items] == ["c1"]
    assert core.list_namespaced_config_map("py", label_selector="a=c").items == []

    core.delete_namespaced_config_map("c1", "py")
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("c1", "py")
    assert e.value.status == 404


def test_custom_objects_and_status(api):
    ext = client.ApiextensionsV1Api(api)
    ext.create_custom_resource_definition(CRD)
    custom = client.CustomObjectsApi(api)

    def served():
        custom.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
        return True

    wait_until(served, what="the CRD to be served")
    w = custom.create_namespaced_custom_object(
        "example.com", "v1", "default", "widgets",
        {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"},
         "spec": {"size": 3}})
    assert w["metadata"]["generation"] == 1

    custom.patch_namespaced_custom_object_status(
        "example.com", "v1", "default", "widgets", "w1", {"status": {"ready": True}})
    w = custom.get_namespaced_custom_object("example.com", "v1", "default", "widgets", "w1")
    assert w["status"] == {"ready": True}
    assert w["metadata"]["generation"] == 1  # status writes do not bump generation

    w["spec"]["size"] = 4
    w = custom.replace_namespaced_custom_object("example.com", "v1", "default", "widgets", "w1", w)
    assert w["metadata"]["generation"] == 2

    custom.delete_namespaced_custom_object("example.com", "v1", "default", "widgets", "w1")
    listed = custom.list_namespaced_custom_object("example.com", "v1", "default", "widgets")
    assert listed["items"] == []


def test_watch_stream(api):
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": "watched"}})
    events = []
    ready = threading.Event()

    def consume():
        w = watch.Watch()
        for ev in w.stream(core.list_namespaced_config_map, "watched", timeout_seconds=20):
            events.append((ev["type"], ev["object"].metadata.name))
            ready.set()
            if ev["type"] == "DELETED":
                w.stop()

    t = threading.Thread(target=consume, daemon=True)
    t.start()
    core.create_namespaced_config_map("watched", {"metadata": {"name": "first"}})
    assert ready.wait(10), "no watch event arrived"
    core.patch_namespaced_config_map("first", "watched", {"data": {"a": "b"}})
    core.delete_namespaced_config_map("first", "watched")
    t.join(25)
    assert ("ADDED", "first") in events
    assert ("MODIFIED", "first") in events
    assert events[-1] == ("DELETED", "first")
