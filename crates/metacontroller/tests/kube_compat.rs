//! kube-rs against the embedded API server.
//!
//! Each test starts its own server over HTTPS on a free loopback port and talks to it through a
//! `kube::Client` built from the generated kubeconfig, exactly as a controller would talk to a
//! real cluster: typed CRUD, discovery, CRDs and custom resources, watchers in both initial-list
//! modes, reflectors, expired resource versions, the finalizer helper, the status subresource,
//! server-side apply, and deletion with garbage collection. Every wait is bounded.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, DeleteParams, ListParams, ObjectMeta, PartialObjectMeta, Patch, PatchParams, PostParams,
    WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{verbs, Discovery, Scope};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::wait::{await_condition, conditions};
use kube::runtime::{finalizer, watcher};
use kube::{Client, CustomResource, CustomResourceExt, Resource, ResourceExt};
use metacontroller_apiserver::store::{Store, WriteOptions, EVENT_LOG_LEN};
use metacontroller_apiserver::ServerConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::time::{sleep, timeout, Instant};
use tokio_util::sync::CancellationToken;

/// The longest any single step may take before the test fails.
const WAIT: Duration = Duration::from_secs(30);

/// A custom resource with a status subresource, used for CRD, status and discovery tests.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "compat.example.com",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd"
)]
pub struct WidgetSpec {
    pub size: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub color: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
pub struct WidgetStatus {
    pub ready: bool,
    #[serde(default)]
    pub observed: i64,
}

/// A running server and a client for it; dropping it stops the server.
struct Cluster {
    client: Client,
    /// The generated kubeconfig and the bearer token in it.
    kubeconfig: String,
    token: String,
    store: Arc<Store>,
    shutdown: CancellationToken,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Cluster {
    async fn start() -> Self {
        let shutdown = CancellationToken::new();
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().expect("address"),
            tls: true,
        };
        let server = metacontroller_apiserver::start(config, shutdown.clone())
            .await
            .expect("starting the API server");
        assert!(
            server.url.starts_with("https://127.0.0.1:"),
            "server url: {}",
            server.url
        );
        assert!(
            server.token.is_some(),
            "a TLS server hands out a bearer token"
        );
        assert!(server.ca_pem.is_some(), "a TLS server hands out its CA");
        let kubeconfig = server.kubeconfig_yaml();
        let bearer = server.token.clone().unwrap_or_default();
        let client = client_for(&kubeconfig).await;
        let store = server.store.clone();
        // The server stops with the token; keep its handle alive until then.
        let token = shutdown.clone();
        tokio::spawn(async move {
            token.cancelled().await;
            let _ = timeout(WAIT, server.stopped()).await;
        });
        Self {
            client,
            kubeconfig,
            token: bearer,
            store,
            shutdown,
        }
    }

    fn configmaps(&self, ns: &str) -> Api<ConfigMap> {
        Api::namespaced(self.client.clone(), ns)
    }

    fn widgets(&self, ns: &str) -> Api<Widget> {
        Api::namespaced(self.client.clone(), ns)
    }

    async fn namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        };
        within(
            "creating a namespace",
            api.create(&PostParams::default(), &ns),
        )
        .await
        .expect("creating a namespace");
    }

    /// Creates the Widget CRD and waits until it is established.
    async fn install_widget_crd(&self) {
        let crds: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        within(
            "creating the CRD",
            crds.create(&PostParams::default(), &Widget::crd()),
        )
        .await
        .expect("creating the CRD");
        let name = Widget::crd_name();
        within(
            "the CRD to be established",
            await_condition(crds, name, conditions::is_crd_established()),
        )
        .await
        .expect("waiting for the CRD");
    }
}

/// A client configured by a kubeconfig document.
async fn client_for(kubeconfig: &str) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(kubeconfig).expect("parsing the kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("loading the kubeconfig");
    Client::try_from(config).expect("building the client")
}

/// Awaits `fut`, failing the test if it takes longer than [`WAIT`].
async fn within<F: Future>(what: &str, fut: F) -> F::Output {
    match timeout(WAIT, fut).await {
        Ok(out) => out,
        Err(_) => panic!("timed out after {WAIT:?}: {what}"),
    }
}

/// Polls `check` until it holds, failing the test after [`WAIT`].
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if check().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {WAIT:?}: {what}"
        );
        sleep(Duration::from_millis(50)).await;
    }
}

/// The HTTP status code of an API error, if it is one.
fn api_code(result: &Result<impl std::fmt::Debug, kube::Error>) -> Option<u16> {
    match result {
        Err(kube::Error::Api(status)) => Some(status.code),
        _ => None,
    }
}

fn expect_api_error<T: std::fmt::Debug>(result: Result<T, kube::Error>, code: u16, reason: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, code, "status: {status:?}");
            assert_eq!(status.reason, reason, "status: {status:?}");
        }
        other => panic!("expected an API error {code} {reason}, got {other:?}"),
    }
}

async fn is_gone<K>(api: &Api<K>, name: &str) -> bool
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api_code(&api.get(name).await) == Some(404)
}

fn configmap(name: &str, data: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..Default::default()
    }
}

fn widget(name: &str, size: i32) -> Widget {
    let mut w = Widget::new(name, WidgetSpec { size, color: None });
    w.metadata.name = Some(name.into());
    w
}

