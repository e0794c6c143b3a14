//! Tests for table rendering: column sets, cells, ages and printer columns.

use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};

use super::*;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0)
        .single()
        .expect("valid time")
}

/// An RFC 3339 timestamp `secs` seconds before [`now`].
fn ago(secs: i64) -> String {
    (now() - Duration::seconds(secs)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn meta(name: &str, created_secs_ago: i64) -> Value {
    json!({"name": name, "namespace": "ns", "uid": "u-1", "creationTimestamp": ago(created_secs_ago)})
}

fn opts() -> TableOptions {
    TableOptions::at(now())
}

fn column_names(table: &Value) -> Vec<String> {
    table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn cells(table: &Value, row: usize) -> Vec<Value> {
    table["rows"][row]["cells"]
        .as_array()
        .cloned()
        .expect("cells")
}

fn one(group: &str, resource: &str, object: Value) -> (Vec<String>, Vec<Value>) {
    let table = render(group, resource, None, &[object], &opts());
    (column_names(&table), cells(&table, 0))
}

#[test]
fn human_durations_match_kubernetes() {
    let d = |s: i64| human_duration(Duration::seconds(s));
    assert_eq!(d(-5), "<invalid>");
    assert_eq!(d(-1), "0s");
    assert_eq!(d(0), "0s");
    assert_eq!(d(5), "5s");
    assert_eq!(d(119), "119s");
    assert_eq!(d(120), "2m");
    assert_eq!(d(192), "3m12s");
    assert_eq!(d(599), "9m59s");
    assert_eq!(d(600), "10m");
    assert_eq!(d(3 * 3600 - 1), "179m");
    assert_eq!(d(3 * 3600), "3h");
    assert_eq!(d(5 * 3600 + 3 * 60), "5h3m");
    assert_eq!(d(8 * 3600), "8h");
    assert_eq!(d(47 * 3600), "47h");
    assert_eq!(d(2 * 86400 + 3 * 3600), "2d3h");
    assert_eq!(d(3 * 86400), "3d");
    assert_eq!(d(45 * 86400), "45d");
    assert_eq!(d(2 * 365 * 86400 + 30 * 86400), "2y30d");
    assert_eq!(d(3 * 365 * 86400), "3y");
    assert_eq!(d(9 * 365 * 86400), "9y");
}

#[test]
fn table_envelope_and_row_objects() {
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta("c", 30),
        "data": {"a": "1"}});
    let table = render("", "configmaps", None, std::slice::from_ref(&cm), &opts());
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(table["metadata"], json!({}));
    assert_eq!(
        table["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name",
            "description": NAME_DESCRIPTION, "priority": 0})
    );
    assert_eq!(
        table["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
            "metadata": cm["metadata"]})
    );

    let mut whole = opts();
    whole.include_object = IncludeObject::Object;
    let table = render("", "configmaps", None, std::slice::from_ref(&cm), &whole);
    assert_eq!(table["rows"][0]["object"], cm);

    let mut none = opts();
    none.include_object = IncludeObject::None;
    let table = render("", "configmaps", None, &[cm], &none);
    assert!(table["rows"][0].get("object").is_none());

    let empty = render("", "configmaps", None, &[], &opts());
    assert_eq!(empty["rows"], json!([]));
}

#[test]
fn include_object_parsing() {
    assert_eq!(IncludeObject::from_query(""), Ok(IncludeObject::Metadata));
    assert_eq!(IncludeObject::from_query("None"), Ok(IncludeObject::None));
    assert_eq!(
        IncludeObject::from_query("Object"),
        Ok(IncludeObject::Object)
    );
    assert_eq!(
        IncludeObject::from_query("Metadata"),
        Ok(IncludeObject::Metadata)
    );
    assert!(IncludeObject::from_query("metadata").is_err());
    assert_eq!(IncludeObject::default(), IncludeObject::Metadata);
}

