//! `apiserver-load`: a load harness for the embedded API server.
//!
//! Starts the server over HTTPS on a free loopback port, in this process or (with
//! `--server-process`) in a child process, or uses a running one given by `--url`, and
//! measures, with keep-alive HTTP/1.1 clients:
//!
//! 1. resident memory per 10,000 stored ConfigMaps against the objects' JSON size (of the
//!    process running the server; for `--url` only with `--server-pid`),
//! 2. the latency of listing those 10,000 objects,
//! 3. creates per second and gets per second,
//! 4. watch event latency with many watchers, from a write to each watcher receiving it.
//!
//! Every loop is bounded by a count and by the run's deadline. It prints a Markdown table and
//! one JSON line.

mod child;
mod client;
mod phases;
mod stats;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::Target;
use crate::phases::{ListResult, Throughput, WatchResult};
use crate::stats::{mib, millis, ms, rss_bytes, thousands};

#[derive(Parser, Debug)]
#[command(
    name = "apiserver-load",
    about = "Load benchmark for the embedded Kubernetes API server"
)]
struct Args {
    /// Use a running server at this URL instead of starting one in this process
    /// (memory is then measured only with --server-pid).
    #[arg(long, env = "APISERVER_LOAD_URL")]
    url: Option<String>,
    /// Run the server in a child process, so its memory is measured apart from the clients'.
    #[arg(long, conflicts_with = "url")]
    server_process: bool,
    /// Serve only: what the child process of --server-process runs.
    #[arg(long, hide = true)]
    serve: bool,
    /// Bearer token for --url.
    #[arg(long, env = "APISERVER_LOAD_TOKEN")]
    token: Option<String>,
    /// PEM file with the CA to trust for --url.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// With --url: the server's process id on this machine, to measure its resident memory.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Do not verify the server certificate of --url.
    #[arg(long)]
    insecure_skip_tls_verify: bool,
    /// Concurrent keep-alive clients for creates and gets.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// ConfigMaps created in the throughput phase.
    #[arg(long, default_value_t = 20_000)]
    creates: usize,
    /// Gets in the throughput phase.
    #[arg(long, default_value_t = 100_000)]
    gets: usize,
    /// ConfigMaps stored for the memory and list measurements.
    #[arg(long, default_value_t = 10_000)]
    list_objects: usize,
    /// Number of full lists timed.
    #[arg(long, default_value_t = 5)]
    lists: usize,
    /// Concurrent watches in the watch phase.
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Writes observed by the watchers.
    #[arg(long, default_value_t = 200)]
    watch_events: usize,
    /// Pause between two watched writes, in milliseconds.
    #[arg(long, default_value_t = 5)]
    watch_interval_ms: u64,
    /// Size of each ConfigMap's data value in bytes.
    #[arg(long, default_value_t = 256)]
    value_bytes: usize,
    /// The whole run stops measuring after this many seconds.
    #[arg(long, default_value_t = 100)]
    time_limit_secs: u64,
}

/// Each phase gets at most this share of the run, so a slow phase leaves time for the others.
const PHASE_LIMITS: Phases = Phases {
    memory: Duration::from_secs(25),
    lists: Duration::from_secs(10),
    creates: Duration::from_secs(25),
    gets: Duration::from_secs(15),
    watch: Duration::from_secs(20),
};

struct Phases {
    memory: Duration,
    lists: Duration,
    creates: Duration,
    gets: Duration,
    watch: Duration,
}

struct Memory {
    objects: usize,
    json_bytes: u64,
    rss_growth: Option<u64>,
}

impl Memory {
    fn per_10k(&self, bytes: u64) -> u64 {
        if self.objects == 0 {
            return 0;
        }
        bytes * 10_000 / self.objects as u64
    }

    fn ratio(&self) -> Option<f64> {
        let growth = self.rss_growth?;
        (self.json_bytes > 0).then(|| growth as f64 / self.json_bytes as f64)
    }
}

/// Where the server under test runs.
enum ServerHandle {
    InProcess(metacontroller_apiserver::Server),
    Child(child::ChildServer),
    External,
}

