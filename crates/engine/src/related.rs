//! Related objects: the customize hook, its rules, and the fan-in index that wakes exactly
//! the parents whose rules select a changed object.
//!
//! ```text
//!  sync(parent) ──► customize hook (cached per parent UID + generation)
//!                      │ relatedResources[]
//!                      ▼
//!                 check_rule() ──► Rule ──► objects from the shared informer caches
//!                                    │
//!                                    └──► RelatedIndex.set(parent key, rules)
//!
//!  related informer event ──► RelatedIndex.candidates(object) ──► verify rules ──► enqueue
//! ```
//!
//! The index keeps, per related resource type, exact names → parents, one required
//! `label=value` pair → parents, and a small residual set for selectors without an equality,
//! so an event costs a few hash lookups instead of evaluating every parent's rules.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::DynamicObject;
use metacontroller_api::hook::{
    child_map_key, insert_object, uniform_to_relative, CustomizeHookRequest, CustomizeHookResponse,
    ObjectMap, RelatedResourceRule,
};
use metacontroller_api::HookVersion;
use metacontroller_hooks::{HookClient, HookError};
use metacontroller_merge::selector::{LabelSelector, SelectorError};
use serde_json::{Map, Value};

use crate::credentials::HookTarget;
use crate::discovery::{Discovery, DiscoveryError, ResourceInfo};
use crate::informer::{Informer, InformerFactory, Subscription};
use crate::store::{Event, ObjectRef};

/// How long a sync waits for a new related informer's initial list before retrying later.
const SYNC_WAIT: Duration = Duration::from_secs(10);

/// Why a related-resource rule is rejected (upstream's combination rules).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    /// `names` cannot be combined with a selector.
    #[error("related rule for {0} cannot have both names and labelSelector/namespaceSelector")]
    NamesWithSelector(String),
    /// `namespace` cannot be combined with `namespaceSelector`.
    #[error("related rule for {0} cannot have both namespace and namespaceSelector")]
    NamespaceWithNamespaceSelector(String),
    /// A v1 hook of a namespaced parent may not use `namespaceSelector`.
    #[error("related rule for {0}: namespaceSelector cannot be used by a namespaced parent with a v1 hook")]
    NamespaceSelectorInV1(String),
    /// `namespaceSelector` on a cluster-scoped resource.
    #[error("related rule for {0}: namespaceSelector is only supported for namespaced resources")]
    NamespaceSelectorClusterScoped(String),
    /// A v1 hook of a namespaced parent asked for another namespace.
    #[error("related rule for {resource}: namespace {namespace:?} differs from the parent's namespace {parent_namespace:?} (v1 hooks only see their parent's namespace)")]
    OtherNamespace {
        /// `apiVersion/resource`.
        resource: String,
        /// The rule's namespace.
        namespace: String,
        /// The parent's namespace.
        parent_namespace: String,
    },
    /// The resource cannot be listed and watched, so it cannot be cached.
    #[error("related resource {0} does not support list and watch")]
    Unwatchable(String),
    /// A selector does not parse.
    #[error("related rule for {resource}: invalid {which}: {error}")]
    Selector {
        /// `apiVersion/resource`.
        resource: String,
        /// `labelSelector` or `namespaceSelector`.
        which: &'static str,
        /// The parse error.
        error: String,
    },
}

