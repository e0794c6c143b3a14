//! The hook wire protocol: the JSON bodies Metacontroller POSTs to webhooks and the replies
//! it expects, identical to upstream Metacontroller's.
//!
//! | hook | request | response |
//! |---|---|---|
//! | CompositeController sync / finalize | [`CompositeHookRequest`] | [`CompositeHookResponse`] |
//! | DecoratorController sync / finalize | [`DecoratorHookRequest`] | [`DecoratorHookResponse`] |
//! | customize (both kinds) | [`CustomizeHookRequest`] | [`CustomizeHookResponse`] |
//!
//! Children, attachments and related objects travel as an [`ObjectMap`]: the outer key is
//! `<Kind>.<apiVersion>` ([`child_map_key`], e.g. `Pod.v1`, `Deployment.apps/v1`), the inner
//! key names the object ([`child_name_key`]), depending on the hook's [`HookVersion`]:
//!
//! ```text
//!                       parent namespaced      parent cluster-scoped
//! v1, namespaced obj    name                   namespace/name
//! v2, namespaced obj    namespace/name         namespace/name
//! any, cluster obj      name                   name
//! ```
//!
//! Upstream builds uniform (`v2`) maps and rekeys them for `v1` hooks;
//! [`uniform_to_relative`] does the same, including upstream's filtering.
//!
//! Replies are decoded leniently, like Go's `encoding/json`: missing fields and JSON `null`
//! take the zero value (empty list/map, `0`, `false`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::meta::LabelSelector;
use crate::webhook::HookVersion;

/// Objects grouped by `<Kind>.<apiVersion>`, then by (relative or uniform) name.
pub type ObjectMap = BTreeMap<String, BTreeMap<String, Value>>;

/// An [`ObjectMap`] that borrows its objects: a request built from objects the caller keeps
/// anyway encodes without copying them.
pub type ObjectRefMap<'a> = BTreeMap<String, BTreeMap<String, &'a Value>>;

/// Outer key of an [`ObjectMap`]: `<Kind>.<apiVersion>`, e.g. `Pod.v1`, `Deployment.apps/v1`.
pub fn child_map_key(kind: &str, api_version: &str) -> String {
    format!("{kind}.{api_version}")
}

/// Splits an [`ObjectMap`] key into `(kind, apiVersion)`; `None` if it has no `.`.
/// Kinds never contain dots, so the first dot separates them.
pub fn parse_child_map_key(key: &str) -> Option<(&str, &str)> {
    key.split_once('.')
        .filter(|(kind, api_version)| !kind.is_empty() && !api_version.is_empty())
}

/// Inner key of an [`ObjectMap`] for an object called `name` in `namespace` (`None` or `""`
/// for cluster-scoped objects) under a parent in `parent_namespace` (`None` or `""` for a
/// cluster-scoped parent). See the module table.
pub fn child_name_key(
    version: HookVersion,
    parent_namespace: Option<&str>,
    namespace: Option<&str>,
    name: &str,
) -> String {
    let namespace = namespace.filter(|ns| !ns.is_empty());
    let parent_is_cluster_scoped = parent_namespace.is_none_or(str::is_empty);
    match namespace {
        Some(ns) if version == HookVersion::V2 || parent_is_cluster_scoped => {
            format!("{ns}/{name}")
        }
        _ => name.to_string(),
    }
}

/// Why an object could not be placed in an [`ObjectMap`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectKeyError {
    /// The object lacks a string field needed to key it.
    #[error("object has no {0}")]
    MissingField(&'static str),
}

/// Inserts `object` into `map` under its kind and name, keyed for `version` and a parent in
/// `parent_namespace`. Returns the object previously stored under the same key, if any.
pub fn insert_object(
    map: &mut ObjectMap,
    version: HookVersion,
    parent_namespace: Option<&str>,
    object: Value,
) -> Result<Option<Value>, ObjectKeyError> {
    let (outer, inner) = object_keys(version, parent_namespace, &object)?;
    Ok(map.entry(outer).or_default().insert(inner, object))
}

