//! Query-string parsing, as tolerant as kube-apiserver's: empty pairs (`?&a=b`), keys without
//! values, `+` for spaces and unknown parameters are all accepted.

use crate::error::{ApiError, Result};

/// The decoded query parameters of a request, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parses a raw query string (without the leading `?`).
    pub fn parse(raw: Option<&str>) -> Self {
        let mut pairs = Vec::new();
        for part in raw.unwrap_or("").split('&') {
            if part.is_empty() {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            let k = decode(k);
            if k.is_empty() {
                continue;
            }
            pairs.push((k, decode(v)));
        }
        Self { pairs }
    }

    /// The first value of `key`, if present (possibly empty).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of `key`.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }

    /// All values of `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A boolean parameter as Go's `strconv.ParseBool` reads it; absent or empty is `false`.
    pub fn bool(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            None | Some("") => Ok(false),
            Some(v) => parse_bool(v).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid value for query parameter {key}: {v:?} is not a boolean"
                ))
            }),
        }
    }

    /// An integer parameter; absent or empty is `None`.
    pub fn int(&self, key: &str) -> Result<Option<i64>> {
        match self.non_empty(key) {
            None => Ok(None),
            Some(v) => v.trim().parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!(
                    "invalid value for query parameter {key}: {v:?} is not an integer"
                ))
            }),
        }
    }

    /// `dryRun=All` (the only value Kubernetes accepts besides none).
    pub fn dry_run(&self) -> Result<bool> {
        let mut dry = false;
        for v in self.all("dryRun") {
            match v {
                "" => {}
                "All" => dry = true,
                other => {
                    return Err(ApiError::bad_request(format!(
                        "Invalid dry run value: {other:?}: supported values: \"All\""
                    )))
                }
            }
        }
        Ok(dry)
    }
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Percent-decoding with `+` as space (form encoding, as Go's `url.ParseQuery`). Invalid escapes
/// are kept literally.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-decoding of a path segment (`+` stays a plus).
pub fn decode_path(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    decode(&s.replace('+', "%2B"))
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerates_empty_pairs_and_unknown_keys() {
        let q = Query::parse(Some("&force=true&fieldManager=x&&bogus"));
        assert_eq!(q.get("force"), Some("true"));
        assert_eq!(q.get("fieldManager"), Some("x"));
        assert_eq!(q.get("bogus"), Some(""));
        assert_eq!(q.bool("force"), Ok(true));
        assert_eq!(q.bool("missing"), Ok(false));
        assert!(Query::parse(Some("")).pairs.is_empty());
        assert!(Query::parse(None).pairs.is_empty());
    }

    #[test]
    fn decodes_selectors() {
        let q = Query::parse(Some(
            "labelSelector=app+in+%28a%2Cb%29&fieldSelector=metadata.name%3Dx&labelSelector=",
        ));
        assert_eq!(q.get("labelSelector"), Some("app in (a,b)"));
        assert_eq!(q.get("fieldSelector"), Some("metadata.name=x"));
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode_path("a+b%20c"), "a+b c");
    }

    #[test]
    fn typed_values() {
        let q = Query::parse(Some(
            "timeoutSeconds=32&watch=1&dryRun=All&limit=abc&allowWatchBookmarks=maybe",
        ));
        assert_eq!(q.int("timeoutSeconds"), Ok(Some(32)));
        assert_eq!(q.bool("watch"), Ok(true));
        assert_eq!(q.dry_run(), Ok(true));
        assert_eq!(q.int("limit").map_err(|e| e.code), Err(400));
        assert_eq!(q.bool("allowWatchBookmarks").map_err(|e| e.code), Err(400));
        assert_eq!(
            Query::parse(Some("dryRun=Some"))
                .dry_run()
                .map_err(|e| e.code),
            Err(400)
        );
    }
}
