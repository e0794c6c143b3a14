//! [`HookClient`]: POST a hook request, get the decoded response back.
//!
//! One call, in order:
//!
//! ```text
//! pick pooled client (by TLS config) ─► headers (Content-Type, Authorization, If-None-Match)
//!   ─► POST within the deadline ─► count in metrics ─► status check
//!   ─► 200: remember ETag │ 304/412 after If-None-Match: replay cached body │ else: Status error
//!   ─► decode (loose or strict)
//! ```
//!
//! As upstream, only `200` is a success; `304 Not Modified` and `412 Precondition Failed` are
//! accepted only when an `If-None-Match` header was sent, and `429` carries `Retry-After`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, ETAG, HOST, IF_NONE_MATCH,
    RETRY_AFTER, USER_AGENT,
};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use tracing::{debug, trace};

use crate::decode::decode;
use crate::endpoint::{HookEndpoint, DEFAULT_TIMEOUT};
use crate::error::{excerpt, redact_url, HookError, Result};
use crate::etag::{EtagCache, ObjectKey, ScopeKey};
use crate::metrics::{HookMetrics, SeriesKey};
use crate::plain::{self, PlainResponse};
use crate::tls::{ClientCache, Pin, Route, USER_AGENT_VALUE};

/// How much of an error response body is kept in [`HookError::Status`].
pub const BODY_EXCERPT_BYTES: usize = 512;

/// Largest response body accepted: a hook's answer lists desired children, which can be many,
/// but a runaway server must not exhaust memory.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;

/// A decoded hook response.
#[derive(Clone, Debug, PartialEq)]
pub struct HookResponse<T> {
    /// The decoded body.
    pub value: T,
    /// Fields of the body that `T` does not know (loose mode; empty in strict mode). Upstream
    /// logs these; the caller decides how loudly.
    pub unknown_fields: Vec<String>,
    /// True when the hook answered 304/412 and the cached body was replayed.
    pub from_etag_cache: bool,
}

/// Calls hooks. Cheap to clone; clones share connection pools, the ETag cache and metrics.
#[derive(Clone, Debug, Default)]
pub struct HookClient {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    clients: ClientCache,
    etags: EtagCache,
    metrics: HookMetrics,
    resolver: Option<Arc<dyn UrlResolver>>,
    /// Hook URLs as parsed, by their text: a controller calls the same few URLs every time.
    urls: std::sync::Mutex<std::collections::HashMap<String, reqwest::Url>>,
    /// Keep-alive connections of plain `http://` hooks reached directly.
    plain: plain::Pool,
    /// Whether the environment names an HTTP proxy (read once, as the general client does).
    env_proxy: std::sync::OnceLock<bool>,
}

/// At most this many parsed URLs are kept; past it the map starts again empty.
const PARSED_URLS: usize = 1024;

impl Inner {
    /// `url` parsed, from the map when it was parsed before.
    fn parse_url(&self, url: &str) -> std::result::Result<reqwest::Url, String> {
        let mut urls = self.urls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(parsed) = urls.get(url) {
            return Ok(parsed.clone());
        }
        let parsed = reqwest::Url::parse(url).map_err(|e| e.to_string())?;
        if urls.len() >= PARSED_URLS {
            urls.clear();
        }
        urls.insert(url.to_owned(), parsed.clone());
        Ok(parsed)
    }
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner")
            .field("clients", &self.clients)
            .field("etags", &self.etags)
            .field("metrics", &self.metrics)
            .field("resolver", &self.resolver.is_some())
            .finish()
    }
}

/// Maps a hook URL onto the address that serves it, before the request is sent: a
/// development cluster uses this to reach `http://SERVICE.NAMESPACE/...` URLs, which only a
/// cluster's DNS resolves. Metrics, the ETag cache and errors keep the URL as written.
pub trait UrlResolver: Send + Sync {
    /// The URL to send the request to instead, or `None` to send it as written.
    fn resolve(&self, url: &reqwest::Url) -> Option<reqwest::Url>;
}