/// Why related objects could not be gathered; the sync stops before any write.
#[derive(Debug, thiserror::Error)]
pub enum CustomizeError {
    /// The customize hook failed.
    #[error("customize hook failed")]
    Hook(#[source] HookError),
    /// A rule names a resource discovery does not know.
    #[error("can't resolve related resource {resource:?} in {api_version:?}")]
    Resolve {
        /// The rule's apiVersion.
        api_version: String,
        /// The rule's resource.
        resource: String,
        /// The cause.
        #[source]
        source: DiscoveryError,
    },
    /// A rule is invalid.
    #[error("invalid customize hook response")]
    Rule(#[source] RuleError),
    /// A related informer has not delivered its initial list yet.
    #[error("related resource {0} is not synced yet")]
    NotSynced(String),
    /// Encoding the request failed.
    #[error("encoding customize request failed")]
    Encode(#[source] serde_json::Error),
}

/// Which objects of a related type a rule selects.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Objects whose labels match (everything when the rule has no selector).
    Labels(LabelSelector),
    /// Objects with one of these names.
    Names(Vec<String>),
    /// Objects whose labels match, in namespaces whose labels match.
    NamespaceSelector {
        /// Over the objects' labels.
        objects: LabelSelector,
        /// Over the namespaces' labels.
        namespaces: LabelSelector,
    },
}

/// A validated related-resource rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// The related resource type.
    pub resource: Arc<ResourceInfo>,
    /// Only objects in this namespace (namespaced types only).
    pub namespace: Option<String>,
    /// The selection.
    pub selection: Selection,
}

fn labels_of(obj: &DynamicObject) -> Option<Map<String, Value>> {
    crate::parent::labels_map(obj)
}

impl Rule {
    /// Whether the rule selects `obj` (an object of [`Rule::resource`]); `namespace_labels`
    /// looks up a namespace's labels for `namespaceSelector` rules. Reads only the object's
    /// name, namespace and labels: the cache filters on those before decoding objects.
    pub fn matches(
        &self,
        obj: &DynamicObject,
        namespace_labels: &dyn Fn(&str) -> Option<Map<String, Value>>,
    ) -> bool {
        let ns = obj.metadata.namespace.as_deref().unwrap_or("");
        if let Some(want) = &self.namespace {
            if self.resource.namespaced && want != ns {
                return false;
            }
        }
        match &self.selection {
            Selection::Labels(sel) => sel.matches(labels_of(obj).as_ref()),
            Selection::Names(names) => {
                let name = obj.metadata.name.as_deref().unwrap_or("");
                names.iter().any(|n| n == name)
            }
            Selection::NamespaceSelector {
                objects,
                namespaces,
            } => {
                objects.matches(labels_of(obj).as_ref())
                    && namespaces.matches(namespace_labels(ns).as_ref())
            }
        }
    }

    fn label_selector(&self) -> Option<&LabelSelector> {
        match &self.selection {
            Selection::Labels(s) => Some(s),
            Selection::NamespaceSelector { objects, .. } => Some(objects),
            Selection::Names(_) => None,
        }
    }
}

fn parse_selector(
    resource: &str,
    which: &'static str,
    sel: Option<&metacontroller_api::meta::LabelSelector>,
) -> Result<LabelSelector, RuleError> {
    let Some(sel) = sel else {
        return Ok(LabelSelector::everything());
    };
    let bad = |error: String| RuleError::Selector {
        resource: resource.to_string(),
        which,
        error,
    };
    let json = serde_json::to_value(sel).map_err(|e| bad(e.to_string()))?;
    LabelSelector::from_json(&json).map_err(|e: SelectorError| bad(e.to_string()))
}

/// Validates one rule of a customize reply against upstream's combination rules and the
/// hook version's scoping: a namespaced parent with a `v1` hook only sees its own namespace.
pub fn check_rule(
    rule: &RelatedResourceRule,
    resource: Arc<ResourceInfo>,
    version: HookVersion,
    parent_namespace: Option<&str>,
) -> Result<Rule, RuleError> {
    let name = format!("{}/{}", rule.api_version, rule.resource);
    let has_names = !rule.names.is_empty();
    let namespace = rule.namespace.clone().filter(|ns| !ns.is_empty());
    if has_names && (rule.label_selector.is_some() || rule.namespace_selector.is_some()) {
        return Err(RuleError::NamesWithSelector(name));
    }
    if namespace.is_some() && rule.namespace_selector.is_some() {
        return Err(RuleError::NamespaceWithNamespaceSelector(name));
    }
    if !(resource.supports("list") && resource.supports("watch")) {
        return Err(RuleError::Unwatchable(name));
    }
    let parent_namespace = parent_namespace.filter(|ns| !ns.is_empty());
    let v1_scoped = version == HookVersion::V1 && parent_namespace.is_some();
    if rule.namespace_selector.is_some() {
        if v1_scoped {
            return Err(RuleError::NamespaceSelectorInV1(name));
        }
        if !resource.namespaced {
            return Err(RuleError::NamespaceSelectorClusterScoped(name));
        }
    }
    let effective_namespace = if !resource.namespaced {
        None
    } else if v1_scoped {
        let parent_ns = parent_namespace.unwrap_or_default();
        if let Some(ns) = &namespace {
            if ns != parent_ns {
                return Err(RuleError::OtherNamespace {
                    resource: name,
                    namespace: ns.clone(),
                    parent_namespace: parent_ns.to_string(),
                });
            }
        }
        Some(parent_ns.to_string())
    } else {
        namespace
    };
    let selection = if has_names {
        Selection::Names(rule.names.clone())
    } else if rule.namespace_selector.is_some() {
        Selection::NamespaceSelector {
            objects: parse_selector(&name, "labelSelector", rule.label_selector.as_ref())?,
            namespaces: parse_selector(
                &name,
                "namespaceSelector",
                rule.namespace_selector.as_ref(),
            )?,
        }
    } else {
        Selection::Labels(parse_selector(
            &name,
            "labelSelector",
            rule.label_selector.as_ref(),
        )?)
    };
    Ok(Rule {
        resource,
        namespace: effective_namespace,
        selection,
    })
}

/// The key of a resource type in the index.
fn type_key(resource: &ResourceInfo) -> String {
    format!("{}/{}", resource.api_version, resource.plural)
}

#[derive(Debug, Default)]
struct TypeIndex {
    by_name: HashMap<String, HashSet<String>>,
    by_label: HashMap<(String, String), HashSet<String>>,
    residual: HashSet<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Slot {
    Name(String),
    Label(String, String),
    Residual,
}

impl TypeIndex {
    fn bucket(&mut self, slot: &Slot) -> &mut HashSet<String> {
        match slot {
            Slot::Name(n) => self.by_name.entry(n.clone()).or_default(),
            Slot::Label(k, v) => self.by_label.entry((k.clone(), v.clone())).or_default(),
            Slot::Residual => &mut self.residual,
        }
    }

