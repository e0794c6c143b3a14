//! The real `kubectl` against the embedded server, through the kubeconfig it writes (TLS, CA
//! data, bearer token) and a fresh discovery cache per test.

mod common;

use std::time::Duration;

use common::{example, have_kubectl, TestServer, WIDGET_CRD};
use tokio::io::{AsyncBufReadExt, BufReader};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: c
        image: nginx:1
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_creates_and_updates_builtin_and_custom_kinds() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    let f = s.file("deploy.yaml", DEPLOYMENT);
    assert!(s
        .kubectl_ok(&["apply", "-f", &f])
        .await
        .contains("deployment.apps/web created"));
    assert!(s
        .kubectl_ok(&["apply", "-f", &f])
        .await
        .contains("deployment.apps/web unchanged"));
    // A second container: kubectl sends a strategic merge patch with $setElementOrder.
    let two = DEPLOYMENT.replace("replicas: 1", "replicas: 2")
        + "      - name: side\n        image: busybox:1\n";
    let f2 = s.file("deploy2.yaml", &two);
    assert!(s
        .kubectl_ok(&["apply", "-f", &f2])
        .await
        .contains("deployment.apps/web configured"));
    let names = s
        .kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[*].name} {.spec.replicas}",
        ])
        .await;
    assert_eq!(names, "c side 2");

    // A v1 CRD with printer columns, then its custom resource.
    let crd = example("hello-world/crd.yaml");
    assert!(s
        .kubectl_ok(&["apply", "-f", &crd])
        .await
        .contains("helloworlds.example.com created"));
    s.kubectl_ok(&[
        "wait",
        "--for=condition=established",
        "crd/helloworlds.example.com",
        "--timeout=20s",
    ])
    .await;
    let hello = example("hello-world/hello.yaml");
    assert!(s
        .kubectl_ok(&["apply", "-f", &hello])
        .await
        .contains("helloworld.example.com/your-name created"));
    assert!(s
        .kubectl_ok(&["apply", "-f", &hello])
        .await
        .contains("unchanged"));
    let changed = std::fs::read_to_string(&hello)
        .expect("hello.yaml")
        .replace("Your Name", "Someone Else");
    let changed = s.file("hello2.yaml", &changed);
    assert!(s
        .kubectl_ok(&["apply", "-f", &changed])
        .await
        .contains("configured"));
    let table = s.kubectl_ok(&["get", "helloworlds"]).await;
    let mut rows = table.lines();
    let header: Vec<&str> = rows.next().expect("header").split_whitespace().collect();
    assert_eq!(header, vec!["NAME", "WHO", "PODS", "AGE"]);
    assert!(
        rows.next()
            .expect("row")
            .starts_with("your-name   Someone Else"),
        "{table}"
    );
    assert!(s
        .kubectl_ok(&["apply", "-f", &crd])
        .await
        .contains("unchanged"));

    // Server-side apply.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  a: b\n";
    let f = s.file("ssa.yaml", cm);
    assert!(s
        .kubectl_ok(&["apply", "--server-side", "-f", &f])
        .await
        .contains("configmap/ssa serverside-applied"));
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "ssa", "-o", "jsonpath={.data.a}"])
            .await,
        "b"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_of_the_legacy_v1beta1_crd() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    let legacy = example("hello-world/legacy/crd.yaml");
    let out = s.kubectl(&["apply", "-f", &legacy]).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("helloworlds.example.com created"));
    // kubectl relays the server's deprecation warning.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "Warning: apiextensions.k8s.io/v1beta1 CustomResourceDefinition is deprecated"
        ),
        "{stderr}"
    );
    s.kubectl_ok(&[
        "wait",
        "--for=condition=established",
        "crd/helloworlds.example.com",
        "--timeout=20s",
    ])
    .await;
    assert!(s
        .kubectl_ok(&["apply", "-f", &legacy])
        .await
        .contains("unchanged"));
    let with_short = std::fs::read_to_string(&legacy).expect("crd").replace(
        "    singular: helloworld\n",
        "    singular: helloworld\n    shortNames: [hw]\n",
    );
    let f = s.file("legacy2.yaml", &with_short);
    assert!(s
        .kubectl_ok(&["apply", "-f", &f])
        .await
        .contains("configured"));
    assert!(s
        .kubectl_ok(&["apply", "-f", &example("hello-world/hello.yaml")])
        .await
        .contains("created"));
    assert!(s.kubectl_ok(&["get", "hw"]).await.contains("your-name"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imperative_create_and_get_formats() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    // Protobuf bodies.
    assert!(s
        .kubectl_ok(&["create", "namespace", "hello"])
        .await
        .contains("namespace/hello created"));
    let data = s.file("greeting.txt", "hi there\n");
    let from_file = format!("--from-file={data}");
    s.kubectl_ok(&["create", "configmap", "x", &from_file, "-n", "hello"])
        .await;
    s.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "sec",
        "--from-literal=p=q",
        "-n",
        "hello",
    ])
    .await;
    s.kubectl_ok(&["create", "deployment", "d", "--image=nginx", "-n", "hello"])
        .await;

    let v: serde_json::Value = serde_json::from_str(
        &s.kubectl_ok(&["get", "cm", "x", "-n", "hello", "-o", "json"])
            .await,
    )
    .expect("json");
    assert_eq!(v["data"]["greeting.txt"], "hi there\n");
    let yaml = s
        .kubectl_ok(&["get", "cm", "x", "-n", "hello", "-o", "yaml"])
        .await;
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("namespace: hello"),
        "{yaml}"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "secret",
            "sec",
            "-n",
            "hello",
            "-o",
            "jsonpath={.data.p}"
        ])
        .await,
        "cQ=="
    );

    let table = s.kubectl_ok(&["get", "cm", "-n", "hello"]).await;
    let header: Vec<&str> = table
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(header, vec!["NAME", "DATA", "AGE"]);
    let wide = s
        .kubectl_ok(&["get", "deploy", "-n", "hello", "-o", "wide"])
        .await;
    let header: Vec<&str> = wide
        .lines()
        .next()
        .expect("header")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        vec![
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let ns = s.kubectl_ok(&["get", "ns"]).await;
    for n in [
        "default",
        "hello",
        "kube-system",
        "kube-public",
        "kube-node-lease",
    ] {
        assert!(ns.contains(n), "{ns}");
    }
    let all = s.kubectl_ok(&["get", "cm", "-A"]).await;
    assert!(
        all.lines()
            .next()
            .is_some_and(|h| h.starts_with("NAMESPACE")),
        "{all}"
    );

    // create -f with a custom kind.
    let crd = s.file("widgets.json", WIDGET_CRD);
    s.kubectl_ok(&["create", "-f", &crd]).await;
    s.kubectl_ok(&[
        "wait",
        "--for=condition=established",
        "crd/widgets.example.com",
        "--timeout=20s",
    ])
    .await;
    let w = s.file(
        "w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w1\nspec:\n  size: M\n",
    );
    assert!(s
        .kubectl_ok(&["create", "-f", &w])
        .await
        .contains("widget.example.com/w1 created"));
    let out = s.kubectl(&["create", "-f", &w]).await;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AlreadyExists"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = s.kubectl_ok(&["get", "wd"]).await;
    assert!(
        table.starts_with("NAME") && table.contains("SIZE") && table.contains("w1"),
        "{table}"
    );

    // Status subresource reads.
    s.kubectl_ok(&[
        "patch",
        "widget",
        "w1",
        "--subresource=status",
        "--type=merge",
        "-p",
        r#"{"status":{"phase":"Ready"}}"#,
    ])
    .await;
    let st = s
        .kubectl_ok(&[
            "get",
            "widget",
            "w1",
            "--subresource=status",
            "-o",
            "jsonpath={.status.phase}",
        ])
        .await;
    assert_eq!(st, "Ready");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_annotate_patch_scale() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    s.kubectl_ok(&["create", "configmap", "c", "--from-literal=a=1"])
        .await;
    s.kubectl_ok(&["label", "cm", "c", "tier=gold"]).await;
    s.kubectl_ok(&["annotate", "cm", "c", "note=hello"]).await;
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cm",
            "-l",
            "tier=gold",
            "-o",
            "jsonpath={.items[*].metadata.name}"
        ])
        .await,
        "c"
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cm",
            "-l",
            "tier!=gold",
            "-o",
            "jsonpath={.items[*].metadata.name}"
        ])
        .await,
        ""
    );
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cm",
            "c",
            "-o",
            "jsonpath={.metadata.annotations.note}"
        ])
        .await,
        "hello"
    );
    s.kubectl_ok(&["label", "cm", "c", "tier-"]).await;
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "c", "-o", "jsonpath={.metadata.labels}"])
            .await,
        ""
    );

    s.kubectl_ok(&[
        "patch",
        "cm",
        "c",
        "--type=merge",
        "-p",
        r#"{"data":{"b":"2"}}"#,
    ])
    .await;
    s.kubectl_ok(&[
        "patch",
        "cm",
        "c",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/data/a","value":"9"}]"#,
    ])
    .await;
    s.kubectl_ok(&["patch", "cm", "c", "-p", r#"{"data":{"c":"3"}}"#])
        .await;
    assert_eq!(
        s.kubectl_ok(&[
            "get",
            "cm",
            "c",
            "-o",
            "jsonpath={.data.a}{.data.b}{.data.c}"
        ])
        .await,
        "923"
    );
    let bad = s
        .kubectl(&[
            "patch",
            "cm",
            "c",
            "--type=json",
            "-p",
            r#"[{"op":"test","path":"/data/a","value":"0"}]"#,
        ])
        .await;
    assert!(!bad.status.success());

    let f = s.file("deploy.yaml", DEPLOYMENT);
    s.kubectl_ok(&["apply", "-f", &f]).await;
    s.kubectl_ok(&["scale", "deployment", "web", "--replicas=3"])
        .await;
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
            .await,
        "3"
    );
    let selector = s
        .kubectl_ok(&[
            "get",
            "deploy",
            "web",
            "--subresource=scale",
            "-o",
            "jsonpath={.kind} {.spec.replicas} {.status.selector}",
        ])
        .await;
    assert_eq!(selector, "Scale 3 app=web");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_watch_prints_changes() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    s.kubectl_ok(&["create", "configmap", "first"]).await;
    let mut child = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(s.kubeconfig())
        .arg("--cache-dir")
        .arg(s.dir.join("cache-watch"))
        .args(["get", "cm", "-w"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("kubectl get -w");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    let read = async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.starts_with("first") && !seen.iter().any(|l: &String| l.starts_with("first")) {
                s.kubectl_ok(&["create", "configmap", "second"]).await;
            }
            let done = line.starts_with("second");
            seen.push(line);
            if done {
                break;
            }
        }
    };
    let finished = tokio::time::timeout(Duration::from_secs(30), read).await;
    child.kill().await.expect("kill kubectl by pid");
    assert!(finished.is_ok(), "kubectl get -w printed {seen:?}");
    assert!(seen[0].starts_with("NAME"), "{seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("second")), "{seen:?}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_cascades_and_waits() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    for cascade in ["background", "foreground", "orphan"] {
        let owner = format!("owner-{cascade}");
        s.kubectl_ok(&["create", "configmap", &owner]).await;
        let uid = s
            .kubectl_ok(&["get", "cm", &owner, "-o", "jsonpath={.metadata.uid}"])
            .await;
        let child = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: child-{cascade}\n  ownerReferences:\n  - apiVersion: v1\n    kind: ConfigMap\n    name: {owner}\n    uid: {uid}\n    blockOwnerDeletion: true\n"
        );
        let f = s.file(&format!("child-{cascade}.yaml"), &child);
        s.kubectl_ok(&["apply", "-f", &f]).await;
        let out = s
            .kubectl_ok(&[
                "delete",
                "cm",
                &owner,
                &format!("--cascade={cascade}"),
                "--timeout=30s",
            ])
            .await;
        assert!(out.contains("deleted"), "{out}");
        let child_name = format!("child-{cascade}");
        if cascade == "orphan" {
            let refs = s
                .kubectl_ok(&[
                    "get",
                    "cm",
                    &child_name,
                    "-o",
                    "jsonpath={.metadata.ownerReferences}",
                ])
                .await;
            assert_eq!(refs, "", "orphaned dependents lose the reference");
        } else {
            s.kubectl_ok(&[
                "wait",
                "--for=delete",
                &format!("cm/{child_name}"),
                "--timeout=20s",
            ])
            .await;
        }
    }
    // wait --for=delete on an object a finalizer holds until the finalizer goes.
    s.kubectl_ok(&["create", "configmap", "held"]).await;
    s.kubectl_ok(&[
        "patch",
        "cm",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])
    .await;
    s.kubectl_ok(&["delete", "cm", "held", "--wait=false"])
        .await;
    let waiter = s
        .kubectl(&["wait", "--for=delete", "cm/held", "--timeout=2s"])
        .await;
    assert!(!waiter.status.success(), "still held by its finalizer");
    s.kubectl_ok(&[
        "patch",
        "cm",
        "held",
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ])
    .await;
    s.kubectl_ok(&["wait", "--for=delete", "cm/held", "--timeout=20s"])
        .await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diff_api_resources_can_i_and_describe() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    let f = s.file("deploy.yaml", DEPLOYMENT);
    let first = s.kubectl(&["diff", "-f", &f]).await;
    assert_eq!(
        first.status.code(),
        Some(1),
        "a new object differs: {}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(String::from_utf8_lossy(&first.stdout).contains("+  name: web"));
    s.kubectl_ok(&["apply", "-f", &f]).await;
    let same = s.kubectl(&["diff", "-f", &f]).await;
    assert_eq!(
        same.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&same.stdout),
        String::from_utf8_lossy(&same.stderr)
    );
    let changed = s.file(
        "deploy2.yaml",
        &DEPLOYMENT.replace("replicas: 1", "replicas: 5"),
    );
    let diff = s.kubectl(&["diff", "-f", &changed]).await;
    assert_eq!(diff.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&diff.stdout).contains("+  replicas: 5"));
    assert_eq!(
        s.kubectl_ok(&["get", "deploy", "web", "-o", "jsonpath={.spec.replicas}"])
            .await,
        "1",
        "diff changes nothing"
    );

    let resources = s.kubectl_ok(&["api-resources"]).await;
    for r in [
        "configmaps",
        "deployments",
        "customresourcedefinitions",
        "selfsubjectaccessreviews",
    ] {
        assert!(resources.contains(r), "{r} missing: {resources}");
    }
    assert_eq!(
        s.kubectl_ok(&["auth", "can-i", "create", "pods"])
            .await
            .trim(),
        "yes"
    );
    let ns_scoped = s
        .kubectl_ok(&["auth", "can-i", "delete", "deployments", "-n", "x"])
        .await;
    assert_eq!(ns_scoped.trim(), "yes");
    let rules = s.kubectl_ok(&["auth", "can-i", "--list"]).await;
    assert!(rules.lines().any(|l| l.starts_with("*.*")), "{rules}");
    let me = s
        .kubectl_ok(&[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ])
        .await;
    assert_eq!(me, "metacontroller-dev");
    let described = s.kubectl_ok(&["describe", "deploy", "web"]).await;
    assert!(
        described.contains("Name:") && described.contains("web"),
        "{described}"
    );
    let version = s.kubectl_ok(&["version"]).await;
    assert!(version.contains("Server Version: v1.32.0"), "{version}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_token_for_a_service_account() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    s.kubectl_ok(&["create", "serviceaccount", "bot"]).await;
    let token = s
        .kubectl_ok(&["create", "token", "bot", "--duration=10m", "--audience=api"])
        .await;
    assert_eq!(Some(token.trim()), s.server.token.as_deref());
    let warned = s.kubectl(&["create", "token", "bot"]).await;
    assert!(
        String::from_utf8_lossy(&warned.stderr)
            .contains("Warning: this development cluster has no authorization"),
        "{}",
        String::from_utf8_lossy(&warned.stderr)
    );
    let missing = s.kubectl(&["create", "token", "nobody"]).await;
    assert!(!missing.status.success());
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("serviceaccounts \"nobody\" not found"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
    let short = s
        .kubectl(&["create", "token", "bot", "--duration=1m"])
        .await;
    assert!(!short.status.success());
    let resources = s
        .kubectl_ok(&["api-resources", "--verbs=create", "-o", "name"])
        .await;
    assert!(
        resources.lines().any(|l| l == "serviceaccounts"),
        "{resources}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_of_pods_whose_containers_never_start() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    s.kubectl_ok(&["run", "hello", "--image=busybox:1"]).await;
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).to_string();
    let one = s.kubectl(&["logs", "hello"]).await;
    assert!(!one.status.success());
    assert_eq!(
        stderr(&one).trim(),
        "Error from server (BadRequest): container \"hello\" in pod \"hello\" is waiting to start: ContainerCreating"
    );
    let two = s.file(
        "two.yaml",
        "apiVersion: v1
kind: Pod
metadata:
  name: two
spec:
  containers:
  - name: a
    image: busybox:1
  - name: b
    image: busybox:1
",
    );
    s.kubectl_ok(&["apply", "-f", &two]).await;
    let b = s.kubectl(&["logs", "two", "-c", "b"]).await;
    assert!(
        stderr(&b)
            .contains("container \"b\" in pod \"two\" is waiting to start: ContainerCreating"),
        "{}",
        stderr(&b)
    );
    // kubectl picks the first container itself when none is named.
    let defaulted = s.kubectl(&["logs", "two"]).await;
    assert!(
        stderr(&defaulted).contains("container \"a\" in pod \"two\" is waiting to start"),
        "{}",
        stderr(&defaulted)
    );
    let unknown = s.kubectl(&["logs", "two", "-c", "nope"]).await;
    assert!(
        stderr(&unknown).contains("container nope is not valid for pod two"),
        "{}",
        stderr(&unknown)
    );
    // The API itself asks for a container name when a pod has several.
    let raw = s
        .kubectl(&["get", "--raw", "/api/v1/namespaces/default/pods/two/log"])
        .await;
    assert!(
        stderr(&raw)
            .contains("a container name must be specified for pod two, choose one of: [a b]"),
        "{}",
        stderr(&raw)
    );
    // The pod runs as the namespace's default service account, with its token mounted.
    let described = s.kubectl_ok(&["describe", "pod", "hello"]).await;
    for line in [
        "Service Account:  default",
        "Priority:         0",
        "/var/run/secrets/kubernetes.io/serviceaccount from kube-api-access-",
        "node.kubernetes.io/not-ready:NoExecute op=Exists for 300s",
    ] {
        assert!(described.contains(line), "{line}: {described}");
    }
    let missing = s.kubectl(&["logs", "nobody"]).await;
    assert!(
        stderr(&missing).contains("pods \"nobody\" not found"),
        "{}",
        stderr(&missing)
    );
    let discovery = s.kubectl_ok(&["get", "--raw", "/api/v1"]).await;
    assert!(
        discovery.contains(
            r#"{"name":"pods/log","singularName":"","namespaced":true,"kind":"Pod","verbs":["get"]}"#
        ),
        "{discovery}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_fields_follow_each_writer() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    let managers = |json: String| -> Vec<(String, String)> {
        let v: serde_json::Value = serde_json::from_str(&json).expect("json");
        v["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .iter()
            .map(|e| {
                (
                    e["manager"].as_str().unwrap_or("").to_string(),
                    e["operation"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let get = |name: &'static str| {
        let s = &s;
        async move {
            s.kubectl_ok(&["get", "cm", name, "-o", "json", "--show-managed-fields"])
                .await
        }
    };
    s.kubectl_ok(&["create", "configmap", "made", "--from-literal=k=v"])
        .await;
    let made = get("made").await;
    assert_eq!(
        managers(made.clone()),
        [("kubectl-create".into(), "Update".into())]
    );
    assert!(made.contains("\"f:k\""), "{made}");
    s.kubectl_ok(&["label", "cm", "made", "team=a"]).await;
    assert_eq!(
        managers(get("made").await),
        [
            ("kubectl-create".into(), "Update".into()),
            ("kubectl-label".into(), "Update".into())
        ]
    );
    // Without a fieldManager, the User-Agent's program name is the manager.
    let resp = s
        .send(
            s.req(
                reqwest::Method::PATCH,
                "/api/v1/namespaces/default/configmaps/made",
            )
            .header("Content-Type", "application/merge-patch+json")
            .header("User-Agent", "my-tool/1.0 (linux)")
            .body(r#"{"data":{"k":"w"}}"#),
        )
        .await;
    assert_eq!(resp.status, 200, "{:?}", resp.body);
    let after = managers(get("made").await);
    assert_eq!(
        after,
        [
            ("kubectl-label".into(), "Update".into()),
            ("my-tool".into(), "Update".into())
        ],
        "my-tool took k over from kubectl-create"
    );

    // Client-side apply, then server-side apply takes the fields over without conflicts.
    let f = s.file(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: \"1\"\n",
    );
    s.kubectl_ok(&["apply", "-f", &f]).await;
    assert_eq!(
        managers(get("applied").await),
        [("kubectl-client-side-apply".into(), "Update".into())]
    );
    let f2 = s.file(
        "cm2.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\ndata:\n  a: \"2\"\n",
    );
    s.kubectl_ok(&["apply", "--server-side", "-f", &f2]).await;
    let ssa = get("applied").await;
    // kubectl keeps the last-applied annotation under a manager of its own.
    let mut after_ssa = managers(ssa.clone());
    after_ssa.sort();
    assert_eq!(
        after_ssa,
        [
            ("kubectl".into(), "Apply".into()),
            ("kubectl-last-applied".into(), "Apply".into())
        ],
        "{ssa}"
    );
    // The annotation follows the server-side applied configuration.
    let v: serde_json::Value = serde_json::from_str(&ssa).expect("json");
    let last = v["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .unwrap_or("");
    assert!(last.contains(r#""data":{"a":"2"}"#), "{last}");
    // Client-side apply still works from there.
    s.kubectl_ok(&["apply", "-f", &f]).await;
    assert_eq!(
        s.kubectl_ok(&["get", "cm", "applied", "-o", "jsonpath={.data.a}"])
            .await,
        "1"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_kubernetes_service_is_published_in_default() {
    if !have_kubectl() {
        return;
    }
    let s = TestServer::start().await;
    let all = s.kubectl_ok(&["get", "all"]).await;
    let row: Vec<&str> = all
        .lines()
        .find(|l| l.starts_with("service/kubernetes"))
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        row.get(..5),
        Some(
            &[
                "service/kubernetes",
                "ClusterIP",
                "10.96.0.1",
                "<none>",
                "443/TCP"
            ][..]
        ),
        "{all}"
    );
    let port = s.server.addr.port().to_string();
    let ep = s
        .kubectl_ok(&[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[0].ports[0].port}",
        ])
        .await;
    assert_eq!(ep, port);
    s.stop().await;
}
