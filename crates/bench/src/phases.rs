//! The measurements. Each phase is bounded by a count and by a deadline, and reports what it
//! completed when the deadline cuts it short.

use std::future::Future;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::{Target, REQUEST_TIMEOUT};
use crate::stats::Latency;

/// The outcome of a batch of requests.
#[derive(Debug, Clone, Default)]
pub struct Throughput {
    pub done: usize,
    pub errors: usize,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latency: Latency,
    /// Response bytes received (for creates: the stored objects' JSON).
    pub bytes: u64,
    /// The deadline stopped the batch before `requested` was reached.
    pub capped: bool,
}

impl Throughput {
    pub fn per_second(&self) -> f64 {
        if self.elapsed.is_zero() {
            return 0.0;
        }
        self.done as f64 / self.elapsed.as_secs_f64()
    }
}

/// Runs `count` operations spread over `clients` (one task per client, each keeping one
/// connection), stopping early at `until`. `op` returns the response size or an error text.
pub async fn run_parallel<F, Fut>(
    clients: &[reqwest::Client],
    count: usize,
    until: Instant,
    op: F,
) -> Throughput
where
    F: Fn(reqwest::Client, usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<u64, String>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let tasks: Vec<_> = clients
        .iter()
        .cloned()
        .map(|client| {
            let (next, op) = (next.clone(), op.clone());
            tokio::spawn(async move {
                let mut out = Throughput::default();
                let mut latencies = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        break;
                    }
                    if Instant::now() >= until {
                        out.capped = true;
                        break;
                    }
                    let t = Instant::now();
                    match op(client.clone(), i).await {
                        Ok(bytes) => {
                            out.done += 1;
                            out.bytes += bytes;
                            latencies.push(t.elapsed());
                        }
                        Err(e) => {
                            out.errors += 1;
                            out.first_error.get_or_insert(e);
                        }
                    }
                }
                (out, latencies)
            })
        })
        .collect();
    let mut total = Throughput::default();
    let mut latencies = Vec::new();
    for task in tasks {
        let (part, lat) = task.await.expect("load task panicked");
        total.done += part.done;
        total.errors += part.errors;
        total.bytes += part.bytes;
        total.capped |= part.capped;
        if total.first_error.is_none() {
            total.first_error = part.first_error;
        }
        latencies.extend(lat);
    }
    total.elapsed = start.elapsed();
    total.latency = Latency::of(latencies);
    total
}

/// A ConfigMap named `name` with one value of `value_bytes` characters and two labels.
pub fn configmap_json(name: &str, value_bytes: usize) -> Vec<u8> {
    let value: String = name.chars().cycle().take(value_bytes).collect();
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "apiserver-load", "shard": (name.len() % 7).to_string()}},
        "data": {"value": value},
    }))
    .expect("serializing a ConfigMap")
}

/// Sends one request and reads the whole response; a non-2xx status is an error.
async fn send(req: reqwest::RequestBuilder, what: &str) -> Result<u64, String> {
    let resp = req
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| format!("{what}: {e}"))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| format!("{what}: reading the body: {e}"))?;
    if !status.is_success() {
        let text = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
        return Err(format!("{what}: HTTP {status}: {text}"));
    }
    Ok(body.len() as u64)
}

/// Creates a namespace; one that exists already is fine.
pub async fn ensure_namespace(
    target: &Target,
    client: &reqwest::Client,
    ns: &str,
) -> anyhow::Result<()> {
    let body =
        serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
    let resp = client
        .post(target.url("/api/v1/namespaces"))
        .timeout(REQUEST_TIMEOUT)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await?;
    let status = resp.status();
    if status.is_success() || status == reqwest::StatusCode::CONFLICT {
        return Ok(());
    }
    anyhow::bail!(
        "creating namespace {ns}: HTTP {status}: {}",
        resp.text().await.unwrap_or_default()
    )
}

/// Creates `count` ConfigMaps named `{prefix}{i:06}` in `ns`.
pub async fn create_configmaps(
    target: &Target,
    clients: &[reqwest::Client],
    ns: &str,
    prefix: &str,
    count: usize,
    value_bytes: usize,
    until: Instant,
) -> Throughput {
    let url = Arc::new(target.url(&format!("/api/v1/namespaces/{ns}/configmaps")));
    let prefix = Arc::new(prefix.to_string());
    run_parallel(clients, count, until, move |client, i| {
        let (url, prefix) = (url.clone(), prefix.clone());
        async move {
            let body = configmap_json(&format!("{prefix}{i:06}"), value_bytes);
            send(
                client
                    .post(url.as_str())
                    .header("content-type", "application/json")
                    .body(body),
                "create",
            )
            .await
        }
    })
    .await
}

/// Gets `count` ConfigMaps chosen over `{prefix}{0..existing}` in a scattered order.
pub async fn get_configmaps(
    target: &Target,
    clients: &[reqwest::Client],
    ns: &str,
    prefix: &str,
    existing: usize,
    count: usize,
    until: Instant,
) -> Throughput {
    let base = Arc::new(target.url(&format!("/api/v1/namespaces/{ns}/configmaps/{prefix}")));
    let existing = existing.max(1);
    run_parallel(clients, count, until, move |client, i| {
        let base = base.clone();
        async move {
            let n = (i.wrapping_mul(7919)) % existing;
            send(client.get(format!("{base}{n:06}")), "get").await
        }
    })
    .await
}

