//! More component tests of the CompositeController, beside `engine_composite.rs`: update
//! methods, hook versions, cluster-scoped parents, rejected children, hook failures counted in
//! API writes, resyncs, parent selection and garbage collection.
//!
//! Each test starts its own API server and engine and serves its hook on a loopback port;
//! every wait is bounded and every server and engine is stopped through its cancellation token.
//! Controllers have names unique in this file, so the engine's process-wide reconcile counters
//! tell the tests apart.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

mod common;

use common::{
    api_writes, composite_controllers, configmaps, crd, obj, read_request, resource, wait_for, Env,
    WAIT,
};

/// Requests a hook keeps, so a test never holds an unbounded list.
const MAX_RECORDED: usize = 10_000;

/// What the test hook answers.
enum Reply {
    /// This status code and JSON body.
    Json(u16, Value),
    /// This status code and a body sent as is (not necessarily JSON).
    Raw(u16, &'static str),
    /// A 200 with this JSON body, after this delay (a slow hook).
    Slow(Duration, Value),
}

type Responder = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

/// A sync hook served on 127.0.0.1 that records every request; its behaviour can be swapped.
struct Hook {
    url: String,
    requests: Arc<Mutex<Vec<(Instant, Value)>>>,
    responder: Arc<Mutex<Responder>>,
}

impl Hook {
    async fn start(responder: Responder, shutdown: CancellationToken) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind hook");
        let url = format!("http://{}/sync", listener.local_addr().expect("addr"));
        let requests: Arc<Mutex<Vec<(Instant, Value)>>> = Arc::default();
        let responder = Arc::new(Mutex::new(responder));
        let (log, r) = (requests.clone(), responder.clone());
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
                };
                let (log, r) = (log.clone(), r.clone());
                tokio::spawn(async move {
                    let Some(body) = read_request(&mut stream).await else {
                        return;
                    };
                    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                    let responder = r.lock().expect("responder").clone();
                    let reply = responder(&request);
                    {
                        let mut log = log.lock().expect("requests");
                        if log.len() < MAX_RECORDED {
                            log.push((Instant::now(), request));
                        }
                    }
                    let (code, text) = match reply {
                        Reply::Json(code, v) => (code, v.to_string()),
                        Reply::Raw(code, text) => (code, text.to_string()),
                        Reply::Slow(delay, v) => {
                            sleep(delay).await;
                            (200, v.to_string())
                        }
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
        Hook {
            url,
            requests,
            responder,
        }
    }

    fn set(&self, responder: Responder) {
        *self.responder.lock().expect("responder") = responder;
    }

    fn calls(&self) -> usize {
        self.requests.lock().expect("requests").len()
    }

    /// When each request about the parent called `name` arrived.
    fn call_times(&self, name: &str) -> Vec<Instant> {
        self.requests
            .lock()
            .expect("requests")
            .iter()
            .filter(|(_, r)| r["parent"]["metadata"]["name"] == name)
            .map(|(t, _)| *t)
            .collect()
    }

    fn calls_for(&self, name: &str) -> usize {
        self.call_times(name).len()
    }

    /// The latest request about the parent called `name`.
    fn last_request(&self, name: &str) -> Option<Value> {
        self.requests
            .lock()
            .expect("requests")
            .iter()
            .rev()
            .find(|(_, r)| r["parent"]["metadata"]["name"] == name)
            .map(|(_, r)| r.clone())
    }
}

fn widgets() -> ApiResource {
    resource("example.com", "v1", "Widget", "widgets")
}

/// Metacontroller's CRDs aside, the namespaced `Thing` and the cluster-scoped `Widget`.
fn test_crds() -> [DynamicObject; 2] {
    [
        crd("Thing", "things", "Namespaced"),
        crd("Widget", "widgets", "Cluster"),
    ]
}

/// Reads `read` every `interval` until two readings agree, failing after [`WAIT`].
async fn wait_unchanged<F, Fut>(what: &str, interval: Duration, mut read: F) -> u64
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let deadline = Instant::now() + WAIT;
    let mut last = read().await;
    loop {
        sleep(interval).await;
        let now = read().await;
        if now == last {
            return now;
        }
        if Instant::now() >= deadline {
            panic!("timed out waiting for {what}");
        }
        last = now;
    }
}

/// The engine's count of failed syncs of the controller called `controller`.
fn failed_syncs(env: &Env, controller: &str) -> u64 {
    let mut text = String::new();
    env.metrics.render(&mut text);
    let label = format!("controller=\"{controller}\"");
    text.lines()
        .filter(|l| l.starts_with("controller_runtime_reconcile_total{"))
        .filter(|l| l.contains(&label) && l.contains("result=\"error\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

impl Env {
    /// A CompositeController for Things with ConfigMap children; `extra_spec` is merged into
    /// the spec (top-level keys replace the defaults).
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
        self.controllers()
            .create(
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

    async fn create_thing(&self, name: &str, color: &str, labels: Value) -> DynamicObject {
        self.things()
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "example.com/v1", "kind": "Thing",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {"color": color, "selector": {"matchLabels": {"thing": name}}}
                })),
            )
            .await
            .expect("create Thing")
    }

    async fn set_color(&self, thing: &str, spec: Value) {
        self.things()
            .patch(
                thing,
                &PatchParams::default(),
                &Patch::Merge(json!({ "spec": spec })),
            )
            .await
            .expect("patch Thing");
    }

    fn controllers(&self) -> Api<DynamicObject> {
        Api::all_with(self.client.clone(), &composite_controllers())
    }

    fn configmaps_in(&self, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, &configmaps())
    }

