"""The ConfigMap propagation (customize + a cluster-scoped CompositeController) and the
service-per-pod (DecoratorController with finalize) examples, run as a user runs them: the
built binary in `dev` mode, kubectl, and the Python hooks as processes."""
import json

from conftest import ROOT, wait_until

PROPAGATION = ROOT / "examples" / "configmap-propagation"
SERVICE_PER_POD = ROOT / "examples" / "service-per-pod"


def with_hook_url(path, hook):
    return path.read_text().replace("http://127.0.0.1:8080", hook.url)


def copy_data(cluster, ns, name="settings"):
    if not cluster.exists("configmap", name, "-n", ns):
        return None
    return cluster.get_json("configmap", name, "-n", ns).get("data")


def test_configmap_propagation(cluster, start_hook, kubectl_available):
    hook = start_hook(PROPAGATION / "hooks.py")
    for ns in ["shared", "team-a", "team-b", "team-c"]:
        cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("apply", "-f", str(PROPAGATION / "crd.yaml"))
    cluster.kubectl("wait", "--for=condition=established",
                    "crd/configmappropagations.example.com", "--timeout=30s")
    cluster.kubectl("apply", "-f", "-", input=with_hook_url(PROPAGATION / "controller.yaml", hook))
    cluster.kubectl("apply", "-f", str(PROPAGATION / "propagation.yaml"))

    # A copy in every target namespace, owned by the cluster-scoped parent.
    for ns in ["team-a", "team-b"]:
        wait_until(lambda: copy_data(cluster, ns) == {"log-level": "info"}, what=f"copy in {ns}")
    parent = cluster.get_json("configmappropagation", "settings")
    copy = cluster.get_json("configmap", "settings", "-n", "team-a")
    assert copy["metadata"]["ownerReferences"][0]["uid"] == parent["metadata"]["uid"]
    wait_until(lambda: cluster.get_json("configmappropagation", "settings")
               .get("status", {}).get("copies") == 2, what="status.copies == 2")

    # Editing the source reaches every copy.
    cluster.kubectl("-n", "shared", "patch", "configmap", "settings", "--type=merge",
                    "-p", json.dumps({"data": {"log-level": "debug", "extra": "1"}}))
    for ns in ["team-a", "team-b"]:
        wait_until(lambda: copy_data(cluster, ns) == {"log-level": "debug", "extra": "1"},
                   what=f"updated copy in {ns}")

    # A new target namespace gets a copy; a dropped one loses it.
    cluster.kubectl("patch", "configmappropagation", "settings", "--type=merge",
                    "-p", json.dumps({"spec": {"targetNamespaces": ["team-b", "team-c"]}}))
    wait_until(lambda: copy_data(cluster, "team-c") == {"log-level": "debug", "extra": "1"},
               what="copy in team-c")
    wait_until(lambda: not cluster.exists("configmap", "settings", "-n", "team-a"),
               what="copy in team-a removed")

    # Removing the parent removes every copy and leaves the source alone.
    cluster.kubectl("delete", "configmappropagation", "settings")
    for ns in ["team-b", "team-c"]:
        wait_until(lambda: not cluster.exists("configmap", "settings", "-n", ns),
                   what=f"copy in {ns} collected")
    assert copy_data(cluster, "shared") == {"log-level": "debug", "extra": "1"}


def pod(cluster, name="web-0"):
    return cluster.get_json("pod", name)


def test_service_per_pod(cluster, start_hook, kubectl_available):
    hook = start_hook(SERVICE_PER_POD / "hooks.py")
    cluster.kubectl("apply", "-f", "-", input=with_hook_url(SERVICE_PER_POD / "controller.yaml", hook))
    cluster.kubectl("apply", "-f", str(SERVICE_PER_POD / "pod.yaml"))
    cluster.kubectl("run", "plain", "--image=nginx")

    wait_until(lambda: cluster.exists("service", "web-0"), what="the Service of web-0")
    svc = cluster.get_json("service", "web-0")
    assert svc["spec"]["selector"] == {"service-per-pod.example.com/pod": "web-0"}
    assert svc["spec"]["ports"][0]["port"] == 8080
    assert svc["metadata"]["annotations"]["metacontroller.k8s.io/decorator-controller"] == \
        "service-per-pod"
    p = pod(cluster)
    assert svc["metadata"]["ownerReferences"][0]["uid"] == p["metadata"]["uid"]
    wait_until(lambda: pod(cluster)["metadata"].get("labels", {})
               .get("service-per-pod.example.com/pod") == "web-0", what="the Pod's label")
    assert "metacontroller.io/decoratorcontroller-service-per-pod" in \
        pod(cluster)["metadata"]["finalizers"]
    # Pods without the annotation are left alone.
    assert not cluster.exists("service", "plain")
    assert "finalizers" not in pod(cluster, "plain")["metadata"]

    # Removing the annotation: the finalize hook removes the Service, the label and the
    # finalizer.
    cluster.kubectl("annotate", "pod", "web-0", "service-per-pod.example.com/port-")
    wait_until(lambda: not cluster.exists("service", "web-0"), what="the Service removed")

    def released():
        meta = pod(cluster)["metadata"]
        return ("service-per-pod.example.com/pod" not in (meta.get("labels") or {})
                and not meta.get("finalizers"))

    wait_until(released, what="label and finalizer removed")

    # Annotated again, then deleted: the Service goes and the Pod is not held.
    cluster.kubectl("annotate", "pod", "web-0", "service-per-pod.example.com/port=9090")
    wait_until(lambda: cluster.exists("service", "web-0")
               and cluster.get_json("service", "web-0")["spec"]["ports"][0]["port"] == 9090,
               what="the Service again")
    cluster.kubectl("delete", "pod", "web-0", "--wait=false")
    wait_until(lambda: not cluster.exists("pod", "web-0"), what="the Pod deleted")
    assert not cluster.exists("service", "web-0")

    # Deleting the DecoratorController releases its finalizers: nothing hangs.
    cluster.kubectl("apply", "-f", str(SERVICE_PER_POD / "pod.yaml"))
    wait_until(lambda: cluster.exists("service", "web-0"), what="the Service of the new web-0")
    cluster.kubectl("delete", "decoratorcontroller", "service-per-pod")
    wait_until(lambda: not pod(cluster)["metadata"].get("finalizers"),
               what="the finalizer released")
    cluster.kubectl("delete", "pod", "web-0", "--timeout=30s")
    assert not cluster.exists("pod", "web-0")
