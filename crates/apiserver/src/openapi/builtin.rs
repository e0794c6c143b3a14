//! Schemas of the built-in kinds, generated from the Kubernetes OpenAPI definitions that
//! `k8s-openapi` carries (its `JsonSchema` implementations), plus the Kubernetes extensions
//! clients read: `x-kubernetes-group-version-kind` on each kind, and the list semantics
//! (`x-kubernetes-list-type`, `x-kubernetes-list-map-keys`, `x-kubernetes-patch-strategy`,
//! `x-kubernetes-patch-merge-key`) from the strategic-merge table the server patches with.

use std::collections::HashSet;
use std::sync::OnceLock;

use k8s_openapi::api::{
    apps::v1 as apps, authorization::v1 as authz, batch::v1 as batch, coordination::v1 as coord,
    core::v1 as core, events::v1 as events, networking::v1 as net, policy::v1 as policy,
    rbac::v1 as rbac,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiext;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::generate::SchemaSettings;
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator};
use metacontroller_merge::strategic::{BuiltinSchema, ListStrategy, Schema as _};
use serde_json::{json, Map, Value};

/// Registers a type's schema (and everything it references) and returns its name.
type Add = fn(&mut SchemaGenerator) -> String;

fn add<T: JsonSchema>(g: &mut SchemaGenerator) -> String {
    g.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// Every built-in kind the server stores, by group, version and kind.
#[rustfmt::skip]
const KINDS: &[(&str, &str, &str, Add)] = &[
    ("", "v1", "ConfigMap", add::<core::ConfigMap>),
    ("", "v1", "Endpoints", add::<core::Endpoints>),
    ("", "v1", "Event", add::<core::Event>),
    ("", "v1", "LimitRange", add::<core::LimitRange>),
    ("", "v1", "Namespace", add::<core::Namespace>),
    ("", "v1", "Node", add::<core::Node>),
    ("", "v1", "PersistentVolumeClaim", add::<core::PersistentVolumeClaim>),
    ("", "v1", "PersistentVolume", add::<core::PersistentVolume>),
    ("", "v1", "Pod", add::<core::Pod>),
    ("", "v1", "ReplicationController", add::<core::ReplicationController>),
    ("", "v1", "ResourceQuota", add::<core::ResourceQuota>),
    ("", "v1", "Secret", add::<core::Secret>),
    ("", "v1", "ServiceAccount", add::<core::ServiceAccount>),
    ("", "v1", "Service", add::<core::Service>),
    ("apps", "v1", "ControllerRevision", add::<apps::ControllerRevision>),
    ("apps", "v1", "DaemonSet", add::<apps::DaemonSet>),
    ("apps", "v1", "Deployment", add::<apps::Deployment>),
    ("apps", "v1", "ReplicaSet", add::<apps::ReplicaSet>),
    ("apps", "v1", "StatefulSet", add::<apps::StatefulSet>),
    ("events.k8s.io", "v1", "Event", add::<events::Event>),
    ("authorization.k8s.io", "v1", "SelfSubjectAccessReview", add::<authz::SelfSubjectAccessReview>),
    ("batch", "v1", "CronJob", add::<batch::CronJob>),
    ("batch", "v1", "Job", add::<batch::Job>),
    ("networking.k8s.io", "v1", "IngressClass", add::<net::IngressClass>),
    ("networking.k8s.io", "v1", "Ingress", add::<net::Ingress>),
    ("networking.k8s.io", "v1", "NetworkPolicy", add::<net::NetworkPolicy>),
    ("policy", "v1", "PodDisruptionBudget", add::<policy::PodDisruptionBudget>),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", add::<rbac::ClusterRoleBinding>),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", add::<rbac::ClusterRole>),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", add::<rbac::RoleBinding>),
    ("rbac.authorization.k8s.io", "v1", "Role", add::<rbac::Role>),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", add::<apiext::CustomResourceDefinition>),
    ("coordination.k8s.io", "v1", "Lease", add::<coord::Lease>),
];

/// Which flavour of document the definitions are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    /// Swagger 2.0: `#/definitions/`, `$ref` with sibling descriptions.
    V2,
    /// OpenAPI 3.0: `#/components/schemas/`, a `$ref` with siblings wrapped in `allOf`.
    V3,
}

fn generator(flavour: Flavour) -> SchemaGenerator {
    let mut settings = SchemaSettings::openapi3();
    if flavour == Flavour::V2 {
        settings.definitions_path = "/definitions".into();
        // Swagger 2.0 has no `nullable` and kube-apiserver's v2 keeps descriptions next to
        // `$ref`; keep only the transforms that make the output plain JSON Schema.
        settings.transforms.clear();
    }
    settings.meta_schema = None;
    settings.into_generator()
}

/// The definitions of the built-in kinds of one group/version (`None`: of all of them),
/// each kind tagged with its group/version/kind.
pub fn definitions(flavour: Flavour, gv: Option<(&str, &str)>) -> Map<String, Value> {
    let mut g = generator(flavour);
    let mut roots: Vec<(String, &str, &str, &str)> = Vec::new();
    for (group, version, kind, add) in KINDS {
        if gv.is_some_and(|(gg, vv)| gg != *group || vv != *version) {
            continue;
        }
        roots.push((add(&mut g), group, version, kind));
    }
    if !roots.is_empty() {
        // The types every document of kube-apiserver carries for its operations.
        add::<meta::Status>(&mut g);
        add::<meta::DeleteOptions>(&mut g);
    }
    let mut defs = g.take_definitions(true);
    for (name, group, version, kind) in &roots {
        if let Some(Value::Object(d)) = defs.get_mut(name) {
            let gvk = d
                .entry("x-kubernetes-group-version-kind")
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = gvk {
                a.push(json!({"group": group, "kind": kind, "version": version}));
            }
        }
    }
    for (name, _, _, kind) in &roots {
        let mut seen = HashSet::new();
        annotate_lists(&mut defs, name, &mut Vec::new(), kind, &mut seen);
    }
    defs
}