    async fn child(&self, name: &str) -> Option<DynamicObject> {
        self.configmaps().get_opt(name).await.ok()?
    }

    /// Waits until the Thing's status reports `observedChildren` at `generation`.
    async fn wait_status(&self, thing: &str, generation: i64, observed: usize) -> Value {
        wait_for(
            &format!("status of {thing} at generation {generation}"),
            || async {
                let t = self.things().get(thing).await.ok()?;
                let s = t.data.get("status")?.clone();
                (s["observedGeneration"] == generation && s["observedChildren"] == observed)
                    .then_some(s)
            },
        )
        .await
    }

    /// Like [`Env::write_count`], counting only writes that succeeded (2xx).
    async fn successful_write_count(&self) -> u64 {
        api_writes(&self.client, true).await
    }

    /// The write count once it has not moved for half a second (in-flight syncs settled).
    async fn settled_write_count(&self) -> u64 {
        wait_unchanged("writes to settle", Duration::from_millis(500), || {
            self.write_count()
        })
        .await
    }

    /// Waits for a Warning event with `reason` about the object called `name`; returns its note.
    async fn wait_warning(&self, namespace: &str, name: &str, reason: &str) -> String {
        let events: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            namespace,
            &resource("events.k8s.io", "v1", "Event", "events"),
        );
        wait_for(&format!("{reason} event on {name}"), || async {
            let list = events.list(&ListParams::default()).await.ok()?;
            list.items
                .iter()
                .find(|e| {
                    e.data["reason"] == reason
                        && e.data["regarding"]["name"] == name
                        && e.data["type"] == "Warning"
                })
                .map(|e| e.data["note"].as_str().unwrap_or_default().to_string())
        })
        .await
    }
}

/// The one child `color_hook` wants for a parent.
fn color_child(name: &str, color: &Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": format!("{name}-cm"), "labels": {"thing": name}},
        "data": {"color": color}
    })
}

