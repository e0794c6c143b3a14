//! The workload controllers of kube-controller-manager, for one node: ReplicaSet, Deployment,
//! StatefulSet, DaemonSet and Job. Each pass reads the cache and writes only what differs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use metacontroller_merge::LabelSelector;
use rand::Rng;
use serde_json::{json, Map, Value};

use crate::ops::{controller_ref, now, Ops};
use crate::world::{str_at, Kind};
use crate::NODE_NAME;

// ----- shared -----

pub fn is_terminal(pod: &Value) -> bool {
    matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

pub fn is_active(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_none() && !is_terminal(pod)
}

fn ready_since(pod: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    let c = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)?
        .iter()
        .find(|c| str_at(c, "/type") == "Ready" && str_at(c, "/status") == "True")?;
    chrono::DateTime::parse_from_rfc3339(str_at(c, "/lastTransitionTime"))
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
        .or(Some(chrono::Utc::now()))
}

pub fn is_ready(pod: &Value) -> bool {
    is_active(pod) && ready_since(pod).is_some()
}

/// Ready for at least `min_ready` seconds.
pub fn is_available(pod: &Value, min_ready: i64) -> bool {
    is_active(pod)
        && ready_since(pod)
            .is_some_and(|t| t + chrono::Duration::seconds(min_ready) <= chrono::Utc::now())
}

fn int(v: &Value, p: &str) -> Option<i64> {
    v.pointer(p).and_then(Value::as_i64)
}

/// Five characters of Kubernetes' random-name alphabet.
fn suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

/// A hash of a pod template in the form of `pod-template-hash` values (FNV-1a over the
/// template with its object keys sorted, encoded with the alphabet Kubernetes uses for them).
pub fn template_hash(template: &Value) -> String {
    fn feed(h: &mut u32, bytes: &[u8]) {
        for b in bytes {
            *h ^= u32::from(*b);
            *h = h.wrapping_mul(0x0100_0193);
        }
    }
    fn walk(h: &mut u32, v: &Value) {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                feed(h, b"{");
                for k in keys {
                    feed(h, k.as_bytes());
                    feed(h, b":");
                    walk(h, &m[k]);
                    feed(h, b",");
                }
                feed(h, b"}");
            }
            Value::Array(a) => {
                feed(h, b"[");
                for x in a {
                    walk(h, x);
                    feed(h, b",");
                }
                feed(h, b"]");
            }
            other => feed(h, other.to_string().as_bytes()),
        }
    }
    let mut h: u32 = 0x811c_9dc5;
    walk(&mut h, template);
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut out = String::new();
    for d in h.to_string().bytes() {
        out.push(ALPHABET[usize::from(d - b'0') % ALPHABET.len()] as char);
    }
    out
}

/// `v` without null fields (as Go decodes them: `creationTimestamp: null` is no timestamp).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), without_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// A replica set's pod template without its `pod-template-hash` label.
fn template_without_hash(rs: &Value) -> Value {
    let mut t = without_nulls(rs.pointer("/spec/template").unwrap_or(&Value::Null));
    if let Some(l) = t
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        l.remove("pod-template-hash");
    }
    t
}

/// A new pod from `template`, controlled by `owner`.
fn pod_from(owner: &Value, template: &Value, name: String, labels: &[(&str, String)]) -> Value {
    let mut meta = template
        .get("metadata")
        .cloned()
        .unwrap_or_else(|| json!({}));
    meta["name"] = json!(name);
    meta["namespace"] = json!(str_at(owner, "/metadata/namespace"));
    meta["ownerReferences"] = json!([controller_ref(owner)]);
    if meta.get("labels").is_none_or(Value::is_null) {
        meta["labels"] = json!({});
    }
    for (k, v) in labels {
        meta["labels"][*k] = json!(v);
    }
    json!({"metadata": meta, "spec": template.get("spec").cloned().unwrap_or_else(|| json!({}))})
}

fn selector_of(obj: &Value) -> Option<LabelSelector> {
    LabelSelector::from_json(obj.pointer("/spec/selector")?).ok()
}

fn labels(o: &Value) -> Option<&Map<String, Value>> {
    o.pointer("/metadata/labels").and_then(Value::as_object)
}

/// Pods in the owner's namespace that it controls and its selector matches.
fn owned_pods(ops: &Ops, owner: &Value) -> Vec<Value> {
    let ns = str_at(owner, "/metadata/namespace");
    let uid = str_at(owner, "/metadata/uid");
    let sel = selector_of(owner);
    ops.world
        .owned_by(Kind::Pod, ns, uid)
        .into_iter()
        .filter(|p| sel.as_ref().is_none_or(|s| s.matches(labels(p))))
        .collect()
}

/// Writes the status fields that differ; a `null` stands for an absent field.
async fn set_status(ops: &Ops, kind: Kind, obj: &Value, desired: Value) {
    let current = obj.get("status").cloned().unwrap_or(Value::Null);
    let mut patch = Map::new();
    for (k, v) in desired.as_object().into_iter().flatten() {
        let cur = current.get(k.as_str()).unwrap_or(&Value::Null);
        if cur != v {
            patch.insert(k.clone(), v.clone());
        }
    }
    if patch.is_empty() {
        return;
    }
    if let Err(error) = ops
        .merge(kind, obj, json!({"status": Value::Object(patch)}), true)
        .await
    {
        tracing::debug!(%error, kind = kind.kind(), "status update failed");
    }
}