impl HookClient {
    /// A client with empty pools, cache and metrics.
    pub fn new() -> Self {
        Self::default()
    }

    /// A client that passes every hook URL through `resolver` before sending.
    pub fn with_resolver(resolver: Arc<dyn UrlResolver>) -> Self {
        Self {
            inner: Arc::new(Inner {
                resolver: Some(resolver),
                ..Inner::default()
            }),
        }
    }

    /// POSTs `body` as JSON to the hook and decodes the response as `T`.
    ///
    /// `hook_name` (`sync`, `finalize`, `customize`) names the metric families and the ETag
    /// cache scope. The whole exchange is abandoned at `endpoint.timeout`.
    pub async fn call<T: DeserializeOwned>(
        &self,
        hook_name: &str,
        endpoint: &HookEndpoint,
        body: &serde_json::Value,
    ) -> Result<HookResponse<T>> {
        let encoded = serde_json::to_vec(body)
            .map_err(|e| HookError::Config(format!("can't encode hook request: {e}")))?;
        self.call_encoded(hook_name, endpoint, encoded, ObjectKey::from_request(body))
            .await
    }

    /// [`HookClient::call`] with a body already encoded as JSON; `object` is the request's
    /// root object (`parent` or `object`), which keys the ETag cache.
    pub async fn call_encoded<T: DeserializeOwned>(
        &self,
        hook_name: &str,
        endpoint: &HookEndpoint,
        body: Vec<u8>,
        object: Option<ObjectKey>,
    ) -> Result<HookResponse<T>> {
        let after = if endpoint.timeout.is_zero() {
            DEFAULT_TIMEOUT
        } else {
            endpoint.timeout
        };
        match tokio::time::timeout(
            after,
            self.exchange(hook_name, endpoint, body, object, after),
        )
        .await
        {
            Ok(result) => result,
            Err(_elapsed) => Err(HookError::Timeout {
                url: redact_url(&endpoint.url),
                after,
            }),
        }
    }

    /// Writes the hook metrics in the Prometheus text format.
    pub fn render_prometheus(&self, out: &mut String) {
        self.inner.metrics.render_prometheus(out);
    }

