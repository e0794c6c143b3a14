//! Plain `http://` hooks reached directly: HTTP/1.1 over TCP with a small keep-alive pool.
//!
//! Most hooks are `http://` services inside the cluster, called with no proxy; for them this
//! path skips the general client's layers (URL re-parsing, proxy matching, redirect and retry
//! wrappers, its pool's bookkeeping). Anything it does not handle goes through the general
//! client instead, which the caller decides beforehand ([`eligible`]) or afterwards (a
//! redirect status, see [`is_redirect`]):
//!
//! ```text
//! checkout: newest idle connection for host:port that is still open ─► or connect (TCP_NODELAY,
//!   and TCP_QUICKACK before every read: see [`QuickAck`])
//!   ─► send; a pooled connection that closed before the request went out ─► next one / new
//!   ─► response ─► body read to the end ─► back to the pool unless the server closes it
//! ```
//!
//! The pool keeps at most [`MAX_IDLE_PER_HOST`] idle connections per `host:port` for at most
//! [`IDLE_TIMEOUT`] (Go's default transport keeps them 90 s), and at most [`MAX_HOSTS`] hosts.

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONNECTION, HOST};
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper::body::Body as _;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use reqwest::Url;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Idle connections kept per `host:port`.
pub(crate) const MAX_IDLE_PER_HOST: usize = 16;
/// How long an idle connection is kept.
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Hosts with idle connections kept; past this the pool starts again empty.
pub(crate) const MAX_HOSTS: usize = 256;
/// The whole pool is swept for expired connections at most this often.
const SWEEP_EVERY: Duration = Duration::from_secs(10);

type Sender = SendRequest<Full<Bytes>>;

/// Whether a request to `url` may take this path: `http://`, no credentials in the URL (the
/// general client turns them into a header), and no proxy applies.
pub(crate) fn eligible(url: &Url, proxied: bool) -> bool {
    url.scheme() == "http"
        && url.username().is_empty()
        && url.password().is_none()
        && url.host().is_some()
        && !proxied
}

/// Whether the environment names an HTTP proxy, as the general client reads it.
pub(crate) fn env_has_http_proxy(var: impl Fn(&str) -> Option<String>) -> bool {
    ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .iter()
        .any(|name| var(name).is_some_and(|v| !v.trim().is_empty()))
}

/// A redirect the general client would follow (it has a `Location`).
pub(crate) fn is_redirect(status: StatusCode, headers: &HeaderMap) -> bool {
    matches!(status.as_u16(), 301 | 302 | 303 | 307 | 308)
        && headers.contains_key(http::header::LOCATION)
}

/// The keep-alive pool.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    inner: Mutex<PoolInner>,
}

#[derive(Default)]
struct PoolInner {
    idle: HashMap<String, Vec<(Sender, Instant)>>,
    swept: Option<Instant>,
}

impl std::fmt::Debug for PoolInner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PoolInner")
            .field("hosts", &self.idle.len())
            .finish()
    }
}

/// A response whose connection goes back to the pool once its body has been read.
pub(crate) struct PlainResponse {
    pub response: Response<Incoming>,
    /// The connection, when the server keeps it open.
    reuse: Option<(String, Sender)>,
}

