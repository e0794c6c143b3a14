//! Shared informers: one list+watch per resource type feeding an indexed [`Store`], shared by
//! every controller that needs that type.
//!
//! ```text
//!  API server ──list/watch──► watch task ──apply──► Store (indexes)
//!                                  │
//!                                  └──(old, new)──► subscribers (enqueue into work queues)
//! ```
//!
//! The watch uses kube-runtime's watcher, which relists after a `410 Expired` and follows
//! bookmarks; a relist is applied with [`Store::reset`] so objects deleted while the watch was
//! down are reported as deletes. [`InformerFactory::informer`] hands out `Arc<Informer>`s; when
//! the last one is dropped the watch stops and the next request starts a fresh one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher::{self, Event as WatchEvent};
use kube::runtime::WatchStreamExt;
use tokio::sync::watch;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::compact::WatchObject;
use crate::discovery::ResourceInfo;
use crate::metrics::{informer_label, Metrics};
use crate::store::{key_of, Event, ObjectRef, Store};
use crate::write::Written;

/// A subscriber callback. It runs on the watch task and must not block (enqueue and return).
pub type Handler = Arc<dyn Fn(&Event) + Send + Sync>;

/// A subscriber: its id, the number of watch batches its replay already covered, its handler.
type Subscriber = (u64, u64, Handler);

struct Shared {
    resource: Arc<ResourceInfo>,
    store: RwLock<Store>,
    /// Watch batches applied to the store so far; counted under the store's write lock.
    applied: AtomicU64,
    subscribers: Mutex<Vec<Subscriber>>,
    next_id: AtomicU64,
    synced: watch::Sender<bool>,
    /// Keys of objects the engine is writing right now, with the number of writes in flight.
    writing: Mutex<HashMap<String, usize>>,
}

impl Shared {
    /// The state of a new informer for `resource`: an empty cache, not yet synced.
    fn new(resource: Arc<ResourceInfo>) -> Self {
        Shared {
            resource,
            store: RwLock::new(Store::new()),
            applied: AtomicU64::new(0),
            subscribers: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            synced: watch::channel(false).0,
            writing: Mutex::new(HashMap::new()),
        }
    }

    /// Delivers batch number `batch` to every subscriber whose replay did not already show
    /// its result (a subscriber that joined after the batch was applied, before this call).
    fn dispatch(&self, events: &[Event], batch: u64) {
        if events.is_empty() {
            return;
        }
        let subscribers = self.subscribers.lock().unwrap_or_else(|p| p.into_inner());
        for event in events {
            for (_, covered, handler) in subscribers.iter() {
                if *covered < batch {
                    handler(event);
                }
            }
        }
    }

    /// Applies one watch batch to the store: the events it yields, whether the initial list
    /// is complete, and the batch's number for [`Shared::dispatch`].
    fn apply(
        &self,
        state: &mut WatchState,
        event: WatchEvent<DynamicObject>,
    ) -> (Vec<Event>, bool, u64) {
        let mut store = self.write();
        let (mut events, init_done) = state.step(&mut store, event);
        // Under the cache's lock: a write whose response is being handled now cannot finish
        // (cache its result, end its guard) in between.
        self.mark_own_writes(&mut events);
        let batch = self.applied.fetch_add(1, Ordering::Relaxed) + 1;
        (events, init_done, batch)
    }

    /// Marks the events about objects the engine is writing right now.
    fn mark_own_writes(&self, events: &mut [Event]) {
        mark_own_writes(
            &self.writing.lock().unwrap_or_else(|p| p.into_inner()),
            events,
        );
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Store> {
        self.store.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// A shared, cached view of one resource type.
pub struct Informer {
    shared: Arc<Shared>,
    _stop: DropGuard,
}

impl std::fmt::Debug for Informer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Informer")
            .field("resource", &self.shared.resource.plural)
            .field("api_version", &self.shared.resource.api_version)
            .finish()
    }
}

/// Keeps a subscriber registered; dropping it unsubscribes.
pub struct Subscription {
    shared: Weak<Shared>,
    id: u64,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .finish()
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared
                .subscribers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|(id, _, _)| *id != self.id);
        }
    }
}