/// The reply `color_hook` gives: one ConfigMap with the parent's color, and a status with
/// the color and the number of observed children.
fn color_reply(req: &Value) -> Value {
    let parent = &req["parent"];
    let name = parent["metadata"]["name"].as_str().unwrap_or("");
    let color = parent["spec"]["color"].clone();
    let observed = common::count(&req["children"]["ConfigMap.v1"]);
    json!({
        "status": {"color": color, "observedChildren": observed},
        "children": [color_child(name, &color)]
    })
}

fn color_hook() -> Responder {
    Arc::new(|req: &Value| Reply::Json(200, color_reply(req)))
}

fn uid(o: &DynamicObject) -> String {
    o.metadata.uid.clone().expect("uid")
}

fn color(o: &DynamicObject) -> Option<&str> {
    o.data["data"]["color"].as_str()
}

fn controller_ref_uid(o: &DynamicObject) -> Option<String> {
    o.metadata
        .owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

/// The keys of the ConfigMap children a hook request carries.
fn child_keys(request: &Value) -> Vec<String> {
    let mut keys: Vec<String> = request["children"]["ConfigMap.v1"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Upstream `ManageChildren` (`updateChildren`, method OnDelete).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_delete_updates_a_child_only_when_it_is_recreated() {
    let env = Env::start_with(test_crds()).await;
    let hook = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller(
        "ondelete",
        &hook.url,
        json!({"childResources": [{"apiVersion": "v1", "resource": "configmaps",
                                   "updateStrategy": {"method": "OnDelete"}}]}),
    )
    .await;
    env.create_thing("od", "blue", json!({})).await;
    env.wait_status("od", 1, 1).await;
    let first = env.child("od-cm").await.expect("child");
    assert_eq!(color(&first), Some("blue"));

    // The hook now wants red: the sync runs (the status says so) but the child is kept.
    env.set_color("od", json!({"color": "red"})).await;
    let status = env.wait_status("od", 2, 1).await;
    assert_eq!(status["color"], "red");
    env.settled_write_count().await;
    let writes = env.successful_write_count().await;
    let kept = env.child("od-cm").await.expect("child");
    assert_eq!(color(&kept), Some("blue"), "OnDelete must not update");
    assert_eq!(uid(&kept), uid(&first));
    assert_eq!(
        kept.metadata.resource_version,
        first.metadata.resource_version
    );

    // Deleting the child brings it back with the new spec.
    env.configmaps()
        .delete("od-cm", &Default::default())
        .await
        .expect("delete child");
    let second = wait_for("child recreated with the new spec", || async {
        let cm = env.child("od-cm").await?;
        (color(&cm) == Some("red")).then_some(cm)
    })
    .await;
    assert_ne!(uid(&second), uid(&first));
    assert_eq!(controller_ref_uid(&second), controller_ref_uid(&first));
    // The test's delete, the create, and the status going to 0 observed children and back.
    // Only successful writes are counted: a status patch from a stale cache may be refused
    // with a conflict and retried (see `informer_cache_never_goes_back_to_an_older_version`).
    env.wait_status("od", 2, 1).await;
    env.settled_write_count().await;
    let settled = env.successful_write_count().await;
    assert!(
        settled <= writes + 4,
        "{} writes for a delete and a recreate",
        settled - writes
    );
    env.stop().await;
}

/// Upstream `ManageChildren` (`updateChildren`, method InPlace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_place_updates_keep_the_child_uid() {
    let env = Env::start_with(test_crds()).await;
    let hook = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller("inplace", &hook.url, json!({})).await;
    env.create_thing("ip", "blue", json!({})).await;
    env.wait_status("ip", 1, 1).await;
    let first = env.child("ip-cm").await.expect("child");

    env.set_color("ip", json!({"color": "red"})).await;
    let second = wait_for("child updated in place", || async {
        let cm = env.child("ip-cm").await?;
        (color(&cm) == Some("red")).then_some(cm)
    })
    .await;
    assert_eq!(uid(&second), uid(&first), "InPlace keeps the object");
    assert_ne!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_versions_key_children_by_name_or_namespace_and_name() {
    let env = Env::start_with(test_crds()).await;
    let hook = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller("versions", &hook.url, json!({}))
        .await;
    env.create_thing("hv", "blue", json!({})).await;
    env.wait_status("hv", 1, 1).await;
    // v1 (the default): a child in the parent's namespace is keyed by its name.
    let v1 = wait_for("a v1 request that carries the child", || async {
        hook.last_request("hv")
            .filter(|r| !child_keys(r).is_empty())
    })
    .await;
    assert_eq!(child_keys(&v1), ["hv-cm"]);
    let child = &v1["children"]["ConfigMap.v1"]["hv-cm"];
    assert_eq!(child["metadata"]["namespace"], "default");
    assert_eq!(child["data"]["color"], "blue");

    // v2: the same child is keyed namespace/name.
    let before = hook.calls();
    env.controllers()
        .patch(
            "versions",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hooks": {"sync": {
                "version": "v2",
                "webhook": {"url": hook.url.clone(), "timeout": "5s"}
            }}}})),
        )
        .await
        .expect("switch to v2");
    let v2 = wait_for("a v2 request", || async {
        if hook.calls() <= before {
            return None;
        }
        hook.last_request("hv")
            .filter(|r| child_keys(r).iter().any(|k| k.contains('/')))
    })
    .await;
    assert_eq!(child_keys(&v2), ["default/hv-cm"]);
    assert_eq!(
        v2["children"]["ConfigMap.v1"]["default/hv-cm"]["data"]["color"],
        "blue"
    );
    // The v2 hook's reply still drives the child.
    env.set_color("hv", json!({"color": "green"})).await;
    wait_for("child follows the v2 hook", || async {
        let cm = env.child("hv-cm").await?;
        (color(&cm) == Some("green")).then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scoped_parent_owns_children_in_two_namespaces() {
    let env = Env::start_with(test_crds()).await;
    let namespaces: Api<DynamicObject> = Api::all_with(
        env.client.clone(),
        &resource("", "v1", "Namespace", "namespaces"),
    );
    namespaces
        .create(
            &PostParams::default(),
            &obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}})),
        )
        .await
        .expect("create namespace");
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let name = req["parent"]["metadata"]["name"].as_str().unwrap_or("");
            let observed = common::count(&req["children"]["ConfigMap.v1"]);
            let child = |ns: &str| {
                json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("{name}-cm"), "namespace": ns,
                                 "labels": {"widget": name}},
                    "data": {"home": ns}
                })
            };
            Reply::Json(
                200,
                json!({
                    "status": {"observedChildren": observed},
                    "children": [child("default"), child("other")]
                }),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_controller(
        "widgets",
        &hook.url,
        json!({"parentResource": {"apiVersion": "example.com/v1", "resource": "widgets"}}),
    )
    .await;
    let widgets: Api<DynamicObject> = Api::all_with(env.client.clone(), &widgets());
    let widget = widgets
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "example.com/v1", "kind": "Widget",
                "metadata": {"name": "w1"},
                "spec": {"selector": {"matchLabels": {"widget": "w1"}}}
            })),
        )
        .await
        .expect("create Widget");
    let owner = uid(&widget);

    let children = wait_for("children in both namespaces", || async {
        let a = env.configmaps_in("default").get_opt("w1-cm").await.ok()??;
        let b = env.configmaps_in("other").get_opt("w1-cm").await.ok()??;
        Some((a, b))
    })
    .await;
    for (cm, ns) in [(&children.0, "default"), (&children.1, "other")] {
        assert_eq!(cm.data["data"]["home"], ns);
        assert_eq!(controller_ref_uid(cm).as_deref(), Some(owner.as_str()));
        let refs = cm.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(
            (refs[0].kind.as_str(), refs[0].name.as_str()),
            ("Widget", "w1")
        );
    }
    wait_for("status with both children", || async {
        let w = widgets.get("w1").await.ok()?;
        (w.data["status"]["observedChildren"] == 2).then_some(())
    })
    .await;
    // A cluster-scoped parent's children are keyed namespace/name even for a v1 hook.
    let request = hook.last_request("w1").expect("a request");
    assert_eq!(child_keys(&request), ["default/w1-cm", "other/w1-cm"]);

    // Deleting the parent garbage-collects the children in both namespaces.
    widgets
        .delete("w1", &Default::default())
        .await
        .expect("delete Widget");
    wait_for("children collected", || async {
        let a = env.configmaps_in("default").get_opt("w1-cm").await.ok()?;
        let b = env.configmaps_in("other").get_opt("w1-cm").await.ok()?;
        (a.is_none() && b.is_none()).then_some(())
    })
    .await;
    env.stop().await;
}