/// Why a request failed, for the caller's error.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl Pool {
    fn lock(&self) -> std::sync::MutexGuard<'_, PoolInner> {
        // Only whole entries are inserted or removed, so the map is consistent after a panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The newest idle connection to `authority` that is still open.
    fn checkout(&self, authority: &str, now: Instant) -> Option<Sender> {
        let mut inner = self.lock();
        inner.sweep(now);
        let idle = inner.idle.get_mut(authority)?;
        while let Some((sender, since)) = idle.pop() {
            if !sender.is_closed() && now.duration_since(since) < IDLE_TIMEOUT {
                return Some(sender);
            }
        }
        None
    }

    fn put(&self, authority: String, sender: Sender, now: Instant) {
        let mut inner = self.lock();
        inner.sweep(now);
        if inner.idle.len() >= MAX_HOSTS && !inner.idle.contains_key(&authority) {
            inner.idle.clear();
        }
        let idle = inner.idle.entry(authority).or_default();
        if idle.len() >= MAX_IDLE_PER_HOST {
            // The oldest goes; dropping its sender closes the connection.
            idle.remove(0);
        }
        idle.push((sender, now));
    }

    /// Idle connections kept, over all hosts.
    #[cfg(test)]
    pub(crate) fn idle(&self) -> usize {
        self.lock().idle.values().map(Vec::len).sum()
    }

    /// POSTs `body` with `headers` to `url` (eligible, see [`eligible`]).
    pub(crate) async fn post(
        &self,
        url: &Url,
        headers: &HeaderMap,
        body: Bytes,
    ) -> Result<PlainResponse, BoxError> {
        let host = url.host_str().ok_or("URL has no host")?;
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let mut path = url.path().to_owned();
        if let Some(query) = url.query() {
            path.push('?');
            path.push_str(query);
        }
        let mut request = Request::post(path)
            .body(Full::new(body))
            .map_err(|e| Box::new(e) as BoxError)?;
        *request.headers_mut() = headers.clone();
        if !request.headers().contains_key(HOST) {
            request.headers_mut().insert(
                HOST,
                HeaderValue::from_str(&authority).map_err(|e| Box::new(e) as BoxError)?,
            );
        }

        // Pooled connections first; one that turns out closed before the request was written
        // hands the request back, and the next one (or a new connection) gets it.
        loop {
            let (mut sender, pooled) = match self.checkout(&authority, Instant::now()) {
                Some(sender) => (sender, true),
                None => (connect(url, port).await?, false),
            };
            if pooled && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let reuse = keeps_alive(&response).then_some((authority, sender));
                    return Ok(PlainResponse { response, reuse });
                }
                Err(mut e) => match e.take_message() {
                    Some(unsent) if pooled => request = unsent,
                    _ => return Err(Box::new(e.into_error())),
                },
            }
        }
    }

    /// Reads the body of `response` to its end, refusing more than `limit` bytes (`Ok(None)`),
    /// and pools its connection when the server keeps it open.
    pub(crate) async fn read_body(
        &self,
        response: PlainResponse,
        limit: usize,
    ) -> Result<Option<Bytes>, BoxError> {
        let PlainResponse { response, reuse } = response;
        let mut body = response.into_body();
        if body.size_hint().lower() > limit as u64 {
            return Ok(None);
        }
        let mut data = Vec::new();
        // Bounded: every frame adds bytes or trailers, and the total is capped below.
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Box::new(e) as BoxError)?;
            if let Ok(chunk) = frame.into_data() {
                if data.len() + chunk.len() > limit {
                    return Ok(None);
                }
                data.extend_from_slice(&chunk);
            }
        }
        if let Some((authority, sender)) = reuse {
            self.put(authority, sender, Instant::now());
        }
        Ok(Some(Bytes::from(data)))
    }
}

impl PoolInner {
    /// Drops expired and closed connections everywhere, at most every [`SWEEP_EVERY`].
    fn sweep(&mut self, now: Instant) {
        if self
            .swept
            .is_some_and(|at| now.duration_since(at) < SWEEP_EVERY)
        {
            return;
        }
        self.swept = Some(now);
        self.idle.retain(|_, idle| {
            idle.retain(|(sender, since)| {
                !sender.is_closed() && now.duration_since(*since) < IDLE_TIMEOUT
            });
            !idle.is_empty()
        });
    }
}

/// A new connection to `url`'s host, its HTTP/1.1 state driven by a task of its own.
async fn connect(url: &Url, port: u16) -> Result<Sender, BoxError> {
    let stream = match url.host() {
        Some(url::Host::Ipv4(ip)) => TcpStream::connect((ip, port)).await?,
        Some(url::Host::Ipv6(ip)) => TcpStream::connect((ip, port)).await?,
        Some(url::Host::Domain(name)) => TcpStream::connect((name, port)).await?,
        None => return Err("URL has no host".into()),
    };
    stream.set_nodelay(true)?;
    let (sender, connection) = http1::handshake(TokioIo::new(QuickAck(stream))).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "hook connection ended with an error");
        }
    });
    Ok(sender)
}

/// A hook connection that acknowledges what it receives at once.
///
/// A keep-alive hook server that writes a response's headers and body in two sends with
/// Nagle's algorithm on (Python's `http.server` in HTTP/1.1 does) holds the body back until the
/// headers are acknowledged, while the kernel here delays that acknowledgement (up to 40 ms on
/// Linux) in the hope of sending it with the next request: every call would wait for the timer.
/// `TCP_QUICKACK` is not sticky, so it is set again before every read; the call also sends an
/// acknowledgement the kernel is holding back. Elsewhere than Linux it is a plain stream.
struct QuickAck(TcpStream);

