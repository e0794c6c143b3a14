//! Engine metrics, rendered in the Prometheus text format.
//!
//! Series are named as controller-runtime and client-go name theirs, so existing dashboards
//! and alerts keep working:
//!
//! | series | labels | what |
//! |---|---|---|
//! | `controller_runtime_reconcile_total` | `controller`, `result` | syncs by outcome |
//! | `controller_runtime_reconcile_errors_total` | `controller` | failed syncs |
//! | `controller_runtime_reconcile_time_seconds` | `controller` | sync duration histogram |
//! | `controller_runtime_active_workers` | `controller` | syncs in progress |
//! | `workqueue_depth` | `name` | keys ready to be processed |
//! | `workqueue_adds_total` | `name` | keys queued |
//! | `workqueue_retries_total` | `name` | keys re-queued after a failure |
//! | `metacontroller_informer_synced` | `resource` | 1 once the initial list arrived |
//! | `metacontroller_informer_objects` | `resource` | objects in the cache |
//! | `metacontroller_informer_watch_errors_total` | `resource` | failed lists and watches (retried) |
//! | `metacontroller_sync_loop_detected_total` | `controller` | sync loops detected and backed off |
//!
//! One registry per engine, created by whoever runs it ([`crate::EngineOptions::metrics`]) and
//! handed down to the informer factory, the queues and the controllers; the binary renders the
//! same registry on `/metrics`. Live sources (queues, informers) are probed through closures that
//! report `None` once their owner is gone, and then disappear from the output.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Upper bounds of the reconcile duration histogram, in seconds.
const BUCKETS: [f64; 15] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0,
];

/// The outcome of one sync, as controller-runtime labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ReconcileResult {
    /// Synced; nothing scheduled.
    Success,
    /// Synced (or the hook asked to retry) with a delayed resync.
    RequeueAfter,
    /// Failed; retried with backoff.
    Error,
}

impl ReconcileResult {
    fn as_str(self) -> &'static str {
        match self {
            ReconcileResult::Success => "success",
            ReconcileResult::RequeueAfter => "requeue_after",
            ReconcileResult::Error => "error",
        }
    }
}

#[derive(Debug, Default)]
struct ReconcileStats {
    by_result: BTreeMap<ReconcileResult, u64>,
    /// Cumulative counts per bucket of [`BUCKETS`].
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
    active: i64,
}

/// Counters of one named work queue; shared by every handle of the queue.
#[derive(Debug, Default)]
pub struct QueueCounters {
    adds: AtomicU64,
    retries: AtomicU64,
}

impl QueueCounters {
    /// Counts one key queued.
    pub fn add(&self) {
        self.adds.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one key re-queued after a failure.
    pub fn retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reports a queue's current depth, or `None` once the queue is gone.
pub type DepthProbe = Box<dyn Fn() -> Option<usize> + Send + Sync>;

/// Reports an informer's state, `(synced, objects in its cache)`, or `None` once it is gone.
pub type InformerProbe = Box<dyn Fn() -> Option<(bool, usize)> + Send + Sync>;

struct QueueEntry {
    counters: Arc<QueueCounters>,
    depth: Option<DepthProbe>,
}

#[derive(Default)]
struct Inner {
    reconciles: BTreeMap<String, ReconcileStats>,
    queues: BTreeMap<String, QueueEntry>,
    /// Informers by resource label (an informer stopped and started again for one resource
    /// has one probe per incarnation until the old one reports itself gone).
    informers: BTreeMap<String, Vec<InformerProbe>>,
    /// Failed lists and watches by resource label.
    watch_errors: BTreeMap<String, u64>,
    /// Sync loops detected, by controller.
    sync_loops: BTreeMap<String, u64>,
}

/// The engine's metrics registry.
#[derive(Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// The label an informer's series carry: `apps/v1/deployments`, `v1/configmaps`.
pub fn informer_label(api_version: &str, plural: &str) -> String {
    format!("{api_version}/{plural}")
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every mutation is a few map operations; a poisoned lock still holds usable data.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks a sync of `controller` as started; the returned guard records its outcome.
    pub fn reconcile_started(self: &Arc<Self>, controller: &str) -> ReconcileTimer {
        self.lock()
            .reconciles
            .entry(controller.to_string())
            .or_default()
            .active += 1;
        ReconcileTimer {
            metrics: self.clone(),
            controller: controller.to_string(),
            started: std::time::Instant::now(),
            finished: false,
        }
    }

    fn reconcile_finished(
        &self,
        controller: &str,
        result: Option<ReconcileResult>,
        elapsed: Duration,
    ) {
        let mut inner = self.lock();
        let stats = inner.reconciles.entry(controller.to_string()).or_default();
        stats.active -= 1;
        let Some(result) = result else { return };
        *stats.by_result.entry(result).or_default() += 1;
        let seconds = elapsed.as_secs_f64();
        stats.count += 1;
        stats.sum_seconds += seconds;
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                stats.buckets[i] += 1;
            }
        }
    }

