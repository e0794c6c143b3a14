//! Object metadata rules applied on every write, as kube-apiserver's generic registry does:
//! type and namespace checks, names and `generateName`, server-set fields, `generation`,
//! immutable fields, finalizer rules and the omission of empty metadata collections.
//!
//! Everything here is pure: it takes the request and the stored object as JSON values and
//! returns the object to persist or an [`ApiError`].

use rand::Rng;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, Result};
use crate::model::ResourceType;

/// The alphabet `generateName` suffixes are drawn from (no vowels, no look-alike digits).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
/// Length of a `generateName` suffix.
const NAME_SUFFIX_LEN: usize = 5;

/// The finalizer that makes an owner wait for its blocking dependents (foreground deletion).
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer that makes the garbage collector orphan an owner's dependents.
pub const ORPHAN: &str = "orphan";

/// Now as RFC 3339 with whole seconds, as `metav1.Time` serializes.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A random `generateName` suffix.
pub fn name_suffix() -> String {
    let mut rng = rand::rng();
    (0..NAME_SUFFIX_LEN)
        .map(|_| NAME_ALPHABET[rng.random_range(0..NAME_ALPHABET.len())] as char)
        .collect()
}

/// One cause of a 422 Invalid.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueRequired`, `FieldValueForbidden`, ...
    pub reason: &'static str,
    pub field: String,
    pub message: String,
}

impl Cause {
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Self {
        let shown = match value {
            Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        };
        Self {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {shown}: {detail}"),
        }
    }

    pub fn required(field: &str, detail: &str) -> Self {
        Self {
            reason: "FieldValueRequired",
            field: field.into(),
            message: format!("Required value: {detail}"),
        }
    }

    pub fn forbidden(field: &str, detail: &str) -> Self {
        Self {
            reason: "FieldValueForbidden",
            field: field.into(),
            message: format!("Forbidden: {detail}"),
        }
    }
}

/// 422 Invalid, worded as kube-apiserver does: `Kind.group "name" is invalid: field: message`
/// (`Kind "name"` for the core group).
pub fn invalid(rt: &ResourceType, name: &str, causes: Vec<Cause>) -> ApiError {
    let qualified = if rt.group.is_empty() {
        rt.kind.clone()
    } else {
        format!("{}.{}", rt.kind, rt.group)
    };
    let msgs: Vec<String> = causes
        .iter()
        .map(|c| format!("{}: {}", c.field, c.message))
        .collect();
    let message = if msgs.len() == 1 {
        format!("{qualified} {name:?} is invalid: {}", msgs[0])
    } else {
        format!("{qualified} {name:?} is invalid: [{}]", msgs.join(", "))
    };
    let causes: Vec<Value> = causes
        .iter()
        .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
        .collect();
    ApiError::new(422, "Invalid", message).with_details(json!({
        "name": name, "group": rt.group, "kind": rt.kind, "causes": causes,
    }))
}

/// The object's `metadata` map, created if missing or not a map.
pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.is_object() {
        *obj = Value::Object(Map::new());
    }
    let Value::Object(map) = obj else {
        unreachable!("just made an object")
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if !meta.is_object() {
        *meta = Value::Object(Map::new());
    }
    match meta {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// `metadata.finalizers` as strings.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

pub fn set_finalizers(obj: &mut Value, list: Vec<String>) {
    let meta = meta_mut(obj);
    if list.is_empty() {
        meta.remove("finalizers");
    } else {
        meta.insert(
            "finalizers".into(),
            Value::Array(list.into_iter().map(Value::String).collect()),
        );
    }
}

/// Whether `metadata.deletionTimestamp` is set.
pub fn is_deleting(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

/// Whether anything still holds the object: metadata finalizers, or for namespaces
/// `spec.finalizers` (the namespace controller's `kubernetes` finalizer).
pub fn has_finalizers(rt: &ResourceType, obj: &Value) -> bool {
    if !finalizers(obj).is_empty() {
        return true;
    }
    is_namespace(rt)
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
}

pub fn is_namespace(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "namespaces"
}

pub fn is_crd(rt: &ResourceType) -> bool {
    rt.group == "apiextensions.k8s.io" && rt.plural == "customresourcedefinitions"
}

/// Removes what Go's `omitempty` leaves out of `ObjectMeta`: empty collections and strings, nulls.
pub fn drop_empty_meta(obj: &mut Value) {
    let meta = meta_mut(obj);
    meta.retain(|_, v| match v {
        Value::Null => false,
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
        Value::String(s) => !s.is_empty(),
        _ => true,
    });
}

/// Checks `apiVersion`/`kind` against the URL's type (filling them when absent).
pub fn check_type_meta(rt: &ResourceType, obj: &mut Value) -> Result<()> {
    let want_av = rt.api_version();
    let Value::Object(map) = obj else {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    };
    match map.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("apiVersion".into(), Value::String(want_av.clone()));
        }
        Some(av) if av == want_av => {}
        // CustomResourceDefinitions are accepted in either form at either version.
        Some("apiextensions.k8s.io/v1" | "apiextensions.k8s.io/v1beta1") if rt.group == "apiextensions.k8s.io" => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({want_av})"
            )))
        }
    }
    match map.get("kind").and_then(Value::as_str) {
        None | Some("") => {
            map.insert("kind".into(), Value::String(rt.kind.clone()));
        }
        Some(k) if k == rt.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                rt.kind
            )))
        }
    }
    Ok(())
}

/// Checks the body's namespace against the URL's; fills it for namespaced types, clears it for
/// cluster-scoped ones.
pub fn check_namespace(rt: &ResourceType, namespace: Option<&str>, obj: &mut Value) -> Result<()> {
    let meta = meta_mut(obj);
    if !rt.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let url_ns = namespace.unwrap_or("");
    let body_ns = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if url_ns.is_empty() {
        if body_ns.is_empty() {
            return Err(ApiError::bad_request(
                "the namespace of the provided object is required",
            ));
        }
        return Ok(());
    }
    if !body_ns.is_empty() && body_ns != url_ns {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    meta.insert("namespace".into(), Value::String(url_ns.to_string()));
    Ok(())
}

const SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1035_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// RFC 1123 subdomain (at most 253 characters).
pub fn is_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

/// The name rules of a type: messages for each violation (empty when valid).
pub fn name_errors(rt: &ResourceType, name: &str) -> Vec<String> {
    let mut errs = Vec::new();
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            if name.len() > 63 {
                errs.push("must be no more than 63 characters".to_string());
            }
            if !is_label(name) {
                errs.push(LABEL_MSG.to_string());
            }
        }
        ("", "services") => {
            if name.len() > 63 {
                errs.push("must be no more than 63 characters".to_string());
            }
            if !is_label(name) || !name.starts_with(|c: char| c.is_ascii_lowercase()) {
                errs.push(DNS1035_MSG.to_string());
            }
        }
        ("rbac.authorization.k8s.io", _) => {
            if name == "." || name == ".." {
                errs.push(format!("may not be '{name}'"));
            }
            for bad in ["/", "%"] {
                if name.contains(bad) {
                    errs.push(format!("may not contain '{bad}'"));
                }
            }
        }
        _ => {
            if name.len() > 253 {
                errs.push("must be no more than 253 characters".to_string());
            }
            if !name.split('.').all(is_label) {
                errs.push(SUBDOMAIN_MSG.to_string());
            }
        }
    }
    errs
}

