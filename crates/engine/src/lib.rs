//! The Metacontroller engine: runs CompositeControllers against any Kubernetes API server.
//!
//! ```text
//!  discovery ─► shared informers (one watch per resource type, indexed caches)
//!                  │ (old, new) events
//!                  ▼
//!  per-controller work queue (dedupe, per-key backoff, delayed resync)
//!                  │ key
//!                  ▼
//!  reconcile: claim children ─► sync/finalize hook ─► apply children ─► status, finalizer
//! ```
//!
//! The engine only speaks the Kubernetes API through `kube`, so it behaves the same against a
//! real cluster and the embedded development server. Decisions live in pure modules
//! ([`claim`], [`children`], [`parent`], [`queue`], [`store`]); [`composite`] and [`manager`]
//! do the I/O. Entry point: [`run`].
//!
//! DecoratorControllers ([`decorator`]) reuse everything below the reconcile: discovery, the
//! shared informers and their owner index, the work queue, the event recorder, webhook
//! resolution and the children plan. What differs is the claim (attachments are tracked by
//! the `metacontroller.k8s.io/decorator-controller` annotation instead of a selector) and the
//! target write (labels, annotations and status patches instead of a status replacement).
//! Both kinds gather related objects through the customize hook ([`related`]).

pub mod children;
pub mod claim;
pub mod compact;
pub mod composite;
pub mod credentials;
pub mod decorator;
pub mod discovery;
pub mod events;
pub mod informer;
pub mod loopguard;
pub mod manager;
pub mod metrics;
pub mod parent;
pub mod queue;
pub mod related;
pub mod revision;
pub mod rollout;
pub mod ssa;
pub mod store;
pub mod webhook;
pub mod write;

use std::time::Duration;

use tokio_util::sync::CancellationToken;

pub use composite::{Config, Controller, Services, SyncError};
pub use discovery::{Discovery, DiscoveryError, ResourceInfo};
pub use informer::{Informer, InformerFactory};
pub use manager::Manager;
pub use queue::WorkQueue;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How often discovery is refreshed (new CRDs, retrying invalid controllers).
    pub discovery_interval: Duration,
    /// Workers per controller.
    pub workers: usize,
    /// How long shutdown waits for in-flight syncs.
    pub shutdown_timeout: Duration,
    /// `reportingInstance` of recorded events.
    pub reporting_instance: String,
    /// The hook client (share it to expose its metrics).
    pub hook_client: metacontroller_hooks::HookClient,
    /// Run only controllers whose labels match (`--target-label-selector`); `None` runs all.
    pub target_label_selector: Option<metacontroller_merge::LabelSelector>,
    /// Events recorded per object before rate limiting starts (`--events-burst`).
    pub events_burst: u32,
    /// Rate of events per object once the burst is spent (`--events-qps`).
    pub events_qps: f64,
    /// How often informers relist (`--cache-flush-interval`); `None` never forces a relist.
    /// Accepted for compatibility; watches relist on their own after expiry.
    pub cache_flush_interval: Option<Duration>,
    /// Where the engine records its metrics; share it to render them (`/metrics`).
    pub metrics: std::sync::Arc<metrics::Metrics>,
    /// How children are written (`--apply-strategy`).
    pub apply: children::ApplyMode,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            discovery_interval: Duration::from_secs(30),
            workers: 5,
            shutdown_timeout: Duration::from_secs(30),
            reporting_instance: "metacontroller".to_string(),
            hook_client: metacontroller_hooks::HookClient::new(),
            target_label_selector: None,
            events_burst: 25,
            events_qps: 1.0 / 300.0,
            cache_flush_interval: None,
            metrics: Default::default(),
            apply: children::ApplyMode::Dynamic,
        }
    }
}

/// Errors that end the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The manager task panicked.
    #[error("controller manager failed")]
    ManagerFailed(#[source] tokio::task::JoinError),
}

/// Runs the engine until `shutdown` is cancelled, then stops every controller, waiting up to
/// `opts.shutdown_timeout` for in-flight syncs.
pub async fn run(
    client: kube::Client,
    opts: EngineOptions,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let discovery = Discovery::new(client.clone());
    let refresher = tokio::spawn(
        discovery
            .clone()
            .run(opts.discovery_interval, shutdown.child_token()),
    );
    let services = Services {
        discovery: discovery.clone(),
        informers: InformerFactory::with_flush_interval(
            client.clone(),
            opts.cache_flush_interval,
            opts.metrics.clone(),
        ),
        hooks: opts.hook_client.clone(),
        recorder: events::Recorder::start_limited(
            client.clone(),
            opts.reporting_instance.clone(),
            opts.events_burst,
            events_refill(opts.events_qps),
        ),
        client,
        apply: opts.apply.clone(),
    };
    let mut manager = Manager::new(
        services,
        discovery,
        opts.workers,
        opts.discovery_interval,
        opts.shutdown_timeout,
    );
    if let Some(selector) = opts.target_label_selector.clone() {
        manager = manager.with_target_selector(selector);
    }
    tracing::info!(workers = opts.workers, "engine started");
    let result = tokio::spawn(manager.run(shutdown.clone())).await;
    shutdown.cancel();
    let _ = refresher.await;
    tracing::info!("engine stopped");
    result.map_err(Error::ManagerFailed)
}

/// The interval between events once the burst is spent, from a rate in events per second;
/// a rate of zero or less never refills (a day between events).
fn events_refill(qps: f64) -> Duration {
    if qps.is_finite() && qps > 0.0 {
        Duration::from_secs_f64((1.0 / qps).min(86_400.0))
    } else {
        Duration::from_secs(86_400)
    }
}
