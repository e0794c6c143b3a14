//! The sync-loop safety net.
//!
//! A converged object costs nothing: no hook call, no write. If something keeps a sync's own
//! writes from settling (a hook whose answer changes on every call, a field the server keeps
//! rewriting), every write's watch event would start the next sync, as fast as the server
//! answers. This module notices that and slows it down:
//!
//! ```text
//!  watch event ─► echo of the engine's own write?  (the cache already held that state, or
//!                                                   the engine is writing that object now)
//!                   yes: Echo      no: Outside (resets everything for the key)
//!  sync start  ─► more than THRESHOLD echo-started syncs within WINDOW
//!                   → loop: one log line, one Warning event, one metric count, and the key
//!                     waits 1s, then twice as long after each further echo (up to 5 min),
//!                     until an outside change arrives
//! ```
//!
//! Resyncs, retries and the guard's own delayed syncs neither count nor reset. Memory is one
//! small entry per key with recent echo-started syncs; idle entries are pruned.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::events::{reason, EventType, Recorder, Regarding};
use crate::queue::WorkQueue;
use crate::store::{Event, ObjectRef};

/// Echo-started syncs of one key within [`WINDOW`] beyond which the key is looping.
pub const THRESHOLD: u32 = 100;
/// The window [`THRESHOLD`] is counted in.
pub const WINDOW: Duration = Duration::from_secs(10);
/// The first wait once a loop is detected; it doubles with each further echo.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Entries kept before idle ones are pruned.
const PRUNE_ABOVE: usize = 1024;

/// What queued a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// A change the engine did not make (or cannot tell it made).
    Outside,
    /// The watch event of a state the engine itself just wrote.
    Echo,
}

/// Whether a watch event only reports a state the cache already held: the engine cached its
/// own write (`Informer::observe_write`) before the watch delivered it, so the event's new
/// state is not newer than its old one. Adds and deletes are never echoes.
pub fn is_echo(event: &Event) -> bool {
    let (Some(old), Some(new)) = (&event.old, &event.new) else {
        return false;
    };
    if old.metadata.uid != new.metadata.uid {
        return false;
    }
    let rv = |o: &ObjectRef| {
        o.metadata
            .resource_version
            .as_deref()
            .and_then(|v| v.parse::<u64>().ok())
    };
    match (rv(old), rv(new)) {
        (Some(o), Some(n)) => n <= o,
        _ => false,
    }
}

/// The cause of a watch event: an echo when the cache already held the new state, or when
/// the engine was writing that object as the event was applied ([`Event::own_write`]; the
/// watch event can arrive before the write's response). Deletes are never echoes.
pub fn cause_of(event: &Event) -> Cause {
    if is_echo(event) || event.own_write {
        Cause::Echo
    } else {
        Cause::Outside
    }
}

/// What to do with a key a worker just took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sync it now.
    Sync,
    /// A loop was just detected: report it, then retry after the delay.
    Detected {
        /// Echo-started syncs counted in the window.
        syncs: u32,
        /// The wait.
        delay: Duration,
    },
    /// Still looping: retry after the delay.
    Defer(Duration),
}

#[derive(Debug)]
struct Entry {
    /// The causes noted since the key's last sync (`Outside` wins).
    pending: Option<Cause>,
    /// Echo-started syncs since `window_start`.
    streak: u32,
    window_start: Instant,
    /// Set while the key is looping: the current wait.
    backoff: Option<Duration>,
    /// No sync before this.
    deferred_until: Option<Instant>,
    last_seen: Instant,
}

/// Per-controller loop detection state.
#[derive(Debug)]
pub struct LoopGuard {
    threshold: u32,
    window: Duration,
    entries: Mutex<HashMap<String, Entry>>,
    /// The size at which the next insert prunes idle keys; read and written under `entries`'
    /// lock. Doubled past the keys still active after a prune, so a controller with thousands
    /// of active parents does not scan them all on every new key.
    prune_at: AtomicUsize,
}

impl Default for LoopGuard {
    fn default() -> Self {
        LoopGuard::new(THRESHOLD, WINDOW)
    }
}

