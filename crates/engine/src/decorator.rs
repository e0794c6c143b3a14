//! The DecoratorController: one running instance per DecoratorController object (the
//! [`crate::manager`] starts and stops them).
//!
//! ```text
//!  target informers ─────┐                         ┌─► finalizer (only with a finalize hook)
//!  attachment informers ─┼─► work queue ─► worker ─┼─► customize ─► related objects
//!  related informers ────┘                         ├─► sync or finalize hook
//!                                                  ├─► labels, annotations, status (if changed)
//!                                                  └─► attachments (create / update / delete)
//! ```
//!
//! Targets are existing objects the controller does not own, chosen by a label selector and
//! an annotation selector per resource type. Attachments are the children the hook asks for;
//! they carry a controller ownerReference to the target and the annotation
//! `metacontroller.k8s.io/decorator-controller: <name>`, and orphans are never adopted.
//! When a DecoratorController is deleted, the finalizers it put on targets are removed so no
//! target hangs in deletion.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{DynamicObject, Patch, PatchParams};
use metacontroller_api::consts::DECORATOR_CONTROLLER_ANNOTATION;
use metacontroller_api::hook::{DecoratorHookRequestRef, DecoratorHookResponse, ObjectMap};
use metacontroller_api::DecoratorController;
use metacontroller_hooks::HookOwner;
use metacontroller_merge::selector::LabelSelector;
use serde_json::{json, Map, Value};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::children::{self, ChildAction, ChildType, DesiredContext, ObservedChild};
use crate::composite::{
    api_err, code_of, describe, error_chain, resolve_target, ConfigError, HookTarget, Services,
    SyncError,
};
use crate::discovery::{Discovery, ResourceInfo};
use crate::events::{reason, EventType, Recorder, Regarding};
use crate::informer::{Handler, Informer, Subscription};
use crate::loopguard::{Cause, LoopGuard};
use crate::parent::{self, FinalizerAction, HookChoice};
use crate::queue::WorkQueue;
use crate::related::{self, Customizer};
use crate::store::{object_key, Event};

/// One kind of object to decorate.
#[derive(Debug, Clone)]
pub struct TargetType {
    /// The resource.
    pub resource: Arc<ResourceInfo>,
    /// `labelSelector` (everything when absent).
    pub labels: LabelSelector,
    /// `annotationSelector` (everything when absent).
    pub annotations: LabelSelector,
    /// `ignoreStatusChanges`.
    pub ignore_status_changes: bool,
}

impl TargetType {
    /// Whether the object matches both selectors.
    pub fn selects(&self, obj: &DynamicObject) -> bool {
        let labels = obj.metadata.labels.as_ref();
        let annotations = obj.metadata.annotations.as_ref();
        self.labels
            .matches_with(|k| labels.and_then(|l| l.get(k)).map(String::as_str))
            && self
                .annotations
                .matches_with(|k| annotations.and_then(|a| a.get(k)).map(String::as_str))
    }
}

/// A validated, resolved DecoratorController.
#[derive(Debug)]
pub struct DecoratorConfig {
    /// The controller's name.
    pub name: String,
    /// The controller object as sent to hooks.
    pub controller: Value,
    /// The controller's identity, for events about it.
    pub regarding: Regarding,
    /// The kinds of objects to decorate.
    pub targets: Vec<TargetType>,
    /// The attachment kinds.
    pub attachments: Vec<ChildType>,
    /// `resyncPeriodSeconds`.
    pub resync_period: Option<Duration>,
    /// The sync hook; a decorator may have only a finalize hook (nothing to do on live
    /// targets but hold the finalizer).
    pub sync_hook: Option<HookTarget>,
    /// The finalize hook, if any.
    pub finalize_hook: Option<HookTarget>,
    /// The customize hook, if any.
    pub customize_hook: Option<HookTarget>,
    /// `metacontroller.io/decoratorcontroller-<name>`.
    pub finalizer: String,
}

impl DecoratorConfig {
    /// The target resource types, as [`Decorator::stop`] takes them to keep finalizers.
    pub fn target_types(&self) -> HashSet<String> {
        self.targets.iter().map(|t| type_key(&t.resource)).collect()
    }