/// [`insert_object`] for an [`ObjectRefMap`].
pub fn insert_object_ref<'a>(
    map: &mut ObjectRefMap<'a>,
    version: HookVersion,
    parent_namespace: Option<&str>,
    object: &'a Value,
) -> Result<Option<&'a Value>, ObjectKeyError> {
    let (outer, inner) = object_keys(version, parent_namespace, object)?;
    Ok(map.entry(outer).or_default().insert(inner, object))
}

/// The outer and inner keys of `object` in an [`ObjectMap`].
fn object_keys(
    version: HookVersion,
    parent_namespace: Option<&str>,
    object: &Value,
) -> Result<(String, String), ObjectKeyError> {
    let kind = str_field(object, &["kind"]).ok_or(ObjectKeyError::MissingField("kind"))?;
    let api_version =
        str_field(object, &["apiVersion"]).ok_or(ObjectKeyError::MissingField("apiVersion"))?;
    let name = str_field(object, &["metadata", "name"])
        .ok_or(ObjectKeyError::MissingField("metadata.name"))?;
    let namespace = str_field(object, &["metadata", "namespace"]);
    Ok((
        child_map_key(kind, api_version),
        child_name_key(version, parent_namespace, namespace, name),
    ))
}

/// Rekeys a `v2` (uniform) map for a `v1` hook, as upstream does before calling a `v1`
/// hook: under a cluster-scoped parent every object is kept; under a namespaced parent only
/// objects in the parent's namespace are (cluster-scoped objects and other namespaces are
/// dropped). Empty kind groups are kept, so the hook still sees every declared kind.
pub fn uniform_to_relative(uniform: &ObjectMap, parent_namespace: Option<&str>) -> ObjectMap {
    let parent_namespace = parent_namespace.filter(|ns| !ns.is_empty());
    uniform
        .iter()
        .map(|(kind_key, objects)| {
            let group = objects
                .iter()
                .filter_map(|(key, object)| {
                    let namespace =
                        str_field(object, &["metadata", "namespace"]).filter(|ns| !ns.is_empty());
                    if parent_namespace.is_some() && namespace != parent_namespace {
                        return None;
                    }
                    // Fall back to the uniform key's last segment when the object has no name.
                    let name = str_field(object, &["metadata", "name"])
                        .unwrap_or_else(|| key.rsplit('/').next().unwrap_or(key));
                    let relative =
                        child_name_key(HookVersion::V1, parent_namespace, namespace, name);
                    Some((relative, object.clone()))
                })
                .collect();
            (kind_key.clone(), group)
        })
        .collect()
}

fn str_field<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_str)
}

/// Deserializes `null` as the type's default, as Go does for slices, maps and numbers.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// `resyncAfterSeconds` as a duration, when positive and finite.
fn resync_after(seconds: f64) -> Option<Duration> {
    if seconds.is_finite() && seconds > 0.0 {
        Duration::try_from_secs_f64(seconds).ok()
    } else {
        None
    }
}

/// Body of a CompositeController `sync` or `finalize` call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompositeHookRequest {
    /// The CompositeController object.
    #[serde(default)]
    pub controller: Value,
    /// The parent object.
    #[serde(default)]
    pub parent: Value,
    /// Observed children claimed by the parent, one group per declared child kind.
    #[serde(default, deserialize_with = "null_as_default")]
    pub children: ObjectMap,
    /// Related objects selected by the customize hook.
    #[serde(default, deserialize_with = "null_as_default")]
    pub related: ObjectMap,
    /// True when the finalize hook is called (the parent is being deleted).
    #[serde(default, deserialize_with = "null_as_default")]
    pub finalizing: bool,
}

/// Reply of a CompositeController `sync` or `finalize` hook.
///
/// `status` absent or `null` does not mean "unchanged": upstream then writes a status holding
/// only `observedGeneration`. Metacontroller always sets `status.observedGeneration`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CompositeHookResponse {
    /// New parent status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Map<String, Value>>,
    /// Desired children; any observed child missing here is deleted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub children: Vec<Value>,
    /// Ask to be synced again after this many seconds (fractions allowed); 0 means never.
    #[serde(default, deserialize_with = "null_as_default")]
    pub resync_after_seconds: f64,
    /// Finalize hook only: true once cleanup is complete and the finalizer may go.
    #[serde(default, deserialize_with = "null_as_default")]
    pub finalized: bool,
}

