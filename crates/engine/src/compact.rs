//! Objects as the caches keep them: compact JSON, decoded when a sync or a handler reads them.
//!
//! A parsed [`DynamicObject`] costs about ten times its JSON in memory (every map and string is
//! a separate allocation), so an informer holding thousands of Pods would spend most of the
//! engine's memory on them. [`Compact`] keeps the JSON bytes and the few fields the cache's
//! indexes and version checks need; [`Compact::object`] decodes it again.
//!
//! [`decode`] and [`WatchObject`] read an object in one pass: apiVersion/kind into the type
//! meta, `metadata` into [`ObjectMeta`], every other field into `data`, which is what
//! `DynamicObject`'s own flattened deserializer produces, without first buffering the whole
//! object.

use std::borrow::Cow;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject, TypeMeta};
use kube::core::{DynamicResourceScope, Resource};
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Value};

/// One cached object: its compact JSON and the fields the cache reads without decoding it.
#[derive(Debug)]
pub struct Compact {
    raw: Box<[u8]>,
    uid: Option<Box<str>>,
    resource_version: Option<Box<str>>,
    controller: Option<Box<str>>,
}

impl Compact {
    /// Encodes `obj`.
    pub fn new(obj: &DynamicObject) -> Compact {
        // A DynamicObject holds only string-keyed maps, which always encode.
        let raw = serde_json::to_vec(obj).unwrap_or_default();
        Compact {
            raw: raw.into_boxed_slice(),
            uid: obj.metadata.uid.as_deref().map(Into::into),
            resource_version: obj.metadata.resource_version.as_deref().map(Into::into),
            controller: controller_uid(obj).map(Into::into),
        }
    }

    /// An object from its JSON and the fields the cache reads without decoding it, as the
    /// caller read them from that JSON.
    pub fn from_parts(
        raw: Box<[u8]>,
        uid: Option<String>,
        resource_version: Option<String>,
        controller: Option<String>,
    ) -> Compact {
        Compact {
            raw,
            uid: uid.map(Into::into),
            resource_version: resource_version.map(Into::into),
            controller: controller.map(Into::into),
        }
    }

    /// The object, decoded. The bytes are this module's own encoding of a DynamicObject or the
    /// JSON one was decoded from, so they always decode; were they not to, the object reads as absent (logged) rather than
    /// as an empty object a sync could act on.
    pub fn object(&self) -> Option<DynamicObject> {
        decode(&self.raw)
            .inspect_err(|e| tracing::error!(error = %e, "cached object does not decode"))
            .ok()
    }

    /// The object's name, namespace, labels and `spec.selector`, read without decoding the
    /// rest: what label and name selectors look at (and a parent's own selector), so a cache
    /// can filter many objects and decode only the matches.
    pub fn head(&self) -> DynamicObject {
        let head = serde_json::from_slice::<Head>(&self.raw).unwrap_or_default();
        let mut data = Map::new();
        if let Some(selector) = head.spec.and_then(|s| s.0) {
            data.insert("spec".into(), serde_json::json!({ "selector": selector }));
        }
        DynamicObject {
            types: None,
            metadata: ObjectMeta {
                name: head.metadata.name,
                namespace: head.metadata.namespace,
                labels: head.metadata.labels,
                ..ObjectMeta::default()
            },
            data: Value::Object(data),
        }
    }

    /// `metadata.uid`.
    pub fn uid(&self) -> Option<&str> {
        self.uid.as_deref()
    }

    /// `metadata.resourceVersion`.
    pub fn resource_version(&self) -> Option<&str> {
        self.resource_version.as_deref()
    }

    /// The UID of the controller owner, if any.
    pub fn controller(&self) -> Option<&str> {
        self.controller.as_deref()
    }
}

/// The UID of the object's controller owner, if any.
pub fn controller_uid(obj: &DynamicObject) -> Option<&str> {
    obj.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// The part of an object [`Compact::head`] reads; every other field is skipped unparsed.
#[derive(Deserialize, Default)]
struct Head {
    #[serde(default)]
    metadata: HeadMeta,
    #[serde(default)]
    spec: Option<SpecSelector>,
}

/// `spec.selector` when `spec` is an object that has one; anything else in `spec` is skipped.
struct SpecSelector(Option<Value>);

impl<'de> Deserialize<'de> for SpecSelector {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SpecVisitor)
    }
}

struct SpecVisitor;

impl<'de> Visitor<'de> for SpecVisitor {
    type Value = SpecSelector;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a spec")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpecSelector, A::Error> {
        let mut selector = None;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            if key == "selector" {
                selector = Some(map.next_value::<Value>()?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(SpecSelector(selector))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<SpecSelector, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(SpecSelector(None))
    }

    fn visit_unit<E>(self) -> Result<SpecSelector, E> {
        Ok(SpecSelector(None))
    }

    fn visit_bool<E>(self, _: bool) -> Result<SpecSelector, E> {
        Ok(SpecSelector(None))
    }

    fn visit_i64<E>(self, _: i64) -> Result<SpecSelector, E> {
        Ok(SpecSelector(None))
    }

    fn visit_u64<E>(self, _: u64) -> Result<SpecSelector, E> {
        Ok(SpecSelector(None))
    }

    fn visit_f64<E>(self, _: f64) -> Result<SpecSelector, E> {
        Ok(SpecSelector(None))
    }

    fn visit_str<E>(self, _: &str) -> Result<SpecSelector, E> {
        Ok(SpecSelector(None))
    }
}

#[derive(Deserialize, Default)]
struct HeadMeta {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<std::collections::BTreeMap<String, String>>,
}

/// Decodes a Kubernetes object from JSON.
pub fn decode(raw: &[u8]) -> serde_json::Result<DynamicObject> {
    serde_json::from_slice::<WatchObject>(raw).map(|o| o.0)
}

/// A `DynamicObject` read in one pass; the type informers list and watch.
#[derive(Clone, Debug)]
pub struct WatchObject(pub DynamicObject);

impl<'de> Deserialize<'de> for WatchObject {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(ObjectVisitor).map(WatchObject)
    }
}

