//! The indexed object cache behind each informer.
//!
//! A plain synchronous struct (`apply`, `delete`, `reset`) so it can be tested without a
//! cluster. Objects are kept as compact JSON ([`Compact`]) and decoded on each read into an
//! [`ObjectRef`] the reader owns: thousands of cached objects then cost about their JSON size,
//! not the ten times more a parsed object tree takes.
//!
//! Indexes, all kept exact on every change:
//!
//! ```text
//! objects        key ("ns/name" or "name")  -> object
//! by_namespace   namespace ("" = cluster)   -> keys
//! by_controller  controller owner UID       -> keys   (ownerReferences[].controller == true)
//! orphans        namespace                  -> keys   (no controller owner)
//! ```
//!
//! Claiming children reads `by_controller` (owned) and `orphans` (adoption candidates), so a
//! sync never scans every object of a type.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use kube::api::DynamicObject;

use crate::compact::Compact;

/// An object read from the cache, shared between the handlers and syncs that use it.
pub type ObjectRef = Arc<DynamicObject>;

/// One change to the cache, as delivered to subscribers.
#[derive(Debug, Clone)]
pub struct Event {
    /// The object before the change (`None` for an add).
    pub old: Option<ObjectRef>,
    /// The object after the change (`None` for a delete).
    pub new: Option<ObjectRef>,
    /// The engine was writing this object when the watch delivered the change (decided while
    /// the change was applied to the cache, so a write finishing meanwhile cannot hide it).
    pub own_write: bool,
}

impl Event {
    /// The object the event is about: the new state, or the last state for a delete.
    pub fn object(&self) -> Option<&ObjectRef> {
        self.new.as_ref().or(self.old.as_ref())
    }
}

/// The cache key of an object: `namespace/name`, or `name` when cluster-scoped.
pub fn object_key(namespace: Option<&str>, name: &str) -> String {
    match namespace {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name.to_string(),
    }
}

/// Splits a cache key into `(namespace, name)`; the namespace is empty when cluster-scoped.
pub fn split_key(key: &str) -> (&str, &str) {
    key.split_once('/').unwrap_or(("", key))
}

/// The key of a cached object.
pub fn key_of(obj: &DynamicObject) -> String {
    object_key(
        obj.metadata.namespace.as_deref(),
        obj.metadata.name.as_deref().unwrap_or(""),
    )
}

pub use crate::compact::controller_uid;

/// The cache of one resource type.
#[derive(Debug, Default)]
pub struct Store {
    objects: HashMap<String, Compact>,
    by_namespace: HashMap<String, HashSet<String>>,
    by_controller: HashMap<String, HashSet<String>>,
    orphans: HashMap<String, HashSet<String>>,
    /// Keys whose cached state came from the engine's own write and no watch event has
    /// delivered yet: a relist that finds them unchanged must still report them, or
    /// subscribers would never hear of the write when the watch broke before its event.
    unconfirmed: HashSet<String>,
}

fn index_insert(index: &mut HashMap<String, HashSet<String>>, bucket: &str, key: &str) {
    index
        .entry(bucket.to_string())
        .or_default()
        .insert(key.to_string());
}

fn index_remove(index: &mut HashMap<String, HashSet<String>>, bucket: &str, key: &str) {
    if let Some(keys) = index.get_mut(bucket) {
        keys.remove(key);
        if keys.is_empty() {
            index.remove(bucket);
        }
    }
}

impl Store {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn index(&mut self, key: &str, obj: &Compact) {
        let (ns, _) = split_key(key);
        index_insert(&mut self.by_namespace, ns, key);
        match obj.controller() {
            Some(uid) => index_insert(&mut self.by_controller, uid, key),
            None => index_insert(&mut self.orphans, ns, key),
        }
    }

    fn unindex(&mut self, key: &str, obj: &Compact) {
        let (ns, _) = split_key(key);
        index_remove(&mut self.by_namespace, ns, key);
        match obj.controller() {
            Some(uid) => index_remove(&mut self.by_controller, uid, key),
            None => index_remove(&mut self.orphans, ns, key),
        }
    }

    /// Caches the result of the engine's own write until a watch event or a relist
    /// delivers it.
    pub fn apply_written(&mut self, obj: &DynamicObject) {
        let key = self.put(obj);
        self.unconfirmed.insert(key);
    }

    /// [`Store::apply_written`] for a write whose response JSON is at hand: the cache keeps
    /// that JSON instead of encoding the object again.
    pub fn apply_written_raw(&mut self, key: String, compact: Compact) {
        self.put_compact(key.clone(), compact);
        self.unconfirmed.insert(key);
    }

