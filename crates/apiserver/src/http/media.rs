//! Content negotiation: what a request body is, and what shape the client wants back.
//!
//! Responses are always JSON (clients that prefer protobuf also accept JSON). The `Accept` header
//! only chooses between a plain object and a transformation kube-apiserver offers through media
//! type parameters: `as=Table` and `as=PartialObjectMetadata[List]` in `meta.k8s.io`.

use serde_json::Value;

use crate::error::{ApiError, Result};
use crate::store::PatchType;

/// The format of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Yaml,
    Protobuf,
}

/// What a response should be rendered as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// The object or list as stored.
    Object,
    /// A `meta.k8s.io/v1` Table.
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// The Content-Type of a Table response (and of a Table watch stream).
pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// One media range of an Accept or Content-Type header: `type/subtype` and its parameters.
#[derive(Debug, Clone, PartialEq)]
struct MediaType {
    essence: String,
    params: Vec<(String, String)>,
}

impl MediaType {
    fn parse(s: &str) -> Self {
        let mut parts = s.split(';');
        let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let params = parts
            .filter_map(|p| {
                let (k, v) = p.split_once('=')?;
                Some((
                    k.trim().to_ascii_lowercase(),
                    v.trim().trim_matches('"').to_string(),
                ))
            })
            .collect();
        Self { essence, params }
    }

    fn param(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Acceptable as a JSON response: `application/json`, `application/*`, `*/*`.
    fn accepts_json(&self) -> bool {
        matches!(
            self.essence.as_str(),
            "application/json" | "application/*" | "*/*" | ""
        )
    }
}

/// Chooses the response shape from the Accept header. `as=Table` wins when offered in
/// `meta.k8s.io` v1 or v1beta1; a list request asking for `PartialObjectMetadataList` (or an
/// object request asking for `PartialObjectMetadata`) gets metadata only.
pub fn response_shape(accept: Option<&str>, is_list: bool) -> Shape {
    let Some(accept) = accept else {
        return Shape::Object;
    };
    for range in accept.split(',') {
        let m = MediaType::parse(range);
        if !m.accepts_json() {
            continue;
        }
        let group_ok = m.param("g").is_none_or(|g| g == "meta.k8s.io");
        let version_ok = m.param("v").is_none_or(|v| v == "v1" || v == "v1beta1");
        match m.param("as") {
            None => return Shape::Object,
            Some("Table") if group_ok && version_ok => return Shape::Table,
            Some("PartialObjectMetadataList") if is_list && group_ok && version_ok => {
                return Shape::Metadata
            }
            Some("PartialObjectMetadata") if group_ok && version_ok => return Shape::Metadata,
            _ => {}
        }
    }
    Shape::Object
}

/// The format of a create/update body from its Content-Type. No Content-Type means JSON
/// (the Python client sends none).
pub fn body_format(content_type: Option<&str>) -> Result<BodyFormat> {
    let m = MediaType::parse(content_type.unwrap_or(""));
    match m.essence.as_str() {
        "" | "application/json" | "text/plain" | "*/*" => Ok(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => Ok(BodyFormat::Yaml),
        "application/vnd.kubernetes.protobuf" => Ok(BodyFormat::Protobuf),
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf (got {other:?})"
        ))),
    }
}

/// The patch type selected by a PATCH request's Content-Type.
pub fn patch_type(content_type: Option<&str>, force: bool) -> Result<PatchType> {
    let m = MediaType::parse(content_type.unwrap_or(""));
    match m.essence.as_str() {
        "application/merge-patch+json" => Ok(PatchType::Merge),
        "application/json-patch+json" => Ok(PatchType::Json),
        "application/strategic-merge-patch+json" => Ok(PatchType::Strategic),
        "application/apply-patch+yaml" | "application/apply-patch+json" => Ok(PatchType::Apply { force }),
        other => Err(ApiError::unsupported_media_type(format!(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"
        ))),
    }
}

/// Decodes a JSON or YAML body into a value. Empty bodies are a 400.
/// Deepest `[`/`{` nesting a YAML body may have (the YAML decoder stops at 128 levels).
const MAX_YAML_FLOW_DEPTH: usize = 1000;

/// The deepest nesting of flow collections (`[`, `{`) outside quoted strings; stops counting
/// once past [`MAX_YAML_FLOW_DEPTH`].
fn flow_depth(body: &[u8]) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    let mut quote: Option<u8> = None;
    let mut escaped = false;
    for &b in body {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if q == b'"' && b == b'\\' {
                    escaped = true;
                } else if b == q {
                    quote = None;
                }
            }
            None => match b {
                b'"' | b'\'' => quote = Some(b),
                b'[' | b'{' => {
                    depth += 1;
                    max = max.max(depth);
                    if max > MAX_YAML_FLOW_DEPTH {
                        return max;
                    }
                }
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    max
}