impl LoopGuard {
    /// A guard that calls more than `threshold` echo-started syncs within `window` a loop.
    pub fn new(threshold: u32, window: Duration) -> Self {
        LoopGuard {
            threshold,
            window,
            entries: Mutex::new(HashMap::new()),
            prune_at: AtomicUsize::new(PRUNE_ABOVE),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records why `key` is being queued. Call it before adding the key to the queue.
    pub fn note(&self, key: &str, cause: Cause) {
        let now = Instant::now();
        let mut entries = self.lock();
        if cause == Cause::Outside && !entries.contains_key(key) {
            // Nothing to reset, and an absent entry already means "sync normally".
            return;
        }
        if entries.len() >= self.prune_at.load(Ordering::Relaxed) && !entries.contains_key(key) {
            let window = self.window;
            entries.retain(|_, e| {
                e.pending.is_some()
                    || e.backoff.is_some()
                    || now.duration_since(e.last_seen) < window
            });
            self.prune_at
                .store(PRUNE_ABOVE.max(2 * entries.len()), Ordering::Relaxed);
        }
        let entry = entries.entry(key.to_string()).or_insert_with(|| Entry {
            pending: None,
            streak: 0,
            window_start: now,
            backoff: None,
            deferred_until: None,
            last_seen: now,
        });
        entry.pending = match (entry.pending, cause) {
            (Some(Cause::Outside), _) | (_, Cause::Outside) => Some(Cause::Outside),
            _ => Some(Cause::Echo),
        };
        entry.last_seen = now;
    }

    /// Decides whether the key a worker just took syncs now.
    pub fn before_sync(&self, key: &str, now: Instant) -> Verdict {
        let mut entries = self.lock();
        let Some(entry) = entries.get_mut(key) else {
            return Verdict::Sync;
        };
        entry.last_seen = now;
        let waiting = entry
            .deferred_until
            .filter(|until| *until > now)
            .map(|until| until - now);
        match entry.pending.take() {
            Some(Cause::Outside) => {
                entries.remove(key);
                Verdict::Sync
            }
            None => match waiting {
                // A resync or retry while the key waits: keep waiting.
                Some(rest) => Verdict::Defer(rest),
                // The wait is over (or there was none): sync.
                None => {
                    entry.deferred_until = None;
                    Verdict::Sync
                }
            },
            Some(Cause::Echo) => {
                if let Some(rest) = waiting {
                    return Verdict::Defer(rest);
                }
                if let Some(backoff) = entry.backoff {
                    // The sync after the last wait wrote again: wait longer.
                    let next = (backoff * 2).min(MAX_BACKOFF);
                    entry.backoff = Some(next);
                    entry.deferred_until = Some(now + next);
                    return Verdict::Defer(next);
                }
                if now.duration_since(entry.window_start) > self.window {
                    entry.window_start = now;
                    entry.streak = 0;
                }
                entry.streak += 1;
                if entry.streak > self.threshold {
                    entry.backoff = Some(FIRST_BACKOFF);
                    entry.deferred_until = Some(now + FIRST_BACKOFF);
                    return Verdict::Detected {
                        syncs: entry.streak,
                        delay: FIRST_BACKOFF,
                    };
                }
                Verdict::Sync
            }
        }
    }

    /// Drops the state of a key whose object is gone.
    pub fn forget(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Keys with state (for tests and bounds).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no key has state.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// Asks `guard` about `key`, which a worker of `controller` just took. When the key must
/// wait, reports a newly detected loop (log, Warning event on `object`, metric), schedules
/// the key after the wait and returns true: the worker then marks it done without syncing.
pub(crate) fn hold_back(
    guard: &LoopGuard,
    queue: &WorkQueue,
    key: &str,
    controller: &str,
    recorder: &Recorder,
    metrics: &crate::metrics::Metrics,
    object: impl FnOnce() -> Option<ObjectRef>,
) -> bool {
    let delay = match guard.before_sync(key, Instant::now()) {
        Verdict::Sync => return false,
        Verdict::Defer(delay) => delay,
        Verdict::Detected { syncs, delay } => {
            metrics.sync_loop_detected(controller);
            tracing::warn!(
                controller,
                object = %key,
                syncs,
                window = ?WINDOW,
                "sync loop: the engine's own writes keep triggering syncs; backing off until something else changes"
            );
            if let Some(obj) = object() {
                recorder.record(
                    Regarding::of(&obj),
                    EventType::Warning,
                    reason::SYNC_LOOP,
                    format!(
                        "Synced {syncs} times within {}s with no change but the controller's own \
                         writes (the hook's answer or a server-set field never settles); syncs are \
                         backed off, from {}s doubling up to {}s, until something else changes",
                        WINDOW.as_secs(),
                        FIRST_BACKOFF.as_secs(),
                        MAX_BACKOFF.as_secs()
                    ),
                );
            }
            delay
        }
    };
    queue.add_after(key.to_string(), delay);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn obj(uid: &str, rv: &str) -> ObjectRef {
        Arc::new(
            serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "a", "namespace": "n", "uid": uid, "resourceVersion": rv}
            }))
            .expect("object"),
        )
    }

    fn ev(old: Option<ObjectRef>, new: Option<ObjectRef>) -> Event {
        Event {
            old,
            new,
            own_write: false,
        }
    }

    #[test]
    fn a_change_marked_as_an_own_write_is_an_echo_after_the_write_finished() {
        // Newer than the cache; the write is over by the time a handler asks: the mark decides.
        let mut event = ev(Some(obj("u", "1")), Some(obj("u", "2")));
        assert_eq!(cause_of(&event), Cause::Outside);
        event.own_write = true;
        assert_eq!(cause_of(&event), Cause::Echo);
    }

