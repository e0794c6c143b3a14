//! Store semantics, exercised through the public API without HTTP.

use super::*;
use serde_json::json;

fn store() -> Arc<Store> {
    Store::new()
}

fn rt(s: &Store, group: &str, version: &str, plural: &str) -> Arc<ResourceType> {
    s.registry().lookup(group, version, plural).expect("type")
}

fn cm(s: &Store) -> Arc<ResourceType> {
    rt(s, "", "v1", "configmaps")
}

fn w() -> WriteOptions {
    WriteOptions::default()
}

fn configmap(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data})
}

fn rv_of(o: &Obj) -> String {
    o.to_value()["metadata"]["resourceVersion"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn drain(rx: &mut mpsc::Receiver<WatchEvent>) -> Vec<(WatchEventType, Value)> {
    let mut out = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        out.push((
            ev.kind,
            serde_json::from_slice(&ev.object).unwrap_or(Value::Null),
        ));
    }
    out
}

fn names(events: &[(WatchEventType, Value)]) -> Vec<(WatchEventType, String)> {
    events
        .iter()
        .map(|(k, v)| (*k, v["metadata"]["name"].as_str().unwrap_or("").to_string()))
        .collect()
}

#[test]
fn default_namespaces_exist_and_rv_starts_high() {
    let s = store();
    let ns = rt(&s, "", "v1", "namespaces");
    for n in DEFAULT_NAMESPACES {
        let o = s.get(&ns, None, n).expect("namespace");
        assert_eq!(o.to_value()["status"]["phase"], "Active");
    }
    let now_ms = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0);
    assert!(s.current_resource_version() + 60_000 > now_ms);
}

#[test]
fn create_get_and_already_exists() {
    let s = store();
    let t = cm(&s);
    let o = s
        .create(&t, Some("default"), configmap("a", json!({"k": "v"})), &w())
        .expect("create");
    let v = o.to_value();
    assert_eq!(v["metadata"]["namespace"], "default");
    assert_eq!(rv_of(&o), o.0.resource_version.to_string());
    assert_eq!(o.0.resource_version, s.current_resource_version());
    let got = s.get(&t, Some("default"), "a").expect("get");
    assert_eq!(got.json(), o.json());
    let e = s
        .create(&t, Some("default"), configmap("a", json!({})), &w())
        .expect_err("exists");
    assert_eq!((e.code, e.reason), (409, "AlreadyExists"));
    let e = s.get(&t, Some("default"), "zzz").expect_err("missing");
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "configmaps \"zzz\" not found")
    );
    assert!(s.get(&t, Some("kube-system"), "a").is_err());
}

#[test]
fn create_in_missing_or_terminating_namespace() {
    let s = store();
    let t = cm(&s);
    let e = s
        .create(&t, Some("nope"), configmap("a", json!({})), &w())
        .expect_err("missing ns");
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
    let ns = rt(&s, "", "v1", "namespaces");
    s.create(&ns, None, json!({"metadata": {"name": "gone"}}), &w())
        .expect("ns");
    let out = s
        .delete(&ns, None, "gone", &DeleteOptions::default())
        .expect("delete ns");
    let DeleteOutcome::Pending(o) = out else {
        panic!("namespace deletion waits for its finalizer")
    };
    assert_eq!(o.to_value()["status"]["phase"], "Terminating");
    let e = s
        .create(&t, Some("gone"), configmap("a", json!({})), &w())
        .expect_err("terminating");
    assert_eq!(e.code, 403);
    assert!(
        e.message.contains("because it is being terminated"),
        "{}",
        e.message
    );
    let e = s
        .delete(&ns, None, "default", &DeleteOptions::default())
        .expect_err("protected");
    assert_eq!(e.code, 403);
}

#[test]
fn generate_name_and_dry_run() {
    let s = store();
    let t = cm(&s);
    let obj = json!({"metadata": {"generateName": "web-"}});
    let o = s
        .create(&t, Some("default"), obj.clone(), &w())
        .expect("generated");
    assert!(
        o.name().starts_with("web-") && o.name().len() == 9,
        "{}",
        o.name()
    );
    let before = s.current_resource_version();
    let dry = WriteOptions {
        dry_run: true,
        ..w()
    };
    let d = s
        .create(&t, Some("default"), configmap("dry", json!({})), &dry)
        .expect("dry");
    assert_eq!(d.name(), "dry");
    assert!(s.get(&t, Some("default"), "dry").is_err());
    assert_eq!(s.current_resource_version(), before);
}

#[test]
fn update_conflicts_and_no_op_writes() {
    let s = store();
    let t = cm(&s);
    let o = s
        .create(&t, Some("default"), configmap("a", json!({"k": "1"})), &w())
        .expect("create");
    let mut v = o.to_value();
    v["data"]["k"] = json!("2");
    let u = s
        .update(&t, Some("default"), "a", v.clone(), Subresource::Main, &w())
        .expect("update");
    assert!(u.0.resource_version > o.0.resource_version);
    // The same body again carries a stale resourceVersion.
    let e = s
        .update(&t, Some("default"), "a", v.clone(), Subresource::Main, &w())
        .expect_err("stale");
    assert_eq!((e.code, e.reason), (409, "Conflict"));
    assert!(e.message.contains("the object has been modified"));
    // Unconditional update without a resourceVersion.
    v["metadata"]
        .as_object_mut()
        .map(|m| m.remove("resourceVersion"));
    let same = s
        .update(&t, Some("default"), "a", v.clone(), Subresource::Main, &w())
        .expect("no-op");
    assert_eq!(
        same.0.resource_version, u.0.resource_version,
        "an unchanged object is not rewritten"
    );
    let e = s
        .update(&t, Some("default"), "b", v.clone(), Subresource::Main, &w())
        .expect_err("name mismatch");
    assert_eq!(e.code, 400);
    let e = s
        .update(
            &t,
            Some("default"),
            "zzz",
            configmap("zzz", json!({})),
            Subresource::Main,
            &w(),
        )
        .err();
    assert_eq!(e.map(|e| e.code), Some(404));
    let e = s
        .update(&t, Some("default"), "a", v, Subresource::Status, &w())
        .expect_err("no status");
    assert_eq!(e.code, 404);
}