fn nonzero(n: i64) -> Value {
    if n == 0 {
        Value::Null
    } else {
        json!(n)
    }
}

/// A condition keeping its timestamps while status and reason stay the same.
fn condition(
    obj: &Value,
    ty: &str,
    status: bool,
    reason: &str,
    message: &str,
    update_time: bool,
) -> Value {
    let status = if status { "True" } else { "False" };
    let old = obj
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| str_at(c, "/type") == ty));
    let stamp = now();
    let same = old.is_some_and(|c| str_at(c, "/status") == status);
    let same_reason = same && old.is_some_and(|c| str_at(c, "/reason") == reason);
    let transition = match old {
        Some(c) if same => c.get("lastTransitionTime").cloned().unwrap_or(json!(stamp)),
        _ => json!(stamp),
    };
    let mut c = json!({"type": ty, "status": status, "reason": reason, "message": message,
        "lastTransitionTime": transition});
    if update_time {
        c["lastUpdateTime"] = match old {
            Some(o) if same_reason => o.get("lastUpdateTime").cloned().unwrap_or(json!(stamp)),
            _ => json!(stamp),
        };
    } else {
        c["lastProbeTime"] = match old {
            Some(o) if same => o.get("lastProbeTime").cloned().unwrap_or(json!(stamp)),
            _ => json!(stamp),
        };
    }
    c
}

async fn create_pod(ops: &Ops, owner: &Value, pod: Value, component: &str) -> bool {
    let kind = owner
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    match ops.create(Kind::Pod, pod).await {
        Ok(p) => {
            let msg = format!("Created pod: {}", str_at(&p, "/metadata/name"));
            ops.event(owner, component, "Normal", "SuccessfulCreate", &msg)
                .await;
            true
        }
        Err(error) => {
            let msg = format!("Error creating: {error}");
            tracing::debug!(%error, kind, "creating a pod failed");
            ops.event(owner, component, "Warning", "FailedCreate", &msg)
                .await;
            false
        }
    }
}

async fn delete_pod(ops: &Ops, owner: &Value, pod: &Value, component: &str) {
    if ops.delete(Kind::Pod, pod, None).await.is_ok() {
        let msg = format!("Deleted pod: {}", str_at(pod, "/metadata/name"));
        ops.event(owner, component, "Normal", "SuccessfulDelete", &msg)
            .await;
    }
}

fn min_ready(obj: &Value) -> i64 {
    int(obj, "/spec/minReadySeconds").unwrap_or(0)
}

// ----- ReplicaSet -----

pub async fn replicasets(ops: &Ops) {
    for rs in ops.world.list(Kind::ReplicaSet, None) {
        if rs.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let want = int(&rs, "/spec/replicas").unwrap_or(1).max(0) as usize;
        let mut active: Vec<Value> = owned_pods(ops, &rs).into_iter().filter(is_active).collect();
        if active.len() < want {
            for _ in active.len()..want {
                let name = format!("{}-{}", str_at(&rs, "/metadata/name"), suffix());
                let tmpl = rs.pointer("/spec/template").cloned().unwrap_or_default();
                if !create_pod(
                    ops,
                    &rs,
                    pod_from(&rs, &tmpl, name, &[]),
                    "replicaset-controller",
                )
                .await
                {
                    break;
                }
            }
        } else if active.len() > want {
            // Unscheduled, then pending, then not ready, then the newest go first.
            active.sort_by_key(|p| {
                (
                    !str_at(p, "/spec/nodeName").is_empty(),
                    str_at(p, "/status/phase") == "Running",
                    is_ready(p),
                    std::cmp::Reverse(str_at(p, "/metadata/creationTimestamp").to_string()),
                )
            });
            for p in &active[..active.len() - want] {
                delete_pod(ops, &rs, p, "replicaset-controller").await;
            }
        }
        let active: Vec<Value> = owned_pods(ops, &rs).into_iter().filter(is_active).collect();
        let tmpl_labels = rs
            .pointer("/spec/template/metadata/labels")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let fully = active
            .iter()
            .filter(|p| {
                tmpl_labels
                    .iter()
                    .all(|(k, v)| labels(p).and_then(|l| l.get(k)) == Some(v))
            })
            .count() as i64;
        let ready = active.iter().filter(|p| is_ready(p)).count() as i64;
        let available = active
            .iter()
            .filter(|p| is_available(p, min_ready(&rs)))
            .count() as i64;
        let status = json!({
            "replicas": active.len(),
            "fullyLabeledReplicas": nonzero(fully),
            "readyReplicas": nonzero(ready),
            "availableReplicas": nonzero(available),
            "observedGeneration": int(&rs, "/metadata/generation").unwrap_or(1),
        });
        set_status(ops, Kind::ReplicaSet, &rs, status).await;
    }
}

// ----- Deployment -----

const REVISION: &str = "deployment.kubernetes.io/revision";

fn revision(o: &Value) -> i64 {
    str_at(
        o,
        "/metadata/annotations/deployment.kubernetes.io~1revision",
    )
    .parse()
    .unwrap_or(0)
}