/// Checks `metadata.name` (or `generateName`) and returns the name, or `None` when it is to
/// be generated. The caller appends [`name_suffix`] to `generateName`.
pub fn check_name(rt: &ResourceType, obj: &Value) -> Result<Option<String>> {
    let name = meta_str(obj, "name").unwrap_or("");
    let generate = meta_str(obj, "generateName").unwrap_or("");
    if name.is_empty() && generate.is_empty() {
        return Err(invalid(
            rt,
            "",
            vec![Cause::required(
                "metadata.name",
                "name or generateName is required",
            )],
        ));
    }
    let (checked, field) = if name.is_empty() {
        // The prefix is checked with a placeholder suffix, as kube-apiserver does.
        (format!("{generate}x"), "metadata.generateName")
    } else {
        (name.to_string(), "metadata.name")
    };
    let errs = name_errors(rt, &checked);
    if !errs.is_empty() {
        let value = if name.is_empty() { generate } else { name };
        let causes = errs
            .iter()
            .map(|e| Cause::invalid(field, &Value::String(value.into()), e))
            .collect();
        return Err(invalid(rt, value, causes));
    }
    Ok((!name.is_empty()).then(|| name.to_string()))
}

/// Checks label keys and values and annotation keys, as `ValidateObjectMeta` does.
pub fn check_labels(rt: &ResourceType, obj: &Value) -> Result<()> {
    use metacontroller_merge::selector::{validate_key, validate_value};
    let name = meta_str(obj, "name")
        .or_else(|| meta_str(obj, "generateName"))
        .unwrap_or("");
    let mut causes = Vec::new();
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if let Err(e) = validate_key(k) {
                causes.push(Cause::invalid(
                    "metadata.labels",
                    &Value::String(k.clone()),
                    &e.to_string(),
                ));
            }
            match v.as_str() {
                Some(s) => {
                    if let Err(e) = validate_value(k, s) {
                        causes.push(Cause::invalid("metadata.labels", v, &e.to_string()));
                    }
                }
                None => causes.push(Cause::invalid(
                    "metadata.labels",
                    v,
                    "label values must be strings",
                )),
            }
        }
    }
    if let Some(annotations) = obj
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
    {
        for (k, v) in annotations {
            if let Err(e) = validate_key(k) {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    &Value::String(k.clone()),
                    &e.to_string(),
                ));
            }
            if !v.is_string() {
                causes.push(Cause::invalid(
                    "metadata.annotations",
                    v,
                    "annotation values must be strings",
                ));
            }
        }
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(invalid(rt, name, causes))
    }
}

/// The part of an object `generation` tracks: everything but `metadata`, and `status` too
/// when the type has a status subresource. Deployments also count their annotations, which
/// they copy to their ReplicaSets.
fn generation_relevant(rt: &ResourceType, obj: &Value) -> Map<String, Value> {
    let mut m = obj.as_object().cloned().unwrap_or_default();
    let annotations = m
        .remove("metadata")
        .and_then(|mut meta| meta.get_mut("annotations").map(Value::take));
    if rt.status_subresource {
        m.remove("status");
    }
    if !rt.custom && rt.group == "apps" && rt.plural == "deployments" {
        m.insert(
            "metadata.annotations".into(),
            annotations.unwrap_or(Value::Null),
        );
    }
    m
}

/// Prepares a new object for creation: type and namespace checks, name checks, server-set
/// metadata (uid, creationTimestamp, generation), cleared client-set fields, type defaults.
/// The name is left to the caller when `generateName` is used.
pub fn prepare_create(rt: &ResourceType, namespace: Option<&str>, mut obj: Value) -> Result<Value> {
    check_type_meta(rt, &mut obj)?;
    check_namespace(rt, namespace, &mut obj)?;
    check_name(rt, &obj)?;
    check_labels(rt, &obj)?;
    {
        let meta = meta_mut(&mut obj);
        meta.insert(
            "uid".into(),
            Value::String(uuid::Uuid::new_v4().to_string()),
        );
        meta.insert("creationTimestamp".into(), Value::String(now_rfc3339()));
        // Types whose strategy does not track generation keep whatever the client sent.
        if rt.generation {
            meta.insert("generation".into(), json!(1));
        }
        for f in [
            "resourceVersion",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "selfLink",
        ] {
            meta.remove(f);
        }
    }
    if rt.status_subresource {
        // Status is written through `/status` only: built-in strategies reset it on create and
        // custom resources with a status subresource ignore it.
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
    }
    default_builtin(rt, &mut obj);
    drop_empty_meta(&mut obj);
    Ok(obj)
}

/// Type-specific defaults kube-apiserver applies on create.
fn default_builtin(rt: &ResourceType, obj: &mut Value) {
    if rt.custom {
        return;
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "namespaces") => {
            let name = meta_str(obj, "name").unwrap_or("").to_string();
            let meta = meta_mut(obj);
            let labels = meta.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                if !name.is_empty() {
                    l.insert("kubernetes.io/metadata.name".into(), Value::String(name));
                }
            }
        }
        ("", "services") => default_service(obj),
        ("apps", "replicasets" | "statefulsets") | ("", "replicationcontrollers") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert(json!(1));
            }
        }
        ("batch", "jobs") => generate_job_selector(obj),
        _ => {}
    }
    default_fields(rt, obj);
}

/// The Job strategy on create: unless `spec.manualSelector` is true, the selector is the Job's
/// UID and the template gets the matching labels (both the legacy and the prefixed keys).
fn generate_job_selector(obj: &mut Value) {
    let uid = meta_str(obj, "uid").unwrap_or("").to_string();
    let name = meta_str(obj, "name").unwrap_or("").to_string();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec.get("manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    spec.insert(
        "selector".into(),
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}),
    );
    let template = spec.entry("template").or_insert_with(|| json!({}));
    if let Some(t) = template.as_object_mut() {
        let meta = t.entry("metadata").or_insert_with(|| json!({}));
        if let Some(m) = meta.as_object_mut() {
            let labels = m.entry("labels").or_insert_with(|| json!({}));
            if let Some(l) = labels.as_object_mut() {
                for (k, v) in [
                    ("batch.kubernetes.io/controller-uid", &uid),
                    ("batch.kubernetes.io/job-name", &name),
                    ("controller-uid", &uid),
                    ("job-name", &name),
                ] {
                    l.insert(k.into(), json!(v));
                }
            }
        }
    }
}

