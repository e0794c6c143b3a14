//! The served-resource model: what a resource type is (group, version, kind, scope, verbs)
//! and which subresources the server serves for it. Discovery, OpenAPI, routing and the
//! handlers all read it from here.

use serde_json::Value;

/// The largest request body accepted, as kube-apiserver's default (3 MiB); also what one JSON
/// patch's copies may add to an object.
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// `(group, plural)`: the identity of a resource's storage, independent of version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

/// One resource type as served at one group/version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    /// The plural resource name used in URLs, e.g. `deployments`.
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Whether `/status` is served (built-ins with a status, CRDs with `subresources.status`).
    pub status_subresource: bool,
    /// CRD `subresources.scale` (specReplicasPath, statusReplicasPath, labelSelectorPath), if any.
    pub scale_subresource: Option<Value>,
    /// Whether the type's registry strategy tracks `metadata.generation` (1 on create, +1 on
    /// spec changes): custom resources, CRDs and the built-in workload and policy types.
    pub generation: bool,
    /// CRD `additionalPrinterColumns` for this version, if any.
    pub printer_columns: Option<Value>,
    /// CRD `openAPIV3Schema` for this version (pruning, defaults, strict field validation), if any.
    pub schema: Option<Value>,
    /// True for resources defined by a CustomResourceDefinition.
    pub custom: bool,
    /// The version objects are stored at (the CRD's storage version; for built-ins, `version`).
    pub storage_version: String,
}

impl ResourceType {
    pub fn group_resource(&self) -> GroupResource {
        GroupResource {
            group: self.group.clone(),
            resource: self.plural.clone(),
        }
    }

    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// A served API group for discovery.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInfo {
    pub name: String,
    /// Served versions, preferred first (Kubernetes version ordering).
    pub versions: Vec<String>,
}

/// Whether `/scale` is served for a type: custom resources with `subresources.scale`, and the
/// built-in workload kinds the table marks.
pub fn scale_served(rt: &ResourceType) -> bool {
    scale_paths(rt).is_some()
}

/// Whether `/token` is served: core service accounts.
pub fn token_served(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "serviceaccounts"
}

/// Whether `/finalize` is served: namespaces.
pub fn finalize_served(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "namespaces"
}

/// Whether `/log` is served: core pods.
pub fn log_served(rt: &ResourceType) -> bool {
    rt.group.is_empty() && rt.plural == "pods"
}

/// `(specReplicasPath, statusReplicasPath, labelSelectorPath)` of a scalable type, from its
/// `scale` subresource description (a CRD's, or the built-in table's). A selector found there
/// as an object (built-ins keep theirs in `spec.selector`) is reported in string form.
pub fn scale_paths(rt: &ResourceType) -> Option<(String, String, Option<String>)> {
    let scale = rt.scale_subresource.as_ref()?;
    let spec = scale
        .get("specReplicasPath")
        .and_then(Value::as_str)?
        .to_string();
    let status = scale
        .get("statusReplicasPath")
        .and_then(Value::as_str)
        .unwrap_or(".status.replicas")
        .to_string();
    let selector = scale
        .get("labelSelectorPath")
        .and_then(Value::as_str)
        .map(str::to_string);
    Some((spec, status, selector))
}

/// A served subresource and the kind it speaks.
pub struct Subresource {
    pub name: &'static str,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub verbs: &'static [&'static str],
}

/// The subresources served for a type: `status`, `scale` (autoscaling/v1 Scale), a
/// namespace's `finalize`, a pod's `log`, and a service account's `token`
/// (authentication.k8s.io/v1 TokenRequest).
pub fn subresources(rt: &ResourceType) -> Vec<Subresource> {
    let mut subs = Vec::new();
    let rw: &'static [&'static str] = &["get", "patch", "update"];
    if rt.status_subresource {
        subs.push(Subresource {
            name: "status",
            group: rt.group.clone(),
            version: rt.version.clone(),
            kind: rt.kind.clone(),
            verbs: rw,
        });
    }
    if scale_served(rt) {
        subs.push(Subresource {
            name: "scale",
            group: "autoscaling".to_string(),
            version: "v1".to_string(),
            kind: "Scale".to_string(),
            verbs: rw,
        });
    }
    if finalize_served(rt) {
        subs.push(Subresource {
            name: "finalize",
            group: rt.group.clone(),
            version: rt.version.clone(),
            kind: rt.kind.clone(),
            verbs: &["update"],
        });
    }
    if log_served(rt) {
        subs.push(Subresource {
            name: "log",
            group: rt.group.clone(),
            version: rt.version.clone(),
            kind: rt.kind.clone(),
            verbs: &["get"],
        });
    }
    if token_served(rt) {
        subs.push(Subresource {
            name: "token",
            group: "authentication.k8s.io".to_string(),
            version: "v1".to_string(),
            kind: "TokenRequest".to_string(),
            verbs: &["create"],
        });
    }
    // kube-apiserver lists a built-in type's subresources in path order; the CRD discovery
    // controller lists `status` before `scale`.
    if !rt.custom {
        subs.sort_by_key(|s| s.name);
    }
    subs
}