#[test]
fn namespaces_configmaps_secrets_serviceaccounts() {
    let (cols, row) = one(
        "",
        "namespaces",
        json!({"metadata": meta("hello", 5), "status": {"phase": "Active"}}),
    );
    assert_eq!(cols, ["Name", "Status", "Age"]);
    assert_eq!(row, vec![json!("hello"), json!("Active"), json!("5s")]);

    let (cols, row) = one(
        "",
        "configmaps",
        json!({"metadata": meta("x", 192), "data": {"a": "b", "c": "d"},
            "binaryData": {"e": "AA=="}}),
    );
    assert_eq!(cols, ["Name", "Data", "Age"]);
    assert_eq!(row, vec![json!("x"), json!(3), json!("3m12s")]);

    let (cols, row) = one(
        "",
        "secrets",
        json!({"metadata": meta("s", 3600 * 50), "type": "Opaque", "data": {"p": "aA=="}}),
    );
    assert_eq!(cols, ["Name", "Type", "Data", "Age"]);
    assert_eq!(
        row,
        vec![json!("s"), json!("Opaque"), json!(1), json!("2d2h")]
    );

    let (cols, row) = one(
        "",
        "serviceaccounts",
        json!({"metadata": meta("default", 60)}),
    );
    assert_eq!(cols, ["Name", "Secrets", "Age"]);
    assert_eq!(row, vec![json!("default"), json!(0), json!("60s")]);
}

#[test]
fn pods_running_with_restarts_and_wide_columns() {
    let pod = json!({
        "metadata": meta("web-1", 600),
        "spec": {"nodeName": "node-a", "containers": [{"name": "a"}, {"name": "b"}],
            "readinessGates": [{"conditionType": "example.com/gate"}]},
        "status": {
            "phase": "Running",
            "podIPs": [{"ip": "10.0.0.7"}],
            "conditions": [{"type": "Ready", "status": "False"},
                {"type": "example.com/gate", "status": "True"}],
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 2, "state": {"running": {}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ago(300)}}},
                {"name": "b", "ready": false, "restartCount": 1,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}}}
            ]
        }
    });
    let table = render("", "pods", None, &[pod], &opts());
    assert_eq!(
        column_names(&table),
        [
            "Name",
            "Ready",
            "Status",
            "Restarts",
            "Age",
            "IP",
            "Node",
            "Nominated Node",
            "Readiness Gates"
        ]
    );
    let priorities: Vec<i64> = table["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| c["priority"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(priorities, [0, 0, 0, 0, 0, 1, 1, 1, 1]);
    assert_eq!(
        cells(&table, 0),
        vec![
            json!("web-1"),
            json!("1/2"),
            json!("CrashLoopBackOff"),
            json!("3 (5m ago)"),
            json!("10m"),
            json!("10.0.0.7"),
            json!("node-a"),
            json!("<none>"),
            json!("1/1"),
        ]
    );
    assert!(table["rows"][0].get("conditions").is_none());
}

