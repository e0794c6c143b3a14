//! `engine-load`: how fast the engine brings many CompositeController parents to convergence,
//! with how many API calls, and in how much memory.
//!
//! ```text
//!  metacontroller dev --server-only  (a separate process: the API server)
//!        ▲ list/watch, writes                ▲ creates parents, watches progress, /metrics
//!        │                                   │
//!  ┌─ this process ───────────────────────────────────────────────────────────────┐
//!  │ engine (metacontroller_engine::run) ──► sync hook (served here, answers at once)│
//!  │ harness: N parent creates, a watch on parents and children, memory readings     │
//!  └─────────────────────────────────────────────────────────────────────────────────┘
//! ```
//!
//! One CRD with a status subresource, one CompositeController with `generateSelector: true`
//! and one ConfigMap child per parent. The hook wants one child and reports how many children
//! it observed; a parent is converged once its child exists and its status says it observed
//! one child. The server runs in its own process so that this process's resident memory is
//! the engine's (plus the small harness). API calls come from the server's `/metrics` before
//! the first create and after convergence; the harness's own calls in that window (the parent
//! creates) are shown apart. Every wait is bounded by `--time-limit-secs`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use kube::api::{Api, DynamicObject, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::time::{sleep, timeout, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Parser, Debug)]
#[command(
    name = "engine-load",
    about = "CompositeController benchmark: convergence time, API calls and engine memory"
)]
struct Args {
    /// Parents to create (each gets one ConfigMap child and a status).
    #[arg(long, default_value_t = 1_000)]
    parents: usize,
    /// Engine workers for the controller (`--workers`).
    #[arg(long, default_value_t = 5)]
    workers: usize,
    /// Concurrent connections creating parents.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// The `metacontroller` binary that serves the API (default: next to this binary).
    #[arg(long)]
    metacontroller_bin: Option<PathBuf>,
    /// After convergence, wait this long before reading the API call counts, so that late
    /// writes are counted too.
    #[arg(long, default_value_t = 1_000)]
    settle_ms: u64,
    /// The whole run stops after this many seconds, converged or not.
    #[arg(long, default_value_t = 60)]
    time_limit_secs: u64,
}

/// Namespace of parents and children.
const NAMESPACE: &str = "default";
/// Label every child carries, so the harness watches only children.
const CHILD_LABEL: (&str, &str) = ("app", "engine-load");
/// How long the API server process may take to write its kubeconfig.
const SERVER_START: Duration = Duration::from_secs(30);
/// How long the engine may take to list and watch the parents and children.
const ENGINE_START: Duration = Duration::from_secs(30);
/// How long the engine may take to stop.
const ENGINE_STOP: Duration = Duration::from_secs(10);

fn loads() -> ApiResource {
    ApiResource {
        group: "bench.metacontroller.io".into(),
        version: "v1".into(),
        api_version: "bench.metacontroller.io/v1".into(),
        kind: "Load".into(),
        plural: "loads".into(),
    }
}

fn configmaps() -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        plural: "configmaps".into(),
    }
}

fn obj(v: Value) -> anyhow::Result<DynamicObject> {
    serde_json::from_value(v).context("building an object")
}

// ---------------------------------------------------------------------------------------
// The API server process

/// `metacontroller dev --server-only` in a child process, stopped on drop.
struct ServerProcess {
    child: tokio::process::Child,
    dir: PathBuf,
}

