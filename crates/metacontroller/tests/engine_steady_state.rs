//! Steady state means zero writes: once a parent converged, the engine makes no write and
//! calls no hook until something changes. Each test converges a controller against the
//! embedded API server, waits until the server's write counters and the hook's call count
//! stop moving, then watches a quiet window in which both must stay put. The sync-loop safety
//! net is tested with a hook whose answer never settles.
//!
//! Every wait is bounded; every server and engine is stopped through its cancellation token.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

mod common;

use common::{composite_controllers, crd, obj, resource, wait_for, Env, Hook, Responder};

/// How long a converged controller is watched for writes and hook calls.
const QUIET: Duration = Duration::from_secs(5);

fn helloworlds() -> ApiResource {
    resource("example.com", "v1", "HelloWorld", "helloworlds")
}

/// The tutorial's CRD as it was written: apiextensions v1beta1, no status subresource.
fn legacy_helloworld_crd() -> DynamicObject {
    let text = include_str!("../../../examples/hello-world/legacy/crd.yaml");
    serde_yaml::from_str(text).expect("the tutorial's CRD")
}

/// The tutorial's CRD in its current v1 form, with a status subresource.
fn helloworld_crd() -> DynamicObject {
    let text = include_str!("../../../examples/hello-world/crd.yaml");
    serde_yaml::from_str(text).expect("the tutorial's v1 CRD")
}

/// The tutorial's sync hook: one Pod per HelloWorld, and the number of Pods as status.
fn hello_hook() -> Responder {
    Arc::new(|req: &Value| {
        let parent = &req["parent"];
        let pods = common::count(&req["children"]["Pod.v1"]);
        let who = parent["spec"]["who"].as_str().unwrap_or("World");
        (
            200,
            json!({
                "status": {"pods": pods},
                "children": [{
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": parent["metadata"]["name"]},
                    "spec": {
                        "restartPolicy": "OnFailure",
                        "containers": [{
                            "name": "hello", "image": "busybox",
                            "command": ["echo", format!("Hello, {who}!")]
                        }]
                    }
                }]
            }),
        )
    })
}

impl Env {
    async fn create_object(&self, r: &ApiResource, namespace: Option<&str>, o: Value) {
        let api: Api<DynamicObject> = match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, r),
            None => Api::all_with(self.client.clone(), r),
        };
        api.create(&PostParams::default(), &obj(o))
            .await
            .unwrap_or_else(|e| panic!("create {}: {e}", r.kind));
    }
}

async fn create_hello_controller(env: &Env, hook: &Hook) {
    env.create_object(
        &composite_controllers(),
        None,
        json!({
            "apiVersion": "metacontroller.k8s.io/v1alpha1",
            "kind": "CompositeController",
            "metadata": {"name": "hello-controller"},
            "spec": {
                "generateSelector": true,
                "parentResource": {"apiVersion": "example.com/v1", "resource": "helloworlds"},
                "childResources": [{
                    "apiVersion": "v1", "resource": "pods",
                    "updateStrategy": {"method": "Recreate"}
                }],
                "hooks": {"sync": {"webhook": {"url": hook.url, "timeout": "5s"}}}
            }
        }),
    )
    .await;
}

