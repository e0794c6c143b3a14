//! Component tests of rolling updates and ControllerRevisions: the engine runs against the
//! embedded API server over real HTTP, the sync hook is served by the test, and child writes
//! are counted with the server's `apiserver_request_total` metric.
//!
//! The parent is a `Thing` with `spec.replicas` and `spec.template.version`; the hook wants one
//! `Item` per replica carrying the template's version. Items roll with `RollingRecreate` (or
//! `RollingInPlace`) and a `Ready` status check, which the test flips through the status
//! subresource. Every wait is bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

mod common;

use common::{
    api_writes, crd, engine_options, install_crds, join_engine, metrics, obj, read_request,
    resource, spawn_engine, start_api_server, wait_for, Engine,
};

const NS: &str = "default";

/// The sync hook: one Item per replica with the template's version. It answers 500 for a
/// parent whose template version equals `fail` (0: never).
async fn start_hook(
    shutdown: CancellationToken,
    fail: Arc<AtomicU64>,
) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hook");
    let url = format!("http://{}/sync", listener.local_addr().expect("addr"));
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        loop {
            let (mut stream, _) = tokio::select! {
                _ = shutdown.cancelled() => return,
                accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
            };
            let counter = counter.clone();
            let fail = fail.clone();
            tokio::spawn(async move {
                let Some(body) = read_request(&mut stream).await else {
                    return;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let failing = fail.load(Ordering::SeqCst);
                let version = request["parent"]["spec"]["template"]["version"].as_u64();
                let (code, text) = if failing != 0 && version == Some(failing) {
                    (500, "{}".to_string())
                } else {
                    (200, items_hook(&request).to_string())
                };
                let head = format!(
                    "HTTP/1.1 {code} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    text.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(text.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    (url, calls)
}

fn items_hook(request: &Value) -> Value {
    let parent = &request["parent"];
    let name = parent["metadata"]["name"].as_str().unwrap_or("");
    let replicas = parent["spec"]["replicas"].as_u64().unwrap_or(0).min(20);
    let version = parent["spec"]["template"]["version"].clone();
    let children: Vec<Value> = (0..replicas)
        .map(|i| {
            json!({
                "apiVersion": "example.com/v1", "kind": "Item",
                "metadata": {"name": format!("{name}-{i}"), "labels": {"thing": name}},
                "spec": {"version": version}
            })
        })
        .collect();
    json!({"status": {"replicas": replicas}, "children": children})
}

/// The embedded API server, a client for it, and an engine that can be restarted.
struct Env {
    client: Client,
    server_shutdown: CancellationToken,
    engine_shutdown: CancellationToken,
    engine: Option<Engine>,
    hook_url: String,
    hook_calls: Arc<AtomicUsize>,
    hook_fail: Arc<AtomicU64>,
}

impl Env {
    async fn start(method: &str) -> Env {
        let server_shutdown = CancellationToken::new();
        let client = start_api_server(&server_shutdown).await;
        install_crds(
            &client,
            [
                crd("Thing", "things", "Namespaced"),
                crd("Item", "items", "Namespaced"),
            ],
        )
        .await;
        let hook_fail = Arc::new(AtomicU64::new(0));
        let (hook_url, hook_calls) = start_hook(server_shutdown.clone(), hook_fail.clone()).await;
        let mut env = Env {
            client,
            server_shutdown,
            engine_shutdown: CancellationToken::new(),
            engine: None,
            hook_url,
            hook_calls,
            hook_fail,
        };
        env.start_engine();
        env.create_controller(method).await;
        env
    }

    fn start_engine(&mut self) {
        self.engine_shutdown = CancellationToken::new();
        self.engine = Some(spawn_engine(
            &self.client,
            engine_options(),
            &self.engine_shutdown,
        ));
    }

    async fn stop_engine(&mut self) {
        self.engine_shutdown.cancel();
        if let Some(engine) = self.engine.take() {
            join_engine(engine).await;
        }
    }

    async fn stop(mut self) {
        self.stop_engine().await;
        self.server_shutdown.cancel();
    }

    async fn create_controller(&self, method: &str) {
        let api: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &resource(
                "metacontroller.k8s.io",
                "v1alpha1",
                "CompositeController",
                "compositecontrollers",
            ),
        );
        api.create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "metacontroller.k8s.io/v1alpha1",
                "kind": "CompositeController",
                "metadata": {"name": "things"},
                "spec": {
                    "parentResource": {
                        "apiVersion": "example.com/v1", "resource": "things",
                        "revisionHistory": {"fieldPaths": ["spec.template"]}
                    },
                    "childResources": [{
                        "apiVersion": "example.com/v1", "resource": "items",
                        "updateStrategy": {
                            "method": method,
                            "statusChecks": {"conditions": [{"type": "Ready", "status": "True"}]}
                        }
                    }],
                    "hooks": {"sync": {"webhook": {"url": self.hook_url, "timeout": "5s"}}}
                }
            })),
        )
        .await
        .expect("create CompositeController");
    }

    fn things(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            NS,
            &resource("example.com", "v1", "Thing", "things"),
        )
    }

    fn items(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            NS,
            &resource("example.com", "v1", "Item", "items"),
        )
    }

    fn revisions(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            NS,
            &resource(
                "metacontroller.k8s.io",
                "v1alpha1",
                "ControllerRevision",
                "controllerrevisions",
            ),
        )
    }

    async fn create_thing(&self, replicas: u32, version: u32) -> DynamicObject {
        self.things()
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "example.com/v1", "kind": "Thing",
                    "metadata": {"name": "t"},
                    "spec": {
                        "replicas": replicas,
                        "selector": {"matchLabels": {"thing": "t"}},
                        "template": {"version": version}
                    }
                })),
            )
            .await
            .expect("create Thing")
    }

    async fn patch_thing(&self, spec: Value) {
        self.things()
            .patch(
                "t",
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
            .expect("patch Thing");
    }

    /// Items by name: (uid, version, ready).
    async fn item_states(&self) -> BTreeMap<String, (String, u64, bool)> {
        let list = self
            .items()
            .list(&ListParams::default())
            .await
            .expect("list items");
        list.items
            .into_iter()
            .filter(|i| i.metadata.deletion_timestamp.is_none())
            .map(|i| {
                let ready = i.data["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
                (
                    i.metadata.name.clone().unwrap_or_default(),
                    (
                        i.metadata.uid.clone().unwrap_or_default(),
                        i.data["spec"]["version"].as_u64().unwrap_or(0),
                        ready,
                    ),
                )
            })
            .collect()
    }

    /// Marks an item Ready; with `observed_generation`, also reports its generation as seen.
    async fn mark_ready(&self, name: &str, observed_generation: bool) {
        let mut status = json!({"conditions": [{"type": "Ready", "status": "True"}]});
        if observed_generation {
            let item = self.items().get(name).await.expect("get item");
            status["observedGeneration"] = json!(item.metadata.generation.unwrap_or(0));
        }
        self.items()
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": status })),
            )
            .await
            .expect("mark item ready");
    }

    async fn mark_all_ready(&self, observed_generation: bool) {
        for (name, (_, _, ready)) in self.item_states().await {
            if !ready {
                self.mark_ready(&name, observed_generation).await;
            }
        }
    }

    /// The parent's `Updated` condition.
    async fn updated_condition(&self) -> Option<Value> {
        let t = self.things().get("t").await.ok()?;
        t.data["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Updated")
            .cloned()
    }

    async fn wait_reason(&self, reason: &str) -> Value {
        wait_for(&format!("Updated condition {reason}"), || async {
            self.updated_condition()
                .await
                .filter(|c| c["reason"] == reason)
        })
        .await
    }

    async fn revision_list(&self) -> Vec<DynamicObject> {
        self.revisions()
            .list(&ListParams::default())
            .await
            .expect("list revisions")
            .items
    }

    /// Successful write requests by verb on a resource, from the server's metrics.
    async fn writes(&self, resource: &str, verb: &str) -> u64 {
        let text = metrics(&self.client).await;
        text.lines()
            .filter(|l| l.starts_with("apiserver_request_total{"))
            .filter(|l| l.contains(&format!("resource=\"{resource}\"")))
            .filter(|l| l.contains(&format!("verb=\"{verb}\"")))
            .filter(|l| l.contains("subresource=\"\""))
            .filter(|l| l.contains("code=\"2"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// Write requests of any kind (status included), events excluded.
    async fn all_writes(&self) -> u64 {
        api_writes(&self.client, false).await
    }

    /// Waits until `n` items are on `version` and all items exist; returns the states.
    async fn wait_versions(
        &self,
        replicas: usize,
        version: u64,
        n: usize,
    ) -> BTreeMap<String, (String, u64, bool)> {
        wait_for(
            &format!("{n} of {replicas} items on v{version}"),
            || async {
                let s = self.item_states().await;
                let on = s.values().filter(|(_, v, _)| *v == version).count();
                (s.len() == replicas && on == n).then_some(s)
            },
        )
        .await
    }

    /// Sets up a steady Thing with `replicas` ready items on version 1.
    async fn steady(&self, replicas: u32) -> BTreeMap<String, (String, u64, bool)> {
        self.create_thing(replicas, 1).await;
        self.wait_versions(replicas as usize, 1, replicas as usize)
            .await;
        self.mark_all_ready(false).await;
        self.wait_reason("OnLatestRevision").await;
        self.item_states().await
    }

    /// Advances a rollout to `version` by one child: marks the single updated-but-not-ready
    /// item ready, then waits for the next one. Returns the item that became ready.
    async fn advance(&self, replicas: usize, version: u64, done: usize, in_place: bool) -> String {
        let states = self.wait_versions(replicas, version, done).await;
        let pending: Vec<&String> = states
            .iter()
            .filter(|(_, (_, v, r))| *v == version && !r)
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            pending.len(),
            1,
            "one updated item waits at a time: {states:?}"
        );
        let name = pending[0].clone();
        self.mark_ready(&name, in_place).await;
        name
    }
}

fn assert_not_moved(
    before: &BTreeMap<String, (String, u64, bool)>,
    after: &BTreeMap<String, (String, u64, bool)>,
    version: u64,
) {
    for (name, (uid, v, _)) in after {
        if let Some((old_uid, old_v, _)) = before.get(name) {
            if *v == *old_v && *v != version {
                assert_eq!(old_uid, uid, "{name} not on v{version} was never touched");
            }
        }
    }
}

/// Upstream `syncRollingUpdate` + `shouldContinueRolling` + `childStatusCheck`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_moves_one_child_at_a_time_as_children_turn_ready() {
    let env = Env::start("RollingRecreate").await;
    let before = env.steady(5).await;
    let revs = env.revision_list().await;
    assert_eq!(revs.len(), 1, "one revision for one template");
    let first = revs[0].clone();
    let name = first.metadata.name.clone().expect("name");
    assert!(name.starts_with("things.example.com-"), "{name}");
    assert_eq!(name.len(), "things.example.com-".len() + 40);
    let labels = first.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels["metacontroller.k8s.io/apiGroup"], "example.com");
    assert_eq!(labels["metacontroller.k8s.io/resource"], "things");
    assert_eq!(labels["thing"], "t");
    let owner = &first.metadata.owner_references.clone().unwrap_or_default()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("Thing", Some(true))
    );
    assert_eq!(
        first.data["parentPatch"],
        json!({"spec": {"template": {"version": 1}}})
    );
    let mut owned: Vec<String> =
        serde_json::from_value(first.data["children"][0]["names"].clone()).expect("names");
    owned.sort();
    assert_eq!(owned, ["t-0", "t-1", "t-2", "t-3", "t-4"]);
    let on_latest = env.updated_condition().await.expect("condition");
    assert_eq!(on_latest["status"], "True");
    assert_eq!(
        on_latest["message"],
        format!("latest ControllerRevision: {name}")
    );
    let deletes_before = env.writes("items", "DELETE").await;

    // A converged rollout makes no writes.
    let writes = env.all_writes().await;
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        env.all_writes().await,
        writes,
        "a converged parent writes nothing"
    );

    env.patch_thing(json!({"template": {"version": 2}})).await;
    for done in 1..=5 {
        let states = env.wait_versions(5, 2, done).await;
        assert_not_moved(&before, &states, 2);
        // While the updated child is not Ready, the rollout waits (once every child is on the
        // latest revision, the condition says so even before the last one is Ready).
        let reason = if done < 5 {
            "RolloutWaiting"
        } else {
            "OnLatestRevision"
        };
        env.wait_reason(reason).await;
        sleep(Duration::from_millis(300)).await;
        assert_eq!(
            env.item_states()
                .await
                .values()
                .filter(|(_, v, _)| *v == 2)
                .count(),
            done,
            "rollout paused while an updated child is not ready"
        );
        if done == 1 {
            assert_eq!(env.revision_list().await.len(), 2, "old and new revision");
        }
        env.advance(5, 2, done, false).await;
    }
    env.wait_reason("OnLatestRevision").await;
    let revs = env.revision_list().await;
    assert_eq!(revs.len(), 1, "the old revision is pruned: {revs:?}");
    assert_ne!(revs[0].metadata.name, first.metadata.name);
    assert_eq!(
        env.writes("items", "DELETE").await - deletes_before,
        5,
        "each child recreated exactly once"
    );
    env.stop().await;
}

