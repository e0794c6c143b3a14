//! Shared helpers: a server per test on 127.0.0.1:0 with TLS and a bearer token, a raw HTTP
//! client trusting its CA, and a `kubectl` runner with its own kubeconfig and cache directory.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use metacontroller_apiserver::{start, Server, ServerConfig};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// A running server and what talks to it. Its tasks end with the test's runtime if a test
/// fails before [`TestServer::stop`].
pub struct TestServer {
    pub server: Server,
    pub shutdown: CancellationToken,
    pub client: reqwest::Client,
    /// A scratch directory holding the kubeconfig and kubectl's cache.
    pub dir: PathBuf,
}

/// A response with its body read.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn content_type(&self) -> &str {
        self.headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(true).await
    }

    pub async fn start_with(tls: bool) -> Self {
        let shutdown = CancellationToken::new();
        let listen = "127.0.0.1:0".parse().expect("address");
        let server = start(ServerConfig { listen, tls }, shutdown.clone())
            .await
            .expect("server starts");
        let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(ca) = &server.ca_pem {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(ca.as_bytes()).expect("CA PEM"),
            );
        }
        let client = builder.build().expect("client");
        let dir = std::env::temp_dir().join(format!("mc-apiserver-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        std::fs::write(dir.join("kubeconfig"), server.kubeconfig_yaml()).expect("kubeconfig");
        Self {
            server,
            shutdown,
            client,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.url)
    }

    /// A request carrying the server's token.
    pub fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let mut r = self.client.request(method, self.url(path));
        if let Some(t) = &self.server.token {
            r = r.bearer_auth(t);
        }
        r
    }

    pub async fn send(&self, r: reqwest::RequestBuilder) -> Resp {
        let resp = r.send().await.expect("request is answered");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.req(reqwest::Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Resp {
        self.send(self.req(reqwest::Method::POST, path).json(body))
            .await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.send(self.req(reqwest::Method::PUT, path).json(body))
            .await
    }

    pub async fn patch(&self, path: &str, content_type: &str, body: &str) -> Resp {
        self.send(
            self.req(reqwest::Method::PATCH, path)
                .header("content-type", content_type)
                .body(body.to_string()),
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.req(reqwest::Method::DELETE, path)).await
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }

    /// Runs `kubectl` against this server with a fresh discovery cache; fails the test after
    /// 60 seconds.
    pub async fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_stdin(args, None).await
    }

    pub async fn kubectl_stdin(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = tokio::process::Command::new("kubectl");
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.join("cache"))
            .args(args)
            .env("HOME", &self.dir)
            .stdin(if stdin.is_some() {
                std::process::Stdio::piped()
            } else {
                std::process::Stdio::null()
            })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("kubectl runs");
        if let Some(input) = stdin {
            use tokio::io::AsyncWriteExt;
            let mut pipe = child.stdin.take().expect("stdin");
            pipe.write_all(input.as_bytes()).await.expect("write stdin");
            drop(pipe);
        }
        tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} timed out"))
            .expect("kubectl output")
    }

    /// Runs kubectl and asserts success, returning stdout.
    pub async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a file into the scratch directory and returns its path.
    pub fn file(&self, name: &str, content: &str) -> String {
        let p = self.dir.join(name);
        std::fs::write(&p, content).expect("write file");
        p.to_string_lossy().into_owned()
    }

    /// Stops the server and waits (bounded) for serving to end.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let dir = self.dir.clone();
        let server = self.server;
        tokio::time::timeout(Duration::from_secs(15), server.stopped())
            .await
            .expect("server stops in time");
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// Whether `kubectl` can be run here; prints why a test is skipped otherwise.
pub fn have_kubectl() -> bool {
    let ok = std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipping: kubectl is not on PATH");
    }
    ok
}

/// The path of a seed example file.
pub fn example(path: &str) -> String {
    format!("{}/../../examples/{path}", env!("CARGO_MANIFEST_DIR"))
}

pub fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

pub const WIDGET_CRD: &str = r#"{
  "apiVersion": "apiextensions.k8s.io/v1",
  "kind": "CustomResourceDefinition",
  "metadata": {"name": "widgets.example.com"},
  "spec": {
    "group": "example.com",
    "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "shortNames": ["wd"]},
    "scope": "Namespaced",
    "versions": [{
      "name": "v1", "served": true, "storage": true,
      "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
      "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
      "additionalPrinterColumns": [{"name": "Size", "type": "string", "jsonPath": ".spec.size"}]
    }]
  }
}"#;

/// Creates the `widgets.example.com` CRD through the API and checks it was accepted.
pub async fn create_widget_crd(s: &TestServer) {
    let crd: Value = serde_json::from_str(WIDGET_CRD).expect("crd json");
    let r = s
        .post(
            "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
            &crd,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
}