impl ServerHandle {
    fn mode(&self) -> &'static str {
        match self {
            Self::InProcess(_) => "in-process",
            Self::Child(_) => "child-process",
            Self::External => "url",
        }
    }
}

struct Report {
    clients: usize,
    server_mode: &'static str,
    /// The process whose memory was measured (`None`: this one, or none for a bare --url).
    server_pid: Option<u32>,
    /// ConfigMap requests by verb as the server's `/metrics` counted them.
    server_counts: Option<BTreeMap<String, u64>>,
    memory: Memory,
    setup: Throughput,
    list: ListResult,
    creates: Throughput,
    gets: Throughput,
    watch: WatchResult,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.serve {
        // Exit at once: the runtime would otherwise wait for the blocking read on stdin.
        let code = match child::serve(Duration::from_secs(args.time_limit_secs)).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("apiserver-load --serve: {e:#}");
                1
            }
        };
        std::process::exit(code);
    }
    anyhow::ensure!(args.clients > 0, "--clients must be at least 1");
    let run_until = Instant::now() + Duration::from_secs(args.time_limit_secs);
    let shutdown = CancellationToken::new();

    let (target, server) = match &args.url {
        None if args.server_process => {
            // The child outlives the measurements by a margin, then stops by itself.
            let child =
                child::ChildServer::spawn(Duration::from_secs(args.time_limit_secs + 60)).await?;
            (child.target.clone(), ServerHandle::Child(child))
        }
        Some(url) => {
            let ca_pem = match &args.ca_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .with_context(|| format!("reading {}", path.display()))?,
                ),
                None => None,
            };
            let target = Target {
                base: url.trim_end_matches('/').to_string(),
                token: args.token.clone(),
                ca_pem,
                insecure: args.insecure_skip_tls_verify,
            };
            (target, ServerHandle::External)
        }
        None => {
            let config = metacontroller_apiserver::ServerConfig {
                listen: "127.0.0.1:0".parse()?,
                tls: true,
            };
            let server = metacontroller_apiserver::start(config, shutdown.clone())
                .await
                .map_err(|e| anyhow::anyhow!("starting the API server: {e}"))?;
            let target = Target {
                base: server.url.trim_end_matches('/').to_string(),
                token: server.token.clone(),
                ca_pem: server.ca_pem.clone(),
                insecure: false,
            };
            (target, ServerHandle::InProcess(server))
        }
    };
    eprintln!("apiserver-load: server at {}", target.base);

    let clients = (0..args.clients)
        .map(|_| target.client())
        .collect::<anyhow::Result<Vec<_>>>()?;
    for ns in ["load-mem", "load-crud", "load-watch"] {
        phases::ensure_namespace(&target, &clients[0], ns).await?;
    }
    let deadline = |limit: Duration| (Instant::now() + limit).min(run_until);

    // Memory first, on a heap that has seen little else.
    let (measure_memory, memory_pid) = match &server {
        ServerHandle::InProcess(_) => (true, None),
        ServerHandle::Child(child) => (true, Some(child.pid)),
        ServerHandle::External => (args.server_pid.is_some(), args.server_pid),
    };
    let rss = || {
        if measure_memory {
            rss_bytes(memory_pid)
        } else {
            None
        }
    };
    let rss_before = rss();
    eprintln!(
        "apiserver-load: storing {} ConfigMaps for the memory and list measurements",
        args.list_objects
    );
    let setup = phases::create_configmaps(
        &target,
        &clients,
        "load-mem",
        "mem-",
        args.list_objects,
        args.value_bytes,
        deadline(PHASE_LIMITS.memory),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_after = rss();
    let memory = Memory {
        objects: setup.done,
        json_bytes: setup.bytes,
        rss_growth: rss_before.zip(rss_after).map(|(b, a)| a.saturating_sub(b)),
    };

    eprintln!("apiserver-load: listing");
    let list = phases::list_latency(
        &target,
        &clients[0],
        "load-mem",
        args.lists,
        deadline(PHASE_LIMITS.lists),
    )
    .await;

    eprintln!(
        "apiserver-load: {} creates with {} clients",
        args.creates, args.clients
    );
    let creates = phases::create_configmaps(
        &target,
        &clients,
        "load-crud",
        "cm-",
        args.creates,
        args.value_bytes,
        deadline(PHASE_LIMITS.creates),
    )
    .await;

    eprintln!(
        "apiserver-load: {} gets with {} clients",
        args.gets, args.clients
    );
    let gets = phases::get_configmaps(
        &target,
        &clients,
        "load-crud",
        "cm-",
        creates.done,
        args.gets,
        deadline(PHASE_LIMITS.gets),
    )
    .await;

    eprintln!(
        "apiserver-load: {} watchers, {} events",
        args.watchers, args.watch_events
    );
    let watch = phases::watch_latency(
        &target,
        &clients[0],
        "load-watch",
        args.watchers,
        args.watch_events,
        Duration::from_millis(args.watch_interval_ms),
        args.value_bytes,
        deadline(PHASE_LIMITS.watch),
    )
    .await?;

    let server_counts = phases::server_request_counts(&target, &clients[0], "configmaps").await;

    let report = Report {
        clients: args.clients,
        server_mode: server.mode(),
        server_pid: memory_pid,
        server_counts,
        memory,
        setup,
        list,
        creates,
        gets,
        watch,
    };
    print_markdown(&report);
    println!("{}", json_line(&report));

    shutdown.cancel();
    match server {
        ServerHandle::InProcess(server) => {
            if tokio::time::timeout(Duration::from_secs(10), server.stopped())
                .await
                .is_err()
            {
                eprintln!("apiserver-load: the server did not stop within 10 s");
            }
        }
        ServerHandle::Child(child) => child.stop().await,
        ServerHandle::External => {}
    }
    Ok(())
}

