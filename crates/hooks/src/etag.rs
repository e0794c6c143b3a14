//! The ETag response cache (RFC 7232), as upstream implements it for hooks.
//!
//! A hook that supports ETags answers `200` with an `ETag` header; the next call for the same
//! object sends `If-None-Match: <etag>`, and when the answer is `304 Not Modified` or
//! `412 Precondition Failed` the cached body is replayed as if the hook had sent it again.
//!
//! Upstream keeps one cache per controller hook, keyed by the request's root object (the parent,
//! or the decorated object) as `(kind, namespace, name)`. Here one [`EtagCache`] serves a whole
//! [`HookClient`](crate::HookClient): entries live in a [`ScopeKey`] (controller, hook name,
//! URL) and are keyed by [`ObjectKey`] within it.
//!
//! Expiry: an entry older than `cache_timeout` is treated as absent; a sweep that drops expired
//! entries runs inline, at most once every `cache_cleanup` (default: `cache_timeout`) per scope,
//! on the next cache access. No background task is spawned. Without a timeout entries do not
//! age out (upstream behaviour) but each scope is capped at [`MAX_ENTRIES_PER_SCOPE`], dropping
//! the oldest entry beyond it.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde_json::Value;

use crate::endpoint::{EtagConfig, HookOwner};

/// Cap on cached responses per controller hook: memory stays bounded even without expiry.
pub const MAX_ENTRIES_PER_SCOPE: usize = 16_384;

/// The cache of one controller hook.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ScopeKey {
    pub owner: HookOwner,
    pub hook: String,
    pub url: String,
}

/// The request's root object, as upstream keys its cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub(crate) kind: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl ObjectKey {
    /// The object of `kind` called `name` in `namespace` (empty when cluster-scoped).
    pub fn new(kind: &str, namespace: &str, name: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }

    /// The root object of a hook request: `parent` (composite, customize, finalize) or
    /// `object` (decorator, v1). `None` when the body has neither.
    pub fn from_request(body: &Value) -> Option<Self> {
        let root = ["parent", "object"]
            .iter()
            .find_map(|k| body.get(*k).filter(|v| v.is_object()))?;
        let s = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or_default().to_owned();
        let meta = root.get("metadata");
        Some(Self {
            kind: s(root.get("kind")),
            namespace: s(meta.and_then(|m| m.get("namespace"))),
            name: s(meta.and_then(|m| m.get("name"))),
        })
    }
}

/// A cached `200` response.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub etag: String,
    pub body: Bytes,
    inserted: Instant,
}

#[derive(Debug)]
struct Scope {
    ttl: Option<Duration>,
    cleanup_every: Option<Duration>,
    next_cleanup: Option<Instant>,
    entries: HashMap<ObjectKey, Entry>,
}

impl Scope {
    fn configure(&mut self, config: &EtagConfig, now: Instant) {
        let (ttl, cleanup_every) = effective_timings(config);
        if self.ttl != ttl || self.cleanup_every != cleanup_every {
            self.ttl = ttl;
            self.cleanup_every = cleanup_every;
            self.next_cleanup = cleanup_every.and_then(|d| now.checked_add(d));
        }
    }

    fn is_expired(&self, entry: &Entry, now: Instant) -> bool {
        self.ttl
            .is_some_and(|ttl| now.saturating_duration_since(entry.inserted) >= ttl)
    }

    fn sweep(&mut self, now: Instant) {
        if let Some(ttl) = self.ttl {
            self.entries
                .retain(|_, e| now.saturating_duration_since(e.inserted) < ttl);
        }
        self.next_cleanup = self.cleanup_every.and_then(|d| now.checked_add(d));
    }
}

/// `(ttl, cleanup interval)` from a config: zero means unset; cleanup defaults to the ttl and
/// is meaningless without one.
fn effective_timings(config: &EtagConfig) -> (Option<Duration>, Option<Duration>) {
    let ttl = config.cache_timeout.filter(|d| !d.is_zero());
    let cleanup = ttl.map(|ttl| config.cache_cleanup.filter(|d| !d.is_zero()).unwrap_or(ttl));
    (ttl, cleanup)
}

