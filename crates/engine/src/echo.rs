//! Recognizing a controller's own parent status writes when the watch brings them back.
//!
//! A sync ends by writing the status its hook returned, guarded by the resourceVersion the hook
//! saw. The update event that write causes changes nothing the hook has not already answered
//! for, so syncing again on it would only repeat the hook call. [`OwnStatusWrites`] remembers,
//! per parent, fingerprints of the last statuses this controller wrote; an update that changes
//! the status alone, to one of those values, is such an echo. Anything else (spec, labels,
//! annotations, finalizers, owners, deletion, or a status this controller did not write) still
//! syncs.
//!
//! The check looks at content, not at resourceVersions, so it holds whether the event arrives
//! before or after the write's response, and each controller keeps its own record, so a write
//! by one controller never hides an event from another sharing the informer.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use kube::api::DynamicObject;
use serde_json::Value;

/// How many recent status writes per parent are remembered: a sync's write can come back
/// after the next sync has written again.
const RECENT: usize = 2;

/// Fingerprints of the statuses a controller wrote, by parent key.
#[derive(Debug, Default)]
pub struct OwnStatusWrites {
    recent: Mutex<HashMap<String, [Option<u64>; RECENT]>>,
}

impl OwnStatusWrites {
    /// Remembers that the status of `key` is about to be set to `status`.
    pub fn record(&self, key: &str, status: &Value) {
        let print = fingerprint(status);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        match recent.get_mut(key) {
            Some(slots) => {
                if slots[0] != Some(print) {
                    slots.rotate_right(1);
                    slots[0] = Some(print);
                }
            }
            None => {
                let mut slots = [None; RECENT];
                slots[0] = Some(print);
                recent.insert(key.to_string(), slots);
            }
        }
    }

    /// Whether `old` → `new` of the parent under `key` only brings back a status this
    /// controller wrote.
    pub fn is_echo(&self, key: &str, old: &DynamicObject, new: &DynamicObject) -> bool {
        if !only_status_differs(old, new) {
            return false;
        }
        let Some(status) = new.data.get("status") else {
            return false;
        };
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let Some(slots) = recent.get(key) else {
            return false;
        };
        let print = fingerprint(status);
        slots.contains(&Some(print))
    }

