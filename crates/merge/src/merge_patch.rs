//! RFC 7386 JSON merge patch.
//!
//! A merge patch is a JSON document shaped like its target: objects merge recursively,
//! `null` deletes a member, and every other value (arrays included) replaces what was
//! there. [`diff`] computes the smallest such patch between two documents.

use serde_json::{Map, Value};

/// Applies `patch` to `target` in place, following RFC 7386.
///
/// If `patch` is not an object it replaces `target` entirely. If it is an object and
/// `target` is not, `target` first becomes an empty object.
pub fn apply(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Value::Object(target) = target else {
        return;
    };
    for (key, value) in patch {
        if value.is_null() {
            target.shift_remove(key);
            continue;
        }
        match target.get_mut(key) {
            Some(existing) => apply(existing, value),
            None => {
                let mut fresh = Value::Null;
                apply(&mut fresh, value);
                target.insert(key.clone(), fresh);
            }
        }
    }
}

/// Returns the smallest merge patch that turns `original` into `modified`.
///
/// Equal documents yield an empty object. Members removed in `modified` become `null`;
/// members whose values are both objects are diffed recursively; any other change is
/// carried whole. Note that a merge patch cannot express "set this member to null", so
/// `apply(original, diff(original, modified))` equals `modified` whenever `modified`
/// holds no `null` inside an object.
pub fn diff(original: &Value, modified: &Value) -> Value {
    match (original, modified) {
        (Value::Object(o), Value::Object(m)) => Value::Object(diff_objects(o, m)),
        _ if original == modified => Value::Object(Map::new()),
        _ => modified.clone(),
    }
}

fn diff_objects(
    original: &Map<String, Value>,
    modified: &Map<String, Value>,
) -> Map<String, Value> {
    let mut patch = Map::new();
    for key in original.keys() {
        if !modified.contains_key(key) {
            patch.insert(key.clone(), Value::Null);
        }
    }
    for (key, new) in modified {
        match original.get(key) {
            None => {
                patch.insert(key.clone(), new.clone());
            }
            Some(old) if old == new => {}
            Some(Value::Object(old)) if new.is_object() => {
                if let Value::Object(new) = new {
                    let sub = diff_objects(old, new);
                    if !sub.is_empty() {
                        patch.insert(key.clone(), Value::Object(sub));
                    }
                }
            }
            Some(_) => {
                patch.insert(key.clone(), new.clone());
            }
        }
    }
    patch
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The examples from RFC 7386 appendix A.
    #[test]
    fn rfc7386_examples() {
        let cases = [
            (json!({"a":"b"}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"b"}), json!({"b":"c"}), json!({"a":"b","b":"c"})),
            (json!({"a":"b"}), json!({"a":null}), json!({})),
            (
                json!({"a":"b","b":"c"}),
                json!({"a":null}),
                json!({"b":"c"}),
            ),
            (json!({"a":["b"]}), json!({"a":"c"}), json!({"a":"c"})),
            (json!({"a":"c"}), json!({"a":["b"]}), json!({"a":["b"]})),
            (
                json!({"a":{"b":"c"}}),
                json!({"a":{"b":"d","c":null}}),
                json!({"a":{"b":"d"}}),
            ),
            (json!({"a":[{"b":"c"}]}), json!({"a":[1]}), json!({"a":[1]})),
            (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
            (json!({"a":"b"}), json!(["c"]), json!(["c"])),
            (json!({"a":"foo"}), json!(null), json!(null)),
            (json!({"a":"foo"}), json!("bar"), json!("bar")),
            (json!({"e":null}), json!({"a":1}), json!({"e":null,"a":1})),
            (json!([1, 2]), json!({"a":"b","c":null}), json!({"a":"b"})),
            (
                json!({}),
                json!({"a":{"bb":{"ccc":null}}}),
                json!({"a":{"bb":{}}}),
            ),
        ];
        for (i, (target, patch, want)) in cases.into_iter().enumerate() {
            let mut got = target.clone();
            apply(&mut got, &patch);
            assert_eq!(got, want, "case {i}: {target} + {patch}");
        }
    }

    #[test]
    fn apply_keeps_existing_key_order_and_appends_new_keys() {
        let mut doc: Value = serde_json::from_str(r#"{"z":1,"a":2,"m":3}"#).unwrap();
        apply(&mut doc, &json!({"a": 20, "b": 4}));
        assert_eq!(
            serde_json::to_string(&doc).unwrap(),
            r#"{"z":1,"a":20,"m":3,"b":4}"#
        );
    }

    #[test]
    fn diff_examples() {
        let cases = [
            (json!({"a":1}), json!({"a":1}), json!({})),
            (json!({"a":1}), json!({"a":2}), json!({"a":2})),
            (json!({"a":1}), json!({}), json!({"a":null})),
            (json!({}), json!({"a":{"b":1}}), json!({"a":{"b":1}})),
            (
                json!({"a":{"b":1,"c":2},"d":[1]}),
                json!({"a":{"b":1,"c":3},"d":[1,2]}),
                json!({"a":{"c":3},"d":[1,2]}),
            ),
            (json!({"a":{"b":1}}), json!({"a":"x"}), json!({"a":"x"})),
            (json!({"a":"x"}), json!({"a":{"b":1}}), json!({"a":{"b":1}})),
            (
                json!({"a":{"b":1}}),
                json!({"a":{}}),
                json!({"a":{"b":null}}),
            ),
            (json!([1]), json!([2]), json!([2])),
            (json!("s"), json!("s"), json!({})),
            (json!({"a":1}), json!([1]), json!([1])),
        ];
        for (i, (original, modified, want)) in cases.into_iter().enumerate() {
            assert_eq!(diff(&original, &modified), want, "case {i}");
        }
    }

    /// Property: applying `diff(a, b)` to `a` yields `b`, over a set of null-free pairs.
    #[test]
    fn apply_of_diff_round_trips() {
        let docs = [
            json!({}),
            json!({"a": 1}),
            json!({"a": 2, "b": "x"}),
            json!({"a": {"b": {"c": [1, 2]}}, "d": true}),
            json!({"a": {"b": {"c": [2]}, "e": 1}}),
            json!({"a": [{"x": 1}], "list": ["p", "q"]}),
            json!({"a": "flat", "nested": {"deep": {"deeper": {"x": 1.5}}}}),
            json!({"nested": {"deep": {}}}),
            json!({"metadata": {"labels": {"app": "x"}, "name": "n"}, "spec": {"replicas": 3}}),
            json!({"metadata": {"name": "n"}, "spec": {"replicas": 3, "template": {}}}),
        ];
        for a in &docs {
            for b in &docs {
                let patch = diff(a, b);
                let mut got = a.clone();
                apply(&mut got, &patch);
                assert_eq!(&got, b, "diff({a}, {b}) = {patch}");
                // The diff of a document with itself is always empty.
                assert_eq!(diff(b, b), json!({}));
            }
        }
    }

    /// Property: a patch applied twice has the same effect as applied once.
    #[test]
    fn apply_is_idempotent() {
        let targets = [
            json!({}),
            json!({"a": {"b": 1}, "c": [1]}),
            json!("s"),
            json!([1]),
        ];
        let patches = [
            json!({"a": null}),
            json!({"a": {"b": null, "x": {"y": null, "z": 1}}}),
            json!({"c": [2], "d": "e"}),
            json!([3]),
        ];
        for t in &targets {
            for p in &patches {
                let mut once = t.clone();
                apply(&mut once, p);
                let mut twice = once.clone();
                apply(&mut twice, p);
                assert_eq!(once, twice, "{t} + {p}");
            }
        }
    }
}
