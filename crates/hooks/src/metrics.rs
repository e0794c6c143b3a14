//! In-process hook metrics, rendered in the Prometheus text format under upstream's names.
//!
//! Upstream instruments each controller hook's HTTP client with three families, named
//! `metacontroller_<hook>_…` and carrying the constant labels `controller_name`,
//! `controller_type` and `url`:
//!
//! | family | type | labels |
//! |---|---|---|
//! | `requests_total` | counter | `code`, `method` (lower case, e.g. `post`) |
//! | `request_duration_histogram_seconds` | histogram, default buckets | `method` |
//! | `in_flight_requests` | gauge | – |
//!
//! As with upstream's round-tripper instrumentation, requests and durations are counted when a
//! response arrives (whatever its status); calls that fail before a response (refused
//! connection, timeout) only move the in-flight gauge.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::endpoint::HookOwner;

/// Prometheus' default histogram buckets, in seconds.
pub const DEFAULT_BUCKETS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Identifies one instrumented client, as upstream's constant labels do.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct SeriesKey {
    pub owner: HookOwner,
    pub url: String,
}

#[derive(Debug, Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    counts: [u64; DEFAULT_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = DEFAULT_BUCKETS
            .iter()
            .position(|le| seconds <= *le)
            .unwrap_or(DEFAULT_BUCKETS.len());
        self.counts[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Series {
    /// `(code, method)` → count.
    requests: BTreeMap<(String, String), u64>,
    /// `method` → durations.
    durations: BTreeMap<String, Histogram>,
    in_flight: i64,
}

/// hook name → series.
type Families = BTreeMap<String, BTreeMap<SeriesKey, Series>>;

/// Shared counters of a [`HookClient`](crate::HookClient) and its clones.
#[derive(Debug, Default, Clone)]
pub(crate) struct HookMetrics {
    families: Arc<Mutex<Families>>,
}

impl HookMetrics {
    fn lock(&self) -> MutexGuard<'_, Families> {
        // Counters stay meaningful after a panic elsewhere: every update is a single increment.
        self.families.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_series<R>(&self, hook: &str, key: &SeriesKey, f: impl FnOnce(&mut Series) -> R) -> R {
        let mut families = self.lock();
        let family = families.entry(hook.to_owned()).or_default();
        let series = match family.get_mut(key) {
            Some(s) => s,
            None => family.entry(key.clone()).or_default(),
        };
        f(series)
    }

    /// Marks a request as started; the returned guard marks it finished when dropped, so a
    /// cancelled call does not leave the gauge up.
    pub fn start(&self, hook: &str, key: SeriesKey) -> InFlight {
        self.with_series(hook, &key, |s| s.in_flight += 1);
        InFlight {
            metrics: self.clone(),
            hook: hook.to_owned(),
            key,
        }
    }

    fn record(&self, hook: &str, key: &SeriesKey, method: &str, code: u16, elapsed: Duration) {
        let method = method.to_ascii_lowercase();
        self.with_series(hook, key, |s| {
            *s.requests
                .entry((code.to_string(), method.clone()))
                .or_default() += 1;
            s.durations
                .entry(method)
                .or_default()
                .observe(elapsed.as_secs_f64());
        });
    }

    /// Writes every family in the Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self, out: &mut String) {
        let families = self.lock();
        for (hook, series) in families.iter() {
            let prefix = format!("metacontroller_{}", metric_name_part(hook));
            // `write!` into a String cannot fail.
            let _ = render_family(out, &prefix, series);
        }
    }
}

fn render_family(
    out: &mut String,
    prefix: &str,
    series: &BTreeMap<SeriesKey, Series>,
) -> std::fmt::Result {
    let name = format!("{prefix}_requests_total");
    writeln!(
        out,
        "# HELP {name} A counter for outgoing requests from the wrapped client."
    )?;
    writeln!(out, "# TYPE {name} counter")?;
    for (key, s) in series {
        for ((code, method), n) in &s.requests {
            let labels = labels(&[
                ("code", code),
                ("controller_name", &key.owner.controller_name),
                ("controller_type", &key.owner.controller_type),
                ("method", method),
                ("url", &key.url),
            ]);
            writeln!(out, "{name}{{{labels}}} {n}")?;
        }
    }

    let name = format!("{prefix}_request_duration_histogram_seconds");
    writeln!(
        out,
        "# HELP {name} A histogram of outgoing request latencies."
    )?;
    writeln!(out, "# TYPE {name} histogram")?;
    for (key, s) in series {
        for (method, h) in &s.durations {
            let base = labels(&[
                ("controller_name", &key.owner.controller_name),
                ("controller_type", &key.owner.controller_type),
                ("method", method),
                ("url", &key.url),
            ]);
            let mut cumulative = 0;
            for (i, count) in h.counts.iter().enumerate() {
                cumulative += count;
                let le = DEFAULT_BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
                writeln!(out, "{name}_bucket{{{base},le=\"{le}\"}} {cumulative}")?;
            }
            writeln!(out, "{name}_sum{{{base}}} {}", h.sum)?;
            writeln!(out, "{name}_count{{{base}}} {}", h.count)?;
        }
    }

    let name = format!("{prefix}_in_flight_requests");
    writeln!(
        out,
        "# HELP {name} A gauge of in-flight outgoing requests for the wrapped client."
    )?;
    writeln!(out, "# TYPE {name} gauge")?;
    for (key, s) in series {
        let labels = labels(&[
            ("controller_name", &key.owner.controller_name),
            ("controller_type", &key.owner.controller_type),
            ("url", &key.url),
        ]);
        writeln!(out, "{name}{{{labels}}} {}", s.in_flight)?;
    }
    Ok(())
}

