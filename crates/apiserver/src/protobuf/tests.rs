//! Tests for the protobuf body decoder.
//!
//! The fixtures are real request bodies recorded from kubectl 1.32 (see
//! `tests/fixtures/protobuf/capture.py`); each comes with kubectl's own JSON rendering of the
//! same object (`--dry-run=client -o json`), which the decoder must reproduce exactly, except
//! for `creationTimestamp: null`, which the decoder leaves out.

use serde_json::{json, Value};

use super::wire::encode::Msg;
use super::*;

macro_rules! fixture {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!("../../tests/fixtures/protobuf/", $name, ".pb")).as_slice(),
            include_str!(concat!("../../tests/fixtures/protobuf/", $name, ".json")),
        )
    };
}

const FIXTURES: &[(&str, &[u8], &str)] = &[
    fixture!("ns-hello"),
    fixture!("cm-from-file"),
    fixture!("cm-binary"),
    fixture!("secret-generic"),
    fixture!("secret-docker"),
    fixture!("sa"),
    fixture!("deployment"),
    fixture!("deployment-command"),
    fixture!("job"),
    fixture!("cronjob"),
    fixture!("service-clusterip"),
    fixture!("service-headless"),
    fixture!("service-nodeport"),
    fixture!("service-externalname"),
    fixture!("role"),
    fixture!("clusterrole"),
    fixture!("clusterrole-aggregate"),
    fixture!("rolebinding"),
    fixture!("clusterrolebinding"),
    fixture!("quota"),
    fixture!("priorityclass"),
    fixture!("pdb"),
    fixture!("ingress"),
];

/// Removes `"creationTimestamp": null` everywhere.
fn without_null_timestamps(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("creationTimestamp") == Some(&Value::Null) {
                map.remove("creationTimestamp");
            }
            map.values_mut().for_each(without_null_timestamps);
        }
        Value::Array(items) => items.iter_mut().for_each(without_null_timestamps),
        _ => {}
    }
}

fn fixture(name: &str) -> (&'static [u8], Value) {
    let (_, body, text) = FIXTURES
        .iter()
        .find(|(n, _, _)| *n == name)
        .unwrap_or_else(|| panic!("no fixture {name}"));
    let mut expected: Value = serde_json::from_str(text).expect("fixture JSON");
    without_null_timestamps(&mut expected);
    (body, expected)
}

#[test]
fn every_fixture_decodes_to_kubectls_json() {
    for (name, body, _) in FIXTURES {
        let (_, expected) = fixture(name);
        let got = decode(body).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got, expected, "{name}");
        // Go's field order is kept: kind and apiVersion first.
        let keys: Vec<&String> = got.as_object().expect("object").keys().take(2).collect();
        assert_eq!(keys, ["kind", "apiVersion"], "{name}");
    }
}

#[test]
fn namespace_fixture() {
    let (body, _) = fixture("ns-hello");
    assert_eq!(
        decode(body).ok(),
        Some(json!({
            "kind": "Namespace", "apiVersion": "v1",
            "metadata": {"name": "hello"}, "spec": {}, "status": {}
        }))
    );
}

#[test]
fn configmap_fixtures() {
    let (body, _) = fixture("cm-from-file");
    assert_eq!(
        decode(body).ok(),
        Some(json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "x", "namespace": "hello"},
            "data": {
                "a": "b",
                "sync.py": "import json\n\nprint(json.dumps({\"status\": {}}))\n"
            }
        }))
    );
    let (body, _) = fixture("cm-binary");
    assert_eq!(
        decode(body).ok(),
        Some(json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {"name": "bin", "namespace": "hello"},
            "binaryData": {"blob.bin": "AP8QgH8="}
        }))
    );
}

#[test]
fn secret_and_service_account_fixtures() {
    let (body, _) = fixture("secret-generic");
    assert_eq!(
        decode(body).ok(),
        Some(json!({
            "kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "creds", "namespace": "hello"},
            "data": {"password": "aHVudGVyMg==", "user": "YWRtaW4="},
            "type": "Opaque"
        }))
    );
    let (body, _) = fixture("sa");
    assert_eq!(
        decode(body).ok(),
        Some(json!({
            "kind": "ServiceAccount", "apiVersion": "v1",
            "metadata": {"name": "bot", "namespace": "hello"}
        }))
    );
}

#[test]
fn deployment_fixture() {
    let (body, _) = fixture("deployment");
    assert_eq!(
        decode(body).ok(),
        Some(json!({
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "namespace": "hello", "labels": {"app": "web"}},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx", "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {}
                    }]}
                },
                "strategy": {}
            },
            "status": {}
        }))
    );
}

