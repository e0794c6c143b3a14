//! The JSONPath subset used by CRD `additionalPrinterColumns`.
//!
//! Supported: field steps (`.a.b`, with `\.` escaping a dot inside a name), quoted keys
//! (`['app.kubernetes.io/name']`, `["x"]`), indexes (`[0]`, `[-1]`), wildcards (`[*]`, `.*`)
//! and an optional `{...}` wrapper. Values are rendered as text the way Go's `fmt` prints
//! decoded JSON, which is what kube-apiserver does for `string` columns.

use serde_json::Value;

/// One step of a parsed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    Field(String),
    Index(i64),
    Wildcard,
}

/// Why a path could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid JSONPath {path:?}: {reason}")]
pub struct PathError {
    pub path: String,
    pub reason: String,
}

/// Parses a printer-column path such as `.status.conditions[0].type`.
pub(crate) fn parse(path: &str) -> Result<Vec<Step>, PathError> {
    let err = |reason: &str| PathError {
        path: path.to_string(),
        reason: reason.to_string(),
    };
    let mut text = path.trim();
    if let Some(inner) = text.strip_prefix('{') {
        text = inner
            .strip_suffix('}')
            .ok_or_else(|| err("unbalanced braces"))?
            .trim();
    }
    // A leading `$` names the root.
    text = text.strip_prefix('$').unwrap_or(text);
    let chars: Vec<char> = text.chars().collect();
    let mut steps = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                i += 1;
                if chars.get(i) == Some(&'.') {
                    return Err(err("recursive descent is not supported"));
                }
                let mut name = String::new();
                while i < chars.len() && chars[i] != '.' && chars[i] != '[' {
                    if chars[i] == '\\' && i + 1 < chars.len() {
                        i += 1;
                    }
                    name.push(chars[i]);
                    i += 1;
                }
                match name.as_str() {
                    "" if i >= chars.len() && steps.is_empty() => {} // the path "."
                    "" => return Err(err("empty field name")),
                    "*" => steps.push(Step::Wildcard),
                    _ => steps.push(Step::Field(name)),
                }
            }
            '[' => {
                i += 1;
                let close = chars[i..]
                    .iter()
                    .position(|c| *c == ']')
                    .map(|p| p + i)
                    .ok_or_else(|| err("unclosed ["))?;
                let inside: String = chars[i..close].iter().collect();
                let inside = inside.trim();
                let step = if inside == "*" {
                    Step::Wildcard
                } else if let Some(q) = inside
                    .strip_prefix('\'')
                    .and_then(|s| s.strip_suffix('\''))
                    .or_else(|| inside.strip_prefix('"').and_then(|s| s.strip_suffix('"')))
                {
                    Step::Field(unescape(q))
                } else {
                    inside
                        .parse::<i64>()
                        .map(Step::Index)
                        .map_err(|_| err("unsupported bracket expression"))?
                };
                steps.push(step);
                i = close + 1;
            }
            c if c.is_whitespace() => i += 1,
            _ => return Err(err("expected . or [")),
        }
    }
    Ok(steps)
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Every value the path selects, in document order.
pub(crate) fn find<'a>(root: &'a Value, steps: &[Step]) -> Vec<&'a Value> {
    let mut current = vec![root];
    for step in steps {
        let mut next = Vec::new();
        for v in current {
            match (step, v) {
                (Step::Field(name), Value::Object(map)) => next.extend(map.get(name)),
                (Step::Index(i), Value::Array(items)) => {
                    let len = items.len() as i64;
                    let idx = if *i < 0 { len + i } else { *i };
                    if (0..len).contains(&idx) {
                        next.extend(items.get(idx as usize));
                    }
                }
                (Step::Wildcard, Value::Array(items)) => next.extend(items.iter()),
                (Step::Wildcard, Value::Object(map)) => next.extend(map.values()),
                _ => {}
            }
        }
        current = next;
    }
    current
}

