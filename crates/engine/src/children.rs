//! Children: the `children` map sent to hooks, validation of the children a hook desires, and
//! the plan that turns observed + desired children into writes.
//!
//! ```text
//! claimed children ──► request_children() ──► hook ──► prepare_desired() ──► plan()
//!                                                       (namespace, labels,    (create / update /
//!                                                        declared types)        recreate / delete)
//! ```
//!
//! Everything here is pure; `composite` executes the resulting [`ChildAction`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use metacontroller_api::hook::{child_map_key, insert_object_ref, ObjectRefMap};
use metacontroller_api::{HookVersion, UpdateMethod};
use metacontroller_merge::apply::{
    canonical_json, get_last_applied, reapply_is_noop, set_last_applied, three_way,
    LAST_APPLIED_ANNOTATION,
};
use metacontroller_merge::selector::LabelSelector;
use serde_json::{Map, Value};

use crate::discovery::ResourceInfo;
use crate::store::ObjectRef;

/// The label that ties children to their parent when `generateSelector` is on.
pub const CONTROLLER_UID_LABEL: &str = "controller-uid";

/// Read-only system fields of `metadata` that an update never changes.
const SYSTEM_METADATA_FIELDS: [&str; 8] = [
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
];

/// One declared child type of a controller.
#[derive(Debug, Clone)]
pub struct ChildType {
    /// The resolved resource.
    pub resource: Arc<ResourceInfo>,
    /// How existing children of this type are updated.
    pub method: UpdateMethod,
}

/// Why the children a hook desires were rejected (nothing is written then).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DesiredError {
    /// A child is not a JSON object.
    #[error("desired child #{index} is not an object")]
    NotAnObject {
        /// Position in the hook's `children` list.
        index: usize,
    },
    /// A child lacks `apiVersion`, `kind` or `metadata.name`.
    #[error("desired child #{index} has no {field}")]
    MissingField {
        /// Position in the hook's `children` list.
        index: usize,
        /// The missing field.
        field: &'static str,
    },
    /// A child's type is not among the controller's `childResources`.
    #[error("desired child {kind} {name:?} has type {api_version}/{kind}, which is not declared in childResources")]
    UndeclaredType {
        /// The child's apiVersion.
        api_version: String,
        /// The child's kind.
        kind: String,
        /// The child's name.
        name: String,
    },
    /// A namespaced child of a cluster-scoped parent names no namespace.
    #[error(
        "desired child {kind} {name:?} must set metadata.namespace: its parent is cluster-scoped"
    )]
    MissingNamespace {
        /// The child's kind.
        kind: String,
        /// The child's name.
        name: String,
    },
    /// A namespaced parent may only have children in its own namespace.
    #[error("desired child {kind} {namespace}/{name} is outside the parent's namespace {parent_namespace}")]
    OtherNamespace {
        /// The child's kind.
        kind: String,
        /// The child's namespace.
        namespace: String,
        /// The child's name.
        name: String,
        /// The parent's namespace.
        parent_namespace: String,
    },
    /// A child's labels do not match the parent's selector: it would be orphaned at once.
    #[error("labels on desired child {kind} {key} don't match the parent's selector")]
    LabelsDoNotMatch {
        /// The child's kind.
        kind: String,
        /// `namespace/name` or `name`.
        key: String,
    },
    /// `metadata.labels` is not a map of strings.
    #[error("invalid labels on desired child {kind} {key}")]
    InvalidLabels {
        /// The child's kind.
        kind: String,
        /// `namespace/name` or `name`.
        key: String,
    },
    /// The same child appears twice.
    #[error("desired child {kind} {key} appears more than once")]
    Duplicate {
        /// The child's kind.
        kind: String,
        /// `namespace/name` or `name`.
        key: String,
    },
}

/// Builds the `children` map of a hook request: one (possibly empty) group per declared type,
/// each claimed child under its hook-version-specific name.
pub fn request_children<'a>(
    version: HookVersion,
    parent_namespace: Option<&str>,
    types: &[ChildType],
    claimed: impl IntoIterator<Item = &'a Value>,
) -> ObjectRefMap<'a> {
    let mut map = ObjectRefMap::new();
    for t in types {
        map.entry(child_map_key(&t.resource.kind, &t.resource.api_version))
            .or_default();
    }
    for obj in claimed {
        // Cached objects always carry kind, apiVersion and name; anything else is skipped.
        if let Err(error) = insert_object_ref(&mut map, version, parent_namespace, obj) {
            tracing::debug!(%error, "skipping child without identity");
        }
    }
    map
}