fn widget_crd(status: bool) -> Value {
    let mut version = json!({"name": "v1", "served": true, "storage": true,
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "spec": {"type": "object", "properties": {"size": {"type": "integer", "default": 1}, "color": {"type": "string"}}},
            "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}}});
    if status {
        version["subresources"] = json!({"status": {}});
    }
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
            "versions": [version]}})
}

fn install_widgets(s: &Store, status: bool) -> Arc<ResourceType> {
    let crds = rt(s, "apiextensions.k8s.io", "v1", "customresourcedefinitions");
    let c = s
        .create(&crds, None, widget_crd(status), &w())
        .expect("crd");
    let cv = c.to_value();
    assert_eq!(cv["status"]["conditions"][1]["type"], "Established");
    rt(s, "example.com", "v1", "widgets")
}

fn widget(name: &str, spec: Value) -> Value {
    json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec})
}

#[test]
fn generation_with_and_without_status_subresource() {
    for status in [true, false] {
        let s = store();
        let t = install_widgets(&s, status);
        assert_eq!(t.status_subresource, status);
        let o = s
            .create(
                &t,
                Some("default"),
                widget("w", json!({"color": "red"})),
                &w(),
            )
            .expect("create");
        let v = o.to_value();
        assert_eq!(v["metadata"]["generation"], 1);
        assert_eq!(v["spec"]["size"], 1, "schema default");
        let patch = json!({"metadata": {"labels": {"a": "b"}}});
        let (o, _) = s
            .patch(
                &t,
                Some("default"),
                "w",
                PatchType::Merge,
                &patch,
                Subresource::Main,
                &w(),
            )
            .expect("labels");
        assert_eq!(o.to_value()["metadata"]["generation"], 1);
        let patch = json!({"status": {"ready": true}});
        let (o, _) = s
            .patch(
                &t,
                Some("default"),
                "w",
                PatchType::Merge,
                &patch,
                Subresource::Main,
                &w(),
            )
            .expect("status");
        let v = o.to_value();
        if status {
            assert!(v.get("status").is_none(), "main writes ignore status");
            assert_eq!(v["metadata"]["generation"], 1);
            let (o, _) = s
                .patch(
                    &t,
                    Some("default"),
                    "w",
                    PatchType::Merge,
                    &patch,
                    Subresource::Status,
                    &w(),
                )
                .expect("status");
            assert_eq!(o.to_value()["status"]["ready"], true);
            assert_eq!(o.to_value()["metadata"]["generation"], 1);
        } else {
            assert_eq!(v["status"]["ready"], true);
            assert_eq!(v["metadata"]["generation"], 2);
            let e = s
                .patch(
                    &t,
                    Some("default"),
                    "w",
                    PatchType::Merge,
                    &patch,
                    Subresource::Status,
                    &w(),
                )
                .err();
            assert_eq!(e.map(|e| e.code), Some(404));
        }
        let before = s.get(&t, Some("default"), "w").expect("get").to_value()["metadata"]
            ["generation"]
            .clone();
        let patch = json!({"spec": {"color": "blue"}});
        let (o, _) = s
            .patch(
                &t,
                Some("default"),
                "w",
                PatchType::Merge,
                &patch,
                Subresource::Main,
                &w(),
            )
            .expect("spec");
        assert_eq!(
            o.to_value()["metadata"]["generation"],
            before.as_i64().unwrap_or(0) + 1
        );
    }
}