    #[test]
    fn echoes_are_states_the_cache_already_held() {
        assert!(is_echo(&ev(Some(obj("u", "5")), Some(obj("u", "5")))));
        // A late event behind a cached write is an echo too.
        assert!(is_echo(&ev(Some(obj("u", "6")), Some(obj("u", "5")))));
        assert!(!is_echo(&ev(Some(obj("u", "5")), Some(obj("u", "6")))));
        assert!(!is_echo(&ev(Some(obj("u", "5")), Some(obj("v", "5")))));
        assert!(!is_echo(&ev(None, Some(obj("u", "5")))));
        assert!(!is_echo(&ev(Some(obj("u", "5")), None)));
        assert!(!is_echo(&ev(Some(obj("u", "x")), Some(obj("u", "x")))));
        assert_eq!(
            cause_of(&ev(Some(obj("u", "5")), Some(obj("u", "5")))),
            Cause::Echo
        );
        assert_eq!(
            cause_of(&ev(Some(obj("u", "5")), Some(obj("u", "6")))),
            Cause::Outside
        );
    }

    fn echo_sync(g: &LoopGuard, now: Instant) -> Verdict {
        g.note("k", Cause::Echo);
        g.before_sync("k", now)
    }

    #[test]
    fn a_short_chain_of_echoes_is_no_loop() {
        let g = LoopGuard::new(3, Duration::from_secs(10));
        let t = Instant::now();
        assert_eq!(g.before_sync("k", t), Verdict::Sync, "no state: sync");
        for i in 0..3 {
            assert_eq!(echo_sync(&g, t + Duration::from_millis(i)), Verdict::Sync);
        }
        // An outside change resets the count.
        g.note("k", Cause::Outside);
        assert_eq!(g.before_sync("k", t), Verdict::Sync);
        assert!(g.is_empty());
        for _ in 0..3 {
            assert_eq!(echo_sync(&g, t), Verdict::Sync);
        }
    }

    #[test]
    fn echoes_spread_beyond_the_window_are_no_loop() {
        let g = LoopGuard::new(3, Duration::from_secs(10));
        let t = Instant::now();
        for i in 0..20u64 {
            assert_eq!(echo_sync(&g, t + Duration::from_secs(4 * i)), Verdict::Sync);
        }
    }

    #[test]
    fn a_loop_is_reported_once_and_backed_off_exponentially_until_an_outside_change() {
        let g = LoopGuard::new(3, Duration::from_secs(10));
        let mut t = Instant::now();
        for _ in 0..3 {
            assert_eq!(echo_sync(&g, t), Verdict::Sync);
        }
        assert_eq!(
            echo_sync(&g, t),
            Verdict::Detected {
                syncs: 4,
                delay: FIRST_BACKOFF
            }
        );
        // A resync or another echo during the wait keeps waiting, without growing it.
        assert_eq!(
            g.before_sync("k", t + Duration::from_millis(400)),
            Verdict::Defer(Duration::from_millis(600))
        );
        assert_eq!(
            echo_sync(&g, t + Duration::from_millis(500)),
            Verdict::Defer(Duration::from_millis(500))
        );
        // The wait is over: one sync, whose echo doubles the wait, and so on up to the cap.
        let mut expect = FIRST_BACKOFF;
        for _ in 0..12 {
            t += expect;
            assert_eq!(g.before_sync("k", t), Verdict::Sync);
            expect = (expect * 2).min(MAX_BACKOFF);
            assert_eq!(echo_sync(&g, t), Verdict::Defer(expect));
        }
        assert_eq!(expect, MAX_BACKOFF);
        // An outside change ends it at once.
        g.note("k", Cause::Outside);
        assert_eq!(g.before_sync("k", t), Verdict::Sync);
        assert_eq!(echo_sync(&g, t), Verdict::Sync);
    }

    #[test]
    fn many_active_keys_are_not_all_scanned_for_every_new_one() {
        // Every key stays active (the window is long), so a prune frees nothing: the next one
        // waits until the map has doubled.
        let g = LoopGuard::new(3, Duration::from_secs(3600));
        for i in 0..(PRUNE_ABOVE * 3) {
            let key = format!("k{i}");
            g.note(&key, Cause::Echo);
            g.before_sync(&key, Instant::now());
            let entries = g.lock().len();
            let prune_at = g.prune_at.load(Ordering::Relaxed);
            assert!(
                entries <= prune_at,
                "{entries} active keys would be scanned on every insert (next prune at {prune_at})"
            );
        }
        assert_eq!(g.len(), PRUNE_ABOVE * 3);
        assert_eq!(g.prune_at.load(Ordering::Relaxed), 4 * PRUNE_ABOVE);
    }

    #[test]
    fn memory_is_bounded_by_pruning_idle_keys() {
        let g = LoopGuard::new(3, Duration::from_millis(1));
        for i in 0..(PRUNE_ABOVE * 3) {
            let key = format!("k{i}");
            g.note(&key, Cause::Echo);
            g.before_sync(&key, Instant::now());
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        assert!(g.len() <= PRUNE_ABOVE + 100, "{} entries", g.len());
        // Outside causes for unknown keys create no state.
        g.forget("k1");
        for i in 0..10 {
            g.note(&format!("new{i}"), Cause::Outside);
        }
        assert!(!g.lock().keys().any(|k| k.starts_with("new")));
    }
}
