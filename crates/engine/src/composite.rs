//! The CompositeController: one running instance per CompositeController object.
//!
//! ```text
//!  parent informer ──┐                         ┌─► claim children (adopt / release)
//!  child informers ──┴─► work queue ─► worker ─┼─► sync or finalize hook
//!                                              ├─► apply children (create / update / delete)
//!                                              └─► parent status, finalizer, resync
//! ```
//!
//! Decisions come from the pure modules ([`crate::claim`], [`crate::children`],
//! [`crate::parent`]); this module reads caches and performs the writes. Any hook failure
//! stops a sync before its first write.

use std::sync::{Arc, Weak};
use std::time::Duration;

use kube::api::{
    Api, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions, PropagationPolicy,
};
use metacontroller_api::hook::{
    CompositeHookRequestRef, CompositeHookResponse, ObjectMap, ObjectRefMap,
};
use metacontroller_api::CompositeController;
use metacontroller_hooks::{HookClient, HookError, HookOwner};
use metacontroller_merge::selector::{LabelSelector, SelectorError};
use serde_json::Value;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::children::{self, ChildAction, ChildType, DesiredContext, DesiredError, ObservedChild};
use crate::claim::{self, ClaimDecision};
use crate::discovery::{Discovery, DiscoveryError, ResourceInfo};
use crate::events::{reason, EventType, Recorder, Regarding};
use crate::informer::{Handler, Informer, InformerFactory, Subscription};
use crate::loopguard::{Cause, LoopGuard};
use crate::parent::{self, FinalizerAction, HookChoice, ParentSelectorError};
use crate::queue::WorkQueue;
use crate::store::{controller_uid, object_key, split_key, Event, ObjectRef};
use crate::webhook::{DataKind, DataMap, DataRef, WebhookError};
use crate::write::{Writer, Written};

mod rolling;

