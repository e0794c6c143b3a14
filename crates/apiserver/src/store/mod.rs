//! The object store: every object of every type in memory, one global `resourceVersion`
//! counter, a bounded event log per resource for watch resumption, and the write semantics of
//! kube-apiserver (metadata defaulting, generation, finalizers, deletion, subresources).
//!
//! ```text
//!  Store ── RwLock<State> ── tables: GroupResource → Table
//!    │                          ├─ objects: ordered by "namespace/name", JSON bytes
//!    │                          ├─ log: the last EVENT_LOG_LEN events (watch resumption)
//!    │                          └─ watchers: bounded channels, dropped when full
//!    │                       dependents: owner uid → objects naming it (garbage collector)
//!    └── gc queue ──────────▶ gc::run_controllers (garbage collector, namespace and CRD cleanup)
//! ```
//!
//! Writes follow kube-apiserver's optimistic loop: read the stored object, compute the new one
//! without any lock, then take the write lock only to check that nothing changed in between,
//! assign the next resourceVersion, serialize and fan the event out to watchers.

mod apply;
pub mod events;
pub mod meta;
mod select;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::ops::Bound;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};

use crate::crd;
use crate::error::{ApiError, Result};
use crate::model::{GroupResource, ResourceType};
use crate::registry::Registry;
use meta::Target;
use metacontroller_merge::selector::LabelSelector;

/// Events kept per resource for watch resumption. A client resuming from an older version
/// gets 410 Expired and relists; 10,000 covers minutes of busy controller traffic.
pub const EVENT_LOG_LEN: usize = 10_000;

/// Live events buffered per watcher beyond its initial events. At the 5,000 writes/s the store
/// sustains, this gives a stalled client almost a second before it is dropped; a dropped
/// client resumes from its last version (replayed from the log) or relists, so dropping is
/// cheap, while an unbounded buffer would let one stuck connection hold memory without limit.
pub const WATCH_BUFFER: usize = 4096;

/// Namespaces that exist from the start and cannot be deleted (except `kube-node-lease`).
pub const DEFAULT_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];
const PROTECTED_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

/// A stored object: its JSON exactly as served, plus parsed metadata for indexes.
#[derive(Debug, Clone)]
pub struct Obj(pub Arc<StoredObject>);

#[derive(Debug)]
pub struct StoredObject {
    /// The object serialized as JSON (compact), as served at the storage version.
    pub json: Bytes,
    /// `namespace/name` (`/name` when cluster-scoped): the object's key, in etcd's order.
    pub key: Box<str>,
    pub uid: String,
    pub resource_version: u64,
    /// The uids in `metadata.ownerReferences`.
    pub owner_uids: Box<[String]>,
}

impl StoredObject {
    /// The namespace, None for cluster-scoped objects.
    pub fn namespace(&self) -> Option<&str> {
        Some(split_key(&self.key).0).filter(|n| !n.is_empty())
    }

    pub fn name(&self) -> &str {
        split_key(&self.key).1
    }
}

impl Obj {
    pub fn json(&self) -> &Bytes {
        &self.0.json
    }

    pub fn name(&self) -> &str {
        self.0.name()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.0.namespace()
    }

    pub fn to_value(&self) -> Value {
        serde_json::from_slice(&self.0.json).unwrap_or(Value::Null)
    }

    /// `{"metadata": …}` alone: the object with every other field skipped unparsed, for
    /// readers that look only at metadata (the garbage collector).
    pub fn metadata_value(&self) -> Value {
        #[derive(serde::Deserialize)]
        struct MetadataOnly {
            #[serde(default)]
            metadata: Value,
        }
        match serde_json::from_slice::<MetadataOnly>(&self.0.json) {
            Ok(m) => serde_json::json!({ "metadata": m.metadata }),
            Err(_) => Value::Null,
        }
    }
}

/// A field selector: `metadata.name`, `metadata.namespace` (and a few per-type fields such as
/// `involvedObject.*` for core events, `status.phase`/`spec.nodeName` for pods) with `=`, `==`, `!=`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSelector {
    /// `(field, value, negated)`.
    pub requirements: Vec<(String, String, bool)>,
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
    /// The manager non-apply writes are recorded under in `managedFields` when there is no
    /// `fieldManager`: the program name that starts the request's User-Agent (empty without
    /// one). None for the server's own writes.
    pub user_agent_manager: Option<String>,
    /// `fieldValidation=Strict`: unknown fields are a 400 instead of being pruned.
    pub strict_validation: bool,
}

impl WriteOptions {
    /// The manager a non-apply write is recorded under: `fieldManager`, else the one the
    /// User-Agent names.
    pub fn manager(&self) -> Option<&str> {
        self.field_manager
            .as_deref()
            .or(self.user_agent_manager.as_deref())
    }
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

/// A reference to one stored object.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjRef {
    pub gr: GroupResource,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

/// Work for the background controllers, queued by writes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GcTask {
    /// Check this object's owners (new ownerReferences, or an owner changed or went away).
    Dependent(ObjRef),
    /// This object is being deleted with `foregroundDeletion` or `orphan`: act on its dependents.
    Owner(ObjRef),
    /// This namespace is terminating: delete its contents, then finalize it.
    Namespace(String),
    /// This CustomResourceDefinition is being deleted: delete its objects, then finalize it.
    Crd(String),
}

/// Objects are keyed and ordered by `namespace/name` (`/name` when cluster-scoped), the
/// order kube-apiserver's etcd keys give lists.
type Key = Box<str>;

fn make_key(ns: &str, name: &str) -> Key {
    format!("{ns}/{name}").into_boxed_str()
}

fn split_key(k: &str) -> (&str, &str) {
    k.split_once('/').unwrap_or(("", k))
}

/// The key range of one namespace: from `ns/` up to `ns0` (`0` follows `/`).
fn ns_bounds(ns: &str) -> (Bound<Key>, Bound<Key>) {
    (
        Bound::Included(format!("{ns}/").into_boxed_str()),
        Bound::Excluded(format!("{ns}0").into_boxed_str()),
    )
}