/// `SetDefaults_ReplicaSet`, `_StatefulSet`, `_DaemonSet` and `_Job` (apps/v1, batch/v1).
fn default_workload_spec(rt: &ResourceType, spec: &mut Map<String, Value>) {
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("apps", "replicasets") => {
            spec.entry("replicas").or_insert(json!(1));
        }
        ("apps", "statefulsets") => {
            spec.entry("replicas").or_insert(json!(1));
            spec.entry("podManagementPolicy")
                .or_insert(json!("OrderedReady"));
            let strategy = spec.entry("updateStrategy").or_insert_with(|| json!({}));
            if let Some(st) = strategy.as_object_mut() {
                let ty = st.entry("type").or_insert(json!("RollingUpdate"));
                if ty == "RollingUpdate" {
                    let ru = st.entry("rollingUpdate").or_insert_with(|| json!({}));
                    if let Some(ru) = ru.as_object_mut() {
                        ru.entry("partition").or_insert(json!(0));
                    }
                }
            }
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("persistentVolumeClaimRetentionPolicy")
                .or_insert_with(|| json!({"whenDeleted": "Retain", "whenScaled": "Retain"}));
        }
        ("apps", "daemonsets") => {
            let strategy = spec.entry("updateStrategy").or_insert_with(|| json!({}));
            if let Some(st) = strategy.as_object_mut() {
                let ty = st.entry("type").or_insert(json!("RollingUpdate"));
                if ty == "RollingUpdate" {
                    let ru = st.entry("rollingUpdate").or_insert_with(|| json!({}));
                    if let Some(ru) = ru.as_object_mut() {
                        ru.entry("maxUnavailable").or_insert(json!(1));
                        ru.entry("maxSurge").or_insert(json!(0));
                    }
                }
            }
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
        }
        ("batch", "jobs") => {
            if spec.get("completions").is_none() && spec.get("parallelism").is_none() {
                spec.insert("completions".into(), json!(1));
            }
            spec.entry("parallelism").or_insert(json!(1));
            spec.entry("backoffLimit").or_insert(json!(6));
            spec.entry("completionMode").or_insert(json!("NonIndexed"));
            spec.entry("suspend").or_insert(json!(false));
            spec.entry("manualSelector").or_insert(json!(false));
            spec.entry("podReplacementPolicy")
                .or_insert(json!("TerminatingOrFailed"));
        }
        _ => {}
    }
}

/// What a new object gets after its fields were attributed to the writer in `managedFields`:
/// the registry strategy's own settings (a namespace's finalizer and phase, a pod's status)
/// and the default admission plugins' changes to Pods.
pub fn finish_create(rt: &ResourceType, obj: &mut Value) {
    if rt.custom || !rt.group.is_empty() {
        return;
    }
    match rt.plural.as_str() {
        "namespaces" => {
            if let Some(m) = obj.as_object_mut() {
                let spec = m.entry("spec").or_insert_with(|| json!({}));
                if spec.get("finalizers").is_none() {
                    spec["finalizers"] = json!(["kubernetes"]);
                }
                m.insert("status".into(), json!({"phase": "Active"}));
            }
        }
        "pods" => {
            admit_pod(obj);
            let qos = pod_qos_class(obj);
            if let Some(m) = obj.as_object_mut() {
                m.insert(
                    "status".into(),
                    json!({"phase": "Pending", "qosClass": qos}),
                );
            }
        }
        _ => {}
    }
}

/// What kube-apiserver's default admission plugins add to a new Pod: `Priority` (priority 0
/// and the preemption policy when no class is named) and `DefaultTolerationSeconds` (300
/// seconds of tolerance for not-ready and unreachable nodes).
fn admit_pod(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if spec
        .get("priorityClassName")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        spec.entry("priority").or_insert(json!(0));
        spec.entry("preemptionPolicy")
            .or_insert(json!("PreemptLowerPriority"));
    }
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    if let Value::Array(list) = tolerations {
        for key in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let covered = list.iter().any(|t| {
                let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
                let k = t.get("key").and_then(Value::as_str).unwrap_or("");
                let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
                (effect.is_empty() || effect == "NoExecute")
                    && (k == key || k.is_empty() && op == "Exists")
            });
            if !covered {
                list.push(
                    json!({"key": key, "operator": "Exists", "effect": "NoExecute",
                    "tolerationSeconds": 300}),
                );
            }
        }
    }
}

/// Where the `ServiceAccount` admission plugin mounts a pod's API credentials.
const SERVICE_ACCOUNT_MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Names the pod's service account and, unless the pod (or else the service account) turns
/// automounting off, adds the projected `kube-api-access-*` volume (token, cluster CA,
/// namespace) and mounts it read-only in every container that has nothing there yet.
pub fn mount_service_account(pod: &mut Value, account: &str, sa_automount: Option<bool>) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    spec.insert("serviceAccountName".into(), json!(account));
    spec.insert("serviceAccount".into(), json!(account));
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or(sa_automount)
        .unwrap_or(true);
    if !automount {
        return;
    }
    let mounted = |c: &Value| {
        c.get("volumeMounts")
            .and_then(Value::as_array)
            .is_some_and(|m| {
                m.iter().any(|m| {
                    m.get("mountPath").and_then(Value::as_str) == Some(SERVICE_ACCOUNT_MOUNT)
                })
            })
    };
    let volume = format!("kube-api-access-{}", name_suffix());
    let mut used = false;
    for list in ["initContainers", "containers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut().filter(|c| !mounted(c)) {
                let Some(c) = c.as_object_mut() else { continue };
                let mounts = c.entry("volumeMounts").or_insert_with(|| json!([]));
                if let Value::Array(m) = mounts {
                    m.push(json!({"name": volume, "readOnly": true,
                        "mountPath": SERVICE_ACCOUNT_MOUNT}));
                    used = true;
                }
            }
        }
    }
    if !used {
        return;
    }
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if let Value::Array(v) = volumes {
        v.push(json!({"name": volume, "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
        ]}}));
    }
}

/// API defaults kube-apiserver applies whenever it decodes a built-in object (on create and
/// on update): pod specs (in Pods and in workload templates) and Deployments.
pub(crate) fn default_fields(rt: &ResourceType, obj: &mut Value) {
    if rt.custom {
        return;
    }
    let template = match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => {
            if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                default_pod_spec(spec, true);
            }
            return;
        }
        ("apps", "deployments" | "replicasets" | "statefulsets" | "daemonsets")
        | ("", "replicationcontrollers")
        | ("batch", "jobs") => "/spec/template/spec",
        ("batch", "cronjobs") => "/spec/jobTemplate/spec/template/spec",
        _ => return,
    };
    if let Some(spec) = obj.pointer_mut(template).and_then(Value::as_object_mut) {
        default_pod_spec(spec, false);
    }
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        default_workload_spec(rt, spec);
    }
    if rt.group == "apps" && rt.plural == "deployments" {
        if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
            spec.entry("replicas").or_insert(json!(1));
            let strategy = spec.entry("strategy").or_insert_with(|| json!({}));
            if let Some(st) = strategy.as_object_mut() {
                let ty = st.entry("type").or_insert(json!("RollingUpdate"));
                if ty == "RollingUpdate" {
                    let ru = st.entry("rollingUpdate").or_insert_with(|| json!({}));
                    if let Some(ru) = ru.as_object_mut() {
                        ru.entry("maxUnavailable").or_insert(json!("25%"));
                        ru.entry("maxSurge").or_insert(json!("25%"));
                    }
                }
            }
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("progressDeadlineSeconds").or_insert(json!(600));
        }
    }
}