/// Upstream `syncParentObject`: desired children must match the parent's selector.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_whose_labels_do_not_match_the_selector_are_rejected() {
    let env = Env::start_with(test_crds()).await;
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let name = req["parent"]["metadata"]["name"].as_str().unwrap_or("");
            let mut reply = color_reply(req);
            reply["children"][0]["metadata"]["labels"] = json!({"thing": "someone-else"});
            reply["children"][0]["metadata"]["name"] = json!(format!("{name}-stray"));
            Reply::Json(200, reply)
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_controller("mismatch", &hook.url, json!({}))
        .await;
    let writes = env.settled_write_count().await;
    let failed = failed_syncs(&env, "mismatch");
    env.create_thing("mm", "blue", json!({})).await;

    let note = env.wait_warning("default", "mm", "SyncError").await;
    assert!(note.contains("selector"), "event note: {note}");
    wait_for("several rejected syncs", || async {
        (hook.calls_for("mm") >= 3 && failed_syncs(&env, "mismatch") >= failed + 3).then_some(())
    })
    .await;
    assert!(env.child("mm-stray").await.is_none(), "no child is created");
    let thing = env.things().get("mm").await.expect("Thing");
    assert!(
        thing.data.get("status").is_none_or(Value::is_null),
        "no status is written"
    );
    assert_eq!(
        env.write_count().await,
        writes + 1,
        "only the Thing's create is a write"
    );
    env.stop().await;
}

