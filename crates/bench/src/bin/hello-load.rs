//! `hello-load`: the engine with a real out-of-process hook, against the floor.
//!
//! ```text
//!  engine mode                                   floor mode
//!  metacontroller dev --server-only              metacontroller dev --server-only
//!     ▲          ▲            ▲                     ▲            ▲
//!     │ parents  │ watch      │ pods, status        │ parents,   │ watch
//!  hello_client  harness   metacontroller ──► hook  │ pods,      harness
//!  (Python)                 (engine process)  (Python│ status
//!                                         ThreadingHTTPServer)  hello_client (Python)
//! ```
//!
//! Both modes do the same job on a fresh API server process: N HelloWorld parents (the
//! tutorial's v1 CRD with a status subresource) are created by a plain Python client, and the
//! job is done when every parent has its Pod and `status.pods == 1`. In engine mode the engine
//! (the real `metacontroller` binary in its own process, against the server with no client-side
//! rate limit, as in `dev`) and the tutorial's Python sync hook do the Pod creates and status
//! writes; in floor mode the Python client does them itself, right after each parent create,
//! with the same number of threads. Convergence is seen by this harness through watches in both
//! modes, from the moment the client starts sending. Every wait is bounded. With `--rounds N`
//! both modes run N times, alternately (floor, engine, floor, engine, ...), and the ratio
//! reported is the median of the N rounds' ratios.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};
use futures::TryStreamExt;
use kube::api::{Api, DynamicObject, ListParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::Notify;
use tokio::time::{sleep, timeout, Instant};

/// The tutorial's sync hook, used unchanged.
const TUTORIAL_HOOK: &str = include_str!("../../../../examples/hello-world/sync.py");
/// A wrapper serving the tutorial's hook with a call counter.
const HOOK_WRAPPER: &str = include_str!("../../python/hello_hook.py");
/// The plain Python client: parent creates, or the whole job (the floor).
const CLIENT: &str = include_str!("../../python/hello_client.py");
/// The tutorial's hook for Node.js.
const NODE_HOOK: &str = include_str!("../../node/hello_hook.js");
/// The job as a kopf handler.
const KOPF_HANDLER: &str = include_str!("../../python/hello_kopf.py");

#[derive(Parser, Debug)]
#[command(
    name = "hello-load",
    about = "The engine with the tutorial's Python hook against a plain client doing the same job"
)]
struct Args {
    /// HelloWorld parents (each wants one Pod and `status.pods`).
    #[arg(long, default_value_t = 500)]
    parents: usize,
    /// Which side to run.
    #[arg(long, value_enum, default_value_t = Mode::Both)]
    mode: Mode,
    /// Engine workers (`--workers`); also the floor client's threads unless --clients is given.
    #[arg(long, default_value_t = 5)]
    workers: usize,
    /// Threads of the Python client (parent creates; in the floor, the whole job).
    #[arg(long)]
    clients: Option<usize>,
    /// The `metacontroller` binary (default: next to this binary).
    #[arg(long)]
    metacontroller_bin: Option<PathBuf>,
    /// The Python interpreter for the hook and the client.
    #[arg(long, default_value = "python3")]
    python: String,
    /// More flags for the engine process, e.g. `--engine-arg=--client-go-qps=50`.
    #[arg(long = "engine-arg", allow_hyphen_values = true)]
    engine_args: Vec<String>,
    /// After convergence, wait this long (and then until the hook's call counter stops
    /// moving) before the final counts, so late writes and hook calls are counted too.
    #[arg(long, default_value_t = 1_000)]
    settle_ms: u64,
    /// Each mode stops after this many seconds, converged or not.
    #[arg(long, default_value_t = 300)]
    time_limit_secs: u64,
    /// Run both modes this many times, alternately, each on a fresh API server, and report
    /// the median ratio (on a shared machine one run's ratio can be far off).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// The servers the engine's hook runs in, comma-separated: each round measures the engine
    /// once with each (the hook's answer is the tutorial's in every one). The first is the
    /// one the main table shows; with more, a matrix follows.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "http10")]
    hook: Vec<HookServer>,
    /// The Node.js interpreter for `--hook node`.
    #[arg(long, default_value = "node")]
    node: String,
    /// Each round also runs the same job with kopf instead of the engine (the tutorial's
    /// logic as a kopf handler, `python/hello_kopf.py`), side by side in the matrix.
    #[arg(long)]
    kopf: bool,
    /// The Python interpreter that has kopf (`scripts/install-kopf.sh` makes one).
    #[arg(long, default_value = "target/kopf-venv/bin/python")]
    kopf_python: String,
}

/// What does the job in one measured run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Runner {
    /// The Python client alone.
    Floor,
    /// The engine, calling the hook in this server.
    Engine(HookServer),
    /// kopf with the job as a handler.
    Kopf,
}

/// The hook servers the engine can be measured with, each its own process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum HookServer {
    /// The tutorial's Python `ThreadingHTTPServer` as written: HTTP/1.0, a new connection per
    /// call.
    Http10,
    /// The same server answering HTTP/1.1 with keep-alive; `http.server` sends the headers and
    /// the body in separate writes, with Nagle's algorithm left on.
    Keepalive,
    /// [`HookServer::Keepalive`] with `disable_nagle_algorithm = True` (TCP_NODELAY).
    KeepaliveNodelay,
    /// The tutorial's hook written for Node's `http` module (keep-alive, one write per
    /// response).
    Node,
    /// The tutorial's hook compiled (`hello-hook`: hyper, keep-alive, one thread): the
    /// engine's ceiling.
    Compiled,
}