impl ServerProcess {
    async fn start(bin: &Path, deadline: Instant) -> anyhow::Result<(ServerProcess, Client)> {
        let dir = std::env::temp_dir().join(format!("engine-load-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let kubeconfig = dir.join("kubeconfig");
        let child = tokio::process::Command::new(bin)
            .args(["dev", "--server-only", "--listen", "127.0.0.1:0"])
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(["--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = ServerProcess { child, dir };
        let until = deadline.min(Instant::now() + SERVER_START);
        loop {
            if kubeconfig.exists() {
                break;
            }
            if let Some(status) = server.child.try_wait()? {
                bail!("the API server exited early: {status}");
            }
            if Instant::now() >= until {
                bail!("the API server wrote no kubeconfig within {SERVER_START:?}");
            }
            sleep(Duration::from_millis(20)).await;
        }
        let text = std::fs::read_to_string(&kubeconfig).context("reading the kubeconfig")?;
        let client = client_from(&text).await?;
        Ok((server, client))
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM lets the server stop by itself; it is killed if it takes too long.
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn client_from(kubeconfig: &str) -> anyhow::Result<Client> {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig).context("parsing the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("loading the kubeconfig")?;
    Client::try_from(config).context("building a client")
}

fn default_server_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let bin = exe
        .parent()
        .context("this binary has no directory")?
        .join("metacontroller");
    if !bin.exists() {
        bail!(
            "{} not found: build it (cargo build --release -p metacontroller) or pass --metacontroller-bin",
            bin.display()
        );
    }
    Ok(bin)
}

// ---------------------------------------------------------------------------------------
// The sync hook

/// Serves the sync hook on `listener` until `shutdown`: one ConfigMap child per parent and a
/// status with the number of children observed. Keep-alive HTTP/1.1, as the engine reuses
/// connections.
async fn serve_hook(listener: TcpListener, calls: Arc<AtomicU64>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => return,
            },
        };
        let calls = calls.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let calls = calls.clone();
                async move { Ok::<_, Infallible>(hook_reply(req, &calls).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

async fn hook_reply(req: Request<Incoming>, calls: &AtomicU64) -> Response<Full<Bytes>> {
    calls.fetch_add(1, Ordering::Relaxed);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(400, json!({"error": "unreadable body"})),
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return reply(400, json!({"error": "invalid JSON"}));
    };
    let name = request["parent"]["metadata"]["name"]
        .as_str()
        .unwrap_or_default();
    let observed = request["children"]["ConfigMap.v1"]
        .as_object()
        .map_or(0, |m| m.len());
    reply(
        200,
        json!({
            "status": {"observedChildren": observed},
            "children": [{
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("{name}-child"), "labels": {CHILD_LABEL.0: CHILD_LABEL.1}},
                "data": {"parent": name}
            }]
        }),
    )
}

fn reply(code: u16, body: Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_string())));
    *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or_default();
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

// ---------------------------------------------------------------------------------------
// Progress: which parents have their child and their status

#[derive(Default)]
struct Progress {
    created_at: HashMap<String, Instant>,
    with_child: HashSet<String>,
    with_status: HashSet<String>,
    /// Time from a parent's create to its convergence.
    latencies: Vec<Duration>,
    converged: HashSet<String>,
}

impl Progress {
    fn check(&mut self, parent: &str) {
        if self.with_child.contains(parent)
            && self.with_status.contains(parent)
            && self.converged.insert(parent.to_string())
        {
            if let Some(at) = self.created_at.get(parent) {
                self.latencies.push(at.elapsed());
            }
        }
    }
}

struct Tracker {
    progress: Mutex<Progress>,
    target: usize,
    done: Notify,
}

impl Tracker {
    fn update(&self, f: impl FnOnce(&mut Progress)) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut p);
        if p.converged.len() >= self.target {
            self.done.notify_one();
        }
    }

    fn converged(&self) -> usize {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .converged
            .len()
    }
}

/// Follows `api` from `resource_version` until `deadline`, feeding every added or modified
/// object to `on_object`; re-watches when the server ends a watch.
async fn follow(
    api: Api<DynamicObject>,
    params: WatchParams,
    mut resource_version: String,
    deadline: Instant,
    on_object: impl Fn(&DynamicObject),
) {
    // Each watch lasts up to the server's timeout; a few dozen restarts cover any run.
    for _ in 0..100 {
        if Instant::now() >= deadline {
            return;
        }
        let Ok(stream) = api.watch(&params, &resource_version).await else {
            sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = std::pin::pin!(stream);
        loop {
            let next = match timeout(
                deadline.saturating_duration_since(Instant::now()),
                stream.try_next(),
            )
            .await
            {
                Ok(Ok(Some(event))) => event,
                Ok(_) => break,
                Err(_) => return,
            };
            match next {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    if let Some(rv) = &o.metadata.resource_version {
                        resource_version.clone_from(rv);
                    }
                    on_object(&o);
                }
                WatchEvent::Bookmark(b) => resource_version = b.metadata.resource_version,
                WatchEvent::Deleted(_) => {}
                WatchEvent::Error(_) => break,
            }
        }
    }
}

