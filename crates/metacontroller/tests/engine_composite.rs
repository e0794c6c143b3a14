//! Component tests of the engine's CompositeController: the engine runs against the embedded
//! API server over real HTTP, and each test serves its own sync hook on a loopback port.
//!
//! Every wait is bounded; every server and engine is stopped through its cancellation token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use metacontroller_apiserver::ServerConfig;
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

mod common;

use common::{
    composite_controllers, configmaps, crds, obj, resource, things, wait_for, Env, Hook, Responder,
    WAIT,
};

/// The quiet window after convergence.
const QUIET: Duration = Duration::from_secs(2);

impl Env {
    async fn create_controller(&self, name: &str, hook_url: &str, extra_spec: Value) {
        let mut spec = json!({
            "parentResource": {"apiVersion": "example.com/v1", "resource": "things"},
            "childResources": [{
                "apiVersion": "v1", "resource": "configmaps",
                "updateStrategy": {"method": "InPlace"}
            }],
            "hooks": {"sync": {"webhook": {"url": hook_url, "timeout": "5s"}}}
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
            s.extend(e.clone());
        }
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &composite_controllers());
        api.create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "metacontroller.k8s.io/v1alpha1",
                "kind": "CompositeController",
                "metadata": {"name": name},
                "spec": spec
            })),
        )
        .await
        .expect("create CompositeController");
    }

    /// Waits until the Thing `name` reports `status.observedChildren == n`.
    async fn wait_observed_children(&self, name: &str, n: usize) {
        wait_for("status.observedChildren", || async {
            let t = self.things().get(name).await.ok()?;
            (t.data["status"]["observedChildren"] == n).then_some(())
        })
        .await;
    }

    async fn create_thing(&self, name: &str, color: &str) -> DynamicObject {
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), "default", &things());
        api.create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "example.com/v1", "kind": "Thing",
                "metadata": {"name": name},
                "spec": {"color": color, "selector": {"matchLabels": {"thing": name}}}
            })),
        )
        .await
        .expect("create Thing")
    }
}

/// A hook that wants one ConfigMap per Thing carrying the Thing's color, and reports it.
fn color_hook() -> Responder {
    Arc::new(|req: &Value| {
        let parent = &req["parent"];
        let name = parent["metadata"]["name"].as_str().unwrap_or("");
        let color = parent["spec"]["color"].clone();
        let observed = common::count(&req["children"]["ConfigMap.v1"]);
        (
            200,
            json!({
                "status": {"color": color, "observedChildren": observed},
                "children": [{
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("{name}-cm"), "labels": {"thing": name}},
                    "data": {"color": color}
                }]
            }),
        )
    })
}

async fn child_color(env: &Env, name: &str) -> Option<String> {
    let cm = env.configmaps().get_opt(name).await.ok()??;
    cm.data["data"]["color"].as_str().map(str::to_string)
}

/// Upstream `syncParentObject` + `ManageChildren` + `updateParentStatus`: a new parent gets
/// its child, owned through a controller reference, and its status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_child_with_owner_reference_and_writes_status() {
    let env = Env::start().await;
    let hook = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller("things", &hook.url, json!({})).await;
    let thing = env.create_thing("t1", "blue").await;
    let uid = thing.metadata.uid.clone().expect("uid");

    let child = wait_for("child ConfigMap", || async {
        env.configmaps().get_opt("t1-cm").await.ok().flatten()
    })
    .await;
    assert_eq!(child.data["data"]["color"], "blue");
    assert_eq!(
        child
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("thing"))
            .map(String::as_str),
        Some("t1")
    );
    let refs = child.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(refs.len(), 1, "{refs:?}");
    assert_eq!(refs[0].uid, uid);
    assert_eq!(refs[0].kind, "Thing");
    assert_eq!(refs[0].api_version, "example.com/v1");
    assert_eq!(refs[0].name, "t1");
    assert_eq!(refs[0].controller, Some(true));
    assert_eq!(refs[0].block_owner_deletion, Some(true));
    assert!(child
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key("metacontroller.k8s.io/last-applied-configuration")));

    // The hook sees the child it created, and reports it in the status.
    let status = wait_for("status with the observed child", || async {
        let t = env.things().get("t1").await.ok()?;
        let s = t.data.get("status")?.clone();
        (s["observedChildren"] == 1).then_some(s)
    })
    .await;
    assert_eq!(status["color"], "blue");
    assert_eq!(status["observedGeneration"], 1);

    // An update of the parent's spec flows to the child (InPlace).
    env.things()
        .patch(
            "t1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "red"}})),
        )
        .await
        .expect("patch Thing");
    wait_for("child updated in place", || async {
        (child_color(&env, "t1-cm").await.as_deref() == Some("red")).then_some(())
    })
    .await;
    env.stop().await;
}

