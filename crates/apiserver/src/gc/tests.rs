//! Garbage collector, namespace controller and CRD cleanup, driven through the store.

use super::*;
use crate::store::{DeleteOutcome, ListOptions, PatchType, Subresource, WriteOptions};
use serde_json::json;

fn rt(s: &Store, group: &str, plural: &str) -> Arc<ResourceType> {
    s.registry().lookup(group, "v1", plural).expect("type")
}

fn w() -> WriteOptions {
    WriteOptions::default()
}

/// A ConfigMap owned by `owner` (a ConfigMap too, for brevity).
fn owned(name: &str, owner: &crate::store::Obj, block: bool) -> Value {
    json!({"metadata": {"name": name, "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
        "name": owner.name(), "uid": owner.0.uid, "blockOwnerDeletion": block}]}})
}

fn exists(s: &Store, name: &str) -> bool {
    s.get(&rt(s, "", "configmaps"), Some("default"), name)
        .is_ok()
}

fn setup() -> (Arc<Store>, Arc<ResourceType>, crate::store::Obj) {
    let s = Store::new();
    let cm = rt(&s, "", "configmaps");
    let owner = s
        .create(
            &cm,
            Some("default"),
            json!({"metadata": {"name": "owner"}}),
            &w(),
        )
        .expect("owner");
    (s, cm, owner)
}

#[test]
fn decisions() {
    let r = |uid: &str| OwnerRef {
        api_version: "v1".into(),
        kind: "X".into(),
        name: "n".into(),
        uid: uid.into(),
        block_owner_deletion: false,
    };
    use OwnerState::*;
    assert_eq!(decide(&[], &[], &[], false), Decision::Keep);
    assert_eq!(decide(&[r("a")], &[Solid], &[], false), Decision::Keep);
    assert_eq!(
        decide(
            &[r("a"), r("b"), r("c")],
            &[Solid, Dangling, Waiting],
            &[],
            false
        ),
        Decision::StripRefs(vec!["b".into(), "c".into()])
    );
    assert_eq!(
        decide(&[r("a")], &[Waiting], &[], true),
        Decision::Delete(Propagation::Foreground)
    );
    assert_eq!(
        decide(&[r("a")], &[Waiting], &[], false),
        Decision::Delete(Propagation::Background)
    );
    assert_eq!(
        decide(&[r("a"), r("b")], &[Dangling, Dangling], &[], false),
        Decision::Delete(Propagation::Background)
    );
    assert_eq!(
        decide(&[r("a")], &[Dangling], &["orphan".into()], false),
        Decision::Delete(Propagation::Orphan)
    );
}

#[test]
fn background_deletion_collects_dependents() {
    let (s, cm, owner) = setup();
    s.create(&cm, Some("default"), owned("child", &owner, false), &w())
        .expect("child");
    drain(&s);
    assert!(exists(&s, "child"), "a solid owner keeps its dependent");
    s.delete(&cm, Some("default"), "owner", &DeleteOptions::default())
        .expect("delete");
    drain(&s);
    assert!(!exists(&s, "child"));
}

#[test]
fn dependent_of_an_owner_that_never_existed_is_collected() {
    let (s, cm, _) = setup();
    let ghost = json!({"metadata": {"name": "orphaned", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}]}});
    s.create(&cm, Some("default"), ghost, &w()).expect("child");
    // A uid mismatch with a same-named owner is dangling too.
    let wrong = json!({"metadata": {"name": "wrong-uid", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "owner", "uid": "11111111-0000-0000-0000-000000000000"}]}});
    s.create(&cm, Some("default"), wrong, &w()).expect("child");
    // An owner of a kind nobody serves is left alone.
    let unknown = json!({"metadata": {"name": "unknown-kind", "ownerReferences": [{"apiVersion": "nowhere.io/v1", "kind": "Thing",
        "name": "t", "uid": "22222222-0000-0000-0000-000000000000"}]}});
    s.create(&cm, Some("default"), unknown, &w())
        .expect("child");
    drain(&s);
    assert!(!exists(&s, "orphaned"));
    assert!(!exists(&s, "wrong-uid"));
    assert!(exists(&s, "unknown-kind"));
    assert!(exists(&s, "owner"));
}