    /// Validates a DecoratorController object and resolves its resources and hooks.
    pub async fn build(
        raw: &DynamicObject,
        discovery: &Discovery,
        client: &kube::Client,
    ) -> Result<DecoratorConfig, ConfigError> {
        let value = serde_json::to_value(raw).map_err(ConfigError::Decode)?;
        let dc: DecoratorController =
            serde_json::from_value(value.clone()).map_err(ConfigError::Decode)?;
        let spec = &dc.spec;
        let name = dc.name().to_string();
        let owner = HookOwner::new("DecoratorController", name.clone());
        if spec.sync_hook().is_none() && spec.finalize_hook().is_none() {
            return Err(ConfigError::NoSyncHook);
        }
        let configs = &spec.endpoint_configs;
        let sync_hook = match spec.sync_hook() {
            Some(h) => Some(resolve_target("sync", h, owner.clone(), configs, client).await?),
            None => None,
        };
        let finalize_hook = match spec.finalize_hook() {
            Some(h) => Some(resolve_target("finalize", h, owner.clone(), configs, client).await?),
            None => None,
        };
        let customize_hook = match spec.customize_hook() {
            Some(h) => Some(resolve_target("customize", h, owner, configs, client).await?),
            None => None,
        };
        let resolve = |role: &'static str, api_version: String, resource: String| {
            crate::composite::resolve_watchable(discovery, role, api_version, resource)
        };
        let mut targets = Vec::with_capacity(spec.resources.len());
        for rule in &spec.resources {
            let resource =
                resolve("parent", rule.api_version.clone(), rule.resource.clone()).await?;
            let labels = match &rule.label_selector {
                Some(sel) => {
                    let json = serde_json::to_value(sel).map_err(ConfigError::Decode)?;
                    LabelSelector::from_json(&json).map_err(ConfigError::Selector)?
                }
                None => LabelSelector::everything(),
            };
            let annotations = match &rule.annotation_selector {
                Some(sel) => {
                    let json = serde_json::to_value(sel).map_err(ConfigError::Decode)?;
                    LabelSelector::from_json_with_key(&json, "matchAnnotations")
                        .map_err(ConfigError::Selector)?
                }
                None => LabelSelector::everything(),
            };
            targets.push(TargetType {
                resource,
                labels,
                annotations,
                ignore_status_changes: rule.ignore_status_changes.unwrap_or(false),
            });
        }
        let mut attachments = Vec::with_capacity(spec.attachments.len());
        for rule in &spec.attachments {
            let resource =
                resolve("child", rule.api_version.clone(), rule.resource.clone()).await?;
            attachments.push(ChildType {
                resource,
                method: rule.update_method(),
            });
        }
        Ok(DecoratorConfig {
            finalizer: dc.finalizer_name(),
            regarding: Regarding::of(raw),
            controller: value,
            resync_period: spec.resync_period(),
            name,
            targets,
            attachments,
            sync_hook,
            finalize_hook,
            customize_hook,
        })
    }

    /// Whether the controller cares about `obj` of target type `t`: selected, or still
    /// holding our finalizer.
    fn wants(&self, t: &TargetType, obj: &DynamicObject) -> bool {
        parent::has_finalizer(obj, &self.finalizer) || t.selects(obj)
    }

    /// The target type an attachment's controller reference points at.
    fn target_for_owner(&self, api_version: &str, kind: &str) -> Option<usize> {
        let (group, _) = crate::discovery::split_api_version(api_version);
        self.targets
            .iter()
            .position(|t| t.resource.kind == kind && t.resource.group == group)
    }
}

/// Identifies a resource type across controller generations.
fn type_key(resource: &ResourceInfo) -> String {
    format!("{}/{}", resource.api_version, resource.plural)
}

/// The work-queue key of a target: `<type index>:<namespace/name>`.
fn queue_key(type_index: usize, object_key: &str) -> String {
    format!("{type_index}:{object_key}")
}

fn split_queue_key(key: &str) -> Option<(usize, &str)> {
    let (i, rest) = key.split_once(':')?;
    Some((i.parse().ok()?, rest))
}

