//! Command-line flags. Names, defaults and value syntax follow upstream Metacontroller (Go's
//! `flag` package plus controller-runtime's `--zap-*` options), so existing manifests start
//! unchanged: durations are Go duration strings, booleans take `--flag` or `--flag=false`,
//! addresses may omit the host (`:9999`), and `-flag` works like `--flag` (see
//! [`normalize_args`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "metacontroller",
    version,
    about = "Write Kubernetes controllers as webhooks"
)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
    #[command(flatten)]
    pub logging: LoggingArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start an in-memory Kubernetes API server and the engine in one process, and write a
    /// kubeconfig so kubectl can talk to it.
    Dev(DevArgs),
}

/// Flags of the engine, shared by the cluster mode and `dev`.
#[derive(Debug, Clone, Args)]
pub struct EngineArgs {
    /// How often to refresh discovery (new CRDs are picked up then).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub discovery_interval: Duration,
    /// How often to flush local caches and relist objects (accepted for compatibility:
    /// watches relist on their own whenever the server expires them).
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub cache_flush_interval: Duration,
    /// Number of sync workers per controller.
    #[arg(long, default_value_t = 5)]
    pub workers: usize,
    /// Rate of events per object once the burst is spent (events per second).
    #[arg(long, default_value_t = 1.0 / 300.0)]
    pub events_qps: f64,
    /// Events allowed per object before rate limiting starts.
    #[arg(long, default_value_t = 25)]
    pub events_burst: u32,
    /// Manage only CompositeControllers and DecoratorControllers whose labels match this
    /// selector (`key=value`, `key in (a,b)`, `!key`, ...). Empty manages all.
    #[arg(long, default_value = "", value_parser = parse_selector)]
    pub target_label_selector: Selector,
    /// How children are written: `dynamic-apply` (three-way merge with the last-applied
    /// annotation) or `server-side-apply` (applied under the field manager below).
    #[arg(long, value_enum, default_value = "dynamic-apply")]
    pub apply_strategy: ApplyStrategy,
    /// Field manager children are applied as under `server-side-apply`.
    #[arg(long, default_value = "metacontroller")]
    pub apply_strategy_ssa_field_manager: String,
    /// How long shutdown waits for in-flight syncs before abandoning them.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub graceful_shutdown_timeout: Duration,
}

/// A parsed `--target-label-selector`, keeping its text for logs.
#[derive(Debug, Clone)]
pub struct Selector {
    pub text: String,
    pub selector: metacontroller_merge::LabelSelector,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ApplyStrategy {
    DynamicApply,
    ServerSideApply,
}

/// Flags of cluster mode.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Path to a kubeconfig. Without it: in-cluster config, else the default kubeconfig.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Address of the `/metrics` endpoint (`:9999` listens on every interface); `0` disables.
    #[arg(long, default_value = ":9999", value_parser = parse_bind_address)]
    pub metrics_address: BindAddress,
    /// Address of the `/healthz` and `/readyz` endpoints; `0` disables.
    #[arg(long, default_value = ":8081", value_parser = parse_bind_address)]
    pub health_probe_bind_address: BindAddress,
    /// Address of a profiling endpoint (accepted for compatibility; only `0` is supported).
    #[arg(long, default_value = "0")]
    pub pprof_address: String,
    /// Requests per second the engine may make to the API server; a negative value disables
    /// the limit, zero means the default.
    #[arg(long, default_value_t = 5.0, allow_negative_numbers = true)]
    pub client_go_qps: f64,
    /// Requests the engine may make in a burst above `--client-go-qps`.
    #[arg(long, default_value_t = 10)]
    pub client_go_burst: u32,
    /// Threads that run the engine; 0 starts one per available core. One is the default: a
    /// sync mostly waits on its hook and the API server, and a single thread spends no CPU
    /// on handing work and wake-ups between threads. Raise it when many controllers with large
    /// objects keep one core busy.
    #[arg(long, default_value_t = 1)]
    pub runtime_threads: usize,
    #[command(flatten)]
    pub leader: LeaderElectionArgs,
}

