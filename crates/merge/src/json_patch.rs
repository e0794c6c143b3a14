//! RFC 6902 JSON patch with the semantics Kubernetes API servers use.
//!
//! Kubernetes applies JSON patches with the Go `evanphx/json-patch` library, which differs
//! from a strict reading of the RFC in a few ways that real clients rely on:
//!
//! - a `test` whose value is `null` passes when the path does not exist (kube-rs's
//!   finalizer helper guards "add the first finalizer" this way);
//! - array indexes may be negative, counting from the end;
//! - numbers compare by value in `test` (`1` equals `1.0`).
//!
//! Patches are atomic: if any operation fails, the document is left untouched.

use serde_json::{Map, Value};

use crate::value::json_eq;

/// Why a JSON patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonPatchError {
    /// The patch document itself is malformed (not an array, an operation not an object).
    #[error("invalid JSON patch: {reason}")]
    InvalidPatch { reason: String },
    /// One operation is malformed (unknown `op`, missing `path`, `from` or `value`).
    #[error("invalid JSON patch operation #{index}: {reason}")]
    InvalidOperation { index: usize, reason: String },
    /// A `path` or `from` is not a valid JSON pointer.
    #[error("invalid JSON pointer {pointer:?}: must be empty or start with '/'")]
    InvalidPointer { pointer: String },
    /// The location an operation needs does not exist.
    #[error("path {path:?} does not exist")]
    PathNotFound { path: String },
    /// An array index is not a number or is outside the array.
    #[error("invalid array index at {path:?}: {reason}")]
    InvalidIndex { path: String, reason: String },
    /// A `test` operation found a different value.
    #[error("test failed: value at {path:?} does not match")]
    TestFailed { path: String },
    /// The `copy` operations of one patch together would add more than the limit: a small
    /// patch doubling a value again and again would otherwise grow without bound.
    #[error("Unable to complete the copy, the accumulated size increase of copy is {accumulated}, exceeding the limit {limit}")]
    CopySizeExceeded { accumulated: u64, limit: u64 },
}

/// Result alias for this module.
pub type Result<T, E = JsonPatchError> = std::result::Result<T, E>;

/// Applies the RFC 6902 patch (a JSON array of operations) to `doc`, without a bound on what
/// its `copy` operations add; see [`apply_bounded`].
///
/// On error `doc` is unchanged.
pub fn apply(doc: &mut Value, patch: &Value) -> Result<()> {
    apply_bounded(doc, patch, None)
}

/// [`apply`], refusing the patch ([`JsonPatchError::CopySizeExceeded`]) once its `copy`
/// operations together add more than `copy_limit` bytes of JSON, as Kubernetes API servers
/// do (their limit is the request body limit). The size of each copied value is counted
/// before it is copied, and only up to what is left of the limit.
pub fn apply_bounded(doc: &mut Value, patch: &Value, copy_limit: Option<u64>) -> Result<()> {
    let ops = patch
        .as_array()
        .ok_or_else(|| JsonPatchError::InvalidPatch {
            reason: "a JSON patch must be an array of operations".into(),
        })?;
    let mut work = doc.clone();
    let mut copied = 0u64;
    for (index, op) in ops.iter().enumerate() {
        let op = Operation::parse(index, op)?;
        if let (Some(limit), Operation::Copy { from, .. }) = (copy_limit, &op) {
            let value = get(&work, from).ok_or_else(|| not_found(from))?;
            let size = json_size_up_to(value, limit.saturating_sub(copied));
            copied = copied.saturating_add(size);
            if copied > limit {
                return Err(JsonPatchError::CopySizeExceeded {
                    accumulated: copied,
                    limit,
                });
            }
        }
        op.apply(&mut work)?;
    }
    *doc = work;
    Ok(())
}

/// The length of `value` as compact JSON, counted only up to `budget` (a larger value reports
/// `budget + 1`), so that measuring a huge value costs no more than the budget.
fn json_size_up_to(value: &Value, budget: u64) -> u64 {
    struct Counter {
        count: u64,
        budget: u64,
    }
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.count += buf.len() as u64;
            if self.count > self.budget {
                return Err(std::io::Error::other("over budget"));
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter { count: 0, budget };
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.count,
        Err(_) => budget.saturating_add(1),
    }
}

