//! `metacontroller`: run the engine against a cluster, or `metacontroller dev` for an embedded
//! development cluster with the engine in one process.

mod cli;
#[cfg(test)]
mod deploy_checks;
mod dev;
mod leader;
mod logging;
mod ratelimit;
mod run;
mod serve;
mod signals;

use clap::Parser;

/// The engine and the API server allocate many small, short-lived buffers per request (JSON
/// trees, HTTP headers); mimalloc serves them with less CPU and less lock contention between
/// runtime threads than the system allocator. Built without transparent huge pages, which
/// would add megabytes of resident memory for a process this small.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = cli::Cli::parse_from(cli::normalize_args(std::env::args()));
    logging::init(&cli.logging);
    let runtime = build_runtime(cli.command.is_some(), cli.run.runtime_threads)?;
    runtime.block_on(async move {
        match cli.command {
            Some(cli::Command::Dev(dev)) => dev::main(dev).await,
            None => run::main(cli.run).await,
        }
    })
}

/// The runtime: `dev` (which serves the API server from the same process) uses every core;
/// the engine alone uses `--runtime-threads`, one by default.
fn build_runtime(dev: bool, threads: usize) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = match (dev, threads) {
        (false, 1) => tokio::runtime::Builder::new_current_thread(),
        (false, n) if n > 1 => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    builder.enable_all().build()
}

#[cfg(test)]
mod tests {
    use tokio::runtime::RuntimeFlavor;

    fn flavor(dev: bool, threads: usize) -> (RuntimeFlavor, usize) {
        let rt = super::build_runtime(dev, threads).expect("runtime");
        let metrics = rt.metrics();
        (rt.handle().runtime_flavor(), metrics.num_workers())
    }

    #[test]
    fn the_engine_runs_on_one_thread_unless_told_otherwise() {
        assert_eq!(flavor(false, 1), (RuntimeFlavor::CurrentThread, 1));
        assert_eq!(flavor(false, 3), (RuntimeFlavor::MultiThread, 3));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(flavor(false, 0), (RuntimeFlavor::MultiThread, cores));
        // `dev` keeps every core whatever the flag says.
        assert_eq!(flavor(true, 1), (RuntimeFlavor::MultiThread, cores));
    }
}
