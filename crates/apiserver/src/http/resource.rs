//! Handlers for resource paths: get, list, create, update, patch, delete and deletecollection
//! on objects and their `status` and `scale` subresources, plus the special subresources
//! (`serviceaccounts/token`, `namespaces/finalize`, `pods/log`).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, USER_AGENT};
use http::{Method, Response, StatusCode};
use serde_json::{json, Map, Value};

use super::media::{self, BodyFormat, Shape};
use super::route::ResourcePath;
use super::{bytes_response, json, watch, AppState, Body, Req};
use crate::discovery::{self, APIEXTENSIONS_GROUP, AUTHORIZATION_GROUP};
use crate::error::{not_found, ApiError, Result};
use crate::metrics::RequestInfo;
use crate::model::{
    finalize_served, log_served, scale_paths, scale_served, token_served, ResourceType,
};
use crate::podlogs::LogRequest;
use crate::store::{
    DeleteOptions, DeleteOutcome, FieldSelector, ListOptions, Obj, PatchType, Propagation,
    Subresource, WatchOptions, WriteOptions,
};
use crate::table::{self, IncludeObject};
use metacontroller_merge::LabelSelector;

/// Which part of an object a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Main,
    Status,
    Scale,
    /// `serviceaccounts/{name}/token`: create-only TokenRequests.
    Token,
    /// `namespaces/{name}/finalize`: updates `spec.finalizers` only.
    Finalize,
    /// `pods/{name}/log`: get-only container logs.
    Log,
}

/// Everything a verb handler needs about the target.
struct Target<'a> {
    state: &'a Arc<AppState>,
    rt: Arc<ResourceType>,
    namespace: Option<String>,
    /// Served through `apiextensions.k8s.io/v1beta1`: bodies are converted to v1.
    legacy_crd: bool,
}

impl Target<'_> {
    fn ns(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
}

pub(super) async fn handle(
    state: &Arc<AppState>,
    path: ResourcePath,
    mut req: Req,
    info: &RequestInfo,
) -> Result<Response<Body>> {
    let registry = state.store.registry();
    let legacy_crd = path.group == APIEXTENSIONS_GROUP
        && path.version == "v1beta1"
        && path.resource == "customresourcedefinitions";
    let rt = if legacy_crd {
        registry.lookup(APIEXTENSIONS_GROUP, "v1", "customresourcedefinitions")
    } else {
        discovery::lookup(&registry, &path.group, &path.version, &path.resource)
    }
    .ok_or_else(not_found)?;

    if !rt.namespaced && path.namespace.is_some() {
        return Err(not_found());
    }
    if rt.namespaced && path.namespace.is_none() && path.name.is_some() {
        return Err(not_found());
    }
    let part = match path.subresource.as_deref() {
        None => Part::Main,
        Some("status") if rt.status_subresource => Part::Status,
        Some("scale") if scale_served(&rt) => Part::Scale,
        Some("token") if token_served(&rt) => Part::Token,
        Some("finalize") if finalize_served(&rt) => Part::Finalize,
        Some("log") if log_served(&rt) => Part::Log,
        Some(_) => return Err(not_found()),
    };
    let target = Target {
        state,
        rt,
        namespace: path.namespace.clone(),
        legacy_crd,
    };

    if discovery::is_review(&target.rt) {
        return match (&req.method, &path.name) {
            (&Method::POST, None) => review(&target.rt, &mut req).await,
            _ => Err(method_not_allowed()),
        };
    }

    let watching = path.legacy_watch || req.query.bool("watch")?;
    if part == Part::Main {
        let verb = match (&req.method, path.name.is_some()) {
            (&Method::GET | &Method::HEAD, _) if watching => "watch",
            (&Method::GET | &Method::HEAD, true) => "get",
            (&Method::GET | &Method::HEAD, false) => "list",
            (&Method::POST, _) => "create",
            (&Method::PUT, _) => "update",
            (&Method::PATCH, _) => "patch",
            (&Method::DELETE, true) => "delete",
            (&Method::DELETE, false) => "deletecollection",
            _ => "",
        };
        if !target.rt.verbs.iter().any(|v| v == verb) {
            return Err(method_not_allowed());
        }
    }
    match (req.method.clone(), path.name) {
        (Method::GET | Method::HEAD, None) if watching => start_watch(&target, None, &req, info),
        (Method::GET | Method::HEAD, None) => list(&target, &req),
        (Method::GET | Method::HEAD, Some(name)) if watching && part == Part::Main => {
            start_watch(&target, Some(&name), &req, info)
        }
        (Method::POST, Some(name)) if part == Part::Token => {
            token_request(&target, &name, &mut req).await
        }
        (Method::PUT, Some(name)) if part == Part::Finalize => {
            finalize(&target, &name, &mut req).await
        }
        (Method::GET | Method::HEAD, Some(name)) if part == Part::Log => {
            pod_log(&target, &name, &req)
        }
        (_, _) if matches!(part, Part::Token | Part::Finalize | Part::Log) => {
            Err(method_not_allowed())
        }
        (Method::GET | Method::HEAD, Some(name)) => get(&target, &name, part, &req),
        (Method::POST, None) if target.rt.namespaced && target.namespace.is_none() => {
            Err(method_not_allowed())
        }
        (Method::POST, None) => create(&target, &mut req).await,
        (Method::PUT, Some(name)) => update(&target, &name, part, &mut req).await,
        (Method::PATCH, Some(name)) => patch(&target, &name, part, &mut req).await,
        (Method::DELETE, Some(name)) if part == Part::Main => {
            delete(&target, &name, &mut req).await
        }
        (Method::DELETE, None) if !(target.rt.namespaced && target.namespace.is_none()) => {
            delete_collection(&target, &mut req).await
        }
        _ => Err(method_not_allowed()),
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed("the server does not allow this method on the requested resource")
}

// ----- decoding -----

/// Decodes a create/update body as its Content-Type says.
fn decode_object(req: &Req, body: &[u8]) -> Result<Value> {
    let format = media::body_format(req.header(CONTENT_TYPE))?;
    let v = match format {
        BodyFormat::Protobuf => crate::protobuf::decode(body).map_err(|e| match e {
            crate::protobuf::ProtobufError::UnsupportedKind { .. } => {
                ApiError::unsupported_media_type(e.to_string())
            }
            crate::protobuf::ProtobufError::Malformed(_) => ApiError::bad_request(e.to_string()),
        })?,
        f => media::decode_text(body, f)?,
    };
    if !v.is_object() {
        return Err(ApiError::bad_request(format!(
            "the request body must be a JSON object, not {}",
            type_name(&v)
        )));
    }
    Ok(v)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Converts an `apiextensions.k8s.io/v1beta1` CRD body to v1 when served through v1beta1.
fn convert_legacy(t: &Target<'_>, obj: Value) -> Result<Value> {
    if !t.legacy_crd {
        return Ok(obj);
    }
    let is_v1beta1 =
        obj.get("apiVersion").and_then(Value::as_str) == Some("apiextensions.k8s.io/v1beta1");
    if !is_v1beta1 {
        return Ok(obj);
    }
    crate::crd::convert_v1beta1_to_v1(obj)
}

/// Checks `apiVersion`/`kind` against the URL (filling them when absent) and the namespace.
fn check_object(t: &Target<'_>, obj: &mut Value) -> Result<()> {
    let rt = &t.rt;
    let expected_av = rt.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(expected_av),
        Some(av) if av == expected_av => {}
        Some(av) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({av}) does not match the expected API version ({expected_av})"
            )))
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(rt.kind),
        Some(k) if k == rt.kind => {}
        // Custom resources report a field error, built-ins a decoding error, as kube-apiserver.
        Some(k) if rt.custom => {
            let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
            return Err(ApiError::invalid(
                &rt.group,
                k,
                name,
                &[("kind", format!("Invalid value: \"{k}\": must be {}", rt.kind))],
            ));
        }
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "{k} in version \"{}\" cannot be handled as a {}: the kind in the data does not match the {} endpoint",
                rt.version,
                rt.kind,
                qualified(rt)
            )))
        }
    }
    if let Some(meta) = obj.get("metadata") {
        if !meta.is_object() && !meta.is_null() {
            return Err(ApiError::bad_request("metadata must be an object"));
        }
    }
    if rt.namespaced {
        let body_ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("");
        if let Some(ns) = t.ns() {
            if !body_ns.is_empty() && body_ns != ns {
                return Err(ApiError::bad_request(
                    "the namespace of the provided object does not match the namespace sent on the request",
                ));
            }
        }
    }
    Ok(())
}