struct ObjectVisitor;

impl<'de> Visitor<'de> for ObjectVisitor {
    type Value = DynamicObject;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a Kubernetes object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DynamicObject, A::Error> {
        let mut api_version: Option<String> = None;
        let mut kind: Option<String> = None;
        let mut metadata: Option<ObjectMeta> = None;
        let mut data = Map::new();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "apiVersion" if api_version.is_none() => api_version = map.next_value()?,
                "kind" if kind.is_none() => kind = map.next_value()?,
                "metadata" => metadata = map.next_value()?,
                _ => {
                    let value: Value = map.next_value()?;
                    data.insert(key.into_owned(), value);
                }
            }
        }
        // Half a type meta is dropped, as the flattened decoder drops it.
        let types = match (api_version, kind) {
            (Some(api_version), Some(kind)) => Some(TypeMeta { api_version, kind }),
            _ => None,
        };
        Ok(DynamicObject {
            types,
            metadata: metadata.unwrap_or_default(),
            data: Value::Object(data),
        })
    }
}

impl Resource for WatchObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::kind(dt)
    }

    fn group(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::group(dt)
    }

    fn version(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::version(dt)
    }

    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::api_version(dt)
    }

    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        DynamicObject::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Value {
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                "labels": {"a": "b"},
                "ownerReferences": [{"apiVersion": "example.com/v1", "kind": "HelloWorld",
                    "name": "h", "uid": "owner", "controller": true}],
                "managedFields": [{"manager": "m", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}}]
            },
            "spec": {"containers": [{"name": "c", "image": "busybox", "command": ["echo", "hi \u{e9}\"x\""]}]},
            "status": {"phase": "Pending"}
        })
    }

    #[test]
    fn decodes_as_the_flattened_deserializer_does() {
        for value in [
            pod(),
            json!({"metadata": {"name": "bare"}, "x": 1}),
            json!({"apiVersion": "v1", "data": {"k": "v"}}),
            json!({"kind": "Thing", "spec": null}),
        ] {
            let raw = serde_json::to_vec(&value).expect("encode");
            let slow: DynamicObject = serde_json::from_slice(&raw).expect("slow");
            let fast = decode(&raw).expect("fast");
            assert_eq!(
                serde_json::to_value(&fast).expect("fast value"),
                serde_json::to_value(&slow).expect("slow value"),
                "{value}"
            );
            assert_eq!(fast.types, slow.types);
            assert_eq!(fast.metadata, slow.metadata);
        }
    }

    #[test]
    fn compact_round_trips_and_keeps_index_fields() {
        let obj: DynamicObject = serde_json::from_value(pod()).expect("pod");
        let c = Compact::new(&obj);
        assert_eq!(c.uid(), Some("u1"));
        assert_eq!(c.resource_version(), Some("7"));
        assert_eq!(c.controller(), Some("owner"));
        let back = c.object().expect("decodes");
        assert_eq!(back.metadata, obj.metadata);
        assert_eq!(back.types, obj.types);
        assert_eq!(back.data, obj.data);
        assert_eq!(
            c.raw.len(),
            serde_json::to_vec(&obj).expect("encode").len(),
            "compact JSON, nothing more"
        );
    }

    #[test]
    fn head_holds_name_namespace_labels_and_selector_only() {
        let obj: DynamicObject = serde_json::from_value(pod()).expect("pod");
        let head = Compact::new(&obj).head();
        assert_eq!(head.metadata.name.as_deref(), Some("p"));
        assert_eq!(head.metadata.namespace.as_deref(), Some("ns"));
        assert_eq!(head.metadata.labels, obj.metadata.labels);
        assert!(head.metadata.uid.is_none() && head.metadata.owner_references.is_none());
        assert_eq!(head.data, json!({}));
        let bare: DynamicObject =
            serde_json::from_value(json!({"metadata": {"name": "n"}})).expect("bare");
        assert!(Compact::new(&bare).head().metadata.labels.is_none());
        // A parent's own selector comes along; an odd spec does not lose the rest.
        for (spec, want) in [
            (
                json!({"selector": {"matchLabels": {"a": "b"}}, "template": {"x": 1}}),
                json!({"spec": {"selector": {"matchLabels": {"a": "b"}}}}),
            ),
            (json!({"replicas": 3}), json!({})),
            (json!("text"), json!({})),
            (json!([1, {"selector": 2}]), json!({})),
            (json!(null), json!({})),
        ] {
            let obj: DynamicObject = serde_json::from_value(
                json!({"metadata": {"name": "p", "labels": {"k": "v"}}, "spec": spec}),
            )
            .expect("parent");
            let head = Compact::new(&obj).head();
            assert_eq!(head.data, want, "{spec}");
            assert_eq!(head.metadata.name.as_deref(), Some("p"), "{spec}");
            assert!(head.metadata.labels.is_some(), "{spec}");
        }
    }

    #[test]
    fn bytes_that_do_not_decode_read_as_absent() {
        let c = Compact {
            raw: b"{not json".to_vec().into_boxed_slice(),
            uid: Some("u".into()),
            resource_version: None,
            controller: None,
        };
        assert!(c.object().is_none());
        assert!(c.head().metadata.name.is_none());
    }

    #[test]
    fn rejects_what_is_not_an_object() {
        assert!(decode(b"[1,2]").is_err());
        assert!(decode(b"{\"metadata\": 3}").is_err());
    }
}
