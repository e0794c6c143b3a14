//! Chaos: the engine as its own process against `metacontroller dev --server-only` while
//! everything around it misbehaves.
//!
//! ```text
//!  metacontroller dev --server-only --fault-*     5% of API requests fail (500/503/429),
//!        ▲                         ▲               watches cut every 10 s, some resumes 410
//!        │ list/watch/writes       │ parents, checks, /metrics, /debug/faults
//!  metacontroller (engine) ◄── SIGKILLed and restarted 20 times
//!        │ sync hook
//!        ▼
//!  this test's hook: 10% failures (500s, timeouts, garbage bodies)
//! ```
//!
//! 1,000 parents each want one ConfigMap child and a status naming what the hook saw. At the
//! end every parent must have converged, no child the hook wanted may have been deleted or
//! replaced (the API server served no child DELETE and exactly one child create per parent,
//! and every child kept the UID it was first seen with), there are no duplicate children,
//! and the engine's peak resident memory stays bounded. Every wait is bounded; the run
//! stops by itself. `CHAOS_SEED` replays a run.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use kube::Client;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::time::{sleep, timeout, Instant};
use tokio_util::sync::CancellationToken;

mod common;

use common::resource;

const PARENTS: usize = 1_000;
const RESTARTS: usize = 20;
/// Parents whose spec changes halfway through the restarts.
const CHANGED: usize = 200;
/// The whole test fails rather than run longer than this.
const TIME_LIMIT: Duration = Duration::from_secs(270);
/// How long the parents may take to converge after the last restart.
const FINAL_CONVERGENCE: Duration = Duration::from_secs(120);
/// The hook's timeout in the controller; a "timeout" failure answers later than this.
const HOOK_TIMEOUT_MS: u64 = 1_000;
/// Engine peak resident memory allowed (a debug build, 1,000 parents and children).
const MAX_ENGINE_RSS: u64 = 256 * 1024 * 1024;
const NAMESPACE: &str = "default";
const CHILD_LABEL: &str = "chaos-child";

fn parents_resource() -> ApiResource {
    ApiResource {
        group: "chaos.metacontroller.io".into(),
        version: "v1".into(),
        api_version: "chaos.metacontroller.io/v1".into(),
        kind: "Chaos".into(),
        plural: "chaoses".into(),
    }
}

fn obj(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("valid object")
}

/// splitmix64: a small deterministic generator, so a seed replays the hook's and the kill
/// schedule's decisions.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

// ---------------------------------------------------------------------------------------
// Processes

/// A child process killed (SIGKILL) when dropped, so a failing test leaves nothing behind.
struct Proc {
    child: tokio::process::Child,
}

impl Proc {
    fn spawn(bin: &Path, args: &[String], log: &Path) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("log file");
        let child = tokio::process::Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start metacontroller");
        Proc { child }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = timeout(Duration::from_secs(10), self.child.wait()).await;
    }

    async fn terminate(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
    }
}

/// `VmRSS` and `VmHWM` (peak) of a process, in bytes.
fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

// ---------------------------------------------------------------------------------------
// The hook

#[derive(Default)]
struct HookStats {
    calls: AtomicU64,
    ok: AtomicU64,
    errors_500: AtomicU64,
    timeouts: AtomicU64,
    garbage: AtomicU64,
}

async fn serve_hook(
    listener: TcpListener,
    seed: u64,
    stats: Arc<HookStats>,
    shutdown: CancellationToken,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => return,
            },
        };
        let stats = stats.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let stats = stats.clone();
                async move { Ok::<_, Infallible>(hook_reply(req, seed, &stats).await) }
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