/// Upstream `syncRevisions` + `manageRevisions`: a template equal to an earlier one reuses its
/// ControllerRevision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_back_mid_rollout_reuses_the_earlier_revision() {
    let env = Env::start("RollingRecreate").await;
    env.steady(5).await;
    let original = env.revision_list().await[0].clone();
    env.patch_thing(json!({"template": {"version": 2}})).await;
    env.advance(5, 2, 1, false).await;
    env.wait_versions(5, 2, 2).await;
    let revision_posts = env.writes("controllerrevisions", "POST").await;
    assert_eq!(revision_posts, 2);

    // Back to version 1: the original revision object becomes the latest again, and the two
    // children on version 2 roll back one at a time.
    env.patch_thing(json!({"template": {"version": 1}})).await;
    env.advance(5, 1, 4, false).await;
    env.advance(5, 1, 5, false).await;
    env.mark_all_ready(false).await;
    env.wait_reason("OnLatestRevision").await;
    let revs = env.revision_list().await;
    assert_eq!(revs.len(), 1, "{revs:?}");
    assert_eq!(
        revs[0].metadata.uid, original.metadata.uid,
        "same revision object"
    );
    assert_eq!(
        env.writes("controllerrevisions", "POST").await,
        2,
        "no revision created for the rollback"
    );
    env.stop().await;
}

