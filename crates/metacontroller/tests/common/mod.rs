//! Fixtures shared by the engine's component tests: the embedded API server started in-process,
//! a client for it, the engine, a sync hook served on a loopback port, the server's write
//! metrics and bounded waits.
//!
//! Each test binary uses only part of this module.

#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::Client;
use metacontroller_apiserver::ServerConfig;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

/// The longest any single wait may take before the test fails.
pub const WAIT: Duration = Duration::from_secs(30);

pub type Responder = Arc<dyn Fn(&Value) -> (u16, Value) + Send + Sync>;

/// A sync hook served on 127.0.0.1 whose behaviour the test can swap.
pub struct Hook {
    pub url: String,
    calls: Arc<AtomicUsize>,
    responder: Arc<Mutex<Responder>>,
}

impl Hook {
    pub async fn start(responder: Responder, shutdown: CancellationToken) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hook");
        let url = format!("http://{}/sync", listener.local_addr().expect("addr"));
        let calls = Arc::new(AtomicUsize::new(0));
        let responder = Arc::new(Mutex::new(responder));
        let (c, r) = (calls.clone(), responder.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
                };
                let (c, r) = (c.clone(), r.clone());
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut stream).await else {
                        return;
                    };
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    c.fetch_add(1, Ordering::SeqCst);
                    let responder = r.lock().expect("responder").clone();
                    let (code, reply) = responder(&request);
                    // A reply carrying `delayMs` is held back that long (a slow hook).
                    if let Some(ms) = reply.get("delayMs").and_then(Value::as_u64) {
                        sleep(Duration::from_millis(ms)).await;
                    }
                    let text = reply.to_string();
                    // A 429 always asks to come back after one second.
                    let retry = if code == 429 {
                        "retry-after: 1\r\n"
                    } else {
                        ""
                    };
                    let head = format!(
                        "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{retry}connection: close\r\n\r\n",
                        text.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(text.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Hook {
            url,
            calls,
            responder,
        }
    }

    pub fn set(&self, responder: Responder) {
        *self.responder.lock().expect("responder") = responder;
    }

    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP/1.1 request and returns its body (bounded to 16 MiB).
pub async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    if length > 16 << 20 {
        return None;
    }
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[header_end..header_end + length].to_vec())
}

/// Starts the embedded API server (stopped when `shutdown` is cancelled) and returns a client
/// for it built from its kubeconfig.
pub async fn start_api_server(shutdown: &CancellationToken) -> Client {
    let server = metacontroller_apiserver::start(
        ServerConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            tls: false,
        },
        shutdown.clone(),
    )
    .await
    .expect("start API server");
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    let client = Client::try_from(config).expect("client");
    {
        let token = shutdown.clone();
        tokio::spawn(async move {
            token.cancelled().await;
            let _ = tokio::time::timeout(WAIT, server.stopped()).await;
        });
    }
    client
}

/// Installs Metacontroller's CRDs, then `extra`.
pub async fn install_crds(client: &Client, extra: impl IntoIterator<Item = DynamicObject>) {
    let crd_api: Api<DynamicObject> = Api::all_with(client.clone(), &crds());
    for crd in metacontroller_api::crds() {
        crd_api
            .create(&PostParams::default(), &obj(crd))
            .await
            .expect("install Metacontroller CRD");
    }
    for crd in extra {
        crd_api
            .create(&PostParams::default(), &crd)
            .await
            .expect("install a test CRD");
    }
}

/// The engine options the tests run with.
pub fn engine_options() -> metacontroller_engine::EngineOptions {
    metacontroller_engine::EngineOptions {
        discovery_interval: Duration::from_secs(1),
        workers: 2,
        shutdown_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

pub type Engine = tokio::task::JoinHandle<Result<(), metacontroller_engine::Error>>;

/// Runs the engine against `client` until `shutdown` is cancelled.
pub fn spawn_engine(
    client: &Client,
    opts: metacontroller_engine::EngineOptions,
    shutdown: &CancellationToken,
) -> Engine {
    tokio::spawn(metacontroller_engine::run(
        client.clone(),
        opts,
        shutdown.clone(),
    ))
}

/// Waits for an engine whose token was cancelled to end cleanly.
pub async fn join_engine(engine: Engine) {
    let result = tokio::time::timeout(WAIT, engine)
        .await
        .expect("engine stops in time")
        .expect("engine task");
    assert!(result.is_ok(), "engine ended with {result:?}");
}

/// The text the API server serves at `/metrics`.
pub async fn metrics(client: &Client) -> String {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    client.request_text(request).await.expect("metrics")
}

/// Write requests (POST, PUT, PATCH, DELETE) the API server served, events excluded; with
/// `successful_only`, only those that succeeded (2xx).
pub async fn api_writes(client: &Client, successful_only: bool) -> u64 {
    let text = metrics(client).await;
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| !l.contains("resource=\"events\""))
        .filter(|l| !successful_only || l.contains("code=\"2"))
        .filter(|l| {
            ["POST", "PUT", "PATCH", "DELETE"]
                .iter()
                .any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

pub fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

pub fn crds() -> ApiResource {
    resource(
        "apiextensions.k8s.io",
        "v1",
        "CustomResourceDefinition",
        "customresourcedefinitions",
    )
}

pub fn things() -> ApiResource {
    resource("example.com", "v1", "Thing", "things")
}

pub fn configmaps() -> ApiResource {
    resource("", "v1", "ConfigMap", "configmaps")
}

pub fn composite_controllers() -> ApiResource {
    resource(
        "metacontroller.k8s.io",
        "v1alpha1",
        "CompositeController",
        "compositecontrollers",
    )
}

pub fn decorator_controllers() -> ApiResource {
    resource(
        "metacontroller.k8s.io",
        "v1alpha1",
        "DecoratorController",
        "decoratorcontrollers",
    )
}

pub fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("valid object")
}

/// How many objects a hook request's group of children (or attachments) holds, e.g.
/// `count(&req["children"]["ConfigMap.v1"])`; 0 when absent.
pub fn count(group: &Value) -> usize {
    group.as_object().map_or(0, serde_json::Map::len)
}

/// Polls `probe` every 50ms until it yields a value, failing after [`WAIT`].
pub async fn wait_for<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        sleep(Duration::from_millis(50)).await;
    }
}

/// A CRD in `example.com/v1` with a status subresource.
pub fn crd(kind: &str, plural: &str, scope: &str) -> DynamicObject {
    obj(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("{plural}.example.com")},
        "spec": {
            "group": "example.com",
            "scope": scope,
            "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "listKind": format!("{kind}List")},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
            }]
        }
    }))
}