/// A [`CompositeHookRequest`] that borrows its parts, so a sync encodes the request straight
/// from what it holds, without copying the parent and children into one JSON tree first. It
/// encodes exactly as the owned request with the same contents does.
#[derive(Debug, Serialize)]
pub struct CompositeHookRequestRef<'a, P: Serialize> {
    /// The CompositeController object.
    pub controller: &'a Value,
    /// The parent object.
    pub parent: &'a P,
    /// Observed children claimed by the parent.
    pub children: &'a ObjectRefMap<'a>,
    /// Related objects selected by the customize hook.
    pub related: &'a ObjectMap,
    /// True when the finalize hook is called.
    pub finalizing: bool,
}

/// A [`DecoratorHookRequest`] that borrows its parts; see [`CompositeHookRequestRef`].
#[derive(Debug, Serialize)]
pub struct DecoratorHookRequestRef<'a, P: Serialize> {
    /// The DecoratorController object.
    pub controller: &'a Value,
    /// The decorated object.
    pub object: &'a P,
    /// Observed attachments.
    pub attachments: &'a ObjectRefMap<'a>,
    /// Related objects selected by the customize hook.
    pub related: &'a ObjectMap,
    /// True when the finalize hook is called.
    pub finalizing: bool,
}

impl CompositeHookResponse {
    /// The requested resync delay, when positive.
    pub fn resync_after(&self) -> Option<Duration> {
        resync_after(self.resync_after_seconds)
    }
}

/// Body of a DecoratorController `sync` or `finalize` call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecoratorHookRequest {
    /// The DecoratorController object.
    #[serde(default)]
    pub controller: Value,
    /// The decorated object.
    #[serde(default)]
    pub object: Value,
    /// Observed attachments, one group per declared attachment kind.
    #[serde(default, deserialize_with = "null_as_default")]
    pub attachments: ObjectMap,
    /// Related objects selected by the customize hook.
    #[serde(default, deserialize_with = "null_as_default")]
    pub related: ObjectMap,
    /// True when the finalize hook is called (the object is being deleted).
    #[serde(default, deserialize_with = "null_as_default")]
    pub finalizing: bool,
}

/// Reply of a DecoratorController `sync` or `finalize` hook.
///
/// `labels` and `annotations` are merged into the object's: a string value sets the key, a
/// `null` value removes it, keys not mentioned are left alone. `status` absent and `status:
/// null` both leave the object's status unchanged ([`None`]); an object replaces it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DecoratorHookResponse {
    /// Labels to set (`Some`) or remove (`None`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub labels: BTreeMap<String, Option<String>>,
    /// Annotations to set (`Some`) or remove (`None`).
    #[serde(default, deserialize_with = "null_as_default")]
    pub annotations: BTreeMap<String, Option<String>>,
    /// New status, or `None` to leave it unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Map<String, Value>>,
    /// Desired attachments; any observed attachment missing here is deleted.
    #[serde(default, deserialize_with = "null_as_default")]
    pub attachments: Vec<Value>,
    /// Ask to be synced again after this many seconds (fractions allowed); 0 means never.
    #[serde(default, deserialize_with = "null_as_default")]
    pub resync_after_seconds: f64,
    /// Finalize hook only: true once cleanup is complete and the finalizer may go.
    #[serde(default, deserialize_with = "null_as_default")]
    pub finalized: bool,
}

impl DecoratorHookResponse {
    /// The requested resync delay, when positive.
    pub fn resync_after(&self) -> Option<Duration> {
        resync_after(self.resync_after_seconds)
    }
}

/// Body of a `customize` call (both controller kinds).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomizeHookRequest {
    /// The CompositeController or DecoratorController object.
    #[serde(default)]
    pub controller: Value,
    /// The parent (or decorated) object.
    #[serde(default)]
    pub parent: Value,
}

/// Reply of a `customize` hook: which other objects the sync hook should receive in
/// `related`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomizeHookResponse {
    /// Rules selecting related objects; their union is sent.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub related_resources: Vec<RelatedResourceRule>,
}

