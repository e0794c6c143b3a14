//! `kubectl explain` (OpenAPI v3 and v2), kubectl's client-side validation, and
//! `kubectl apply --server-side` with list ownership and conflicts, against the embedded server.

mod common;

use common::{have_kubectl, TestServer};

fn repo_file(path: &str) -> String {
    format!("{}/../../{path}", env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_builtin_and_custom_kinds() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    let out = s.kubectl_ok(&["explain", "pod.spec.containers"]).await;
    assert!(out.contains("KIND:       Pod"), "{out}");
    assert!(out.contains("FIELD: containers <[]Container>"), "{out}");
    assert!(out.contains("image\t<string>"), "{out}");
    let out = s.kubectl_ok(&["explain", "deployment.spec.replicas"]).await;
    assert!(out.contains("GROUP:      apps"), "{out}");
    assert!(out.contains("<integer>"), "{out}");
    let out = s
        .kubectl_ok(&["explain", "deployments.spec", "--recursive"])
        .await;
    assert!(out.contains("containers"), "{out}");

    // The v2 document (protobuf) serves the legacy explain.
    let out = s
        .kubectl_ok(&["explain", "pods.spec", "--output=plaintext-openapiv2"])
        .await;
    assert!(out.contains("containers"), "{out}");

    // Custom resources are described from their CRD's schema.
    let crds = repo_file("deploy/crds/metacontroller-crds-v1.yaml");
    s.kubectl_ok(&["apply", "-f", &crds]).await;
    s.kubectl_ok(&[
        "wait",
        "--for=condition=established",
        "crd/compositecontrollers.metacontroller.k8s.io",
        "--timeout=20s",
    ])
    .await;
    let out = s.kubectl_ok(&["explain", "compositecontroller.spec"]).await;
    assert!(out.contains("GROUP:      metacontroller.k8s.io"), "{out}");
    assert!(out.contains("parentResource"), "{out}");
    let out = s
        .kubectl_ok(&["explain", "compositecontroller.metadata.labels"])
        .await;
    assert!(out.contains("map[string]string"), "{out}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_api_versions_get_the_clear_error() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    let f = s.file(
        "old.yaml",
        "apiVersion: apps/v1beta1\nkind: Deployment\nmetadata:\n  name: old\nspec:\n  template:\n    metadata:\n      labels: {app: old}\n    spec:\n      containers:\n      - name: c\n        image: nginx\n",
    );
    let out = s.kubectl(&["apply", "-f", &f]).await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"no matches for kind "Deployment" in version "apps/v1beta1""#),
        "{err}"
    );
    s.stop().await;
}

const WEB: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: c
        image: nginx:1
";

const SIDECAR: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    spec:
      containers:
      - name: side
        image: busybox:1
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_owns_list_items_and_reports_conflicts() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    let names = || async {
        s.kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name}={.spec.template.spec.containers[*].image}",
        ])
        .await
    };
    let web = s.file("web.yaml", WEB);
    let out = s
        .kubectl_ok(&[
            "apply",
            "--server-side",
            "--field-manager=alice",
            "-f",
            &web,
        ])
        .await;
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    // Bob applies only his sidecar: both containers are kept, each owned by its manager.
    let side = s.file("side.yaml", SIDECAR);
    s.kubectl_ok(&["apply", "--server-side", "--field-manager=bob", "-f", &side])
        .await;
    assert_eq!(names().await, "c side=nginx:1 busybox:1");
    let json = s
        .kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "json",
            "--show-managed-fields",
        ])
        .await;
    assert!(json.contains(r#""k:{\"name\":\"side\"}""#), "{json}");

    // Bob changing Alice's image conflicts, naming the manager and the field.
    let steal = s.file(
        "steal.yaml",
        &SIDECAR.replace(
            "      - name: side\n",
            "      - name: c\n        image: nginx:2\n      - name: side\n",
        ),
    );
    let out = s
        .kubectl(&[
            "apply",
            "--server-side",
            "--field-manager=bob",
            "-f",
            &steal,
        ])
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(r#"conflict with "alice""#), "{err}");
    assert!(
        err.contains(r#".spec.template.spec.containers[name="c"].image"#),
        "{err}"
    );
    assert_eq!(names().await, "c side=nginx:1 busybox:1");
    // --force-conflicts takes the field over.
    s.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=bob",
        "--force-conflicts",
        "-f",
        &steal,
    ])
    .await;
    assert_eq!(names().await, "c side=nginx:2 busybox:1");
    // Bob drops his sidecar: it goes, Alice's container stays (Bob now shares it).
    let only_c = s.file(
        "only-c.yaml",
        &SIDECAR.replace(
            "      - name: side\n        image: busybox:1\n",
            "      - name: c\n        image: nginx:2\n",
        ),
    );
    s.kubectl_ok(&[
        "apply",
        "--server-side",
        "--field-manager=bob",
        "-f",
        &only_c,
    ])
    .await;
    assert_eq!(names().await, "c=nginx:2");
    s.stop().await;
}