#[test]
fn patch_kinds() {
    let s = store();
    let t = cm(&s);
    s.create(&t, Some("default"), configmap("a", json!({"x": "1"})), &w())
        .expect("create");
    let p = |pt: PatchType, body: Value| {
        s.patch(&t, Some("default"), "a", pt, &body, Subresource::Main, &w())
    };
    let (o, created) = p(PatchType::Merge, json!({"data": {"y": "2", "x": null}})).expect("merge");
    assert!(!created);
    assert_eq!(o.to_value()["data"], json!({"y": "2"}));
    // Go semantics: a test of null against a missing path passes.
    let body = json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
        {"op": "add", "path": "/metadata/finalizers", "value": ["x/y"]}]);
    let (o, _) = p(PatchType::Json, body).expect("json");
    assert_eq!(o.to_value()["metadata"]["finalizers"], json!(["x/y"]));
    let e = p(
        PatchType::Json,
        json!([{"op": "test", "path": "/data/y", "value": "nope"}]),
    )
    .expect_err("test fails");
    assert_eq!(e.code, 422);
    let (o, _) = p(PatchType::Strategic, json!({"data": {"z": "3"}})).expect("strategic");
    assert_eq!(o.to_value()["data"]["z"], "3");
    // A resourceVersion in the body is a precondition.
    let e = p(
        PatchType::Merge,
        json!({"metadata": {"resourceVersion": "1"}, "data": {"q": "1"}}),
    )
    .expect_err("rv");
    assert_eq!(e.code, 409);
    let cur = rv_of(&s.get(&t, Some("default"), "a").expect("get"));
    p(
        PatchType::Merge,
        json!({"metadata": {"resourceVersion": cur}, "data": {"q": "1"}}),
    )
    .expect("matching rv");
    let e = s
        .patch(
            &t,
            Some("default"),
            "missing",
            PatchType::Merge,
            &json!({}),
            Subresource::Main,
            &w(),
        )
        .expect_err("missing");
    assert_eq!(e.code, 404);
    // Strategic merge patch is for built-in kinds only.
    let wt = install_widgets(&s, true);
    s.create(&wt, Some("default"), widget("w", json!({})), &w())
        .expect("widget");
    let e = s
        .patch(
            &wt,
            Some("default"),
            "w",
            PatchType::Strategic,
            &json!({}),
            Subresource::Main,
            &w(),
        )
        .expect_err("415");
    assert_eq!(e.code, 415);
    assert!(e.message.contains(
        "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
    ));
}