/// The labels of a stored object, read straight from its JSON.
#[derive(serde::Deserialize)]
struct LabelsOnly<'a> {
    #[serde(borrow, default)]
    metadata: Option<MetaLabels<'a>>,
}

#[derive(serde::Deserialize)]
struct MetaLabels<'a> {
    #[serde(borrow, default)]
    labels: Option<BTreeMap<std::borrow::Cow<'a, str>, std::borrow::Cow<'a, str>>>,
}

/// Whether a stored object's labels match. Labels are not kept parsed: a selector reads them
/// from the JSON, which keeps the per-object memory small.
fn labels_match(sel: &LabelSelector, json: &[u8]) -> bool {
    let parsed: Option<LabelsOnly<'_>> = serde_json::from_slice(json).ok();
    let labels = parsed
        .and_then(|p| p.metadata)
        .and_then(|m| m.labels)
        .unwrap_or_default();
    sel.matches_with(|k| labels.get(k).map(|v| v.as_ref()))
}

struct LogEntry {
    kind: WatchEventType,
    obj: Obj,
    prev: Option<Obj>,
}

struct Watcher {
    tx: mpsc::Sender<WatchEvent>,
    namespace: Option<String>,
    label: Option<LabelSelector>,
    field: Option<FieldSelector>,
    bookmarks: bool,
    /// The type as the client watches it, when it differs from the stored form.
    convert: Option<Arc<ResourceType>>,
    kind: String,
    api_version: String,
}

impl Watcher {
    fn matches(&self, obj: &Obj) -> bool {
        let o = &obj.0;
        if let Some(ns) = &self.namespace {
            if o.namespace() != Some(ns.as_str()) {
                return false;
            }
        }
        matches_selectors(obj, self.label.as_ref(), self.field.as_ref())
    }

    /// The event this watcher sees for a change, if any (selector transitions included).
    fn event_for(&self, e: &LogEntry) -> Option<WatchEvent> {
        let rv = e.obj.0.resource_version;
        let (kind, obj) = match e.kind {
            WatchEventType::Added => (
                WatchEventType::Added,
                self.matches(&e.obj).then(|| e.obj.clone())?,
            ),
            WatchEventType::Deleted => (
                WatchEventType::Deleted,
                self.matches(&e.obj).then(|| e.obj.clone())?,
            ),
            _ => {
                let now = self.matches(&e.obj);
                let before = e.prev.as_ref().is_some_and(|p| self.matches(p));
                match (before, now) {
                    (true, true) => (WatchEventType::Modified, e.obj.clone()),
                    (false, true) => (WatchEventType::Added, e.obj.clone()),
                    (true, false) => {
                        // The previous state, at this event's version.
                        let prev = e.prev.as_ref()?;
                        let mut v = prev.to_value();
                        meta::meta_mut(&mut v)
                            .insert("resourceVersion".into(), Value::String(rv.to_string()));
                        (WatchEventType::Deleted, build_obj(&v, rv).ok()?)
                    }
                    (false, false) => return None,
                }
            }
        };
        let obj = match &self.convert {
            Some(rt) => serve(rt, obj),
            None => obj,
        };
        Some(WatchEvent {
            kind,
            object: obj.0.json.clone(),
        })
    }

    fn bookmark(&self, rv: u64, initial_end: bool) -> WatchEvent {
        let mut meta = json!({"resourceVersion": rv.to_string()});
        if initial_end {
            meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        let obj = json!({"kind": self.kind, "apiVersion": self.api_version, "metadata": meta});
        WatchEvent {
            kind: WatchEventType::Bookmark,
            object: Bytes::from(obj.to_string()),
        }
    }
}

fn matches_selectors(
    obj: &Obj,
    label: Option<&LabelSelector>,
    field: Option<&FieldSelector>,
) -> bool {
    if let Some(l) = label {
        if !labels_match(l, &obj.0.json) {
            return false;
        }
    }
    if let Some(f) = field {
        let parsed = (!f.metadata_only()).then(|| obj.to_value());
        if !f.matches(&obj.0, parsed.as_ref()) {
            return false;
        }
    }
    true
}

/// A stored object in its table, ordered and looked up by its key.
#[derive(Clone)]
struct Entry(Obj);

impl std::borrow::Borrow<str> for Entry {
    fn borrow(&self) -> &str {
        &self.0 .0.key
    }
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.0 .0.key == other.0 .0.key
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0 .0.key.cmp(&other.0 .0.key)
    }
}

/// `(lower, upper)` key bounds.
type KeyRange = (Bound<Key>, Bound<Key>);

/// A key range in the form `BTreeSet::range` takes.
fn borrowed(r: &KeyRange) -> (Bound<&str>, Bound<&str>) {
    fn b(b: &Bound<Key>) -> Bound<&str> {
        match b {
            Bound::Included(k) => Bound::Included(k),
            Bound::Excluded(k) => Bound::Excluded(k),
            Bound::Unbounded => Bound::Unbounded,
        }
    }
    (b(&r.0), b(&r.1))
}

struct Table {
    /// The objects, keyed by `namespace/name` (the key lives in the object: no second copy).
    objects: BTreeSet<Entry>,
    log: VecDeque<LogEntry>,
    /// Watches may resume from any version at or after this one.
    floor: u64,
    watchers: Vec<Watcher>,
}

impl Table {
    fn new(floor: u64) -> Self {
        Self {
            objects: BTreeSet::new(),
            log: VecDeque::new(),
            floor,
            watchers: Vec::new(),
        }
    }

    fn record(&mut self, entry: LogEntry) {
        self.watchers.retain(|w| match w.event_for(&entry) {
            None => !w.tx.is_closed(),
            Some(ev) => w.tx.try_send(ev).is_ok(),
        });
        if self.log.len() >= EVENT_LOG_LEN {
            if let Some(old) = self.log.pop_front() {
                self.floor = old.obj.0.resource_version;
            }
        }
        self.log.push_back(entry);
    }
}

