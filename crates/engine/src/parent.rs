//! Pure decisions about a parent object: its child selector, which hook to call, the
//! finalizer, the status to write, and which watch events deserve a sync.

use std::time::Duration;

use kube::api::DynamicObject;
use metacontroller_merge::selector::{LabelSelector, SelectorError};
use serde_json::{json, Map, Value};

use crate::children::CONTROLLER_UID_LABEL;

/// Finalizers of the garbage collector: while one is present the GC owns the children.
const GC_FINALIZERS: [&str; 2] = ["foregroundDeletion", "orphan"];

/// Why a parent's child selector is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ParentSelectorError {
    /// `spec.selector` is missing or empty, which would select everything.
    #[error(".spec.selector must have either matchLabels, matchExpressions, or both")]
    Empty,
    /// `spec.selector` does not parse.
    #[error("invalid .spec.selector")]
    Invalid(#[source] SelectorError),
    /// The parent has no UID to generate a selector from.
    #[error("parent has no uid")]
    NoUid,
}

/// The selector that picks a parent's children: `controller-uid=<uid>` with
/// `generateSelector`, else the parent's non-empty `spec.selector`.
pub fn child_selector(
    parent: &DynamicObject,
    generate_selector: bool,
) -> Result<LabelSelector, ParentSelectorError> {
    if generate_selector {
        let uid = parent
            .metadata
            .uid
            .as_deref()
            .ok_or(ParentSelectorError::NoUid)?;
        return LabelSelector::from_json(&json!({ "matchLabels": { CONTROLLER_UID_LABEL: uid } }))
            .map_err(ParentSelectorError::Invalid);
    }
    let spec_selector = parent
        .data
        .get("spec")
        .and_then(|s| s.get("selector"))
        .unwrap_or(&Value::Null);
    let selector = LabelSelector::from_json(spec_selector).map_err(ParentSelectorError::Invalid)?;
    if selector.is_everything() {
        return Err(ParentSelectorError::Empty);
    }
    Ok(selector)
}

/// An object's labels as the JSON map selectors read.
pub fn labels_map(obj: &DynamicObject) -> Option<Map<String, Value>> {
    obj.metadata.labels.as_ref().map(|labels| {
        labels
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect()
    })
}

/// Whether the object has the finalizer `name`.
pub fn has_finalizer(obj: &DynamicObject, name: &str) -> bool {
    obj.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == name))
}

/// Whether the object is being deleted.
pub fn is_deleting(obj: &DynamicObject) -> bool {
    obj.metadata.deletion_timestamp.is_some()
}

/// Which hook a sync calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookChoice {
    /// The sync hook.
    Sync,
    /// The finalize hook (`finalizing: true`).
    Finalize,
}

/// Chooses the hook as upstream does: finalize when a finalize hook exists and the parent is
/// being deleted or no longer selected by the controller; else sync, a deleting parent
/// included (its children are no longer managed, but the hook's status is still written).
pub fn choose_hook(has_finalize_hook: bool, deleting: bool, selected: bool) -> HookChoice {
    if has_finalize_hook && (deleting || !selected) {
        HookChoice::Finalize
    } else {
        HookChoice::Sync
    }
}

/// A change to the controller's finalizer on the parent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalizerAction {
    /// Add it (a finalize hook exists).
    Add,
    /// Remove it (no finalize hook any more).
    Remove,
    /// Leave it.
    Keep,
}

/// Keeps the finalizer present exactly while a finalize hook exists; never adds it to a
/// parent already being deleted.
pub fn finalizer_action(
    has_finalize_hook: bool,
    has_finalizer: bool,
    deleting: bool,
) -> FinalizerAction {
    match (has_finalize_hook, has_finalizer) {
        (true, false) if !deleting => FinalizerAction::Add,
        (false, true) => FinalizerAction::Remove,
        _ => FinalizerAction::Keep,
    }
}

/// Whether children are managed: always for a live parent; for a deleting one only while our
/// finalizer holds it and the garbage collector does not own the children.
pub fn manages_children(parent: &DynamicObject, finalizer: &str, has_finalize_hook: bool) -> bool {
    if !is_deleting(parent) {
        return true;
    }
    has_finalize_hook
        && has_finalizer(parent, finalizer)
        && !GC_FINALIZERS.iter().any(|f| has_finalizer(parent, f))
}