/// Renders a JSON value as Go's `fmt.Print` renders the decoded value.
pub(crate) fn go_text(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => go_float(f),
            _ => n.to_string(),
        },
        Value::Array(items) => {
            let inner: Vec<String> = items.iter().map(go_text).collect();
            format!("[{}]", inner.join(" "))
        }
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{k}:{}", go_text(&map[k])))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

/// Go's `%v` for a float64: shortest digits, exponent form below 1e-4 and from 1e6 on.
fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-tripping digits, e.g. "1.5e-7".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(path: &str, doc: &Value) -> Vec<Value> {
        let steps = parse(path).expect("parses");
        find(doc, &steps).into_iter().cloned().collect()
    }

    #[test]
    fn parses_supported_forms() {
        assert_eq!(
            parse(".a.b").ok(),
            Some(vec![Step::Field("a".into()), Step::Field("b".into())])
        );
        assert_eq!(
            parse("{.a[0].b}").ok(),
            Some(vec![
                Step::Field("a".into()),
                Step::Index(0),
                Step::Field("b".into())
            ])
        );
        assert_eq!(
            parse(".metadata.labels['app.kubernetes.io/name']").ok(),
            Some(vec![
                Step::Field("metadata".into()),
                Step::Field("labels".into()),
                Step::Field("app.kubernetes.io/name".into())
            ])
        );
        assert_eq!(
            parse(r".metadata.labels.app\.kubernetes\.io/name").ok(),
            parse(".metadata.labels[\"app.kubernetes.io/name\"]").ok()
        );
        assert_eq!(
            parse(".a[*].b").ok(),
            Some(vec![
                Step::Field("a".into()),
                Step::Wildcard,
                Step::Field("b".into())
            ])
        );
        assert_eq!(parse(".").ok(), Some(vec![]));
    }

    #[test]
    fn rejects_what_it_does_not_support() {
        assert!(parse("..a").is_err());
        assert!(parse(".a[?(@.x)]").is_err());
        assert!(parse(".a[0").is_err());
        assert!(parse("{.a").is_err());
        assert!(parse("a.b").is_err());
        assert!(parse(".a..b").is_err());
    }

    #[test]
    fn evaluates_paths() {
        let doc = json!({
            "spec": {"replicas": 3, "items": [{"name": "x"}, {"name": "y"}]},
            "metadata": {"labels": {"app.kubernetes.io/name": "demo"}}
        });
        assert_eq!(eval(".spec.replicas", &doc), vec![json!(3)]);
        assert_eq!(eval(".spec.items[1].name", &doc), vec![json!("y")]);
        assert_eq!(eval(".spec.items[-1].name", &doc), vec![json!("y")]);
        assert_eq!(
            eval(".spec.items[*].name", &doc),
            vec![json!("x"), json!("y")]
        );
        assert_eq!(
            eval(".metadata.labels['app.kubernetes.io/name']", &doc),
            vec![json!("demo")]
        );
        assert!(eval(".spec.items[5].name", &doc).is_empty());
        assert!(eval(".spec.missing.deeper", &doc).is_empty());
        assert!(eval(".spec.replicas.x", &doc).is_empty());
    }

    #[test]
    fn renders_like_go() {
        assert_eq!(go_text(&json!("s")), "s");
        assert_eq!(go_text(&json!(42)), "42");
        assert_eq!(go_text(&json!(true)), "true");
        assert_eq!(go_text(&json!(1.5)), "1.5");
        assert_eq!(go_text(&json!(2.0)), "2");
        assert_eq!(go_text(&json!(1e21)), "1e+21");
        assert_eq!(go_text(&json!(1e6)), "1e+06");
        assert_eq!(go_text(&json!(123456.5)), "123456.5");
        assert_eq!(go_text(&json!(0.00001)), "1e-05");
        assert_eq!(go_text(&json!(["a", 1])), "[a 1]");
        assert_eq!(go_text(&json!({"b": 1, "a": "x"})), "map[a:x b:1]");
        assert_eq!(go_text(&Value::Null), "<nil>");
    }
}