    /// Sends the request: plain `http://` hooks reached directly over this client's own
    /// keep-alive connections, everything else (TLS, proxies, credentials in the URL,
    /// redirects to follow) through the general client.
    async fn send(
        &self,
        endpoint: &HookEndpoint,
        (url, pinned): (reqwest::Url, Option<Pin>),
        headers: HeaderMap,
        body: Bytes,
        after: Duration,
        shown: &str,
    ) -> Result<Sent> {
        // A pinned address is the resolver's: never through a proxy.
        let route = match pinned {
            Some(_) => Route::Direct,
            None => Route::for_url(&url),
        };
        let proxied = route == Route::Proxied
            && *self
                .inner
                .env_proxy
                .get_or_init(|| plain::env_has_http_proxy(|name| std::env::var(name).ok()));
        if endpoint.tls.is_default() && plain::eligible(&url, proxied) {
            let response = self
                .inner
                .plain
                .post(&url, &headers, body.clone())
                .await
                .map_err(|source| HookError::Connect {
                    url: shown.to_owned(),
                    source,
                })?;
            let (status, response_headers) =
                (response.response.status(), response.response.headers());
            if !plain::is_redirect(status, response_headers) {
                return Ok(Sent::Plain(response));
            }
            debug!(url = %shown, status = status.as_u16(), "hook redirects; following it");
        }
        let client = self.inner.clients.get(&endpoint.tls, route, pinned)?;
        let response = client
            .post(url)
            .timeout(after)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(shown, after, e))?;
        Ok(Sent::General(response))
    }

    /// Reads the whole body, refusing more than [`MAX_RESPONSE_BYTES`].
    async fn read_body(&self, response: Sent, url: &str, after: Duration) -> Result<Bytes> {
        match response {
            Sent::Plain(response) => self
                .inner
                .plain
                .read_body(response, MAX_RESPONSE_BYTES)
                .await
                .map_err(|source| HookError::Connect {
                    url: url.to_owned(),
                    source,
                })?
                .ok_or_else(|| too_large(url)),
            Sent::General(mut response) => {
                if response
                    .content_length()
                    .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
                {
                    return Err(too_large(url));
                }
                // A body with neither a length nor chunked framing ends where the connection
                // does. Over TLS a server may close without close_notify (Python's
                // `http.server` does): as with Go's client, the body read until then is whole.
                let close_delimited = response.content_length().is_none()
                    && !response
                        .headers()
                        .contains_key(http::header::TRANSFER_ENCODING);
                let mut body = Vec::new();
                // Bounded: every chunk adds bytes, and the total is capped below.
                loop {
                    let chunk = match response.chunk().await {
                        Ok(Some(chunk)) => chunk,
                        Ok(None) => break,
                        Err(e) if close_delimited && ends_without_close_notify(&e) => break,
                        Err(e) => return Err(transport_error(url, after, e)),
                    };
                    if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                        return Err(too_large(url));
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(Bytes::from(body))
            }
        }
    }

    async fn exchange<T: DeserializeOwned>(
        &self,
        hook_name: &str,
        endpoint: &HookEndpoint,
        request_body: Vec<u8>,
        object: Option<ObjectKey>,
        after: Duration,
    ) -> Result<HookResponse<T>> {
        let url = redact_url(&endpoint.url);
        let parsed = self
            .inner
            .parse_url(&endpoint.url)
            .map_err(|e| HookError::Config(format!("invalid hook URL {url}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(HookError::Config(format!(
                "invalid hook URL {url}: scheme must be http or https"
            )));
        }
        // A resolved URL is sent to the address the resolver names, with the Host header of
        // the URL as written; an `https://` URL also keeps its name for SNI and certificate
        // verification, as inside a cluster where that name resolves to the same address.
        let mut host_header = None;
        let mut pinned = None;
        let parsed = match self
            .inner
            .resolver
            .as_ref()
            .and_then(|r| r.resolve(&parsed))
        {
            None => parsed,
            Some(to) => {
                host_header = authority_of(&parsed);
                match pin_address(&parsed, &to) {
                    Some((kept, pin)) => {
                        pinned = Some(pin);
                        kept
                    }
                    None => to,
                }
            }
        };
        if tracing::enabled!(tracing::Level::TRACE) {
            if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request_body) {
                trace!(hook = hook_name, %url, body = %crate::redact::redact_secrets(&body), "hook request");
            }
        }

        let mut headers = HeaderMap::with_capacity(7);
        if let Some(host) = host_header.and_then(|h| HeaderValue::from_str(&h).ok()) {
            headers.insert(HOST, host);
        }
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(ACCEPT, HeaderValue::from_static("*/*"));
        headers.insert(USER_AGENT, HeaderValue::from_static(USER_AGENT_VALUE));
        if let Some(auth) = &endpoint.auth {
            let value = auth.header_value().map_err(HookError::Config)?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                HookError::Config("authorization credentials contain invalid characters".into())
            })?;
            value.set_sensitive(true);
            headers.insert(AUTHORIZATION, value);
        }

        // ETag: look up the cached response for the request's root object.
        let etag = endpoint.etag.filter(|c| c.enabled).and_then(|config| {
            let object = object?;
            let scope = ScopeKey {
                owner: endpoint.owner.clone(),
                hook: hook_name.to_owned(),
                url: endpoint.url.clone(),
            };
            let cached = self
                .inner
                .etags
                .get(&scope, &object, Instant::now())
                .and_then(|entry| Some((HeaderValue::from_str(&entry.etag).ok()?, entry)));
            Some((config, scope, object, cached))
        });
        // Only a cached entry whose tag was actually sent may be replayed.
        let cached = etag.as_ref().and_then(|(_, _, _, c)| c.as_ref());
        if let Some((tag, _)) = cached {
            headers.insert(IF_NONE_MATCH, tag.clone());
        }

        let in_flight = self.inner.metrics.start(
            hook_name,
            SeriesKey {
                owner: endpoint.owner.clone(),
                url: url.clone(),
            },
        );
        let started = Instant::now();
        let response = self
            .send(
                endpoint,
                (parsed, pinned),
                headers,
                Bytes::from(request_body),
                after,
                &url,
            )
            .await?;
        let status = response.status();
        in_flight.response("POST", status.as_u16(), started.elapsed());

        let retry_after = (status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| response.headers().get(RETRY_AFTER))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let new_etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_owned);
        let response_body = self.read_body(response, &url, after).await?;
        drop(in_flight);
        if tracing::enabled!(tracing::Level::TRACE) {
            trace!(hook = hook_name, %url, status = status.as_u16(), body = %crate::redact::loggable_body(&response_body), "hook response");
        }

        let (payload, from_etag_cache) = match (status, cached) {
            (StatusCode::OK, _) => (response_body, false),
            (StatusCode::NOT_MODIFIED | StatusCode::PRECONDITION_FAILED, Some((_, entry))) => {
                debug!(hook = hook_name, %url, status = status.as_u16(), "hook response unchanged; replaying cached body");
                (entry.body.clone(), true)
            }
            _ => {
                return Err(HookError::Status {
                    url,
                    code: status.as_u16(),
                    body_excerpt: excerpt(&response_body, BODY_EXCERPT_BYTES),
                    retry_after,
                })
            }
        };
        let decoded = decode::<T>(&payload, endpoint.unmarshal_mode).map_err(|message| {
            HookError::Decode {
                url: url.clone(),
                message,
            }
        })?;
        if let (false, Some(tag), Some((config, scope, object, _))) =
            (from_etag_cache, new_etag, etag)
        {
            // Only bodies that decoded are cached, so a replay never repeats a failure.
            debug!(hook = hook_name, %url, etag = %tag, "caching hook response");
            self.inner
                .etags
                .put(&scope, &config, object, tag, payload, Instant::now());
        }

        if !decoded.duplicate_keys.is_empty() {
            debug!(hook = hook_name, %url, keys = ?decoded.duplicate_keys, "hook response has duplicate keys; the last value of each was used");
        }
        Ok(HookResponse {
            value: decoded.value,
            unknown_fields: decoded.unknown_fields,
            from_etag_cache,
        })
    }
}