fn qualified(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

fn write_options(req: &Req) -> Result<WriteOptions> {
    let strict = match req.query.get("fieldValidation").unwrap_or("") {
        "" | "Ignore" | "Warn" => false,
        "Strict" => true,
        other => {
            return Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other:?}: must be one of Ignore, Warn or Strict"
            )))
        }
    };
    let field_manager = req.query.non_empty("fieldManager").map(str::to_string);
    if let Some(m) = &field_manager {
        if m.chars().count() > 128 {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                &[(
                    "fieldManager",
                    "Too long: may not be longer than 128".to_string(),
                )],
            ));
        }
    }
    // kube-apiserver names a writer without a fieldManager after the program that starts its
    // User-Agent (`kubectl/v1.32.4 (linux/amd64) ...` is `kubectl`).
    let user_agent_manager = req
        .header(USER_AGENT)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    Ok(WriteOptions {
        dry_run: req.query.dry_run()?,
        field_manager,
        user_agent_manager: Some(user_agent_manager),
        strict_validation: strict,
    })
}

fn list_options(rt: &ResourceType, req: &Req) -> Result<ListOptions> {
    // Versions are opaque to clients but always numbers here, as with etcd.
    if let Some(rv) = req.query.non_empty("resourceVersion") {
        if rv.parse::<u64>().is_err() {
            return Err(ApiError::bad_request(format!(
                "resourceVersion: Invalid value: {rv:?}: strconv.ParseUint: parsing {rv:?}: invalid syntax"
            )));
        }
    }
    Ok(ListOptions {
        label_selector: label_selector(req)?,
        field_selector: req
            .query
            .non_empty("fieldSelector")
            .map(|s| FieldSelector::parse(s, rt))
            .transpose()?,
        limit: req
            .query
            .int("limit")?
            .filter(|n| *n > 0)
            .map(|n| n as usize),
        continue_token: req.query.non_empty("continue").map(str::to_string),
    })
}

fn label_selector(req: &Req) -> Result<Option<LabelSelector>> {
    req.query
        .non_empty("labelSelector")
        .map(|s| {
            LabelSelector::parse(s)
                .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))
        })
        .transpose()
}

// ----- rendering -----

/// The object as served at the requested version (conversion `None` rewrites `apiVersion`;
/// CRDs read through `apiextensions.k8s.io/v1beta1` are shown in that form).
fn served_bytes(t: &Target<'_>, obj: &Bytes) -> Bytes {
    let rt = &t.rt;
    if !t.legacy_crd && (!rt.custom || rt.version == rt.storage_version) {
        return obj.clone();
    }
    Bytes::from(serde_json::to_vec(&served_value(t, obj)).unwrap_or_default())
}

fn served_value(t: &Target<'_>, obj: &Bytes) -> Value {
    let rt = &t.rt;
    let mut v: Value = serde_json::from_slice(obj).unwrap_or(Value::Null);
    if t.legacy_crd {
        return crd_as_v1beta1(v);
    }
    if rt.custom && rt.version != rt.storage_version && v.is_object() {
        v["apiVersion"] = json!(rt.api_version());
    }
    v
}