/// The parent facts that shape desired children.
#[derive(Debug, Clone)]
pub struct DesiredContext<'a> {
    /// The parent's namespace; `None` when cluster-scoped.
    pub parent_namespace: Option<&'a str>,
    /// The declared child types.
    pub types: &'a [ChildType],
    /// The parent's child selector.
    pub selector: &'a LabelSelector,
    /// With `generateSelector`, the parent UID to put in the `controller-uid` label.
    pub generated_uid: Option<&'a str>,
}

/// A validated desired child.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredChild {
    /// Index into the declared child types.
    pub type_index: usize,
    /// Namespace (empty for cluster-scoped children).
    pub namespace: String,
    /// Name.
    pub name: String,
    /// The object as the hook returned it, after namespace defaulting and labelling.
    pub object: Value,
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn display_key(namespace: &str, name: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

/// Removes the last-applied annotation a hook may have copied from an observed child.
fn strip_last_applied(obj: &mut Value) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let now_empty = match meta.get_mut("annotations").and_then(Value::as_object_mut) {
        Some(annotations) => {
            annotations.remove(LAST_APPLIED_ANNOTATION);
            annotations.is_empty()
        }
        None => false,
    };
    if now_empty {
        meta.remove("annotations");
    }
}

/// Validates and normalizes the children a hook returned.
pub fn prepare_desired(
    children: Vec<Value>,
    ctx: &DesiredContext<'_>,
) -> Result<Vec<DesiredChild>, DesiredError> {
    let mut out = Vec::with_capacity(children.len());
    let mut seen = BTreeSet::new();
    for (index, mut obj) in children.into_iter().enumerate() {
        if !obj.is_object() {
            return Err(DesiredError::NotAnObject { index });
        }
        let missing = |field| DesiredError::MissingField { index, field };
        // An empty string is as good as missing: nothing could be written under it.
        let field = |path: &[&str], name| {
            str_at(&obj, path)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .ok_or(missing(name))
        };
        let api_version = field(&["apiVersion"], "apiVersion")?;
        let kind = field(&["kind"], "kind")?;
        let name = field(&["metadata", "name"], "metadata.name")?;
        let type_index = ctx
            .types
            .iter()
            .position(|t| t.resource.api_version == api_version && t.resource.kind == kind)
            .ok_or_else(|| DesiredError::UndeclaredType {
                api_version: api_version.clone(),
                kind: kind.clone(),
                name: name.clone(),
            })?;
        let namespaced = ctx.types[type_index].resource.namespaced;
        let given_ns = str_at(&obj, &["metadata", "namespace"]).map(str::to_string);
        let namespace = if !namespaced {
            String::new()
        } else {
            match (given_ns, ctx.parent_namespace) {
                (Some(ns), Some(parent_ns)) if ns != parent_ns => {
                    return Err(DesiredError::OtherNamespace {
                        kind,
                        namespace: ns,
                        name,
                        parent_namespace: parent_ns.to_string(),
                    })
                }
                (Some(ns), _) => ns,
                (None, Some(parent_ns)) => parent_ns.to_string(),
                (None, None) => return Err(DesiredError::MissingNamespace { kind, name }),
            }
        };
        let key = display_key(&namespace, &name);
        // Normalize metadata: namespace as resolved, labels as required.
        strip_last_applied(&mut obj);
        let meta = obj
            .as_object_mut()
            .and_then(|o| {
                o.entry("metadata")
                    .or_insert_with(|| Value::Object(Map::new()))
                    .as_object_mut()
            })
            .ok_or(missing("metadata"))?;
        if namespaced {
            meta.insert("namespace".into(), Value::String(namespace.clone()));
        } else {
            meta.remove("namespace");
        }
        if let Some(uid) = ctx.generated_uid {
            let labels = meta
                .entry("labels")
                .or_insert_with(|| Value::Object(Map::new()));
            if labels.is_null() {
                *labels = Value::Object(Map::new());
            }
            let labels = labels
                .as_object_mut()
                .ok_or_else(|| DesiredError::InvalidLabels {
                    kind: kind.clone(),
                    key: key.clone(),
                })?;
            labels
                .entry(CONTROLLER_UID_LABEL)
                .or_insert_with(|| Value::String(uid.to_string()));
        }
        let labels = match meta.get("labels") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) if m.values().all(Value::is_string) => Some(m),
            Some(_) => {
                return Err(DesiredError::InvalidLabels { kind, key });
            }
        };
        if !ctx.selector.matches(labels) {
            return Err(DesiredError::LabelsDoNotMatch { kind, key });
        }
        if !seen.insert((type_index, namespace.clone(), name.clone())) {
            return Err(DesiredError::Duplicate { kind, key });
        }
        out.push(DesiredChild {
            type_index,
            namespace,
            name,
            object: obj,
        });
    }
    Ok(out)
}

