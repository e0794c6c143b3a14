"""The CatSet example end to end: ordered startup, a rolling update of the Pod template one Pod
at a time as Pods turn Ready, replicas changes applied at once, a rollback mid-rollout that
reuses the earlier ControllerRevision, and cleanup. The first test runs `dev` without a node
(`--runtime none`) and marks Pods Ready with the example's mark-ready.py, step by step; the
second lets the node's kubelet make them Ready."""
import json
import subprocess
import sys
import time

import pytest

from conftest import ROOT, Cluster, wait_until

EXAMPLE = ROOT / "examples" / "catset"
NS = "cats"


@pytest.fixture
def cluster(tmp_path, request):
    """`dev` without a node: Pods turn Ready only when the test marks them."""
    c = Cluster(tmp_path, extra_args=("--runtime", "none"))
    yield c
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        sys.stderr.write(f"\n--- metacontroller dev log ---\n{c.logs()}\n")
    c.stop()


@pytest.fixture
def node_cluster(tmp_path, request):
    """`dev` with its simulated node."""
    c = Cluster(tmp_path)
    yield c
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        sys.stderr.write(f"\n--- metacontroller dev log ---\n{c.logs()}\n")
    c.stop()


def mark_ready(cluster, *names):
    args = [sys.executable, str(EXAMPLE / "mark-ready.py"), "-n", NS]
    args += list(names) if names else ["-l", "app=nginx"]
    subprocess.run(args, env=cluster.env, check=True, capture_output=True, timeout=60)


def pods(cluster):
    """Live Pods by name: (uid, image, ready)."""
    out = {}
    for p in cluster.get_json("pods", "-n", NS)["items"]:
        if p["metadata"].get("deletionTimestamp"):
            continue
        conditions = (p.get("status") or {}).get("conditions") or []
        ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        out[p["metadata"]["name"]] = (p["metadata"]["uid"], p["spec"]["containers"][0]["image"],
                                      ready)
    return out


def catset(cluster):
    return cluster.get_json("catset", "nginx-backend", "-n", NS)


def updated(cluster):
    for c in catset(cluster).get("status", {}).get("conditions", []):
        if c["type"] == "Updated":
            return c
    return None


def revisions(cluster):
    return cluster.get_json("controllerrevisions.metacontroller.k8s.io", "-n", NS)["items"]


def set_image(cluster, image):
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "image": image, "ports": [{"containerPort": 80, "name": "web"}]}]}}}}
    cluster.kubectl("-n", NS, "patch", "catset", "nginx-backend", "--type=merge",
                    "-p", json.dumps(patch))


def on_image(cluster, image, count, total):
    """Waits until `count` of `total` Pods run `image`; returns the Pods."""
    def check():
        p = pods(cluster)
        return p if len(p) == total and sum(1 for v in p.values() if v[1] == image) == count \
            else None
    return wait_until(check, what=f"{count} of {total} Pods on {image}")


def roll(cluster, image, total, before):
    """Follows a rollout to `image`: one Pod replaced at a time, in ordinal order, the next only
    after the previous one is Ready."""
    for done in range(1, total + 1):
        current = on_image(cluster, image, done, total)
        pending = [n for n, (_, img, ready) in current.items() if img == image and not ready]
        assert len(pending) == 1, current
        assert pending[0] == f"nginx-backend-{done - 1}", current
        # Pods not yet replaced are untouched.
        for name, (uid, img, _) in current.items():
            if img != image:
                assert before[name][0] == uid
        if done < total:
            wait_until(lambda: (updated(cluster) or {}).get("reason") == "RolloutWaiting",
                       what="RolloutWaiting")
            time.sleep(0.5)
            assert sum(1 for v in pods(cluster).values() if v[1] == image) == done, \
                "the rollout waits while the replaced Pod is not Ready"
        mark_ready(cluster, pending[0])
    wait_until(lambda: (updated(cluster) or {}).get("reason") == "OnLatestRevision",
               what="OnLatestRevision")


