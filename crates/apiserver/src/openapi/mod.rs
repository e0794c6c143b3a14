//! The OpenAPI service: `/openapi/v3` (what `kubectl explain`, `kubectl apply`'s field
//! validation probe and clients read) and `/openapi/v2` (JSON, or the protobuf encoding
//! client-go asks for).
//!
//! `/openapi/v3` lists every served group/version with a `hash` that changes whenever the set
//! of served types changes; `/openapi/v3/apis/{g}/{v}` holds one PATCH operation per kind
//! (tagged with `x-kubernetes-group-version-kind`, declaring the `fieldValidation` parameter,
//! so kubectl knows the server validates fields itself) and the schemas of the kinds under
//! `components.schemas`: built-in kinds from the Kubernetes definitions ([`builtin`]), custom
//! resources from their CRD's `openAPIV3Schema` with `metadata` as `ObjectMeta`. `/openapi/v2`
//! is the same for every group/version in one Swagger 2.0 document.

pub mod builtin;
mod proto;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{json, Map, Value};

use crate::discovery;
use crate::error::Result;
use crate::model::ResourceType;
use crate::registry::Registry;
use builtin::Flavour;

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

/// The PATCH operation of one kind: what kubectl looks for to learn that the kind exists and
/// that the server validates fields (`fieldValidation`).
fn patch_operation(rt: &ResourceType, flavour: Flavour) -> Value {
    let param = match flavour {
        Flavour::V3 => {
            json!({"name": "fieldValidation", "in": "query", "schema": {"type": "string"}})
        }
        Flavour::V2 => {
            json!({"name": "fieldValidation", "in": "query", "type": "string", "uniqueItems": true})
        }
    };
    json!({
        "patch": {
            "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version, "kind": rt.kind},
            "parameters": [param],
            "responses": {"200": {"description": "OK"}},
        }
    })
}

fn object_path(rt: &ResourceType) -> String {
    let prefix = if rt.group.is_empty() {
        format!("/api/{}", rt.version)
    } else {
        format!("/apis/{}/{}", rt.group, rt.version)
    };
    if rt.namespaced {
        format!("{prefix}/namespaces/{{namespace}}/{}/{{name}}", rt.plural)
    } else {
        format!("{prefix}/{}/{{name}}", rt.plural)
    }
}

/// The definition name of a custom resource's schema, as kube-apiserver names it: the group
/// reversed, then version and kind (`com.example.v1.Widget`).
pub fn custom_definition_name(group: &str, version: &str, kind: &str) -> String {
    let mut parts: Vec<&str> = group.split('.').collect();
    parts.reverse();
    format!("{}.{version}.{kind}", parts.join("."))
}

fn reference(flavour: Flavour, name: &str, description: &str) -> Value {
    match flavour {
        Flavour::V2 => json!({"$ref": format!("#/definitions/{name}"), "description": description}),
        Flavour::V3 => json!({
            "allOf": [{"$ref": format!("#/components/schemas/{name}")}],
            "description": description,
        }),
    }
}

/// A custom resource's definition: its `openAPIV3Schema` with `apiVersion`, `kind` and
/// `metadata` described as for every kind, and its group/version/kind.
fn custom_definition(rt: &ResourceType, schema: &Value, flavour: Flavour, meta: &str) -> Value {
    let mut d = schema.clone();
    let Value::Object(m) = &mut d else {
        return d;
    };
    m.insert("type".into(), json!("object"));
    if flavour == Flavour::V2 {
        // Swagger 2.0 has no `nullable`; kube-apiserver drops it (and the combinators) from
        // the v2 rendering of custom resources.
        strip_v2(m);
    }
    let props = m
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(p) = props {
        p.insert(
            "apiVersion".into(),
            json!({"type": "string", "description": "The versioned schema this object is represented in; servers convert recognized schemas to their latest internal value."}),
        );
        p.insert(
            "kind".into(),
            json!({"type": "string", "description": "The REST resource this object represents, in CamelCase; servers may infer it from the endpoint the client submits to."}),
        );
        p.insert(
            "metadata".into(),
            reference(flavour, meta, "Standard object metadata."),
        );
    }
    m.insert(
        "x-kubernetes-group-version-kind".into(),
        json!([{"group": rt.group, "kind": rt.kind, "version": rt.version}]),
    );
    d
}

fn strip_v2(m: &mut Map<String, Value>) {
    for k in [
        "nullable",
        "anyOf",
        "oneOf",
        "not",
        "x-kubernetes-validations",
    ] {
        m.remove(k);
    }
    for (_, v) in m.iter_mut() {
        match v {
            Value::Object(child) => strip_v2(child),
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(child) = item {
                        strip_v2(child);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The paths and definitions of the given types.
fn document_parts(
    types: &[std::sync::Arc<ResourceType>],
    flavour: Flavour,
    builtin_gv: Option<(&str, &str)>,
    with_builtins: bool,
) -> (Map<String, Value>, Map<String, Value>) {
    let mut paths = Map::new();
    let mut defs = if with_builtins {
        builtin::cached(flavour, builtin_gv).clone()
    } else {
        Map::new()
    };
    let mut meta_defs: Option<(String, Map<String, Value>)> = None;
    for rt in types {
        paths.insert(object_path(rt), patch_operation(rt, flavour));
        if !rt.custom {
            continue;
        }
        let (meta, extra) = meta_defs.get_or_insert_with(|| builtin::object_meta(flavour));
        let schema = rt.schema.clone().unwrap_or_else(
            || json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
        );
        let name = custom_definition_name(&rt.group, &rt.version, &rt.kind);
        defs.insert(name, custom_definition(rt, &schema, flavour, meta));
        for (k, v) in extra.iter() {
            defs.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    (paths, defs)
}

/// `/openapi/v3/api/v1` and `/openapi/v3/apis/{group}/{version}`.
pub fn group_version(registry: &Registry, group: &str, version: &str) -> Result<Value> {
    if !discovery::serves(registry, group, version) {
        return Err(crate::error::not_found());
    }
    let types = discovery::resources(registry, group, version);
    let (paths, schemas) = document_parts(
        &types,
        Flavour::V3,
        Some((group, version)),
        builtin::has_group_version(group, version),
    );
    Ok(json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": discovery::GIT_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    }))
}

/// `/openapi/v2` as JSON: every served type in one Swagger 2.0 document.
pub fn v2(registry: &Registry) -> Value {
    let mut types = discovery::resources(registry, "", "v1");
    for g in discovery::groups(registry) {
        for v in &g.versions {
            types.extend(discovery::resources(registry, &g.name, v));
        }
    }
    let (paths, definitions) = document_parts(&types, Flavour::V2, None, true);
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": discovery::GIT_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

/// The media type of the protobuf encoding of `/openapi/v2`.
pub const V2_PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// `/openapi/v2` in the protobuf encoding (gnostic's `openapi.v2.Document`).
pub fn v2_protobuf(doc: &Value) -> Vec<u8> {
    proto::document(doc)
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
