//! `metacontroller dev`: the embedded API server and the engine in one process.

use std::path::Path;
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
    write_atomically(&args.kubeconfig_out, kubeconfig.as_bytes())
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
            let dir = private_dir(&std::env::temp_dir(), "metacontroller-dev")
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
    // Private from the first byte (the kubeconfig holds the admin token), and a name nobody
    // else can have prepared: an existing file is never written through.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut attempt = 0;
    let (tmp, mut file) = loop {
        let tmp = dir.join(format!(
            ".{file_name}.tmp-{}-{:016x}",
            std::process::id(),
            random()
        ));
        match options.open(&tmp) {
            Ok(file) => break (tmp, file),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => return Err(e),
        }
    };
    let written = std::io::Write::write_all(&mut file, contents).and_then(|()| file.sync_all());
    drop(file);
    if let Err(e) = written.and_then(|()| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    Ok(())
}

/// A new directory under `parent`, readable by this user only (0700), created by this call:
/// a name someone else created first is never reused.
pub(crate) fn private_dir(parent: &Path, prefix: &str) -> std::io::Result<std::path::PathBuf> {
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    let mut attempt = 0;
    loop {
        let dir = parent.join(format!("{prefix}-{}-{:016x}", std::process::id(), random()));
        match builder.create(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 16 => attempt += 1,
            Err(e) => return Err(e),
        }
    }
}

/// 64 unpredictable bits (the standard library's per-process random hash keys).
fn random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
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

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn scratch() -> std::path::PathBuf {
        private_dir(&std::env::temp_dir(), "dev-test").expect("scratch dir")
    }

    #[test]
    fn a_private_directory_is_new_and_only_ours() {
        let parent = scratch();
        let a = private_dir(&parent, "node").expect("create");
        let b = private_dir(&parent, "node").expect("create another");
        assert_ne!(a, b, "a second call never reuses the first directory");
        let mode = std::fs::metadata(&a)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "no access for group or others: {mode:o}");
        std::fs::remove_dir_all(&parent).expect("clean up");
    }

    #[test]
    fn the_kubeconfig_is_private_from_the_first_byte_and_replaces_the_old_one() {
        let dir = scratch();
        let path = dir.join("kubeconfig");
        std::fs::write(&path, b"old").expect("an old file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        write_atomically(&path, b"token: secret").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"token: secret");
        let mode = std::fs::metadata(&path)
            .expect("metadata")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        let leftovers: Vec<_> = std::fs::read_dir(&dir)
            .expect("list")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| n != "kubeconfig")
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