/// Runs the tutorial on `crd` and checks it settles, then settles again after a spec edit.
async fn hello_world_settles(crd: DynamicObject, expect_warning: bool) {
    let env = Env::start_with([]).await;
    // Created through the endpoint of the CRD's own apiVersion, as `kubectl apply` does.
    let api_version = crd.types.as_ref().map_or("", |t| t.api_version.as_str());
    let version = api_version.rsplit('/').next().unwrap_or("v1");
    let crd_api: Api<DynamicObject> = Api::all_with(
        env.client.clone(),
        &resource(
            "apiextensions.k8s.io",
            version,
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    );
    crd_api
        .create(&PostParams::default(), &crd)
        .await
        .expect("create the tutorial's CRD");
    let hook = Hook::start(hello_hook(), env.shutdown.clone()).await;
    create_hello_controller(&env, &hook).await;
    env.create_object(
        &helloworlds(),
        Some("default"),
        json!({
            "apiVersion": "example.com/v1", "kind": "HelloWorld",
            "metadata": {"name": "your-name"},
            "spec": {"who": "Your Name"}
        }),
    )
    .await;
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), "default", &helloworlds());
    let converged = || async {
        let p = api.get("your-name").await.ok()?;
        let generation = p.metadata.generation?;
        (p.data["status"]["pods"] == 1 && p.data["status"]["observedGeneration"] == generation)
            .then_some(generation)
    };
    let generation = wait_for("status.pods == 1, observed", converged).await;
    env.assert_quiet(&[&hook], QUIET).await;
    let settled = api.get("your-name").await.expect("parent");
    assert_eq!(settled.metadata.generation, Some(generation));
    assert_eq!(
        settled.data["status"]["observedGeneration"],
        json!(generation),
        "status.observedGeneration is the stored generation"
    );

    // A spec edit: the Pod is recreated, and everything settles again.
    let old_pod = env
        .api_pods()
        .get("your-name")
        .await
        .expect("pod")
        .metadata
        .uid;
    api.patch(
        "your-name",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"who": "My Name"}})),
    )
    .await
    .expect("patch spec");
    wait_for("the Pod recreated", || async {
        let pod = env.api_pods().get("your-name").await.ok()?;
        (pod.metadata.uid != old_pod
            && pod.data["spec"]["containers"][0]["command"][1] == "Hello, My Name!")
            .then_some(())
    })
    .await;
    wait_for("converged again", converged).await;
    env.settle(&[&hook]).await;
    let p = api.get("your-name").await.expect("parent");
    assert_eq!(
        p.data["status"]["observedGeneration"],
        json!(p.metadata.generation.expect("generation"))
    );

    let warnings = env.events_about("your-name", "NoStatusSubresource").await;
    if expect_warning {
        assert_eq!(
            warnings.len(),
            1,
            "one warning, not one per sync: {warnings:?}"
        );
        assert_eq!(warnings[0]["type"], "Warning");
        assert_eq!(
            warnings[0].get("series"),
            None,
            "the warning is not repeated: {warnings:?}"
        );
        let note = warnings[0]["note"].as_str().unwrap_or("");
        assert!(note.contains("subresources"), "{note}");
    } else {
        assert!(warnings.is_empty(), "{warnings:?}");
    }
    env.stop().await;
}