pub fn decode_text(body: &[u8], format: BodyFormat) -> Result<Value> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request("the request body is empty"));
    }
    match format {
        BodyFormat::Json => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding JSON request body: {e}"))),
        BodyFormat::Yaml => {
            // The YAML parser takes time that grows much faster than the nesting depth; a
            // small body nested far deeper than the decoder accepts anyway is refused first.
            if flow_depth(body) > MAX_YAML_FLOW_DEPTH {
                return Err(ApiError::bad_request(format!(
                    "error decoding YAML request body: exceeded max depth of {MAX_YAML_FLOW_DEPTH}"
                )));
            }
            let v: serde_yaml::Value = serde_yaml::from_slice(body).map_err(|e| {
                ApiError::bad_request(format!("error decoding YAML request body: {e}"))
            })?;
            serde_json::to_value(v).map_err(|e| {
                ApiError::bad_request(format!("error converting YAML request body to JSON: {e}"))
            })
        }
        BodyFormat::Protobuf => Err(ApiError::unsupported_media_type(
            "protobuf is not accepted for this request",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECTL_GET: &str =
        "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

    #[test]
    fn yaml_nesting_is_bounded_before_parsing() {
        assert_eq!(flow_depth(b"a: [1, {b: [2]}]"), 3);
        assert_eq!(flow_depth(b"a: \"[[[[\"\nb: '{{'"), 0);
        let deep = format!("a: {}", "[".repeat(100_000));
        assert!(flow_depth(deep.as_bytes()) > MAX_YAML_FLOW_DEPTH);
        let err = decode_text(deep.as_bytes(), BodyFormat::Yaml).expect_err("too deep");
        assert_eq!(err.code, 400);
        assert!(err.message.contains("max depth"), "{}", err.message);
        assert!(decode_text(b"a: [[1]]", BodyFormat::Yaml).is_ok());
    }

    #[test]
    fn response_shapes() {
        assert_eq!(response_shape(None, true), Shape::Object);
        assert_eq!(
            response_shape(Some("application/json"), true),
            Shape::Object
        );
        assert_eq!(response_shape(Some(KUBECTL_GET), true), Shape::Table);
        assert_eq!(
            response_shape(
                Some("application/vnd.kubernetes.protobuf,application/json"),
                false
            ),
            Shape::Object
        );
        assert_eq!(
            response_shape(
                Some("application/vnd.kubernetes.protobuf;as=Table;v=v1;g=meta.k8s.io"),
                false
            ),
            Shape::Object
        );
        assert_eq!(
            response_shape(
                Some("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
                true
            ),
            Shape::Metadata
        );
        assert_eq!(
            response_shape(
                Some("application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1"),
                false
            ),
            Shape::Metadata
        );
        assert_eq!(
            response_shape(Some("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"), false),
            Shape::Object
        );
    }

    #[test]
    fn body_formats() {
        assert_eq!(body_format(None), Ok(BodyFormat::Json));
        assert_eq!(
            body_format(Some("application/json; charset=utf-8")),
            Ok(BodyFormat::Json)
        );
        assert_eq!(body_format(Some("application/yaml")), Ok(BodyFormat::Yaml));
        assert_eq!(
            body_format(Some("application/vnd.kubernetes.protobuf")),
            Ok(BodyFormat::Protobuf)
        );
        assert_eq!(body_format(Some("image/png")).map_err(|e| e.code), Err(415));
    }

    #[test]
    fn patch_types() {
        assert_eq!(
            patch_type(Some("application/merge-patch+json"), false),
            Ok(PatchType::Merge)
        );
        assert_eq!(
            patch_type(Some("application/json-patch+json"), false),
            Ok(PatchType::Json)
        );
        assert_eq!(
            patch_type(Some("application/strategic-merge-patch+json"), false),
            Ok(PatchType::Strategic)
        );
        assert_eq!(
            patch_type(Some("application/apply-patch+yaml"), true),
            Ok(PatchType::Apply { force: true })
        );
        assert_eq!(
            patch_type(Some("application/json"), false).map_err(|e| e.code),
            Err(415)
        );
        assert_eq!(patch_type(None, false).map_err(|e| e.code), Err(415));
    }

    #[test]
    fn decoding() {
        assert_eq!(
            decode_text(b"{\"a\":1}", BodyFormat::Json),
            Ok(serde_json::json!({"a": 1}))
        );
        assert_eq!(
            decode_text(b"a: 1\nb: [x]\n", BodyFormat::Yaml),
            Ok(serde_json::json!({"a": 1, "b": ["x"]}))
        );
        assert_eq!(
            decode_text(b"{", BodyFormat::Json).map_err(|e| e.code),
            Err(400)
        );
        assert_eq!(
            decode_text(b"a: [", BodyFormat::Yaml).map_err(|e| e.code),
            Err(400)
        );
        assert_eq!(
            decode_text(b"  ", BodyFormat::Json).map_err(|e| e.code),
            Err(400)
        );
    }
}
