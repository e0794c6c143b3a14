//! Prometheus metrics named and labelled like kube-apiserver's:
//!
//! - `apiserver_request_total{verb,dry_run,group,version,resource,subresource,scope,component,code}`
//! - `apiserver_longrunning_requests{verb,group,version,resource,subresource,scope,component}`
//! - `apiserver_registered_watchers{group,version,kind}`
//!
//! rendered in the text exposition format at `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a request did, in kube-apiserver's metric vocabulary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RequestInfo {
    /// `GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`, `DELETECOLLECTION`, or the HTTP
    /// method for non-resource requests.
    pub verb: String,
    pub dry_run: bool,
    pub group: String,
    pub version: String,
    pub resource: String,
    pub subresource: String,
    /// `resource` (one object), `namespace` (a namespaced collection), `cluster`, or empty for
    /// non-resource requests.
    pub scope: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct WatcherKey {
    group: String,
    version: String,
    kind: String,
}

/// The server's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(RequestInfo, u16), u64>>,
    longrunning: Mutex<BTreeMap<RequestInfo, i64>>,
    watchers: Mutex<BTreeMap<WatcherKey, i64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Metrics {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Counts a finished (or, for watches, started) request.
    pub fn record_request(&self, info: &RequestInfo, code: u16) {
        *lock(&self.requests)
            .entry((info.clone(), code))
            .or_insert(0) += 1;
    }

    /// Registers a running watch; the returned guard unregisters it when dropped.
    pub fn watch_started(self: &Arc<Self>, info: &RequestInfo, kind: &str) -> WatchGuard {
        *lock(&self.longrunning).entry(info.clone()).or_insert(0) += 1;
        let key = WatcherKey {
            group: info.group.clone(),
            version: info.version.clone(),
            kind: kind.to_string(),
        };
        *lock(&self.watchers).entry(key.clone()).or_insert(0) += 1;
        WatchGuard {
            metrics: Arc::clone(self),
            info: info.clone(),
            key,
        }
    }

    /// The number of running watches (all types).
    pub fn watch_count(&self) -> i64 {
        lock(&self.watchers).values().sum()
    }

    /// The metrics in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, dry run value, group, version, resource, scope, component, and HTTP response code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        for ((info, code), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{code=\"{code}\",component=\"apiserver\",dry_run=\"{}\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"}} {n}",
                if info.dry_run { "All" } else { "" },
                esc(&info.group),
                esc(&info.resource),
                esc(&info.scope),
                esc(&info.subresource),
                esc(&info.verb),
                esc(&info.version),
            );
        }
        out.push_str("# HELP apiserver_longrunning_requests Gauge of all active long-running apiserver requests broken out by verb, group, version, resource, scope and component.\n");
        out.push_str("# TYPE apiserver_longrunning_requests gauge\n");
        for (info, n) in lock(&self.longrunning).iter() {
            let _ = writeln!(
                out,
                "apiserver_longrunning_requests{{component=\"apiserver\",group=\"{}\",resource=\"{}\",scope=\"{}\",subresource=\"{}\",verb=\"{}\",version=\"{}\"}} {n}",
                esc(&info.group),
                esc(&info.resource),
                esc(&info.scope),
                esc(&info.subresource),
                esc(&info.verb),
                esc(&info.version),
            );
        }
        out.push_str("# HELP apiserver_registered_watchers Number of currently registered watchers for a given resources\n");
        out.push_str("# TYPE apiserver_registered_watchers gauge\n");
        for (k, n) in lock(&self.watchers).iter() {
            let _ = writeln!(
                out,
                "apiserver_registered_watchers{{group=\"{}\",kind=\"{}\",version=\"{}\"}} {n}",
                esc(&k.group),
                esc(&k.kind),
                esc(&k.version),
            );
        }
        out
    }
}

/// Keeps a watch counted in the gauges while alive.
#[derive(Debug)]
pub struct WatchGuard {
    metrics: Arc<Metrics>,
    info: RequestInfo,
    key: WatcherKey,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        if let Some(n) = lock(&self.metrics.longrunning).get_mut(&self.info) {
            *n -= 1;
        }
        if let Some(n) = lock(&self.metrics.watchers).get_mut(&self.key) {
            *n -= 1;
        }
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(verb: &str) -> RequestInfo {
        RequestInfo {
            verb: verb.into(),
            group: "apps".into(),
            version: "v1".into(),
            resource: "deployments".into(),
            scope: "namespace".into(),
            ..Default::default()
        }
    }

    #[test]
    fn counts_requests_and_watchers() {
        let m = Metrics::new();
        m.record_request(&info("LIST"), 200);
        m.record_request(&info("LIST"), 200);
        m.record_request(&info("POST"), 201);
        let g = m.watch_started(&info("WATCH"), "Deployment");
        let text = m.render();
        assert!(text.contains("apiserver_request_total{code=\"200\",component=\"apiserver\",dry_run=\"\",group=\"apps\",resource=\"deployments\",scope=\"namespace\",subresource=\"\",verb=\"LIST\",version=\"v1\"} 2"), "{text}");
        assert!(text.contains("verb=\"POST\",version=\"v1\"} 1"));
        assert!(text.contains(
            "apiserver_registered_watchers{group=\"apps\",kind=\"Deployment\",version=\"v1\"} 1"
        ));
        assert!(text.contains("apiserver_longrunning_requests{component=\"apiserver\",group=\"apps\",resource=\"deployments\",scope=\"namespace\",subresource=\"\",verb=\"WATCH\",version=\"v1\"} 1"));
        assert_eq!(m.watch_count(), 1);
        drop(g);
        assert_eq!(m.watch_count(), 0);
        assert!(m.render().contains(
            "apiserver_registered_watchers{group=\"apps\",kind=\"Deployment\",version=\"v1\"} 0"
        ));
    }

    #[test]
    fn escapes_label_values() {
        assert_eq!(esc("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