/// The embedded API server, a client for it, and the running engine.
pub struct Env {
    pub client: Client,
    pub shutdown: CancellationToken,
    pub engine: Engine,
    /// The engine's metrics registry.
    pub metrics: std::sync::Arc<metacontroller_engine::metrics::Metrics>,
}

impl Env {
    /// A server with Metacontroller's CRDs and the namespaced `Thing`, and the engine running
    /// against it.
    pub async fn start() -> Env {
        Env::start_with([crd("Thing", "things", "Namespaced")]).await
    }

    /// A server with Metacontroller's CRDs and `test_crds`, and the engine running against it.
    pub async fn start_with(test_crds: impl IntoIterator<Item = DynamicObject>) -> Env {
        Env::start_with_options(test_crds, engine_options()).await
    }

    /// [`Env::start_with`], the engine running with `opts`.
    pub async fn start_with_options(
        test_crds: impl IntoIterator<Item = DynamicObject>,
        opts: metacontroller_engine::EngineOptions,
    ) -> Env {
        let shutdown = CancellationToken::new();
        let client = start_api_server(&shutdown).await;
        install_crds(&client, test_crds).await;
        let metrics = opts.metrics.clone();
        let engine = spawn_engine(&client, opts, &shutdown);
        Env {
            client,
            shutdown,
            engine,
            metrics,
        }
    }

    /// Things in the `default` namespace.
    pub fn things(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), "default", &things())
    }

    /// ConfigMaps in the `default` namespace.
    pub fn configmaps(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), "default", &configmaps())
    }

    /// Write requests (POST, PUT, PATCH, DELETE) the API server served, events excluded.
    pub async fn write_count(&self) -> u64 {
        api_writes(&self.client, false).await
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        join_engine(self.engine).await;
    }

    /// Creates the CompositeController `name` with `spec`.
    pub async fn create_composite(&self, name: &str, spec: Value) {
        self.create_metacontroller(&composite_controllers(), "CompositeController", name, spec)
            .await;
    }

    /// Creates the DecoratorController `name` with `spec`.
    pub async fn create_decorator(&self, name: &str, spec: Value) {
        self.create_metacontroller(&decorator_controllers(), "DecoratorController", name, spec)
            .await;
    }

    async fn create_metacontroller(&self, r: &ApiResource, kind: &str, name: &str, spec: Value) {
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), r);
        api.create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "metacontroller.k8s.io/v1alpha1",
                "kind": kind,
                "metadata": {"name": name},
                "spec": spec
            })),
        )
        .await
        .unwrap_or_else(|e| panic!("create {kind}: {e}"));
    }

    /// Waits until neither the server's writes nor `hooks`' calls moved for a second.
    pub async fn settle(&self, hooks: &[&Hook]) {
        let deadline = Instant::now() + WAIT;
        let snapshot = || async {
            (
                self.write_count().await,
                hooks.iter().map(|h| h.calls()).sum::<usize>(),
            )
        };
        let mut last = snapshot().await;
        let mut since = Instant::now();
        loop {
            sleep(Duration::from_millis(200)).await;
            let now = snapshot().await;
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed() >= Duration::from_secs(1) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the engine never settled: writes and hook calls still moving ({last:?})"
            );
        }
    }

    /// After [`Env::settle`], asserts that a `window` brings no write (events excluded) and no
    /// hook call.
    pub async fn assert_quiet(&self, hooks: &[&Hook], window: Duration) {
        self.settle(hooks).await;
        let writes = self.write_count().await;
        let calls: Vec<usize> = hooks.iter().map(|h| h.calls()).collect();
        sleep(window).await;
        assert_eq!(
            self.write_count().await - writes,
            0,
            "writes while nothing changed"
        );
        let now: Vec<usize> = hooks.iter().map(|h| h.calls()).collect();
        assert_eq!(now, calls, "hook calls while nothing changed");
    }

    /// Events about the object called `name` with `reason`.
    pub async fn events_about(&self, name: &str, reason: &str) -> Vec<Value> {
        let events: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &resource("events.k8s.io", "v1", "Event", "events"),
        );
        let list = events
            .list(&kube::api::ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.into_iter()
            .filter(|e| e.data["regarding"]["name"] == name && e.data["reason"] == reason)
            .map(|e| e.data)
            .collect()
    }
}

/// Installs a log subscriber for this test binary that writes, at `filter`'s level, into the
/// returned buffer. One per process: later calls return the same buffer (and keep the first
/// call's filter).
pub fn capture_logs(filter: &str) -> Arc<Mutex<Vec<u8>>> {
    static LOGS: std::sync::OnceLock<Arc<Mutex<Vec<u8>>>> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_ansi(false)
            .with_writer(move || LogCapture(writer.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        buf
    })
    .clone()
}

struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
