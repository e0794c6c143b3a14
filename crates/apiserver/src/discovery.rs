//! Legacy API discovery: `/version`, `/api`, `/apis`, `/apis/{g}`, `/api/v1` and
//! `/apis/{g}/{v}`, built from the registry on every request so new CRDs show up at once.
//!
//! Some types are served outside the registry: the self-subject reviews of
//! `authorization.k8s.io/v1` and `authentication.k8s.io/v1` (so `kubectl auth can-i` and
//! `kubectl auth whoami` work) and `apiextensions.k8s.io/v1beta1` CRDs, which accepts old
//! manifests and converts them to v1.

use std::net::SocketAddr;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::error::Result;
use crate::model::{subresources, GroupInfo, ResourceType};
use crate::registry::Registry;

/// The Kubernetes version the server reports.
pub const MAJOR: &str = "1";
pub const MINOR: &str = "32";
pub const GIT_VERSION: &str = "v1.32.0";

pub const AUTHORIZATION_GROUP: &str = "authorization.k8s.io";
pub const AUTHENTICATION_GROUP: &str = "authentication.k8s.io";
pub const APIEXTENSIONS_GROUP: &str = "apiextensions.k8s.io";

/// `/version`.
pub fn version() -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    json!({
        "major": MAJOR,
        "minor": MINOR,
        "gitVersion": GIT_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T00:00:00Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": format!("{}/{arch}", std::env::consts::OS),
    })
}

/// `/api`.
pub fn core_versions(addr: SocketAddr) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": addr.to_string()}],
    })
}

/// Create-only review types answered by the HTTP layer itself, as `(group, plural, kind)`:
/// every authenticated client may do anything, and says who it is.
pub const REVIEWS: &[(&str, &str, &str)] = &[
    (
        AUTHORIZATION_GROUP,
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    ),
    (
        AUTHORIZATION_GROUP,
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
    ),
    (
        AUTHENTICATION_GROUP,
        "selfsubjectreviews",
        "SelfSubjectReview",
    ),
];

/// Whether a type is one of the [`REVIEWS`].
pub fn is_review(rt: &ResourceType) -> bool {
    REVIEWS
        .iter()
        .any(|(g, p, _)| rt.group == *g && rt.plural == *p)
}

/// Served groups: the registry's plus the ones answered outside it.
pub fn groups(registry: &Registry) -> Vec<GroupInfo> {
    let mut groups = registry.groups();
    for (group, _, _) in REVIEWS {
        if !groups.iter().any(|g| g.name == *group) {
            groups.push(GroupInfo {
                name: group.to_string(),
                versions: vec!["v1".to_string()],
            });
        }
    }
    if let Some(g) = groups.iter_mut().find(|g| g.name == APIEXTENSIONS_GROUP) {
        if !g.versions.iter().any(|v| v == "v1beta1") {
            g.versions.push("v1beta1".to_string());
        }
    }
    groups
}

/// Types served at a group/version, including the ones answered outside the registry.
pub fn resources(registry: &Registry, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
    if group == APIEXTENSIONS_GROUP
        && version == "v1beta1"
        && registry
            .lookup(group, version, "customresourcedefinitions")
            .is_none()
    {
        return registry
            .lookup(group, "v1", "customresourcedefinitions")
            .map(|rt| {
                let mut rt = (*rt).clone();
                rt.version = "v1beta1".to_string();
                vec![Arc::new(rt)]
            })
            .unwrap_or_default();
    }
    let mut v = registry.resources(group, version);
    if version == "v1" {
        for (g, plural, kind) in REVIEWS {
            if *g == group && !v.iter().any(|rt| rt.plural == *plural) {
                v.push(Arc::new(review_type(g, plural, kind)));
            }
        }
    }
    v
}

/// The type served at `group/version/plural`, including the ones answered outside the registry.
pub fn lookup(
    registry: &Registry,
    group: &str,
    version: &str,
    plural: &str,
) -> Option<Arc<ResourceType>> {
    if let Some(rt) = registry.lookup(group, version, plural) {
        return Some(rt);
    }
    let special = (version == "v1" && REVIEWS.iter().any(|(g, p, _)| *g == group && *p == plural))
        || (group == APIEXTENSIONS_GROUP && version == "v1beta1");
    if !special {
        return None;
    }
    resources(registry, group, version)
        .into_iter()
        .find(|rt| rt.plural == plural)
}