#[test]
fn strategic_patch_merges_containers_by_name() {
    let s = store();
    let d = rt(&s, "apps", "v1", "deployments");
    let dep = json!({"metadata": {"name": "d"}, "spec": {"replicas": 1, "template": {"spec": {"containers": [
        {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
    s.create(&d, Some("default"), dep, &w()).expect("create");
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}});
    let (o, _) = s
        .patch(
            &d,
            Some("default"),
            "d",
            PatchType::Strategic,
            &patch,
            Subresource::Main,
            &w(),
        )
        .expect("smp");
    let v = o.to_value();
    let containers: Vec<(&str, &str)> = v["spec"]["template"]["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or(""),
                c["image"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(containers, [("a", "a:1"), ("b", "b:2")]);
    assert_eq!(v["metadata"]["generation"], 2);
}

#[test]
fn selectors_and_pagination() {
    let s = store();
    let t = cm(&s);
    for i in 0..7 {
        let mut obj = configmap(&format!("c{i}"), json!({}));
        obj["metadata"]["labels"] = json!({"parity": if i % 2 == 0 { "even" } else { "odd" }});
        s.create(&t, Some("default"), obj, &w()).expect("create");
    }
    s.create(&t, Some("kube-system"), configmap("other", json!({})), &w())
        .expect("create");
    let all = s.list(&t, None, &ListOptions::default()).expect("list");
    assert_eq!(all.items.len(), 8);
    assert_eq!(all.resource_version, s.current_resource_version());
    let even = ListOptions {
        label_selector: Some(LabelSelector::parse("parity=even").expect("sel")),
        ..Default::default()
    };
    assert_eq!(
        s.list(&t, Some("default"), &even)
            .expect("list")
            .items
            .len(),
        4
    );
    let fs = FieldSelector::parse("metadata.name!=c0", &t).expect("fs");
    let not_c0 = ListOptions {
        field_selector: Some(fs),
        ..even.clone()
    };
    assert_eq!(
        s.list(&t, Some("default"), &not_c0)
            .expect("list")
            .items
            .len(),
        3
    );

    let mut seen = Vec::new();
    let mut opts = ListOptions {
        limit: Some(3),
        ..Default::default()
    };
    let mut pages = 0;
    loop {
        let page = s.list(&t, Some("default"), &opts).expect("page");
        pages += 1;
        seen.extend(page.items.iter().map(|o| o.name().to_string()));
        if pages == 1 {
            assert_eq!(page.remaining_item_count, Some(4));
        }
        match page.continue_token {
            Some(c) => opts.continue_token = Some(c),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ["c0", "c1", "c2", "c3", "c4", "c5", "c6"]);
    let bad = ListOptions {
        continue_token: Some("garbage".into()),
        ..Default::default()
    };
    assert_eq!(s.list(&t, None, &bad).err().map(|e| e.code), Some(400));
}

#[test]
fn watch_initial_replay_and_expired() {
    let s = store();
    let t = cm(&s);
    s.create(&t, Some("default"), configmap("a", json!({})), &w())
        .expect("a");
    let mark = s.current_resource_version();
    s.create(&t, Some("default"), configmap("b", json!({})), &w())
        .expect("b");

    // From "0": synthetic ADDED for everything, then live events.
    let mut rx = s
        .watch(
            &t,
            Some("default"),
            &WatchOptions {
                resource_version: Some("0".into()),
                ..Default::default()
            },
        )
        .expect("w");
    assert_eq!(
        names(&drain(&mut rx)),
        [
            (WatchEventType::Added, "a".into()),
            (WatchEventType::Added, "b".into())
        ]
    );
    s.patch(
        &t,
        Some("default"),
        "a",
        PatchType::Merge,
        &json!({"data": {"x": "1"}}),
        Subresource::Main,
        &w(),
    )
    .expect("p");
    s.delete(&t, Some("default"), "b", &DeleteOptions::default())
        .expect("d");
    let evs = drain(&mut rx);
    assert_eq!(
        names(&evs),
        [
            (WatchEventType::Modified, "a".into()),
            (WatchEventType::Deleted, "b".into())
        ]
    );
    // DELETED carries the deletion's own resourceVersion.
    assert_eq!(
        evs[1].1["metadata"]["resourceVersion"],
        s.current_resource_version().to_string()
    );

    // From a version in the log: replay what came after it.
    let mut rx = s
        .watch(
            &t,
            Some("default"),
            &WatchOptions {
                resource_version: Some(mark.to_string()),
                ..Default::default()
            },
        )
        .expect("w");
    assert_eq!(
        names(&drain(&mut rx)),
        [
            (WatchEventType::Added, "b".into()),
            (WatchEventType::Modified, "a".into()),
            (WatchEventType::Deleted, "b".into())
        ]
    );

    // From before this process: one ERROR event with a 410 Status.
    let mut rx = s
        .watch(
            &t,
            None,
            &WatchOptions {
                resource_version: Some("5".into()),
                ..Default::default()
            },
        )
        .expect("w");
    let evs = drain(&mut rx);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, WatchEventType::Error);
    assert_eq!(evs[0].1["code"], 410);
    assert_eq!(evs[0].1["reason"], "Expired");
    assert!(rx.try_recv().is_err());
    assert_eq!(
        s.watch(
            &t,
            None,
            &WatchOptions {
                resource_version: Some("x".into()),
                ..Default::default()
            }
        )
        .err()
        .map(|e| e.code),
        Some(400)
    );
}

#[test]
fn watch_with_initial_events_ends_with_a_bookmark() {
    let s = store();
    let t = cm(&s);
    s.create(&t, Some("default"), configmap("a", json!({})), &w())
        .expect("a");
    let opts = WatchOptions {
        send_initial_events: true,
        allow_bookmarks: true,
        resource_version: Some("0".into()),
        ..Default::default()
    };
    let mut rx = s.watch(&t, None, &opts).expect("w");
    let evs = drain(&mut rx);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[0].0, WatchEventType::Added);
    assert_eq!(evs[1].0, WatchEventType::Bookmark);
    assert_eq!(
        evs[1].1,
        json!({"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"resourceVersion": s.current_resource_version().to_string(),
            "annotations": {"k8s.io/initial-events-end": "true"}}})
    );
    s.send_bookmarks();
    let evs = drain(&mut rx);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].0, WatchEventType::Bookmark);
    assert!(evs[0].1["metadata"].get("annotations").is_none());
}

#[test]
fn watch_selector_transitions() {
    let s = store();
    let t = cm(&s);
    let mut obj = configmap("a", json!({}));
    obj["metadata"]["labels"] = json!({"app": "x"});
    s.create(&t, Some("default"), obj, &w()).expect("a");
    let opts = WatchOptions {
        label_selector: Some(LabelSelector::parse("app=x").expect("sel")),
        ..Default::default()
    };
    let mut rx = s.watch(&t, Some("default"), &opts).expect("w");
    assert_eq!(
        names(&drain(&mut rx)),
        [(WatchEventType::Added, "a".into())]
    );
    let relabel = |v: &str| {
        s.patch(
            &t,
            Some("default"),
            "a",
            PatchType::Merge,
            &json!({"metadata": {"labels": {"app": v}}}),
            Subresource::Main,
            &w(),
        )
        .expect("relabel")
        .0
    };
    let o = relabel("y");
    let evs = drain(&mut rx);
    assert_eq!(names(&evs), [(WatchEventType::Deleted, "a".into())]);
    // The previous state, at the new version.
    assert_eq!(evs[0].1["metadata"]["labels"]["app"], "x");
    assert_eq!(
        evs[0].1["metadata"]["resourceVersion"],
        o.0.resource_version.to_string()
    );
    relabel("x");
    assert_eq!(
        names(&drain(&mut rx)),
        [(WatchEventType::Added, "a".into())]
    );
    // Other namespaces and non-matching objects are not seen.
    s.create(&t, Some("kube-system"), configmap("k", json!({})), &w())
        .expect("k");
    s.create(&t, Some("default"), configmap("n", json!({})), &w())
        .expect("n");
    assert!(drain(&mut rx).is_empty());
    // A field selector on name.
    let fs = FieldSelector::parse("metadata.name=n", &t).expect("fs");
    let mut rx = s
        .watch(
            &t,
            None,
            &WatchOptions {
                field_selector: Some(fs),
                ..Default::default()
            },
        )
        .expect("w");
    assert_eq!(
        names(&drain(&mut rx)),
        [(WatchEventType::Added, "n".into())]
    );
}

#[test]
fn slow_watchers_are_dropped() {
    let s = store();
    let t = cm(&s);
    let mut rx = s.watch(&t, None, &WatchOptions::default()).expect("w");
    for i in 0..(WATCH_BUFFER + 1) {
        s.create(
            &t,
            Some("default"),
            configmap(&format!("c{i}"), json!({})),
            &w(),
        )
        .expect("c");
    }
    let mut n = 0;
    while rx.try_recv().is_ok() {
        n += 1;
    }
    assert_eq!(n, WATCH_BUFFER);
    // The channel is closed: the client sees the end of the stream and resumes.
    assert!(matches!(
        rx.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    ));
}

#[test]
fn deletion_with_finalizers_and_preconditions() {
    let s = store();
    let t = cm(&s);
    let mut obj = configmap("a", json!({}));
    obj["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let o = s.create(&t, Some("default"), obj, &w()).expect("create");
    let bad = DeleteOptions {
        precondition_uid: Some("other".into()),
        ..Default::default()
    };
    assert_eq!(
        s.delete(&t, Some("default"), "a", &bad)
            .err()
            .map(|e| e.code),
        Some(409)
    );
    let bad = DeleteOptions {
        precondition_resource_version: Some("1".into()),
        ..Default::default()
    };
    assert_eq!(
        s.delete(&t, Some("default"), "a", &bad)
            .err()
            .map(|e| e.code),
        Some(409)
    );
    let mut rx = s
        .watch(
            &t,
            None,
            &WatchOptions {
                resource_version: Some(o.0.resource_version.to_string()),
                ..Default::default()
            },
        )
        .expect("w");
    let ok = DeleteOptions {
        precondition_uid: Some(o.0.uid.clone()),
        ..Default::default()
    };
    let DeleteOutcome::Pending(p) = s.delete(&t, Some("default"), "a", &ok).expect("delete") else {
        panic!("pending")
    };
    let pv = p.to_value();
    assert!(pv["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(pv["metadata"]["deletionGracePeriodSeconds"], 0);
    // ConfigMaps have no generation, so deletion does not add one.
    assert!(pv["metadata"].get("generation").is_none());
    // Deleting again changes nothing.
    let DeleteOutcome::Pending(again) = s.delete(&t, Some("default"), "a", &ok).expect("again")
    else {
        panic!("pending")
    };
    assert_eq!(again.0.resource_version, p.0.resource_version);
    // New finalizers are refused while deleting.
    let e = s
        .patch(
            &t,
            Some("default"),
            "a",
            PatchType::Merge,
            &json!({"metadata": {"finalizers": ["example.com/hold", "more"]}}),
            Subresource::Main,
            &w(),
        )
        .expect_err("422");
    assert_eq!(e.code, 422);
    // Removing the last finalizer removes the object.
    let (gone, _) = s
        .patch(
            &t,
            Some("default"),
            "a",
            PatchType::Merge,
            &json!({"metadata": {"finalizers": null}}),
            Subresource::Main,
            &w(),
        )
        .expect("release");
    assert!(gone.0.resource_version > p.0.resource_version);
    assert!(s.get(&t, Some("default"), "a").is_err());
    assert_eq!(
        names(&drain(&mut rx)),
        [
            (WatchEventType::Modified, "a".into()),
            (WatchEventType::Deleted, "a".into())
        ]
    );
    // Dry-run deletion leaves the object.
    s.create(&t, Some("default"), configmap("b", json!({})), &w())
        .expect("b");
    let dry = DeleteOptions {
        dry_run: true,
        ..Default::default()
    };
    assert!(matches!(
        s.delete(&t, Some("default"), "b", &dry),
        Ok(DeleteOutcome::Deleted(_))
    ));
    assert!(s.get(&t, Some("default"), "b").is_ok());
    assert_eq!(
        s.delete(&t, Some("default"), "zz", &dry)
            .err()
            .map(|e| e.code),
        Some(404)
    );
}

#[test]
fn propagation_policies_add_finalizers() {
    let s = store();
    let t = cm(&s);
    for (name, policy, fin) in [
        ("f", Propagation::Foreground, meta::FOREGROUND),
        ("o", Propagation::Orphan, meta::ORPHAN),
    ] {
        s.create(&t, Some("default"), configmap(name, json!({})), &w())
            .expect("create");
        let opts = DeleteOptions {
            propagation: Some(policy),
            ..Default::default()
        };
        let DeleteOutcome::Pending(p) = s.delete(&t, Some("default"), name, &opts).expect("delete")
        else {
            panic!("pending")
        };
        assert_eq!(meta::finalizers(&p.to_value()), [fin]);
    }
    s.create(&t, Some("default"), configmap("b", json!({})), &w())
        .expect("create");
    let opts = DeleteOptions {
        propagation: Some(Propagation::Background),
        ..Default::default()
    };
    assert!(matches!(
        s.delete(&t, Some("default"), "b", &opts),
        Ok(DeleteOutcome::Deleted(_))
    ));
}

#[test]
fn delete_collection_by_label() {
    let s = store();
    let t = cm(&s);
    for (n, app) in [("a", "x"), ("b", "x"), ("c", "y")] {
        let mut obj = configmap(n, json!({}));
        obj["metadata"]["labels"] = json!({"app": app});
        s.create(&t, Some("default"), obj, &w()).expect("create");
    }
    let sel = ListOptions {
        label_selector: Some(LabelSelector::parse("app=x").expect("sel")),
        ..Default::default()
    };
    let gone = s
        .delete_collection(&t, Some("default"), &sel, &DeleteOptions::default())
        .expect("dc");
    assert_eq!(gone.len(), 2);
    let left: Vec<String> = s
        .list(&t, Some("default"), &ListOptions::default())
        .expect("l")
        .items
        .iter()
        .map(|o| o.name().to_string())
        .collect();
    assert_eq!(left, ["c"]);
}

#[test]
fn crd_lifecycle_registers_and_prunes() {
    let s = store();
    let rev = s.registry().revision();
    let t = install_widgets(&s, true);
    assert!(s.registry().revision() > rev);
    assert_eq!(t.short_names, ["wd"]);
    let o = s
        .create(
            &t,
            Some("default"),
            widget("w", json!({"color": "red", "junk": 1})),
            &w(),
        )
        .expect("create");
    assert!(o.to_value()["spec"].get("junk").is_none(), "pruned");
    let strict = WriteOptions {
        strict_validation: true,
        ..w()
    };
    let e = s
        .create(
            &t,
            Some("default"),
            widget("w2", json!({"foo": 1})),
            &strict,
        )
        .expect_err("strict");
    assert_eq!(
        (e.code, e.message.as_str()),
        (400, "strict decoding error: unknown field \"spec.foo\"")
    );
    // Wrong apiVersion or kind for the URL.
    let mut bad = widget("w3", json!({}));
    bad["apiVersion"] = json!("example.com/v2");
    assert_eq!(
        s.create(&t, Some("default"), bad, &w())
            .err()
            .map(|e| e.code),
        Some(400)
    );
}

#[test]
fn v1beta1_crd_from_the_tutorial_is_served() {
    let s = store();
    let crds = rt(
        &s,
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
    );
    let body: Value = serde_yaml::from_str(
        "apiVersion: apiextensions.k8s.io/v1beta1\nkind: CustomResourceDefinition\nmetadata:\n  name: helloworlds.example.com\n\
         spec:\n  group: example.com\n  version: v1\n  names:\n    kind: HelloWorld\n    plural: helloworlds\n    singular: helloworld\n  scope: Namespaced\n",
    )
    .expect("yaml");
    let c = s.create(&crds, None, body, &w()).expect("create");
    assert_eq!(c.to_value()["apiVersion"], "apiextensions.k8s.io/v1");
    let t = rt(&s, "example.com", "v1", "helloworlds");
    let o = s
        .create(&t, Some("default"), json!({"apiVersion": "example.com/v1", "kind": "HelloWorld", "metadata": {"name": "h"}, "spec": {"who": "World"}}), &w())
        .expect("hello");
    assert_eq!(o.to_value()["spec"]["who"], "World");
}

#[test]
fn multi_version_crd_rewrites_api_version() {
    let s = store();
    let crds = rt(
        &s,
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
    );
    let mut crd = widget_crd(false);
    let v1 = crd["spec"]["versions"][0].clone();
    let mut v2 = v1.clone();
    v2["name"] = json!("v2");
    v2["storage"] = json!(false);
    crd["spec"]["versions"] = json!([v1, v2]);
    s.create(&crds, None, crd, &w()).expect("crd");
    let t2 = rt(&s, "example.com", "v2", "widgets");
    let mut body = widget("w", json!({}));
    body["apiVersion"] = json!("example.com/v2");
    let o = s
        .create(&t2, Some("default"), body, &w())
        .expect("v2 create");
    assert_eq!(o.to_value()["apiVersion"], "example.com/v2");
    let t1 = rt(&s, "example.com", "v1", "widgets");
    assert_eq!(
        s.get(&t1, Some("default"), "w").expect("v1").to_value()["apiVersion"],
        "example.com/v1"
    );
    assert_eq!(
        s.list(&t2, None, &ListOptions::default()).expect("l").items[0].to_value()["apiVersion"],
        "example.com/v2"
    );
}

#[test]
fn events_are_one_storage_for_both_apis() {
    let s = store();
    let new_api = rt(&s, "events.k8s.io", "v1", "events");
    let core = rt(&s, "", "v1", "events");
    let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e1"},
        "eventTime": "2024-01-01T00:00:00.000000Z", "regarding": {"kind": "Widget", "name": "w", "namespace": "default"},
        "note": "hello", "reason": "Synced", "type": "Normal", "action": "Sync", "reportingController": "mc", "reportingInstance": "mc-0"});
    let o = s
        .create(&new_api, Some("default"), ev, &w())
        .expect("create");
    assert_eq!(o.to_value()["note"], "hello");
    assert_eq!(o.to_value()["apiVersion"], "events.k8s.io/v1");
    let fs = FieldSelector::parse("involvedObject.name=w,involvedObject.kind=Widget", &core)
        .expect("fs");
    let listed = s
        .list(
            &core,
            Some("default"),
            &ListOptions {
                field_selector: Some(fs),
                ..Default::default()
            },
        )
        .expect("list");
    assert_eq!(listed.items.len(), 1);
    let cv = listed.items[0].to_value();
    assert_eq!(
        (cv["apiVersion"].as_str(), cv["message"].as_str()),
        (Some("v1"), Some("hello"))
    );
    // The recorder merge-patches the series through events.k8s.io.
    let patch = json!({"series": {"count": 2, "lastObservedTime": "2024-01-01T00:01:00.000000Z"}});
    let (p, _) = s
        .patch(
            &new_api,
            Some("default"),
            "e1",
            PatchType::Merge,
            &patch,
            Subresource::Main,
            &w(),
        )
        .expect("patch");
    assert_eq!(p.to_value()["series"]["count"], 2);
    assert_eq!(p.to_value()["regarding"]["name"], "w");
    assert_eq!(
        s.get(&core, Some("default"), "e1")
            .expect("core")
            .to_value()["series"]["count"],
        2
    );
}

#[test]
fn server_side_apply_creates_updates_and_conflicts() {
    let s = store();
    let t = cm(&s);
    let cfg = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1", "y": "2"}});
    let apply = |cfg: &Value, manager: &str, force: bool| {
        let opts = WriteOptions {
            field_manager: Some(manager.into()),
            ..w()
        };
        s.patch(
            &t,
            Some("default"),
            "a",
            PatchType::Apply { force },
            cfg,
            Subresource::Main,
            &opts,
        )
    };
    let (o, created) = apply(&cfg, "alice", false).expect("create");
    assert!(created);
    assert_eq!(
        o.to_value()["metadata"]["managedFields"][0]["manager"],
        "alice"
    );
    let (o, created) = apply(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"x": "1"}}),
        "alice",
        false,
    )
    .expect("update");
    assert!(!created);
    assert_eq!(o.to_value()["data"], json!({"x": "1"}));
    let e = apply(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"x": "2"}}),
        "bob",
        false,
    )
    .expect_err("conflict");
    assert_eq!(e.code, 409);
    assert_eq!(
        e.details.as_ref().map(|d| d["causes"][0]["reason"].clone()),
        Some(json!("FieldManagerConflict"))
    );
    let (o, _) = apply(
        &json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"x": "2"}}),
        "bob",
        true,
    )
    .expect("force");
    assert_eq!(o.to_value()["data"]["x"], "2");
    let no_manager = s.patch(
        &t,
        Some("default"),
        "a",
        PatchType::Apply { force: false },
        &cfg,
        Subresource::Main,
        &w(),
    );
    assert_eq!(no_manager.err().map(|e| e.code), Some(422));
}

