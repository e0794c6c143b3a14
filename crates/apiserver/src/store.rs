//! The object store: every object of every type in memory, one global `resourceVersion`
//! counter, a bounded event log per resource for watch resumption, and the write semantics of
//! kube-apiserver (metadata defaulting, generation, finalizers, deletion, subresources).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::error::Result;
use crate::registry::{Registry, ResourceType};
use metacontroller_merge::selector::LabelSelector;

/// A stored object: its JSON exactly as served, plus parsed metadata for indexes.
#[derive(Debug, Clone)]
pub struct Obj(pub Arc<StoredObject>);

#[derive(Debug)]
pub struct StoredObject {
    /// The object serialized as JSON (compact), as served at the storage version.
    pub json: Bytes,
    pub namespace: Option<String>,
    pub name: String,
    pub uid: String,
    pub resource_version: u64,
}

impl Obj {
    pub fn json(&self) -> &Bytes {
        &self.0.json
    }

    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.0.json).unwrap_or(Value::Null)
    }
}

/// A field selector: `metadata.name`, `metadata.namespace` (and a few per-type fields such as
/// `involvedObject.*` for core events, `status.phase`/`spec.nodeName` for pods) with `=`, `==`, `!=`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    /// `(field, value, negated)`.
    pub requirements: Vec<(String, String, bool)>,
}

impl FieldSelector {
    /// Parses `a=b,c!=d`; unknown fields for the type give 400 `field label not supported: X`.
    pub fn parse(s: &str, rt: &ResourceType) -> Result<Self> {
        let _ = (s, rt);
        todo!()
    }
}

#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub label_selector: Option<LabelSelector>,
    pub field_selector: Option<FieldSelector>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ListResult {
    pub items: Vec<Obj>,
    /// The store's resource version at the time of the list.
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining_item_count: Option<u64>,
}

#[derive(Debug, Clone, Default)]
pub struct WatchOptions {
    /// None or "0": start with synthetic ADDED events for every match; else replay after it.
    pub resource_version: Option<String>,
    pub label_selector: Option<LabelSelector>,
    pub field_selector: Option<FieldSelector>,
    /// `sendInitialEvents=true`: ADDED for all, then a BOOKMARK annotated
    /// `k8s.io/initial-events-end: "true"`, then live events.
    pub send_initial_events: bool,
    pub allow_bookmarks: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchEventType {
    Added,
    Modified,
    Deleted,
    Bookmark,
    /// Carries a `Status` object (e.g. 410 Expired); the stream ends after it.
    Error,
}

impl WatchEventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
            Self::Bookmark => "BOOKMARK",
            Self::Error => "ERROR",
        }
    }
}

#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub kind: WatchEventType,
    /// The object as JSON at the storage version (for Bookmark/Error a small object).
    pub object: Bytes,
}

#[derive(Debug, Clone, Default)]
pub struct WriteOptions {
    /// `dryRun=All`: validate and return the result, persist nothing.
    pub dry_run: bool,
    pub field_manager: Option<String>,
    /// `fieldValidation=Strict`: unknown fields are a 400 instead of being pruned.
    pub strict_validation: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subresource {
    Main,
    Status,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PatchType {
    /// `application/merge-patch+json`
    Merge,
    /// `application/json-patch+json`
    Json,
    /// `application/strategic-merge-patch+json` (built-in types only; 415 for custom resources)
    Strategic,
    /// `application/apply-patch+yaml` (server-side apply)
    Apply { force: bool },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Propagation {
    Orphan,
    Background,
    Foreground,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    pub propagation: Option<Propagation>,
    pub precondition_uid: Option<String>,
    pub precondition_resource_version: Option<String>,
    pub dry_run: bool,
    pub grace_period_seconds: Option<i64>,
}

#[derive(Debug, Clone)]
pub enum DeleteOutcome {
    /// The object is gone; its last state.
    Deleted(Obj),
    /// The object has finalizers: `deletionTimestamp` is set and it stays until they are removed.
    Pending(Obj),
}

/// The store. Shared as `Arc<Store>`; all methods are synchronous and quick.
#[derive(Debug)]
pub struct Store {
    // Filled in by the implementation.
}

impl Store {
    /// A store with the built-in types registered and the default namespaces
    /// (`default`, `kube-system`, `kube-public`, `kube-node-lease`) created.
    pub fn new() -> Arc<Self> {
        todo!()
    }

    /// The served types (changes as CRDs are created and deleted).
    pub fn registry(&self) -> Arc<Registry> {
        todo!()
    }

    pub fn create(&self, rt: &ResourceType, namespace: Option<&str>, obj: Value, opts: &WriteOptions) -> Result<Obj> {
        let _ = (rt, namespace, obj, opts);
        todo!()
    }

    pub fn get(&self, rt: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Obj> {
        let _ = (rt, namespace, name);
        todo!()
    }

    /// Lists objects; `namespace: None` on a namespaced type lists across all namespaces.
    pub fn list(&self, rt: &ResourceType, namespace: Option<&str>, opts: &ListOptions) -> Result<ListResult> {
        let _ = (rt, namespace, opts);
        todo!()
    }

    /// PUT. A non-empty `metadata.resourceVersion` that differs from the stored one is a 409.
    pub fn update(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        obj: Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<Obj> {
        let _ = (rt, namespace, name, obj, sub, opts);
        todo!()
    }

    /// PATCH. Returns the result and whether it was created (server-side apply of a missing object).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        patch: &Value,
        sub: Subresource,
        opts: &WriteOptions,
    ) -> Result<(Obj, bool)> {
        let _ = (rt, namespace, name, patch_type, patch, sub, opts);
        todo!()
    }

    pub fn delete(&self, rt: &ResourceType, namespace: Option<&str>, name: &str, opts: &DeleteOptions) -> Result<DeleteOutcome> {
        let _ = (rt, namespace, name, opts);
        todo!()
    }

    /// DELETE on a collection: deletes every match; returns the objects as they ended up.
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Obj>> {
        let _ = (rt, namespace, list, opts);
        todo!()
    }

    /// Starts a watch. Events arrive on a bounded channel; a watcher that falls too far behind
    /// is dropped (its channel closes) and the client relists, as with kube-apiserver.
    /// A `resource_version` older than the event log yields a single `Error` event with a 410
    /// `Expired` Status (never an error return: the HTTP layer must answer 200 and stream it).
    pub fn watch(&self, rt: &ResourceType, namespace: Option<&str>, opts: &WatchOptions) -> Result<mpsc::Receiver<WatchEvent>> {
        let _ = (rt, namespace, opts);
        todo!()
    }

    /// The current global resource version.
    pub fn current_resource_version(&self) -> u64 {
        todo!()
    }
}