#[derive(Debug, Clone, Args)]
pub struct LeaderElectionArgs {
    /// Run only while holding a Lease, so one replica of several is active.
    #[arg(long, default_value = "false", num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub leader_election: bool,
    /// The kind of lock; only `leases` is supported, as in current client-go.
    #[arg(long, default_value = "leases", value_parser = ["leases"])]
    pub leader_election_resource_lock: String,
    /// Namespace of the Lease. Default: the pod's namespace (from its service account).
    #[arg(long, default_value = "")]
    pub leader_election_namespace: String,
    /// Name of the Lease.
    #[arg(long, default_value = "metacontroller")]
    pub leader_election_id: String,
    /// How long a Lease is valid without renewal; standbys take over after it.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_election_lease_duration: Duration,
    /// How long the leader keeps retrying a renewal before it gives up leading.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_election_renew_deadline: Duration,
    /// How often to try acquiring or renewing the Lease.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_election_retry_period: Duration,
}

/// Where a server listens: `Some(address)`, or `None` when disabled with `0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindAddress(pub Option<String>);

#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Address the API server listens on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Where to write the kubeconfig (written once the server accepts connections).
    #[arg(long, default_value = "metacontroller-dev.kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// Serve plain HTTP without authentication (for debugging). Refused on an address other
    /// than loopback unless `--allow-insecure-network` is given too.
    #[arg(long)]
    pub insecure_http: bool,
    /// With `--insecure-http`, allow listening beyond loopback: anyone who can reach the
    /// address is an administrator of the cluster.
    #[arg(long)]
    pub allow_insecure_network: bool,
    /// Run only the API server, without the engine, the node or the workload controllers.
    #[arg(long)]
    pub server_only: bool,
    /// How the node `dev-node` runs pods: `simulated` (nothing runs; containers run or complete
    /// by a fixed rule), `process` (each container is a local process) or `none` (no node and
    /// no workload controllers: pods stay Pending).
    #[arg(long, value_enum, default_value = "simulated")]
    pub runtime: DevRuntime,
    #[command(flatten)]
    pub faults: FaultArgs,
    #[command(flatten)]
    pub engine: EngineArgs,
}

/// Fault injection in `dev`'s API server (also changeable at run time through
/// `GET`/`PUT /debug/faults`).
#[derive(Debug, Clone, Default, Args)]
pub struct FaultArgs {
    /// Answer this fraction of requests of a verb with an injected error: `VERB=RATE`, verbs
    /// `get list watch create update patch delete deletecollection` or `*`; repeatable or
    /// comma-separated (`--fault-error-rate '*=0.05'`).
    #[arg(long, value_delimiter = ',', value_parser = metacontroller_apiserver::faults::parse_verb_rate)]
    pub fault_error_rate: Vec<(String, f64)>,
    /// Codes of injected errors, picked at random (429, 500, 502, 503, 504; default
    /// 500,503,429).
    #[arg(long, value_delimiter = ',')]
    pub fault_status: Vec<u16>,
    /// Latency added to every resource request (a Go duration, e.g. `20ms`).
    #[arg(long, value_parser = parse_duration)]
    pub fault_latency: Option<Duration>,
    /// End every watch stream after this long (e.g. `10s`); clients must re-watch.
    #[arg(long, value_parser = parse_duration)]
    pub fault_watch_close_every: Option<Duration>,
    /// Answer this fraction of watches that resume from a resourceVersion with `410 Expired`,
    /// so clients must relist.
    #[arg(long, default_value_t = 0.0)]
    pub fault_watch_gone: f64,
    /// Seed of the fault decisions, so a failing run can be replayed.
    #[arg(long)]
    pub fault_seed: Option<u64>,
}

