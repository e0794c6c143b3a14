"""`metacontroller dev`'s node and workload controllers, judged by kubectl: the tutorial with
its hook running in the cluster (process runtime), Deployments, ReplicaSets, StatefulSets,
DaemonSets and Jobs (simulated runtime), and what an image the process runtime cannot run
does."""
import json
import re

import pytest

from conftest import ROOT, Cluster, free_port, wait_until

HELLO = ROOT / "examples" / "hello-world"


@pytest.fixture
def make_cluster(tmp_path, request):
    clusters = []

    def make(*args):
        c = Cluster(tmp_path, extra_args=args)
        clusters.append(c)
        return c

    yield make
    failed = getattr(request.node, "rep_call", None)
    for c in clusters:
        if failed is not None and failed.failed:
            import sys
            sys.stderr.write(f"\n--- metacontroller dev log ---\n{c.logs()}\n")
        c.stop()


def apply(cluster, manifest, ns=None):
    args = ["apply", "-f", "-"] + (["-n", ns] if ns else [])
    return cluster.kubectl(*args, input=manifest if isinstance(manifest, str) else json.dumps(manifest))


def pods_table(cluster, ns):
    """{name: (ready, status, restarts)} from `kubectl get pods`."""
    out = cluster.kubectl("get", "pods", "-n", ns, "--no-headers").stdout
    rows = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 4:
            rows[cols[0]] = (cols[1], cols[2], cols[3])
    return rows


def test_tutorial_with_the_hook_in_the_cluster(make_cluster, kubectl_available):
    cluster = make_cluster("--runtime", "process")
    port = free_port()
    webhook = ((HELLO / "webhook.yaml").read_text()
               .replace('"0.0.0.0"', '"127.0.0.1"').replace("8080", str(port)))

    cluster.kubectl("create", "namespace", "hello")
    cluster.kubectl("apply", "-f", str(HELLO / "crd.yaml"))
    cluster.kubectl("wait", "--for=condition=established", "crd/helloworlds.example.com",
                    "--timeout=30s")
    cluster.kubectl("-n", "hello", "create", "configmap", "hello-controller",
                    f"--from-file={HELLO / 'sync.py'}")
    apply(cluster, webhook, "hello")
    apply(cluster, (HELLO / "controller-in-cluster.yaml").read_text())
    cluster.kubectl("-n", "hello", "rollout", "status", "deployment/hello-controller",
                    "--timeout=60s")
    deploy = cluster.get_json("deployment", "hello-controller", "-n", "hello")
    assert deploy["status"]["readyReplicas"] == 1
    assert deploy["status"]["availableReplicas"] == 1

    cluster.kubectl("-n", "hello", "apply", "-f", str(HELLO / "hello.yaml"))
    wait_until(lambda: pods_table(cluster, "hello").get("your-name", ("", ""))[1] == "Completed",
               timeout=60, what="your-name Completed")
    assert pods_table(cluster, "hello")["your-name"][0] == "0/1"
    logs = cluster.kubectl("-n", "hello", "logs", "your-name").stdout
    assert logs == "Hello, Your Name!\n"

    old_uid = cluster.get_json("pod", "your-name", "-n", "hello")["metadata"]["uid"]
    cluster.kubectl("-n", "hello", "patch", "helloworld", "your-name", "--type=merge",
                    "-p", json.dumps({"spec": {"who": "My Name"}}))

    def greeted_again():
        pod = cluster.get_json("pod", "your-name", "-n", "hello")
        if pod["metadata"]["uid"] == old_uid or pod["status"].get("phase") != "Succeeded":
            return False
        return cluster.kubectl("-n", "hello", "logs", "your-name").stdout

    assert wait_until(greeted_again, timeout=60, what="the new greeting") == "Hello, My Name!\n"

    # The hook's own pod logs are served too, and the hook process stops with its pod.
    hook_pod = cluster.get_json("pods", "-n", "hello", "-l", "app=hello-controller")["items"][0]
    assert hook_pod["status"]["podIP"] == "127.0.0.1"
    assert hook_pod["spec"]["nodeName"] == "dev-node"
    cluster.kubectl("-n", "hello", "delete", "deployment", "hello-controller")

    def port_closed():
        import socket
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) != 0

    wait_until(port_closed, timeout=45, what="the hook process to stop")


def test_an_image_the_process_runtime_cannot_run_fails_with_an_event(make_cluster,
                                                                     kubectl_available):
    cluster = make_cluster("--runtime", "process")
    cluster.kubectl("run", "web", "--image=nginx:1.27", "--restart=Never")
    wait_until(lambda: cluster.get_json("pod", "web")["status"].get("phase") == "Failed",
               timeout=30, what="the pod to fail")
    status = cluster.get_json("pod", "web")["status"]["containerStatuses"][0]
    assert status["state"]["terminated"]["reason"] == "ImageNotSupported"
    events = cluster.kubectl("get", "events", "--field-selector", "involvedObject.name=web").stdout
    assert "Warning" in events and "nginx:1.27" in events and "process runtime" in events


