//! Starting and stopping the embedded API server.
//!
//! [`start`] binds, generates TLS material and a bearer token, creates the store, spawns the
//! garbage collector and the accept loop, and returns once connections are accepted. Serving
//! runs on spawned tasks until the shutdown token is cancelled; then the listener closes,
//! watches end, in-flight requests get [`SHUTDOWN_GRACE`] to finish, and [`Server::stopped`]
//! resolves.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rand::distr::Alphanumeric;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::http::{handle, AppState, CONTEXT_NAME};
use crate::metrics::Metrics;
use crate::store::Store;
use crate::tls;

/// How long in-flight requests may run after shutdown before connections are dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How long a client may take to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Concurrent HTTP/2 streams per connection, kube-apiserver's default.
const HTTP2_MAX_STREAMS: u32 = 1000;

/// Where and how to serve.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// `false` serves plain HTTP without authentication (kubectl sends no credentials over
    /// `http://`); for debugging.
    pub tls: bool,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("reading the listener's address: {0}")]
    LocalAddr(#[source] std::io::Error),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
}

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// The address the listener is bound to.
    pub addr: SocketAddr,
    /// `https://127.0.0.1:PORT` (or `http://` without TLS).
    pub url: String,
    /// The bearer token clients must send (TLS only).
    pub token: Option<String>,
    /// The CA certificate that signed the serving certificate (TLS only).
    pub ca_pem: Option<String>,
    pub store: Arc<Store>,
    /// Install a [`crate::podlogs::PodLogs`] provider here to serve `pods/{name}/log`.
    pub pod_logs: crate::podlogs::PodLogSlot,
    /// Fault injection, off until set (also through `/debug/faults`).
    pub faults: Arc<crate::faults::Faults>,
    serving: JoinHandle<()>,
}

/// Binds `config.listen` and starts serving; see [`start_on`].
pub async fn start(
    config: ServerConfig,
    shutdown: CancellationToken,
) -> Result<Server, StartError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    start_on(listener, config.tls, shutdown).await
}

/// Serves on an already bound listener until `shutdown` is cancelled.
pub async fn start_on(
    listener: TcpListener,
    tls: bool,
    shutdown: CancellationToken,
) -> Result<Server, StartError> {
    let addr = listener.local_addr().map_err(StartError::LocalAddr)?;
    let client_addr = client_address(addr);
    let (acceptor, ca_pem, token) = if tls {
        let material = tls::generate()?;
        (
            Some(TlsAcceptor::from(material.server_config)),
            Some(material.ca_pem),
            Some(random_token()),
        )
    } else {
        (None, None, None)
    };
    let store = Store::new();
    publish_kubernetes_service(&store, client_addr);
    let pod_logs = crate::podlogs::PodLogSlot::default();
    let faults = Arc::new(crate::faults::Faults::new());
    let state = Arc::new(AppState {
        pod_logs: pod_logs.clone(),
        store: Arc::clone(&store),
        token: token.clone(),
        addr: client_addr,
        metrics: Metrics::new(),
        shutdown: shutdown.clone(),
        faults: Arc::clone(&faults),
    });
    let gc = tokio::spawn(crate::gc::run_controllers(
        Arc::clone(&store),
        shutdown.clone(),
    ));
    let serving = tokio::spawn(async move {
        accept_loop(listener, acceptor, state, shutdown).await;
        let _ = gc.await;
    });
    let scheme = if tls { "https" } else { "http" };
    Ok(Server {
        addr,
        url: format!("{scheme}://{client_addr}"),
        token,
        ca_pem,
        store,
        pod_logs,
        faults,
        serving,
    })
}