impl HookServer {
    /// The argument `hello_hook.py` takes for this server.
    fn arg(self) -> &'static str {
        match self {
            HookServer::Http10 => "http10",
            HookServer::Keepalive => "keepalive",
            HookServer::KeepaliveNodelay => "keepalive-nodelay",
            HookServer::Node => "node",
            HookServer::Compiled => "compiled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Mode {
    Both,
    Engine,
    Floor,
}

const NAMESPACE: &str = "default";
/// How long a process may take to start (server kubeconfig, hook port, engine watches).
const START: Duration = Duration::from_secs(30);

fn helloworlds() -> ApiResource {
    ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "HelloWorld".into(),
        plural: "helloworlds".into(),
    }
}

fn pods() -> ApiResource {
    ApiResource {
        group: String::new(),
        version: "v1".into(),
        api_version: "v1".into(),
        kind: "Pod".into(),
        plural: "pods".into(),
    }
}

fn obj(v: Value) -> anyhow::Result<DynamicObject> {
    serde_json::from_value(v).context("building an object")
}

// ---------------------------------------------------------------------------------------
// Processes

/// A child process, killed on drop; `stop` sends SIGTERM first.
struct Proc {
    child: Child,
    what: &'static str,
}

impl Proc {
    fn spawn(what: &'static str, cmd: &mut Command, stdout: bool) -> anyhow::Result<Proc> {
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(if stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting the {what}"))?;
        Ok(Proc { child, what })
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    fn lines(&mut self) -> anyhow::Result<Lines<BufReader<ChildStdout>>> {
        let out = self.child.stdout.take().context("no stdout")?;
        Ok(BufReader::new(out).lines())
    }

    fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("the {} exited early: {status}", self.what);
        }
        Ok(())
    }

    async fn stop(mut self) {
        drop(self.child.stdin.take());
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            eprintln!("hello-load: the {} did not stop; killing it", self.what);
            let _ = self.child.kill().await;
        }
    }
}

/// Reads the next line of a child's output within `limit`.
async fn next_line(
    lines: &mut Lines<BufReader<ChildStdout>>,
    limit: Duration,
    what: &str,
) -> anyhow::Result<String> {
    match timeout(limit, lines.next_line()).await {
        Ok(Ok(Some(line))) => Ok(line),
        Ok(Ok(None)) => bail!("the {what} closed its output"),
        Ok(Err(e)) => Err(e).with_context(|| format!("reading the {what}'s output")),
        Err(_) => bail!("no output from the {what} within {limit:?}"),
    }
}

/// `metacontroller dev --server-only` on a free loopback port; its kubeconfig and a client.
async fn start_server(bin: &Path, dir: &Path) -> anyhow::Result<(Proc, PathBuf, Client)> {
    let kubeconfig = dir.join("kubeconfig");
    let _ = std::fs::remove_file(&kubeconfig);
    let mut server = Proc::spawn(
        "API server",
        Command::new(bin)
            .args(["dev", "--server-only", "--listen", "127.0.0.1:0"])
            .arg("--kubeconfig-out")
            .arg(&kubeconfig)
            .args(["--log-level", "warn"]),
        false,
    )?;
    let until = Instant::now() + START;
    while !kubeconfig.exists() {
        server.check_running()?;
        if Instant::now() >= until {
            bail!("the API server wrote no kubeconfig within {START:?}");
        }
        sleep(Duration::from_millis(20)).await;
    }
    let text = std::fs::read_to_string(&kubeconfig).context("reading the kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::from_yaml(&text).context("parsing the kubeconfig")?,
        &KubeConfigOptions::default(),
    )
    .await
    .context("loading the kubeconfig")?;
    let client = Client::try_from(config).context("building a client")?;
    Ok((server, kubeconfig, client))
}

fn default_bin() -> anyhow::Result<PathBuf> {
    sibling_bin("metacontroller")
        .context("build it (cargo build --release -p metacontroller) or pass --metacontroller-bin")
}

/// The binary `name` next to this one.
fn sibling_bin(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let bin = exe
        .parent()
        .context("this binary has no directory")?
        .join(name);
    if !bin.exists() {
        bail!("{} not found", bin.display());
    }
    Ok(bin)
}

/// A free loopback port (bound, then released for the engine's metrics endpoint).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

// ---------------------------------------------------------------------------------------
// Setup

/// The tutorial's CRD (v1, status subresource) and, for the engine, its CompositeController.
async fn setup(client: &Client, hook_url: Option<&str>) -> anyhow::Result<()> {
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
            "metadata": {"name": "helloworlds.example.com"},
            "spec": {
                "group": "example.com", "scope": "Namespaced",
                "names": {"kind": "HelloWorld", "plural": "helloworlds", "singular": "helloworld"},
                "versions": [{
                    "name": "v1", "served": true, "storage": true,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {"who": {"type": "string"}}},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
                    }}}
                }]
            }
        }))?,
    )
    .await
    .context("creating the HelloWorld CRD")?;
    let parents: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &helloworlds());
    let until = Instant::now() + START;
    while parents.list(&ListParams::default().limit(1)).await.is_err() {
        if Instant::now() >= until {
            bail!("the HelloWorld CRD was not served within {START:?}");
        }
        sleep(Duration::from_millis(20)).await;
    }
    let Some(url) = hook_url else {
        return Ok(());
    };
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
                "metadata": {"name": "hello-controller"},
                "spec": {
                    "generateSelector": true,
                    "parentResource": {"apiVersion": "example.com/v1", "resource": "helloworlds"},
                    "childResources": [{"apiVersion": "v1", "resource": "pods",
                                        "updateStrategy": {"method": "Recreate"}}],
                    "hooks": {"sync": {"webhook": {"url": url}}}
                }
            }))?,
        )
        .await
        .context("creating the CompositeController")?;
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Progress