/// A stored (v1) CustomResourceDefinition in the `apiextensions.k8s.io/v1beta1` form, so that
/// `kubectl apply` of an old manifest computes its patches against the shape it sent:
/// `spec.version` names the first version, printer columns use `JSONPath`, settings shared
/// by every version (`validation`, `subresources`, `additionalPrinterColumns`) sit at the top
/// level, and `preserveUnknownFields` is explicit.
pub(super) fn crd_as_v1beta1(mut v: Value) -> Value {
    if !v.is_object() {
        return v;
    }
    v["apiVersion"] = json!("apiextensions.k8s.io/v1beta1");
    let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) else {
        return v;
    };
    if let Some(versions) = spec.get_mut("versions").and_then(Value::as_array_mut) {
        for ver in versions.iter_mut() {
            let Some(cols) = ver
                .get_mut("additionalPrinterColumns")
                .and_then(Value::as_array_mut)
            else {
                continue;
            };
            for col in cols.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(p) = col.remove("jsonPath") {
                    col.insert("JSONPath".to_string(), p);
                }
            }
        }
    }
    // Settings every version shares move to the top level, as kube-apiserver converts them.
    for (per_version, top) in [
        ("schema", "validation"),
        ("subresources", "subresources"),
        ("additionalPrinterColumns", "additionalPrinterColumns"),
    ] {
        let Some(versions) = spec.get_mut("versions").and_then(Value::as_array_mut) else {
            break;
        };
        let first = versions.first().and_then(|v| v.get(per_version)).cloned();
        let shared = first.is_some()
            && versions
                .iter()
                .all(|v| v.get(per_version) == first.as_ref());
        if let (true, Some(value)) = (shared, first) {
            for ver in versions.iter_mut().filter_map(Value::as_object_mut) {
                ver.remove(per_version);
            }
            spec.insert(top.to_string(), value);
        }
    }
    let first = spec
        .get("versions")
        .and_then(|vs| vs.get(0))
        .and_then(|v| v.get("name"))
        .cloned();
    if let Some(first) = first {
        spec.insert("version".to_string(), first);
    }
    spec.entry("preserveUnknownFields").or_insert(json!(false));
    v
}

fn partial_metadata(v: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": v.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

fn include_object(req: &Req) -> Result<IncludeObject> {
    IncludeObject::from_query(req.query.get("includeObject").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(e.to_string()))
}

/// One object as the client asked for it.
fn object_response(
    t: &Target<'_>,
    status: StatusCode,
    obj: &Obj,
    req: &Req,
) -> Result<Response<Body>> {
    let rt = &t.rt;
    match media::response_shape(req.header(ACCEPT), false) {
        Shape::Object => Ok(bytes_response(
            status,
            "application/json",
            served_bytes(t, obj.json()),
        )),
        Shape::Metadata => Ok(json(
            status,
            &partial_metadata(&served_value(t, obj.json())),
        )),
        Shape::Table => {
            let v = served_value(t, obj.json());
            let mut t = table::of_type(rt, std::slice::from_ref(&v), include_object(req)?);
            if let Some(rv) = v.pointer("/metadata/resourceVersion") {
                t["metadata"]["resourceVersion"] = rv.clone();
            }
            let mut resp = json(status, &t);
            resp.headers_mut().insert(
                CONTENT_TYPE,
                http::HeaderValue::from_static(media::TABLE_CONTENT_TYPE),
            );
            Ok(resp)
        }
    }
}

fn list_metadata(
    resource_version: u64,
    continue_token: Option<&str>,
    remaining: Option<u64>,
) -> Value {
    let mut meta = json!({"resourceVersion": resource_version.to_string()});
    if let Some(c) = continue_token.filter(|c| !c.is_empty()) {
        meta["continue"] = json!(c);
    }
    if let Some(n) = remaining {
        meta["remainingItemCount"] = json!(n);
    }
    meta
}

/// A list in the requested shape. Plain lists are spliced from the stored JSON without reparsing.
fn list_response(t: &Target<'_>, items: &[Obj], meta: Value, req: &Req) -> Result<Response<Body>> {
    let rt = &t.rt;
    match media::response_shape(req.header(ACCEPT), true) {
        Shape::Object => {
            let head =
                json!({"kind": rt.list_kind, "apiVersion": rt.api_version(), "metadata": meta});
            let head = serde_json::to_vec(&head).unwrap_or_default();
            // Replace the closing brace with `,"items":[...]}`.
            let mut out = Vec::with_capacity(
                head.len() + items.iter().map(|o| o.json().len() + 1).sum::<usize>() + 16,
            );
            out.extend_from_slice(&head[..head.len().saturating_sub(1)]);
            out.extend_from_slice(b",\"items\":[");
            for (i, o) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(&served_bytes(t, o.json()));
            }
            out.extend_from_slice(b"]}");
            Ok(bytes_response(
                StatusCode::OK,
                "application/json",
                Bytes::from(out),
            ))
        }
        Shape::Metadata => {
            let items: Vec<Value> = items
                .iter()
                .map(|o| partial_metadata(&served_value(t, o.json())))
                .collect();
            Ok(json(
                StatusCode::OK,
                &json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "items": items}),
            ))
        }
        Shape::Table => {
            let values: Vec<Value> = items.iter().map(|o| served_value(t, o.json())).collect();
            let mut t = table::of_type(rt, &values, include_object(req)?);
            t["metadata"] = meta;
            let mut resp = json(StatusCode::OK, &t);
            resp.headers_mut().insert(
                CONTENT_TYPE,
                http::HeaderValue::from_static(media::TABLE_CONTENT_TYPE),
            );
            Ok(resp)
        }
    }
}