/// `SetDefaults_PodSpec` and, for Pods themselves, `SetDefaults_Pod`; then each container's.
fn default_pod_spec(spec: &mut Map<String, Value>, is_pod: bool) {
    spec.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
    spec.entry("restartPolicy").or_insert(json!("Always"));
    spec.entry("securityContext").or_insert_with(|| json!({}));
    spec.entry("terminationGracePeriodSeconds")
        .or_insert(json!(30));
    spec.entry("schedulerName")
        .or_insert(json!("default-scheduler"));
    if is_pod {
        spec.entry("enableServiceLinks").or_insert(json!(true));
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(Value::Array(cs)) = spec.get_mut(list) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                default_container(c, is_pod);
            }
        }
    }
}

/// `SetDefaults_Container` and the defaults of what a container holds (ports, probes, field
/// references); in Pods, requests default to the limits.
fn default_container(c: &mut Map<String, Value>, is_pod: bool) {
    if c.get("imagePullPolicy")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        let image = c.get("image").and_then(Value::as_str).unwrap_or("");
        let policy = if image_tag(image) == Some("latest") {
            "Always"
        } else {
            "IfNotPresent"
        };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    c.entry("terminationMessagePath")
        .or_insert(json!("/dev/termination-log"));
    c.entry("terminationMessagePolicy").or_insert(json!("File"));
    let resources = c.entry("resources").or_insert_with(|| json!({}));
    if is_pod {
        if let Some(r) = resources.as_object_mut() {
            if let Some(limits) = r.get("limits").and_then(Value::as_object).cloned() {
                let requests = r.entry("requests").or_insert_with(|| json!({}));
                if let Some(req) = requests.as_object_mut() {
                    for (k, v) in limits {
                        req.entry(k).or_insert(v);
                    }
                }
            }
        }
    }
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert(json!("TCP"));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(probe).and_then(Value::as_object_mut) {
            p.entry("timeoutSeconds").or_insert(json!(1));
            p.entry("periodSeconds").or_insert(json!(10));
            p.entry("successThreshold").or_insert(json!(1));
            p.entry("failureThreshold").or_insert(json!(3));
            if let Some(h) = p.get_mut("httpGet").and_then(Value::as_object_mut) {
                h.entry("path").or_insert(json!("/"));
                h.entry("scheme").or_insert(json!("HTTP"));
            }
        }
    }
    if let Some(Value::Array(env)) = c.get_mut("env") {
        for e in env.iter_mut() {
            if let Some(f) = e
                .pointer_mut("/valueFrom/fieldRef")
                .and_then(Value::as_object_mut)
            {
                f.entry("apiVersion").or_insert(json!("v1"));
            }
        }
    }
}

/// The tag of an image reference as kubelet's parser reads it: `latest` when there is neither
/// a tag nor a digest, None with only a digest.
fn image_tag(image: &str) -> Option<&str> {
    let (name, digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    // A tag follows the last ':' after the last '/' (a ':' before it is a registry port).
    let last = name.rsplit('/').next().unwrap_or(name);
    match last.rsplit_once(':') {
        Some((_, tag)) => Some(tag),
        None if digest => None,
        None => Some("latest"),
    }
}

/// Service defaults: type, a cluster IP from 10.96.0.0/12 (the address is random, as
/// kube-apiserver's allocator picks it), single-stack IPv4, TCP ports targeting themselves.
fn default_service(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else { return };
    let spec = m.entry("spec").or_insert_with(|| json!({}));
    let Some(spec) = spec.as_object_mut() else {
        return;
    };
    let ty = spec
        .entry("type")
        .or_insert(json!("ClusterIP"))
        .as_str()
        .unwrap_or("ClusterIP")
        .to_string();
    if ty != "ExternalName" {
        let ip = match spec.get("clusterIP").and_then(Value::as_str) {
            Some(ip) if !ip.is_empty() => ip.to_string(),
            _ => {
                let n: u32 = rand::rng().random_range(2..(1 << 20) - 1);
                format!("10.{}.{}.{}", 96 + (n >> 16), (n >> 8) & 0xff, n & 0xff)
            }
        };
        spec.insert("clusterIP".into(), json!(ip));
        spec.entry("clusterIPs").or_insert(json!([ip]));
        if ip != "None" {
            spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
            spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
        }
        spec.entry("sessionAffinity").or_insert(json!("None"));
        spec.entry("internalTrafficPolicy")
            .or_insert(json!("Cluster"));
    }
    if let Some(Value::Array(ports)) = spec.get_mut("ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            p.entry("protocol").or_insert(json!("TCP"));
            if let Some(port) = p.get("port").cloned() {
                p.entry("targetPort").or_insert(port);
            }
        }
    }
    m.insert("status".into(), json!({"loadBalancer": {}}));
}