/// Upstream `syncParentObject`: a failed hook call returns before `ManageChildren` and
/// `updateParentStatus`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_failure_leaves_children_and_status_untouched() {
    let env = Env::start().await;
    let hook = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller("things", &hook.url, json!({})).await;
    env.create_thing("t2", "green").await;
    env.wait_observed_children("t2", 1).await;

    // The hook now fails; a spec change must not reach the child or the status.
    hook.set(Arc::new(|_req: &Value| (500, json!({"error": "boom"}))));
    let before = hook.calls();
    env.things()
        .patch(
            "t2",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "black"}})),
        )
        .await
        .expect("patch Thing");
    wait_for("retries of the failing hook", || async {
        (hook.calls() >= before + 3).then_some(())
    })
    .await;
    assert_eq!(child_color(&env, "t2-cm").await.as_deref(), Some("green"));
    let t = env.things().get("t2").await.expect("Thing");
    assert_eq!(t.data["status"]["color"], "green");
    assert_eq!(t.data["status"]["observedGeneration"], 1);

    // The failure is reported as a Warning event on the parent.
    let events: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        "default",
        &resource("events.k8s.io", "v1", "Event", "events"),
    );
    wait_for("SyncError event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| {
                e.data["reason"] == "SyncError"
                    && e.data["regarding"]["name"] == "t2"
                    && e.data["type"] == "Warning"
            })
            .then_some(())
    })
    .await;

    // A malformed reply is a failure too: nothing is deleted.
    hook.set(Arc::new(|_req: &Value| (200, json!("not an object"))));
    let before = hook.calls();
    wait_for("retries with invalid JSON", || async {
        (hook.calls() >= before + 2).then_some(())
    })
    .await;
    assert_eq!(child_color(&env, "t2-cm").await.as_deref(), Some("green"));

    // Once the hook recovers, the pending change is applied at the next sync (a watch event
    // syncs at once, whatever the backoff reached).
    hook.set(color_hook());
    env.things()
        .patch(
            "t2",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"poke": "1"}}})),
        )
        .await
        .expect("annotate Thing");
    wait_for("recovery", || async {
        (child_color(&env, "t2-cm").await.as_deref() == Some("black")).then_some(())
    })
    .await;
    env.stop().await;
}

/// Upstream `resyncPeriodSeconds` (`enqueueParentObjectAfter`): a resync calls the hook and,
/// converged, writes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn converged_resyncs_make_no_writes() {
    let env = Env::start().await;
    let hook = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller("things", &hook.url, json!({"resyncPeriodSeconds": 1}))
        .await;
    env.create_thing("t3", "white").await;
    env.wait_observed_children("t3", 1).await;
    // Let in-flight syncs triggered by our own writes settle.
    sleep(Duration::from_millis(1500)).await;
    let writes = env.write_count().await;
    let calls = hook.calls();
    wait_for("two more resyncs", || async {
        (hook.calls() >= calls + 2).then_some(())
    })
    .await;
    assert_eq!(
        env.write_count().await,
        writes,
        "a converged resync must not write"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_status_writes_sync_the_parent_until_its_status_is_unchanged() {
    let env = Env::start().await;
    let hook = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller("things", &hook.url, json!({})).await;
    env.create_thing("t9", "green").await;
    env.wait_observed_children("t9", 1).await;
    env.settle(&[&hook]).await;
    // As upstream: the first call creates the child and writes `observedChildren: 0`; the next
    // (for the child and the status, coalesced when seen together) writes `1`; the next sees
    // `1` committed and writes nothing.
    let calls = hook.calls();
    assert!(
        (3..=4).contains(&calls),
        "hook calls for one new parent: {calls}"
    );
    let writes = env.write_count().await;

    // A status someone else wrote syncs the parent, which gets its status back; the echo of
    // that write syncs once more and changes nothing.
    env.things()
        .patch_status(
            "t9",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"color": "tampered"}})),
        )
        .await
        .expect("patch status");
    wait_for("status restored", || async {
        let t = env.things().get("t9").await.ok()?;
        (t.data["status"]["color"] == "green").then_some(())
    })
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    assert_eq!(hook.calls(), calls + 2, "the foreign status and the echo");
    assert_eq!(
        env.write_count().await,
        writes + 2,
        "the test's status patch and the engine's status write"
    );
    env.stop().await;
}

