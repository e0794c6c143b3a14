//! Keeping Secret values out of logs: hook requests and responses are traced with the `data`
//! and `stringData` of every Secret in them replaced, keys kept.

use serde_json::{Map, Value};

/// What a redacted value reads as.
pub const REDACTED: &str = "<redacted>";

/// A copy of `v` in which every object of kind `Secret`, at any depth, has the values of its
/// `data` and `stringData` maps replaced by [`REDACTED`].
pub fn redact_secrets(v: &Value) -> Value {
    match v {
        Value::Array(items) => Value::Array(items.iter().map(redact_secrets).collect()),
        Value::Object(map) => {
            let secret = map.get("kind").and_then(Value::as_str) == Some("Secret");
            let mut out = Map::with_capacity(map.len());
            for (k, val) in map {
                let redacted = if secret && k == "metadata" {
                    redact_last_applied(val)
                } else if secret && (k == "data" || k == "stringData") {
                    match val {
                        Value::Object(fields) => Value::Object(
                            fields
                                .keys()
                                .map(|key| (key.clone(), Value::String(REDACTED.into())))
                                .collect(),
                        ),
                        Value::Null => Value::Null,
                        _ => Value::String(REDACTED.into()),
                    }
                } else {
                    redact_secrets(val)
                };
                out.insert(k.clone(), redacted);
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Secret metadata with its last-applied annotations (a copy of the whole object, data
/// included) replaced.
fn redact_last_applied(meta: &Value) -> Value {
    let mut meta = meta.clone();
    if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
        for (key, value) in annotations.iter_mut() {
            if key.ends_with("last-applied-configuration") {
                *value = Value::String(REDACTED.into());
            }
        }
    }
    meta
}

/// A body for a log line: JSON with Secrets redacted, else (not JSON) only its size.
pub fn loggable_body(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => redact_secrets(&v).to_string(),
        Err(_) => format!("<{} bytes, not JSON>", body.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_anywhere_lose_their_values_but_keep_their_keys() {
        let v = json!({
            "parent": {"kind": "Thing", "data": {"keep": "me"}},
            "children": {"Secret.v1": {"s": {"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "annotations": {
                    "metacontroller.k8s.io/last-applied-configuration": "{\"data\":{\"password\":\"cGFzcw==\"}}",
                    "other": "kept"}},
                "data": {"password": "cGFzcw=="},
                "stringData": {"token": "t0k3n"}}}},
            "list": [{"kind": "Secret", "data": "weird"}]
        });
        let r = redact_secrets(&v);
        assert_eq!(r["parent"]["data"]["keep"], "me");
        let s = &r["children"]["Secret.v1"]["s"];
        assert_eq!(s["data"], json!({"password": REDACTED}));
        assert_eq!(s["stringData"], json!({"token": REDACTED}));
        assert_eq!(s["metadata"]["name"], "s");
        assert_eq!(s["metadata"]["annotations"]["other"], "kept");
        assert_eq!(
            s["metadata"]["annotations"]["metacontroller.k8s.io/last-applied-configuration"],
            REDACTED
        );
        assert_eq!(r["list"][0]["data"], REDACTED);
        let text = loggable_body(v.to_string().as_bytes());
        assert!(
            !text.contains("cGFzcw==") && !text.contains("t0k3n"),
            "{text}"
        );
        assert_eq!(loggable_body(b"secret garbage"), "<14 bytes, not JSON>");
    }
}