    /// Forgets a parent that is gone.
    pub fn forget(&self, key: &str) {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    /// Number of parents remembered.
    pub fn len(&self) -> usize {
        self.recent.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether two states of one object differ at most in `status` and in the fields every write
/// changes (`resourceVersion`, `managedFields`).
fn only_status_differs(old: &DynamicObject, new: &DynamicObject) -> bool {
    let (a, b) = (&old.metadata, &new.metadata);
    let same_meta = a.uid == b.uid
        && a.name == b.name
        && a.namespace == b.namespace
        && a.generation == b.generation
        && a.labels == b.labels
        && a.annotations == b.annotations
        && a.finalizers == b.finalizers
        && a.owner_references == b.owner_references
        && a.deletion_timestamp == b.deletion_timestamp
        && a.deletion_grace_period_seconds == b.deletion_grace_period_seconds;
    if !same_meta {
        return false;
    }
    let (Some(x), Some(y)) = (old.data.as_object(), new.data.as_object()) else {
        return old.data == new.data;
    };
    let rest_equal = |from: &serde_json::Map<String, Value>,
                      to: &serde_json::Map<String, Value>| {
        from.iter()
            .filter(|(k, _)| k.as_str() != "status")
            .all(|(k, v)| to.get(k) == Some(v))
    };
    rest_equal(x, y) && rest_equal(y, x)
}

/// A hash of a JSON value that ignores the order of object keys and compares numbers by
/// value (`1` and `1.0` are the same).
pub fn fingerprint(v: &Value) -> u64 {
    let mut h = DefaultHasher::new();
    hash_into(v, &mut h);
    h.finish()
}

fn hash_into(v: &Value, h: &mut DefaultHasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => {
            2u8.hash(h);
            match (n.as_i64(), n.as_u64(), n.as_f64()) {
                (Some(i), _, _) => (0u8, i).hash(h),
                (None, Some(u), _) => (1u8, u).hash(h),
                (None, None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e18 => {
                    (0u8, f as i64).hash(h)
                }
                (None, None, f) => (2u8, f.unwrap_or(0.0).to_bits()).hash(h),
            }
        }
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(items) => {
            (4u8, items.len()).hash(h);
            for item in items {
                hash_into(item, h);
            }
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(h);
            // Order-independent: entries are hashed apart and summed.
            let mut sum = 0u64;
            for (k, v) in map {
                let mut entry = DefaultHasher::new();
                k.hash(&mut entry);
                hash_into(v, &mut entry);
                sum = sum.wrapping_add(entry.finish());
            }
            sum.hash(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parent(rv: &str, spec: Value, status: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "example.com/v1", "kind": "HelloWorld",
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1", "resourceVersion": rv,
                         "generation": 1, "labels": {"a": "b"}},
            "spec": spec, "status": status
        }))
        .expect("object")
    }

    #[test]
    fn fingerprint_ignores_key_order_and_number_form() {
        let a: Value =
            serde_json::from_str(r#"{"pods": 1, "x": {"b": 2, "a": [1, "s"]}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"x": {"a": [1, "s"], "b": 2.0}, "pods": 1}"#).unwrap();
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(
            fingerprint(&json!({"pods": 1})),
            fingerprint(&json!({"pods": 0}))
        );
        assert_ne!(
            fingerprint(&json!({"a": 1, "b": 2})),
            fingerprint(&json!({"a": 2, "b": 1}))
        );
        assert_ne!(fingerprint(&json!([1, 2])), fingerprint(&json!([2, 1])));
        assert_ne!(fingerprint(&json!("1")), fingerprint(&json!(1)));
    }

    #[test]
    fn the_echo_of_an_own_status_write_is_recognized() {
        let own = OwnStatusWrites::default();
        let before = parent("1", json!({"who": "x"}), json!({"pods": 0}));
        let after = parent(
            "2",
            json!({"who": "x"}),
            json!({"pods": 1, "observedGeneration": 1}),
        );
        assert!(!own.is_echo("ns/p", &before, &after), "nothing written yet");
        own.record("ns/p", &json!({"observedGeneration": 1, "pods": 1}));
        assert!(own.is_echo("ns/p", &before, &after));
        // The cache may already hold the written state (same resourceVersion).
        assert!(own.is_echo("ns/p", &after, &after));
        // Another parent's key, or a status nobody here wrote, is not an echo.
        assert!(!own.is_echo("ns/q", &before, &after));
        let foreign = parent("3", json!({"who": "x"}), json!({"pods": 7}));
        assert!(!own.is_echo("ns/p", &after, &foreign));
        own.forget("ns/p");
        assert!(own.is_empty());
        assert!(!own.is_echo("ns/p", &before, &after));
    }

    #[test]
    fn the_last_two_writes_are_remembered() {
        let own = OwnStatusWrites::default();
        let base = parent("1", json!({}), json!({}));
        let s = |n: i64| parent("9", json!({}), json!({"pods": n}));
        own.record("k", &json!({"pods": 0}));
        own.record("k", &json!({"pods": 1}));
        assert!(
            own.is_echo("k", &base, &s(0)),
            "an earlier write coming back late"
        );
        assert!(own.is_echo("k", &base, &s(1)));
        own.record("k", &json!({"pods": 1}));
        assert!(
            own.is_echo("k", &base, &s(0)),
            "repeating a status keeps the older one"
        );
        own.record("k", &json!({"pods": 2}));
        assert!(!own.is_echo("k", &base, &s(0)));
        assert_eq!(own.len(), 1);
    }

    #[test]
    fn changes_besides_the_status_are_never_echoes() {
        let own = OwnStatusWrites::default();
        own.record("ns/p", &json!({"pods": 1}));
        let before = parent("1", json!({"who": "x"}), json!({"pods": 0}));
        let spec = parent("2", json!({"who": "y"}), json!({"pods": 1}));
        assert!(!own.is_echo("ns/p", &before, &spec));
        let mut labels = parent("2", json!({"who": "x"}), json!({"pods": 1}));
        labels.metadata.labels = None;
        assert!(!own.is_echo("ns/p", &before, &labels));
        let mut deleting = parent("2", json!({"who": "x"}), json!({"pods": 1}));
        deleting.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).expect("time"));
        assert!(!own.is_echo("ns/p", &before, &deleting));
        let mut finalizer = parent("2", json!({"who": "x"}), json!({"pods": 1}));
        finalizer.metadata.finalizers = Some(vec!["f".into()]);
        assert!(!own.is_echo("ns/p", &before, &finalizer));
        let mut extra = parent("2", json!({"who": "x"}), json!({"pods": 1}));
        extra.data["data"] = json!({"k": "v"});
        assert!(!own.is_echo("ns/p", &before, &extra));
        let status_only = parent("2", json!({"who": "x"}), json!({"pods": 1}));
        assert!(own.is_echo("ns/p", &before, &status_only));
    }
}