async fn start_tracking(
    client: &Client,
    tracker: Arc<Tracker>,
    deadline: Instant,
) -> anyhow::Result<()> {
    let parents: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &loads());
    let children: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &configmaps());
    let label = format!("{}={}", CHILD_LABEL.0, CHILD_LABEL.1);
    let rv_parents = parents
        .list(&ListParams::default())
        .await
        .context("listing parents")?
        .metadata
        .resource_version
        .unwrap_or_default();
    let rv_children = children
        .list(&ListParams::default().labels(&label))
        .await
        .context("listing children")?
        .metadata
        .resource_version
        .unwrap_or_default();
    let t = tracker.clone();
    tokio::spawn(follow(
        parents,
        WatchParams::default(),
        rv_parents,
        deadline,
        move |o| {
            if o.data["status"]["observedChildren"] == 1 {
                let name = o.metadata.name.clone().unwrap_or_default();
                t.update(|p| {
                    p.with_status.insert(name.clone());
                    p.check(&name);
                });
            }
        },
    ));
    tokio::spawn(follow(
        children,
        WatchParams::default().labels(&label),
        rv_children,
        deadline,
        move |o| {
            let Some(parent) = o.data["data"]["parent"].as_str().map(str::to_string) else {
                return;
            };
            tracker.update(|p| {
                p.with_child.insert(parent.clone());
                p.check(&parent);
            });
        },
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Measurements

/// `VmRSS` and `VmHWM` of a process, in bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Memory {
    rss: u64,
    hwm: u64,
}

fn memory_of(pid: Option<u32>) -> Option<Memory> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let text = std::fs::read_to_string(path).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kb * 1024)
    };
    Some(Memory {
        rss: field("VmRSS:")?,
        hwm: field("VmHWM:")?,
    })
}

/// How requests to non-resource paths (the harness's `/metrics` reads) are listed.
const NON_RESOURCE: &str = "(non-resource)";

/// `apiserver_request_total` summed by (verb, resource[/subresource]).
type Calls = BTreeMap<(String, String), u64>;

async fn api_calls(client: &Client) -> anyhow::Result<Calls> {
    let request = Request::get("/metrics")
        .body(Vec::new())
        .context("building a request")?;
    let text = client
        .request_text(request)
        .await
        .context("reading /metrics")?;
    let mut calls = Calls::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let label = |name: &str| -> String {
            let key = format!("{name}=\"");
            line.split_once(&key)
                .and_then(|(_, rest)| rest.split_once('"'))
                .map(|(v, _)| v.to_string())
                .unwrap_or_default()
        };
        let Some(n) = line.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()) else {
            continue;
        };
        let mut resource = label("resource");
        let sub = label("subresource");
        if resource.is_empty() {
            resource = NON_RESOURCE.to_string();
        } else if !sub.is_empty() {
            resource = format!("{resource}/{sub}");
        }
        *calls.entry((label("verb"), resource)).or_default() += n;
    }
    Ok(calls)
}

fn diff(before: &Calls, after: &Calls) -> Calls {
    after
        .iter()
        .filter_map(|(k, n)| {
            let d = n.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

fn is_write(verb: &str) -> bool {
    matches!(verb, "POST" | "PUT" | "PATCH" | "DELETE")
}

/// The engine's reconcile count by result, from its in-process metrics.
fn reconciles(metrics: &metacontroller_engine::metrics::Metrics) -> BTreeMap<String, u64> {
    let mut text = String::new();
    metrics.render(&mut text);
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("controller_runtime_reconcile_total{"))
    {
        let result = line
            .split_once("result=\"")
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(v, _)| v.to_string())
            .unwrap_or_default();
        if let Some(n) = line.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()) {
            *out.entry(result).or_default() += n;
        }
    }
    out
}

