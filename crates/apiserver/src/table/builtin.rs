//! Columns and cells of the built-in resources, following kube-apiserver's printers.
//!
//! Each [`Printer`] pairs the column definitions (names, types and priorities as kube-apiserver
//! serves them) with a function computing one object's cells. The cells always include the
//! priority-1 (wide) columns, as a server does.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, human_duration, name, parse_time, since, Column, Row};

/// A column: name, type, priority, description.
type Col = (&'static str, &'static str, i64, &'static str);

/// The printer of one resource.
pub(super) struct Printer {
    columns: &'static [Col],
    cells: fn(&Value, DateTime<Utc>) -> Row,
}

impl Printer {
    pub(super) fn columns(&self) -> Vec<Column> {
        self.columns
            .iter()
            .map(|(name, ty, priority, description)| Column {
                name: (*name).into(),
                ty: (*ty).into(),
                format: if *name == "Name" { "name" } else { "" }.into(),
                description: (*description).into(),
                priority: *priority,
            })
            .collect()
    }

    pub(super) fn row(&self, object: &Value, now: DateTime<Utc>) -> Row {
        (self.cells)(object, now)
    }
}

const NAME: Col = ("Name", "string", 0, super::NAME_DESCRIPTION);
const AGE: Col = ("Age", "string", 0, super::AGE_DESCRIPTION);
const CONTAINERS: Col = (
    "Containers",
    "string",
    1,
    "Names of each container in the template.",
);
const IMAGES: Col = (
    "Images",
    "string",
    1,
    "Images referenced by each container in the template.",
);
const SELECTOR: Col = ("Selector", "string", 1, "The label selector.");

/// The printer for a built-in `group`/`resource`, if there is one.
pub(super) fn lookup(group: &str, resource: &str) -> Option<Printer> {
    let p = |columns: &'static [Col], cells: fn(&Value, DateTime<Utc>) -> Row| {
        Some(Printer { columns, cells })
    };
    match (group, resource) {
        ("", "pods") => p(POD, pod),
        ("", "namespaces") => p(NAMESPACE, namespace),
        ("", "configmaps") => p(CONFIG_MAP, config_map),
        ("", "secrets") => p(SECRET, secret),
        ("", "serviceaccounts") => p(SERVICE_ACCOUNT, service_account),
        ("", "services") => p(SERVICE, service),
        ("", "endpoints") => p(ENDPOINTS, endpoints),
        ("", "events") | ("events.k8s.io", "events") => p(EVENT, event),
        ("", "nodes") => p(NODE, node),
        ("", "persistentvolumeclaims") => p(PVC, pvc),
        ("", "persistentvolumes") => p(PV, pv),
        ("", "resourcequotas") => p(RESOURCE_QUOTA, resource_quota),
        ("", "replicationcontrollers") => p(REPLICATION_CONTROLLER, replication_controller),
        ("apps", "deployments") => p(DEPLOYMENT, deployment),
        ("apps", "replicasets") => p(REPLICA_SET, replica_set),
        ("apps", "statefulsets") => p(STATEFUL_SET, stateful_set),
        ("apps", "daemonsets") => p(DAEMON_SET, daemon_set),
        ("apps", "controllerrevisions") => p(CONTROLLER_REVISION, controller_revision),
        ("batch", "jobs") => p(JOB, job),
        ("batch", "cronjobs") => p(CRON_JOB, cron_job),
        ("coordination.k8s.io", "leases") => p(LEASE, lease),
        ("networking.k8s.io", "ingresses") => p(INGRESS, ingress),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            p(ROLE_BINDING, role_binding)
        }
        ("scheduling.k8s.io", "priorityclasses") => p(PRIORITY_CLASS, priority_class),
        ("policy", "poddisruptionbudgets") => p(PDB, pdb),
        _ => None,
    }
}

/// Built-ins kube-apiserver serves with its default table convertor (NAME, CREATED AT).
pub(super) fn uses_default_convertor(group: &str, resource: &str) -> bool {
    matches!(
        (group, resource),
        ("rbac.authorization.k8s.io", "roles" | "clusterroles")
            | ("apiextensions.k8s.io", "customresourcedefinitions")
    )
}

// ---- value access -------------------------------------------------------------------------

fn at<'a>(v: &'a Value, pointer: &str) -> Option<&'a Value> {
    v.pointer(pointer).filter(|x| !x.is_null())
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    at(v, pointer).and_then(Value::as_str).unwrap_or("")
}