/// ETag caches of every hook a client calls.
#[derive(Debug, Default)]
pub(crate) struct EtagCache {
    scopes: Mutex<HashMap<ScopeKey, Scope>>,
}

impl EtagCache {
    fn lock(&self) -> MutexGuard<'_, HashMap<ScopeKey, Scope>> {
        // The map stays consistent even if a holder panicked: every update is a single insert
        // or remove.
        self.scopes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The live entry for `object`, if any.
    pub fn get(&self, scope: &ScopeKey, object: &ObjectKey, now: Instant) -> Option<Entry> {
        let mut scopes = self.lock();
        maintain(&mut scopes, now);
        let s = scopes.get_mut(scope)?;
        let entry = s.entries.get(object)?;
        if s.is_expired(entry, now) {
            s.entries.remove(object);
            return None;
        }
        Some(entry.clone())
    }

    /// Stores a `200` response that carried an `ETag`.
    pub fn put(
        &self,
        scope: &ScopeKey,
        config: &EtagConfig,
        object: ObjectKey,
        etag: String,
        body: Bytes,
        now: Instant,
    ) {
        let mut scopes = self.lock();
        maintain(&mut scopes, now);
        let s = scopes.entry(scope.clone()).or_insert_with(|| Scope {
            ttl: None,
            cleanup_every: None,
            next_cleanup: None,
            entries: HashMap::new(),
        });
        s.configure(config, now);
        if s.entries.len() >= MAX_ENTRIES_PER_SCOPE && !s.entries.contains_key(&object) {
            s.sweep(now);
            if s.entries.len() >= MAX_ENTRIES_PER_SCOPE {
                if let Some(oldest) = s
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.inserted)
                    .map(|(k, _)| k.clone())
                {
                    s.entries.remove(&oldest);
                }
            }
        }
        s.entries.insert(
            object,
            Entry {
                etag,
                body,
                inserted: now,
            },
        );
    }

    /// Number of entries held, expired or not.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().values().map(|s| s.entries.len()).sum()
    }
}