/// The entries of a label or annotation map that differ from what the hook asks for: a
/// value to set, or `null` to remove a present key. Empty when nothing changes.
pub fn string_map_patch(
    current: Option<&BTreeMap<String, String>>,
    wanted: &BTreeMap<String, Option<String>>,
) -> Map<String, Value> {
    let mut patch = Map::new();
    for (k, v) in wanted {
        let now = current.and_then(|c| c.get(k));
        match v {
            Some(v) if now != Some(v) => {
                patch.insert(k.clone(), Value::String(v.clone()));
            }
            None if now.is_some() => {
                patch.insert(k.clone(), Value::Null);
            }
            _ => {}
        }
    }
    patch
}

/// Adds `metacontroller.k8s.io/decorator-controller: <name>` to a desired attachment.
fn mark_attachment(obj: &mut Value, name: &str) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = meta
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if !annotations.is_object() {
        *annotations = Value::Object(Map::new());
    }
    if let Some(a) = annotations.as_object_mut() {
        a.insert(
            DECORATOR_CONTROLLER_ANNOTATION.to_string(),
            Value::String(name.to_string()),
        );
    }
}

fn is_our_attachment(obj: &DynamicObject, name: &str) -> bool {
    obj.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DECORATOR_CONTROLLER_ANNOTATION))
        .is_some_and(|v| v == name)
}

struct Syncer {
    cfg: Arc<DecoratorConfig>,
    client: kube::Client,
    hooks: metacontroller_hooks::HookClient,
    recorder: Recorder,
    /// How attachments are written.
    apply: children::ApplyMode,
    targets: Vec<Arc<Informer>>,
    attachments: Vec<Arc<Informer>>,
    customizer: Option<Arc<Customizer>>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Backs off targets whose syncs only ever follow the engine's own writes.
    guard: Arc<LoopGuard>,
}

impl Syncer {
    async fn patch_target(
        &self,
        t: &TargetType,
        informer: &Informer,
        obj: &DynamicObject,
        patch: &Value,
        status: bool,
        action: &str,
    ) -> Result<DynamicObject, SyncError> {
        let writer = crate::write::Writer::new(
            &self.client,
            &t.resource,
            obj.metadata.namespace.as_deref().unwrap_or(""),
        );
        let name = obj.metadata.name.as_deref().unwrap_or("");
        let params = PatchParams::default();
        let _writing = informer.writing(crate::store::key_of(obj));
        let result = if status {
            writer
                .patch_status(name, &params, &Patch::Merge(patch))
                .await
        } else {
            writer.patch(name, &params, &Patch::Merge(patch)).await
        };
        let updated = result.map_err(|e| api_err(format!("{action} {}", describe(obj)), e))?;
        let object = updated.object().map_err(SyncError::Encode)?;
        informer.observe_written(updated);
        Ok(object)
    }

    async fn set_finalizer(
        &self,
        t: &TargetType,
        informer: &Informer,
        obj: &DynamicObject,
        present: bool,
    ) -> Result<DynamicObject, SyncError> {
        let list = parent::finalizers_with(obj, &self.cfg.finalizer, present);
        let patch = parent::finalizers_patch(obj, list);
        let action = if present {
            "add finalizer to"
        } else {
            "remove finalizer from"
        };
        self.patch_target(t, informer, obj, &patch, false, action)
            .await
    }