fn int(v: &Value, pointer: &str) -> i64 {
    at(v, pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn items<'a>(v: &'a Value, pointer: &str) -> &'a [Value] {
    at(v, pointer)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Number of entries of a map or list.
fn count(v: &Value, pointer: &str) -> i64 {
    match at(v, pointer) {
        Some(Value::Object(m)) => m.len() as i64,
        Some(Value::Array(a)) => a.len() as i64,
        _ => 0,
    }
}

fn has(v: &Value, pointer: &str) -> bool {
    at(v, pointer).is_some()
}

fn or<'a>(s: &'a str, fallback: &'a str) -> &'a str {
    if s.is_empty() {
        fallback
    } else {
        s
    }
}

/// A quantity's text, `0` when absent (Go prints a zero `Quantity` as `0`).
fn quantity(v: &Value, pointer: &str) -> String {
    match at(v, pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// `names`, `images` of a pod template's containers, comma-separated.
fn container_cells(containers: &[Value]) -> (Value, Value) {
    let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
    let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
    (json!(names.join(",")), json!(images.join(",")))
}

/// `k=v,...` sorted by key, `<none>` when empty.
fn format_labels(map: Option<&Value>) -> String {
    let Some(Value::Object(m)) = map else {
        return "<none>".into();
    };
    if m.is_empty() {
        return "<none>".into();
    }
    let mut pairs: Vec<String> = m
        .iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    pairs.join(",")
}

/// The string form of a `LabelSelector`; `Err` when an operator is invalid.
fn selector_string(selector: Option<&Value>) -> Result<String, ()> {
    let Some(sel) = selector.filter(|s| s.is_object()) else {
        return Ok(String::new());
    };
    let mut reqs: Vec<(String, String)> = Vec::new();
    if let Some(Value::Object(labels)) = sel.get("matchLabels") {
        for (k, v) in labels {
            reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
        }
    }
    for expr in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = text(expr, "/key").to_string();
        let mut values: Vec<&str> = items(expr, "/values")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        values.dedup();
        let rendered = match text(expr, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.clone(),
            "DoesNotExist" => format!("!{key}"),
            _ => return Err(()),
        };
        reqs.push((key, rendered));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(reqs
        .into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join(","))
}

/// `metav1.FormatLabelSelector`: `<none>` when empty, `<error>` when invalid.
fn format_selector(selector: Option<&Value>) -> String {
    match selector_string(selector) {
        Ok(s) if s.is_empty() => "<none>".into(),
        Ok(s) => s,
        Err(()) => "<error>".into(),
    }
}

fn time_of(v: &Value, pointer: &str) -> Option<DateTime<Utc>> {
    at(v, pointer).and_then(Value::as_str).and_then(parse_time)
}

fn bool_text(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// Whether the condition of `ty` in `conditions` is `True` (the first one of that type counts).
fn condition_true(conditions: &[Value], ty: &str) -> bool {
    conditions
        .iter()
        .find(|c| text(c, "/type") == ty)
        .is_some_and(|c| text(c, "/status") == "True")
}

// ---- core ---------------------------------------------------------------------------------

const POD: &[Col] = &[
    NAME,
    (
        "Ready",
        "string",
        0,
        "Ready containers out of all containers.",
    ),
    (
        "Status",
        "string",
        0,
        "The aggregate status of the containers.",
    ),
    (
        "Restarts",
        "string",
        0,
        "Container restarts, and how long ago the last one was.",
    ),
    AGE,
    ("IP", "string", 1, "The pod's IP address."),
    ("Node", "string", 1, "The node the pod runs on."),
    (
        "Nominated Node",
        "string",
        1,
        "The node the pod is nominated to.",
    ),
    (
        "Readiness Gates",
        "string",
        1,
        "True readiness gates out of all gates.",
    ),
];

fn pod(o: &Value, now: DateTime<Utc>) -> Row {
    let containers = items(o, "/spec/containers");
    let init_containers = items(o, "/spec/initContainers");
    let conditions = items(o, "/status/conditions");
    let phase = text(o, "/status/phase");
    let mut reason = or(text(o, "/status/reason"), phase).to_string();
    if conditions
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let row_conditions = match phase {
        "Succeeded" => Some(json!([{"type": "Completed", "status": "True",
            "reason": "Succeeded", "message": "The pod has completed successfully."}])),
        "Failed" => Some(json!([{"type": "Completed", "status": "True",
            "reason": "Failed", "message": "The pod failed."}])),
        _ => None,
    };
    let is_sidecar = |name: &str| {
        init_containers
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let total = containers.len()
        + init_containers
            .iter()
            .filter(|c| text(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<DateTime<Utc>> = None;
    let mut last_sidecar_restart: Option<DateTime<Utc>> = None;
    let later = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };

    let mut initializing = false;
    for (i, status) in items(o, "/status/initContainerStatuses").iter().enumerate() {
        let count = int(status, "/restartCount");
        let finished = time_of(status, "/lastState/terminated/finishedAt");
        restarts += count;
        last_restart = later(last_restart, finished);
        let sidecar = is_sidecar(text(status, "/name"));
        if sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let terminated = at(status, "/state/terminated");
        let waiting_reason = text(status, "/state/waiting/reason");
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0) {
            continue;
        }
        if sidecar && at(status, "/started").and_then(Value::as_bool) == Some(true) {
            if at(status, "/ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(t) = terminated {
            reason = match text(t, "/reason") {
                "" if int(t, "/signal") != 0 => format!("Init:Signal:{}", int(t, "/signal")),
                "" => format!("Init:ExitCode:{}", int(t, "/exitCode")),
                r => format!("Init:{r}"),
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{i}/{}", init_containers.len());
        }
        initializing = true;
        break;
    }

    if !initializing || condition_true(conditions, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in items(o, "/status/containerStatuses").iter().rev() {
            restarts += int(status, "/restartCount");
            last_restart = later(
                last_restart,
                time_of(status, "/lastState/terminated/finishedAt"),
            );
            let waiting_reason = text(status, "/state/waiting/reason");
            let terminated = at(status, "/state/terminated");
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_string();
            } else if let Some(t) = terminated {
                reason = match text(t, "/reason") {
                    "" if int(t, "/signal") != 0 => format!("Signal:{}", int(t, "/signal")),
                    "" => format!("ExitCode:{}", int(t, "/exitCode")),
                    r => r.to_string(),
                };
            } else if at(status, "/ready").and_then(Value::as_bool) == Some(true)
                && has(status, "/state/running")
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(conditions, "Ready") {
                "Running".into()
            } else {
                "NotReady".into()
            };
        }
    }

    if has(o, "/metadata/deletionTimestamp") {
        if text(o, "/status/reason") == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Failed" && phase != "Succeeded" {
            reason = "Terminating".into();
        }
    }

    let restarts_text = match last_restart {
        Some(t) if restarts != 0 => format!("{restarts} ({} ago)", human_duration(now - t)),
        _ => restarts.to_string(),
    };
    let pod_ip = items(o, "/status/podIPs")
        .first()
        .map(|ip| text(ip, "/ip"))
        .unwrap_or("");
    let gates = items(o, "/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let true_gates = gates
            .iter()
            .filter(|g| condition_true(conditions, text(g, "/conditionType")))
            .count();
        format!("{true_gates}/{}", gates.len())
    };
    Row {
        cells: vec![
            json!(name(o)),
            json!(format!("{ready}/{total}")),
            json!(reason),
            json!(restarts_text),
            json!(age(o, now)),
            json!(or(pod_ip, "<none>")),
            json!(or(text(o, "/spec/nodeName"), "<none>")),
            json!(or(text(o, "/status/nominatedNodeName"), "<none>")),
            json!(readiness_gates),
        ],
        conditions: row_conditions,
    }
}

const NAMESPACE: &[Col] = &[
    NAME,
    ("Status", "string", 0, "The status of the namespace."),
    AGE,
];

fn namespace(o: &Value, now: DateTime<Utc>) -> Row {
    vec![
        json!(name(o)),
        json!(text(o, "/status/phase")),
        json!(age(o, now)),
    ]
    .into()
}

const CONFIG_MAP: &[Col] = &[
    NAME,
    (
        "Data",
        "string",
        0,
        "Number of data and binaryData entries.",
    ),
    AGE,
];

fn config_map(o: &Value, now: DateTime<Utc>) -> Row {
    let entries = count(o, "/data") + count(o, "/binaryData");
    vec![json!(name(o)), json!(entries), json!(age(o, now))].into()
}

const SECRET: &[Col] = &[
    NAME,
    ("Type", "string", 0, "The type of the secret."),
    ("Data", "string", 0, "Number of data entries."),
    AGE,
];

fn secret(o: &Value, now: DateTime<Utc>) -> Row {
    vec![
        json!(name(o)),
        json!(text(o, "/type")),
        json!(count(o, "/data")),
        json!(age(o, now)),
    ]
    .into()
}

const SERVICE_ACCOUNT: &[Col] = &[
    NAME,
    ("Secrets", "string", 0, "Number of secrets listed."),
    AGE,
];

fn service_account(o: &Value, now: DateTime<Utc>) -> Row {
    vec![
        json!(name(o)),
        json!(count(o, "/secrets")),
        json!(age(o, now)),
    ]
    .into()
}

const SERVICE: &[Col] = &[
    NAME,
    ("Type", "string", 0, "The type of the service."),
    ("Cluster-IP", "string", 0, "The cluster IP of the service."),
    (
        "External-IP",
        "string",
        0,
        "External IPs and load-balancer addresses.",
    ),
    ("Port(s)", "string", 0, "The ports the service exposes."),
    AGE,
    ("Selector", "string", 1, "The pod selector of the service."),
];

/// Load-balancer ingress IPs or hostnames, sorted and de-duplicated.
fn load_balancer_addresses(o: &Value, pointer: &str) -> String {
    let mut addrs: Vec<&str> = items(o, pointer)
        .iter()
        .map(|i| or(text(i, "/ip"), text(i, "/hostname")))
        .filter(|a| !a.is_empty())
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    addrs.join(",")
}

fn service(o: &Value, now: DateTime<Utc>) -> Row {
    let ty = text(o, "/spec/type");
    let cluster_ip = items(o, "/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or("<none>");
    let external: Vec<&str> = items(o, "/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let external_ip = match ty {
        "ClusterIP" | "NodePort" if !external.is_empty() => external.join(","),
        "ClusterIP" | "NodePort" => "<none>".into(),
        "LoadBalancer" => {
            let lb = load_balancer_addresses(o, "/status/loadBalancer/ingress");
            let mut all: Vec<&str> = lb.split(',').filter(|s| !s.is_empty()).collect();
            all.extend(external.iter().copied());
            if all.is_empty() {
                "<pending>".into()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => text(o, "/spec/externalName").to_string(),
        _ => "<unknown>".into(),
    };
    let ports: Vec<String> = items(o, "/spec/ports")
        .iter()
        .map(|p| {
            let (port, protocol) = (int(p, "/port"), text(p, "/protocol"));
            match int(p, "/nodePort") {
                np if np > 0 => format!("{port}:{np}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    let ports = if ports.is_empty() {
        "<none>".into()
    } else {
        ports.join(",")
    };
    vec![
        json!(name(o)),
        json!(ty),
        json!(cluster_ip),
        json!(external_ip),
        json!(ports),
        json!(age(o, now)),
        json!(format_labels(at(o, "/spec/selector"))),
    ]
    .into()
}

const ENDPOINTS: &[Col] = &[
    NAME,
    (
        "Endpoints",
        "string",
        0,
        "Endpoint addresses, at most three shown.",
    ),
    AGE,
];

fn endpoints(o: &Value, now: DateTime<Utc>) -> Row {
    const MAX: usize = 3;
    let subsets = items(o, "/subsets");
    let mut list: Vec<String> = Vec::new();
    let mut total = 0usize;
    for subset in subsets {
        let addresses = items(subset, "/addresses");
        let ports = items(subset, "/ports");
        if ports.is_empty() {
            total += addresses.len();
            for a in addresses {
                if list.len() < MAX {
                    list.push(text(a, "/ip").to_string());
                }
            }
            continue;
        }
        for port in ports {
            total += addresses.len();
            for a in addresses {
                if list.len() < MAX {
                    let ip = text(a, "/ip");
                    let p = int(port, "/port");
                    list.push(if ip.contains(':') {
                        format!("[{ip}]:{p}")
                    } else {
                        format!("{ip}:{p}")
                    });
                }
            }
        }
    }
    let shown = if subsets.is_empty() {
        "<none>".to_string()
    } else if total > MAX {
        format!("{} + {} more...", list.join(","), total - MAX)
    } else {
        list.join(",")
    };
    vec![json!(name(o)), json!(shown), json!(age(o, now))].into()
}

const EVENT: &[Col] = &[
    (
        "Last Seen",
        "string",
        0,
        "Time since the event was last seen.",
    ),
    ("Type", "string", 0, "Normal or Warning."),
    ("Reason", "string", 0, "Why the event happened."),
    ("Object", "string", 0, "The object the event is about."),
    (
        "Subobject",
        "string",
        1,
        "The part of the object the event is about.",
    ),
    (
        "Source",
        "string",
        1,
        "The component that reported the event.",
    ),
    ("Message", "string", 0, "What happened."),
    (
        "First Seen",
        "string",
        1,
        "Time since the event was first seen.",
    ),
    ("Count", "string", 1, "How often the event happened."),
    ("Name", "string", 1, super::NAME_DESCRIPTION),
];

/// The first non-empty of several fields (core/v1 names first, then events.k8s.io names).
fn first_of<'a>(o: &'a Value, pointers: &[&str]) -> Option<&'a Value> {
    pointers
        .iter()
        .find_map(|p| at(o, p).filter(|v| !matches!(v, Value::String(s) if s.is_empty())))
}

fn event(o: &Value, now: DateTime<Utc>) -> Row {
    let first = match first_of(o, &["/firstTimestamp", "/deprecatedFirstTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => since(at(o, "/eventTime"), now),
    };
    let mut last = match first_of(o, &["/lastTimestamp", "/deprecatedLastTimestamp"]) {
        Some(t) => since(Some(t), now),
        None => first.clone(),
    };
    let mut times = first_of(o, &["/count", "/deprecatedCount"])
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if let Some(series) = at(o, "/series") {
        last = since(at(series, "/lastObservedTime"), now);
        times = int(series, "/count");
    } else if times == 0 {
        times = 1;
    }
    let regarding = first_of(o, &["/involvedObject", "/regarding"]).unwrap_or(&Value::Null);
    let kind = text(regarding, "/kind").to_lowercase();
    let target = match text(regarding, "/name") {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = first_of(
        o,
        &[
            "/source/component",
            "/deprecatedSource/component",
            "/reportingComponent",
            "/reportingController",
        ],
    )
    .and_then(Value::as_str)
    .unwrap_or("");
    let instance = first_of(
        o,
        &[
            "/source/host",
            "/deprecatedSource/host",
            "/reportingInstance",
        ],
    )
    .and_then(Value::as_str)
    .unwrap_or("");
    let source = if instance.is_empty() {
        component.to_string()
    } else {
        format!("{component}, {instance}")
    };
    let message = first_of(o, &["/message", "/note"])
        .and_then(Value::as_str)
        .unwrap_or("")
        .trim();
    vec![
        json!(last),
        json!(text(o, "/type")),
        json!(text(o, "/reason")),
        json!(target),
        json!(text(regarding, "/fieldPath")),
        json!(source),
        json!(message),
        json!(first),
        json!(times),
        json!(name(o)),
    ]
    .into()
}

const NODE: &[Col] = &[
    NAME,
    ("Status", "string", 0, "The status of the node."),
    ("Roles", "string", 0, "The roles of the node."),
    AGE,
    ("Version", "string", 0, "The kubelet version."),
    ("Internal-IP", "string", 1, "The internal IP address."),
    ("External-IP", "string", 1, "The external IP address."),
    ("OS-Image", "string", 1, "The operating system image."),
    ("Kernel-Version", "string", 1, "The kernel version."),
    (
        "Container-Runtime",
        "string",
        1,
        "The container runtime version.",
    ),
];

fn node(o: &Value, now: DateTime<Utc>) -> Row {
    let mut status: Vec<String> = Vec::new();
    if let Some(ready) = items(o, "/status/conditions")
        .iter()
        .rev()
        .find(|c| text(c, "/type") == "Ready")
    {
        status.push(if text(ready, "/status") == "True" {
            "Ready".into()
        } else {
            "NotReady".into()
        });
    }
    if status.is_empty() {
        status.push("Unknown".into());
    }
    if at(o, "/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled".into());
    }
    let mut roles: Vec<String> = Vec::new();
    if let Some(Value::Object(labels)) = at(o, "/metadata/labels") {
        for (k, v) in labels {
            if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
                if !role.is_empty() {
                    roles.push(role.to_string());
                }
            } else if k == "kubernetes.io/role" {
                if let Some(v) = v.as_str().filter(|v| !v.is_empty()) {
                    roles.push(v.to_string());
                }
            }
        }
    }
    roles.sort();
    roles.dedup();
    let address = |ty: &str| {
        items(o, "/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == ty)
            .map(|a| text(a, "/address"))
            .unwrap_or("<none>")
    };
    let info =
        |field: &str| or(text(o, &format!("/status/nodeInfo/{field}")), "<unknown>").to_string();
    vec![
        json!(name(o)),
        json!(status.join(",")),
        json!(if roles.is_empty() {
            "<none>".into()
        } else {
            roles.join(",")
        }),
        json!(age(o, now)),
        json!(text(o, "/status/nodeInfo/kubeletVersion")),
        json!(address("InternalIP")),
        json!(address("ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
    .into()
}

/// Access modes abbreviated in kube's fixed order: RWO, ROX, RWX, RWOP.
fn access_modes(modes: &[Value]) -> String {
    let has = |m: &str| modes.iter().any(|v| v.as_str() == Some(m));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| has(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

const BETA_STORAGE_CLASS: &str = "/metadata/annotations/volume.beta.kubernetes.io~1storage-class";

fn storage_class(o: &Value) -> &str {
    at(o, BETA_STORAGE_CLASS)
        .and_then(Value::as_str)
        .unwrap_or_else(|| text(o, "/spec/storageClassName"))
}

const PVC: &[Col] = &[
    NAME,
    ("Status", "string", 0, "The phase of the claim."),
    ("Volume", "string", 0, "The bound volume."),
    ("Capacity", "string", 0, "The capacity of the bound volume."),
    (
        "Access Modes",
        "string",
        0,
        "The access modes of the bound volume.",
    ),
    (
        "StorageClass",
        "string",
        0,
        "The storage class of the claim.",
    ),
    (
        "VolumeAttributesClass",
        "string",
        0,
        "The volume attributes class.",
    ),
    AGE,
    ("VolumeMode", "string", 1, "Filesystem or Block."),
];

fn pvc(o: &Value, now: DateTime<Utc>) -> Row {
    let phase = if has(o, "/metadata/deletionTimestamp") {
        "Terminating"
    } else {
        text(o, "/status/phase")
    };
    let volume = text(o, "/spec/volumeName");
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            quantity(o, "/status/capacity/storage"),
            access_modes(items(o, "/status/accessModes")),
        )
    };
    vec![
        json!(name(o)),
        json!(phase),
        json!(volume),
        json!(capacity),
        json!(modes),
        json!(storage_class(o)),
        json!(or(text(o, "/spec/volumeAttributesClassName"), "<unset>")),
        json!(age(o, now)),
        json!(or(text(o, "/spec/volumeMode"), "<unset>")),
    ]
    .into()
}

const PV: &[Col] = &[
    NAME,
    ("Capacity", "string", 0, "The capacity of the volume."),
    (
        "Access Modes",
        "string",
        0,
        "The access modes of the volume.",
    ),
    (
        "Reclaim Policy",
        "string",
        0,
        "What happens when the claim is released.",
    ),
    ("Status", "string", 0, "The phase of the volume."),
    ("Claim", "string", 0, "The claim bound to the volume."),
    (
        "StorageClass",
        "string",
        0,
        "The storage class of the volume.",
    ),
    (
        "VolumeAttributesClass",
        "string",
        0,
        "The volume attributes class.",
    ),
    ("Reason", "string", 0, "Why the volume is in its phase."),
    AGE,
    ("VolumeMode", "string", 1, "Filesystem or Block."),
];

fn pv(o: &Value, now: DateTime<Utc>) -> Row {
    let claim = match at(o, "/spec/claimRef") {
        Some(c) => format!("{}/{}", text(c, "/namespace"), text(c, "/name")),
        None => String::new(),
    };
    let phase = if has(o, "/metadata/deletionTimestamp") {
        "Terminating"
    } else {
        text(o, "/status/phase")
    };
    vec![
        json!(name(o)),
        json!(quantity(o, "/spec/capacity/storage")),
        json!(access_modes(items(o, "/spec/accessModes"))),
        json!(text(o, "/spec/persistentVolumeReclaimPolicy")),
        json!(phase),
        json!(claim),
        json!(storage_class(o)),
        json!(or(text(o, "/spec/volumeAttributesClassName"), "<unset>")),
        json!(text(o, "/status/reason")),
        json!(age(o, now)),
        json!(or(text(o, "/spec/volumeMode"), "<unset>")),
    ]
    .into()
}

const RESOURCE_QUOTA: &[Col] = &[
    NAME,
    ("Request", "string", 0, "Used and hard request quotas."),
    ("Limit", "string", 0, "Used and hard limit quotas."),
    AGE,
];

fn resource_quota(o: &Value, now: DateTime<Utc>) -> Row {
    let mut resources: Vec<&String> = match at(o, "/status/hard") {
        Some(Value::Object(hard)) => hard.keys().collect(),
        _ => Vec::new(),
    };
    resources.sort();
    let (mut requests, mut limits) = (Vec::new(), Vec::new());
    for r in resources {
        let key = r.replace('~', "~0").replace('/', "~1");
        let entry = format!(
            "{r}: {}/{}",
            quantity(o, &format!("/status/used/{key}")),
            quantity(o, &format!("/status/hard/{key}"))
        );
        if r.starts_with("limits.") {
            limits.push(entry);
        } else {
            requests.push(entry);
        }
    }
    vec![
        json!(name(o)),
        json!(requests.join(", ")),
        json!(limits.join(", ")),
        json!(age(o, now)),
    ]
    .into()
}

const REPLICATION_CONTROLLER: &[Col] = &[
    NAME,
    ("Desired", "integer", 0, "Desired replicas."),
    ("Current", "integer", 0, "Current replicas."),
    ("Ready", "integer", 0, "Ready replicas."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn replication_controller(o: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = container_cells(items(o, "/spec/template/spec/containers"));
    vec![
        json!(name(o)),
        json!(desired_replicas(o)),
        json!(int(o, "/status/replicas")),
        json!(int(o, "/status/readyReplicas")),
        json!(age(o, now)),
        names,
        images,
        json!(format_labels(at(o, "/spec/selector"))),
    ]
    .into()
}

// ---- apps ---------------------------------------------------------------------------------

/// `spec.replicas`, which the API server defaults to 1.
fn desired_replicas(o: &Value) -> i64 {
    at(o, "/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

const DEPLOYMENT: &[Col] = &[
    NAME,
    (
        "Ready",
        "string",
        0,
        "Ready replicas out of desired replicas.",
    ),
    (
        "Up-to-date",
        "string",
        0,
        "Replicas running the current template.",
    ),
    ("Available", "string", 0, "Available replicas."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn deployment(o: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = container_cells(items(o, "/spec/template/spec/containers"));
    let selector = selector_string(at(o, "/spec/selector")).unwrap_or_else(|()| "<invalid>".into());
    vec![
        json!(name(o)),
        json!(format!(
            "{}/{}",
            int(o, "/status/readyReplicas"),
            desired_replicas(o)
        )),
        json!(int(o, "/status/updatedReplicas")),
        json!(int(o, "/status/availableReplicas")),
        json!(age(o, now)),
        names,
        images,
        json!(selector),
    ]
    .into()
}

const REPLICA_SET: &[Col] = &[
    NAME,
    ("Desired", "integer", 0, "Desired replicas."),
    ("Current", "integer", 0, "Current replicas."),
    ("Ready", "integer", 0, "Ready replicas."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn replica_set(o: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = container_cells(items(o, "/spec/template/spec/containers"));
    vec![
        json!(name(o)),
        json!(desired_replicas(o)),
        json!(int(o, "/status/replicas")),
        json!(int(o, "/status/readyReplicas")),
        json!(age(o, now)),
        names,
        images,
        json!(format_selector(at(o, "/spec/selector"))),
    ]
    .into()
}

const STATEFUL_SET: &[Col] = &[
    NAME,
    (
        "Ready",
        "string",
        0,
        "Ready replicas out of desired replicas.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
];

fn stateful_set(o: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = container_cells(items(o, "/spec/template/spec/containers"));
    vec![
        json!(name(o)),
        json!(format!(
            "{}/{}",
            int(o, "/status/readyReplicas"),
            desired_replicas(o)
        )),
        json!(age(o, now)),
        names,
        images,
    ]
    .into()
}

const DAEMON_SET: &[Col] = &[
    NAME,
    (
        "Desired",
        "integer",
        0,
        "Nodes that should run the daemon pod.",
    ),
    ("Current", "integer", 0, "Nodes running the daemon pod."),
    ("Ready", "integer", 0, "Nodes with a ready daemon pod."),
    (
        "Up-to-date",
        "integer",
        0,
        "Nodes running the current template.",
    ),
    (
        "Available",
        "integer",
        0,
        "Nodes with an available daemon pod.",
    ),
    (
        "Node Selector",
        "string",
        0,
        "The node selector of the pod template.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn daemon_set(o: &Value, now: DateTime<Utc>) -> Row {
    let (names, images) = container_cells(items(o, "/spec/template/spec/containers"));
    vec![
        json!(name(o)),
        json!(int(o, "/status/desiredNumberScheduled")),
        json!(int(o, "/status/currentNumberScheduled")),
        json!(int(o, "/status/numberReady")),
        json!(int(o, "/status/updatedNumberScheduled")),
        json!(int(o, "/status/numberAvailable")),
        json!(format_labels(at(o, "/spec/template/spec/nodeSelector"))),
        json!(age(o, now)),
        names,
        images,
        json!(format_selector(at(o, "/spec/selector"))),
    ]
    .into()
}

const CONTROLLER_REVISION: &[Col] = &[
    NAME,
    (
        "Controller",
        "string",
        0,
        "The controller owning the revision.",
    ),
    ("Revision", "string", 0, "The revision number."),
    AGE,
];

fn controller_revision(o: &Value, now: DateTime<Utc>) -> Row {
    let controller = items(o, "/metadata/ownerReferences")
        .iter()
        .find(|r| at(r, "/controller").and_then(Value::as_bool) == Some(true))
        .map(|r| {
            let api_version = text(r, "/apiVersion");
            let group = api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("");
            let kind = text(r, "/kind");
            let group_kind = if group.is_empty() {
                kind.to_string()
            } else {
                format!("{kind}.{group}")
            };
            if group_kind.is_empty() {
                text(r, "/name").to_string()
            } else {
                format!("{}/{}", group_kind.to_lowercase(), text(r, "/name"))
            }
        })
        .unwrap_or_else(|| "<none>".into());
    vec![
        json!(name(o)),
        json!(controller),
        json!(int(o, "/revision")),
        json!(age(o, now)),
    ]
    .into()
}

// ---- batch --------------------------------------------------------------------------------

const JOB: &[Col] = &[
    NAME,
    ("Status", "string", 0, "Status of the job."),
    (
        "Completions",
        "string",
        0,
        "Succeeded pods out of wanted completions.",
    ),
    (
        "Duration",
        "string",
        0,
        "Time the job took or has been running.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn job(o: &Value, now: DateTime<Utc>) -> Row {
    let succeeded = int(o, "/status/succeeded");
    let completions = match at(o, "/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int(o, "/spec/parallelism") {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let duration = match (
        time_of(o, "/status/startTime"),
        time_of(o, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let conditions = items(o, "/status/conditions");
    let status = if condition_true(conditions, "Complete") {
        "Complete"
    } else if condition_true(conditions, "Failed") {
        "Failed"
    } else if has(o, "/metadata/deletionTimestamp") {
        "Terminating"
    } else if condition_true(conditions, "Suspended") {
        "Suspended"
    } else if condition_true(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let (names, images) = container_cells(items(o, "/spec/template/spec/containers"));
    vec![
        json!(name(o)),
        json!(status),
        json!(completions),
        json!(duration),
        json!(age(o, now)),
        names,
        images,
        json!(format_selector(at(o, "/spec/selector"))),
    ]
    .into()
}

const CRON_JOB: &[Col] = &[
    NAME,
    ("Schedule", "string", 0, "The cron schedule."),
    ("Timezone", "string", 0, "The time zone of the schedule."),
    ("Suspend", "boolean", 0, "Whether new runs are suspended."),
    ("Active", "integer", 0, "Running jobs."),
    (
        "Last Schedule",
        "string",
        0,
        "Time since a job was last scheduled.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

fn cron_job(o: &Value, now: DateTime<Utc>) -> Row {
    let last = match at(o, "/status/lastScheduleTime") {
        Some(t) => since(Some(t), now),
        None => "<none>".into(),
    };
    // The API server defaults spec.suspend to false.
    let suspend = at(o, "/spec/suspend")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let (names, images) =
        container_cells(items(o, "/spec/jobTemplate/spec/template/spec/containers"));
    vec![
        json!(name(o)),
        json!(text(o, "/spec/schedule")),
        json!(or(text(o, "/spec/timeZone"), "<none>")),
        json!(bool_text(suspend)),
        json!(count(o, "/status/active")),
        json!(last),
        json!(age(o, now)),
        names,
        images,
        json!(format_selector(at(o, "/spec/jobTemplate/spec/selector"))),
    ]
    .into()
}

// ---- other groups -------------------------------------------------------------------------

const LEASE: &[Col] = &[
    NAME,
    ("Holder", "string", 0, "The current holder of the lease."),
    AGE,
];

fn lease(o: &Value, now: DateTime<Utc>) -> Row {
    vec![
        json!(name(o)),
        json!(text(o, "/spec/holderIdentity")),
        json!(age(o, now)),
    ]
    .into()
}

const INGRESS: &[Col] = &[
    NAME,
    ("Class", "string", 0, "The ingress class."),
    ("Hosts", "string", 0, "Hosts the rules match."),
    ("Address", "string", 0, "Load-balancer addresses."),
    ("Ports", "string", 0, "Ports served."),
    AGE,
];

fn ingress(o: &Value, now: DateTime<Utc>) -> Row {
    const MAX: usize = 3;
    let rules = items(o, "/spec/rules");
    let mut hosts: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if hosts.len() == MAX {
            more = true;
        }
        let host = text(rule, "/host");
        if !more && !host.is_empty() {
            hosts.push(host);
        }
    }
    let hosts = if hosts.is_empty() {
        "*".to_string()
    } else if more {
        format!("{} + {} more...", hosts.join(","), rules.len() - MAX)
    } else {
        hosts.join(",")
    };
    let ports = if items(o, "/spec/tls").is_empty() {
        "80"
    } else {
        "80, 443"
    };
    vec![
        json!(name(o)),
        json!(or(text(o, "/spec/ingressClassName"), "<none>")),
        json!(hosts),
        json!(load_balancer_addresses(o, "/status/loadBalancer/ingress")),
        json!(ports),
        json!(age(o, now)),
    ]
    .into()
}

const ROLE_BINDING: &[Col] = &[
    NAME,
    ("Role", "string", 0, "The role bound."),
    AGE,
    ("Users", "string", 1, "Users bound."),
    ("Groups", "string", 1, "Groups bound."),
    ("ServiceAccounts", "string", 1, "Service accounts bound."),
];

fn role_binding(o: &Value, now: DateTime<Utc>) -> Row {
    let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
    for s in items(o, "/subjects") {
        let n = text(s, "/name");
        match text(s, "/kind") {
            "User" => users.push(n.to_string()),
            "Group" => groups.push(n.to_string()),
            "ServiceAccount" => sas.push(match text(s, "/namespace") {
                "" => n.to_string(),
                ns => format!("{ns}/{n}"),
            }),
            _ => {}
        }
    }
    vec![
        json!(name(o)),
        json!(format!(
            "{}/{}",
            text(o, "/roleRef/kind"),
            text(o, "/roleRef/name")
        )),
        json!(age(o, now)),
        json!(users.join(", ")),
        json!(groups.join(", ")),
        json!(sas.join(", ")),
    ]
    .into()
}

const PRIORITY_CLASS: &[Col] = &[
    NAME,
    ("Value", "integer", 0, "The priority value."),
    (
        "Global-Default",
        "boolean",
        0,
        "Whether this is the default class.",
    ),
    AGE,
    ("PreemptionPolicy", "string", 0, "The preemption policy."),
];

fn priority_class(o: &Value, now: DateTime<Utc>) -> Row {
    vec![
        json!(name(o)),
        json!(int(o, "/value")),
        json!(at(o, "/globalDefault")
            .and_then(Value::as_bool)
            .unwrap_or(false)),
        json!(age(o, now)),
        json!(text(o, "/preemptionPolicy")),
    ]
    .into()
}

const PDB: &[Col] = &[
    NAME,
    (
        "Min Available",
        "string",
        0,
        "Pods that must stay available.",
    ),
    (
        "Max Unavailable",
        "string",
        0,
        "Pods that may be unavailable.",
    ),
    (
        "Allowed Disruptions",
        "integer",
        0,
        "Disruptions currently allowed.",
    ),
    AGE,
];

fn pdb(o: &Value, now: DateTime<Utc>) -> Row {
    let int_or_string = |pointer: &str| match at(o, pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    };
    vec![
        json!(name(o)),
        json!(int_or_string("/spec/minAvailable")),
        json!(int_or_string("/spec/maxUnavailable")),
        json!(int(o, "/status/disruptionsAllowed")),
        json!(age(o, now)),
    ]
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_format_like_kubernetes() {
        let sel = json!({
            "matchLabels": {"b": "2", "a": "1"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "tier", "operator": "NotIn", "values": ["x"]},
                {"key": "c", "operator": "Exists"},
                {"key": "d", "operator": "DoesNotExist"}
            ]
        });
        assert_eq!(
            format_selector(Some(&sel)),
            "a=1,b=2,c,!d,env in (dev,prod),tier notin (x)"
        );
        assert_eq!(format_selector(Some(&json!({}))), "<none>");
        assert_eq!(format_selector(None), "<none>");
        let bad = json!({"matchExpressions": [{"key": "k", "operator": "Near"}]});
        assert_eq!(format_selector(Some(&bad)), "<error>");
        assert_eq!(format_labels(Some(&json!({"z": "1", "a": "2"}))), "a=2,z=1");
        assert_eq!(format_labels(Some(&json!({}))), "<none>");
    }

    #[test]
    fn access_modes_abbreviate_in_order() {
        assert_eq!(
            access_modes(&[json!("ReadWriteMany"), json!("ReadWriteOnce")]),
            "RWO,RWX"
        );
        assert_eq!(access_modes(&[]), "");
    }

    #[test]
    fn every_printer_has_as_many_cells_as_columns() {
        let now = Utc::now();
        let empty = json!({"metadata": {"name": "x"}});
        for (g, r) in [
            ("", "pods"),
            ("", "namespaces"),
            ("", "configmaps"),
            ("", "secrets"),
            ("", "serviceaccounts"),
            ("", "services"),
            ("", "endpoints"),
            ("", "events"),
            ("", "nodes"),
            ("", "persistentvolumeclaims"),
            ("", "persistentvolumes"),
            ("", "resourcequotas"),
            ("", "replicationcontrollers"),
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
            ("apps", "daemonsets"),
            ("apps", "controllerrevisions"),
            ("batch", "jobs"),
            ("batch", "cronjobs"),
            ("coordination.k8s.io", "leases"),
            ("networking.k8s.io", "ingresses"),
            ("rbac.authorization.k8s.io", "rolebindings"),
            ("rbac.authorization.k8s.io", "clusterrolebindings"),
            ("scheduling.k8s.io", "priorityclasses"),
            ("policy", "poddisruptionbudgets"),
            ("events.k8s.io", "events"),
        ] {
            let printer = lookup(g, r).unwrap_or_else(|| panic!("{g}/{r}"));
            assert_eq!(
                printer.row(&empty, now).cells.len(),
                printer.columns().len(),
                "{g}/{r}"
            );
        }
        assert!(lookup("example.com", "widgets").is_none());
    }
}
