//! The metrics endpoint (`/metrics`) and the probes (`/healthz`, `/readyz`).
//!
//! ```text
//!  /healthz  200 while the process serves requests
//!  /readyz   200 once every informer delivered its initial list (or while standing by for
//!            the leader Lease); 503 before that and from the start of shutdown
//!  /metrics  engine, hook, API client, leader election and process series
//! ```
//!
//! Both listeners serve every path, so `--metrics-address` and
//! `--health-probe-bind-address` may even name the same address.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::ratelimit::RateLimitLayer;

/// What the process is doing, for `/readyz` and the leader election series.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Not yet running the engine.
    Starting = 0,
    /// Waiting to acquire the leader Lease.
    Standby = 1,
    /// Running the engine.
    Active = 2,
}

/// Process state shared by the servers and the run loop.
#[derive(Debug)]
pub struct State {
    role: AtomicU8,
    draining: AtomicBool,
    /// The leader election Lease name, when election is on.
    pub lease_name: Option<String>,
    pub hooks: metacontroller_hooks::HookClient,
    pub client: Option<RateLimitLayer>,
    /// The engine's registry (the engine records into it; `/metrics` renders it).
    pub engine_metrics: Arc<metacontroller_engine::metrics::Metrics>,
}

impl State {
    pub fn new(
        lease_name: Option<String>,
        hooks: metacontroller_hooks::HookClient,
        client: Option<RateLimitLayer>,
    ) -> Arc<Self> {
        Arc::new(State {
            role: AtomicU8::new(Role::Starting as u8),
            draining: AtomicBool::new(false),
            lease_name,
            hooks,
            client,
            engine_metrics: Arc::default(),
        })
    }

    pub fn set_role(&self, role: Role) {
        self.role.store(role as u8, Ordering::SeqCst);
    }

    pub fn role(&self) -> Role {
        match self.role.load(Ordering::SeqCst) {
            1 => Role::Standby,
            2 => Role::Active,
            _ => Role::Starting,
        }
    }

    /// Marks the process as shutting down: `/readyz` fails from now on.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// The readiness verdict and its reason.
    pub fn readiness(&self, informers_synced: bool) -> (bool, &'static str) {
        if self.draining.load(Ordering::SeqCst) {
            return (false, "shutting down");
        }
        match self.role() {
            Role::Starting => (false, "starting"),
            Role::Standby => (true, "standing by for the leader lease"),
            Role::Active if informers_synced => (true, "caches synced"),
            Role::Active => (false, "waiting for caches to sync"),
        }
    }

    /// Renders every series.
    pub fn render_metrics(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        self.engine_metrics.render(&mut out);
        self.hooks.render_prometheus(&mut out);
        if let Some(client) = &self.client {
            client.render_prometheus(&mut out);
        }
        // `write!` into a String cannot fail.
        if let Some(name) = &self.lease_name {
            let _ = writeln!(out, "# HELP leader_election_master_status Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.");
            let _ = writeln!(out, "# TYPE leader_election_master_status gauge");
            let leading = u8::from(self.role() == Role::Active);
            let _ = writeln!(
                out,
                "leader_election_master_status{{name=\"{}\"}} {leading}",
                metacontroller_engine::metrics::escape_label(name)
            );
        }
        let (ready, _) = self.readiness(self.engine_metrics.informers_synced());
        let _ = writeln!(
            out,
            "# HELP metacontroller_ready Whether the process reports ready on /readyz."
        );
        let _ = writeln!(out, "# TYPE metacontroller_ready gauge");
        let _ = writeln!(out, "metacontroller_ready {}", u8::from(ready));
        render_process(&mut out);
        out
    }
}

/// Process series from `/proc` where available (Linux).
fn render_process(out: &mut String) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // Fields after the parenthesised command name; see proc(5).
    let Some(rest) = stat.rsplit_once(')').map(|(_, rest)| rest) else {
        return;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    // Clock ticks and page size as on every mainstream Linux platform.
    let (ticks, page) = (100.0, 4096.0);
    if let (Some(utime), Some(stime)) = (field(14), field(15)) {
        let _ = writeln!(
            out,
            "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds."
        );
        let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter");
        let _ = writeln!(out, "process_cpu_seconds_total {}", (utime + stime) / ticks);
    }
    if let Some(rss) = field(24) {
        let _ = writeln!(
            out,
            "# HELP process_resident_memory_bytes Resident memory size in bytes."
        );
        let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
        let _ = writeln!(out, "process_resident_memory_bytes {}", rss * page);
    }
}

/// Binds `address` (resolving host names).
pub async fn bind(address: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(address).await
}

/// Serves the endpoints on `listener` until `stop` is cancelled.
pub async fn serve(listener: TcpListener, state: Arc<State>, stop: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, _) = match accepted {
            Ok(conn) => conn,
            Err(error) => {
                tracing::debug!(%error, "accept failed");
                // Back off briefly so a persistent error (too many files) does not spin.
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, &req)) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            // Probes and scrapes are short; bound a stuck connection.
            let _ = tokio::time::timeout(std::time::Duration::from_secs(60), conn).await;
        });
    }
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Answers one request.
pub fn handle<B>(state: &State, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != http::Method::GET && req.method() != http::Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    }
    match req.uri().path() {
        "/healthz" | "/livez" | "/healthz/ping" => text(StatusCode::OK, "ok\n"),
        "/readyz" | "/readyz/ping" => {
            let synced = state.engine_metrics.informers_synced();
            match state.readiness(synced) {
                (true, reason) => text(StatusCode::OK, format!("ok: {reason}\n")),
                (false, reason) => text(
                    StatusCode::SERVICE_UNAVAILABLE,
                    format!("not ready: {reason}\n"),
                ),
            }
        }
        "/metrics" => {
            let mut response = text(StatusCode::OK, state.render_metrics());
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            response
        }
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn get(state: &State, path: &str) -> (StatusCode, String) {
        let req = Request::get(path).body(()).unwrap();
        let response = handle(state, &req);
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    fn state() -> Arc<State> {
        State::new(
            Some("metacontroller".into()),
            metacontroller_hooks::HookClient::new(),
            Some(RateLimitLayer::new(5.0, 10)),
        )
    }

    #[test]
    fn readiness_follows_role_sync_and_draining() {
        let s = state();
        assert!(!s.readiness(true).0, "starting");
        s.set_role(Role::Standby);
        assert!(s.readiness(false).0, "a standby is ready");
        s.set_role(Role::Active);
        assert!(!s.readiness(false).0);
        assert!(s.readiness(true).0);
        s.start_draining();
        assert!(!s.readiness(true).0);
    }

    #[tokio::test]
    async fn endpoints() {
        let s = state();
        assert_eq!(get(&s, "/healthz").await.0, StatusCode::OK);
        // No informer runs in this test, so an active process is not ready.
        s.set_role(Role::Active);
        assert_eq!(get(&s, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        let (status, body) = get(&s, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            body.contains("leader_election_master_status{name=\"metacontroller\"} 1"),
            "{body}"
        );
        assert!(body.contains("# TYPE workqueue_depth gauge"), "{body}");
        assert!(
            body.contains("# TYPE rest_client_requests_total counter"),
            "{body}"
        );
        assert_eq!(get(&s, "/nope").await.0, StatusCode::NOT_FOUND);
    }
}
