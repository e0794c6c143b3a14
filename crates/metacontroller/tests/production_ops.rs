//! Running in production: the built binary in cluster mode against `metacontroller dev
//! --server-only`, observed from outside through its metrics and probe endpoints, the API
//! and signals.
//!
//! - leader election: one active replica, failover after the Lease expires;
//! - probes and metrics: readiness waits for the caches; the named series count syncs;
//! - graceful shutdown: SIGTERM lets an in-flight sync finish, and the bound holds;
//! - `--target-label-selector` splits controllers between instances;
//! - the production manifests render, apply (server dry run) and use only known flags.
//!
//! Every process is started here and stopped by its own handle; every wait is bounded.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{sleep, Instant};

mod common;

use common::resource;

/// The longest any single wait may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

/// Leader election timing for tests: the real defaults (15s/10s/2s) scaled down.
const LEASE: Duration = Duration::from_secs(4);
const LEADER_ARGS: [&str; 5] = [
    "--leader-election",
    "--leader-election-namespace=default",
    "--leader-election-lease-duration=4s",
    "--leader-election-renew-deadline=3s",
    "--leader-election-retry-period=500ms",
];

fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_metacontroller")
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "mc-production-{name}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("create scratch dir");
        Scratch(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A process started by this test; killed (by its own handle) when dropped.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn spawn(args: &[String], log: PathBuf) -> Proc {
        let file = std::fs::File::create(&log).expect("create log");
        let child = Command::new(binary())
            .args(args)
            .env("RUST_LOG", "info,metacontroller=debug")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log handle"))
            .stderr(file)
            .spawn()
            .expect("start metacontroller");
        Proc { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends SIGTERM to this process.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
    }

    /// Waits for the process to exit, up to `limit`.
    async fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound and released; the OS does not hand it out again at once).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// Polls `probe` every 50ms until it yields a value, failing after `limit`.
async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
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

/// `metacontroller dev --server-only` and a client for it.
struct ApiServer {
    _proc: Proc,
    kubeconfig: PathBuf,
    client: Client,
}

async fn client_for(kubeconfig: &Path) -> Client {
    let kubeconfig = Kubeconfig::read_from(kubeconfig).expect("read kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("load kubeconfig");
    Client::try_from(config).expect("client")
}

impl ApiServer {
    async fn start(scratch: &Scratch) -> ApiServer {
        let kubeconfig = scratch.path("server.kubeconfig");
        let proc = Proc::spawn(
            &[
                "dev".into(),
                "--server-only".into(),
                "--listen=127.0.0.1:0".into(),
                format!("--kubeconfig-out={}", kubeconfig.display()),
            ],
            scratch.path("server.log"),
        );
        wait_for("the API server's kubeconfig", WAIT, || async {
            kubeconfig.exists().then_some(())
        })
        .await;
        let client = client_for(&kubeconfig).await;
        ApiServer {
            _proc: proc,
            kubeconfig,
            client,
        }
    }
}

/// An engine process in cluster mode with its metrics and probe ports.
struct Engine {
    proc: Proc,
    metrics: u16,
    health: u16,
}

impl Engine {
    fn start(scratch: &Scratch, name: &str, kubeconfig: &Path, extra: &[&str]) -> Engine {
        let (metrics, health) = (free_port(), free_port());
        let mut args = vec![
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--metrics-address=127.0.0.1:{metrics}"),
            format!("--health-probe-bind-address=127.0.0.1:{health}"),
            "--discovery-interval=500ms".into(),
            "--client-go-qps=200".into(),
            "--client-go-burst=400".into(),
            "--workers=2".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let proc = Proc::spawn(&args, scratch.path(&format!("{name}.log")));
        Engine {
            proc,
            metrics,
            health,
        }
    }

    async fn metrics(&self) -> String {
        get(self.metrics, "/metrics")
            .await
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// `/readyz`'s status code, if the endpoint answers.
    async fn readyz(&self) -> Option<u16> {
        get(self.health, "/readyz").await.map(|(code, _)| code)
    }

    async fn wait_ready(&self) {
        wait_for("the engine to report ready", WAIT, || async {
            (self.readyz().await == Some(200)).then_some(())
        })
        .await;
    }
}

/// A plain HTTP GET on loopback: `(status, body)`, or `None` if nothing answers.
async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.ok()?;
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.ok()?;
        let text = String::from_utf8_lossy(&response).into_owned();
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
        Some((code, body))
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

/// The value of the sample whose name and labels are exactly `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

type Responder = Arc<dyn Fn(&Value) -> (Value, Duration) + Send + Sync>;

/// A sync hook on loopback; counts calls as they arrive (before any delay).
struct Hook {
    url: String,
    calls: Arc<AtomicUsize>,
}

impl Hook {
    async fn start(responder: Responder) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hook");
        let url = format!("http://{}/sync", listener.local_addr().expect("addr"));
        let calls = Arc::new(AtomicUsize::new(0));
        let counter = calls.clone();
        // Ends with the test's runtime.
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (counter, responder) = (counter.clone(), responder.clone());
                tokio::spawn(async move {
                    let Some(body) = read_body(&mut stream).await else {
                        return;
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let (reply, delay) = responder(&request);
                    sleep(delay).await;
                    let text = reply.to_string();
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        text.len()
                    );
                    let _ = stream.write_all(head.as_bytes()).await;
                    let _ = stream.write_all(text.as_bytes()).await;
                    let _ = stream.shutdown().await;
                });
            }
        });
        Hook { url, calls }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

/// Reads one HTTP/1.1 request's body (bounded to 16 MiB).
async fn read_body(stream: &mut TcpStream) -> Option<Vec<u8>> {
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
    let head = String::from_utf8_lossy(&buf[..header_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
        .min(16 << 20);
    while buf.len() < header_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(buf[header_end..header_end + length].to_vec())
}

/// A hook giving each ConfigMap parent `count` ConfigMap children carrying the parent's
/// `data.value`, after `delay` for parents whose name starts with `slow`.
fn children_hook(count: usize, delay: Duration) -> Responder {
    Arc::new(move |req: &Value| {
        let parent = &req["parent"];
        let name = parent["metadata"]["name"].as_str().unwrap_or("");
        let value = parent["data"]["value"].clone();
        let children: Vec<Value> = (0..count)
            .map(|i| {
                json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("{name}-child-{i}")},
                    "data": {"value": value}
                })
            })
            .collect();
        let wait = if name.starts_with("slow") {
            delay
        } else {
            Duration::ZERO
        };
        (json!({"children": children}), wait)
    })
}

fn controllers(client: &Client) -> Api<DynamicObject> {
    let r = resource(
        "metacontroller.k8s.io",
        "v1alpha1",
        "CompositeController",
        "compositecontrollers",
    );
    Api::all_with(client.clone(), &r)
}

fn configmaps(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "default",
        &resource("", "v1", "ConfigMap", "configmaps"),
    )
}

