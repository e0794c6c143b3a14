//! Behaviour parity with upstream Metacontroller, as a hook observes it: which events sync a
//! parent, which statuses are written and when, what a finalize answer does. Each test names
//! the upstream function whose behaviour it mirrors (`pkg/controller/composite/controller.go`,
//! `pkg/controller/decorator/controller.go`, `pkg/controller/common/finalizer/finalizer.go`),
//! and each one that converges ends by proving the quiet: no write and no hook call.
//!
//! The rest of upstream's observable behaviour is tested beside the features it belongs to,
//! each test naming its upstream function the same way: claiming, adopting and releasing
//! children and the finalizer in `engine_composite.rs`, update methods and resyncs in
//! `engine_composite_more.rs`, revisions and rolling updates in `engine_rolling.rs`,
//! selectors, customize and related objects in `engine_decorator.rs`.
//!
//! The engine runs against the embedded API server over real HTTP; every hook is served on a
//! loopback port. Every wait is bounded; every server and engine is stopped through its
//! cancellation token.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{json, Value};
use tokio::time::sleep;

mod common;

use common::{obj, wait_for, Env, Hook, Responder};

/// The quiet window after convergence.
const QUIET: Duration = Duration::from_secs(2);

/// A finalizer nobody in the test removes until the test says so.
const HOLD: &str = "example.com/hold";

fn webhook(url: &str) -> Value {
    json!({"webhook": {"url": url, "timeout": "5s"}})
}

/// Hooks with only a sync hook at `url`.
fn only_sync(url: &str) -> Value {
    json!({"sync": webhook(url)})
}

/// A CompositeController over Things with ConfigMap children; `extra` is merged into its spec
/// (and `parent` into its parentResource).
fn composite_spec(hooks: Value, parent: Value, extra: Value) -> Value {
    let mut parent_resource = json!({"apiVersion": "example.com/v1", "resource": "things"});
    merge(&mut parent_resource, parent);
    let mut spec = json!({
        "parentResource": parent_resource,
        "childResources": [{
            "apiVersion": "v1", "resource": "configmaps",
            "updateStrategy": {"method": "InPlace"}
        }],
        "hooks": hooks
    });
    merge(&mut spec, extra);
    spec
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(a), Value::Object(b)) = (into.as_object_mut(), from) {
        a.extend(b);
    }
}

impl Env {
    /// Creates the Thing `name` (children selected by `thing: <name>`) with `metadata` merged
    /// into its metadata.
    async fn thing(&self, name: &str, metadata: Value) -> DynamicObject {
        let mut meta = json!({"name": name});
        merge(&mut meta, metadata);
        self.things()
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "example.com/v1", "kind": "Thing",
                    "metadata": meta,
                    "spec": {"selector": {"matchLabels": {"thing": name}}}
                })),
            )
            .await
            .expect("create Thing")
    }

    async fn status_of(&self, name: &str) -> Value {
        self.things()
            .get(name)
            .await
            .map(|t| t.data.get("status").cloned().unwrap_or(Value::Null))
            .unwrap_or(Value::Null)
    }

    async fn release_hold(&self, name: &str) {
        let Ok(t) = self.things().get(name).await else {
            return;
        };
        let rest: Vec<String> = t
            .metadata
            .finalizers
            .unwrap_or_default()
            .into_iter()
            .filter(|f| f != HOLD)
            .collect();
        self.things()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"finalizers": rest}})),
            )
            .await
            .expect("release the hold");
    }
}

fn config_map(name: &str, owner: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"thing": owner}}, "data": {"k": "v"}})
}