#[test]
fn namespaces_with_shared_prefixes_stay_apart() {
    let s = store();
    let ns = rt(&s, "", "v1", "namespaces");
    let t = cm(&s);
    for n in ["a", "a-b", "ab"] {
        s.create(&ns, None, json!({"metadata": {"name": n}}), &w())
            .expect("ns");
        s.create(&t, Some(n), configmap("x", json!({})), &w())
            .expect("cm");
    }
    for n in ["a", "a-b", "ab"] {
        let items = s
            .list(&t, Some(n), &ListOptions::default())
            .expect("list")
            .items;
        assert_eq!(items.len(), 1, "{n}");
        assert_eq!(items[0].namespace(), Some(n));
        let mut rx = s
            .watch(&t, Some(n), &WatchOptions::default())
            .expect("watch");
        assert_eq!(drain(&mut rx).len(), 1, "{n}");
    }
    // Across namespaces: ordered by `namespace/name`, like etcd keys.
    let all: Vec<String> = s
        .list(&t, None, &ListOptions::default())
        .expect("list")
        .items
        .iter()
        .map(|o| o.namespace().unwrap_or("").to_string())
        .collect();
    assert_eq!(all, ["a-b", "a", "ab"]);
}

#[test]
fn label_selectors_read_labels_from_json() {
    let s = store();
    let t = cm(&s);
    let mut obj = configmap("q", json!({}));
    obj["metadata"]["labels"] = json!({"app": "a.b_c-d", "tier": "web"});
    s.create(&t, Some("default"), obj, &w()).expect("create");
    s.create(&t, Some("default"), configmap("none", json!({})), &w())
        .expect("create");
    let count = |sel: &str| {
        let opts = ListOptions {
            label_selector: Some(LabelSelector::parse(sel).expect("sel")),
            ..Default::default()
        };
        s.list(&t, Some("default"), &opts)
            .expect("list")
            .items
            .len()
    };
    assert_eq!(count("tier=web"), 1);
    assert_eq!(count("tier!=web"), 1);
    assert_eq!(count("!tier"), 1);
    assert_eq!(count("tier in (web,db),app"), 1);
}

