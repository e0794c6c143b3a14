//! A per-controller work queue of object keys.
//!
//! Semantics follow the rate-limited work queue Kubernetes controllers use:
//!
//! - a key added several times before a worker takes it is processed once (duplicates collapse);
//! - a key is never handed to two workers at once: a key re-added while it is being processed is
//!   parked and queued again when the worker calls [`WorkQueue::done`];
//! - [`WorkQueue::add_rate_limited`] schedules a retry with a per-key exponential backoff
//!   (5ms doubling up to 1000s), which [`WorkQueue::forget`] resets after a success;
//! - [`WorkQueue::add_after`] schedules a delayed add (resyncs); of several pending delays for the
//!   same key only the earliest is kept.
//!
//! One background task per queue moves due delayed keys into the queue. It holds only a weak
//! reference, so dropping every handle stops it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// First retry delay after a failure.
pub const BASE_DELAY: Duration = Duration::from_millis(5);
/// Largest retry delay after repeated failures.
pub const MAX_DELAY: Duration = Duration::from_secs(1000);

/// The backoff delay before retry number `failures` (0-based): `5ms * 2^failures`, capped.
pub fn backoff_delay(failures: u32) -> Duration {
    // 5ms * 2^18 is already above 1000s; avoid overflow for large counts.
    if failures >= 18 {
        return MAX_DELAY;
    }
    let delay = BASE_DELAY * (1u32 << failures);
    delay.min(MAX_DELAY)
}

#[derive(Default)]
struct State {
    queue: VecDeque<String>,
    /// Keys that are queued, or must be queued again once their processing finishes.
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
    /// Delayed adds ordered by deadline; `seq` keeps entries with equal deadlines distinct.
    waiting: BTreeMap<(Instant, u64), String>,
    waiting_index: HashMap<String, (Instant, u64)>,
    seq: u64,
    shutting_down: bool,
}

impl State {
    fn add(&mut self, key: String) -> bool {
        if self.shutting_down || self.dirty.contains(&key) {
            return false;
        }
        self.dirty.insert(key.clone());
        if self.processing.contains(&key) {
            return false;
        }
        self.queue.push_back(key);
        true
    }

    /// Moves every delayed key whose deadline passed into the queue; returns how many were
    /// queued and the next deadline, if any.
    fn promote_due(&mut self, now: Instant) -> (usize, Option<Instant>) {
        let mut queued = 0;
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.waiting_index.remove(&key);
            if self.add(key) {
                queued += 1;
            }
        }
        (queued, self.waiting.keys().next().map(|(at, _)| *at))
    }
}

struct Inner {
    state: Mutex<State>,
    /// Wakes workers waiting in [`WorkQueue::get`].
    ready: Notify,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the state consistent enough to continue:
        // every mutation is a handful of collection operations.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A cloneable handle to one work queue.
#[derive(Clone)]
pub struct WorkQueue {
    inner: Arc<Inner>,
    timer: Arc<Notify>,
    /// Add and retry counters of a queue created with [`WorkQueue::named`].
    counters: Option<Arc<crate::metrics::QueueCounters>>,
}

impl std::fmt::Debug for WorkQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.inner.lock();
        f.debug_struct("WorkQueue")
            .field("queued", &state.queue.len())
            .field("processing", &state.processing.len())
            .field("waiting", &state.waiting.len())
            .finish()
    }
}

impl WorkQueue {
    /// Creates a queue and spawns its delay task on the current Tokio runtime.
    pub fn new() -> Self {
        let inner = Arc::new(Inner {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
        });
        let timer = Arc::new(Notify::new());
        tokio::spawn(delay_loop(Arc::downgrade(&inner), timer.clone()));
        WorkQueue {
            inner,
            timer,
            counters: None,
        }
    }