/// The finalizer list after adding or removing `name`.
pub fn finalizers_with(obj: &DynamicObject, name: &str, present: bool) -> Vec<String> {
    let mut list: Vec<String> = obj
        .metadata
        .finalizers
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f != name)
        .collect();
    if present {
        list.push(name.to_string());
    }
    list
}

/// A merge patch setting the finalizer list, guarded by the parent's UID and resourceVersion.
pub fn finalizers_patch(obj: &DynamicObject, finalizers: Vec<String>) -> Value {
    let mut metadata = json!({ "finalizers": finalizers });
    if let Some(uid) = &obj.metadata.uid {
        metadata["uid"] = json!(uid);
    }
    if let Some(rv) = &obj.metadata.resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    json!({ "metadata": metadata })
}

/// The status to store: the hook's status (or `{}`) plus `observedGeneration`. Null members
/// are dropped: a merge patch deletes them, so the stored status never holds them and keeping
/// them would make every sync see a difference.
pub fn desired_status(hook_status: Option<Map<String, Value>>, generation: Option<i64>) -> Value {
    let mut status = Value::Object(hook_status.unwrap_or_default());
    drop_nulls(&mut status);
    if let Some(s) = status.as_object_mut() {
        s.insert("observedGeneration".into(), json!(generation.unwrap_or(0)));
    }
    status
}