/// The QoS class of a pod from its containers' requests and limits.
fn pod_qos_class(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = !containers.is_empty();
    for c in &containers {
        let requests = c.pointer("/resources/requests").and_then(Value::as_object);
        let limits = c.pointer("/resources/limits").and_then(Value::as_object);
        if requests.is_some_and(|r| !r.is_empty()) || limits.is_some_and(|l| !l.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let limit = limits.and_then(|l| l.get(res));
            let request = requests.and_then(|r| r.get(res)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Which part of an object a write targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Main,
    Status,
}

/// Prepares an update of `old` (the stored object) to `new` (the request, already checked
/// for type and namespace): the resourceVersion precondition, the subresource split,
/// immutable fields, finalizer rules and `generation`.
pub fn prepare_update(
    rt: &ResourceType,
    old: &Value,
    mut new: Value,
    target: Target,
) -> Result<Value> {
    let name = meta_str(old, "name").unwrap_or("").to_string();
    let new_name = meta_str(&new, "name").unwrap_or("");
    if !new_name.is_empty() && new_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({new_name}) does not match the name on the URL ({name})"
        )));
    }
    let old_rv = meta_str(old, "resourceVersion").unwrap_or("");
    let new_rv = meta_str(&new, "resourceVersion").unwrap_or("");
    if !new_rv.is_empty() && new_rv != old_rv {
        return Err(ApiError::stale(&rt.group, &rt.plural, &name));
    }
    if let Some(uid) = meta_str(&new, "uid").filter(|u| !u.is_empty()) {
        if Some(uid) != meta_str(old, "uid") {
            return Err(invalid(
                rt,
                &name,
                vec![Cause::invalid(
                    "metadata.uid",
                    &Value::String(uid.into()),
                    "field is immutable",
                )],
            ));
        }
    }
    if !is_deleting(old) && is_deleting(&new) {
        let ts = new
            .pointer("/metadata/deletionTimestamp")
            .cloned()
            .unwrap_or(Value::Null);
        return Err(invalid(
            rt,
            &name,
            vec![Cause::invalid(
                "metadata.deletionTimestamp",
                &ts,
                "field is immutable; may only be changed via deletion",
            )],
        ));
    }

    let mut out = match target {
        Target::Status => {
            // Only `.status` changes; everything else is the stored object.
            let mut out = old.clone();
            if let Value::Object(m) = &mut out {
                match new.get_mut("status").map(Value::take) {
                    Some(s) if !s.is_null() => {
                        m.insert("status".into(), s);
                    }
                    _ => {
                        m.remove("status");
                    }
                }
            }
            out
        }
        Target::Main => {
            if rt.status_subresource {
                if let Value::Object(m) = &mut new {
                    match old.get("status") {
                        Some(s) => {
                            m.insert("status".into(), s.clone());
                        }
                        None => {
                            m.remove("status");
                        }
                    }
                }
            }
            // Server-owned metadata always comes from the stored object.
            let old_meta = old
                .get("metadata")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let meta = meta_mut(&mut new);
            for f in [
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "namespace",
                "name",
            ] {
                match old_meta.get(f) {
                    Some(v) => {
                        meta.insert(f.into(), v.clone());
                    }
                    None => {
                        meta.remove(f);
                    }
                }
            }
            if !meta.contains_key("managedFields") {
                if let Some(mf) = old_meta.get("managedFields") {
                    meta.insert("managedFields".into(), mf.clone());
                }
            }
            meta.remove("selfLink");
            new
        }
    };
    if target == Target::Main {
        default_fields(rt, &mut out);
    }
    check_labels(rt, &out)?;
    // The stored resourceVersion is replaced on commit.
    meta_mut(&mut out).insert("resourceVersion".into(), Value::String(old_rv.to_string()));

    if is_deleting(old) {
        let before = finalizers(old);
        let added: Vec<String> = finalizers(&out)
            .into_iter()
            .filter(|f| !before.contains(f))
            .collect();
        if !added.is_empty() {
            let list = added
                .iter()
                .map(|f| format!("{f:?}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(invalid(
                rt,
                &name,
                vec![Cause::forbidden(
                    "metadata.finalizers",
                    &format!("no new finalizers can be added if the object is being deleted, found new finalizers []string{{{list}}}"),
                )],
            ));
        }
    }

    // Requests never set generation (it was copied from the stored object above); types that
    // track it bump it when their spec changes.
    if rt.generation {
        let old_gen = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(1);
        let gen = if generation_relevant(rt, old) != generation_relevant(rt, &out) {
            old_gen + 1
        } else {
            old_gen
        };
        meta_mut(&mut out).insert("generation".into(), json!(gen));
    }
    drop_empty_meta(&mut out);
    Ok(out)
}

/// Marks an object as being deleted: `deletionTimestamp` (once), grace period 0, and
/// generation + 1 where the object has one.
pub fn mark_deleting(obj: &mut Value) {
    if is_deleting(obj) {
        return;
    }
    let meta = meta_mut(obj);
    meta.insert("deletionTimestamp".into(), Value::String(now_rfc3339()));
    meta.insert("deletionGracePeriodSeconds".into(), json!(0));
    let gen = meta.get("generation").and_then(Value::as_i64).unwrap_or(0);
    if gen > 0 {
        meta.insert("generation".into(), json!(gen + 1));
    }
}

/// The finalizers a deletion with a propagation policy leaves on the object.
pub fn finalizers_for_policy(
    current: Vec<String>,
    policy: Option<crate::store::Propagation>,
) -> Vec<String> {
    use crate::store::Propagation;
    let mut list = current;
    let ensure = |list: &mut Vec<String>, f: &str| {
        if !list.iter().any(|x| x == f) {
            list.push(f.to_string());
        }
    };
    match policy {
        None => {}
        Some(Propagation::Background) => list.retain(|f| f != FOREGROUND && f != ORPHAN),
        Some(Propagation::Foreground) => {
            list.retain(|f| f != ORPHAN);
            ensure(&mut list, FOREGROUND);
        }
        Some(Propagation::Orphan) => {
            list.retain(|f| f != FOREGROUND);
            ensure(&mut list, ORPHAN);
        }
    }
    list
}

/// An `ownerReferences` entry, as the garbage collector reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    pub block_owner_deletion: bool,
}