def test_process_pods_logs_env_and_volumes(make_cluster, kubectl_available):
    cluster = make_cluster("--runtime", "process")
    cluster.kubectl("create", "configmap", "cfg", "--from-literal=greeting=hi there")
    cluster.kubectl("create", "secret", "generic", "sec", "--from-literal=token=s3cret")
    pod = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "reader"},
        "spec": {
            "restartPolicy": "OnFailure",
            "containers": [{
                "name": "main", "image": "busybox:1.36",
                "command": ["sh", "-c",
                            "echo line1; cat /etc/cfg/greeting; echo; cat /etc/sec/token; echo;"
                            " echo name=$POD_NAME mode=$MODE; echo oops >&2;"
                            " test -e /scratch/ran && exit 0; touch /scratch/ran; exit 3"],
                "env": [{"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "greeting"}}},
                        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
                "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"},
                                 {"name": "sec", "mountPath": "/etc/sec"},
                                 {"name": "scratch", "mountPath": "/scratch"}],
            }],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}},
                        {"name": "sec", "secret": {"secretName": "sec"}},
                        {"name": "scratch", "emptyDir": {}}],
        },
    }
    apply(cluster, pod)
    # The first run exits 3 and is restarted (OnFailure, after the kubelet's 10s back-off);
    # the second finds its emptyDir marker and exits 0.
    wait_until(lambda: cluster.get_json("pod", "reader")["status"].get("phase") == "Succeeded",
               timeout=40, what="the pod to succeed")
    status = cluster.get_json("pod", "reader")["status"]["containerStatuses"][0]
    assert status["restartCount"] == 1
    assert status["lastState"]["terminated"]["exitCode"] == 3
    assert status["state"]["terminated"]["reason"] == "Completed"
    out = cluster.kubectl("logs", "reader").stdout
    assert out.splitlines() == ["line1", "hi there", "s3cret", "name=reader mode=hi there", "oops"]
    assert cluster.kubectl("logs", "reader", "--tail=1").stdout == "oops\n"
    assert cluster.kubectl("logs", "reader", "--previous").stdout == out
    assert cluster.kubectl("logs", "reader", "--limit-bytes=5").stdout == "line1"

    # follow streams while the container runs and ends when it exits.
    apply(cluster, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ticker"},
                    "spec": {"restartPolicy": "Never", "containers": [{
                        "name": "t", "image": "alpine",
                        "command": ["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 1; done"]}]}})
    wait_until(lambda: cluster.get_json("pod", "ticker")["status"].get("phase") == "Running",
               timeout=20, what="ticker running")
    followed = cluster.kubectl("logs", "-f", "ticker", timeout=30).stdout
    assert followed == "tick 1\ntick 2\ntick 3\n"