/// Every status stored for the Thing `name` after `version`, in order: a watch from that
/// resourceVersion, which the server ends after two seconds.
async fn status_history(env: &Env, name: &str, version: &str) -> Vec<Value> {
    use futures::TryStreamExt;
    let params = kube::api::WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(2);
    let stream = env
        .things()
        .watch(&params, version)
        .await
        .expect("watch Things");
    let events: Vec<_> = tokio::time::timeout(WAIT, stream.try_collect())
        .await
        .expect("the server ends the watch at its timeout")
        .expect("watch events");
    let mut history = Vec::new();
    for event in events {
        if let kube::api::WatchEvent::Modified(t) = event {
            let status = t.data.get("status").cloned().unwrap_or(Value::Null);
            if history.last() != Some(&status) {
                history.push(status);
            }
        }
    }
    history
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_status_a_sync_returns_is_written_in_order() {
    let env = Env::start().await;
    let hook = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller("things", &hook.url, json!({})).await;
    let writes = env.write_count().await;
    let thing = env.create_thing("t10", "teal").await;
    env.wait_observed_children("t10", 1).await;
    env.assert_quiet(&[&hook], QUIET).await;
    // The first call creates the ConfigMap and reports `observedChildren: 0`; that status is
    // committed (a hook may wait to see it) before the next call's `1` replaces it.
    let version = thing.metadata.resource_version.expect("resourceVersion");
    let history = status_history(&env, "t10", &version).await;
    assert_eq!(
        history,
        [
            json!({"color": "teal", "observedChildren": 0, "observedGeneration": 1}),
            json!({"color": "teal", "observedChildren": 1, "observedGeneration": 1})
        ],
        "statuses stored"
    );
    assert_eq!(
        env.write_count().await - writes,
        4,
        "the Thing's create, the ConfigMap's create and two status writes"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_whose_child_write_failed_still_writes_its_status() {
    let env = Env::start().await;
    // One good child and one the server rejects (not a valid object name).
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let name = req["parent"]["metadata"]["name"].as_str().unwrap_or("");
            let observed = common::count(&req["children"]["ConfigMap.v1"]);
            let child = |n: String| {
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": n, "labels": {"thing": name}}})
            };
            (
                200,
                json!({"status": {"observedChildren": observed},
                    "children": [child(format!("{name}-ok")), child("Not_A_Name".into())]}),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_controller("things", &hook.url, json!({})).await;
    let thing = env.create_thing("t12", "any").await;
    wait_for("the good child", || async {
        env.configmaps().get_opt("t12-ok").await.ok().flatten()
    })
    .await;
    wait_for("status written", || async {
        let t = env.things().get("t12").await.ok()?;
        t.data.get("status").map(|_| ())
    })
    .await;
    // The first sync created a child but also failed one: its status (`0`) is written, not
    // left to a next sync.
    let version = thing.metadata.resource_version.expect("resourceVersion");
    let history = status_history(&env, "t12", &version).await;
    assert_eq!(
        history.first().map(|s| s["observedChildren"].clone()),
        Some(json!(0)),
        "statuses stored: {history:?}"
    );
    env.stop().await;
}

/// Wants one more ConfigMap than it sees, up to four, and reports how many it saw.
fn growing_hook() -> Responder {
    Arc::new(|req: &Value| {
        let name = req["parent"]["metadata"]["name"].as_str().unwrap_or("");
        let observed = common::count(&req["children"]["ConfigMap.v1"]);
        let children: Vec<Value> = (0..(observed + 1).min(4))
            .map(|i| {
                json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("{name}-{i}"), "labels": {"thing": name}},
                })
            })
            .collect();
        (
            200,
            json!({"status": {"observedChildren": observed}, "children": children}),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_changes_children_on_every_call_has_each_status_written() {
    let env = Env::start().await;
    let hook = Hook::start(growing_hook(), env.shutdown.clone()).await;
    env.create_controller("things", &hook.url, json!({})).await;
    let thing = env.create_thing("t11", "any").await;
    env.wait_observed_children("t11", 4).await;
    env.assert_quiet(&[&hook], QUIET).await;
    // Calls see 0, 1, 2, 3 and 4 children, the first four each creating one; every status
    // is written, and one more call sees the last one committed.
    let version = thing.metadata.resource_version.expect("resourceVersion");
    let seen: Vec<Value> = status_history(&env, "t11", &version)
        .await
        .iter()
        .map(|s| s["observedChildren"].clone())
        .collect();
    assert_eq!(
        seen,
        [json!(0), json!(1), json!(2), json!(3), json!(4)],
        "statuses stored"
    );
    assert!(hook.calls() >= 6, "calls: {}", hook.calls());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_controller_does_not_disturb_others() {
    let env = Env::start().await;
    let hook = Hook::start(color_hook(), env.shutdown.clone()).await;
    // Unknown parent resource, then a controller without a sync hook.
    let api: Api<DynamicObject> = Api::all_with(env.client.clone(), &composite_controllers());
    api.create(
        &PostParams::default(),
        &obj(json!({
            "apiVersion": "metacontroller.k8s.io/v1alpha1", "kind": "CompositeController",
            "metadata": {"name": "broken"},
            "spec": {"parentResource": {"apiVersion": "nowhere.example.com/v1", "resource": "ghosts"},
                     "hooks": {"sync": {"webhook": {"url": hook.url.clone()}}}}
        })),
    )
    .await
    .expect("create broken controller");
    env.create_controller("things", &hook.url, json!({})).await;
    env.create_thing("t4", "pink").await;
    wait_for("child of the valid controller", || async {
        (child_color(&env, "t4-cm").await.as_deref() == Some("pink")).then_some(())
    })
    .await;
    let events: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        "default",
        &resource("events.k8s.io", "v1", "Event", "events"),
    );
    wait_for("warning on the broken controller", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .iter()
            .any(|e| e.data["type"] == "Warning" && e.data["regarding"]["name"] == "broken")
            .then_some(())
    })
    .await;
    env.stop().await;
}

/// A hook whose sync wants the ConfigMaps named in `spec.children`, and whose finalize hook
/// deletes every child and reports `finalized` once none is observed.
fn named_children_hook() -> Responder {
    Arc::new(|req: &Value| {
        let parent = &req["parent"];
        let name = parent["metadata"]["name"].as_str().unwrap_or("");
        let observed = common::count(&req["children"]["ConfigMap.v1"]);
        if req["finalizing"] == true {
            return (200, json!({"children": [], "finalized": observed == 0}));
        }
        let wanted: Vec<Value> = parent["spec"]["children"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let children: Vec<Value> = wanted
            .iter()
            .map(|n| {
                json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": n, "labels": {"thing": name}},
                    "data": {"color": parent["spec"]["color"]}
                })
            })
            .collect();
        (
            200,
            json!({
                "status": {"desired": wanted.len(), "observedChildren": observed},
                "children": children
            }),
        )
    })
}

fn controller_ref_uid(obj: &DynamicObject) -> Option<String> {
    obj.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

/// Upstream `claimChildren` (the controller-reference manager): orphans the selector matches
/// are adopted, owned children it no longer matches are released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adopts_matching_orphans_and_releases_children_that_stop_matching() {
    let env = Env::start().await;
    let hook = Hook::start(named_children_hook(), env.shutdown.clone()).await;
    env.configmaps()
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "adoptee", "labels": {"thing": "t5"}},
                "data": {"color": "old", "extra": "kept"}
            })),
        )
        .await
        .expect("create orphan");
    env.create_controller("things", &hook.url, json!({})).await;
    let thing = env
        .things()
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "example.com/v1", "kind": "Thing",
                "metadata": {"name": "t5"},
                "spec": {"color": "teal", "children": ["t5-cm", "adoptee"],
                         "selector": {"matchLabels": {"thing": "t5"}}}
            })),
        )
        .await
        .expect("create Thing");
    let uid = thing.metadata.uid.clone().expect("uid");

    let adopted = wait_for("adopted and updated orphan", || async {
        let cm = env.configmaps().get("adoptee").await.ok()?;
        (controller_ref_uid(&cm).as_deref() == Some(uid.as_str())
            && cm.data["data"]["color"] == "teal")
            .then_some(cm)
    })
    .await;
    assert_eq!(
        adopted.data["data"]["extra"], "kept",
        "fields the hook does not set survive"
    );

    // A child whose labels stop matching is released, not deleted.
    env.configmaps()
        .patch(
            "adoptee",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"thing": "elsewhere"}}})),
        )
        .await
        .expect("relabel");
    wait_for("released child", || async {
        let cm = env.configmaps().get("adoptee").await.ok()?;
        controller_ref_uid(&cm).is_none().then_some(())
    })
    .await;
    env.things()
        .patch(
            "t5",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"children": ["t5-cm"]}})),
        )
        .await
        .expect("patch Thing");
    wait_for("parent converged on one child", || async {
        let t = env.things().get("t5").await.ok()?;
        (t.data["status"]["desired"] == 1 && t.data["status"]["observedChildren"] == 1)
            .then_some(())
    })
    .await;
    let released = env
        .configmaps()
        .get("adoptee")
        .await
        .expect("released child still exists");
    assert_eq!(released.data["data"]["color"], "teal");
    assert!(env
        .configmaps()
        .get_opt("t5-cm")
        .await
        .expect("get")
        .is_some());
    env.stop().await;
}

