//! The engine's writes of objects it caches: create, replace and patch, answered with the
//! server's JSON kept as it came.
//!
//! ```text
//! Writer::create / replace / patch / patch_status ──► API server ──► response text
//!      ──► Written { object: decoded in one pass, raw: the text } ──► Informer::observe_written
//! ```
//!
//! `kube::Api` decodes a response through `DynamicObject`'s flattened deserializer and the
//! cache then encodes the object again; here the response is decoded once
//! ([`crate::compact::decode`]) and the cache keeps the text it decoded.

use kube::api::{DynamicObject, Patch, PatchParams, PostParams};
use kube::core::Request;
use kube::Resource;
use serde::Serialize;

use crate::compact;
use crate::discovery::ResourceInfo;

/// An object as a write's response returned it.
#[derive(Debug)]
pub struct Written {
    /// The object.
    pub object: DynamicObject,
    /// Its JSON, as the server sent it.
    pub(crate) raw: Box<[u8]>,
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
    pub async fn create(&self, obj: &DynamicObject) -> kube::Result<Written> {
        let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
        let req = self
            .request
            .create(&PostParams::default(), body)
            .map_err(kube::Error::BuildRequest)?;
        self.send(req, "create").await
    }

    /// `PUT`s `obj` as `name`.
    pub async fn replace(&self, name: &str, obj: &DynamicObject) -> kube::Result<Written> {
        let body = serde_json::to_vec(obj).map_err(kube::Error::SerdeError)?;
        let req = self
            .request
            .replace(name, &PostParams::default(), body)
            .map_err(kube::Error::BuildRequest)?;
        self.send(req, "replace").await
    }

    /// `PATCH`es `name`.
    pub async fn patch<P: Serialize>(
        &self,
        name: &str,
        params: &PatchParams,
        patch: &Patch<P>,
    ) -> kube::Result<Written> {
        let req = self
            .request
            .patch(name, params, patch)
            .map_err(kube::Error::BuildRequest)?;
        self.send(req, "patch").await
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
            .patch_subresource("status", name, params, patch)
            .map_err(kube::Error::BuildRequest)?;
        self.send(req, "patch_status").await
    }

    async fn send(
        &self,
        mut req: http::Request<Vec<u8>>,
        verb: &'static str,
    ) -> kube::Result<Written> {
        req.extensions_mut().insert(verb);
        let text = self.client.request_text(req).await?;
        let object = compact::decode(text.as_bytes()).map_err(kube::Error::SerdeError)?;
        Ok(Written {
            object,
            raw: text.into_bytes().into_boxed_slice(),
        })
    }
}
