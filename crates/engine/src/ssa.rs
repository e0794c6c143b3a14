//! Server-side apply of children (`--apply-strategy=server-side-apply`): what configuration is
//! applied, and whether an observed child already matches it so that no request is sent.
//!
//! The configuration is the desired object with the controller reference added and `status`
//! left out. A child needs an apply when a desired value differs from the observed one, or
//! when the engine's field manager still owns a field the desired object no longer has (the
//! server removes it on the next apply). Ownership is read from the child's `managedFields`
//! (`FieldsV1`), whose `k:`/`v:` steps already say how each list is keyed, so no schema is
//! needed here.

use serde_json::{Map, Value};

/// The apply configuration of a desired child that already carries its controller reference:
/// the object without `status` (which only the status subresource writes).
pub fn config(owned_desired: Value) -> Value {
    let mut obj = owned_desired;
    if let Some(m) = obj.as_object_mut() {
        m.remove("status");
    }
    obj
}

/// The `fieldsV1` of `manager`'s Apply entry on the main resource.
fn owned<'a>(observed: &'a Value, manager: &str) -> Option<&'a Value> {
    observed
        .pointer("/metadata/managedFields")?
        .as_array()?
        .iter()
        .find(|e| {
            e.get("manager").and_then(Value::as_str) == Some(manager)
                && e.get("operation").and_then(Value::as_str) == Some("Apply")
                && e.get("subresource").is_none()
        })?
        .get("fieldsV1")
}

/// Whether applying `config` as `manager` would change `observed`.
pub fn needs_apply(observed: &Value, config: &Value, manager: &str) -> bool {
    let fields = owned(observed, manager);
    let mut cfg = config.clone();
    if let Some(m) = cfg.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
        if let Some(Value::Object(md)) = m.get_mut("metadata") {
            md.remove("name");
            md.remove("namespace");
        }
    }
    !covered(&cfg, observed, fields) || fields.is_some_and(|f| !still_desired(f, &cfg))
}

/// Whether every value of `desired` is in `observed`. `fields` (the manager's ownership at
/// this point, if any) tells keyed lists, whose observed items may include other managers'
/// ones, from atomic lists, which must match exactly.
fn covered(desired: &Value, observed: &Value, fields: Option<&Value>) -> bool {
    match (desired, observed) {
        (Value::Object(d), Value::Object(o)) => d.iter().all(|(k, dv)| match o.get(k) {
            Some(ov) => covered(dv, ov, fields.and_then(|f| f.get(format!("f:{k}")))),
            None => dv.is_null(),
        }),
        (Value::Array(d), Value::Array(o)) => {
            let items: Option<&Map<String, Value>> = fields
                .and_then(Value::as_object)
                .filter(|f| f.keys().any(|k| k.starts_with("k:") || k.starts_with("v:")));
            match items {
                // A keyed list or a set: each desired item is among the observed ones.
                Some(items) => d.iter().all(|di| {
                    let item_fields = item_fields(items, di);
                    o.iter().any(|oi| covered(di, oi, item_fields))
                }),
                None => d.len() == o.len() && d.iter().zip(o).all(|(di, oi)| covered(di, oi, None)),
            }
        }
        (d, o) => json_eq(d, o),
    }
}

/// The ownership of the `k:` item a desired item is keyed as, if any.
fn item_fields<'a>(items: &'a Map<String, Value>, item: &Value) -> Option<&'a Value> {
    items.iter().find_map(|(k, child)| {
        let keys = k.strip_prefix("k:")?;
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(keys) else {
            return None;
        };
        keys.iter()
            .all(|(kk, kv)| item.get(kk).is_some_and(|v| json_eq(v, kv)))
            .then_some(child)
    })
}

/// Numbers compare by value (`1` and `1.0` are the same quantity to the server).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

/// Whether everything `fields` owns is still in `desired`.
fn still_desired(fields: &Value, desired: &Value) -> bool {
    let Some(m) = fields.as_object() else {
        return true;
    };
    m.iter().all(|(k, child)| {
        if k == "." {
            return true;
        }
        if let Some(name) = k.strip_prefix("f:") {
            return desired.get(name).is_some_and(|d| still_desired(child, d));
        }
        if let Some(key) = k.strip_prefix("k:") {
            let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(key) else {
                return true;
            };
            return desired.as_array().is_some_and(|items| {
                items.iter().any(|i| {
                    keys.iter()
                        .all(|(kk, kv)| i.get(kk).is_some_and(|v| json_eq(v, kv)))
                        && still_desired(child, i)
                })
            });
        }
        if let Some(value) = k.strip_prefix("v:") {
            let Ok(v) = serde_json::from_str::<Value>(value) else {
                return true;
            };
            return desired
                .as_array()
                .is_some_and(|items| items.iter().any(|i| json_eq(i, &v)));
        }
        true
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn observed(data: Value, fields: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns", "resourceVersion": "5",
                "managedFields": [
                    {"manager": "metacontroller", "operation": "Apply", "apiVersion": "v1",
                     "fieldsType": "FieldsV1", "fieldsV1": fields},
                    {"manager": "kubectl-edit", "operation": "Update", "apiVersion": "v1",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:extra": {}}}}]},
            "data": data})
    }

    #[test]
    fn converged_children_need_no_apply() {
        let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns"}, "data": {"a": "1"}});
        let obs = observed(
            json!({"a": "1", "extra": "x"}),
            json!({"f:data": {"f:a": {}}}),
        );
        assert!(!needs_apply(&obs, &cfg, "metacontroller"));
        // A changed value needs one.
        let cfg2 = json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "2"}});
        assert!(needs_apply(&obs, &cfg2, "metacontroller"));
        // So does a field we own that the hook dropped.
        let obs = observed(
            json!({"a": "1", "b": "2", "extra": "x"}),
            json!({"f:data": {"f:a": {}, "f:b": {}}}),
        );
        assert!(needs_apply(&obs, &cfg, "metacontroller"));
        // Another manager's field is not ours to remove: `extra` is not desired, yet no apply.
        let obs = observed(
            json!({"a": "1", "extra": "x"}),
            json!({"f:data": {"f:a": {}}}),
        );
        assert!(!needs_apply(&obs, &cfg, "metacontroller"));
        // A child nobody applied yet with the desired values already needs no write.
        let mut plain = obs.clone();
        plain["metadata"]["managedFields"] = json!([]);
        assert!(!needs_apply(&plain, &cfg, "metacontroller"));
    }

    #[test]
    fn keyed_lists_allow_foreign_items_atomic_lists_do_not() {
        let fields = json!({"f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:name": {}, "f:image": {}}},
            "f:args": {}}});
        let obs = json!({"metadata": {"managedFields": [{"manager": "m", "operation": "Apply", "fieldsV1": fields}]},
            "spec": {"containers": [{"name": "web", "image": "nginx"}, {"name": "sidecar", "image": "x"}],
                     "args": ["a", "b"]}});
        let cfg = json!({"spec": {"containers": [{"name": "web", "image": "nginx"}], "args": ["a", "b"]}});
        assert!(!needs_apply(&obs, &cfg, "m"));
        let cfg =
            json!({"spec": {"containers": [{"name": "web", "image": "nginx"}], "args": ["a"]}});
        assert!(needs_apply(&obs, &cfg, "m"));
        // Dropping the container we own needs an apply.
        let cfg = json!({"spec": {"containers": [], "args": ["a", "b"]}});
        assert!(needs_apply(&obs, &cfg, "m"));
    }
}