    /// Attachments this controller made for the target with `uid`.
    fn observed_attachments(&self, uid: &str, namespace: Option<&str>) -> Vec<ObservedChild> {
        let mut out = Vec::new();
        for (type_index, informer) in self.attachments.iter().enumerate() {
            let owned = informer.read(|s| s.list_controlled_by(uid, namespace));
            for obj in owned {
                if !is_our_attachment(&obj, &self.cfg.name) {
                    continue;
                }
                if let Ok(value) = serde_json::to_value(&*obj) {
                    out.push(ObservedChild {
                        type_index,
                        object: obj,
                        value,
                    });
                }
            }
        }
        out
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let Some((ti, okey)) = split_queue_key(key) else {
            return Ok(None);
        };
        let (Some(t), Some(informer)) = (self.cfg.targets.get(ti), self.targets.get(ti)) else {
            return Ok(None);
        };
        let cfg = &self.cfg;
        let forget = || {
            if let Some(c) = &self.customizer {
                c.forget(key);
            }
            self.guard.forget(key);
        };
        let Some(mut obj) = informer.read(|s| s.get_key(okey)) else {
            forget();
            return Ok(None);
        };
        if !cfg.wants(t, &obj) {
            forget();
            return Ok(None);
        }
        let has_finalize_hook = cfg.finalize_hook.is_some();
        match parent::finalizer_action(
            has_finalize_hook,
            parent::has_finalizer(&obj, &cfg.finalizer),
            parent::is_deleting(&obj),
        ) {
            FinalizerAction::Add => {
                obj = Arc::new(self.set_finalizer(t, informer, &obj, true).await?)
            }
            FinalizerAction::Remove => {
                obj = Arc::new(self.set_finalizer(t, informer, &obj, false).await?)
            }
            FinalizerAction::Keep => {}
        }
        if !cfg.wants(t, &obj) {
            return Ok(None);
        }
        let (hook, target, finalizing) = match parent::choose_hook(
            has_finalize_hook,
            parent::is_deleting(&obj),
            t.selects(&obj),
        ) {
            HookChoice::Sync => match &cfg.sync_hook {
                Some(h) => ("sync", h, false),
                None => return Ok(parent::resync_delay(cfg.resync_period, None)),
            },
            HookChoice::Finalize => match &cfg.finalize_hook {
                Some(h) => ("finalize", h, true),
                None => return Ok(None),
            },
        };

        let uid = obj.metadata.uid.clone().unwrap_or_default();
        let parent_ns = if t.resource.namespaced {
            obj.metadata.namespace.as_deref()
        } else {
            None
        };
        let observed = self.observed_attachments(&uid, parent_ns);
        let attachments = children::request_children(
            target.version,
            parent_ns,
            &cfg.attachments,
            observed.iter().map(|o| &o.value),
        );
        let related = match &self.customizer {
            Some(c) => related::for_hook(
                c.related_objects(key, &obj, t.resource.namespaced).await?,
                target.version,
                parent_ns,
            ),
            None => ObjectMap::new(),
        };
        let request = DecoratorHookRequestRef {
            controller: &cfg.controller,
            object: &*obj,
            attachments: &attachments,
            related: &related,
            finalizing,
        };
        let body = serde_json::to_vec(&request).map_err(SyncError::Encode)?;
        let endpoint = target
            .current()
            .map_err(|source| SyncError::Hook { hook, source })?;
        let response = self
            .hooks
            .call_encoded::<DecoratorHookResponse>(
                hook,
                &endpoint,
                body,
                Some(crate::composite::etag_key(&obj)),
            )
            .await
            .map_err(|source| SyncError::Hook { hook, source })?;
        if !response.unknown_fields.is_empty() {
            tracing::debug!(fields = ?response.unknown_fields, "hook response has unknown fields");
        }
        let response = response.value;
        let resync = parent::resync_delay(cfg.resync_period, response.resync_after());
        let everything = LabelSelector::everything();
        let mut desired = children::prepare_desired(
            response.attachments,
            &DesiredContext {
                parent_namespace: parent_ns,
                types: &cfg.attachments,
                selector: &everything,
                generated_uid: None,
            },
        )?;
        for d in &mut desired {
            mark_attachment(&mut d.object, &cfg.name);
        }

        // The target: status first (its own subresource when served), then metadata.
        let mut errors = Vec::new();
        let mut current = obj.clone();
        let mut main_patch = Map::new();
        if let Some(status) = response.status {
            let mut status = Value::Object(status);
            parent::drop_nulls(&mut status);
            let now = current.data.get("status");
            if parent::status_changed(now, &status) {
                let patch = parent::status_patch(
                    current.metadata.resource_version.as_deref(),
                    now,
                    &status,
                );
                if t.resource.has_status_subresource {
                    match self
                        .patch_target(t, informer, &current, &patch, true, "update status of")
                        .await
                    {
                        Ok(updated) => current = Arc::new(updated),
                        Err(SyncError::Api { source, .. }) if code_of(&source) == Some(404) => {
                            return Ok(None)
                        }
                        Err(e) => return Err(e),
                    }
                } else if let Some(s) = patch.get("status") {
                    main_patch.insert("status".into(), s.clone());
                }
            }
        }
        let mut meta = Map::new();
        let labels = string_map_patch(current.metadata.labels.as_ref(), &response.labels);
        if !labels.is_empty() {
            meta.insert("labels".into(), Value::Object(labels));
        }
        let annotations =
            string_map_patch(current.metadata.annotations.as_ref(), &response.annotations);
        if !annotations.is_empty() {
            meta.insert("annotations".into(), Value::Object(annotations));
        }
        let remove_finalizer =
            finalizing && response.finalized && parent::has_finalizer(&current, &cfg.finalizer);
        if remove_finalizer {
            meta.insert(
                "finalizers".into(),
                json!(parent::finalizers_with(&current, &cfg.finalizer, false)),
            );
        }
        if !meta.is_empty() || !main_patch.is_empty() {
            if let Some(rv) = &current.metadata.resource_version {
                meta.insert("resourceVersion".into(), json!(rv));
            }
            main_patch.insert("metadata".into(), Value::Object(meta));
            match self
                .patch_target(
                    t,
                    informer,
                    &current,
                    &Value::Object(main_patch),
                    false,
                    "update",
                )
                .await
            {
                Ok(_) => {}
                Err(SyncError::Api { source, .. }) if code_of(&source) == Some(404) => {
                    return Ok(None)
                }
                Err(e) => return Err(e),
            }
        }
        if remove_finalizer {
            tracing::info!("finalized; finalizer removed");
        }

        // As upstream, children are managed against the state this sync started from: a
        // finalize hook's answer still applies its attachments while the finalizer goes.
        if parent::manages_children(&current, &cfg.finalizer, has_finalize_hook) {
            let owner = crate::claim::controller_ref(
                &t.resource.api_version,
                &t.resource.kind,
                current.metadata.name.as_deref().unwrap_or(""),
                &uid,
            );
            let actions =
                children::plan_with(&cfg.attachments, &observed, &desired, &owner, &self.apply);
            for action in actions {
                if let Err(e) = self.execute(action).await {
                    errors.push(e);
                }
            }
        }
        match errors.len() {
            0 => Ok(resync),
            1 => Err(errors.remove(0)),
            _ => Err(SyncError::Children(errors)),
        }
    }

