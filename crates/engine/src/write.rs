//! The engine's writes of objects it caches: create, replace and patch, answered with the
//! server's JSON kept as it came.
//!
//! ```text
//! Writer::create / replace / patch / patch_status ──► API server ──► response text
//!      ──► Written { the text, its name/namespace/uid/resourceVersion/controller }
//!      ──► Informer::observe_written (the cache keeps the text)
//! ```
//!
//! `kube::Api` decodes a response into a `DynamicObject` (through its flattened deserializer)
//! and the cache then encoded the object again; here only the identifying metadata is read,
//! the cache keeps the text, and the few callers that need the object decode it
//! ([`Written::object`], one pass).

use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::Request;
use kube::Resource;
use serde::{Deserialize, Serialize};

use crate::compact::{self, Compact};
use crate::discovery::ResourceInfo;

/// An object as a write's response returned it: its JSON, and the few fields the cache
/// indexes it by, read without decoding the rest (most callers never look at the object).
#[derive(Debug)]
pub struct Written {
    raw: Box<[u8]>,
    ident: Ident,
}

/// The part of a written object's metadata the cache needs.
#[derive(Debug, Default, Deserialize)]
struct Ident {
    #[serde(default)]
    metadata: IdentMeta,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct IdentMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    #[serde(default)]
    owner_references: Vec<OwnerUid>,
}

#[derive(Debug, Deserialize)]
struct OwnerUid {
    uid: String,
    controller: Option<bool>,
}

impl Written {
    /// Reads a response body; an error when it is not a JSON object with valid metadata.
    pub(crate) fn parse(raw: Box<[u8]>) -> serde_json::Result<Written> {
        let ident: Ident = serde_json::from_slice(&raw)?;
        Ok(Written { raw, ident })
    }

    /// The object, decoded.
    pub fn object(&self) -> serde_json::Result<DynamicObject> {
        compact::decode(&self.raw)
    }

    /// The cache key (`namespace/name`).
    pub fn key(&self) -> String {
        let m = &self.ident.metadata;
        crate::store::object_key(m.namespace.as_deref(), m.name.as_deref().unwrap_or(""))
    }

    /// `(uid, resourceVersion)`.
    pub fn version(&self) -> (Option<&str>, Option<&str>) {
        let m = &self.ident.metadata;
        (m.uid.as_deref(), m.resource_version.as_deref())
    }

    /// The object as the cache keeps it.
    pub(crate) fn into_compact(self) -> Compact {
        let m = self.ident.metadata;
        let controller = m
            .owner_references
            .into_iter()
            .find(|r| r.controller == Some(true))
            .map(|r| r.uid);
        Compact::from_parts(self.raw, m.uid, m.resource_version, controller)
    }
}

/// Writes objects of one resource in one namespace (or cluster-wide).
pub struct Writer {
    client: kube::Client,
    request: Request,
}

impl Writer {
    /// A writer for `resource` in `namespace` (ignored when the resource is cluster-scoped or
    /// the namespace is empty, as [`crate::composite::api_for`] does).
    pub fn new(client: &kube::Client, resource: &ResourceInfo, namespace: &str) -> Self {
        let ar = resource.api_resource();
        let ns = (resource.namespaced && !namespace.is_empty()).then_some(namespace);
        Writer {
            client: client.clone(),
            request: Request::new(DynamicObject::url_path(&ar, ns)),
        }
    }

    /// `POST`s `obj`.
    pub async fn create(&self, obj: &impl Serialize) -> kube::Result<Written> {
        let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
        let req = self.request.create(&PostParams::default(), body);
        self.send(req, "create").await
    }

    /// `PUT`s `obj` as `name`.
    pub async fn replace(&self, name: &str, obj: &impl Serialize) -> kube::Result<Written> {
        let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
        let req = self.request.replace(name, &PostParams::default(), body);
        self.send(req, "replace").await
    }

    /// `PATCH`es `name`.
    pub async fn patch<P: Serialize>(
        &self,
        name: &str,
        params: &PatchParams,
        patch: &Patch<P>,
    ) -> kube::Result<Written> {
        self.send(self.request.patch(name, params, patch), "patch")
            .await
    }

    /// `PATCH`es the status subresource of `name`.
    pub async fn patch_status<P: Serialize>(
        &self,
        name: &str,
        params: &PatchParams,
        patch: &Patch<P>,
    ) -> kube::Result<Written> {
        let req = self
            .request
            .patch_subresource("status", name, params, patch);
        self.send(req, "patch_status").await
    }

    async fn send(
        &self,
        req: Result<http::Request<Vec<u8>>, kube::core::request::Error>,
        verb: &'static str,
    ) -> kube::Result<Written> {
        let mut req = req.map_err(kube::Error::BuildRequest)?;
        req.extensions_mut().insert(verb);
        let text = self.client.request_text(req).await?;
        Written::parse(text.into_bytes().into_boxed_slice()).map_err(kube::Error::SerdeError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_response_is_read_for_its_identity_only_and_decodes_on_demand() {
        let value = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "resourceVersion": "9",
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "A", "name": "a", "uid": "other"},
                    {"apiVersion": "v1", "kind": "B", "name": "b", "uid": "owner", "controller": true}
                ],
                "managedFields": [{"manager": "m", "operation": "Update", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:spec": {}}}]},
            "spec": {"containers": [{"name": "c"}]}
        });
        let text = serde_json::to_vec(&value).expect("encode");
        let written = Written::parse(text.clone().into_boxed_slice()).expect("parses");
        assert_eq!(written.key(), "ns/p");
        assert_eq!(written.version(), (Some("u"), Some("9")));
        let object = written.object().expect("decodes");
        assert_eq!(serde_json::to_value(&object).expect("value"), value);
        let compact = written.into_compact();
        assert_eq!(compact.controller(), Some("owner"));
        assert_eq!(compact.uid(), Some("u"));
        assert_eq!(compact.resource_version(), Some("9"));
        assert_eq!(compact.object().map(|o| o.metadata), Some(object.metadata));

        // A cluster-scoped object without owners; a body that is no object is an error.
        let bare = Written::parse(
            b"{\"metadata\":{\"name\":\"n\"}}"
                .to_vec()
                .into_boxed_slice(),
        )
        .expect("parses");
        assert_eq!(bare.key(), "n");
        assert_eq!(bare.into_compact().controller(), None);
        assert!(Written::parse(b"[1]".to_vec().into_boxed_slice()).is_err());
        assert!(Written::parse(b"{\"metadata\": 1}".to_vec().into_boxed_slice()).is_err());
    }
}