#[test]
fn dangling_refs_are_stripped_when_another_owner_is_solid() {
    let (s, cm, owner) = setup();
    let mut child = owned("child", &owner, false);
    if let Some(a) = child["metadata"]["ownerReferences"].as_array_mut() {
        a.push(json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "ghost", "uid": "dead"}));
    }
    s.create(&cm, Some("default"), child, &w()).expect("child");
    drain(&s);
    let v = s
        .get(&cm, Some("default"), "child")
        .expect("kept")
        .to_value();
    let refs = v["metadata"]["ownerReferences"].as_array().map(|a| a.len());
    assert_eq!(refs, Some(1));
    assert_eq!(
        v["metadata"]["ownerReferences"][0]["uid"],
        owner.0.uid.as_str()
    );
}

#[test]
fn foreground_deletion_waits_for_blocking_dependents() {
    let (s, cm, owner) = setup();
    let mut child = owned("child", &owner, true);
    child["metadata"]["finalizers"] = json!(["example.com/hold"]);
    s.create(&cm, Some("default"), child, &w()).expect("child");
    s.create(&cm, Some("default"), owned("free", &owner, false), &w())
        .expect("free child");
    let opts = DeleteOptions {
        propagation: Some(Propagation::Foreground),
        ..Default::default()
    };
    assert!(matches!(
        s.delete(&cm, Some("default"), "owner", &opts),
        Ok(DeleteOutcome::Pending(_))
    ));
    drain(&s);
    // Dependents are deleted; the blocking one is held by its own finalizer, so the owner waits.
    assert!(!exists(&s, "free"));
    let c = s
        .get(&cm, Some("default"), "child")
        .expect("held")
        .to_value();
    assert!(meta::is_deleting(&c));
    let o = s
        .get(&cm, Some("default"), "owner")
        .expect("owner waits")
        .to_value();
    assert_eq!(meta::finalizers(&o), [FOREGROUND]);
    // Releasing the dependent lets the owner go.
    s.patch(
        &cm,
        Some("default"),
        "child",
        PatchType::Merge,
        &json!({"metadata": {"finalizers": null}}),
        Subresource::Main,
        &w(),
    )
    .expect("release");
    drain(&s);
    assert!(!exists(&s, "child"));
    assert!(!exists(&s, "owner"));
}

#[test]
fn foreground_without_dependents_finishes_at_once() {
    let (s, cm, _) = setup();
    let opts = DeleteOptions {
        propagation: Some(Propagation::Foreground),
        ..Default::default()
    };
    s.delete(&cm, Some("default"), "owner", &opts)
        .expect("delete");
    drain(&s);
    assert!(!exists(&s, "owner"));
}

#[test]
fn orphan_deletion_strips_owner_refs() {
    let (s, cm, owner) = setup();
    s.create(&cm, Some("default"), owned("child", &owner, true), &w())
        .expect("child");
    let opts = DeleteOptions {
        propagation: Some(Propagation::Orphan),
        ..Default::default()
    };
    s.delete(&cm, Some("default"), "owner", &opts)
        .expect("delete");
    drain(&s);
    assert!(!exists(&s, "owner"));
    let c = s
        .get(&cm, Some("default"), "child")
        .expect("orphaned child stays")
        .to_value();
    assert!(c["metadata"].get("ownerReferences").is_none());
}