/// A response whose body is still to be read, from either transport.
enum Sent {
    Plain(PlainResponse),
    General(reqwest::Response),
}

impl Sent {
    fn status(&self) -> StatusCode {
        match self {
            Sent::Plain(r) => r.response.status(),
            Sent::General(r) => r.status(),
        }
    }

    fn headers(&self) -> &HeaderMap {
        match self {
            Sent::Plain(r) => r.response.headers(),
            Sent::General(r) => r.headers(),
        }
    }
}

fn too_large(url: &str) -> HookError {
    HookError::Decode {
        url: url.to_owned(),
        message: format!("response body exceeds {MAX_RESPONSE_BYTES} bytes"),
    }
}

/// Maps a transport failure; the error's own URL is dropped because it may hold userinfo.
fn transport_error(url: &str, after: Duration, e: reqwest::Error) -> HookError {
    if e.is_timeout() {
        HookError::Timeout {
            url: url.to_owned(),
            after,
        }
    } else {
        HookError::Connect {
            url: url.to_owned(),
            source: Box::new(e.without_url()),
        }
    }
}

/// `Retry-After`: delay-seconds, or an HTTP date (rounded up to whole seconds from `now`, zero
/// if already past). `None` when absent or unparseable.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    let wait = at.duration_since(now).unwrap_or(Duration::ZERO);
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    Some(Duration::from_secs(secs))
}