fn capped(t: &Throughput) -> &'static str {
    if t.capped {
        " (stopped by the time limit)"
    } else {
        ""
    }
}

fn errors(n: usize, first: &Option<String>) -> String {
    match first {
        Some(e) if n > 0 => format!("; {n} errors, first: {e}"),
        _ => String::new(),
    }
}

fn print_markdown(r: &Report) {
    let creates_per_s = r.creates.per_second();
    let gets_per_s = r.gets.per_second();
    println!("| measurement | result | target |");
    println!("|---|---|---|");
    println!(
        "| creates/s, {} clients, {} ConfigMaps{} | {} (latency p50 / p99 {}){} | ≥ 5,000 {} |",
        r.clients,
        r.creates.done,
        capped(&r.creates),
        thousands(creates_per_s),
        r.creates.latency.display(),
        errors(r.creates.errors, &r.creates.first_error),
        verdict(creates_per_s >= 5_000.0),
    );
    println!(
        "| gets/s, {} clients, {} gets{} | {} (latency p50 / p99 {}){} | ≥ 20,000 {} |",
        r.clients,
        r.gets.done,
        capped(&r.gets),
        thousands(gets_per_s),
        r.gets.latency.display(),
        errors(r.gets.errors, &r.gets.first_error),
        verdict(gets_per_s >= 20_000.0),
    );
    println!(
        "| list of {} ConfigMaps ({}), p50 / p99 over {} lists | {}{} | |",
        r.list.items,
        mib(r.list.bytes),
        r.list.latency.samples,
        r.list.latency.display(),
        errors(r.list.errors, &r.list.first_error),
    );
    println!(
        "| watch event latency, {} of {} watchers connected, {} events ({} of {} deliveries) | p50 / p99 {}, max {}{} | |",
        r.watch.connected,
        r.watch.watchers,
        r.watch.events,
        r.watch.received,
        r.watch.expected,
        r.watch.latency.display(),
        ms(r.watch.latency.max),
        errors(r.watch.write_errors, &r.watch.first_error),
    );
    let m = &r.memory;
    match (m.rss_growth, m.ratio()) {
        (Some(growth), Some(ratio)) => println!(
            "| resident memory per 10,000 ConfigMaps, server {} ({} stored, {} creates/s{}) | {} RSS for {} of JSON: {:.2}× | ≤ 2× {} |",
            r.server_mode,
            m.objects,
            thousands(r.setup.per_second()),
            errors(r.setup.errors, &r.setup.first_error),
            mib(m.per_10k(growth)),
            mib(m.per_10k(m.json_bytes)),
            ratio,
            verdict(ratio <= 2.0),
        ),
        _ => println!(
            "| resident memory per 10,000 ConfigMaps | not measured ({}) | ≤ 2× |",
            if r.server_mode == "url" && r.server_pid.is_none() {
                "give --server-pid for a server at --url"
            } else {
                "no /proc/<pid>/status"
            }
        ),
    }
    let ours = client_counts(r);
    match &r.server_counts {
        Some(server) => {
            // Watches are counted when they end, which may be after this reading.
            let agree = ["POST", "GET", "LIST"]
                .iter()
                .all(|verb| server.get(*verb).copied().unwrap_or(0) >= ours[*verb]);
            println!(
                "| ConfigMap requests counted by the server's /metrics | {} ({}) | |",
                format_counts(server),
                if agree {
                    "at least the requests sent".to_string()
                } else {
                    format!("fewer than sent: {}", format_counts(&ours))
                },
            );
        }
        None => println!(
            "| ConfigMap requests counted by the server's /metrics | /metrics not available | |"
        ),
    }
}