#[test]
fn terminating_pending_completed_and_init_pods() {
    let status = |p: Value| one("", "pods", p).1[2].clone();
    let terminating = json!({
        "metadata": {"name": "p", "creationTimestamp": ago(10), "deletionTimestamp": ago(1)},
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "c", "ready": true, "restartCount": 0, "state": {"running": {}}}]}
    });
    let (_, row) = one("", "pods", terminating);
    assert_eq!(row[1], json!("1/1"));
    assert_eq!(row[2], json!("Terminating"));
    assert_eq!(row[3], json!("0"));

    let pending = json!({"metadata": meta("p", 1), "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Pending"}});
    let (_, row) = one("", "pods", pending);
    assert_eq!(row[1], json!("0/1"));
    assert_eq!(row[2], json!("Pending"));
    assert_eq!(row[5], json!("<none>"));
    assert_eq!(row[6], json!("<none>"));

    let succeeded = json!({"metadata": meta("p", 1), "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [{"name": "c", "ready": false,
            "restartCount": 0, "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
    let table = render("", "pods", None, std::slice::from_ref(&succeeded), &opts());
    assert_eq!(cells(&table, 0)[2], json!("Completed"));
    assert_eq!(table["rows"][0]["conditions"][0]["reason"], "Succeeded");
    // A finished pod being deleted keeps its terminal status.
    let mut deleting = succeeded;
    deleting["metadata"]["deletionTimestamp"] = json!(ago(0));
    assert_eq!(status(deleting), json!("Completed"));

    let init = json!({"metadata": meta("p", 1),
        "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}],
                 "containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "restartCount": 0, "state": {"running": {}}}]}});
    assert_eq!(status(init), json!("Init:1/2"));

    let init_failed = json!({"metadata": meta("p", 1),
        "spec": {"initContainers": [{"name": "i1"}], "containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "restartCount": 3, "state": {"terminated": {"exitCode": 2}}}]}});
    assert_eq!(status(init_failed), json!("Init:ExitCode:2"));

    let sidecar = json!({"metadata": meta("p", 1),
        "spec": {"initContainers": [{"name": "proxy", "restartPolicy": "Always"}],
                 "containers": [{"name": "c"}]},
        "status": {"phase": "Running",
            "conditions": [{"type": "Initialized", "status": "True"}],
            "initContainerStatuses": [{"name": "proxy", "restartCount": 0, "started": true,
                "ready": true, "state": {"running": {}}}],
            "containerStatuses": [{"name": "c", "restartCount": 0, "ready": true,
                "state": {"running": {}}}]}});
    let (_, row) = one("", "pods", sidecar);
    assert_eq!(row[1], json!("2/2"));
    assert_eq!(row[2], json!("Running"));
}

#[test]
fn services() {
    let svc = json!({"metadata": meta("web", 30), "spec": {"type": "ClusterIP",
        "clusterIPs": ["10.96.0.10"], "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
    let (cols, row) = one("", "services", svc);
    assert_eq!(
        cols,
        [
            "Name",
            "Type",
            "Cluster-IP",
            "External-IP",
            "Port(s)",
            "Age",
            "Selector"
        ]
    );
    assert_eq!(
        row,
        vec![
            json!("web"),
            json!("ClusterIP"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80/TCP,53/UDP"),
            json!("30s"),
            json!("app=web"),
        ]
    );
    let lb = json!({"metadata": meta("lb", 30), "spec": {"type": "LoadBalancer",
        "clusterIPs": ["10.0.0.1"], "ports": [{"port": 443, "nodePort": 30443,
        "protocol": "TCP"}]}});
    let (_, row) = one("", "services", lb);
    assert_eq!(row[3], json!("<pending>"));
    assert_eq!(row[4], json!("443:30443/TCP"));
    assert_eq!(row[6], json!("<none>"));
    let ext = json!({"metadata": meta("e", 30), "spec": {"type": "ExternalName",
        "externalName": "example.test"}});
    let (_, row) = one("", "services", ext);
    assert_eq!(row[2], json!("<none>"));
    assert_eq!(row[3], json!("example.test"));
    assert_eq!(row[4], json!("<none>"));
}

#[test]
fn workloads() {
    let template = json!({"spec": {"containers": [{"name": "a", "image": "nginx"},
        {"name": "b", "image": "busybox"}]}});
    let deploy = json!({"metadata": meta("web", 90), "spec": {"replicas": 3,
        "selector": {"matchLabels": {"app": "web"}}, "template": template},
        "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    let (cols, row) = one("apps", "deployments", deploy);
    assert_eq!(
        cols,
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        row,
        vec![
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("90s"),
            json!("a,b"),
            json!("nginx,busybox"),
            json!("app=web"),
        ]
    );

    let rs = json!({"metadata": meta("web-abc", 90), "spec": {"replicas": 2,
        "template": template}, "status": {"replicas": 2, "readyReplicas": 1}});
    let (cols, row) = one("apps", "replicasets", rs);
    assert_eq!(
        cols,
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(row[1..4], [json!(2), json!(2), json!(1)]);
    assert_eq!(row[7], json!("<none>"));

    let sts = json!({"metadata": meta("db", 90), "spec": {"template": template},
        "status": {"readyReplicas": 1}});
    let (cols, row) = one("apps", "statefulsets", sts);
    assert_eq!(cols, ["Name", "Ready", "Age", "Containers", "Images"]);
    assert_eq!(row[1], json!("1/1"));

    let ds = json!({"metadata": meta("agent", 90), "spec": {"template": {"spec": {
        "nodeSelector": {"os": "linux"}, "containers": []}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 3, "numberReady": 2,
            "updatedNumberScheduled": 3, "numberAvailable": 2}});
    let (cols, row) = one("apps", "daemonsets", ds);
    assert_eq!(
        cols,
        [
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        row[1..7],
        [
            json!(3),
            json!(3),
            json!(2),
            json!(3),
            json!(2),
            json!("os=linux")
        ]
    );

    let cr = json!({"metadata": {"name": "web-5d8", "creationTimestamp": ago(60),
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web",
            "controller": true}]}, "revision": 4});
    let (cols, row) = one("apps", "controllerrevisions", cr);
    assert_eq!(cols, ["Name", "Controller", "Revision", "Age"]);
    assert_eq!(
        row,
        vec![
            json!("web-5d8"),
            json!("statefulset.apps/web"),
            json!(4),
            json!("60s")
        ]
    );
}

#[test]
fn jobs_and_cronjobs() {
    let job = json!({"metadata": meta("once", 400), "spec": {"completions": 1,
        "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}}},
        "status": {"succeeded": 1, "startTime": ago(400), "completionTime": ago(380),
            "conditions": [{"type": "Complete", "status": "True"}]}});
    let (cols, row) = one("batch", "jobs", job);
    assert_eq!(
        cols,
        [
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        row,
        vec![
            json!("once"),
            json!("Complete"),
            json!("1/1"),
            json!("20s"),
            json!("6m40s"),
            json!("c"),
            json!("busybox"),
            json!("batch.kubernetes.io/controller-uid=u"),
        ]
    );
    let running = json!({"metadata": meta("par", 10), "spec": {"parallelism": 3},
        "status": {"startTime": ago(10)}});
    let (_, row) = one("batch", "jobs", running);
    assert_eq!(
        row[1..4],
        [json!("Running"), json!("0/1 of 3"), json!("10s")]
    );

    let cj = json!({"metadata": meta("tick", 3600), "spec": {"schedule": "*/5 * * * *",
        "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
        "status": {"active": [{"name": "tick-1"}], "lastScheduleTime": ago(120)}});
    let (cols, row) = one("batch", "cronjobs", cj);
    assert_eq!(
        cols,
        [
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        row[..7],
        [
            json!("tick"),
            json!("*/5 * * * *"),
            json!("<none>"),
            json!("False"),
            json!(1),
            json!("2m"),
            json!("60m")
        ]
    );
}

#[test]
fn events_nodes_and_storage() {
    let ev = json!({"metadata": meta("web.17a", 100), "type": "Warning", "reason": "BackOff",
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{c}"},
        "message": " Back-off restarting \n", "firstTimestamp": ago(100),
        "lastTimestamp": ago(20), "count": 4, "source": {"component": "kubelet", "host": "n1"}});
    let (cols, row) = one("", "events", ev);
    assert_eq!(
        cols,
        [
            "Last Seen",
            "Type",
            "Reason",
            "Object",
            "Subobject",
            "Source",
            "Message",
            "First Seen",
            "Count",
            "Name"
        ]
    );
    assert_eq!(
        row,
        vec![
            json!("20s"),
            json!("Warning"),
            json!("BackOff"),
            json!("pod/web-1"),
            json!("spec.containers{c}"),
            json!("kubelet, n1"),
            json!("Back-off restarting"),
            json!("100s"),
            json!(4),
            json!("web.17a"),
        ]
    );
    // events.k8s.io field names, a series and no count.
    let new_style = json!({"metadata": meta("e2", 10), "type": "Normal", "reason": "Synced",
        "regarding": {"kind": "Widget", "name": "w"}, "note": "done",
        "eventTime": "2024-05-01T11:59:50.000000Z", "reportingController": "metacontroller",
        "series": {"count": 3, "lastObservedTime": "2024-05-01T11:59:58.500000Z"}});
    let (_, row) = one("events.k8s.io", "events", new_style);
    assert_eq!(row[0], json!("1s"));
    assert_eq!(row[3], json!("widget/w"));
    assert_eq!(row[5], json!("metacontroller"));
    assert_eq!(row[6], json!("done"));
    assert_eq!(row[7], json!("10s"));
    assert_eq!(row[8], json!(3));

    let node = json!({"metadata": {"name": "n1", "creationTimestamp": ago(86400 * 3),
        "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "edge"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0"},
            "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}]}});
    let (cols, row) = one("", "nodes", node);
    assert_eq!(cols.len(), 10);
    assert_eq!(
        row,
        vec![
            json!("n1"),
            json!("Ready,SchedulingDisabled"),
            json!("control-plane,edge"),
            json!("3d"),
            json!("v1.32.0"),
            json!("192.168.1.2"),
            json!("<none>"),
            json!("<unknown>"),
            json!("<unknown>"),
            json!("<unknown>"),
        ]
    );

    let pvc = json!({"metadata": meta("data", 60), "spec": {"volumeName": "pv-1",
        "storageClassName": "standard"}, "status": {"phase": "Bound",
        "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}});
    let (cols, row) = one("", "persistentvolumeclaims", pvc);
    assert_eq!(
        cols,
        [
            "Name",
            "Status",
            "Volume",
            "Capacity",
            "Access Modes",
            "StorageClass",
            "VolumeAttributesClass",
            "Age",
            "VolumeMode"
        ]
    );
    assert_eq!(
        row,
        vec![
            json!("data"),
            json!("Bound"),
            json!("pv-1"),
            json!("1Gi"),
            json!("RWO"),
            json!("standard"),
            json!("<unset>"),
            json!("60s"),
            json!("<unset>"),
        ]
    );

    let pv = json!({"metadata": meta("pv-1", 60), "spec": {"capacity": {"storage": "1Gi"},
        "accessModes": ["ReadWriteOnce"], "persistentVolumeReclaimPolicy": "Delete",
        "claimRef": {"namespace": "ns", "name": "data"}, "volumeMode": "Filesystem"},
        "status": {"phase": "Bound"}});
    let (cols, row) = one("", "persistentvolumes", pv);
    assert_eq!(cols.len(), 11);
    assert_eq!(
        row,
        vec![
            json!("pv-1"),
            json!("1Gi"),
            json!("RWO"),
            json!("Delete"),
            json!("Bound"),
            json!("ns/data"),
            json!(""),
            json!("<unset>"),
            json!(""),
            json!("60s"),
            json!("Filesystem"),
        ]
    );
}

#[test]
fn leases_ingresses_rbac_and_quota() {
    let lease = json!({"metadata": meta("leader", 15), "spec": {"holderIdentity": "me"}});
    let (cols, row) = one("coordination.k8s.io", "leases", lease);
    assert_eq!(cols, ["Name", "Holder", "Age"]);
    assert_eq!(row, vec![json!("leader"), json!("me"), json!("15s")]);

    let ing = json!({"metadata": meta("web", 15), "spec": {"ingressClassName": "nginx",
        "rules": [{"host": "a.test"}, {"host": "b.test"}], "tls": [{}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "1.2.3.4"}]}}});
    let (cols, row) = one("networking.k8s.io", "ingresses", ing);
    assert_eq!(cols, ["Name", "Class", "Hosts", "Address", "Ports", "Age"]);
    assert_eq!(
        row,
        vec![
            json!("web"),
            json!("nginx"),
            json!("a.test,b.test"),
            json!("1.2.3.4"),
            json!("80, 443"),
            json!("15s")
        ]
    );

    let rb = json!({"metadata": meta("read", 15),
        "roleRef": {"kind": "Role", "name": "reader"},
        "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "bot", "namespace": "hello"},
            {"kind": "User", "name": "bob"}]});
    let (cols, row) = one("rbac.authorization.k8s.io", "rolebindings", rb);
    assert_eq!(
        cols,
        ["Name", "Role", "Age", "Users", "Groups", "ServiceAccounts"]
    );
    assert_eq!(
        row,
        vec![
            json!("read"),
            json!("Role/reader"),
            json!("15s"),
            json!("alice, bob"),
            json!("devs"),
            json!("hello/bot")
        ]
    );

    for resource in ["roles", "clusterroles"] {
        let role = json!({"metadata": {"name": "reader",
            "creationTimestamp": "2024-04-01T10:00:00Z"}});
        let table = render(
            "rbac.authorization.k8s.io",
            resource,
            None,
            &[role],
            &opts(),
        );
        assert_eq!(column_names(&table), ["Name", "Created At"]);
        assert_eq!(table["columnDefinitions"][1]["type"], "date");
        assert_eq!(
            cells(&table, 0),
            vec![json!("reader"), json!("2024-04-01T10:00:00Z")]
        );
    }
    let crd = json!({"metadata": {"name": "widgets.example.com",
        "creationTimestamp": "2024-04-01T10:00:00Z"}});
    let table = render(
        "apiextensions.k8s.io",
        "customresourcedefinitions",
        None,
        &[crd],
        &opts(),
    );
    assert_eq!(column_names(&table), ["Name", "Created At"]);

    let quota = json!({"metadata": meta("q", 15), "status": {
        "hard": {"pods": "10", "limits.cpu": "2", "requests.memory": "1Gi"},
        "used": {"pods": "3", "limits.cpu": "500m"}}});
    let (cols, row) = one("", "resourcequotas", quota);
    assert_eq!(cols, ["Name", "Request", "Limit", "Age"]);
    assert_eq!(
        row,
        vec![
            json!("q"),
            json!("pods: 3/10, requests.memory: 0/1Gi"),
            json!("limits.cpu: 500m/2"),
            json!("15s")
        ]
    );
}

#[test]
fn custom_resource_printer_columns() {
    let columns = json!([
        {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
        {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas",
         "description": "Desired replicas"},
        {"name": "Ready", "type": "boolean", "jsonPath": ".status.ready", "priority": 1},
        {"name": "App", "type": "string",
         "jsonPath": ".metadata.labels['app.kubernetes.io/name']"},
        {"name": "First", "type": "string", "jsonPath": ".spec.items[*].name"},
        {"name": "Last Sync", "type": "date", "jsonPath": ".status.lastSync"},
        {"name": "Ratio", "type": "number", "jsonPath": ".status.ratio"}
    ]);
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1", "creationTimestamp": ago(30),
            "labels": {"app.kubernetes.io/name": "demo"}},
        "spec": {"replicas": 3, "items": [{"name": "x"}, {"name": "y"}]},
        "status": {"phase": "Ready", "ready": true, "lastSync": ago(192), "ratio": 0.5}});
    let bare = json!({"metadata": {"name": "w2", "creationTimestamp": ago(30)},
        "spec": {"replicas": 1.0}, "status": {"lastSync": "yesterday"}});
    let table = render(
        "example.com",
        "widgets",
        Some(&columns),
        &[widget, bare],
        &opts(),
    );
    assert_eq!(
        column_names(&table),
        [
            "Name",
            "Phase",
            "Replicas",
            "Ready",
            "App",
            "First",
            "Last Sync",
            "Ratio"
        ]
    );
    assert_eq!(
        table["columnDefinitions"][2],
        json!({"name": "Replicas", "type": "integer", "format": "",
            "description": "Desired replicas", "priority": 0})
    );
    assert_eq!(table["columnDefinitions"][3]["priority"], 1);
    assert_eq!(
        table["columnDefinitions"][1]["description"],
        "Column from the JSONPath .status.phase"
    );
    assert_eq!(
        cells(&table, 0),
        vec![
            json!("w1"),
            json!("Ready"),
            json!(3),
            json!(true),
            json!("demo"),
            json!("x"),
            json!("3m12s"),
            json!(0.5)
        ]
    );
    // Missing values render as null; a float renders as an integer; a bad date is <invalid>.
    assert_eq!(
        cells(&table, 1),
        vec![
            json!("w2"),
            Value::Null,
            json!(1),
            Value::Null,
            Value::Null,
            Value::Null,
            json!("<invalid>"),
            Value::Null
        ]
    );
}

#[test]
fn json_path_validation() {
    assert!(validate_json_path(".status.phase").is_ok());
    assert!(validate_json_path(".metadata.labels['a.b/c']").is_ok());
    let err = validate_json_path(".items[?(@.x)]")
        .err()
        .map(|e| e.to_string());
    assert!(err.is_some_and(|e| e.contains("items")));
}

#[test]
fn custom_resources_without_printer_columns_get_age() {
    let obj = json!({"metadata": {"name": "w", "creationTimestamp": ago(7200)}});
    for spec in [Some(json!([])), None] {
        let table = render(
            "example.com",
            "widgets",
            spec.as_ref(),
            std::slice::from_ref(&obj),
            &opts(),
        );
        assert_eq!(column_names(&table), ["Name", "Age"]);
        assert_eq!(table["columnDefinitions"][1]["type"], "date");
        assert_eq!(cells(&table, 0), vec![json!("w"), json!("120m")]);
    }
    let no_timestamp = json!({"metadata": {"name": "w"}});
    let table = render("", "configmaps", None, &[no_timestamp], &opts());
    assert_eq!(cells(&table, 0)[2], json!("<unknown>"));
}
