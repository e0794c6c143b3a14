//! Client-side rate limiting of API requests (`--client-go-qps`, `--client-go-burst`), as
//! client-go's token bucket does it, plus request counts for `/metrics`.
//!
//! [`RateLimitLayer`] wraps the kube client's HTTP service. Readiness waits for a token, so
//! the client's request buffer queues requests behind the limit instead of failing them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

/// A token bucket: `burst` tokens, refilled at `qps` per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    qps: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(qps: f64, burst: u32, now: Instant) -> Self {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            qps,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes a token, or says how long until one is available.
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.qps).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.qps))
        }
    }
}

/// Requests by method and status code, and the time spent waiting for the limiter.
#[derive(Debug, Default)]
struct Stats {
    requests: BTreeMap<(String, String), u64>,
    waited_seconds: f64,
    waits: u64,
}

/// Shared state of every clone of the layer's service.
#[derive(Debug)]
struct Shared {
    bucket: Option<Mutex<TokenBucket>>,
    stats: Mutex<Stats>,
}

/// The layer; clone it to render its metrics later.
#[derive(Debug, Clone)]
pub struct RateLimitLayer {
    shared: Arc<Shared>,
}

impl RateLimitLayer {
    /// Limits to `qps` requests per second with bursts of `burst`; as in client-go, a qps of
    /// zero means the default of 5 and a negative qps disables the limit.
    pub fn new(qps: f64, burst: u32) -> Self {
        let qps = if qps == 0.0 { 5.0 } else { qps };
        let bucket = (qps > 0.0 && qps.is_finite())
            .then(|| Mutex::new(TokenBucket::new(qps, burst, Instant::now())));
        RateLimitLayer {
            shared: Arc::new(Shared {
                bucket,
                stats: Mutex::default(),
            }),
        }
    }

    /// Appends `rest_client_requests_total` and the limiter's wait time.
    pub fn render_prometheus(&self, out: &mut String) {
        let stats = self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
        // `write!` into a String cannot fail.
        let _ = writeln!(
            out,
            "# HELP rest_client_requests_total Number of HTTP requests to the API server, partitioned by status code and method"
        );
        let _ = writeln!(out, "# TYPE rest_client_requests_total counter");
        for ((code, method), n) in &stats.requests {
            let _ = writeln!(
                out,
                "rest_client_requests_total{{code=\"{code}\",method=\"{method}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP rest_client_rate_limiter_duration_seconds Time requests waited for the client-side rate limiter"
        );
        let _ = writeln!(
            out,
            "# TYPE rest_client_rate_limiter_duration_seconds summary"
        );
        let _ = writeln!(
            out,
            "rest_client_rate_limiter_duration_seconds_sum {}",
            stats.waited_seconds
        );
        let _ = writeln!(
            out,
            "rest_client_rate_limiter_duration_seconds_count {}",
            stats.waits
        );
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = RateLimit<S>;

    fn layer(&self, inner: S) -> RateLimit<S> {
        RateLimit {
            inner,
            shared: self.shared.clone(),
            permit: false,
            sleep: None,
        }
    }
}

/// The rate-limited service.
pub struct RateLimit<S> {
    inner: S,
    shared: Arc<Shared>,
    /// A token was taken for the next call.
    permit: bool,
    sleep: Option<(Pin<Box<tokio::time::Sleep>>, Instant)>,
}

impl<S> std::fmt::Debug for RateLimit<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimit")
            .field("permit", &self.permit)
            .finish_non_exhaustive()
    }
}

impl<S, B, R> tower::Service<http::Request<B>> for RateLimit<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if let Some(bucket) = &self.shared.bucket {
            // Bounded: each pass either takes a token or waits for the computed delay.
            while !self.permit {
                if let Some((sleep, _)) = &mut self.sleep {
                    if sleep.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                }
                let now = Instant::now();
                let taken = bucket
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .try_take(now);
                match taken {
                    Ok(()) => {
                        self.permit = true;
                        if let Some((_, since)) = self.sleep.take() {
                            let mut stats =
                                self.shared.stats.lock().unwrap_or_else(|p| p.into_inner());
                            stats.waited_seconds += now.duration_since(since).as_secs_f64();
                            stats.waits += 1;
                        }
                    }
                    Err(wait) => {
                        let since = self.sleep.as_ref().map_or(now, |(_, since)| *since);
                        self.sleep = Some((Box::pin(tokio::time::sleep(wait)), since));
                    }
                }
            }
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        self.permit = false;
        let method = req.method().as_str().to_string();
        let shared = self.shared.clone();
        let fut = self.inner.call(req);
        Box::pin(async move {
            let result = fut.await;
            let code = match &result {
                Ok(response) => response.status().as_u16().to_string(),
                Err(_) => "<error>".to_string(),
            };
            *shared
                .stats
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .requests
                .entry((code, method))
                .or_default() += 1;
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use tower::{Layer, Service};

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(5.0, 2, start);
        assert!(bucket.try_take(start).is_ok());
        assert!(bucket.try_take(start).is_ok());
        let wait = bucket.try_take(start).unwrap_err();
        assert!(wait > Duration::from_millis(150) && wait <= Duration::from_millis(200));
        assert!(bucket.try_take(start + Duration::from_millis(200)).is_ok());
        // A long pause refills only up to the burst.
        let later = start + Duration::from_secs(60);
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_ok());
        assert!(bucket.try_take(later).is_err());
    }

    #[derive(Clone)]
    struct Ok200;

    impl Service<http::Request<()>> for Ok200 {
        type Response = http::Response<()>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<http::Response<()>, Infallible>>;
        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }
        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            std::future::ready(Ok(http::Response::new(())))
        }
    }

    async fn send(svc: &mut RateLimit<Ok200>) {
        std::future::poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
        svc.call(http::Request::new(())).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn requests_beyond_the_burst_wait_for_tokens() {
        let layer = RateLimitLayer::new(10.0, 3);
        let mut svc = layer.layer(Ok200);
        let start = Instant::now();
        for _ in 0..5 {
            send(&mut svc).await;
        }
        // 3 at once, then two more at 10 per second.
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(200) && elapsed < Duration::from_millis(300),
            "{elapsed:?}"
        );
        let mut out = String::new();
        layer.render_prometheus(&mut out);
        assert!(
            out.contains("rest_client_requests_total{code=\"200\",method=\"GET\"} 5"),
            "{out}"
        );
        assert!(
            out.contains("rest_client_rate_limiter_duration_seconds_count 2"),
            "{out}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn negative_qps_disables_the_limit() {
        let mut svc = RateLimitLayer::new(-1.0, 1).layer(Ok200);
        let start = Instant::now();
        for _ in 0..100 {
            send(&mut svc).await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
