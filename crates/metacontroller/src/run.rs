//! Cluster mode: the engine against a real Kubernetes cluster.

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::cli::RunArgs;

pub async fn main(args: RunArgs) -> anyhow::Result<()> {
    let config = load_config(&args).await?;
    tracing::info!(cluster = %config.cluster_url, "starting metacontroller");
    let client = kube::Client::try_from(config).context("building the Kubernetes client")?;
    let shutdown = crate::signals::shutdown_on_signals();
    metacontroller_engine::run(client, crate::dev::engine_options(&args.engine), shutdown)
        .await
        .context("engine failed")
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