/// The latency of listing a whole namespace, `lists` times in a row on one connection.
pub struct ListResult {
    /// List requests sent.
    pub requests: usize,
    pub latency: Latency,
    pub items: usize,
    pub bytes: u64,
    pub errors: usize,
    pub first_error: Option<String>,
}

pub async fn list_latency(
    target: &Target,
    client: &reqwest::Client,
    ns: &str,
    lists: usize,
    until: Instant,
) -> ListResult {
    #[derive(Deserialize)]
    struct List {
        items: Vec<serde::de::IgnoredAny>,
    }
    let url = target.url(&format!("/api/v1/namespaces/{ns}/configmaps"));
    let mut out = ListResult {
        requests: 0,
        latency: Latency::default(),
        items: 0,
        bytes: 0,
        errors: 0,
        first_error: None,
    };
    let mut samples = Vec::new();
    for _ in 0..lists {
        if Instant::now() >= until {
            break;
        }
        out.requests += 1;
        let t = Instant::now();
        let result = async {
            let resp = client
                .get(&url)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| e.to_string())?;
            if !status.is_success() {
                return Err(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&body[..body.len().min(400)])
                ));
            }
            Ok(body)
        }
        .await;
        match result {
            Ok(body) => {
                samples.push(t.elapsed());
                out.bytes = body.len() as u64;
                match serde_json::from_slice::<List>(&body) {
                    Ok(list) => out.items = list.items.len(),
                    Err(e) => {
                        out.errors += 1;
                        out.first_error.get_or_insert(format!("list body: {e}"));
                    }
                }
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert(format!("list: {e}"));
            }
        }
    }
    out.latency = Latency::of(samples);
    out
}

/// Watch event latency: `watchers` watches on one namespace; a writer creates `events`
/// ConfigMaps `interval` apart; each watcher measures from the moment a create was sent to
/// the moment its ADDED event arrived.
pub struct WatchResult {
    pub watchers: usize,
    pub connected: usize,
    pub events: usize,
    pub expected: usize,
    pub received: usize,
    pub latency: Latency,
    /// Creates sent, warm-up included.
    pub writes: usize,
    pub write_errors: usize,
    pub first_error: Option<String>,
}

#[derive(Deserialize)]
struct WireEvent<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a str,
    #[serde(borrow)]
    object: WireObject<'a>,
}

#[derive(Deserialize)]
struct WireObject<'a> {
    #[serde(borrow)]
    metadata: WireMeta<'a>,
}

#[derive(Deserialize)]
struct WireMeta<'a> {
    #[serde(default, borrow)]
    name: Option<&'a str>,
}

/// Shared between the writer and the watchers.
struct WatchShared {
    start: Instant,
    /// Nanoseconds after `start` at which event `i` was written, plus one (0: not yet).
    sent: Vec<AtomicU64>,
    /// Watchers that have seen a warm-up event, so are surely registered.
    ready: AtomicUsize,
    /// Samples received so far, over all watchers.
    received: AtomicUsize,
}

#[allow(clippy::too_many_arguments)]
pub async fn watch_latency(
    target: &Target,
    writer: &reqwest::Client,
    ns: &str,
    watchers: usize,
    events: usize,
    interval: Duration,
    value_bytes: usize,
    until: Instant,
) -> anyhow::Result<WatchResult> {
    let shared = Arc::new(WatchShared {
        start: Instant::now(),
        sent: (0..events).map(|_| AtomicU64::new(0)).collect(),
        ready: AtomicUsize::new(0),
        received: AtomicUsize::new(0),
    });
    let stop = CancellationToken::new();
    let watch_client = target.client()?;
    let url = target.url(&format!(
        "/api/v1/namespaces/{ns}/configmaps?watch=true&timeoutSeconds=300"
    ));
    let tasks: Vec<_> = (0..watchers)
        .map(|_| {
            let (client, url, shared, stop) = (
                watch_client.clone(),
                url.clone(),
                shared.clone(),
                stop.clone(),
            );
            tokio::spawn(async move {
                tokio::select! {
                    r = watch_one(client, url, shared, events) => r,
                    _ = stop.cancelled() => Vec::new(),
                }
            })
        })
        .collect();

    let create_url = target.url(&format!("/api/v1/namespaces/{ns}/configmaps"));
    let create = |name: String| {
        let req = writer
            .post(&create_url)
            .header("content-type", "application/json")
            .body(configmap_json(&name, value_bytes));
        async move { send(req, "create").await }
    };
    let mut result = WatchResult {
        watchers,
        connected: 0,
        events: 0,
        expected: 0,
        received: 0,
        latency: Latency::default(),
        writes: 0,
        write_errors: 0,
        first_error: None,
    };

    // Warm up until every watcher has seen an event (bounded in count and time).
    for i in 0..100 {
        if shared.ready.load(Ordering::Relaxed) >= watchers || Instant::now() >= until {
            break;
        }
        result.writes += 1;
        if let Err(e) = create(format!("warmup-{i:03}")).await {
            result.write_errors += 1;
            result.first_error.get_or_insert(e);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    result.connected = shared.ready.load(Ordering::Relaxed);

    for i in 0..events {
        if Instant::now() >= until {
            break;
        }
        let at = shared.start.elapsed().as_nanos() as u64 + 1;
        shared.sent[i].store(at, Ordering::Release);
        result.writes += 1;
        match create(format!("w-{i:06}")).await {
            Ok(_) => result.events += 1,
            Err(e) => {
                shared.sent[i].store(0, Ordering::Release);
                result.write_errors += 1;
                result.first_error.get_or_insert(e);
            }
        }
        tokio::time::sleep(interval).await;
    }
    result.expected = result.events * result.connected;

    // Give stragglers a bounded time to catch up, then stop every watch.
    let drain_until =
        (Instant::now() + Duration::from_secs(10)).min(until + Duration::from_secs(5));
    while shared.received.load(Ordering::Relaxed) < result.expected && Instant::now() < drain_until
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.cancel();
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.unwrap_or_default());
    }
    result.received = samples.len();
    result.latency = Latency::of(samples);
    Ok(result)
}

