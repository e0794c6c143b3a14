//! The controller manager: watches CompositeController objects and keeps one running
//! [`Controller`] per object.
//!
//! A controller is (re)started when its object appears or its `metadata.generation` changes,
//! and stopped when the object is deleted. A controller that cannot be built (unknown
//! resource, bad selector, missing sync hook, bad webhook) gets a Warning event and a log
//! line, is retried after every discovery refresh, and never affects the others.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use metacontroller_api::consts::{API_VERSION, COMPOSITE_CONTROLLER_RESOURCE};
use tokio_util::sync::CancellationToken;

use crate::composite::{error_chain, Config, Controller, Services};
use crate::discovery::Discovery;
use crate::events::{reason, EventType, Regarding};
use crate::informer::Informer;
use crate::queue::WorkQueue;
use crate::store::Event;

/// What the manager must do for one CompositeController name.
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

struct Running {
    uid: String,
    generation: i64,
    controller: Controller,
}

/// Runs CompositeControllers.
pub struct Manager {
    services: Services,
    discovery: Arc<Discovery>,
    workers: usize,
    retry_interval: Duration,
    grace: Duration,
    /// Only controllers whose labels match are run (`--target-label-selector`).
    target: Option<metacontroller_merge::LabelSelector>,
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
    /// waiting for the CompositeController resource, `grace` bounds each controller's stop.
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
    pub fn with_target_selector(mut self, selector: metacontroller_merge::LabelSelector) -> Self {
        self.target = (!selector.is_everything()).then_some(selector);
        self
    }

    /// Whether `obj` is in this manager's scope.
    fn in_scope(&self, obj: &kube::api::DynamicObject) -> bool {
        let Some(target) = &self.target else {
            return true;
        };
        let labels = obj.metadata.labels.as_ref();
        target.matches_with(|key| labels.and_then(|l| l.get(key)).map(String::as_str))
    }

    async fn controllers_informer(&self, shutdown: &CancellationToken) -> Option<Arc<Informer>> {
        loop {
            match self
                .discovery
                .resolve(API_VERSION, COMPOSITE_CONTROLLER_RESOURCE)
                .await
            {
                Ok(resource) => return Some(self.services.informers.informer(&resource)),
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "CompositeController resource not served yet; waiting");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return None,
                _ = tokio::time::sleep(self.retry_interval) => {}
            }
        }
    }

    /// Runs until `shutdown`, then stops every controller.
    pub async fn run(self, shutdown: CancellationToken) {
        // DecoratorControllers run alongside, sharing services and discovery.
        let decorators = tokio::spawn(crate::decorator::run_manager(
            self.services.clone(),
            self.discovery.clone(),
            self.workers,
            self.retry_interval,
            self.grace,
            self.target.clone(),
            shutdown.clone(),
        ));
        let Some(informer) = self.controllers_informer(&shutdown).await else {
            let _ = decorators.await;
            return;
        };
        crate::metrics::global().register_informer(&informer);
        let queue = WorkQueue::new();
        let _subscription = {
            let queue = queue.clone();
            informer.subscribe(Arc::new(move |event: &Event| {
                if let Some(obj) = event.object() {
                    queue.add(crate::store::key_of(obj));
                }
            }))
        };
        let invalid: Arc<Mutex<HashSet<String>>> = Arc::default();
        let retry_task = {
            let mut refreshed = self.discovery.refreshed();
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
                        .iter()
                        .cloned()
                        .collect();
                    for name in names {
                        queue.add(name);
                    }
                }
            })
        };

        let mut running: HashMap<String, Running> = HashMap::new();
        loop {
            let key = tokio::select! {
                _ = shutdown.cancelled() => break,
                key = queue.get() => match key { Some(k) => k, None => break },
            };
            self.reconcile(&key, &informer, &mut running, &invalid)
                .await;
            queue.done(&key);
        }
        queue.shutdown();
        retry_task.abort();
        let stops = running.into_values().map(|r| {
            let recorder = self.services.recorder.clone();
            let grace = self.grace;
            async move { r.controller.stop(grace, &recorder).await }
        });
        futures::future::join_all(stops).await;
        let _ = decorators.await;
    }

    async fn reconcile(
        &self,
        name: &str,
        informer: &Informer,
        running: &mut HashMap<String, Running>,
        invalid: &Mutex<HashSet<String>>,
    ) {
        let cached = informer.get("", name).filter(|o| self.in_scope(o));
        let identity = cached.as_ref().map(|o| {
            (
                o.metadata.uid.as_deref().unwrap_or(""),
                o.metadata.generation.unwrap_or(0),
                o.metadata.deletion_timestamp.is_some(),
            )
        });
        let current = running.get(name).map(|r| (r.uid.as_str(), r.generation));
        let action = decide(identity, current);
        let forget_invalid = || {
            invalid
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(name);
        };
        match action {
            ManagerAction::Keep => {
                if cached.is_none() {
                    forget_invalid();
                }
            }
            ManagerAction::Stop => {
                forget_invalid();
                if let Some(r) = running.remove(name) {
                    r.controller.stop(self.grace, &self.services.recorder).await;
                }
            }
            ManagerAction::Start { uid, generation } => {
                if let Some(r) = running.remove(name) {
                    r.controller.stop(self.grace, &self.services.recorder).await;
                }
                let Some(obj) = cached else { return };
                match Config::build(&obj, &self.discovery, &self.services.client).await {
                    Ok(cfg) => {
                        forget_invalid();
                        let controller = Controller::start(cfg, &self.services, self.workers);
                        running.insert(
                            name.to_string(),
                            Running {
                                uid,
                                generation,
                                controller,
                            },
                        );
                    }
                    Err(error) => {
                        let message = error_chain(&error);
                        tracing::warn!(controller = %name, error = %message, "can't start CompositeController");
                        self.services.recorder.record(
                            Regarding::of(&obj),
                            EventType::Warning,
                            reason::CREATE_ERROR,
                            format!("Cannot create controller: {message}"),
                        );
                        invalid
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(name.to_string());
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