    /// Records that a watch delivered the state already cached under `key` (the engine's own
    /// write, cached by [`Store::apply_written`]): nothing to store again.
    pub fn confirm(&mut self, key: &str) {
        self.unconfirmed.remove(key);
    }

    /// Inserts or replaces an object (a state a watch delivered); returns the previous state.
    pub fn apply(&mut self, obj: &DynamicObject) -> Option<ObjectRef> {
        let key = key_of(obj);
        let old = self
            .objects
            .get(&key)
            .and_then(|o| o.object())
            .map(Arc::new);
        self.put(obj);
        old
    }

    /// Stores `obj` (a state the watch delivered, as far as `unconfirmed` knows); returns its key.
    fn put(&mut self, obj: &DynamicObject) -> String {
        let key = key_of(obj);
        self.put_compact(key.clone(), Compact::new(obj));
        key
    }

    fn put_compact(&mut self, key: String, compact: Compact) {
        self.unconfirmed.remove(&key);
        if let Some(old) = self.objects.remove(&key) {
            self.unindex(&key, &old);
        }
        self.index(&key, &compact);
        self.objects.insert(key, compact);
    }

    /// Removes the object stored under `key`; returns it.
    pub fn delete(&mut self, key: &str) -> Option<ObjectRef> {
        self.unconfirmed.remove(key);
        let old = self.objects.remove(key)?;
        self.unindex(key, &old);
        old.object().map(Arc::new)
    }

    /// The `(uid, resourceVersion)` of the object stored under `key`, read without decoding it.
    pub fn version_of(&self, key: &str) -> Option<(Option<&str>, Option<&str>)> {
        self.objects
            .get(key)
            .map(|c| (c.uid(), c.resource_version()))
    }

    /// Replaces the whole content (after a relist) and returns the changes subscribers must
    /// see: adds and updates for listed objects, deletes for objects that vanished. Objects
    /// whose `resourceVersion` did not change produce no event.
    pub fn reset(&mut self, objects: Vec<ObjectRef>) -> Vec<Event> {
        let mut fresh: BTreeMap<String, ObjectRef> = BTreeMap::new();
        for obj in objects {
            fresh.insert(key_of(&obj), obj);
        }
        let mut events = Vec::new();
        let gone: Vec<String> = self
            .objects
            .keys()
            .filter(|k| !fresh.contains_key(*k))
            .cloned()
            .collect();
        for key in gone {
            if let Some(old) = self.delete(&key) {
                events.push(Event {
                    own_write: false,
                    old: Some(old),
                    new: None,
                });
            }
        }
        for (_, obj) in fresh {
            let key = key_of(&obj);
            let unchanged = !self.unconfirmed.contains(&key)
                && self.objects.get(&key).is_some_and(|old| {
                    old.resource_version().is_some()
                        && old.resource_version() == obj.metadata.resource_version.as_deref()
                        && old.uid() == obj.metadata.uid.as_deref()
                });
            if unchanged {
                continue;
            }
            let old = self.apply(&obj);
            events.push(Event {
                own_write: false,
                old,
                new: Some(obj),
            });
        }
        events
    }

    /// The object stored under `namespace`/`name` (namespace empty when cluster-scoped).
    pub fn get(&self, namespace: &str, name: &str) -> Option<ObjectRef> {
        self.get_key(&object_key(Some(namespace), name))
    }

    /// The object stored under a cache key.
    pub fn get_key(&self, key: &str) -> Option<ObjectRef> {
        self.objects.get(key).and_then(|c| c.object()).map(Arc::new)
    }

    fn collect(&self, keys: Option<&HashSet<String>>) -> Vec<ObjectRef> {
        keys.map(|keys| keys.iter().filter_map(|k| self.get_key(k)).collect())
            .unwrap_or_default()
    }

