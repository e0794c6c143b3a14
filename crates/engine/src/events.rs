//! A small Kubernetes event recorder (`events.k8s.io/v1`).
//!
//! Recording never blocks a sync: events go through a bounded channel to one sender task and
//! are dropped when it is full. A [`Limiter`] suppresses repeats of the same event within a
//! window and caps each object's event rate with a token bucket, so a hot error loop cannot
//! flood the API server.

use std::collections::HashMap;
use std::time::Duration;

use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Upstream's event reasons.
pub mod reason {
    /// A controller is starting.
    pub const STARTING: &str = "Starting";
    /// A controller started.
    pub const STARTED: &str = "Started";
    /// A controller is stopping.
    pub const STOPPING: &str = "Stopping";
    /// A controller stopped.
    pub const STOPPED: &str = "Stopped";
    /// A sync failed.
    pub const SYNC_ERROR: &str = "SyncError";
    /// A controller could not be created.
    pub const CREATE_ERROR: &str = "CreateError";
    /// A parent's resource has no status subresource (recorded once per parent).
    pub const NO_STATUS_SUBRESOURCE: &str = "NoStatusSubresource";
    /// A parent kept being synced by the engine's own writes; its syncs are backed off.
    pub const SYNC_LOOP: &str = "SyncLoop";
}

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventType {
    /// Informational.
    Normal,
    /// Something went wrong.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The object an event is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Regarding {
    /// apiVersion of the object.
    pub api_version: String,
    /// Kind of the object.
    pub kind: String,
    /// Namespace; empty for cluster-scoped objects.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID.
    pub uid: String,
}

impl Regarding {
    /// Describes a cached object.
    pub fn of(obj: &DynamicObject) -> Self {
        let types = obj.types.clone().unwrap_or_default();
        Regarding {
            api_version: types.api_version,
            kind: types.kind,
            namespace: obj.metadata.namespace.clone().unwrap_or_default(),
            name: obj.metadata.name.clone().unwrap_or_default(),
            uid: obj.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

/// Repeat suppression and per-object rate limiting.
#[derive(Debug)]
pub struct Limiter {
    window: Duration,
    burst: f64,
    refill_every: Duration,
    last_sent: HashMap<String, Instant>,
    buckets: HashMap<String, (f64, Instant)>,
}

/// Entries kept before old ones are dropped.
const MAX_TRACKED: usize = 4096;

impl Limiter {
    /// Suppresses identical events within `window`; allows `burst` events per object, refilled
    /// by one every `refill_every`.
    pub fn new(window: Duration, burst: u32, refill_every: Duration) -> Self {
        Limiter {
            window,
            burst: f64::from(burst),
            refill_every,
            last_sent: HashMap::new(),
            buckets: HashMap::new(),
        }
    }

    /// Whether an event may be sent now; records it if so.
    pub fn allow(
        &mut self,
        regarding: &Regarding,
        type_: EventType,
        reason: &'static str,
        note: &str,
        now: Instant,
    ) -> bool {
        let object = format!(
            "{}/{}/{}",
            regarding.kind, regarding.namespace, regarding.name
        );
        let key = format!(
            "{}\u{0}{}\u{0}{reason}\u{0}{note}\u{0}{object}",
            regarding.uid,
            type_.as_str()
        );
        if let Some(at) = self.last_sent.get(&key) {
            if now.saturating_duration_since(*at) < self.window {
                return false;
            }
        }
        let (tokens, last) = self.buckets.entry(object).or_insert((self.burst, now));
        let refill = now.saturating_duration_since(*last).as_secs_f64()
            / self.refill_every.as_secs_f64().max(f64::EPSILON);
        *tokens = (*tokens + refill).min(self.burst);
        *last = now;
        if *tokens < 1.0 {
            return false;
        }
        *tokens -= 1.0;
        self.last_sent.insert(key, now);
        self.trim(now);
        true
    }

    fn trim(&mut self, now: Instant) {
        if self.last_sent.len() > MAX_TRACKED {
            let window = self.window;
            self.last_sent
                .retain(|_, at| now.saturating_duration_since(*at) < window);
        }
        if self.buckets.len() > MAX_TRACKED {
            let full_after = self.refill_every.mul_f64(self.burst);
            self.buckets
                .retain(|_, (_, last)| now.saturating_duration_since(*last) < full_after);
        }
        if self.last_sent.len() > MAX_TRACKED {
            self.last_sent.clear();
        }
        if self.buckets.len() > MAX_TRACKED {
            self.buckets.clear();
        }
    }
}

/// Builds the `events.k8s.io/v1` Event body.
pub fn event_body(
    regarding: &Regarding,
    type_: EventType,
    reason: &str,
    note: &str,
    instance: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let namespace = if regarding.namespace.is_empty() {
        "default"
    } else {
        regarding.namespace.as_str()
    };
    let suffix = format!("{:x}", now.timestamp_nanos_opt().unwrap_or_default());
    // Notes are limited to 1kB by the API server.
    let note: String = note.chars().take(1000).collect();
    let mut reg = json!({
        "apiVersion": regarding.api_version,
        "kind": regarding.kind,
        "name": regarding.name,
    });
    if !regarding.namespace.is_empty() {
        reg["namespace"] = json!(regarding.namespace);
    }
    if !regarding.uid.is_empty() {
        reg["uid"] = json!(regarding.uid);
    }
    json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {
            "name": format!("{}.{suffix}", regarding.name),
            "namespace": namespace,
        },
        "eventTime": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "reportingController": "metacontroller",
        "reportingInstance": instance,
        "action": reason,
        "reason": reason,
        "type": type_.as_str(),
        "note": note,
        "regarding": reg,
    })
}

/// Queue size between recorders and the sender task; events beyond it are dropped.
const QUEUE: usize = 256;

/// Records events for the engine. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Recorder {
    tx: mpsc::Sender<(Regarding, EventType, &'static str, String)>,
}

impl Recorder {
    /// Starts the sender task, which ends when every recorder is dropped.
    pub fn start(client: kube::Client, instance: String) -> Self {
        Self::start_limited(client, instance, 25, Duration::from_secs(300))
    }

