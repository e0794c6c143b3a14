//! Cluster mode: the engine against a real Kubernetes cluster, with the metrics and probe
//! endpoints, optional leader election and graceful shutdown.
//!
//! ```text
//!  start: flags ─► kubeconfig ─► rate-limited client ─► /metrics, /healthz, /readyz
//!           ─► (leader election: wait for the Lease, standby is ready) ─► engine
//!  SIGTERM: /readyz fails ─► engine stops taking work ─► in-flight syncs finish (bounded)
//!           ─► Lease released ─► exit 0
//!  lease lost: engine cancelled ─► exit 1 at once (the pod restarts as a standby)
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use tokio_util::sync::CancellationToken;

use crate::cli::{ApplyStrategy, EngineArgs, RunArgs};
use crate::leader::{self, Elector, HoldEnd};
use crate::ratelimit::RateLimitLayer;
use crate::serve::{self, Role, State};

/// Extra time beyond `--graceful-shutdown-timeout` for the engine to wind down (stop
/// informers, flush events) before the process gives up waiting.
const SHUTDOWN_SLACK: Duration = Duration::from_secs(5);

/// The engine's options from the shared flags.
pub fn engine_options(
    args: &EngineArgs,
    hooks: metacontroller_hooks::HookClient,
) -> metacontroller_engine::EngineOptions {
    let target = &args.target_label_selector;
    metacontroller_engine::EngineOptions {
        discovery_interval: args.discovery_interval,
        workers: args.workers.max(1),
        shutdown_timeout: args.graceful_shutdown_timeout,
        hook_client: hooks,
        target_label_selector: (!target.selector.is_everything()).then(|| target.selector.clone()),
        events_burst: args.events_burst,
        events_qps: args.events_qps,
        cache_flush_interval: Some(args.cache_flush_interval).filter(|d| !d.is_zero()),
        apply: match args.apply_strategy {
            ApplyStrategy::DynamicApply => metacontroller_engine::children::ApplyMode::Dynamic,
            ApplyStrategy::ServerSideApply => {
                metacontroller_engine::children::ApplyMode::ServerSide(
                    args.apply_strategy_ssa_field_manager.clone(),
                )
            }
        },
        ..Default::default()
    }
}

pub async fn main(args: RunArgs) -> anyhow::Result<()> {
    let shutdown = crate::signals::shutdown_on_signals();
    tracing::info!(
        discovery_interval = ?args.engine.discovery_interval,
        cache_flush_interval = ?args.engine.cache_flush_interval,
        metrics_address = ?args.metrics_address.0,
        health_probe_bind_address = ?args.health_probe_bind_address.0,
        client_go_qps = args.client_go_qps,
        client_go_burst = args.client_go_burst,
        workers = args.engine.workers,
        events_qps = args.engine.events_qps,
        events_burst = args.engine.events_burst,
        leader_election = args.leader.leader_election,
        leader_election_id = %args.leader.leader_election_id,
        target_label_selector = %args.engine.target_label_selector.text,
        version = env!("CARGO_PKG_VERSION"),
        "configuration"
    );
    if args.pprof_address != "0" {
        tracing::warn!(address = %args.pprof_address, "--pprof-address is not supported; no profiling endpoint is served");
    }

    let config = load_config(&args).await?;
    tracing::info!(cluster = %config.cluster_url, "starting metacontroller");
    let rate = RateLimitLayer::new(args.client_go_qps, args.client_go_burst);
    let client = kube::client::ClientBuilder::try_from(config.clone())
        .context("building the Kubernetes client")?
        .with_layer(&rate)
        .build();
    let hooks = metacontroller_hooks::HookClient::new();
    let lease_name = args
        .leader
        .leader_election
        .then(|| args.leader.leader_election_id.clone());
    let state = State::new(lease_name, hooks.clone(), Some(rate));
    start_servers(&args, &state).await?;

    let mut elector = if args.leader.leader_election {
        // Leader election has its own client, so the engine's rate limit never delays a
        // renewal.
        let lease_client = kube::Client::try_from(config.clone())
            .context("building the leader election client")?;
        let namespace = match args.leader.leader_election_namespace.as_str() {
            "" => leader::in_cluster_namespace().unwrap_or_else(|| {
                tracing::info!(namespace = %config.default_namespace, "not in a cluster; using the kubeconfig's namespace for the leader lease");
                config.default_namespace.clone()
            }),
            ns => ns.to_string(),
        };
        let mut elector = Elector::new(
            lease_client,
            leader::Config {
                namespace,
                name: args.leader.leader_election_id.clone(),
                identity: leader::identity(),
                lease_duration: args.leader.leader_election_lease_duration,
                renew_deadline: args.leader.leader_election_renew_deadline,
                retry_period: args.leader.leader_election_retry_period,
            },
        );
        state.set_role(Role::Standby);
        if !elector.acquire(&shutdown).await {
            tracing::info!("stopped before acquiring the leader lease");
            return Ok(());
        }
        Some(elector)
    } else {
        None
    };

    state.set_role(Role::Active);
    let engine_token = CancellationToken::new();
    let mut opts = engine_options(&args.engine, hooks);
    opts.metrics = state.engine_metrics.clone();
    let grace = opts.shutdown_timeout;
    let mut engine = tokio::spawn(metacontroller_engine::run(
        client,
        opts,
        engine_token.clone(),
    ));

    // Holding the Lease runs beside the engine; losing it ends the process at once, as
    // client-go-based controllers do, so no write happens without the Lease.
    let holder = elector.take().map(|mut elector| {
        let stop = CancellationToken::new();
        let engine_token = engine_token.clone();
        let task_stop = stop.clone();
        let task = tokio::spawn(async move {
            if let HoldEnd::Lost(reason) = elector.hold(&task_stop).await {
                engine_token.cancel();
                tracing::error!(%reason, "leader lease lost; exiting");
                std::process::exit(1);
            }
            elector
        });
        (stop, task)
    });

    let finished_early = tokio::select! {
        _ = shutdown.cancelled() => None,
        result = &mut engine => Some(result),
    };
    state.start_draining();
    engine_token.cancel();
    let result = match finished_early {
        Some(result) => result,
        None => {
            tracing::info!(timeout = ?grace, "shutting down: waiting for in-flight syncs");
            match tokio::time::timeout(grace + SHUTDOWN_SLACK, engine).await {
                Ok(result) => result,
                Err(_) => anyhow::bail!(
                    "the engine did not stop within {:?}",
                    grace + SHUTDOWN_SLACK
                ),
            }
        }
    };
    if let Some((stop, task)) = holder {
        stop.cancel();
        if let Ok(mut elector) = task.await {
            elector.release().await;
        }
    }
    match result {
        Ok(Ok(())) => {
            tracing::info!("stopped");
            Ok(())
        }
        Ok(Err(error)) => Err(anyhow::Error::new(error).context("engine failed")),
        Err(error) => Err(anyhow::Error::new(error).context("engine task failed")),
    }
}