/// Pulls the next item of a watch stream, failing the test on a timeout or an early end.
async fn next_event<S: Stream + Unpin>(stream: &mut S, what: &str) -> S::Item {
    within(what, stream.next())
        .await
        .unwrap_or_else(|| panic!("the stream ended while waiting for {what}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configmap_and_namespace_crud() {
    let c = Cluster::start().await;
    c.namespace("crud").await;
    let cms = c.configmaps("crud");

    let mut cm = configmap("one", &[("a", "1")]);
    cm.metadata.labels = Some([("app".to_string(), "compat".to_string())].into());
    let created = within("create", cms.create(&PostParams::default(), &cm))
        .await
        .expect("create");
    assert_eq!(created.metadata.namespace.as_deref(), Some("crud"));
    assert!(
        created
            .metadata
            .uid
            .as_deref()
            .is_some_and(|u| !u.is_empty()),
        "uid set: {created:?}"
    );
    assert!(
        created.metadata.creation_timestamp.is_some(),
        "creationTimestamp set: {created:?}"
    );
    let rv1 = created.resource_version().expect("resourceVersion set");

    expect_api_error(
        cms.create(&PostParams::default(), &cm).await,
        409,
        "AlreadyExists",
    );
    expect_api_error(cms.get("missing").await, 404, "NotFound");
    expect_api_error(
        c.configmaps("no-such-namespace")
            .create(&PostParams::default(), &cm)
            .await,
        404,
        "NotFound",
    );

    let got = cms.get("one").await.expect("get");
    assert_eq!(got.data, cm.data);
    assert_eq!(got.metadata.uid, created.metadata.uid);

    cms.create(&PostParams::default(), &configmap("two", &[]))
        .await
        .expect("create two");
    let listed = cms
        .list(&ListParams::default().labels("app=compat"))
        .await
        .expect("list by label");
    assert_eq!(
        listed
            .items
            .iter()
            .map(|o| o.name_any())
            .collect::<Vec<_>>(),
        ["one"]
    );
    assert!(
        listed
            .metadata
            .resource_version
            .is_some_and(|rv| !rv.is_empty()),
        "list carries a resourceVersion"
    );
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=two"))
        .await
        .expect("list by field");
    assert_eq!(
        by_name
            .items
            .iter()
            .map(|o| o.name_any())
            .collect::<Vec<_>>(),
        ["two"]
    );
    let everywhere: Api<ConfigMap> = Api::all(c.client.clone());
    let all = everywhere
        .list(&ListParams::default().labels("app=compat"))
        .await
        .expect("list across namespaces");
    assert_eq!(all.items.len(), 1);

    let mut update = got.clone();
    update.data = Some([("a".to_string(), "2".to_string())].into());
    let replaced = cms
        .replace("one", &PostParams::default(), &update)
        .await
        .expect("replace");
    assert_eq!(
        replaced
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("2")
    );
    assert_ne!(
        replaced.resource_version().as_deref(),
        Some(rv1.as_str()),
        "replace bumps resourceVersion"
    );
    // `update` still carries the old resourceVersion: a stale write conflicts.
    expect_api_error(
        cms.replace("one", &PostParams::default(), &update).await,
        409,
        "Conflict",
    );

    let patched = cms
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"b": "3"}})),
        )
        .await
        .expect("merge patch");
    let data = patched.data.expect("data");
    assert_eq!((data["a"].as_str(), data["b"].as_str()), ("2", "3"));
    expect_api_error(
        cms.patch(
            "missing",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {}})),
        )
        .await,
        404,
        "NotFound",
    );

    cms.delete("one", &DeleteParams::default())
        .await
        .expect("delete");
    expect_api_error(cms.get("one").await, 404, "NotFound");
    expect_api_error(
        cms.delete("one", &DeleteParams::default()).await,
        404,
        "NotFound",
    );

    // Deleting a namespace removes it and its contents.
    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    let ns = namespaces.get("crud").await.expect("get namespace");
    assert_eq!(ns.status.and_then(|s| s.phase).as_deref(), Some("Active"));
    namespaces
        .delete("crud", &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually("the namespace to go", || is_gone(&namespaces, "crud")).await;
    let after = everywhere
        .list(&ListParams::default().fields("metadata.namespace=crud"))
        .await
        .expect("list");
    assert!(
        after.items.is_empty(),
        "objects left in a deleted namespace: {:?}",
        after.items
    );
    expect_api_error(
        namespaces.delete("default", &DeleteParams::default()).await,
        403,
        "Forbidden",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_finds_builtin_groups_and_new_crds() {
    let c = Cluster::start().await;
    c.install_widget_crd().await;
    let discovery = within("discovery", Discovery::new(c.client.clone()).run())
        .await
        .expect("discovery");

    let version = c.client.apiserver_version().await.expect("/version");
    assert_eq!(version.major, "1");
    assert!(
        version.git_version.starts_with("v1."),
        "version: {version:?}"
    );

    let core = discovery.get("").expect("the core group");
    let (cm, caps) = core
        .recommended_kind("ConfigMap")
        .expect("ConfigMap in the core group");
    assert_eq!(
        (cm.version.as_str(), cm.plural.as_str()),
        ("v1", "configmaps")
    );
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        caps.supports_operation(verbs::WATCH),
        "configmaps are watchable"
    );
    let (ns, caps) = core.recommended_kind("Namespace").expect("Namespace");
    assert_eq!(
        (ns.plural.as_str(), caps.scope.clone()),
        ("namespaces", Scope::Cluster)
    );

    let apps = discovery.get("apps").expect("the apps group");
    assert_eq!(apps.preferred_version(), Some("v1"));
    let (deploy, caps) = apps.recommended_kind("Deployment").expect("Deployment");
    assert_eq!(deploy.plural, "deployments");
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status"),
        "deployments/status: {caps:?}"
    );

    let widgets = discovery
        .get("compat.example.com")
        .expect("the CRD's group");
    let (wd, caps) = widgets.recommended_kind("Widget").expect("Widget");
    assert_eq!((wd.version.as_str(), wd.plural.as_str()), ("v1", "widgets"));
    assert_eq!(caps.scope, Scope::Namespaced);
    assert!(
        caps.subresources
            .iter()
            .any(|(sub, _)| sub.plural == "status"),
        "widgets/status: {caps:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resource_crud() {
    let c = Cluster::start().await;
    c.install_widget_crd().await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.client.clone());
    let crd = crds.get(Widget::crd_name()).await.expect("get CRD");
    let status = crd.status.expect("CRD status");
    assert_eq!(
        status.accepted_names.map(|n| n.kind),
        Some("Widget".to_string())
    );
    assert_eq!(status.stored_versions, Some(vec!["v1".to_string()]));

    let widgets = c.widgets("default");
    let created = widgets
        .create(&PostParams::default(), &widget("w1", 1))
        .await
        .expect("create");
    assert_eq!(created.spec.size, 1);
    assert_eq!(created.metadata.generation, Some(1));

    let got = widgets.get("w1").await.expect("get");
    assert_eq!(got.spec, created.spec);
    let list = widgets.list(&ListParams::default()).await.expect("list");
    assert_eq!(
        list.items.iter().map(|w| w.name_any()).collect::<Vec<_>>(),
        ["w1"]
    );

    let mut bigger = got.clone();
    bigger.spec.size = 2;
    let replaced = widgets
        .replace("w1", &PostParams::default(), &bigger)
        .await
        .expect("replace");
    assert_eq!(
        (replaced.spec.size, replaced.metadata.generation),
        (2, Some(2))
    );

    let patched = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "red"}})),
        )
        .await
        .expect("merge patch");
    assert_eq!(
        (patched.spec.color.as_deref(), patched.metadata.generation),
        (Some("red"), Some(3))
    );
    let relabelled = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"a": "b"}}})),
        )
        .await
        .expect("label patch");
    assert_eq!(
        relabelled.metadata.generation,
        Some(3),
        "metadata changes keep the generation"
    );

    // Strategic merge patches are for built-in kinds only.
    let strategic = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {"size": 5}})),
        )
        .await;
    assert_eq!(
        api_code(&strategic),
        Some(415),
        "strategic merge on a custom resource: {strategic:?}"
    );

    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .expect("delete");
    expect_api_error(widgets.get("w1").await, 404, "NotFound");
}