/// The `SelfSubjectAccessReview` type (create only, always allowed).
pub fn self_subject_access_review() -> ResourceType {
    review_type(
        AUTHORIZATION_GROUP,
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
    )
}

/// A cluster-scoped, create-only review type.
fn review_type(group: &str, plural: &str, kind: &str) -> ResourceType {
    ResourceType {
        group: group.to_string(),
        version: "v1".to_string(),
        plural: plural.to_string(),
        singular: kind.to_lowercase(),
        kind: kind.to_string(),
        list_kind: format!("{kind}List"),
        namespaced: false,
        verbs: vec!["create".to_string()],
        short_names: vec![],
        categories: vec![],
        status_subresource: false,
        scale_subresource: None,
        generation: false,
        printer_columns: None,
        schema: None,
        custom: false,
        storage_version: "v1".to_string(),
    }
}

fn group_json(g: &GroupInfo) -> Value {
    let gv = |v: &String| json!({"groupVersion": format!("{}/{v}", g.name), "version": v});
    let versions: Vec<Value> = g.versions.iter().map(gv).collect();
    let mut out = json!({"name": g.name, "versions": versions});
    if let Some(first) = g.versions.first() {
        out["preferredVersion"] = gv(first);
    }
    out
}

/// `/apis`.
pub fn group_list(registry: &Registry) -> Value {
    let groups: Vec<Value> = groups(registry).iter().map(group_json).collect();
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
}

/// `/apis/{group}`.
pub fn group(registry: &Registry, name: &str) -> Result<Value> {
    let g = groups(registry)
        .into_iter()
        .find(|g| g.name == name)
        .ok_or_else(crate::error::not_found)?;
    let mut v = group_json(&g);
    v["kind"] = json!("APIGroup");
    v["apiVersion"] = json!("v1");
    Ok(v)
}

/// Whether `group/version` is served.
pub fn serves(registry: &Registry, group: &str, version: &str) -> bool {
    if group.is_empty() {
        return version == "v1";
    }
    groups(registry)
        .iter()
        .any(|g| g.name == group && g.versions.iter().any(|v| v == version))
}

/// `/api/v1` or `/apis/{group}/{version}`.
pub fn resource_list(registry: &Registry, group: &str, version: &str) -> Result<Value> {
    if !serves(registry, group, version) {
        return Err(crate::error::not_found());
    }
    let mut resources = Vec::new();
    for rt in resources_sorted(registry, group, version) {
        resources.push(resource_json(&rt));
        for sub in subresources(&rt) {
            let mut r = json!({
                "name": format!("{}/{}", rt.plural, sub.name),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": sub.kind,
                "verbs": sub.verbs,
            });
            if sub.group != rt.group || sub.version != rt.version {
                r["group"] = json!(sub.group);
                r["version"] = json!(sub.version);
            }
            resources.push(r);
        }
    }
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
    )
}

/// The Content-Type of aggregated discovery documents.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an Accept header asks for aggregated discovery (`apidiscovery.k8s.io/v2`) before
/// the legacy documents.
pub fn wants_aggregated(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return false };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let essence = parts.next().unwrap_or("").to_ascii_lowercase();
        let params: Vec<(String, String)> = parts
            .filter_map(|p| {
                p.split_once('=')
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            })
            .collect();
        let param = |k: &str| {
            params
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        if !matches!(
            essence.as_str(),
            "application/json" | "application/*" | "*/*"
        ) {
            continue;
        }
        match param("as") {
            None => return false,
            Some("APIGroupDiscoveryList")
                if param("g") == Some("apidiscovery.k8s.io") && param("v") == Some("v2") =>
            {
                return true
            }
            Some(_) => {}
        }
    }
    false
}