def test_catset_rolling_update(cluster, start_hook, kubectl_available):
    hook = start_hook(EXAMPLE / "sync.py")
    controller = (EXAMPLE / "controller.yaml").read_text().replace(
        "http://127.0.0.1:8080/sync", f"{hook.url}/sync")
    cluster.kubectl("create", "namespace", NS)
    cluster.kubectl("apply", "-f", str(EXAMPLE / "crd.yaml"))
    cluster.kubectl("wait", "--for=condition=established", "crd/catsets.ctl.example.com",
                    "--timeout=30s")
    cluster.kubectl("apply", "-f", "-", input=controller)
    cluster.kubectl("-n", NS, "apply", "-f", str(EXAMPLE / "my-catset.yaml"))

    # Ordered startup: the next Pod appears only once the previous one is Ready.
    wait_until(lambda: "nginx-backend-0" in pods(cluster), what="nginx-backend-0")
    time.sleep(0.5)
    assert list(pods(cluster)) == ["nginx-backend-0"]
    for i in range(3):
        wait_until(lambda: f"nginx-backend-{i}" in pods(cluster), what=f"nginx-backend-{i}")
        mark_ready(cluster)
    wait_until(lambda: catset(cluster).get("status", {}).get("readyReplicas") == 3,
               what="3 ready replicas")
    cond = wait_until(lambda: updated(cluster) if (updated(cluster) or {}).get(
        "reason") == "OnLatestRevision" else None, what="OnLatestRevision")
    assert cond["status"] == "True"
    revs = revisions(cluster)
    assert len(revs) == 1
    first = revs[0]
    assert first["metadata"]["name"].startswith("catsets.ctl.example.com-")
    assert cond["message"] == f"latest ControllerRevision: {first['metadata']['name']}"
    assert first["metadata"]["labels"]["metacontroller.k8s.io/apiGroup"] == "ctl.example.com"
    assert first["metadata"]["labels"]["metacontroller.k8s.io/resource"] == "catsets"
    assert first["metadata"]["labels"]["app"] == "nginx"
    assert first["metadata"]["ownerReferences"][0]["kind"] == "CatSet"
    assert sorted(first["children"][0]["names"]) == [f"nginx-backend-{i}" for i in range(3)]
    assert list(first["parentPatch"]) == ["spec"] and list(first["parentPatch"]["spec"]) == [
        "template"]

    # A new template rolls out one Pod at a time.
    before = pods(cluster)
    set_image(cluster, "nginx:1.28")
    wait_until(lambda: len(revisions(cluster)) == 2, what="a second ControllerRevision")
    roll(cluster, "nginx:1.28", 3, before)
    revs = revisions(cluster)
    assert len(revs) == 1 and revs[0]["metadata"]["uid"] != first["metadata"]["uid"]
    latest = revs[0]

    # More replicas apply at once, on the current template, without a new revision.
    cluster.kubectl("-n", NS, "patch", "catset", "nginx-backend", "--type=merge",
                    "-p", '{"spec":{"replicas":4}}')
    on_image(cluster, "nginx:1.28", 4, 4)
    mark_ready(cluster)
    wait_until(lambda: catset(cluster).get("status", {}).get("readyReplicas") == 4,
               what="4 ready replicas")
    assert [r["metadata"]["uid"] for r in revisions(cluster)] == [latest["metadata"]["uid"]]

    # Start another rollout, then go back before it finishes: the earlier revision is reused
    # and the replaced Pod returns to it.
    before = pods(cluster)
    set_image(cluster, "nginx:1.29")
    on_image(cluster, "nginx:1.29", 1, 4)
    assert len(revisions(cluster)) == 2
    set_image(cluster, "nginx:1.28")
    on_image(cluster, "nginx:1.28", 4, 4)
    mark_ready(cluster)
    wait_until(lambda: (updated(cluster) or {}).get("reason") == "OnLatestRevision",
               what="OnLatestRevision after the rollback")
    wait_until(lambda: len(revisions(cluster)) == 1, what="the abandoned revision pruned")
    assert revisions(cluster)[0]["metadata"]["uid"] == latest["metadata"]["uid"]
    after = pods(cluster)
    for name in ("nginx-backend-1", "nginx-backend-2", "nginx-backend-3"):
        assert after[name][0] == before[name][0], f"{name} was never touched"

    # Deleting the CatSet removes its Pods and revisions.
    cluster.kubectl("-n", NS, "delete", "catset", "nginx-backend")
    wait_until(lambda: not pods(cluster), what="Pods garbage collected")
    wait_until(lambda: not revisions(cluster), what="revisions garbage collected")
    cluster.kubectl("delete", "compositecontroller", "catset-controller")


def test_catset_on_the_node(node_cluster, start_hook, kubectl_available):
    """The controller reads its Pods' readiness, which the node reports: the set starts in
    order and a new template rolls out to the end with nobody marking Pods Ready."""
    cluster = node_cluster
    hook = start_hook(EXAMPLE / "sync.py")
    controller = (EXAMPLE / "controller.yaml").read_text().replace(
        "http://127.0.0.1:8080/sync", f"{hook.url}/sync")
    cluster.kubectl("create", "namespace", NS)
    cluster.kubectl("apply", "-f", str(EXAMPLE / "crd.yaml"))
    cluster.kubectl("wait", "--for=condition=established", "crd/catsets.ctl.example.com",
                    "--timeout=30s")
    cluster.kubectl("apply", "-f", "-", input=controller)
    cluster.kubectl("-n", NS, "apply", "-f", str(EXAMPLE / "my-catset.yaml"))
    wait_until(lambda: catset(cluster).get("status", {}).get("readyReplicas") == 3,
               timeout=60, what="3 ready replicas")
    live = cluster.get_json("pods", "-n", NS)["items"]
    by_name = {p["metadata"]["name"]: p for p in live}
    for i in (1, 2):
        prev_ready = next(c["lastTransitionTime"]
                          for c in by_name[f"nginx-backend-{i - 1}"]["status"]["conditions"]
                          if c["type"] == "Ready")
        assert by_name[f"nginx-backend-{i}"]["metadata"]["creationTimestamp"] >= prev_ready
    assert {p["spec"]["nodeName"] for p in live} == {"dev-node"}

    set_image(cluster, "nginx:1.28")
    wait_until(lambda: all(v[1] == "nginx:1.28" and v[2] for v in pods(cluster).values())
               and len(pods(cluster)) == 3, timeout=90, what="all Pods Ready on nginx:1.28")
    wait_until(lambda: (updated(cluster) or {}).get("reason") == "OnLatestRevision",
               what="OnLatestRevision")