/// Upstream `onChildAdd` + `findPotentialParents`: an orphan syncs every parent that may adopt
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_appearing_later_syncs_the_parent_whose_selector_matches_it() {
    let env = Env::start().await;
    let hook = Hook::start(named_children_hook(), env.shutdown.clone()).await;
    env.create_controller("things", &hook.url, json!({})).await;
    for (name, label) in [("t6", "t6"), ("t7", "t7")] {
        env.things()
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "example.com/v1", "kind": "Thing",
                    "metadata": {"name": name},
                    "spec": {"color": "teal", "children": [format!("{name}-cm")],
                             "selector": {"matchLabels": {"thing": label}}}
                })),
            )
            .await
            .expect("create Thing");
    }
    for name in ["t6-cm", "t7-cm"] {
        wait_for("child created", || async {
            env.configmaps().get_opt(name).await.ok().flatten()
        })
        .await;
    }
    // Nothing else changes t6, so only the orphan's own event can bring it to adopt the stray
    // ConfigMap, which it does not want: adopted, then deleted. t7 does not select it.
    env.configmaps()
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "stray", "labels": {"thing": "t6"}},
                "data": {"color": "none"}
            })),
        )
        .await
        .expect("create orphan");
    wait_for("stray orphan adopted and removed", || async {
        env.configmaps()
            .get_opt("stray")
            .await
            .ok()
            .and_then(|cm| cm.is_none().then_some(()))
    })
    .await;
    assert!(env
        .configmaps()
        .get_opt("t7-cm")
        .await
        .expect("get")
        .is_some());
    env.stop().await;
}

