//! "Dynamic apply": the three-way merge used to update children.
//!
//! Children are written in the style of `kubectl apply`, but without any schema: given the
//! object observed in the cluster, the configuration this controller last applied (kept in
//! the [`LAST_APPLIED_ANNOTATION`] annotation) and what the hook desires now, it computes
//! the full object to write:
//!
//! - fields present in `desired` are set (objects merge recursively);
//! - fields present in last-applied but absent from `desired` are deleted;
//! - every other field (set by someone else: defaults, other controllers) is kept.
//!
//! Lists of objects are treated as maps ("list maps") when every item of the observed,
//! last-applied and desired lists is an object and they all share one of the conventional
//! key fields, tried in order: `containerPort`, `port`, `mountPath`, `name`, `uid`, `ip`,
//! `path`. Any other list (primitives, mixed, or without a common key) is replaced.
//!
//! The behaviour follows upstream Metacontroller's apply package, including its corner
//! cases: when the observed value is an object or list and the desired value is not of
//! the same shape, the observed value is kept apart from what last-applied set (and a
//! list with no common key becomes `null`).

use std::collections::HashSet;

use serde_json::{Map, Value};

/// The annotation holding the configuration this controller last applied.
pub const LAST_APPLIED_ANNOTATION: &str = "metacontroller.k8s.io/last-applied-configuration";

/// Conventional list-map key fields, highest precedence first.
pub const KNOWN_MERGE_KEYS: [&str; 7] = [
    "containerPort",
    "port",
    "mountPath",
    "name",
    "uid",
    "ip",
    "path",
];

/// Computes the object to write from the observed object, the last-applied configuration
/// (`null` or `{}` when there is none: nothing is deleted then) and the desired object.
pub fn three_way(observed: &Value, last_applied: &Value, desired: &Value) -> Value {
    merge(observed.clone(), Some(last_applied), desired)
}

/// Reads and parses the last-applied annotation. `None` when absent, empty, not valid
/// JSON, or not a JSON object.
pub fn get_last_applied(obj: &Value) -> Option<Value> {
    let raw = obj
        .get("metadata")?
        .get("annotations")?
        .get(LAST_APPLIED_ANNOTATION)?
        .as_str()?;
    if raw.is_empty() {
        return None;
    }
    match serde_json::from_str::<Value>(raw) {
        Ok(v @ Value::Object(_)) => Some(v),
        _ => None,
    }
}

/// Writes `applied` into the last-applied annotation of `obj` (creating `metadata` and
/// `annotations` as needed). Does nothing if `obj` is not an object.
///
/// The JSON is compact with object keys sorted and `<`, `>`, `&` escaped, byte for byte
/// what upstream Metacontroller writes, so switching implementations causes no spurious
/// updates.
pub fn set_last_applied(obj: &mut Value, applied: &Value) {
    let Value::Object(root) = obj else {
        return;
    };
    let Value::Object(metadata) = object_slot(root, "metadata") else {
        return;
    };
    let Value::Object(annotations) = object_slot(metadata, "annotations") else {
        return;
    };
    annotations.insert(
        LAST_APPLIED_ANNOTATION.to_string(),
        Value::String(canonical_json(applied)),
    );
}

/// The value under `key`, made an (empty) object first if it is absent or not an object.
fn object_slot<'m>(parent: &'m mut Map<String, Value>, key: &str) -> &'m mut Value {
    let slot = parent
        .entry(key.to_string())
        .or_insert_with(|| Value::Object(Map::new()));
    if !slot.is_object() {
        *slot = Value::Object(Map::new());
    }
    slot
}

/// Compact JSON with sorted object keys and HTML-sensitive characters escaped.
pub fn canonical_json(v: &Value) -> String {
    let s = sorted(v).to_string();
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

fn sorted(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Value::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sorted(&m[k])))
                    .collect(),
            )
        }
        Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