/// How the failing hook of `failing_hooks_leave_children_and_status_untouched` answers a
/// parent, chosen by the parent's `spec.fail`.
fn failing_hook() -> Responder {
    Arc::new(|req: &Value| match req["parent"]["spec"]["fail"].as_str() {
        Some("invalid-json") => Reply::Raw(200, "{\"children\": [{\"apiVersion\""),
        Some("unavailable") => Reply::Json(503, json!({"error": "unavailable"})),
        // Well past the controller's 300ms timeout.
        Some("slow") => Reply::Slow(Duration::from_secs(3), color_reply(req)),
        _ => Reply::Json(200, color_reply(req)),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_hooks_leave_children_and_status_untouched() {
    let env = Env::start_with(test_crds()).await;
    let hook = Hook::start(failing_hook(), env.shutdown.clone()).await;
    let spec =
        |url: &str| json!({"hooks": {"sync": {"webhook": {"url": url, "timeout": "300ms"}}}});
    env.create_controller("failing", &hook.url, spec(&hook.url))
        .await;
    let modes = ["invalid-json", "unavailable", "slow"];
    for m in modes {
        env.create_thing(m, "green", json!({})).await;
    }
    for m in modes {
        env.wait_status(m, 1, 1).await;
    }
    let writes = env.settled_write_count().await;
    let mut children = Vec::new();
    for m in modes {
        children.push(env.child(&format!("{m}-cm")).await.expect("child"));
    }

    // Each parent now wants black, and its hook fails in its own way.
    let failed = failed_syncs(&env, "failing");
    let calls: Vec<usize> = modes.iter().map(|m| hook.calls_for(m)).collect();
    for m in modes {
        env.set_color(m, json!({"color": "black", "fail": m})).await;
    }
    wait_for("two failed calls per parent", || async {
        modes
            .iter()
            .zip(&calls)
            .all(|(m, n)| hook.calls_for(m) >= n + 2)
            .then_some(())
    })
    .await;
    wait_for("failed syncs counted", || async {
        (failed_syncs(&env, "failing") >= failed + 6).then_some(())
    })
    .await;
    assert_untouched(&env, &modes, &children).await;
    assert_eq!(
        env.write_count().await,
        writes + 3,
        "only the 3 spec patches"
    );

    // An unreachable hook: nothing listens on its port any more. Patching the controller
    // restarts it, and the restarted controller syncs every parent.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/sync", listener.local_addr().expect("addr"))
    };
    env.controllers()
        .patch(
            "failing",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec(&closed)})),
        )
        .await
        .expect("point the controller at a closed port");
    // Once the old controller is gone the test hook hears nothing more.
    let calls = wait_unchanged(
        "the old controller to stop",
        Duration::from_millis(1000),
        || async { hook.calls() as u64 },
    )
    .await as usize;
    let failed = failed_syncs(&env, "failing");
    wait_for("failed syncs against the closed port", || async {
        (failed_syncs(&env, "failing") >= failed + 3).then_some(())
    })
    .await;
    assert_eq!(hook.calls(), calls, "the hook is no longer called");
    assert_untouched(&env, &modes, &children).await;
    assert_eq!(
        env.write_count().await,
        writes + 3 + 1,
        "only the test's own patches"
    );

    // Back on a working hook, the pending change goes through.
    hook.set(color_hook());
    env.controllers()
        .patch(
            "failing",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec(&hook.url)})),
        )
        .await
        .expect("point the controller back at the hook");
    for m in modes {
        wait_for("recovery", || async {
            let cm = env.child(&format!("{m}-cm")).await?;
            (color(&cm) == Some("black")).then_some(())
        })
        .await;
    }
    env.stop().await;
}