#[test]
fn job_and_service_fixtures() {
    let (body, _) = fixture("job");
    let job = decode(body).expect("job");
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["command"],
        json!(["echo", "hi"])
    );
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    let (body, _) = fixture("service-clusterip");
    let svc = decode(body).expect("service");
    assert_eq!(
        svc["spec"]["ports"],
        json!([{"name": "80-8080", "protocol": "TCP", "port": 80, "targetPort": 8080}])
    );
    assert_eq!(svc["status"], json!({"loadBalancer": {}}));
}

#[test]
fn token_request_and_access_review_bodies() {
    let body = include_bytes!("../../tests/fixtures/protobuf/token.pb");
    let got = decode(body).expect("token request");
    assert_eq!(got["kind"], "TokenRequest");
    assert_eq!(got["apiVersion"], "authentication.k8s.io/v1");
    assert_eq!(got["spec"]["audiences"], json!(["api"]));
    assert_eq!(got["spec"]["expirationSeconds"], json!(600));

    let body = include_bytes!("../../tests/fixtures/protobuf/can-i.pb");
    let got = decode(body).expect("access review");
    assert_eq!(got["kind"], "SelfSubjectAccessReview");
    assert_eq!(
        got["spec"]["resourceAttributes"],
        json!({"namespace": "hello", "verb": "list", "resource": "pods"})
    );
}

/// `kind` and `apiVersion` wrapped in the `k8s\0` + `runtime.Unknown` envelope.
fn envelope(api_version: &str, kind: &str, raw: Msg) -> Vec<u8> {
    let unknown = Msg::new()
        .msg(1, Msg::new().str(1, api_version).str(2, kind))
        .msg(2, raw)
        .str(3, "")
        .str(4, "");
    let mut body = MAGIC.to_vec();
    body.extend_from_slice(&unknown.0);
    body
}

fn full_metadata() -> Msg {
    Msg::new()
        .str(1, "cm")
        .str(2, "cm-")
        .str(3, "ns")
        .str(5, "")
        .int(7, 0)
        .msg(8, Msg::new())
        .msg(9, Msg::new().int(1, 1_700_000_000))
        .int(10, 30)
        .entry(11, "app", "demo")
        .entry(11, "tier", "web")
        .entry(12, "note", "hi")
        .msg(
            13,
            Msg::new()
                .str(1, "Parent")
                .str(3, "p")
                .str(4, "uid-1")
                .str(5, "example.com/v1")
                .uint(6, 1)
                .uint(7, 0),
        )
        .str(14, "example.com/cleanup")
        .str(14, "other")
}

#[test]
fn full_object_meta() {
    let body = envelope(
        "v1",
        "ConfigMap",
        Msg::new()
            .msg(1, full_metadata())
            .uint(4, 0)
            .entry(2, "k", "v"),
    );
    assert_eq!(
        decode(&body).ok(),
        Some(json!({
            "kind": "ConfigMap", "apiVersion": "v1",
            "metadata": {
                "name": "cm", "generateName": "cm-", "namespace": "ns",
                "deletionTimestamp": "2023-11-14T22:13:20Z",
                "deletionGracePeriodSeconds": 30,
                "labels": {"app": "demo", "tier": "web"},
                "annotations": {"note": "hi"},
                "ownerReferences": [{
                    "apiVersion": "example.com/v1", "kind": "Parent", "name": "p",
                    "uid": "uid-1", "controller": true, "blockOwnerDeletion": false
                }],
                "finalizers": ["example.com/cleanup", "other"]
            },
            // A pointer field set to false is kept.
            "immutable": false,
            "data": {"k": "v"}
        }))
    );
}

#[test]
fn secret_string_data_type_and_immutable() {
    let body = envelope(
        "v1",
        "Secret",
        Msg::new()
            .msg(1, Msg::new().str(1, "s"))
            .msg(2, Msg::new().str(1, "raw").bytes(2, &[0xff, 0x00]))
            .str(3, "kubernetes.io/basic-auth")
            .msg(4, Msg::new().str(1, "username").str(2, "admin"))
            .uint(5, 1),
    );
    assert_eq!(
        decode(&body).ok(),
        Some(json!({
            "kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "s"},
            "immutable": true,
            "data": {"raw": "/wA="},
            "stringData": {"username": "admin"},
            "type": "kubernetes.io/basic-auth"
        }))
    );
}