    fn remove(&mut self, slot: &Slot, parent: &str) {
        match slot {
            Slot::Name(n) => {
                if let Some(set) = self.by_name.get_mut(n) {
                    set.remove(parent);
                    if set.is_empty() {
                        self.by_name.remove(n);
                    }
                }
            }
            Slot::Label(k, v) => {
                let key = (k.clone(), v.clone());
                if let Some(set) = self.by_label.get_mut(&key) {
                    set.remove(parent);
                    if set.is_empty() {
                        self.by_label.remove(&key);
                    }
                }
            }
            Slot::Residual => {
                self.residual.remove(parent);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.by_name.is_empty() && self.by_label.is_empty() && self.residual.is_empty()
    }
}

/// Which parents' rules may select an object: a plain synchronous struct, updated on every
/// sync that evaluates rules and read by related informers' event handlers.
#[derive(Debug, Default)]
pub struct RelatedIndex {
    types: HashMap<String, TypeIndex>,
    parents: HashMap<String, Vec<(String, Slot, Arc<Rule>)>>,
    namespace_selecting: HashSet<String>,
}

impl RelatedIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the rules of `parent` (a work-queue key).
    pub fn set(&mut self, parent: &str, rules: &[Arc<Rule>]) {
        self.remove(parent);
        let mut entries = Vec::new();
        for rule in rules {
            let tk = type_key(&rule.resource);
            let index = self.types.entry(tk.clone()).or_default();
            let slots: Vec<Slot> = match (&rule.selection, rule.label_selector()) {
                (Selection::Names(names), _) => names.iter().cloned().map(Slot::Name).collect(),
                (_, Some(sel)) => match sel.required_equalities().into_iter().next() {
                    Some((k, v)) => vec![Slot::Label(k, v)],
                    None => vec![Slot::Residual],
                },
                (_, None) => vec![Slot::Residual],
            };
            for slot in slots {
                index.bucket(&slot).insert(parent.to_string());
                entries.push((tk.clone(), slot, rule.clone()));
            }
            if matches!(rule.selection, Selection::NamespaceSelector { .. }) {
                self.namespace_selecting.insert(parent.to_string());
            }
        }
        if !entries.is_empty() {
            self.parents.insert(parent.to_string(), entries);
        }
    }

    /// Forgets `parent`.
    pub fn remove(&mut self, parent: &str) {
        self.namespace_selecting.remove(parent);
        let Some(entries) = self.parents.remove(parent) else {
            return;
        };
        for (tk, slot, _) in entries {
            if let Some(index) = self.types.get_mut(&tk) {
                index.remove(&slot, parent);
                if index.is_empty() {
                    self.types.remove(&tk);
                }
            }
        }
    }

    /// The parents whose rules select `obj` of `resource`: candidates from the index, each
    /// verified against its own rules.
    pub fn parents_selecting(
        &self,
        resource: &ResourceInfo,
        obj: &DynamicObject,
        namespace_labels: &dyn Fn(&str) -> Option<Map<String, Value>>,
    ) -> Vec<String> {
        let tk = type_key(resource);
        let Some(index) = self.types.get(&tk) else {
            return Vec::new();
        };
        let mut candidates: HashSet<&String> = index.residual.iter().collect();
        if let Some(name) = obj.metadata.name.as_deref() {
            if let Some(set) = index.by_name.get(name) {
                candidates.extend(set);
            }
        }
        if let Some(labels) = &obj.metadata.labels {
            for (k, v) in labels {
                if let Some(set) = index.by_label.get(&(k.clone(), v.clone())) {
                    candidates.extend(set);
                }
            }
        }
        let mut out: Vec<String> = candidates
            .into_iter()
            .filter(|p| {
                self.parents.get(*p).is_some_and(|entries| {
                    entries
                        .iter()
                        .any(|(t, _, rule)| *t == tk && rule.matches(obj, namespace_labels))
                })
            })
            .cloned()
            .collect();
        out.sort();
        out
    }

    /// Parents with a `namespaceSelector` rule (woken when a namespace's labels change).
    pub fn namespace_selecting(&self) -> Vec<String> {
        self.namespace_selecting.iter().cloned().collect()
    }

    /// Number of parents with rules.
    pub fn len(&self) -> usize {
        self.parents.len()
    }

    /// Whether no parent has rules.
    pub fn is_empty(&self) -> bool {
        self.parents.is_empty()
    }
}

/// Re-keys a uniform (`v2`) related map for a sync hook of `version`.
pub fn for_hook(
    uniform: ObjectMap,
    version: HookVersion,
    parent_namespace: Option<&str>,
) -> ObjectMap {
    match version {
        HookVersion::V2 => uniform,
        _ => uniform_to_relative(&uniform, parent_namespace),
    }
}

/// Enqueues a work-queue key.
pub type Enqueue = Arc<dyn Fn(&str) + Send + Sync>;

struct Watched {
    informer: Arc<Informer>,
    _subscription: Subscription,
}

struct CachedRules {
    uid: String,
    version: String,
    rules: Arc<Vec<RelatedResourceRule>>,
}

/// What a cached customize reply is valid for: the parent's `metadata.generation`, or, for
/// kinds that keep none (ConfigMaps, for instance), its `resourceVersion`, so a label change
/// still asks the hook again.
fn cache_version(parent: &DynamicObject) -> String {
    match parent.metadata.generation {
        Some(g) if g > 0 => format!("g{g}"),
        _ => format!(
            "rv{}",
            parent.metadata.resource_version.as_deref().unwrap_or("")
        ),
    }
}

#[derive(Default)]
struct State {
    cache: HashMap<String, CachedRules>,
    watched: HashMap<String, Arc<Watched>>,
    namespaces: Option<Arc<Watched>>,
}

/// The customize hook of one controller and the related objects it declares.
pub struct Customizer {
    hook: HookTarget,
    controller: Value,
    hooks: HookClient,
    discovery: Arc<Discovery>,
    informers: Arc<InformerFactory>,
    state: Mutex<State>,
    index: Arc<Mutex<RelatedIndex>>,
    enqueue: Enqueue,
}

impl std::fmt::Debug for Customizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Customizer").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Customizer {
    /// A customizer calling `hook` with `controller` (the controller object as JSON);
    /// `enqueue` wakes a parent by its work-queue key.
    pub fn new(
        hook: HookTarget,
        controller: Value,
        hooks: HookClient,
        discovery: Arc<Discovery>,
        informers: Arc<InformerFactory>,
        enqueue: Enqueue,
    ) -> Arc<Self> {
        Arc::new(Customizer {
            hook,
            controller,
            hooks,
            discovery,
            informers,
            state: Mutex::default(),
            index: Arc::default(),
            enqueue,
        })
    }