/// Upstream `syncParentObject` + `finalizer.Manager`: the finalizer is added, the finalize
/// hook runs while the parent is deleting, the finalizer goes once it answers `finalized:
/// true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_hook_runs_before_the_parent_goes_away() {
    let env = Env::start().await;
    let hook = Hook::start(named_children_hook(), env.shutdown.clone()).await;
    env.create_controller(
        "things",
        &hook.url,
        json!({"hooks": {
            "sync": {"webhook": {"url": hook.url.clone()}},
            "finalize": {"webhook": {"url": hook.url.clone()}}
        }}),
    )
    .await;
    env.things()
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "example.com/v1", "kind": "Thing",
                "metadata": {"name": "t6"},
                "spec": {"color": "gold", "children": ["t6-a", "t6-b"],
                         "selector": {"matchLabels": {"thing": "t6"}}}
            })),
        )
        .await
        .expect("create Thing");
    let finalizer = "metacontroller.io/compositecontroller-things";
    wait_for("finalizer and children", || async {
        let t = env.things().get("t6").await.ok()?;
        let has = t
            .metadata
            .finalizers
            .as_ref()?
            .iter()
            .any(|f| f == finalizer);
        let a = env.configmaps().get_opt("t6-a").await.ok()??;
        let b = env.configmaps().get_opt("t6-b").await.ok()??;
        (has && controller_ref_uid(&a).is_some() && controller_ref_uid(&b).is_some()).then_some(())
    })
    .await;

    env.things()
        .delete("t6", &Default::default())
        .await
        .expect("delete Thing");
    wait_for("parent gone after finalizing", || async {
        env.things()
            .get_opt("t6")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    // The finalize hook deleted the children itself.
    wait_for("children deleted", || async {
        let a = env.configmaps().get_opt("t6-a").await.ok()?;
        let b = env.configmaps().get_opt("t6-b").await.ok()?;
        (a.is_none() && b.is_none()).then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_in_parents_with_generated_selector_and_recreate() {
    let env = Env::start().await;
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let parent = &req["parent"];
            let name = parent["metadata"]["name"].as_str().unwrap_or("");
            (
                200,
                json!({"children": [{
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("{name}-child")},
                    "data": {"value": parent["data"]["value"]}
                }]}),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    let api: Api<DynamicObject> = Api::all_with(env.client.clone(), &composite_controllers());
    api.create(
        &PostParams::default(),
        &obj(json!({
            "apiVersion": "metacontroller.k8s.io/v1alpha1", "kind": "CompositeController",
            "metadata": {"name": "configmaps"},
            "spec": {
                "generateSelector": true,
                "parentResource": {"apiVersion": "v1", "resource": "configmaps",
                                   "labelSelector": {"matchLabels": {"role": "parent"}}},
                "childResources": [{"apiVersion": "v1", "resource": "configmaps",
                                    "updateStrategy": {"method": "Recreate"}}],
                "hooks": {"sync": {"webhook": {"url": hook.url.clone()}}}
            }
        })),
    )
    .await
    .expect("create controller");
    let parent = env
        .configmaps()
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "p", "labels": {"role": "parent"}},
                "data": {"value": "one"}
            })),
        )
        .await
        .expect("create parent");
    let uid = parent.metadata.uid.clone().expect("uid");
    let first = wait_for("child of a ConfigMap parent", || async {
        env.configmaps().get_opt("p-child").await.ok()?
    })
    .await;
    assert_eq!(first.data["data"]["value"], "one");
    assert_eq!(controller_ref_uid(&first).as_deref(), Some(uid.as_str()));
    let labels = first.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels.get("controller-uid").map(String::as_str),
        Some(uid.as_str())
    );
    let refs = first.metadata.owner_references.clone().unwrap_or_default();
    assert_eq!(
        (refs[0].kind.as_str(), refs[0].api_version.as_str()),
        ("ConfigMap", "v1")
    );

    // Recreate: a changed child is deleted and created again (a new UID).
    env.configmaps()
        .patch(
            "p",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"value": "two"}})),
        )
        .await
        .expect("patch parent");
    let second = wait_for("recreated child", || async {
        let cm = env.configmaps().get_opt("p-child").await.ok()??;
        (cm.data["data"]["value"] == "two").then_some(cm)
    })
    .await;
    assert_ne!(
        second.metadata.uid, first.metadata.uid,
        "recreated, not updated"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_restarts_on_spec_change_and_stops_when_deleted() {
    let env = Env::start().await;
    let first = Hook::start(color_hook(), env.shutdown.clone()).await;
    let second = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller("things", &first.url, json!({})).await;
    env.create_thing("t7", "blue").await;
    wait_for("first hook in use", || async {
        (child_color(&env, "t7-cm").await.as_deref() == Some("blue")).then_some(())
    })
    .await;

    // Point the controller at the second hook: the restarted controller resyncs every parent.
    let api: Api<DynamicObject> = Api::all_with(env.client.clone(), &composite_controllers());
    api.patch(
        "things",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"hooks": {"sync": {"webhook": {"url": second.url.clone()}}}}}),
        ),
    )
    .await
    .expect("patch controller");
    wait_for("second hook called", || async {
        (second.calls() > 0).then_some(())
    })
    .await;

    // Deleted: parent changes no longer reach any hook.
    api.delete("things", &Default::default())
        .await
        .expect("delete controller");
    wait_for("controller gone", || async {
        api.get_opt("things").await.ok()?.is_none().then_some(())
    })
    .await;
    sleep(Duration::from_millis(500)).await;
    let calls = first.calls() + second.calls();
    env.things()
        .patch(
            "t7",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "red"}})),
        )
        .await
        .expect("patch Thing");
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        first.calls() + second.calls(),
        calls,
        "a deleted controller must not sync"
    );
    assert_eq!(child_color(&env, "t7-cm").await.as_deref(), Some("blue"));
    env.stop().await;
}