/// `a="x",b="y"` with values escaped as the text format requires.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(k);
        s.push_str("=\"");
        for c in v.chars() {
            match c {
                '\\' => s.push_str("\\\\"),
                '"' => s.push_str("\\\""),
                '\n' => s.push_str("\\n"),
                c => s.push(c),
            }
        }
        s.push('"');
    }
    s
}

/// A hook name made safe for a metric name (`[a-zA-Z0-9_]`).
fn metric_name_part(hook: &str) -> String {
    hook.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// An in-flight request; see [`HookMetrics::start`].
#[derive(Debug)]
pub(crate) struct InFlight {
    metrics: HookMetrics,
    hook: String,
    key: SeriesKey,
}

impl InFlight {
    /// Counts the response (status `code`) and its latency.
    pub fn response(&self, method: &str, code: u16, elapsed: Duration) {
        self.metrics
            .record(&self.hook, &self.key, method, code, elapsed);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics
            .with_series(&self.hook, &self.key, |s| s.in_flight -= 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(url: &str) -> SeriesKey {
        SeriesKey {
            owner: HookOwner::new("CompositeController", "my-ctl"),
            url: url.into(),
        }
    }

    #[test]
    fn renders_upstream_families() {
        let m = HookMetrics::default();
        {
            let a = m.start("sync", key("http://h/sync"));
            a.response("POST", 200, Duration::from_millis(30));
            let b = m.start("sync", key("http://h/sync"));
            b.response("POST", 500, Duration::from_secs(20));
            let _still_running = m.start("finalize", key("http://h/fin"));
            let mut out = String::new();
            m.render_prometheus(&mut out);
            assert!(out.contains("metacontroller_finalize_in_flight_requests{controller_name=\"my-ctl\",controller_type=\"CompositeController\",url=\"http://h/fin\"} 1"), "{out}");
            assert!(out.contains("metacontroller_sync_in_flight_requests{controller_name=\"my-ctl\",controller_type=\"CompositeController\",url=\"http://h/sync\"} 2"), "{out}");
        }
        let mut out = String::new();
        m.render_prometheus(&mut out);
        let labels = "controller_name=\"my-ctl\",controller_type=\"CompositeController\"";
        for line in [
            "# TYPE metacontroller_sync_requests_total counter".to_owned(),
            format!("metacontroller_sync_requests_total{{code=\"200\",{labels},method=\"post\",url=\"http://h/sync\"}} 1"),
            format!("metacontroller_sync_requests_total{{code=\"500\",{labels},method=\"post\",url=\"http://h/sync\"}} 1"),
            "# TYPE metacontroller_sync_request_duration_histogram_seconds histogram".to_owned(),
            format!("metacontroller_sync_request_duration_histogram_seconds_bucket{{{labels},method=\"post\",url=\"http://h/sync\",le=\"0.025\"}} 0"),
            format!("metacontroller_sync_request_duration_histogram_seconds_bucket{{{labels},method=\"post\",url=\"http://h/sync\",le=\"0.05\"}} 1"),
            format!("metacontroller_sync_request_duration_histogram_seconds_bucket{{{labels},method=\"post\",url=\"http://h/sync\",le=\"10\"}} 1"),
            format!("metacontroller_sync_request_duration_histogram_seconds_bucket{{{labels},method=\"post\",url=\"http://h/sync\",le=\"+Inf\"}} 2"),
            format!("metacontroller_sync_request_duration_histogram_seconds_sum{{{labels},method=\"post\",url=\"http://h/sync\"}} 20.03"),
            format!("metacontroller_sync_request_duration_histogram_seconds_count{{{labels},method=\"post\",url=\"http://h/sync\"}} 2"),
            format!("metacontroller_sync_in_flight_requests{{{labels},url=\"http://h/sync\"}} 0"),
            format!("metacontroller_finalize_in_flight_requests{{{labels},url=\"http://h/fin\"}} 0"),
        ] {
            assert!(out.lines().any(|l| l == line), "missing {line:?} in\n{out}");
        }
        // One HELP/TYPE per family.
        assert_eq!(
            out.matches("# TYPE metacontroller_sync_requests_total")
                .count(),
            1
        );
        // finalize saw no response: its counter family is empty.
        assert!(!out.contains("metacontroller_finalize_requests_total{"));
    }

    #[test]
    fn boundaries_fall_in_their_bucket() {
        let mut h = Histogram::default();
        h.observe(0.005);
        h.observe(0.0051);
        h.observe(10.0);
        h.observe(10.5);
        assert_eq!(h.counts[0], 1);
        assert_eq!(h.counts[1], 1);
        assert_eq!(h.counts[10], 1);
        assert_eq!(h.counts[11], 1);
    }

    #[test]
    fn escapes_and_sanitizes() {
        assert_eq!(labels(&[("a", "x\"y\\z\nw")]), r#"a="x\"y\\z\nw""#);
        assert_eq!(metric_name_part("my-hook.v2"), "my_hook_v2");
    }
}