/// Binds the metrics and probe listeners (one when both name the same address) and serves
/// them for the life of the process.
async fn start_servers(args: &RunArgs, state: &Arc<State>) -> anyhow::Result<()> {
    let mut addresses: Vec<(&str, &str)> = Vec::new();
    if let Some(address) = &args.metrics_address.0 {
        addresses.push(("metrics", address));
    }
    if let Some(address) = &args.health_probe_bind_address.0 {
        if addresses.iter().all(|(_, a)| a != address) {
            addresses.push(("health probes", address));
        }
    }
    for (what, address) in addresses {
        let listener = serve::bind(address)
            .await
            .with_context(|| format!("binding the {what} endpoint on {address}"))?;
        let local = listener.local_addr().ok();
        tracing::info!(address = ?local, "serving {what}");
        tokio::spawn(serve::serve(
            listener,
            state.clone(),
            CancellationToken::new(),
        ));
    }
    Ok(())
}

/// `--kubeconfig PATH`, else the in-cluster config, else the default kubeconfig.
async fn load_config(args: &RunArgs) -> anyhow::Result<kube::Config> {
    if let Some(path) = &args.kubeconfig {
        let kubeconfig = Kubeconfig::read_from(path)
            .with_context(|| format!("reading kubeconfig {}", path.display()))?;
        return kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .with_context(|| format!("loading kubeconfig {}", path.display()));
    }
    match kube::Config::incluster() {
        Ok(config) => Ok(config),
        Err(in_cluster) => kube::Config::from_kubeconfig(&KubeConfigOptions::default())
            .await
            .map_err(|kubeconfig| {
                anyhow::anyhow!(
                    "no cluster configuration: not in a cluster ({in_cluster}) and no usable default kubeconfig ({kubeconfig}); pass --kubeconfig"
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::Parser;

    #[test]
    fn engine_options_follow_flags() {
        let cli = Cli::try_parse_from([
            "metacontroller",
            "--workers=0",
            "--target-label-selector=shard=a",
            "--graceful-shutdown-timeout=7s",
            "--events-burst=3",
        ])
        .unwrap();
        let opts = engine_options(&cli.run.engine, metacontroller_hooks::HookClient::new());
        assert_eq!(opts.workers, 1);
        assert!(opts.target_label_selector.is_some());
        assert_eq!(opts.shutdown_timeout, Duration::from_secs(7));
        assert_eq!(opts.events_burst, 3);
        let cli = Cli::try_parse_from(["metacontroller"]).unwrap();
        let opts = engine_options(&cli.run.engine, metacontroller_hooks::HookClient::new());
        assert!(opts.target_label_selector.is_none());
    }
}