/// The name a `$ref` (or a one-element `allOf` around one) points at.
fn ref_name(schema: &Value) -> Option<String> {
    let r = schema.get("$ref").or_else(|| {
        schema
            .get("allOf")
            .and_then(Value::as_array)
            .filter(|a| a.len() == 1)
            .and_then(|a| a[0].get("$ref"))
    })?;
    r.as_str()?.rsplit('/').next().map(str::to_string)
}

/// Adds the list extensions to the array properties reachable from definition `name`, whose
/// field path from the kind's root is `path` (list items add no segment).
fn annotate_lists(
    defs: &mut Map<String, Value>,
    name: &str,
    path: &mut Vec<String>,
    kind: &str,
    seen: &mut HashSet<String>,
) {
    if !seen.insert(name.to_string()) || path.len() > 16 {
        return;
    }
    let table = BuiltinSchema::new(Some(kind));
    let props: Vec<String> = defs
        .get(name)
        .and_then(|d| d.get("properties"))
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    for prop in props {
        path.push(prop.clone());
        let Some(schema) = defs
            .get_mut(name)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(&prop))
        else {
            path.pop();
            continue;
        };
        let mut next = ref_name(schema);
        if schema.get("type").and_then(Value::as_str) == Some("array") {
            if let Value::Object(m) = schema {
                match table.list_strategy(path) {
                    // A positive match wins over an `atomic` written when the definition
                    // was reached by another path first.
                    ListStrategy::MergeByKey(key) => {
                        m.insert("x-kubernetes-list-type".into(), json!("map"));
                        m.insert("x-kubernetes-list-map-keys".into(), json!([key]));
                        m.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
                        m.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                    }
                    ListStrategy::MergePrimitives => {
                        m.insert("x-kubernetes-list-type".into(), json!("set"));
                        m.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
                    }
                    ListStrategy::Replace => {
                        m.entry("x-kubernetes-list-type").or_insert(json!("atomic"));
                    }
                }
            }
            next = schema.get("items").and_then(ref_name);
        }
        if let Some(next) = next {
            annotate_lists(defs, &next, path, kind, seen);
        }
        path.pop();
    }
}

/// The built-in definitions, generated once per flavour and group/version.
pub fn cached(flavour: Flavour, gv: Option<(&str, &str)>) -> &'static Map<String, Value> {
    type Docs = Vec<(
        (Flavour, Option<(String, String)>),
        &'static Map<String, Value>,
    )>;
    static CACHE: OnceLock<std::sync::Mutex<Docs>> = OnceLock::new();
    let key = (flavour, gv.map(|(g, v)| (g.to_string(), v.to_string())));
    let cache = CACHE.get_or_init(Default::default);
    let mut docs = cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, d)) = docs.iter().find(|(k, _)| *k == key) {
        return d;
    }
    // Leaked on purpose: one document per group/version and flavour, built on first use and
    // kept for the life of the process.
    let d: &'static Map<String, Value> = Box::leak(Box::new(definitions(flavour, gv)));
    docs.push((key, d));
    d
}

/// Whether a group/version has built-in kinds.
pub fn has_group_version(group: &str, version: &str) -> bool {
    KINDS
        .iter()
        .any(|(g, v, _, _)| *g == group && *v == version)
}

/// The names of `ObjectMeta` and everything it references, for custom resources' documents.
pub fn object_meta(flavour: Flavour) -> (String, Map<String, Value>) {
    let mut g = generator(flavour);
    let name = add::<meta::ObjectMeta>(&mut g);
    (name, g.take_definitions(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_carry_their_group_version_kind_and_list_semantics() {
        let defs = definitions(Flavour::V3, Some(("apps", "v1")));
        let dep = &defs["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            dep["x-kubernetes-group-version-kind"],
            json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
        );
        let containers = &defs["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-list-type"], "map");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        let args = &defs["io.k8s.api.core.v1.Container"]["properties"]["args"];
        assert_eq!(args["x-kubernetes-list-type"], "atomic");
        let finalizers =
            &defs["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"]["properties"]["finalizers"];
        assert_eq!(finalizers["x-kubernetes-list-type"], "set");
        // v3 refs point into components.
        let spec = &dep["properties"]["spec"];
        assert_eq!(
            spec["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
        );
        assert!(defs.get("io.k8s.api.core.v1.ConfigMap").is_none());
    }

    #[test]
    fn v2_refs_point_into_definitions() {
        let defs = definitions(Flavour::V2, None);
        let pod = &defs["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["properties"]["spec"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodSpec"
        );
        // Every kind the server stores is described.
        for (_, _, kind, _) in KINDS {
            assert!(
                defs.values().any(|d| d["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|g| g["kind"] == *kind))),
                "{kind}"
            );
        }
    }
}