/// ConfigMap requests by verb, as this process sent them (kube-apiserver labels creates `POST`).
fn client_counts(r: &Report) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    let creates =
        r.setup.done + r.setup.errors + r.creates.done + r.creates.errors + r.watch.writes;
    counts.insert("POST".to_string(), creates as u64);
    counts.insert("GET".to_string(), (r.gets.done + r.gets.errors) as u64);
    counts.insert("LIST".to_string(), r.list.requests as u64);
    counts.insert("WATCH".to_string(), r.watch.watchers as u64);
    counts
}

fn format_counts(counts: &BTreeMap<String, u64>) -> String {
    counts
        .iter()
        .map(|(verb, n)| format!("{verb} {}", thousands(*n as f64)))
        .collect::<Vec<_>>()
        .join(", ")
}

fn verdict(met: bool) -> &'static str {
    if met {
        "(met)"
    } else {
        "(missed)"
    }
}

fn json_line(r: &Report) -> serde_json::Value {
    let m = &r.memory;
    serde_json::json!({
        "clients": r.clients,
        "server": r.server_mode,
        "creates": r.creates.done,
        "create_errors": r.creates.errors,
        "creates_per_s": r.creates.per_second().round(),
        "create_p50_ms": millis(r.creates.latency.p50),
        "create_p99_ms": millis(r.creates.latency.p99),
        "gets": r.gets.done,
        "get_errors": r.gets.errors,
        "gets_per_s": r.gets.per_second().round(),
        "get_p50_ms": millis(r.gets.latency.p50),
        "get_p99_ms": millis(r.gets.latency.p99),
        "list_items": r.list.items,
        "list_bytes": r.list.bytes,
        "list_p50_ms": millis(r.list.latency.p50),
        "list_p99_ms": millis(r.list.latency.p99),
        "watchers": r.watch.watchers,
        "watchers_connected": r.watch.connected,
        "watch_events": r.watch.events,
        "watch_deliveries": r.watch.received,
        "watch_deliveries_expected": r.watch.expected,
        "watch_p50_ms": millis(r.watch.latency.p50),
        "watch_p99_ms": millis(r.watch.latency.p99),
        "watch_max_ms": millis(r.watch.latency.max),
        "memory_objects": m.objects,
        "memory_json_bytes": m.json_bytes,
        "memory_rss_growth_bytes": m.rss_growth,
        "memory_rss_per_10k_bytes": m.rss_growth.map(|g| m.per_10k(g)),
        "memory_ratio": m.ratio().map(|x| (x * 100.0).round() / 100.0),
        "client_request_counts": client_counts(r),
        "server_request_counts": r.server_counts,
    })
}
