//! The controller manager: watches CompositeController and DecoratorController objects and
//! keeps one running controller per object, through one loop for both kinds
//! ([`ControllerKind`]).
//!
//! A controller is (re)started when its object appears or its `metadata.generation` changes,
//! and stopped when the object is deleted. A controller that cannot be built (unknown
//! resource, bad selector, missing sync hook, bad webhook) gets a Warning event and a log
//! line (once per distinct error), is retried with a growing delay (5 ms doubling) and after
//! every discovery refresh, and never affects the others.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::DynamicObject;
use metacontroller_api::consts::{
    API_VERSION, COMPOSITE_CONTROLLER_RESOURCE, DECORATOR_CONTROLLER_RESOURCE,
};
use metacontroller_merge::LabelSelector;
use tokio_util::sync::CancellationToken;

use crate::composite::{error_chain, Config, Controller, Services};
use crate::decorator::{Decorator, DecoratorConfig};
use crate::discovery::Discovery;
use crate::events::{reason, EventType, Regarding};
use crate::informer::Informer;
use crate::queue::WorkQueue;
use crate::store::{key_of, Event};

/// What the manager must do for one controller object's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManagerAction {
    /// Nothing: the running controller is current.
    Keep,
    /// Stop the running controller (object deleted or being deleted).
    Stop,
    /// (Re)start the controller for this object identity.
    Start {
        /// Object UID.
        uid: String,
        /// Object generation.
        generation: i64,
    },
}

/// Decides the action from the cached object (uid, generation, deleting) and the identity of
/// the running controller, if any.
pub fn decide(cached: Option<(&str, i64, bool)>, running: Option<(&str, i64)>) -> ManagerAction {
    match (cached, running) {
        (None, None) | (Some((_, _, true)), None) => ManagerAction::Keep,
        (None, Some(_)) | (Some((_, _, true)), Some(_)) => ManagerAction::Stop,
        (Some((uid, generation, false)), Some((ruid, rgen)))
            if uid == ruid && generation == rgen =>
        {
            ManagerAction::Keep
        }
        (Some((uid, generation, false)), _) => ManagerAction::Start {
            uid: uid.to_string(),
            generation,
        },
    }
}

/// Why a running controller is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopReason {
    /// Its object is gone from the API or being deleted.
    Deleted,
    /// Its object left this instance's scope (`--target-label-selector`).
    OutOfScope,
    /// The engine is shutting down.
    Shutdown,
}

/// One kind of controller object the manager runs: how to start a controller for an object
/// and how to stop it. Both CompositeController and DecoratorController go through the same
/// [`run_kind`] loop.
pub(crate) trait ControllerKind: Send + Sync + 'static {
    /// A running controller.
    type Running: Send + 'static;

    /// The resource of the controller objects (`compositecontrollers`).
    const RESOURCE: &'static str;
    /// The kind, for logs (`CompositeController`).
    const KIND: &'static str;

    /// Starts a controller for `obj`, replacing `previous` (the controller for an older
    /// generation, if any), which this stops. An error is the message to report.
    fn start(
        &self,
        obj: &DynamicObject,
        previous: Option<Self::Running>,
    ) -> impl std::future::Future<Output = Result<Self::Running, String>> + Send;

    /// Stops a running controller.
    fn stop(
        &self,
        running: Self::Running,
        why: StopReason,
    ) -> impl std::future::Future<Output = ()> + Send;
}

/// What starting and stopping a controller of either kind needs.
#[derive(Clone)]
struct Starter {
    services: Services,
    discovery: Arc<Discovery>,
    workers: usize,
    grace: Duration,
}

/// CompositeControllers: the old controller stops before the new one is built.
struct Composites(Starter);

impl ControllerKind for Composites {
    type Running = Controller;
    const RESOURCE: &'static str = COMPOSITE_CONTROLLER_RESOURCE;
    const KIND: &'static str = "CompositeController";

    async fn start(
        &self,
        obj: &DynamicObject,
        previous: Option<Controller>,
    ) -> Result<Controller, String> {
        let s = &self.0;
        if let Some(previous) = previous {
            previous.stop(s.grace, &s.services.recorder).await;
        }
        let cfg = Config::build(obj, &s.discovery, &s.services.client)
            .await
            .map_err(|e| error_chain(&e))?;
        Ok(Controller::start(cfg, &s.services, s.workers))
    }

    async fn stop(&self, running: Controller, _why: StopReason) {
        running.stop(self.0.grace, &self.0.services.recorder).await;
    }
}

/// DecoratorControllers: the new spec is built first, so the old controller can release its
/// finalizers on exactly the target types the new spec dropped (or keep them all while the
/// new spec is invalid).
struct Decorators(Starter);

