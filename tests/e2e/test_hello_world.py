"""The hello-world tutorial, step by step, as a user performs it: the built binary in `dev`
mode, kubectl, and the Python hook as a process."""
import json
from pathlib import Path

from conftest import ROOT, wait_until

EXAMPLE = ROOT / "examples" / "hello-world"


def pod_command(cluster, name):
    pod = cluster.get_json("pod", name, "-n", "hello")
    return pod["spec"]["containers"][0]["command"], pod


def run_tutorial(cluster, hook, crd_file):
    controller = (EXAMPLE / "controller.yaml").read_text().replace(
        "http://127.0.0.1:8080/sync", f"{hook.url}/sync")

    cluster.kubectl("create", "namespace", "hello")
    cluster.kubectl("apply", "-f", str(crd_file))
    cluster.kubectl("wait", "--for=condition=established", "crd/helloworlds.example.com",
                    "--timeout=30s")
    cluster.kubectl("apply", "-f", "-", input=controller)
    cluster.kubectl("-n", "hello", "create", "configmap", "hello-controller",
                    f"--from-file={EXAMPLE / 'sync.py'}")
    cm = cluster.get_json("configmap", "hello-controller", "-n", "hello")
    assert cm["data"]["sync.py"] == (EXAMPLE / "sync.py").read_text()

    cluster.kubectl("-n", "hello", "apply", "-f", str(EXAMPLE / "hello.yaml"))

    # The Pod appears with the greeting.
    wait_until(lambda: cluster.exists("pod", "your-name", "-n", "hello"), what="the child Pod")
    command, pod = pod_command(cluster, "your-name")
    assert command == ["echo", "Hello, Your Name!"]
    parent = cluster.get_json("helloworld", "your-name", "-n", "hello")
    owner = pod["metadata"]["ownerReferences"][0]
    assert owner["uid"] == parent["metadata"]["uid"]
    assert owner["controller"] is True and owner["blockOwnerDeletion"] is True
    assert pod["metadata"]["labels"]["controller-uid"] == parent["metadata"]["uid"]

    # The parent's status reports the Pod.
    wait_until(lambda: cluster.get_json("helloworld", "your-name", "-n", "hello")
               .get("status", {}).get("pods") == 1, what="status.pods == 1")

    listing = cluster.kubectl("-n", "hello", "get", "pods").stdout
    assert "your-name" in listing and "STATUS" in listing

    # Patching `who` recreates the Pod with the new greeting.
    old_uid = pod["metadata"]["uid"]
    cluster.kubectl("-n", "hello", "patch", "helloworld", "your-name", "--type=merge",
                    "-p", json.dumps({"spec": {"who": "My Name"}}))

    def recreated():
        command, pod = pod_command(cluster, "your-name")
        return pod["metadata"]["uid"] != old_uid and command == ["echo", "Hello, My Name!"]

    wait_until(recreated, what="the Pod recreated with the new greeting")

    # Deleting the parent removes the Pod.
    cluster.kubectl("-n", "hello", "delete", "helloworld", "your-name")
    wait_until(lambda: not cluster.exists("pod", "your-name", "-n", "hello"),
               what="the Pod to be garbage collected")

    # Cleanup, as the tutorial ends.
    cluster.kubectl("delete", "compositecontroller", "hello-controller")
    cluster.kubectl("delete", "crd", "helloworlds.example.com")
    cluster.kubectl("delete", "ns", "hello", "--timeout=60s")
    wait_until(lambda: not cluster.exists("namespace", "hello"), what="namespace hello to go")


def test_tutorial_with_v1_crd(cluster, start_hook, kubectl_available):
    hook = start_hook(EXAMPLE / "sync.py")
    run_tutorial(cluster, hook, EXAMPLE / "crd.yaml")


def test_tutorial_with_the_original_v1beta1_crd(cluster, start_hook, kubectl_available):
    hook = start_hook(EXAMPLE / "sync.py")
    run_tutorial(cluster, hook, EXAMPLE / "legacy" / "crd.yaml")