fn leases(client: &Client) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        "default",
        &resource("coordination.k8s.io", "v1", "Lease", "leases"),
    )
}

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("valid object")
}

/// A CompositeController named `name` for ConfigMaps labelled `role=<name>`, with ConfigMap
/// children, labelled `labels`.
async fn create_controller(client: &Client, name: &str, hook: &str, labels: Value) {
    controllers(client)
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "metacontroller.k8s.io/v1alpha1", "kind": "CompositeController",
                "metadata": {"name": name, "labels": labels},
                "spec": {
                    "generateSelector": true,
                    "parentResource": {"apiVersion": "v1", "resource": "configmaps",
                                       "labelSelector": {"matchLabels": {"role": name}}},
                    "childResources": [{"apiVersion": "v1", "resource": "configmaps",
                                        "updateStrategy": {"method": "InPlace"}}],
                    "hooks": {"sync": {"webhook": {"url": hook, "timeout": "30s"}}}
                }
            })),
        )
        .await
        .expect("create CompositeController");
}

/// A parent ConfigMap for controller `controller`.
async fn create_parent(client: &Client, controller: &str, name: &str, value: &str) -> String {
    let parent = configmaps(client)
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "labels": {"role": controller}},
                "data": {"value": value}
            })),
        )
        .await
        .expect("create parent");
    parent.metadata.uid.expect("uid")
}