    /// The fan-in index (for tests and metrics).
    pub fn index(&self) -> &Arc<Mutex<RelatedIndex>> {
        &self.index
    }

    /// Forgets a parent that is gone: its cached rules and its index entries.
    pub fn forget(&self, key: &str) {
        lock(&self.state).cache.remove(key);
        lock(&self.index).remove(key);
    }

    async fn rules_for(
        &self,
        key: &str,
        parent: &DynamicObject,
    ) -> Result<Arc<Vec<RelatedResourceRule>>, CustomizeError> {
        let uid = parent.metadata.uid.clone().unwrap_or_default();
        let version = cache_version(parent);
        if let Some(c) = lock(&self.state).cache.get(key) {
            if c.uid == uid && c.version == version {
                return Ok(c.rules.clone());
            }
        }
        let request = CustomizeHookRequest {
            controller: self.controller.clone(),
            parent: serde_json::to_value(parent).map_err(CustomizeError::Encode)?,
        };
        let body = serde_json::to_value(&request).map_err(CustomizeError::Encode)?;
        let endpoint = self.hook.current().map_err(CustomizeError::Hook)?;
        let response = self
            .hooks
            .call::<CustomizeHookResponse>("customize", &endpoint, &body)
            .await
            .map_err(CustomizeError::Hook)?;
        let rules = Arc::new(response.value.related_resources);
        lock(&self.state).cache.insert(
            key.to_string(),
            CachedRules {
                uid,
                version,
                rules: rules.clone(),
            },
        );
        Ok(rules)
    }