    /// The objects under `keys` whose head (see [`Compact::head`]) passes `keep`, decoded; the
    /// others are never decoded.
    fn select<'a>(
        &self,
        keys: impl Iterator<Item = &'a String>,
        keep: &dyn Fn(&DynamicObject) -> bool,
    ) -> Vec<ObjectRef> {
        keys.filter_map(|k| self.objects.get(k))
            .filter(|c| keep(&c.head()))
            .filter_map(|c| c.object().map(Arc::new))
            .collect()
    }

    /// Objects in one namespace (`""` for cluster-scoped objects).
    pub fn list_namespace(&self, namespace: &str) -> Vec<ObjectRef> {
        self.collect(self.by_namespace.get(namespace))
    }

    /// Objects in one namespace that `keep` accepts. `keep` sees only the name, namespace,
    /// labels and `spec.selector` of each object (label and name selectors need no more), so
    /// only the objects it accepts are decoded.
    pub fn list_namespace_where(
        &self,
        namespace: &str,
        keep: &dyn Fn(&DynamicObject) -> bool,
    ) -> Vec<ObjectRef> {
        self.select(self.by_namespace.get(namespace).into_iter().flatten(), keep)
    }

    /// Every cached object `keep` accepts; `keep` sees what it sees in
    /// [`Store::list_namespace_where`].
    pub fn list_all_where(&self, keep: &dyn Fn(&DynamicObject) -> bool) -> Vec<ObjectRef> {
        self.select(self.objects.keys(), keep)
    }

    /// Objects without a controller owner in `namespace` (or, with `None`, in all namespaces)
    /// that `keep` accepts; `keep` sees what it sees in [`Store::list_namespace_where`].
    pub fn list_orphans_where(
        &self,
        namespace: Option<&str>,
        keep: &dyn Fn(&DynamicObject) -> bool,
    ) -> Vec<ObjectRef> {
        match namespace {
            Some(ns) => self.select(self.orphans.get(ns).into_iter().flatten(), keep),
            None => self.select(self.orphans.values().flatten(), keep),
        }
    }

    /// Objects whose controller owner has `uid`, optionally only in `namespace`.
    pub fn list_controlled_by(&self, uid: &str, namespace: Option<&str>) -> Vec<ObjectRef> {
        let Some(keys) = self.by_controller.get(uid) else {
            return Vec::new();
        };
        keys.iter()
            .filter(|k| namespace.is_none_or(|ns| split_key(k).0 == ns))
            .filter_map(|k| self.get_key(k))
            .collect()
    }

    /// Objects without a controller owner, in `namespace` or (with `None`) in all namespaces.
    pub fn list_orphans(&self, namespace: Option<&str>) -> Vec<ObjectRef> {
        match namespace {
            Some(ns) => self.collect(self.orphans.get(ns)),
            None => self
                .orphans
                .values()
                .flat_map(|keys| keys.iter())
                .filter_map(|k| self.get_key(k))
                .collect(),
        }
    }

    /// Every cached object (used once when a subscriber joins, never by a sync).
    pub fn list_all(&self) -> Vec<ObjectRef> {
        self.objects
            .values()
            .filter_map(|c| c.object().map(Arc::new))
            .collect()
    }

    /// Number of cached objects.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}

#[cfg(test)]
pub(crate) mod testutil {
    use super::*;
    use serde_json::json;

    /// Builds a cached object from JSON.
    pub fn obj(value: serde_json::Value) -> ObjectRef {
        Arc::new(serde_json::from_value(value).expect("valid object"))
    }