    /// The counters of the queue called `name` (kept across restarts of its controller) and
    /// registers `depth` as its depth source.
    pub fn register_queue(&self, name: &str, depth: DepthProbe) -> Arc<QueueCounters> {
        let mut inner = self.lock();
        let entry = inner
            .queues
            .entry(name.to_string())
            .or_insert_with(|| QueueEntry {
                counters: Arc::default(),
                depth: None,
            });
        entry.depth = Some(depth);
        entry.counters.clone()
    }

    /// Follows an informer's sync state and cache size through `probe` while it lives.
    pub fn register_informer(&self, label: &str, probe: InformerProbe) {
        self.lock()
            .informers
            .entry(label.to_string())
            .or_default()
            .push(probe);
    }

    /// Counts one failed list or watch of the resource labelled `label` (see
    /// [`informer_label`]).
    pub fn watch_failed(&self, label: &str) {
        *self
            .lock()
            .watch_errors
            .entry(label.to_string())
            .or_default() += 1;
    }

    /// Counts one sync loop detected by `controller` (see [`crate::loopguard`]).
    pub fn sync_loop_detected(&self, controller: &str) {
        *self
            .lock()
            .sync_loops
            .entry(controller.to_string())
            .or_default() += 1;
    }

    /// Live informers: `(label, synced, objects)`; probes of informers gone are dropped.
    fn informers(&self) -> Vec<(String, bool, usize)> {
        let mut inner = self.lock();
        let mut live = Vec::new();
        inner.informers.retain(|label, probes| {
            let mut first = None;
            probes.retain(|probe| match probe() {
                Some(state) => {
                    first.get_or_insert(state);
                    true
                }
                None => false,
            });
            if let Some((synced, objects)) = first {
                live.push((label.clone(), synced, objects));
            }
            !probes.is_empty()
        });
        live
    }

    /// Whether at least one informer runs and every running informer delivered its initial
    /// list. The controller manager's own informer is the first to start, so this is false
    /// until the engine can see its controllers.
    pub fn informers_synced(&self) -> bool {
        let informers = self.informers();
        !informers.is_empty() && informers.iter().all(|(_, synced, _)| *synced)
    }

    /// Appends every series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let informers = self.informers();
        let inner = self.lock();
        // `write!` into a String cannot fail.
        let _ = render_reconciles(out, &inner.reconciles);
        let queues: Vec<(&String, Option<usize>, &QueueCounters)> = inner
            .queues
            .iter()
            .map(|(name, q)| {
                (
                    name,
                    q.depth.as_ref().and_then(|probe| probe()),
                    &*q.counters,
                )
            })
            .collect();
        let _ = render_queues(out, &queues);
        let _ = render_watch_errors(out, &inner.watch_errors);
        let _ = render_sync_loops(out, &inner.sync_loops);
        drop(inner);
        let _ = render_informers(out, &informers);
    }
}

/// Records a sync's outcome when [`ReconcileTimer::finish`] is called; dropped unfinished
/// (the sync was aborted), it only releases the active-worker count.
#[derive(Debug)]
pub struct ReconcileTimer {
    metrics: Arc<Metrics>,
    controller: String,
    started: std::time::Instant,
    finished: bool,
}

impl ReconcileTimer {
    /// Records the outcome and the elapsed time.
    pub fn finish(mut self, result: ReconcileResult) {
        self.finished = true;
        self.metrics
            .reconcile_finished(&self.controller, Some(result), self.started.elapsed());
    }
}

impl Drop for ReconcileTimer {
    fn drop(&mut self) {
        if !self.finished {
            self.metrics
                .reconcile_finished(&self.controller, None, Duration::ZERO);
        }
    }
}