/// One parsed operation.
#[derive(Debug)]
enum Operation<'a> {
    Add {
        path: Pointer<'a>,
        value: &'a Value,
    },
    Remove {
        path: Pointer<'a>,
    },
    Replace {
        path: Pointer<'a>,
        value: &'a Value,
    },
    Move {
        from: Pointer<'a>,
        path: Pointer<'a>,
    },
    Copy {
        from: Pointer<'a>,
        path: Pointer<'a>,
    },
    Test {
        path: Pointer<'a>,
        value: &'a Value,
    },
}

static NULL: Value = Value::Null;

impl<'a> Operation<'a> {
    fn parse(index: usize, raw: &'a Value) -> Result<Self> {
        let obj = raw
            .as_object()
            .ok_or_else(|| JsonPatchError::InvalidPatch {
                reason: format!("operation #{index} is not an object"),
            })?;
        let invalid = |reason: String| JsonPatchError::InvalidOperation { index, reason };
        let op = obj
            .get("op")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("missing string member \"op\"".into()))?;
        let pointer = |name: &str| -> Result<Pointer<'a>> {
            let s = obj
                .get(name)
                .and_then(Value::as_str)
                .ok_or_else(|| invalid(format!("{op}: missing string member {name:?}")))?;
            Pointer::parse(s)
        };
        let value = || -> Result<&'a Value> {
            obj.get("value")
                .ok_or_else(|| invalid(format!("{op}: missing member \"value\"")))
        };
        Ok(match op {
            "add" => Operation::Add {
                path: pointer("path")?,
                value: value()?,
            },
            "remove" => Operation::Remove {
                path: pointer("path")?,
            },
            "replace" => Operation::Replace {
                path: pointer("path")?,
                value: value()?,
            },
            "move" => Operation::Move {
                from: pointer("from")?,
                path: pointer("path")?,
            },
            "copy" => Operation::Copy {
                from: pointer("from")?,
                path: pointer("path")?,
            },
            // An absent value tests like null, as the Go implementation does.
            "test" => Operation::Test {
                path: pointer("path")?,
                value: obj.get("value").unwrap_or(&NULL),
            },
            other => return Err(invalid(format!("unknown op {other:?}"))),
        })
    }

    fn apply(&self, doc: &mut Value) -> Result<()> {
        match self {
            Operation::Add { path, value } => add(doc, path, (*value).clone()),
            Operation::Remove { path } => remove(doc, path).map(drop),
            Operation::Replace { path, value } => replace(doc, path, (*value).clone()),
            Operation::Move { from, path } => {
                if from.raw == path.raw {
                    // Moving a value onto itself still requires it to exist.
                    return get(doc, from).map(drop).ok_or_else(|| not_found(from));
                }
                if path.raw.starts_with(&format!("{}/", from.raw)) {
                    return Err(JsonPatchError::InvalidIndex {
                        path: path.raw.to_string(),
                        reason: format!("cannot move {:?} into its own child", from.raw),
                    });
                }
                let value = remove(doc, from)?;
                add(doc, path, value)
            }
            Operation::Copy { from, path } => {
                let value = get(doc, from).cloned().ok_or_else(|| not_found(from))?;
                add(doc, path, value)
            }
            Operation::Test { path, value } => test(doc, path, value),
        }
    }
}

/// A parsed JSON pointer (RFC 6901).
#[derive(Debug)]
struct Pointer<'a> {
    raw: &'a str,
    tokens: Vec<String>,
}

impl<'a> Pointer<'a> {
    fn parse(raw: &'a str) -> Result<Self> {
        if raw.is_empty() {
            return Ok(Pointer {
                raw,
                tokens: Vec::new(),
            });
        }
        let Some(rest) = raw.strip_prefix('/') else {
            return Err(JsonPatchError::InvalidPointer {
                pointer: raw.to_string(),
            });
        };
        let tokens = rest
            .split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        Ok(Pointer { raw, tokens })
    }

    /// The parent tokens and the last token; `None` for the root pointer.
    fn split_last(&self) -> Option<(&[String], &str)> {
        self.tokens
            .split_last()
            .map(|(last, parent)| (parent, last.as_str()))
    }
}

fn not_found(p: &Pointer<'_>) -> JsonPatchError {
    JsonPatchError::PathNotFound {
        path: p.raw.to_string(),
    }
}

/// Parses an array index token: digits, optionally negative (counting from the end).
fn parse_index(token: &str, path: &Pointer<'_>) -> Result<i64> {
    let digits = token.strip_prefix('-').unwrap_or(token);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(JsonPatchError::InvalidIndex {
            path: path.raw.to_string(),
            reason: format!("{token:?} is not an array index"),
        });
    }
    token
        .parse::<i64>()
        .map_err(|_| JsonPatchError::InvalidIndex {
            path: path.raw.to_string(),
            reason: format!("{token:?} is out of range"),
        })
}

