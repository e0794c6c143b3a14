//! CustomResourceDefinitions: validation and defaulting, the status kube-apiserver sets at
//! once, the resource types a CRD serves, the `apiextensions.k8s.io/v1beta1` input form, and
//! the structural-schema work on custom objects (pruning, defaults, strict field validation).

use serde_json::{json, Map, Value};

use crate::error::{ApiError, Result};
use crate::model::{GroupResource, ResourceType};
use crate::store::meta::{self, Cause};

/// The finalizer that makes a CRD's deletion wait until all its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

const VERBS: &[&str] = &[
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "create",
    "update",
    "watch",
];

fn crd_type() -> ResourceType {
    ResourceType {
        group: "apiextensions.k8s.io".into(),
        version: "v1".into(),
        plural: "customresourcedefinitions".into(),
        singular: "customresourcedefinition".into(),
        kind: "CustomResourceDefinition".into(),
        list_kind: "CustomResourceDefinitionList".into(),
        namespaced: false,
        verbs: vec![],
        short_names: vec![],
        categories: vec![],
        status_subresource: true,
        scale_subresource: None,
        generation: true,
        printer_columns: None,
        schema: None,
        custom: false,
        storage_version: "v1".into(),
    }
}

fn str_at<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The resource a CRD defines (`spec.group`, `spec.names.plural`).
pub fn served_group_resource(crd: &Value) -> Option<GroupResource> {
    let group = str_at(crd, "/spec/group");
    let plural = str_at(crd, "/spec/names/plural");
    (!group.is_empty() && !plural.is_empty()).then(|| GroupResource {
        group: group.to_string(),
        resource: plural.to_string(),
    })
}

/// Renames `JSONPath` to `jsonPath` in printer columns.
fn convert_columns(cols: &Value) -> Value {
    let Some(list) = cols.as_array() else {
        return cols.clone();
    };
    Value::Array(
        list.iter()
            .map(|c| {
                let mut c = c.clone();
                if let Some(m) = c.as_object_mut() {
                    if let Some(p) = m.remove("JSONPath") {
                        m.insert("jsonPath".into(), p);
                    }
                }
                c
            })
            .collect(),
    )
}

