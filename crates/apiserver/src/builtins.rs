//! The table of built-in resource types, as Kubernetes 1.32 discovery reports them.
//!
//! Each row gives what `/api/v1` and `/apis/<group>/<version>` advertise for a resource:
//! plural, singular, kind, scope, verbs, short names, categories, and whether the `status` and
//! `scale` subresources exist; plus whether the type's registry strategy tracks
//! `metadata.generation`. Only the types the embedded server stores are listed.

use crate::model::ResourceType;

/// The built-in API groups in the order kube-apiserver lists them under `/apis`.
/// The core group (`""`) is served under `/api` and comes before all of these.
pub const GROUP_ORDER: &[&str] = &[
    "apps",
    "events.k8s.io",
    "authorization.k8s.io",
    "batch",
    "networking.k8s.io",
    "policy",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "coordination.k8s.io",
];

/// Verbs of an ordinary resource.
const ALL: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// Namespaces cannot be deleted as a collection.
const NO_COLLECTION: &[&str] = &[
    "create", "delete", "get", "list", "patch", "update", "watch",
];
/// Review APIs only accept `create`.
const CREATE_ONLY: &[&str] = &["create"];

const NAMESPACED: bool = true;
const CLUSTER: bool = false;

/// `status` subresource present.
const STATUS: u8 = 1;
/// `scale` subresource present (served as `autoscaling/v1` Scale).
const SCALE: u8 = 2;
/// The strategy sets `metadata.generation` to 1 on create and bumps it when the spec changes
/// (Kubernetes 1.32: workloads, Jobs, CronJobs, Ingresses, IngressClasses, NetworkPolicies,
/// PodDisruptionBudgets, CRDs). ConfigMaps, Secrets, Pods, Services, Events, RBAC objects and
/// the rest have no generation.
const GEN: u8 = 4;

struct Row {
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    singular: &'static str,
    kind: &'static str,
    namespaced: bool,
    verbs: &'static [&'static str],
    short_names: &'static [&'static str],
    categories: &'static [&'static str],
    /// `STATUS`, `SCALE` and `GEN` bits.
    flags: u8,
}

