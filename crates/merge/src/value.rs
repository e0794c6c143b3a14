//! Small helpers over `serde_json::Value` shared by the algorithms in this crate.

use serde_json::Value;

/// Structural JSON equality where numbers compare by numeric value (`1` equals `1.0`)
/// and object key order does not matter.
pub(crate) fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                match (x.as_f64(), y.as_f64()) {
                    (Some(x), Some(y)) => x == y,
                    _ => false,
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_compare_by_value() {
        assert!(json_eq(&json!(1), &json!(1.0)));
        assert!(json_eq(&json!(-3), &json!(-3)));
        assert!(!json_eq(&json!(1), &json!(2)));
        assert!(!json_eq(&json!(1), &json!("1")));
        assert!(json_eq(&json!(u64::MAX), &json!(u64::MAX)));
    }

    #[test]
    fn objects_ignore_key_order() {
        let a: Value = serde_json::from_str(r#"{"a":1,"b":[1,{"c":2}]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"b":[1.0,{"c":2}],"a":1}"#).unwrap();
        assert!(json_eq(&a, &b));
        assert!(!json_eq(&a, &json!({"a": 1})));
        assert!(!json_eq(&json!([1, 2]), &json!([2, 1])));
    }
}