fn parent_name(req: &Value) -> String {
    req["parent"]["metadata"]["name"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn configmaps_seen(req: &Value) -> usize {
    common::count(&req["children"]["ConfigMap.v1"])
}

/// Every hook request the responder saw, in order.
fn recording(requests: Arc<Mutex<Vec<Value>>>, inner: Responder) -> Responder {
    Arc::new(move |req: &Value| {
        requests.lock().expect("requests").push(req.clone());
        inner(req)
    })
}

/// `updateParentObject`: upstream resyncs on every parent update, its own status writes
/// included, so a hook can see that its status was committed. A job-like controller whose
/// hook drops its children only once its own status says `complete` depends on that sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_like_hook_deletes_its_children_once_its_own_status_says_done() {
    let env = Env::start().await;
    let requests = Arc::new(Mutex::new(Vec::new()));
    let hook = Hook::start(
        recording(
            requests.clone(),
            Arc::new(|req: &Value| {
                let name = parent_name(req);
                if req["parent"]["status"]["complete"] == true {
                    return (200, json!({"status": {"complete": true}, "children": []}));
                }
                // Done as soon as the worker it asked for exists.
                let complete = configmaps_seen(req) > 0;
                (
                    200,
                    json!({"status": {"complete": complete},
                        "children": [config_map(&format!("{name}-worker"), &name)]}),
                )
            }),
        ),
        env.shutdown.clone(),
    )
    .await;
    env.create_composite(
        "jobs",
        composite_spec(only_sync(&hook.url), json!({}), json!({})),
    )
    .await;
    env.thing("job", json!({})).await;
    wait_for(
        "the worker deleted once the status said complete",
        || async {
            let gone = env.configmaps().get_opt("job-worker").await.ok()?.is_none();
            (gone && env.status_of("job").await["complete"] == true).then_some(())
        },
    )
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    env.stop().await;
    let requests = requests.lock().expect("requests");
    assert!(
        requests.iter().any(|r| configmaps_seen(r) == 1),
        "a sync saw the worker before it was deleted"
    );
    let last = requests.last().expect("hook calls");
    assert_eq!(last["parent"]["status"]["complete"], true);
    assert_eq!(configmaps_seen(last), 0, "the last sync sees no worker");
}

/// `updateParentObject` + `updateParentStatus`: the tutorial's hook (children plus a count of
/// them as status) takes the calls upstream needs for a new parent: the first creates the
/// child and writes `0`, the next sees the child and writes `1`, the next sees `1` committed
/// and writes nothing. Events arriving together are coalesced into one sync, so a fourth
/// call only happens when the child's event and the status's event are seen apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorials_hook_sees_each_status_it_wrote() {
    let env = Env::start().await;
    let requests = Arc::new(Mutex::new(Vec::new()));
    let hook = Hook::start(
        recording(
            requests.clone(),
            Arc::new(|req: &Value| {
                let name = parent_name(req);
                (
                    200,
                    json!({"status": {"configmaps": configmaps_seen(req)},
                        "children": [config_map(&name, &name)]}),
                )
            }),
        ),
        env.shutdown.clone(),
    )
    .await;
    env.create_composite(
        "hello",
        composite_spec(only_sync(&hook.url), json!({}), json!({})),
    )
    .await;
    env.settle(&[&hook]).await;
    let writes = env.write_count().await;
    env.thing("hello", json!({})).await;
    wait_for("status configmaps: 1", || async {
        (env.status_of("hello").await["configmaps"] == 1).then_some(())
    })
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    assert_eq!(
        env.write_count().await - writes,
        4,
        "the Thing's create, its ConfigMap's create and two status writes (0, then 1)"
    );
    let seen: Vec<Value> = requests
        .lock()
        .expect("requests")
        .iter()
        .map(|r| r["parent"]["status"]["configmaps"].clone())
        .collect();
    assert!(
        (3..=4).contains(&seen.len()),
        "hook calls for one new parent: {seen:?}"
    );
    assert_eq!(seen[0], Value::Null, "the first call sees no status");
    assert_eq!(
        seen.last(),
        Some(&json!(1)),
        "the last call sees the last status written: {seen:?}"
    );
    assert!(
        seen.contains(&json!(0)) || seen.len() == 3,
        "a status written is seen: {seen:?}"
    );
    env.stop().await;
}

