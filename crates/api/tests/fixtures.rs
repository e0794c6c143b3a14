//! Realistic manifests deserialize into the API types, round-trip without losing a field,
//! and fit the generated CRD schemas (so an API server would prune nothing from them).

use std::time::Duration;

use metacontroller_api::{
    crds, CompositeController, ControllerRevision, DecoratorController, HookVersion,
    ResponseUnmarshallMode, UpdateMethod,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Deserializes `raw` into `T` and checks that serializing gives `raw` back.
fn round_trip<T: DeserializeOwned + Serialize>(raw: &Value) -> T {
    let typed: T = serde_json::from_value(raw.clone()).expect("fixture deserializes");
    let back = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(&back, raw, "round trip changed the manifest");
    typed
}

fn schema_for_kind(kind: &str) -> Value {
    crds()
        .into_iter()
        .find(|c| c["spec"]["names"]["kind"] == kind)
        .map(|c| c["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone())
        .unwrap_or_else(|| panic!("no CRD for {kind}"))
}

/// Paths in `value` that `schema` does not describe (the API server would prune or reject
/// them), and type mismatches.
fn misfits(value: &Value, schema: &Value, path: &str, out: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let ok = match value {
        Value::Object(_) => ty == "object",
        Value::Array(_) => ty == "array",
        Value::String(_) => ty == "string",
        Value::Bool(_) => ty == "boolean",
        Value::Number(n) => ty == "number" || (ty == "integer" && (n.is_i64() || n.is_u64())),
        Value::Null => false,
    };
    if !ok {
        out.push(format!("{path}: {value} is not of type {ty:?}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            out.push(format!("{path}: {value} not in {allowed:?}"));
        }
    }
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                let child = format!("{path}.{k}");
                if child == ".metadata" {
                    continue; // validated by the API server itself
                }
                if let Some(s) = schema["properties"].get(k) {
                    misfits(v, s, &child, out);
                } else if let Some(s) = schema.get("additionalProperties") {
                    misfits(v, s, &child, out);
                } else {
                    out.push(format!("{child}: not in schema"));
                }
            }
            for r in schema["required"].as_array().into_iter().flatten() {
                if !map.contains_key(r.as_str().unwrap_or_default()) {
                    out.push(format!("{path}: missing required {r}"));
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                misfits(v, &schema["items"], &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

fn assert_fits_schema(raw: &Value) {
    let kind = raw["kind"].as_str().expect("fixture has a kind");
    let mut out = Vec::new();
    misfits(raw, &schema_for_kind(kind), "", &mut out);
    assert!(
        out.is_empty(),
        "{kind} fixture does not fit its CRD schema:\n{}",
        out.join("\n")
    );
}

#[test]
fn tutorial_controller() {
    let raw = fixture("hello-controller.yaml");
    let cc: CompositeController = round_trip(&raw);
    assert_fits_schema(&raw);
    assert_eq!(cc.name(), "hello-controller");
    assert!(cc.spec.generate_selector());
    assert_eq!(cc.spec.parent_resource.resource, "helloworlds");
    assert_eq!(
        cc.spec.child_resources[0].update_method(),
        UpdateMethod::Recreate
    );
    let sync = cc.spec.sync_hook().expect("sync hook");
    assert_eq!(sync.version(), HookVersion::V1);
    let webhook = sync.webhook.as_ref().expect("webhook");
    assert_eq!(
        webhook.url.as_deref(),
        Some("http://hello-controller.hello/sync")
    );
    assert_eq!(webhook.timeout_or_default(), Duration::from_secs(10));
}

#[test]
fn decorator_with_annotation_selector() {
    let raw = fixture("decorator-annotation-selector.yaml");
    let dc: DecoratorController = round_trip(&raw);
    assert_fits_schema(&raw);
    let rule = &dc.spec.resources[0];
    let ann = rule
        .annotation_selector
        .as_ref()
        .expect("annotationSelector");
    assert_eq!(
        ann.match_annotations
            .as_ref()
            .and_then(|m| m.get("service-per-pod/enabled")),
        Some(&"true".to_string())
    );
    assert_eq!(ann.match_expressions.as_ref().map(Vec::len), Some(2));
    assert_eq!(rule.ignore_status_changes, Some(true));
    assert_eq!(
        dc.spec.attachments[0].update_method(),
        UpdateMethod::InPlace
    );
    assert_eq!(dc.spec.resync_period(), Some(Duration::from_secs(60)));
    let sync = dc.spec.sync_hook().expect("sync");
    assert_eq!(sync.version(), HookVersion::V2);
    assert_eq!(
        sync.webhook.as_ref().map(|w| w.timeout_or_default()),
        Some(Duration::from_secs(5))
    );
    assert!(dc.spec.finalize_hook().is_some() && dc.spec.customize_hook().is_some());
}

#[test]
fn service_webhook_with_etag_and_timeout() {
    let raw = fixture("service-webhook.yaml");
    let cc: CompositeController = round_trip(&raw);
    assert_fits_schema(&raw);
    assert_eq!(cc.metadata.generation, Some(2));
    assert!(cc.metadata.extra.contains_key("creationTimestamp"));
    let sync = cc.spec.sync_hook().expect("sync");
    let w = sync.webhook.as_ref().expect("webhook");
    assert_eq!(w.timeout_or_default(), Duration::from_secs(90));
    let svc = w.service.as_ref().expect("service");
    assert_eq!(
        (svc.name.as_str(), svc.port, svc.protocol.as_deref()),
        ("catset-hooks", Some(8443), Some("https"))
    );
    let etag = w.etag.as_ref().expect("etag");
    assert_eq!(
        (
            etag.enabled,
            etag.cache_timeout_seconds,
            etag.cache_cleanup_seconds
        ),
        (Some(true), Some(60), Some(300))
    );
    assert_eq!(
        w.response_unmarshall_mode(sync.version()),
        ResponseUnmarshallMode::Strict
    );
    assert!(w
        .ca_bundle
        .as_ref()
        .and_then(|c| c.inline.as_ref())
        .is_some_and(|pem| pem.contains("BEGIN CERTIFICATE")));
    let finalize = cc
        .spec
        .finalize_hook()
        .and_then(|h| h.webhook.as_ref())
        .expect("finalize");
    assert_eq!(finalize.timeout_or_default(), Duration::from_millis(500));
    let pods = cc.spec.child_rule("v1", "pods").expect("pods");
    assert_eq!(pods.update_method(), UpdateMethod::RollingRecreate);
    let checks = &pods
        .update_strategy
        .as_ref()
        .and_then(|s| s.status_checks.as_ref())
        .expect("checks")
        .conditions;
    assert_eq!(checks.len(), 2);
    assert_eq!(checks[1].reason.as_deref(), Some("ProbeSucceeded"));
    assert_eq!(
        cc.spec
            .child_rule("v1", "persistentvolumeclaims")
            .map(|r| r.update_method()),
        Some(UpdateMethod::OnDelete)
    );
    let endpoint = &cc.spec.endpoint_configs[0];
    assert_eq!(endpoint.host, "catset-hooks.metacontroller.svc:8443");
    assert_eq!(
        endpoint.basic_auth.as_ref().map(|b| b.username_key()),
        Some("user")
    );
    assert_eq!(
        endpoint.client_tls.as_ref().map(|t| t.cert_key()),
        Some("client.crt")
    );
    assert_eq!(
        cc.spec
            .parent_resource
            .revision_history
            .as_ref()
            .map(|r| r.field_paths.clone()),
        Some(vec!["spec.template".to_string()])
    );
    assert!(cc
        .spec
        .hooks
        .as_ref()
        .is_some_and(|h| h.pre_update_child.is_some() && h.post_update_child.is_some()));
}

#[test]
fn controller_revision() {
    let raw = fixture("controller-revision.yaml");
    let rev: ControllerRevision = round_trip(&raw);
    assert_fits_schema(&raw);
    assert_eq!(rev.children[0].kind, "Pod");
    assert_eq!(
        rev.parent_patch["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(
        rev.metadata.owner_references.as_ref().map(Vec::len),
        Some(1)
    );
}

#[test]
fn schema_check_detects_pruned_fields() {
    // The checker itself must be able to fail.
    let mut raw = fixture("hello-controller.yaml");
    raw["spec"]["parentResource"]["unknownField"] = Value::from(1);
    raw["spec"]["childResources"][0]["updateStrategy"]["method"] = Value::from("Sometimes");
    let mut out = Vec::new();
    misfits(&raw, &schema_for_kind("CompositeController"), "", &mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    // And the types reject the invalid enum value.
    assert!(serde_json::from_value::<CompositeController>(raw).is_err());
}