    fn namespace_labels(&self) -> impl Fn(&str) -> Option<Map<String, Value>> + 'static {
        let ns = lock(&self.state).namespaces.clone();
        move |name: &str| {
            ns.as_ref()
                .and_then(|w| w.informer.get("", name))
                .and_then(|o| labels_of(&o))
        }
    }

    fn watch(self: &Arc<Self>, resource: &Arc<ResourceInfo>) -> Arc<Watched> {
        let tk = type_key(resource);
        if let Some(w) = lock(&self.state).watched.get(&tk) {
            return w.clone();
        }
        let informer = self.informers.informer(resource);
        let weak = Arc::downgrade(self);
        let res = resource.clone();
        let subscription = informer.subscribe(Arc::new(move |event: &Event| {
            if let Some(this) = weak.upgrade() {
                this.on_related_event(&res, event);
            }
        }));
        let watched = Arc::new(Watched {
            informer,
            _subscription: subscription,
        });
        lock(&self.state)
            .watched
            .entry(tk)
            .or_insert(watched)
            .clone()
    }

    async fn watch_namespaces(self: &Arc<Self>) -> Result<Arc<Watched>, CustomizeError> {
        if let Some(w) = lock(&self.state).namespaces.clone() {
            return Ok(w);
        }
        let resource = self
            .discovery
            .resolve("v1", "namespaces")
            .await
            .map_err(|source| CustomizeError::Resolve {
                api_version: "v1".into(),
                resource: "namespaces".into(),
                source,
            })?;
        let informer = self.informers.informer(&resource);
        let weak = Arc::downgrade(self);
        let subscription = informer.subscribe(Arc::new(move |event: &Event| {
            let Some(this) = weak.upgrade() else { return };
            let labels_changed = match (&event.old, &event.new) {
                (Some(o), Some(n)) => o.metadata.labels != n.metadata.labels,
                _ => true,
            };
            if labels_changed {
                let parents = lock(&this.index).namespace_selecting();
                for p in parents {
                    (this.enqueue)(&p);
                }
            }
        }));
        let watched = Arc::new(Watched {
            informer,
            _subscription: subscription,
        });
        Ok(lock(&self.state).namespaces.get_or_insert(watched).clone())
    }