/// A hook that counts its own syncs in status: each sync writes a new status.
fn counting_hook() -> Responder {
    Arc::new(|req: &Value| {
        let syncs = req["parent"]["status"]["syncs"].as_u64().unwrap_or(0);
        (200, json!({"status": {"syncs": syncs + 1}, "children": []}))
    })
}

/// `updateParentObject` with `ignoreStatusChanges`: an update that leaves generation, labels
/// and annotations alone (and is no deletion) does not sync; any of those does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ignore_status_changes_skips_status_only_updates() {
    let env = Env::start().await;
    let hook = Hook::start(counting_hook(), env.shutdown.clone()).await;
    env.create_composite(
        "counter",
        composite_spec(
            only_sync(&hook.url),
            json!({"ignoreStatusChanges": true}),
            json!({}),
        ),
    )
    .await;
    env.thing("counted", json!({})).await;
    let syncs = |n: u64| {
        let env = &env;
        async move {
            wait_for(&format!("status.syncs == {n}"), || async {
                (env.status_of("counted").await["syncs"] == n).then_some(())
            })
            .await
        }
    };
    syncs(1).await;
    env.assert_quiet(&[&hook], QUIET).await;
    assert_eq!(hook.calls(), 1, "the status write does not sync again");

    // Labels, annotations and the spec (generation) each sync.
    let patch = |p: Value| {
        let env = &env;
        async move {
            env.things()
                .patch("counted", &PatchParams::default(), &Patch::Merge(p))
                .await
                .expect("patch Thing");
        }
    };
    patch(json!({"metadata": {"labels": {"a": "1"}}})).await;
    syncs(2).await;
    patch(json!({"metadata": {"annotations": {"b": "2"}}})).await;
    syncs(3).await;
    patch(json!({"spec": {"extra": true}})).await;
    syncs(4).await;
    // A status written by someone else is a status-only change: ignored too.
    env.things()
        .patch_status(
            "counted",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"note": "outside"}})),
        )
        .await
        .expect("patch status");
    env.assert_quiet(&[&hook], QUIET).await;
    assert_eq!(hook.calls(), 4);
    env.stop().await;
}

/// `updateParentObject` without `ignoreStatusChanges`: a hook whose status changes on every
/// call loops through its own status writes, as upstream warns; here the loop guard notices,
/// reports it once and backs the parent off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_counting_its_own_syncs_is_held_by_the_loop_guard() {
    let env = Env::start().await;
    let hook = Hook::start(counting_hook(), env.shutdown.clone()).await;
    env.create_composite(
        "counter",
        composite_spec(only_sync(&hook.url), json!({}), json!({})),
    )
    .await;
    env.thing("counted", json!({})).await;
    // Each sync sees the status the one before it wrote.
    wait_for("the loop reported", || async {
        let events = env.events_about("counted", "SyncLoop").await;
        (!events.is_empty()).then_some(())
    })
    .await;
    let syncs = env.status_of("counted").await["syncs"]
        .as_u64()
        .unwrap_or(0);
    assert!(
        syncs > 100,
        "status.syncs = {syncs} when the loop was found"
    );
    let calls = hook.calls();
    sleep(Duration::from_secs(4)).await;
    let during = hook.calls() - calls;
    assert!(during <= 4, "{during} calls in 4s while backed off");
    assert_eq!(env.events_about("counted", "SyncLoop").await.len(), 1);
    env.stop().await;
}