impl ControllerKind for Decorators {
    type Running = Decorator;
    const RESOURCE: &'static str = DECORATOR_CONTROLLER_RESOURCE;
    const KIND: &'static str = "DecoratorController";

    async fn start(
        &self,
        obj: &DynamicObject,
        previous: Option<Decorator>,
    ) -> Result<Decorator, String> {
        let s = &self.0;
        let built = DecoratorConfig::build(obj, &s.discovery, &s.services.client).await;
        if let Some(previous) = previous {
            let release = built.as_ref().ok().map(DecoratorConfig::target_types);
            previous.stop(s.grace, &s.services.recorder, release).await;
        }
        let cfg = built.map_err(|e| error_chain(&e))?;
        Ok(Decorator::start(cfg, &s.services, &s.discovery, s.workers))
    }

    async fn stop(&self, running: Decorator, why: StopReason) {
        // A deleted DecoratorController releases its finalizers everywhere; one that merely
        // left this instance's scope, or an engine shutting down, keeps them.
        let release = (why == StopReason::Deleted).then(HashSet::new);
        running
            .stop(self.0.grace, &self.0.services.recorder, release)
            .await;
    }
}

/// Runs CompositeControllers and DecoratorControllers.
pub struct Manager {
    services: Services,
    discovery: Arc<Discovery>,
    workers: usize,
    retry_interval: Duration,
    grace: Duration,
    /// Only controllers whose labels match are run (`--target-label-selector`).
    target: Option<LabelSelector>,
}

impl std::fmt::Debug for Manager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manager")
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Manager {
    /// A manager starting controllers with `workers` workers each; `retry_interval` paces
    /// waiting for the controller resources, `grace` bounds each controller's stop.
    pub fn new(
        services: Services,
        discovery: Arc<Discovery>,
        workers: usize,
        retry_interval: Duration,
        grace: Duration,
    ) -> Self {
        Manager {
            services,
            discovery,
            workers,
            retry_interval,
            grace,
            target: None,
        }
    }

    /// Runs only the controllers whose labels match `selector`; a controller relabelled out
    /// of scope is stopped as if it were deleted.
    pub fn with_target_selector(mut self, selector: LabelSelector) -> Self {
        self.target = (!selector.is_everything()).then_some(selector);
        self
    }

    /// Runs until `shutdown`, then stops every controller.
    pub async fn run(self, shutdown: CancellationToken) {
        let scope = Scope {
            services: self.services.clone(),
            discovery: self.discovery.clone(),
            retry_interval: self.retry_interval,
            target: self.target.clone(),
        };
        let starter = Starter {
            services: self.services,
            discovery: self.discovery,
            workers: self.workers,
            grace: self.grace,
        };
        let composites = Composites(starter.clone());
        let decorators = Decorators(starter);
        let decorators = tokio::spawn(run_kind(decorators, scope.clone(), shutdown.clone()));
        run_kind(composites, scope, shutdown).await;
        let _ = decorators.await;
    }
}

/// What every kind's loop shares.
#[derive(Clone)]
struct Scope {
    services: Services,
    discovery: Arc<Discovery>,
    retry_interval: Duration,
    target: Option<LabelSelector>,
}

impl Scope {
    /// Whether `obj` is in this manager's scope.
    fn in_scope(&self, obj: &DynamicObject) -> bool {
        let Some(target) = &self.target else {
            return true;
        };
        let labels = obj.metadata.labels.as_ref();
        target.matches_with(|key| labels.and_then(|l| l.get(key)).map(String::as_str))
    }

    /// The informer of `resource`, once discovery serves it (`None` on shutdown).
    async fn informer(
        &self,
        resource: &str,
        kind: &str,
        shutdown: &CancellationToken,
    ) -> Option<Arc<Informer>> {
        loop {
            match self.discovery.resolve(API_VERSION, resource).await {
                Ok(resource) => return Some(self.services.informers.informer(&resource)),
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "{kind} resource not served yet; waiting");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(self.retry_interval) => {}
            }
        }
    }
}

/// One controller object's running controller and the identity it was built from.
struct Running<R> {
    uid: String,
    generation: i64,
    controller: R,
}