struct State {
    registry: Arc<Registry>,
    rv: u64,
    start_rv: u64,
    tables: HashMap<GroupResource, Table>,
    /// Owner uid → the objects whose ownerReferences name it.
    dependents: HashMap<String, BTreeSet<ObjRef>>,
    /// Objects being deleted with `foregroundDeletion` or `orphan`, by uid.
    deleting_owners: HashMap<String, ObjRef>,
    terminating_namespaces: HashSet<String>,
    /// Custom resources whose CRD is being deleted → the CRD's name.
    terminating_crds: HashMap<GroupResource, String>,
}

impl State {
    fn table(&mut self, gr: &GroupResource) -> &mut Table {
        let floor = self.start_rv;
        self.tables
            .entry(gr.clone())
            .or_insert_with(|| Table::new(floor))
    }

    fn current(&self, gr: &GroupResource, key: &str) -> Option<&Obj> {
        self.tables.get(gr)?.objects.get(key).map(|e| &e.0)
    }

    /// The `ServiceAccount` admission plugin on a new Pod: the service account defaults to
    /// `default` and must exist; unless it or the Pod opts out, its API token is mounted.
    fn admit_service_account(&self, ns: &str, pod: &mut Value) -> Result<()> {
        let name = pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        let gr = GroupResource {
            group: String::new(),
            resource: "serviceaccounts".into(),
        };
        let Some(sa) = self.current(&gr, &make_key(ns, &name)) else {
            let pod_name = meta::meta_str(pod, "name").unwrap_or("");
            return Err(ApiError::forbidden(format!(
                "pods {pod_name:?} is forbidden: error looking up service account {ns}/{name}: serviceaccount {name:?} not found"
            ))
            .with_details(json!({"name": pod_name, "kind": "pods"})));
        };
        let sa_automount = sa
            .to_value()
            .get("automountServiceAccountToken")
            .and_then(Value::as_bool);
        meta::mount_service_account(pod, &name, sa_automount);
        Ok(())
    }

    fn namespace_exists(&self, ns: &str) -> bool {
        let gr = GroupResource {
            group: String::new(),
            resource: "namespaces".into(),
        };
        self.current(&gr, &make_key("", ns)).is_some()
    }

    /// Persists `value` (a new or changed object) or removes the object, assigning the next
    /// resourceVersion, updating the indexes, logging and fanning out the event, and queueing
    /// controller work.
    fn commit(
        &mut self,
        gr: &GroupResource,
        value: &mut Value,
        prev: Option<Obj>,
        remove: bool,
        tasks: &mut Vec<GcTask>,
    ) -> Result<Obj> {
        self.rv += 1;
        let rv = self.rv;
        meta::meta_mut(value).insert("resourceVersion".into(), Value::String(rv.to_string()));
        let obj = build_obj(value, rv)?;
        let (kns, kname) = (
            obj.0.namespace().unwrap_or("").to_string(),
            obj.0.name().to_string(),
        );
        let me = ObjRef {
            gr: gr.clone(),
            namespace: kns.clone(),
            name: kname.clone(),
        };
        let uid = obj.0.uid.clone();

        // Ownership index.
        let old_owners: &[String] = prev.as_ref().map(|p| &p.0.owner_uids[..]).unwrap_or(&[]);
        let new_owners: &[String] = if remove { &[] } else { &obj.0.owner_uids };
        if old_owners != new_owners {
            for o in old_owners {
                if let Some(set) = self.dependents.get_mut(o) {
                    set.remove(&me);
                    if set.is_empty() {
                        self.dependents.remove(o);
                    }
                }
            }
            for o in new_owners {
                self.dependents
                    .entry(o.clone())
                    .or_default()
                    .insert(me.clone());
            }
            // Owners waiting on their dependents re-check.
            for o in old_owners.iter().chain(new_owners) {
                if let Some(owner) = self.deleting_owners.get(o) {
                    tasks.push(GcTask::Owner(owner.clone()));
                }
            }
            if !new_owners.is_empty() {
                tasks.push(GcTask::Dependent(me.clone()));
            }
        }

        let is_ns = gr.group.is_empty() && gr.resource == "namespaces";
        let is_crd =
            gr.group == "apiextensions.k8s.io" && gr.resource == "customresourcedefinitions";
        if remove {
            if let Some(deps) = self.dependents.get(&uid) {
                tasks.extend(deps.iter().cloned().map(GcTask::Dependent));
            }
            self.deleting_owners.remove(&uid);
            if self.terminating_namespaces.contains(&kns) {
                tasks.push(GcTask::Namespace(kns.clone()));
            }
            if let Some(crd) = self.terminating_crds.get(gr) {
                tasks.push(GcTask::Crd(crd.clone()));
            }
            if is_ns {
                self.terminating_namespaces.remove(&kname);
            }
            if is_crd {
                if let Some(served) = crd::served_group_resource(value) {
                    self.terminating_crds.remove(&served);
                    self.tables.remove(&served);
                    self.registry.remove_custom_resource(&served);
                }
            }
        } else if meta::is_deleting(value) {
            let fins = meta::finalizers(value);
            let foreground = fins.iter().any(|f| f == meta::FOREGROUND);
            if foreground || fins.iter().any(|f| f == meta::ORPHAN) {
                let first = self
                    .deleting_owners
                    .insert(uid.clone(), me.clone())
                    .is_none();
                tasks.push(GcTask::Owner(me.clone()));
                if foreground && first {
                    if let Some(deps) = self.dependents.get(&uid) {
                        tasks.extend(deps.iter().cloned().map(GcTask::Dependent));
                    }
                }
            } else {
                self.deleting_owners.remove(&uid);
            }
            if is_ns {
                self.terminating_namespaces.insert(kname.clone());
                tasks.push(GcTask::Namespace(kname.clone()));
            }
            if is_crd {
                if let Some(served) = crd::served_group_resource(value) {
                    self.terminating_crds.insert(served, kname.clone());
                }
                tasks.push(GcTask::Crd(kname.clone()));
            }
        }

        let table = self.table(gr);
        let kind = if remove {
            table.objects.remove(&*obj.0.key);
            WatchEventType::Deleted
        } else {
            table.objects.replace(Entry(obj.clone()));
            if prev.is_some() {
                WatchEventType::Modified
            } else {
                WatchEventType::Added
            }
        };
        table.record(LogEntry {
            kind,
            obj: obj.clone(),
            prev,
        });
        Ok(obj)
    }
}