/// `syncParentObject` with `finalized: true`: upstream removes its finalizer and still writes
/// the status the finalize hook returned, so a parent held by another finalizer shows it.
/// Here a set scales to zero in finalize and reports `replicas: 0`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalize_scales_to_zero_and_reports_it_while_another_finalizer_holds_the_parent() {
    let env = Env::start().await;
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let name = parent_name(req);
            let replicas = configmaps_seen(req);
            if req["finalizing"] == true {
                return (
                    200,
                    json!({"status": {"replicas": replicas}, "children": [],
                        "finalized": replicas == 0}),
                );
            }
            (
                200,
                json!({"status": {"replicas": replicas},
                    "children": [config_map(&format!("{name}-0"), &name)]}),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    let hooks = json!({"sync": webhook(&hook.url), "finalize": webhook(&hook.url)});
    env.create_composite("sets", composite_spec(hooks, json!({}), json!({})))
        .await;
    env.thing("set", json!({"finalizers": [HOLD]})).await;
    wait_for("replicas: 1", || async {
        (env.status_of("set").await["replicas"] == 1).then_some(())
    })
    .await;
    env.things()
        .delete("set", &DeleteParams::default())
        .await
        .expect("delete Thing");
    let held = wait_for(
        "replicas: 0 with only the foreign finalizer left",
        || async {
            let t = env.things().get("set").await.ok()?;
            let finalizers = t.metadata.finalizers.clone().unwrap_or_default();
            (t.data["status"]["replicas"] == 0 && finalizers == [HOLD]).then_some(t)
        },
    )
    .await;
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(env
        .configmaps()
        .get_opt("set-0")
        .await
        .expect("get")
        .is_none());
    env.assert_quiet(&[&hook], QUIET).await;
    env.release_hold("set").await;
    wait_for("the Thing gone", || async {
        env.things()
            .get_opt("set")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    env.stop().await;
}

/// `syncParentObject` + `Manager.ShouldFinalize`: the finalizer goes before children are
/// managed, so once a finalize answer says `finalized: true` its children are no longer
/// applied (the garbage collector takes them with the parent); its status still is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finalized_answer_is_not_applied_to_children_but_its_status_is() {
    let env = Env::start().await;
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let name = parent_name(req);
            if req["finalizing"] == true {
                return (
                    200,
                    json!({"status": {"phase": "finalized"}, "children": [], "finalized": true}),
                );
            }
            (
                200,
                json!({"status": {"phase": "live"},
                    "children": [config_map(&format!("{name}-0"), &name)]}),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    let hooks = json!({"sync": webhook(&hook.url), "finalize": webhook(&hook.url)});
    env.create_composite("sets", composite_spec(hooks, json!({}), json!({})))
        .await;
    env.thing("once", json!({"finalizers": [HOLD]})).await;
    wait_for("the child", || async {
        env.configmaps().get_opt("once-0").await.ok().flatten()
    })
    .await;
    env.things()
        .delete("once", &DeleteParams::default())
        .await
        .expect("delete Thing");
    wait_for("status phase: finalized", || async {
        (env.status_of("once").await["phase"] == "finalized").then_some(())
    })
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    assert!(
        env.configmaps()
            .get_opt("once-0")
            .await
            .expect("get")
            .is_some(),
        "the finalized answer's children: [] is not applied"
    );
    env.release_hold("once").await;
    wait_for("the child collected with its parent", || async {
        env.configmaps()
            .get_opt("once-0")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    env.stop().await;
}

/// `syncRevisions` + `syncParentObject` without a finalize hook: a parent being deleted (held
/// here by another finalizer) is still synced with the sync hook, whose status is written,
/// while its children are no longer managed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleting_parent_without_a_finalize_hook_is_synced_for_its_status() {
    let env = Env::start().await;
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let name = parent_name(req);
            let deleting = req["parent"]["metadata"]["deletionTimestamp"].is_string();
            let children = if deleting {
                vec![]
            } else {
                vec![config_map(&format!("{name}-0"), &name)]
            };
            (
                200,
                json!({"status": {"deleting": deleting, "finalizing": req["finalizing"]},
                    "children": children}),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_composite(
        "plain",
        composite_spec(only_sync(&hook.url), json!({}), json!({})),
    )
    .await;
    env.thing("doomed", json!({"finalizers": [HOLD]})).await;
    wait_for("the child", || async {
        env.configmaps().get_opt("doomed-0").await.ok().flatten()
    })
    .await;
    env.things()
        .delete("doomed", &DeleteParams::default())
        .await
        .expect("delete Thing");
    wait_for("status deleting: true", || async {
        (env.status_of("doomed").await["deleting"] == true).then_some(())
    })
    .await;
    assert_eq!(env.status_of("doomed").await["finalizing"], false);
    env.assert_quiet(&[&hook], QUIET).await;
    assert!(
        env.configmaps()
            .get_opt("doomed-0")
            .await
            .expect("get")
            .is_some(),
        "children of a deleting parent are not managed"
    );
    env.release_hold("doomed").await;
    env.stop().await;
}

/// `updateParentStatus`: `observedGeneration` is injected into the hook's status (a `null`
/// status becomes `{observedGeneration}`), and a status equal to the stored one is not
/// written; a spec change moves `observedGeneration`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn observed_generation_is_injected_and_an_equal_status_is_not_written() {
    let env = Env::start().await;
    let hook = Hook::start(
        Arc::new(|_req: &Value| (200, json!({"status": null, "children": []}))),
        env.shutdown.clone(),
    )
    .await;
    env.create_composite(
        "gen",
        composite_spec(only_sync(&hook.url), json!({}), json!({})),
    )
    .await;
    env.thing("g", json!({})).await;
    wait_for("observedGeneration 1", || async {
        (env.status_of("g").await == json!({"observedGeneration": 1})).then_some(())
    })
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    env.things()
        .patch(
            "g",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"more": 1}})),
        )
        .await
        .expect("patch spec");
    wait_for("observedGeneration 2", || async {
        (env.status_of("g").await == json!({"observedGeneration": 2})).then_some(())
    })
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    env.stop().await;
}