def test_deployment_rolls_out_and_scales(make_cluster, kubectl_available):
    cluster = make_cluster()
    cluster.kubectl("create", "deployment", "web", "--image=nginx:1.26", "--replicas=3")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    table = cluster.kubectl("get", "deployment", "web", "--no-headers").stdout.split()
    assert table[1] == "3/3" and table[2] == "3" and table[3] == "3"
    rs = cluster.get_json("replicasets", "-l", "app=web")["items"]
    assert len(rs) == 1
    first_hash = rs[0]["metadata"]["labels"]["pod-template-hash"]
    assert rs[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    pods = cluster.get_json("pods", "-l", "app=web")["items"]
    assert len(pods) == 3
    for p in pods:
        assert p["spec"]["nodeName"] == "dev-node"
        assert p["metadata"]["labels"]["pod-template-hash"] == first_hash
        assert p["status"]["phase"] == "Running"
        conds = {c["type"]: c["status"] for c in p["status"]["conditions"]}
        assert conds["Ready"] == "True" and conds["PodScheduled"] == "True"
        assert p["status"]["containerStatuses"][0]["state"]["running"]["startedAt"]

    # A new image rolls out through a second ReplicaSet; the first ends at 0.
    cluster.kubectl("set", "image", "deployment/web", "nginx=nginx:1.27")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    rs = {r["metadata"]["labels"]["pod-template-hash"]: r
          for r in cluster.get_json("replicasets", "-l", "app=web")["items"]}
    assert len(rs) == 2
    assert rs[first_hash]["spec"]["replicas"] == 0
    new = next(r for h, r in rs.items() if h != first_hash)
    assert new["spec"]["replicas"] == 3
    assert new["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    images = {p["spec"]["containers"][0]["image"]
              for p in cluster.get_json("pods", "-l", "app=web")["items"]
              if not p["metadata"].get("deletionTimestamp")}
    assert images == {"nginx:1.27"}
    history = cluster.kubectl("rollout", "history", "deployment/web").stdout
    assert re.search(r"^1\s", history, re.M) and re.search(r"^2\s", history, re.M)
    d = cluster.get_json("deployment", "web")
    conds = {c["type"]: c for c in d["status"]["conditions"]}
    assert conds["Available"]["status"] == "True"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert d["status"]["updatedReplicas"] == 3
    assert d["status"]["observedGeneration"] == d["metadata"]["generation"]

    # Scaling.
    cluster.kubectl("scale", "deployment/web", "--replicas=1")
    wait_until(lambda: len(cluster.get_json("pods", "-l", "app=web")["items"]) == 1,
               what="one pod")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=30s")
    assert cluster.get_json("deployment", "web")["status"]["replicas"] == 1

    # Rolling back reuses the first ReplicaSet.
    cluster.kubectl("rollout", "undo", "deployment/web")
    cluster.kubectl("rollout", "status", "deployment/web", "--timeout=60s")
    rs = {r["metadata"]["labels"]["pod-template-hash"]: r
          for r in cluster.get_json("replicasets", "-l", "app=web")["items"]}
    assert rs[first_hash]["spec"]["replicas"] == 1
    assert rs[first_hash]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"

    # Steady: nothing changes any more.
    before = cluster.get_json("deployment", "web")["metadata"]["resourceVersion"]
    pods_before = [p["metadata"]["resourceVersion"]
                   for p in cluster.get_json("pods", "-l", "app=web")["items"]]
    import time
    time.sleep(3)
    assert cluster.get_json("deployment", "web")["metadata"]["resourceVersion"] == before
    assert [p["metadata"]["resourceVersion"]
            for p in cluster.get_json("pods", "-l", "app=web")["items"]] == pods_before

    # Deleting the Deployment removes its ReplicaSets and pods.
    cluster.kubectl("delete", "deployment", "web")
    wait_until(lambda: not cluster.get_json("pods", "-l", "app=web")["items"],
               what="pods to go")


def test_jobs_complete_index_and_back_off(make_cluster, kubectl_available):
    cluster = make_cluster()
    job = {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "count"},
        "spec": {"completions": 3, "parallelism": 2, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "c", "image": "busybox", "command": ["echo", "done"]}]}}},
    }
    apply(cluster, job)
    cluster.kubectl("wait", "--for=condition=complete", "job/count", "--timeout=60s")
    j = cluster.get_json("job", "count")
    assert j["spec"]["backoffLimit"] == 6 and j["spec"]["completionMode"] == "NonIndexed"
    assert j["status"]["succeeded"] == 3 and "active" not in j["status"]
    assert j["status"]["completionTime"] and j["status"]["startTime"]
    table = cluster.kubectl("get", "job", "count", "--no-headers").stdout.split()
    assert table[1] == "Complete" and table[2] == "3/3"
    pods = cluster.get_json("pods", "-l", "job-name=count")["items"]
    assert len(pods) == 3
    assert {p["status"]["phase"] for p in pods} == {"Succeeded"}
    rows = pods_table(cluster, "default")
    assert {rows[p["metadata"]["name"]][1] for p in pods} == {"Completed"}
    assert cluster.kubectl("logs", pods[0]["metadata"]["name"]).stdout == "done\n"

    indexed = json.loads(json.dumps(job))
    indexed["metadata"]["name"] = "shards"
    indexed["spec"].update(completionMode="Indexed", completions=4, parallelism=4)
    indexed["spec"]["template"]["spec"]["containers"][0]["command"] = ["true"]
    apply(cluster, indexed)
    cluster.kubectl("wait", "--for=condition=complete", "job/shards", "--timeout=60s")
    j = cluster.get_json("job", "shards")
    assert j["status"]["completedIndexes"] == "0-3" and j["status"]["succeeded"] == 4
    pods = cluster.get_json("pods", "-l", "job-name=shards")["items"]
    indexes = sorted(p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
                     for p in pods)
    assert indexes == ["0", "1", "2", "3"]
    for p in pods:
        i = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
        assert p["spec"]["hostname"] == f"shards-{i}"
        env = p["spec"]["containers"][0]["env"]
        assert env[-1]["name"] == "JOB_COMPLETION_INDEX"

    failing = json.loads(json.dumps(job))
    failing["metadata"]["name"] = "broken"
    failing["spec"].update(completions=1, parallelism=1, backoffLimit=1)
    failing["spec"]["template"]["spec"]["containers"][0]["command"] = ["false"]
    apply(cluster, failing)
    # Two failures (the first, then one retry after the 10s back-off) exceed backoffLimit 1.
    cluster.kubectl("wait", "--for=condition=failed", "job/broken", "--timeout=60s")
    j = cluster.get_json("job", "broken")
    assert j["status"]["failed"] == 2
    failed = [c for c in j["status"]["conditions"] if c["type"] == "Failed"][0]
    assert failed["reason"] == "BackoffLimitExceeded"
    rows = pods_table(cluster, "default")
    broken = [r for n, r in rows.items() if n.startswith("broken-")]
    assert len(broken) == 2 and {r[1] for r in broken} == {"Error"}