/// An observed (claimed) child with its JSON form.
#[derive(Debug, Clone)]
pub struct ObservedChild {
    /// Index into the declared child types.
    pub type_index: usize,
    /// The cached object.
    pub object: ObjectRef,
    /// The object as JSON.
    pub value: Value,
}

impl ObservedChild {
    fn identity(&self) -> (usize, String, String) {
        (
            self.type_index,
            self.object.metadata.namespace.clone().unwrap_or_default(),
            self.object.metadata.name.clone().unwrap_or_default(),
        )
    }

    fn deleting(&self) -> bool {
        self.object.metadata.deletion_timestamp.is_some()
    }
}

/// One write the plan asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum ChildAction {
    /// Create a missing child (the object carries last-applied and the controller reference).
    Create {
        /// Index into the declared child types.
        type_index: usize,
        /// The object to create.
        object: Value,
    },
    /// Replace an existing child with the merged object (InPlace).
    Update {
        /// Index into the declared child types.
        type_index: usize,
        /// The observed object (for its UID and resourceVersion).
        observed: ObjectRef,
        /// The object to write.
        object: Value,
    },
    /// Delete an outdated child now; the next sync creates it again (Recreate).
    Recreate {
        /// Index into the declared child types.
        type_index: usize,
        /// The child to delete.
        observed: ObjectRef,
    },
    /// Server-side apply of a child under a field manager (creating it when missing).
    Apply {
        /// Index into the declared child types.
        type_index: usize,
        /// The observed child, when it exists.
        observed: Option<ObjectRef>,
        /// The apply configuration.
        object: Value,
        /// The field manager applied as.
        field_manager: String,
    },
    /// Delete a child the hook no longer desires.
    Delete {
        /// Index into the declared child types.
        type_index: usize,
        /// The child to delete.
        observed: ObjectRef,
    },
}

impl ChildAction {
    /// Index into the declared child types of the child this action concerns.
    pub fn type_index(&self) -> usize {
        match self {
            ChildAction::Create { type_index, .. }
            | ChildAction::Update { type_index, .. }
            | ChildAction::Recreate { type_index, .. }
            | ChildAction::Apply { type_index, .. }
            | ChildAction::Delete { type_index, .. } => *type_index,
        }
    }
}

/// The object a desired child becomes when applied over `observed`: a three-way merge with the
/// last-applied configuration, system metadata and status kept as observed, and last-applied
/// recording `desired`.
pub fn merged_update(observed: &Value, desired: &Value) -> Value {
    let last_applied = get_last_applied(observed).unwrap_or(Value::Null);
    let mut merged = three_way(observed, &last_applied, desired);
    revert_system_fields(&mut merged, observed);
    set_last_applied(&mut merged, desired);
    merged
}

/// The object to write when `desired` is applied over `observed` ([`merged_update`]), or None
/// when that would change nothing. A child whose last-applied annotation already records
/// `desired` and that holds every desired value (a converged child) is recognised without
/// building the merge.
pub fn update_for(observed: &Value, desired: &Value) -> Option<Value> {
    let recorded = observed
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(LAST_APPLIED_ANNOTATION))
        .and_then(Value::as_str);
    if recorded.is_some_and(|r| r == canonical_json(desired)) && reapply_is_noop(observed, desired)
    {
        return None;
    }
    let merged = merged_update(observed, desired);
    (merged != *observed).then_some(merged)
}

fn revert_system_fields(merged: &mut Value, observed: &Value) {
    let Some(obj) = merged.as_object_mut() else {
        return;
    };
    match observed.get("status") {
        Some(status) => {
            obj.insert("status".into(), status.clone());
        }
        None => {
            obj.remove("status");
        }
    }
    let observed_meta = observed.get("metadata");
    let meta = obj
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    let Some(meta) = meta.as_object_mut() else {
        return;
    };
    for field in SYSTEM_METADATA_FIELDS {
        match observed_meta.and_then(|m| m.get(field)) {
            Some(v) => {
                meta.insert(field.into(), v.clone());
            }
            None => {
                meta.remove(field);
            }
        }
    }
}

/// The object to create for a desired child: last-applied records the desired object, then
/// the controller reference is added.
pub fn object_to_create(desired: &Value, owner: &OwnerReference) -> Value {
    let mut obj = desired.clone();
    set_last_applied(&mut obj, desired);
    with_controller_ref(&obj, owner)
}

