//! Component tests of the engine's DecoratorController and customize hook: the engine runs
//! against the embedded API server over real HTTP, and each test serves its own hooks on
//! loopback ports.
//!
//! Every wait is bounded; every server and engine is stopped through its cancellation token.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use serde_json::{json, Value};
use tokio::time::sleep;

mod common;

use common::{composite_controllers, configmaps, obj, resource, wait_for, Env, Hook, Responder};

impl Env {
    fn api(&self, r: &ApiResource, namespace: &str) -> Api<DynamicObject> {
        Api::namespaced_with(self.client.clone(), namespace, r)
    }

    async fn create_namespace(&self, name: &str) {
        let api: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &resource("", "v1", "Namespace", "namespaces"),
        );
        api.create(
            &PostParams::default(),
            &obj(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})),
        )
        .await
        .expect("create Namespace");
    }

    async fn create_cm(&self, namespace: &str, name: &str, labels: Value, annotations: Value) {
        self.api(&configmaps(), namespace)
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": name, "labels": labels, "annotations": annotations},
                    "data": {"v": "1"}
                })),
            )
            .await
            .expect("create ConfigMap");
    }

    async fn create_thing(&self, name: &str, labels: Value) -> DynamicObject {
        self.things()
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "example.com/v1", "kind": "Thing",
                    "metadata": {"name": name, "labels": labels},
                    "spec": {}
                })),
            )
            .await
            .expect("create Thing")
    }

    /// Warning events about the object called `name`.
    async fn warnings_about(&self, name: &str) -> Vec<String> {
        let events: Api<DynamicObject> = Api::all_with(
            self.client.clone(),
            &resource("events.k8s.io", "v1", "Event", "events"),
        );
        let list = events
            .list(&ListParams::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default();
        list.iter()
            .filter(|e| e.data["type"] == "Warning" && e.data["regarding"]["name"] == name)
            .map(|e| e.data["note"].as_str().unwrap_or("").to_string())
            .collect()
    }
}

fn hook(url: &str, version: &str) -> Value {
    json!({"version": version, "webhook": {"url": url, "timeout": "5s"}})
}

fn label<'a>(o: &'a DynamicObject, key: &str) -> Option<&'a str> {
    o.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

fn annotation<'a>(o: &'a DynamicObject, key: &str) -> Option<&'a str> {
    o.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// A sync hook that labels every target `decorated-by-<controller>: "yes"`.
fn labelling_hook() -> Responder {
    Arc::new(|req: &Value| {
        let name = req["controller"]["metadata"]["name"].as_str().unwrap_or("");
        (
            200,
            json!({"labels": {format!("decorated-by-{name}"): "yes"}}),
        )
    })
}