/// `host[:port]` of `url` as a Host header carries it (the port only when not the scheme's
/// default).
fn authority_of(url: &reqwest::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// For an `https://` URL with a host name that the resolver sent to an IP address: the URL
/// with the resolved port but its own name, and the address to connect to for that name.
fn pin_address(written: &reqwest::Url, to: &reqwest::Url) -> Option<(reqwest::Url, Pin)> {
    if written.scheme() != "https" || to.scheme() != "https" {
        return None;
    }
    let name = written.domain()?;
    let ip = match to.host()? {
        url::Host::Ipv4(ip) => std::net::IpAddr::V4(ip),
        url::Host::Ipv6(ip) => std::net::IpAddr::V6(ip),
        url::Host::Domain(_) => return None,
    };
    let port = to.port_or_known_default()?;
    let mut kept = to.clone();
    kept.set_host(Some(name)).ok()?;
    Some((
        kept,
        Pin {
            name: name.to_owned(),
            addr: std::net::SocketAddr::new(ip, port),
        },
    ))
}

/// Whether `error` is the TLS layer's report that the peer closed the connection without
/// close_notify (an unexpected end of file under the HTTP client's error).
fn ends_without_close_notify(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::UnexpectedEof)
        {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hook_urls_are_parsed_once_and_the_map_stays_bounded() {
        let inner = Inner::default();
        let url = "http://hook.default:8080/sync";
        assert_eq!(
            inner.parse_url(url),
            Ok(reqwest::Url::parse(url).expect("url"))
        );
        assert_eq!(
            inner.parse_url(url),
            Ok(reqwest::Url::parse(url).expect("url"))
        );
        assert_eq!(inner.urls.lock().expect("lock").len(), 1);
        assert!(inner.parse_url("http://[bad").is_err());
        for i in 0..PARSED_URLS + 10 {
            inner.parse_url(&format!("http://h{i}/")).expect("url");
        }
        assert!(inner.urls.lock().expect("lock").len() <= PARSED_URLS);
    }

    /// Answers every request on a connection with `{}` and keeps the connection open.
    async fn keep_alive_server() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.expect("accept");
            let mut buf = vec![0u8; 64 * 1024];
            // One request per read is enough for the small requests below; ends with the
            // test's runtime or when the client closes.
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
                if stream.write_all(reply).await.is_err() {
                    break;
                }
            }
        });
        addr
    }

    #[tokio::test]
    async fn plain_http_hooks_use_the_keep_alive_pool_and_tls_ones_do_not() {
        let addr = keep_alive_server().await;
        let client = HookClient::new();
        let endpoint = HookEndpoint::new(format!("http://{addr}/sync"));
        let body = serde_json::json!({});
        for _ in 0..3 {
            let r = client
                .call::<serde_json::Value>("sync", &endpoint, &body)
                .await
                .expect("call");
            assert_eq!(r.value, serde_json::json!({}));
        }
        assert_eq!(client.inner.plain.idle(), 1);
        assert_eq!(client.inner.clients.len(), 0, "no general client was built");

        // TLS material (even for http://) goes through the general client, which checks it.
        let with_tls = endpoint.clone().with_tls(crate::TlsConfig {
            ca_bundle_pem: Some(b"not a certificate".to_vec()),
            ..Default::default()
        });
        let err = client
            .call::<serde_json::Value>("sync", &with_tls, &body)
            .await
            .expect_err("bad CA bundle");
        assert!(matches!(err, HookError::Config(_)), "{err:?}");
    }

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(parse_retry_after("10", now), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        let in_ten = httpdate::fmt_http_date(now + Duration::from_secs(10));
        assert_eq!(
            parse_retry_after(&in_ten, now),
            Some(Duration::from_secs(10))
        );
        let just_under = now + Duration::from_millis(500);
        // A date 9.5s ahead rounds up to 10s.
        assert_eq!(
            parse_retry_after(&in_ten, just_under),
            Some(Duration::from_secs(10))
        );
        let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }
}