#[derive(Default)]
struct Progress {
    with_pod: HashSet<String>,
    with_status: HashSet<String>,
    converged: usize,
}

struct Tracker {
    progress: Mutex<Progress>,
    target: usize,
    done: Notify,
}

impl Tracker {
    fn new(target: usize) -> Arc<Tracker> {
        Arc::new(Tracker {
            progress: Mutex::new(Progress::default()),
            target,
            done: Notify::new(),
        })
    }

    fn mark(&self, name: &str, pod: bool) {
        let mut p = self.progress.lock().unwrap_or_else(|e| e.into_inner());
        let first = if pod {
            p.with_pod.insert(name.to_string())
        } else {
            p.with_status.insert(name.to_string())
        };
        if first && p.with_pod.contains(name) && p.with_status.contains(name) {
            p.converged += 1;
            if p.converged >= self.target {
                self.done.notify_one();
            }
        }
    }

    fn converged(&self) -> usize {
        self.progress
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .converged
    }
}

/// Follows `api` until `deadline`, feeding added and modified objects to `on_object`.
async fn follow(
    api: Api<DynamicObject>,
    mut resource_version: String,
    deadline: Instant,
    on_object: impl Fn(&DynamicObject),
) {
    // Each watch lasts up to the server's timeout; a few dozen restarts cover any run.
    for _ in 0..100 {
        if Instant::now() >= deadline {
            return;
        }
        let Ok(stream) = api.watch(&WatchParams::default(), &resource_version).await else {
            sleep(Duration::from_millis(100)).await;
            continue;
        };
        let mut stream = std::pin::pin!(stream);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = match timeout(left, stream.try_next()).await {
                Ok(Ok(Some(event))) => event,
                Ok(_) => break,
                Err(_) => return,
            };
            match event {
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

/// Watches parents and Pods; a parent is done when its Pod exists and `status.pods == 1`.
async fn track(client: &Client, tracker: &Arc<Tracker>, deadline: Instant) -> anyhow::Result<()> {
    let parents: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &helloworlds());
    let pods: Api<DynamicObject> = Api::namespaced_with(client.clone(), NAMESPACE, &pods());
    let rv = |list: kube::core::ObjectList<DynamicObject>| {
        list.metadata.resource_version.unwrap_or_default()
    };
    let rv_parents = rv(parents
        .list(&ListParams::default())
        .await
        .context("listing parents")?);
    let rv_pods = rv(pods
        .list(&ListParams::default())
        .await
        .context("listing pods")?);
    let t = tracker.clone();
    tokio::spawn(follow(parents, rv_parents, deadline, move |o| {
        if o.data["status"]["pods"] == 1 {
            t.mark(o.metadata.name.as_deref().unwrap_or_default(), false);
        }
    }));
    let t = tracker.clone();
    tokio::spawn(follow(pods, rv_pods, deadline, move |o| {
        t.mark(o.metadata.name.as_deref().unwrap_or_default(), true);
    }));
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

fn memory_of(pid: Option<u32>) -> Memory {
    let Some(text) = pid.and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
    else {
        return Memory::default();
    };
    let field = |name: &str| -> u64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    };
    Memory {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
    }
}

/// CPU time (user + system, all threads) a process has used so far, from `/proc/PID/stat`.
fn cpu_of(pid: Option<u32>) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name; Linux
    // reports them in USER_HZ, which is 100 on every architecture.
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// CPU time used by each process of a run between its start and the end of the job.
#[derive(Debug, Clone, Default)]
struct Cpu {
    engine: Option<Duration>,
    hook: Option<Duration>,
    server: Option<Duration>,
    client: Option<Duration>,
}

impl Cpu {
    fn total(&self) -> Duration {
        [self.engine, self.hook, self.server, self.client]
            .into_iter()
            .flatten()
            .sum()
    }
}

fn cpu_since(before: Option<Duration>, pid: Option<u32>) -> Option<Duration> {
    Some(cpu_of(pid)?.saturating_sub(before.unwrap_or_default()))
}

/// `apiserver_request_total` by (verb, resource[/subresource]).
type Calls = BTreeMap<(String, String), u64>;

async fn metrics_text(client: &Client) -> anyhow::Result<String> {
    let request = hyper::Request::get("/metrics")
        .body(Vec::new())
        .context("building a request")?;
    client
        .request_text(request)
        .await
        .context("reading /metrics")
}

fn label<'a>(line: &'a str, name: &str) -> &'a str {
    line.split_once(&format!("{name}=\""))
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("", |(v, _)| v)
}

fn value(line: &str) -> Option<f64> {
    line.rsplit(' ').next()?.parse().ok()
}

