//! `metacontroller dev`: the embedded API server and the engine in one process.

use std::sync::Arc;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use metacontroller_apiserver::podlogs::{LogRequest, PodLogs};
use metacontroller_apiserver::store::WriteOptions;
use metacontroller_apiserver::{Server, ServerConfig};
use metacontroller_devcluster::logs::LogQuery;
use metacontroller_devcluster::{DevCluster, RuntimeKind};

use crate::cli::{DevArgs, DevRuntime};

/// Refuses `--insecure-http` beyond loopback unless explicitly allowed: plain HTTP without
/// authentication there gives the network an administrator's access. Allowed, it is warned
/// about.
fn check_listen(args: &DevArgs) -> anyhow::Result<()> {
    if !args.insecure_http || args.listen.ip().is_loopback() {
        return Ok(());
    }
    if !args.allow_insecure_network {
        anyhow::bail!(
            "--insecure-http serves without TLS or authentication: on {} anyone who can reach it \
             is a cluster administrator; listen on loopback, or add --allow-insecure-network",
            args.listen
        );
    }
    tracing::warn!(
        listen = %args.listen,
        "--insecure-http beyond loopback: no TLS, no authentication, anyone reaching this address is a cluster administrator"
    );
    Ok(())
}

pub async fn main(args: DevArgs) -> anyhow::Result<()> {
    check_listen(&args)?;
    let shutdown = crate::signals::shutdown_on_signals();
    let server = metacontroller_apiserver::start(
        ServerConfig {
            listen: args.listen,
            tls: !args.insecure_http,
        },
        shutdown.clone(),
    )
    .await
    .with_context(|| format!("starting the API server on {}", args.listen))?;
    server
        .faults
        .set(args.faults.config())
        .map_err(|e| anyhow::anyhow!("invalid --fault-* flags: {e}"))?;
    if server.faults.active() {
        tracing::warn!(faults = %server.faults.report()["config"], "fault injection is on");
    }
    install_crds(&server)?;
    let kubeconfig = server.kubeconfig_yaml();
    metacontroller_devcluster::files::write_atomically(
        &args.kubeconfig_out,
        kubeconfig.as_bytes(),
        0o600,
    )
    .with_context(|| format!("writing {}", args.kubeconfig_out.display()))?;
    tracing::info!(url = %server.url, kubeconfig = %args.kubeconfig_out.display(), "API server ready");
    eprintln!(
        "metacontroller dev: API server at {}\n  export KUBECONFIG={}",
        server.url,
        args.kubeconfig_out.display()
    );

    let node = match (args.server_only, args.runtime) {
        (true, _) | (_, DevRuntime::None) => None,
        (false, runtime) => {
            let client = client_for(&kubeconfig).await?;
            let runtime = match runtime {
                DevRuntime::Process => RuntimeKind::Process,
                _ => RuntimeKind::Simulated,
            };
            let dir = metacontroller_devcluster::files::private_dir(
                &std::env::temp_dir(),
                "metacontroller-dev",
            )
            .context("creating the node's private directory")?;
            let (cluster, task) = metacontroller_devcluster::start(
                client,
                metacontroller_devcluster::Options { runtime, dir },
                shutdown.clone(),
            );
            server.pod_logs.install(Arc::new(NodeLogs(cluster.clone())));
            Some((cluster, task))
        }
    };

    let engine = if args.server_only {
        None
    } else {
        let client = client_for(&kubeconfig).await?;
        let hooks = match &node {
            Some((cluster, _)) => metacontroller_hooks::HookClient::with_resolver(Arc::new(
                ServiceUrls(cluster.clone()),
            )),
            None => metacontroller_hooks::HookClient::new(),
        };
        let opts = crate::run::engine_options(&args.engine, hooks);
        let token = shutdown.clone();
        Some(tokio::spawn(async move {
            metacontroller_engine::run(client, opts, token).await
        }))
    };

    shutdown.cancelled().await;
    if let Some(engine) = engine {
        match engine.await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::error!(%error, "engine stopped with an error"),
            Err(error) => tracing::error!(%error, "engine task failed"),
        }
    }
    if let Some((_, task)) = node {
        let _ = task.await;
    }
    server.stopped().await;
    Ok(())
}

async fn client_for(kubeconfig: &str) -> anyhow::Result<kube::Client> {
    let kubeconfig =
        Kubeconfig::from_yaml(kubeconfig).context("parsing the generated kubeconfig")?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .context("loading the generated kubeconfig")?;
    kube::Client::try_from(config).context("building a client")
}

/// `pods/log` answered from the node's container logs.
struct NodeLogs(DevCluster);

impl PodLogs for NodeLogs {
    fn open(&self, req: &LogRequest) -> Option<tokio::sync::mpsc::Receiver<bytes::Bytes>> {
        self.0.logs().open(&LogQuery {
            namespace: req.namespace.clone(),
            pod: req.pod.clone(),
            uid: req.uid.clone(),
            container: req.container.clone(),
            previous: req.previous,
            follow: req.follow,
            tail_lines: req.tail_lines,
            limit_bytes: req.limit_bytes,
        })
    }
}

/// Hook URLs naming a Service reach its pod on the node.
struct ServiceUrls(DevCluster);

impl metacontroller_hooks::UrlResolver for ServiceUrls {
    fn resolve(&self, url: &metacontroller_hooks::Url) -> Option<metacontroller_hooks::Url> {
        let resolved = self.0.resolve_service_url(url.as_str())?;
        metacontroller_hooks::Url::parse(&resolved).ok()
    }
}

/// Installs Metacontroller's own CRDs so controllers can be created at once.
fn install_crds(server: &Server) -> anyhow::Result<()> {
    let registry = server.store.registry();
    let rt = registry
        .lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .context("the API server does not serve CustomResourceDefinitions")?;
    for crd in metacontroller_api::crds() {
        server
            .store
            .create(&rt, None, crd, &WriteOptions::default())
            .map_err(|e| anyhow::anyhow!("installing a Metacontroller CRD: {e}"))?;
    }
    Ok(())
}

#[cfg(test)]
mod listen_tests {
    use clap::Parser;

    fn dev(args: &[&str]) -> crate::cli::DevArgs {
        let cli = crate::cli::Cli::try_parse_from(["metacontroller", "dev"].iter().chain(args))
            .expect("flags");
        match cli.command {
            Some(crate::cli::Command::Dev(d)) => d,
            _ => panic!("expected dev"),
        }
    }

    #[test]
    fn insecure_http_beyond_loopback_needs_an_explicit_flag() {
        assert!(super::check_listen(&dev(&["--insecure-http"])).is_ok());
        assert!(super::check_listen(&dev(&["--listen", "[::1]:0", "--insecure-http"])).is_ok());
        assert!(super::check_listen(&dev(&["--listen", "0.0.0.0:6443"])).is_ok());
        let err = super::check_listen(&dev(&["--listen", "0.0.0.0:6443", "--insecure-http"]))
            .expect_err("refused");
        assert!(
            err.to_string().contains("--allow-insecure-network"),
            "{err}"
        );
        assert!(super::check_listen(&dev(&[
            "--listen",
            "0.0.0.0:6443",
            "--insecure-http",
            "--allow-insecure-network"
        ]))
        .is_ok());
    }
}
