//! Decoding a hook's response body in loose or strict mode.
//!
//! Upstream decodes with a strict JSON decoder that reports unknown fields and duplicate keys
//! separately from hard errors, then either fails (strict) or only logs them (loose). Here the
//! body is first parsed into a [`serde_json::Value`] while duplicate keys are recorded (the last
//! value wins, as in Go), then the caller's type is built from that value while
//! `serde_ignored` records every field the type did not consume.

use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::endpoint::UnmarshalMode;

/// A decoded body with what loose mode let through.
#[derive(Debug)]
pub(crate) struct Decoded<T> {
    pub value: T,
    /// Paths (`a.b.0.c`) of fields the target type does not know.
    pub unknown_fields: Vec<String>,
    /// Paths of keys that appeared more than once in the same object.
    pub duplicate_keys: Vec<String>,
}

/// Decodes `body` into `T`. Errors are human-readable messages; the caller wraps them.
pub(crate) fn decode<T: DeserializeOwned>(
    body: &[u8],
    mode: UnmarshalMode,
) -> Result<Decoded<T>, String> {
    let (value, duplicate_keys) = parse_tracking_duplicates(body).map_err(|e| e.to_string())?;
    if mode == UnmarshalMode::Strict && !duplicate_keys.is_empty() {
        return Err(format!(
            "strict mode: duplicate field(s) {}",
            quoted_list(&duplicate_keys)
        ));
    }
    let mut unknown_fields = Vec::new();
    let value: T = serde_ignored::deserialize(value, |path| unknown_fields.push(path.to_string()))
        .map_err(|e| e.to_string())?;
    if mode == UnmarshalMode::Strict && !unknown_fields.is_empty() {
        return Err(format!(
            "strict mode: unknown field(s) {}",
            quoted_list(&unknown_fields)
        ));
    }
    Ok(Decoded {
        value,
        unknown_fields,
        duplicate_keys,
    })
}

fn quoted_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Parses one JSON document (no trailing data), recording duplicate object keys by path.
fn parse_tracking_duplicates(body: &[u8]) -> Result<(Value, Vec<String>), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let mut duplicates = Vec::new();
    let value = Tracking {
        path: &PathBuf::Root,
        duplicates: &mut duplicates,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok((value, duplicates))
}

/// Where a value sits in the document; rendered like `serde_ignored` paths (`a.0.b`).
enum PathBuf<'a> {
    Root,
    Key(&'a PathBuf<'a>, &'a str),
    Index(&'a PathBuf<'a>, usize),
}

impl fmt::Display for PathBuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => Ok(()),
            Self::Key(parent, key) => write_child(f, parent, key),
            Self::Index(parent, index) => write_child(f, parent, index),
        }
    }
}

fn write_child(
    f: &mut fmt::Formatter<'_>,
    parent: &PathBuf<'_>,
    child: &dyn fmt::Display,
) -> fmt::Result {
    if matches!(parent, PathBuf::Root) {
        write!(f, "{child}")
    } else {
        write!(f, "{parent}.{child}")
    }
}

/// Builds a [`Value`] and notes duplicate keys on the way.
struct Tracking<'p, 'd> {
    path: &'p PathBuf<'p>,
    duplicates: &'d mut Vec<String>,
}

impl<'de> DeserializeSeed<'de> for Tracking<'_, '_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Tracking<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot hold NaN or infinities, so this is always a number.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        loop {
            let path = PathBuf::Index(self.path, items.len());
            let seed = Tracking {
                path: &path,
                duplicates: &mut *self.duplicates,
            };
            match seq.next_element_seed(seed)? {
                Some(v) => items.push(v),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            let path = PathBuf::Key(self.path, &key);
            if !seen.insert(key.clone()) {
                self.duplicates.push(path.to_string());
            }
            let value = map.next_value_seed(Tracking {
                path: &path,
                duplicates: &mut *self.duplicates,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "camelCase")]
    struct Resp {
        #[serde(default)]
        status: Option<Value>,
        #[serde(default)]
        children: Vec<Child>,
        #[serde(default)]
        resync_after_seconds: Option<f64>,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Child {
        kind: String,
    }

    #[test]
    fn loose_accepts_and_reports_unknown_fields() {
        let body = br#"{"status":{"a":1},"children":[{"kind":"Pod","extra":true}],"bogus":2}"#;
        let d: Decoded<Resp> = decode(body, UnmarshalMode::Loose).unwrap();
        assert_eq!(d.value.children[0].kind, "Pod");
        assert_eq!(d.unknown_fields, vec!["children.0.extra", "bogus"]);
        assert!(d.duplicate_keys.is_empty());
    }

    #[test]
    fn strict_rejects_unknown_fields_by_name() {
        let body = br#"{"children":[{"kind":"Pod","extra":true}],"bogus":2}"#;
        let err = decode::<Resp>(body, UnmarshalMode::Strict).unwrap_err();
        assert!(err.contains("unknown field"), "{err}");
        assert!(
            err.contains("\"bogus\"") && err.contains("\"children.0.extra\""),
            "{err}"
        );
    }

    #[test]
    fn duplicates_last_wins_in_loose_error_in_strict() {
        let body = br#"{"resyncAfterSeconds":1,"resyncAfterSeconds":2,"status":{"x":1,"x":2}}"#;
        let d: Decoded<Resp> = decode(body, UnmarshalMode::Loose).unwrap();
        assert_eq!(d.value.resync_after_seconds, Some(2.0));
        assert_eq!(d.value.status, Some(serde_json::json!({"x": 2})));
        assert_eq!(d.duplicate_keys, vec!["resyncAfterSeconds", "status.x"]);
        let err = decode::<Resp>(body, UnmarshalMode::Strict).unwrap_err();
        assert!(
            err.contains("duplicate") && err.contains("\"status.x\""),
            "{err}"
        );
    }

    #[test]
    fn free_form_targets_have_no_unknown_fields() {
        let body = br#"{"a":{"b":[1,2.5,-3,null,"s",true]}}"#;
        let d: Decoded<Value> = decode(body, UnmarshalMode::Strict).unwrap();
        assert_eq!(
            d.value,
            serde_json::json!({"a":{"b":[1,2.5,-3,null,"s",true]}})
        );
        let d: Decoded<BTreeMap<String, Value>> = decode(body, UnmarshalMode::Strict).unwrap();
        assert!(d.unknown_fields.is_empty());
    }

    #[test]
    fn preserves_big_integers() {
        let d: Decoded<Value> = decode(
            b"[18446744073709551615,-9223372036854775808]",
            UnmarshalMode::Loose,
        )
        .unwrap();
        assert_eq!(d.value[0].as_u64(), Some(u64::MAX));
        assert_eq!(d.value[1].as_i64(), Some(i64::MIN));
    }

    #[test]
    fn invalid_json_and_type_errors_fail_in_both_modes() {
        for mode in [UnmarshalMode::Loose, UnmarshalMode::Strict] {
            assert!(decode::<Resp>(b"", mode).is_err());
            assert!(decode::<Resp>(b"{", mode).is_err());
            assert!(decode::<Resp>(b"{} trailing", mode).is_err());
            assert!(decode::<Resp>(br#"{"children":"nope"}"#, mode).is_err());
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowing() {
        let body = "[".repeat(100_000);
        assert!(decode::<Value>(body.as_bytes(), UnmarshalMode::Loose).is_err());
    }
}