impl Informer {
    /// The resource type this informer watches.
    pub fn resource(&self) -> &Arc<ResourceInfo> {
        &self.shared.resource
    }

    /// Whether the initial list has been delivered.
    pub fn has_synced(&self) -> bool {
        *self.shared.synced.borrow()
    }

    /// Waits until the initial list has been delivered.
    pub async fn wait_synced(&self) {
        let mut rx = self.shared.synced.subscribe();
        // The sender lives as long as `self`, so this only ends when synced.
        let _ = rx.wait_for(|synced| *synced).await;
    }

    /// Registers `handler`. Objects already cached are replayed to it as adds first, so a
    /// subscriber joining late sees every object, and each once: a watch batch applied to the
    /// cache before the replay read it is not delivered to this subscriber again.
    pub fn subscribe(&self, handler: Handler) -> Subscription {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let mut subscribers = self
            .shared
            .subscribers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let (existing, covered) =
            self.read(|s| (s.list_all(), self.shared.applied.load(Ordering::Relaxed)));
        for obj in existing {
            handler(&Event {
                own_write: false,
                old: None,
                new: Some(obj),
            });
        }
        subscribers.push((id, covered, handler));
        Subscription {
            shared: Arc::downgrade(&self.shared),
            id,
        }
    }

    /// Runs `f` with read access to the cache.
    pub fn read<T>(&self, f: impl FnOnce(&Store) -> T) -> T {
        f(&self.shared.store.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// The cached object `namespace`/`name` (namespace empty when cluster-scoped).
    pub fn get(&self, namespace: &str, name: &str) -> Option<ObjectRef> {
        self.read(|s| s.get(namespace, name))
    }

    /// Marks a write of the object under `key` by the engine as in flight until the returned
    /// guard is dropped (after [`Informer::observe_write`]). Its watch event may arrive before
    /// the write's response does; it is then marked [`Event::own_write`].
    pub fn writing(&self, key: String) -> WriteGuard {
        *self
            .shared
            .writing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(key.clone())
            .or_default() += 1;
        WriteGuard {
            shared: self.shared.clone(),
            key,
        }
    }

    /// Records an object the engine itself just wrote, so the next sync sees it even before
    /// the watch delivers it (and writes nothing twice). The cached state is replaced only by
    /// a newer state of the same object; the watch event that follows is still delivered.
    pub fn observe_write(&self, obj: &DynamicObject) {
        let mut store = self.shared.write();
        if newer_than_cached(&store, &key_of(obj), version(obj)) {
            store.apply_written(obj);
        }
    }

    /// [`Informer::observe_write`] for a write made with [`crate::write::Writer`]: the cache
    /// keeps the response's JSON as it came.
    pub fn observe_written(&self, written: Written) {
        let key = written.key();
        let mut store = self.shared.write();
        if newer_than_cached(&store, &key, written.version()) {
            store.apply_written_raw(key, written.into_compact());
        }
    }
}

/// Whether a state the engine wrote, `(uid, resourceVersion)`, is newer than what the cache
/// holds under `key` (or the cache holds nothing there).
fn newer_than_cached(store: &Store, key: &str, written: Version<'_>) -> bool {
    match store.version_of(key) {
        None => true,
        Some(old) => is_newer(old, written),
    }
}

/// An engine write in flight; see [`Informer::writing`].
pub struct WriteGuard {
    shared: Arc<Shared>,
    key: String,
}

impl std::fmt::Debug for WriteGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteGuard")
            .field("key", &self.key)
            .finish()
    }
}

impl Drop for WriteGuard {
    fn drop(&mut self) {
        let mut writing = self
            .shared
            .writing
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = writing.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                writing.remove(&self.key);
            }
        }
    }
}

/// Starts and shares informers, one per resource type.
pub struct InformerFactory {
    client: kube::Client,
    informers: Mutex<HashMap<(String, String), Weak<Informer>>>,
    /// `--cache-flush-interval`: every informer relists this often (None: only when needed).
    flush_interval: Option<Duration>,
    /// Where informers report their state and failed watches.
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for InformerFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InformerFactory").finish_non_exhaustive()
    }
}