async fn assert_untouched(env: &Env, modes: &[&str], children: &[DynamicObject]) {
    for (m, before) in modes.iter().zip(children) {
        let now = env.child(&format!("{m}-cm")).await.expect("child kept");
        assert_eq!(
            now.metadata.resource_version, before.metadata.resource_version,
            "{m}: child unchanged"
        );
        let thing = env.things().get(m).await.expect("Thing");
        assert_eq!(
            thing.data["status"]["color"], "green",
            "{m}: status unchanged"
        );
        assert_eq!(thing.data["status"]["observedGeneration"], 1, "{m}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_period_calls_the_hook_periodically() {
    let env = Env::start_with(test_crds()).await;
    let periodic = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller(
        "periodic",
        &periodic.url,
        json!({"resyncPeriodSeconds": 1,
               "parentResource": {"apiVersion": "example.com/v1", "resource": "things",
                                  "labelSelector": {"matchLabels": {"resync": "yes"}}}}),
    )
    .await;
    let quiet = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller(
        "quiet",
        &quiet.url,
        json!({"parentResource": {"apiVersion": "example.com/v1", "resource": "things",
                                  "labelSelector": {"matchLabels": {"resync": "no"}}}}),
    )
    .await;
    env.create_thing("rp", "blue", json!({"resync": "yes"}))
        .await;
    env.create_thing("nr", "blue", json!({"resync": "no"}))
        .await;
    env.wait_status("rp", 1, 1).await;
    env.wait_status("nr", 1, 1).await;
    env.settled_write_count().await;

    let start = Instant::now();
    let (periodic_before, quiet_before) = (periodic.calls_for("rp"), quiet.calls_for("nr"));
    wait_for("three periodic calls", || async {
        (periodic.calls_for("rp") >= periodic_before + 3).then_some(())
    })
    .await;
    let times = periodic.call_times("rp");
    let last_three = &times[times.len() - 3..];
    // Resyncs are a period apart, never faster.
    assert!(
        last_three[2] - last_three[0] >= Duration::from_millis(1800),
        "three resyncs within {:?}",
        last_three[2] - last_three[0]
    );
    assert!(start.elapsed() >= Duration::from_millis(1800));
    assert_eq!(
        quiet.calls_for("nr"),
        quiet_before,
        "without resyncPeriodSeconds a converged parent is not synced"
    );
    env.stop().await;
}

/// Upstream `syncParentObject`: `resyncAfterSeconds` requeues the parent after that delay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resync_after_seconds_schedules_the_next_call() {
    let env = Env::start_with(test_crds()).await;
    // The parent's spec.resyncAfter is what the hook asks for.
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let mut reply = color_reply(req);
            reply["resyncAfterSeconds"] = req["parent"]["spec"]["resyncAfter"].clone();
            Reply::Json(200, reply)
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_controller("resyncafter", &hook.url, json!({}))
        .await;
    env.things()
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "example.com/v1", "kind": "Thing",
                "metadata": {"name": "ra"},
                "spec": {"color": "blue", "resyncAfter": 0.3,
                         "selector": {"matchLabels": {"thing": "ra"}}}
            })),
        )
        .await
        .expect("create Thing");
    env.wait_status("ra", 1, 1).await;
    let before = hook.calls_for("ra");
    wait_for("calls scheduled by resyncAfterSeconds", || async {
        (hook.calls_for("ra") >= before + 4).then_some(())
    })
    .await;
    let times = hook.call_times("ra");
    let gaps: Vec<Duration> = times[times.len() - 3..]
        .windows(2)
        .map(|w| w[1] - w[0])
        .collect();
    for gap in &gaps {
        assert!(*gap >= Duration::from_millis(250), "gaps {gaps:?}");
    }

    // Once the hook stops asking, the calls stop.
    env.set_color("ra", json!({"resyncAfter": 0})).await;
    env.wait_status("ra", 2, 1).await;
    sleep(Duration::from_millis(500)).await;
    let settled = hook.calls_for("ra");
    sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        hook.calls_for("ra"),
        settled,
        "no resync without resyncAfterSeconds"
    );
    env.stop().await;
}