/// The manager loop of one kind: one running controller per object, (re)started when the
/// object appears or its generation changes, stopped when it goes; an invalid object gets a
/// Warning event and is retried after every discovery refresh.
async fn run_kind<K: ControllerKind>(kind: K, scope: Scope, shutdown: CancellationToken) {
    let Some(informer) = scope.informer(K::RESOURCE, K::KIND, &shutdown).await else {
        return;
    };
    let queue = WorkQueue::new();
    let _subscription = {
        let queue = queue.clone();
        informer.subscribe(Arc::new(move |event: &Event| {
            if let Some(obj) = event.object() {
                queue.add(key_of(obj));
            }
        }))
    };
    // Controllers that could not start, with the error each last reported.
    let invalid: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    let retry_task = {
        let mut refreshed = scope.discovery.refreshed();
        let invalid = invalid.clone();
        let queue = queue.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    changed = refreshed.changed() => if changed.is_err() { return },
                }
                let names: Vec<String> = invalid
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .keys()
                    .cloned()
                    .collect();
                for name in names {
                    queue.add(name);
                }
            }
        })
    };

    let mut running: HashMap<String, Running<K::Running>> = HashMap::new();
    loop {
        let name = tokio::select! {
            _ = shutdown.cancelled() => break,
            key = queue.get() => match key { Some(k) => k, None => break },
        };
        reconcile(&kind, &scope, &name, &informer, &mut running, &invalid).await;
        queue.done(&name);
        // A controller that could not start is retried soon with a growing delay as well as
        // after every discovery refresh: the usual cause is a CRD created together with it
        // and not served yet, and a lookup that misses asks the server again.
        if invalid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains_key(&name)
        {
            queue.add_rate_limited(name);
        } else {
            queue.forget(&name);
        }
    }
    queue.shutdown();
    retry_task.abort();
    let stops = running
        .into_values()
        .map(|r| kind.stop(r.controller, StopReason::Shutdown));
    futures::future::join_all(stops).await;
}

async fn reconcile<K: ControllerKind>(
    kind: &K,
    scope: &Scope,
    name: &str,
    informer: &Informer,
    running: &mut HashMap<String, Running<K::Running>>,
    invalid: &Mutex<HashMap<String, String>>,
) {
    let cached = informer.get("", name).filter(|o| scope.in_scope(o));
    let identity = cached.as_ref().map(|o| {
        (
            o.metadata.uid.as_deref().unwrap_or(""),
            o.metadata.generation.unwrap_or(0),
            o.metadata.deletion_timestamp.is_some(),
        )
    });
    let current = running.get(name).map(|r| (r.uid.as_str(), r.generation));
    let forget_invalid = || {
        invalid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    };
    match decide(identity, current) {
        ManagerAction::Keep => {
            if cached.is_none() {
                forget_invalid();
            }
        }
        ManagerAction::Stop => {
            forget_invalid();
            if let Some(r) = running.remove(name) {
                // Gone from the API (not merely out of this instance's scope)?
                let deleted = informer
                    .get("", name)
                    .is_none_or(|o| o.metadata.deletion_timestamp.is_some());
                let why = if deleted {
                    StopReason::Deleted
                } else {
                    StopReason::OutOfScope
                };
                kind.stop(r.controller, why).await;
            }
        }
        ManagerAction::Start { uid, generation } => {
            let Some(obj) = cached else { return };
            let previous = running.remove(name).map(|r| r.controller);
            match kind.start(&obj, previous).await {
                Ok(controller) => {
                    forget_invalid();
                    running.insert(
                        name.to_string(),
                        Running {
                            uid,
                            generation,
                            controller,
                        },
                    );
                }
                Err(message) => {
                    // Reported once per distinct error, however often it is retried.
                    let new = invalid
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .insert(name.to_string(), message.clone())
                        .is_none_or(|previous| previous != message);
                    if new {
                        tracing::warn!(controller = %name, error = %message, "can't start {}", K::KIND);
                        scope.services.recorder.record(
                            Regarding::of(&obj),
                            EventType::Warning,
                            reason::CREATE_ERROR,
                            format!("Cannot create controller: {message}"),
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_new_and_changed_controllers() {
        assert_eq!(
            decide(Some(("u", 1, false)), None),
            ManagerAction::Start {
                uid: "u".into(),
                generation: 1
            }
        );
        assert_eq!(
            decide(Some(("u", 2, false)), Some(("u", 1))),
            ManagerAction::Start {
                uid: "u".into(),
                generation: 2
            }
        );
        // Deleted and recreated under the same name.
        assert_eq!(
            decide(Some(("v", 1, false)), Some(("u", 1))),
            ManagerAction::Start {
                uid: "v".into(),
                generation: 1
            }
        );
    }

    #[test]
    fn keeps_current_controllers() {
        assert_eq!(
            decide(Some(("u", 1, false)), Some(("u", 1))),
            ManagerAction::Keep
        );
        assert_eq!(decide(None, None), ManagerAction::Keep);
        assert_eq!(decide(Some(("u", 1, true)), None), ManagerAction::Keep);
    }

    #[test]
    fn stops_deleted_controllers() {
        assert_eq!(decide(None, Some(("u", 1))), ManagerAction::Stop);
        assert_eq!(
            decide(Some(("u", 1, true)), Some(("u", 1))),
            ManagerAction::Stop
        );
    }
}
