//! The controllers kube-controller-manager runs and clients rely on: the garbage collector
//! (ownerReferences and the three propagation policies), the namespace controller (deleting
//! a namespace's contents) and CRD cleanup (deleting a CRD's objects before the CRD).
//!
//! Writes queue [`GcTask`]s on the store; [`run_controllers`] drains the queue. Each task
//! reads the current state and makes at most a few ordinary store writes, which queue
//! follow-up tasks in turn, so the loop converges like the real controllers do.
//!
//! The decisions are pure functions ([`classify`], [`decide`]) with the I/O beside them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::crd;
use crate::error::{ApiError, Result};
use crate::model::ResourceType;
use crate::store::meta::{self, OwnerRef, FOREGROUND, ORPHAN};
use crate::store::{storage_group_resource, DeleteOptions, GcTask, ObjRef, Propagation, Store};

/// How often watchers that allow bookmarks get one (kube-apiserver sends about one a minute).
const BOOKMARK_PERIOD: Duration = Duration::from_secs(30);
/// Tasks handled before yielding to other work on the runtime.
const BATCH: usize = 64;

/// Runs the garbage collector, the namespace controller and CRD cleanup until `shutdown`.
/// Also sends the periodic watch bookmarks.
pub async fn run_controllers(store: Arc<Store>, shutdown: CancellationToken) {
    let mut bookmarks = tokio::time::interval(BOOKMARK_PERIOD);
    bookmarks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let mut handled = 0;
        while let Some(task) = store.next_gc_task() {
            if let Err(error) = process(&store, &task) {
                tracing::debug!(%error, ?task, "controller task failed");
            }
            handled += 1;
            if handled % BATCH == 0 {
                tokio::task::yield_now().await;
                if shutdown.is_cancelled() {
                    return;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = store.gc_work_queued() => {}
            _ = bookmarks.tick() => store.send_bookmarks(),
        }
    }
}

/// Handles every queued task now (for tests and callers that want a settled state).
pub fn drain(store: &Store) {
    while let Some(task) = store.next_gc_task() {
        if let Err(error) = process(store, &task) {
            tracing::debug!(%error, ?task, "controller task failed");
        }
    }
}

/// Handles one task.
pub fn process(store: &Store, task: &GcTask) -> Result<()> {
    match task {
        GcTask::Dependent(r) => attempt_to_delete(store, r),
        GcTask::Owner(r) => process_deleting_owner(store, r),
        GcTask::Namespace(ns) => process_namespace(store, ns),
        GcTask::Crd(name) => process_crd(store, name),
    }
}

/// How a dependent sees one of its owners.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OwnerState {
    /// No object with that name and uid where the owner would live.
    Dangling,
    /// The owner is being deleted in the foreground and waits for its dependents.
    Waiting,
    /// The owner exists.
    Solid,
}

/// What the garbage collector does with a dependent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Keep,
    /// Keep it but drop the ownerReferences with these uids.
    StripRefs(Vec<String>),
    Delete(Propagation),
}

/// Classifies a dependent's owners: `owners[i]` is the state of `refs[i]`.
pub fn decide(
    refs: &[OwnerRef],
    owners: &[OwnerState],
    finalizers: &[String],
    has_dependents: bool,
) -> Decision {
    let any = |s: OwnerState| owners.contains(&s);
    if refs.is_empty() {
        return Decision::Keep;
    }
    if any(OwnerState::Solid) {
        let strip: Vec<String> = refs
            .iter()
            .zip(owners)
            .filter(|(_, s)| **s != OwnerState::Solid)
            .map(|(r, _)| r.uid.clone())
            .collect();
        return if strip.is_empty() {
            Decision::Keep
        } else {
            Decision::StripRefs(strip)
        };
    }
    if any(OwnerState::Waiting) && has_dependents {
        return Decision::Delete(Propagation::Foreground);
    }
    if finalizers.iter().any(|f| f == ORPHAN) {
        Decision::Delete(Propagation::Orphan)
    } else if finalizers.iter().any(|f| f == FOREGROUND) {
        Decision::Delete(Propagation::Foreground)
    } else {
        Decision::Delete(Propagation::Background)
    }
}

fn group_of(api_version: &str) -> &str {
    api_version.rsplit_once('/').map(|(g, _)| g).unwrap_or("")
}

fn version_of(api_version: &str) -> &str {
    api_version
        .rsplit_once('/')
        .map(|(_, v)| v)
        .unwrap_or(api_version)
}