/// Applies the change from `last_applied` to `desired` onto `destination`.
fn merge(destination: Value, last_applied: Option<&Value>, desired: &Value) -> Value {
    match destination {
        Value::Object(mut dest) => {
            merge_object(
                &mut dest,
                last_applied.and_then(Value::as_object),
                desired.as_object(),
            );
            Value::Object(dest)
        }
        Value::Array(dest) => merge_array(
            dest,
            last_applied.and_then(Value::as_array),
            desired.as_array(),
        ),
        // A scalar or null is simply replaced by the desired value.
        _ => desired.clone(),
    }
}

fn merge_object(
    dest: &mut Map<String, Value>,
    last_applied: Option<&Map<String, Value>>,
    desired: Option<&Map<String, Value>>,
) {
    // Remove fields this controller set before but no longer wants.
    if let Some(last) = last_applied {
        for key in last.keys() {
            if !desired.is_some_and(|d| d.contains_key(key)) {
                dest.shift_remove(key);
            }
        }
    }
    // Add or update every desired field, in place so key order is kept.
    let Some(desired) = desired else {
        return;
    };
    for (key, des) in desired {
        let last = last_applied.and_then(|l| l.get(key));
        match dest.get_mut(key) {
            Some(slot) => {
                let current = std::mem::take(slot);
                *slot = merge(current, last, des);
            }
            None => {
                let merged = merge(Value::Null, last, des);
                dest.insert(key.clone(), merged);
            }
        }
    }
}

fn merge_array(
    dest: Vec<Value>,
    last_applied: Option<&Vec<Value>>,
    desired: Option<&Vec<Value>>,
) -> Value {
    let empty = Vec::new();
    let last = last_applied.unwrap_or(&empty);
    let des = desired.unwrap_or(&empty);
    match detect_list_map_key(&[&dest, last, des]) {
        Some(key) => merge_list_map(key, dest, last, des),
        // Not a list map: take the desired list as is.
        None => desired.map_or(Value::Null, |d| Value::Array(d.clone())),
    }
}

fn merge_list_map(key: &str, dest: Vec<Value>, last: &[Value], desired: &[Value]) -> Value {
    let mut dest_map = list_to_map(key, &dest);
    let last_map = list_to_map(key, last);
    let des_map = list_to_map(key, desired);
    merge_object(&mut dest_map, Some(&last_map), Some(&des_map));

    // Rebuild the list: surviving items in their observed order, then new desired items.
    let mut out = Vec::with_capacity(dest_map.len());
    let mut added: HashSet<String> = HashSet::new();
    for item in &dest {
        let k = item_key(key, item);
        if let Some(v) = dest_map.get(&k) {
            out.push(v.clone());
            added.insert(k);
        }
    }
    for item in desired {
        let k = item_key(key, item);
        if !added.contains(&k) {
            if let Some(v) = dest_map.get(&k) {
                out.push(v.clone());
            }
            added.insert(k);
        }
    }
    Value::Array(out)
}

/// Whether [`three_way`]`(observed, desired, desired)`, applying `desired` again when the
/// last-applied configuration already is `desired`, gives back `observed` unchanged: every
/// desired value is in place. Decided by walking both without building the merge, and only
/// ever `true` when the merge would be unchanged; in the corner cases (a value of another
/// shape, list items sharing a key) it answers `false` and the caller computes the merge.
pub fn reapply_is_noop(observed: &Value, desired: &Value) -> bool {
    match (observed, desired) {
        (Value::Object(o), Value::Object(d)) => d
            .iter()
            .all(|(k, dv)| o.get(k).is_some_and(|ov| reapply_is_noop(ov, dv))),
        (Value::Array(o), Value::Array(d)) => match detect_list_map_key(&[o, d, d]) {
            None => o == d,
            Some(key) => {
                let observed_items = unique_items(key, o);
                let desired_items = unique_items(key, d);
                match (observed_items, desired_items) {
                    (Some(o), Some(d)) => d
                        .iter()
                        .all(|(k, dv)| o.get(k).is_some_and(|ov| reapply_is_noop(ov, dv))),
                    _ => false,
                }
            }
        },
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => false,
        (o, d) => o == d,
    }
}