    /// Like [`WorkQueue::new`], reporting depth, adds and retries as `workqueue_*{name}`
    /// series of `metrics`.
    pub fn named(name: &str, metrics: &crate::metrics::Metrics) -> Self {
        let mut queue = Self::new();
        let inner = Arc::downgrade(&queue.inner);
        let depth = Box::new(move || inner.upgrade().map(|i| i.lock().queue.len()));
        queue.counters = Some(metrics.register_queue(name, depth));
        queue
    }

    /// Queues `key` unless it is already queued; a key being processed is queued again after.
    pub fn add(&self, key: impl Into<String>) {
        let added = self.inner.lock().add(key.into());
        if added {
            if let Some(counters) = &self.counters {
                counters.add();
            }
            self.inner.ready.notify_one();
        }
    }

    /// Queues `key` once `delay` has passed. Of several pending delays only the earliest counts.
    pub fn add_after(&self, key: impl Into<String>, delay: Duration) {
        let key = key.into();
        if delay.is_zero() {
            self.add(key);
            return;
        }
        let deadline = Instant::now() + delay;
        let mut state = self.inner.lock();
        if state.shutting_down {
            return;
        }
        if let Some(existing) = state.waiting_index.get(&key).copied() {
            if existing.0 <= deadline {
                return;
            }
            state.waiting.remove(&existing);
        }
        state.seq += 1;
        let slot = (deadline, state.seq);
        state.waiting.insert(slot, key.clone());
        state.waiting_index.insert(key, slot);
        drop(state);
        self.timer.notify_one();
    }

    /// Queues `key` after its backoff delay and counts one more failure for it.
    pub fn add_rate_limited(&self, key: impl Into<String>) {
        let key = key.into();
        let delay = {
            let mut state = self.inner.lock();
            let failures = state.failures.entry(key.clone()).or_insert(0);
            let delay = backoff_delay(*failures);
            *failures = failures.saturating_add(1);
            delay
        };
        if let Some(counters) = &self.counters {
            counters.retry();
        }
        self.add_after(key, delay);
    }

    /// Forgets the failure count of `key`, so the next failure starts again at the base delay.
    pub fn forget(&self, key: &str) {
        self.inner.lock().failures.remove(key);
    }

    /// How many times `key` failed since the last [`WorkQueue::forget`].
    pub fn failures(&self, key: &str) -> u32 {
        self.inner.lock().failures.get(key).copied().unwrap_or(0)
    }

    /// Waits for the next key and marks it as being processed. `None` once shut down.
    pub async fn get(&self) -> Option<String> {
        loop {
            let notified = self.inner.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            {
                let mut state = self.inner.lock();
                if state.shutting_down {
                    return None;
                }
                if let Some(key) = state.queue.pop_front() {
                    state.dirty.remove(&key);
                    state.processing.insert(key.clone());
                    let more = !state.queue.is_empty();
                    drop(state);
                    if more {
                        // Pass the wake-up on so an idle worker takes the next key.
                        self.inner.ready.notify_one();
                    }
                    return Some(key);
                }
            }
            notified.await;
        }
    }

    /// Marks `key` as no longer being processed, queueing it again if it was re-added meanwhile.
    pub fn done(&self, key: &str) {
        let requeued = {
            let mut state = self.inner.lock();
            state.processing.remove(key);
            if state.dirty.contains(key) && !state.shutting_down {
                state.queue.push_back(key.to_string());
                true
            } else {
                false
            }
        };
        if requeued {
            self.inner.ready.notify_one();
        }
    }

    /// Number of keys ready to be taken.
    pub fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// Whether no key is ready to be taken.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of keys waiting for a delayed add.
    pub fn waiting(&self) -> usize {
        self.inner.lock().waiting.len()
    }

    /// Stops handing out keys: every pending and future [`WorkQueue::get`] returns `None`.
    pub fn shutdown(&self) {
        {
            let mut state = self.inner.lock();
            state.shutting_down = true;
            state.queue.clear();
            state.waiting.clear();
            state.waiting_index.clear();
        }
        self.inner.ready.notify_waiters();
        self.timer.notify_one();
    }