async fn api_calls(client: &Client) -> anyhow::Result<Calls> {
    let text = metrics_text(client).await?;
    let mut calls = Calls::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let Some(n) = value(line) else { continue };
        let (resource, sub) = (label(line, "resource"), label(line, "subresource"));
        let resource = match (resource, sub) {
            ("", _) => "(non-resource)".to_string(),
            (r, "") => r.to_string(),
            (r, s) => format!("{r}/{s}"),
        };
        *calls
            .entry((label(line, "verb").to_string(), resource))
            .or_default() += n as u64;
    }
    Ok(calls)
}

fn writes_in(before: &Calls, after: &Calls) -> Calls {
    after
        .iter()
        .filter(|((verb, res), _)| {
            matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "DELETE") && res != "events"
        })
        .filter_map(|(k, n)| {
            let d = n.saturating_sub(before.get(k).copied().unwrap_or(0));
            (d > 0).then(|| (k.clone(), d))
        })
        .collect()
}

/// Waits until the server has `want` watches open on HelloWorlds and on Pods.
/// Waits until the API server counts `want` watches of (HelloWorlds, Pods).
async fn wait_watchers(client: &Client, want: (u64, u64), engine: &mut Proc) -> anyhow::Result<()> {
    let until = Instant::now() + START;
    loop {
        let text = metrics_text(client).await?;
        let watchers = |kind: &str| -> u64 {
            text.lines()
                .filter(|l| l.starts_with("apiserver_registered_watchers{"))
                .filter(|l| label(l, "kind") == kind)
                .filter_map(value)
                .sum::<f64>() as u64
        };
        if watchers("HelloWorld") >= want.0 && watchers("Pod") >= want.1 {
            return Ok(());
        }
        engine.check_running()?;
        if Instant::now() >= until {
            bail!(
                "the {} did not watch HelloWorlds and Pods within {START:?}",
                engine.what
            );
        }
        sleep(Duration::from_millis(20)).await;
    }
}

/// The hook's call counter, or None when it cannot be read.
async fn hook_calls_now(url: &str) -> Option<u64> {
    http_get(url).await.ok()?.trim().parse::<u64>().ok()
}

async fn http_get(url: &str) -> anyhow::Result<String> {
    let resp = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    resp.text().await.with_context(|| format!("reading {url}"))
}

// ---------------------------------------------------------------------------------------
// One mode

#[derive(Clone, Default)]
struct Outcome {
    converged: usize,
    convergence: Option<Duration>,
    client_failures: String,
    writes: Calls,
    hook_calls: Option<u64>,
    reconciles: BTreeMap<String, u64>,
    engine_baseline: Memory,
    engine_end: Memory,
    server_end: Memory,
    cpu: Cpu,
    /// The engine's CPU time until the hook's counter stopped moving, for the CPU per call.
    engine_cpu_settled: Option<Duration>,
}

impl Outcome {
    /// Writes other than the client's parent creates.
    fn job_writes(&self, parents: usize) -> u64 {
        let all: u64 = self.writes.values().sum();
        let creates = self
            .writes
            .get(&("POST".into(), "helloworlds".into()))
            .copied()
            .unwrap_or(0);
        all - creates.min(parents as u64)
    }
}

struct Ctx<'a> {
    args: &'a Args,
    bin: PathBuf,
    dir: PathBuf,
}

