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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match cli.command {
            Some(cli::Command::Dev(dev)) => dev::main(dev).await,
            None => run::main(cli.run).await,
        }
    })
}