/// Removes object members whose value is `null`, at every depth (list items are kept).
pub fn drop_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(drop_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// The merge patch that brings a parent's stored status up to date, or `None` when it
/// already is (then nothing is written).
///
/// With a status subresource, `status.observedGeneration` is the parent's generation.
/// Without one, status is written through the main resource and every such write changes
/// the object, so kube-apiserver increments `metadata.generation`; the status is then
/// current when it equals the hook's status with `observedGeneration` equal to the
/// generation, and a write sets `observedGeneration` to the generation this very write
/// produces (one more), so the object it leaves behind is current and the next sync writes
/// nothing. The patch carries the parent's `resourceVersion`, so no other write can slip in
/// between and the prediction holds (a conflict retries the sync).
pub fn status_update(
    parent: &DynamicObject,
    hook_status: Option<Map<String, Value>>,
    has_status_subresource: bool,
) -> Option<Value> {
    let desired = status_to_write(parent, hook_status, has_status_subresource)?;
    Some(status_patch(
        parent.metadata.resource_version.as_deref(),
        parent.data.get("status"),
        &desired,
    ))
}

/// The status [`status_update`] writes (the whole status the parent will hold), or `None`
/// when the stored one is current.
pub fn status_to_write(
    parent: &DynamicObject,
    hook_status: Option<Map<String, Value>>,
    has_status_subresource: bool,
) -> Option<Value> {
    let generation = parent.metadata.generation;
    let current = parent.data.get("status");
    let mut desired = desired_status(hook_status, generation);
    if !status_changed(current, &desired) {
        return None;
    }
    if !has_status_subresource {
        if let (Some(g), Some(s)) = (generation, desired.as_object_mut()) {
            s.insert("observedGeneration".into(), json!(g + 1));
        }
    }
    Some(desired)
}

/// JSON equality where numbers compare by value (`1` equals `1.0`).
pub fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(i), Some(j)) => i == j,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_eq(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// Whether the stored status differs from the desired one.
pub fn status_changed(current: Option<&Value>, desired: &Value) -> bool {
    !current.is_some_and(|c| json_eq(c, desired))
}

/// A merge patch turning the stored status into `desired`, guarded by the parent's
/// `resourceVersion` (the diff is only right against the status it was computed from).
pub fn status_patch(
    resource_version: Option<&str>,
    current: Option<&Value>,
    desired: &Value,
) -> Value {
    let empty = Value::Object(Map::new());
    let current = current.filter(|c| c.is_object()).unwrap_or(&empty);
    let mut patch = json!({ "status": metacontroller_merge::merge_patch::diff(current, desired) });
    if let Some(rv) = resource_version {
        patch["metadata"] = json!({ "resourceVersion": rv });
    }
    patch
}

/// Whether an update event should sync the parent. With `ignoreStatusChanges`, an update
/// that leaves generation, labels and annotations alone (and is not a deletion) is skipped.
pub fn update_needs_sync(
    old: &DynamicObject,
    new: &DynamicObject,
    ignore_status_changes: bool,
) -> bool {
    if !ignore_status_changes {
        return true;
    }
    old.metadata.generation != new.metadata.generation
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
        || new.metadata.deletion_timestamp.is_some()
}

/// Smallest allowed `resyncPeriodSeconds`.
pub const MIN_RESYNC_PERIOD: Duration = Duration::from_secs(1);

/// The delay before the next resync: the smaller of the controller's period (at least 1s) and
/// the hook's `resyncAfterSeconds`; `None` when neither asks for one.
pub fn resync_delay(period: Option<Duration>, hook_after: Option<Duration>) -> Option<Duration> {
    let period = period
        .filter(|p| !p.is_zero())
        .map(|p| p.max(MIN_RESYNC_PERIOD));
    match (period, hook_after) {
        (Some(p), Some(h)) => Some(p.min(h)),
        (p, h) => p.or(h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent(v: Value) -> DynamicObject {
        serde_json::from_value(v).expect("object")
    }

    fn p(extra_meta: Value, spec: Value) -> DynamicObject {
        let mut meta =
            json!({"name":"p","namespace":"ns","uid":"PUID","resourceVersion":"3","generation":2});
        if let (Some(m), Some(e)) = (meta.as_object_mut(), extra_meta.as_object()) {
            m.extend(e.clone());
        }
        parent(json!({"apiVersion":"example.com/v1","kind":"P","metadata":meta,"spec":spec}))
    }

    #[test]
    fn selector_from_spec_or_generated() {
        let with = p(json!({}), json!({"selector":{"matchLabels":{"app":"a"}}}));
        let sel = child_selector(&with, false).expect("selector");
        assert!(sel.matches(json!({"app":"a"}).as_object()));
        assert!(!sel.matches(json!({"app":"b"}).as_object()));
        let generated = child_selector(&with, true).expect("generated");
        assert!(generated.matches(json!({"controller-uid":"PUID"}).as_object()));
        assert!(!generated.matches(json!({"app":"a"}).as_object()));
    }

    #[test]
    fn empty_or_missing_selector_is_an_error() {
        assert!(matches!(
            child_selector(&p(json!({}), json!({})), false),
            Err(ParentSelectorError::Empty)
        ));
        assert!(matches!(
            child_selector(&p(json!({}), json!({"selector":{}})), false),
            Err(ParentSelectorError::Empty)
        ));
        assert!(matches!(
            child_selector(
                &p(json!({}), json!({"selector":{"matchLabels":"x"}})),
                false
            ),
            Err(ParentSelectorError::Invalid(_))
        ));
    }

    #[test]
    fn hook_choice() {
        use HookChoice::*;
        assert_eq!(choose_hook(false, false, true), Sync);
        assert_eq!(choose_hook(true, false, true), Sync);
        assert_eq!(choose_hook(true, true, true), Finalize);
        assert_eq!(choose_hook(true, false, false), Finalize);
        assert_eq!(choose_hook(false, true, true), Sync);
    }

    #[test]
    fn finalizer_follows_the_finalize_hook() {
        use FinalizerAction::*;
        assert_eq!(finalizer_action(true, false, false), Add);
        assert_eq!(finalizer_action(true, false, true), Keep);
        assert_eq!(finalizer_action(true, true, false), Keep);
        assert_eq!(finalizer_action(false, true, false), Remove);
        assert_eq!(finalizer_action(false, true, true), Remove);
        assert_eq!(finalizer_action(false, false, false), Keep);
    }

    #[test]
    fn children_managed_while_finalizing_unless_gc_owns_them() {
        let f = "metacontroller.io/compositecontroller-c";
        assert!(manages_children(&p(json!({}), json!({})), f, false));
        let deleting = p(
            json!({"deletionTimestamp":"2024-01-01T00:00:00Z","finalizers":[f]}),
            json!({}),
        );
        assert!(manages_children(&deleting, f, true));
        assert!(!manages_children(&deleting, f, false));
        let gc = p(
            json!({"deletionTimestamp":"2024-01-01T00:00:00Z","finalizers":[f,"foregroundDeletion"]}),
            json!({}),
        );
        assert!(!manages_children(&gc, f, true));
        let released = p(
            json!({"deletionTimestamp":"2024-01-01T00:00:00Z","finalizers":["x"]}),
            json!({}),
        );
        assert!(!manages_children(&released, f, true));
    }

    #[test]
    fn finalizer_lists_and_patch() {
        let obj = p(json!({"finalizers":["a","mine"]}), json!({}));
        assert_eq!(finalizers_with(&obj, "mine", false), ["a"]);
        assert_eq!(finalizers_with(&obj, "mine", true), ["a", "mine"]);
        assert_eq!(finalizers_with(&obj, "new", true), ["a", "mine", "new"]);
        let patch = finalizers_patch(&obj, vec!["a".into()]);
        assert_eq!(
            patch,
            json!({"metadata":{"finalizers":["a"],"uid":"PUID","resourceVersion":"3"}})
        );
    }

    #[test]
    fn status_gets_observed_generation_and_is_compared_by_value() {
        let s = desired_status(json!({"replicas": 2}).as_object().cloned(), Some(4));
        assert_eq!(s, json!({"replicas": 2, "observedGeneration": 4}));
        assert_eq!(desired_status(None, None), json!({"observedGeneration": 0}));
        assert!(!status_changed(
            Some(&json!({"replicas": 2.0, "observedGeneration": 4})),
            &s
        ));
        assert!(status_changed(
            Some(&json!({"replicas": 3, "observedGeneration": 4})),
            &s
        ));
        assert!(status_changed(
            Some(&json!({"replicas": 2, "observedGeneration": 4, "x": 1})),
            &s
        ));
        assert!(status_changed(None, &s));
        assert!(json_eq(&json!([1, {"a": [2]}]), &json!([1.0, {"a": [2]}])));
        assert!(!json_eq(&json!([1]), &json!([1, 2])));
    }

    #[test]
    fn null_members_of_the_hook_status_are_left_out() {
        let s = desired_status(
            json!({"a": null, "b": {"c": null, "d": [null, {"e": null}]}})
                .as_object()
                .cloned(),
            Some(1),
        );
        assert_eq!(s, json!({"b": {"d": [null, {}]}, "observedGeneration": 1}));
        // Once stored (the merge patch deleted `a`), nothing differs any more.
        let mut p = p(json!({}), json!({}));
        p.metadata.generation = Some(1);
        p.data["status"] = json!({"b": {"d": [null, {}]}, "observedGeneration": 1});
        let hook = json!({"a": null, "b": {"d": [null, {"e": null}]}});
        assert_eq!(status_update(&p, hook.as_object().cloned(), true), None);
    }

    #[test]
    fn status_with_a_subresource_observes_the_current_generation() {
        let mut parent = p(json!({}), json!({}));
        let hook = || json!({"pods": 1}).as_object().cloned();
        let patch = status_update(&parent, hook(), true).expect("a write");
        assert_eq!(
            patch,
            json!({"status": {"pods": 1, "observedGeneration": 2}, "metadata": {"resourceVersion": "3"}})
        );
        parent.data["status"] = json!({"pods": 1, "observedGeneration": 2});
        assert_eq!(status_update(&parent, hook(), true), None);
        parent.metadata.generation = Some(3);
        assert!(status_update(&parent, hook(), true).is_some());
    }

    #[test]
    fn status_without_a_subresource_observes_the_generation_its_write_produces() {
        // The server increments the generation on every change of a parent without a status
        // subresource, status included: simulate it and check the sequence settles.
        let mut parent = p(json!({}), json!({}));
        let hook = || json!({"pods": 1}).as_object().cloned();
        let mut writes = 0;
        while let Some(patch) = status_update(&parent, hook(), false) {
            writes += 1;
            assert!(writes < 3, "no fixed point: {patch}");
            assert_eq!(patch["metadata"]["resourceVersion"], json!("3"));
            let mut status = parent.data.get("status").cloned().unwrap_or(json!({}));
            metacontroller_merge::merge_patch::apply(&mut status, &patch["status"]);
            parent.data["status"] = status;
            parent.metadata.generation = parent.metadata.generation.map(|g| g + 1);
        }
        assert_eq!(writes, 1);
        assert_eq!(parent.metadata.generation, Some(3));
        assert_eq!(
            parent.data["status"],
            json!({"pods": 1, "observedGeneration": 3})
        );
        // A spec change (generation 4) is observed by one more write, which produces 5.
        parent.metadata.generation = Some(4);
        let patch = status_update(&parent, hook(), false).expect("a write");
        assert_eq!(patch["status"], json!({"observedGeneration": 5}));
        // A status the hook changes is written with the next generation too.
        parent.metadata.generation = Some(5);
        parent.data["status"] = json!({"pods": 1, "observedGeneration": 5});
        assert_eq!(status_update(&parent, hook(), false), None);
        let patch = status_update(&parent, json!({"pods": 2}).as_object().cloned(), false)
            .expect("a write");
        assert_eq!(patch["status"], json!({"pods": 2, "observedGeneration": 6}));
    }

    #[test]
    fn status_patch_replaces_the_status_under_a_resource_version_guard() {
        let current = json!({"a": 1, "gone": true, "nested": {"x": 1, "y": 2}});
        let desired = json!({"a": 2, "nested": {"x": 1}, "observedGeneration": 3});
        let patch = status_patch(Some("9"), Some(&current), &desired);
        assert_eq!(patch["metadata"], json!({"resourceVersion": "9"}));
        let mut applied = current.clone();
        metacontroller_merge::merge_patch::apply(&mut applied, &patch["status"]);
        assert_eq!(applied, desired);
        let fresh = status_patch(None, None, &desired);
        assert_eq!(fresh, json!({"status": desired}));
        // A non-object status is replaced whole.
        let odd = status_patch(None, Some(&json!("text")), &json!({"a": 1}));
        assert_eq!(odd["status"], json!({"a": 1}));
    }

    #[test]
    fn ignore_status_changes_skips_status_only_updates() {
        let old = p(json!({}), json!({"x":1}));
        let mut status_only = old.clone();
        status_only.data["status"] = json!({"ready": true});
        status_only.metadata.resource_version = Some("4".into());
        assert!(update_needs_sync(&old, &status_only, false));
        assert!(!update_needs_sync(&old, &status_only, true));
        let mut spec = status_only.clone();
        spec.metadata.generation = Some(3);
        assert!(update_needs_sync(&old, &spec, true));
        let mut labels = status_only.clone();
        labels.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        assert!(update_needs_sync(&old, &labels, true));
        let mut annotations = status_only.clone();
        annotations.metadata.annotations = Some([("a".to_string(), "b".to_string())].into());
        assert!(update_needs_sync(&old, &annotations, true));
        let mut deleting = status_only;
        deleting.metadata.deletion_timestamp = old
            .metadata
            .deletion_timestamp
            .clone()
            .or_else(|| serde_json::from_value(json!("2024-01-01T00:00:00Z")).ok());
        assert!(update_needs_sync(&old, &deleting, true));
    }

    #[test]
    fn resync_takes_the_smaller_delay() {
        let s = Duration::from_secs;
        assert_eq!(resync_delay(None, None), None);
        assert_eq!(resync_delay(Some(s(30)), None), Some(s(30)));
        assert_eq!(resync_delay(None, Some(s(5))), Some(s(5)));
        assert_eq!(resync_delay(Some(s(30)), Some(s(5))), Some(s(5)));
        assert_eq!(resync_delay(Some(s(3)), Some(s(5))), Some(s(3)));
        assert_eq!(
            resync_delay(Some(Duration::from_millis(10)), None),
            Some(s(1))
        );
        assert_eq!(resync_delay(Some(Duration::ZERO), None), None);
    }

    #[test]
    fn labels_as_json() {
        let mut obj = p(json!({}), json!({}));
        assert_eq!(labels_map(&obj), None);
        obj.metadata.labels = Some([("a".to_string(), "b".to_string())].into());
        assert_eq!(labels_map(&obj), json!({"a":"b"}).as_object().cloned());
        assert!(has_finalizer(
            &p(json!({"finalizers":["f"]}), json!({})),
            "f"
        ));
        assert!(!is_deleting(&obj));
    }
}