impl QuickAck {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn ack_at_once(&self) {
        // Best effort: a failure only means the delayed acknowledgement stays.
        let _ = socket2::SockRef::from(&self.0).set_tcp_quickack(true);
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn ack_at_once(&self) {}
}

impl AsyncRead for QuickAck {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.ack_at_once();
        Pin::new(&mut this.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for QuickAck {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}

/// Whether the server keeps the connection open after `response`: HTTP/1.1 unless it says
/// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
fn keeps_alive(response: &Response<Incoming>) -> bool {
    let says = |token: &str| {
        response
            .headers()
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    };
    match response.version() {
        Version::HTTP_11 => !says("close"),
        Version::HTTP_10 => says("keep-alive"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn only_plain_direct_urls_without_credentials_are_eligible() {
        assert!(eligible(&url("http://hook.default:8080/sync"), false));
        assert!(eligible(&url("http://127.0.0.1/sync?x=1"), false));
        assert!(!eligible(&url("http://hook.default/sync"), true));
        assert!(!eligible(&url("https://hook.default/sync"), false));
        assert!(!eligible(&url("http://user:pw@hook.default/sync"), false));
        assert!(!eligible(&url("http://user@hook.default/sync"), false));
    }

    #[test]
    fn proxy_variables_are_read_as_the_general_client_reads_them() {
        let env = |set: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                set.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert!(!env_has_http_proxy(env(&[])));
        assert!(!env_has_http_proxy(env(&[(
            "HTTPS_PROXY",
            "http://p:3128"
        )])));
        assert!(!env_has_http_proxy(env(&[("HTTP_PROXY", " ")])));
        for name in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
            let set: &'static [(&'static str, &'static str)] =
                Box::leak(Box::new([(name, "http://p:3128")]));
            assert!(env_has_http_proxy(env(set)), "{name}");
        }
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[tokio::test]
    async fn every_read_on_a_hook_connection_asks_for_acknowledgements_at_once() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (mut server, _) = accepted.expect("accept");
        let mut stream = QuickAck(client.expect("connect"));
        let delayed = |s: &QuickAck| {
            let sock = socket2::SockRef::from(&s.0);
            sock.set_tcp_quickack(false)
                .expect("delay acknowledgements");
            assert!(!sock.tcp_quickack().expect("read TCP_QUICKACK"));
        };
        let quick = |s: &QuickAck| socket2::SockRef::from(&s.0).tcp_quickack().expect("read");

        // A read that finds nothing yet leaves the socket acknowledging at once...
        delayed(&stream);
        let mut buf = [0u8; 8];
        let mut read_buf = ReadBuf::new(&mut buf);
        let mut cx = Context::from_waker(std::task::Waker::noop());
        assert!(Pin::new(&mut stream)
            .poll_read(&mut cx, &mut read_buf)
            .is_pending());
        assert!(quick(&stream), "after a pending read");

        // ...and so does one that returns data.
        delayed(&stream);
        server.write_all(b"headers").await.expect("server write");
        let n = stream.read(&mut buf).await.expect("read");
        assert_eq!(&buf[..n], b"headers");
        assert!(quick(&stream), "after a read with data");

        // Writes go through unchanged.
        stream.write_all(b"request").await.expect("client write");
        let mut got = [0u8; 7];
        server.read_exact(&mut got).await.expect("server read");
        assert_eq!(&got, b"request");
    }

    #[test]
    fn redirects_with_a_location_go_to_the_general_client() {
        let mut headers = HeaderMap::new();
        assert!(!is_redirect(StatusCode::TEMPORARY_REDIRECT, &headers));
        headers.insert(http::header::LOCATION, HeaderValue::from_static("/other"));
        for code in [301, 302, 303, 307, 308] {
            assert!(is_redirect(StatusCode::from_u16(code).unwrap(), &headers));
        }
        assert!(!is_redirect(StatusCode::NOT_MODIFIED, &headers));
        assert!(!is_redirect(StatusCode::OK, &headers));
    }
}