/// Upstream decorator `selector.go` (`Matches`): resources, label and annotation selectors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_annotation_and_combined_selectors() {
    let env = Env::start().await;
    let sync = Hook::start(labelling_hook(), env.shutdown.clone()).await;
    let rule = |extra: Value| {
        let mut r = json!({"apiVersion": "v1", "resource": "configmaps"});
        if let (Some(r), Some(e)) = (r.as_object_mut(), extra.as_object()) {
            r.extend(e.clone());
        }
        r
    };
    let labels = json!({"labelSelector": {"matchLabels": {"app": "a"}}});
    let annotations = json!({"annotationSelector": {
        "matchAnnotations": {"deco": "yes"},
        "matchExpressions": [{"key": "port", "operator": "Exists"}]
    }});
    let mut both = labels.clone();
    if let (Some(b), Some(a)) = (both.as_object_mut(), annotations.as_object()) {
        b.extend(a.clone());
    }
    for (name, r) in [
        ("by-label", labels),
        ("by-annotation", annotations),
        ("by-both", both),
    ] {
        env.create_decorator(
            name,
            json!({"resources": [rule(r)], "hooks": {"sync": hook(&sync.url, "v1")}}),
        )
        .await;
    }
    env.create_cm("default", "label-only", json!({"app": "a"}), json!({}))
        .await;
    env.create_cm(
        "default",
        "annotation-only",
        json!({}),
        json!({"deco": "yes", "port": "80"}),
    )
    .await;
    env.create_cm(
        "default",
        "both",
        json!({"app": "a"}),
        json!({"deco": "yes", "port": "80"}),
    )
    .await;
    env.create_cm(
        "default",
        "partial",
        json!({"app": "a"}),
        json!({"deco": "yes"}),
    )
    .await;
    let expect = [
        ("label-only", vec!["by-label"]),
        ("annotation-only", vec!["by-annotation"]),
        ("both", vec!["by-label", "by-annotation", "by-both"]),
        ("partial", vec!["by-label"]),
    ];
    for (cm, decorated) in &expect {
        wait_for(&format!("{cm} decorated by {decorated:?}"), || async {
            let o = env.configmaps().get(cm).await.ok()?;
            decorated
                .iter()
                .all(|d| label(&o, &format!("decorated-by-{d}")) == Some("yes"))
                .then_some(())
        })
        .await;
    }
    // Give stray syncs a moment, then check nothing else was decorated.
    sleep(Duration::from_millis(500)).await;
    for (cm, decorated) in &expect {
        let o = env.configmaps().get(cm).await.expect("cm");
        for d in ["by-label", "by-annotation", "by-both"] {
            let has = label(&o, &format!("decorated-by-{d}")).is_some();
            assert_eq!(has, decorated.contains(&d), "{cm} decorated by {d}");
        }
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_annotation_removes_and_null_status_leaves_status_alone() {
    let env = Env::start().await;
    let sync = Hook::start(
        Arc::new(|_req: &Value| {
            (
                200,
                json!({
                    "labels": {"decorated": "yes"},
                    "annotations": {"remove-me": null, "added": "y"},
                    "status": null
                }),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    let thing = env.create_thing("t1", json!({"pick": "me"})).await;
    let _ = thing;
    env.things()
        .patch(
            "t1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"annotations": {"remove-me": "x", "keep": "k"}}})),
        )
        .await
        .expect("annotate");
    env.things()
        .patch_status(
            "t1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"mine": 1}})),
        )
        .await
        .expect("status");
    env.create_decorator(
        "deco",
        json!({
            "resources": [{"apiVersion": "example.com/v1", "resource": "things",
                           "labelSelector": {"matchLabels": {"pick": "me"}}}],
            "resyncPeriodSeconds": 1,
            "hooks": {"sync": hook(&sync.url, "v1")}
        }),
    )
    .await;
    let t = wait_for("decorated Thing", || async {
        let t = env.things().get("t1").await.ok()?;
        (annotation(&t, "added") == Some("y")).then_some(t)
    })
    .await;
    assert_eq!(annotation(&t, "remove-me"), None);
    assert_eq!(annotation(&t, "keep"), Some("k"));
    assert_eq!(label(&t, "decorated"), Some("yes"));
    assert_eq!(t.data["status"], json!({"mine": 1}));

    // Converged: the periodic resync calls the hook but writes nothing.
    let calls = sync.calls();
    let writes = env.write_count().await;
    wait_for("two more resyncs", || async {
        (sync.calls() >= calls + 2).then_some(())
    })
    .await;
    assert_eq!(
        env.write_count().await,
        writes,
        "a converged sync writes nothing"
    );

    // A status from the hook replaces the stored one; only when it differs.
    sync.set(Arc::new(|_req: &Value| {
        (200, json!({"status": {"decorated": true}}))
    }));
    wait_for("status written", || async {
        let t = env.things().get("t1").await.ok()?;
        (t.data["status"] == json!({"decorated": true})).then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_and_finalizers_follow_the_controller() {
    let env = Env::start().await;
    let sync = Hook::start(
        Arc::new(|req: &Value| {
            let name = req["object"]["metadata"]["name"].as_str().unwrap_or("");
            (
                200,
                json!({"attachments": [{
                    "apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": format!("{name}-att")},
                    "data": {"of": name}
                }]}),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    // Finalizes once the attachments are gone (it asks for none).
    let finalize = Hook::start(
        Arc::new(|req: &Value| {
            let left = common::count(&req["attachments"]["ConfigMap.v1"]);
            (200, json!({"attachments": [], "finalized": left == 0}))
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_thing("a", json!({"deco": "on"})).await;
    env.create_thing("b", json!({"deco": "on"})).await;
    env.create_decorator(
        "fin",
        json!({
            "resources": [{"apiVersion": "example.com/v1", "resource": "things",
                           "labelSelector": {"matchLabels": {"deco": "on"}}}],
            "attachments": [{"apiVersion": "v1", "resource": "configmaps"}],
            "hooks": {"sync": hook(&sync.url, "v1"), "finalize": hook(&finalize.url, "v1")}
        }),
    )
    .await;
    let finalizer = "metacontroller.io/decoratorcontroller-fin";
    for name in ["a", "b"] {
        let att = wait_for("attachment", || async {
            env.configmaps()
                .get_opt(&format!("{name}-att"))
                .await
                .ok()
                .flatten()
        })
        .await;
        assert_eq!(
            annotation(&att, "metacontroller.k8s.io/decorator-controller"),
            Some("fin")
        );
        let refs = att.metadata.owner_references.clone().unwrap_or_default();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].name, name);
        assert_eq!(refs[0].controller, Some(true));
        wait_for("finalizer", || async {
            let t = env.things().get(name).await.ok()?;
            t.metadata
                .finalizers
                .as_ref()
                .is_some_and(|f| f.iter().any(|x| x == finalizer))
                .then_some(())
        })
        .await;
    }
    // A target being deleted: the finalize hook runs and removes the attachment, then the
    // finalizer goes and the target with it.
    env.things()
        .delete("a", &Default::default())
        .await
        .expect("delete a");
    wait_for("target a gone", || async {
        env.things()
            .get_opt("a")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(env
        .configmaps()
        .get_opt("a-att")
        .await
        .expect("get")
        .is_none());

    // Deleting the controller releases its finalizers: b is never stuck.
    let api: Api<DynamicObject> =
        Api::all_with(env.client.clone(), &common::decorator_controllers());
    api.delete("fin", &Default::default())
        .await
        .expect("delete DecoratorController");
    wait_for("finalizer removed from b", || async {
        let t = env.things().get("b").await.ok()?;
        (!t.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == finalizer)))
        .then_some(())
    })
    .await;
    env.things()
        .delete("b", &Default::default())
        .await
        .expect("delete b");
    wait_for("target b gone", || async {
        env.things()
            .get_opt("b")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    env.stop().await;
}

/// Records the `related` map of every sync request, by target name.
fn recording_hook(seen: Arc<Mutex<HashMap<String, Value>>>) -> Responder {
    Arc::new(move |req: &Value| {
        let name = req["object"]["metadata"]["name"]
            .as_str()
            .or_else(|| req["parent"]["metadata"]["name"].as_str())
            .unwrap_or("")
            .to_string();
        seen.lock()
            .expect("seen")
            .insert(name, req["related"].clone());
        (200, json!({}))
    })
}

fn keys_of(related: &Value, group: &str) -> Vec<String> {
    let mut keys: Vec<String> = related[group]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// Upstream `customize.Manager.getCustomizeHookResponse` and the related-object request of
/// each hook version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_sees_related_objects_in_its_namespace_and_v2_everywhere() {
    let env = Env::start().await;
    env.create_namespace("other").await;
    env.create_cm("default", "rel-a", json!({"rel": "yes"}), json!({}))
        .await;
    env.create_cm("other", "rel-b", json!({"rel": "yes"}), json!({}))
        .await;
    env.create_cm("default", "unrelated", json!({}), json!({}))
        .await;
    let customize = Hook::start(
        Arc::new(|_req: &Value| {
            (
                200,
                json!({"relatedResources": [{
                    "apiVersion": "v1", "resource": "configmaps",
                    "labelSelector": {"matchLabels": {"rel": "yes"}}
                }]}),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    let seen: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
    let sync = Hook::start(recording_hook(seen.clone()), env.shutdown.clone()).await;
    for version in ["v1", "v2"] {
        env.create_decorator(
            &format!("rel-{version}"),
            json!({
                "resources": [{"apiVersion": "example.com/v1", "resource": "things",
                               "labelSelector": {"matchLabels": {"hooks": version}}}],
                "hooks": {"sync": hook(&sync.url, version),
                          "customize": hook(&customize.url, version)}
            }),
        )
        .await;
        env.create_thing(&format!("t-{version}"), json!({"hooks": version}))
            .await;
    }
    let related = |name: &'static str| {
        let seen = seen.clone();
        async move { seen.lock().expect("seen").get(name).cloned() }
    };
    let v1 = wait_for("v1 sync", || related("t-v1")).await;
    assert_eq!(keys_of(&v1, "ConfigMap.v1"), ["rel-a"]);
    let v2 = wait_for("v2 sync", || related("t-v2")).await;
    assert_eq!(
        keys_of(&v2, "ConfigMap.v1"),
        ["default/rel-a", "other/rel-b"]
    );
    // The customize reply is cached per parent generation.
    assert_eq!(customize.calls(), 2);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_related_rules_are_rejected_without_writes() {
    let env = Env::start().await;
    let customize = Hook::start(
        Arc::new(|_req: &Value| {
            (
                200,
                json!({"relatedResources": [{
                    "apiVersion": "v1", "resource": "configmaps",
                    "names": ["x"], "labelSelector": {"matchLabels": {"a": "b"}}
                }]}),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    let sync = Hook::start(labelling_hook(), env.shutdown.clone()).await;
    env.create_thing("bad", json!({"pick": "me"})).await;
    let writes = env.write_count().await;
    env.create_decorator(
        "invalid",
        json!({
            "resources": [{"apiVersion": "example.com/v1", "resource": "things"}],
            "hooks": {"sync": hook(&sync.url, "v2"), "customize": hook(&customize.url, "v2")}
        }),
    )
    .await;
    let notes = wait_for("Warning event", || async {
        let w = env.warnings_about("bad").await;
        (!w.is_empty()).then_some(w)
    })
    .await;
    assert!(
        notes.iter().any(|n| n.contains("names")),
        "event explains the rule: {notes:?}"
    );
    assert_eq!(sync.calls(), 0, "the sync hook is never called");
    let t = env.things().get("bad").await.expect("thing");
    assert_eq!(label(&t, "decorated-by-invalid"), None);
    // The only write is the DecoratorController itself.
    assert_eq!(env.write_count().await, writes + 1);
    env.stop().await;
}

/// Upstream `customize.Manager.findRelatedParents` + `notifyRelatedParents`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_related_object_change_wakes_only_the_parents_selecting_it() {
    let env = Env::start().await;
    // Each Thing relates to the ConfigMap named in its `spec.source`, or by label `group`.
    let customize = Hook::start(
        Arc::new(|req: &Value| {
            let spec = &req["parent"]["spec"];
            let rule = match spec["source"].as_str() {
                Some(source) => json!({"apiVersion": "v1", "resource": "configmaps",
                                       "namespace": "default", "names": [source]}),
                None => json!({"apiVersion": "v1", "resource": "configmaps",
                               "labelSelector": {"matchLabels": {"group": spec["group"].clone()}}}),
            };
            (200, json!({"relatedResources": [rule]}))
        }),
        env.shutdown.clone(),
    )
    .await;
    let counts: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let sync = {
        let counts = counts.clone();
        Hook::start(
            Arc::new(move |req: &Value| {
                let name = req["parent"]["metadata"]["name"].as_str().unwrap_or("");
                *counts
                    .lock()
                    .expect("counts")
                    .entry(name.to_string())
                    .or_default() += 1;
                (200, json!({"children": []}))
            }),
            env.shutdown.clone(),
        )
        .await
    };
    let api: Api<DynamicObject> = Api::all_with(env.client.clone(), &composite_controllers());
    api.create(
        &PostParams::default(),
        &obj(json!({
            "apiVersion": "metacontroller.k8s.io/v1alpha1", "kind": "CompositeController",
            "metadata": {"name": "fan-in"},
            "spec": {
                "parentResource": {"apiVersion": "example.com/v1", "resource": "things"},
                "childResources": [{"apiVersion": "v1", "resource": "secrets"}],
                "generateSelector": true,
                "hooks": {"sync": hook(&sync.url, "v2"), "customize": hook(&customize.url, "v2")}
            }
        })),
    )
    .await
    .expect("create CompositeController");
    let n = 20;
    for i in 0..n {
        env.create_cm(
            "default",
            &format!("src-{i}"),
            json!({"group": format!("g{}", i % 2)}),
            json!({}),
        )
        .await;
        env.things()
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "example.com/v1", "kind": "Thing",
                    "metadata": {"name": format!("t{i}")},
                    "spec": {"source": format!("src-{i}")}
                })),
            )
            .await
            .expect("create Thing");
    }
    env.things()
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "example.com/v1", "kind": "Thing",
                "metadata": {"name": "grouped"},
                "spec": {"group": "g1"}
            })),
        )
        .await
        .expect("create Thing");
    let snapshot = || counts.lock().expect("counts").clone();
    wait_for("every parent synced", || async {
        let c = snapshot();
        (c.len() == n + 1).then_some(())
    })
    .await;
    // Let the initial syncs settle.
    let mut before = snapshot();
    for _ in 0..40 {
        sleep(Duration::from_millis(250)).await;
        let now = snapshot();
        if now == before {
            break;
        }
        before = now;
    }
    // Touch src-7 (group g1): exactly t7 and "grouped" are woken.
    env.configmaps()
        .patch(
            "src-7",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await
        .expect("patch src-7");
    wait_for("t7 and grouped synced again", || async {
        let c = snapshot();
        (c["t7"] > before["t7"] && c["grouped"] > before["grouped"]).then_some(())
    })
    .await;
    sleep(Duration::from_millis(500)).await;
    let after = snapshot();
    let woken: Vec<&String> = after
        .iter()
        .filter(|(k, v)| before.get(*k) != Some(*v))
        .map(|(k, _)| k)
        .collect();
    let mut woken: Vec<String> = woken.into_iter().cloned().collect();
    woken.sort();
    assert_eq!(woken, ["grouped", "t7"]);
    assert_eq!(after["t7"], before["t7"] + 1);
    assert_eq!(after["grouped"], before["grouped"] + 1);
    env.stop().await;
}

/// Upstream decorator `sync` + `finalizer.Manager.SyncObject`: a target no longer selected is
/// finalized.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizers_go_when_a_target_is_no_longer_decorated() {
    let env = Env::start().await;
    let sync = Hook::start(labelling_hook(), env.shutdown.clone()).await;
    // Finalizes at once only for Things whose spec says so; others are held.
    let finalize = Hook::start(
        Arc::new(|req: &Value| {
            let done = req["object"]["spec"]["quick"] == true;
            (200, json!({"finalized": done}))
        }),
        env.shutdown.clone(),
    )
    .await;
    for (name, quick) in [("quick", true), ("held", false)] {
        env.things()
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "example.com/v1", "kind": "Thing",
                    "metadata": {"name": name, "labels": {"deco": "on"}},
                    "spec": {"quick": quick}
                })),
            )
            .await
            .expect("create Thing");
    }
    env.create_cm("default", "cm", json!({"deco": "on"}), json!({}))
        .await;
    let spec = |with_things: bool| {
        let mut resources = vec![json!({"apiVersion": "v1", "resource": "configmaps",
                   "labelSelector": {"matchLabels": {"deco": "on"}}})];
        if with_things {
            resources.push(json!({"apiVersion": "example.com/v1", "resource": "things",
                                  "labelSelector": {"matchLabels": {"deco": "on"}}}));
        }
        json!({"resources": resources,
               "hooks": {"sync": hook(&sync.url, "v1"), "finalize": hook(&finalize.url, "v1")}})
    };
    env.create_decorator("drop", spec(true)).await;
    let finalizer = "metacontroller.io/decoratorcontroller-drop";
    let has_finalizer = |o: &DynamicObject| {
        o.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| f.iter().any(|x| x == finalizer))
    };
    for name in ["quick", "held"] {
        wait_for("finalizer on Thing", || async {
            let t = env.things().get(name).await.ok()?;
            has_finalizer(&t).then_some(())
        })
        .await;
    }
    // No longer selected: the finalize hook runs, and its `finalized` releases the target.
    let calls = finalize.calls();
    env.things()
        .patch(
            "quick",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"deco": "off"}}})),
        )
        .await
        .expect("unlabel");
    wait_for("quick released", || async {
        let t = env.things().get("quick").await.ok()?;
        (!has_finalizer(&t)).then_some(())
    })
    .await;
    assert!(finalize.calls() > calls);

    // The spec drops Things: their finalizer is released, the ConfigMap keeps its own.
    let api: Api<DynamicObject> =
        Api::all_with(env.client.clone(), &common::decorator_controllers());
    api.patch(
        "drop",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": spec(false)})),
    )
    .await
    .expect("patch DecoratorController");
    wait_for("held released", || async {
        let t = env.things().get("held").await.ok()?;
        (!has_finalizer(&t)).then_some(())
    })
    .await;
    let cm = env.configmaps().get("cm").await.expect("cm");
    assert!(has_finalizer(&cm));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_or_garbage_hooks_write_nothing() {
    let env = Env::start().await;
    let sync = Hook::start(
        Arc::new(|req: &Value| {
            let name = req["object"]["metadata"]["name"].as_str().unwrap_or("");
            (
                200,
                json!({
                    "labels": {"decorated": "yes"},
                    "status": {"ok": true},
                    "attachments": [{"apiVersion": "v1", "kind": "ConfigMap",
                                     "metadata": {"name": format!("{name}-att")}}]
                }),
            )
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_thing("g", json!({"deco": "on"})).await;
    env.create_decorator(
        "fragile",
        json!({
            "resources": [{"apiVersion": "example.com/v1", "resource": "things"}],
            "attachments": [{"apiVersion": "v1", "resource": "configmaps"}],
            "resyncPeriodSeconds": 1,
            "hooks": {"sync": hook(&sync.url, "v1")}
        }),
    )
    .await;
    wait_for("attachment and status", || async {
        let t = env.things().get("g").await.ok()?;
        let att = env.configmaps().get_opt("g-att").await.ok()??;
        (t.data["status"]["ok"] == true).then_some(att)
    })
    .await;
    let replies: [Responder; 3] = [
        Arc::new(|_req: &Value| (500, json!({"error": "boom"}))),
        Arc::new(|_req: &Value| {
            (
                200,
                json!({"attachments": "not a list", "labels": {"decorated": null}}),
            )
        }),
        Arc::new(|_req: &Value| {
            (
                200,
                json!({"attachments": [{"kind": "ConfigMap"}], "status": {"ok": false}}),
            )
        }),
    ];
    for reply in replies {
        sync.set(reply);
        let calls = sync.calls();
        let writes = env.write_count().await;
        wait_for("two failing calls", || async {
            (sync.calls() >= calls + 2).then_some(())
        })
        .await;
        assert_eq!(
            env.write_count().await,
            writes,
            "a failing hook writes nothing"
        );
        let t = env.things().get("g").await.expect("thing");
        assert_eq!(label(&t, "decorated"), Some("yes"));
        assert_eq!(t.data["status"]["ok"], true);
        assert!(env
            .configmaps()
            .get_opt("g-att")
            .await
            .expect("get")
            .is_some());
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_decorator_is_reported_and_the_others_keep_running() {
    let env = Env::start().await;
    let sync = Hook::start(labelling_hook(), env.shutdown.clone()).await;
    env.create_decorator(
        "broken",
        json!({
            "resources": [{"apiVersion": "v1", "resource": "configmaps",
                           "annotationSelector": {"matchExpressions": [{"key": "a", "operator": "Bogus"}]}}],
            "hooks": {"sync": hook(&sync.url, "v1")}
        }),
    )
    .await;
    env.create_decorator(
        "unknown-kind",
        json!({
            "resources": [{"apiVersion": "nowhere.example.com/v1", "resource": "ghosts"}],
            "hooks": {"sync": hook(&sync.url, "v1")}
        }),
    )
    .await;
    env.create_decorator(
        "healthy",
        json!({
            "resources": [{"apiVersion": "v1", "resource": "configmaps"}],
            "hooks": {"sync": hook(&sync.url, "v1")}
        }),
    )
    .await;
    env.create_cm("default", "x", json!({}), json!({})).await;
    wait_for("healthy decorator works", || async {
        let o = env.configmaps().get("x").await.ok()?;
        (label(&o, "decorated-by-healthy") == Some("yes")).then_some(())
    })
    .await;
    for name in ["broken", "unknown-kind"] {
        let notes = wait_for("CreateError event", || async {
            let w = env.warnings_about(name).await;
            (!w.is_empty()).then_some(w)
        })
        .await;
        assert!(
            notes.iter().any(|n| n.contains("Cannot create controller")),
            "{notes:?}"
        );
    }
    let o = env.configmaps().get("x").await.expect("cm");
    assert_eq!(label(&o, "decorated-by-broken"), None);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_decorator_with_only_a_finalize_hook_runs_it_at_deletion() {
    let env = Env::start().await;
    let finalize = Hook::start(
        Arc::new(|_req: &Value| (200, json!({"finalized": true}))),
        env.shutdown.clone(),
    )
    .await;
    env.create_decorator(
        "cleanup",
        json!({
            "resources": [{"apiVersion": "example.com/v1", "resource": "things"}],
            "hooks": {"finalize": hook(&finalize.url, "v1")}
        }),
    )
    .await;
    env.create_thing("f", json!({})).await;
    wait_for("finalizer added", || async {
        let t = env.things().get("f").await.ok()?;
        t.metadata
            .finalizers
            .as_ref()
            .is_some_and(|f| {
                f.iter()
                    .any(|x| x == "metacontroller.io/decoratorcontroller-cleanup")
            })
            .then_some(())
    })
    .await;
    sleep(Duration::from_millis(300)).await;
    assert_eq!(finalize.calls(), 0, "nothing to do while the target lives");
    env.things()
        .delete("f", &Default::default())
        .await
        .expect("delete");
    wait_for("target gone", || async {
        env.things()
            .get_opt("f")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await;
    assert!(finalize.calls() >= 1);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attachments_follow_their_update_strategy() {
    let env = Env::start().await;
    let sync = Hook::start(
        Arc::new(|req: &Value| {
            let color = req["object"]["metadata"]["labels"]["color"].clone();
            let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": "cm-inplace"}, "data": {"color": color}});
            let secret = json!({"apiVersion": "v1", "kind": "Secret",
                                "metadata": {"name": "s-recreate"}, "stringData": {"color": color}});
            (200, json!({"attachments": [cm, secret]}))
        }),
        env.shutdown.clone(),
    )
    .await;
    env.create_thing("u", json!({"color": "blue"})).await;
    env.create_decorator(
        "strategies",
        json!({
            "resources": [{"apiVersion": "example.com/v1", "resource": "things"}],
            "attachments": [
                {"apiVersion": "v1", "resource": "configmaps", "updateStrategy": {"method": "InPlace"}},
                {"apiVersion": "v1", "resource": "secrets", "updateStrategy": {"method": "Recreate"}}
            ],
            "hooks": {"sync": hook(&sync.url, "v1")}
        }),
    )
    .await;
    let secrets = env.api(&resource("", "v1", "Secret", "secrets"), "default");
    let cm = wait_for("ConfigMap attachment", || async {
        env.configmaps().get_opt("cm-inplace").await.ok().flatten()
    })
    .await;
    let secret = wait_for("Secret attachment", || async {
        secrets.get_opt("s-recreate").await.ok().flatten()
    })
    .await;
    env.things()
        .patch(
            "u",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"color": "red"}}})),
        )
        .await
        .expect("relabel");
    let updated = wait_for("ConfigMap updated in place", || async {
        let c = env.configmaps().get("cm-inplace").await.ok()?;
        (c.data["data"]["color"] == "red").then_some(c)
    })
    .await;
    assert_eq!(updated.metadata.uid, cm.metadata.uid);
    wait_for("Secret recreated", || async {
        let s = secrets.get_opt("s-recreate").await.ok()??;
        (s.metadata.uid != secret.metadata.uid).then_some(())
    })
    .await;
    env.stop().await;
}