/// One rule of a customize reply. Objects of the kind are selected by `names` when given,
/// otherwise by `labelSelector`; `namespace` and `namespaceSelector` narrow namespaced kinds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RelatedResourceRule {
    /// Group/version of the kind, e.g. `v1`.
    pub api_version: String,
    /// Plural resource name, e.g. `configmaps`.
    pub resource: String,
    /// Label selector over the objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Label selector over the namespaces the objects live in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_selector: Option<LabelSelector>,
    /// Only this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only objects with these names.
    #[serde(default, deserialize_with = "null_as_default")]
    pub names: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object_map() -> ObjectMap {
        let mut map = ObjectMap::new();
        map.entry("Pod.v1".into()).or_default().insert(
            "b".into(),
            json!({"metadata": {"name": "b"}, "z": 1, "a": 2}),
        );
        map.entry("Pod.v1".into())
            .or_default()
            .insert("a".into(), json!({"metadata": {"name": "a"}}));
        map.entry("ConfigMap.v1".into()).or_default();
        map
    }

    fn borrow(map: &ObjectMap) -> ObjectRefMap<'_> {
        map.iter()
            .map(|(k, objects)| {
                let objects = objects.iter().map(|(n, o)| (n.clone(), o)).collect();
                (k.clone(), objects)
            })
            .collect()
    }

    #[test]
    fn borrowed_requests_encode_as_the_owned_ones() {
        let composite = CompositeHookRequest {
            controller: json!({"kind": "CompositeController"}),
            parent: json!({"metadata": {"name": "p"}, "spec": {"who": "x"}}),
            children: object_map(),
            related: ObjectMap::new(),
            finalizing: true,
        };
        let children = borrow(&composite.children);
        let borrowed = CompositeHookRequestRef {
            controller: &composite.controller,
            parent: &composite.parent,
            children: &children,
            related: &composite.related,
            finalizing: composite.finalizing,
        };
        assert_eq!(
            serde_json::to_string(&borrowed).expect("encode"),
            serde_json::to_string(&composite).expect("encode")
        );
        let decorator = DecoratorHookRequest {
            controller: json!({"kind": "DecoratorController"}),
            object: json!({"metadata": {"name": "o"}}),
            attachments: object_map(),
            related: object_map(),
            finalizing: false,
        };
        let borrowed = DecoratorHookRequestRef {
            controller: &decorator.controller,
            object: &decorator.object,
            attachments: &borrow(&decorator.attachments),
            related: &decorator.related,
            finalizing: decorator.finalizing,
        };
        assert_eq!(
            serde_json::to_string(&borrowed).expect("encode"),
            serde_json::to_string(&decorator).expect("encode")
        );
    }

    #[test]
    fn map_keys() {
        assert_eq!(child_map_key("Pod", "v1"), "Pod.v1");
        assert_eq!(child_map_key("Deployment", "apps/v1"), "Deployment.apps/v1");
        assert_eq!(
            child_map_key("Foo", "ctl.example.com/v1"),
            "Foo.ctl.example.com/v1"
        );
        assert_eq!(parse_child_map_key("Pod.v1"), Some(("Pod", "v1")));
        assert_eq!(
            parse_child_map_key("Foo.ctl.example.com/v1"),
            Some(("Foo", "ctl.example.com/v1"))
        );
        assert_eq!(parse_child_map_key("Pod"), None);
        assert_eq!(parse_child_map_key(".v1"), None);
        assert_eq!(parse_child_map_key("Pod."), None);
    }

    #[test]
    fn name_keys_follow_the_version_table() {
        use HookVersion::{V1, V2};
        // Namespaced parent.
        assert_eq!(child_name_key(V1, Some("ns"), Some("ns"), "a"), "a");
        assert_eq!(child_name_key(V2, Some("ns"), Some("ns"), "a"), "ns/a");
        // Cluster-scoped parent, namespaced child.
        assert_eq!(child_name_key(V1, None, Some("ns"), "a"), "ns/a");
        assert_eq!(child_name_key(V1, Some(""), Some("ns"), "a"), "ns/a");
        assert_eq!(child_name_key(V2, None, Some("ns"), "a"), "ns/a");
        // Cluster-scoped child.
        assert_eq!(child_name_key(V1, None, None, "a"), "a");
        assert_eq!(child_name_key(V2, None, Some(""), "a"), "a");
        assert_eq!(child_name_key(V2, Some("ns"), None, "a"), "a");
    }

    #[test]
    fn insert_object_keys_by_kind_and_name() {
        let mut map = ObjectMap::new();
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"}});
        assert_eq!(
            insert_object(&mut map, HookVersion::V1, Some("ns"), pod.clone()),
            Ok(None)
        );
        assert_eq!(map["Pod.v1"]["p"], pod);
        insert_object(&mut map, HookVersion::V2, Some("ns"), pod.clone()).expect("valid");
        assert_eq!(map["Pod.v1"]["ns/p"], pod);
        let replaced = insert_object(&mut map, HookVersion::V1, Some("ns"), pod.clone());
        assert_eq!(replaced, Ok(Some(pod)));
        assert_eq!(
            insert_object(
                &mut map,
                HookVersion::V1,
                None,
                json!({"kind": "Pod", "metadata": {"name": "x"}})
            ),
            Err(ObjectKeyError::MissingField("apiVersion"))
        );
        assert_eq!(
            insert_object(
                &mut map,
                HookVersion::V1,
                None,
                json!({"kind": "Pod", "apiVersion": "v1"})
            ),
            Err(ObjectKeyError::MissingField("metadata.name"))
        );
        assert_eq!(
            insert_object(&mut map, HookVersion::V1, None, json!({})),
            Err(ObjectKeyError::MissingField("kind"))
        );
    }

    #[test]
    fn uniform_to_relative_filters_like_upstream() {
        let pod = |ns: &str, name: &str| json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"namespace": ns, "name": name}});
        let node = json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}});
        let mut uniform = ObjectMap::new();
        for obj in [pod("a", "p1"), pod("b", "p2"), node.clone()] {
            insert_object(&mut uniform, HookVersion::V2, Some("a"), obj).expect("valid");
        }
        uniform.insert("Secret.v1".into(), BTreeMap::new());
        assert_eq!(
            uniform["Pod.v1"].keys().collect::<Vec<_>>(),
            ["a/p1", "b/p2"]
        );

        let namespaced = uniform_to_relative(&uniform, Some("a"));
        assert_eq!(namespaced["Pod.v1"].keys().collect::<Vec<_>>(), ["p1"]);
        assert_eq!(namespaced["Pod.v1"]["p1"], pod("a", "p1"));
        assert!(
            namespaced["Node.v1"].is_empty(),
            "cluster-scoped objects are dropped"
        );
        assert!(namespaced["Secret.v1"].is_empty(), "empty groups survive");

        let cluster = uniform_to_relative(&uniform, None);
        assert_eq!(
            cluster["Pod.v1"].keys().collect::<Vec<_>>(),
            ["a/p1", "b/p2"]
        );
        assert_eq!(cluster["Node.v1"]["n1"], node);
        assert_eq!(uniform_to_relative(&uniform, Some("")), cluster);
    }

    #[test]
    fn composite_request_serializes_every_field() {
        let mut req = CompositeHookRequest {
            controller: json!({"kind": "CompositeController"}),
            parent: json!({"kind": "HelloWorld"}),
            ..Default::default()
        };
        req.children.insert("Pod.v1".into(), BTreeMap::new());
        let v = serde_json::to_value(&req).expect("serializes");
        assert_eq!(
            v,
            json!({
                "controller": {"kind": "CompositeController"},
                "parent": {"kind": "HelloWorld"},
                "children": {"Pod.v1": {}},
                "related": {},
                "finalizing": false
            })
        );
        let back: CompositeHookRequest = serde_json::from_value(v).expect("deserializes");
        assert_eq!(back, req);
    }

    #[test]
    fn composite_response_decodes_like_go() {
        let r: CompositeHookResponse = serde_json::from_value(json!({
            "status": {"replicas": 1},
            "children": [{"kind": "Pod"}],
            "resyncAfterSeconds": 2.5,
            "finalized": true,
            "unknown": "ignored"
        }))
        .expect("valid");
        assert_eq!(
            r.status.as_ref().map(|s| s["replicas"].clone()),
            Some(json!(1))
        );
        assert_eq!(r.children.len(), 1);
        assert_eq!(r.resync_after(), Some(Duration::from_millis(2500)));
        assert!(r.finalized);

        let empty: CompositeHookResponse = serde_json::from_value(json!({})).expect("valid");
        assert_eq!(empty, CompositeHookResponse::default());
        assert_eq!(empty.resync_after(), None);
        let nulls: CompositeHookResponse = serde_json::from_value(json!({
            "status": null, "children": null, "resyncAfterSeconds": null, "finalized": null
        }))
        .expect("valid");
        assert_eq!(nulls, CompositeHookResponse::default());
        // Integers are accepted for the float field.
        let int: CompositeHookResponse =
            serde_json::from_value(json!({"resyncAfterSeconds": 3})).expect("valid");
        assert_eq!(int.resync_after(), Some(Duration::from_secs(3)));
        let negative: CompositeHookResponse =
            serde_json::from_value(json!({"resyncAfterSeconds": -1})).expect("valid");
        assert_eq!(negative.resync_after(), None);
        // A non-object status is an error, as in upstream.
        assert!(serde_json::from_value::<CompositeHookResponse>(json!({"status": "ok"})).is_err());
    }

    #[test]
    fn decorator_response_distinguishes_remove_from_unchanged() {
        let r: DecoratorHookResponse = serde_json::from_value(json!({
            "labels": {"set": "yes", "drop": null},
            "annotations": null,
            "status": null,
            "attachments": [{"kind": "Service"}]
        }))
        .expect("valid");
        assert_eq!(r.labels.get("set"), Some(&Some("yes".to_string())));
        assert_eq!(r.labels.get("drop"), Some(&None));
        assert!(!r.labels.contains_key("other"));
        assert!(r.annotations.is_empty());
        assert_eq!(r.status, None);
        assert_eq!(r.attachments.len(), 1);
        let absent: DecoratorHookResponse = serde_json::from_value(json!({})).expect("valid");
        assert_eq!(absent.status, None);
        let set: DecoratorHookResponse =
            serde_json::from_value(json!({"status": {}})).expect("valid");
        assert_eq!(set.status, Some(Map::new()));
        // Serializing keeps the null (remove) entries.
        let out = serde_json::to_value(&r).expect("serializes");
        assert_eq!(out["labels"], json!({"drop": null, "set": "yes"}));
    }

    #[test]
    fn decorator_request_uses_object_and_attachments() {
        let req = DecoratorHookRequest {
            object: json!({"kind": "StatefulSet"}),
            finalizing: true,
            ..Default::default()
        };
        let v = serde_json::to_value(&req).expect("serializes");
        let keys: Vec<_> = v
            .as_object()
            .map(|o| o.keys().cloned().collect())
            .unwrap_or_default();
        assert_eq!(
            keys,
            [
                "controller",
                "object",
                "attachments",
                "related",
                "finalizing"
            ]
        );
        assert_eq!(v["finalizing"], true);
    }

    #[test]
    fn customize_round_trip() {
        let req = CustomizeHookRequest {
            controller: json!({}),
            parent: json!({"kind": "X"}),
        };
        assert_eq!(
            serde_json::to_value(&req).expect("serializes"),
            json!({"controller": {}, "parent": {"kind": "X"}})
        );
        let r: CustomizeHookResponse = serde_json::from_value(json!({
            "relatedResources": [
                {"apiVersion": "v1", "resource": "configmaps",
                 "labelSelector": {"matchLabels": {"app": "x"}}},
                {"apiVersion": "v1", "resource": "secrets", "namespace": "ns",
                 "names": ["a", "b"], "namespaceSelector": {"matchLabels": {"team": "t"}}}
            ]
        }))
        .expect("valid");
        assert_eq!(r.related_resources.len(), 2);
        assert!(r.related_resources[0].names.is_empty());
        assert_eq!(r.related_resources[1].namespace.as_deref(), Some("ns"));
        assert!(r.related_resources[1].namespace_selector.is_some());
        let none: CustomizeHookResponse =
            serde_json::from_value(json!({"relatedResources": null})).expect("valid");
        assert!(none.related_resources.is_empty());
        assert!(serde_json::from_value::<CustomizeHookResponse>(
            json!({"relatedResources": [{"resource": "pods"}]})
        )
        .is_err());
    }
}