fn reply(code: u16, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = hyper::StatusCode::from_u16(code).expect("status");
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

/// Bodies that are not a valid sync response; none of them may be read as "no children".
const GARBAGE: &[&str] = &[
    "this is not JSON",
    "{\"children\": [",
    "{\"children\": \"everything\"}",
    "{\"status\": 7, \"children\": {\"ConfigMap.v1\": 1}}",
    "[1, 2, 3]",
    "",
];

async fn hook_reply(req: Request<Incoming>, seed: u64, stats: &HookStats) -> Response<Full<Bytes>> {
    let n = stats.calls.fetch_add(1, Ordering::Relaxed);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(400, "unreadable body"),
    };
    let roll = mix(seed ^ n.wrapping_mul(0x2545_f491_4f6c_dd1d));
    if roll % 100 < 10 {
        match (roll / 100) % 3 {
            0 => {
                stats.errors_500.fetch_add(1, Ordering::Relaxed);
                return reply(500, "{\"error\": \"injected hook failure\"}");
            }
            1 => {
                stats.timeouts.fetch_add(1, Ordering::Relaxed);
                sleep(Duration::from_millis(HOOK_TIMEOUT_MS + 500)).await;
                return reply(500, "{\"error\": \"too late\"}");
            }
            _ => {
                stats.garbage.fetch_add(1, Ordering::Relaxed);
                let body = GARBAGE[((roll / 300) as usize) % GARBAGE.len()];
                return reply(200, body);
            }
        }
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return reply(400, "{\"error\": \"invalid JSON\"}");
    };
    stats.ok.fetch_add(1, Ordering::Relaxed);
    let name = request["parent"]["metadata"]["name"]
        .as_str()
        .unwrap_or_default();
    let value = request["parent"]["spec"]["value"].clone();
    let observed = common::count(&request["children"]["ConfigMap.v1"]);
    let response = json!({
        "status": {"children": observed, "value": value},
        "children": [{
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{name}-child"), "labels": {"app": CHILD_LABEL}},
            "data": {"value": value}
        }]
    });
    reply(200, response.to_string())
}

// ---------------------------------------------------------------------------------------
// Retrying through injected errors

fn retriable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(ae) => ae.code == 429 || ae.code >= 500,
        _ => true,
    }
}

/// Runs `op` until it succeeds or fails for a reason other than an injected fault (bounded).
async fn retry<T, F, Fut>(what: &str, mut op: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut last = None;
    for _ in 0..100 {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if retriable(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
        sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: still failing after 100 attempts: {last:?}");
}

// ---------------------------------------------------------------------------------------
// Checking the world

#[derive(Default)]
struct World {
    /// The UID each child had when first seen.
    first_uid: HashMap<String, String>,
    replaced: Vec<String>,
}

struct Check {
    converged: usize,
    children: usize,
    duplicates: usize,
    wrong_status: usize,
    not_converged_example: Option<String>,
}

async fn check(client: &Client, world: &Mutex<World>) -> Check {
    let parents: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &parents_resource());
    let cms: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        NAMESPACE,
        &resource("", "v1", "ConfigMap", "configmaps"),
    );
    let all = ListParams::default();
    let labelled = ListParams::default().labels(&format!("app={CHILD_LABEL}"));
    let parent_list = retry("listing parents", || parents.list(&all))
        .await
        .expect("list parents");
    let child_list = retry("listing children", || cms.list(&labelled))
        .await
        .expect("list children");
    let mut by_owner: HashMap<String, Vec<&DynamicObject>> = HashMap::new();
    {
        let mut w = world.lock().expect("world");
        for c in &child_list.items {
            let name = c.metadata.name.clone().unwrap_or_default();
            let uid = c.metadata.uid.clone().unwrap_or_default();
            match w.first_uid.get(&name) {
                Some(first) if *first != uid => w.replaced.push(name.clone()),
                Some(_) => {}
                None => {
                    w.first_uid.insert(name.clone(), uid);
                }
            }
            for o in c.metadata.owner_references.iter().flatten() {
                if o.controller == Some(true) {
                    by_owner.entry(o.uid.clone()).or_default().push(c);
                }
            }
        }
    }
    let mut out = Check {
        converged: 0,
        children: child_list.items.len(),
        duplicates: by_owner.values().filter(|v| v.len() > 1).count(),
        wrong_status: 0,
        not_converged_example: None,
    };
    for p in &parent_list.items {
        let name = p.metadata.name.clone().unwrap_or_default();
        let uid = p.metadata.uid.clone().unwrap_or_default();
        let value = &p.data["spec"]["value"];
        let owned = by_owner.get(&uid).map(Vec::as_slice).unwrap_or_default();
        let child_ok = owned.len() == 1
            && owned[0].metadata.name.as_deref() == Some(&format!("{name}-child"))
            && owned[0].data["data"]["value"] == *value;
        let status = &p.data["status"];
        let status_ok = status["children"] == 1 && status["value"] == *value;
        if child_ok && status_ok {
            out.converged += 1;
        } else {
            if child_ok && !status.is_null() {
                out.wrong_status += 1;
            }
            if out.not_converged_example.is_none() {
                out.not_converged_example = Some(format!(
                    "{name}: spec {value}, status {status}, {} owned children",
                    owned.len()
                ));
            }
        }
    }
    out
}

