//! CustomResourceDefinitions for the Metacontroller kinds, generated from the Rust types.
//!
//! The OpenAPI schemas come from `schemars` and are rewritten into Kubernetes *structural*
//! schemas: every subschema inlined, `Option<T>` turned into plain `T` (absence already means
//! "unset"), Rust enums into string `enum`s, free-form JSON into objects that preserve unknown
//! fields, formats limited to those Kubernetes knows, keys sorted. [`structural_errors`]
//! checks the result and is usable on any CRD schema.
//!
//! The committed manifest `deploy/crds/metacontroller-crds-v1.yaml` is [`crds_yaml`]'s output;
//! a test fails when they drift (`UPDATE_CRDS=1 cargo test -p metacontroller-api` rewrites it).

use schemars::generate::SchemaSettings;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::consts;
use crate::{CompositeController, ControllerRevision, DecoratorController};

/// Annotation the API server requires on CRDs of groups ending in `k8s.io`; the value marks
/// the API as not reviewed by the Kubernetes project, exactly as upstream does.
pub const API_APPROVED_ANNOTATION: &str = "api-approved.kubernetes.io";
/// Value of [`API_APPROVED_ANNOTATION`].
pub const API_APPROVED_VALUE: &str = "unapproved, request not yet submitted";

/// Formats the Kubernetes API server accepts in CRD schemas.
const KNOWN_FORMATS: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "date-time",
    "int32",
    "int64",
    "float",
    "double",
];

const KNOWN_TYPES: &[&str] = &["object", "array", "string", "integer", "number", "boolean"];

const PRESERVE: &str = "x-kubernetes-preserve-unknown-fields";

/// Static description of one CRD.
struct CrdInfo {
    kind: &'static str,
    plural: &'static str,
    short_names: &'static [&'static str],
    namespaced: bool,
}

/// The three CRDs, in upstream's order (alphabetical by resource).
pub fn crds() -> Vec<Value> {
    vec![
        crd(
            &CrdInfo {
                kind: consts::COMPOSITE_CONTROLLER_KIND,
                plural: consts::COMPOSITE_CONTROLLER_RESOURCE,
                short_names: &["cc", "cctl"],
                namespaced: false,
            },
            schema_for::<CompositeController>(),
        ),
        crd(
            &CrdInfo {
                kind: consts::CONTROLLER_REVISION_KIND,
                plural: consts::CONTROLLER_REVISION_RESOURCE,
                short_names: &[],
                namespaced: true,
            },
            schema_for::<ControllerRevision>(),
        ),
        crd(
            &CrdInfo {
                kind: consts::DECORATOR_CONTROLLER_KIND,
                plural: consts::DECORATOR_CONTROLLER_RESOURCE,
                short_names: &["dec", "decorators"],
                namespaced: false,
            },
            schema_for::<DecoratorController>(),
        ),
    ]
}

/// [`crds`] as one multi-document YAML stream, the content of the committed manifest.
pub fn crds_yaml() -> String {
    let mut out = String::new();
    for crd in crds() {
        out.push_str("---\n");
        // A serde_json::Value has only string keys and finite numbers, so it always has a
        // YAML form; failure here would be a bug in serde_yaml.
        let doc = serde_yaml::to_string(&crd).expect("a JSON value always serializes to YAML");
        out.push_str(&doc);
    }
    out
}

fn crd(info: &CrdInfo, schema: Value) -> Value {
    let singular = info.kind.to_ascii_lowercase();
    let mut names = json!({
        "kind": info.kind,
        "listKind": format!("{}List", info.kind),
        "plural": info.plural,
        "singular": singular,
    });
    if !info.short_names.is_empty() {
        names["shortNames"] = json!(info.short_names);
    }
    json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": format!("{}.{}", info.plural, consts::GROUP),
            "annotations": { API_APPROVED_ANNOTATION: API_APPROVED_VALUE },
        },
        "spec": {
            "group": consts::GROUP,
            "names": names,
            "scope": if info.namespaced { "Namespaced" } else { "Cluster" },
            "versions": [{
                "name": consts::VERSION,
                "served": true,
                "storage": true,
                "schema": { "openAPIV3Schema": schema },
                "subresources": { "status": {} },
            }],
        },
    })
}