/// An int-or-percent of `total`, rounded up or down.
fn scaled(v: Option<&Value>, total: i64, up: bool, default: i64) -> i64 {
    match v {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(default),
        Some(Value::String(s)) => match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
            Some(p) if up => (p * total + 99) / 100,
            Some(p) => p * total / 100,
            None => s.parse().unwrap_or(default),
        },
        _ => default,
    }
}

pub async fn deployments(ops: &Ops) {
    for d in ops.world.list(Kind::Deployment, None) {
        if d.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        deployment(ops, &d).await;
    }
}

async fn deployment(ops: &Ops, d: &Value) {
    let ns = str_at(d, "/metadata/namespace");
    let name = str_at(d, "/metadata/name");
    let uid = str_at(d, "/metadata/uid");
    let replicas = int(d, "/spec/replicas").unwrap_or(1).max(0);
    let template = without_nulls(d.pointer("/spec/template").unwrap_or(&Value::Null));
    let hash = template_hash(&template);
    let mut rses = ops.world.owned_by(Kind::ReplicaSet, ns, uid);
    rses.sort_by_key(|r| {
        (
            revision(r),
            str_at(r, "/metadata/creationTimestamp").to_string(),
        )
    });
    let max_rev = rses.iter().map(revision).max().unwrap_or(0);
    let is_new = |r: &Value| template_without_hash(r) == template;
    let paused = d.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
    let recreate = str_at(d, "/spec/strategy/type") == "Recreate";
    let olds_running = rses
        .iter()
        .filter(|r| !is_new(r))
        .any(|r| int(r, "/spec/replicas").unwrap_or(0) > 0);
    let mut new_rs = rses.iter().find(|r| is_new(r)).cloned();
    if new_rs.is_none() && !paused {
        let mut tmpl = template.clone();
        tmpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
        let mut selector = d.pointer("/spec/selector").cloned().unwrap_or_default();
        selector["matchLabels"]["pod-template-hash"] = json!(hash);
        let mut rs_labels = template
            .pointer("/metadata/labels")
            .cloned()
            .unwrap_or_else(|| json!({}));
        rs_labels["pod-template-hash"] = json!(hash);
        let initial = if olds_running { 0 } else { replicas };
        let surge = max_surge(d, replicas);
        let rs = json!({
            "metadata": {
                "name": format!("{name}-{hash}"),
                "namespace": ns,
                "labels": rs_labels,
                "annotations": {
                    REVISION: (max_rev + 1).to_string(),
                    "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
                    "deployment.kubernetes.io/max-replicas": (replicas + surge).to_string(),
                },
                "ownerReferences": [controller_ref(d)],
            },
            "spec": {
                "replicas": initial,
                "minReadySeconds": min_ready(d),
                "selector": selector,
                "template": tmpl,
            },
        });
        match ops.create(Kind::ReplicaSet, rs).await {
            Ok(rs) => {
                let msg = format!(
                    "Scaled up replica set {} from 0 to {initial}",
                    str_at(&rs, "/metadata/name")
                );
                ops.event(
                    d,
                    "deployment-controller",
                    "Normal",
                    "ScalingReplicaSet",
                    &msg,
                )
                .await;
                rses.push(rs.clone());
                new_rs = Some(rs);
            }
            Err(error) => {
                tracing::debug!(%error, "creating a replica set failed");
                return;
            }
        }
    } else if let Some(rs) = new_rs.as_ref().filter(|r| revision(r) < max_rev) {
        // A rollback to an earlier template: that replica set becomes the newest revision.
        let patch = json!({"metadata": {"annotations": {REVISION: (max_rev + 1).to_string()}}});
        if let Ok(rs) = ops.merge(Kind::ReplicaSet, rs, patch, false).await {
            new_rs = Some(rs);
        }
    }
    let olds: Vec<Value> = rses.iter().filter(|r| !is_new(r)).cloned().collect();
    let spec_of = |r: &Value| int(r, "/spec/replicas").unwrap_or(0);
    let avail_of = |r: &Value| int(r, "/status/availableReplicas").unwrap_or(0);
    if !paused {
        if let Some(new) = new_rs.clone() {
            if recreate {
                let mut old_pods = 0;
                for o in &olds {
                    if spec_of(o) > 0 {
                        scale(ops, d, o, 0).await;
                    }
                    old_pods += owned_pods(ops, o).len();
                }
                if old_pods == 0 && spec_of(&new) != replicas {
                    scale(ops, d, &new, replicas).await;
                }
            } else {
                let surge = max_surge(d, replicas);
                let mut unavailable = scaled(
                    d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
                    replicas,
                    false,
                    0,
                );
                if surge == 0 && unavailable == 0 {
                    unavailable = 1;
                }
                let old_total: i64 = olds.iter().map(spec_of).sum();
                let mut new_spec = spec_of(&new);
                // Scale the new replica set up within the surge (or straight to size).
                let target = if old_total == 0 {
                    replicas
                } else if new_spec < replicas {
                    let room = replicas + surge - old_total - new_spec;
                    (new_spec + room.max(0)).min(replicas)
                } else {
                    replicas
                };
                if target != new_spec {
                    scale(ops, d, &new, target).await;
                    new_spec = target;
                }
                // Scale old replica sets down while enough pods stay available.
                let min_available = replicas - unavailable;
                let new_unavailable = (new_spec - avail_of(&new)).max(0);
                let mut budget = old_total + new_spec - min_available - new_unavailable;
                for o in &olds {
                    if budget <= 0 {
                        break;
                    }
                    let unhealthy = (spec_of(o) - avail_of(o)).max(0);
                    let cut = unhealthy.min(budget);
                    if cut > 0 {
                        scale(ops, d, o, spec_of(o) - cut).await;
                        budget -= cut;
                    }
                }
                let all_available: i64 = avail_of(&new) + olds.iter().map(avail_of).sum::<i64>();
                let mut can_remove = all_available - min_available;
                for o in &olds {
                    let current = ops
                        .world
                        .get(Kind::ReplicaSet, &crate::world::key_of(o))
                        .unwrap_or_else(|| o.clone());
                    let cut = spec_of(&current).min(can_remove).min(budget.max(0));
                    if cut > 0 {
                        scale(ops, d, &current, spec_of(&current) - cut).await;
                        can_remove -= cut;
                        budget -= cut;
                    }
                }
            }
        }
        // Old replica sets beyond the history limit go.
        let limit = int(d, "/spec/revisionHistoryLimit").unwrap_or(10).max(0) as usize;
        let idle: Vec<&Value> = olds
            .iter()
            .filter(|o| spec_of(o) == 0 && int(o, "/status/replicas").unwrap_or(0) == 0)
            .collect();
        if idle.len() > limit {
            for o in &idle[..idle.len() - limit] {
                let _ = ops.delete(Kind::ReplicaSet, o, None).await;
            }
        }
    }
    // Status.
    let rses = ops.world.owned_by(Kind::ReplicaSet, ns, uid);
    let sum = |p: &str| rses.iter().map(|r| int(r, p).unwrap_or(0)).sum::<i64>();
    let total_spec = sum("/spec/replicas");
    let available = sum("/status/availableReplicas");
    let updated = new_rs
        .as_ref()
        .and_then(|n| {
            rses.iter()
                .find(|r| str_at(r, "/metadata/uid") == str_at(n, "/metadata/uid"))
        })
        .map(|n| int(n, "/status/replicas").unwrap_or(0))
        .unwrap_or(0);
    let surge = max_surge(d, replicas);
    let unavailable_allowed = scaled(
        d.pointer("/spec/strategy/rollingUpdate/maxUnavailable"),
        replicas,
        false,
        0,
    );
    let min_ok = if recreate {
        replicas
    } else {
        replicas - unavailable_allowed.max(if surge == 0 { 1 } else { 0 })
    };
    let available_cond = if available >= min_ok {
        condition(
            d,
            "Available",
            true,
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            true,
        )
    } else {
        condition(
            d,
            "Available",
            false,
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            true,
        )
    };
    let new_name = new_rs
        .as_ref()
        .map(|r| str_at(r, "/metadata/name").to_string())
        .unwrap_or_default();
    let old_pods: i64 = rses
        .iter()
        .filter(|r| str_at(r, "/metadata/name") != new_name)
        .map(|r| int(r, "/status/replicas").unwrap_or(0))
        .sum();
    let complete = updated == replicas && available >= replicas && old_pods == 0;
    let progressing = if complete {
        condition(
            d,
            "Progressing",
            true,
            "NewReplicaSetAvailable",
            &format!("ReplicaSet {new_name:?} has successfully progressed."),
            true,
        )
    } else {
        condition(
            d,
            "Progressing",
            true,
            "ReplicaSetUpdated",
            &format!("ReplicaSet {new_name:?} is progressing."),
            true,
        )
    };
    let status = json!({
        "observedGeneration": int(d, "/metadata/generation").unwrap_or(1),
        "replicas": nonzero(sum("/status/replicas")),
        "updatedReplicas": nonzero(updated),
        "readyReplicas": nonzero(sum("/status/readyReplicas")),
        "availableReplicas": nonzero(available),
        "unavailableReplicas": nonzero((total_spec - available).max(0)),
        "conditions": [available_cond, progressing],
    });
    if let Some(new) = &new_rs {
        let rev = revision(new).to_string();
        if str_at(
            d,
            "/metadata/annotations/deployment.kubernetes.io~1revision",
        ) != rev
        {
            // kube-controller-manager writes this through the status subresource, which on
            // kube-apiserver keeps a Deployment's annotation changes; the embedded server keeps
            // only `.status` there, so it is written to the object (bumping its generation).
            let _ = ops
                .merge(
                    Kind::Deployment,
                    d,
                    json!({"metadata": {"annotations": {REVISION: rev}}}),
                    false,
                )
                .await;
        }
    }
    let d = ops
        .world
        .get(Kind::Deployment, &crate::world::key_of(d))
        .unwrap_or_else(|| d.clone());
    set_status(ops, Kind::Deployment, &d, status).await;
}