    /// A ConfigMap with the given namespace, name, uid, resourceVersion and labels.
    pub fn cm(ns: &str, name: &str, uid: &str, rv: &str) -> serde_json::Value {
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"namespace": ns, "name": name, "uid": uid, "resourceVersion": rv}
        })
    }

    /// Adds a controller ownerReference to `value`.
    pub fn controlled_by(mut value: serde_json::Value, owner_uid: &str) -> serde_json::Value {
        value["metadata"]["ownerReferences"] = json!([{
            "apiVersion": "example.com/v1", "kind": "Parent", "name": "p",
            "uid": owner_uid, "controller": true
        }]);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use serde_json::json;

    fn names(mut objs: Vec<ObjectRef>) -> Vec<String> {
        objs.sort_by_key(|o| key_of(o));
        objs.iter().map(|o| key_of(o)).collect()
    }

    #[test]
    fn keys() {
        assert_eq!(object_key(Some("ns"), "a"), "ns/a");
        assert_eq!(object_key(Some(""), "a"), "a");
        assert_eq!(object_key(None, "a"), "a");
        assert_eq!(split_key("ns/a"), ("ns", "a"));
        assert_eq!(split_key("a"), ("", "a"));
    }

    #[test]
    fn a_relist_reports_own_writes_no_watch_event_delivered() {
        let mut s = Store::new();
        s.apply(&obj(cm("ns", "seen", "u1", "1")));
        // The engine created this one; the watch broke before its ADDED event.
        s.apply_written(&obj(cm("ns", "written", "u2", "2")));
        let events = s.reset(vec![
            obj(cm("ns", "seen", "u1", "1")),
            obj(cm("ns", "written", "u2", "2")),
        ]);
        let reported: Vec<String> = events
            .iter()
            .filter_map(|e| e.new.as_ref().map(|o| key_of(o)))
            .collect();
        assert_eq!(reported, vec!["ns/written".to_string()]);
        // Delivered now: the next relist is quiet.
        assert!(s
            .reset(vec![
                obj(cm("ns", "seen", "u1", "1")),
                obj(cm("ns", "written", "u2", "2")),
            ])
            .is_empty());
        // A watch event confirms a write as well.
        s.apply_written(&obj(cm("ns", "written", "u2", "3")));
        s.apply(&obj(cm("ns", "written", "u2", "3")));
        assert!(s
            .reset(vec![
                obj(cm("ns", "seen", "u1", "1")),
                obj(cm("ns", "written", "u2", "3")),
            ])
            .is_empty());
    }

    #[test]
    fn a_write_response_is_cached_as_it_came_and_indexed() {
        let mut s = Store::new();
        let value = controlled_by(cm("ns", "w", "u1", "4"), "owner");
        // As a server may send it: whitespace and a field order of its own.
        let text = format!(
            "{{ \"kind\": \"ConfigMap\", {} }}",
            &value.to_string()[1..value.to_string().len() - 1]
        );
        let compact = Compact::from_parts(
            text.into_bytes().into_boxed_slice(),
            Some("u1".into()),
            Some("4".into()),
            Some("owner".into()),
        );
        s.apply_written_raw("ns/w".into(), compact);
        assert_eq!(s.version_of("ns/w"), Some((Some("u1"), Some("4"))));
        assert_eq!(names(s.list_controlled_by("owner", Some("ns"))), ["ns/w"]);
        assert!(s.list_orphans(Some("ns")).is_empty());
        let cached = s.get("ns", "w").expect("cached");
        assert_eq!(serde_json::to_value(&*cached).expect("value"), value);
        // Unconfirmed until the watch delivers it, as any own write.
        let events = s.reset(vec![obj(value.clone())]);
        assert_eq!(events.len(), 1);
    }

    #[test]
    fn apply_get_delete() {
        let mut s = Store::new();
        assert!(s.apply(&obj(cm("ns", "a", "u1", "1"))).is_none());
        let old = s.apply(&obj(cm("ns", "a", "u1", "2"))).expect("old");
        assert_eq!(old.metadata.resource_version.as_deref(), Some("1"));
        assert_eq!(s.len(), 1);
        assert_eq!(
            s.get("ns", "a")
                .expect("present")
                .metadata
                .resource_version
                .as_deref(),
            Some("2")
        );
        assert!(s.get("other", "a").is_none());
        assert!(s.delete("ns/a").is_some());
        assert!(s.delete("ns/a").is_none());
        assert!(s.is_empty());
        assert!(s.list_namespace("ns").is_empty());
        assert!(s.list_orphans(None).is_empty());
    }

    #[test]
    fn indexes_by_namespace_controller_and_orphans() {
        let mut s = Store::new();
        s.apply(&obj(cm("a", "o1", "1", "1")));
        s.apply(&obj(cm("b", "o2", "2", "1")));
        s.apply(&obj(controlled_by(cm("a", "c1", "3", "1"), "P1")));
        s.apply(&obj(controlled_by(cm("b", "c2", "4", "1"), "P1")));
        s.apply(&obj(controlled_by(cm("a", "c3", "5", "1"), "P2")));
        // A non-controller ownerReference leaves the object an orphan.
        let mut weak = cm("a", "w", "6", "1");
        weak["metadata"]["ownerReferences"] =
            json!([{"apiVersion":"v1","kind":"X","name":"x","uid":"P1","controller":false}]);
        s.apply(&obj(weak));

        assert_eq!(
            names(s.list_namespace("a")),
            ["a/c1", "a/c3", "a/o1", "a/w"]
        );
        assert_eq!(names(s.list_controlled_by("P1", None)), ["a/c1", "b/c2"]);
        assert_eq!(names(s.list_controlled_by("P1", Some("b"))), ["b/c2"]);
        assert_eq!(
            names(s.list_controlled_by("nobody", None)),
            Vec::<String>::new()
        );
        assert_eq!(names(s.list_orphans(Some("a"))), ["a/o1", "a/w"]);
        assert_eq!(names(s.list_orphans(None)), ["a/o1", "a/w", "b/o2"]);
    }

    #[test]
    fn filtered_lists_see_names_and_labels_and_return_whole_objects() {
        let mut s = Store::new();
        let mut labelled = cm("a", "l", "1", "1");
        labelled["metadata"]["labels"] = json!({"app": "x"});
        labelled["data"] = json!({"k": "v"});
        s.apply(&obj(labelled));
        s.apply(&obj(cm("a", "plain", "2", "1")));
        s.apply(&obj(controlled_by(cm("a", "owned", "3", "1"), "P")));
        s.apply(&obj(cm("b", "other", "4", "1")));
        let app_x = |o: &DynamicObject| {
            o.metadata
                .labels
                .as_ref()
                .is_some_and(|l| l.get("app").map(String::as_str) == Some("x"))
        };
        let found = s.list_orphans_where(Some("a"), &app_x);
        assert_eq!(names(found.clone()), ["a/l"]);
        assert_eq!(found[0].data["data"], json!({"k": "v"}), "decoded whole");
        assert_eq!(found[0].metadata.uid.as_deref(), Some("1"));
        assert_eq!(
            names(s.list_namespace_where("a", &|o| o.metadata.name.as_deref() != Some("l"))),
            ["a/owned", "a/plain"]
        );
        assert_eq!(
            names(s.list_all_where(&|o| o.metadata.namespace.as_deref() == Some("b"))),
            ["b/other"]
        );
        assert!(s.list_orphans_where(Some("b"), &app_x).is_empty());
        assert_eq!(names(s.list_orphans_where(None, &app_x)), ["a/l"]);
    }

    #[test]
    fn indexes_follow_ownership_changes() {
        let mut s = Store::new();
        s.apply(&obj(cm("a", "x", "1", "1")));
        assert_eq!(s.list_orphans(Some("a")).len(), 1);
        s.apply(&obj(controlled_by(cm("a", "x", "1", "2"), "P")));
        assert!(s.list_orphans(Some("a")).is_empty());
        assert_eq!(s.list_controlled_by("P", None).len(), 1);
        s.apply(&obj(controlled_by(cm("a", "x", "1", "3"), "Q")));
        assert!(s.list_controlled_by("P", None).is_empty());
        assert_eq!(s.list_controlled_by("Q", None).len(), 1);
        s.apply(&obj(cm("a", "x", "1", "4")));
        assert!(s.list_controlled_by("Q", None).is_empty());
        assert_eq!(s.list_orphans(Some("a")).len(), 1);
        s.delete("a/x");
        assert!(s.list_orphans(Some("a")).is_empty());
    }

    #[test]
    fn reset_reports_adds_updates_and_deletes_but_not_unchanged() {
        let mut s = Store::new();
        s.apply(&obj(cm("a", "same", "1", "1")));
        s.apply(&obj(cm("a", "changed", "2", "1")));
        s.apply(&obj(cm("a", "gone", "3", "1")));
        let events = s.reset(vec![
            obj(cm("a", "same", "1", "1")),
            obj(cm("a", "changed", "2", "5")),
            obj(cm("a", "new", "4", "6")),
        ]);
        let mut summary: Vec<(String, bool, bool)> = events
            .iter()
            .map(|e| {
                (
                    key_of(e.object().expect("object")),
                    e.old.is_some(),
                    e.new.is_some(),
                )
            })
            .collect();
        summary.sort();
        assert_eq!(
            summary,
            [
                ("a/changed".to_string(), true, true),
                ("a/gone".to_string(), true, false),
                ("a/new".to_string(), false, true),
            ]
        );
        assert_eq!(names(s.list_all()), ["a/changed", "a/new", "a/same"]);
        assert_eq!(
            names(s.list_orphans(Some("a"))),
            ["a/changed", "a/new", "a/same"]
        );
    }

    #[test]
    fn reset_treats_a_recreated_object_as_an_update() {
        let mut s = Store::new();
        s.apply(&obj(cm("a", "x", "uid-1", "7")));
        let events = s.reset(vec![obj(cm("a", "x", "uid-2", "7"))]);
        assert_eq!(events.len(), 1);
        assert_eq!(
            s.get("a", "x").expect("x").metadata.uid.as_deref(),
            Some("uid-2")
        );
    }

    #[test]
    fn cluster_scoped_objects_live_in_the_empty_namespace() {
        let mut s = Store::new();
        s.apply(&obj(
            json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n1","uid":"1"}}),
        ));
        assert!(s.get("", "n1").is_some());
        assert_eq!(s.list_namespace("").len(), 1);
        assert_eq!(s.list_orphans(Some("")).len(), 1);
    }
}