/// `desired` with the controller reference among its `ownerReferences`.
pub fn with_controller_ref(desired: &Value, owner: &OwnerReference) -> Value {
    let mut obj = desired.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        let refs = meta
            .entry("ownerReferences")
            .or_insert_with(|| Value::Array(Vec::new()));
        if !refs.is_array() {
            *refs = Value::Array(Vec::new());
        }
        if let Some(refs) = refs.as_array_mut() {
            let ours = refs
                .iter()
                .any(|r| r.get("uid").and_then(Value::as_str) == Some(owner.uid.as_str()));
            if !ours {
                refs.push(serde_json::to_value(owner).unwrap_or(Value::Null));
            }
        }
    }
    obj
}

/// How children are written (`--apply-strategy`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ApplyMode {
    /// A three-way merge with the last-applied annotation, written as a full update.
    #[default]
    Dynamic,
    /// Server-side apply under this field manager.
    ServerSide(String),
}

/// [`plan_with`] under dynamic apply.
pub fn plan(
    types: &[ChildType],
    observed: &[ObservedChild],
    desired: &[DesiredChild],
    owner: &OwnerReference,
) -> Vec<ChildAction> {
    plan_with(types, observed, desired, owner, &ApplyMode::Dynamic)
}

/// Decides the writes that bring observed children to the desired ones. Children already
/// converged, children pending deletion, and children under `OnDelete` produce no action.
/// Deletes come first, then creates and updates, each in a stable order.
pub fn plan_with(
    types: &[ChildType],
    observed: &[ObservedChild],
    desired: &[DesiredChild],
    owner: &OwnerReference,
    mode: &ApplyMode,
) -> Vec<ChildAction> {
    let desired_by_id: BTreeMap<(usize, String, String), &DesiredChild> = desired
        .iter()
        .map(|d| ((d.type_index, d.namespace.clone(), d.name.clone()), d))
        .collect();
    let observed_by_id: BTreeMap<(usize, String, String), &ObservedChild> =
        observed.iter().map(|o| (o.identity(), o)).collect();

    let mut actions = Vec::new();
    for (id, o) in &observed_by_id {
        if !desired_by_id.contains_key(id) && !o.deleting() {
            actions.push(ChildAction::Delete {
                type_index: o.type_index,
                observed: o.object.clone(),
            });
        }
    }
    for (id, d) in &desired_by_id {
        if let ApplyMode::ServerSide(manager) = mode {
            ssa_action(
                types,
                observed_by_id.get(id).copied(),
                d,
                owner,
                manager,
                &mut actions,
            );
            continue;
        }
        match observed_by_id.get(id) {
            None => actions.push(ChildAction::Create {
                type_index: d.type_index,
                object: object_to_create(&d.object, owner),
            }),
            Some(o) if o.deleting() => {}
            Some(o) => {
                let Some(merged) = update_for(&o.value, &d.object) else {
                    continue;
                };
                actions.extend(changed_child_action(types, d.type_index, o, || {
                    ChildAction::Update {
                        type_index: d.type_index,
                        observed: o.object.clone(),
                        object: merged,
                    }
                }));
            }
        }
    }
    actions
}

/// The server-side apply action for one desired child, if it needs one.
fn ssa_action(
    types: &[ChildType],
    observed: Option<&ObservedChild>,
    d: &DesiredChild,
    owner: &OwnerReference,
    manager: &str,
    actions: &mut Vec<ChildAction>,
) {
    let config = crate::ssa::config(with_controller_ref(&d.object, owner));
    let apply = |observed: Option<ObjectRef>| ChildAction::Apply {
        type_index: d.type_index,
        observed,
        object: config.clone(),
        field_manager: manager.to_string(),
    };
    match observed {
        None => actions.push(apply(None)),
        Some(o) if o.deleting() => {}
        Some(o) => {
            if !crate::ssa::needs_apply(&o.value, &config, manager) {
                return;
            }
            actions.extend(changed_child_action(types, d.type_index, o, || {
                apply(Some(o.object.clone()))
            }));
        }
    }
}

