//! Light Kubernetes metadata types: object metadata and label selectors.
//!
//! This crate stays free of Kubernetes client libraries, so it carries its own small
//! mirrors of `metav1.ObjectMeta`, `metav1.LabelSelector` and
//! `metav1.LabelSelectorRequirement`. [`ObjectMeta`] names the fields Metacontroller reads
//! and keeps every other field in [`ObjectMeta::extra`], so nothing is lost on a round trip.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Standard object metadata (the subset Metacontroller uses, plus everything else verbatim).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// Object name, unique within its namespace (or cluster, for cluster-scoped kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Namespace; absent for cluster-scoped objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Unique identifier assigned by the API server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Opaque version used for optimistic concurrency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// Sequence number of spec changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    /// Labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Finalizers that must be removed before the object disappears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalizers: Option<Vec<String>>,
    /// RFC 3339 time at which deletion was requested.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    /// Owner references, kept as raw JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner_references: Option<Vec<Value>>,
    /// Every other metadata field (creationTimestamp, managedFields, generateName, ...).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ObjectMeta {
    /// Metadata with only a name.
    pub fn named(name: impl Into<String>) -> Self {
        ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        }
    }

    /// The name, or `""` when unset.
    pub fn name_or_empty(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

/// A label query: `matchLabels` and `matchExpressions` are ANDed. An empty selector matches
/// everything; an absent one usually matches nothing (the caller decides).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-map-type" = "atomic"))]
pub struct LabelSelector {
    /// Exact key/value pairs that must all be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_labels: Option<BTreeMap<String, String>>,
    /// Set-based requirements that must all hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// One set-based requirement of a label (or annotation) selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelectorRequirement {
    /// The key the requirement applies to.
    pub key: String,
    /// One of `In`, `NotIn`, `Exists`, `DoesNotExist`.
    pub operator: String,
    /// Values for `In` and `NotIn`; empty for `Exists` and `DoesNotExist`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub values: Option<Vec<String>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn object_meta_keeps_unknown_fields() {
        let raw = json!({
            "name": "a",
            "namespace": "ns",
            "uid": "u-1",
            "resourceVersion": "42",
            "generation": 3,
            "labels": {"app": "x"},
            "annotations": {"k": "v"},
            "finalizers": ["f"],
            "deletionTimestamp": "2024-01-01T00:00:00Z",
            "ownerReferences": [{"kind": "Foo", "name": "p", "controller": true}],
            "creationTimestamp": "2023-01-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}]
        });
        let meta: ObjectMeta = serde_json::from_value(raw.clone()).expect("deserializes");
        assert_eq!(meta.generation, Some(3));
        assert_eq!(meta.resource_version.as_deref(), Some("42"));
        assert!(meta.extra.contains_key("creationTimestamp"));
        assert_eq!(serde_json::to_value(&meta).expect("serializes"), raw);
    }

    #[test]
    fn empty_meta_serializes_to_empty_object() {
        assert_eq!(
            serde_json::to_value(ObjectMeta::default()).expect("serializes"),
            json!({})
        );
        assert_eq!(ObjectMeta::named("x").name_or_empty(), "x");
        assert_eq!(ObjectMeta::default().name_or_empty(), "");
    }

    #[test]
    fn selector_round_trips() {
        let raw = json!({
            "matchLabels": {"app": "nginx"},
            "matchExpressions": [
                {"key": "tier", "operator": "In", "values": ["a", "b"]},
                {"key": "canary", "operator": "DoesNotExist"}
            ]
        });
        let sel: LabelSelector = serde_json::from_value(raw.clone()).expect("deserializes");
        assert_eq!(sel.match_expressions.as_ref().map(Vec::len), Some(2));
        assert_eq!(serde_json::to_value(&sel).expect("serializes"), raw);
    }
}