/// A list map's items by key, or None when two items share a key.
fn unique_items<'a>(
    key: &str,
    list: &'a [Value],
) -> Option<std::collections::HashMap<String, &'a Value>> {
    let mut items = std::collections::HashMap::with_capacity(list.len());
    for item in list {
        if items.insert(item_key(key, item), item).is_some() {
            return None;
        }
    }
    Some(items)
}

fn list_to_map(key: &str, list: &[Value]) -> Map<String, Value> {
    let mut m = Map::new();
    for item in list {
        m.insert(item_key(key, item), item.clone());
    }
    m
}

/// The merge key of a list item as a string; non-string keys use their JSON text, so
/// `80` and `"80"` are the same item (as upstream does).
fn item_key(key: &str, item: &Value) -> String {
    match item.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => "<nil>".to_string(),
        Some(other) => other.to_string(),
    }
}

/// Finds the conventional key shared by every item of every list, if all items are
/// objects. Returns `None` when the lists are all empty.
pub fn detect_list_map_key(lists: &[&[Value]]) -> Option<&'static str> {
    let mut common: Option<HashSet<&str>> = None;
    for list in lists {
        for item in list.iter() {
            let obj = item.as_object()?;
            match &mut common {
                None => common = Some(obj.keys().map(String::as_str).collect()),
                Some(c) => c.retain(|k| obj.contains_key(*k)),
            }
        }
    }
    let common = common?;
    KNOWN_MERGE_KEYS
        .iter()
        .copied()
        .find(|k| common.contains(k))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn case(name: &str, observed: Value, last: Value, desired: Value, want: Value) {
        let got = three_way(&observed, &last, &desired);
        assert_eq!(got, want, "{name}");
    }

    #[test]
    fn reapply_is_noop_only_when_the_merge_changes_nothing() {
        let cases = [
            (
                json!({"a": 1, "b": {"c": 2, "x": 0}}),
                json!({"a": 1, "b": {"c": 2}}),
                true,
            ),
            (json!({"a": 1}), json!({"a": 2}), false),
            (json!({"a": 1}), json!({"a": 1, "b": null}), false),
            (json!({"a": 1.0}), json!({"a": 1}), false),
            (json!({"l": [1, 2]}), json!({"l": [1, 2]}), true),
            (json!({"l": [1, 2, 3]}), json!({"l": [1, 2]}), false),
            (
                json!({"c": [{"name": "x", "image": "i", "pull": "Always"}, {"name": "side"}]}),
                json!({"c": [{"name": "x", "image": "i"}]}),
                true,
            ),
            (
                json!({"c": [{"name": "x", "image": "old"}]}),
                json!({"c": [{"name": "x", "image": "i"}]}),
                false,
            ),
            (
                json!({"c": [{"name": "x", "image": "i"}, {"name": "x", "image": "j"}]}),
                json!({"c": [{"name": "x", "image": "i"}]}),
                false,
            ),
            // Another shape: the merge keeps the observed object, but the walk leaves it to
            // the merge.
            (json!({"a": {"b": 1}}), json!({"a": "s"}), false),
            (json!({"a": [1]}), json!({"a": {"b": 1}}), false),
            (json!({"a": null}), json!({"a": {}}), false),
        ];
        for (observed, desired, want) in cases {
            let noop = reapply_is_noop(&observed, &desired);
            assert_eq!(noop, want, "{observed} with {desired}");
            if noop {
                assert_eq!(three_way(&observed, &desired, &desired), observed);
            }
        }
        // Whenever the walk says no-op, the merge agrees.
        let observed = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80,
            "protocol": "TCP"}]}], "list": ["x"]}, "meta": {"labels": {"l": "1"}}});
        for desired in [
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}]}]}}),
            json!({"spec": {"list": ["x"]}, "meta": {"labels": {}}}),
            json!({}),
        ] {
            assert!(reapply_is_noop(&observed, &desired), "{desired}");
            assert_eq!(
                three_way(&observed, &desired, &desired),
                observed,
                "{desired}"
            );
        }
    }

    #[test]
    fn scalars_added_changed_removed_and_foreign_kept() {
        case(
            "scalars",
            json!({"keep": "other", "remove": "other", "replace": "other"}),
            json!({"remove": "old", "replace": "old"}),
            json!({"replace": "new", "add": "new"}),
            json!({"keep": "other", "replace": "new", "add": "new"}),
        );
        case("empty", json!({}), json!({}), json!({}), json!({}));
    }

    #[test]
    fn nested_objects() {
        case(
            "nested",
            json!({"update": {"keep": "other", "remove": "other"}}),
            json!({"update": {"remove": "old", "replace": "old"}}),
            json!({"update": {"replace": "new", "add": "new"}}),
            json!({"update": {"keep": "other", "replace": "new", "add": "new"}}),
        );
        case(
            "deeply nested, hook removes a whole subtree",
            json!({"spec": {"a": {"b": {"c": 1}}, "defaulted": true}}),
            json!({"spec": {"a": {"b": {"c": 1}}}}),
            json!({"spec": {}}),
            json!({"spec": {"defaulted": true}}),
        );
    }

    #[test]
    fn without_last_applied_nothing_is_deleted() {
        for last in [json!(null), json!({})] {
            case(
                "no last applied",
                json!({"a": 1, "b": {"c": 2}, "d": 3}),
                last,
                json!({"b": {"e": 4}}),
                json!({"a": 1, "b": {"c": 2, "e": 4}, "d": 3}),
            );
        }
    }

    #[test]
    fn lists_of_primitives_are_replaced() {
        case(
            "replace list",
            json!({"list": [1, 2, 3, {"a": true}]}),
            json!({"list": [4, 5, 6]}),
            json!({"list": [7, 8, 9, {"b": false}]}),
            json!({"list": [7, 8, 9, {"b": false}]}),
        );
        case(
            "strings",
            json!({"args": ["--a", "--b"]}),
            json!({"args": ["--a"]}),
            json!({"args": ["--c"]}),
            json!({"args": ["--c"]}),
        );
    }

    #[test]
    fn list_maps_merge_by_conventional_keys() {
        case(
            "list maps",
            json!({
                "listMap": [
                    {"name": "keep", "value": "other"},
                    {"name": "remove", "value": "other"},
                    {"name": "merge", "nested": {"keep": "other"}}
                ],
                "ports1": [{"port": 80, "keep": "other"}],
                "ports2": [{"containerPort": 80, "keep": "other"}]
            }),
            json!({
                "listMap": [{"name": "remove", "value": "old"}],
                "ports1": [{"port": 80, "remove": "old"}]
            }),
            json!({
                "listMap": [
                    {"name": "add", "value": "new"},
                    {"name": "merge", "nested": {"add": "new"}}
                ],
                "ports1": [{"port": 80, "add": "new"}, {"port": 90}],
                "ports2": [{"containerPort": 80}, {"containerPort": 90}]
            }),
            json!({
                "listMap": [
                    {"name": "keep", "value": "other"},
                    {"name": "merge", "nested": {"keep": "other", "add": "new"}},
                    {"name": "add", "value": "new"}
                ],
                "ports1": [{"port": 80, "keep": "other", "add": "new"}, {"port": 90}],
                "ports2": [{"containerPort": 80, "keep": "other"}, {"containerPort": 90}]
            }),
        );
    }

    #[test]
    fn list_without_common_key_is_replaced() {
        case(
            "one item lacks the key",
            json!({"l": [
                {"name": "keep", "value": "other"},
                {"notName": "remove", "value": "other"},
                {"name": "merge", "nested": {"keep": "other"}}
            ]}),
            json!({"l": [{"name": "remove", "value": "old"}]}),
            json!({"l": [{"name": "add", "value": "new"}, {"name": "merge", "nested": {"add": "new"}}]}),
            json!({"l": [{"name": "add", "value": "new"}, {"name": "merge", "nested": {"add": "new"}}]}),
        );
    }

    #[test]
    fn deployment_containers_and_ports() {
        let observed = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": "7", "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {
                "replicas": 1,
                "template": {"spec": {
                    "containers": [
                        {"name": "sidecar", "image": "proxy:1", "imagePullPolicy": "IfNotPresent"},
                        {"name": "app", "image": "app:1", "imagePullPolicy": "IfNotPresent",
                         "terminationMessagePath": "/dev/termination-log",
                         "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 81, "protocol": "TCP"}]}
                    ],
                    "dnsPolicy": "ClusterFirst"
                }}
            },
            "status": {"replicas": 1}
        });
        let last = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [
                {"name": "app", "image": "app:1", "ports": [{"containerPort": 80}, {"containerPort": 81}]}
            ]}}}
        });
        let desired = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web"},
            "spec": {"replicas": 2, "template": {"spec": {"containers": [
                {"name": "app", "image": "app:2", "ports": [{"containerPort": 80, "name": "http"}, {"containerPort": 90}]}
            ]}}}
        });
        let got = three_way(&observed, &last, &desired);
        let want = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "resourceVersion": "7", "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {
                "replicas": 2,
                "template": {"spec": {
                    "containers": [
                        {"name": "sidecar", "image": "proxy:1", "imagePullPolicy": "IfNotPresent"},
                        {"name": "app", "image": "app:2", "imagePullPolicy": "IfNotPresent",
                         "terminationMessagePath": "/dev/termination-log",
                         "ports": [{"containerPort": 80, "protocol": "TCP", "name": "http"}, {"containerPort": 90}]}
                    ],
                    "dnsPolicy": "ClusterFirst"
                }}
            },
            "status": {"replicas": 1}
        });
        assert_eq!(got, want);
    }

    #[test]
    fn key_precedence_and_partial_keys() {
        // Every item has both containerPort and name: containerPort wins.
        case(
            "precedence",
            json!({"p": [{"containerPort": 1, "name": "a", "x": 1}]}),
            json!({}),
            json!({"p": [{"containerPort": 1, "name": "b"}]}),
            json!({"p": [{"containerPort": 1, "name": "b", "x": 1}]}),
        );
        // Only some items have containerPort, all have name: merge by name.
        case(
            "fallback",
            json!({"p": [{"containerPort": 1, "name": "a", "x": 1}, {"name": "b"}]}),
            json!({}),
            json!({"p": [{"name": "a", "y": 2}]}),
            json!({"p": [{"containerPort": 1, "name": "a", "x": 1, "y": 2}, {"name": "b"}]}),
        );
        // Numeric and string keys are the same item (upstream stringifies keys).
        case(
            "stringified keys",
            json!({"p": [{"port": 80, "a": 1}]}),
            json!({}),
            json!({"p": [{"port": "80", "b": 2}]}),
            json!({"p": [{"port": "80", "a": 1, "b": 2}]}),
        );
    }

    #[test]
    fn list_map_removes_items_it_applied_before() {
        case(
            "remove env var",
            json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "x"}]}),
            json!({"env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}),
            json!({"env": [{"name": "A", "value": "1"}]}),
            json!({"env": [{"name": "A", "value": "1"}, {"name": "C", "value": "x"}]}),
        );
        // All desired items removed, list map detected through observed items.
        case(
            "empty desired list",
            json!({"env": [{"name": "A"}, {"name": "C"}]}),
            json!({"env": [{"name": "A"}]}),
            json!({"env": []}),
            json!({"env": [{"name": "C"}]}),
        );
        // All lists empty: plain replacement.
        case(
            "all empty",
            json!({"env": []}),
            json!({}),
            json!({"env": []}),
            json!({"env": []}),
        );
    }

    #[test]
    fn shape_changes() {
        // Scalar observed, object desired: take desired.
        case(
            "scalar to object",
            json!({"a": 1}),
            json!({}),
            json!({"a": {"b": 1}}),
            json!({"a": {"b": 1}}),
        );
        // Missing observed: take desired.
        case(
            "absent",
            json!({}),
            json!({}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        );
        // Object observed, scalar desired: upstream keeps the observed object minus the
        // fields it applied before.
        case(
            "object to scalar",
            json!({"a": {"mine": 1, "theirs": 2}}),
            json!({"a": {"mine": 1}}),
            json!({"a": "x"}),
            json!({"a": {"theirs": 2}}),
        );
        // Desired null sets a scalar to null.
        case(
            "null",
            json!({"a": 1}),
            json!({}),
            json!({"a": null}),
            json!({"a": null}),
        );
        // A list that is not a list map and a non-list desired value becomes null.
        case(
            "list to scalar",
            json!({"a": [1]}),
            json!({}),
            json!({"a": 5}),
            json!({"a": null}),
        );
    }

    /// Sorts lists of objects so list maps compare regardless of item order.
    fn normalize(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                Value::Object(m.iter().map(|(k, v)| (k.clone(), normalize(v))).collect())
            }
            Value::Array(a) => {
                let mut items: Vec<Value> = a.iter().map(normalize).collect();
                if items.iter().all(Value::is_object) {
                    items.sort_by_key(canonical_json);
                }
                Value::Array(items)
            }
            other => other.clone(),
        }
    }

    /// Property: when observed equals last-applied (nobody else touched the object), the
    /// result is the desired object (list-map items keep their observed order).
    #[test]
    fn untouched_object_becomes_desired() {
        let docs = [
            json!({}),
            json!({"a": 1, "b": {"c": [1, 2]}}),
            json!({"a": 2, "env": [{"name": "x", "value": "1"}]}),
            json!({"env": [{"name": "y"}, {"name": "x", "value": "2"}], "b": {"d": true}}),
            json!({"spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 1}]}]}}),
            json!({"spec": {"containers": [{"name": "c", "image": "j"}, {"name": "d"}]}}),
        ];
        for a in &docs {
            for b in &docs {
                let got = three_way(a, a, b);
                assert!(
                    crate::value::json_eq(&normalize(&got), &normalize(b)),
                    "{a} -> {b}: got {got}"
                );
            }
        }
    }

    #[test]
    fn last_applied_annotation_round_trip() {
        let mut obj = json!({"metadata": {"name": "x"}});
        assert_eq!(get_last_applied(&obj), None);
        let applied = json!({"z": 1, "a": {"y": "<b>&", "b": [2, 1]}});
        set_last_applied(&mut obj, &applied);
        let raw = obj["metadata"]["annotations"][LAST_APPLIED_ANNOTATION]
            .as_str()
            .unwrap();
        assert_eq!(raw, r#"{"a":{"b":[2,1],"y":"\u003cb\u003e\u0026"},"z":1}"#);
        assert_eq!(get_last_applied(&obj), Some(applied));
        // Other annotations are kept.
        let mut obj = json!({"metadata": {"annotations": {"other": "x"}}});
        set_last_applied(&mut obj, &json!({}));
        assert_eq!(obj["metadata"]["annotations"]["other"], "x");
        assert_eq!(
            obj["metadata"]["annotations"][LAST_APPLIED_ANNOTATION],
            "{}"
        );
        // No metadata at all.
        let mut obj = json!({});
        set_last_applied(&mut obj, &json!({"a": 1}));
        assert_eq!(get_last_applied(&obj), Some(json!({"a": 1})));
    }

    #[test]
    fn last_applied_invalid_is_none() {
        for raw in ["", "not json", "[1]", "\"s\""] {
            let obj = json!({"metadata": {"annotations": {LAST_APPLIED_ANNOTATION: raw}}});
            assert_eq!(get_last_applied(&obj), None, "{raw}");
        }
        assert_eq!(
            get_last_applied(&json!({"metadata": {"annotations": {LAST_APPLIED_ANNOTATION: 5}}})),
            None
        );
    }
}
