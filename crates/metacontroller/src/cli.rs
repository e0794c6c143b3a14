//! Command-line flags. Names and defaults follow upstream Metacontroller where a flag exists
//! there, so existing manifests start unchanged.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "metacontroller", version, about = "Write Kubernetes controllers as webhooks")]
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
    /// Number of sync workers per controller.
    #[arg(long, default_value_t = 5)]
    pub workers: usize,
}

/// Flags of cluster mode.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub engine: EngineArgs,
    /// Path to a kubeconfig. Without it: in-cluster config, else the default kubeconfig.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Address the API server listens on; port 0 picks a free one.
    #[arg(long, default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Where to write the kubeconfig (written once the server accepts connections).
    #[arg(long, default_value = "metacontroller-dev.kubeconfig")]
    pub kubeconfig_out: PathBuf,
    /// Serve plain HTTP without authentication (for debugging).
    #[arg(long)]
    pub insecure_http: bool,
    /// Run only the API server, without the engine.
    #[arg(long)]
    pub server_only: bool,
    #[command(flatten)]
    pub engine: EngineArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Plain,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct LoggingArgs {
    /// Log format.
    #[arg(long, value_enum, default_value = "plain", global = true)]
    pub log_format: LogFormat,
    /// Log filter, e.g. `info` or `metacontroller_engine=debug` (overrides RUST_LOG).
    #[arg(long, global = true)]
    pub log_level: Option<String>,
}

pub fn init_logging(args: &LoggingArgs) {
    use tracing_subscriber::EnvFilter;
    let filter = match &args.log_level {
        Some(level) => EnvFilter::new(level),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Parses a Go duration string (`30s`, `1m30s`, `500ms`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    metacontroller_api::parse_go_duration(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_upstream() {
        let cli = Cli::try_parse_from(["metacontroller"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.engine.discovery_interval, Duration::from_secs(30));
        assert_eq!(cli.run.engine.workers, 5);
    }

    #[test]
    fn dev_flags() {
        let cli = Cli::try_parse_from([
            "metacontroller",
            "dev",
            "--listen",
            "127.0.0.1:0",
            "--kubeconfig-out",
            "k.yaml",
            "--discovery-interval",
            "1s",
        ])
        .unwrap();
        let Some(Command::Dev(dev)) = cli.command else { panic!("expected dev") };
        assert_eq!(dev.listen.port(), 0);
        assert_eq!(dev.kubeconfig_out, PathBuf::from("k.yaml"));
        assert_eq!(dev.engine.discovery_interval, Duration::from_secs(1));
        assert!(!dev.insecure_http);
    }

    #[test]
    fn bad_duration_is_rejected() {
        assert!(Cli::try_parse_from(["metacontroller", "--discovery-interval", "soon"]).is_err());
    }
}