/// The structural schema of a top-level kind.
fn schema_for<T: JsonSchema>() -> Value {
    let generator = SchemaSettings::draft2020_12()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .into_generator();
    let raw = generator.into_root_schema_for::<T>().to_value();
    let mut schema = structuralize(raw);
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        // The API server owns metadata validation; a CRD may only say it is an object.
        props.insert("metadata".into(), json!({ "type": "object" }));
        // Defaults are not allowed on apiVersion and kind.
        for key in ["apiVersion", "kind"] {
            if let Some(p) = props.get_mut(key).and_then(Value::as_object_mut) {
                p.shift_remove("default");
            }
        }
    }
    schema
}

/// Rewrites a schemars schema node (recursively) into a structural one.
fn structuralize(node: Value) -> Value {
    let mut obj = match node {
        // `true` / `{}` accept anything: an embedded object with unknown fields.
        Value::Bool(_) => return json!({ "type": "object", PRESERVE: true }),
        Value::Object(obj) => obj,
        other => return other,
    };

    // `anyOf: [T, {type: null}]` (an Option of a complex type): keep T, merged into this
    // node; this node's own keys (the field's description, extensions) win.
    for key in ["anyOf", "oneOf"] {
        let Some(Value::Array(branches)) = obj.remove(key) else {
            continue;
        };
        let branches: Vec<Value> = branches
            .into_iter()
            .filter(|b| !is_null_schema(b))
            .collect();
        if let Some(values) = const_strings(&branches) {
            obj.entry("type").or_insert_with(|| json!("string"));
            obj.insert("enum".into(), Value::Array(values));
        } else if branches.len() == 1 {
            let inner = structuralize(branches.into_iter().next().unwrap_or(Value::Null));
            if let Value::Object(inner) = inner {
                for (k, v) in inner {
                    obj.entry(k).or_insert(v);
                }
            }
        } else {
            obj.insert(key.into(), Value::Array(branches));
        }
    }

    // `type: [T, "null"]` (an Option of a simple type): keep T.
    if let Some(Value::Array(types)) = obj.get("type") {
        let types: Vec<&Value> = types
            .iter()
            .filter(|t| t.as_str() != Some("null"))
            .collect();
        if let [single] = types.as_slice() {
            let single = (*single).clone();
            obj.insert("type".into(), single);
        }
    }

    if let Some(value) = obj.remove("const") {
        obj.insert("enum".into(), json!([value]));
    }
    if obj.get("default") == Some(&Value::Null) {
        obj.remove("default");
    }
    obj.remove("title");
    if let Some(Value::String(text)) = obj.get_mut("description") {
        // Rustdoc links read badly in `kubectl explain`: "[`Hook`]" becomes "`Hook`".
        *text = text.replace("[`", "`").replace("`]", "`");
    }
    obj.remove("$schema");
    if let Some(format) = obj.get("format").and_then(Value::as_str) {
        if !KNOWN_FORMATS.contains(&format) {
            obj.remove("format");
        }
    }

    match obj.get("additionalProperties") {
        Some(Value::Bool(true)) => {
            obj.remove("additionalProperties");
            obj.insert(PRESERVE.into(), json!(true));
        }
        Some(Value::Bool(false)) => {
            obj.remove("additionalProperties");
        }
        _ => {}
    }
    if let Some(Value::Array(required)) = obj.get_mut("required") {
        required.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
    }
    if obj
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
    {
        obj.remove("properties");
    }

    // No type and no structure: free-form JSON.
    if !obj.contains_key("type") && !obj.contains_key(PRESERVE) && !obj.contains_key("anyOf") {
        obj.insert("type".into(), json!("object"));
        obj.insert(PRESERVE.into(), json!(true));
    }

    // Recurse into child schemas.
    if let Some(Value::Object(props)) = obj.remove("properties") {
        let props: Map<String, Value> = props
            .into_iter()
            .map(|(k, v)| (k, structuralize(v)))
            .collect();
        obj.insert("properties".into(), Value::Object(sorted(props)));
    }
    for key in ["items", "additionalProperties"] {
        if let Some(child) = obj.remove(key) {
            obj.insert(key.into(), structuralize(child));
        }
    }
    Value::Object(sorted(obj))
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// When every branch is a string constant (a Rust unit enum), the constants.
fn const_strings(branches: &[Value]) -> Option<Vec<Value>> {
    if branches.is_empty() {
        return None;
    }
    let mut values = Vec::new();
    for b in branches {
        if let Some(c) = b.get("const").filter(|c| c.is_string()) {
            values.push(c.clone());
        } else if let Some(Value::Array(e)) = b.get("enum") {
            if !e.iter().all(Value::is_string) {
                return None;
            }
            values.extend(e.iter().cloned());
        } else {
            return None;
        }
    }
    Some(values)
}

fn sorted(map: Map<String, Value>) -> Map<String, Value> {
    let mut entries: Vec<(String, Value)> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    entries.into_iter().collect()
}

/// Problems that make `schema` (an `openAPIV3Schema`) non-structural or otherwise
/// unacceptable to the Kubernetes API server; empty when it is fine. Each entry names the
/// JSON path of the offending node.
pub fn structural_errors(schema: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    check_node(schema, "", &mut errors);
    if schema.get("type").and_then(Value::as_str) != Some("object") {
        errors.push("root: type must be object".into());
    }
    if let Some(meta) = schema.pointer("/properties/metadata") {
        let allowed = ["type", "properties", "description"];
        if meta
            .as_object()
            .is_some_and(|m| m.keys().any(|k| !allowed.contains(&k.as_str())))
        {
            errors.push("/properties/metadata: only type and name restrictions are allowed".into());
        }
    }
    for key in ["apiVersion", "kind", "metadata"] {
        if schema
            .pointer(&format!("/properties/{key}/default"))
            .is_some()
        {
            errors.push(format!("/properties/{key}: default is not allowed"));
        }
    }
    errors
}

fn check_node(node: &Value, path: &str, errors: &mut Vec<String>) {
    let here = if path.is_empty() { "root" } else { path };
    let Some(obj) = node.as_object() else {
        errors.push(format!("{here}: schema must be an object, found {node}"));
        return;
    };
    for forbidden in [
        "$ref",
        "$defs",
        "definitions",
        "nullable",
        "anyOf",
        "oneOf",
        "allOf",
        "const",
    ] {
        if obj.contains_key(forbidden) {
            errors.push(format!("{here}: {forbidden} is not allowed"));
        }
    }
    let preserve = obj.get(PRESERVE) == Some(&Value::Bool(true));
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
    match obj.get("type") {
        Some(Value::String(t)) if KNOWN_TYPES.contains(&t.as_str()) => {}
        Some(t) => errors.push(format!("{here}: invalid type {t}")),
        None if preserve || int_or_string => {}
        None => errors.push(format!("{here}: type is missing")),
    }
    if let Some(format) = obj.get("format") {
        if !format.as_str().is_some_and(|f| KNOWN_FORMATS.contains(&f)) {
            errors.push(format!("{here}: unknown format {format}"));
        }
    }
    if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
        errors.push(format!("{here}: uniqueItems must not be true"));
    }
    if obj.contains_key("properties") && obj.contains_key("additionalProperties") {
        errors.push(format!(
            "{here}: properties and additionalProperties are exclusive"
        ));
    }
    if let Some(props) = obj.get("properties") {
        match props.as_object() {
            Some(props) => {
                for (name, child) in props {
                    check_node(child, &format!("{path}/properties/{name}"), errors);
                }
            }
            None => errors.push(format!("{here}: properties must be an object")),
        }
    }
    if let Some(items) = obj.get("items") {
        check_node(items, &format!("{path}/items"), errors);
    } else if obj.get("type").and_then(Value::as_str) == Some("array") {
        errors.push(format!("{here}: array without items"));
    }
    match obj.get("additionalProperties") {
        None => {}
        Some(Value::Bool(_)) => {
            errors.push(format!("{here}: additionalProperties must be a schema"));
        }
        Some(child) => check_node(child, &format!("{path}/additionalProperties"), errors),
    }
    if let Some(Value::Array(required)) = obj.get("required") {
        let props = obj.get("properties").and_then(Value::as_object);
        for r in required {
            let name = r.as_str().unwrap_or_default();
            if !props.is_some_and(|p| p.contains_key(name)) {
                errors.push(format!("{here}: required field {r} has no schema"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema_of(crd: &Value) -> &Value {
        &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    }

    fn find<'a>(crds: &'a [Value], plural: &str) -> &'a Value {
        crds.iter()
            .find(|c| c["spec"]["names"]["plural"] == plural)
            .unwrap_or_else(|| panic!("no CRD for {plural}"))
    }

    #[test]
    fn every_schema_is_structural() {
        for crd in crds() {
            let errors = structural_errors(schema_of(&crd));
            assert!(
                errors.is_empty(),
                "{}: {errors:#?}",
                crd["metadata"]["name"]
            );
        }
    }

    #[test]
    fn crd_identity_matches_upstream() {
        let crds = crds();
        assert_eq!(crds.len(), 3);
        let cc = find(&crds, "compositecontrollers");
        assert_eq!(
            cc["metadata"]["name"],
            "compositecontrollers.metacontroller.k8s.io"
        );
        assert_eq!(
            cc["metadata"]["annotations"][API_APPROVED_ANNOTATION],
            API_APPROVED_VALUE
        );
        assert_eq!(cc["spec"]["scope"], "Cluster");
        assert_eq!(cc["spec"]["names"]["shortNames"], json!(["cc", "cctl"]));
        assert_eq!(cc["spec"]["names"]["singular"], "compositecontroller");
        assert_eq!(cc["spec"]["names"]["listKind"], "CompositeControllerList");
        let dc = find(&crds, "decoratorcontrollers");
        assert_eq!(dc["spec"]["scope"], "Cluster");
        assert_eq!(
            dc["spec"]["names"]["shortNames"],
            json!(["dec", "decorators"])
        );
        let cr = find(&crds, "controllerrevisions");
        assert_eq!(cr["spec"]["scope"], "Namespaced");
        assert!(cr["spec"]["names"].get("shortNames").is_none());
        for crd in &crds {
            assert_eq!(crd["spec"]["group"], "metacontroller.k8s.io");
            let v = &crd["spec"]["versions"][0];
            assert_eq!(
                (
                    v["name"].as_str(),
                    v["served"].as_bool(),
                    v["storage"].as_bool()
                ),
                (Some("v1alpha1"), Some(true), Some(true))
            );
            assert_eq!(v["subresources"], json!({"status": {}}));
        }
    }

    #[test]
    fn composite_schema_has_upstream_shape() {
        let crds = crds();
        let s = schema_of(find(&crds, "compositecontrollers"));
        assert_eq!(s["required"], json!(["metadata", "spec"]));
        assert_eq!(s["properties"]["metadata"], json!({"type": "object"}));
        assert!(s["properties"]["apiVersion"].get("default").is_none());
        let spec = &s["properties"]["spec"];
        assert_eq!(spec["required"], json!(["parentResource"]));
        let method = &spec["properties"]["childResources"]["items"]["properties"]["updateStrategy"]
            ["properties"]["method"];
        assert_eq!(method["type"], "string");
        assert_eq!(
            method["enum"],
            json!([
                "OnDelete",
                "Recreate",
                "InPlace",
                "RollingRecreate",
                "RollingInPlace"
            ])
        );
        let hooks = &spec["properties"]["hooks"]["properties"];
        for hook in [
            "sync",
            "finalize",
            "customize",
            "preUpdateChild",
            "postUpdateChild",
        ] {
            let version = &hooks[hook]["properties"]["version"];
            assert_eq!(version["enum"], json!(["v1", "v2"]), "{hook}");
            assert_eq!(version["default"], "v1", "{hook}");
        }
        let webhook = &hooks["sync"]["properties"]["webhook"]["properties"];
        assert_eq!(
            webhook["timeout"],
            json!({"description": webhook["timeout"]["description"], "format": "duration", "type": "string"})
        );
        assert_eq!(
            webhook["responseUnMarshallMode"]["enum"],
            json!(["loose", "strict"])
        );
        assert_eq!(webhook["service"]["required"], json!(["name", "namespace"]));
        assert_eq!(webhook["service"]["properties"]["port"]["format"], "int32");
        assert_eq!(
            webhook["authorization"]["properties"]["type"]["default"],
            "Bearer"
        );
        assert_eq!(
            webhook["caBundle"]["properties"]["secretRef"]["properties"]["key"]["default"],
            "ca.crt"
        );
        assert!(webhook.get("clientTLS").is_some() && webhook.get("basicAuth").is_some());
        let selector = &spec["properties"]["parentResource"]["properties"]["labelSelector"];
        assert_eq!(selector["type"], "object");
        assert_eq!(selector["x-kubernetes-map-type"], "atomic");
        assert_eq!(
            selector["properties"]["matchLabels"]["additionalProperties"],
            json!({"type": "string"})
        );
        assert_eq!(spec["properties"]["resyncPeriodSeconds"]["format"], "int32");
        assert_eq!(spec["properties"]["generateSelector"]["type"], "boolean");
        assert_eq!(
            spec["properties"]["endpointConfigs"]["items"]["required"],
            json!(["host"])
        );
        assert_eq!(
            s["properties"]["status"],
            json!({"description": s["properties"]["status"]["description"], "type": "object"})
        );
    }

    #[test]
    fn revision_parent_patch_preserves_fields() {
        let crds = crds();
        let s = schema_of(find(&crds, "controllerrevisions"));
        let patch = &s["properties"]["parentPatch"];
        assert_eq!(patch["type"], "object");
        assert_eq!(patch[PRESERVE], true);
        assert_eq!(s["required"], json!(["metadata", "parentPatch"]));
        assert_eq!(
            s["properties"]["children"]["items"]["required"],
            json!(["apiGroup", "kind", "names"])
        );
    }

    #[test]
    fn decorator_schema_has_selectors() {
        let crds = crds();
        let s = schema_of(find(&crds, "decoratorcontrollers"));
        let res = &s["properties"]["spec"]["properties"]["resources"]["items"]["properties"];
        let ann = &res["annotationSelector"]["properties"];
        assert_eq!(
            ann["matchAnnotations"]["additionalProperties"],
            json!({"type": "string"})
        );
        assert_eq!(
            ann["matchExpressions"]["items"]["required"],
            json!(["key", "operator"])
        );
        assert_eq!(s["properties"]["spec"]["required"], json!(["resources"]));
    }

    #[test]
    fn structuralize_rewrites_schemars_idioms() {
        let out = structuralize(json!({
            "type": "object",
            "properties": {
                "a": {"type": ["string", "null"]},
                "b": {"anyOf": [{"type": "object", "properties": {"x": {"type": "integer", "format": "uint32", "minimum": 0}}}, {"type": "null"}], "description": "field"},
                "c": true,
                "d": {"oneOf": [{"const": "X"}, {"const": "Y"}]},
                "e": {"type": "object", "additionalProperties": true, "properties": {}},
                "f": {"type": "array", "items": {"description": "any"}},
                "g": {"type": "string", "description": "See [`Hook`] and [`Hook::version`]."}
            }
        }));
        assert_eq!(out["properties"]["a"], json!({"type": "string"}));
        assert_eq!(
            out["properties"]["b"],
            json!({"description": "field", "properties": {"x": {"minimum": 0, "type": "integer"}}, "type": "object"})
        );
        assert_eq!(
            out["properties"]["c"],
            json!({"type": "object", PRESERVE: true})
        );
        assert_eq!(
            out["properties"]["d"],
            json!({"enum": ["X", "Y"], "type": "string"})
        );
        assert_eq!(
            out["properties"]["e"],
            json!({"type": "object", PRESERVE: true})
        );
        assert_eq!(
            out["properties"]["f"]["items"],
            json!({"description": "any", "type": "object", PRESERVE: true})
        );
        assert_eq!(
            out["properties"]["g"]["description"],
            "See `Hook` and `Hook::version`."
        );
        assert!(
            structural_errors(&out).is_empty(),
            "{:?}",
            structural_errors(&out)
        );
    }

    #[test]
    fn structural_errors_catches_violations() {
        let bad = json!({
            "type": "object",
            "properties": {
                "a": {"$ref": "#/$defs/A"},
                "b": {"type": ["string", "null"]},
                "c": {"description": "untyped"},
                "d": {"type": "array"},
                "e": {"type": "string", "format": "uint8"},
                "f": {"type": "object", "properties": {}, "additionalProperties": {"type": "string"}},
                "g": {"type": "string", "nullable": true},
                "apiVersion": {"type": "string", "default": "v1"},
                "metadata": {"type": "object", "properties": {"labels": {"type": "object"}}, "x-kubernetes-preserve-unknown-fields": true}
            },
            "required": ["missing"]
        });
        let errors = structural_errors(&bad).join("\n");
        for expected in [
            "/properties/a: $ref is not allowed",
            "/properties/a: type is missing",
            "/properties/b: invalid type",
            "/properties/c: type is missing",
            "/properties/d: array without items",
            "/properties/e: unknown format",
            "/properties/f: properties and additionalProperties are exclusive",
            "/properties/g: nullable is not allowed",
            "/properties/apiVersion: default is not allowed",
            "/properties/metadata: only type and name restrictions",
            "root: required field \"missing\" has no schema",
        ] {
            assert!(
                errors.contains(expected),
                "missing {expected:?} in:\n{errors}"
            );
        }
        assert!(!structural_errors(&json!({"type": "string"})).is_empty());
    }

    #[test]
    fn yaml_is_three_documents() {
        let yaml = crds_yaml();
        assert_eq!(yaml.matches("---\n").count(), 3);
        assert!(yaml.starts_with("---\napiVersion: apiextensions.k8s.io/v1\n"));
        assert!(!yaml.contains('$'));
    }
}