impl FaultArgs {
    /// The settings these flags describe.
    pub fn config(&self) -> metacontroller_apiserver::FaultConfig {
        metacontroller_apiserver::FaultConfig {
            error_rates: self.fault_error_rate.iter().cloned().collect(),
            statuses: self.fault_status.clone(),
            latency_ms: self.fault_latency.map_or(0, |d| d.as_millis() as u64),
            watch_close_every_ms: self
                .fault_watch_close_every
                .map_or(0, |d| d.as_millis() as u64),
            watch_gone_rate: self.fault_watch_gone,
            seed: self.fault_seed,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DevRuntime {
    Simulated,
    Process,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ZapEncoder {
    Json,
    Console,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ZapTimeEncoding {
    Epoch,
    Millis,
    Nano,
    Iso8601,
    Rfc3339,
    Rfc3339nano,
}

#[derive(Debug, Clone, Args)]
pub struct LoggingArgs {
    /// Log format (default plain; `--zap-encoder` is used when this is not given).
    #[arg(long, value_enum, global = true)]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. `info` or `metacontroller_engine=debug` (overrides RUST_LOG and
    /// `--zap-log-level`).
    #[arg(long, global = true)]
    pub log_level: Option<String>,
    /// Development logging: console format, debug level.
    #[arg(long, global = true, num_args = 0..=1, require_equals = true,
          default_missing_value = "true", value_parser = parse_go_bool)]
    pub zap_devel: Option<bool>,
    /// `json` or `console` (plain).
    #[arg(long, value_enum, global = true)]
    pub zap_encoder: Option<ZapEncoder>,
    /// `debug`, `info`, `error`, or a verbosity number (1-4 debug, 5 and up trace).
    #[arg(long, global = true, value_parser = parse_zap_level)]
    pub zap_log_level: Option<ZapLevel>,
    /// Level from which stack traces are logged (accepted; Rust logs carry no stack traces).
    #[arg(long, global = true, value_parser = ["debug", "info", "warn", "error", "dpanic", "panic", "fatal"])]
    pub zap_stacktrace_level: Option<String>,
    /// Timestamp format.
    #[arg(long, value_enum, global = true)]
    pub zap_time_encoding: Option<ZapTimeEncoding>,
}

/// A `--zap-log-level` value as a tracing level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZapLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

/// Parses a Go duration string (`30s`, `1m30s`, `500ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    metacontroller_api::parse_go_duration(s).map_err(|e| e.to_string())
}

/// Parses a boolean as Go's `strconv.ParseBool` does.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("invalid boolean {s:?}")),
    }
}

fn parse_selector(s: &str) -> Result<Selector, String> {
    let selector = metacontroller_merge::LabelSelector::parse(s).map_err(|e| e.to_string())?;
    Ok(Selector {
        text: s.to_string(),
        selector,
    })
}