def test_statefulset_is_ordered_with_claims(make_cluster, kubectl_available):
    cluster = make_cluster()
    sts = {
        "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
        "spec": {
            "serviceName": "db", "replicas": 3,
            "selector": {"matchLabels": {"app": "db"}},
            "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [{
                "name": "db", "image": "postgres:16",
                "readinessProbe": {"exec": {"command": ["true"]}, "initialDelaySeconds": 1},
                "volumeMounts": [{"name": "data", "mountPath": "/data"}]}]}},
            "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}}}}],
        },
    }
    apply(cluster, sts)
    cluster.kubectl("rollout", "status", "statefulset/db", "--timeout=60s")
    pods = cluster.get_json("pods", "-l", "app=db")["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == ["db-0", "db-1", "db-2"]
    # Ordered: each pod started after the one before it was Ready.
    by_name = {p["metadata"]["name"]: p for p in pods}
    created = [by_name[f"db-{i}"]["metadata"]["creationTimestamp"] for i in range(3)]
    ready = [next(c["lastTransitionTime"] for c in by_name[f"db-{i}"]["status"]["conditions"]
                  if c["type"] == "Ready") for i in range(3)]
    assert created[1] >= ready[0] and created[2] >= ready[1]
    for i in range(3):
        p = by_name[f"db-{i}"]
        assert p["spec"]["hostname"] == f"db-{i}" and p["spec"]["subdomain"] == "db"
        claim = [v for v in p["spec"]["volumes"] if v["name"] == "data"][0]
        assert claim["persistentVolumeClaim"]["claimName"] == f"data-db-{i}"
        assert p["metadata"]["labels"]["apps.kubernetes.io/pod-index"] == str(i)
    pvcs = cluster.kubectl("get", "pvc", "--no-headers").stdout
    for i in range(3):
        assert re.search(rf"^data-db-{i}\s+Bound", pvcs, re.M), pvcs
    s = cluster.get_json("statefulset", "db")
    assert s["status"]["readyReplicas"] == 3
    assert s["status"]["currentRevision"] == s["status"]["updateRevision"]
    assert s["spec"]["podManagementPolicy"] == "OrderedReady"

    # Scaling down removes the highest ordinal first and keeps its claim.
    cluster.kubectl("scale", "statefulset/db", "--replicas=1")
    wait_until(lambda: sorted(p["metadata"]["name"]
                              for p in cluster.get_json("pods", "-l", "app=db")["items"]) == ["db-0"],
               timeout=30, what="only db-0")
    assert "data-db-2" in cluster.kubectl("get", "pvc").stdout


def test_daemonset_runs_one_pod_on_the_node(make_cluster, kubectl_available):
    cluster = make_cluster()
    nodes = cluster.kubectl("get", "nodes", "--no-headers").stdout.split()
    assert nodes[0] == "dev-node" and nodes[1] == "Ready"
    node = cluster.get_json("node", "dev-node")
    assert node["status"]["capacity"]["pods"] == "110"
    ds = {
        "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
        "spec": {"selector": {"matchLabels": {"app": "agent"}},
                 "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {"containers": [{
                     "name": "agent", "image": "fluentd:v1"}]}}},
    }
    apply(cluster, ds)
    cluster.kubectl("rollout", "status", "daemonset/agent", "--timeout=60s")
    row = cluster.kubectl("get", "ds", "agent", "--no-headers").stdout.split()
    assert row[1:6] == ["1", "1", "1", "1", "1"]
    pods = cluster.get_json("pods", "-l", "app=agent")["items"]
    assert len(pods) == 1 and pods[0]["spec"]["nodeName"] == "dev-node"
    old = pods[0]["metadata"]["name"]
    cluster.kubectl("set", "image", "daemonset/agent", "agent=fluentd:v2")
    cluster.kubectl("rollout", "status", "daemonset/agent", "--timeout=60s")
    pods = cluster.get_json("pods", "-l", "app=agent")["items"]
    assert len(pods) == 1 and pods[0]["metadata"]["name"] != old
    assert pods[0]["spec"]["containers"][0]["image"] == "fluentd:v2"