// ----- verbs -----

fn list(t: &Target<'_>, req: &Req) -> Result<Response<Body>> {
    let opts = list_options(&t.rt, req)?;
    let result = t.state.store.list(&t.rt, t.ns(), &opts)?;
    let meta = list_metadata(
        result.resource_version,
        result.continue_token.as_deref(),
        result.remaining_item_count,
    );
    list_response(t, &result.items, meta, req)
}

fn get(t: &Target<'_>, name: &str, part: Part, req: &Req) -> Result<Response<Body>> {
    let obj = t.state.store.get(&t.rt, t.ns(), name)?;
    if part == Part::Scale {
        return Ok(json(StatusCode::OK, &scale_of(&t.rt, &obj.to_value())?));
    }
    object_response(t, StatusCode::OK, &obj, req)
}

fn start_watch(
    t: &Target<'_>,
    name: Option<&str>,
    req: &Req,
    info: &RequestInfo,
) -> Result<Response<Body>> {
    let mut field_selector = req
        .query
        .non_empty("fieldSelector")
        .map(|s| FieldSelector::parse(s, &t.rt))
        .transpose()?;
    if let Some(name) = name {
        // Watching one object by URL is a watch with a name field selector.
        field_selector
            .get_or_insert_with(FieldSelector::default)
            .requirements
            .push(("metadata.name".to_string(), name.to_string(), false));
    }
    let opts = WatchOptions {
        resource_version: req.query.get("resourceVersion").map(str::to_string),
        label_selector: label_selector(req)?,
        field_selector,
        send_initial_events: req.query.bool("sendInitialEvents")?,
        allow_bookmarks: req.query.bool("allowWatchBookmarks")?,
    };
    let timeout = req
        .query
        .int("timeoutSeconds")?
        .filter(|s| *s > 0)
        .map(|s| s as u64);
    let shape = match media::response_shape(req.header(ACCEPT), false) {
        Shape::Table => watch::EventShape::Table(include_object(req)?),
        Shape::Metadata => watch::EventShape::Metadata,
        Shape::Object => watch::EventShape::Object,
    };
    watch::serve(
        t.state,
        Arc::clone(&t.rt),
        t.ns(),
        opts,
        timeout,
        shape,
        info,
    )
}

async fn create(t: &Target<'_>, req: &mut Req) -> Result<Response<Body>> {
    let body = req.read_body().await?;
    let obj = decode_object(req, &body)?;
    let mut obj = convert_legacy(t, obj)?;
    check_object(t, &mut obj)?;
    let opts = write_options(req)?;
    let created = t.state.store.create(&t.rt, t.ns(), obj, &opts)?;
    object_response(t, StatusCode::CREATED, &created, req)
}

fn check_name(obj: &Value, name: &str) -> Result<()> {
    let body_name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if body_name != name {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({body_name}) does not match the name on the URL ({name})"
        )));
    }
    Ok(())
}

async fn update(t: &Target<'_>, name: &str, part: Part, req: &mut Req) -> Result<Response<Body>> {
    let body = req.read_body().await?;
    let obj = decode_object(req, &body)?;
    let opts = write_options(req)?;
    if part == Part::Scale {
        return update_scale(t, name, obj, &opts);
    }
    let mut obj = convert_legacy(t, obj)?;
    check_object(t, &mut obj)?;
    check_name(&obj, name)?;
    let sub = if part == Part::Status {
        Subresource::Status
    } else {
        Subresource::Main
    };
    let updated = t.state.store.update(&t.rt, t.ns(), name, obj, sub, &opts)?;
    object_response(t, StatusCode::OK, &updated, req)
}

async fn patch(t: &Target<'_>, name: &str, part: Part, req: &mut Req) -> Result<Response<Body>> {
    let force = req.query.bool("force")?;
    let patch_type = media::patch_type(req.header(CONTENT_TYPE), force)?;
    let body = req.read_body().await?;
    let format = if matches!(patch_type, PatchType::Apply { .. }) {
        BodyFormat::Yaml
    } else {
        BodyFormat::Json
    };
    let patch = media::decode_text(&body, format)?;
    let opts = write_options(req)?;
    if let PatchType::Apply { .. } = patch_type {
        if opts.field_manager.is_none() {
            return Err(ApiError::invalid(
                "meta.k8s.io",
                "PatchOptions",
                "",
                &[(
                    "fieldManager",
                    "Required value: is required for apply patch".to_string(),
                )],
            ));
        }
        if !patch.is_object() {
            return Err(ApiError::bad_request("the apply patch must be an object"));
        }
    }
    if patch_type == PatchType::Strategic && t.rt.custom {
        return Err(ApiError::unsupported_media_type(
            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
        ));
    }
    if part == Part::Scale {
        return patch_scale(t, name, &patch_type, &patch, &opts);
    }
    if t.legacy_crd {
        return patch_legacy_crd(t, name, &patch_type, &patch, &opts, req);
    }
    let sub = if part == Part::Status {
        Subresource::Status
    } else {
        Subresource::Main
    };
    let (obj, created) =
        t.state
            .store
            .patch(&t.rt, t.ns(), name, patch_type, &patch, sub, &opts)?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    object_response(t, status, &obj, req)
}