/// Runs the sweeps that are due and forgets scopes left empty by them.
fn maintain(scopes: &mut HashMap<ScopeKey, Scope>, now: Instant) {
    scopes.retain(|_, s| {
        if s.next_cleanup.is_some_and(|at| at <= now) {
            s.sweep(now);
            return !s.entries.is_empty();
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn scope(hook: &str) -> ScopeKey {
        ScopeKey {
            owner: HookOwner::new("CompositeController", "c"),
            hook: hook.into(),
            url: "http://h/sync".into(),
        }
    }

    fn obj(name: &str) -> ObjectKey {
        ObjectKey {
            kind: "Thing".into(),
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    fn cfg(timeout: Option<u64>, cleanup: Option<u64>) -> EtagConfig {
        EtagConfig {
            enabled: true,
            cache_timeout: timeout.map(Duration::from_secs),
            cache_cleanup: cleanup.map(Duration::from_secs),
        }
    }

    #[test]
    fn root_object_from_request() {
        let composite = json!({"parent": {"kind": "K", "metadata": {"name": "n", "namespace": "ns"}}, "children": {}});
        assert_eq!(
            ObjectKey::from_request(&composite),
            Some(ObjectKey {
                kind: "K".into(),
                namespace: "ns".into(),
                name: "n".into()
            })
        );
        let decorator = json!({"object": {"kind": "K", "metadata": {"name": "n"}}});
        assert_eq!(ObjectKey::from_request(&decorator).unwrap().namespace, "");
        assert_eq!(ObjectKey::from_request(&json!({"x": 1})), None);
        assert_eq!(ObjectKey::from_request(&json!({"parent": null})), None);
    }

    #[test]
    fn timings_defaults() {
        assert_eq!(effective_timings(&cfg(None, None)), (None, None));
        assert_eq!(effective_timings(&cfg(None, Some(5))), (None, None));
        assert_eq!(effective_timings(&cfg(Some(0), Some(5))), (None, None));
        let s = Duration::from_secs;
        assert_eq!(
            effective_timings(&cfg(Some(10), None)),
            (Some(s(10)), Some(s(10)))
        );
        assert_eq!(
            effective_timings(&cfg(Some(10), Some(0))),
            (Some(s(10)), Some(s(10)))
        );
        assert_eq!(
            effective_timings(&cfg(Some(10), Some(3))),
            (Some(s(10)), Some(s(3)))
        );
    }

    #[test]
    fn put_get_replace_and_scope_isolation() {
        let c = EtagCache::default();
        let t0 = Instant::now();
        c.put(
            &scope("sync"),
            &cfg(None, None),
            obj("a"),
            "e1".into(),
            Bytes::from_static(b"1"),
            t0,
        );
        assert_eq!(c.get(&scope("sync"), &obj("a"), t0).unwrap().etag, "e1");
        assert!(c.get(&scope("finalize"), &obj("a"), t0).is_none());
        assert!(c.get(&scope("sync"), &obj("b"), t0).is_none());
        c.put(
            &scope("sync"),
            &cfg(None, None),
            obj("a"),
            "e2".into(),
            Bytes::from_static(b"2"),
            t0,
        );
        let e = c.get(&scope("sync"), &obj("a"), t0).unwrap();
        assert_eq!((e.etag.as_str(), &e.body[..]), ("e2", &b"2"[..]));
        // No timeout: never ages out.
        assert!(c
            .get(
                &scope("sync"),
                &obj("a"),
                t0 + Duration::from_secs(1_000_000)
            )
            .is_some());
    }

    #[test]
    fn entries_expire_and_sweep_frees_them() {
        let c = EtagCache::default();
        let t0 = Instant::now();
        let conf = cfg(Some(10), Some(30));
        c.put(
            &scope("sync"),
            &conf,
            obj("a"),
            "e".into(),
            Bytes::new(),
            t0,
        );
        c.put(
            &scope("sync"),
            &conf,
            obj("b"),
            "e".into(),
            Bytes::new(),
            t0 + Duration::from_secs(5),
        );
        assert!(c
            .get(&scope("sync"), &obj("a"), t0 + Duration::from_secs(9))
            .is_some());
        // Expired on read even before the sweep.
        assert!(c
            .get(&scope("sync"), &obj("a"), t0 + Duration::from_secs(10))
            .is_none());
        assert_eq!(c.len(), 1);
        // b expired at 15s but lingers until the sweep at 30s.
        assert!(c
            .get(&scope("x"), &obj("zz"), t0 + Duration::from_secs(20))
            .is_none());
        assert_eq!(c.len(), 1);
        assert!(c
            .get(&scope("x"), &obj("zz"), t0 + Duration::from_secs(30))
            .is_none());
        assert_eq!(c.len(), 0);
        assert!(c.lock().is_empty(), "empty scope dropped");
    }

    #[test]
    fn only_cleanup_set_neither_panics_nor_expires() {
        let c = EtagCache::default();
        let t0 = Instant::now();
        c.put(
            &scope("sync"),
            &cfg(None, Some(1)),
            obj("a"),
            "e".into(),
            Bytes::new(),
            t0,
        );
        assert!(c
            .get(&scope("sync"), &obj("a"), t0 + Duration::from_secs(100))
            .is_some());
    }

    #[test]
    fn only_timeout_set_sweeps_every_timeout() {
        let c = EtagCache::default();
        let t0 = Instant::now();
        c.put(
            &scope("sync"),
            &cfg(Some(2), None),
            obj("a"),
            "e".into(),
            Bytes::new(),
            t0,
        );
        assert_eq!(c.len(), 1);
        c.get(&scope("other"), &obj("a"), t0 + Duration::from_secs(2));
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn scope_is_capped() {
        let c = EtagCache::default();
        let t0 = Instant::now();
        for i in 0..MAX_ENTRIES_PER_SCOPE + 3 {
            let t = t0 + Duration::from_millis(i as u64);
            c.put(
                &scope("sync"),
                &cfg(None, None),
                obj(&i.to_string()),
                "e".into(),
                Bytes::new(),
                t,
            );
        }
        assert_eq!(c.len(), MAX_ENTRIES_PER_SCOPE);
        let later = t0 + Duration::from_secs(3600);
        assert!(
            c.get(&scope("sync"), &obj("0"), later).is_none(),
            "oldest evicted"
        );
        assert!(c.get(&scope("sync"), &obj("3"), later).is_some());
    }
}