async fn set_parent_value(client: &Client, name: &str, value: &str) {
    configmaps(client)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"value": value}})),
        )
        .await
        .expect("patch parent");
}

/// The `data.value` of ConfigMap `name`, if it exists.
async fn value_of(client: &Client, name: &str) -> Option<String> {
    let cm = configmaps(client).get_opt(name).await.ok()??;
    cm.data["data"]["value"].as_str().map(str::to_string)
}

async fn wait_value(client: &Client, name: &str, value: &str) {
    wait_for(&format!("{name} to hold {value}"), WAIT, || async {
        (value_of(client, name).await.as_deref() == Some(value)).then_some(())
    })
    .await;
}

/// ConfigMaps whose controller owner is `uid`.
async fn children_of(client: &Client, uid: &str) -> Vec<String> {
    let list = configmaps(client)
        .list(&Default::default())
        .await
        .expect("list configmaps");
    list.items
        .into_iter()
        .filter(|cm| {
            cm.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|r| r.uid == uid && r.controller == Some(true))
        })
        .filter_map(|cm| cm.metadata.name)
        .collect()
}

async fn lease_holder(client: &Client) -> Option<String> {
    let lease = leases(client).get_opt("metacontroller").await.ok()??;
    lease.data["spec"]["holderIdentity"]
        .as_str()
        .filter(|h| !h.is_empty())
        .map(str::to_string)
}