/// A patch sent through `apiextensions.k8s.io/v1beta1`: applied to the stored CRD in its
/// v1beta1 form, converted back to v1 and written with the read version as a precondition.
fn patch_legacy_crd(
    t: &Target<'_>,
    name: &str,
    patch_type: &PatchType,
    patch: &Value,
    opts: &WriteOptions,
    req: &Req,
) -> Result<Response<Body>> {
    let current = t.state.store.get(&t.rt, None, name)?.to_value();
    let mut doc = crd_as_v1beta1(current.clone());
    apply_client_patch(&mut doc, patch_type, patch)?;
    let mut doc = crate::crd::convert_v1beta1_to_v1(doc)?;
    doc["apiVersion"] = json!("apiextensions.k8s.io/v1");
    if patch.pointer("/metadata/resourceVersion").is_none() {
        doc["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
    }
    let updated = t
        .state
        .store
        .update(&t.rt, None, name, doc, Subresource::Main, opts)?;
    object_response(t, StatusCode::OK, &updated, req)
}

/// Applies a merge or JSON patch to a document in this layer (legacy CRDs, Scale objects).
fn apply_client_patch(doc: &mut Value, patch_type: &PatchType, patch: &Value) -> Result<()> {
    match patch_type {
        PatchType::Merge | PatchType::Strategic => {
            metacontroller_merge::merge_patch::apply(doc, patch);
            Ok(())
        }
        PatchType::Json => metacontroller_merge::json_patch::apply(doc, patch)
            .map_err(|e| ApiError::new(422, "Invalid", format!("the JSON patch could not be applied: {e}"))),
        PatchType::Apply { .. } => Err(ApiError::unsupported_media_type(
            "apply patches are not supported on this endpoint - accepted media types include: application/json-patch+json, application/merge-patch+json",
        )),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct DeleteOptionsBody {
    propagation_policy: Option<String>,
    orphan_dependents: Option<bool>,
    grace_period_seconds: Option<i64>,
    preconditions: Option<Preconditions>,
    dry_run: Option<Vec<String>>,
}

#[derive(serde::Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Preconditions {
    uid: Option<String>,
    resource_version: Option<String>,
}

/// DeleteOptions from the body (kubectl: `{"propagationPolicy":"Background"}`, kube-rs: `{}`,
/// Python: none) and the query.
async fn delete_options(req: &mut Req) -> Result<DeleteOptions> {
    let body = req.read_body().await?;
    let mut b: DeleteOptionsBody = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteOptionsBody::default()
    } else {
        let v = match media::body_format(req.header(CONTENT_TYPE))? {
            BodyFormat::Protobuf => crate::protobuf::decode(&body)
                .map_err(|e| ApiError::unsupported_media_type(e.to_string()))?,
            f => media::decode_text(&body, f)?,
        };
        serde_json::from_value(v)
            .map_err(|e| ApiError::bad_request(format!("invalid DeleteOptions: {e}")))?
    };
    if let Some(p) = req.query.non_empty("propagationPolicy") {
        b.propagation_policy = Some(p.to_string());
    }
    if req.query.get("orphanDependents").is_some() {
        b.orphan_dependents = Some(req.query.bool("orphanDependents")?);
    }
    if let Some(g) = req.query.int("gracePeriodSeconds")? {
        b.grace_period_seconds = Some(g);
    }
    let propagation = match (b.propagation_policy.as_deref(), b.orphan_dependents) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid("meta.k8s.io", "DeleteOptions", "", &[(
                "propagationPolicy",
                "Invalid value: orphanDependents and propagationPolicy cannot both be set".to_string(),
            )]))
        }
        (Some("Orphan"), None) | (None, Some(true)) => Some(Propagation::Orphan),
        (Some("Background"), None) => Some(Propagation::Background),
        (Some("Foreground"), None) => Some(Propagation::Foreground),
        (None, _) => None,
        (Some(other), None) => {
            return Err(ApiError::invalid("meta.k8s.io", "DeleteOptions", "", &[(
                "propagationPolicy",
                format!("Unsupported value: {other:?}: supported values: \"Foreground\", \"Background\", \"Orphan\", \"nil\""),
            )]))
        }
    };
    let mut dry_run = req.query.dry_run()?;
    for d in b.dry_run.iter().flatten() {
        match d.as_str() {
            "All" => dry_run = true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "Invalid dry run value: {other:?}: supported values: \"All\""
                )))
            }
        }
    }
    let pre = b.preconditions.unwrap_or_default();
    Ok(DeleteOptions {
        propagation,
        precondition_uid: pre.uid.filter(|s| !s.is_empty()),
        precondition_resource_version: pre.resource_version.filter(|s| !s.is_empty()),
        dry_run,
        grace_period_seconds: b.grace_period_seconds,
    })
}

async fn delete(t: &Target<'_>, name: &str, req: &mut Req) -> Result<Response<Body>> {
    let opts = delete_options(req).await?;
    match t.state.store.delete(&t.rt, t.ns(), name, &opts)? {
        DeleteOutcome::Pending(obj) => object_response(t, StatusCode::OK, &obj, req),
        // Pods answer with the object itself, everything else with a Status, as kube-apiserver.
        DeleteOutcome::Deleted(obj) if t.rt.group.is_empty() && t.rt.plural == "pods" => {
            object_response(t, StatusCode::OK, &obj, req)
        }
        DeleteOutcome::Deleted(obj) => {
            let mut details = json!({"name": name, "kind": t.rt.plural, "uid": obj.0.uid});
            if !t.rt.group.is_empty() {
                details["group"] = json!(t.rt.group);
            }
            Ok(json(
                StatusCode::OK,
                &json!({
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Success",
                    "details": details,
                }),
            ))
        }
    }
}

async fn delete_collection(t: &Target<'_>, req: &mut Req) -> Result<Response<Body>> {
    let list = list_options(&t.rt, req)?;
    let opts = delete_options(req).await?;
    let items = t
        .state
        .store
        .delete_collection(&t.rt, t.ns(), &list, &opts)?;
    let meta = list_metadata(t.state.store.current_resource_version(), None, None);
    list_response(t, &items, meta, req)
}