/// Serializes an object and extracts its indexed metadata.
fn build_obj(value: &Value, rv: u64) -> Result<Obj> {
    let json = serde_json::to_vec(value)
        .map_err(|e| ApiError::internal(format!("encoding object: {e}")))?;
    let meta = value.get("metadata");
    let s = |f: &str| {
        meta.and_then(|m| m.get(f))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let owner_uids: Box<[String]> = meta::owner_refs(value).into_iter().map(|r| r.uid).collect();
    Ok(Obj(Arc::new(StoredObject {
        // Exactly sized: serialization leaves up to half the buffer unused.
        json: Bytes::from(json.into_boxed_slice()),
        key: make_key(&s("namespace"), &s("name")),
        uid: s("uid"),
        resource_version: rv,
        owner_uids,
    })))
}

/// Where a type's objects are stored: events.k8s.io Events share the core Events storage.
pub fn storage_group_resource(rt: &ResourceType) -> GroupResource {
    if rt.group == "events.k8s.io" && rt.plural == "events" {
        GroupResource {
            group: String::new(),
            resource: "events".into(),
        }
    } else {
        rt.group_resource()
    }
}

fn is_events_api(rt: &ResourceType) -> bool {
    rt.group == "events.k8s.io" && rt.plural == "events"
}

fn needs_conversion(rt: &ResourceType) -> bool {
    is_events_api(rt) || rt.version != rt.storage_version
}

/// A stored object as the type `rt` serves it.
pub fn to_served(rt: &ResourceType, v: Value) -> Value {
    if is_events_api(rt) {
        return events::from_core(v);
    }
    let mut v = v;
    if rt.version != rt.storage_version {
        if let Value::Object(m) = &mut v {
            m.insert("apiVersion".into(), Value::String(rt.api_version()));
        }
    }
    v
}

/// An object as written through `rt`, in its stored form.
pub fn to_storage(rt: &ResourceType, v: Value) -> Result<Value> {
    if is_events_api(rt) {
        return Ok(events::to_core(v));
    }
    if meta::is_crd(rt) {
        if v.get("apiVersion").and_then(Value::as_str) == Some("apiextensions.k8s.io/v1beta1") {
            return crd::convert_v1beta1_to_v1(v);
        }
        let mut v = v;
        if let Value::Object(m) = &mut v {
            m.insert(
                "apiVersion".into(),
                Value::String("apiextensions.k8s.io/v1".into()),
            );
        }
        return Ok(v);
    }
    let mut v = v;
    if rt.version != rt.storage_version {
        if let Value::Object(m) = &mut v {
            let av = if rt.group.is_empty() {
                rt.storage_version.clone()
            } else {
                format!("{}/{}", rt.group, rt.storage_version)
            };
            m.insert("apiVersion".into(), Value::String(av));
        }
    }
    Ok(v)
}

/// A stored object as `rt` serves it (no copy when no conversion is needed).
pub fn serve(rt: &ResourceType, obj: Obj) -> Obj {
    if !needs_conversion(rt) {
        return obj;
    }
    let v = to_served(rt, obj.to_value());
    build_obj(&v, obj.0.resource_version).unwrap_or(obj)
}

fn not_found_route() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn encode_continue(rv: u64, key: &str) -> String {
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv, "start": format!("{key}\u{0}")});
    base64::engine::general_purpose::URL_SAFE.encode(token.to_string())
}

fn decode_continue(token: &str) -> Result<(u64, Key)> {
    let bad = || ApiError::bad_request(format!("continue key is not valid: {token}"));
    let raw = base64::engine::general_purpose::URL_SAFE
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v.get("rv").and_then(Value::as_u64).ok_or_else(bad)?;
    let start = v.get("start").and_then(Value::as_str).ok_or_else(bad)?;
    let start = start.strip_suffix('\u{0}').unwrap_or(start);
    if !start.contains('/') {
        return Err(bad());
    }
    Ok((rv, start.into()))
}

/// The controllers' work queue. A task already waiting is not queued twice: it will see the
/// latest state when it runs (deleting a namespace of 10,000 objects queues it once, not
/// 10,000 times).
#[derive(Default)]
struct GcQueue {
    order: VecDeque<GcTask>,
    queued: HashSet<GcTask>,
}

impl GcQueue {
    fn push(&mut self, t: GcTask) {
        if self.queued.insert(t.clone()) {
            self.order.push_back(t);
        }
    }

    fn pop(&mut self) -> Option<GcTask> {
        let t = self.order.pop_front()?;
        self.queued.remove(&t);
        Some(t)
    }
}

/// The store. Shared as `Arc<Store>`; all methods are synchronous and quick.
pub struct Store {
    registry: Arc<Registry>,
    state: RwLock<State>,
    gc_queue: Mutex<GcQueue>,
    gc_notify: Notify,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("resource_version", &self.current_resource_version())
            .finish_non_exhaustive()
    }
}

impl Store {
    /// A store with the built-in types registered and the default namespaces
    /// (`default`, `kube-system`, `kube-public`, `kube-node-lease`) created.
    pub fn new() -> Arc<Self> {
        let start = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(1);
        let registry = Arc::new(Registry::with_builtins());
        let store = Arc::new(Self {
            registry: registry.clone(),
            state: RwLock::new(State {
                registry,
                rv: start,
                start_rv: start,
                tables: HashMap::new(),
                dependents: HashMap::new(),
                deleting_owners: HashMap::new(),
                terminating_namespaces: HashSet::new(),
                terminating_crds: HashMap::new(),
            }),
            gc_queue: Mutex::new(GcQueue::default()),
            gc_notify: Notify::new(),
        });
        if let Some(ns) = store.registry.lookup("", "v1", "namespaces") {
            for name in DEFAULT_NAMESPACES {
                let created = store.create(
                    &ns,
                    None,
                    json!({"metadata": {"name": name}}),
                    &WriteOptions::default(),
                );
                if let Err(e) = created {
                    tracing::error!(%e, namespace = name, "creating a default namespace");
                }
            }
        }
        store
    }