/// Resolves an index into an existing element (`0..len`), allowing negative indexes.
fn element_index(token: &str, len: usize, path: &Pointer<'_>) -> Result<usize> {
    let idx = parse_index(token, path)?;
    let len_i = i64::try_from(len).unwrap_or(i64::MAX);
    let resolved = if idx < 0 { idx + len_i } else { idx };
    if resolved < 0 || resolved >= len_i {
        return Err(JsonPatchError::InvalidIndex {
            path: path.raw.to_string(),
            reason: format!("index {idx} is outside an array of length {len}"),
        });
    }
    usize::try_from(resolved).map_err(|_| not_found(path))
}

fn child<'v>(v: &'v Value, token: &str) -> Option<&'v Value> {
    match v {
        Value::Object(m) => m.get(token),
        Value::Array(a) => {
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            token.parse::<usize>().ok().and_then(|i| a.get(i))
        }
        _ => None,
    }
}

fn child_mut<'v>(v: &'v mut Value, token: &str) -> Option<&'v mut Value> {
    match v {
        Value::Object(m) => m.get_mut(token),
        Value::Array(a) => {
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            token.parse::<usize>().ok().and_then(move |i| a.get_mut(i))
        }
        _ => None,
    }
}

fn get<'v>(doc: &'v Value, p: &Pointer<'_>) -> Option<&'v Value> {
    p.tokens.iter().try_fold(doc, |v, t| child(v, t))
}

fn parent_mut<'v>(doc: &'v mut Value, p: &Pointer<'_>, parent: &[String]) -> Result<&'v mut Value> {
    let mut cur = doc;
    for t in parent {
        cur = child_mut(cur, t).ok_or_else(|| not_found(p))?;
    }
    Ok(cur)
}

fn add(doc: &mut Value, p: &Pointer<'_>, value: Value) -> Result<()> {
    let Some((parent, last)) = p.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, p, parent)? {
        Value::Object(m) => {
            m.insert(last.to_string(), value);
            Ok(())
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(value);
                return Ok(());
            }
            let idx = parse_index(last, p)?;
            let len = i64::try_from(a.len()).unwrap_or(i64::MAX);
            let resolved = if idx < 0 { idx + len } else { idx };
            if resolved < 0 || resolved > len {
                return Err(JsonPatchError::InvalidIndex {
                    path: p.raw.to_string(),
                    reason: format!("index {idx} is outside an array of length {len}"),
                });
            }
            let at = usize::try_from(resolved).map_err(|_| not_found(p))?;
            a.insert(at, value);
            Ok(())
        }
        _ => Err(not_found(p)),
    }
}

fn remove(doc: &mut Value, p: &Pointer<'_>) -> Result<Value> {
    let Some((parent, last)) = p.split_last() else {
        return Err(JsonPatchError::PathNotFound {
            path: "(the whole document cannot be removed)".into(),
        });
    };
    match parent_mut(doc, p, parent)? {
        Value::Object(m) => m.shift_remove(last).ok_or_else(|| not_found(p)),
        Value::Array(a) => {
            let at = element_index(last, a.len(), p)?;
            Ok(a.remove(at))
        }
        _ => Err(not_found(p)),
    }
}

fn replace(doc: &mut Value, p: &Pointer<'_>, value: Value) -> Result<()> {
    let Some((parent, last)) = p.split_last() else {
        *doc = value;
        return Ok(());
    };
    match parent_mut(doc, p, parent)? {
        Value::Object(m) => {
            let slot = m.get_mut(last).ok_or_else(|| not_found(p))?;
            *slot = value;
            Ok(())
        }
        Value::Array(a) => {
            let at = element_index(last, a.len(), p)?;
            a[at] = value;
            Ok(())
        }
        _ => Err(not_found(p)),
    }
}

fn test(doc: &Value, p: &Pointer<'_>, expected: &Value) -> Result<()> {
    let failed = || JsonPatchError::TestFailed {
        path: p.raw.to_string(),
    };
    let Some((parent, last)) = p.split_last() else {
        return if json_eq(doc, expected) {
            Ok(())
        } else {
            Err(failed())
        };
    };
    let container = parent
        .iter()
        .try_fold(doc, |v, t| child(v, t))
        .ok_or_else(failed)?;
    let actual = match container {
        Value::Object(m) => m.get(last),
        Value::Array(a) => {
            let at = element_index(last, a.len(), p).ok();
            at.and_then(|i| a.get(i))
        }
        _ => return Err(failed()),
    };
    match actual {
        // A missing member tests equal to null.
        None if expected.is_null() => Ok(()),
        Some(actual) if json_eq(actual, expected) => Ok(()),
        _ => Err(failed()),
    }
}