impl Ctx<'_> {
    fn clients(&self) -> usize {
        self.args.clients.unwrap_or(self.args.workers).max(1)
    }

    fn file(&self, name: &str, text: &str) -> anyhow::Result<PathBuf> {
        let path = self.dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    async fn run(&self, engine: Runner) -> anyhow::Result<Outcome> {
        let (server, kubeconfig, client) = start_server(&self.bin, &self.dir).await?;
        let result = self.measure(engine, &server, &kubeconfig, &client).await;
        server.stop().await;
        result
    }

    async fn measure(
        &self,
        runner: Runner,
        server: &Proc,
        kubeconfig: &Path,
        client: &Client,
    ) -> anyhow::Result<Outcome> {
        let args = self.args;
        let deadline = Instant::now() + Duration::from_secs(args.time_limit_secs.max(1));
        let sync_py = self.file("sync.py", TUTORIAL_HOOK)?;
        let client_py = self.file("hello_client.py", CLIENT)?;
        let mut out = Outcome::default();

        let mut hook = None;
        let mut engine = None;
        let mut hook_url = None;
        let with_engine = runner != Runner::Floor;
        if let Runner::Engine(kind) = runner {
            let mut command = match kind {
                HookServer::Node => {
                    let mut c = Command::new(&args.node);
                    c.arg(self.file("hello_hook.js", NODE_HOOK)?);
                    c
                }
                HookServer::Compiled => Command::new(sibling_bin("hello-hook")?),
                python => {
                    let mut c = Command::new(&args.python);
                    c.arg(self.file("hello_hook.py", HOOK_WRAPPER)?)
                        .arg(&sync_py)
                        .arg(python.arg());
                    c
                }
            };
            let mut h = Proc::spawn("hook", &mut command, true)?;
            let port = next_line(&mut h.lines()?, START, "hook").await?;
            hook_url = Some(format!("http://127.0.0.1:{}", port.trim()));
            hook = Some(h);
        }
        setup(
            client,
            hook_url.as_ref().map(|u| format!("{u}/sync")).as_deref(),
        )
        .await?;
        let tracker = Tracker::new(args.parents);
        track(client, &tracker, deadline).await?;

        let metrics_port = free_port()?;
        if runner == Runner::Kopf {
            let mut k = Proc::spawn(
                "kopf",
                Command::new(&args.kopf_python)
                    .args(["-m", "kopf", "run", "--standalone", "--quiet"])
                    .args(["--namespace", NAMESPACE])
                    .arg(self.file("hello_kopf.py", KOPF_HANDLER)?)
                    .env("KUBECONFIG", kubeconfig),
                false,
            )?;
            // kopf watches the parents only; the tracker holds one watch of each.
            wait_watchers(client, (2, 1), &mut k).await?;
            out.engine_baseline = memory_of(k.pid());
            engine = Some(k);
        }
        if let Runner::Engine(_) = runner {
            let mut e = Proc::spawn(
                "engine",
                Command::new(&self.bin)
                    .arg("--kubeconfig")
                    .arg(kubeconfig)
                    .arg("--client-go-qps=-1")
                    .arg(format!("--workers={}", args.workers.max(1)))
                    .arg(format!("--metrics-address=127.0.0.1:{metrics_port}"))
                    .arg("--health-probe-bind-address=0")
                    .args(
                        if args
                            .engine_args
                            .iter()
                            .any(|a| a.starts_with("--log-level"))
                        {
                            &[][..]
                        } else {
                            &["--log-level", "warn"][..]
                        },
                    )
                    .args(&args.engine_args),
                false,
            )?;
            wait_watchers(client, (2, 2), &mut e).await?;
            out.engine_baseline = memory_of(e.pid());
            engine = Some(e);
        }

        let before = api_calls(client).await?;
        let hook_before = match &hook_url {
            Some(u) => hook_calls_now(&format!("{u}/calls")).await,
            None => None,
        };
        let cpu_before = Cpu {
            engine: engine.as_ref().and_then(|e| cpu_of(e.pid())),
            hook: hook.as_ref().and_then(|h| cpu_of(h.pid())),
            server: cpu_of(server.pid()),
            client: None,
        };
        let mode = if with_engine { "parents" } else { "floor" };
        let mut py = Proc::spawn(
            "client",
            Command::new(&args.python)
                .arg(&client_py)
                .arg(kubeconfig)
                .arg(&sync_py)
                .arg(mode)
                .arg(args.parents.to_string())
                .arg(self.clients().to_string()),
            true,
        )?;
        let mut lines = py.lines()?;
        let go = next_line(&mut lines, START, "client").await?;
        if go.trim() != "go" {
            bail!("unexpected client output: {go}");
        }
        let start = Instant::now();
        let wait = tracker.done.notified();
        out.convergence = if tracker.converged() >= args.parents {
            Some(start.elapsed())
        } else {
            timeout(deadline.saturating_duration_since(Instant::now()), wait)
                .await
                .ok()
                .map(|()| start.elapsed())
        };
        out.converged = tracker.converged();
        out.client_failures = match timeout(Duration::from_secs(10), lines.next_line()).await {
            Ok(Ok(Some(line))) => line.trim_start_matches("done ").to_string(),
            _ => "unknown".into(),
        };
        out.cpu = Cpu {
            engine: engine
                .as_ref()
                .and_then(|e| cpu_since(cpu_before.engine, e.pid())),
            hook: hook
                .as_ref()
                .and_then(|h| cpu_since(cpu_before.hook, h.pid())),
            server: cpu_since(cpu_before.server, server.pid()),
            client: cpu_of(py.pid()),
        };
        py.stop().await;
        sleep(Duration::from_millis(args.settle_ms)).await;
        if let Some(u) = &hook_url {
            // Syncs still queued at convergence (the echo of each parent's last status write)
            // are counted too: wait until the hook's counter stops moving, bounded.
            let calls_url = format!("{u}/calls");
            let mut last = hook_calls_now(&calls_url).await;
            let quiet_deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < quiet_deadline {
                sleep(Duration::from_millis(500)).await;
                let now = hook_calls_now(&calls_url).await;
                if now == last {
                    break;
                }
                last = now;
            }
        }

        let after = api_calls(client).await?;
        out.writes = writes_in(&before, &after);
        if let (Some(u), Some(b)) = (&hook_url, hook_before) {
            let now = hook_calls_now(&format!("{u}/calls")).await;
            out.hook_calls = now.map(|n| n - b);
        }
        if let Some(e) = engine {
            out.engine_end = memory_of(e.pid());
            out.engine_cpu_settled = cpu_since(cpu_before.engine, e.pid());
            let text = http_get(&format!("http://127.0.0.1:{metrics_port}/metrics"))
                .await
                .unwrap_or_default();
            for line in text
                .lines()
                .filter(|l| l.starts_with("controller_runtime_reconcile_total{"))
            {
                if let Some(n) = value(line) {
                    *out.reconciles
                        .entry(label(line, "result").to_string())
                        .or_default() += n as u64;
                }
            }
            e.stop().await;
        }
        if let Some(h) = hook {
            h.stop().await;
        }
        out.server_end = memory_of(server.pid());
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------
// Report

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn secs(d: Option<Duration>) -> String {
    d.map_or_else(
        || "not converged".into(),
        |d| format!("{:.2} s", d.as_secs_f64()),
    )
}

/// One round's convergence times and their ratio.
struct Round {
    engine: Option<Duration>,
    floor: Option<Duration>,
    /// The engine's and the hook's CPU time in the engine mode.
    engine_cpu: Option<Duration>,
    hook_cpu: Option<Duration>,
}

impl Round {
    /// The engine's CPU time relative to the hook's in the same run: the hook's work per
    /// parent is fixed, so this follows the engine's own cost rather than the machine's
    /// speed at the moment, which swings the convergence times.
    fn engine_per_hook_cpu(&self) -> Option<f64> {
        match (self.engine_cpu, self.hook_cpu) {
            (Some(e), Some(h)) if !h.is_zero() => Some(e.as_secs_f64() / h.as_secs_f64()),
            _ => None,
        }
    }

    fn ratio(&self) -> Option<f64> {
        match (self.engine, self.floor) {
            (Some(e), Some(f)) if !f.is_zero() => Some(e.as_secs_f64() / f.as_secs_f64()),
            _ => None,
        }
    }
}

/// The median of the rounds' ratios (the lower middle one for an even count), and its round.
fn median_round(rounds: &[Round]) -> Option<usize> {
    let mut measured: Vec<(f64, usize)> = rounds
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((r.ratio()?, i)))
        .collect();
    measured.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = measured.len();
    (n > 0).then(|| measured[(n - 1) / 2].1)
}

fn print(
    args: &Args,
    hook: HookServer,
    clients: usize,
    engine: Option<&Outcome>,
    floor: Option<&Outcome>,
    rounds: &[Round],
) {
    let n = args.parents.max(1) as f64;
    println!(
        "## hello-load: {} HelloWorld parents, engine --workers={}, Python client threads {}, hook server {}\n",
        args.parents, args.workers, clients, hook.arg()
    );
    println!("| measurement | engine + Python hook | floor (Python client) |");
    println!("|---|---|---|");
    let both = |f: &dyn Fn(&Outcome) -> String| {
        (
            engine.map_or_else(|| "-".into(), f),
            floor.map_or_else(|| "-".into(), f),
        )
    };
    let row = |name: &str, f: &dyn Fn(&Outcome) -> String| {
        let (e, fl) = both(f);
        println!("| {name} | {e} | {fl} |");
    };
    row("converged parents", &|o| {
        format!("{} of {}", o.converged, args.parents)
    });
    row("time to full convergence", &|o| secs(o.convergence));
    row("client failures", &|o| o.client_failures.clone());
    row(
        "writes per parent (besides the parent create; events excluded)",
        &|o| format!("{:.2}", o.job_writes(args.parents) as f64 / n),
    );
    row("hook calls per parent", &|o| {
        o.hook_calls
            .map_or_else(|| "-".into(), |c| format!("{:.2}", c as f64 / n))
    });
    if let Some(e) = engine {
        let recs: Vec<String> = e
            .reconciles
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect();
        println!("| engine reconciles | {} | - |", recs.join(", "));
        println!(
            "| engine process memory: baseline VmRSS / final VmRSS / peak VmHWM | {:.1} / {:.1} / {:.1} MiB | - |",
            mib(e.engine_baseline.rss),
            mib(e.engine_end.rss),
            mib(e.engine_end.hwm)
        );
    }
    let cpu =
        |d: Option<Duration>| d.map_or_else(|| "-".into(), |d| format!("{:.2}", d.as_secs_f64()));
    row(
        "CPU seconds from the first request to convergence: engine / hook / API server / client (total)",
        &|o| {
            format!(
                "{} / {} / {} / {} ({:.2})",
                cpu(o.cpu.engine),
                cpu(o.cpu.hook),
                cpu(o.cpu.server),
                cpu(o.cpu.client),
                o.cpu.total().as_secs_f64()
            )
        },
    );
    if let (Some(e), Some(r)) = (engine, median_round(rounds).map(|i| &rounds[i])) {
        println!(
            "| engine CPU per parent; engine CPU / hook CPU (the hook's work per parent is fixed) | {}; {} | - |",
            e.cpu.engine.map_or_else(
                || "-".into(),
                |d| format!("{:.3} ms", d.as_secs_f64() * 1000.0 / n)
            ),
            r.engine_per_hook_cpu()
                .map_or_else(|| "-".into(), |x| format!("{x:.2}"))
        );
    }
    row("API server process VmRSS at the end", &|o| {
        format!("{:.1} MiB", mib(o.server_end.rss))
    });
    row("writes by verb and resource", &|o| {
        o.writes
            .iter()
            .map(|((v, r), c)| format!("{v} {r} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    });
    let ratio = median_round(rounds).and_then(|i| rounds[i].ratio());
    if rounds.len() > 1 {
        println!("\nThe table shows the median round. Every round, in the order run:\n");
        println!("| round | engine + Python hook | floor | engine / floor | engine CPU per parent | engine CPU / hook CPU |");
        println!("|---|---|---|---|---|---|");
        for (i, r) in rounds.iter().enumerate() {
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                i + 1,
                secs(r.engine),
                secs(r.floor),
                r.ratio().map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
                r.engine_cpu.map_or_else(
                    || "-".into(),
                    |d| format!("{:.3} ms", d.as_secs_f64() * 1000.0 / n)
                ),
                r.engine_per_hook_cpu()
                    .map_or_else(|| "-".into(), |x| format!("{x:.2}"))
            );
        }
    }
    if let Some(r) = ratio {
        let what = if rounds.len() > 1 {
            format!("median of {} rounds", rounds.len())
        } else {
            "one round".into()
        };
        println!("\n**engine / floor: {r:.2}x** ({what})\n");
    }
    let json_of = |o: &Outcome| {
        json!({
            "converged": o.converged,
            "convergence_s": o.convergence.map(|d| d.as_secs_f64()),
            "writes_per_parent": o.job_writes(args.parents) as f64 / n,
            "hook_calls_per_parent": o.hook_calls.map(|c| c as f64 / n),
            "reconciles": o.reconciles,
            "engine_rss_bytes": o.engine_end.rss,
            "engine_hwm_bytes": o.engine_end.hwm,
            "server_rss_bytes": o.server_end.rss,
            "cpu_s": {
                "engine": o.cpu.engine.map(|d| d.as_secs_f64()),
                "hook": o.cpu.hook.map(|d| d.as_secs_f64()),
                "server": o.cpu.server.map(|d| d.as_secs_f64()),
                "client": o.cpu.client.map(|d| d.as_secs_f64()),
            },
        })
    };
    println!(
        "{}",
        json!({
            "parents": args.parents,
            "hook_server": hook.arg(),
            "workers": args.workers,
            "client_threads": clients,
            "engine": engine.map(json_of),
            "floor": floor.map(json_of),
            "ratio": ratio,
            "rounds": rounds.iter().map(|r| json!({
                "engine_s": r.engine.map(|d| d.as_secs_f64()),
                "floor_s": r.floor.map(|d| d.as_secs_f64()),
                "ratio": r.ratio(),
                "engine_cpu_s": r.engine_cpu.map(|d| d.as_secs_f64()),
                "engine_per_hook_cpu": r.engine_per_hook_cpu(),
            })).collect::<Vec<_>>(),
        })
    );
}

/// The hook servers asked for, each once, in the order given.
fn hook_servers(args: &Args) -> Vec<HookServer> {
    let mut hooks: Vec<HookServer> = Vec::new();
    for &h in &args.hook {
        if !hooks.contains(&h) {
            hooks.push(h);
        }
    }
    if hooks.is_empty() {
        hooks.push(HookServer::Http10);
    }
    hooks
}

/// One hook server's results over every round.
struct MatrixRow {
    runner: Runner,
    /// Its median round's outcome.
    outcome: Outcome,
    rounds: Vec<Round>,
}

impl MatrixRow {
    /// The engine's CPU per hook call, counted until the hook's counter stopped moving.
    fn cpu_per_call(&self) -> Option<Duration> {
        let calls = self.outcome.hook_calls.filter(|&c| c > 0)?;
        Some(self.outcome.engine_cpu_settled? / u32::try_from(calls).ok()?)
    }

    /// The median over rounds of this server's convergence time over `other`'s in the same
    /// round.
    fn relative_to(&self, other: &MatrixRow) -> Option<f64> {
        let mut ratios: Vec<f64> = self
            .rounds
            .iter()
            .zip(&other.rounds)
            .filter_map(|(a, b)| match (a.engine, b.engine) {
                (Some(a), Some(b)) if !b.is_zero() => Some(a.as_secs_f64() / b.as_secs_f64()),
                _ => None,
            })
            .collect();
        ratios.sort_by(f64::total_cmp);
        let n = ratios.len();
        (n > 0).then(|| ratios[(n - 1) / 2])
    }
}

/// The matrix of hook servers: each one's median round, its ratio to the floor, and (when
/// `keepalive-nodelay` was measured) its ratio to that server in the same rounds.
fn print_matrix(args: &Args, matrix: &[MatrixRow]) {
    let n = args.parents.max(1) as f64;
    let nodelay = matrix
        .iter()
        .find(|r| r.runner == Runner::Engine(HookServer::KeepaliveNodelay));
    let kopf = matrix.iter().find(|r| r.runner == Runner::Kopf);
    println!(
        "\n### hook servers, {} parents, {} rounds\n",
        args.parents,
        args.rounds.max(1)
    );
    println!("| hook server | converged in (median round) | / floor (median; every round) | / keepalive-nodelay | kopf / this | hook calls per parent | writes per parent | engine CPU per hook call | peak VmHWM (engine or kopf) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for row in matrix {
        let ratios: Vec<String> = row
            .rounds
            .iter()
            .map(|r| r.ratio().map_or_else(|| "-".into(), |x| format!("{x:.2}")))
            .collect();
        let median = median_round(&row.rounds).and_then(|i| row.rounds[i].ratio());
        let vs_nodelay = nodelay.and_then(|b| row.relative_to(b));
        let kopf_over = kopf.and_then(|k| k.relative_to(row));
        let o = &row.outcome;
        let label = match row.runner {
            Runner::Engine(h) => h.arg(),
            Runner::Kopf => "kopf",
            Runner::Floor => "floor",
        };
        println!(
            "| {} | {} | {} ({}) | {} | {} | {} | {:.2} | {} | {:.1} MiB |",
            label,
            secs(o.convergence),
            median.map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
            ratios.join(", "),
            vs_nodelay.map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
            kopf_over.map_or_else(|| "-".into(), |x| format!("{x:.2}x")),
            o.hook_calls
                .map_or_else(|| "-".into(), |c| format!("{:.2}", c as f64 / n)),
            o.job_writes(args.parents) as f64 / n,
            row.cpu_per_call().map_or_else(
                || "-".into(),
                |d| format!("{:.3} ms", d.as_secs_f64() * 1000.0)
            ),
            mib(o.engine_end.hwm),
        );
        rows.push(json!({
            "hook_server": label,
            "convergence_s": o.convergence.map(|d| d.as_secs_f64()),
            "rounds_s": row.rounds.iter().map(|r| r.engine.map(|d| d.as_secs_f64())).collect::<Vec<_>>(),
            "ratio_to_floor": median,
            "ratio_to_keepalive_nodelay": vs_nodelay,
            "kopf_over_this": kopf_over,
            "hook_calls_per_parent": o.hook_calls.map(|c| c as f64 / n),
            "writes_per_parent": o.job_writes(args.parents) as f64 / n,
            "engine_cpu_per_call_ms": row.cpu_per_call().map(|d| d.as_secs_f64() * 1000.0),
            "engine_hwm_bytes": o.engine_end.hwm,
        }));
    }
    println!();
    println!("{}", json!({"parents": args.parents, "matrix": rows}));
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let bin = match &args.metacontroller_bin {
        Some(b) => b.clone(),
        None => default_bin()?,
    };
    let dir = std::env::temp_dir().join(format!("hello-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let ctx = Ctx {
        args: &args,
        bin,
        dir: dir.clone(),
    };
    let hooks = hook_servers(&args);
    // Per round: the floor, then the engine with each hook server.
    let mut outcomes: Vec<(Vec<Outcome>, Option<Outcome>)> = Vec::new();
    let mut failed = None;
    for _ in 0..args.rounds.max(1) {
        let run = async {
            let floor = if args.mode != Mode::Engine {
                Some(ctx.run(Runner::Floor).await?)
            } else {
                None
            };
            let mut engines = Vec::new();
            if args.mode != Mode::Floor {
                for &hook in &hooks {
                    engines.push(ctx.run(Runner::Engine(hook)).await?);
                }
                if args.kopf {
                    engines.push(ctx.run(Runner::Kopf).await?);
                }
            }
            anyhow::Ok((engines, floor))
        };
        match run.await {
            Ok(round) => outcomes.push(round),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(e) = failed {
        return Err(e);
    }
    // The rounds of each hook server, against the same rounds' floors.
    let rounds_of = |h: usize| -> Vec<Round> {
        outcomes
            .iter()
            .map(|(e, f)| {
                let e = e.get(h);
                Round {
                    engine: e.and_then(|o| o.convergence),
                    floor: f.as_ref().and_then(|o| o.convergence),
                    engine_cpu: e.and_then(|o| o.cpu.engine),
                    hook_cpu: e.and_then(|o| o.cpu.hook),
                }
            })
            .collect()
    };
    let rounds = rounds_of(0);
    let (engines, floor) = &outcomes[median_round(&rounds).unwrap_or(0)];
    print(
        &args,
        hooks[0],
        ctx.clients(),
        engines.first(),
        floor.as_ref(),
        &rounds,
    );
    if args.mode != Mode::Floor && (hooks.len() > 1 || args.kopf) {
        let runners = hooks
            .iter()
            .map(|&h| Runner::Engine(h))
            .chain(args.kopf.then_some(Runner::Kopf));
        let matrix: Vec<MatrixRow> = runners
            .enumerate()
            .map(|(h, runner)| {
                let rounds = rounds_of(h);
                let median = median_round(&rounds).unwrap_or(0);
                MatrixRow {
                    runner,
                    outcome: outcomes[median].0.get(h).cloned().unwrap_or_default(),
                    rounds,
                }
            })
            .collect();
        print_matrix(&args, &matrix);
    }
    let ok = outcomes
        .iter()
        .flat_map(|(e, f)| e.iter().chain(f))
        .all(|o| o.convergence.is_some());
    Ok(ok)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let converged = runtime.block_on(run(args))?;
    runtime.shutdown_timeout(Duration::from_secs(1));
    if !converged {
        std::process::exit(2);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(engine_ms: Option<u64>, floor_ms: u64) -> Round {
        Round {
            engine: engine_ms.map(Duration::from_millis),
            floor: Some(Duration::from_millis(floor_ms)),
            engine_cpu: None,
            hook_cpu: None,
        }
    }

    #[test]
    fn engine_cpu_is_compared_with_the_hooks_when_both_were_measured() {
        let mut r = round(Some(100), 100);
        assert_eq!(r.engine_per_hook_cpu(), None);
        r.engine_cpu = Some(Duration::from_millis(300));
        assert_eq!(r.engine_per_hook_cpu(), None);
        r.hook_cpu = Some(Duration::ZERO);
        assert_eq!(r.engine_per_hook_cpu(), None);
        r.hook_cpu = Some(Duration::from_millis(400));
        let ratio = r.engine_per_hook_cpu().expect("both measured");
        assert!((ratio - 0.75).abs() < 1e-9, "{ratio}");
    }

    #[test]
    fn the_median_round_is_the_middle_ratio_and_skips_unconverged_rounds() {
        let rounds = [
            round(Some(300), 100),
            round(Some(100), 100),
            round(None, 100),
            round(Some(200), 100),
        ];
        assert_eq!(
            median_round(&rounds),
            Some(3),
            "ratios 3, 1, 2: the middle is 2"
        );
        assert_eq!(
            median_round(&rounds[..2]),
            Some(1),
            "even count: the lower middle"
        );
        assert_eq!(median_round(&rounds[2..3]), None);
    }
}
