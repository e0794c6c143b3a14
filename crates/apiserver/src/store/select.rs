//! Field selectors: parsing `a=b,c!=d` against the fields a type supports, and matching.

use serde_json::Value;

use super::{FieldSelector, StoredObject};
use crate::error::{ApiError, Result};
use crate::model::ResourceType;

/// Fields every type supports.
const COMMON: &[&str] = &["metadata.name", "metadata.namespace"];

/// Extra selectable fields per built-in type (what kube-apiserver registers for them).
fn type_fields(rt: &ResourceType) -> &'static [&'static str] {
    if rt.custom {
        return &[];
    }
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "events") | ("events.k8s.io", "events") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
            "regarding.kind",
            "regarding.namespace",
            "regarding.name",
            "regarding.uid",
            "regarding.apiVersion",
            "regarding.resourceVersion",
            "regarding.fieldPath",
            "reportingController",
        ],
        ("", "pods") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "secrets") => &["type"],
        ("", "namespaces") => &["status.phase"],
        ("", "nodes") => &["spec.unschedulable"],
        ("", "replicationcontrollers") | ("apps", "replicasets") => &["status.replicas"],
        ("batch", "jobs") => &["status.successful"],
        _ => &[],
    }
}

/// Splits on unescaped `sep`, keeping escapes for the next stage.
fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    parts.push(cur);
    parts
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// Finds the first unescaped operator in a term: `!=`, `==` or `=`.
fn split_term(term: &str) -> Option<(String, &'static str, String)> {
    let chars: Vec<char> = term.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            '!' if chars.get(i + 1) == Some(&'=') => {
                return Some((
                    chars[..i].iter().collect(),
                    "!=",
                    chars[i + 2..].iter().collect(),
                ));
            }
            '=' if chars.get(i + 1) == Some(&'=') => {
                return Some((
                    chars[..i].iter().collect(),
                    "==",
                    chars[i + 2..].iter().collect(),
                ));
            }
            '=' => {
                return Some((
                    chars[..i].iter().collect(),
                    "=",
                    chars[i + 1..].iter().collect(),
                ))
            }
            _ => i += 1,
        }
    }
    None
}

impl FieldSelector {
    /// Parses `a=b,c!=d`; unknown fields for the type give 400 `field label not supported: X`.
    pub fn parse(s: &str, rt: &ResourceType) -> Result<Self> {
        let mut requirements = Vec::new();
        for term in split_unescaped(s, ',') {
            let term = term.trim();
            if term.is_empty() {
                continue;
            }
            let Some((field, op, value)) = split_term(term) else {
                return Err(ApiError::bad_request(format!(
                    "invalid selector: '{s}'; can't understand '{term}'"
                )));
            };
            let field = unescape(field.trim());
            if !COMMON.contains(&field.as_str()) && !type_fields(rt).contains(&field.as_str()) {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {field}"
                )));
            }
            requirements.push((field, unescape(value.trim()), op == "!="));
        }
        Ok(Self { requirements })
    }

    /// Whether the selector only looks at name and namespace (no need to parse the object).
    pub fn metadata_only(&self) -> bool {
        self.requirements
            .iter()
            .all(|(f, _, _)| COMMON.contains(&f.as_str()))
    }

    /// Matches a stored object; `value` is its parsed JSON (needed for non-metadata fields).
    pub fn matches(&self, obj: &StoredObject, value: Option<&Value>) -> bool {
        self.requirements.iter().all(|(field, want, negated)| {
            let got = match field.as_str() {
                "metadata.name" => obj.name().to_string(),
                "metadata.namespace" => obj.namespace().unwrap_or("").to_string(),
                other => value.map(|v| field_value(v, other)).unwrap_or_default(),
            };
            (got == *want) != *negated
        })
    }
}

/// The string form of a selectable field (empty when absent), with the events.k8s.io names
/// mapped onto the stored core shape.
fn field_value(obj: &Value, field: &str) -> String {
    let field = match field {
        "source" => "source.component",
        "reportingController" => "reportingComponent",
        f => f,
    };
    let mapped;
    let field = if let Some(rest) = field.strip_prefix("regarding.") {
        mapped = format!("involvedObject.{rest}");
        mapped.as_str()
    } else {
        field
    };
    let pointer = format!("/{}", field.replace('.', "/"));
    match obj.pointer(&pointer) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Registry;
    use bytes::Bytes;
    use serde_json::json;

    fn stored(ns: &str, name: &str) -> StoredObject {
        StoredObject {
            json: Bytes::new(),
            key: format!("{ns}/{name}").into_boxed_str(),
            uid: String::new(),
            resource_version: 1,
            owner_uids: Box::new([]),
        }
    }

    #[test]
    fn parses_and_matches_metadata_fields() {
        let reg = Registry::with_builtins();
        let cm = reg.lookup("", "v1", "configmaps").expect("cm");
        let sel = FieldSelector::parse("metadata.name=a,metadata.namespace!=kube-system", &cm)
            .expect("parse");
        assert!(sel.metadata_only());
        assert!(sel.matches(&stored("default", "a"), None));
        assert!(!sel.matches(&stored("kube-system", "a"), None));
        assert!(!sel.matches(&stored("default", "b"), None));
        let sel = FieldSelector::parse("metadata.name==a", &cm).expect("parse");
        assert_eq!(
            sel.requirements,
            [("metadata.name".to_string(), "a".to_string(), false)]
        );
        assert!(FieldSelector::parse("", &cm)
            .expect("empty")
            .requirements
            .is_empty());
    }

    #[test]
    fn rejects_unknown_fields_and_garbage() {
        let reg = Registry::with_builtins();
        let cm = reg.lookup("", "v1", "configmaps").expect("cm");
        let e = FieldSelector::parse("spec.foo=bar", &cm).expect_err("unknown");
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "field label not supported: spec.foo")
        );
        assert_eq!(
            FieldSelector::parse("metadata.name", &cm)
                .err()
                .map(|e| e.code),
            Some(400)
        );
    }

    #[test]
    fn event_and_pod_fields_read_the_object() {
        let reg = Registry::with_builtins();
        let ev = reg.lookup("", "v1", "events").expect("events");
        let sel = FieldSelector::parse(
            "involvedObject.name=w,involvedObject.kind=Widget,type!=Warning",
            &ev,
        )
        .expect("p");
        assert!(!sel.metadata_only());
        let obj = json!({"involvedObject": {"name": "w", "kind": "Widget"}, "type": "Normal"});
        assert!(sel.matches(&stored("d", "e"), Some(&obj)));
        let sel = FieldSelector::parse("regarding.name=w", &ev).expect("p");
        assert!(sel.matches(&stored("d", "e"), Some(&obj)));
        let pods = reg.lookup("", "v1", "pods").expect("pods");
        let sel =
            FieldSelector::parse("status.phase=Running,spec.hostNetwork=true", &pods).expect("p");
        assert!(sel.matches(
            &stored("d", "p"),
            Some(&json!({"status": {"phase": "Running"}, "spec": {"hostNetwork": true}}))
        ));
        // Escaped separators stay in the value.
        let sel = FieldSelector::parse(r"metadata.name=a\,b", &pods).expect("p");
        assert!(sel.matches(&stored("d", "a,b"), None));
    }
}