/// `onChildUpdate`/`onChildDelete`: a change to a child (by anyone) syncs its parent; a child
/// deleted from outside is created again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_changed_or_deleted_outside_syncs_its_parent() {
    let env = Env::start().await;
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let name = parent_name(req);
            let seen: Vec<Value> = req["children"]["ConfigMap.v1"]
                .as_object()
                .map(|m| m.values().map(|c| c["data"].clone()).collect())
                .unwrap_or_default();
            (
                200,
                json!({"status": {"seen": seen}, "children": [config_map(&format!("{name}-0"), &name)]}),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_composite(
        "watcher",
        composite_spec(only_sync(&hook.url), json!({}), json!({})),
    )
    .await;
    env.thing("w", json!({})).await;
    wait_for("the child seen", || async {
        (env.status_of("w").await["seen"] == json!([{"k": "v"}])).then_some(())
    })
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    // A field the hook does not set: the hook sees it, nothing else changes.
    env.configmaps()
        .patch(
            "w-0",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"extra": "x"}})),
        )
        .await
        .expect("patch child");
    wait_for("the outside change seen", || async {
        (env.status_of("w").await["seen"] == json!([{"k": "v", "extra": "x"}])).then_some(())
    })
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    let uid = env
        .configmaps()
        .get("w-0")
        .await
        .expect("child")
        .metadata
        .uid;
    env.configmaps()
        .delete("w-0", &DeleteParams::default())
        .await
        .expect("delete child");
    wait_for("the child created again", || async {
        let c = env.configmaps().get_opt("w-0").await.ok()??;
        (c.metadata.uid != uid).then_some(())
    })
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    env.stop().await;
}

fn decorator_spec(hooks: Value, ignore_status_changes: bool) -> Value {
    json!({
        "resources": [{"apiVersion": "example.com/v1", "resource": "things",
            "ignoreStatusChanges": ignore_status_changes}],
        "attachments": [{"apiVersion": "v1", "resource": "configmaps"}],
        "hooks": hooks
    })
}

/// A decorator hook that counts its syncs in the target's status, up to three.
fn counting_to_three() -> Responder {
    Arc::new(|req: &Value| {
        let seen = req["object"]["status"]["syncs"].as_u64().unwrap_or(0);
        (
            200,
            json!({"status": {"syncs": (seen + 1).min(3)}, "attachments": []}),
        )
    })
}