/// Starts a watcher with `config` on a namespace holding `a` and `b`, then checks the initial
/// listing and a live create and delete.
async fn watcher_sees_initial_list_then_changes(config: watcher::Config) {
    let c = Cluster::start().await;
    c.namespace("watched").await;
    let cms = c.configmaps("watched");
    for name in ["a", "b"] {
        cms.create(&PostParams::default(), &configmap(name, &[]))
            .await
            .expect("create");
    }
    // Objects elsewhere must not show up.
    c.configmaps("default")
        .create(&PostParams::default(), &configmap("elsewhere", &[]))
        .await
        .expect("create");

    let mut stream = watcher(cms.clone(), config).boxed();
    match next_event(&mut stream, "Init").await {
        Ok(watcher::Event::Init) => {}
        other => panic!("expected Init, got {other:?}"),
    }
    let mut initial = BTreeSet::new();
    loop {
        match next_event(&mut stream, "the initial objects").await {
            Ok(watcher::Event::InitApply(cm)) => {
                initial.insert(cm.name_any());
            }
            Ok(watcher::Event::InitDone) => break,
            other => panic!("expected InitApply or InitDone, got {other:?}"),
        }
    }
    assert_eq!(initial, BTreeSet::from(["a".to_string(), "b".to_string()]));

    cms.create(&PostParams::default(), &configmap("c", &[("k", "v")]))
        .await
        .expect("create c");
    match next_event(&mut stream, "Apply(c)").await {
        Ok(watcher::Event::Apply(cm)) => {
            assert_eq!(cm.name_any(), "c");
            assert_eq!(
                cm.data.and_then(|d| d.get("k").cloned()).as_deref(),
                Some("v")
            );
        }
        other => panic!("expected Apply(c), got {other:?}"),
    }
    cms.patch(
        "c",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "w"}})),
    )
    .await
    .expect("patch c");
    match next_event(&mut stream, "Apply(c) after a patch").await {
        Ok(watcher::Event::Apply(cm)) => {
            assert_eq!(
                cm.data.and_then(|d| d.get("k").cloned()).as_deref(),
                Some("w")
            );
        }
        other => panic!("expected Apply(c), got {other:?}"),
    }
    cms.delete("c", &DeleteParams::default())
        .await
        .expect("delete c");
    match next_event(&mut stream, "Delete(c)").await {
        Ok(watcher::Event::Delete(cm)) => assert_eq!(cm.name_any(), "c"),
        other => panic!("expected Delete(c), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_list_then_watch() {
    watcher_sees_initial_list_then_changes(watcher::Config::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_streaming_lists() {
    watcher_sees_initial_list_then_changes(watcher::Config::default().streaming_lists()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflector_store_becomes_ready_and_follows() {
    let c = Cluster::start().await;
    let cms = c.configmaps("default");
    cms.create(&PostParams::default(), &configmap("before", &[]))
        .await
        .expect("create");

    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector::reflector(writer, watcher(cms.clone(), watcher::Config::default()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = errors.clone();
    let driver = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(item) = stream.next().await {
            if let Err(e) = item {
                seen.lock().expect("lock").push(e.to_string());
            }
        }
    });

    within("the store to be ready", reader.wait_until_ready())
        .await
        .expect("writer alive");
    assert!(
        reader
            .get(&ObjectRef::new("before").within("default"))
            .is_some(),
        "initial object in the store"
    );

    cms.create(&PostParams::default(), &configmap("after", &[]))
        .await
        .expect("create");
    eventually("the new object in the store", || {
        let found = reader
            .get(&ObjectRef::new("after").within("default"))
            .is_some();
        async move { found }
    })
    .await;
    cms.delete("before", &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the deleted object to leave the store", || {
        let found = reader
            .get(&ObjectRef::new("before").within("default"))
            .is_some();
        async move { !found }
    })
    .await;
    driver.abort();
    assert!(
        errors.lock().expect("lock").is_empty(),
        "watcher errors: {:?}",
        errors.lock().expect("lock")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_resource_version_gives_a_410_event() {
    let c = Cluster::start().await;
    let cms = c.configmaps("default");
    // The server's versions start far above 1, so "1" is older than any history it keeps.
    let stream = within(
        "watch from an expired version",
        cms.watch(&WatchParams::default(), "1"),
    )
    .await
    .expect("the watch request itself succeeds (HTTP 200, the error comes as an event)");
    let mut stream = stream.boxed();
    match next_event(&mut stream, "the ERROR event").await {
        Ok(WatchEvent::Error(status)) => {
            assert_eq!(status.code, 410, "status: {status:?}");
            assert_eq!(status.reason, "Expired", "status: {status:?}");
        }
        other => panic!("expected an ERROR event with code 410, got {other:?}"),
    }
    let rest = within("the stream to end after the ERROR event", stream.next()).await;
    assert!(
        rest.is_none(),
        "the stream goes on after an ERROR event: {rest:?}"
    );
}

/// How the objects a paused watcher misses are written.
enum Flood {
    /// Through the API, so the server's history still holds them when the watcher resumes.
    Api(usize),
    /// Straight into the store, more than its per-resource history holds (an API flood of that
    /// size would take too long in a debug build).
    PastHistory,
}

/// Pauses a reflector's watcher (its watch ends after a second), writes a flood of objects it
/// misses, resumes it, and waits until the store holds them all. Returns how many 410 errors
/// the watcher reported on the way.
async fn watcher_catches_up(flood: Flood) -> usize {
    let c = Cluster::start().await;
    c.namespace("flood").await;
    let cms = c.configmaps("flood");
    cms.create(&PostParams::default(), &configmap("seed", &[]))
        .await
        .expect("create");

    let (reader, writer) = reflector::store::<ConfigMap>();
    let stream = reflector::reflector(
        writer,
        watcher(cms.clone(), watcher::Config::default().timeout(1)),
    );
    let (pause_tx, mut pause_rx) = tokio::sync::watch::channel(false);
    let gone_events = Arc::new(Mutex::new(0usize));
    let other_errors = Arc::new(Mutex::new(Vec::new()));
    let (gone, other) = (gone_events.clone(), other_errors.clone());
    let driver = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        loop {
            if *pause_rx.borrow_and_update() {
                if pause_rx.changed().await.is_err() {
                    return;
                }
                continue;
            }
            // Pausing drops the pending `next()`; the watcher keeps its state and its unread
            // watch connection until it is polled again.
            let item = tokio::select! {
                item = stream.next() => item,
                changed = pause_rx.changed() => match changed {
                    Ok(()) => continue,
                    Err(_) => return,
                },
            };
            match item {
                Some(Err(watcher::Error::WatchError(status))) if status.code == 410 => {
                    *gone.lock().expect("lock") += 1
                }
                Some(Err(e)) => other.lock().expect("lock").push(e.to_string()),
                Some(Ok(_)) => {}
                None => return,
            }
        }
    });
    within("the store to be ready", reader.wait_until_ready())
        .await
        .expect("writer alive");
    pause_tx.send(true).expect("driver alive");
    // Let the server end the paused watch (timeoutSeconds=1).
    sleep(Duration::from_secs(2)).await;

    let count = match flood {
        Flood::Api(count) => {
            let names: Vec<String> = (0..count).map(|i| format!("f{i:05}")).collect();
            let results = within(
                "the flood of creates",
                futures::stream::iter(names.iter())
                    .map(|name| {
                        let cms = cms.clone();
                        async move {
                            cms.create(&PostParams::default(), &configmap(name, &[("i", name)]))
                                .await
                        }
                    })
                    .buffer_unordered(16)
                    .collect::<Vec<_>>(),
            )
            .await;
            for r in results {
                r.expect("create during the flood");
            }
            count
        }
        Flood::PastHistory => {
            let count = EVENT_LOG_LEN + 200;
            let store = c.store.clone();
            within(
                "the flood of creates",
                tokio::task::spawn_blocking(move || {
                    let rt = store
                        .registry()
                        .lookup("", "v1", "configmaps")
                        .expect("configmaps are served");
                    for i in 0..count {
                        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                            "metadata": {"name": format!("f{i:05}")}});
                        store
                            .create(&rt, Some("flood"), obj, &WriteOptions::default())
                            .expect("create in the store");
                    }
                }),
            )
            .await
            .expect("flood task");
            count
        }
    };
    pause_tx.send(false).expect("driver alive");
    eventually("the store to hold every object", || {
        let n = reader.len();
        async move { n == count + 1 }
    })
    .await;
    driver.abort();
    let other = other_errors.lock().expect("lock").clone();
    assert!(other.is_empty(), "unexpected watcher errors: {other:?}");
    let gone = *gone_events.lock().expect("lock");
    gone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_resumes_from_history_after_a_pause() {
    let expired = watcher_catches_up(Flood::Api(1500)).await;
    assert_eq!(
        expired, 0,
        "a resume within the history replays it without a 410"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_relists_after_its_version_expires() {
    let expired = watcher_catches_up(Flood::PastHistory).await;
    assert!(
        expired >= 1,
        "a resume from a version older than the history gets a 410 and relists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finalizer_helper_adds_and_removes_its_finalizer() {
    const FINALIZER: &str = "compat.example.com/cleanup";
    let c = Cluster::start().await;
    let cms = c.configmaps("default");
    cms.create(&PostParams::default(), &configmap("guarded", &[]))
        .await
        .expect("create");
    let calls = Arc::new(Mutex::new(Vec::<&'static str>::new()));

    let reconcile = |calls: Arc<Mutex<Vec<&'static str>>>| {
        move |event: finalizer::Event<ConfigMap>| async move {
            let what = match event {
                finalizer::Event::Apply(_) => "apply",
                finalizer::Event::Cleanup(_) => "cleanup",
            };
            calls.lock().expect("lock").push(what);
            Ok::<_, std::convert::Infallible>(Action::await_change())
        }
    };

    // No finalizers yet: the helper sends a JSON patch testing `/metadata/finalizers` for null.
    let obj = Arc::new(cms.get("guarded").await.expect("get"));
    within(
        "adding the finalizer",
        finalizer(&cms, FINALIZER, obj, reconcile(calls.clone())),
    )
    .await
    .expect("adding the finalizer");
    let obj = cms.get("guarded").await.expect("get");
    assert_eq!(obj.finalizers(), [FINALIZER]);

    // A second finalizer appends after testing the current list.
    within(
        "adding a second finalizer",
        finalizer(
            &cms,
            "compat.example.com/other",
            Arc::new(obj),
            reconcile(calls.clone()),
        ),
    )
    .await
    .expect("adding a second finalizer");
    let obj = cms.get("guarded").await.expect("get");
    assert_eq!(obj.finalizers(), [FINALIZER, "compat.example.com/other"]);

    within(
        "apply",
        finalizer(&cms, FINALIZER, Arc::new(obj), reconcile(calls.clone())),
    )
    .await
    .expect("apply");
    assert_eq!(*calls.lock().expect("lock"), ["apply"]);

    // Deleting keeps the object while finalizers remain.
    cms.delete("guarded", &DeleteParams::default())
        .await
        .expect("delete");
    let obj = cms
        .get("guarded")
        .await
        .expect("still there while finalizers remain");
    assert!(
        obj.metadata.deletion_timestamp.is_some(),
        "deletionTimestamp set: {obj:?}"
    );

    within(
        "cleanup",
        finalizer(&cms, FINALIZER, Arc::new(obj), reconcile(calls.clone())),
    )
    .await
    .expect("cleanup");
    assert_eq!(*calls.lock().expect("lock"), ["apply", "cleanup"]);
    let obj = cms
        .get("guarded")
        .await
        .expect("still there with one finalizer left");
    assert_eq!(obj.finalizers(), ["compat.example.com/other"]);

    within(
        "the last cleanup",
        finalizer(
            &cms,
            "compat.example.com/other",
            Arc::new(obj),
            reconcile(calls.clone()),
        ),
    )
    .await
    .expect("the last cleanup");
    eventually("the object to go once its finalizers are gone", || {
        is_gone(&cms, "guarded")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_subresource_writes_keep_the_generation() {
    let c = Cluster::start().await;
    c.install_widget_crd().await;
    let widgets = c.widgets("default");
    let mut w = widget("s1", 1);
    w.status = Some(WidgetStatus {
        ready: true,
        observed: 99,
    });
    let created = widgets
        .create(&PostParams::default(), &w)
        .await
        .expect("create");
    assert_eq!(created.metadata.generation, Some(1));
    assert_eq!(
        created.status, None,
        "status is ignored on create when the status subresource is on"
    );

    let patched = widgets
        .patch_status(
            "s1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true, "observed": 1}})),
        )
        .await
        .expect("patch status");
    assert_eq!(
        patched.status,
        Some(WidgetStatus {
            ready: true,
            observed: 1
        })
    );
    assert_eq!(patched.metadata.generation, Some(1));

    // A status write ignores spec changes.
    let mut next = patched.clone();
    next.spec.size = 40;
    next.status = Some(WidgetStatus {
        ready: false,
        observed: 2,
    });
    let replaced = widgets
        .replace_status("s1", &PostParams::default(), &next)
        .await
        .expect("replace status");
    assert_eq!(
        replaced.status,
        Some(WidgetStatus {
            ready: false,
            observed: 2
        })
    );
    assert_eq!(
        (replaced.spec.size, replaced.metadata.generation),
        (1, Some(1))
    );
    let fetched = widgets.get_status("s1").await.expect("get status");
    assert_eq!(fetched.status, replaced.status);

    // A main-resource write ignores status changes.
    let mut main = replaced.clone();
    main.status = Some(WidgetStatus {
        ready: true,
        observed: 7,
    });
    main.spec.size = 3;
    let updated = widgets
        .replace("s1", &PostParams::default(), &main)
        .await
        .expect("replace");
    assert_eq!(updated.status, replaced.status);
    assert_eq!(
        (updated.spec.size, updated.metadata.generation),
        (3, Some(2))
    );

    // Status writes use the resourceVersion as a precondition too.
    let stale = widgets
        .replace_status("s1", &PostParams::default(), &next)
        .await;
    assert_eq!(api_code(&stale), Some(409), "stale status write: {stale:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_with_field_managers() {
    let c = Cluster::start().await;
    let cms = c.configmaps("default");
    let first = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1", "b": "2"}});
    let created = cms
        .patch(
            "ssa",
            &PatchParams::apply("manager-a"),
            &Patch::Apply(&first),
        )
        .await
        .expect("apply creates");
    assert_eq!(created.data.as_ref().map(|d| d.len()), Some(2));
    let managers: Vec<_> = created
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(
        managers,
        ["manager-a"],
        "managedFields: {:?}",
        created.metadata.managed_fields
    );
    assert_eq!(
        created
            .metadata
            .managed_fields
            .as_ref()
            .and_then(|m| m[0].operation.clone())
            .as_deref(),
        Some("Apply")
    );

    // Fields the manager stops sending are removed.
    let second = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "1"}});
    let pruned = cms
        .patch(
            "ssa",
            &PatchParams::apply("manager-a"),
            &Patch::Apply(&second),
        )
        .await
        .expect("apply again");
    assert_eq!(
        pruned.data,
        Some([("a".to_string(), "1".to_string())].into())
    );

    // Another manager changing an owned field conflicts unless it forces.
    let rival = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "ssa"}, "data": {"a": "other"}});
    let conflict = cms
        .patch(
            "ssa",
            &PatchParams::apply("manager-b"),
            &Patch::Apply(&rival),
        )
        .await;
    match &conflict {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409, "status: {status:?}");
            let causes = status
                .details
                .as_ref()
                .map(|d| d.causes.clone())
                .unwrap_or_default();
            assert!(
                causes.iter().any(|c| c.reason == "FieldManagerConflict"),
                "causes: {causes:?}"
            );
        }
        other => panic!("expected a 409 conflict, got {other:?}"),
    }
    let forced = cms
        .patch(
            "ssa",
            &PatchParams::apply("manager-b").force(),
            &Patch::Apply(&rival),
        )
        .await
        .expect("forced apply");
    assert_eq!(
        forced
            .data
            .as_ref()
            .and_then(|d| d.get("a"))
            .map(String::as_str),
        Some("other")
    );
    let managers: BTreeSet<_> = forced
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.contains("manager-b"),
        "managedFields: {:?}",
        forced.metadata.managed_fields
    );
}

fn owned_by(name: &str, owner: &ConfigMap) -> ConfigMap {
    let mut cm = configmap(name, &[]);
    cm.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.name_any(),
        uid: owner.uid().expect("owner uid"),
        block_owner_deletion: Some(true),
        controller: Some(true),
    }]);
    cm
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_propagation_and_garbage_collection() {
    let c = Cluster::start().await;
    let cms = c.configmaps("default");

    // Foreground: the owner stays, marked, until its blocking dependents are gone.
    let owner = cms
        .create(&PostParams::default(), &configmap("fg-owner", &[]))
        .await
        .expect("create owner");
    cms.create(&PostParams::default(), &owned_by("fg-dep", &owner))
        .await
        .expect("create dependent");
    let deleted = cms
        .delete("fg-owner", &DeleteParams::foreground())
        .await
        .expect("foreground delete");
    let Some(obj) = deleted.left() else {
        panic!("a foreground delete returns the object while dependents remain");
    };
    assert!(
        obj.metadata.deletion_timestamp.is_some(),
        "deletionTimestamp set: {obj:?}"
    );
    assert!(
        obj.finalizers().iter().any(|f| f == "foregroundDeletion"),
        "finalizers: {:?}",
        obj.finalizers()
    );
    eventually("the dependent to go", || is_gone(&cms, "fg-dep")).await;
    eventually("the owner to go after its dependent", || {
        is_gone(&cms, "fg-owner")
    })
    .await;

    // Background: the owner goes at once, the collector removes the dependent afterwards.
    let owner = cms
        .create(&PostParams::default(), &configmap("bg-owner", &[]))
        .await
        .expect("create owner");
    cms.create(&PostParams::default(), &owned_by("bg-dep", &owner))
        .await
        .expect("create dependent");
    cms.delete("bg-owner", &DeleteParams::background())
        .await
        .expect("background delete");
    expect_api_error(cms.get("bg-owner").await, 404, "NotFound");
    eventually("the dependent of a deleted owner to go", || {
        is_gone(&cms, "bg-dep")
    })
    .await;

    // A dependent whose owner never existed is collected as well.
    let ghost = ConfigMap {
        metadata: ObjectMeta {
            name: Some("ghost".into()),
            uid: Some("00000000-0000-4000-8000-000000000000".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    cms.create(&PostParams::default(), &owned_by("orphaned", &ghost))
        .await
        .expect("create");
    eventually("a dependent with a dangling owner to go", || {
        is_gone(&cms, "orphaned")
    })
    .await;

    // An unrelated object survives.
    cms.create(&PostParams::default(), &configmap("bystander", &[]))
        .await
        .expect("create");
    sleep(Duration::from_millis(300)).await;
    cms.get("bystander")
        .await
        .expect("an object without owners stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_pagination_and_delete_collection() {
    let c = Cluster::start().await;
    let cms = c.configmaps("default");
    for i in 0..7 {
        let mut cm = configmap(&format!("page-{i}"), &[]);
        cm.metadata.labels = Some([("paged".to_string(), "yes".to_string())].into());
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }

    let mut seen = Vec::new();
    let mut lp = ListParams::default().labels("paged=yes").limit(3);
    for _ in 0..10 {
        let page = cms.list(&lp).await.expect("list a page");
        let token = page.metadata.continue_.clone().filter(|t| !t.is_empty());
        if token.is_some() {
            assert!(
                page.items.len() <= 3,
                "a page larger than its limit: {}",
                page.items.len()
            );
        }
        seen.extend(page.items.iter().map(|o| o.name_any()));
        match token {
            Some(t) => lp = lp.continue_token(&t),
            None => break,
        }
    }
    seen.sort();
    let expected: Vec<String> = (0..7).map(|i| format!("page-{i}")).collect();
    assert_eq!(seen, expected, "every object exactly once across the pages");

    cms.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels("paged=yes"),
    )
    .await
    .expect("delete collection");
    eventually("the collection to be deleted", || async {
        cms.list(&ListParams::default().labels("paged=yes"))
            .await
            .is_ok_and(|l| l.items.is_empty())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_and_generate_name() {
    let c = Cluster::start().await;
    let cms = c.configmaps("default");
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let created = cms
        .create(&dry, &configmap("dry", &[("a", "1")]))
        .await
        .expect("dry-run create");
    assert_eq!(created.name_any(), "dry");
    expect_api_error(cms.get("dry").await, 404, "NotFound");

    let mut cm = configmap("", &[]);
    cm.metadata.name = None;
    cm.metadata.generate_name = Some("gen-".into());
    let generated = cms
        .create(&PostParams::default(), &cm)
        .await
        .expect("create with generateName");
    let name = generated.name_any();
    assert!(
        name.starts_with("gen-") && name.len() == 9,
        "generated name: {name}"
    );
    cms.get(&name).await.expect("the generated object");

    cm.metadata.generate_name = None;
    let nameless = cms.create(&PostParams::default(), &cm).await;
    assert_eq!(api_code(&nameless), Some(422), "no name: {nameless:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_api_and_metadata_watcher() {
    let c = Cluster::start().await;
    c.namespace("meta").await;
    let cms = c.configmaps("meta");
    let mut cm = configmap("m1", &[("big", "value")]);
    cm.metadata.labels = Some([("k".to_string(), "v".to_string())].into());
    cms.create(&PostParams::default(), &cm)
        .await
        .expect("create");

    let meta = cms.get_metadata("m1").await.expect("get metadata");
    assert_eq!(meta.metadata.name.as_deref(), Some("m1"));
    assert_eq!(meta.labels().get("k").map(String::as_str), Some("v"));
    let list = cms
        .list_metadata(&ListParams::default())
        .await
        .expect("list metadata");
    assert_eq!(
        list.items.iter().map(|m| m.name_any()).collect::<Vec<_>>(),
        ["m1"]
    );

    let mut stream = watcher(
        Api::<PartialObjectMeta<ConfigMap>>::namespaced(c.client.clone(), "meta"),
        watcher::Config::default(),
    )
    .boxed();
    let mut initial = Vec::new();
    loop {
        match next_event(&mut stream, "the initial metadata").await {
            Ok(watcher::Event::Init) => {}
            Ok(watcher::Event::InitApply(m)) => initial.push(m.name_any()),
            Ok(watcher::Event::InitDone) => break,
            other => panic!("expected the initial listing, got {other:?}"),
        }
    }
    assert_eq!(initial, ["m1"]);
    cms.create(&PostParams::default(), &configmap("m2", &[]))
        .await
        .expect("create");
    match next_event(&mut stream, "Apply(m2)").await {
        Ok(watcher::Event::Apply(m)) => assert_eq!(m.name_any(), "m2"),
        other => panic!("expected Apply(m2), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_selectors_and_timeouts() {
    let c = Cluster::start().await;
    c.namespace("sel").await;
    let cms = c.configmaps("sel");
    for (name, tier) in [("x", "a"), ("y", "b")] {
        let mut cm = configmap(name, &[]);
        cm.metadata.labels = Some([("tier".to_string(), tier.to_string())].into());
        cms.create(&PostParams::default(), &cm)
            .await
            .expect("create");
    }
    let relabel = |name: &'static str, tier: &'static str| {
        let cms = cms.clone();
        async move {
            cms.patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"labels": {"tier": tier}}})),
            )
            .await
            .expect("relabel")
        }
    };

    let mut by_label = watcher(cms.clone(), watcher::Config::default().labels("tier=a")).boxed();
    let mut by_name = watcher(
        cms.clone(),
        watcher::Config::default().fields("metadata.name=y"),
    )
    .boxed();
    for (stream, expected) in [(&mut by_label, "x"), (&mut by_name, "y")] {
        let mut initial = Vec::new();
        loop {
            match next_event(stream, "the initial listing").await {
                Ok(watcher::Event::Init) => {}
                Ok(watcher::Event::InitApply(cm)) => initial.push(cm.name_any()),
                Ok(watcher::Event::InitDone) => break,
                other => panic!("expected the initial listing, got {other:?}"),
            }
        }
        assert_eq!(initial, [expected]);
    }

    // y starts matching the label selector: ADDED; x stops matching: DELETED.
    relabel("y", "a").await;
    match next_event(&mut by_label, "y to start matching").await {
        Ok(watcher::Event::Apply(cm)) => assert_eq!(cm.name_any(), "y"),
        other => panic!("expected Apply(y), got {other:?}"),
    }
    match next_event(&mut by_name, "y modified").await {
        Ok(watcher::Event::Apply(cm)) => assert_eq!(cm.name_any(), "y"),
        other => panic!("expected Apply(y) on the name watch, got {other:?}"),
    }
    relabel("x", "b").await;
    match next_event(&mut by_label, "x to stop matching").await {
        Ok(watcher::Event::Delete(cm)) => assert_eq!(cm.name_any(), "x"),
        other => panic!("expected Delete(x), got {other:?}"),
    }

    // timeoutSeconds ends a raw watch cleanly.
    let rv = cms
        .list(&ListParams::default())
        .await
        .expect("list")
        .metadata
        .resource_version
        .expect("list resourceVersion");
    let stream = cms
        .watch(&WatchParams::default().timeout(1), &rv)
        .await
        .expect("watch");
    let events: Vec<_> = within("the watch to time out", stream.collect()).await;
    assert!(
        events
            .iter()
            .all(|e| matches!(e, Ok(WatchEvent::Bookmark(_)))),
        "a quiet watch yields nothing but bookmarks: {events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_recorder_publishes_and_updates_a_series() {
    use k8s_openapi::api::core::v1::Event as CoreEvent;
    use k8s_openapi::api::events::v1::Event as NewEvent;
    use kube::runtime::events::{Event, EventType, Recorder, Reporter};

    let c = Cluster::start().await;
    let cms = c.configmaps("default");
    let cm = cms
        .create(&PostParams::default(), &configmap("noted", &[]))
        .await
        .expect("create");
    let reporter = Reporter {
        controller: "compat-controller".into(),
        instance: None,
    };
    let recorder = Recorder::new(c.client.clone(), reporter);
    let event = Event {
        type_: EventType::Normal,
        reason: "Tested".into(),
        note: Some("it works".into()),
        action: "Test".into(),
        secondary: None,
    };
    let reference = cm.object_ref(&());
    recorder
        .publish(&event, &reference)
        .await
        .expect("publish an event");
    // The same event again becomes a merge patch of `series`.
    recorder
        .publish(&event, &reference)
        .await
        .expect("publish it again");

    let events: Api<NewEvent> = Api::namespaced(c.client.clone(), "default");
    let list = events
        .list(&ListParams::default())
        .await
        .expect("list events.k8s.io/v1 events");
    let ours: Vec<_> = list
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("Tested"))
        .collect();
    assert_eq!(ours.len(), 1, "events: {:?}", list.items);
    let ev = ours[0];
    assert_eq!(
        ev.regarding.as_ref().and_then(|r| r.name.as_deref()),
        Some("noted")
    );
    assert_eq!(ev.series.as_ref().map(|s| s.count), Some(2));

    // kubectl describe reads the same events through core/v1 by involvedObject.
    let core: Api<CoreEvent> = Api::namespaced(c.client.clone(), "default");
    let described = core
        .list(&ListParams::default().fields("involvedObject.name=noted"))
        .await
        .expect("list core/v1 events by involvedObject");
    assert_eq!(
        described
            .items
            .iter()
            .map(|e| (e.reason.as_deref(), e.message.as_deref()))
            .collect::<Vec<_>>(),
        [(Some("Tested"), Some("it works"))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_side_apply_on_a_custom_resource_and_its_status() {
    let c = Cluster::start().await;
    c.install_widget_crd().await;
    let widgets = c.widgets("default");
    let applied = widgets
        .patch(
            "a1",
            &PatchParams::apply("widget-ctl"),
            &Patch::Apply(&widget("a1", 4)),
        )
        .await
        .expect("apply a custom resource");
    assert_eq!(
        (applied.spec.size, applied.metadata.generation),
        (4, Some(1))
    );
    let status = json!({"apiVersion": "compat.example.com/v1", "kind": "Widget",
        "status": {"ready": true, "observed": 4}});
    let with_status = widgets
        .patch_status(
            "a1",
            &PatchParams::apply("widget-ctl").force(),
            &Patch::Apply(&status),
        )
        .await
        .expect("apply the status");
    assert_eq!(
        with_status.status,
        Some(WidgetStatus {
            ready: true,
            observed: 4
        })
    );
    assert_eq!(with_status.metadata.generation, Some(1));
    assert_eq!(with_status.spec.size, 4);
}

/// What the test controller's reconciler needs.
struct Ctx {
    client: Client,
}

#[derive(Debug)]
enum ReconcileError {
    Kube(kube::Error),
}

impl std::error::Error for ReconcileError {}

impl std::fmt::Display for ReconcileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Kube(e) => write!(f, "{e}"),
        }
    }
}

/// Keeps a ConfigMap `<name>-child` holding the widget's size, and reports it in the status.
async fn reconcile_widget(w: Arc<Widget>, ctx: Arc<Ctx>) -> Result<Action, ReconcileError> {
    let ns = w.namespace().unwrap_or_else(|| "default".into());
    let cms: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &ns);
    let mut child = configmap(
        &format!("{}-child", w.name_any()),
        &[("size", &w.spec.size.to_string())],
    );
    child.metadata.owner_references = w.controller_owner_ref(&()).map(|r| vec![r]);
    let child = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": child.metadata, "data": child.data});
    cms.patch(
        &format!("{}-child", w.name_any()),
        &PatchParams::apply("widget-controller").force(),
        &Patch::Apply(&child),
    )
    .await
    .map_err(ReconcileError::Kube)?;
    let widgets: Api<Widget> = Api::namespaced(ctx.client.clone(), &ns);
    widgets
        .patch_status(
            &w.name_any(),
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true, "observed": w.spec.size}})),
        )
        .await
        .map_err(ReconcileError::Kube)?;
    Ok(Action::await_change())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_reconciles_and_owns_children() {
    use kube::runtime::Controller;

    let c = Cluster::start().await;
    c.install_widget_crd().await;
    let widgets = c.widgets("default");
    let cms = c.configmaps("default");
    widgets
        .create(&PostParams::default(), &widget("w1", 1))
        .await
        .expect("create");

    let controller = Controller::new(widgets.clone(), watcher::Config::default())
        .owns(cms.clone(), watcher::Config::default())
        .run(
            reconcile_widget,
            |_, _, _| Action::requeue(Duration::from_millis(200)),
            Arc::new(Ctx {
                client: c.client.clone(),
            }),
        )
        .for_each(|_| async {});
    let driver = tokio::spawn(controller);

    let child_size = |cms: Api<ConfigMap>| async move {
        cms.get_opt("w1-child")
            .await
            .ok()
            .flatten()
            .and_then(|cm| cm.data)
            .and_then(|d| d.get("size").cloned())
    };
    eventually("the child to be created", || async {
        child_size(cms.clone()).await.as_deref() == Some("1")
    })
    .await;
    eventually("the status to be reported", || async {
        widgets
            .get_status("w1")
            .await
            .is_ok_and(|w| w.status.is_some_and(|s| s.observed == 1))
    })
    .await;

    widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .expect("resize");
    eventually("the child to follow the spec", || async {
        child_size(cms.clone()).await.as_deref() == Some("2")
    })
    .await;

    // Deleting the owned child triggers a reconcile that recreates it.
    cms.delete("w1-child", &DeleteParams::default())
        .await
        .expect("delete the child");
    eventually("the child to be recreated", || async {
        child_size(cms.clone()).await.as_deref() == Some("2")
    })
    .await;

    driver.abort();
    widgets
        .delete("w1", &DeleteParams::default())
        .await
        .expect("delete the widget");
    eventually("the collector to remove the child", || {
        is_gone(&cms, "w1-child")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_need_the_bearer_token() {
    let c = Cluster::start().await;
    assert!(
        c.kubeconfig.contains(&c.token),
        "the kubeconfig carries the token"
    );
    let wrong = client_for(&c.kubeconfig.replace(&c.token, "not-the-token")).await;
    let cms: Api<ConfigMap> = Api::namespaced(wrong, "default");
    expect_api_error(cms.list(&ListParams::default()).await, 401, "Unauthorized");
    c.configmaps("default")
        .list(&ListParams::default())
        .await
        .expect("the right token is accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_objects_through_discovery() {
    use kube::api::{DynamicObject, GroupVersionKind};

    let c = Cluster::start().await;
    c.install_widget_crd().await;
    let discovery = within("discovery", Discovery::new(c.client.clone()).run())
        .await
        .expect("discovery");
    let gvk = GroupVersionKind::gvk("compat.example.com", "v1", "Widget");
    let (ar, caps) = discovery.resolve_gvk(&gvk).expect("Widget resolves");
    assert_eq!(caps.scope, Scope::Namespaced);
    let api: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), "default", &ar);

    let obj: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "compat.example.com/v1", "kind": "Widget",
        "metadata": {"name": "dyn"}, "spec": {"size": 9}
    }))
    .expect("a dynamic object");
    let created = api
        .create(&PostParams::default(), &obj)
        .await
        .expect("create");
    assert_eq!(created.data["spec"]["size"], 9);
    assert_eq!(
        created.types.as_ref().map(|t| t.kind.as_str()),
        Some("Widget")
    );
    let patched = api
        .patch(
            "dyn",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "blue"}})),
        )
        .await
        .expect("patch");
    assert_eq!(patched.data["spec"]["color"], "blue");
    let typed = c.widgets("default").get("dyn").await.expect("typed get");
    assert_eq!(typed.spec.color.as_deref(), Some("blue"));

    let (cm_ar, _) = discovery
        .resolve_gvk(&GroupVersionKind::gvk("", "v1", "ConfigMap"))
        .expect("ConfigMap resolves");
    c.configmaps("default")
        .create(&PostParams::default(), &configmap("dyn-cm", &[("k", "v")]))
        .await
        .expect("create");
    let cms: Api<DynamicObject> = Api::namespaced_with(c.client.clone(), "default", &cm_ar);
    let listed = cms
        .list(&ListParams::default())
        .await
        .expect("list ConfigMaps dynamically");
    let found = listed
        .items
        .iter()
        .find(|o| o.name_any() == "dyn-cm")
        .expect("the ConfigMap in the dynamic list");
    assert_eq!(found.data["data"]["k"], "v");
}