/// Escapes a label value for the text format.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn render_reconciles(
    out: &mut String,
    reconciles: &BTreeMap<String, ReconcileStats>,
) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP controller_runtime_reconcile_total Total number of reconciliations per controller"
    )?;
    writeln!(out, "# TYPE controller_runtime_reconcile_total counter")?;
    for (controller, stats) in reconciles {
        let c = escape_label(controller);
        for result in [
            ReconcileResult::Success,
            ReconcileResult::RequeueAfter,
            ReconcileResult::Error,
        ] {
            let n = stats.by_result.get(&result).copied().unwrap_or(0);
            writeln!(
                out,
                "controller_runtime_reconcile_total{{controller=\"{c}\",result=\"{}\"}} {n}",
                result.as_str()
            )?;
        }
    }
    writeln!(out, "# HELP controller_runtime_reconcile_errors_total Total number of reconciliation errors per controller")?;
    writeln!(
        out,
        "# TYPE controller_runtime_reconcile_errors_total counter"
    )?;
    for (controller, stats) in reconciles {
        let n = stats
            .by_result
            .get(&ReconcileResult::Error)
            .copied()
            .unwrap_or(0);
        writeln!(
            out,
            "controller_runtime_reconcile_errors_total{{controller=\"{}\"}} {n}",
            escape_label(controller)
        )?;
    }
    writeln!(out, "# HELP controller_runtime_reconcile_time_seconds Length of time per reconciliation per controller")?;
    writeln!(
        out,
        "# TYPE controller_runtime_reconcile_time_seconds histogram"
    )?;
    for (controller, stats) in reconciles {
        let c = escape_label(controller);
        for (bound, n) in BUCKETS.iter().zip(stats.buckets.iter()) {
            writeln!(out, "controller_runtime_reconcile_time_seconds_bucket{{controller=\"{c}\",le=\"{bound}\"}} {n}")?;
        }
        writeln!(
            out,
            "controller_runtime_reconcile_time_seconds_bucket{{controller=\"{c}\",le=\"+Inf\"}} {}",
            stats.count
        )?;
        writeln!(
            out,
            "controller_runtime_reconcile_time_seconds_sum{{controller=\"{c}\"}} {}",
            stats.sum_seconds
        )?;
        writeln!(
            out,
            "controller_runtime_reconcile_time_seconds_count{{controller=\"{c}\"}} {}",
            stats.count
        )?;
    }
    writeln!(
        out,
        "# HELP controller_runtime_active_workers Number of currently used workers per controller"
    )?;
    writeln!(out, "# TYPE controller_runtime_active_workers gauge")?;
    for (controller, stats) in reconciles {
        writeln!(
            out,
            "controller_runtime_active_workers{{controller=\"{}\"}} {}",
            escape_label(controller),
            stats.active.max(0)
        )?;
    }
    Ok(())
}

fn render_queues(
    out: &mut String,
    queues: &[(&String, Option<usize>, &QueueCounters)],
) -> std::fmt::Result {
    writeln!(out, "# HELP workqueue_depth Current depth of workqueue")?;
    writeln!(out, "# TYPE workqueue_depth gauge")?;
    for (name, depth, _) in queues {
        writeln!(
            out,
            "workqueue_depth{{name=\"{}\"}} {}",
            escape_label(name),
            depth.unwrap_or(0)
        )?;
    }
    writeln!(
        out,
        "# HELP workqueue_adds_total Total number of adds handled by workqueue"
    )?;
    writeln!(out, "# TYPE workqueue_adds_total counter")?;
    for (name, _, counters) in queues {
        writeln!(
            out,
            "workqueue_adds_total{{name=\"{}\"}} {}",
            escape_label(name),
            counters.adds.load(Ordering::Relaxed)
        )?;
    }
    writeln!(
        out,
        "# HELP workqueue_retries_total Total number of retries handled by workqueue"
    )?;
    writeln!(out, "# TYPE workqueue_retries_total counter")?;
    for (name, _, counters) in queues {
        writeln!(
            out,
            "workqueue_retries_total{{name=\"{}\"}} {}",
            escape_label(name),
            counters.retries.load(Ordering::Relaxed)
        )?;
    }
    Ok(())
}

fn render_watch_errors(out: &mut String, errors: &BTreeMap<String, u64>) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP metacontroller_informer_watch_errors_total Failed lists and watches of an informer (each is retried)"
    )?;
    writeln!(
        out,
        "# TYPE metacontroller_informer_watch_errors_total counter"
    )?;
    for (label, n) in errors {
        writeln!(
            out,
            "metacontroller_informer_watch_errors_total{{resource=\"{}\"}} {n}",
            escape_label(label)
        )?;
    }
    Ok(())
}