#[test]
fn cascades_across_types_and_generations() {
    let s = Store::new();
    let deploy = rt(&s, "apps", "deployments");
    let rs = s
        .registry()
        .lookup("apps", "v1", "replicasets")
        .expect("rs");
    let pods = rt(&s, "", "pods");
    let d = s
        .create(
            &deploy,
            Some("default"),
            json!({"metadata": {"name": "d"}, "spec": {}}),
            &w(),
        )
        .expect("d");
    let r = s
        .create(&rs, Some("default"), json!({"metadata": {"name": "r", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
            "name": "d", "uid": d.0.uid, "controller": true, "blockOwnerDeletion": true}]}, "spec": {}}), &w())
        .expect("rs");
    s.create(&pods, Some("default"), json!({"metadata": {"name": "p", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
        "name": "r", "uid": r.0.uid, "controller": true, "blockOwnerDeletion": true}]}, "spec": {"containers": [{"name": "c"}]}}), &w())
        .expect("pod");
    let opts = DeleteOptions {
        propagation: Some(Propagation::Foreground),
        ..Default::default()
    };
    s.delete(&deploy, Some("default"), "d", &opts)
        .expect("delete");
    drain(&s);
    for (t, n) in [(&deploy, "d"), (&rs, "r"), (&pods, "p")] {
        assert!(s.get(t, Some("default"), n).is_err(), "{n} should be gone");
    }
}

#[test]
fn namespace_deletion_empties_it_and_honours_finalizers() {
    let s = Store::new();
    let ns = rt(&s, "", "namespaces");
    let cm = rt(&s, "", "configmaps");
    s.create(&ns, None, json!({"metadata": {"name": "work"}}), &w())
        .expect("ns");
    s.create(&cm, Some("work"), json!({"metadata": {"name": "a"}}), &w())
        .expect("a");
    s.create(
        &cm,
        Some("work"),
        json!({"metadata": {"name": "held", "finalizers": ["example.com/x"]}}),
        &w(),
    )
    .expect("held");
    s.create(
        &rt(&s, "", "secrets"),
        Some("work"),
        json!({"metadata": {"name": "s"}}),
        &w(),
    )
    .expect("secret");
    s.create(
        &cm,
        Some("default"),
        json!({"metadata": {"name": "elsewhere"}}),
        &w(),
    )
    .expect("other ns");
    s.delete(&ns, None, "work", &DeleteOptions::default())
        .expect("delete");
    drain(&s);
    assert!(s.get(&cm, Some("work"), "a").is_err());
    assert!(s.get(&rt(&s, "", "secrets"), Some("work"), "s").is_err());
    assert!(meta::is_deleting(
        &s.get(&cm, Some("work"), "held").expect("held").to_value()
    ));
    let n = s
        .get(&ns, None, "work")
        .expect("still terminating")
        .to_value();
    assert_eq!(n["status"]["phase"], "Terminating");
    s.patch(
        &cm,
        Some("work"),
        "held",
        PatchType::Merge,
        &json!({"metadata": {"finalizers": null}}),
        Subresource::Main,
        &w(),
    )
    .expect("release");
    drain(&s);
    assert!(
        s.get(&ns, None, "work").is_err(),
        "namespace removed once empty"
    );
    assert!(s.get(&cm, Some("default"), "elsewhere").is_ok());
    // The name can be used again.
    s.create(&ns, None, json!({"metadata": {"name": "work"}}), &w())
        .expect("recreate");
}