    /// Like [`Recorder::start`] with the per-object budget set: `burst` events, then one
    /// every `refill_every` (`--events-burst`, `--events-qps`).
    pub fn start_limited(
        client: kube::Client,
        instance: String,
        burst: u32,
        refill_every: Duration,
    ) -> Self {
        let (tx, mut rx) = mpsc::channel::<(Regarding, EventType, &'static str, String)>(QUEUE);
        tokio::spawn(async move {
            let resource = ApiResource {
                group: "events.k8s.io".into(),
                version: "v1".into(),
                api_version: "events.k8s.io/v1".into(),
                kind: "Event".into(),
                plural: "events".into(),
            };
            // Repeats within 10 minutes are dropped; `burst` events per object, then one per
            // `refill_every` (by default 25, then 1 per 5 minutes).
            let mut limiter = Limiter::new(Duration::from_secs(600), burst, refill_every);
            while let Some((regarding, type_, reason, note)) = rx.recv().await {
                if !limiter.allow(&regarding, type_, reason, &note, Instant::now()) {
                    continue;
                }
                let body = event_body(
                    &regarding,
                    type_,
                    reason,
                    &note,
                    &instance,
                    chrono::Utc::now(),
                );
                let namespace = body["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string();
                let event: DynamicObject = match serde_json::from_value(body) {
                    Ok(e) => e,
                    Err(error) => {
                        tracing::debug!(%error, "cannot build event");
                        continue;
                    }
                };
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), &namespace, &resource);
                if let Err(error) = api.create(&PostParams::default(), &event).await {
                    tracing::debug!(%error, reason, "cannot record event");
                }
            }
        });
        Recorder { tx }
    }

    /// Records an event (dropped silently when the queue is full).
    pub fn record(
        &self,
        regarding: Regarding,
        type_: EventType,
        reason: &'static str,
        note: impl Into<String>,
    ) {
        if self
            .tx
            .try_send((regarding, type_, reason, note.into()))
            .is_err()
        {
            tracing::debug!(reason, "event queue full; event dropped");
        }
    }