#[test]
fn controller_queue_holds_each_task_once() {
    let mut q = GcQueue::default();
    q.push(GcTask::Namespace("a".into()));
    q.push(GcTask::Crd("c".into()));
    q.push(GcTask::Namespace("a".into()));
    assert_eq!(q.pop(), Some(GcTask::Namespace("a".into())));
    q.push(GcTask::Namespace("a".into()));
    assert_eq!(q.pop(), Some(GcTask::Crd("c".into())));
    assert_eq!(q.pop(), Some(GcTask::Namespace("a".into())));
    assert_eq!(q.pop(), None);
}

#[test]
fn concurrent_read_modify_writes_lose_nothing() {
    let s = store();
    let t = cm(&s);
    s.create(
        &t,
        Some("default"),
        configmap("counter", json!({"n": "0"})),
        &w(),
    )
    .expect("create");
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (s, t) = (s.clone(), t.clone());
            std::thread::spawn(move || {
                for _ in 0..250 {
                    s.modify(&t, Some("default"), "counter", |mut v| {
                        let n: u64 = v["data"]["n"]
                            .as_str()
                            .and_then(|n| n.parse().ok())
                            .unwrap_or(0);
                        v["data"]["n"] = json!((n + 1).to_string());
                        Ok(v)
                    })
                    .expect("modify");
                }
            })
        })
        .collect();
    for th in threads {
        assert!(th.join().is_ok());
    }
    let v = s
        .get(&t, Some("default"), "counter")
        .expect("get")
        .to_value();
    assert_eq!(v["data"]["n"], "1000");
}