/// Why a CompositeController cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The object does not decode as a CompositeController.
    #[error("invalid CompositeController: {0}")]
    Decode(#[source] serde_json::Error),
    /// A parent or child resource cannot be resolved.
    #[error("can't resolve {role} resource {resource:?} in {api_version:?}")]
    Resource {
        /// `parent` or `child`.
        role: &'static str,
        /// The apiVersion asked for.
        api_version: String,
        /// The resource asked for.
        resource: String,
        /// The cause.
        #[source]
        source: DiscoveryError,
    },
    /// A parent or child resource cannot be listed or watched.
    #[error("{role} resource {resource} does not support {verb}")]
    Unwatchable {
        /// `parent` or `child`.
        role: &'static str,
        /// `apiVersion/resource`.
        resource: String,
        /// The missing verb.
        verb: &'static str,
    },
    /// `parentResource.labelSelector` is invalid.
    #[error("invalid parentResource.labelSelector")]
    Selector(#[source] SelectorError),
    /// No sync hook is configured.
    #[error("no sync hook defined")]
    NoSyncHook,
    /// A hook's webhook is unusable.
    #[error(transparent)]
    Webhook(#[from] WebhookError),
    /// Reading a Secret or ConfigMap a hook needs failed.
    #[error("can't read {what}")]
    FetchData {
        /// The object.
        what: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
}

impl ConfigError {
    /// Whether a later discovery refresh could fix this (a resource not served yet).
    pub fn may_resolve_later(&self) -> bool {
        matches!(
            self,
            ConfigError::Resource { .. }
                | ConfigError::FetchData { .. }
                | ConfigError::Webhook(WebhookError::MissingData { .. })
        )
    }
}

pub use crate::credentials::HookTarget;

/// A validated, resolved CompositeController.
#[derive(Debug)]
pub struct Config {
    /// The controller's name.
    pub name: String,
    /// The controller object as sent to hooks.
    pub controller: Value,
    /// The controller's identity, for events about it.
    pub regarding: Regarding,
    /// Its `metadata.generation` (a change restarts the controller).
    pub generation: i64,
    /// The parent resource.
    pub parent: Arc<ResourceInfo>,
    /// The declared child types.
    pub children: Vec<ChildType>,
    /// `parentResource.labelSelector` (everything when absent).
    pub parent_selector: LabelSelector,
    /// `parentResource.ignoreStatusChanges`.
    pub ignore_status_changes: bool,
    /// `generateSelector`.
    pub generate_selector: bool,
    /// `resyncPeriodSeconds`.
    pub resync_period: Option<Duration>,
    /// The sync hook.
    pub sync_hook: HookTarget,
    /// The finalize hook, if any.
    pub finalize_hook: Option<HookTarget>,
    /// The customize hook, if any.
    pub customize_hook: Option<HookTarget>,
    /// `metacontroller.io/compositecontroller-<name>`.
    pub finalizer: String,
    /// Rolling updates and ControllerRevisions, when a child type rolls.
    pub rolling: Option<crate::rollout::RollingConfig>,
}

impl Config {
    /// Validates a CompositeController object and resolves its resources and hooks.
    pub async fn build(
        raw: &DynamicObject,
        discovery: &Discovery,
        client: &kube::Client,
    ) -> Result<Config, ConfigError> {
        let value = serde_json::to_value(raw).map_err(ConfigError::Decode)?;
        let cc: CompositeController =
            serde_json::from_value(value.clone()).map_err(ConfigError::Decode)?;
        let spec = &cc.spec;
        let name = cc.name().to_string();
        let owner = HookOwner::new("CompositeController", name.clone());
        let sync = spec.sync_hook().ok_or(ConfigError::NoSyncHook)?;
        let sync_hook =
            resolve_target("sync", sync, owner.clone(), &spec.endpoint_configs, client).await?;
        let finalize_hook = match spec.finalize_hook() {
            Some(h) => Some(
                resolve_target("finalize", h, owner.clone(), &spec.endpoint_configs, client)
                    .await?,
            ),
            None => None,
        };
        let customize_hook = match spec.customize_hook() {
            Some(h) => {
                Some(resolve_target("customize", h, owner, &spec.endpoint_configs, client).await?)
            }
            None => None,
        };
        let parent_selector = match &spec.parent_resource.label_selector {
            Some(sel) => {
                let json = serde_json::to_value(sel).map_err(ConfigError::Decode)?;
                LabelSelector::from_json(&json).map_err(ConfigError::Selector)?
            }
            None => LabelSelector::everything(),
        };
        let resolve = |role: &'static str, api_version: String, resource: String| {
            resolve_watchable(discovery, role, api_version, resource)
        };
        let parent = resolve(
            "parent",
            spec.parent_resource.api_version.clone(),
            spec.parent_resource.resource.clone(),
        )
        .await?;
        let mut children = Vec::with_capacity(spec.child_resources.len());
        for rule in &spec.child_resources {
            let resource =
                resolve("child", rule.api_version.clone(), rule.resource.clone()).await?;
            children.push(ChildType {
                resource,
                method: rule.update_method(),
            });
        }
        let rolling = rolling::resolve(spec, &children, discovery).await?;
        Ok(Config {
            rolling,
            finalizer: cc.finalizer_name(),
            regarding: Regarding::of(raw),
            generation: raw.metadata.generation.unwrap_or(0),
            controller: value,
            ignore_status_changes: spec.parent_resource.ignore_status_changes.unwrap_or(false),
            generate_selector: spec.generate_selector(),
            resync_period: spec.resync_period(),
            name,
            parent,
            children,
            parent_selector,
            sync_hook,
            finalize_hook,
            customize_hook,
        })
    }

    /// Every hook of the controller.
    pub fn hook_targets(&self) -> impl Iterator<Item = &HookTarget> {
        std::iter::once(&self.sync_hook)
            .chain(&self.finalize_hook)
            .chain(&self.customize_hook)
    }

    /// Whether the controller cares about this parent: selected, or still holding our finalizer.
    fn wants(&self, parent: &DynamicObject) -> bool {
        parent::has_finalizer(parent, &self.finalizer) || self.selects(parent)
    }

    fn selects(&self, parent: &DynamicObject) -> bool {
        self.parent_selector
            .matches(parent::labels_map(parent).as_ref())
    }
}

/// Resolves one hook, fetching the Secret and ConfigMap values its TLS and credential
/// settings name; a [`crate::credentials::CredentialWatch`] follows their later changes.
pub(crate) async fn resolve_target(
    hook_name: &'static str,
    hook: &metacontroller_api::Hook,
    owner: HookOwner,
    endpoint_configs: &[metacontroller_api::EndpointConfig],
    client: &kube::Client,
) -> Result<HookTarget, ConfigError> {
    let url = crate::webhook::hook_url(hook_name, hook)?;
    let mut data = DataMap::new();
    if let Some(webhook) = &hook.webhook {
        let security = crate::webhook::security_for(webhook, &url, endpoint_configs);
        for r in crate::webhook::required_data(&security) {
            match fetch_data(client, &r).await {
                Ok(Some(value)) => {
                    data.insert(r, value);
                }
                Ok(None) => {}
                Err(source) => {
                    return Err(ConfigError::FetchData {
                        what: format!("{:?} {}/{}", r.kind, r.namespace, r.name),
                        source: Box::new(source),
                    })
                }
            }
        }
    }
    let live =
        crate::credentials::LiveEndpoint::new(hook_name, hook, owner, endpoint_configs, data)?;
    Ok(HookTarget::new(live, hook.version())?)
}

/// One value of a Secret or ConfigMap; `None` when the object or key is absent.
async fn fetch_data(client: &kube::Client, r: &DataRef) -> Result<Option<Vec<u8>>, kube::Error> {
    use k8s_openapi::api::core::v1::{ConfigMap, Secret};
    match r.kind {
        DataKind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), &r.namespace);
            let Some(secret) = api.get_opt(&r.name).await? else {
                return Ok(None);
            };
            Ok(secret
                .data
                .and_then(|d| d.get(&r.key).map(|v| v.0.clone()))
                .or_else(|| {
                    secret
                        .string_data
                        .and_then(|d| d.get(&r.key).map(|v| v.clone().into_bytes()))
                }))
        }
        DataKind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &r.namespace);
            let Some(cm) = api.get_opt(&r.name).await? else {
                return Ok(None);
            };
            Ok(cm
                .data
                .and_then(|d| d.get(&r.key).map(|v| v.clone().into_bytes()))
                .or_else(|| {
                    cm.binary_data
                        .and_then(|d| d.get(&r.key).map(|v| v.0.clone()))
                }))
        }
    }
}