/// The reviews: access is always allowed, rules allow everything, and the user is the one
/// the kubeconfig names.
async fn review(rt: &ResourceType, req: &mut Req) -> Result<Response<Body>> {
    let body = req.read_body().await?;
    // The answer does not depend on the request, so a review whose protobuf encoding the
    // decoder does not know is answered from its type alone.
    let unknown_protobuf = media::body_format(req.header(CONTENT_TYPE))? == BodyFormat::Protobuf
        && matches!(
            crate::protobuf::decode(&body),
            Err(crate::protobuf::ProtobufError::UnsupportedKind { .. })
        );
    let mut obj = if unknown_protobuf {
        json!({"spec": {}})
    } else {
        decode_object(req, &body)?
    };
    let status = match rt.plural.as_str() {
        "selfsubjectaccessreviews" => {
            let attrs = ["/spec/resourceAttributes", "/spec/nonResourceAttributes"];
            let given = attrs
                .iter()
                .filter(|p| obj.pointer(p).is_some_and(|v| !v.is_null()))
                .count();
            if given != 1 && !unknown_protobuf {
                return Err(ApiError::invalid(AUTHORIZATION_GROUP, &rt.kind, "", &[(
                    "spec.resourceAttributes",
                    "Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified"
                        .to_string(),
                )]));
            }
            json!({"allowed": true, "reason": "the embedded API server authorizes every authenticated request"})
        }
        "selfsubjectrulesreviews" => json!({
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": false,
        }),
        _ => json!({"userInfo": {
            "username": super::CONTEXT_NAME,
            "groups": ["system:masters", "system:authenticated"],
        }}),
    };
    obj["apiVersion"] = json!(rt.api_version());
    obj["kind"] = json!(rt.kind);
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    obj["status"] = status;
    Ok(json(StatusCode::CREATED, &obj))
}

/// `serviceaccounts/{name}/token` (`kubectl create token`): the service account must exist;
/// the token issued is the server's own bearer token, as every client here acts as the
/// cluster administrator.
async fn token_request(t: &Target<'_>, name: &str, req: &mut Req) -> Result<Response<Body>> {
    let body = req.read_body().await?;
    let mut obj = decode_object(req, &body)?;
    t.state.store.get(&t.rt, t.ns(), name)?;
    let seconds = match obj.pointer("/spec/expirationSeconds") {
        None | Some(Value::Null) => 3600,
        Some(v) => v.as_i64().unwrap_or(0),
    };
    if seconds < 600 {
        return Err(ApiError::invalid(
            discovery::AUTHENTICATION_GROUP,
            "TokenRequest",
            name,
            &[(
                "spec.expirationSeconds",
                format!(
                    "Invalid value: {seconds}: may not specify a duration less than 10 minutes"
                ),
            )],
        ));
    }
    let now = chrono::Utc::now();
    let expires = now + chrono::Duration::seconds(seconds);
    let fmt =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    obj["apiVersion"] = json!("authentication.k8s.io/v1");
    obj["kind"] = json!("TokenRequest");
    obj["metadata"] = json!({"name": name, "namespace": t.ns(), "creationTimestamp": fmt(now)});
    obj["spec"]["expirationSeconds"] = json!(seconds);
    let audiences = obj
        .pointer("/spec/audiences")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if !audiences {
        obj["spec"]["audiences"] = json!(["https://kubernetes.default.svc.cluster.local"]);
    }
    obj["status"] = json!({
        "token": t.state.token.clone().unwrap_or_default(),
        "expirationTimestamp": fmt(expires),
    });
    let mut resp = json(StatusCode::CREATED, &obj);
    // Said where the user sees it (kubectl prints warnings): the token is not the service
    // account's own.
    resp.headers_mut().insert(
        http::header::WARNING,
        http::HeaderValue::from_static(NO_AUTHORIZATION_WARNING),
    );
    Ok(resp)
}

/// The `Warning` header of a TokenRequest's answer.
const NO_AUTHORIZATION_WARNING: &str = "299 - \"this development cluster has no authorization: the token issued is the administrator's own, whatever the service account's roles\"";

/// `PUT namespaces/{name}/finalize`: replaces the namespace's `spec.finalizers` (the way to
/// release a namespace stuck terminating), with the body's resourceVersion as a precondition.
async fn finalize(t: &Target<'_>, name: &str, req: &mut Req) -> Result<Response<Body>> {
    let body = req.read_body().await?;
    let mut obj = decode_object(req, &body)?;
    check_object(t, &mut obj)?;
    check_name(&obj, name)?;
    let opts = write_options(req)?;
    let finalizers = obj
        .pointer("/spec/finalizers")
        .cloned()
        .unwrap_or_else(|| json!([]));
    let mut patch = json!({"spec": {"finalizers": finalizers}});
    if let Some(rv) = obj
        .pointer("/metadata/resourceVersion")
        .filter(|rv| rv.as_str().is_some_and(|s| !s.is_empty()))
    {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    let (updated, _) = t.state.store.patch(
        &t.rt,
        None,
        name,
        PatchType::Merge,
        &patch,
        Subresource::Main,
        &opts,
    )?;
    object_response(t, StatusCode::OK, &updated, req)
}

// ----- pods/log -----

/// The names of a pod's containers in the order kube-apiserver visits them: init containers,
/// containers, ephemeral containers.
fn pod_container_names(pod: &Value) -> Vec<String> {
    ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .map(str::to_string)
        .collect()
}

/// The container a log request reads: the `container` parameter, which must name one of the
/// pod's containers, or else the pod's only container (kube-apiserver's rules and messages).
fn log_container(pod: &Value, name: &str, requested: Option<&str>) -> Result<String> {
    if let Some(c) = requested {
        if !pod_container_names(pod).iter().any(|n| n == c) {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {name}"
            )));
        }
        return Ok(c.to_string());
    }
    let containers = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    match containers {
        [only] => Ok(only
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()),
        [] => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}"
        ))),
        _ => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            pod_container_names(pod).join(" ")
        ))),
    }
}