/// Waits until the server has watches open on both the parents and the children from two
/// clients: the harness's and the engine's (so the engine's caches hold their initial lists).
async fn wait_engine_watching(client: &Client, until: Instant) -> anyhow::Result<()> {
    loop {
        let request = Request::get("/metrics")
            .body(Vec::new())
            .context("building a request")?;
        let text = client
            .request_text(request)
            .await
            .context("reading /metrics")?;
        let watchers = |kind: &str| -> u64 {
            text.lines()
                .filter(|l| l.starts_with("apiserver_registered_watchers{"))
                .filter(|l| l.contains(&format!("kind=\"{kind}\"")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum()
        };
        if watchers("Load") >= 2 && watchers("ConfigMap") >= 2 {
            return Ok(());
        }
        if Instant::now() >= until {
            bail!("the engine did not watch parents and children within {ENGINE_START:?}");
        }
        sleep(Duration::from_millis(20)).await;
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

// ---------------------------------------------------------------------------------------
// The run

async fn setup(client: &Client, hook_url: &str, until: Instant) -> anyhow::Result<()> {
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            api_version: "apiextensions.k8s.io/v1".into(),
            kind: "CustomResourceDefinition".into(),
            plural: "customresourcedefinitions".into(),
        },
    );
    crds.create(
        &PostParams::default(),
        &obj(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "loads.bench.metacontroller.io"},
            "spec": {
                "group": "bench.metacontroller.io", "scope": "Namespaced",
                "names": {"plural": "loads", "singular": "load", "kind": "Load", "listKind": "LoadList"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                }]
            }
        }))?,
    )
    .await
    .context("creating the parent CRD")?;
    // The CRD is served once a list succeeds.
    let parents: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &loads());
    while parents.list(&ListParams::default().limit(1)).await.is_err() {
        if Instant::now() >= until {
            bail!("the parent CRD was not served in time");
        }
        sleep(Duration::from_millis(20)).await;
    }
    let controllers: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource {
            group: "metacontroller.k8s.io".into(),
            version: "v1alpha1".into(),
            api_version: "metacontroller.k8s.io/v1alpha1".into(),
            kind: "CompositeController".into(),
            plural: "compositecontrollers".into(),
        },
    );
    controllers
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "metacontroller.k8s.io/v1alpha1", "kind": "CompositeController",
                "metadata": {"name": "loads"},
                "spec": {
                    "generateSelector": true,
                    "parentResource": {"apiVersion": "bench.metacontroller.io/v1", "resource": "loads"},
                    "childResources": [{"apiVersion": "v1", "resource": "configmaps",
                                        "updateStrategy": {"method": "InPlace"}}],
                    "hooks": {"sync": {"webhook": {"url": hook_url, "timeout": "10s"}}}
                }
            }))?,
        )
        .await
        .context("creating the CompositeController")?;
    Ok(())
}

/// Creates `n` parents over `clients` concurrent streams; returns how many failed.
async fn create_parents(client: &Client, n: usize, clients: usize, tracker: &Tracker) -> usize {
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &loads());
    futures::stream::iter(0..n)
        .map(|i| {
            let api = api.clone();
            async move {
                let name = format!("load-{i:05}");
                tracker.update(|p| {
                    p.created_at.insert(name.clone(), Instant::now());
                });
                let parent = json!({
                    "apiVersion": "bench.metacontroller.io/v1", "kind": "Load",
                    "metadata": {"name": name},
                    "spec": {"index": i}
                });
                match obj(parent) {
                    Ok(o) => api.create(&PostParams::default(), &o).await.is_err(),
                    Err(_) => true,
                }
            }
        })
        .buffer_unordered(clients.max(1))
        .filter(|failed| futures::future::ready(*failed))
        .count()
        .await
}

struct Report {
    parents: usize,
    workers: usize,
    converged: usize,
    create_time: Duration,
    convergence: Option<Duration>,
    latencies: Vec<Duration>,
    failed_creates: usize,
    calls: Calls,
    hook_calls: u64,
    reconciles: BTreeMap<String, u64>,
    baseline: Memory,
    engine_end: Memory,
    server: Option<Memory>,
    time_limit: Duration,
}