    async fn execute(&self, action: ChildAction) -> Result<(), SyncError> {
        let i = action.type_index();
        crate::composite::execute_action(
            &self.client,
            &self.cfg.attachments[i],
            &self.attachments[i],
            action,
            "attachment",
        )
        .await
    }

    /// Removes this controller's finalizer from every cached target whose resource type is not
    /// in `keep` (the controller is gone, or no longer decorates that type).
    async fn release_finalizers(&self, keep: &HashSet<String>) {
        for (t, informer) in self.cfg.targets.iter().zip(&self.targets) {
            if keep.contains(&type_key(&t.resource)) {
                continue;
            }
            let held: Vec<_> = informer.read(|s| {
                s.list_all()
                    .into_iter()
                    .filter(|o| parent::has_finalizer(o, &self.cfg.finalizer))
                    .collect()
            });
            for obj in held {
                tracing::info!(controller = %self.cfg.name, target = %describe(&obj), "removing finalizer of a deleted DecoratorController");
                if let Err(error) = self.set_finalizer(t, informer, &obj, false).await {
                    tracing::warn!(error = %error_chain(&error), target = %describe(&obj), "can't remove finalizer");
                }
            }
        }
    }
}

fn target_handler(
    cfg: Arc<DecoratorConfig>,
    type_index: usize,
    queue: WorkQueue,
    guard: Arc<LoopGuard>,
) -> Handler {
    Arc::new(move |event: &Event| {
        let t = &cfg.targets[type_index];
        let relevant = |o: &DynamicObject| cfg.wants(t, o);
        let enqueue = match (&event.old, &event.new) {
            (Some(old), Some(new)) => {
                (relevant(new) || relevant(old))
                    && parent::update_needs_sync(old, new, t.ignore_status_changes)
            }
            (None, Some(new)) => relevant(new),
            (Some(old), None) => relevant(old),
            (None, None) => false,
        };
        if enqueue {
            if let Some(obj) = event.object() {
                let key = queue_key(type_index, &crate::store::key_of(obj));
                guard.note(&key, crate::loopguard::cause_of(event));
                queue.add(key);
            }
        }
    })
}

