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
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH, RETRY_AFTER};
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use tracing::{debug, trace};

use crate::decode::decode;
use crate::endpoint::{HookEndpoint, DEFAULT_TIMEOUT};
use crate::error::{excerpt, redact_url, HookError, Result};
use crate::etag::{EtagCache, ObjectKey, ScopeKey};
use crate::metrics::{HookMetrics, SeriesKey};
use crate::tls::{ClientCache, Route};

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
        let parsed = match self.inner.resolver.as_ref() {
            Some(resolver) => resolver.resolve(&parsed).unwrap_or(parsed),
            None => parsed,
        };
        let client = self
            .inner
            .clients
            .get(&endpoint.tls, Route::for_url(&parsed))?;
        if tracing::enabled!(tracing::Level::TRACE) {
            if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&request_body) {
                trace!(hook = hook_name, %url, body = %crate::redact::redact_secrets(&body), "hook request");
            }
        }

        let mut request = client
            .post(parsed)
            .timeout(after)
            .header(CONTENT_TYPE, HeaderValue::from_static("application/json"))
            .body(request_body);
        if let Some(auth) = &endpoint.auth {
            let value = auth.header_value().map_err(HookError::Config)?;
            let mut value = HeaderValue::from_str(&value).map_err(|_| {
                HookError::Config("authorization credentials contain invalid characters".into())
            })?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
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
            request = request.header(IF_NONE_MATCH, tag.clone());
        }

        let in_flight = self.inner.metrics.start(
            hook_name,
            SeriesKey {
                owner: endpoint.owner.clone(),
                url: url.clone(),
            },
        );
        let started = Instant::now();
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(&url, after, e))?;
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
        let response_body = read_body(response, &url, after).await?;
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

/// Reads the whole body, refusing more than [`MAX_RESPONSE_BYTES`].
async fn read_body(mut response: reqwest::Response, url: &str, after: Duration) -> Result<Bytes> {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE_BYTES as u64)
    {
        return Err(too_large(url));
    }
    let mut body = Vec::new();
    // Bounded: every chunk adds bytes, and the total is capped below.
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| transport_error(url, after, e))?
    {
        if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
            return Err(too_large(url));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(body))
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