/// Parses a Go listen address: `0` disables, `:port` means every interface, else
/// `host:port`.
pub fn parse_bind_address(s: &str) -> Result<BindAddress, String> {
    if s == "0" || s.is_empty() {
        return Ok(BindAddress(None));
    }
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| format!("address {s:?} has no port (use host:port or :port)"))?;
    port.parse::<u16>()
        .map_err(|_| format!("invalid port in address {s:?}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = if host.is_empty() { "0.0.0.0" } else { host };
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(BindAddress(Some(address)))
}

/// Parses controller-runtime's `--zap-log-level`: a level name or a verbosity number.
pub fn parse_zap_level(s: &str) -> Result<ZapLevel, String> {
    if let Ok(n) = s.parse::<u32>() {
        return Ok(match n {
            0 => ZapLevel::Info,
            1..=4 => ZapLevel::Debug,
            _ => ZapLevel::Trace,
        });
    }
    match s.to_ascii_lowercase().as_str() {
        "debug" => Ok(ZapLevel::Debug),
        "info" => Ok(ZapLevel::Info),
        "warn" => Ok(ZapLevel::Warn),
        "error" | "dpanic" | "panic" | "fatal" => Ok(ZapLevel::Error),
        _ => Err(format!(
            "invalid log level {s:?} (debug, info, error, or a number)"
        )),
    }
}

/// Rewrites Go-style single-dash long flags (`-discovery-interval=20s`) to the double-dash
/// form. Only names of known long flags are rewritten; everything after `--` is left alone.
pub fn normalize_args(args: impl IntoIterator<Item = String>) -> Vec<String> {
    let command = Cli::command();
    let mut longs: Vec<String> = command
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect();
    for sub in command.get_subcommands() {
        longs.extend(
            sub.get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string)),
        );
    }
    let mut out = Vec::new();
    let mut rest = false;
    for arg in args {
        if rest || arg == "--" {
            rest = true;
            out.push(arg);
            continue;
        }
        let rewritten = arg
            .strip_prefix('-')
            .filter(|tail| !tail.starts_with('-'))
            .filter(|tail| {
                let name = tail.split('=').next().unwrap_or_default();
                name.len() > 1 && longs.iter().any(|l| l == name)
            })
            .map(|tail| format!("--{tail}"));
        out.push(rewritten.unwrap_or(arg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let args = std::iter::once("metacontroller")
            .chain(args.iter().copied())
            .map(str::to_string);
        Cli::try_parse_from(normalize_args(args))
    }

    #[test]
    fn defaults_match_upstream() {
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
        let run = &cli.run;
        assert_eq!(run.engine.discovery_interval, Duration::from_secs(30));
        assert_eq!(run.engine.cache_flush_interval, Duration::from_secs(1800));
        assert_eq!(run.engine.workers, 5);
        assert_eq!(run.runtime_threads, 1);
        assert_eq!(run.engine.events_burst, 25);
        assert!((run.engine.events_qps - 1.0 / 300.0).abs() < 1e-12);
        assert!(run.engine.target_label_selector.selector.is_everything());
        assert_eq!(run.engine.apply_strategy, ApplyStrategy::DynamicApply);
        assert_eq!(
            run.metrics_address,
            BindAddress(Some("0.0.0.0:9999".into()))
        );
        assert_eq!(
            run.health_probe_bind_address,
            BindAddress(Some("0.0.0.0:8081".into()))
        );
        assert_eq!(run.client_go_qps, 5.0);
        assert_eq!(run.client_go_burst, 10);
        assert!(!run.leader.leader_election);
        assert_eq!(run.leader.leader_election_resource_lock, "leases");
        assert_eq!(run.leader.leader_election_namespace, "");
        assert_eq!(run.leader.leader_election_id, "metacontroller");
        assert_eq!(
            run.leader.leader_election_lease_duration,
            Duration::from_secs(15)
        );
        assert_eq!(
            run.leader.leader_election_renew_deadline,
            Duration::from_secs(10)
        );
        assert_eq!(
            run.leader.leader_election_retry_period,
            Duration::from_secs(2)
        );
        assert_eq!(
            run.engine.graceful_shutdown_timeout,
            Duration::from_secs(30)
        );
    }

    #[test]
    fn upstream_manifest_args_parse() {
        // The arguments of upstream's production, development and Helm manifests.
        let cli = parse(&[
            "--zap-log-level=4",
            "--discovery-interval=20s",
            "--cache-flush-interval=30m",
            "--health-probe-bind-address=:8081",
            "--zap-devel",
            "--metrics-address=:9999",
            "--leader-election",
            "--leader-election-resource-lock=leases",
            "--leader-election-namespace=metacontroller",
            "--leader-election-id=metacontroller",
            "--client-go-qps=20",
            "--client-go-burst=40",
            "--workers=8",
            "--events-qps=0.5",
            "--events-burst=10",
            "--target-label-selector=team in (a,b),!legacy",
            "--apply-strategy=server-side-apply",
            "--apply-strategy-ssa-field-manager=mc",
            "--pprof-address=0",
            "--zap-encoder=json",
            "--zap-stacktrace-level=error",
            "--zap-time-encoding=rfc3339nano",
        ])
        .unwrap();
        assert_eq!(cli.logging.zap_log_level, Some(ZapLevel::Debug));
        assert_eq!(cli.logging.zap_devel, Some(true));
        assert_eq!(cli.logging.zap_encoder, Some(ZapEncoder::Json));
        assert_eq!(cli.run.engine.discovery_interval, Duration::from_secs(20));
        assert!(cli.run.leader.leader_election);
        assert_eq!(cli.run.client_go_qps, 20.0);
        assert_eq!(cli.run.engine.workers, 8);
        assert_eq!(
            cli.run
                .engine
                .target_label_selector
                .selector
                .requirements()
                .len(),
            2
        );
        assert_eq!(
            cli.run.engine.apply_strategy,
            ApplyStrategy::ServerSideApply
        );
    }

    #[test]
    fn go_style_single_dash_and_bool_values() {
        let cli = parse(&[
            "-workers=3",
            "-leader-election=false",
            "-metrics-address",
            "0",
            "--zap-devel=false",
        ])
        .unwrap();
        assert_eq!(cli.run.engine.workers, 3);
        assert!(!cli.run.leader.leader_election);
        assert_eq!(cli.run.metrics_address, BindAddress(None));
        assert_eq!(cli.logging.zap_devel, Some(false));
        // A Go bool flag never takes the next argument as its value.
        assert!(parse(&["--leader-election", "false"]).is_err());
    }

    #[test]
    fn bind_addresses() {
        assert_eq!(
            parse_bind_address("127.0.0.1:0").unwrap(),
            BindAddress(Some("127.0.0.1:0".into()))
        );
        assert_eq!(
            parse_bind_address("[::1]:80").unwrap(),
            BindAddress(Some("[::1]:80".into()))
        );
        assert_eq!(
            parse_bind_address("localhost:80").unwrap(),
            BindAddress(Some("localhost:80".into()))
        );
        assert!(parse_bind_address("9999").is_err());
        assert!(parse_bind_address(":http").is_err());
    }

    #[test]
    fn zap_levels() {
        assert_eq!(parse_zap_level("0").unwrap(), ZapLevel::Info);
        assert_eq!(parse_zap_level("5").unwrap(), ZapLevel::Trace);
        assert_eq!(parse_zap_level("error").unwrap(), ZapLevel::Error);
        assert!(parse_zap_level("loud").is_err());
    }

    #[test]
    fn dev_flags() {
        let cli = parse(&[
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig-out",
            "k.yaml",
            "--discovery-interval",
            "1s",
            "--zap-devel",
        ])
        .unwrap();
        let Some(Command::Dev(dev)) = cli.command else {
            panic!("expected dev")
        };
        assert_eq!(dev.listen.port(), 0);
        assert_eq!(dev.kubeconfig_out, PathBuf::from("k.yaml"));
        assert_eq!(dev.engine.discovery_interval, Duration::from_secs(1));
        assert!(!dev.insecure_http);
        assert_eq!(dev.runtime, DevRuntime::Simulated);
        assert_eq!(cli.logging.zap_devel, Some(true));
    }

    #[test]
    fn fault_flags() {
        let cli = parse(&[
            "dev",
            "--fault-error-rate",
            "create=0.05,patch=0.1",
            "--fault-error-rate=*=0.01",
            "--fault-status",
            "500,429",
            "--fault-latency",
            "20ms",
            "--fault-watch-close-every",
            "10s",
            "--fault-watch-gone",
            "0.5",
            "--fault-seed",
            "42",
        ])
        .unwrap();
        let Some(Command::Dev(dev)) = cli.command else {
            panic!("expected dev")
        };
        let c = dev.faults.config();
        assert_eq!(c.error_rates.get("create"), Some(&0.05));
        assert_eq!(c.error_rates.get("patch"), Some(&0.1));
        assert_eq!(c.error_rates.get("*"), Some(&0.01));
        assert_eq!(c.statuses, vec![500, 429]);
        assert_eq!(c.latency_ms, 20);
        assert_eq!(c.watch_close_every_ms, 10_000);
        assert_eq!(c.watch_gone_rate, 0.5);
        assert_eq!(c.seed, Some(42));
        assert!(c.validate().is_ok());
        assert!(parse(&["dev", "--fault-error-rate", "fetch=0.1"]).is_err());
        assert!(parse(&["dev", "--fault-error-rate", "get=2"]).is_err());
        let Some(Command::Dev(dev)) = parse(&["dev"]).unwrap().command else {
            panic!("expected dev")
        };
        assert_eq!(dev.faults.config(), Default::default());
    }

    #[test]
    fn bad_values_are_rejected() {
        assert!(parse(&["--discovery-interval", "soon"]).is_err());
        assert!(parse(&["--target-label-selector", "a in ("]).is_err());
        assert!(parse(&["--leader-election-resource-lock", "configmaps"]).is_err());
        assert!(parse(&["--apply-strategy", "replace"]).is_err());
    }

    #[test]
    fn values_after_double_dash_are_left_alone() {
        assert_eq!(
            normalize_args(["metacontroller", "--", "-workers"].map(String::from)),
            ["metacontroller", "--", "-workers"]
        );
    }
}