impl InformerFactory {
    /// A factory creating watches with `client`, with metrics of its own.
    pub fn new(client: kube::Client) -> Arc<Self> {
        Self::with_flush_interval(client, None, Arc::default())
    }

    /// A factory whose informers relist every `flush_interval`, so a cache can never stay
    /// wrong for longer than that even if a watch event were lost; every informer reports its
    /// state and failed watches to `metrics`.
    pub fn with_flush_interval(
        client: kube::Client,
        flush_interval: Option<Duration>,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(InformerFactory {
            client,
            informers: Mutex::new(HashMap::new()),
            flush_interval: flush_interval.filter(|d| !d.is_zero()),
            metrics,
        })
    }

    /// The metrics registry this factory's informers report to.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The shared informer for `resource`, starting its watch if nobody holds it.
    pub fn informer(&self, resource: &Arc<ResourceInfo>) -> Arc<Informer> {
        let key = (resource.api_version.clone(), resource.plural.clone());
        let mut informers = self.informers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = informers.get(&key).and_then(Weak::upgrade) {
            return existing;
        }
        informers.retain(|_, weak| weak.strong_count() > 0);
        let shared = Arc::new(Shared::new(resource.clone()));
        let stop = CancellationToken::new();
        tokio::spawn(run_watch(
            self.client.clone(),
            shared.clone(),
            stop.clone(),
            self.flush_interval,
            self.metrics.clone(),
        ));
        let informer = Arc::new(Informer {
            shared,
            _stop: stop.drop_guard(),
        });
        informers.insert(key, Arc::downgrade(&informer));
        let weak = Arc::downgrade(&informer);
        self.metrics.register_informer(
            &informer_label(&resource.api_version, &resource.plural),
            Box::new(move || {
                weak.upgrade()
                    .map(|i| (i.has_synced(), i.read(|store| store.len())))
            }),
        );
        informer
    }