impl Report {
    /// Engine writes: every write in the window except events and the harness's creates.
    fn engine_writes(&self) -> u64 {
        let created = (self.parents - self.failed_creates) as u64;
        let writes: u64 = self
            .calls
            .iter()
            .filter(|((verb, res), _)| is_write(verb) && res != "events")
            .map(|(_, n)| *n)
            .sum();
        writes.saturating_sub(created)
    }

    /// The harness's own share of the calls: the parent creates and its `/metrics` reads.
    fn harness_calls(&self, verb: &str, resource: &str, count: u64) -> u64 {
        match (verb, resource) {
            ("POST", "loads") => (self.parents - self.failed_creates) as u64,
            (_, NON_RESOURCE) => count,
            _ => 0,
        }
    }

    fn print(&self) {
        let n = self.parents.max(1) as f64;
        let mut sorted = self.latencies.clone();
        sorted.sort();
        let conv = self
            .convergence
            .map(|d| format!("{:.0} ms", ms(d)))
            .unwrap_or_else(|| format!("not converged within {:?}", self.time_limit));
        let peak = self.engine_end.hwm;
        println!(
            "## engine-load: {} parents, {} workers\n",
            self.parents, self.workers
        );
        println!("| measurement | value | aim |");
        println!("|---|---|---|");
        println!(
            "| converged parents | {} of {} | all |",
            self.converged, self.parents
        );
        println!("| time to full convergence (first create → last status) | {conv} | < 5,000 ms |");
        println!(
            "| parent creates (harness, {} failed) | {:.0} ms |  |",
            self.failed_creates,
            ms(self.create_time)
        );
        println!(
            "| per-parent latency, create → converged, p50 / p99 / max | {:.0} / {:.0} / {:.0} ms |  |",
            ms(percentile(&sorted, 0.5)),
            ms(percentile(&sorted, 0.99)),
            ms(sorted.last().copied().unwrap_or_default())
        );
        println!(
            "| engine writes per parent (events excluded) | {:.2} | ≤ 3 |",
            self.engine_writes() as f64 / n
        );
        println!(
            "| hook calls | {} ({:.2} per parent) |  |",
            self.hook_calls,
            self.hook_calls as f64 / n
        );
        let recs: Vec<String> = self
            .reconciles
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("| engine reconciles | {} |  |", recs.join(", "));
        println!(
            "| engine process memory: baseline VmRSS / peak VmHWM / final VmRSS | {:.1} / {:.1} / {:.1} MiB | peak < 50 MiB |",
            mib(self.baseline.rss),
            mib(peak),
            mib(self.engine_end.rss)
        );
        if let Some(s) = self.server {
            println!(
                "| API server process memory: final VmRSS / peak VmHWM | {:.1} / {:.1} MiB |  |",
                mib(s.rss),
                mib(s.hwm)
            );
        }
        println!();
        println!("| verb | resource | calls | of which by the harness |");
        println!("|---|---|---|---|");
        for ((verb, res), count) in &self.calls {
            println!(
                "| {verb} | {res} | {count} | {} |",
                self.harness_calls(verb, res, *count)
            );
        }
        println!();
        let calls: Vec<Value> = self
            .calls
            .iter()
            .map(|((verb, res), count)| json!({"verb": verb, "resource": res, "calls": count, "by_harness": self.harness_calls(verb, res, *count)}))
            .collect();
        let line = json!({
            "parents": self.parents,
            "workers": self.workers,
            "converged": self.converged,
            "convergence_ms": self.convergence.map(ms),
            "create_ms": ms(self.create_time),
            "failed_creates": self.failed_creates,
            "latency_p50_ms": ms(percentile(&sorted, 0.5)),
            "latency_p99_ms": ms(percentile(&sorted, 0.99)),
            "engine_writes": self.engine_writes(),
            "engine_writes_per_parent": self.engine_writes() as f64 / n,
            "hook_calls": self.hook_calls,
            "reconciles": self.reconciles,
            "engine_rss_baseline_bytes": self.baseline.rss,
            "engine_hwm_bytes": peak,
            "engine_rss_end_bytes": self.engine_end.rss,
            "server_rss_bytes": self.server.map(|s| s.rss),
            "server_hwm_bytes": self.server.map(|s| s.hwm),
            "api_calls": calls,
        });
        println!("{line}");
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let time_limit = Duration::from_secs(args.time_limit_secs.max(1));
    let deadline = Instant::now() + time_limit;
    let bin = match &args.metacontroller_bin {
        Some(b) => b.clone(),
        None => default_server_bin()?,
    };
    let (server, client) = ServerProcess::start(&bin, deadline).await?;
    let result = measure(&args, &server, client, deadline, time_limit).await;
    server.stop().await;
    let report = result?;
    report.print();
    Ok(report.convergence.is_some())
}

async fn measure(
    args: &Args,
    server: &ServerProcess,
    client: Client,
    deadline: Instant,
    time_limit: Duration,
) -> anyhow::Result<Report> {
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the hook")?;
    let hook_url = format!("http://{}/sync", listener.local_addr()?);
    let hook_calls = Arc::new(AtomicU64::new(0));
    tokio::spawn(serve_hook(listener, hook_calls.clone(), stop.clone()));
    setup(&client, &hook_url, deadline).await?;

    let tracker = Arc::new(Tracker {
        progress: Mutex::new(Progress::default()),
        target: args.parents,
        done: Notify::new(),
    });
    start_tracking(&client, tracker.clone(), deadline).await?;

    // The engine gets its own client, as it would in its own process.
    let kubeconfig =
        std::fs::read_to_string(server.dir.join("kubeconfig")).context("reading the kubeconfig")?;
    let engine_client = client_from(&kubeconfig).await?;
    let baseline = memory_of(None).unwrap_or_default();
    let opts = metacontroller_engine::EngineOptions {
        workers: args.workers.max(1),
        shutdown_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let metrics = opts.metrics.clone();
    let engine = tokio::spawn(metacontroller_engine::run(
        engine_client,
        opts,
        stop.child_token(),
    ));
    wait_engine_watching(&client, deadline.min(Instant::now() + ENGINE_START)).await?;

    let before = api_calls(&client).await?;
    let start = Instant::now();
    let failed_creates = if args.parents > 0 {
        create_parents(&client, args.parents, args.clients, &tracker).await
    } else {
        0
    };
    let create_time = start.elapsed();
    let converged_in = if args.parents == 0 {
        Some(Duration::ZERO)
    } else {
        let wait = tracker.done.notified();
        if tracker.converged() >= args.parents {
            Some(start.elapsed())
        } else {
            timeout(deadline.saturating_duration_since(Instant::now()), wait)
                .await
                .ok()
                .map(|_| start.elapsed())
        }
    };
    let settle = Duration::from_millis(args.settle_ms)
        .min(deadline.saturating_duration_since(Instant::now()));
    sleep(settle).await;
    let after = api_calls(&client).await?;
    let engine_end = memory_of(None).unwrap_or_default();
    let server_memory = memory_of(server.pid());
    let reconciles = reconciles(&metrics);

    stop.cancel();
    match timeout(ENGINE_STOP, engine).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => eprintln!("engine-load: the engine ended with an error: {e}"),
        Ok(Err(e)) => eprintln!("engine-load: the engine task failed: {e}"),
        Err(_) => eprintln!("engine-load: the engine did not stop within {ENGINE_STOP:?}"),
    }

    let progress = tracker.progress.lock().unwrap_or_else(|e| e.into_inner());
    Ok(Report {
        parents: args.parents,
        workers: args.workers.max(1),
        converged: progress.converged.len(),
        create_time,
        convergence: converged_in,
        latencies: progress.latencies.clone(),
        failed_creates,
        calls: diff(&before, &after),
        hook_calls: hook_calls.load(Ordering::Relaxed),
        reconciles,
        baseline,
        engine_end,
        server: server_memory,
        time_limit,
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let converged = runtime.block_on(run(args))?;
    // Background tasks (the hook server's connections) need not finish.
    runtime.shutdown_timeout(Duration::from_secs(1));
    if !converged {
        std::process::exit(2);
    }
    Ok(())
}