    /// Whether [`WorkQueue::shutdown`] was called.
    pub fn is_shutting_down(&self) -> bool {
        self.inner.lock().shutting_down
    }
}

impl Default for WorkQueue {
    fn default() -> Self {
        Self::new()
    }
}

async fn delay_loop(inner: Weak<Inner>, timer: Arc<Notify>) {
    loop {
        let notified = timer.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = {
            let Some(inner) = inner.upgrade() else { return };
            let mut state = inner.lock();
            if state.shutting_down {
                return;
            }
            let (queued, next) = state.promote_due(Instant::now());
            drop(state);
            for _ in 0..queued {
                inner.ready.notify_one();
            }
            next
        };
        match next {
            Some(deadline) => {
                tokio::select! {
                    _ = tokio::time::sleep_until(deadline) => {}
                    _ = &mut notified => {}
                }
            }
            None => notified.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn settle() {
        // Let the delay task run after a time advance.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[test]
    fn backoff_doubles_from_5ms_and_caps_at_1000s() {
        assert_eq!(backoff_delay(0), Duration::from_millis(5));
        assert_eq!(backoff_delay(1), Duration::from_millis(10));
        assert_eq!(backoff_delay(2), Duration::from_millis(20));
        assert_eq!(backoff_delay(10), Duration::from_millis(5 * 1024));
        assert_eq!(backoff_delay(17), Duration::from_millis(5 * 131_072));
        assert_eq!(backoff_delay(18), MAX_DELAY);
        assert_eq!(backoff_delay(u32::MAX), MAX_DELAY);
        for n in 0..40 {
            assert!(backoff_delay(n) <= MAX_DELAY);
            assert!(backoff_delay(n + 1) >= backoff_delay(n));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn duplicate_keys_collapse() {
        let q = WorkQueue::new();
        q.add("ns/a");
        q.add("ns/a");
        q.add("ns/b");
        q.add("ns/a");
        assert_eq!(q.len(), 2);
        assert_eq!(q.get().await.as_deref(), Some("ns/a"));
        assert_eq!(q.get().await.as_deref(), Some("ns/b"));
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn key_readded_while_processing_is_processed_again_afterwards() {
        let q = WorkQueue::new();
        q.add("k");
        let key = q.get().await.expect("key");
        q.add("k");
        q.add("k");
        // Not handed out to a second worker while the first still holds it.
        assert!(q.is_empty());
        let second = tokio::time::timeout(Duration::from_millis(50), q.get()).await;
        assert!(second.is_err(), "key must not be processed twice at once");
        q.done(&key);
        assert_eq!(q.len(), 1);
        assert_eq!(q.get().await.as_deref(), Some("k"));
        q.done("k");
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn done_without_readd_does_not_requeue() {
        let q = WorkQueue::new();
        q.add("k");
        let key = q.get().await.expect("key");
        q.done(&key);
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn waiting_worker_is_woken_by_add() {
        let q = WorkQueue::new();
        let q2 = q.clone();
        let worker = tokio::spawn(async move { q2.get().await });
        settle().await;
        q.add("x");
        let got = tokio::time::timeout(Duration::from_secs(1), worker)
            .await
            .expect("woken")
            .expect("joined");
        assert_eq!(got.as_deref(), Some("x"));
    }

    #[tokio::test(start_paused = true)]
    async fn rate_limited_retries_back_off_exponentially_and_forget_resets() {
        let q = WorkQueue::new();
        q.add_rate_limited("k");
        assert_eq!(q.failures("k"), 1);
        settle().await;
        assert!(q.is_empty());
        tokio::time::advance(Duration::from_millis(4)).await;
        settle().await;
        assert!(q.is_empty(), "not before 5ms");
        tokio::time::advance(Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(q.len(), 1, "due at 5ms");
        let k = q.get().await.expect("key");
        q.done(&k);

        q.add_rate_limited("k");
        settle().await;
        tokio::time::advance(Duration::from_millis(9)).await;
        settle().await;
        assert!(q.is_empty(), "second retry waits 10ms");
        tokio::time::advance(Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(q.len(), 1);
        let k = q.get().await.expect("key");
        q.done(&k);

        q.forget("k");
        assert_eq!(q.failures("k"), 0);
        q.add_rate_limited("k");
        settle().await;
        tokio::time::advance(Duration::from_millis(5)).await;
        settle().await;
        assert_eq!(q.len(), 1, "after forget the delay is 5ms again");
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_is_per_key() {
        let q = WorkQueue::new();
        for _ in 0..5 {
            q.add_rate_limited("slow");
        }
        q.add_rate_limited("fast");
        assert_eq!(q.failures("slow"), 5);
        assert_eq!(q.failures("fast"), 1);
        settle().await;
        tokio::time::advance(Duration::from_millis(5)).await;
        settle().await;
        // "slow" keeps the earliest pending deadline (5ms from its first call).
        assert_eq!(q.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_keeps_the_earliest_deadline() {
        let q = WorkQueue::new();
        q.add_after("k", Duration::from_secs(10));
        q.add_after("k", Duration::from_secs(3));
        q.add_after("k", Duration::from_secs(20));
        assert_eq!(q.waiting(), 1);
        settle().await;
        tokio::time::advance(Duration::from_secs(2)).await;
        settle().await;
        assert!(q.is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        settle().await;
        assert_eq!(q.len(), 1);
        assert_eq!(q.waiting(), 0);
        tokio::time::advance(Duration::from_secs(30)).await;
        settle().await;
        assert_eq!(q.len(), 1, "later deadlines were dropped, not queued twice");
    }

    #[tokio::test(start_paused = true)]
    async fn add_after_zero_adds_now_and_delayed_add_collapses_with_queued_key() {
        let q = WorkQueue::new();
        q.add_after("k", Duration::ZERO);
        assert_eq!(q.len(), 1);
        q.add_after("k", Duration::from_millis(1));
        settle().await;
        tokio::time::advance(Duration::from_millis(1)).await;
        settle().await;
        assert_eq!(q.len(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_releases_waiting_workers_and_refuses_work() {
        let q = WorkQueue::new();
        let q2 = q.clone();
        let worker = tokio::spawn(async move { q2.get().await });
        settle().await;
        q.add_after("later", Duration::from_secs(1));
        q.shutdown();
        assert_eq!(worker.await.expect("joined"), None);
        q.add("k");
        assert!(q.is_empty());
        assert_eq!(q.get().await, None);
        assert!(q.is_shutting_down());
    }

    #[tokio::test(start_paused = true)]
    async fn many_workers_never_share_a_key() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let q = WorkQueue::new();
        let active = Arc::new(Mutex::new(HashSet::new()));
        let processed = Arc::new(AtomicUsize::new(0));
        let mut workers = Vec::new();
        for _ in 0..4 {
            let q = q.clone();
            let active = active.clone();
            let processed = processed.clone();
            workers.push(tokio::spawn(async move {
                while let Some(key) = q.get().await {
                    assert!(
                        active.lock().expect("lock").insert(key.clone()),
                        "{key} processed twice at once"
                    );
                    tokio::time::sleep(Duration::from_millis(3)).await;
                    active.lock().expect("lock").remove(&key);
                    processed.fetch_add(1, Ordering::SeqCst);
                    q.done(&key);
                }
            }));
        }
        for round in 0..20 {
            for k in 0..3 {
                q.add(format!("k{k}"));
            }
            tokio::time::sleep(Duration::from_millis(1 + round % 3)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        q.shutdown();
        for w in workers {
            w.await.expect("worker");
        }
        let n = processed.load(Ordering::SeqCst);
        assert!((3..=60).contains(&n), "processed {n}");
    }
}