/// `apiserver_request_total` for one verb and resource with a 2xx code.
fn successful(metrics: &str, verb: &str, resource: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains("code=\"2"))
        .filter(|l| l.contains(&format!("verb=\"{verb}\"")))
        .filter(|l| l.contains(&format!("resource=\"{resource}\"")))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Successful writes other than events.
fn writes(metrics: &str) -> u64 {
    ["POST", "PUT", "PATCH", "DELETE"]
        .iter()
        .map(|verb| {
            metrics
                .lines()
                .filter(|l| l.starts_with("apiserver_request_total{"))
                .filter(|l| l.contains("code=\"2") && !l.contains("resource=\"events\""))
                .filter(|l| l.contains(&format!("verb=\"{verb}\"")))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

async fn get_text(client: &Client, path: &str) -> String {
    let request = http::Request::get(path).body(Vec::new()).expect("request");
    client.request_text(request).await.expect(path)
}

async fn client_from(kubeconfig: &Path) -> Client {
    let text = std::fs::read_to_string(kubeconfig).expect("kubeconfig");
    let kubeconfig = Kubeconfig::from_yaml(&text).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

// ---------------------------------------------------------------------------------------
// The run

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_converges_through_api_faults_hook_failures_and_kills() {
    timeout(TIME_LIMIT, run())
        .await
        .expect("the chaos run finishes within its time limit");
}

async fn run() {
    let started = Instant::now();
    let seed: u64 = std::env::var("CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_metacontroller"));
    let dir = std::env::temp_dir().join(format!("mc-chaos-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let kubeconfig = dir.join("kubeconfig");
    let server_log = dir.join("server.log");
    let engine_log = dir.join("engine.log");
    eprintln!("chaos: seed {seed}, logs in {}", dir.display());

    let server_args: Vec<String> = [
        "dev",
        "--server-only",
        "--listen",
        "127.0.0.1:0",
        "--log-level",
        "warn",
        "--fault-error-rate",
        "*=0.05",
        "--fault-watch-close-every",
        "10s",
        "--fault-watch-gone",
        "0.2",
    ]
    .iter()
    .map(|s| s.to_string())
    .chain([
        "--kubeconfig-out".to_string(),
        kubeconfig.display().to_string(),
        "--fault-seed".to_string(),
        seed.to_string(),
    ])
    .collect();
    let server = Proc::spawn(&bin, &server_args, &server_log);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !kubeconfig.exists() {
        assert!(
            Instant::now() < deadline,
            "the API server wrote no kubeconfig"
        );
        sleep(Duration::from_millis(20)).await;
    }
    let client = client_from(&kubeconfig).await;

    // The hook.
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hook");
    let hook_url = format!("http://{}/sync", listener.local_addr().expect("addr"));
    let hook = Arc::new(HookStats::default());
    tokio::spawn(serve_hook(listener, seed, hook.clone(), shutdown.clone()));

    // The parent type and the controller, through the injected errors.
    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    );
    let crd = obj(json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "chaoses.chaos.metacontroller.io"},
        "spec": {
            "group": "chaos.metacontroller.io", "scope": "Namespaced",
            "names": {"plural": "chaoses", "singular": "chaos", "kind": "Chaos", "listKind": "ChaosList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "subresources": {"status": {}},
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]
        }
    }));
    let pp = PostParams::default();
    retry("creating the CRD", || crds.create(&pp, &crd))
        .await
        .expect("CRD");
    let parents: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), NAMESPACE, &parents_resource());
    let one = ListParams::default().limit(1);
    retry("listing parents", || parents.list(&one))
        .await
        .expect("parents served");
    let controllers: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(
            "metacontroller.k8s.io",
            "v1alpha1",
            "CompositeController",
            "compositecontrollers",
        ),
    );
    let cc = obj(json!({
        "apiVersion": "metacontroller.k8s.io/v1alpha1", "kind": "CompositeController",
        "metadata": {"name": "chaos"},
        "spec": {
            "generateSelector": true,
            "parentResource": {"apiVersion": "chaos.metacontroller.io/v1", "resource": "chaoses"},
            "childResources": [{"apiVersion": "v1", "resource": "configmaps",
                                "updateStrategy": {"method": "InPlace"}}],
            "hooks": {"sync": {"webhook": {"url": hook_url, "timeout": format!("{HOOK_TIMEOUT_MS}ms")}}}
        }
    }));
    retry("creating the controller", || controllers.create(&pp, &cc))
        .await
        .expect("controller");

    // The parents.
    futures::stream::iter(0..PARENTS)
        .for_each_concurrent(8, |i| {
            let parents = parents.clone();
            async move {
                let p = obj(json!({
                    "apiVersion": "chaos.metacontroller.io/v1", "kind": "Chaos",
                    "metadata": {"name": format!("p-{i:04}")},
                    "spec": {"value": format!("v1-{i}")}
                }));
                let pp = PostParams::default();
                retry("creating a parent", || parents.create(&pp, &p))
                    .await
                    .expect("parent");
            }
        })
        .await;
    let setup_time = started.elapsed();

    // A background check every second records each child's first UID, so a replacement
    // between two checks is caught when the final check sees a different UID.
    let world = Arc::new(Mutex::new(World::default()));
    let watcher = {
        let (client, world, stop) = (client.clone(), world.clone(), shutdown.clone());
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                check(&client, &world).await;
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    };

    // The engine, killed and restarted.
    let engine_args: Vec<String> = [
        "--kubeconfig",
        &kubeconfig.display().to_string(),
        "--client-go-qps=-1",
        "--metrics-address=0",
        "--health-probe-bind-address=0",
        "--log-level=warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut peaks = Vec::new();
    let mut lifetimes = Vec::new();
    let chaos_started = Instant::now();
    for round in 0..RESTARTS {
        let engine = Proc::spawn(&bin, &engine_args, &engine_log);
        let pid = engine.pid();
        let life = Duration::from_millis(700 + mix(seed ^ (round as u64 + 1)) % 2_300);
        if round == RESTARTS / 2 {
            // The world changes mid-chaos: some parents get a new spec.
            let world_change = futures::stream::iter(0..CHANGED).for_each_concurrent(8, |i| {
                let parents = parents.clone();
                async move {
                    let patch = Patch::Merge(json!({"spec": {"value": format!("v2-{i}")}}));
                    let (name, params) = (format!("p-{i:04}"), PatchParams::default());
                    retry("patching a parent", || {
                        parents.patch(&name, &params, &patch)
                    })
                    .await
                    .expect("patch parent");
                }
            });
            tokio::join!(world_change, sleep(life));
        } else {
            sleep(life).await;
        }
        if let Some((_, hwm)) = memory_of(pid) {
            peaks.push(hwm);
        }
        lifetimes.push(life);
        engine.kill().await;
    }
    let chaos_time = chaos_started.elapsed();
    let progress_at_last_kill = check(&client, &world).await.converged;

    // The last engine runs until everything converged.
    let engine = Proc::spawn(&bin, &engine_args, &engine_log);
    let pid = engine.pid();
    let final_started = Instant::now();
    let mut last;
    loop {
        last = check(&client, &world).await;
        if last.converged == PARENTS {
            break;
        }
        assert!(
            final_started.elapsed() < FINAL_CONVERGENCE,
            "{} of {PARENTS} parents converged {FINAL_CONVERGENCE:?} after the last restart; e.g. {}",
            last.converged,
            last.not_converged_example.as_deref().unwrap_or("-"),
        );
        sleep(Duration::from_millis(500)).await;
    }
    let final_convergence = final_started.elapsed();

    // Steady state: nothing changes, so the engine writes nothing, even while its watches
    // are cut and resumes expire. A relist may still report an object whose own write's
    // watch event was lost, once (a hook call, no write); with the faults off, not even that.
    let quiet_from = Instant::now();
    let before_writes = writes(&get_text(&client, "/metrics").await);
    let before_calls = hook.calls.load(Ordering::Relaxed);
    sleep(Duration::from_secs(12)).await;
    let after_writes = writes(&get_text(&client, "/metrics").await);
    let after_calls = hook.calls.load(Ordering::Relaxed);
    let quiet = quiet_from.elapsed();
    let faults_report = get_text(&client, "/debug/faults").await;
    let off = http::Request::put("/debug/faults")
        .body(b"{}".to_vec())
        .expect("request");
    client.request_text(off).await.expect("faults off");
    sleep(Duration::from_secs(2)).await;
    let off_writes_before = writes(&get_text(&client, "/metrics").await);
    let off_calls_before = hook.calls.load(Ordering::Relaxed);
    sleep(Duration::from_secs(5)).await;
    let off_writes = writes(&get_text(&client, "/metrics").await) - off_writes_before;
    let off_calls = hook.calls.load(Ordering::Relaxed) - off_calls_before;
    let final_memory = memory_of(pid);
    if let Some((_, hwm)) = final_memory {
        peaks.push(hwm);
    }

    let metrics = get_text(&client, "/metrics").await;
    let faults: Value = serde_json::from_str(&faults_report).expect("faults report");
    let child_creates = successful(&metrics, "POST", "configmaps");
    let child_deletes = successful(&metrics, "DELETE", "configmaps");
    let final_check = check(&client, &world).await;
    let replaced = world.lock().expect("world").replaced.clone();
    shutdown.cancel();
    let _ = watcher.await;
    engine.terminate().await;
    server.terminate().await;

    let max_peak = peaks.iter().copied().max().unwrap_or(0);
    let mut sorted = peaks.clone();
    sorted.sort_unstable();
    let median_peak = sorted.get(sorted.len() / 2).copied().unwrap_or(0);
    let injected = &faults["injected"];
    let by_verb = injected["errorsByVerb"].to_string();
    eprintln!(
        "chaos figures (seed {seed}):\n\
         \x20 parents {PARENTS}, changed mid-run {CHANGED}; setup {:.1} s\n\
         \x20 engine SIGKILLed {RESTARTS} times over {:.1} s (lifetimes {:.1}-{:.1} s); {} of {PARENTS} converged at the last kill\n\
         \x20 final convergence {:.1} s after the last restart; total {:.1} s\n\
         \x20 converged {} / {PARENTS}; children {}; duplicates {}; replaced {}; child creates {child_creates}; child deletes {child_deletes}\n\
         \x20 hook calls {} (ok {}, 500 {}, timeouts {}, garbage {})\n\
         \x20 API faults: {} of {} requests failed, by verb and code {by_verb}; watches cut {}, resumes expired {}\n\
         \x20 steady state over {:.1} s under faults: {} writes, {} hook calls; faults off, 5 s: {off_writes} writes, {off_calls} hook calls\n\
         \x20 engine peak RSS: max {:.1} MiB, median {:.1} MiB; final RSS {:.1} MiB",
        setup_time.as_secs_f64(),
        chaos_time.as_secs_f64(),
        lifetimes.iter().min().map_or(0.0, Duration::as_secs_f64),
        lifetimes.iter().max().map_or(0.0, Duration::as_secs_f64),
        progress_at_last_kill,
        final_convergence.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        final_check.converged,
        final_check.children,
        final_check.duplicates,
        replaced.len(),
        hook.calls.load(Ordering::Relaxed),
        hook.ok.load(Ordering::Relaxed),
        hook.errors_500.load(Ordering::Relaxed),
        hook.timeouts.load(Ordering::Relaxed),
        hook.garbage.load(Ordering::Relaxed),
        injected["errors"],
        injected["requests"],
        injected["watchesCut"],
        injected["watchesGone"],
        quiet.as_secs_f64(),
        after_writes - before_writes,
        after_calls - before_calls,
        mib(max_peak),
        mib(median_peak),
        final_memory.map_or(0.0, |(rss, _)| mib(rss)),
    );

    // Every parent converged with a correct status, one child each, none replaced.
    assert_eq!(final_check.converged, PARENTS);
    assert_eq!(final_check.wrong_status, 0);
    assert_eq!(final_check.children, PARENTS, "one child per parent");
    assert_eq!(final_check.duplicates, 0);
    assert!(replaced.is_empty(), "children replaced: {replaced:?}");
    assert_eq!(child_deletes, 0, "no child was ever deleted");
    assert_eq!(
        child_creates, PARENTS as u64,
        "each child was created exactly once"
    );
    // The faults really happened.
    assert!(injected["errors"].as_u64() > Some(100), "{faults}");
    assert!(injected["watchesCut"].as_u64() > Some(0), "{faults}");
    assert!(hook.errors_500.load(Ordering::Relaxed) > 0);
    assert!(hook.timeouts.load(Ordering::Relaxed) > 0);
    assert!(hook.garbage.load(Ordering::Relaxed) > 0);
    // Quiet once converged, and bounded in memory.
    assert_eq!(after_writes, before_writes, "writes in steady state");
    assert_eq!(off_writes, 0, "writes in steady state without faults");
    assert_eq!(off_calls, 0, "hook calls in steady state without faults");
    assert!(
        max_peak < MAX_ENGINE_RSS,
        "engine peak RSS {:.1} MiB",
        mib(max_peak)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