/// `GET pods/{name}/log`. Nothing runs pods here, so every pod is answered as kube-apiserver
/// answers (relaying the kubelet) for a scheduled pod whose containers have not started: a 400
/// saying the container is waiting, with the waiting reason from the pod's status if one is
/// recorded there (`ContainerCreating` otherwise). A container whose status says it ran has
/// no recorded output: an empty log. A [`PodLogs`](crate::podlogs::PodLogs) provider, when
/// installed and holding a record of the container, answers instead.
fn pod_log(t: &Target<'_>, name: &str, req: &Req) -> Result<Response<Body>> {
    let pod = t.state.store.get(&t.rt, t.ns(), name)?.to_value();
    let container = log_container(&pod, name, req.query.non_empty("container"))?;
    if let Some(provider) = t.state.pod_logs.get() {
        let request = LogRequest {
            namespace: t.ns().unwrap_or_default().to_string(),
            pod: name.to_string(),
            uid: pod
                .pointer("/metadata/uid")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            container: container.clone(),
            previous: req.query.bool("previous")?,
            follow: req.query.bool("follow")?,
            tail_lines: req.query.int("tailLines")?,
            limit_bytes: req.query.int("limitBytes")?,
        };
        if let Some(rx) = provider.open(&request) {
            let mut resp =
                Response::new(http_body_util::BodyExt::boxed(super::ChannelBody::new(rx)));
            resp.headers_mut()
                .insert(CONTENT_TYPE, http::HeaderValue::from_static("text/plain"));
            return Ok(resp);
        }
    }
    let status = [
        "containerStatuses",
        "initContainerStatuses",
        "ephemeralContainerStatuses",
    ]
    .iter()
    .filter_map(|k| {
        pod.pointer(&format!("/status/{k}"))
            .and_then(Value::as_array)
    })
    .flatten()
    .find(|s| s.get("name").and_then(Value::as_str) == Some(container.as_str()));
    if req.query.bool("previous")? {
        let previous = status
            .and_then(|s| s.pointer("/lastState/terminated/containerID"))
            .and_then(Value::as_str)
            .is_some_and(|id| !id.is_empty());
        if !previous {
            return Err(ApiError::bad_request(format!(
                "previous terminated container {container:?} in pod {name:?} not found"
            )));
        }
        return Ok(bytes_response(StatusCode::OK, "text/plain", Bytes::new()));
    }
    let state = status.and_then(|s| s.get("state"));
    let ran = state.is_some_and(|s| s.get("running").is_some() || s.get("terminated").is_some())
        || status.is_some_and(|s| s.pointer("/lastState/terminated").is_some());
    if ran {
        return Ok(bytes_response(StatusCode::OK, "text/plain", Bytes::new()));
    }
    let reason = state
        .and_then(|s| s.pointer("/waiting/reason"))
        .and_then(Value::as_str)
        .filter(|r| !r.is_empty())
        .unwrap_or("ContainerCreating");
    Err(ApiError::bad_request(format!(
        "container {container:?} in pod {name:?} is waiting to start: {reason}"
    )))
}

// ----- scale -----

fn path_get<'v>(obj: &'v Value, path: &str) -> Option<&'v Value> {
    let mut cur = obj;
    for seg in path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
    {
        cur = cur.get(seg)?;
    }
    Some(cur)
}

/// A merge patch setting the value at a dotted path.
fn path_patch(path: &str, value: Value) -> Value {
    let segs: Vec<&str> = path
        .trim_start_matches('.')
        .split('.')
        .filter(|s| !s.is_empty())
        .collect();
    segs.iter().rev().fold(value, |acc, seg| {
        let mut m = Map::new();
        m.insert((*seg).to_string(), acc);
        Value::Object(m)
    })
}

/// The `autoscaling/v1` Scale of an object.
fn scale_of(rt: &ResourceType, obj: &Value) -> Result<Value> {
    let (spec_path, status_path, selector_path) = scale_paths(rt).ok_or_else(not_found)?;
    let spec_replicas = path_get(obj, &spec_path)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status_replicas = path_get(obj, &status_path)
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = selector_path
        .and_then(|p| path_get(obj, &p).cloned())
        .and_then(|s| match s {
            Value::String(s) => Some(s),
            Value::Object(m)
                if m.contains_key("matchLabels") || m.contains_key("matchExpressions") =>
            {
                LabelSelector::from_json(&Value::Object(m))
                    .ok()
                    .map(|s| s.to_string())
            }
            Value::Object(m) => LabelSelector::from_map(&m).ok().map(|s| s.to_string()),
            _ => None,
        });
    let meta = obj.get("metadata").cloned().unwrap_or_else(|| json!({}));
    let mut scale_meta = Map::new();
    for k in [
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "creationTimestamp",
    ] {
        if let Some(v) = meta.get(k) {
            scale_meta.insert(k.to_string(), v.clone());
        }
    }
    let mut status = json!({"replicas": status_replicas});
    if let Some(s) = selector.filter(|s| !s.is_empty()) {
        status["selector"] = json!(s);
    }
    Ok(json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": scale_meta,
        "spec": {"replicas": spec_replicas},
        "status": status,
    }))
}

/// Writes `spec.replicas` of a Scale to the object, with the Scale's resourceVersion (if any)
/// as a precondition.
fn write_replicas(
    t: &Target<'_>,
    name: &str,
    replicas: i64,
    rv: Option<&str>,
    opts: &WriteOptions,
) -> Result<Response<Body>> {
    let (spec_path, _, _) = scale_paths(&t.rt).ok_or_else(not_found)?;
    let mut patch = path_patch(&spec_path, json!(replicas));
    if let Some(rv) = rv.filter(|rv| !rv.is_empty()) {
        patch["metadata"] = json!({"resourceVersion": rv});
    }
    let (obj, _) = t.state.store.patch(
        &t.rt,
        t.ns(),
        name,
        PatchType::Merge,
        &patch,
        Subresource::Main,
        opts,
    )?;
    Ok(json(StatusCode::OK, &scale_of(&t.rt, &obj.to_value())?))
}

