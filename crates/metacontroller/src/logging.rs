//! The log subscriber: our `--log-format`/`--log-level`, with controller-runtime's `--zap-*`
//! flags mapped onto the same settings so upstream manifests keep their meaning.
//!
//! Precedence: `--log-level` (a full filter), else `RUST_LOG`, else `--zap-log-level`, else
//! `debug` with `--zap-devel`, else `info`. Format: `--log-format`, else `--zap-encoder`, else
//! plain.

use std::fmt;
use std::io::IsTerminal;

use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::EnvFilter;

use crate::cli::{LogFormat, LoggingArgs, ZapEncoder, ZapLevel, ZapTimeEncoding};

/// Crates whose verbosity `--zap-log-level` raises; dependencies stay at `info` so a verbose
/// level shows the engine's decisions rather than HTTP and TLS internals.
const OWN_CRATES: [&str; 7] = [
    "metacontroller",
    "metacontroller_engine",
    "metacontroller_hooks",
    "metacontroller_merge",
    "metacontroller_api",
    "metacontroller_apiserver",
    "metacontroller_bench",
];

/// The filter directive the flags ask for.
pub fn filter_directive(args: &LoggingArgs, rust_log: Option<&str>) -> String {
    if let Some(level) = &args.log_level {
        return level.clone();
    }
    if let Some(env) = rust_log.filter(|s| !s.trim().is_empty()) {
        return env.to_string();
    }
    let level = match (args.zap_log_level, args.zap_devel) {
        (Some(level), _) => level,
        (None, Some(true)) => ZapLevel::Debug,
        _ => ZapLevel::Info,
    };
    let name = match level {
        ZapLevel::Error => "error",
        ZapLevel::Warn => "warn",
        ZapLevel::Info => "info",
        ZapLevel::Debug => "debug",
        ZapLevel::Trace => "trace",
    };
    match level {
        ZapLevel::Debug | ZapLevel::Trace => {
            let mut directive = String::from("info");
            for krate in OWN_CRATES {
                directive.push_str(&format!(",{krate}={name}"));
            }
            directive
        }
        _ => name.to_string(),
    }
}

/// The output format the flags ask for.
pub fn format(args: &LoggingArgs) -> LogFormat {
    match (args.log_format, args.zap_encoder, args.zap_devel) {
        (Some(format), _, _) => format,
        (None, Some(ZapEncoder::Json), _) => LogFormat::Json,
        (None, Some(ZapEncoder::Console), _) => LogFormat::Plain,
        (None, None, _) => LogFormat::Plain,
    }
}

/// Timestamps as zap's time encoders write them.
#[derive(Debug, Clone, Copy)]
struct Timer(Option<ZapTimeEncoding>);

impl FormatTime for Timer {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let since_epoch = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
        };
        match self.0 {
            Some(ZapTimeEncoding::Epoch) => write!(w, "{:.6}", since_epoch().as_secs_f64()),
            Some(ZapTimeEncoding::Millis) => {
                write!(w, "{:.3}", since_epoch().as_secs_f64() * 1000.0)
            }
            Some(ZapTimeEncoding::Nano) => write!(w, "{}", since_epoch().as_nanos()),
            _ => SystemTime.format_time(w),
        }
    }
}

/// Installs the global subscriber writing to stderr.
pub fn init(args: &LoggingArgs) {
    let rust_log = std::env::var("RUST_LOG").ok();
    let directive = filter_directive(args, rust_log.as_deref());
    let filter = EnvFilter::try_new(&directive).unwrap_or_else(|error| {
        eprintln!("invalid log filter {directive:?} ({error}); using info");
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_timer(Timer(args.zap_time_encoding))
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match format(args) {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    fn logging(args: &[&str]) -> LoggingArgs {
        let argv = std::iter::once("metacontroller").chain(args.iter().copied());
        Cli::try_parse_from(argv).unwrap().logging
    }

    #[test]
    fn zap_levels_map_onto_filters() {
        assert_eq!(filter_directive(&logging(&[]), None), "info");
        assert_eq!(
            filter_directive(&logging(&["--zap-log-level=error"]), None),
            "error"
        );
        let verbose = filter_directive(&logging(&["--zap-log-level=4"]), None);
        assert!(verbose.starts_with("info,"), "{verbose}");
        assert!(verbose.contains("metacontroller_engine=debug"), "{verbose}");
        let devel = filter_directive(&logging(&["--zap-devel"]), None);
        assert!(devel.contains("metacontroller=debug"), "{devel}");
    }

    #[test]
    fn explicit_filters_win() {
        let args = logging(&["--zap-log-level=5", "--log-level=warn"]);
        assert_eq!(filter_directive(&args, Some("debug")), "warn");
        let args = logging(&["--zap-log-level=5"]);
        assert_eq!(filter_directive(&args, Some("kube=debug")), "kube=debug");
    }

    #[test]
    fn formats() {
        assert_eq!(format(&logging(&[])), LogFormat::Plain);
        assert_eq!(format(&logging(&["--zap-encoder=json"])), LogFormat::Json);
        assert_eq!(
            format(&logging(&["--zap-encoder=json", "--log-format=plain"])),
            LogFormat::Plain
        );
    }
}