/// The aggregated discovery document of `/api` (`core`) or `/apis`: every group, version,
/// resource and subresource in one `APIGroupDiscoveryList`.
pub fn aggregated(registry: &Registry, core: bool) -> Value {
    let groups: Vec<GroupInfo> = if core {
        vec![GroupInfo {
            name: String::new(),
            versions: vec!["v1".to_string()],
        }]
    } else {
        groups(registry)
    };
    let items: Vec<Value> = groups
        .iter()
        .map(|g| {
            let versions: Vec<Value> = g
                .versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = resources_sorted(registry, &g.name, v)
                        .iter()
                        .map(|rt| aggregated_resource(rt))
                        .collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            json!({"metadata": {"name": g.name}, "versions": versions})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

fn aggregated_resource(rt: &ResourceType) -> Value {
    let kind = json!({"group": rt.group, "version": rt.version, "kind": rt.kind});
    let mut r = json!({
        "resource": rt.plural,
        "responseKind": kind,
        "scope": if rt.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": rt.singular,
        "verbs": rt.verbs,
    });
    if !rt.short_names.is_empty() {
        r["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        r["categories"] = json!(rt.categories);
    }
    let subresources: Vec<Value> = subresources(rt)
        .into_iter()
        .map(|sub| {
            json!({
                "subresource": sub.name,
                "responseKind": {"group": sub.group, "version": sub.version, "kind": sub.kind},
                "verbs": sub.verbs,
            })
        })
        .collect();
    if !subresources.is_empty() {
        r["subresources"] = json!(subresources);
    }
    r
}

fn resources_sorted(registry: &Registry, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
    let mut v = resources(registry, group, version);
    v.sort_by(|a, b| a.plural.cmp(&b.plural));
    v
}

fn resource_json(rt: &ResourceType) -> Value {
    let mut r = json!({
        "name": rt.plural,
        "singularName": rt.singular,
        "namespaced": rt.namespaced,
        "kind": rt.kind,
        "verbs": rt.verbs,
    });
    if !rt.short_names.is_empty() {
        r["shortNames"] = json!(rt.short_names);
    }
    if !rt.categories.is_empty() {
        r["categories"] = json!(rt.categories);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregated_discovery_is_negotiated() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(Some(kubectl)));
        assert!(!wants_aggregated(Some("application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")));
        assert!(!wants_aggregated(Some("application/json")));
        assert!(!wants_aggregated(Some("application/json, application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList")));
        assert!(!wants_aggregated(None));
    }

    #[test]
    fn aggregated_resources_list_subresources() {
        let rt = crate::builtins::builtin_types()
            .into_iter()
            .find(|t| t.group == "apps" && t.plural == "deployments")
            .expect("deployments");
        let r = aggregated_resource(&rt);
        assert_eq!(r["scope"], "Namespaced");
        assert_eq!(
            r["responseKind"],
            json!({"group": "apps", "version": "v1", "kind": "Deployment"})
        );
        assert_eq!(r["shortNames"], json!(["deploy"]));
        let subs: Vec<&str> = r["subresources"]
            .as_array()
            .expect("subresources")
            .iter()
            .filter_map(|s| s["subresource"].as_str())
            .collect();
        assert_eq!(subs, vec!["scale", "status"]);
        assert_eq!(r["subresources"][0]["responseKind"]["kind"], "Scale");
    }

    #[test]
    fn version_shape() {
        let v = version();
        assert_eq!(v["major"], "1");
        assert_eq!(v["minor"], "32");
        assert_eq!(v["gitVersion"], "v1.32.0");
        assert!(v["platform"].as_str().is_some_and(|p| p.contains('/')));
    }

    #[test]
    fn core_versions_shape() {
        let v = core_versions("127.0.0.1:6443".parse().expect("addr"));
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(
            v["serverAddressByClientCIDRs"][0]["serverAddress"],
            "127.0.0.1:6443"
        );
    }

    #[test]
    fn group_json_prefers_first_version() {
        let g = GroupInfo {
            name: "example.com".into(),
            versions: vec!["v1".into(), "v1beta1".into()],
        };
        let v = group_json(&g);
        assert_eq!(
            v["preferredVersion"],
            json!({"groupVersion": "example.com/v1", "version": "v1"})
        );
        assert_eq!(v["versions"][1]["groupVersion"], "example.com/v1beta1");
    }

    #[test]
    fn resource_json_omits_empty_lists() {
        let rt = self_subject_access_review();
        let v = resource_json(&rt);
        assert_eq!(v["name"], "selfsubjectaccessreviews");
        assert!(v.get("shortNames").is_none());
        assert!(v.get("categories").is_none());
    }
}