/// Rewrites an `apiextensions.k8s.io/v1beta1` CustomResourceDefinition into the v1 form:
/// `version` becomes `versions`, the top-level `validation`, `subresources` and
/// `additionalPrinterColumns` move into each version (`JSONPath` → `jsonPath`), and
/// `preserveUnknownFields` (true by default in v1beta1) becomes
/// `x-kubernetes-preserve-unknown-fields: true` on the root schema.
pub fn convert_v1beta1_to_v1(v: Value) -> Result<Value> {
    let Value::Object(mut obj) = v else {
        return Err(ApiError::bad_request(
            "a CustomResourceDefinition must be an object",
        ));
    };
    obj.insert(
        "apiVersion".into(),
        Value::String("apiextensions.k8s.io/v1".into()),
    );
    let Some(Value::Object(spec)) = obj.get_mut("spec") else {
        return Ok(Value::Object(obj));
    };
    let version = spec.remove("version");
    let validation = spec.remove("validation");
    let subresources = spec.remove("subresources");
    let columns = spec.remove("additionalPrinterColumns");
    let preserve = spec
        .remove("preserveUnknownFields")
        .and_then(|p| p.as_bool())
        .unwrap_or(true);

    let mut versions: Vec<Value> = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        if let Some(name) = version.as_ref().and_then(Value::as_str) {
            versions.push(json!({"name": name, "served": true, "storage": true}));
        }
    }
    for ver in &mut versions {
        let Some(m) = ver.as_object_mut() else {
            continue;
        };
        if !m.contains_key("schema") {
            if let Some(val) = &validation {
                m.insert("schema".into(), val.clone());
            }
        }
        if !m.contains_key("subresources") {
            if let Some(s) = &subresources {
                m.insert("subresources".into(), s.clone());
            }
        }
        let cols = m
            .remove("additionalPrinterColumns")
            .or_else(|| columns.clone());
        if let Some(c) = cols {
            m.insert("additionalPrinterColumns".into(), convert_columns(&c));
        }
        let has_schema = m
            .get("schema")
            .and_then(|s| s.get("openAPIV3Schema"))
            .is_some_and(Value::is_object);
        if !has_schema {
            m.insert(
                "schema".into(),
                json!({"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}),
            );
        } else if preserve {
            if let Some(Value::Object(root)) = m
                .get_mut("schema")
                .and_then(|s| s.get_mut("openAPIV3Schema"))
            {
                root.insert(
                    "x-kubernetes-preserve-unknown-fields".into(),
                    Value::Bool(true),
                );
            }
        }
    }
    spec.insert("versions".into(), Value::Array(versions));

    if let Some(Value::Object(conv)) = spec.get_mut("conversion") {
        if conv.get("strategy").and_then(Value::as_str) == Some("Webhook")
            && !conv.contains_key("webhook")
        {
            let client = conv.remove("webhookClientConfig");
            let review = conv
                .remove("conversionReviewVersions")
                .unwrap_or_else(|| json!(["v1beta1"]));
            let mut wh = Map::new();
            if let Some(c) = client {
                wh.insert("clientConfig".into(), c);
            }
            wh.insert("conversionReviewVersions".into(), review);
            conv.insert("webhook".into(), Value::Object(wh));
        }
    }
    Ok(Value::Object(obj))
}

fn is_group_name(g: &str) -> bool {
    g.contains('.') && meta::is_subdomain(g)
}

/// Validates and defaults a CRD (v1 form) and sets the status kube-apiserver reports once
/// the names are accepted and the CRD is established. `old` is the stored CRD on update.
pub fn prepare(crd: &mut Value, old: Option<&Value>) -> Result<()> {
    let rt = crd_type();
    let name = meta::meta_str(crd, "name").unwrap_or("").to_string();
    let mut causes = Vec::new();
    let Some(spec) = crd.get_mut("spec").and_then(Value::as_object_mut) else {
        return Err(meta::invalid(&rt, &name, vec![Cause::required("spec", "")]));
    };
    let group = spec
        .get("group")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if group.is_empty() {
        causes.push(Cause::required("spec.group", ""));
    } else if !is_group_name(&group) {
        causes.push(Cause::invalid(
            "spec.group",
            &Value::String(group.clone()),
            "should be a domain with at least one dot",
        ));
    }
    let names = spec.entry("names").or_insert_with(|| json!({}));
    let (plural, kind) = {
        let Some(n) = names.as_object_mut() else {
            return Err(meta::invalid(
                &rt,
                &name,
                vec![Cause::required("spec.names", "")],
            ));
        };
        let plural = n
            .get("plural")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let kind = n
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if n.get("singular")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            n.insert("singular".into(), Value::String(kind.to_lowercase()));
        }
        if n.get("listKind")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            n.insert("listKind".into(), Value::String(format!("{kind}List")));
        }
        (plural, kind)
    };
    let accepted = names.clone();
    if plural.is_empty() {
        causes.push(Cause::required("spec.names.plural", ""));
    } else if !meta::name_errors(&crd_type(), &plural).is_empty() || plural.contains('.') {
        causes.push(Cause::invalid(
            "spec.names.plural",
            &Value::String(plural.clone()),
            "a lowercase RFC 1123 label is required",
        ));
    }
    if kind.is_empty() {
        causes.push(Cause::required("spec.names.kind", ""));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(Cause::invalid(
            "metadata.name",
            &Value::String(name.clone()),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    match spec.get("scope").and_then(Value::as_str) {
        Some("Namespaced" | "Cluster") => {}
        Some(other) => causes.push(Cause {
            reason: "FieldValueNotSupported",
            field: "spec.scope".into(),
            message: format!(
                "Unsupported value: {other:?}: supported values: \"Cluster\", \"Namespaced\""
            ),
        }),
        None => causes.push(Cause::required("spec.scope", "")),
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if versions.is_empty() {
        causes.push(Cause::required(
            "spec.versions",
            "must have exactly one version marked as storage version",
        ));
    }
    let storage: Vec<&Value> = versions
        .iter()
        .filter(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .collect();
    if !versions.is_empty() && storage.len() != 1 {
        causes.push(Cause::invalid(
            "spec.versions",
            &Value::Array(
                versions
                    .iter()
                    .map(|v| v.get("name").cloned().unwrap_or(Value::Null))
                    .collect(),
            ),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, v) in versions.iter().enumerate() {
        let vname = v.get("name").and_then(Value::as_str).unwrap_or("");
        if vname.is_empty() {
            causes.push(Cause::required(&format!("spec.versions[{i}].name"), ""));
        } else if !seen.insert(vname.to_string()) {
            causes.push(Cause {
                reason: "FieldValueDuplicate",
                field: format!("spec.versions[{i}].name"),
                message: format!("Duplicate value: {vname:?}"),
            });
        }
        if v.pointer("/schema/openAPIV3Schema")
            .is_none_or(|s| !s.is_object())
        {
            causes.push(Cause::required(
                &format!("spec.versions[{i}].schema.openAPIV3Schema"),
                "schemas are required",
            ));
        }
    }
    if !causes.is_empty() {
        return Err(meta::invalid(&rt, &name, causes));
    }
    let storage_version = storage
        .first()
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();

    if !meta::is_deleting(crd) {
        let mut fins = meta::finalizers(crd);
        if !fins.iter().any(|f| f == CLEANUP_FINALIZER) {
            fins.push(CLEANUP_FINALIZER.to_string());
            meta::set_finalizers(crd, fins);
        }
    }

    let old_status = old.and_then(|o| o.get("status"));
    let mut stored: Vec<Value> = old_status
        .and_then(|s| s.get("storedVersions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if !stored
        .iter()
        .any(|v| v.as_str() == Some(storage_version.as_str()))
    {
        stored.push(Value::String(storage_version));
    }
    let old_conditions: Vec<Value> = old_status
        .and_then(|s| s.get("conditions"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let now = meta::now_rfc3339();
    let condition = |ty: &str, reason: &str, message: &str| {
        let since = old_conditions
            .iter()
            .find(|c| {
                c.get("type").and_then(Value::as_str) == Some(ty)
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| Value::String(now.clone()));
        json!({"type": ty, "status": "True", "lastTransitionTime": since, "reason": reason, "message": message})
    };
    let mut conditions = vec![
        condition("NamesAccepted", "NoConflicts", "no conflicts found"),
        condition(
            "Established",
            "InitialNamesAccepted",
            "the initial names have been accepted",
        ),
    ];
    if let Some(t) = old_conditions
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Terminating"))
    {
        conditions.push(t.clone());
    }
    if let Value::Object(m) = crd {
        m.insert(
            "status".into(),
            json!({"conditions": conditions, "acceptedNames": accepted, "storedVersions": stored}),
        );
    }
    Ok(())
}

/// Adds the `Terminating` condition a CRD carries while its objects are being deleted.
pub fn mark_terminating(crd: &mut Value) {
    let cond = json!({"type": "Terminating", "status": "True", "lastTransitionTime": meta::now_rfc3339(),
        "reason": "InstanceDeletionInProgress", "message": "CustomResource deletion is in progress"});
    let Value::Object(m) = crd else { return };
    let status = m.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    let conds = &mut status["conditions"];
    if !conds.is_array() {
        *conds = json!([]);
    }
    if let Some(list) = conds.as_array_mut() {
        if !list
            .iter()
            .any(|c| c.get("type").and_then(Value::as_str) == Some("Terminating"))
        {
            list.push(cond);
        }
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The types a (prepared) CRD serves: one per served version.
pub fn resource_types(crd: &Value) -> Result<Vec<ResourceType>> {
    let group = str_at(crd, "/spec/group").to_string();
    let names = crd
        .pointer("/spec/names")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let n = |f: &str| {
        names
            .get(f)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let storage_version = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let namespaced = str_at(crd, "/spec/scope") != "Cluster";
    Ok(versions
        .iter()
        .filter(|v| v.get("served").and_then(Value::as_bool).unwrap_or(false))
        .map(|v| ResourceType {
            group: group.clone(),
            version: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            plural: n("plural"),
            singular: n("singular"),
            kind: n("kind"),
            list_kind: n("listKind"),
            namespaced,
            verbs: VERBS.iter().map(|s| s.to_string()).collect(),
            short_names: strings(names.get("shortNames")),
            categories: strings(names.get("categories")),
            status_subresource: v
                .pointer("/subresources/status")
                .is_some_and(|s| !s.is_null()),
            scale_subresource: v
                .pointer("/subresources/scale")
                .filter(|s| !s.is_null())
                .cloned(),
            generation: true,
            printer_columns: v
                .get("additionalPrinterColumns")
                .filter(|c| !c.is_null())
                .cloned(),
            schema: v.pointer("/schema/openAPIV3Schema").cloned(),
            custom: true,
            storage_version: storage_version.clone(),
        })
        .collect())
}

fn preserves(schema: &Value) -> bool {
    schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        == Some(true)
}

/// Applies a structural schema to a custom object: drops `null`s the schema does not allow,
/// fills `default`s, and prunes unknown fields — or, when `strict`, rejects them with
/// 400 `strict decoding error: unknown field "spec.foo"`.
pub fn prune_and_default(obj: &mut Value, schema: &Value, strict: bool) -> Result<()> {
    let mut unknown = Vec::new();
    walk(obj, schema, "", true, strict, &mut unknown);
    if strict && !unknown.is_empty() {
        let list: Vec<String> = unknown
            .iter()
            .map(|f| format!("unknown field {f:?}"))
            .collect();
        return Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            list.join(", ")
        )));
    }
    Ok(())
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

fn walk(
    v: &mut Value,
    schema: &Value,
    path: &str,
    root: bool,
    strict: bool,
    unknown: &mut Vec<String>,
) {
    match v {
        Value::Object(m) => {
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            let preserve = preserves(schema);
            if let Some(props) = props {
                // Nulls the schema does not allow are dropped, then defaults fill the gaps.
                for (k, ps) in props {
                    if m.get(k).is_some_and(Value::is_null)
                        && ps.get("nullable").and_then(Value::as_bool) != Some(true)
                    {
                        m.remove(k);
                    }
                    if !m.contains_key(k) {
                        if let Some(d) = ps.get("default") {
                            m.insert(k.clone(), d.clone());
                        }
                    }
                }
            }
            let keys: Vec<String> = m.keys().cloned().collect();
            for k in keys {
                if (root || embedded) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    // Type and object metadata are the server's business, not the schema's.
                    continue;
                }
                let child_schema = props
                    .and_then(|p| p.get(&k))
                    .or(additional.filter(|a| a.is_object()));
                match child_schema {
                    Some(cs) => {
                        if let Some(child) = m.get_mut(&k) {
                            walk(child, cs, &join(path, &k), false, strict, unknown);
                        }
                    }
                    None if preserve || additional.and_then(Value::as_bool) == Some(true) => {}
                    _ => {
                        if strict {
                            unknown.push(join(path, &k));
                        } else {
                            m.remove(&k);
                        }
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    walk(item, is, &format!("{path}[{i}]"), false, strict, unknown);
                }
            }
        }
        _ => {}
    }
}

/// One schema violation: field path, cause reason and message.
type Violation = (String, &'static str, String);

/// Validates a custom object against its structural schema as kube-apiserver does after
/// pruning and defaulting: types, `required`, `enum`, `nullable`, lengths, bounds and item
/// counts. Violations become one 422 `Invalid` naming every field.
pub fn validate(obj: &Value, schema: &Value, rt: &ResourceType) -> Result<()> {
    let mut out = Vec::new();
    check(obj, schema, "", true, &mut out);
    if out.is_empty() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let msgs: Vec<String> = out.iter().map(|(f, _, m)| format!("{f}: {m}")).collect();
    let causes: Vec<Value> = out
        .iter()
        .map(|(f, r, m)| json!({"reason": r, "message": m, "field": f}))
        .collect();
    let message = if msgs.len() == 1 {
        format!(
            "{}.{} \"{name}\" is invalid: {}",
            rt.kind, rt.group, msgs[0]
        )
    } else {
        format!(
            "{}.{} \"{name}\" is invalid: [{}]",
            rt.kind,
            rt.group,
            msgs.join(", ")
        )
    };
    Err(ApiError::new(422, "Invalid", message)
        .with_details(json!({"name": name, "group": rt.group, "kind": rt.kind, "causes": causes})))
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn check(v: &Value, schema: &Value, path: &str, root: bool, out: &mut Vec<Violation>) {
    let field = if path.is_empty() { "<root>" } else { path };
    let shown = |v: &Value| match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => v.to_string(),
        other => format!("\"{}\"", type_name(other)),
    };
    if v.is_null() {
        if schema.get("nullable").and_then(Value::as_bool) != Some(true)
            && schema.get("type").is_some()
        {
            out.push((
                field.to_string(),
                "FieldValueInvalid",
                format!(
                    "Invalid value: \"null\": {field} in body must be of type {}: \"null\"",
                    schema["type"].as_str().unwrap_or("object")
                ),
            ));
        }
        return;
    }
    let int_or_string = schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        == Some(true);
    if int_or_string {
        if !matches!(type_name(v), "integer" | "string") {
            out.push((
                field.to_string(),
                "FieldValueInvalid",
                format!(
                    "Invalid value: {}: {field} in body must be of type integer or string",
                    shown(v)
                ),
            ));
        }
        return;
    }
    if let Some(want) = schema.get("type").and_then(Value::as_str) {
        let have = type_name(v);
        let ok = have == want || (want == "number" && have == "integer");
        if !ok {
            out.push((
                field.to_string(),
                "FieldValueInvalid",
                format!(
                    "Invalid value: \"{have}\": {field} in body must be of type {want}: \"{have}\""
                ),
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(v) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            out.push((
                field.to_string(),
                "FieldValueNotSupported",
                format!(
                    "Unsupported value: {}: supported values: {}",
                    shown(v),
                    list.join(", ")
                ),
            ));
        }
    }
    let bound = |k: &str| schema.get(k).and_then(Value::as_f64);
    if let Some(n) = v.as_f64() {
        if let Some(min) = bound("minimum") {
            if n < min {
                out.push((field.to_string(), "FieldValueInvalid",
                    format!("Invalid value: {}: {field} in body should be greater than or equal to {min}", shown(v))));
            }
        }
        if let Some(max) = bound("maximum") {
            if n > max {
                out.push((
                    field.to_string(),
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {}: {field} in body should be less than or equal to {max}",
                        shown(v)
                    ),
                ));
            }
        }
    }
    let count = |k: &str| schema.get(k).and_then(Value::as_u64);
    if let Some(s) = v.as_str() {
        let len = s.chars().count() as u64;
        if count("minLength").is_some_and(|m| len < m) {
            out.push((
                field.to_string(),
                "FieldValueInvalid",
                format!(
                    "Invalid value: {}: {field} in body should be at least {} chars long",
                    shown(v),
                    count("minLength").unwrap_or(0)
                ),
            ));
        }
        if count("maxLength").is_some_and(|m| len > m) {
            out.push((
                field.to_string(),
                "TooLong",
                format!(
                    "Too long: may not be more than {} bytes",
                    count("maxLength").unwrap_or(0)
                ),
            ));
        }
    }
    match v {
        Value::Object(m) => {
            for r in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(r) = r.as_str() {
                    if !m.contains_key(r) {
                        out.push((join(path, r), "FieldValueRequired", "Required value".into()));
                    }
                }
            }
            let props = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let embedded = schema
                .get("x-kubernetes-embedded-resource")
                .and_then(Value::as_bool)
                == Some(true);
            for (k, child) in m {
                if (root || embedded) && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(cs) = props.and_then(|p| p.get(k)).or(additional) {
                    check(child, cs, &join(path, k), false, out);
                }
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if count("minItems").is_some_and(|m| n < m) {
                out.push((
                    field.to_string(),
                    "FieldValueInvalid",
                    format!(
                        "Invalid value: {n}: {field} in body should have at least {} items",
                        count("minItems").unwrap_or(0)
                    ),
                ));
            }
            if count("maxItems").is_some_and(|m| n > m) {
                out.push((
                    field.to_string(),
                    "TooMany",
                    format!(
                        "Too many: {n}: must have at most {} items",
                        count("maxItems").unwrap_or(0)
                    ),
                ));
            }
            if let Some(is) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check(item, is, &format!("{path}[{i}]"), false, out);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed tutorial's `crd.yaml`.
    const SEED_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1beta1
kind: CustomResourceDefinition
metadata:
  name: helloworlds.example.com
spec:
  group: example.com
  version: v1
  names:
    kind: HelloWorld
    plural: helloworlds
    singular: helloworld
  scope: Namespaced
"#;

    fn seed() -> Value {
        serde_yaml::from_str(SEED_CRD).expect("yaml")
    }

    #[test]
    fn seed_crd_converts_and_serves_one_version() {
        let mut v1 = convert_v1beta1_to_v1(seed()).expect("convert");
        assert_eq!(v1["apiVersion"], "apiextensions.k8s.io/v1");
        assert!(v1["spec"].get("version").is_none());
        assert_eq!(
            v1["spec"]["versions"],
            json!([{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}])
        );
        prepare(&mut v1, None).expect("valid");
        assert_eq!(v1["spec"]["names"]["listKind"], "HelloWorldList");
        assert_eq!(v1["status"]["storedVersions"], json!(["v1"]));
        assert_eq!(v1["status"]["acceptedNames"]["kind"], "HelloWorld");
        let types: Vec<(String, String)> = v1["status"]["conditions"]
            .as_array()
            .expect("conds")
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap_or("").into(),
                    c["reason"].as_str().unwrap_or("").into(),
                )
            })
            .collect();
        assert_eq!(
            types,
            [
                ("NamesAccepted".into(), "NoConflicts".into()),
                ("Established".into(), "InitialNamesAccepted".into())
            ]
        );
        assert_eq!(meta::finalizers(&v1), [CLEANUP_FINALIZER]);
        let rts = resource_types(&v1).expect("types");
        assert_eq!(rts.len(), 1);
        assert_eq!(
            (rts[0].kind.as_str(), rts[0].namespaced, rts[0].custom),
            ("HelloWorld", true, true)
        );
        // Everything is preserved under the converted schema.
        let mut obj = json!({"apiVersion": "example.com/v1", "kind": "HelloWorld", "metadata": {"name": "x"}, "spec": {"who": "World"}});
        prune_and_default(&mut obj, rts[0].schema.as_ref().expect("schema"), true).expect("kept");
        assert_eq!(obj["spec"]["who"], "World");
    }

    #[test]
    fn v1beta1_moves_validation_subresources_and_columns_per_version() {
        let mut crd = seed();
        crd["spec"]["validation"] = json!({"openAPIV3Schema": {"type": "object", "properties": {"spec": {"type": "object"}}}});
        crd["spec"]["subresources"] = json!({"status": {}});
        crd["spec"]["additionalPrinterColumns"] =
            json!([{"name": "Who", "type": "string", "JSONPath": ".spec.who"}]);
        crd["spec"]["preserveUnknownFields"] = json!(false);
        crd["spec"]["versions"] = json!([{"name": "v1", "served": true, "storage": true}, {"name": "v1beta1", "served": true, "storage": false}]);
        let v1 = convert_v1beta1_to_v1(crd).expect("convert");
        for ver in v1["spec"]["versions"].as_array().expect("versions") {
            assert_eq!(ver["subresources"], json!({"status": {}}));
            assert_eq!(ver["additionalPrinterColumns"][0]["jsonPath"], ".spec.who");
            assert!(ver["additionalPrinterColumns"][0].get("JSONPath").is_none());
            assert!(ver["schema"]["openAPIV3Schema"]
                .get("x-kubernetes-preserve-unknown-fields")
                .is_none());
        }
        assert!(v1["spec"].get("preserveUnknownFields").is_none());
    }

    #[test]
    fn invalid_crds_are_rejected() {
        let good = convert_v1beta1_to_v1(seed()).expect("convert");
        let check = |f: &dyn Fn(&mut Value)| {
            let mut c = good.clone();
            f(&mut c);
            prepare(&mut c, None).err().map(|e| e.code)
        };
        assert_eq!(check(&|_| {}), None);
        assert_eq!(
            check(&|c| c["metadata"]["name"] = json!("wrong.example.com")),
            Some(422)
        );
        assert_eq!(
            check(&|c| c["spec"]["versions"][0]["storage"] = json!(false)),
            Some(422)
        );
        assert_eq!(check(&|c| c["spec"]["group"] = json!("nodots")), Some(422));
        assert_eq!(check(&|c| c["spec"]["scope"] = json!("Global")), Some(422));
        assert_eq!(
            check(&|c| {
                let v = c["spec"]["versions"][0].clone();
                c["spec"]["versions"] = json!([v.clone(), v]);
            }),
            Some(422)
        );
        assert_eq!(
            check(&|c| c["spec"]["versions"][0]
                .as_object_mut()
                .map(|m| m.remove("schema"))
                .map(|_| ())
                .unwrap_or(())),
            Some(422)
        );
    }

    #[test]
    fn stored_versions_accumulate_and_conditions_keep_their_time() {
        let mut c = convert_v1beta1_to_v1(seed()).expect("convert");
        prepare(&mut c, None).expect("p");
        let mut old = c.clone();
        old["status"]["conditions"][0]["lastTransitionTime"] = json!("2001-01-01T00:00:00Z");
        let mut next = c.clone();
        next["spec"]["versions"] = json!([
            {"name": "v1", "served": true, "storage": false, "schema": {"openAPIV3Schema": {"type": "object"}}},
            {"name": "v2", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object"}}}]);
        prepare(&mut next, Some(&old)).expect("p");
        assert_eq!(next["status"]["storedVersions"], json!(["v1", "v2"]));
        assert_eq!(
            next["status"]["conditions"][0]["lastTransitionTime"],
            "2001-01-01T00:00:00Z"
        );
        let rts = resource_types(&next).expect("types");
        assert!(rts.iter().all(|t| t.storage_version == "v2"));
        mark_terminating(&mut next);
        mark_terminating(&mut next);
        let n = next["status"]["conditions"].as_array().map(|a| a.len());
        assert_eq!(n, Some(3));
    }

    fn widget_schema() -> Value {
        json!({"type": "object", "properties": {
            "spec": {"type": "object", "properties": {
                "size": {"type": "integer", "default": 3},
                "name": {"type": "string"},
                "items": {"type": "array", "items": {"type": "object", "properties": {"a": {"type": "string"}}}},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                "opt": {"type": "string", "nullable": true}
            }},
            "status": {"type": "object", "properties": {"ready": {"type": "boolean"}}}
        }})
    }

    #[test]
    fn pruning_and_defaults() {
        let mut obj = json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"name": "n", "foo": 1, "items": [{"a": "x", "b": "y"}], "labels": {"k": "v"},
                "free": {"any": {"thing": 1}}, "opt": null, "size": null},
            "extra": true});
        prune_and_default(&mut obj, &widget_schema(), false).expect("prune");
        assert_eq!(
            obj,
            json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w"},
                "spec": {"name": "n", "items": [{"a": "x"}], "labels": {"k": "v"},
                    "free": {"any": {"thing": 1}}, "opt": null, "size": 3}})
        );
    }

    #[test]
    fn strict_validation_names_every_unknown_field() {
        let mut obj = json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {"name": "w"},
            "spec": {"foo": 1, "items": [{"b": 2}]}});
        let e = prune_and_default(&mut obj, &widget_schema(), true).expect_err("strict");
        assert_eq!(e.code, 400);
        assert_eq!(
            e.message,
            "strict decoding error: unknown field \"spec.foo\", unknown field \"spec.items[0].b\""
        );
    }

    #[test]
    fn validation_reports_every_field_with_its_reason() {
        let schema = json!({"type": "object", "properties": {"spec": {"type": "object",
            "required": ["size"],
            "properties": {"replicas": {"type": "integer", "minimum": 0},
                "mode": {"type": "string", "enum": ["a", "b"]},
                "port": {"x-kubernetes-int-or-string": true},
                "tags": {"type": "array", "maxItems": 1, "items": {"type": "string"}}}}}});
        let base = crate::registry::Registry::with_builtins()
            .lookup("", "v1", "configmaps")
            .expect("cm");
        let rt = ResourceType {
            kind: "Widget".into(),
            group: "example.com".into(),
            custom: true,
            ..(*base).clone()
        };
        let ok = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"size": 1, "replicas": 2, "mode": "a", "port": "http", "tags": ["x"]}});
        validate(&ok, &schema, &rt).expect("valid");
        let bad = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"},
            "spec": {"replicas": "two", "mode": "c", "port": 1.5, "tags": ["x", 2]}});
        let e = validate(&bad, &schema, &rt).expect_err("invalid");
        assert_eq!(e.code, 422);
        assert!(
            e.message
                .starts_with("Widget.example.com \"w\" is invalid: ["),
            "{}",
            e.message
        );
        assert!(e.message.contains("spec.replicas: Invalid value: \"string\": spec.replicas in body must be of type integer: \"string\""), "{}", e.message);
        let fields: Vec<(String, String)> = e.details.as_ref().expect("details")["causes"]
            .as_array()
            .expect("causes")
            .iter()
            .map(|c| {
                (
                    c["field"].as_str().unwrap_or("").into(),
                    c["reason"].as_str().unwrap_or("").into(),
                )
            })
            .collect();
        for (f, r) in [
            ("spec.size", "FieldValueRequired"),
            ("spec.replicas", "FieldValueInvalid"),
            ("spec.mode", "FieldValueNotSupported"),
            ("spec.port", "FieldValueInvalid"),
            ("spec.tags", "TooMany"),
            ("spec.tags[1]", "FieldValueInvalid"),
        ] {
            assert!(
                fields.contains(&(f.to_string(), r.to_string())),
                "{f} {r}: {fields:?}"
            );
        }
    }
}