fn max_surge(d: &Value, replicas: i64) -> i64 {
    if str_at(d, "/spec/strategy/type") == "Recreate" {
        return 0;
    }
    scaled(
        d.pointer("/spec/strategy/rollingUpdate/maxSurge"),
        replicas,
        true,
        0,
    )
}

async fn scale(ops: &Ops, d: &Value, rs: &Value, to: i64) {
    let from = int(rs, "/spec/replicas").unwrap_or(0);
    let patch = json!({"spec": {"replicas": to}, "metadata": {"annotations": {
        "deployment.kubernetes.io/desired-replicas": int(d, "/spec/replicas").unwrap_or(1).to_string(),
    }}});
    if ops.merge(Kind::ReplicaSet, rs, patch, false).await.is_ok() {
        let dir = if to > from { "up" } else { "down" };
        let msg = format!(
            "Scaled {dir} replica set {} from {from} to {to}",
            str_at(rs, "/metadata/name")
        );
        ops.event(
            d,
            "deployment-controller",
            "Normal",
            "ScalingReplicaSet",
            &msg,
        )
        .await;
    }
}

// ----- Job -----

const INDEX: &str = "batch.kubernetes.io/job-completion-index";

fn pod_index(p: &Value) -> Option<i64> {
    str_at(
        p,
        "/metadata/annotations/batch.kubernetes.io~1job-completion-index",
    )
    .parse()
    .ok()
}