/// What to do with an observed child that differs from its desired state, as its type's
/// update method says: recreate it, update it in place (`update`), or leave it (OnDelete).
fn changed_child_action(
    types: &[ChildType],
    type_index: usize,
    observed: &ObservedChild,
    update: impl FnOnce() -> ChildAction,
) -> Option<ChildAction> {
    let method = types.get(type_index).map(|t| t.method).unwrap_or_default();
    if method.recreates() {
        Some(ChildAction::Recreate {
            type_index,
            observed: observed.object.clone(),
        })
    } else if method.updates_in_place() {
        Some(update())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claim::controller_ref;
    use serde_json::json;

    use crate::discovery::ResourceInfo;
    fn resource(
        api_version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) -> Arc<ResourceInfo> {
        ResourceInfo::for_test(api_version, kind, plural, namespaced)
    }

    fn types(method: UpdateMethod) -> Vec<ChildType> {
        vec![
            ChildType {
                resource: resource("v1", "ConfigMap", "configmaps", true),
                method,
            },
            ChildType {
                resource: resource("v1", "Namespace", "namespaces", false),
                method,
            },
        ]
    }

    fn selector(v: Value) -> LabelSelector {
        LabelSelector::from_json(&v).expect("selector")
    }

    fn ctx<'a>(
        types: &'a [ChildType],
        sel: &'a LabelSelector,
        ns: Option<&'a str>,
    ) -> DesiredContext<'a> {
        DesiredContext {
            parent_namespace: ns,
            types,
            selector: sel,
            generated_uid: None,
        }
    }

    fn cm(name: &str, labels: Value) -> Value {
        json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":name,"labels":labels},"data":{"k":"v"}})
    }

    fn owner() -> OwnerReference {
        controller_ref("example.com/v1", "Parent", "p", "PUID")
    }

    fn observed(ti: usize, v: Value) -> ObservedChild {
        ObservedChild {
            type_index: ti,
            object: Arc::new(serde_json::from_value(v.clone()).expect("object")),
            value: v,
        }
    }

    #[test]
    fn request_children_has_every_declared_type_and_versioned_keys() {
        let t = types(UpdateMethod::OnDelete);
        let child =
            json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"a","namespace":"ns"}});
        let v1 = request_children(
            HookVersion::V1,
            Some("ns"),
            &t,
            std::slice::from_ref(&child),
        );
        assert_eq!(v1.len(), 2);
        assert!(v1["ConfigMap.v1"].contains_key("a"));
        assert!(v1["Namespace.v1"].is_empty());
        let v2 = request_children(
            HookVersion::V2,
            Some("ns"),
            &t,
            std::slice::from_ref(&child),
        );
        assert!(v2["ConfigMap.v1"].contains_key("ns/a"));
        let cluster = request_children(HookVersion::V1, None, &t, std::slice::from_ref(&child));
        assert!(cluster["ConfigMap.v1"].contains_key("ns/a"));
    }

    #[test]
    fn desired_children_default_to_the_parent_namespace() {
        let t = types(UpdateMethod::OnDelete);
        let sel = selector(json!({"matchLabels":{"app":"x"}}));
        let out = prepare_desired(
            vec![cm("a", json!({"app":"x"}))],
            &ctx(&t, &sel, Some("ns")),
        )
        .expect("valid");
        assert_eq!(out[0].namespace, "ns");
        assert_eq!(out[0].name, "a");
        assert_eq!(out[0].object["metadata"]["namespace"], "ns");
    }

    #[test]
    fn cluster_scoped_parent_children_must_name_their_namespace() {
        let t = types(UpdateMethod::OnDelete);
        let sel = selector(json!({"matchLabels":{"app":"x"}}));
        let err = prepare_desired(vec![cm("a", json!({"app":"x"}))], &ctx(&t, &sel, None));
        assert!(matches!(err, Err(DesiredError::MissingNamespace { .. })));
        let mut named = cm("a", json!({"app":"x"}));
        named["metadata"]["namespace"] = json!("elsewhere");
        let ok = prepare_desired(vec![named], &ctx(&t, &sel, None)).expect("valid");
        assert_eq!(ok[0].namespace, "elsewhere");
    }

    #[test]
    fn namespaced_parent_children_stay_in_its_namespace() {
        let t = types(UpdateMethod::OnDelete);
        let sel = selector(json!({"matchLabels":{"app":"x"}}));
        let mut c = cm("a", json!({"app":"x"}));
        c["metadata"]["namespace"] = json!("other");
        let err = prepare_desired(vec![c], &ctx(&t, &sel, Some("ns")));
        assert!(matches!(err, Err(DesiredError::OtherNamespace { .. })));
    }

    #[test]
    fn cluster_scoped_children_have_no_namespace() {
        let t = types(UpdateMethod::OnDelete);
        let sel = LabelSelector::everything();
        let nsobj =
            json!({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"n","namespace":"x"}});
        let out = prepare_desired(vec![nsobj], &ctx(&t, &sel, Some("ns"))).expect("valid");
        assert_eq!(out[0].type_index, 1);
        assert_eq!(out[0].namespace, "");
        assert!(out[0].object["metadata"].get("namespace").is_none());
    }

    #[test]
    fn children_whose_labels_do_not_match_are_rejected() {
        let t = types(UpdateMethod::OnDelete);
        let sel = selector(json!({"matchLabels":{"app":"x"}}));
        let err = prepare_desired(
            vec![cm("ok", json!({"app":"x"})), cm("bad", json!({"app":"y"}))],
            &ctx(&t, &sel, Some("ns")),
        );
        assert_eq!(
            err,
            Err(DesiredError::LabelsDoNotMatch {
                kind: "ConfigMap".into(),
                key: "ns/bad".into()
            })
        );
        let err = prepare_desired(vec![cm("none", Value::Null)], &ctx(&t, &sel, Some("ns")));
        assert!(matches!(err, Err(DesiredError::LabelsDoNotMatch { .. })));
        let err = prepare_desired(
            vec![cm("num", json!({"app": 1}))],
            &ctx(&t, &sel, Some("ns")),
        );
        assert!(matches!(err, Err(DesiredError::InvalidLabels { .. })));
    }

    #[test]
    fn generated_selector_labels_children_with_the_parent_uid() {
        let t = types(UpdateMethod::OnDelete);
        let sel = selector(json!({"matchLabels":{"controller-uid":"PUID"}}));
        let mut c = ctx(&t, &sel, Some("ns"));
        c.generated_uid = Some("PUID");
        let out = prepare_desired(vec![cm("a", Value::Null)], &c).expect("valid");
        assert_eq!(
            out[0].object["metadata"]["labels"]["controller-uid"],
            "PUID"
        );
    }

    #[test]
    fn malformed_undeclared_and_duplicate_children_are_rejected() {
        let t = types(UpdateMethod::OnDelete);
        let sel = LabelSelector::everything();
        let c = ctx(&t, &sel, Some("ns"));
        assert_eq!(
            prepare_desired(vec![json!("x")], &c),
            Err(DesiredError::NotAnObject { index: 0 })
        );
        assert_eq!(
            prepare_desired(
                vec![json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{}})],
                &c
            ),
            Err(DesiredError::MissingField {
                index: 0,
                field: "metadata.name"
            })
        );
        for (av, kind, name, field) in [
            ("", "ConfigMap", "a", "apiVersion"),
            ("v1", "", "a", "kind"),
            ("v1", "ConfigMap", "", "metadata.name"),
        ] {
            assert_eq!(
                prepare_desired(
                    vec![json!({"apiVersion": av, "kind": kind, "metadata": {"name": name}})],
                    &c
                ),
                Err(DesiredError::MissingField { index: 0, field })
            );
        }
        assert!(matches!(
            prepare_desired(
                vec![json!({"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"d"}})],
                &c
            ),
            Err(DesiredError::UndeclaredType { .. })
        ));
        assert!(matches!(
            prepare_desired(vec![cm("a", Value::Null), cm("a", Value::Null)], &c),
            Err(DesiredError::Duplicate { .. })
        ));
    }

    #[test]
    fn copied_last_applied_annotation_is_dropped_from_desired() {
        let t = types(UpdateMethod::OnDelete);
        let sel = LabelSelector::everything();
        let mut c = cm("a", Value::Null);
        c["metadata"]["annotations"] = json!({LAST_APPLIED_ANNOTATION: "{}"});
        let out = prepare_desired(vec![c], &ctx(&t, &sel, Some("ns"))).expect("valid");
        assert!(out[0].object["metadata"].get("annotations").is_none());
    }

    fn desired_cm(name: &str, data: Value) -> DesiredChild {
        DesiredChild {
            type_index: 0,
            namespace: "ns".into(),
            name: name.into(),
            object: json!({"apiVersion":"v1","kind":"ConfigMap",
                           "metadata":{"name":name,"namespace":"ns"},"data":data}),
        }
    }

    /// The object the server would hold after creating `desired` (plus server fields).
    fn as_created(d: &DesiredChild, uid: &str) -> Value {
        let mut v = object_to_create(&d.object, &owner());
        v["metadata"]["uid"] = json!(uid);
        v["metadata"]["resourceVersion"] = json!("1");
        v["metadata"]["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
        v
    }

    #[test]
    fn create_carries_last_applied_and_controller_ref() {
        let d = desired_cm("a", json!({"k":"v"}));
        let actions = plan(
            &types(UpdateMethod::OnDelete),
            &[],
            std::slice::from_ref(&d),
            &owner(),
        );
        let [ChildAction::Create {
            type_index: 0,
            object,
        }] = actions.as_slice()
        else {
            panic!("expected one create, got {actions:?}");
        };
        assert_eq!(get_last_applied(object), Some(d.object.clone()));
        assert_eq!(
            object["metadata"]["ownerReferences"],
            json!([{"apiVersion":"example.com/v1","kind":"Parent","name":"p","uid":"PUID",
                    "controller":true,"blockOwnerDeletion":true}])
        );
    }

    #[test]
    fn converged_children_produce_no_action_under_every_strategy() {
        let d = desired_cm("a", json!({"k":"v"}));
        let obs = observed(0, as_created(&d, "u1"));
        for method in UpdateMethod::ALL {
            assert!(
                plan(
                    &types(method),
                    std::slice::from_ref(&obs),
                    std::slice::from_ref(&d),
                    &owner()
                )
                .is_empty(),
                "{method:?}"
            );
        }
    }

    #[test]
    fn server_defaults_and_status_do_not_cause_updates() {
        let d = desired_cm("a", json!({"k":"v"}));
        let mut v = as_created(&d, "u1");
        v["metadata"]["generation"] = json!(3);
        v["metadata"]["labels"] = json!({"added-by":"someone-else"});
        v["status"] = json!({"phase":"Ready"});
        let obs = observed(0, v);
        assert!(plan(&types(UpdateMethod::InPlace), &[obs], &[d], &owner()).is_empty());
    }

    #[test]
    fn update_for_agrees_with_the_merge() {
        let d = desired_cm("a", json!({"k":"v"}));
        let created = as_created(&d, "u1");
        let mut defaulted = created.clone();
        defaulted["metadata"]["managedFields"] = json!([{"manager": "m"}]);
        defaulted["status"] = json!({"phase": "Ready"});
        defaulted["data"]["foreign"] = json!("x");
        let mut drifted = created.clone();
        drifted["data"]["k"] = json!("edited");
        let mut old_record = created.clone();
        set_last_applied(&mut old_record, &json!({"data": {"k": "v", "gone": "x"}}));
        let mut no_record = created.clone();
        no_record["metadata"]["annotations"] = json!({});
        for (name, observed, changes) in [
            ("as created", created, false),
            ("with defaults, status and foreign fields", defaulted, false),
            ("edited by someone else", drifted, true),
            (
                "last-applied records another configuration",
                old_record,
                true,
            ),
            ("no last-applied", no_record, true),
        ] {
            let merged = merged_update(&observed, &d.object);
            let want = (merged != observed).then_some(merged);
            assert_eq!(want.is_some(), changes, "{name}");
            assert_eq!(update_for(&observed, &d.object), want, "{name}");
        }
    }

    #[test]
    fn changed_children_follow_the_update_strategy() {
        let old = desired_cm("a", json!({"k":"v"}));
        let new = desired_cm("a", json!({"k":"v2"}));
        let obs = observed(0, as_created(&old, "u1"));
        let on_delete = plan(
            &types(UpdateMethod::OnDelete),
            std::slice::from_ref(&obs),
            std::slice::from_ref(&new),
            &owner(),
        );
        assert!(on_delete.is_empty());
        for method in [UpdateMethod::Recreate, UpdateMethod::RollingRecreate] {
            let a = plan(
                &types(method),
                std::slice::from_ref(&obs),
                std::slice::from_ref(&new),
                &owner(),
            );
            assert!(
                matches!(a.as_slice(), [ChildAction::Recreate { type_index: 0, .. }]),
                "{method:?}"
            );
        }
        for method in [UpdateMethod::InPlace, UpdateMethod::RollingInPlace] {
            let a = plan(
                &types(method),
                std::slice::from_ref(&obs),
                std::slice::from_ref(&new),
                &owner(),
            );
            let [ChildAction::Update { object, .. }] = a.as_slice() else {
                panic!("expected an update for {method:?}: {a:?}");
            };
            assert_eq!(object["data"], json!({"k":"v2"}));
            assert_eq!(object["metadata"]["uid"], "u1");
            assert_eq!(object["metadata"]["resourceVersion"], "1");
            assert_eq!(get_last_applied(object), Some(new.object.clone()));
            // The owner reference set at creation survives.
            assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], "PUID");
        }
    }

    #[test]
    fn fields_dropped_from_desired_are_removed_but_foreign_fields_kept() {
        let old = desired_cm("a", json!({"k":"v","gone":"x"}));
        let new = desired_cm("a", json!({"k":"v"}));
        let mut v = as_created(&old, "u1");
        v["data"]["foreign"] = json!("kept");
        let a = plan(
            &types(UpdateMethod::InPlace),
            &[observed(0, v)],
            &[new],
            &owner(),
        );
        let [ChildAction::Update { object, .. }] = a.as_slice() else {
            panic!("expected update: {a:?}");
        };
        assert_eq!(object["data"], json!({"k":"v","foreign":"kept"}));
    }

    #[test]
    fn unwanted_children_are_deleted_unless_already_deleting() {
        let d = desired_cm("keep", json!({}));
        let keep = observed(0, as_created(&d, "u1"));
        let extra = observed(0, as_created(&desired_cm("extra", json!({})), "u2"));
        let mut dying_v = as_created(&desired_cm("dying", json!({})), "u3");
        dying_v["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        let dying = observed(0, dying_v);
        let a = plan(
            &types(UpdateMethod::InPlace),
            &[keep, extra, dying],
            &[d],
            &owner(),
        );
        assert_eq!(a.len(), 1);
        let ChildAction::Delete { observed, .. } = &a[0] else {
            panic!("expected delete: {a:?}");
        };
        assert_eq!(observed.metadata.name.as_deref(), Some("extra"));
    }

    #[test]
    fn a_desired_child_pending_deletion_is_left_alone() {
        let d = desired_cm("a", json!({"k":"new"}));
        let mut v = as_created(&desired_cm("a", json!({"k":"old"})), "u1");
        v["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        assert!(plan(
            &types(UpdateMethod::InPlace),
            &[observed(0, v)],
            &[d],
            &owner()
        )
        .is_empty());
    }

    #[test]
    fn deletes_come_before_creates() {
        let gone = observed(0, as_created(&desired_cm("old", json!({})), "u1"));
        let a = plan(
            &types(UpdateMethod::OnDelete),
            &[gone],
            &[desired_cm("new", json!({}))],
            &owner(),
        );
        assert!(matches!(a[0], ChildAction::Delete { .. }));
        assert!(matches!(a[1], ChildAction::Create { .. }));
    }

    #[test]
    fn adopted_child_without_last_applied_gets_desired_fields() {
        let d = desired_cm("a", json!({"k":"v"}));
        let adopted = json!({"apiVersion":"v1","kind":"ConfigMap",
            "metadata":{"name":"a","namespace":"ns","uid":"u","resourceVersion":"4"},
            "data":{"k":"old","other":"x"}});
        let a = plan(
            &types(UpdateMethod::InPlace),
            &[observed(0, adopted)],
            &[d],
            &owner(),
        );
        let [ChildAction::Update { object, .. }] = a.as_slice() else {
            panic!("expected update: {a:?}");
        };
        assert_eq!(object["data"], json!({"k":"v","other":"x"}));
    }

    #[test]
    fn server_side_apply_plans_applies_only_when_something_changes() {
        let ssa = ApplyMode::ServerSide("metacontroller".into());
        let d = desired_cm("a", json!({"k": "v"}));
        // Missing: applied (which creates it), without the last-applied annotation.
        let actions = plan_with(
            &types(UpdateMethod::InPlace),
            &[],
            std::slice::from_ref(&d),
            &owner(),
            &ssa,
        );
        let [ChildAction::Apply {
            observed: None,
            object,
            field_manager,
            ..
        }] = actions.as_slice()
        else {
            panic!("{actions:?}");
        };
        assert_eq!(field_manager, "metacontroller");
        assert!(get_last_applied(object).is_none());
        assert_eq!(object["metadata"]["ownerReferences"][0]["uid"], owner().uid);
        // As the server stores it: converged, no action.
        let mut stored = object.clone();
        stored["metadata"]["uid"] = json!("u1");
        stored["metadata"]["managedFields"] = json!([{"manager": "metacontroller", "operation": "Apply",
            "apiVersion": "v1", "fieldsType": "FieldsV1", "fieldsV1": {"f:data": {"f:k": {}},
            "f:metadata": {"f:ownerReferences": {"k:{\"uid\":\"PUID\"}": {}}}}}]);
        stored["data"]["foreign"] = json!("kept");
        let obs = observed(0, stored.clone());
        for method in UpdateMethod::ALL {
            assert!(
                plan_with(
                    &types(method),
                    std::slice::from_ref(&obs),
                    std::slice::from_ref(&d),
                    &owner(),
                    &ssa
                )
                .is_empty(),
                "{method:?}"
            );
        }
        // A changed value: applied in place, or recreated under Recreate.
        let d2 = desired_cm("a", json!({"k": "w"}));
        let actions = plan_with(
            &types(UpdateMethod::InPlace),
            std::slice::from_ref(&obs),
            std::slice::from_ref(&d2),
            &owner(),
            &ssa,
        );
        assert!(
            matches!(
                actions.as_slice(),
                [ChildAction::Apply {
                    observed: Some(_),
                    ..
                }]
            ),
            "{actions:?}"
        );
        let actions = plan_with(
            &types(UpdateMethod::Recreate),
            std::slice::from_ref(&obs),
            std::slice::from_ref(&d2),
            &owner(),
            &ssa,
        );
        assert!(
            matches!(actions.as_slice(), [ChildAction::Recreate { .. }]),
            "{actions:?}"
        );
        // Not desired any more: deleted as under dynamic apply.
        let actions = plan_with(
            &types(UpdateMethod::InPlace),
            std::slice::from_ref(&obs),
            &[],
            &owner(),
            &ssa,
        );
        assert!(
            matches!(actions.as_slice(), [ChildAction::Delete { .. }]),
            "{actions:?}"
        );
    }
}