#[test]
fn dry_run_writes_change_nothing_and_emit_nothing() {
    let s = store();
    let t = cm(&s);
    let o = s
        .create(&t, Some("default"), configmap("a", json!({"k": "1"})), &w())
        .expect("create");
    let mut rx = s
        .watch(
            &t,
            None,
            &WatchOptions {
                resource_version: Some(o.0.resource_version.to_string()),
                ..Default::default()
            },
        )
        .expect("watch");
    let dry = WriteOptions {
        dry_run: true,
        ..w()
    };
    let (p, _) = s
        .patch(
            &t,
            Some("default"),
            "a",
            PatchType::Merge,
            &json!({"data": {"k": "2"}}),
            Subresource::Main,
            &dry,
        )
        .expect("dry patch");
    assert_eq!(p.to_value()["data"]["k"], "2");
    let mut body = o.to_value();
    body["data"]["k"] = json!("3");
    s.update(&t, Some("default"), "a", body, Subresource::Main, &dry)
        .expect("dry update");
    let opts = DeleteOptions {
        dry_run: true,
        propagation: Some(Propagation::Foreground),
        ..Default::default()
    };
    assert!(matches!(
        s.delete(&t, Some("default"), "a", &opts),
        Ok(DeleteOutcome::Pending(_))
    ));
    let now = s.get(&t, Some("default"), "a").expect("get");
    assert_eq!(now.json(), o.json());
    assert_eq!(s.current_resource_version(), o.0.resource_version);
    assert!(drain(&mut rx).is_empty());
}

