//! One storage for `v1` and `events.k8s.io/v1` Events.
//!
//! Events are stored in the core `v1` shape, so `kubectl describe` (which lists core events by
//! `involvedObject.*`) shows events recorded through `events.k8s.io/v1`. The field mapping is
//! the one Kubernetes' own conversion uses:
//!
//! | events.k8s.io/v1            | v1                         |
//! |-----------------------------|----------------------------|
//! | `regarding`                 | `involvedObject`           |
//! | `note`                      | `message`                  |
//! | `deprecatedCount`           | `count`                    |
//! | `deprecatedSource`          | `source`                   |
//! | `deprecatedFirstTimestamp`  | `firstTimestamp`           |
//! | `deprecatedLastTimestamp`   | `lastTimestamp`            |
//! | `reportingController`       | `reportingComponent`       |
//! | `reportingInstance`, `eventTime`, `series`, `action`, `reason`, `type`, `related`: same name |
//!
//! `kubectl describe` prints `source.component` or, when it is empty, `reportingComponent`, so
//! events from either API show their origin.

use serde_json::{Map, Value};

/// `(events.k8s.io/v1 name, v1 name)` for the fields whose names differ.
const RENAMES: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("deprecatedCount", "count"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("reportingController", "reportingComponent"),
];

fn rename(obj: Value, api_version: &str, from_new: bool) -> Value {
    let Value::Object(map) = obj else { return obj };
    let mut out = Map::new();
    for (k, v) in map {
        let key = RENAMES
            .iter()
            .find_map(|(new, old)| {
                if from_new && k == *new {
                    Some(*old)
                } else if !from_new && k == *old {
                    Some(*new)
                } else {
                    None
                }
            })
            .unwrap_or(k.as_str())
            .to_string();
        out.insert(key, v);
    }
    out.insert("apiVersion".into(), Value::String(api_version.into()));
    Value::Object(out)
}

/// An `events.k8s.io/v1` Event in the stored `v1` shape.
pub fn to_core(obj: Value) -> Value {
    rename(obj, "v1", true)
}

/// A stored `v1` Event as `events.k8s.io/v1` serves it.
pub fn from_core(obj: Value) -> Value {
    rename(obj, "events.k8s.io/v1", false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_round_trip_between_the_two_apis() {
        let new = json!({
            "apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e1", "namespace": "d"},
            "eventTime": "2024-01-01T00:00:00.000000Z",
            "regarding": {"kind": "Widget", "name": "w", "namespace": "d", "uid": "u"},
            "note": "synced", "reason": "Synced", "type": "Normal", "action": "Sync",
            "reportingController": "metacontroller", "reportingInstance": "mc-1",
            "series": {"count": 2, "lastObservedTime": "2024-01-01T00:01:00.000000Z"},
            "deprecatedCount": 3,
        });
        let core = to_core(new.clone());
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(core["involvedObject"]["name"], "w");
        assert_eq!(core["message"], "synced");
        assert_eq!(core["reportingComponent"], "metacontroller");
        assert_eq!(core["count"], 3);
        assert_eq!(core["series"]["count"], 2);
        assert!(core.get("regarding").is_none() && core.get("note").is_none());
        assert_eq!(from_core(core), new);
    }

    #[test]
    fn core_events_read_through_events_api() {
        let core = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "x"},
            "involvedObject": {"kind": "Pod", "name": "p"}, "message": "m",
            "source": {"component": "kubelet"}, "firstTimestamp": "2024-01-01T00:00:00Z"});
        let new = from_core(core);
        assert_eq!(new["apiVersion"], "events.k8s.io/v1");
        assert_eq!(new["regarding"]["name"], "p");
        assert_eq!(new["note"], "m");
        assert_eq!(new["deprecatedSource"]["component"], "kubelet");
        assert_eq!(new["deprecatedFirstTimestamp"], "2024-01-01T00:00:00Z");
    }
}