/// `0-2,4` for {0,1,2,4}.
pub fn index_ranges(set: &BTreeSet<i64>) -> String {
    let mut parts = Vec::new();
    let mut iter = set.iter().peekable();
    while let Some(&start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&&(end + 1)) {
            end += 1;
            iter.next();
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

fn finished_at(p: &Value) -> Option<chrono::DateTime<chrono::Utc>> {
    p.pointer("/status/containerStatuses")
        .and_then(Value::as_array)?
        .iter()
        .filter_map(|s| {
            s.pointer("/state/terminated/finishedAt")
                .and_then(Value::as_str)
        })
        .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .max()
}

fn job_finished(j: &Value) -> bool {
    j.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| {
            matches!(str_at(c, "/type"), "Complete" | "Failed") && str_at(c, "/status") == "True"
        })
}

pub async fn jobs(ops: &Ops) {
    for j in ops.world.list(Kind::Job, None) {
        if j.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        job(ops, &j).await;
    }
}

async fn job(ops: &Ops, j: &Value) {
    let pods = owned_pods(ops, j);
    let active: Vec<&Value> = pods.iter().filter(|p| is_active(p)).collect();
    if job_finished(j) {
        for p in active {
            delete_pod(ops, j, p, "job-controller").await;
        }
        return;
    }
    let succeeded: Vec<&Value> = pods
        .iter()
        .filter(|p| str_at(p, "/status/phase") == "Succeeded")
        .collect();
    let failed_pods: Vec<&Value> = pods
        .iter()
        .filter(|p| str_at(p, "/status/phase") == "Failed")
        .collect();
    let restarts: i64 = pods
        .iter()
        .filter(|p| str_at(p, "/spec/restartPolicy") == "OnFailure")
        .flat_map(|p| {
            p.pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .map(|s| int(&s, "/restartCount").unwrap_or(0))
        .sum();
    let failed = failed_pods.len() as i64 + restarts;
    let parallelism = int(j, "/spec/parallelism").unwrap_or(1).max(0);
    let completions = int(j, "/spec/completions");
    let backoff_limit = int(j, "/spec/backoffLimit").unwrap_or(6);
    let indexed = str_at(j, "/spec/completionMode") == "Indexed";
    let suspended = j.pointer("/spec/suspend").and_then(Value::as_bool) == Some(true);
    let start_time = match str_at(j, "/status/startTime") {
        "" if suspended => Value::Null,
        "" => json!(now()),
        t => json!(t),
    };
    let mut conditions: Vec<Value> = Vec::new();
    let mut completion_time = Value::Null;
    let mut done_indexes = BTreeSet::new();
    for p in &succeeded {
        if let Some(i) = pod_index(p) {
            done_indexes.insert(i);
        }
    }
    let name = str_at(j, "/metadata/name");
    if suspended {
        for p in &active {
            delete_pod(ops, j, p, "job-controller").await;
        }
        conditions.push(condition(
            j,
            "Suspended",
            true,
            "JobSuspended",
            "Job suspended",
            false,
        ));
    } else if failed > backoff_limit {
        for p in &active {
            delete_pod(ops, j, p, "job-controller").await;
        }
        let msg = "Job has reached the specified backoff limit";
        conditions.push(condition(
            j,
            "FailureTarget",
            true,
            "BackoffLimitExceeded",
            msg,
            false,
        ));
        conditions.push(condition(
            j,
            "Failed",
            true,
            "BackoffLimitExceeded",
            msg,
            false,
        ));
        ops.event(j, "job-controller", "Warning", "BackoffLimitExceeded", msg)
            .await;
    } else {
        let complete = if indexed {
            completions.is_some_and(|c| (0..c).all(|i| done_indexes.contains(&i)))
        } else {
            match completions {
                Some(c) => succeeded.len() as i64 >= c,
                None => !succeeded.is_empty() && active.is_empty(),
            }
        };
        if complete {
            let msg = "Reached expected number of succeeded pods";
            conditions.push(condition(
                j,
                "SuccessCriteriaMet",
                true,
                "CompletionsReached",
                msg,
                false,
            ));
            conditions.push(condition(
                j,
                "Complete",
                true,
                "CompletionsReached",
                msg,
                false,
            ));
            completion_time = json!(now());
            ops.event(j, "job-controller", "Normal", "Completed", "Job completed")
                .await;
        } else {
            // Pods that failed hold new ones back: 10s, doubling, up to six minutes.
            let last_failure = failed_pods.iter().filter_map(|p| finished_at(p)).max();
            let delay = if failed_pods.is_empty() {
                0
            } else {
                (10i64 << (failed_pods.len() as u32 - 1).min(6)).min(360)
            };
            let may_create = last_failure
                .is_none_or(|t| t + chrono::Duration::seconds(delay) <= chrono::Utc::now());
            let template = j.pointer("/spec/template").cloned().unwrap_or_default();
            if indexed {
                let c = completions.unwrap_or(1);
                let running: BTreeSet<i64> = active.iter().filter_map(|p| pod_index(p)).collect();
                let room = (parallelism - active.len() as i64).max(0);
                let pending: Vec<i64> = (0..c)
                    .filter(|i| !done_indexes.contains(i) && !running.contains(i))
                    .take(room as usize)
                    .collect();
                if may_create {
                    for i in pending {
                        let mut pod = pod_from(
                            j,
                            &template,
                            format!("{name}-{i}-{}", suffix()),
                            &[(INDEX, i.to_string())],
                        );
                        pod["metadata"]["annotations"][INDEX] = json!(i.to_string());
                        pod["spec"]["hostname"] = json!(format!("{name}-{i}"));
                        for c in pod["spec"]["containers"]
                            .as_array_mut()
                            .into_iter()
                            .flatten()
                        {
                            let env = c
                                .as_object_mut()
                                .map(|m| m.entry("env").or_insert_with(|| json!([])));
                            if let Some(Value::Array(env)) = env {
                                env.push(json!({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                                    "apiVersion": "v1",
                                    "fieldPath": format!("metadata.annotations['{INDEX}']")}}}));
                            }
                        }
                        if !create_pod(ops, j, pod, "job-controller").await {
                            break;
                        }
                    }
                }
            } else {
                let want = match completions {
                    Some(c) => parallelism.min((c - succeeded.len() as i64).max(0)),
                    None if succeeded.is_empty() => parallelism,
                    None => 0,
                };
                let have = active.len() as i64;
                if have < want && may_create {
                    for _ in have..want {
                        let pod = pod_from(j, &template, format!("{name}-{}", suffix()), &[]);
                        if !create_pod(ops, j, pod, "job-controller").await {
                            break;
                        }
                    }
                } else if have > want {
                    for p in &active[..(have - want) as usize] {
                        delete_pod(ops, j, p, "job-controller").await;
                    }
                }
            }
        }
    }
    let pods = owned_pods(ops, j);
    let active_now = pods.iter().filter(|p| is_active(p)).count() as i64;
    let ready = pods.iter().filter(|p| is_ready(p)).count() as i64;
    let mut status = json!({
        "startTime": start_time,
        "active": nonzero(active_now),
        "ready": ready,
        "succeeded": nonzero(succeeded.len() as i64),
        "failed": nonzero(failed),
        "terminating": 0,
        "uncountedTerminatedPods": {},
    });
    if !conditions.is_empty() {
        status["conditions"] = json!(conditions);
    }
    if !completion_time.is_null() {
        status["completionTime"] = completion_time;
    }
    if indexed {
        let s = index_ranges(&done_indexes);
        status["completedIndexes"] = if s.is_empty() { Value::Null } else { json!(s) };
    }
    set_status(ops, Kind::Job, j, status).await;
}

// ----- StatefulSet -----

pub async fn statefulsets(ops: &Ops) {
    for s in ops.world.list(Kind::StatefulSet, None) {
        if s.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        statefulset(ops, &s).await;
    }
}

fn ordinal(set_name: &str, pod: &Value) -> Option<i64> {
    str_at(pod, "/metadata/name")
        .strip_prefix(set_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

async fn statefulset(ops: &Ops, s: &Value) {
    let ns = str_at(s, "/metadata/namespace");
    let name = str_at(s, "/metadata/name");
    let replicas = int(s, "/spec/replicas").unwrap_or(1).max(0);
    let template = s.pointer("/spec/template").cloned().unwrap_or_default();
    let update_rev = format!("{name}-{}", template_hash(&template));
    let parallel = str_at(s, "/spec/podManagementPolicy") == "Parallel";
    let on_delete = str_at(s, "/spec/updateStrategy/type") == "OnDelete";
    let partition = int(s, "/spec/updateStrategy/rollingUpdate/partition").unwrap_or(0);
    let claims: Vec<Value> = s
        .pointer("/spec/volumeClaimTemplates")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut by_ord: BTreeMap<i64, Value> = owned_pods(ops, s)
        .into_iter()
        .filter_map(|p| Some((ordinal(name, &p)?, p)))
        .collect();
    // Terminal pods are replaced.
    for (_, p) in by_ord.iter().filter(|(_, p)| is_terminal(p)) {
        delete_pod(ops, s, p, "statefulset-controller").await;
    }
    by_ord.retain(|_, p| !is_terminal(p));
    let selector_labels = s
        .pointer("/spec/selector/matchLabels")
        .cloned()
        .unwrap_or_else(|| json!({}));
    for i in 0..replicas {
        if by_ord.contains_key(&i) {
            if !parallel && !is_ready(&by_ord[&i]) {
                break;
            }
            continue;
        }
        let pod_name = format!("{name}-{i}");
        let mut pod = pod_from(
            s,
            &template,
            pod_name.clone(),
            &[
                ("controller-revision-hash", update_rev.clone()),
                ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                ("apps.kubernetes.io/pod-index", i.to_string()),
            ],
        );
        pod["spec"]["hostname"] = json!(pod_name);
        let service = str_at(s, "/spec/serviceName");
        if !service.is_empty() {
            pod["spec"]["subdomain"] = json!(service);
        }
        for c in &claims {
            let tmpl = str_at(c, "/metadata/name");
            let claim = format!("{tmpl}-{name}-{i}");
            if ops
                .world
                .get(Kind::Pvc, &(ns.to_string(), claim.clone()))
                .is_none()
            {
                let mut pvc = json!({"metadata": {"name": claim, "namespace": ns, "labels": selector_labels},
                    "spec": c.get("spec").cloned().unwrap_or_default()});
                if let Some(extra) = c.pointer("/metadata/labels").and_then(Value::as_object) {
                    for (k, v) in extra {
                        pvc["metadata"]["labels"][k] = v.clone();
                    }
                }
                match ops.create(Kind::Pvc, pvc).await {
                    Ok(_) => {
                        let msg = format!(
                            "create Claim {claim} Pod {pod_name} in StatefulSet {name} success"
                        );
                        ops.event(
                            s,
                            "statefulset-controller",
                            "Normal",
                            "SuccessfulCreate",
                            &msg,
                        )
                        .await;
                    }
                    Err(error) => tracing::debug!(%error, "creating a claim failed"),
                }
            }
            let vols = pod["spec"]
                .as_object_mut()
                .map(|m| m.entry("volumes").or_insert_with(|| json!([])));
            if let Some(Value::Array(vols)) = vols {
                vols.retain(|v| str_at(v, "/name") != tmpl);
                vols.push(json!({"name": tmpl, "persistentVolumeClaim": {"claimName": claim}}));
            }
        }
        let msg = format!("create Pod {pod_name} in StatefulSet {name} successful");
        if ops.create(Kind::Pod, pod).await.is_ok() {
            ops.event(
                s,
                "statefulset-controller",
                "Normal",
                "SuccessfulCreate",
                &msg,
            )
            .await;
        }
        if !parallel {
            break;
        }
    }
    let live: Vec<Value> = owned_pods(ops, s).into_iter().filter(is_active).collect();
    let all_ready = live.iter().all(is_ready);
    // Scale down from the highest ordinal.
    let mut extra: Vec<&Value> = live
        .iter()
        .filter(|p| ordinal(name, p).is_some_and(|o| o >= replicas))
        .collect();
    extra.sort_by_key(|p| std::cmp::Reverse(ordinal(name, p)));
    if parallel {
        for p in &extra {
            delete_pod(ops, s, p, "statefulset-controller").await;
        }
    } else if let Some(p) = extra.first().filter(|_| all_ready) {
        delete_pod(ops, s, p, "statefulset-controller").await;
    }
    // Rolling update: the highest outdated ordinal at or above the partition, one at a time.
    if !on_delete && extra.is_empty() && all_ready && live.len() as i64 == replicas {
        let mut outdated: Vec<&Value> = live
            .iter()
            .filter(|p| str_at(p, "/metadata/labels/controller-revision-hash") != update_rev)
            .filter(|p| ordinal(name, p).is_some_and(|o| o >= partition))
            .collect();
        outdated.sort_by_key(|p| std::cmp::Reverse(ordinal(name, p)));
        if let Some(p) = outdated.first() {
            delete_pod(ops, s, p, "statefulset-controller").await;
        }
    }
    let live: Vec<Value> = owned_pods(ops, s)
        .into_iter()
        .filter(|p| !is_terminal(p))
        .collect();
    let updated = live
        .iter()
        .filter(|p| str_at(p, "/metadata/labels/controller-revision-hash") == update_rev)
        .count() as i64;
    let current_rev = if updated == live.len() as i64 {
        update_rev.clone()
    } else {
        match str_at(s, "/status/currentRevision") {
            "" => update_rev.clone(),
            r => r.to_string(),
        }
    };
    let current = live
        .iter()
        .filter(|p| str_at(p, "/metadata/labels/controller-revision-hash") == current_rev)
        .count() as i64;
    let status = json!({
        "observedGeneration": int(s, "/metadata/generation").unwrap_or(1),
        "replicas": live.len(),
        "readyReplicas": nonzero(live.iter().filter(|p| is_ready(p)).count() as i64),
        "availableReplicas": live.iter().filter(|p| is_available(p, min_ready(s))).count(),
        "currentReplicas": nonzero(current),
        "updatedReplicas": nonzero(updated),
        "currentRevision": current_rev,
        "updateRevision": update_rev,
        "collisionCount": 0,
    });
    set_status(ops, Kind::StatefulSet, s, status).await;
}

/// A volume provisioner: every pending claim is bound at once, with the capacity it asked for.
pub async fn bind_claims(ops: &Ops) {
    for pvc in ops.world.list(Kind::Pvc, None) {
        if matches!(str_at(&pvc, "/status/phase"), "Bound")
            || pvc.pointer("/metadata/deletionTimestamp").is_some()
        {
            continue;
        }
        let storage = pvc
            .pointer("/spec/resources/requests/storage")
            .cloned()
            .unwrap_or(json!("1Gi"));
        let modes = pvc
            .pointer("/spec/accessModes")
            .cloned()
            .unwrap_or(json!(["ReadWriteOnce"]));
        let status = json!({"status": {"phase": "Bound", "accessModes": modes, "capacity": {"storage": storage}}});
        let _ = ops.merge(Kind::Pvc, &pvc, status, true).await;
    }
}

// ----- DaemonSet -----

const DS_TOLERATIONS: &[(&str, &str)] = &[
    ("node.kubernetes.io/not-ready", "NoExecute"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
    ("node.kubernetes.io/disk-pressure", "NoSchedule"),
    ("node.kubernetes.io/memory-pressure", "NoSchedule"),
    ("node.kubernetes.io/pid-pressure", "NoSchedule"),
    ("node.kubernetes.io/unschedulable", "NoSchedule"),
];

pub async fn daemonsets(ops: &Ops) {
    let node = ops
        .world
        .get(Kind::Node, &(String::new(), NODE_NAME.into()));
    let node_labels = node
        .as_ref()
        .and_then(|n| n.pointer("/metadata/labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for ds in ops.world.list(Kind::DaemonSet, None) {
        if ds.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let hash = template_hash(ds.pointer("/spec/template").unwrap_or(&Value::Null));
        let wanted = node.is_some()
            && ds
                .pointer("/spec/template/spec/nodeSelector")
                .and_then(Value::as_object)
                .is_none_or(|sel| sel.iter().all(|(k, v)| node_labels.get(k) == Some(v)));
        let pods = owned_pods(ops, &ds);
        for p in pods.iter().filter(|p| is_terminal(p)) {
            delete_pod(ops, &ds, p, "daemonset-controller").await;
        }
        let mut live: Vec<Value> = pods.into_iter().filter(is_active).collect();
        live.sort_by_key(|p| str_at(p, "/metadata/creationTimestamp").to_string());
        let rolling = str_at(&ds, "/spec/updateStrategy/type") != "OnDelete";
        if !wanted {
            for p in &live {
                delete_pod(ops, &ds, p, "daemonset-controller").await;
            }
        } else if live.is_empty() {
            let template = ds.pointer("/spec/template").cloned().unwrap_or_default();
            let generation = int(&ds, "/metadata/generation").unwrap_or(1).to_string();
            let name = format!("{}-{}", str_at(&ds, "/metadata/name"), suffix());
            let mut pod = pod_from(
                &ds,
                &template,
                name,
                &[
                    ("controller-revision-hash", hash.clone()),
                    ("pod-template-generation", generation),
                ],
            );
            pod["spec"]["affinity"] = json!({"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": [NODE_NAME]}]}]}}});
            let tol = pod["spec"]
                .as_object_mut()
                .map(|m| m.entry("tolerations").or_insert_with(|| json!([])));
            if let Some(Value::Array(tol)) = tol {
                for (key, effect) in DS_TOLERATIONS {
                    tol.push(json!({"key": key, "operator": "Exists", "effect": effect}));
                }
            }
            create_pod(ops, &ds, pod, "daemonset-controller").await;
        } else {
            for p in &live[1..] {
                delete_pod(ops, &ds, p, "daemonset-controller").await;
            }
            if rolling && str_at(&live[0], "/metadata/labels/controller-revision-hash") != hash {
                delete_pod(ops, &ds, &live[0], "daemonset-controller").await;
            }
        }
        let live: Vec<Value> = owned_pods(ops, &ds).into_iter().filter(is_active).collect();
        let scheduled = i64::from(!live.is_empty());
        let ready = live.iter().filter(|p| is_ready(p)).count() as i64;
        let available = live
            .iter()
            .filter(|p| is_available(p, min_ready(&ds)))
            .count() as i64;
        let updated = live
            .iter()
            .filter(|p| str_at(p, "/metadata/labels/controller-revision-hash") == hash)
            .count() as i64;
        let desired = i64::from(wanted);
        let status = json!({
            "observedGeneration": int(&ds, "/metadata/generation").unwrap_or(1),
            "currentNumberScheduled": scheduled,
            "desiredNumberScheduled": desired,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "updatedNumberScheduled": nonzero(updated),
            "numberAvailable": nonzero(available),
            "numberUnavailable": nonzero((desired - available).max(0)),
        });
        set_status(ops, Kind::DaemonSet, &ds, status).await;
    }
}

/// How long until a pass may have time-based work (available after minReadySeconds, a Job's
/// back-off): the loop wakes at least this often.
pub const TICK: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_ranges_compress() {
        let s: BTreeSet<i64> = [0, 1, 2, 4, 6, 7].into();
        assert_eq!(index_ranges(&s), "0-2,4,6-7");
        assert_eq!(index_ranges(&BTreeSet::new()), "");
    }

    #[test]
    fn int_or_percent() {
        assert_eq!(scaled(Some(&json!("25%")), 3, true, 0), 1);
        assert_eq!(scaled(Some(&json!("25%")), 3, false, 0), 0);
        assert_eq!(scaled(Some(&json!(2)), 3, false, 0), 2);
        assert_eq!(scaled(None, 3, false, 1), 1);
    }

    #[test]
    fn template_hashes_are_stable_and_differ() {
        let a = json!({"spec": {"containers": [{"name": "a", "image": "x"}]}});
        let b = json!({"spec": {"containers": [{"name": "a", "image": "y"}]}});
        assert_eq!(template_hash(&a), template_hash(&a));
        assert_ne!(template_hash(&a), template_hash(&b));
    }
}