#[test]
fn replay_applies_selectors_to_history() {
    let s = store();
    let t = cm(&s);
    let mark = s.current_resource_version();
    let mut obj = configmap("a", json!({}));
    obj["metadata"]["labels"] = json!({"app": "x"});
    s.create(&t, Some("default"), obj, &w()).expect("a");
    s.create(&t, Some("default"), configmap("b", json!({})), &w())
        .expect("b");
    s.patch(
        &t,
        Some("default"),
        "a",
        PatchType::Merge,
        &json!({"metadata": {"labels": {"app": "y"}}}),
        Subresource::Main,
        &w(),
    )
    .expect("relabel");
    let opts = WatchOptions {
        resource_version: Some(mark.to_string()),
        label_selector: Some(LabelSelector::parse("app=x").expect("sel")),
        ..Default::default()
    };
    let mut rx = s.watch(&t, Some("default"), &opts).expect("w");
    assert_eq!(
        names(&drain(&mut rx)),
        [
            (WatchEventType::Added, "a".into()),
            (WatchEventType::Deleted, "a".into())
        ]
    );
}

#[test]
fn namespaces_get_a_default_service_account_that_pods_use() {
    let s = store();
    let ns = rt(&s, "", "v1", "namespaces");
    let sa = rt(&s, "", "v1", "serviceaccounts");
    let pods = rt(&s, "", "v1", "pods");
    assert!(s.get(&sa, Some("kube-system"), "default").is_ok());
    s.create(&ns, None, json!({"metadata": {"name": "hello"}}), &w())
        .expect("namespace");
    assert!(s.get(&sa, Some("hello"), "default").is_ok());
    let pod = |name: &str, extra: Value| {
        let mut p = json!({"metadata": {"name": name}, "spec": {"containers": [
            {"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1",
             "volumeMounts": [{"name": "own", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]}]}});
        metacontroller_merge::merge_patch::apply(&mut p, &extra);
        p
    };
    let p = s
        .create(&pods, Some("hello"), pod("p", json!({})), &w())
        .expect("pod")
        .to_value();
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(p["spec"]["serviceAccount"], "default");
    let volume = p["spec"]["volumes"][0]["name"].as_str().unwrap_or("");
    assert!(
        volume.starts_with("kube-api-access-") && volume.len() == 21,
        "{volume}"
    );
    assert_eq!(
        p["spec"]["containers"][0]["volumeMounts"],
        json!([{"name": volume, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}])
    );
    assert_eq!(
        p["spec"]["containers"][1]["volumeMounts"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let sources = &p["spec"]["volumes"][0]["projected"]["sources"];
    assert_eq!(sources[0]["serviceAccountToken"]["path"], "token");
    // Opting out: no volume.
    let p = s
        .create(
            &pods,
            Some("hello"),
            pod(
                "q",
                json!({"spec": {"automountServiceAccountToken": false}}),
            ),
            &w(),
        )
        .expect("pod")
        .to_value();
    assert!(p["spec"].get("volumes").is_none(), "{p}");
    // A missing service account is refused.
    let e = s
        .create(
            &pods,
            Some("hello"),
            pod("r", json!({"spec": {"serviceAccountName": "bot"}})),
            &w(),
        )
        .expect_err("no such account");
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "pods \"r\" is forbidden: error looking up service account hello/bot: serviceaccount \"bot\" not found"
    );
}

#[test]
fn create_attributes_defaults_but_not_strategy_or_admission_fields() {
    let s = store();
    let pods = rt(&s, "", "v1", "pods");
    let opts = WriteOptions {
        field_manager: Some("kubectl-run".into()),
        ..w()
    };
    let p = s
        .create(
            &pods,
            Some("default"),
            json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "a:1"}]}}),
            &opts,
        )
        .expect("pod")
        .to_value();
    let fields = &p["metadata"]["managedFields"][0]["fieldsV1"];
    assert_eq!(p["metadata"]["managedFields"][0]["manager"], "kubectl-run");
    // API defaults are the writer's; the strategy's status and admission's additions are not.
    assert!(fields["f:spec"].get("f:dnsPolicy").is_some(), "{fields}");
    for f in [
        "f:priority",
        "f:tolerations",
        "f:volumes",
        "f:serviceAccountName",
    ] {
        assert!(fields["f:spec"].get(f).is_none(), "{f}: {fields}");
    }
    assert!(fields.get("f:status").is_none(), "{fields}");
    assert_eq!(p["spec"]["priority"], 0);
    assert_eq!(p["status"]["phase"], "Pending");
}