    fn on_related_event(&self, resource: &ResourceInfo, event: &Event) {
        if let (Some(old), Some(new)) = (&event.old, &event.new) {
            if old.metadata.resource_version == new.metadata.resource_version
                && old.metadata.resource_version.is_some()
            {
                return;
            }
        }
        let ns_labels = self.namespace_labels();
        let mut parents: Vec<String> = Vec::new();
        {
            let index = lock(&self.index);
            for obj in [&event.old, &event.new].into_iter().flatten() {
                parents.extend(index.parents_selecting(resource, obj, &ns_labels));
            }
        }
        parents.sort();
        parents.dedup();
        for p in parents {
            (self.enqueue)(&p);
        }
    }

    /// The related objects of `parent` (queued under `key`) as a uniform (`v2`-keyed) map:
    /// calls the customize hook unless its reply for this UID and generation is cached
    /// (resourceVersion for kinds without a generation),
    /// validates the rules, reads the objects from shared caches and updates the index.
    pub async fn related_objects(
        self: &Arc<Self>,
        key: &str,
        parent: &DynamicObject,
        parent_namespaced: bool,
    ) -> Result<ObjectMap, CustomizeError> {
        let raw = self.rules_for(key, parent).await?;
        let parent_ns = if parent_namespaced {
            parent.metadata.namespace.as_deref()
        } else {
            None
        };
        let mut rules = Vec::with_capacity(raw.len());
        for r in raw.iter() {
            let resource = self
                .discovery
                .resolve(&r.api_version, &r.resource)
                .await
                .map_err(|source| CustomizeError::Resolve {
                    api_version: r.api_version.clone(),
                    resource: r.resource.clone(),
                    source,
                })?;
            let rule = check_rule(r, resource, self.hook.version, parent_ns)
                .map_err(CustomizeError::Rule)?;
            rules.push(Arc::new(rule));
        }
        if rules
            .iter()
            .any(|r| matches!(r.selection, Selection::NamespaceSelector { .. }))
        {
            let ns = self.watch_namespaces().await?;
            wait_synced(&ns.informer).await?;
        }
        let mut watched = Vec::with_capacity(rules.len());
        for rule in &rules {
            let w = self.watch(&rule.resource);
            wait_synced(&w.informer).await?;
            watched.push(w);
        }
        lock(&self.index).set(key, &rules);

        let ns_labels = self.namespace_labels();
        let mut map = ObjectMap::new();
        for (rule, w) in rules.iter().zip(&watched) {
            map.entry(child_map_key(
                &rule.resource.kind,
                &rule.resource.api_version,
            ))
            .or_default();
            for obj in list_selected(rule, &w.informer, &ns_labels) {
                match serde_json::to_value(&*obj) {
                    Ok(value) => {
                        if let Err(error) =
                            insert_object(&mut map, HookVersion::V2, parent_ns, value)
                        {
                            tracing::debug!(%error, "skipping related object without identity");
                        }
                    }
                    Err(e) => return Err(CustomizeError::Encode(e)),
                }
            }
        }
        Ok(map)
    }
}

async fn wait_synced(informer: &Informer) -> Result<(), CustomizeError> {
    if informer.has_synced() {
        return Ok(());
    }
    tokio::time::timeout(SYNC_WAIT, informer.wait_synced())
        .await
        .map_err(|_| CustomizeError::NotSynced(type_key(informer.resource())))
}

/// The cached objects a rule selects, reading only the namespaces it can match.
fn list_selected(
    rule: &Rule,
    informer: &Informer,
    namespace_labels: &dyn Fn(&str) -> Option<Map<String, Value>>,
) -> Vec<ObjectRef> {
    // `Rule::matches` reads only the name, namespace and labels, which the cache can check
    // without decoding the objects it rejects.
    let keep = |o: &DynamicObject| rule.matches(o, namespace_labels);
    let mut out: Vec<ObjectRef> = informer.read(|s| {
        if !rule.resource.namespaced {
            return s.list_namespace_where("", &keep);
        }
        if let Some(ns) = &rule.namespace {
            if let Selection::Names(names) = &rule.selection {
                return names
                    .iter()
                    .filter_map(|n| s.get(ns, n))
                    .filter(|o| keep(o))
                    .collect();
            }
            return s.list_namespace_where(ns, &keep);
        }
        s.list_all_where(&keep)
    });
    out.sort_by_key(|o| crate::store::key_of(o));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn resource(plural: &str, kind: &str, namespaced: bool) -> Arc<ResourceInfo> {
        Arc::new(ResourceInfo {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            has_status_subresource: false,
            verbs: vec!["list".into(), "watch".into()],
        })
    }

    fn rule(v: Value) -> RelatedResourceRule {
        serde_json::from_value(v).expect("rule")
    }

    fn cm(ns: &str, name: &str, labels: Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"namespace": ns, "name": name, "labels": labels}
        }))
        .expect("object")
    }

    fn no_ns(_: &str) -> Option<Map<String, Value>> {
        None
    }

    #[test]
    fn combination_rules_follow_upstream() {
        let cms = resource("configmaps", "ConfigMap", true);
        let check = |v: Value, version, ns: Option<&str>| {
            check_rule(&rule(v), cms.clone(), version, ns).map(|_| ())
        };
        use HookVersion::{V1, V2};
        assert!(matches!(
            check(
                json!({"apiVersion":"v1","resource":"configmaps","names":["a"],"labelSelector":{}}),
                V2,
                None
            ),
            Err(RuleError::NamesWithSelector(_))
        ));
        assert!(matches!(
            check(
                json!({"apiVersion":"v1","resource":"configmaps","names":["a"],"namespaceSelector":{}}),
                V2,
                None
            ),
            Err(RuleError::NamesWithSelector(_))
        ));
        assert!(matches!(
            check(
                json!({"apiVersion":"v1","resource":"configmaps","namespace":"x","namespaceSelector":{}}),
                V2,
                None
            ),
            Err(RuleError::NamespaceWithNamespaceSelector(_))
        ));
        assert!(matches!(
            check(
                json!({"apiVersion":"v1","resource":"configmaps","namespaceSelector":{}}),
                V1,
                Some("p")
            ),
            Err(RuleError::NamespaceSelectorInV1(_))
        ));
        assert!(matches!(
            check(
                json!({"apiVersion":"v1","resource":"configmaps","namespace":"x","names":["a"]}),
                V1,
                Some("p")
            ),
            Err(RuleError::OtherNamespace { .. })
        ));
        assert!(check(
            json!({"apiVersion":"v1","resource":"configmaps","namespace":"x","names":["a"]}),
            V2,
            Some("p")
        )
        .is_ok());
        assert!(check(json!({"apiVersion":"v1","resource":"configmaps","namespace":"x","labelSelector":{"matchLabels":{"a":"b"}}}), V1, None).is_ok());
        let nodes = resource("nodes", "Node", false);
        assert!(matches!(
            check_rule(
                &rule(json!({"apiVersion":"v1","resource":"nodes","namespaceSelector":{}})),
                nodes,
                V2,
                None
            ),
            Err(RuleError::NamespaceSelectorClusterScoped(_))
        ));
        let mut unlistable = (*cms).clone();
        unlistable.verbs = vec!["get".into()];
        assert!(matches!(
            check_rule(
                &rule(json!({"apiVersion":"v1","resource":"configmaps"})),
                Arc::new(unlistable),
                V2,
                None
            ),
            Err(RuleError::Unwatchable(_))
        ));
        assert!(matches!(
            check(
                json!({"apiVersion":"v1","resource":"configmaps","labelSelector":{"matchLabels":{"a":"-"}}}),
                V2,
                None
            ),
            Err(RuleError::Selector { .. })
        ));
    }

    #[test]
    fn v1_scopes_a_namespaced_parent_to_its_namespace() {
        let cms = resource("configmaps", "ConfigMap", true);
        let r = check_rule(
            &rule(json!({"apiVersion":"v1","resource":"configmaps"})),
            cms.clone(),
            HookVersion::V1,
            Some("p"),
        )
        .expect("valid");
        assert!(r.matches(&cm("p", "a", json!({})), &no_ns));
        assert!(!r.matches(&cm("q", "a", json!({})), &no_ns));
        let r2 = check_rule(
            &rule(json!({"apiVersion":"v1","resource":"configmaps"})),
            cms,
            HookVersion::V2,
            Some("p"),
        )
        .expect("valid");
        assert!(r2.matches(&cm("q", "a", json!({})), &no_ns));
    }

    #[test]
    fn index_finds_exactly_the_selecting_parents() {
        fn found(index: &RelatedIndex, r: &ResourceInfo, o: &DynamicObject) -> Vec<String> {
            index.parents_selecting(r, o, &no_ns)
        }
        let cms = resource("configmaps", "ConfigMap", true);
        let mk = |v: Value| {
            Arc::new(check_rule(&rule(v), cms.clone(), HookVersion::V2, None).expect("valid"))
        };
        let mut index = RelatedIndex::new();
        index.set(
            "by-name",
            &[mk(
                json!({"apiVersion":"v1","resource":"configmaps","namespace":"a","names":["src"]}),
            )],
        );
        index.set(
            "by-label",
            &[mk(json!({"apiVersion":"v1","resource":"configmaps","labelSelector":{"matchLabels":{"app":"x"}}}))],
        );
        index.set(
            "residual",
            &[mk(json!({"apiVersion":"v1","resource":"configmaps","labelSelector":{"matchExpressions":[{"key":"tier","operator":"Exists"}]}}))],
        );
        for i in 0..100 {
            index.set(
                &format!("other-{i}"),
                &[mk(json!({"apiVersion":"v1","resource":"configmaps","namespace":"a","names":[format!("n{i}")]}))],
            );
        }
        assert_eq!(index.len(), 103);
        assert_eq!(found(&index, &cms, &cm("a", "src", json!({}))), ["by-name"]);
        assert!(found(&index, &cms, &cm("b", "src", json!({}))).is_empty());
        assert_eq!(
            found(&index, &cms, &cm("b", "z", json!({"app": "x"}))),
            ["by-label"]
        );
        assert_eq!(
            found(
                &index,
                &cms,
                &cm("b", "z", json!({"app": "x", "tier": "1"}))
            ),
            ["by-label", "residual"]
        );
        assert_eq!(found(&index, &cms, &cm("a", "n7", json!({}))), ["other-7"]);
        index.remove("by-name");
        assert!(found(&index, &cms, &cm("a", "src", json!({}))).is_empty());
        // Replacing a parent's rules drops the old entries.
        index.set(
            "by-label",
            &[mk(
                json!({"apiVersion":"v1","resource":"configmaps","names":["y"]}),
            )],
        );
        assert!(found(&index, &cms, &cm("b", "z", json!({"app": "x"}))).is_empty());
        assert_eq!(found(&index, &cms, &cm("q", "y", json!({}))), ["by-label"]);
        let secrets = resource("secrets", "Secret", true);
        assert!(index
            .parents_selecting(&secrets, &cm("q", "y", json!({})), &no_ns)
            .is_empty());
    }

    #[test]
    fn cached_replies_follow_generation_or_resource_version() {
        let o = |meta: Value| -> DynamicObject {
            serde_json::from_value(json!({"apiVersion": "v1", "kind": "X", "metadata": meta}))
                .expect("object")
        };
        assert_eq!(
            cache_version(&o(
                json!({"name": "a", "generation": 3, "resourceVersion": "10"})
            )),
            "g3"
        );
        assert_eq!(
            cache_version(&o(json!({"name": "a", "resourceVersion": "11"}))),
            "rv11"
        );
    }

    #[test]
    fn namespace_selector_rules_check_namespace_labels() {
        let cms = resource("configmaps", "ConfigMap", true);
        let r = Arc::new(
            check_rule(
                &rule(json!({"apiVersion":"v1","resource":"configmaps","namespaceSelector":{"matchLabels":{"team":"t"}}})),
                cms.clone(),
                HookVersion::V2,
                None,
            )
            .expect("valid"),
        );
        let labels = |ns: &str| {
            (ns == "team-ns").then(|| {
                json!({"team": "t"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            })
        };
        assert!(r.matches(&cm("team-ns", "a", json!({})), &labels));
        assert!(!r.matches(&cm("other", "a", json!({})), &labels));
        let mut index = RelatedIndex::new();
        index.set("p", &[r]);
        assert_eq!(index.namespace_selecting(), ["p"]);
        index.remove("p");
        assert!(index.namespace_selecting().is_empty() && index.is_empty());
    }
}