/// Upstream `doNotMatchLabels`: `parentResource.labelSelector` filters parents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parent_label_selector_filters_parents() {
    let env = Env::start_with(test_crds()).await;
    let hook = Hook::start(color_hook(), env.shutdown.clone()).await;
    env.create_controller(
        "selected",
        &hook.url,
        json!({"parentResource": {"apiVersion": "example.com/v1", "resource": "things",
                                  "labelSelector": {"matchExpressions": [
                                      {"key": "tier", "operator": "In", "values": ["managed"]}]}}}),
    )
    .await;
    env.create_thing("in", "blue", json!({"tier": "managed"}))
        .await;
    env.create_thing("out", "blue", json!({"tier": "other"}))
        .await;
    env.create_thing("bare", "blue", json!({})).await;
    env.wait_status("in", 1, 1).await;
    // Give the unselected parents every chance to be synced.
    env.settled_write_count().await;
    for name in ["out", "bare"] {
        assert_eq!(hook.calls_for(name), 0, "{name} is not selected");
        assert!(env.child(&format!("{name}-cm")).await.is_none());
        let t = env.things().get(name).await.expect("Thing");
        assert!(t.data.get("status").is_none_or(Value::is_null));
    }

    // A parent that gains the label is picked up.
    env.things()
        .patch(
            "bare",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": "managed"}}})),
        )
        .await
        .expect("label Thing");
    env.wait_status("bare", 1, 1).await;
    assert!(env.child("bare-cm").await.is_some());
    assert_eq!(hook.calls_for("out"), 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_parent_garbage_collects_its_children() {
    let env = Env::start_with(test_crds()).await;
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let name = req["parent"]["metadata"]["name"].as_str().unwrap_or("");
            let mut reply = color_reply(req);
            let mut second = color_child(name, &json!("extra"));
            second["metadata"]["name"] = json!(format!("{name}-cm2"));
            reply["children"]
                .as_array_mut()
                .expect("children")
                .push(second);
            Reply::Json(200, reply)
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_controller("collected", &hook.url, json!({}))
        .await;
    let thing = env.create_thing("gc", "blue", json!({})).await;
    env.wait_status("gc", 1, 2).await;
    for name in ["gc-cm", "gc-cm2"] {
        let cm = env.child(name).await.expect("child");
        assert_eq!(controller_ref_uid(&cm), Some(uid(&thing)));
    }
    // A ConfigMap the parent does not own survives.
    env.configmaps()
        .create(
            &PostParams::default(),
            &obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "bystander", "labels": {"thing": "someone-else"}}})),
        )
        .await
        .expect("create bystander");

    env.things()
        .delete("gc", &Default::default())
        .await
        .expect("delete Thing");
    wait_for("children collected", || async {
        let a = env.child("gc-cm").await;
        let b = env.child("gc-cm2").await;
        (a.is_none() && b.is_none()).then_some(())
    })
    .await;
    // The engine does not bring them back for a parent that is gone.
    sleep(Duration::from_millis(1000)).await;
    assert!(env.child("gc-cm").await.is_none());
    assert!(env.child("gc-cm2").await.is_none());
    assert!(env.child("bystander").await.is_some());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informer_cache_never_goes_back_to_an_older_version() {
    let env = Env::start_with(test_crds()).await;
    let discovery = metacontroller_engine::Discovery::new(env.client.clone());
    let resource = discovery
        .resolve("v1", "configmaps")
        .await
        .expect("resolve");
    let factory = metacontroller_engine::InformerFactory::new(env.client.clone());
    let informer = factory.informer(&resource);
    tokio::time::timeout(WAIT, informer.wait_synced())
        .await
        .expect("initial list");
    let created = env
        .configmaps()
        .create(
            &PostParams::default(),
            &obj(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cached"},
                        "data": {"step": "created"}}),
            ),
        )
        .await
        .expect("create");
    wait_for("the create in the cache", || async {
        informer.get("default", "cached").map(|_| ())
    })
    .await;

    // The engine observes the result of its own write before the watch delivers it; here a
    // write whose resourceVersion is newer than anything the watch will deliver next.
    let mut newer = created.clone();
    newer.metadata.resource_version = Some("99999999999999999".into());
    newer.data["data"]["step"] = json!("observed");
    informer.observe_write(&newer);
    assert_eq!(
        informer.get("default", "cached").expect("cached").data["data"]["step"],
        "observed"
    );

    // An older state arrives through the watch afterwards (as a lagging event would).
    let delivered: Arc<Mutex<bool>> = Arc::default();
    let flag = delivered.clone();
    let _subscription =
        informer.subscribe(Arc::new(move |e: &metacontroller_engine::store::Event| {
            if e.new
                .as_ref()
                .is_some_and(|n| n.data["data"]["step"] == "older")
            {
                *flag.lock().expect("delivered") = true;
            }
        }));
    env.configmaps()
        .patch(
            "cached",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"step": "older"}})),
        )
        .await
        .expect("patch");
    wait_for("the watch event of the patch", || async {
        delivered.lock().expect("delivered").then_some(())
    })
    .await;
    let cached = informer.get("default", "cached").expect("cached");
    assert_eq!(
        cached.metadata.resource_version.as_deref(),
        Some("99999999999999999"),
        "the cache went back to resourceVersion {:?} ({})",
        cached.metadata.resource_version,
        cached.data["data"]["step"]
    );
    env.stop().await;
}