/// Builds a patch operation object; handy for callers constructing patches.
pub fn operation(op: &str, path: &str, value: Option<Value>) -> Value {
    let mut m = Map::new();
    m.insert("op".into(), Value::String(op.into()));
    m.insert("path".into(), Value::String(path.into()));
    if let Some(v) = value {
        m.insert("value".into(), v);
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn copies_that_add_more_than_the_limit_are_refused_and_change_nothing() {
        // Each copy appends the array to itself, doubling its size: 16 of them hold 2^16
        // copies of the string.
        let doc = json!({"a": ["0123456789"]});
        let patch: Vec<Value> = (0..16)
            .map(|_| json!({"op": "copy", "from": "/a", "path": "/a/-"}))
            .collect();
        let patch = Value::Array(patch);
        let mut got = doc.clone();
        match apply_bounded(&mut got, &patch, Some(10_000)) {
            Err(JsonPatchError::CopySizeExceeded { accumulated, limit }) => {
                assert_eq!(limit, 10_000);
                assert!(accumulated > limit, "{accumulated}");
            }
            other => panic!("expected the copy limit, got {other:?}"),
        }
        assert_eq!(got, doc, "a refused patch leaves the document alone");

        // Within the limit, copies apply; unbounded, so does the whole patch.
        let small = json!([{"op": "copy", "from": "/a/0", "path": "/b"}]);
        apply_bounded(&mut got, &small, Some(12)).expect("12 bytes copied");
        assert_eq!(got["b"], "0123456789");
        let mut unbounded = doc.clone();
        apply(&mut unbounded, &patch).expect("no limit");
        let size = serde_json::to_string(&unbounded).expect("JSON").len();
        assert!(size > 10 << 16, "{size} bytes");
    }

    #[test]
    fn measuring_a_copied_value_stops_at_the_budget() {
        let big = Value::String("x".repeat(1_000_000));
        assert_eq!(json_size_up_to(&big, 100), 101);
        assert_eq!(json_size_up_to(&json!("ab"), 100), 4);
        assert_eq!(json_size_up_to(&json!("ab"), 4), 4);
    }

    fn ok(doc: Value, patch: Value, want: Value) {
        let mut got = doc.clone();
        apply(&mut got, &patch).unwrap_or_else(|e| panic!("{patch}: {e}"));
        assert_eq!(got, want, "{doc} + {patch}");
    }

    fn err(doc: Value, patch: Value) -> JsonPatchError {
        let mut got = doc.clone();
        let e = apply(&mut got, &patch).expect_err(&patch.to_string());
        assert_eq!(got, doc, "a failed patch must leave the document unchanged");
        e
    }

    /// RFC 6902 appendix A examples that succeed.
    #[test]
    fn rfc6902_appendix_a_successes() {
        // A.1 adding an object member
        ok(
            json!({"foo":"bar"}),
            json!([{"op":"add","path":"/baz","value":"qux"}]),
            json!({"baz":"qux","foo":"bar"}),
        );
        // A.2 adding an array element
        ok(
            json!({"foo":["bar","baz"]}),
            json!([{"op":"add","path":"/foo/1","value":"qux"}]),
            json!({"foo":["bar","qux","baz"]}),
        );
        // A.3 removing an object member
        ok(
            json!({"baz":"qux","foo":"bar"}),
            json!([{"op":"remove","path":"/baz"}]),
            json!({"foo":"bar"}),
        );
        // A.4 removing an array element
        ok(
            json!({"foo":["bar","qux","baz"]}),
            json!([{"op":"remove","path":"/foo/1"}]),
            json!({"foo":["bar","baz"]}),
        );
        // A.5 replacing a value
        ok(
            json!({"baz":"qux","foo":"bar"}),
            json!([{"op":"replace","path":"/baz","value":"boo"}]),
            json!({"baz":"boo","foo":"bar"}),
        );
        // A.6 moving a value
        ok(
            json!({"foo":{"bar":"baz","waldo":"fred"},"qux":{"corge":"grault"}}),
            json!([{"op":"move","from":"/foo/waldo","path":"/qux/thud"}]),
            json!({"foo":{"bar":"baz"},"qux":{"corge":"grault","thud":"fred"}}),
        );
        // A.7 moving an array element
        ok(
            json!({"foo":["all","grass","cows","eat"]}),
            json!([{"op":"move","from":"/foo/1","path":"/foo/3"}]),
            json!({"foo":["all","cows","eat","grass"]}),
        );
        // A.8 testing a value: success
        ok(
            json!({"baz":"qux","foo":["a",2,"c"]}),
            json!([{"op":"test","path":"/baz","value":"qux"},{"op":"test","path":"/foo/1","value":2}]),
            json!({"baz":"qux","foo":["a",2,"c"]}),
        );
        // A.10 adding a nested member object
        ok(
            json!({"foo":"bar"}),
            json!([{"op":"add","path":"/child","value":{"grandchild":{}}}]),
            json!({"foo":"bar","child":{"grandchild":{}}}),
        );
        // A.11 ignoring unrecognized elements
        ok(
            json!({"foo":"bar"}),
            json!([{"op":"add","path":"/baz","value":"qux","xyz":123}]),
            json!({"foo":"bar","baz":"qux"}),
        );
        // A.14 ~ escape ordering
        ok(
            json!({"/":9,"~1":10}),
            json!([{"op":"test","path":"/~01","value":10}]),
            json!({"/":9,"~1":10}),
        );
        // A.16 adding an array value
        ok(
            json!({"foo":["bar"]}),
            json!([{"op":"add","path":"/foo/-","value":["abc","def"]}]),
            json!({"foo":["bar",["abc","def"]]}),
        );
    }

    /// RFC 6902 appendix A examples that must fail.
    #[test]
    fn rfc6902_appendix_a_failures() {
        // A.9 testing a value: error
        assert!(matches!(
            err(json!({"baz":"qux"}), json!([{"op":"test","path":"/baz","value":"bar"}])),
            JsonPatchError::TestFailed { path } if path == "/baz"
        ));
        // A.12 adding to a nonexistent target
        assert!(matches!(
            err(
                json!({"foo":"bar"}),
                json!([{"op":"add","path":"/baz/bat","value":"qux"}])
            ),
            JsonPatchError::PathNotFound { .. }
        ));
        // A.15 comparing strings and numbers
        assert!(matches!(
            err(
                json!({"/":9,"~1":10}),
                json!([{"op":"test","path":"/~01","value":"10"}])
            ),
            JsonPatchError::TestFailed { .. }
        ));
    }

    #[test]
    fn test_null_against_missing_path_passes() {
        // The exact patch kube-rs sends when adding the first finalizer.
        ok(
            json!({"metadata":{"name":"x"}}),
            json!([
                {"op":"test","path":"/metadata/finalizers","value":null},
                {"op":"add","path":"/metadata/finalizers","value":["example.com/f"]}
            ]),
            json!({"metadata":{"name":"x","finalizers":["example.com/f"]}}),
        );
        // Once finalizers exist the guard fails, so a concurrent writer is detected.
        assert!(matches!(
            err(
                json!({"metadata":{"finalizers":["a"]}}),
                json!([{"op":"test","path":"/metadata/finalizers","value":null}])
            ),
            JsonPatchError::TestFailed { .. }
        ));
        // A value that is present and null also passes.
        ok(
            json!({"a":null}),
            json!([{"op":"test","path":"/a","value":null}]),
            json!({"a":null}),
        );
        // An absent "value" member tests like null.
        ok(json!({}), json!([{"op":"test","path":"/a"}]), json!({}));
        // A missing parent is still a failure.
        err(json!({}), json!([{"op":"test","path":"/a/b","value":null}]));
    }

    #[test]
    fn atomic_on_failure() {
        let e = err(
            json!({"a":1}),
            json!([{"op":"replace","path":"/a","value":2},{"op":"remove","path":"/missing"}]),
        );
        assert_eq!(
            e,
            JsonPatchError::PathNotFound {
                path: "/missing".into()
            }
        );
    }

    #[test]
    fn more_operations() {
        // "-" appends; negative indexes count from the end.
        ok(
            json!([1, 2]),
            json!([{"op":"add","path":"/-","value":3}]),
            json!([1, 2, 3]),
        );
        ok(
            json!([1, 2, 3]),
            json!([{"op":"remove","path":"/-1"}]),
            json!([1, 2]),
        );
        ok(
            json!([1, 2, 3]),
            json!([{"op":"add","path":"/-1","value":9}]),
            json!([1, 2, 9, 3]),
        );
        ok(
            json!([1, 2]),
            json!([{"op":"add","path":"/2","value":3}]),
            json!([1, 2, 3]),
        );
        // Replace the whole document; add at root replaces too.
        ok(
            json!({"a":1}),
            json!([{"op":"replace","path":"","value":[1]}]),
            json!([1]),
        );
        ok(
            json!({"a":1}),
            json!([{"op":"add","path":"","value":{"b":2}}]),
            json!({"b":2}),
        );
        // Copy deep-copies.
        ok(
            json!({"a":{"x":1}}),
            json!([{"op":"copy","from":"/a","path":"/b"},{"op":"replace","path":"/b/x","value":2}]),
            json!({"a":{"x":1},"b":{"x":2}}),
        );
        // Escaped keys.
        ok(
            json!({"a/b":1,"m~n":2}),
            json!([{"op":"remove","path":"/a~1b"},{"op":"replace","path":"/m~0n","value":3}]),
            json!({"m~n":3}),
        );
        // Labels with slashes, the common Kubernetes case.
        ok(
            json!({"metadata":{"labels":{}}}),
            json!([{"op":"add","path":"/metadata/labels/app.kubernetes.io~1name","value":"x"}]),
            json!({"metadata":{"labels":{"app.kubernetes.io/name":"x"}}}),
        );
        // Add replaces an existing member in place.
        ok(
            json!({"a":1,"b":2}),
            json!([{"op":"add","path":"/a","value":5}]),
            json!({"a":5,"b":2}),
        );
        // Numbers compare by value.
        ok(
            json!({"n":1}),
            json!([{"op":"test","path":"/n","value":1.0}]),
            json!({"n":1}),
        );
        // Test a whole object regardless of key order.
        ok(
            json!({"a":{"x":1,"y":2}}),
            json!([{"op":"test","path":"/a","value":{"y":2,"x":1}}]),
            json!({"a":{"x":1,"y":2}}),
        );
        // Move onto itself is a no-op.
        ok(
            json!({"a":1}),
            json!([{"op":"move","from":"/a","path":"/a"}]),
            json!({"a":1}),
        );
    }

    #[test]
    fn errors() {
        let cases = [
            (json!({}), json!({"op":"add"})),
            (json!({}), json!(["not an object"])),
            (json!({}), json!([{"op":"frobnicate","path":"/a"}])),
            (json!({}), json!([{"path":"/a"}])),
            (json!({}), json!([{"op":"add","value":1}])),
            (json!({}), json!([{"op":"add","path":"/a"}])),
            (json!({}), json!([{"op":"replace","path":"/a","value":1}])),
            (json!({}), json!([{"op":"remove","path":"/a"}])),
            (json!({}), json!([{"op":"add","path":"a","value":1}])),
            (json!([1]), json!([{"op":"add","path":"/5","value":1}])),
            (json!([1]), json!([{"op":"add","path":"/x","value":1}])),
            (json!([1]), json!([{"op":"remove","path":"/1"}])),
            (json!([1]), json!([{"op":"remove","path":"/-2"}])),
            (
                json!({"a":1}),
                json!([{"op":"add","path":"/a/b","value":1}]),
            ),
            (
                json!({"a":{}}),
                json!([{"op":"move","from":"/a","path":"/a/b"}]),
            ),
            (json!({}), json!([{"op":"move","from":"/x","path":"/y"}])),
            (json!({}), json!([{"op":"copy","from":"/x","path":"/y"}])),
            (json!({}), json!([{"op":"remove","path":""}])),
        ];
        for (doc, patch) in cases {
            err(doc, patch);
        }
    }

    #[test]
    fn error_messages_are_clear() {
        let e = err(json!({}), json!([{"op":"remove","path":"/spec/x"}]));
        assert_eq!(e.to_string(), "path \"/spec/x\" does not exist");
        let e = err(json!({}), json!([{"op":"nope","path":"/a"}]));
        assert_eq!(
            e.to_string(),
            "invalid JSON patch operation #0: unknown op \"nope\""
        );
    }

    #[test]
    fn operation_builder() {
        assert_eq!(
            operation("remove", "/a", None),
            json!({"op":"remove","path":"/a"})
        );
        assert_eq!(
            operation("add", "/a", Some(json!(1))),
            json!({"op":"add","path":"/a","value":1})
        );
    }
}