/// Enqueues every target the controller cares about after a hook endpoint changed (a Secret
/// or ConfigMap it reads), so a sync that failed for want of credentials is retried now.
fn credentials_handler(
    cfg: Arc<DecoratorConfig>,
    targets: Vec<std::sync::Weak<Informer>>,
    queue: WorkQueue,
    guard: Arc<LoopGuard>,
) -> crate::credentials::OnChange {
    Arc::new(move || {
        for (type_index, informer) in targets.iter().enumerate() {
            let Some(informer) = informer.upgrade() else {
                continue;
            };
            let t = &cfg.targets[type_index];
            for obj in informer.read(|s| s.list_all()) {
                if cfg.wants(t, &obj) {
                    let key = queue_key(type_index, &crate::store::key_of(&obj));
                    guard.note(&key, Cause::Outside);
                    queue.add(key);
                }
            }
        }
    })
}

fn attachment_handler(
    cfg: Arc<DecoratorConfig>,
    queue: WorkQueue,
    guard: Arc<LoopGuard>,
) -> Handler {
    Arc::new(move |event: &Event| {
        let cause = crate::loopguard::cause_of(event);
        let mut keys = HashSet::new();
        for obj in [&event.old, &event.new].into_iter().flatten() {
            if !is_our_attachment(obj, &cfg.name) {
                continue;
            }
            let Some(r) = obj
                .metadata
                .owner_references
                .as_ref()
                .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)))
            else {
                continue;
            };
            let Some(ti) = cfg.target_for_owner(&r.api_version, &r.kind) else {
                continue;
            };
            let ns = if cfg.targets[ti].resource.namespaced {
                obj.metadata.namespace.as_deref()
            } else {
                None
            };
            keys.insert(queue_key(ti, &object_key(ns, &r.name)));
        }
        for k in keys {
            guard.note(&k, cause);
            queue.add(k);
        }
    })
}

/// A running DecoratorController.
pub struct Decorator {
    syncer: Arc<Syncer>,
    queue: WorkQueue,
    stop: CancellationToken,
    workers: JoinSet<()>,
    _subscriptions: Vec<Subscription>,
}

impl std::fmt::Debug for Decorator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decorator")
            .field("name", &self.syncer.cfg.name)
            .finish()
    }
}