fn render_sync_loops(out: &mut String, loops: &BTreeMap<String, u64>) -> std::fmt::Result {
    writeln!(
        out,
        "# HELP metacontroller_sync_loop_detected_total Objects found syncing in a loop on the controller's own writes, and backed off"
    )?;
    writeln!(
        out,
        "# TYPE metacontroller_sync_loop_detected_total counter"
    )?;
    for (controller, n) in loops {
        writeln!(
            out,
            "metacontroller_sync_loop_detected_total{{controller=\"{}\"}} {n}",
            escape_label(controller)
        )?;
    }
    Ok(())
}

fn render_informers(out: &mut String, informers: &[(String, bool, usize)]) -> std::fmt::Result {
    writeln!(out, "# HELP metacontroller_informer_synced Whether the informer delivered its initial list (1) or not yet (0)")?;
    writeln!(out, "# TYPE metacontroller_informer_synced gauge")?;
    for (label, synced, _) in informers {
        writeln!(
            out,
            "metacontroller_informer_synced{{resource=\"{}\"}} {}",
            escape_label(label),
            u8::from(*synced)
        )?;
    }
    writeln!(
        out,
        "# HELP metacontroller_informer_objects Objects in the informer's cache"
    )?;
    writeln!(out, "# TYPE metacontroller_informer_objects gauge")?;
    for (label, _, objects) in informers {
        writeln!(
            out,
            "metacontroller_informer_objects{{resource=\"{}\"}} {objects}",
            escape_label(label)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Arc<Metrics> {
        Arc::default()
    }

    #[test]
    fn reconciles_are_counted_by_result_with_a_histogram() {
        let m = registry();
        m.reconcile_started("c").finish(ReconcileResult::Success);
        m.reconcile_started("c").finish(ReconcileResult::Error);
        let aborted = m.reconcile_started("c");
        drop(aborted);
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains(
                "controller_runtime_reconcile_total{controller=\"c\",result=\"success\"} 1"
            ),
            "{out}"
        );
        assert!(
            out.contains("controller_runtime_reconcile_total{controller=\"c\",result=\"error\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("controller_runtime_reconcile_errors_total{controller=\"c\"} 1"),
            "{out}"
        );
        assert!(
            out.contains("controller_runtime_reconcile_time_seconds_count{controller=\"c\"} 2"),
            "{out}"
        );
        assert!(
            out.contains(
                "controller_runtime_reconcile_time_seconds_bucket{controller=\"c\",le=\"+Inf\"} 2"
            ),
            "{out}"
        );
        assert!(
            out.contains("controller_runtime_active_workers{controller=\"c\"} 0"),
            "{out}"
        );
    }

    #[test]
    fn queues_report_depth_until_gone_and_keep_counters() {
        let m = registry();
        let depth = Arc::new(3usize);
        let weak = Arc::downgrade(&depth);
        let counters = m.register_queue("q", Box::new(move || weak.upgrade().map(|d| *d)));
        counters.add();
        counters.add();
        counters.retry();
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("workqueue_depth{name=\"q\"} 3"), "{out}");
        assert!(out.contains("workqueue_adds_total{name=\"q\"} 2"), "{out}");
        assert!(
            out.contains("workqueue_retries_total{name=\"q\"} 1"),
            "{out}"
        );
        drop(depth);
        let again = m.register_queue("q", Box::new(|| Some(0)));
        assert!(Arc::ptr_eq(&counters, &again));
        let mut out = String::new();
        m.render(&mut out);
        assert!(out.contains("workqueue_adds_total{name=\"q\"} 2"), "{out}");
    }

    #[test]
    fn watch_errors_are_counted_per_resource() {
        let m = registry();
        m.watch_failed("v1/configmaps");
        m.watch_failed("v1/configmaps");
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains(
                "metacontroller_informer_watch_errors_total{resource=\"v1/configmaps\"} 2"
            ),
            "{out}"
        );
    }

    #[test]
    fn no_informer_means_not_synced() {
        assert!(!registry().informers_synced());
    }

    #[test]
    fn informers_are_reported_until_gone() {
        let m = registry();
        let state = Arc::new(std::sync::Mutex::new((false, 0usize)));
        let weak = Arc::downgrade(&state);
        m.register_informer(
            "v1/pods",
            Box::new(move || weak.upgrade().map(|s| *s.lock().unwrap())),
        );
        assert!(!m.informers_synced());
        *state.lock().unwrap() = (true, 4);
        assert!(m.informers_synced());
        let mut out = String::new();
        m.render(&mut out);
        assert!(
            out.contains("metacontroller_informer_objects{resource=\"v1/pods\"} 4"),
            "{out}"
        );
        drop(state);
        assert!(!m.informers_synced());
        let mut out = String::new();
        m.render(&mut out);
        assert!(!out.contains("v1/pods"), "{out}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