/// The type of an ownerReference, if it is served.
fn owner_type(store: &Store, r: &OwnerRef) -> Option<Arc<ResourceType>> {
    let reg = store.registry();
    let group = group_of(&r.api_version);
    reg.lookup_kind(group, version_of(&r.api_version), &r.kind)
        .or_else(|| reg.lookup_group_kind(group, &r.kind))
}

/// Looks an owner up by name and checks its uid, as kube-controller-manager does.
/// `None` when the reference cannot be resolved (a kind that is not served, or a namespaced
/// owner of a cluster-scoped object): such a reference holds the object.
pub fn classify(store: &Store, dependent_namespace: &str, r: &OwnerRef) -> Option<OwnerState> {
    let rt = owner_type(store, r)?;
    if rt.namespaced && dependent_namespace.is_empty() {
        // A cluster-scoped object cannot be owned by a namespaced one; kube-controller-manager
        // reports the reference as invalid and leaves the object alone.
        return None;
    }
    let at = ObjRef {
        gr: storage_group_resource(&rt),
        namespace: if rt.namespaced {
            dependent_namespace.to_string()
        } else {
            String::new()
        },
        name: r.name.clone(),
    };
    let Some(owner) = store.get_ref(&at) else {
        return Some(OwnerState::Dangling);
    };
    if owner.0.uid != r.uid {
        return Some(OwnerState::Dangling);
    }
    let v = owner.metadata_value();
    if meta::is_deleting(&v) && meta::finalizers(&v).iter().any(|f| f == FOREGROUND) {
        Some(OwnerState::Waiting)
    } else {
        Some(OwnerState::Solid)
    }
}

fn type_of(store: &Store, r: &ObjRef) -> Result<Arc<ResourceType>> {
    store.registry().storage_type(&r.gr).ok_or_else(|| {
        ApiError::internal(format!("no type serves {}/{}", r.gr.group, r.gr.resource))
    })
}

fn ns_of(r: &ObjRef) -> Option<&str> {
    (!r.namespace.is_empty()).then_some(r.namespace.as_str())
}