fn replicas_of(scale: &Value) -> Result<i64> {
    let r = scale
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    if r < 0 {
        return Err(ApiError::invalid(
            "autoscaling",
            "Scale",
            "",
            &[(
                "spec.replicas",
                format!("Invalid value: {r}: must be greater than or equal to 0"),
            )],
        ));
    }
    Ok(r)
}

fn update_scale(
    t: &Target<'_>,
    name: &str,
    scale: Value,
    opts: &WriteOptions,
) -> Result<Response<Body>> {
    check_name(&scale, name)?;
    let rv = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    write_replicas(t, name, replicas_of(&scale)?, rv.as_deref(), opts)
}

fn patch_scale(
    t: &Target<'_>,
    name: &str,
    patch_type: &PatchType,
    patch: &Value,
    opts: &WriteOptions,
) -> Result<Response<Body>> {
    let obj = t.state.store.get(&t.rt, t.ns(), name)?;
    let mut scale = scale_of(&t.rt, &obj.to_value())?;
    let current_rv = scale
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    apply_client_patch(&mut scale, patch_type, patch)?;
    let rv = patch
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .map(str::to_string)
        .or(current_rv);
    write_replicas(t, name, replicas_of(&scale)?, rv.as_deref(), opts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rt(group: &str, plural: &str, kind: &str, custom: bool) -> ResourceType {
        let mut rt = discovery::self_subject_access_review();
        rt.group = group.into();
        rt.plural = plural.into();
        rt.kind = kind.into();
        rt.custom = custom;
        rt.namespaced = true;
        rt
    }

    #[test]
    fn builtin_scale_paths() {
        assert!(scale_served(&builtin("apps", "deployments")));
        assert!(!scale_served(&builtin("", "configmaps")));
        let mut w = rt("example.com", "widgets", "Widget", true);
        assert!(!scale_served(&w));
        w.scale_subresource = Some(
            json!({"specReplicasPath": ".spec.size", "statusReplicasPath": ".status.size", "labelSelectorPath": ".status.selector"}),
        );
        assert!(scale_served(&w));
    }

    fn builtin(group: &str, plural: &str) -> ResourceType {
        crate::builtins::builtin_types()
            .into_iter()
            .find(|t| t.group == group && t.plural == plural)
            .expect("built-in type")
    }

    #[test]
    fn builtin_scale_reports_the_spec_selector() {
        for (group, plural) in [
            ("apps", "deployments"),
            ("apps", "replicasets"),
            ("apps", "statefulsets"),
        ] {
            let t = builtin(group, plural);
            let obj = json!({
                "metadata": {"name": "d"},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"},
                    "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]}},
                "status": {"replicas": 1, "selector": "stale=1"},
            });
            let s = scale_of(&t, &obj).expect("scale");
            assert_eq!(
                s["status"],
                json!({"replicas": 1, "selector": "app=d,tier in (a,b)"}),
                "{plural}"
            );
        }
    }

    #[test]
    fn replication_controller_selectors_are_maps() {
        let rc = builtin("", "replicationcontrollers");
        let obj =
            json!({"metadata": {"name": "r"}, "spec": {"replicas": 1, "selector": {"app": "r"}}});
        assert_eq!(
            scale_of(&rc, &obj).expect("scale")["status"]["selector"],
            "app=r"
        );
    }

    #[test]
    fn scale_from_object() {
        let d = builtin("apps", "deployments");
        let obj = json!({
            "metadata": {"name": "d", "namespace": "ns", "resourceVersion": "7", "labels": {"x": "y"}},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "d"}}},
            "status": {"replicas": 2},
        });
        let s = scale_of(&d, &obj).expect("scale");
        assert_eq!(s["spec"]["replicas"], 3);
        assert_eq!(s["status"], json!({"replicas": 2, "selector": "app=d"}));
        assert_eq!(
            s["metadata"],
            json!({"name": "d", "namespace": "ns", "resourceVersion": "7"})
        );
    }

    #[test]
    fn log_container_choice() {
        let one = json!({"spec": {"containers": [{"name": "c"}]}});
        assert_eq!(log_container(&one, "p", None).expect("only"), "c");
        assert_eq!(log_container(&one, "p", Some("c")).expect("named"), "c");
        let bad = log_container(&one, "p", Some("x")).expect_err("unknown");
        assert_eq!(
            (bad.code, bad.message.as_str()),
            (400, "container x is not valid for pod p")
        );
        let two = json!({"spec": {"initContainers": [{"name": "init"}],
            "containers": [{"name": "a"}, {"name": "b"}]}});
        let e = log_container(&two, "p", None).expect_err("ambiguous");
        assert_eq!(
            e.message,
            "a container name must be specified for pod p, choose one of: [init a b]"
        );
        assert_eq!(
            log_container(&two, "p", Some("init")).expect("init"),
            "init"
        );
        let none = json!({"spec": {}});
        assert_eq!(
            log_container(&none, "p", None).expect_err("none").message,
            "a container name must be specified for pod p"
        );
    }

    #[test]
    fn dotted_paths() {
        assert_eq!(
            path_patch(".spec.replicas", json!(2)),
            json!({"spec": {"replicas": 2}})
        );
        let v = json!({"a": {"b": 1}});
        assert_eq!(path_get(&v, ".a.b"), Some(&json!(1)));
        assert_eq!(path_get(&v, ".a.c"), None);
    }
}