impl Env {
    fn api_pods(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            "default",
            &resource("", "v1", "Pod", "pods"),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_crd_without_status_subresource_settles() {
    hello_world_settles(legacy_helloworld_crd(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_crd_with_status_subresource_settles() {
    hello_world_settles(helloworld_crd(), false).await;
}

/// Desires a Pod, a Service, a Deployment and a ConfigMap per parent, written the way hooks
/// write them: only the fields they care about, leaving the rest to server-side defaults.
fn four_kinds_hook() -> Responder {
    Arc::new(|req: &Value| {
        let name = req["parent"]["metadata"]["name"].as_str().unwrap_or("");
        let labels = json!({"app": name});
        let template_spec = json!({
            "containers": [{
                "name": "main", "image": "nginx:1.27",
                "ports": [{"containerPort": 80}],
                "resources": {"limits": {"cpu": "100m", "memory": "64Mi"}},
                "readinessProbe": {"httpGet": {"port": 80}},
                "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]
            }]
        });
        let observed: usize = ["Pod.v1", "Service.v1", "Deployment.apps/v1", "ConfigMap.v1"]
            .iter()
            .map(|k| common::count(&req["children"][k]))
            .sum();
        (
            200,
            json!({
                "status": {"children": observed, "note": null},
                "children": [
                    {"apiVersion": "v1", "kind": "Pod",
                     "metadata": {"name": format!("{name}-pod"), "labels": labels},
                     "spec": template_spec},
                    {"apiVersion": "v1", "kind": "Service",
                     "metadata": {"name": format!("{name}-svc"), "labels": labels},
                     "spec": {"selector": {"app": name}, "ports": [{"port": 80, "name": "http"}]}},
                    {"apiVersion": "apps/v1", "kind": "Deployment",
                     "metadata": {"name": format!("{name}-deploy"), "labels": labels},
                     "spec": {
                        "selector": {"matchLabels": {"app": name, "tier": "d"}},
                        "template": {
                            "metadata": {"labels": {"app": name, "tier": "d"}},
                            "spec": template_spec
                        }
                     }},
                    {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": format!("{name}-cm"), "labels": labels},
                     "data": {"k": "v"}}
                ]
            }),
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn defaulted_children_of_every_built_in_kind_settle() {
    let env = Env::start().await;
    let hook = Hook::start(four_kinds_hook(), env.shutdown.clone()).await;
    let child = |api_version: &str, plural: &str| json!({"apiVersion": api_version, "resource": plural, "updateStrategy": {"method": "InPlace"}});
    env.create_object(
        &composite_controllers(),
        None,
        json!({
            "apiVersion": "metacontroller.k8s.io/v1alpha1",
            "kind": "CompositeController",
            "metadata": {"name": "kinds"},
            "spec": {
                "parentResource": {"apiVersion": "example.com/v1", "resource": "things"},
                "childResources": [
                    child("v1", "pods"), child("v1", "services"),
                    child("apps/v1", "deployments"), child("v1", "configmaps")
                ],
                "hooks": {"sync": {"webhook": {"url": hook.url, "timeout": "5s"}}}
            }
        }),
    )
    .await;
    for name in ["a", "b"] {
        env.create_object(
            &common::things(),
            Some("default"),
            json!({
                "apiVersion": "example.com/v1", "kind": "Thing",
                "metadata": {"name": name},
                "spec": {"selector": {"matchLabels": {"app": name}}}
            }),
        )
        .await;
    }
    for name in ["a", "b"] {
        wait_for("four children observed", || async {
            let t = env.things().get(name).await.ok()?;
            (t.data["status"]["children"] == 4).then_some(())
        })
        .await;
    }
    // The server defaulted what the hook left out.
    let pods = env.api_pods();
    let pod = pods.get("a-pod").await.expect("pod");
    assert_eq!(pod.data["spec"]["dnsPolicy"], "ClusterFirst");
    assert_eq!(
        pod.data["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        "100m"
    );
    let svc: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        "default",
        &resource("", "v1", "Service", "services"),
    );
    let svc = svc.get("a-svc").await.expect("service");
    assert_eq!(svc.data["spec"]["ports"][0]["targetPort"], 80);
    assert!(svc.data["spec"]["clusterIP"].is_string());
    let deploys: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        "default",
        &resource("apps", "v1", "Deployment", "deployments"),
    );
    let d = deploys.get("a-deploy").await.expect("deployment");
    assert_eq!(d.data["spec"]["strategy"]["type"], "RollingUpdate");

    env.assert_quiet(&[&hook], QUIET).await;
    // No child was ever updated: creates only.
    let text = common::metrics(&env.client).await;
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        if line.contains("verb=\"PUT\"")
            && ["pods", "services", "deployments", "configmaps"]
                .iter()
                .any(|r| line.contains(&format!("resource=\"{r}\"")))
        {
            panic!("a defaulted child was updated: {line}");
        }
    }
    env.stop().await;
}

/// A CRD in `example.com/v1` without a status subresource.
fn crd_without_status(kind: &str, plural: &str) -> DynamicObject {
    let mut c = crd(kind, plural, "Namespaced");
    if let Some(v) = c.data["spec"]["versions"][0].as_object_mut() {
        v.remove("subresources");
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decorator_status_and_attachments_settle() {
    let env = Env::start_with([
        crd("Thing", "things", "Namespaced"),
        crd_without_status("Gadget", "gadgets"),
    ])
    .await;
    let hook = Hook::start(
        Arc::new(|req: &Value| {
            let o = &req["object"];
            let name = o["metadata"]["name"].as_str().unwrap_or("");
            let attached = req["attachments"]["Service.v1"]
                .as_object()
                .map_or(0, |m| m.len());
            (
                200,
                json!({
                    "labels": {"decorated": "yes"},
                    "annotations": {"decorated-at": "once"},
                    "status": {"attached": attached, "kind": o["kind"]},
                    "attachments": [
                        {"apiVersion": "v1", "kind": "Service",
                         "metadata": {"name": format!("{name}-svc")},
                         "spec": {"selector": {"app": name}, "ports": [{"port": 8080}]}},
                        {"apiVersion": "v1", "kind": "ConfigMap",
                         "metadata": {"name": format!("{name}-cm")},
                         "data": {"from": name}}
                    ]
                }),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    let attachment = |plural: &str| json!({"apiVersion": "v1", "resource": plural, "updateStrategy": {"method": "InPlace"}});
    env.create_object(
        &common::decorator_controllers(),
        None,
        json!({
            "apiVersion": "metacontroller.k8s.io/v1alpha1",
            "kind": "DecoratorController",
            "metadata": {"name": "deco"},
            "spec": {
                "resources": [
                    {"apiVersion": "example.com/v1", "resource": "things"},
                    {"apiVersion": "example.com/v1", "resource": "gadgets"}
                ],
                "attachments": [attachment("services"), attachment("configmaps")],
                "hooks": {"sync": {"webhook": {"url": hook.url, "timeout": "5s"}}}
            }
        }),
    )
    .await;
    let gadgets = resource("example.com", "v1", "Gadget", "gadgets");
    env.create_object(
        &common::things(),
        Some("default"),
        json!({"apiVersion": "example.com/v1", "kind": "Thing", "metadata": {"name": "t"}, "spec": {}}),
    )
    .await;
    env.create_object(
        &gadgets,
        Some("default"),
        json!({"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": {}}),
    )
    .await;
    let gadget_api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), "default", &gadgets);
    wait_for("both targets report their Service", || async {
        let t = env.things().get("t").await.ok()?;
        let g = gadget_api.get("g").await.ok()?;
        (t.data["status"]["attached"] == 1 && g.data["status"]["attached"] == 1).then_some(())
    })
    .await;
    env.assert_quiet(&[&hook], QUIET).await;
    let g = gadget_api.get("g").await.expect("gadget");
    assert_eq!(g.data["status"]["kind"], "Gadget");
    assert_eq!(
        g.metadata.labels.as_ref().and_then(|l| l.get("decorated")),
        Some(&"yes".to_string())
    );
    env.stop().await;
}

fn loop_count(text: &str, controller: &str) -> u64 {
    let prefix = format!("metacontroller_sync_loop_detected_total{{controller=\"{controller}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_that_never_settles_is_backed_off_and_reported_once() {
    let env = Env::start().await;
    // Every answer wants the child different from the last, so each child update starts
    // another sync. (A status that changes on every call is not a loop: the parent's own
    // status write coming back through the watch does not sync it again.)
    let counter = Arc::new(AtomicU64::new(0));
    let hook = {
        let counter = counter.clone();
        Hook::start(
            Arc::new(move |_req: &Value| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let child = json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "restless", "labels": {"app": "restless"}},
                    "data": {"n": n.to_string()}
                });
                (200, json!({"status": {}, "children": [child]}))
            }),
            env.shutdown.clone(),
        )
        .await
    };
    env.create_object(
        &composite_controllers(),
        None,
        json!({
            "apiVersion": "metacontroller.k8s.io/v1alpha1",
            "kind": "CompositeController",
            "metadata": {"name": "restless"},
            "spec": {
                "parentResource": {"apiVersion": "example.com/v1", "resource": "things"},
                "childResources": [{
                    "apiVersion": "v1", "resource": "configmaps",
                    "updateStrategy": {"method": "InPlace"}
                }],
                "hooks": {"sync": {"webhook": {"url": hook.url, "timeout": "5s"}}}
            }
        }),
    )
    .await;
    env.create_object(
        &common::things(),
        Some("default"),
        json!({
            "apiVersion": "example.com/v1", "kind": "Thing",
            "metadata": {"name": "restless"},
            "spec": {"selector": {"matchLabels": {"app": "restless"}}}
        }),
    )
    .await;
    let metrics = || {
        let mut out = String::new();
        env.metrics.render(&mut out);
        out
    };
    wait_for("the loop to be detected", || async {
        (loop_count(&metrics(), "restless") >= 1).then_some(())
    })
    .await;
    // Backed off: 1s, then 2s, then 4s between syncs, so at most a handful of calls in 5s
    // (a hot loop makes hundreds per second).
    let calls = hook.calls();
    sleep(Duration::from_secs(5)).await;
    let during = hook.calls() - calls;
    assert!(during <= 4, "{during} hook calls in 5s while backed off");
    assert!(during >= 1, "a backed-off parent still syncs now and then");
    assert_eq!(loop_count(&metrics(), "restless"), 1);
    let events = env.events_about("restless", "SyncLoop").await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "Warning");
    assert!(events[0].get("series").is_none(), "{events:?}");

    // An outside change is synced at once, not after the backoff.
    let calls = hook.calls();
    env.things()
        .patch(
            "restless",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"poked": "yes"}}})),
        )
        .await
        .expect("label the parent");
    let started = Instant::now();
    wait_for("a sync after the outside change", || async {
        (hook.calls() > calls).then_some(())
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the outside change waited {:?}",
        started.elapsed()
    );
    env.stop().await;
}