impl Decorator {
    /// Starts informers, event handlers and `workers` workers for `cfg`.
    pub fn start(
        cfg: DecoratorConfig,
        services: &Services,
        discovery: &Arc<Discovery>,
        workers: usize,
    ) -> Decorator {
        let cfg = Arc::new(cfg);
        let queue = WorkQueue::named(
            &format!("DecoratorController-{}", cfg.name),
            services.informers.metrics(),
        );
        let stop = CancellationToken::new();
        let targets: Vec<Arc<Informer>> = cfg
            .targets
            .iter()
            .map(|t| services.informers.informer(&t.resource))
            .collect();
        let attachments: Vec<Arc<Informer>> = cfg
            .attachments
            .iter()
            .map(|c| services.informers.informer(&c.resource))
            .collect();
        let guard = Arc::new(LoopGuard::default());
        let customizer = cfg.customize_hook.clone().map(|hook| {
            let q = queue.clone();
            let g = guard.clone();
            Customizer::new(
                hook,
                cfg.controller.clone(),
                services.hooks.clone(),
                discovery.clone(),
                services.informers.clone(),
                Arc::new(move |key: &str| {
                    g.note(key, Cause::Outside);
                    q.add(key.to_string())
                }),
            )
        });
        services.recorder.record(
            cfg.regarding.clone(),
            EventType::Normal,
            reason::STARTING,
            format!("Starting controller: {}", cfg.name),
        );
        tracing::info!(controller = %cfg.name, "starting DecoratorController");
        let mut subscriptions = Vec::new();
        for informer in &attachments {
            subscriptions.push(informer.subscribe(attachment_handler(
                cfg.clone(),
                queue.clone(),
                guard.clone(),
            )));
        }
        for (i, informer) in targets.iter().enumerate() {
            subscriptions.push(informer.subscribe(target_handler(
                cfg.clone(),
                i,
                queue.clone(),
                guard.clone(),
            )));
        }
        let credentials = crate::credentials::CredentialWatch::start(
            &services.informers,
            &cfg.name,
            cfg.sync_hook
                .iter()
                .chain(&cfg.finalize_hook)
                .chain(&cfg.customize_hook)
                .map(|t| t.live.clone())
                .collect(),
            credentials_handler(
                cfg.clone(),
                targets.iter().map(Arc::downgrade).collect(),
                queue.clone(),
                guard.clone(),
            ),
        );
        let syncer = Arc::new(Syncer {
            cfg: cfg.clone(),
            client: services.client.clone(),
            hooks: services.hooks.clone(),
            recorder: services.recorder.clone(),
            apply: services.apply.clone(),
            targets,
            attachments,
            customizer,
            metrics: services.informers.metrics().clone(),
            guard,
        });
        let mut set = JoinSet::new();
        {
            let syncer = syncer.clone();
            let queue = queue.clone();
            let stop = stop.clone();
            let workers = workers.max(1);
            set.spawn(async move {
                // Secrets and ConfigMaps are followed while the controller runs.
                let _credentials = credentials;
                let synced = async {
                    for i in syncer.targets.iter().chain(syncer.attachments.iter()) {
                        i.wait_synced().await;
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = synced => {}
                }
                let mut pool = JoinSet::new();
                for _ in 0..workers {
                    pool.spawn(worker(syncer.clone(), queue.clone()));
                }
                while pool.join_next().await.is_some() {}
            });
        }
        Decorator {
            syncer,
            queue,
            stop,
            workers: set,
            _subscriptions: subscriptions,
        }
    }

    /// Stops taking work and waits up to `grace` for in-flight syncs to finish. With
    /// `release`, the controller's finalizers are then removed from every target whose
    /// resource type is not in the set (an empty set releases them all).
    pub async fn stop(
        mut self,
        grace: Duration,
        recorder: &Recorder,
        release: Option<HashSet<String>>,
    ) {
        let cfg = self.syncer.cfg.clone();
        tracing::info!(controller = %cfg.name, "stopping DecoratorController");
        recorder.record(
            cfg.regarding.clone(),
            EventType::Normal,
            reason::STOPPING,
            format!("Stopping controller: {}", cfg.name),
        );
        self.stop.cancel();
        self.queue.shutdown();
        let drain = async { while self.workers.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(controller = %cfg.name, "in-flight syncs did not finish in time; aborting them");
            self.workers.abort_all();
        }
        if let Some(keep) = release {
            let _ = tokio::time::timeout(grace, self.syncer.release_finalizers(&keep)).await;
        }
    }
}

async fn worker(syncer: Arc<Syncer>, queue: WorkQueue) {
    while let Some(key) = queue.get().await {
        let target = || {
            split_queue_key(&key).and_then(|(ti, k)| {
                syncer
                    .targets
                    .get(ti)
                    .and_then(|i| i.read(|s| s.get_key(k)))
            })
        };
        if crate::loopguard::hold_back(
            &syncer.guard,
            &queue,
            &key,
            &syncer.cfg.name,
            &syncer.recorder,
            &syncer.metrics,
            target,
        ) {
            queue.done(&key);
            continue;
        }
        let span = tracing::info_span!("sync", controller = %syncer.cfg.name, object = %key);
        let timer = syncer.metrics.reconcile_started(&syncer.cfg.name);
        let result = syncer.sync(&key).instrument(span.clone()).await;
        timer.finish(match &result {
            Ok(None) => crate::metrics::ReconcileResult::Success,
            Ok(Some(_)) => crate::metrics::ReconcileResult::RequeueAfter,
            Err(error) if error.retry_after().is_some() => {
                crate::metrics::ReconcileResult::RequeueAfter
            }
            Err(_) => crate::metrics::ReconcileResult::Error,
        });
        let _entered = span.enter();
        match result {
            Ok(resync) => {
                queue.forget(&key);
                if let Some(delay) = resync {
                    queue.add_after(key.clone(), delay);
                }
            }
            Err(error) => {
                if let Some(delay) = error.retry_after() {
                    queue.add_after(key.clone(), delay);
                } else {
                    if error.reportable() {
                        tracing::warn!(error = %error_chain(&error), "sync failed");
                        let target = split_queue_key(&key).and_then(|(ti, k)| {
                            syncer
                                .targets
                                .get(ti)
                                .and_then(|i| i.read(|s| s.get_key(k)))
                        });
                        if let Some(obj) = target {
                            syncer.recorder.record(
                                Regarding::of(&obj),
                                EventType::Warning,
                                reason::SYNC_ERROR,
                                format!("Sync error: {}", error_chain(&error)),
                            );
                        }
                    } else {
                        tracing::debug!(error = %error_chain(&error), "sync will be retried");
                    }
                    queue.add_rate_limited(key.clone());
                }
            }
        }
        queue.done(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(labels: Value, annotations: Value) -> TargetType {
        TargetType {
            resource: Arc::new(ResourceInfo {
                group: String::new(),
                version: "v1".into(),
                api_version: "v1".into(),
                kind: "Pod".into(),
                plural: "pods".into(),
                namespaced: true,
                has_status_subresource: true,
                verbs: vec![],
            }),
            labels: LabelSelector::from_json(&labels).expect("labels"),
            annotations: LabelSelector::from_json_with_key(&annotations, "matchAnnotations")
                .expect("annotations"),
            ignore_status_changes: false,
        }
    }

    fn pod(labels: Value, annotations: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "p", "namespace": "ns", "labels": labels, "annotations": annotations}
        }))
        .expect("pod")
    }

    #[test]
    fn an_object_must_match_both_selectors() {
        let t = target(
            json!({"matchLabels": {"app": "a"}}),
            json!({"matchAnnotations": {"svc": "yes"}, "matchExpressions": [{"key": "port", "operator": "Exists"}]}),
        );
        assert!(t.selects(&pod(
            json!({"app": "a"}),
            json!({"svc": "yes", "port": "80"})
        )));
        assert!(!t.selects(&pod(json!({"app": "a"}), json!({"svc": "yes"}))));
        assert!(!t.selects(&pod(
            json!({"app": "b"}),
            json!({"svc": "yes", "port": "80"})
        )));
        let any = target(json!(null), json!(null));
        assert!(any.selects(&pod(json!({}), json!({}))));
    }

    #[test]
    fn string_map_patch_writes_only_changes() {
        let current: BTreeMap<String, String> =
            [("a".into(), "1".into()), ("b".into(), "2".into())].into();
        let wanted: BTreeMap<String, Option<String>> = [
            ("a".into(), Some("1".into())),
            ("b".into(), None),
            ("c".into(), Some("3".into())),
            ("d".into(), None),
        ]
        .into();
        let patch = string_map_patch(Some(&current), &wanted);
        assert_eq!(Value::Object(patch), json!({"b": null, "c": "3"}));
        let same: BTreeMap<String, Option<String>> = [("a".into(), Some("1".into()))].into();
        assert!(string_map_patch(Some(&current), &same).is_empty());
        assert!(string_map_patch(None, &[("x".into(), None)].into()).is_empty());
    }

    #[test]
    fn queue_keys_round_trip() {
        assert_eq!(split_queue_key(&queue_key(2, "ns/a")), Some((2, "ns/a")));
        assert_eq!(split_queue_key(&queue_key(0, "a")), Some((0, "a")));
        assert_eq!(split_queue_key("bad"), None);
    }

    #[test]
    fn attachments_are_marked_with_the_controller_name() {
        let mut v = json!({"metadata": {"name": "s"}});
        mark_attachment(&mut v, "dc");
        assert_eq!(
            v["metadata"]["annotations"][DECORATOR_CONTROLLER_ANNOTATION],
            "dc"
        );
    }
}