impl Server {
    /// A complete kubeconfig for this server: cluster, user, context `metacontroller-dev`.
    pub fn kubeconfig_yaml(&self) -> String {
        let mut cluster = format!("    server: {}\n", self.url);
        if let Some(ca) = &self.ca_pem {
            let data = base64::engine::general_purpose::STANDARD.encode(ca.as_bytes());
            cluster.push_str(&format!("    certificate-authority-data: {data}\n"));
        }
        let user = match &self.token {
            Some(t) => format!("    token: {t}\n"),
            None => String::new(),
        };
        let user_block = if user.is_empty() {
            "  user: {}\n".to_string()
        } else {
            format!("  user:\n{user}")
        };
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {CONTEXT_NAME}\n  cluster:\n{cluster}users:\n- name: {CONTEXT_NAME}\n{user_block}contexts:\n- name: {CONTEXT_NAME}\n  context:\n    cluster: {CONTEXT_NAME}\n    user: {CONTEXT_NAME}\n    namespace: default\ncurrent-context: {CONTEXT_NAME}\npreferences: {{}}\n"
        )
    }

    /// Resolves once serving has stopped after shutdown.
    pub async fn stopped(self) {
        let _ = self.serving.await;
    }
}

/// The `kubernetes` Service and its Endpoints in `default`, which kube-apiserver keeps for
/// itself: cluster IP 10.96.0.1 (the first address of the default service range), port 443
/// (`https`) leading to the address the server serves on.
fn publish_kubernetes_service(store: &Store, addr: SocketAddr) {
    let registry = store.registry();
    let service = serde_json::json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": addr.port()}]},
    });
    let endpoints = serde_json::json!({
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
            "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": addr.ip().to_string()}],
            "ports": [{"name": "https", "port": addr.port(), "protocol": "TCP"}]}],
    });
    for (plural, obj) in [("services", service), ("endpoints", endpoints)] {
        let Some(rt) = registry.lookup("", "v1", plural) else {
            continue;
        };
        let opts = crate::store::WriteOptions {
            user_agent_manager: Some("kube-apiserver".into()),
            ..Default::default()
        };
        if let Err(e) = store.create(&rt, Some("default"), obj, &opts) {
            tracing::error!(%e, plural, "publishing the kubernetes service");
        }
    }
}

/// The address clients use: loopback when listening on every interface (the serving
/// certificate names loopback only).
fn client_address(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), addr.port())
        }
        _ => addr,
    }
}

fn random_token() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(48)
        .map(char::from)
        .collect()
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: Option<TlsAcceptor>,
    state: Arc<AppState>,
    shutdown: CancellationToken,
) {
    let connections = TaskTracker::new();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, _peer) = match accepted {
            Ok(a) => a,
            Err(error) => {
                // Out of file descriptors and the like: back off briefly instead of spinning.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::clone(&state);
        let acceptor = acceptor.clone();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream));
                    let tls = tokio::select! {
                        _ = shutdown.cancelled() => return,
                        done = handshake => match done {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(error)) => {
                                tracing::debug!(%error, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        },
                    };
                    serve_connection(TokioIo::new(tls), state, shutdown).await;
                }
                None => serve_connection(TokioIo::new(stream), state, shutdown).await,
            }
        });
    }
    drop(listener);
    connections.close();
    if tokio::time::timeout(SHUTDOWN_GRACE, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown grace period; dropping them");
    }
}

async fn serve_connection<I>(io: TokioIo<I>, state: Arc<AppState>, shutdown: CancellationToken)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| handle(Arc::clone(&state), req));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // client-go multiplexes every watch of a process over one HTTP/2 connection.
    builder.http2().max_concurrent_streams(HTTP2_MAX_STREAMS);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let grace = tokio::select! {
        res = conn.as_mut() => {
            if let Err(error) = res {
                tracing::debug!(%error, "connection ended with an error");
            }
            return;
        }
        _ = shutdown.cancelled() => SHUTDOWN_GRACE,
    };
    conn.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(grace, conn.as_mut()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_reach_a_wildcard_listener_on_loopback() {
        let addr = |s: &str| s.parse::<SocketAddr>().expect("addr");
        assert_eq!(client_address(addr("0.0.0.0:6443")), addr("127.0.0.1:6443"));
        assert_eq!(client_address(addr("[::]:6443")), addr("[::1]:6443"));
        assert_eq!(client_address(addr("127.0.0.1:1")), addr("127.0.0.1:1"));
    }

    #[test]
    fn tokens_are_long_and_random() {
        let a = random_token();
        assert_eq!(a.len(), 48);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(a, random_token());
    }
}
