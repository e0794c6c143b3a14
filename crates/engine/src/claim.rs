//! ControllerRef claiming: which candidate objects a parent owns, adopts, releases or ignores.
//!
//! The rules are those of Kubernetes' controller reference manager:
//!
//! | candidate                               | selector matches | decision |
//! |-----------------------------------------|------------------|----------|
//! | controlled by another UID               | any              | ignore   |
//! | controlled by this parent               | yes              | claim    |
//! | controlled by this parent               | no               | release (ignore while the parent is being deleted) |
//! | orphan, not being deleted               | yes              | adopt (not while the parent is being deleted) |
//! | orphan otherwise                        | -                | ignore   |
//!
//! Adopting and releasing are merge patches of `ownerReferences` carrying the child's `uid`
//! and `resourceVersion` as preconditions, so a changed or replaced child is never modified.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::DynamicObject;
use serde_json::{json, Value};

/// What to do with one candidate child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClaimDecision {
    /// Already ours and still selected.
    Claim,
    /// An orphan the parent selects: add our controller reference.
    Adopt,
    /// Ours but no longer selected: remove our owner reference.
    Release,
    /// Not ours to touch.
    Ignore,
}

/// Decides the fate of `child` for the parent with `parent_uid`.
pub fn decide(
    parent_uid: &str,
    parent_deleting: bool,
    child: &DynamicObject,
    selector_matches: bool,
) -> ClaimDecision {
    let controller = child
        .metadata
        .owner_references
        .as_ref()
        .and_then(|refs| refs.iter().find(|r| r.controller == Some(true)));
    match controller {
        Some(r) if r.uid != parent_uid => ClaimDecision::Ignore,
        Some(_) if selector_matches => ClaimDecision::Claim,
        Some(_) if parent_deleting => ClaimDecision::Ignore,
        Some(_) => ClaimDecision::Release,
        None if parent_deleting || !selector_matches => ClaimDecision::Ignore,
        None if child.metadata.deletion_timestamp.is_some() => ClaimDecision::Ignore,
        None => ClaimDecision::Adopt,
    }
}

/// The controller reference a parent puts on its children.
pub fn controller_ref(api_version: &str, kind: &str, name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: name.to_string(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn guarded_owner_patch(child: &DynamicObject, refs: Vec<OwnerReference>) -> Value {
    let mut metadata = json!({ "ownerReferences": refs });
    if let Some(uid) = &child.metadata.uid {
        metadata["uid"] = json!(uid);
    }
    if let Some(rv) = &child.metadata.resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    json!({ "metadata": metadata })
}

/// A merge patch adding `owner` to the child's owner references (replacing any reference with
/// the same UID).
pub fn adopt_patch(child: &DynamicObject, owner: &OwnerReference) -> Value {
    let mut refs: Vec<OwnerReference> = child
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != owner.uid)
        .collect();
    refs.push(owner.clone());
    guarded_owner_patch(child, refs)
}

/// A merge patch removing every owner reference with `parent_uid` from the child.
pub fn release_patch(child: &DynamicObject, parent_uid: &str) -> Value {
    let refs: Vec<OwnerReference> = child
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.uid != parent_uid)
        .collect();
    guarded_owner_patch(child, refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(owner: Option<(&str, bool)>, deleting: bool) -> DynamicObject {
        let mut v = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "ns", "uid": "child-uid", "resourceVersion": "7"}
        });
        if let Some((uid, controller)) = owner {
            v["metadata"]["ownerReferences"] = json!([{
                "apiVersion": "example.com/v1", "kind": "P", "name": "p", "uid": uid,
                "controller": controller
            }]);
        }
        if deleting {
            v["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        }
        serde_json::from_value(v).expect("object")
    }

    use ClaimDecision::*;

    #[test]
    fn owned_children() {
        let c = child(Some(("P", true)), false);
        assert_eq!(decide("P", false, &c, true), Claim);
        assert_eq!(decide("P", true, &c, true), Claim);
        assert_eq!(decide("P", false, &c, false), Release);
        assert_eq!(decide("P", true, &c, false), Ignore);
        // A child being deleted that we own is still reported.
        assert_eq!(
            decide("P", false, &child(Some(("P", true)), true), true),
            Claim
        );
    }

    #[test]
    fn children_of_others_are_never_touched() {
        let c = child(Some(("Q", true)), false);
        for deleting in [false, true] {
            for matches in [false, true] {
                assert_eq!(decide("P", deleting, &c, matches), Ignore);
            }
        }
    }

    #[test]
    fn orphans() {
        let c = child(None, false);
        assert_eq!(decide("P", false, &c, true), Adopt);
        assert_eq!(decide("P", false, &c, false), Ignore);
        assert_eq!(decide("P", true, &c, true), Ignore);
        assert_eq!(decide("P", false, &child(None, true), true), Ignore);
        // A non-controller owner reference does not make it owned.
        let weak = child(Some(("P", false)), false);
        assert_eq!(decide("P", false, &weak, true), Adopt);
    }

    #[test]
    fn adopt_patch_appends_controller_ref_with_preconditions() {
        let c = child(Some(("other", false)), false);
        let r = controller_ref("example.com/v1", "P", "p", "P");
        let patch = adopt_patch(&c, &r);
        assert_eq!(patch["metadata"]["uid"], "child-uid");
        assert_eq!(patch["metadata"]["resourceVersion"], "7");
        let refs = patch["metadata"]["ownerReferences"]
            .as_array()
            .expect("list");
        assert_eq!(refs.len(), 2);
        assert_eq!(refs[0]["uid"], "other");
        assert_eq!(
            refs[1],
            json!({"apiVersion":"example.com/v1","kind":"P","name":"p","uid":"P",
                   "controller":true,"blockOwnerDeletion":true})
        );
    }

    #[test]
    fn adopt_replaces_a_stale_reference_to_the_same_uid() {
        let c = child(Some(("P", false)), false);
        let patch = adopt_patch(&c, &controller_ref("example.com/v1", "P", "p", "P"));
        let refs = patch["metadata"]["ownerReferences"]
            .as_array()
            .expect("list");
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["controller"], true);
    }

    #[test]
    fn release_patch_removes_only_our_reference() {
        let mut c = child(Some(("P", true)), false);
        if let Some(refs) = c.metadata.owner_references.as_mut() {
            refs.push(controller_ref("v1", "X", "x", "X").clone());
            refs[1].controller = Some(false);
        }
        let patch = release_patch(&c, "P");
        let refs = patch["metadata"]["ownerReferences"]
            .as_array()
            .expect("list");
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0]["uid"], "X");
        assert_eq!(patch["metadata"]["uid"], "child-uid");
        let lone = release_patch(&child(Some(("P", true)), false), "P");
        assert_eq!(lone["metadata"]["ownerReferences"], json!([]));
    }
}