pub fn owner_refs(obj: &Value) -> Vec<OwnerRef> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|r| OwnerRef {
                    api_version: r
                        .get("apiVersion")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .into(),
                    kind: r.get("kind").and_then(Value::as_str).unwrap_or("").into(),
                    name: r.get("name").and_then(Value::as_str).unwrap_or("").into(),
                    uid: r.get("uid").and_then(Value::as_str).unwrap_or("").into(),
                    block_owner_deletion: r
                        .get("blockOwnerDeletion")
                        .and_then(Value::as_bool)
                        .unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use std::sync::Arc;

    fn rt(group: &str, plural: &str) -> Arc<ResourceType> {
        let r = Registry::with_builtins();
        let v = "v1";
        r.lookup(group, v, plural).expect("type")
    }

    /// An object as a create stores it: prepared, then finished.
    fn created(rt: &ResourceType, namespace: Option<&str>, obj: Value) -> Result<Value> {
        let mut v = prepare_create(rt, namespace, obj)?;
        finish_create(rt, &mut v);
        Ok(v)
    }

    #[test]
    fn jobs_get_a_generated_selector_and_workload_defaults() {
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}});
        let out = created(&rt("batch", "jobs"), Some("n"), job).expect("create");
        let uid = out["metadata"]["uid"].as_str().expect("uid").to_string();
        let spec = &out["spec"];
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        );
        let labels = &spec["template"]["metadata"]["labels"];
        assert_eq!(labels["controller-uid"], json!(uid));
        assert_eq!(labels["batch.kubernetes.io/job-name"], "j");
        assert_eq!(labels["job-name"], "j");
        for (k, v) in [
            ("completions", json!(1)),
            ("parallelism", json!(1)),
            ("backoffLimit", json!(6)),
            ("completionMode", json!("NonIndexed")),
            ("suspend", json!(false)),
            ("podReplacementPolicy", json!("TerminatingOrFailed")),
        ] {
            assert_eq!(spec[k], v, "{k}");
        }
        // Only parallelism given: a work queue, no completions.
        let queue = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "q"},
            "spec": {"parallelism": 3, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "c", "image": "busybox"}]}}}});
        let out = created(&rt("batch", "jobs"), Some("n"), queue).expect("create");
        assert!(out["spec"].get("completions").is_none());

        let sts = json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "s"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        let out = created(&rt("apps", "statefulsets"), Some("n"), sts).expect("create");
        assert_eq!(out["spec"]["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            out["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        let ds = json!({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"metadata": {"labels": {"a": "b"}},
                    "spec": {"containers": [{"name": "c", "image": "x"}]}}}});
        let out = created(&rt("apps", "daemonsets"), Some("n"), ds).expect("create");
        assert_eq!(
            out["spec"]["updateStrategy"]["rollingUpdate"],
            json!({"maxUnavailable": 1, "maxSurge": 0})
        );
        assert_eq!(out["spec"]["revisionHistoryLimit"], 10);
    }

    #[test]
    fn suffixes_use_the_kubernetes_alphabet() {
        for _ in 0..100 {
            let s = name_suffix();
            assert_eq!(s.len(), 5);
            assert!(s.bytes().all(|c| NAME_ALPHABET.contains(&c)), "{s}");
        }
    }

    #[test]
    fn create_sets_server_fields_and_drops_client_ones() {
        let cm = rt("", "configmaps");
        let obj = json!({"metadata": {"name": "a", "uid": "mine", "resourceVersion": "5",
            "creationTimestamp": "2000-01-01T00:00:00Z", "labels": {}, "finalizers": [], "annotations": null},
            "data": {"k": "v"}});
        let out = prepare_create(&cm, Some("ns"), obj).expect("create");
        assert_eq!(out["apiVersion"], "v1");
        assert_eq!(out["kind"], "ConfigMap");
        assert_eq!(out["metadata"]["namespace"], "ns");
        assert_ne!(out["metadata"]["uid"], "mine");
        assert_eq!(out["metadata"]["uid"].as_str().map(str::len), Some(36));
        assert_ne!(out["metadata"]["creationTimestamp"], "2000-01-01T00:00:00Z");
        let ts = out["metadata"]["creationTimestamp"].as_str().unwrap_or("");
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok()
                && ts.ends_with('Z')
                && !ts.contains('.'),
            "{ts}"
        );
        // ConfigMaps have no generation.
        assert!(out["metadata"].get("generation").is_none());
        let meta = out["metadata"].as_object().expect("meta");
        for gone in ["resourceVersion", "labels", "finalizers", "annotations"] {
            assert!(!meta.contains_key(gone), "{gone}");
        }
    }

    #[test]
    fn create_checks_type_namespace_and_name() {
        let cm = rt("", "configmaps");
        let err = |obj: Value, ns: Option<&str>| {
            prepare_create(&cm, ns, obj)
                .err()
                .map(|e| (e.code, e.message))
        };
        assert_eq!(
            err(
                json!({"apiVersion": "apps/v1", "metadata": {"name": "a"}}),
                Some("n")
            )
            .map(|e| e.0),
            Some(400)
        );
        assert_eq!(
            err(
                json!({"kind": "Secret", "metadata": {"name": "a"}}),
                Some("n")
            )
            .map(|e| e.0),
            Some(400)
        );
        let e = err(
            json!({"metadata": {"name": "a", "namespace": "other"}}),
            Some("n"),
        );
        assert_eq!(
            e,
            Some((400, "the namespace of the provided object does not match the namespace sent on the request".into()))
        );
        let e = err(json!({"metadata": {}}), Some("n"));
        assert_eq!(
            e,
            Some((422, "ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required".into()))
        );
        let e = err(json!({"metadata": {"name": "Bad_Name"}}), Some("n")).map(|e| e.0);
        assert_eq!(e, Some(422));
        assert!(err(json!({"metadata": {"generateName": "ok-"}}), Some("n")).is_none());
        assert_eq!(
            err(json!({"metadata": {"generateName": "Bad-"}}), Some("n")).map(|e| e.0),
            Some(422)
        );
        // Cluster-scoped objects lose a stray namespace.
        let ns = rt("", "namespaces");
        let out = created(
            &ns,
            None,
            json!({"metadata": {"name": "x", "namespace": "y"}}),
        )
        .expect("ns");
        assert!(out["metadata"].get("namespace").is_none());
        assert_eq!(out["spec"]["finalizers"], json!(["kubernetes"]));
        assert_eq!(out["status"]["phase"], "Active");
        assert_eq!(
            out["metadata"]["labels"]["kubernetes.io/metadata.name"],
            "x"
        );
    }

    #[test]
    fn labels_and_annotations_are_validated() {
        let cm = rt("", "configmaps");
        let code = |meta: Value| {
            let mut obj = json!({"metadata": {"name": "a"}});
            merge(&mut obj, json!({"metadata": meta}));
            prepare_create(&cm, Some("n"), obj)
                .err()
                .map(|e| (e.code, e.message))
        };
        assert_eq!(
            code(
                json!({"labels": {"app": "ok", "example.com/x": ""}, "annotations": {"a/b": "any thing"}})
            ),
            None
        );
        let e = code(json!({"labels": {"app": "bad value"}})).expect("invalid value");
        assert_eq!(e.0, 422);
        assert!(
            e.1.starts_with(
                "ConfigMap \"a\" is invalid: metadata.labels: Invalid value: \"bad value\""
            ),
            "{}",
            e.1
        );
        assert_eq!(
            code(json!({"labels": {"bad key": "v"}})).map(|e| e.0),
            Some(422)
        );
        assert_eq!(code(json!({"labels": {"n": 1}})).map(|e| e.0), Some(422));
        assert_eq!(
            code(json!({"annotations": {"bad key": "v"}})).map(|e| e.0),
            Some(422)
        );
    }

    #[test]
    fn name_rules_per_type() {
        assert!(name_errors(&rt("", "configmaps"), "a.b-c").is_empty());
        assert!(!name_errors(&rt("", "namespaces"), "a.b").is_empty());
        assert!(!name_errors(&rt("", "services"), "1abc").is_empty());
        assert!(name_errors(
            &rt("rbac.authorization.k8s.io", "clusterroles"),
            "system:admin"
        )
        .is_empty());
        assert!(!name_errors(&rt("rbac.authorization.k8s.io", "clusterroles"), "a/b").is_empty());
        assert!(!name_errors(&rt("", "configmaps"), &"a".repeat(254)).is_empty());
    }

    #[test]
    fn services_and_workloads_get_kubernetes_defaults() {
        let svc = rt("", "services");
        let out = prepare_create(
            &svc,
            Some("n"),
            json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .expect("svc");
        let ip = out["spec"]["clusterIP"].as_str().unwrap_or("");
        let octets: Vec<u32> = ip.split('.').filter_map(|o| o.parse().ok()).collect();
        assert!(
            octets.len() == 4 && octets[0] == 10 && (96..112).contains(&octets[1]),
            "{ip}"
        );
        assert_eq!(out["spec"]["clusterIPs"], json!([ip]));
        assert_eq!(out["spec"]["type"], "ClusterIP");
        assert_eq!(
            out["spec"]["ports"][0],
            json!({"port": 80, "protocol": "TCP", "targetPort": 80})
        );
        let headless = prepare_create(
            &svc,
            Some("n"),
            json!({"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}}),
        )
        .expect("headless");
        assert_eq!(headless["spec"]["clusterIP"], "None");
        let ext = prepare_create(&svc, Some("n"), json!({"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "x.io"}}))
            .expect("external");
        assert!(ext["spec"].get("clusterIP").is_none());
        let d = prepare_create(
            &rt("apps", "deployments"),
            Some("n"),
            json!({"metadata": {"name": "d"}, "spec": {}}),
        )
        .expect("d");
        assert_eq!(d["spec"]["replicas"], 1);
        let d = prepare_create(
            &rt("apps", "deployments"),
            Some("n"),
            json!({"metadata": {"name": "d"}, "spec": {"replicas": 0}}),
        )
        .expect("d");
        assert_eq!(d["spec"]["replicas"], 0);
    }

    #[test]
    fn pods_get_pending_status_and_qos() {
        let pods = rt("", "pods");
        let out = created(
            &pods,
            Some("n"),
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]},
            "status": {"phase": "Running"}}),
        )
        .expect("pod");
        assert_eq!(
            out["status"],
            json!({"phase": "Pending", "qosClass": "BestEffort"})
        );
        let g = json!({"spec": {"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]}});
        assert_eq!(pod_qos_class(&g), "Guaranteed");
        let b = json!({"spec": {"containers": [{"resources": {"requests": {"cpu": "1"}}}]}});
        assert_eq!(pod_qos_class(&b), "Burstable");
    }

    fn stored(extra: Value) -> Value {
        let mut v = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "n", "uid": "u1", "resourceVersion": "10", "generation": 3,
                "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"replicas": 1}, "status": {"replicas": 0}});
        merge(&mut v, extra);
        // Stored objects carry their defaults.
        default_fields(&rt("apps", "deployments"), &mut v);
        v
    }

    fn merge(v: &mut Value, extra: Value) {
        metacontroller_merge::merge_patch::apply(v, &extra);
    }

    #[test]
    fn update_generation_rules() {
        let d = rt("apps", "deployments");
        let old = stored(json!({}));
        // Metadata-only change: same generation.
        let mut new = old.clone();
        merge(&mut new, json!({"metadata": {"labels": {"a": "b"}}}));
        assert_eq!(
            prepare_update(&d, &old, new, Target::Main).expect("u")["metadata"]["generation"],
            3
        );
        // Spec change: +1.
        let mut new = old.clone();
        merge(&mut new, json!({"spec": {"replicas": 2}}));
        assert_eq!(
            prepare_update(&d, &old, new, Target::Main).expect("u")["metadata"]["generation"],
            4
        );
        // Status through the main resource is ignored.
        let mut new = old.clone();
        merge(&mut new, json!({"status": {"replicas": 5}}));
        let out = prepare_update(&d, &old, new, Target::Main).expect("u");
        assert_eq!(out["status"]["replicas"], 0);
        assert_eq!(out["metadata"]["generation"], 3);
        // Status subresource: only status changes.
        let mut new = old.clone();
        merge(
            &mut new,
            json!({"spec": {"replicas": 9}, "status": {"replicas": 5}, "metadata": {"labels": {"x": "y"}}}),
        );
        let out = prepare_update(&d, &old, new, Target::Status).expect("u");
        assert_eq!(out["status"]["replicas"], 5);
        assert_eq!(out["spec"]["replicas"], 1);
        assert!(out["metadata"].get("labels").is_none());
        assert_eq!(out["metadata"]["generation"], 3);
        // Deployments count annotation changes too (they are copied to ReplicaSets).
        let mut new = old.clone();
        merge(&mut new, json!({"metadata": {"annotations": {"a": "b"}}}));
        assert_eq!(
            prepare_update(&d, &old, new, Target::Main).expect("u")["metadata"]["generation"],
            4
        );
        let rs = rt("apps", "replicasets");
        let mut new = old.clone();
        merge(&mut new, json!({"metadata": {"annotations": {"a": "b"}}}));
        assert_eq!(
            prepare_update(&rs, &old, new, Target::Main).expect("u")["metadata"]["generation"],
            3
        );
        // Without a status subresource, everything outside metadata counts.
        let np = rt("networking.k8s.io", "networkpolicies");
        let old =
            json!({"metadata": {"name": "c", "resourceVersion": "1", "generation": 1}, "spec": {}});
        let new = json!({"metadata": {"name": "c"}, "spec": {"podSelector": {}}});
        assert_eq!(
            prepare_update(&np, &old, new, Target::Main).expect("u")["metadata"]["generation"],
            2
        );
        // Types without generation never get one, and requests cannot set it.
        let cm = rt("", "configmaps");
        let old = json!({"metadata": {"name": "c", "resourceVersion": "1"}, "data": {}});
        let new = json!({"metadata": {"name": "c", "generation": 7}, "data": {"k": "v"}});
        let out = prepare_update(&cm, &old, new, Target::Main).expect("u");
        assert!(out["metadata"].get("generation").is_none(), "{out}");
    }

    #[test]
    fn pod_defaults_and_admission() {
        let pod = created(
            &rt("", "pods"),
            Some("n"),
            json!({"metadata": {"name": "p"}, "spec": {"containers": [
                {"name": "a", "image": "busybox", "ports": [{"containerPort": 80}],
                 "resources": {"limits": {"cpu": "1"}},
                 "readinessProbe": {"httpGet": {"port": 80}}},
                {"name": "b", "image": "registry:5000/b:1.2"},
                {"name": "c", "image": "c@sha256:abc"},
                {"name": "d", "image": "d:latest", "imagePullPolicy": "Never"}]}}),
        )
        .expect("pod");
        let spec = &pod["spec"];
        for (k, v) in [
            ("dnsPolicy", json!("ClusterFirst")),
            ("restartPolicy", json!("Always")),
            ("securityContext", json!({})),
            ("terminationGracePeriodSeconds", json!(30)),
            ("schedulerName", json!("default-scheduler")),
            ("enableServiceLinks", json!(true)),
            ("priority", json!(0)),
            ("preemptionPolicy", json!("PreemptLowerPriority")),
        ] {
            assert_eq!(spec[k], v, "{k}");
        }
        assert_eq!(
            spec["tolerations"],
            json!([
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ])
        );
        let c = &spec["containers"];
        let policies: Vec<&str> = (0..4)
            .map(|i| c[i]["imagePullPolicy"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(
            policies,
            ["Always", "IfNotPresent", "IfNotPresent", "Never"]
        );
        assert_eq!(c[0]["terminationMessagePath"], "/dev/termination-log");
        assert_eq!(c[0]["terminationMessagePolicy"], "File");
        assert_eq!(c[0]["ports"][0]["protocol"], "TCP");
        assert_eq!(c[0]["resources"]["requests"], json!({"cpu": "1"}));
        assert_eq!(c[1]["resources"], json!({}));
        assert_eq!(
            c[0]["readinessProbe"],
            json!({"httpGet": {"port": 80, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1,
                "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(pod["status"]["qosClass"], "Burstable");

        // Templates get the pod spec defaults (not the Pod-only ones), Deployments their own.
        let d = prepare_create(
            &rt("apps", "deployments"),
            Some("n"),
            json!({"metadata": {"name": "d"}, "spec": {"template": {"spec": {"containers": [
                {"name": "a", "image": "a:1"}]}}}}),
        )
        .expect("deployment");
        assert_eq!(d["spec"]["replicas"], 1);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(d["spec"]["progressDeadlineSeconds"], 600);
        assert_eq!(
            d["spec"]["strategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}})
        );
        let t = &d["spec"]["template"]["spec"];
        assert_eq!(t["dnsPolicy"], "ClusterFirst");
        assert!(t.get("enableServiceLinks").is_none() && t.get("tolerations").is_none());
        assert_eq!(t["containers"][0]["imagePullPolicy"], "IfNotPresent");

        // Updates are defaulted too, so leaving a default out changes nothing.
        let mut new = d.clone();
        new["spec"]["template"]["spec"]
            .as_object_mut()
            .map(|m| m.remove("dnsPolicy"));
        new["metadata"]["resourceVersion"] = json!("");
        let mut old = d.clone();
        old["metadata"]["resourceVersion"] = json!("1");
        let out = prepare_update(&rt("apps", "deployments"), &old, new, Target::Main).expect("u");
        assert_eq!(out["spec"]["template"]["spec"]["dnsPolicy"], "ClusterFirst");
        assert_eq!(out["metadata"]["generation"], 1);
    }

    #[test]
    fn generation_only_for_types_whose_strategy_tracks_it() {
        let with: Vec<String> = crate::builtins::builtin_types()
            .iter()
            .filter(|t| t.generation)
            .map(|t| format!("{}/{}", t.group, t.plural))
            .collect();
        assert_eq!(
            with,
            [
                "/replicationcontrollers",
                "apps/daemonsets",
                "apps/deployments",
                "apps/replicasets",
                "apps/statefulsets",
                "batch/cronjobs",
                "batch/jobs",
                "networking.k8s.io/ingressclasses",
                "networking.k8s.io/ingresses",
                "networking.k8s.io/networkpolicies",
                "policy/poddisruptionbudgets",
                "apiextensions.k8s.io/customresourcedefinitions",
            ]
        );
        for (group, plural, obj) in [
            (
                "",
                "pods",
                json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}),
            ),
            ("", "secrets", json!({"metadata": {"name": "s"}})),
            (
                "",
                "services",
                json!({"metadata": {"name": "s"}, "spec": {"ports": [{"port": 80}]}}),
            ),
            (
                "coordination.k8s.io",
                "leases",
                json!({"metadata": {"name": "l"}}),
            ),
        ] {
            let out = prepare_create(&rt(group, plural), Some("n"), obj).expect("create");
            assert!(
                out["metadata"].get("generation").is_none(),
                "{plural}: {out}"
            );
        }
        for (group, plural, obj) in [
            (
                "apps",
                "deployments",
                json!({"metadata": {"name": "d"}, "spec": {}}),
            ),
            (
                "batch",
                "jobs",
                json!({"metadata": {"name": "j"}, "spec": {}}),
            ),
        ] {
            let out = prepare_create(&rt(group, plural), Some("n"), obj).expect("create");
            assert_eq!(out["metadata"]["generation"], 1, "{plural}");
        }
    }

    #[test]
    fn update_preconditions_and_immutables() {
        let d = rt("apps", "deployments");
        let old = stored(json!({}));
        let code = |new: Value| {
            prepare_update(&d, &old, new, Target::Main)
                .err()
                .map(|e| e.code)
        };
        assert_eq!(
            code(stored(json!({"metadata": {"resourceVersion": "9"}}))),
            Some(409)
        );
        assert_eq!(
            code(stored(json!({"metadata": {"resourceVersion": "10"}}))),
            None
        );
        assert_eq!(
            code(stored(json!({"metadata": {"resourceVersion": ""}}))),
            None
        );
        assert_eq!(
            code(stored(json!({"metadata": {"name": "other"}}))),
            Some(400)
        );
        assert_eq!(code(stored(json!({"metadata": {"uid": "u2"}}))), Some(422));
        assert_eq!(
            code(stored(
                json!({"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z"}})
            )),
            Some(422)
        );
        // Client-sent creationTimestamp is ignored.
        let out = prepare_update(
            &d,
            &old,
            stored(json!({"metadata": {"creationTimestamp": "1999-01-01T00:00:00Z"}})),
            Target::Main,
        )
        .expect("u");
        assert_eq!(out["metadata"]["creationTimestamp"], "2020-01-01T00:00:00Z");
    }

    #[test]
    fn no_new_finalizers_while_deleting() {
        let d = rt("apps", "deployments");
        let old = stored(
            json!({"metadata": {"deletionTimestamp": "2020-01-01T00:00:00Z", "finalizers": ["a"]}}),
        );
        let e = prepare_update(
            &d,
            &old,
            stored(json!({"metadata": {"finalizers": ["a", "b"]}})),
            Target::Main,
        );
        assert_eq!(e.err().map(|e| e.code), Some(422));
        let ok = prepare_update(
            &d,
            &old,
            stored(json!({"metadata": {"finalizers": []}})),
            Target::Main,
        )
        .expect("u");
        // The deletion timestamp survives an update that omits it.
        assert_eq!(ok["metadata"]["deletionTimestamp"], "2020-01-01T00:00:00Z");
        assert!(finalizers(&ok).is_empty());
    }

    #[test]
    fn propagation_finalizers() {
        use crate::store::Propagation::*;
        let base = vec!["x".to_string(), ORPHAN.to_string()];
        assert_eq!(finalizers_for_policy(base.clone(), None), base);
        assert_eq!(finalizers_for_policy(base.clone(), Some(Background)), ["x"]);
        assert_eq!(
            finalizers_for_policy(base.clone(), Some(Foreground)),
            ["x", FOREGROUND]
        );
        assert_eq!(finalizers_for_policy(vec![], Some(Orphan)), [ORPHAN]);
        let mut obj = json!({"metadata": {"generation": 2}});
        mark_deleting(&mut obj);
        assert_eq!(obj["metadata"]["generation"], 3);
        assert_eq!(obj["metadata"]["deletionGracePeriodSeconds"], 0);
        mark_deleting(&mut obj);
        assert_eq!(obj["metadata"]["generation"], 3);
        // Objects without a generation do not get one when deleted.
        let mut obj = json!({"metadata": {"name": "c"}});
        mark_deleting(&mut obj);
        assert!(obj["metadata"].get("generation").is_none());
    }
}