/// Writes (POST, PUT, PATCH, DELETE) an engine made through its API client.
fn engine_writes(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("rest_client_requests_total{"))
        .filter(|l| {
            ["POST", "PUT", "PATCH", "DELETE"]
                .iter()
                .any(|m| l.contains(&format!("method=\"{m}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_election_keeps_one_active_replica_and_fails_over() {
    let scratch = Scratch::new("leader");
    let server = ApiServer::start(&scratch).await;
    let client = &server.client;
    let hook = Hook::start(children_hook(1, Duration::ZERO)).await;
    let mut engines = vec![
        Engine::start(&scratch, "a", &server.kubeconfig, &LEADER_ARGS),
        Engine::start(&scratch, "b", &server.kubeconfig, &LEADER_ARGS),
    ];
    create_controller(client, "le", &hook.url, json!({})).await;
    let uid = create_parent(client, "le", "p1", "one").await;
    wait_value(client, "p1-child-0", "one").await;
    let first_holder = wait_for("a lease holder", WAIT, || lease_holder(client)).await;

    // Exactly one replica leads; the other is a ready standby that wrote nothing.
    let leader = wait_for("one replica to report leading", WAIT, || async {
        let mut leading = Vec::new();
        for (i, engine) in engines.iter().enumerate() {
            let m = engine.metrics().await;
            if sample(&m, "leader_election_master_status{name=\"metacontroller\"}") == Some(1.0) {
                leading.push(i);
            }
        }
        (leading.len() == 1).then(|| leading[0])
    })
    .await;
    let standby = 1 - leader;
    engines[standby].wait_ready().await;
    let standby_metrics = engines[standby].metrics().await;
    assert_eq!(
        sample(
            &standby_metrics,
            "leader_election_master_status{name=\"metacontroller\"}"
        ),
        Some(0.0)
    );
    assert_eq!(engine_writes(&standby_metrics), 0.0, "{standby_metrics}");
    assert!(
        !standby_metrics.contains("controller_runtime_reconcile_total{controller=\"le\""),
        "the standby synced: {standby_metrics}"
    );
    assert!(engine_writes(&engines[leader].metrics().await) > 0.0);

    // Kill the leader outright: the standby takes over once the Lease expires.
    let killed_at = Instant::now();
    let old = engines.remove(leader);
    drop(old);
    let new_holder = wait_for("the standby to take the lease", WAIT, || async {
        lease_holder(client).await.filter(|h| *h != first_holder)
    })
    .await;
    let handover = killed_at.elapsed();
    assert!(
        handover < LEASE + Duration::from_secs(3),
        "handover took {handover:?}"
    );
    let lease = leases(client).get("metacontroller").await.expect("lease");
    assert!(lease.data["spec"]["leaseTransitions"].as_i64() >= Some(1));
    assert_eq!(lease.data["spec"]["leaseDurationSeconds"], 4);
    assert!(lease.data["spec"]["renewTime"].as_str().is_some());
    assert!(!new_holder.is_empty());

    // The new leader syncs; the child is updated in place, never duplicated.
    set_parent_value(client, "p1", "two").await;
    wait_value(client, "p1-child-0", "two").await;
    assert_eq!(children_of(client, &uid).await, ["p1-child-0"]);
    let survivor = &engines[0];
    let m = survivor.metrics().await;
    assert_eq!(
        sample(&m, "leader_election_master_status{name=\"metacontroller\"}"),
        Some(1.0),
        "{}",
        survivor.proc.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_the_lease_exits_non_zero_at_once() {
    let scratch = Scratch::new("lost");
    let server = ApiServer::start(&scratch).await;
    let client = &server.client;
    let mut engine = Engine::start(&scratch, "leader", &server.kubeconfig, &LEADER_ARGS);
    wait_for("a lease holder", WAIT, || lease_holder(client)).await;
    engine.wait_ready().await;
    // Another candidate takes the Lease over (as after a network partition).
    let mut lease = leases(client).get("metacontroller").await.expect("lease");
    lease.data["spec"]["holderIdentity"] = json!("intruder");
    lease.data["spec"]["leaseDurationSeconds"] = json!(60);
    leases(client)
        .replace("metacontroller", &PostParams::default(), &lease)
        .await
        .expect("take the lease over");
    let taken = Instant::now();
    let status = engine
        .proc
        .wait_exit(WAIT)
        .await
        .expect("the former leader exits");
    assert_eq!(status.code(), Some(1), "{}", engine.proc.log());
    // It noticed at its next renewal, well within the renew deadline.
    assert!(
        taken.elapsed() < Duration::from_secs(3),
        "{:?}",
        taken.elapsed()
    );
    assert!(engine.proc.log().contains("leader lease lost"));
    assert_eq!(lease_holder(client).await.as_deref(), Some("intruder"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_cannot_renew_gives_up_after_the_renew_deadline() {
    let scratch = Scratch::new("unreachable");
    let server = ApiServer::start(&scratch).await;
    let client = server.client.clone();
    let mut engine = Engine::start(&scratch, "leader", &server.kubeconfig, &LEADER_ARGS);
    wait_for("a lease holder", WAIT, || lease_holder(&client)).await;
    engine.wait_ready().await;
    // The API server goes away: renewals fail until the 3s renew deadline passes.
    let gone = Instant::now();
    drop(server);
    let status = engine.proc.wait_exit(WAIT).await.expect("the leader exits");
    let elapsed = gone.elapsed();
    assert_eq!(status.code(), Some(1), "{}", engine.proc.log());
    assert!(
        elapsed >= Duration::from_millis(2500) && elapsed < Duration::from_secs(8),
        "gave up after {elapsed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_releases_the_lease_for_an_immediate_handover() {
    let scratch = Scratch::new("release");
    let server = ApiServer::start(&scratch).await;
    let client = &server.client;
    let args = [
        "--leader-election",
        "--leader-election-namespace=default",
        // Long enough that only a release explains a quick handover.
        "--leader-election-lease-duration=60s",
        "--leader-election-renew-deadline=40s",
        "--leader-election-retry-period=500ms",
    ];
    let mut first = Engine::start(&scratch, "first", &server.kubeconfig, &args);
    let holder = wait_for("a lease holder", WAIT, || lease_holder(client)).await;
    let second = Engine::start(&scratch, "second", &server.kubeconfig, &args);
    second.wait_ready().await;
    first.proc.terminate();
    let status = first
        .proc
        .wait_exit(WAIT)
        .await
        .expect("the leader exits after SIGTERM");
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        first.proc.log()
    );
    let stopped = Instant::now();
    wait_for(
        "the second replica to take the released lease",
        WAIT,
        || async { lease_holder(client).await.filter(|h| *h != holder) },
    )
    .await;
    assert!(stopped.elapsed() < Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_waits_for_caches_and_metrics_count_syncs() {
    let scratch = Scratch::new("ready");
    // The engine starts before its API server exists, so its caches cannot sync.
    let port = free_port();
    let kubeconfig = scratch.path("plain.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: dev\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: dev\n  context:\n    cluster: dev\n    user: dev\n    namespace: default\ncurrent-context: dev\nusers:\n- name: dev\n  user: {{}}\n"
        ),
    )
    .expect("write kubeconfig");
    let engine = Engine::start(&scratch, "engine", &kubeconfig, &[]);
    wait_for("/healthz", WAIT, || async {
        (get(engine.health, "/healthz").await?.0 == 200).then_some(())
    })
    .await;
    for _ in 0..10 {
        assert_eq!(
            engine.readyz().await,
            Some(503),
            "ready without an API server"
        );
        sleep(Duration::from_millis(100)).await;
    }

    let _server = Proc::spawn(
        &[
            "dev".into(),
            "--server-only".into(),
            "--insecure-http".into(),
            format!("--listen=127.0.0.1:{port}"),
            format!(
                "--kubeconfig-out={}",
                scratch.path("unused.kubeconfig").display()
            ),
        ],
        scratch.path("server.log"),
    );
    engine.wait_ready().await;
    let m = engine.metrics().await;
    assert_eq!(
        sample(
            &m,
            "metacontroller_informer_synced{resource=\"metacontroller.k8s.io/v1alpha1/compositecontrollers\"}"
        ),
        Some(1.0),
        "{m}"
    );

    let client = client_for(&kubeconfig).await;
    let hook = Hook::start(children_hook(1, Duration::ZERO)).await;
    create_controller(&client, "m", &hook.url, json!({})).await;
    create_parent(&client, "m", "mp", "one").await;
    wait_value(&client, "mp-child-0", "one").await;
    let m = wait_for("sync metrics", WAIT, || async {
        let m = engine.metrics().await;
        (sample(
            &m,
            "controller_runtime_reconcile_total{controller=\"m\",result=\"success\"}",
        ) >= Some(1.0))
        .then_some(m)
    })
    .await;
    for series in [
        "controller_runtime_reconcile_time_seconds_count{controller=\"m\"}",
        "workqueue_adds_total{name=\"CompositeController-m\"}",
        "metacontroller_informer_synced{resource=\"v1/configmaps\"}",
        "metacontroller_ready",
    ] {
        assert!(sample(&m, series) >= Some(1.0), "{series} in {m}");
    }
    for series in [
        "controller_runtime_reconcile_errors_total{controller=\"m\"}",
        "workqueue_depth{name=\"CompositeController-m\"}",
        "workqueue_retries_total{name=\"CompositeController-m\"}",
    ] {
        assert!(sample(&m, series).is_some(), "{series} in {m}");
    }
    assert!(engine_writes(&m) >= 1.0, "{m}");
    let hook_requests: f64 = m
        .lines()
        .filter(|l| l.starts_with("metacontroller_") && l.contains("_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert!(hook_requests >= 1.0, "no hook request counted: {m}");
    assert!(hook.calls() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_sync_finish() {
    let scratch = Scratch::new("drain");
    let server = ApiServer::start(&scratch).await;
    let client = &server.client;
    let hook = Hook::start(children_hook(2, Duration::from_secs(2))).await;
    let mut engine = Engine::start(
        &scratch,
        "engine",
        &server.kubeconfig,
        &["--graceful-shutdown-timeout=15s"],
    );
    engine.wait_ready().await;
    create_controller(client, "drain", &hook.url, json!({})).await;
    let uid = create_parent(client, "drain", "slow", "one").await;
    wait_for("the slow hook call", WAIT, || async {
        (hook.calls() >= 1).then_some(())
    })
    .await;
    let signalled = Instant::now();
    engine.proc.terminate();
    // Draining: not ready while the sync finishes.
    let drained = wait_for("/readyz to fail while draining", WAIT, || async {
        match engine.readyz().await {
            Some(503) => Some(true),
            None => Some(false),
            _ => None,
        }
    })
    .await;
    assert!(drained, "the process exited before reporting unready");
    let status = engine
        .proc
        .wait_exit(Duration::from_secs(20))
        .await
        .expect("exits within the shutdown bound");
    assert!(status.success(), "exit {status:?}: {}", engine.proc.log());
    assert!(
        signalled.elapsed() >= Duration::from_millis(1000),
        "exited before the in-flight hook call returned"
    );
    // The sync that was in flight completed: both children, not one.
    let mut children = children_of(client, &uid).await;
    children.sort();
    assert_eq!(children, ["slow-child-0", "slow-child-1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_when_a_hook_hangs() {
    let scratch = Scratch::new("bound");
    let server = ApiServer::start(&scratch).await;
    let client = &server.client;
    let hook = Hook::start(children_hook(2, Duration::from_secs(60))).await;
    let mut engine = Engine::start(
        &scratch,
        "engine",
        &server.kubeconfig,
        &["--graceful-shutdown-timeout=1s"],
    );
    engine.wait_ready().await;
    create_controller(client, "bound", &hook.url, json!({})).await;
    let uid = create_parent(client, "bound", "slow-hang", "one").await;
    wait_for("the hanging hook call", WAIT, || async {
        (hook.calls() >= 1).then_some(())
    })
    .await;
    let signalled = Instant::now();
    engine.proc.terminate();
    let status = engine
        .proc
        .wait_exit(Duration::from_secs(15))
        .await
        .expect("exits despite the hanging hook");
    assert!(
        signalled.elapsed() < Duration::from_secs(8),
        "took {:?}",
        signalled.elapsed()
    );
    assert!(status.success(), "exit {status:?}: {}", engine.proc.log());
    assert!(children_of(client, &uid).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_label_selector_splits_controllers_between_instances() {
    let scratch = Scratch::new("shards");
    let server = ApiServer::start(&scratch).await;
    let client = &server.client;
    let hook = Hook::start(children_hook(1, Duration::ZERO)).await;
    let a = Engine::start(
        &scratch,
        "a",
        &server.kubeconfig,
        &["--target-label-selector=shard=a"],
    );
    let b = Engine::start(
        &scratch,
        "b",
        &server.kubeconfig,
        &["--target-label-selector", "shard in (b)"],
    );
    create_controller(client, "ca", &hook.url, json!({"shard": "a"})).await;
    create_controller(client, "cb", &hook.url, json!({"shard": "b"})).await;
    create_parent(client, "ca", "pa", "one").await;
    create_parent(client, "cb", "pb", "one").await;
    wait_value(client, "pa-child-0", "one").await;
    wait_value(client, "pb-child-0", "one").await;

    let synced = |m: &str, c: &str| {
        sample(
            m,
            &format!("controller_runtime_reconcile_total{{controller=\"{c}\",result=\"success\"}}"),
        )
        .unwrap_or(0.0)
    };
    let (ma, mb) = (a.metrics().await, b.metrics().await);
    assert!(synced(&ma, "ca") >= 1.0 && synced(&ma, "cb") == 0.0, "{ma}");
    assert!(synced(&mb, "cb") >= 1.0 && synced(&mb, "ca") == 0.0, "{mb}");

    // Relabel cb into a's shard: b stops it, a starts it.
    controllers(client)
        .patch(
            "cb",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"shard": "a"}}})),
        )
        .await
        .expect("relabel cb");
    wait_for("a to take over cb", WAIT, || async {
        (synced(&a.metrics().await, "cb") >= 1.0).then_some(())
    })
    .await;
    let b_before = synced(&b.metrics().await, "cb");
    set_parent_value(client, "pb", "two").await;
    wait_value(client, "pb-child-0", "two").await;
    sleep(Duration::from_millis(500)).await;
    assert_eq!(
        synced(&b.metrics().await, "cb"),
        b_before,
        "b still syncs cb after it left b's shard"
    );
}

/// The repository root.
fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn kubectl(args: &[&str], kubeconfig: Option<&Path>, stdin: Option<&str>) -> (bool, String) {
    let mut command = Command::new("kubectl");
    command.args(args);
    if let Some(path) = kubeconfig {
        command.env("KUBECONFIG", path);
    }
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("run kubectl");
    if let Some(input) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("kubectl output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_manifests_render_apply_and_use_known_flags() {
    let scratch = Scratch::new("manifests");
    let production = repo().join("deploy/production");
    let (ok, rendered) = kubectl(
        &["kustomize", production.to_str().expect("path")],
        None,
        None,
    );
    assert!(ok, "kubectl kustomize failed: {rendered}");
    let server = ApiServer::start(&scratch).await;
    let kubeconfig = Some(server.kubeconfig.as_path());
    // A server-side dry run does not create the namespace the other objects live in.
    let (ok, out) = kubectl(&["create", "namespace", "metacontroller"], kubeconfig, None);
    assert!(ok, "{out}");
    let (ok, out) = kubectl(
        &["apply", "--dry-run=server", "-f", "-"],
        kubeconfig,
        Some(&rendered),
    );
    assert!(ok, "server dry run failed: {out}");
    for kind in [
        "customresourcedefinition.apiextensions.k8s.io/compositecontrollers.metacontroller.k8s.io",
        "clusterrole.rbac.authorization.k8s.io/metacontroller",
        "clusterrolebinding.rbac.authorization.k8s.io/metacontroller",
        "serviceaccount/metacontroller",
        "statefulset.apps/metacontroller",
    ] {
        assert!(out.contains(kind), "{kind} missing from: {out}");
    }

    // The StatefulSet's arguments are accepted by the binary: with a missing kubeconfig it
    // fails on loading it (exit 1), not on the flags (a usage error exits 2).
    let statefulset = rendered
        .split("\n---")
        .find(|doc| doc.contains("kind: StatefulSet"))
        .expect("a StatefulSet");
    let doc: Value = serde_yaml::from_str(statefulset).expect("StatefulSet YAML");
    let container = &doc["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["command"][0], "/usr/bin/metacontroller");
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args: Vec<String> = container["args"]
        .as_array()
        .expect("args")
        .iter()
        .map(|a| a.as_str().expect("string arg").to_string())
        .collect();
    assert!(args.iter().any(|a| a == "--leader-election"));
    let missing = scratch.path("missing.kubeconfig");
    let out = Command::new(binary())
        .args(&args)
        .arg(format!("--kubeconfig={}", missing.display()))
        .stdin(Stdio::null())
        .output()
        .expect("run metacontroller");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("kubeconfig"), "{stderr}");
}