/// A cluster-scoped custom resource without a status subresource.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(group = "compat.example.com", version = "v1", kind = "Gadget")]
pub struct GadgetSpec {
    pub mode: String,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_scoped_custom_resource_and_crd_deletion() {
    let c = Cluster::start().await;
    let crds: Api<CustomResourceDefinition> = Api::all(c.client.clone());
    within(
        "creating the CRD",
        crds.create(&PostParams::default(), &Gadget::crd()),
    )
    .await
    .expect("creating the CRD");
    within(
        "the CRD to be established",
        await_condition(
            crds.clone(),
            Gadget::crd_name(),
            conditions::is_crd_established(),
        ),
    )
    .await
    .expect("waiting for the CRD");

    let gadgets: Api<Gadget> = Api::all(c.client.clone());
    let g = Gadget::new("g1", GadgetSpec { mode: "on".into() });
    let created = gadgets
        .create(&PostParams::default(), &g)
        .await
        .expect("create");
    assert_eq!(created.metadata.namespace, None);
    assert_eq!(created.metadata.generation, Some(1));
    let patched = gadgets
        .patch(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": "off"}})),
        )
        .await
        .expect("patch");
    assert_eq!(
        (patched.spec.mode.as_str(), patched.metadata.generation),
        ("off", Some(2))
    );
    // Without a status subresource, status is part of the main resource and /status is absent.
    let status = gadgets
        .patch_status(
            "g1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {}})),
        )
        .await;
    assert_eq!(api_code(&status), Some(404), "status: {status:?}");

    // Deleting the CRD deletes its objects and takes the type out of discovery.
    crds.delete(Gadget::crd_name(), &DeleteParams::default())
        .await
        .expect("delete the CRD");
    eventually("the CRD to go", || is_gone(&crds, Gadget::crd_name())).await;
    let listed = gadgets.list(&ListParams::default()).await;
    assert_eq!(
        api_code(&listed),
        Some(404),
        "list after the CRD went: {listed:?}"
    );
    let discovery = within("discovery", Discovery::new(c.client.clone()).run())
        .await
        .expect("discovery");
    let still_there = discovery
        .get("compat.example.com")
        .and_then(|g| g.recommended_kind("Gadget"));
    assert!(still_there.is_none(), "Gadget still in discovery");

    // A new CRD of the same name starts empty.
    within(
        "creating the CRD again",
        crds.create(&PostParams::default(), &Gadget::crd()),
    )
    .await
    .expect("creating the CRD again");
    within(
        "the CRD to be established again",
        await_condition(crds, Gadget::crd_name(), conditions::is_crd_established()),
    )
    .await
    .expect("waiting for the CRD");
    let listed = gadgets.list(&ListParams::default()).await.expect("list");
    assert!(
        listed.items.is_empty(),
        "objects survived their CRD: {:?}",
        listed.items
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strategic_merge_patch_on_a_deployment() {
    use k8s_openapi::api::apps::v1::Deployment;

    let c = Cluster::start().await;
    let deployments: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "main", "image": "main:1", "env": [{"name": "A", "value": "1"}]},
                    {"name": "side", "image": "side:1"}
                ]}
            }
        }
    }))
    .expect("a Deployment");
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create");

    // Containers merge by name: one changes, the other stays; env merges by name as well.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "side", "image": "side:2"},
        {"name": "main", "env": [{"name": "B", "value": "2"}]}
    ]}}}});
    let patched = deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("strategic merge patch");
    let containers = patched
        .spec
        .template
        .spec
        .map(|s| s.containers)
        .expect("containers");
    let by_name: BTreeMap<_, _> = containers.iter().map(|c| (c.name.as_str(), c)).collect();
    assert_eq!(by_name.len(), 2, "containers: {containers:?}");
    assert_eq!(by_name["side"].image.as_deref(), Some("side:2"));
    assert_eq!(by_name["main"].image.as_deref(), Some("main:1"));
    let env: Vec<_> = by_name["main"]
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(env.len(), 2, "env merged by name: {env:?}");

    // `$patch: delete` removes one keyed element.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "side", "$patch": "delete"}
    ]}}}});
    let patched = deployments
        .patch("web", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .expect("strategic delete");
    let names: Vec<_> = patched
        .spec
        .template
        .spec
        .map(|s| s.containers)
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(names, ["main"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_for_leader_election() {
    use k8s_openapi::api::coordination::v1::Lease;

    let c = Cluster::start().await;
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-system");
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "compat-leader"},
        "spec": {
            "holderIdentity": "a",
            "leaseDurationSeconds": 15,
            "acquireTime": "2026-01-01T00:00:00.000000Z",
            "renewTime": "2026-01-01T00:00:00.000000Z"
        }
    }))
    .expect("a Lease");
    let created = leases
        .create(&PostParams::default(), &lease)
        .await
        .expect("create a Lease");
    let renewed = leases
        .patch(
            "compat-leader",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"renewTime": "2026-01-01T00:00:05.123456Z"}})),
        )
        .await
        .expect("renew");
    let renew_time = renewed
        .spec
        .as_ref()
        .and_then(|s| s.renew_time.as_ref())
        .expect("renewTime");
    assert_eq!(
        serde_json::to_value(renew_time).expect("serialize"),
        json!("2026-01-01T00:00:05.123456Z"),
        "MicroTime keeps its microseconds"
    );

    // A contender holding the stale version loses the race with a 409.
    let mut takeover = created.clone();
    if let Some(spec) = takeover.spec.as_mut() {
        spec.holder_identity = Some("b".into());
    }
    let lost = leases
        .replace("compat-leader", &PostParams::default(), &takeover)
        .await;
    assert_eq!(api_code(&lost), Some(409), "stale takeover: {lost:?}");
    let mut takeover = renewed.clone();
    if let Some(spec) = takeover.spec.as_mut() {
        spec.holder_identity = Some("b".into());
    }
    let won = leases
        .replace("compat-leader", &PostParams::default(), &takeover)
        .await
        .expect("takeover with the current version");
    assert_eq!(
        won.spec.and_then(|s| s.holder_identity).as_deref(),
        Some("b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entry_api_and_await_deletion() {
    let c = Cluster::start().await;
    let cms = c.configmaps("default");

    // Entry: insert when missing (a create), then modify and commit (a replace).
    let mut entry = cms
        .entry("entry")
        .await
        .expect("entry")
        .or_insert(|| configmap("entry", &[("v", "1")]));
    entry
        .commit(&PostParams::default())
        .await
        .expect("commit the insert");
    let kube::api::entry::Entry::Occupied(mut entry) = cms.entry("entry").await.expect("entry")
    else {
        panic!("the inserted object is not there");
    };
    entry
        .get_mut()
        .data
        .get_or_insert_with(Default::default)
        .insert("v".into(), "2".into());
    entry
        .commit(&PostParams::default())
        .await
        .expect("commit the change");
    let got = cms.get("entry").await.expect("get");
    assert_eq!(
        got.data.and_then(|d| d.get("v").cloned()).as_deref(),
        Some("2")
    );

    // await_condition watches one object by a metadata.name field selector.
    let uid = got.metadata.uid.clone().expect("uid");
    let waiter = tokio::spawn({
        let cms = cms.clone();
        async move { await_condition(cms, "entry", conditions::is_deleted(&uid)).await }
    });
    sleep(Duration::from_millis(200)).await;
    cms.delete("entry", &DeleteParams::default())
        .await
        .expect("delete");
    within("await_condition(is_deleted)", waiter)
        .await
        .expect("waiter task")
        .expect("await_condition");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphan_deletion_keeps_dependents() {
    let c = Cluster::start().await;
    let cms = c.configmaps("default");
    let owner = cms
        .create(&PostParams::default(), &configmap("orphan-owner", &[]))
        .await
        .expect("create owner");
    cms.create(&PostParams::default(), &owned_by("orphan-dep", &owner))
        .await
        .expect("create dependent");
    cms.delete("orphan-owner", &DeleteParams::orphan())
        .await
        .expect("orphan delete");
    eventually("the owner to go", || is_gone(&cms, "orphan-owner")).await;
    eventually("the dependent to lose its owner reference", || async {
        cms.get("orphan-dep")
            .await
            .is_ok_and(|d| d.owner_references().is_empty())
    })
    .await;
    sleep(Duration::from_millis(300)).await;
    cms.get("orphan-dep")
        .await
        .expect("an orphaned dependent stays");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_deletion_waits_for_finalizers() {
    let c = Cluster::start().await;
    c.namespace("closing").await;
    let cms = c.configmaps("closing");
    let mut held = configmap("held", &[]);
    held.metadata.finalizers = Some(vec!["compat.example.com/hold".into()]);
    cms.create(&PostParams::default(), &held)
        .await
        .expect("create");
    cms.create(&PostParams::default(), &configmap("free", &[]))
        .await
        .expect("create");

    let namespaces: Api<Namespace> = Api::all(c.client.clone());
    namespaces
        .delete("closing", &DeleteParams::default())
        .await
        .expect("delete the namespace");
    eventually("the free object to go", || is_gone(&cms, "free")).await;
    let ns = namespaces
        .get("closing")
        .await
        .expect("the namespace stays while an object is held");
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    let refused = cms
        .create(&PostParams::default(), &configmap("late", &[]))
        .await;
    assert_eq!(
        api_code(&refused),
        Some(403),
        "create in a terminating namespace: {refused:?}"
    );
    let held = cms.get("held").await.expect("the held object stays");
    assert!(held.metadata.deletion_timestamp.is_some());

    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await
    .expect("release the finalizer");
    eventually("the namespace to go", || is_gone(&namespaces, "closing")).await;
}