#[test]
fn service_account_references() {
    let body = envelope(
        "v1",
        "ServiceAccount",
        Msg::new()
            .msg(1, Msg::new().str(1, "sa"))
            .msg(2, Msg::new().str(1, "Secret").str(3, "tok"))
            .msg(3, Msg::new().str(1, "pull"))
            .uint(4, 0),
    );
    assert_eq!(
        decode(&body).ok(),
        Some(json!({
            "kind": "ServiceAccount", "apiVersion": "v1",
            "metadata": {"name": "sa"},
            "secrets": [{"kind": "Secret", "name": "tok"}],
            "imagePullSecrets": [{"name": "pull"}],
            "automountServiceAccountToken": false
        }))
    );
}

#[test]
fn zero_replicas_pointer_is_kept_and_unknown_fields_are_skipped() {
    let body = envelope(
        "apps/v1",
        "Deployment",
        Msg::new()
            .msg(1, Msg::new().str(1, "d").str(99, "future"))
            .msg(2, Msg::new().uint(1, 0).fixed64(98, 7).fixed32(97, 1))
            .msg(3, Msg::new()),
    );
    let got = decode(&body).expect("decodes");
    assert_eq!(got["metadata"], json!({"name": "d"}));
    assert_eq!(got["spec"]["replicas"], json!(0));
    assert_eq!(got["status"], json!({}));
}