#[rustfmt::skip]
const ROWS: &[Row] = &[
    // core/v1
    Row { group: "", version: "v1", plural: "configmaps", singular: "configmap", kind: "ConfigMap", namespaced: NAMESPACED, verbs: ALL, short_names: &["cm"], categories: &[], flags: 0 },
    Row { group: "", version: "v1", plural: "endpoints", singular: "endpoints", kind: "Endpoints", namespaced: NAMESPACED, verbs: ALL, short_names: &["ep"], categories: &[], flags: 0 },
    Row { group: "", version: "v1", plural: "events", singular: "event", kind: "Event", namespaced: NAMESPACED, verbs: ALL, short_names: &["ev"], categories: &[], flags: 0 },
    Row { group: "", version: "v1", plural: "limitranges", singular: "limitrange", kind: "LimitRange", namespaced: NAMESPACED, verbs: ALL, short_names: &["limits"], categories: &[], flags: 0 },
    Row { group: "", version: "v1", plural: "namespaces", singular: "namespace", kind: "Namespace", namespaced: CLUSTER, verbs: NO_COLLECTION, short_names: &["ns"], categories: &[], flags: STATUS },
    Row { group: "", version: "v1", plural: "nodes", singular: "node", kind: "Node", namespaced: CLUSTER, verbs: ALL, short_names: &["no"], categories: &[], flags: STATUS },
    Row { group: "", version: "v1", plural: "persistentvolumeclaims", singular: "persistentvolumeclaim", kind: "PersistentVolumeClaim", namespaced: NAMESPACED, verbs: ALL, short_names: &["pvc"], categories: &[], flags: STATUS },
    Row { group: "", version: "v1", plural: "persistentvolumes", singular: "persistentvolume", kind: "PersistentVolume", namespaced: CLUSTER, verbs: ALL, short_names: &["pv"], categories: &[], flags: STATUS },
    Row { group: "", version: "v1", plural: "pods", singular: "pod", kind: "Pod", namespaced: NAMESPACED, verbs: ALL, short_names: &["po"], categories: &["all"], flags: STATUS },
    Row { group: "", version: "v1", plural: "replicationcontrollers", singular: "replicationcontroller", kind: "ReplicationController", namespaced: NAMESPACED, verbs: ALL, short_names: &["rc"], categories: &["all"], flags: STATUS | SCALE | GEN },
    Row { group: "", version: "v1", plural: "resourcequotas", singular: "resourcequota", kind: "ResourceQuota", namespaced: NAMESPACED, verbs: ALL, short_names: &["quota"], categories: &[], flags: STATUS },
    Row { group: "", version: "v1", plural: "secrets", singular: "secret", kind: "Secret", namespaced: NAMESPACED, verbs: ALL, short_names: &[], categories: &[], flags: 0 },
    Row { group: "", version: "v1", plural: "serviceaccounts", singular: "serviceaccount", kind: "ServiceAccount", namespaced: NAMESPACED, verbs: ALL, short_names: &["sa"], categories: &[], flags: 0 },
    Row { group: "", version: "v1", plural: "services", singular: "service", kind: "Service", namespaced: NAMESPACED, verbs: ALL, short_names: &["svc"], categories: &["all"], flags: STATUS },
    // apps/v1
    Row { group: "apps", version: "v1", plural: "controllerrevisions", singular: "controllerrevision", kind: "ControllerRevision", namespaced: NAMESPACED, verbs: ALL, short_names: &[], categories: &[], flags: 0 },
    Row { group: "apps", version: "v1", plural: "daemonsets", singular: "daemonset", kind: "DaemonSet", namespaced: NAMESPACED, verbs: ALL, short_names: &["ds"], categories: &["all"], flags: STATUS | GEN },
    Row { group: "apps", version: "v1", plural: "deployments", singular: "deployment", kind: "Deployment", namespaced: NAMESPACED, verbs: ALL, short_names: &["deploy"], categories: &["all"], flags: STATUS | SCALE | GEN },
    Row { group: "apps", version: "v1", plural: "replicasets", singular: "replicaset", kind: "ReplicaSet", namespaced: NAMESPACED, verbs: ALL, short_names: &["rs"], categories: &["all"], flags: STATUS | SCALE | GEN },
    Row { group: "apps", version: "v1", plural: "statefulsets", singular: "statefulset", kind: "StatefulSet", namespaced: NAMESPACED, verbs: ALL, short_names: &["sts"], categories: &["all"], flags: STATUS | SCALE | GEN },
    // events.k8s.io/v1 (shares storage with core/v1 events)
    Row { group: "events.k8s.io", version: "v1", plural: "events", singular: "event", kind: "Event", namespaced: NAMESPACED, verbs: ALL, short_names: &["ev"], categories: &[], flags: 0 },
    // authorization.k8s.io/v1
    Row { group: "authorization.k8s.io", version: "v1", plural: "selfsubjectaccessreviews", singular: "selfsubjectaccessreview", kind: "SelfSubjectAccessReview", namespaced: CLUSTER, verbs: CREATE_ONLY, short_names: &[], categories: &[], flags: 0 },
    // batch/v1
    Row { group: "batch", version: "v1", plural: "cronjobs", singular: "cronjob", kind: "CronJob", namespaced: NAMESPACED, verbs: ALL, short_names: &["cj"], categories: &["all"], flags: STATUS | GEN },
    Row { group: "batch", version: "v1", plural: "jobs", singular: "job", kind: "Job", namespaced: NAMESPACED, verbs: ALL, short_names: &[], categories: &["all"], flags: STATUS | GEN },
    // networking.k8s.io/v1
    Row { group: "networking.k8s.io", version: "v1", plural: "ingressclasses", singular: "ingressclass", kind: "IngressClass", namespaced: CLUSTER, verbs: ALL, short_names: &[], categories: &[], flags: GEN },
    Row { group: "networking.k8s.io", version: "v1", plural: "ingresses", singular: "ingress", kind: "Ingress", namespaced: NAMESPACED, verbs: ALL, short_names: &["ing"], categories: &[], flags: STATUS | GEN },
    Row { group: "networking.k8s.io", version: "v1", plural: "networkpolicies", singular: "networkpolicy", kind: "NetworkPolicy", namespaced: NAMESPACED, verbs: ALL, short_names: &["netpol"], categories: &[], flags: GEN },
    // policy/v1
    Row { group: "policy", version: "v1", plural: "poddisruptionbudgets", singular: "poddisruptionbudget", kind: "PodDisruptionBudget", namespaced: NAMESPACED, verbs: ALL, short_names: &["pdb"], categories: &[], flags: STATUS | GEN },
    // rbac.authorization.k8s.io/v1
    Row { group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterrolebindings", singular: "clusterrolebinding", kind: "ClusterRoleBinding", namespaced: CLUSTER, verbs: ALL, short_names: &[], categories: &[], flags: 0 },
    Row { group: "rbac.authorization.k8s.io", version: "v1", plural: "clusterroles", singular: "clusterrole", kind: "ClusterRole", namespaced: CLUSTER, verbs: ALL, short_names: &[], categories: &[], flags: 0 },
    Row { group: "rbac.authorization.k8s.io", version: "v1", plural: "rolebindings", singular: "rolebinding", kind: "RoleBinding", namespaced: NAMESPACED, verbs: ALL, short_names: &[], categories: &[], flags: 0 },
    Row { group: "rbac.authorization.k8s.io", version: "v1", plural: "roles", singular: "role", kind: "Role", namespaced: NAMESPACED, verbs: ALL, short_names: &[], categories: &[], flags: 0 },
    // apiextensions.k8s.io/v1
    Row { group: "apiextensions.k8s.io", version: "v1", plural: "customresourcedefinitions", singular: "customresourcedefinition", kind: "CustomResourceDefinition", namespaced: CLUSTER, verbs: ALL, short_names: &["crd", "crds"], categories: &["api-extensions"], flags: STATUS | GEN },
    // coordination.k8s.io/v1
    Row { group: "coordination.k8s.io", version: "v1", plural: "leases", singular: "lease", kind: "Lease", namespaced: NAMESPACED, verbs: ALL, short_names: &[], categories: &[], flags: 0 },
];

/// The `scale` subresource description used for built-ins: where the replica counts and the
/// selector live (the same shape as a CRD's `subresources.scale`). kube-apiserver's Scale for
/// Deployments, ReplicaSets, StatefulSets and ReplicationControllers reports the string form
/// of `spec.selector` (a LabelSelector, or a plain map for ReplicationControllers) as
/// `status.selector`.
fn builtin_scale() -> serde_json::Value {
    serde_json::json!({
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".spec.selector",
    })
}

/// Every built-in type, in the table's order (grouped by group/version, plural alphabetical).
pub fn builtin_types() -> Vec<ResourceType> {
    ROWS.iter()
        .map(|r| ResourceType {
            group: r.group.to_string(),
            version: r.version.to_string(),
            plural: r.plural.to_string(),
            singular: r.singular.to_string(),
            kind: r.kind.to_string(),
            list_kind: format!("{}List", r.kind),
            namespaced: r.namespaced,
            verbs: r.verbs.iter().map(|v| v.to_string()).collect(),
            short_names: r.short_names.iter().map(|v| v.to_string()).collect(),
            categories: r.categories.iter().map(|v| v.to_string()).collect(),
            status_subresource: r.flags & STATUS != 0,
            scale_subresource: (r.flags & SCALE != 0).then(builtin_scale),
            generation: r.flags & GEN != 0,
            printer_columns: None,
            schema: None,
            custom: false,
            storage_version: r.version.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn rows_are_unique_and_grouped_in_order() {
        let types = builtin_types();
        let mut seen = HashSet::new();
        for t in &types {
            assert!(
                seen.insert((t.group.clone(), t.version.clone(), t.plural.clone())),
                "{t:?}"
            );
            assert!(
                t.group.is_empty() || GROUP_ORDER.contains(&t.group.as_str()),
                "{}",
                t.group
            );
        }
        // Plurals are alphabetical inside each group/version, as discovery lists them.
        for w in types.windows(2) {
            if w[0].group == w[1].group {
                assert!(
                    w[0].plural < w[1].plural,
                    "{} before {}",
                    w[0].plural,
                    w[1].plural
                );
            }
        }
    }

    #[test]
    fn all_category_matches_kubectl_get_all() {
        let mut all: Vec<String> = builtin_types()
            .into_iter()
            .filter(|t| t.categories.iter().any(|c| c == "all"))
            .map(|t| t.plural)
            .collect();
        all.sort();
        assert_eq!(
            all,
            [
                "cronjobs",
                "daemonsets",
                "deployments",
                "jobs",
                "pods",
                "replicasets",
                "replicationcontrollers",
                "services",
                "statefulsets"
            ]
        );
    }

    #[test]
    fn scale_only_where_kubernetes_has_it() {
        let scaled: HashSet<String> = builtin_types()
            .into_iter()
            .filter(|t| t.scale_subresource.is_some())
            .map(|t| t.plural)
            .collect();
        let want: HashSet<String> = [
            "deployments",
            "replicasets",
            "statefulsets",
            "replicationcontrollers",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(scaled, want);
        for t in builtin_types() {
            if let Some(scale) = &t.scale_subresource {
                assert_eq!(scale["labelSelectorPath"], ".spec.selector", "{}", t.plural);
            }
        }
        let ns = builtin_types()
            .into_iter()
            .find(|t| t.plural == "namespaces");
        assert!(ns.is_some_and(|t| t.status_subresource
            && !t.namespaced
            && !t.verbs.contains(&"deletecollection".into())));
    }
}