/// Why one sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// The hook failed; nothing was written.
    #[error("{hook} hook failed")]
    Hook {
        /// `sync` or `finalize`.
        hook: &'static str,
        /// The cause.
        #[source]
        source: HookError,
    },
    /// The parent's selector is unusable.
    #[error(transparent)]
    Selector(#[from] ParentSelectorError),
    /// The hook's children were rejected; nothing was written.
    #[error(transparent)]
    Desired(#[from] DesiredError),
    /// An API call failed.
    #[error("{action} failed")]
    Api {
        /// What was being done.
        action: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
    /// A write lost a race with another writer; retried quietly.
    #[error("{0}: conflict, will retry")]
    Conflict(String),
    /// Building the request failed.
    #[error("encoding failed")]
    Encode(#[source] serde_json::Error),
    /// Gathering related objects failed (customize hook or its rules); nothing was written.
    #[error(transparent)]
    Customize(#[from] crate::related::CustomizeError),
    /// Several child operations failed.
    #[error("{} child operation(s) failed: {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Children(Vec<SyncError>),
}

impl SyncError {
    /// The delay a hook asked for with `429 Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            SyncError::Hook { source, .. } => source.retry_after(),
            _ => None,
        }
    }

    /// Whether the failure deserves a `SyncError` event on the parent.
    pub(crate) fn reportable(&self) -> bool {
        match self {
            SyncError::Conflict(_) => false,
            SyncError::Hook { source, .. } => source.retry_after().is_none(),
            SyncError::Children(errs) => errs.iter().any(SyncError::reportable),
            _ => true,
        }
    }
}

pub(crate) fn api_err(action: impl Into<String>, err: kube::Error) -> SyncError {
    let action = action.into();
    if code_of(&err) == Some(409) {
        SyncError::Conflict(action)
    } else {
        SyncError::Api {
            action,
            source: Box::new(err),
        }
    }
}

pub(crate) fn code_of(err: &kube::Error) -> Option<u16> {
    match err {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

pub(crate) fn reason_of(err: &kube::Error) -> Option<&str> {
    match err {
        kube::Error::Api(status) => Some(status.reason.as_str()),
        _ => None,
    }
}

pub(crate) fn api_for(
    client: &kube::Client,
    resource: &ResourceInfo,
    namespace: &str,
) -> Api<DynamicObject> {
    if resource.namespaced && !namespace.is_empty() {
        Api::namespaced_with(client.clone(), namespace, &resource.api_resource())
    } else {
        Api::all_with(client.clone(), &resource.api_resource())
    }
}

/// The root object of a hook request, which keys the hook's ETag cache.
pub(crate) fn etag_key(obj: &DynamicObject) -> metacontroller_hooks::ObjectKey {
    metacontroller_hooks::ObjectKey::new(
        obj.types.as_ref().map_or("", |t| t.kind.as_str()),
        obj.metadata.namespace.as_deref().unwrap_or(""),
        obj.metadata.name.as_deref().unwrap_or(""),
    )
}

/// Carries out one planned action on a child (or a decorator's attachment) of type `t`, whose
/// informer learns of the engine's own writes at once. A child that appeared or vanished
/// meanwhile is not an error: the next sync sees it.
pub(crate) async fn execute_action(
    client: &kube::Client,
    t: &ChildType,
    informer: &Informer,
    action: ChildAction,
    noun: &str,
) -> Result<(), SyncError> {
    match action {
        ChildAction::Create { object, .. } => {
            // Sent as the hook's JSON is: the server reports anything it does not accept.
            let meta = |field: &str| {
                object
                    .pointer(&format!("/metadata/{field}"))
                    .and_then(Value::as_str)
                    .filter(|s| !s.is_empty())
            };
            let ns = meta("namespace").unwrap_or("");
            let key = object_key(meta("namespace"), meta("name").unwrap_or(""));
            let _writing = informer.writing(key.clone());
            tracing::info!(object = %key, kind = %t.resource.kind, "creating {noun}");
            match Writer::new(client, &t.resource, ns).create(&object).await {
                Ok(created) => {
                    informer.observe_written(created);
                    Ok(())
                }
                Err(e) if reason_of(&e) == Some("AlreadyExists") => {
                    tracing::debug!(object = %key, "{noun} already exists");
                    Ok(())
                }
                Err(e) => Err(api_err(format!("create {} {key}", t.resource.kind), e)),
            }
        }
        ChildAction::Update {
            observed, object, ..
        } => {
            let obj: DynamicObject = serde_json::from_value(object).map_err(SyncError::Encode)?;
            let ns = obj.metadata.namespace.clone().unwrap_or_default();
            let name = obj.metadata.name.clone().unwrap_or_default();
            let _writing = informer.writing(crate::store::key_of(&obj));
            tracing::info!(object = %describe(&observed), kind = %t.resource.kind, "updating {noun} in place");
            match Writer::new(client, &t.resource, &ns)
                .replace(&name, &obj)
                .await
            {
                Ok(updated) => {
                    informer.observe_written(updated);
                    Ok(())
                }
                Err(e) if code_of(&e) == Some(404) => Ok(()),
                Err(e) => Err(api_err(
                    format!("update {} {}", t.resource.kind, describe(&observed)),
                    e,
                )),
            }
        }
        ChildAction::Apply {
            observed,
            object,
            field_manager,
            ..
        } => {
            let ns = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            let what = format!("{}/{name}", if ns.is_empty() { "-" } else { &ns });
            match &observed {
                Some(o) => {
                    tracing::info!(object = %describe(o), kind = %t.resource.kind, "applying {noun}")
                }
                None => {
                    tracing::info!(object = %what, kind = %t.resource.kind, "creating {noun} by apply")
                }
            }
            let params = PatchParams::apply(&field_manager).force();
            match Writer::new(client, &t.resource, &ns)
                .patch(&name, &params, &Patch::Apply(&object))
                .await
            {
                Ok(applied) => {
                    informer.observe_written(applied);
                    Ok(())
                }
                Err(e) => Err(api_err(format!("apply {} {what}", t.resource.kind), e)),
            }
        }
        ChildAction::Recreate { observed, .. } => {
            delete_object(
                client,
                t,
                &observed,
                &format!("deleting {noun} to recreate it"),
            )
            .await
        }
        ChildAction::Delete { observed, .. } => {
            delete_object(client, t, &observed, &format!("deleting {noun}")).await
        }
    }
}

/// Deletes `observed` with a UID precondition and background propagation.
async fn delete_object(
    client: &kube::Client,
    t: &ChildType,
    observed: &DynamicObject,
    what: &str,
) -> Result<(), SyncError> {
    tracing::info!(object = %describe(observed), kind = %t.resource.kind, "{what}");
    let params = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Background),
        preconditions: Some(Preconditions {
            uid: observed.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let ns = observed.metadata.namespace.as_deref().unwrap_or("");
    let name = observed.metadata.name.as_deref().unwrap_or("");
    match api_for(client, &t.resource, ns).delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(e) if code_of(&e) == Some(404) => Ok(()),
        Err(e) => Err(api_err(
            format!("delete {} {}", t.resource.kind, describe(observed)),
            e,
        )),
    }
}

/// Resolves a resource a controller names, which the engine must be able to list and watch.
pub(crate) async fn resolve_watchable(
    discovery: &Discovery,
    role: &'static str,
    api_version: String,
    resource: String,
) -> Result<Arc<ResourceInfo>, ConfigError> {
    let info = discovery
        .resolve(&api_version, &resource)
        .await
        .map_err(|source| ConfigError::Resource {
            role,
            api_version: api_version.clone(),
            resource: resource.clone(),
            source,
        })?;
    match ["list", "watch"].into_iter().find(|v| !info.supports(v)) {
        Some(verb) => Err(ConfigError::Unwatchable {
            role,
            resource: format!("{api_version}/{resource}"),
            verb,
        }),
        None => Ok(info),
    }
}

pub(crate) fn describe(obj: &DynamicObject) -> String {
    object_key(
        obj.metadata.namespace.as_deref(),
        obj.metadata.name.as_deref().unwrap_or(""),
    )
}

/// Everything a sync needs, shared by the workers of one controller.
struct Syncer {
    cfg: Arc<Config>,
    client: kube::Client,
    hooks: HookClient,
    recorder: Recorder,
    /// How children are written.
    apply: children::ApplyMode,
    parents: Arc<Informer>,
    children: Vec<Arc<Informer>>,
    related: Option<Arc<crate::related::Customizer>>,
    /// ControllerRevisions, when a child type rolls.
    revisions: Option<Arc<Informer>>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Parents (key to UID) already told that their resource lacks a status subresource.
    warned_no_status: std::sync::Mutex<std::collections::HashMap<String, String>>,
    /// Backs off parents whose syncs only ever follow the engine's own writes.
    guard: Arc<LoopGuard>,
}

impl Syncer {
    /// Records, once per parent object, a Warning event recommending a status subresource.
    fn warn_no_status_subresource(&self, key: &str, parent: &DynamicObject) {
        let uid = parent.metadata.uid.clone().unwrap_or_default();
        {
            let mut warned = self
                .warned_no_status
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if warned.get(key) == Some(&uid) {
                return;
            }
            warned.insert(key.to_string(), uid);
        }
        let resource = &self.cfg.parent;
        tracing::warn!(parent = %key, resource = %resource.plural, "parent resource has no status subresource");
        self.recorder.record(
            Regarding::of(parent),
            EventType::Warning,
            reason::NO_STATUS_SUBRESOURCE,
            format!(
                "{} has no status subresource: status is written through the main resource, which \
                 increments metadata.generation, and status.observedGeneration is the generation \
                 that write produces; add `subresources: {{status: {{}}}}` to the \
                 CustomResourceDefinition of {}",
                resource.kind,
                if resource.group.is_empty() {
                    resource.plural.clone()
                } else {
                    format!("{}.{}", resource.plural, resource.group)
                }
            ),
        );
    }

    fn forget_parent(&self, key: &str) {
        self.warned_no_status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        self.guard.forget(key);
    }

    /// Patches the parent (its status subresource when `status`); returns what `read` takes
    /// from the response before the cache keeps it.
    async fn patch_parent<T>(
        &self,
        parent: &DynamicObject,
        patch: &Value,
        status: bool,
        action: &str,
        read: impl FnOnce(&Written) -> Result<T, SyncError>,
    ) -> Result<T, SyncError> {
        let writer = Writer::new(
            &self.client,
            &self.cfg.parent,
            parent.metadata.namespace.as_deref().unwrap_or(""),
        );
        let name = parent.metadata.name.as_deref().unwrap_or("");
        let params = PatchParams::default();
        let _writing = self.parents.writing(crate::store::key_of(parent));
        let result = if status {
            writer
                .patch_status(name, &params, &Patch::Merge(patch))
                .await
        } else {
            writer.patch(name, &params, &Patch::Merge(patch)).await
        };
        let updated = result.map_err(|e| api_err(format!("{action} {}", describe(parent)), e))?;
        let value = read(&updated)?;
        self.parents.observe_written(updated);
        Ok(value)
    }

    async fn set_finalizer(
        &self,
        parent: &DynamicObject,
        present: bool,
    ) -> Result<DynamicObject, SyncError> {
        let list = parent::finalizers_with(parent, &self.cfg.finalizer, present);
        let patch = parent::finalizers_patch(parent, list);
        let action = if present {
            "add finalizer to"
        } else {
            "remove finalizer from"
        };
        self.patch_parent(parent, &patch, false, action, |w| {
            w.object().map_err(SyncError::Encode)
        })
        .await
    }

    /// Claims the parent's children: owned ones it still selects, plus adopted orphans.
    async fn claim_children(
        &self,
        parent: &DynamicObject,
        selector: &LabelSelector,
    ) -> Result<Vec<ObservedChild>, SyncError> {
        let uid = parent.metadata.uid.as_deref().unwrap_or("");
        let deleting = parent::is_deleting(parent);
        let namespace = if self.cfg.parent.namespaced {
            Some(parent.metadata.namespace.as_deref().unwrap_or(""))
        } else {
            None
        };
        let owner = claim::controller_ref(
            &self.cfg.parent.api_version,
            &self.cfg.parent.kind,
            parent.metadata.name.as_deref().unwrap_or(""),
            uid,
        );
        let mut claimed = Vec::new();
        let mut errors = Vec::new();
        // Orphans are candidates only while the parent lives and its selector matches
        // (`claim::decide`), so the others are never decoded.
        let adoptable =
            |o: &DynamicObject| !deleting && selector.matches(parent::labels_map(o).as_ref());
        for (type_index, (child_type, informer)) in
            self.cfg.children.iter().zip(&self.children).enumerate()
        {
            let candidates = informer.read(|s| {
                let mut c = s.list_controlled_by(uid, namespace);
                c.extend(s.list_orphans_where(namespace, &adoptable));
                c
            });
            for child in candidates {
                let matches = selector.matches(parent::labels_map(&child).as_ref());
                let decision = claim::decide(uid, deleting, &child, matches);
                let result = match decision {
                    ClaimDecision::Ignore => continue,
                    ClaimDecision::Claim => Ok(Some(child)),
                    ClaimDecision::Adopt => {
                        tracing::info!(child = %describe(&child), kind = %child_type.resource.kind, "adopting");
                        self.patch_child(
                            child_type,
                            informer,
                            &child,
                            claim::adopt_patch(&child, &owner),
                            "adopt",
                        )
                        .await
                        .map(Some)
                    }
                    ClaimDecision::Release => {
                        tracing::info!(child = %describe(&child), kind = %child_type.resource.kind, "releasing");
                        self.patch_child(
                            child_type,
                            informer,
                            &child,
                            claim::release_patch(&child, uid),
                            "release",
                        )
                        .await
                        .map(|_| None)
                    }
                };
                match result {
                    Ok(Some(obj)) => match serde_json::to_value(&*obj) {
                        Ok(value) => claimed.push(ObservedChild {
                            type_index,
                            object: obj,
                            value,
                        }),
                        Err(e) => errors.push(SyncError::Encode(e)),
                    },
                    Ok(None) => {}
                    Err(e) => errors.push(e),
                }
            }
        }
        if errors.is_empty() {
            Ok(claimed)
        } else {
            Err(SyncError::Children(errors))
        }
    }

    async fn patch_child(
        &self,
        t: &ChildType,
        informer: &Informer,
        child: &DynamicObject,
        patch: Value,
        action: &str,
    ) -> Result<ObjectRef, SyncError> {
        let writer = Writer::new(
            &self.client,
            &t.resource,
            child.metadata.namespace.as_deref().unwrap_or(""),
        );
        let name = child.metadata.name.as_deref().unwrap_or("");
        let _writing = informer.writing(crate::store::key_of(child));
        let updated = writer
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(|e| {
                api_err(
                    format!("{action} {} {}", t.resource.kind, describe(child)),
                    e,
                )
            })?;
        let object = updated.object().map_err(SyncError::Encode)?;
        informer.observe_written(updated);
        Ok(Arc::new(object))
    }

    async fn call_hook(
        &self,
        target: &HookTarget,
        hook: &'static str,
        parent: &DynamicObject,
        children: &ObjectRefMap<'_>,
        related: &ObjectMap,
        finalizing: bool,
    ) -> Result<CompositeHookResponse, SyncError> {
        let request = CompositeHookRequestRef {
            controller: &self.cfg.controller,
            parent,
            children,
            related,
            finalizing,
        };
        let body = serde_json::to_vec(&request).map_err(SyncError::Encode)?;
        let endpoint = target
            .current()
            .map_err(|source| SyncError::Hook { hook, source })?;
        let response = self
            .hooks
            .call_encoded::<CompositeHookResponse>(hook, &endpoint, body, Some(etag_key(parent)))
            .await
            .map_err(|source| SyncError::Hook { hook, source })?;
        if !response.unknown_fields.is_empty() {
            tracing::debug!(fields = ?response.unknown_fields, "hook response has unknown fields");
        }
        Ok(response.value)
    }

    async fn execute(&self, action: ChildAction) -> Result<(), SyncError> {
        let i = action.type_index();
        execute_action(
            &self.client,
            &self.cfg.children[i],
            &self.children[i],
            action,
            "child",
        )
        .await
    }

    /// One reconcile of the parent stored under `key`. Returns the requested resync delay.
    async fn sync(&self, key: &str) -> Result<Option<Duration>, SyncError> {
        let (namespace, name) = split_key(key);
        let Some(mut parent) = self.parents.get(namespace, name) else {
            tracing::debug!("parent is gone");
            if let Some(r) = &self.related {
                r.forget(key);
            }
            self.forget_parent(key);
            return Ok(None);
        };
        if !self.cfg.wants(&parent) {
            return Ok(None);
        }
        let cfg = &self.cfg;
        let has_finalize_hook = cfg.finalize_hook.is_some();

        // Keep our finalizer exactly while a finalize hook exists.
        match parent::finalizer_action(
            has_finalize_hook,
            parent::has_finalizer(&parent, &cfg.finalizer),
            parent::is_deleting(&parent),
        ) {
            FinalizerAction::Add => parent = Arc::new(self.set_finalizer(&parent, true).await?),
            FinalizerAction::Remove => parent = Arc::new(self.set_finalizer(&parent, false).await?),
            FinalizerAction::Keep => {}
        }
        if !cfg.wants(&parent) {
            return Ok(None);
        }

        let (hook, target, finalizing) = match parent::choose_hook(
            has_finalize_hook,
            parent::is_deleting(&parent),
            cfg.selects(&parent),
        ) {
            HookChoice::Sync => ("sync", &cfg.sync_hook, false),
            HookChoice::Finalize => match &cfg.finalize_hook {
                Some(t) => ("finalize", t, true),
                None => return Ok(None),
            },
        };

        let selector = parent::child_selector(&parent, cfg.generate_selector)?;
        let observed = self.claim_children(&parent, &selector).await?;

        let parent_ns = if cfg.parent.namespaced {
            parent.metadata.namespace.as_deref()
        } else {
            None
        };
        let request_children = children::request_children(
            target.version,
            parent_ns,
            &cfg.children,
            observed.iter().map(|o| &o.value),
        );
        let related = match &self.related {
            Some(r) => crate::related::for_hook(
                r.related_objects(key, &parent, cfg.parent.namespaced)
                    .await?,
                target.version,
                parent_ns,
            ),
            None => ObjectMap::new(),
        };
        let response = if self.rolls(&parent, finalizing) {
            self.sync_revisions(
                target,
                hook,
                &parent,
                &selector,
                request_children,
                related,
                &observed,
                finalizing,
            )
            .await?
        } else {
            self.call_hook(
                target,
                hook,
                &parent,
                &request_children,
                &related,
                finalizing,
            )
            .await?
        };
        let resync = parent::resync_delay(cfg.resync_period, response.resync_after());

        let uid = parent.metadata.uid.clone().unwrap_or_default();
        let desired = children::prepare_desired(
            response.children,
            &DesiredContext {
                parent_namespace: parent_ns,
                types: &cfg.children,
                selector: &selector,
                generated_uid: cfg.generate_selector.then_some(uid.as_str()),
            },
        )?;

        // A finalize hook that is done: our finalizer goes first. As upstream, the children are
        // then no longer managed (the parent no longer holds our finalizer), but the status the
        // hook returned is still written, so a parent kept by another finalizer shows it.
        if finalizing && response.finalized && parent::has_finalizer(&parent, &cfg.finalizer) {
            tracing::info!("finalized; removing finalizer");
            parent = Arc::new(self.set_finalizer(&parent, false).await?);
            if parent::is_deleting(&parent)
                && parent
                    .metadata
                    .finalizers
                    .as_ref()
                    .is_none_or(Vec::is_empty)
            {
                // That was the last finalizer: the parent is gone.
                return Ok(None);
            }
        }

        let mut errors = Vec::new();
        if parent::manages_children(&parent, &cfg.finalizer, has_finalize_hook) {
            let owner = claim::controller_ref(
                &cfg.parent.api_version,
                &cfg.parent.kind,
                parent.metadata.name.as_deref().unwrap_or(""),
                &uid,
            );
            let actions =
                children::plan_with(&cfg.children, &observed, &desired, &owner, &self.apply);
            for action in actions {
                if let Err(e) = self.execute(action).await {
                    errors.push(e);
                }
            }
        }

        // Every sync ends with the hook's status, unless the stored one already equals it; its
        // watch event syncs the parent again (unless `ignoreStatusChanges`), so the hook sees
        // what was committed.
        let has_status_subresource = cfg.parent.has_status_subresource;
        if let Some(status) =
            parent::status_to_write(&parent, response.status, has_status_subresource)
        {
            if !has_status_subresource {
                self.warn_no_status_subresource(key, &parent);
            }
            let patch = parent::status_patch(
                parent.metadata.resource_version.as_deref(),
                parent.data.get("status"),
                &status,
            );
            match self
                .patch_parent(
                    &parent,
                    &patch,
                    has_status_subresource,
                    "update status of",
                    |_| Ok(()),
                )
                .await
            {
                Ok(_) => {}
                Err(SyncError::Api { source, .. }) if code_of(&source) == Some(404) => {
                    return Ok(None)
                }
                Err(e) => errors.push(e),
            }
        }

        match errors.len() {
            0 => Ok(resync),
            1 => Err(errors.remove(0)),
            _ => Err(SyncError::Children(errors)),
        }
    }
}

/// Why each queued key was queued, for the reconcile span. Entries are taken when the key is
/// processed, so the map holds at most one entry per queued parent.
#[derive(Clone, Default)]
struct Reasons(Arc<std::sync::Mutex<std::collections::HashMap<String, &'static str>>>);

impl Reasons {
    fn note(&self, key: &str, reason: &'static str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), reason);
    }

    fn take(&self, key: &str) -> &'static str {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key)
            .unwrap_or("resync")
    }
}

/// Enqueues parents for watch events on the parent resource.
fn parent_handler(
    cfg: Arc<Config>,
    queue: WorkQueue,
    reasons: Reasons,
    guard: Arc<LoopGuard>,
) -> Handler {
    Arc::new(move |event: &Event| {
        let relevant = |o: &ObjectRef| cfg.wants(o);
        let enqueue = match (&event.old, &event.new) {
            (_, Some(new)) if !relevant(new) => false,
            (Some(old), Some(new)) => {
                parent::update_needs_sync(old, new, cfg.ignore_status_changes)
            }
            (None, Some(_)) => true,
            (Some(old), None) => relevant(old),
            (None, None) => false,
        };
        if enqueue {
            if let Some(obj) = event.object() {
                let key = crate::store::key_of(obj);
                let reason = match (&event.old, &event.new) {
                    (None, _) => "parent added",
                    (_, None) => "parent deleted",
                    _ => "parent updated",
                };
                reasons.note(&key, reason);
                guard.note(&key, crate::loopguard::cause_of(event));
                queue.add(key);
            }
        }
    })
}

/// Enqueues every parent the controller cares about after a hook endpoint changed (a Secret
/// or ConfigMap it reads), so a sync that failed for want of credentials is retried now.
fn credentials_handler(
    cfg: Arc<Config>,
    queue: WorkQueue,
    parents: Weak<Informer>,
    reasons: Reasons,
    guard: Arc<LoopGuard>,
) -> crate::credentials::OnChange {
    Arc::new(move || {
        let Some(parents) = parents.upgrade() else {
            return;
        };
        for parent in parents.read(|s| s.list_all()) {
            if cfg.wants(&parent) {
                let key = crate::store::key_of(&parent);
                reasons.note(&key, "hook credentials changed");
                guard.note(&key, Cause::Outside);
                queue.add(key);
            }
        }
    })
}

/// Enqueues the parents concerned by a watch event on a child resource: the controller owner
/// (old and new), or for orphans every parent whose selector matches.
fn child_handler(
    cfg: Arc<Config>,
    queue: WorkQueue,
    parents: Weak<Informer>,
    reasons: Reasons,
    guard: Arc<LoopGuard>,
) -> Handler {
    Arc::new(move |event: &Event| {
        let cause = crate::loopguard::cause_of(event);
        let owner_key = |child: &DynamicObject| -> Option<String> {
            let r = child
                .metadata
                .owner_references
                .as_ref()?
                .iter()
                .find(|r| r.controller == Some(true))?;
            let (group, _) = crate::discovery::split_api_version(&r.api_version);
            if r.kind != cfg.parent.kind || group != cfg.parent.group {
                return None;
            }
            let ns = if cfg.parent.namespaced {
                child.metadata.namespace.as_deref()
            } else {
                None
            };
            Some(object_key(ns, &r.name))
        };
        let mut keys: Vec<(String, Cause)> = Vec::new();
        for child in [&event.old, &event.new].into_iter().flatten() {
            if let Some(k) = owner_key(child) {
                keys.push((k, cause));
            }
        }
        // Orphans that might be adopted: only live ones, and only without a generated selector
        // (a generated selector names its parent by UID, which the hook must have created).
        if let Some(new) = &event.new {
            let orphan = controller_uid(new).is_none() && new.metadata.deletion_timestamp.is_none();
            if orphan && !cfg.generate_selector {
                if let Some(parents) = parents.upgrade() {
                    let labels = parent::labels_map(new);
                    // A parent's selector is in the head the cache reads without decoding it.
                    let selects = |p: &DynamicObject| {
                        parent::child_selector(p, false)
                            .is_ok_and(|sel| sel.matches(labels.as_ref()))
                    };
                    let candidates = parents.read(|s| {
                        if cfg.parent.namespaced {
                            let ns = new.metadata.namespace.as_deref().unwrap_or("");
                            s.list_namespace_where(ns, &selects)
                        } else {
                            s.list_all_where(&selects)
                        }
                    });
                    for p in candidates {
                        keys.push((crate::store::key_of(&p), Cause::Outside));
                    }
                }
            }
        }
        for (k, cause) in keys {
            reasons.note(&k, "child changed");
            guard.note(&k, cause);
            queue.add(k);
        }
    })
}

/// Shared services a controller needs.
#[derive(Clone)]
pub struct Services {
    /// API client.
    pub client: kube::Client,
    /// Shared informers.
    pub informers: Arc<InformerFactory>,
    /// Shared discovery (related-object rules resolve their resources through it).
    pub discovery: Arc<Discovery>,
    /// Hook client.
    pub hooks: HookClient,
    /// Event recorder.
    pub recorder: Recorder,
    /// How children are written.
    pub apply: crate::children::ApplyMode,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

/// A running CompositeController.
pub struct Controller {
    cfg: Arc<Config>,
    queue: WorkQueue,
    stop: CancellationToken,
    workers: JoinSet<()>,
    _subscriptions: Vec<Subscription>,
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("name", &self.cfg.name)
            .finish()
    }
}

impl Controller {
    /// Starts informers, event handlers and `workers` workers for `cfg`.
    pub fn start(cfg: Config, services: &Services, workers: usize) -> Controller {
        let cfg = Arc::new(cfg);
        let queue = WorkQueue::named(
            &format!("CompositeController-{}", cfg.name),
            services.informers.metrics(),
        );
        let stop = CancellationToken::new();
        let parents = services.informers.informer(&cfg.parent);
        let children: Vec<Arc<Informer>> = cfg
            .children
            .iter()
            .map(|c| services.informers.informer(&c.resource))
            .collect();
        services.recorder.record(
            cfg.regarding.clone(),
            EventType::Normal,
            reason::STARTING,
            format!("Starting controller: {}", cfg.name),
        );
        tracing::info!(controller = %cfg.name, parent = %cfg.parent.plural, "starting CompositeController");

        let guard = Arc::new(LoopGuard::default());
        let syncer = Arc::new(Syncer {
            cfg: cfg.clone(),
            metrics: services.informers.metrics().clone(),
            client: services.client.clone(),
            hooks: services.hooks.clone(),
            recorder: services.recorder.clone(),
            apply: services.apply.clone(),
            parents: parents.clone(),
            children: children.clone(),
            revisions: cfg
                .rolling
                .as_ref()
                .map(|r| services.informers.informer(&r.revisions)),
            related: cfg.customize_hook.clone().map(|hook| {
                let q = queue.clone();
                let g = guard.clone();
                crate::related::Customizer::new(
                    hook,
                    cfg.controller.clone(),
                    services.hooks.clone(),
                    services.discovery.clone(),
                    services.informers.clone(),
                    Arc::new(move |key: &str| {
                        g.note(key, Cause::Outside);
                        q.add(key.to_string())
                    }),
                )
            }),
            warned_no_status: Default::default(),
            guard: guard.clone(),
        });
        // Subscribing replays cached objects and then follows the watch, so no event is
        // missed; workers only start once every cache holds its initial list.
        let reasons = Reasons::default();
        let credentials = crate::credentials::CredentialWatch::start(
            &services.informers,
            &cfg.name,
            cfg.hook_targets().map(|t| t.live.clone()).collect(),
            credentials_handler(
                cfg.clone(),
                queue.clone(),
                Arc::downgrade(&parents),
                reasons.clone(),
                guard.clone(),
            ),
        );
        let mut subscriptions = Vec::with_capacity(children.len() + 1);
        for c in &children {
            subscriptions.push(c.subscribe(child_handler(
                cfg.clone(),
                queue.clone(),
                Arc::downgrade(&parents),
                reasons.clone(),
                guard.clone(),
            )));
        }
        subscriptions.push(parents.subscribe(parent_handler(
            cfg.clone(),
            queue.clone(),
            reasons.clone(),
            guard,
        )));
        let mut set = JoinSet::new();
        {
            let queue = queue.clone();
            let stop = stop.clone();
            let workers = workers.max(1);
            set.spawn(async move {
                // Secrets and ConfigMaps are followed while the controller runs.
                let _credentials = credentials;
                let synced = async {
                    syncer.parents.wait_synced().await;
                    for c in &syncer.children {
                        c.wait_synced().await;
                    }
                    if let Some(r) = &syncer.revisions {
                        r.wait_synced().await;
                    }
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = synced => {}
                }
                let mut pool = JoinSet::new();
                for _ in 0..workers {
                    pool.spawn(worker(syncer.clone(), queue.clone(), reasons.clone()));
                }
                while pool.join_next().await.is_some() {}
            });
        }
        Controller {
            cfg,
            queue,
            stop,
            workers: set,
            _subscriptions: subscriptions,
        }
    }

    /// The controller's configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Stops taking work and waits up to `grace` for in-flight syncs to finish.
    pub async fn stop(mut self, grace: Duration, recorder: &Recorder) {
        tracing::info!(controller = %self.cfg.name, "stopping CompositeController");
        recorder.record(
            self.cfg.regarding.clone(),
            EventType::Normal,
            reason::STOPPING,
            format!("Stopping controller: {}", self.cfg.name),
        );
        self.stop.cancel();
        self.queue.shutdown();
        let drain = async { while self.workers.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(controller = %self.cfg.name, "in-flight syncs did not finish in time; aborting them");
            self.workers.abort_all();
        }
    }
}

async fn worker(syncer: Arc<Syncer>, queue: WorkQueue, reasons: Reasons) {
    while let Some(key) = queue.get().await {
        let reason = reasons.take(&key);
        let (namespace, name) = split_key(&key);
        if crate::loopguard::hold_back(
            &syncer.guard,
            &queue,
            &key,
            &syncer.cfg.name,
            &syncer.recorder,
            &syncer.metrics,
            || syncer.parents.get(namespace, name),
        ) {
            queue.done(&key);
            continue;
        }
        let span = tracing::info_span!("sync", controller = %syncer.cfg.name, kind = %syncer.cfg.parent.kind, object = %key, reason);
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
                    reasons.note(&key, "resync");
                    queue.add_after(key.clone(), delay);
                }
            }
            Err(error) => {
                if let Some(delay) = error.retry_after() {
                    tracing::info!(?delay, "hook asked to retry later");
                    reasons.note(&key, "retry after");
                    queue.add_after(key.clone(), delay);
                } else {
                    if error.reportable() {
                        tracing::warn!(error = %error_chain(&error), "sync failed");
                        let (namespace, name) = split_key(&key);
                        if let Some(parent) = syncer.parents.get(namespace, name) {
                            syncer.recorder.record(
                                Regarding::of(&parent),
                                EventType::Warning,
                                reason::SYNC_ERROR,
                                format!("Sync error: {}", error_chain(&error)),
                            );
                        }
                    } else {
                        tracing::debug!(error = %error_chain(&error), "sync will be retried");
                    }
                    reasons.note(&key, "retry");
                    queue.add_rate_limited(key.clone());
                }
            }
        }
        queue.done(&key);
    }
}

pub use metacontroller_hooks::error_chain;

#[cfg(test)]
mod tests {
    use super::*;
    use metacontroller_hooks::ObjectKey;
    use serde_json::json;

    #[test]
    fn the_etag_key_is_the_one_a_request_body_gives() {
        for value in [
            json!({"apiVersion": "example.com/v1", "kind": "Thing",
                "metadata": {"name": "a", "namespace": "ns"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Thing",
                "metadata": {"name": "b", "namespace": "ns"}}),
            json!({"apiVersion": "example.com/v1", "kind": "Cluster", "metadata": {"name": "a"}}),
        ] {
            let obj: DynamicObject = serde_json::from_value(value.clone()).expect("object");
            let from_body = ObjectKey::from_request(&json!({"parent": value})).expect("key");
            assert_eq!(etag_key(&obj), from_body);
        }
        let key = |name: &str| {
            etag_key(
                &serde_json::from_value(json!({"kind": "Thing", "metadata": {"name": name}}))
                    .expect("object"),
            )
        };
        assert_ne!(key("a"), key("b"));
    }
}