#[test]
fn int_or_string_negative_ints_and_quantities() {
    let port = Msg::new()
        .str(1, "http")
        .int(3, 80)
        .msg(4, Msg::new().uint(1, 1).str(3, "web"))
        .int(5, 0);
    let body = envelope(
        "v1",
        "Service",
        Msg::new()
            .msg(1, Msg::new().str(1, "svc"))
            .msg(2, Msg::new().msg(1, port)),
    );
    let got = decode(&body).expect("service");
    // nodePort 0 is dropped (omitempty), port is kept, targetPort is a string.
    assert_eq!(
        got["spec"]["ports"],
        json!([{"name": "http", "port": 80, "targetPort": "web"}])
    );

    let probe = Msg::new()
        .msg(1, Msg::new().msg(1, Msg::new().str(1, "true")))
        .int(2, -1);
    let container = Msg::new()
        .str(1, "c")
        .msg(
            8,
            Msg::new().msg(
                1,
                Msg::new().str(1, "cpu").msg(2, Msg::new().str(1, "500m")),
            ),
        )
        .msg(10, probe);
    let job = envelope(
        "batch/v1",
        "Job",
        Msg::new().msg(1, Msg::new().str(1, "j")).msg(
            2,
            Msg::new().msg(6, Msg::new().msg(2, Msg::new().msg(2, container))),
        ),
    );
    let got = decode(&job).expect("job");
    let c = &got["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["resources"], json!({"limits": {"cpu": "500m"}}));
    // The embedded ProbeHandler is inlined; a negative int32 survives its ten-byte varint.
    assert_eq!(
        c["livenessProbe"],
        json!({"exec": {"command": ["true"]}, "initialDelaySeconds": -1})
    );
    assert_eq!(c["name"], "c");
}

#[test]
fn lease_micro_time_and_managed_fields() {
    let meta = Msg::new().str(1, "leader").msg(
        17,
        Msg::new()
            .str(1, "kubectl")
            .str(2, "Update")
            .msg(4, Msg::new().int(1, 1_700_000_000))
            .str(6, "FieldsV1")
            .msg(7, Msg::new().bytes(1, br#"{"f:spec":{}}"#)),
    );
    let body = envelope(
        "coordination.k8s.io/v1",
        "Lease",
        Msg::new().msg(1, meta).msg(
            2,
            Msg::new()
                .str(1, "me")
                .int(2, 15)
                .msg(4, Msg::new().int(1, 1_700_000_000).int(2, 123_456_000))
                .int(5, 0),
        ),
    );
    let got = decode(&body).expect("lease");
    assert_eq!(
        got["spec"],
        json!({
            "holderIdentity": "me", "leaseDurationSeconds": 15,
            "renewTime": "2023-11-14T22:13:20.123456Z", "leaseTransitions": 0
        })
    );
    assert_eq!(
        got["metadata"]["managedFields"],
        json!([{
            "manager": "kubectl", "operation": "Update", "time": "2023-11-14T22:13:20Z",
            "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}}
        }])
    );
}

#[test]
fn volumes_inline_their_source() {
    let volume = Msg::new()
        .str(1, "data")
        .msg(2, Msg::new().msg(2, Msg::new().str(1, "Memory")));
    let pod_spec = Msg::new().msg(1, volume);
    let body = envelope(
        "apps/v1",
        "Deployment",
        Msg::new()
            .msg(1, Msg::new().str(1, "d"))
            .msg(2, Msg::new().msg(3, Msg::new().msg(2, pod_spec))),
    );
    let got = decode(&body).expect("decodes");
    assert_eq!(
        got["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "emptyDir": {"medium": "Memory"}}])
    );
}

#[test]
fn rbac_rules_and_subjects() {
    let body = envelope(
        "rbac.authorization.k8s.io/v1",
        "ClusterRole",
        Msg::new().msg(1, Msg::new().str(1, "r")).msg(
            2,
            Msg::new()
                .str(1, "get")
                .str(1, "list")
                .str(2, "")
                .str(3, "pods"),
        ),
    );
    assert_eq!(
        decode(&body).ok(),
        Some(json!({
            "kind": "ClusterRole", "apiVersion": "rbac.authorization.k8s.io/v1",
            "metadata": {"name": "r"},
            "rules": [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}]
        }))
    );
}

#[test]
fn unsupported_kinds_are_reported() {
    let body = envelope("example.com/v1", "Widget", Msg::new());
    assert_eq!(
        decode(&body),
        Err(ProtobufError::UnsupportedKind {
            api_version: "example.com/v1".into(),
            kind: "Widget".into()
        })
    );
    let message = decode(&body)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(message.contains("Widget") && message.contains("application/json"));
}

#[test]
fn malformed_bodies_are_rejected() {
    assert!(matches!(
        decode(b"{\"kind\":\"Namespace\"}"),
        Err(ProtobufError::Malformed(_))
    ));
    let mut truncated = envelope("v1", "Namespace", Msg::new().msg(1, Msg::new().str(1, "n")));
    truncated.pop();
    assert!(matches!(
        decode(&truncated),
        Err(ProtobufError::Malformed(_))
    ));
    // metadata (field 1) as a varint instead of a message.
    let wrong = envelope("v1", "Namespace", Msg::new().uint(1, 5));
    assert!(matches!(decode(&wrong), Err(ProtobufError::Malformed(_))));
    // Invalid UTF-8 in a string.
    let bad_utf8 = envelope(
        "v1",
        "Namespace",
        Msg::new().msg(1, Msg::new().bytes(1, &[0xff])),
    );
    assert!(matches!(
        decode(&bad_utf8),
        Err(ProtobufError::Malformed(_))
    ));
    // No kind at all.
    assert!(matches!(
        decode(&envelope("v1", "", Msg::new())),
        Err(ProtobufError::Malformed(_))
    ));
    // A content encoding such as gzip.
    let mut gz = MAGIC.to_vec();
    gz.extend_from_slice(
        &Msg::new()
            .msg(1, Msg::new().str(1, "v1").str(2, "Namespace"))
            .str(3, "gzip")
            .0,
    );
    assert!(matches!(decode(&gz), Err(ProtobufError::Malformed(_))));
}

#[test]
fn packed_repeated_integers() {
    // ResourceAttributes is not used here; PodFailurePolicyOnExitCodesRequirement.values is a
    // repeated int32, which may arrive packed.
    let mut packed = Vec::new();
    for v in [1u64, 2, 300] {
        super::wire::encode::varint(&mut packed, v);
    }
    let rule = Msg::new()
        .str(1, "FailJob")
        .msg(2, Msg::new().str(2, "In").bytes(3, &packed).uint(3, 4));
    let body = envelope(
        "batch/v1",
        "Job",
        Msg::new()
            .msg(1, Msg::new().str(1, "j"))
            .msg(2, Msg::new().msg(11, Msg::new().msg(1, rule))),
    );
    let got = decode(&body).expect("job");
    assert_eq!(
        got["spec"]["podFailurePolicy"]["rules"][0]["onExitCodes"],
        json!({"operator": "In", "values": [1, 2, 300, 4]})
    );
}

#[test]
fn content_type_detection() {
    assert!(is_protobuf("application/vnd.kubernetes.protobuf"));
    assert!(is_protobuf(
        "Application/VND.Kubernetes.Protobuf ; charset=utf-8"
    ));
    assert!(!is_protobuf("application/json"));
    assert!(!is_protobuf("application/vnd.kubernetes.protobuf-x"));
    assert!(!is_protobuf(""));
}

#[test]
fn every_supported_kind_resolves() {
    let kinds: Vec<_> = supported_kinds().collect();
    assert!(kinds.contains(&("v1", "Namespace")));
    assert!(kinds.contains(&("batch/v1", "CronJob")));
    for (v, k) in kinds {
        // An empty object of every kind decodes (exercising every schema path reached by
        // defaults).
        let got = decode(&envelope(v, k, Msg::new())).unwrap_or_else(|e| panic!("{k}: {e}"));
        assert_eq!(got["kind"], k);
    }
}