    /// A recorder whose events go nowhere (for tests of code that records events).
    pub fn disabled() -> Self {
        let (tx, _rx) = mpsc::channel(1);
        Recorder { tx }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(name: &str) -> Regarding {
        Regarding {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: "ns".into(),
            name: name.into(),
            uid: format!("uid-{name}"),
        }
    }

    #[test]
    fn repeats_within_the_window_are_suppressed() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(60), 25, Duration::from_secs(300));
        let a = obj("a");
        assert!(l.allow(&a, EventType::Warning, reason::SYNC_ERROR, "boom", t0));
        assert!(!l.allow(
            &a,
            EventType::Warning,
            reason::SYNC_ERROR,
            "boom",
            t0 + Duration::from_secs(30)
        ));
        assert!(l.allow(
            &a,
            EventType::Warning,
            reason::SYNC_ERROR,
            "other",
            t0 + Duration::from_secs(30)
        ));
        assert!(l.allow(
            &obj("b"),
            EventType::Warning,
            reason::SYNC_ERROR,
            "boom",
            t0
        ));
        assert!(l.allow(
            &a,
            EventType::Warning,
            reason::SYNC_ERROR,
            "boom",
            t0 + Duration::from_secs(61)
        ));
    }

    #[test]
    fn per_object_rate_is_capped_by_a_token_bucket() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(60), 3, Duration::from_secs(10));
        let a = obj("a");
        for i in 0..3 {
            assert!(l.allow(
                &a,
                EventType::Warning,
                reason::SYNC_ERROR,
                &format!("e{i}"),
                t0
            ));
        }
        assert!(!l.allow(&a, EventType::Warning, reason::SYNC_ERROR, "e3", t0));
        assert!(
            l.allow(&obj("b"), EventType::Warning, reason::SYNC_ERROR, "e3", t0),
            "other objects unaffected"
        );
        assert!(!l.allow(
            &a,
            EventType::Warning,
            reason::SYNC_ERROR,
            "e4",
            t0 + Duration::from_secs(5)
        ));
        assert!(l.allow(
            &a,
            EventType::Warning,
            reason::SYNC_ERROR,
            "e5",
            t0 + Duration::from_secs(11)
        ));
    }

    #[test]
    fn a_hot_loop_sends_a_bounded_number_of_events() {
        let t0 = Instant::now();
        let mut l = Limiter::new(Duration::from_secs(600), 25, Duration::from_secs(300));
        let a = obj("a");
        let sent = (0..10_000)
            .filter(|i| {
                l.allow(
                    &a,
                    EventType::Warning,
                    reason::SYNC_ERROR,
                    &format!("attempt {i}"),
                    t0 + Duration::from_millis(*i),
                )
            })
            .count();
        assert_eq!(sent, 25);
    }

    #[test]
    fn event_body_shape() {
        let now = chrono::DateTime::parse_from_rfc3339("2024-05-06T07:08:09.123456Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        let b = event_body(
            &obj("a"),
            EventType::Warning,
            reason::SYNC_ERROR,
            "boom",
            "mc-1",
            now,
        );
        assert_eq!(b["apiVersion"], "events.k8s.io/v1");
        assert_eq!(b["metadata"]["namespace"], "ns");
        assert!(b["metadata"]["name"]
            .as_str()
            .expect("name")
            .starts_with("a."));
        assert_eq!(b["eventTime"], "2024-05-06T07:08:09.123456Z");
        assert_eq!(b["type"], "Warning");
        assert_eq!(b["reason"], "SyncError");
        assert_eq!(b["note"], "boom");
        assert_eq!(b["regarding"]["uid"], "uid-a");
        let mut cluster = obj("c");
        cluster.namespace.clear();
        let b = event_body(
            &cluster,
            EventType::Normal,
            reason::STARTING,
            &"x".repeat(5000),
            "mc",
            now,
        );
        assert_eq!(b["metadata"]["namespace"], "default");
        assert!(b["regarding"].get("namespace").is_none());
        assert_eq!(b["note"].as_str().map(str::len), Some(1000));
    }
}