#[test]
fn crd_deletion_removes_objects_and_type() {
    let s = Store::new();
    let crds = rt(&s, "apiextensions.k8s.io", "customresourcedefinitions");
    let crd = json!({"metadata": {"name": "widgets.example.com"}, "spec": {"group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "kind": "Widget"},
        "versions": [{"name": "v1", "served": true, "storage": true, "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]}});
    s.create(&crds, None, crd.clone(), &w()).expect("crd");
    let t = rt(&s, "example.com", "widgets");
    s.create(
        &t,
        Some("default"),
        json!({"metadata": {"name": "w1"}}),
        &w(),
    )
    .expect("w1");
    s.create(
        &t,
        Some("kube-system"),
        json!({"metadata": {"name": "w2", "finalizers": ["example.com/x"]}}),
        &w(),
    )
    .expect("w2");
    let DeleteOutcome::Pending(p) = s
        .delete(
            &crds,
            None,
            "widgets.example.com",
            &DeleteOptions::default(),
        )
        .expect("delete")
    else {
        panic!("CRDs wait for their objects")
    };
    let conds = p.to_value()["status"]["conditions"].clone();
    assert!(conds
        .as_array()
        .is_some_and(|a| a.iter().any(|c| c["type"] == "Terminating")));
    drain(&s);
    assert!(s.get(&t, Some("default"), "w1").is_err());
    assert_eq!(
        s.create(
            &t,
            Some("default"),
            json!({"metadata": {"name": "w3"}}),
            &w()
        )
        .err()
        .map(|e| e.code),
        Some(405)
    );
    assert!(
        s.registry()
            .lookup("example.com", "v1", "widgets")
            .is_some(),
        "served until its objects are gone"
    );
    s.patch(
        &t,
        Some("kube-system"),
        "w2",
        PatchType::Merge,
        &json!({"metadata": {"finalizers": null}}),
        Subresource::Main,
        &w(),
    )
    .expect("release");
    drain(&s);
    assert!(s.get(&crds, None, "widgets.example.com").is_err());
    assert!(s
        .registry()
        .lookup("example.com", "v1", "widgets")
        .is_none());
    // Re-creating starts from an empty store.
    s.create(&crds, None, crd, &w()).expect("again");
    assert!(s
        .list(&t, None, &ListOptions::default())
        .expect("list")
        .items
        .is_empty());
}

#[tokio::test]
async fn the_background_loop_collects_garbage() {
    let (s, cm, owner) = setup();
    let token = CancellationToken::new();
    let task = tokio::spawn(run_controllers(s.clone(), token.clone()));
    s.create(&cm, Some("default"), owned("child", &owner, false), &w())
        .expect("child");
    s.delete(&cm, Some("default"), "owner", &DeleteOptions::default())
        .expect("delete");
    let mut gone = false;
    // Bounded wait: up to two seconds of real time.
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        if !exists(&s, "child") {
            gone = true;
            break;
        }
    }
    assert!(gone, "the collector removed the dependent");
    token.cancel();
    assert!(task.await.is_ok());
}

#[test]
fn large_namespaces_are_emptied_in_one_pass() {
    let s = Store::new();
    let ns = rt(&s, "", "namespaces");
    let cm = rt(&s, "", "configmaps");
    s.create(&ns, None, json!({"metadata": {"name": "big"}}), &w())
        .expect("ns");
    for i in 0..2000 {
        s.create(
            &cm,
            Some("big"),
            json!({"metadata": {"name": format!("c{i}")}}),
            &w(),
        )
        .expect("cm");
    }
    s.delete(&ns, None, "big", &DeleteOptions::default())
        .expect("delete");
    let mut handled = 0;
    while let Some(task) = s.next_gc_task() {
        process(&s, &task).expect("task");
        handled += 1;
    }
    assert!(s.get(&ns, None, "big").is_err());
    assert!(handled < 10, "the namespace was queued {handled} times");
}

#[test]
fn cluster_scoped_dependents_of_namespaced_kinds_are_left_alone() {
    let s = Store::new();
    let roles = rt(&s, "rbac.authorization.k8s.io", "clusterroles");
    let nss = rt(&s, "", "namespaces");
    let ns = s.get(&nss, None, "default").expect("default ns");
    let bad = json!({"metadata": {"name": "r1", "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap",
        "name": "x", "uid": "33333333-0000-0000-0000-000000000000"}]}, "rules": []});
    s.create(&roles, None, bad, &w()).expect("role");
    // A cluster-scoped owner that exists keeps its dependent; one that does not collects it.
    let good = json!({"metadata": {"name": "r2", "ownerReferences": [{"apiVersion": "v1", "kind": "Namespace",
        "name": "default", "uid": ns.0.uid}]}});
    s.create(&roles, None, good, &w()).expect("role");
    let gone = json!({"metadata": {"name": "r3", "ownerReferences": [{"apiVersion": "v1", "kind": "Namespace",
        "name": "nope", "uid": "44444444-0000-0000-0000-000000000000"}]}});
    s.create(&roles, None, gone, &w()).expect("role");
    drain(&s);
    assert!(s.get(&roles, None, "r1").is_ok());
    assert!(s.get(&roles, None, "r2").is_ok());
    assert!(s.get(&roles, None, "r3").is_err());
}
