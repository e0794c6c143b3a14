//! `metacontroller dev`: the embedded API server and the engine in one process.

use std::path::Path;

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use metacontroller_apiserver::store::WriteOptions;
use metacontroller_apiserver::{Server, ServerConfig};

use crate::cli::DevArgs;

pub async fn main(args: DevArgs) -> anyhow::Result<()> {
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
    install_crds(&server)?;
    let kubeconfig = server.kubeconfig_yaml();
    write_atomically(&args.kubeconfig_out, kubeconfig.as_bytes())
        .with_context(|| format!("writing {}", args.kubeconfig_out.display()))?;
    tracing::info!(url = %server.url, kubeconfig = %args.kubeconfig_out.display(), "API server ready");
    eprintln!(
        "metacontroller dev: API server at {}\n  export KUBECONFIG={}",
        server.url,
        args.kubeconfig_out.display()
    );

    let engine = if args.server_only {
        None
    } else {
        let kubeconfig =
            Kubeconfig::from_yaml(&kubeconfig).context("parsing the generated kubeconfig")?;
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .context("loading the generated kubeconfig")?;
        let client = kube::Client::try_from(config).context("building the engine's client")?;
        let opts =
            crate::run::engine_options(&args.engine, metacontroller_hooks::HookClient::new());
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
    server.stopped().await;
    Ok(())
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

/// Writes `contents` to `path` through a temporary file and a rename, so a reader never sees
/// a partial file.
fn write_atomically(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, contents)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    }
    std::fs::rename(&tmp, path)
}