/// Upstream `syncRevisions`: only `revisionHistory.fieldPaths` make a new revision.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_outside_the_recorded_fields_applies_at_once() {
    let env = Env::start("RollingRecreate").await;
    let before = env.steady(3).await;
    let rev = env.revision_list().await[0].clone();
    env.patch_thing(json!({"replicas": 5})).await;
    let states = env.wait_versions(5, 1, 5).await;
    assert_not_moved(&before, &states, 0);
    env.patch_thing(json!({"replicas": 2})).await;
    env.wait_versions(2, 1, 2).await;
    env.mark_all_ready(false).await;
    env.wait_reason("OnLatestRevision").await;
    let revs = env.revision_list().await;
    assert_eq!(revs.len(), 1);
    assert_eq!(revs[0].metadata.uid, rev.metadata.uid);
    assert_eq!(env.writes("controllerrevisions", "POST").await, 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_engine_resumes_the_rollout_without_repeating_work() {
    let mut env = Env::start("RollingRecreate").await;
    let before = env.steady(5).await;
    let (deletes, creates) = (
        env.writes("items", "DELETE").await,
        env.writes("items", "POST").await,
    );
    env.patch_thing(json!({"template": {"version": 2}})).await;
    env.advance(5, 2, 1, false).await;
    env.advance(5, 2, 2, false).await;
    env.wait_versions(5, 2, 3).await;
    env.stop_engine().await;

    // While no engine runs, nothing moves even when the updated child turns ready.
    let calls = env.hook_calls.load(Ordering::SeqCst);
    env.mark_all_ready(false).await;
    sleep(Duration::from_millis(300)).await;
    assert_eq!(env.wait_versions(5, 2, 3).await.len(), 5);
    assert_eq!(env.hook_calls.load(Ordering::SeqCst), calls);

    env.start_engine();
    env.advance(5, 2, 4, false).await;
    let states = env.wait_versions(5, 2, 5).await;
    assert_not_moved(&before, &states, 2);
    env.mark_all_ready(false).await;
    env.wait_reason("OnLatestRevision").await;
    assert_eq!(env.writes("items", "DELETE").await - deletes, 5);
    assert_eq!(env.writes("items", "POST").await - creates, 5);
    assert_eq!(env.revision_list().await.len(), 1);
    env.stop().await;
}

/// Upstream `shouldContinueRolling`: `observedGeneration` gates a RollingInPlace step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_in_place_waits_for_the_observed_generation() {
    let env = Env::start("RollingInPlace").await;
    env.create_thing(3, 1).await;
    env.wait_versions(3, 1, 3).await;
    env.mark_all_ready(true).await;
    env.wait_reason("OnLatestRevision").await;
    let before = env.item_states().await;
    env.patch_thing(json!({"template": {"version": 2}})).await;
    for done in 1..=3 {
        let states = env.wait_versions(3, 2, done).await;
        // Updated in place: same object, still Ready, but its generation is not observed yet.
        for (name, (uid, _, _)) in &states {
            assert_eq!(&before[name].0, uid, "{name} updated in place");
        }
        if done < 3 {
            let waiting = env.wait_reason("RolloutWaiting").await;
            assert!(
                waiting["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("hasn't observed latest spec")),
                "{waiting}"
            );
        }
        let updated: Vec<String> = states
            .iter()
            .filter(|(_, (_, v, _))| *v == 2)
            .map(|(n, _)| n.clone())
            .collect();
        for name in updated {
            env.mark_ready(&name, true).await;
        }
    }
    env.wait_reason("OnLatestRevision").await;
    assert_eq!(
        env.writes("items", "PUT").await,
        3,
        "each child updated once"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_hook_for_an_older_revision_writes_nothing() {
    let env = Env::start("RollingRecreate").await;
    let before = env.steady(3).await;
    let status = env.things().get("t").await.expect("thing").data["status"].clone();
    // The hook fails for the parent as of the current revision (version 1).
    env.hook_fail.store(1, Ordering::SeqCst);
    let writes = env.all_writes().await;
    env.patch_thing(json!({"template": {"version": 2}})).await;
    let calls = env.hook_calls.load(Ordering::SeqCst);
    wait_for("the hook to be called for both revisions", || async {
        (env.hook_calls.load(Ordering::SeqCst) >= calls + 2).then_some(())
    })
    .await;
    sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        env.all_writes().await,
        writes + 1,
        "only the test's own patch of the parent was written"
    );
    assert_eq!(env.item_states().await, before);
    assert_eq!(
        env.things().get("t").await.expect("thing").data["status"],
        status
    );
    assert_eq!(env.revision_list().await.len(), 1);

    // Once the hook answers again, the rollout starts.
    env.hook_fail.store(0, Ordering::SeqCst);
    env.advance(3, 2, 1, false).await;
    env.stop().await;
}