/// Deletes an object with a uid precondition; a vanished or replaced object is not an error.
fn delete_ref(store: &Store, r: &ObjRef, uid: &str, policy: Propagation) -> Result<()> {
    let rt = type_of(store, r)?;
    let opts = DeleteOptions {
        propagation: Some(policy),
        precondition_uid: Some(uid.to_string()),
        ..Default::default()
    };
    match store.delete(&rt, ns_of(r), &r.name, &opts) {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Modifies an object if it still has `uid`; a vanished or replaced object is not an error.
fn modify_ref(store: &Store, r: &ObjRef, uid: &str, mut f: impl FnMut(&mut Value)) -> Result<()> {
    let rt = type_of(store, r)?;
    let result = store.modify(&rt, ns_of(r), &r.name, |mut v| {
        if meta::meta_str(&v, "uid") != Some(uid) {
            return Err(ApiError::conflict(
                &rt.group,
                &rt.plural,
                &r.name,
                "the object was replaced",
            ));
        }
        f(&mut v);
        Ok(v)
    });
    match result {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

fn remove_owner_refs(v: &mut Value, uids: &[String]) {
    let meta = meta::meta_mut(v);
    if let Some(Value::Array(refs)) = meta.get_mut("ownerReferences") {
        refs.retain(|r| {
            !r.get("uid")
                .and_then(Value::as_str)
                .is_some_and(|u| uids.iter().any(|x| x == u))
        });
        if refs.is_empty() {
            meta.remove("ownerReferences");
        }
    }
}

fn remove_finalizer(v: &mut Value, name: &str) {
    let mut fins = meta::finalizers(v);
    fins.retain(|f| f != name);
    meta::set_finalizers(v, fins);
}

/// The garbage collector's look at one dependent.
fn attempt_to_delete(store: &Store, r: &ObjRef) -> Result<()> {
    let Some(obj) = store.get_ref(r) else {
        return Ok(());
    };
    let v = obj.metadata_value();
    if meta::is_deleting(&v) {
        // Already going; a foreground deletion is handled as an owner.
        return Ok(());
    }
    let refs = meta::owner_refs(&v);
    let mut known = Vec::new();
    let mut states = Vec::new();
    for owner in &refs {
        if let Some(s) = classify(store, &r.namespace, owner) {
            known.push(owner.clone());
            states.push(s);
        }
    }
    if known.len() != refs.len() && !states.contains(&OwnerState::Solid) {
        // An owner of an unknown kind counts as present, as the real collector waits on it.
        states.push(OwnerState::Solid);
        known.push(OwnerRef {
            api_version: String::new(),
            kind: String::new(),
            name: String::new(),
            uid: String::new(),
            block_owner_deletion: false,
        });
    }
    let has_dependents = !store.dependents_of(&obj.0.uid).is_empty();
    match decide(&known, &states, &meta::finalizers(&v), has_dependents) {
        Decision::Keep => Ok(()),
        Decision::StripRefs(uids) => {
            let uids: Vec<String> = uids.into_iter().filter(|u| !u.is_empty()).collect();
            modify_ref(store, r, &obj.0.uid, |v| remove_owner_refs(v, &uids))
        }
        Decision::Delete(policy) => delete_ref(store, r, &obj.0.uid, policy),
    }
}

/// An owner being deleted with `orphan` or `foregroundDeletion`.
fn process_deleting_owner(store: &Store, r: &ObjRef) -> Result<()> {
    let Some(obj) = store.get_ref(r) else {
        return Ok(());
    };
    let v = obj.metadata_value();
    if !meta::is_deleting(&v) {
        return Ok(());
    }
    let uid = obj.0.uid.clone();
    let fins = meta::finalizers(&v);
    if fins.iter().any(|f| f == ORPHAN) {
        for dep in store.dependents_of(&uid) {
            if let Some(d) = store.get_ref(&dep) {
                let ids = [uid.clone()];
                modify_ref(store, &dep, &d.0.uid, |v| remove_owner_refs(v, &ids))?;
            }
        }
        return modify_ref(store, r, &uid, |v| remove_finalizer(v, ORPHAN));
    }
    if fins.iter().any(|f| f == FOREGROUND) {
        let mut blocking = false;
        for dep in store.dependents_of(&uid) {
            let Some(d) = store.get_ref(&dep) else {
                continue;
            };
            let dv = d.metadata_value();
            if meta::owner_refs(&dv)
                .iter()
                .any(|o| o.uid == uid && o.block_owner_deletion)
            {
                blocking = true;
            }
            if !meta::is_deleting(&dv) {
                store.push_gc_task(GcTask::Dependent(dep));
            }
        }
        if !blocking {
            return modify_ref(store, r, &uid, |v| remove_finalizer(v, FOREGROUND));
        }
    }
    Ok(())
}

/// A terminating namespace: delete everything in it, then drop the `kubernetes` finalizer.
fn process_namespace(store: &Store, ns: &str) -> Result<()> {
    let reg = store.registry();
    let Some(ns_rt) = reg.lookup("", "v1", "namespaces") else {
        return Ok(());
    };
    let at = ObjRef {
        gr: ns_rt.group_resource(),
        namespace: String::new(),
        name: ns.to_string(),
    };
    let Some(obj) = store.get_ref(&at) else {
        return Ok(());
    };
    if !meta::is_deleting(&obj.metadata_value()) {
        return Ok(());
    }
    for r in store.namespace_contents(ns) {
        let Some(o) = store.get_ref(&r) else { continue };
        if !meta::is_deleting(&o.metadata_value()) {
            delete_ref(store, &r, &o.0.uid, Propagation::Background)?;
        }
    }
    if !store.namespace_contents(ns).is_empty() {
        // Objects with finalizers remain; their removal queues this namespace again.
        return Ok(());
    }
    modify_ref(store, &at, &obj.0.uid, |v| {
        if let Some(Value::Array(f)) = v.pointer_mut("/spec/finalizers") {
            f.retain(|x| x.as_str() != Some("kubernetes"));
        }
    })
}

/// A CRD being deleted: delete all its objects, then drop the cleanup finalizer.
fn process_crd(store: &Store, name: &str) -> Result<()> {
    let reg = store.registry();
    let Some(crd_rt) = reg.lookup("apiextensions.k8s.io", "v1", "customresourcedefinitions") else {
        return Ok(());
    };
    let at = ObjRef {
        gr: crd_rt.group_resource(),
        namespace: String::new(),
        name: name.to_string(),
    };
    let Some(obj) = store.get_ref(&at) else {
        return Ok(());
    };
    let v = obj.to_value();
    if !meta::is_deleting(&v) {
        return Ok(());
    }
    if let Some(served) = crd::served_group_resource(&v) {
        for r in store.all_of(&served) {
            let Some(o) = store.get_ref(&r) else { continue };
            if !meta::is_deleting(&o.metadata_value()) {
                delete_ref(store, &r, &o.0.uid, Propagation::Background)?;
            }
        }
        if !store.all_of(&served).is_empty() {
            return Ok(());
        }
    }
    modify_ref(store, &at, &obj.0.uid, |v| {
        remove_finalizer(v, crd::CLEANUP_FINALIZER)
    })
}

#[cfg(test)]
mod tests;
