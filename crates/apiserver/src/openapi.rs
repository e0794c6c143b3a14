//! A minimal OpenAPI v3 service: what kubectl needs to run `apply -f` and `create -f`.
//!
//! `/openapi/v3` lists every served group/version with a `hash` that changes whenever the set
//! of served types changes; `/openapi/v3/apis/{g}/{v}` holds one PATCH operation per kind,
//! tagged with `x-kubernetes-group-version-kind` and declaring the `fieldValidation`
//! parameter, so kubectl knows the kind exists and that the server validates fields itself.
//! No schemas are published (`kubectl explain` is not supported).

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{json, Map, Value};

use crate::discovery;
use crate::error::Result;
use crate::registry::Registry;

/// The hash a group/version's document is published under.
fn hash(revision: u64, group: &str, version: &str) -> String {
    // `DefaultHasher::new()` uses fixed keys, so the value is stable for a given input.
    let mut h = DefaultHasher::new();
    (revision, group, version).hash(&mut h);
    format!("{:016X}", h.finish())
}

fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// `/openapi/v3`.
pub fn root(registry: &Registry) -> Value {
    let revision = registry.revision();
    let mut paths = Map::new();
    let mut add = |group: &str, version: &str| {
        let p = gv_path(group, version);
        let url = format!("/openapi/v3/{p}?hash={}", hash(revision, group, version));
        paths.insert(p, json!({ "serverRelativeURL": url }));
    };
    add("", "v1");
    for g in discovery::groups(registry) {
        for v in &g.versions {
            add(&g.name, v);
        }
    }
    json!({ "paths": paths })
}

/// `/openapi/v3/api/v1` and `/openapi/v3/apis/{group}/{version}`.
pub fn group_version(registry: &Registry, group: &str, version: &str) -> Result<Value> {
    if !discovery::serves(registry, group, version) {
        return Err(crate::error::not_found());
    }
    let mut paths = Map::new();
    for rt in discovery::resources(registry, group, version) {
        let prefix = if group.is_empty() {
            format!("/api/{version}")
        } else {
            format!("/apis/{group}/{version}")
        };
        let path = if rt.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
        } else {
            format!("{prefix}/{}/{{name}}", rt.plural)
        };
        paths.insert(
            path,
            json!({
                "patch": {
                    "x-kubernetes-group-version-kind": {"group": group, "version": version, "kind": rt.kind},
                    "parameters": [{"name": "fieldValidation", "in": "query", "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "OK"}},
                }
            }),
        );
    }
    Ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": discovery::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": {}},
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_depends_on_revision_and_group_version() {
        assert_eq!(hash(1, "apps", "v1"), hash(1, "apps", "v1"));
        assert_ne!(hash(1, "apps", "v1"), hash(2, "apps", "v1"));
        assert_ne!(hash(1, "apps", "v1"), hash(1, "batch", "v1"));
        assert_eq!(hash(1, "", "v1").len(), 16);
    }

    #[test]
    fn paths_name_the_group_version() {
        assert_eq!(gv_path("", "v1"), "api/v1");
        assert_eq!(gv_path("example.com", "v1"), "apis/example.com/v1");
    }
}