/// One watcher: reads events line by line until it has seen `events` measured events.
async fn watch_one(
    client: reqwest::Client,
    url: String,
    shared: Arc<WatchShared>,
    events: usize,
) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(events);
    let Ok(mut resp) = client.get(&url).send().await else {
        return samples;
    };
    if !resp.status().is_success() {
        return samples;
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut ready = false;
    while let Ok(Some(chunk)) = resp.chunk().await {
        let now = shared.start.elapsed().as_nanos() as u64 + 1;
        buf.extend_from_slice(&chunk);
        let mut consumed = 0;
        while let Some(pos) = buf[consumed..].iter().position(|&b| b == b'\n') {
            let line = &buf[consumed..consumed + pos];
            consumed += pos + 1;
            let Ok(ev) = serde_json::from_slice::<WireEvent>(line) else {
                continue;
            };
            let Some(name) = ev.object.metadata.name else {
                continue;
            };
            if ev.kind != "ADDED" {
                continue;
            }
            if name.starts_with("warmup-") {
                if !ready {
                    ready = true;
                    shared.ready.fetch_add(1, Ordering::Relaxed);
                }
            } else if let Some(i) = name
                .strip_prefix("w-")
                .and_then(|n| n.parse::<usize>().ok())
            {
                let sent = shared
                    .sent
                    .get(i)
                    .map(|s| s.load(Ordering::Acquire))
                    .unwrap_or(0);
                if ready && sent != 0 {
                    samples.push(Duration::from_nanos(now.saturating_sub(sent)));
                    shared.received.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        buf.drain(..consumed);
        if samples.len() >= events {
            break;
        }
    }
    samples
}

/// `apiserver_request_total` for one resource from the server's `/metrics`, summed by verb
/// (`None` when the endpoint is unavailable).
pub async fn server_request_counts(
    target: &Target,
    client: &reqwest::Client,
    resource: &str,
) -> Option<std::collections::BTreeMap<String, u64>> {
    let resp = client
        .get(target.url("/metrics"))
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let text = resp.text().await.ok()?;
    Some(count_requests(&text, resource))
}

/// Sums `apiserver_request_total` samples for `resource` (main resource only) by verb.
fn count_requests(metrics: &str, resource: &str) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels.split(',').find_map(|kv| {
                kv.strip_prefix(name)?
                    .strip_prefix("=\"")?
                    .strip_suffix('"')
            })
        };
        if label("resource") != Some(resource)
            || label("subresource").is_some_and(|s| !s.is_empty())
        {
            continue;
        }
        let (Some(verb), Ok(n)) = (label("verb"), value.trim().parse::<f64>()) else {
            continue;
        };
        *counts.entry(verb.to_string()).or_insert(0) += n as u64;
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_requests_by_verb_for_one_resource() {
        let text = "# TYPE apiserver_request_total counter\n\
            apiserver_request_total{code=\"201\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"configmaps\",scope=\"namespace\",subresource=\"\",verb=\"POST\",version=\"v1\"} 5\n\
            apiserver_request_total{code=\"409\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"configmaps\",scope=\"namespace\",subresource=\"\",verb=\"POST\",version=\"v1\"} 2\n\
            apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"configmaps\",scope=\"namespace\",subresource=\"\",verb=\"GET\",version=\"v1\"} 7\n\
            apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"\",resource=\"secrets\",scope=\"namespace\",subresource=\"\",verb=\"GET\",version=\"v1\"} 9\n";
        let counts = count_requests(text, "configmaps");
        assert_eq!(counts.get("POST"), Some(&7));
        assert_eq!(counts.get("GET"), Some(&7));
        assert_eq!(counts.len(), 2);
    }
}