    /// The served types (changes as CRDs are created and deleted).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    fn enqueue(&self, tasks: Vec<GcTask>) {
        if tasks.is_empty() {
            return;
        }
        let mut q = self.gc_queue.lock().unwrap_or_else(|e| e.into_inner());
        for t in tasks {
            q.push(t);
        }
        drop(q);
        self.gc_notify.notify_one();
    }

    /// The next queued controller task, if any.
    pub fn next_gc_task(&self) -> Option<GcTask> {
        self.gc_queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
    }

    /// Queues controller work (e.g. a retry).
    pub fn push_gc_task(&self, task: GcTask) {
        self.enqueue(vec![task]);
    }

    /// Resolves when controller work may have been queued.
    pub async fn gc_work_queued(&self) {
        self.gc_notify.notified().await
    }

    /// The stored object at a reference, in its stored form.
    pub fn get_ref(&self, r: &ObjRef) -> Option<Obj> {
        self.read()
            .current(&r.gr, &make_key(&r.namespace, &r.name))
            .cloned()
    }

    /// The objects whose ownerReferences name `uid`.
    pub fn dependents_of(&self, uid: &str) -> Vec<ObjRef> {
        self.read()
            .dependents
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Every object of one namespace across all types, as references.
    pub fn namespace_contents(&self, ns: &str) -> Vec<ObjRef> {
        let st = self.read();
        let mut out = Vec::new();
        for (gr, table) in &st.tables {
            for e in table.objects.range::<str, _>(borrowed(&ns_bounds(ns))) {
                let (kns, kname) = split_key(&e.0 .0.key);
                out.push(ObjRef {
                    gr: gr.clone(),
                    namespace: kns.to_string(),
                    name: kname.to_string(),
                });
            }
        }
        out.sort();
        out
    }

    /// Every stored object of one resource, as references.
    pub fn all_of(&self, gr: &GroupResource) -> Vec<ObjRef> {
        let st = self.read();
        st.tables
            .get(gr)
            .map(|t| {
                t.objects
                    .iter()
                    .map(|e| {
                        let (ns, name) = split_key(&e.0 .0.key);
                        ObjRef {
                            gr: gr.clone(),
                            namespace: ns.to_string(),
                            name: name.to_string(),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn get_stored(&self, gr: &GroupResource, namespace: Option<&str>, name: &str) -> Option<Obj> {
        self.read()
            .current(gr, &make_key(namespace.unwrap_or(""), name))
            .cloned()
    }

    fn ns_key(rt: &ResourceType, namespace: Option<&str>) -> String {
        if rt.namespaced {
            namespace.unwrap_or("").to_string()
        } else {
            String::new()
        }
    }

    /// Schema pruning, defaults, strict field validation and schema validation for custom
    /// resources.
    fn structural(rt: &ResourceType, v: &mut Value, opts: &WriteOptions) -> Result<()> {
        if let (true, Some(schema)) = (rt.custom, rt.schema.as_ref()) {
            crd::prune_and_default(v, schema, opts.strict_validation)?;
            crd::validate(v, schema, rt)?;
        }
        Ok(())
    }

    pub fn create(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        obj: Value,
        opts: &WriteOptions,
    ) -> Result<Obj> {
        let gr = storage_group_resource(rt);
        let namespace = if rt.namespaced { namespace } else { None };
        let mut v = meta::prepare_create(rt, namespace, obj)?;
        Self::structural(rt, &mut v, opts)?;
        let mut v = to_storage(rt, v)?;
        let generate = match meta::meta_str(&v, "name") {
            Some(n) if !n.is_empty() => None,
            _ => Some(meta::meta_str(&v, "generateName").unwrap_or("").to_string()),
        };
        let mut crd_types = None;
        if meta::is_crd(rt) {
            crd::prepare(&mut v, None)?;
            crd_types = Some(crd::resource_types(&v)?);
        }
        if let Some(mf) = apply::update_managed_fields(
            rt,
            None,
            &v,
            opts.manager(),
            "Update",
            &rt.api_version(),
            None,
        ) {
            meta::meta_mut(&mut v).insert("managedFields".into(), mf);
        }
        meta::finish_create(rt, &mut v);
        let ns = namespace
            .map(str::to_string)
            .or_else(|| meta::meta_str(&v, "namespace").map(str::to_string));
        let ns_key = if rt.namespaced {
            ns.clone().unwrap_or_default()
        } else {
            String::new()
        };

        let mut tasks = Vec::new();
        let mut st = self.write();
        if rt.namespaced {
            if !st.namespace_exists(&ns_key) {
                return Err(ApiError::not_found("", "namespaces", &ns_key));
            }
            if st.terminating_namespaces.contains(&ns_key) {
                let name = meta::meta_str(&v, "name").unwrap_or("").to_string();
                return Err(ApiError::forbidden(format!(
                    "{} \"{name}\" is forbidden: unable to create new content in namespace {ns_key} because it is being terminated",
                    qualified(rt)
                ))
                .with_details(json!({"name": name, "group": rt.group, "kind": rt.plural, "causes": [
                    {"reason": "NamespaceTerminating", "message": format!("namespace {ns_key} is being terminated"), "field": "metadata.namespace"}
                ]})));
            }
        }
        if rt.custom && st.terminating_crds.contains_key(&gr) {
            return Err(ApiError::method_not_allowed(
                "create not allowed while custom resource definition is terminating",
            ));
        }
        if !rt.custom && rt.group.is_empty() && rt.plural == "pods" {
            st.admit_service_account(&ns_key, &mut v)?;
        }
        let name = match generate {
            None => {
                let name = meta::meta_str(&v, "name").unwrap_or("").to_string();
                if st.current(&gr, &make_key(&ns_key, &name)).is_some() {
                    return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
                }
                name
            }
            Some(prefix) => {
                let mut found = None;
                for _ in 0..16 {
                    let candidate = format!("{prefix}{}", meta::name_suffix());
                    if st.current(&gr, &make_key(&ns_key, &candidate)).is_none() {
                        found = Some(candidate);
                        break;
                    }
                }
                let Some(name) = found else {
                    return Err(ApiError::already_exists(&rt.group, &rt.plural, &prefix));
                };
                meta::meta_mut(&mut v).insert("name".into(), Value::String(name.clone()));
                name
            }
        };
        if opts.dry_run {
            drop(st);
            return build_obj(&v, 0).map(|o| serve(rt, o));
        }
        let _ = name;
        if let Some(types) = crd_types {
            self.registry.set_custom_resource(types);
        }
        let obj = st.commit(&gr, &mut v, None, false, &mut tasks)?;
        drop(st);
        self.enqueue(tasks);
        if !rt.custom && rt.group.is_empty() && rt.plural == "namespaces" {
            self.create_default_service_account(&name);
        }
        Ok(serve(rt, obj))
    }

    /// What kube-controller-manager's service account controller does for a new namespace:
    /// creates its `default` ServiceAccount.
    fn create_default_service_account(&self, namespace: &str) {
        let Some(sa) = self.registry.lookup("", "v1", "serviceaccounts") else {
            return;
        };
        let opts = WriteOptions {
            user_agent_manager: Some("kube-controller-manager".into()),
            ..WriteOptions::default()
        };
        let obj = json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "default", "namespace": namespace}});
        match self.create(&sa, Some(namespace), obj, &opts) {
            Ok(_) => {}
            Err(e) if e.code == 409 => {}
            Err(e) => tracing::error!(%e, namespace, "creating the default service account"),
        }
    }

    pub fn get(&self, rt: &ResourceType, namespace: Option<&str>, name: &str) -> Result<Obj> {
        let gr = storage_group_resource(rt);
        let ns = Self::ns_key(rt, namespace);
        self.get_stored(&gr, Some(&ns), name)
            .map(|o| serve(rt, o))
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    /// Lists objects; `namespace: None` on a namespaced type lists across all namespaces.
    pub fn list(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &ListOptions,
    ) -> Result<ListResult> {
        let gr = storage_group_resource(rt);
        let continued = opts
            .continue_token
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(decode_continue)
            .transpose()?;
        let ns = if rt.namespaced {
            namespace.filter(|n| !n.is_empty())
        } else {
            None
        };
        let limit = opts.limit.filter(|l| *l > 0);
        let st = self.read();
        let list_rv = continued.as_ref().map(|c| c.0).unwrap_or(st.rv);
        let mut items = Vec::new();
        let mut next = None;
        let mut remaining = 0u64;
        if let Some(table) = st.tables.get(&gr) {
            let mut bounds = match ns {
                Some(ns) => ns_bounds(ns),
                None => (Bound::Unbounded, Bound::Unbounded),
            };
            if let Some((_, key)) = &continued {
                bounds.0 = Bound::Excluded(key.clone());
            }
            for obj in table
                .objects
                .range::<str, _>(borrowed(&bounds))
                .map(|e| &e.0)
            {
                if !matches_selectors(
                    obj,
                    opts.label_selector.as_ref(),
                    opts.field_selector.as_ref(),
                ) {
                    continue;
                }
                if next.is_some() {
                    remaining += 1;
                    continue;
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    next = items.last().map(|o: &Obj| o.0.key.clone());
                    remaining += 1;
                    continue;
                }
                items.push(obj.clone());
            }
        }
        drop(st);
        let selectors = opts.label_selector.is_some() || opts.field_selector.is_some();
        Ok(ListResult {
            items: items.into_iter().map(|o| serve(rt, o)).collect(),
            resource_version: list_rv,
            continue_token: next.as_ref().map(|k| encode_continue(list_rv, k)),
            remaining_item_count: (next.is_some() && !selectors).then_some(remaining),
        })
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
        if sub == Subresource::Status && !rt.status_subresource {
            return Err(not_found_route());
        }
        let mut body = obj;
        if let Some(n) = meta::meta_str(&body, "name").filter(|n| !n.is_empty() && *n != name) {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        meta::check_type_meta(rt, &mut body)?;
        meta::check_namespace(rt, namespace.filter(|_| rt.namespaced), &mut body)?;
        self.guaranteed_update(rt, namespace, name, sub, opts, "Update", |_| {
            Ok(body.clone())
        })
    }

    /// The optimistic write loop: `f` maps the current object (as `rt` serves it) to the
    /// requested one; the result is checked, prepared and committed unless the object changed
    /// in between, in which case `f` runs again on the new state.
    #[allow(clippy::too_many_arguments)]
    fn guaranteed_update(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        sub: Subresource,
        opts: &WriteOptions,
        operation: &str,
        mut f: impl FnMut(Value) -> Result<Value>,
    ) -> Result<Obj> {
        let gr = storage_group_resource(rt);
        let ns = Self::ns_key(rt, namespace);
        let key = make_key(&ns, name);
        let target = match sub {
            Subresource::Main => Target::Main,
            Subresource::Status => Target::Status,
        };
        loop {
            let cur = self
                .get_stored(&gr, Some(&ns), name)
                .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            let cur_storage = cur.to_value();
            let cur_served = to_served(rt, cur_storage.clone());
            let mut new = f(cur_served.clone())?;
            meta::check_type_meta(rt, &mut new)?;
            meta::check_namespace(rt, rt.namespaced.then_some(ns.as_str()), &mut new)?;
            Self::structural(rt, &mut new, opts)?;
            let new = meta::prepare_update(rt, &cur_served, new, target)?;
            let mut new = to_storage(rt, new)?;
            let mut crd_types = None;
            if meta::is_crd(rt) && target == Target::Main {
                crd::prepare(&mut new, Some(&cur_storage))?;
                crd_types = Some(crd::resource_types(&new)?);
            }
            if let Some(mf) = apply::update_managed_fields(
                rt,
                Some(&cur_storage),
                &new,
                opts.manager(),
                operation,
                &rt.api_version(),
                (sub == Subresource::Status).then_some("status"),
            ) {
                meta::meta_mut(&mut new).insert("managedFields".into(), mf);
            }
            if new == cur_storage {
                return Ok(serve(rt, cur));
            }
            let finish = meta::is_deleting(&new) && !meta::has_finalizers(rt, &new);
            if opts.dry_run {
                return build_obj(&new, cur.0.resource_version).map(|o| serve(rt, o));
            }
            let mut tasks = Vec::new();
            let mut st = self.write();
            if st.current(&gr, &key).map(|o| o.0.resource_version) != Some(cur.0.resource_version) {
                continue;
            }
            if let Some(types) = crd_types {
                self.registry.set_custom_resource(types);
            }
            let obj = st.commit(&gr, &mut new, Some(cur), finish, &mut tasks)?;
            drop(st);
            self.enqueue(tasks);
            return Ok(serve(rt, obj));
        }
    }

    /// An internal read-modify-write of one object (used by the controllers): `f` maps the
    /// current object, as `rt` serves it, to the new one.
    pub fn modify(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        f: impl FnMut(Value) -> Result<Value>,
    ) -> Result<Obj> {
        self.guaranteed_update(
            rt,
            namespace,
            name,
            Subresource::Main,
            &WriteOptions::default(),
            "Update",
            f,
        )
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
        if sub == Subresource::Status && !rt.status_subresource {
            return Err(not_found_route());
        }
        let invalid_patch = |msg: String| ApiError::new(422, "Invalid", msg);
        match patch_type {
            PatchType::Apply { force } => self.apply(rt, namespace, name, patch, force, sub, opts),
            PatchType::Strategic if rt.custom => Err(ApiError::unsupported_media_type(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
            )),
            PatchType::Merge => {
                if !patch.is_object() {
                    return Err(ApiError::bad_request("json: cannot unmarshal into Go value of type map[string]interface {}"));
                }
                self.guaranteed_update(rt, namespace, name, sub, opts, "Update", |mut cur| {
                    metacontroller_merge::merge_patch::apply(&mut cur, patch);
                    Ok(cur)
                })
                .map(|o| (o, false))
            }
            PatchType::Json => check_json_patch(patch).and_then(|()| self
                .guaranteed_update(rt, namespace, name, sub, opts, "Update", |mut cur| {
                    metacontroller_merge::json_patch::apply_bounded(&mut cur, patch, Some(JSON_PATCH_COPY_LIMIT)).map_err(|e| match e {
                        // A patch whose copies would grow the object past the limit: 413, as
                        // kube-apiserver answers (its bound on this amplification).
                        metacontroller_merge::json_patch::JsonPatchError::CopySizeExceeded { .. } => {
                            ApiError::too_large(format!("Request entity too large: {e}"))
                        }
                        e => invalid_patch(e.to_string()),
                    })?;
                    Ok(cur)
                })
                .map(|o| (o, false))),
            PatchType::Strategic => self
                .guaranteed_update(rt, namespace, name, sub, opts, "Update", |mut cur| {
                    metacontroller_merge::strategic::apply(&mut cur, patch).map_err(|e| invalid_patch(e.to_string()))?;
                    Ok(cur)
                })
                .map(|o| (o, false)),
        }
    }

    pub fn delete(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome> {
        let gr = storage_group_resource(rt);
        let ns = Self::ns_key(rt, namespace);
        let key = make_key(&ns, name);
        if meta::is_namespace(rt) && PROTECTED_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(format!(
                "namespaces \"{name}\" is forbidden: this namespace may not be deleted"
            ))
            .with_details(json!({"name": name, "kind": "namespaces"})));
        }
        loop {
            let cur = self
                .get_stored(&gr, Some(&ns), name)
                .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))?;
            if let Some(uid) = opts.precondition_uid.as_deref().filter(|u| !u.is_empty()) {
                if uid != cur.0.uid {
                    return Err(ApiError::conflict(
                        &rt.group,
                        &rt.plural,
                        name,
                        &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {}", cur.0.uid),
                    ));
                }
            }
            if let Some(rv) = opts
                .precondition_resource_version
                .as_deref()
                .filter(|r| !r.is_empty())
            {
                if rv != cur.0.resource_version.to_string() {
                    return Err(ApiError::conflict(
                        &rt.group,
                        &rt.plural,
                        name,
                        &format!(
                            "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                            cur.0.resource_version
                        ),
                    ));
                }
            }
            let cur_value = cur.to_value();
            let mut v = cur_value.clone();
            let fins = meta::finalizers_for_policy(meta::finalizers(&v), opts.propagation);
            meta::set_finalizers(&mut v, fins);
            let pending = meta::has_finalizers(rt, &v);
            if pending {
                meta::mark_deleting(&mut v);
                if meta::is_namespace(rt) {
                    v["status"] = json!({"phase": "Terminating"});
                }
                if meta::is_crd(rt) {
                    crd::mark_terminating(&mut v);
                }
                if v == cur_value {
                    return Ok(DeleteOutcome::Pending(serve(rt, cur)));
                }
                if opts.dry_run {
                    return build_obj(&v, cur.0.resource_version)
                        .map(|o| DeleteOutcome::Pending(serve(rt, o)));
                }
            } else if opts.dry_run {
                return Ok(DeleteOutcome::Deleted(serve(rt, cur)));
            }
            let mut tasks = Vec::new();
            let mut st = self.write();
            if st.current(&gr, &key).map(|o| o.0.resource_version) != Some(cur.0.resource_version) {
                continue;
            }
            let obj = st.commit(&gr, &mut v, Some(cur), !pending, &mut tasks)?;
            drop(st);
            self.enqueue(tasks);
            let obj = serve(rt, obj);
            return Ok(if pending {
                DeleteOutcome::Pending(obj)
            } else {
                DeleteOutcome::Deleted(obj)
            });
        }
    }

    /// DELETE on a collection: deletes every match; returns the objects as they ended up.
    pub fn delete_collection(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        list: &ListOptions,
        opts: &DeleteOptions,
    ) -> Result<Vec<Obj>> {
        let all = ListOptions {
            limit: None,
            continue_token: None,
            ..list.clone()
        };
        let items = self.list(rt, namespace, &all)?.items;
        let mut out = Vec::new();
        for item in items {
            match self.delete(rt, item.namespace(), item.name(), opts) {
                Ok(DeleteOutcome::Deleted(o) | DeleteOutcome::Pending(o)) => out.push(o),
                Err(e) if e.code == 404 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Starts a watch. Events arrive on a bounded channel; a watcher that falls too far behind
    /// is dropped (its channel closes) and the client relists, as with kube-apiserver.
    /// A `resource_version` older than the event log yields a single `Error` event with a 410
    /// `Expired` Status (never an error return: the HTTP layer must answer 200 and stream it).
    pub fn watch(
        &self,
        rt: &ResourceType,
        namespace: Option<&str>,
        opts: &WatchOptions,
    ) -> Result<mpsc::Receiver<WatchEvent>> {
        let gr = storage_group_resource(rt);
        let from = match opts.resource_version.as_deref() {
            None | Some("") | Some("0") => None,
            Some(s) => Some(
                s.parse::<u64>()
                    .map_err(|_| ApiError::bad_request(format!("invalid resource version: {s}")))?,
            ),
        };
        let watcher = Watcher {
            tx: mpsc::channel(1).0,
            namespace: if rt.namespaced {
                namespace.filter(|n| !n.is_empty()).map(str::to_string)
            } else {
                None
            },
            label: opts.label_selector.clone().filter(|l| !l.is_everything()),
            field: opts
                .field_selector
                .clone()
                .filter(|f| !f.requirements.is_empty()),
            bookmarks: opts.allow_bookmarks,
            convert: needs_conversion(rt).then(|| Arc::new(rt.clone())),
            kind: rt.kind.clone(),
            api_version: rt.api_version(),
        };
        let mut st = self.write();
        let current = st.rv;
        let table = st.table(&gr);
        let mut initial: Vec<WatchEvent> = Vec::new();
        match from {
            Some(rv) if !opts.send_initial_events => {
                if rv < table.floor {
                    let status = ApiError::expired(format!(
                        "too old resource version: {rv} ({})",
                        table.floor
                    ))
                    .to_status();
                    let (tx, rx) = mpsc::channel(1);
                    let _ = tx.try_send(WatchEvent {
                        kind: WatchEventType::Error,
                        object: Bytes::from(status.to_string()),
                    });
                    return Ok(rx);
                }
                let start = table
                    .log
                    .partition_point(|e| e.obj.0.resource_version <= rv);
                initial.extend(
                    table
                        .log
                        .iter()
                        .skip(start)
                        .filter_map(|e| watcher.event_for(e)),
                );
            }
            _ => {
                let bounds = match &watcher.namespace {
                    Some(ns) => ns_bounds(ns),
                    None => (Bound::Unbounded, Bound::Unbounded),
                };
                for obj in table
                    .objects
                    .range::<str, _>(borrowed(&bounds))
                    .map(|e| &e.0)
                {
                    if watcher.matches(obj) {
                        let obj = match &watcher.convert {
                            Some(rt) => serve(rt, obj.clone()),
                            None => obj.clone(),
                        };
                        initial.push(WatchEvent {
                            kind: WatchEventType::Added,
                            object: obj.0.json.clone(),
                        });
                    }
                }
                if opts.send_initial_events {
                    initial.push(watcher.bookmark(current, true));
                }
            }
        }
        let (tx, rx) = mpsc::channel(initial.len() + WATCH_BUFFER);
        for ev in initial {
            // Cannot fail: the channel was sized for these events and the receiver is alive.
            let _ = tx.try_send(ev);
        }
        table.watchers.push(Watcher { tx, ..watcher });
        Ok(rx)
    }

    /// Sends a BOOKMARK carrying the current resourceVersion to every watcher that allows
    /// them (the server calls this periodically; kube-apiserver bookmarks about once a minute).
    pub fn send_bookmarks(&self) {
        let mut st = self.write();
        let rv = st.rv;
        for table in st.tables.values_mut() {
            table.watchers.retain(|w| {
                if w.tx.is_closed() {
                    return false;
                }
                if w.bookmarks {
                    // A full channel skips this bookmark; the next one will do.
                    let _ = w.tx.try_send(w.bookmark(rv, false));
                }
                true
            });
        }
    }

    /// The current global resource version.
    pub fn current_resource_version(&self) -> u64 {
        self.read().rv
    }
}

/// `plural` for the core group, else `plural.group`.
fn qualified(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

/// Most operations one JSON patch may hold, as kube-apiserver.
const MAX_JSON_PATCH_OPERATIONS: usize = 10_000;

/// What the `copy` operations of one JSON patch may add together: the request body limit, as
/// kube-apiserver bounds them.
const JSON_PATCH_COPY_LIMIT: u64 = crate::model::MAX_BODY_BYTES as u64;

/// A JSON patch that is not a list of operation objects cannot be decoded: 400, as
/// kube-apiserver; one with too many operations: 413. Operations that do not apply are 422.
fn check_json_patch(patch: &Value) -> Result<()> {
    let Some(ops) = patch.as_array() else {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal a non-array into Go value of type jsonpatch.Patch",
        ));
    };
    if ops.iter().any(|op| !op.is_object()) {
        return Err(ApiError::bad_request(
            "json: cannot unmarshal a non-object into Go value of type jsonpatch.Operation",
        ));
    }
    if ops.len() > MAX_JSON_PATCH_OPERATIONS {
        return Err(ApiError::too_large(format!(
            "The allowed maximum operations in a JSON patch is {MAX_JSON_PATCH_OPERATIONS}, got {}",
            ops.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