/// Decorator `updateParentObject`: every update of a target syncs it, the decorator's own
/// status writes included; with `ignoreStatusChanges`, status-only updates do not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decorator_sees_its_own_status_writes_unless_told_to_ignore_them() {
    // Through its own writes the count reaches three; ignoring them, it stays at one.
    for (ignore_status_changes, settles_at) in [(false, 3), (true, 1)] {
        let env = Env::start().await;
        let hook = Hook::start(counting_to_three(), env.shutdown.clone()).await;
        env.create_decorator(
            "steps",
            decorator_spec(json!({"sync": webhook(&hook.url)}), ignore_status_changes),
        )
        .await;
        env.thing("stepped", json!({})).await;
        wait_for(&format!("status.syncs == {settles_at}"), || async {
            (env.status_of("stepped").await["syncs"] == settles_at).then_some(())
        })
        .await;
        env.assert_quiet(&[&hook], QUIET).await;
        assert_eq!(
            env.status_of("stepped").await["syncs"],
            settles_at,
            "ignoreStatusChanges: {ignore_status_changes}"
        );
        env.stop().await;
    }
}

/// Decorator `syncParentObject` with `finalized: true`: the target's status and the removal
/// of the finalizer are one update, and the attachments of that same answer are still
/// managed (upstream manages them against the target as the sync found it, finalizer and all).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decorators_finalized_answer_writes_status_and_applies_its_attachments() {
    let env = Env::start().await;
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let name = req["object"]["metadata"]["name"].as_str().unwrap_or("");
            if req["finalizing"] == true {
                return (
                    200,
                    json!({"status": {"phase": "cleaned"}, "attachments": [], "finalized": true}),
                );
            }
            (
                200,
                json!({"status": {"phase": "decorated"},
                    "attachments": [config_map(&format!("{name}-extra"), name)]}),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_decorator(
        "extras",
        decorator_spec(
            json!({"sync": webhook(&hook.url), "finalize": webhook(&hook.url)}),
            false,
        ),
    )
    .await;
    env.thing("decorated", json!({"finalizers": [HOLD]})).await;
    wait_for("the attachment", || async {
        env.configmaps()
            .get_opt("decorated-extra")
            .await
            .ok()
            .flatten()
    })
    .await;
    env.things()
        .delete("decorated", &DeleteParams::default())
        .await
        .expect("delete Thing");
    wait_for(
        "status cleaned, attachment deleted, only the hold left",
        || async {
            let t = env.things().get("decorated").await.ok()?;
            let finalizers = t.metadata.finalizers.clone().unwrap_or_default();
            let gone = env
                .configmaps()
                .get_opt("decorated-extra")
                .await
                .ok()?
                .is_none();
            (t.data["status"]["phase"] == "cleaned" && finalizers == [HOLD] && gone).then_some(())
        },
    )
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    env.release_hold("decorated").await;
    env.stop().await;
}

/// Decorator `syncParentObject`: a `null` status in the answer leaves the target's status as
/// it is (no `observedGeneration` is injected, unlike a CompositeController).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decorators_null_status_leaves_the_status_alone() {
    let env = Env::start().await;
    let hook = Hook::start(
        Arc::new(|_req: &Value| {
            (
                200,
                json!({"status": null, "labels": {"decorated": "yes"}, "attachments": []}),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_decorator(
        "labels",
        decorator_spec(json!({"sync": webhook(&hook.url)}), false),
    )
    .await;
    let t = env.thing("plain", json!({})).await;
    env.things()
        .patch_status(
            "plain",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"mine": 1}})),
        )
        .await
        .expect("patch status");
    wait_for("the label", || async {
        let t = env.things().get("plain").await.ok()?;
        (t.metadata.labels?.get("decorated").map(String::as_str) == Some("yes")).then_some(())
    })
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    assert_eq!(env.status_of("plain").await, json!({"mine": 1}));
    assert!(t.metadata.uid.is_some());
    env.stop().await;
}