/// `apiserver_registered_watchers` summed over every kind.
async fn watcher_count(client: &Client) -> u64 {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = client.request_text(request).await.expect("metrics");
    text.lines()
        .filter(|l| l.starts_with("apiserver_registered_watchers{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informers_are_shared_and_stop_when_unused() {
    let shutdown = CancellationToken::new();
    let server = metacontroller_apiserver::start(
        ServerConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            tls: false,
        },
        shutdown.clone(),
    )
    .await
    .expect("start API server");
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    let client = Client::try_from(config).expect("client");
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), "default", &configmaps());
    api.create(
        &PostParams::default(),
        &obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "pre"}})),
    )
    .await
    .expect("create ConfigMap");

    let discovery = metacontroller_engine::Discovery::new(client.clone());
    let resource = discovery
        .resolve("v1", "configmaps")
        .await
        .expect("resolve");
    assert!(resource.namespaced);
    assert_eq!(resource.kind, "ConfigMap");
    let factory = metacontroller_engine::InformerFactory::new(client.clone());
    let a = factory.informer(&resource);
    let b = factory.informer(&resource);
    assert!(Arc::ptr_eq(&a, &b), "one informer per resource type");
    assert_eq!(factory.running(), 1);
    tokio::time::timeout(WAIT, a.wait_synced())
        .await
        .expect("initial list");
    assert!(a.has_synced());
    assert!(a.get("default", "pre").is_some());

    // Events reach subscribers with (old, new) pairs, and the cache follows.
    let seen: Arc<Mutex<Vec<(bool, bool)>>> = Arc::default();
    let sink = seen.clone();
    let subscription = a.subscribe(Arc::new(move |e: &metacontroller_engine::store::Event| {
        sink.lock()
            .expect("events")
            .push((e.old.is_some(), e.new.is_some()));
    }));
    api.create(
        &PostParams::default(),
        &obj(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "new"}})),
    )
    .await
    .expect("create ConfigMap");
    api.delete("pre", &Default::default())
        .await
        .expect("delete");
    wait_for("add and delete events", || async {
        let s = seen.lock().expect("events").clone();
        (s.contains(&(false, true)) && s.contains(&(true, false))).then_some(())
    })
    .await;
    assert!(a.get("default", "pre").is_none());
    assert!(a.get("default", "new").is_some());
    assert!(watcher_count(&client).await >= 1);

    // Dropping every handle stops the watch.
    drop(subscription);
    drop((a, b));
    assert_eq!(factory.running(), 0);
    wait_for("watch closed", || async {
        (watcher_count(&client).await == 0).then_some(())
    })
    .await;
    shutdown.cancel();
    let _ = tokio::time::timeout(WAIT, server.stopped()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_requests_waits_for_retry_after() {
    let env = Env::start().await;
    let hook = Hook::start(
        Arc::new(|_req: &Value| (429, json!({}))),
        env.shutdown.clone(),
    )
    .await;
    env.create_controller("things", &hook.url, json!({})).await;
    env.create_thing("t8", "grey").await;
    wait_for("first call", || async { (hook.calls() >= 1).then_some(()) }).await;
    let first = hook.calls();
    sleep(Duration::from_millis(600)).await;
    assert_eq!(hook.calls(), first, "no retry before Retry-After");
    hook.set(color_hook());
    wait_for("retried after Retry-After", || async {
        (child_color(&env, "t8-cm").await.as_deref() == Some("grey")).then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_for_a_crd_created_later_starts_after_discovery_refresh() {
    a_controller_for_a_crd_created_later_starts(Env::start().await, "gadgets").await;
}

/// `kubectl apply -f dir/` creates a CRD and its controller together: the controller must not
/// wait for the next discovery refresh (an hour here) to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_for_a_crd_created_later_starts_without_waiting_for_discovery() {
    let opts = metacontroller_engine::EngineOptions {
        discovery_interval: Duration::from_secs(3600),
        ..common::engine_options()
    };
    let logs = common::capture_logs("info");
    let env = Env::start_with_options([common::crd("Thing", "things", "Namespaced")], opts).await;
    a_controller_for_a_crd_created_later_starts(env, "gadgets-soon").await;
    // It was retried several times before the CRD was served, but each distinct error was
    // logged once (the message may change once the group version is served).
    let text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    let reported = text
        .lines()
        .filter(|l| {
            l.contains("can't start CompositeController") && l.contains("controller=gadgets-soon")
        })
        .count();
    assert!((1..=2).contains(&reported), "{reported} reports:\n{text}");
}

async fn a_controller_for_a_crd_created_later_starts(env: Env, name: &str) {
    let hook = Hook::start(color_hook(), env.shutdown.clone()).await;
    let api: Api<DynamicObject> = Api::all_with(env.client.clone(), &composite_controllers());
    api.create(
        &PostParams::default(),
        &obj(json!({
            "apiVersion": "metacontroller.k8s.io/v1alpha1", "kind": "CompositeController",
            "metadata": {"name": name},
            "spec": {
                "parentResource": {"apiVersion": "late.example.com/v1", "resource": "gadgets"},
                "childResources": [{"apiVersion": "v1", "resource": "configmaps"}],
                "hooks": {"sync": {"webhook": {"url": hook.url.clone()}}}
            }
        })),
    )
    .await
    .expect("create controller");
    sleep(Duration::from_millis(500)).await;
    let crd_api: Api<DynamicObject> = Api::all_with(env.client.clone(), &crds());
    crd_api
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": "gadgets.late.example.com"},
                "spec": {
                    "group": "late.example.com",
                    "scope": "Namespaced",
                    "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList"},
                    "versions": [{
                        "name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
                    }]
                }
            })),
        )
        .await
        .expect("create CRD");
    let gadgets: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        "default",
        &resource("late.example.com", "v1", "Gadget", "gadgets"),
    );
    // The CRD may take a moment to be served.
    wait_for("gadget created", || async {
        gadgets
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "late.example.com/v1", "kind": "Gadget",
                    "metadata": {"name": "g1"},
                    "spec": {"color": "cyan", "selector": {"matchLabels": {"thing": "g1"}}}
                })),
            )
            .await
            .ok()
    })
    .await;
    wait_for("child of the late controller", || async {
        (child_color(&env, "g1-cm").await.as_deref() == Some("cyan")).then_some(())
    })
    .await;
    // Without a status subresource the status is written through the main resource.
    wait_for("status on the main resource", || async {
        let g = gadgets.get("g1").await.ok()?;
        (g.data["status"]["color"] == "cyan").then_some(())
    })
    .await;
    // The failed start was reported on the controller.
    let events: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        "default",
        &resource("", "v1", "Event", "events"),
    );
    let reported = events
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .iter()
        .any(|e| e.data["reason"] == "CreateError" && e.data["involvedObject"]["name"] == name);
    assert!(reported, "the failed start was reported");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_is_bounded_while_a_hook_hangs() {
    let env = Env::start().await;
    let hook = Hook::start(
        Arc::new(|_req: &Value| (200, json!({"delayMs": 60_000}))),
        env.shutdown.clone(),
    )
    .await;
    env.create_controller(
        "things",
        &hook.url,
        json!({"hooks": {"sync": {"webhook": {"url": hook.url.clone(), "timeout": "120s"}}}}),
    )
    .await;
    env.create_thing("t9", "slow").await;
    wait_for("hook in flight", || async {
        (hook.calls() >= 1).then_some(())
    })
    .await;
    let started = Instant::now();
    env.stop().await;
    // Env::start sets a 5s shutdown timeout; the hanging call is abandoned after it.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "shutdown took {:?}",
        started.elapsed()
    );
}