    /// Number of informers currently running.
    pub fn running(&self) -> usize {
        self.informers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

/// Marks the events whose new state is an object under `writing` (keys of writes in flight).
fn mark_own_writes(writing: &HashMap<String, usize>, events: &mut [Event]) {
    if writing.is_empty() {
        return;
    }
    for event in events {
        if let Some(new) = &event.new {
            event.own_write = writing.contains_key(&key_of(new));
        }
    }
}

/// An object's `(uid, resourceVersion)`.
type Version<'a> = (Option<&'a str>, Option<&'a str>);

fn version(obj: &DynamicObject) -> Version<'_> {
    (
        obj.metadata.uid.as_deref(),
        obj.metadata.resource_version.as_deref(),
    )
}

/// Whether `new` is a later state of the same object than `old`. Resource versions are
/// compared as numbers when both are (as every Kubernetes server writes them), else assumed
/// newer.
fn is_newer(old: Version<'_>, new: Version<'_>) -> bool {
    if old.0 != new.0 {
        return false;
    }
    let parse = |rv: Option<&str>| rv.and_then(|rv| rv.parse::<u64>().ok());
    match (parse(old.1), parse(new.1)) {
        (Some(a), Some(b)) => b > a,
        _ => true,
    }
}

/// What a watch event does to the cache, as a pure step so it can be tested.
#[derive(Debug, Default)]
struct WatchState {
    /// Objects collected during a relist, applied at `InitDone`.
    relist: Option<Vec<ObjectRef>>,
}

impl WatchState {
    /// Applies one watch event to `store`; returns the subscriber events and whether the
    /// initial list just completed.
    fn step(&mut self, store: &mut Store, event: WatchEvent<DynamicObject>) -> (Vec<Event>, bool) {
        match event {
            WatchEvent::Init => {
                self.relist = Some(Vec::new());
                (Vec::new(), false)
            }
            WatchEvent::InitApply(obj) => {
                self.relist.get_or_insert_with(Vec::new).push(Arc::new(obj));
                (Vec::new(), false)
            }
            WatchEvent::InitDone => {
                let objects = self.relist.take().unwrap_or_default();
                (store.reset(objects), true)
            }
            WatchEvent::Apply(obj) => {
                // Always delivered, even when `observe_write` already cached this state: the
                // engine's own writes must trigger a sync, as they do upstream (a hook sees
                // the child it just created on the next call).
                let obj = Arc::new(obj);
                let key = key_of(&obj);
                // A late event older than a state `observe_write` already cached must not move
                // the cache backwards; the same resourceVersion is the engine's own write
                // arriving, the same content, so it is neither decoded nor stored again.
                let (older, same) = match store.version_of(&key) {
                    Some(cached) => (
                        is_newer(version(&obj), cached),
                        obj.metadata.resource_version.is_some() && cached == version(&obj),
                    ),
                    None => (false, false),
                };
                let old = if older {
                    store.get_key(&key)
                } else if same {
                    store.confirm(&key);
                    Some(obj.clone())
                } else {
                    store.apply(&obj)
                };
                (
                    vec![Event {
                        own_write: false,
                        old,
                        new: Some(obj),
                    }],
                    false,
                )
            }
            WatchEvent::Delete(obj) => {
                let key = key_of(&obj);
                let old = store.delete(&key).unwrap_or_else(|| Arc::new(obj));
                (
                    vec![Event {
                        own_write: false,
                        old: Some(old),
                        new: None,
                    }],
                    false,
                )
            }
        }
    }
}

fn unwrap_event(event: WatchEvent<WatchObject>) -> WatchEvent<DynamicObject> {
    match event {
        WatchEvent::Init => WatchEvent::Init,
        WatchEvent::InitApply(o) => WatchEvent::InitApply(o.0),
        WatchEvent::InitDone => WatchEvent::InitDone,
        WatchEvent::Apply(o) => WatchEvent::Apply(o.0),
        WatchEvent::Delete(o) => WatchEvent::Delete(o.0),
    }
}

async fn run_watch(
    client: kube::Client,
    shared: Arc<Shared>,
    stop: CancellationToken,
    flush_interval: Option<Duration>,
    metrics: Arc<Metrics>,
) {
    let resource = shared.resource.clone();
    let api: Api<WatchObject> = Api::all_with(client, &resource.api_resource());
    let mut state = WatchState::default();
    tracing::debug!(resource = %resource.plural, api_version = %resource.api_version, "informer started");
    // Each pass runs one watcher (list, then watch) until the flush interval passes; the next
    // pass relists and the store reconciles the cache with the list.
    'passes: loop {
        let stream = watcher::watcher(api.clone(), watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let flush = async {
            match flush_interval {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(flush);
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => break 'passes,
                _ = &mut flush => {
                    tracing::debug!(resource = %resource.plural, "flushing the cache: relisting");
                    continue 'passes;
                }
                next = stream.next() => next,
            };
            match next {
                None => break 'passes,
                Some(Ok(event)) => {
                    let (events, init_done, batch) = shared.apply(&mut state, unwrap_event(event));
                    shared.dispatch(&events, batch);
                    if init_done {
                        shared.synced.send_replace(true);
                    }
                }
                Some(Err(error)) => {
                    metrics.watch_failed(&informer_label(&resource.api_version, &resource.plural));
                    tracing::warn!(resource = %resource.plural, api_version = %resource.api_version, %error, "watch failed; retrying");
                }
            }
        }
    }
    tracing::debug!(resource = %resource.plural, api_version = %resource.api_version, "informer stopped");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testutil::cm;

    fn dynobj(v: serde_json::Value) -> DynamicObject {
        serde_json::from_value(v).expect("object")
    }

    /// A watch `Apply` of `v` through `st`.
    fn apply(st: &mut WatchState, store: &mut Store, v: serde_json::Value) -> (Vec<Event>, bool) {
        st.step(store, WatchEvent::Apply(dynobj(v)))
    }

    /// A relist's `InitApply` of `v` through `st`.
    fn init_apply(
        st: &mut WatchState,
        store: &mut Store,
        v: serde_json::Value,
    ) -> (Vec<Event>, bool) {
        st.step(store, WatchEvent::InitApply(dynobj(v)))
    }

    #[test]
    fn newer_means_same_uid_and_larger_resource_version() {
        let a = dynobj(cm("a", "x", "1", "5"));
        let newer = |b: serde_json::Value| is_newer(version(&a), version(&dynobj(b)));
        assert!(newer(cm("a", "x", "1", "6")));
        assert!(!newer(cm("a", "x", "1", "5")));
        assert!(!newer(cm("a", "x", "1", "4")));
        assert!(!newer(cm("a", "x", "2", "9")));
        assert!(newer(cm("a", "x", "1", "opaque")));
    }

    #[test]
    fn a_subscriber_joining_between_a_batch_and_its_dispatch_sees_the_object_once() {
        let shared = Arc::new(Shared::new(ResourceInfo::for_test(
            "v1",
            "ConfigMap",
            "configmaps",
            true,
        )));
        let informer = Informer {
            shared: shared.clone(),
            _stop: CancellationToken::new().drop_guard(),
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler = |seen: Arc<Mutex<Vec<String>>>| -> Handler {
            Arc::new(move |e: &Event| {
                if let Some(o) = e.object() {
                    seen.lock().expect("lock").push(key_of(o));
                }
            })
        };
        let mut state = WatchState::default();
        for ev in [WatchEvent::Init, WatchEvent::InitDone] {
            let (events, _, batch) = shared.apply(&mut state, ev);
            shared.dispatch(&events, batch);
        }
        // The watch applies an add; a controller subscribes before the add is dispatched.
        let (events, _, batch) = shared.apply(
            &mut state,
            WatchEvent::Apply(dynobj(cm("a", "x", "1", "1"))),
        );
        let _early = informer.subscribe(handler(seen.clone()));
        shared.dispatch(&events, batch);
        assert_eq!(
            *seen.lock().expect("lock"),
            ["a/x"],
            "replayed, not delivered again"
        );
        // Later batches reach it.
        let (events, _, batch) = shared.apply(
            &mut state,
            WatchEvent::Apply(dynobj(cm("a", "y", "2", "2"))),
        );
        shared.dispatch(&events, batch);
        assert_eq!(*seen.lock().expect("lock"), ["a/x", "a/y"]);
    }

    #[test]
    fn initial_list_is_buffered_until_init_done() {
        let mut st = WatchState::default();
        let mut store = Store::new();
        assert!(st.step(&mut store, WatchEvent::Init).0.is_empty());
        let (ev, done) = init_apply(&mut st, &mut store, cm("a", "x", "1", "1"));
        assert!(ev.is_empty() && !done);
        assert!(store.is_empty(), "nothing visible before InitDone");
        let (ev, done) = st.step(&mut store, WatchEvent::InitDone);
        assert!(done);
        assert_eq!(ev.len(), 1);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn relist_reports_objects_deleted_while_disconnected() {
        let mut st = WatchState::default();
        let mut store = Store::new();
        apply(&mut st, &mut store, cm("a", "x", "1", "1"));
        apply(&mut st, &mut store, cm("a", "y", "2", "1"));
        st.step(&mut store, WatchEvent::Init);
        init_apply(&mut st, &mut store, cm("a", "y", "2", "1"));
        let (ev, _) = st.step(&mut store, WatchEvent::InitDone);
        assert_eq!(ev.len(), 1);
        assert!(ev[0].new.is_none());
        assert_eq!(key_of(ev[0].old.as_ref().expect("old")), "a/x");
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn apply_and_delete_produce_old_new_pairs() {
        let mut st = WatchState::default();
        let mut store = Store::new();
        let (ev, _) = apply(&mut st, &mut store, cm("a", "x", "1", "1"));
        assert!(ev[0].old.is_none() && ev[0].new.is_some());
        let (ev, _) = apply(&mut st, &mut store, cm("a", "x", "1", "2"));
        assert_eq!(
            ev[0]
                .old
                .as_ref()
                .expect("old")
                .metadata
                .resource_version
                .as_deref(),
            Some("1")
        );
        // The same resourceVersion again (e.g. after observe_write) is still an event.
        let (ev, _) = apply(&mut st, &mut store, cm("a", "x", "1", "2"));
        assert_eq!(ev.len(), 1);
        let (ev, _) = st.step(
            &mut store,
            WatchEvent::Delete(dynobj(cm("a", "x", "1", "3"))),
        );
        assert!(ev[0].new.is_none());
        assert_eq!(
            ev[0]
                .old
                .as_ref()
                .expect("old")
                .metadata
                .resource_version
                .as_deref(),
            Some("2")
        );
        assert!(store.is_empty());
        // Deleting an unknown object still reports it.
        let (ev, _) = st.step(
            &mut store,
            WatchEvent::Delete(dynobj(cm("a", "z", "9", "3"))),
        );
        assert_eq!(ev.len(), 1);
    }

    #[test]
    fn the_watch_event_of_an_own_write_confirms_the_cached_state() {
        let mut st = WatchState::default();
        let mut store = Store::new();
        apply(&mut st, &mut store, cm("a", "x", "1", "1"));
        // The engine's write, cached before its watch event arrives.
        store.apply_written(&dynobj(cm("a", "x", "1", "2")));
        let (ev, _) = apply(&mut st, &mut store, cm("a", "x", "1", "2"));
        assert_eq!(ev.len(), 1, "still delivered");
        let old = ev[0].old.as_ref().expect("old");
        let new = ev[0].new.as_ref().expect("new");
        assert_eq!(old.metadata.resource_version.as_deref(), Some("2"));
        assert!(
            Arc::ptr_eq(old, new),
            "the cached state is not decoded again"
        );
        // Confirmed: a relist that finds the same state reports nothing.
        st.step(&mut store, WatchEvent::Init);
        init_apply(&mut st, &mut store, cm("a", "x", "1", "2"));
        let (ev, _) = st.step(&mut store, WatchEvent::InitDone);
        assert!(ev.is_empty(), "{ev:?}");
        // An unconfirmed write is reported by the relist instead.
        store.apply_written(&dynobj(cm("a", "x", "1", "3")));
        st.step(&mut store, WatchEvent::Init);
        init_apply(&mut st, &mut store, cm("a", "x", "1", "3"));
        let (ev, _) = st.step(&mut store, WatchEvent::InitDone);
        assert_eq!(ev.len(), 1);
    }

    #[test]
    fn changes_to_objects_being_written_are_marked_as_own_writes() {
        let mut st = WatchState::default();
        let mut store = Store::new();
        apply(&mut st, &mut store, cm("a", "x", "1", "1"));
        let mut writing = HashMap::new();
        writing.insert("a/x".to_string(), 1);
        // The watch brings the engine's write before its response: newer than the cache.
        let (mut ev, _) = apply(&mut st, &mut store, cm("a", "x", "1", "2"));
        let (mut other, _) = apply(&mut st, &mut store, cm("a", "y", "2", "3"));
        let (mut gone, _) = st.step(
            &mut store,
            WatchEvent::Delete(dynobj(cm("a", "x", "1", "4"))),
        );
        mark_own_writes(&writing, &mut ev);
        mark_own_writes(&writing, &mut other);
        mark_own_writes(&writing, &mut gone);
        assert!(ev[0].own_write);
        assert!(!other[0].own_write, "another object");
        assert!(!gone[0].own_write, "a delete is never an own write");
    }

    #[test]
    fn a_late_event_does_not_move_the_cache_backwards() {
        let mut st = WatchState::default();
        let mut store = Store::new();
        store.apply_written(&dynobj(cm("a", "x", "1", "5")));
        let (ev, _) = apply(&mut st, &mut store, cm("a", "x", "1", "4"));
        assert_eq!(ev.len(), 1, "still delivered");
        let rv = |o: Option<&ObjectRef>| o.and_then(|o| o.metadata.resource_version.clone());
        assert_eq!(rv(ev[0].old.as_ref()).as_deref(), Some("5"));
        assert_eq!(rv(ev[0].new.as_ref()).as_deref(), Some("4"));
        assert_eq!(rv(store.get_key("a/x").as_ref()).as_deref(), Some("5"));
    }
}
