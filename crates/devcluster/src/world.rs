//! A local cache of the objects the node and the controllers read, kept by one list+watch per
//! resource type, as informers do. Writers put what the API server answered back into the
//! cache at once, so the next pass never acts twice on the same gap.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{ApiResource, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::{Api, Client};
use serde_json::Value;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The resource types watched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Pod,
    Node,
    Service,
    ConfigMap,
    Secret,
    Pvc,
    ReplicaSet,
    Deployment,
    StatefulSet,
    DaemonSet,
    Job,
}

impl Kind {
    pub const ALL: [Kind; 11] = [
        Kind::Pod,
        Kind::Node,
        Kind::Service,
        Kind::ConfigMap,
        Kind::Secret,
        Kind::Pvc,
        Kind::ReplicaSet,
        Kind::Deployment,
        Kind::StatefulSet,
        Kind::DaemonSet,
        Kind::Job,
    ];

    /// (group, version, kind, plural, namespaced)
    fn parts(self) -> (&'static str, &'static str, &'static str, &'static str, bool) {
        match self {
            Kind::Pod => ("", "v1", "Pod", "pods", true),
            Kind::Node => ("", "v1", "Node", "nodes", false),
            Kind::Service => ("", "v1", "Service", "services", true),
            Kind::ConfigMap => ("", "v1", "ConfigMap", "configmaps", true),
            Kind::Secret => ("", "v1", "Secret", "secrets", true),
            Kind::Pvc => (
                "",
                "v1",
                "PersistentVolumeClaim",
                "persistentvolumeclaims",
                true,
            ),
            Kind::ReplicaSet => ("apps", "v1", "ReplicaSet", "replicasets", true),
            Kind::Deployment => ("apps", "v1", "Deployment", "deployments", true),
            Kind::StatefulSet => ("apps", "v1", "StatefulSet", "statefulsets", true),
            Kind::DaemonSet => ("apps", "v1", "DaemonSet", "daemonsets", true),
            Kind::Job => ("batch", "v1", "Job", "jobs", true),
        }
    }

    pub fn api_version(self) -> String {
        let (g, v, ..) = self.parts();
        if g.is_empty() {
            v.to_string()
        } else {
            format!("{g}/{v}")
        }
    }

    pub fn kind(self) -> &'static str {
        self.parts().2
    }

    pub fn resource(self) -> ApiResource {
        let (group, version, kind, plural, _) = self.parts();
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version: self.api_version(),
            kind: kind.into(),
            plural: plural.into(),
        }
    }

    /// The API for objects of this kind in `ns` (all namespaces for `None`).
    pub fn api(self, client: &Client, ns: Option<&str>) -> Api<DynamicObject> {
        let ar = self.resource();
        match ns {
            Some(ns) if self.parts().4 => Api::namespaced_with(client.clone(), ns, &ar),
            _ => Api::all_with(client.clone(), &ar),
        }
    }
}

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub type Key = (String, String);

pub fn key_of(obj: &Value) -> Key {
    (
        str_at(obj, "/metadata/namespace").to_string(),
        str_at(obj, "/metadata/name").to_string(),
    )
}

pub fn str_at<'v>(obj: &'v Value, pointer: &str) -> &'v str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

#[derive(Default)]
struct Inner {
    objects: HashMap<Kind, BTreeMap<Key, Value>>,
    synced: usize,
}

/// The cache, shared by the watch tasks and the reconcile loop.
#[derive(Default)]
pub struct World {
    inner: Mutex<Inner>,
    /// Signalled on every change.
    pub changed: Notify,
}

fn rv(obj: &Value) -> Option<u64> {
    str_at(obj, "/metadata/resourceVersion").parse().ok()
}

impl World {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// True once every type delivered its first list.
    pub fn synced(&self) -> bool {
        self.inner.lock().unwrap().synced >= Kind::ALL.len()
    }

    /// Stores `obj` unless the cache already holds a newer version of it.
    pub fn put(&self, kind: Kind, obj: Value) {
        let mut inner = self.inner.lock().unwrap();
        let map = inner.objects.entry(kind).or_default();
        let key = key_of(&obj);
        if let (Some(old), Some(new)) = (map.get(&key).and_then(rv), rv(&obj)) {
            if old > new {
                return;
            }
        }
        map.insert(key, obj);
        drop(inner);
        self.changed.notify_one();
    }

    pub fn remove(&self, kind: Kind, key: &Key) {
        let mut inner = self.inner.lock().unwrap();
        if let Some(map) = inner.objects.get_mut(&kind) {
            map.remove(key);
        }
        drop(inner);
        self.changed.notify_one();
    }

    fn replace_all(&self, kind: Kind, objs: Vec<Value>, first: bool) {
        let mut inner = self.inner.lock().unwrap();
        let map: BTreeMap<Key, Value> = objs.into_iter().map(|o| (key_of(&o), o)).collect();
        inner.objects.insert(kind, map);
        if first {
            inner.synced += 1;
        }
        drop(inner);
        self.changed.notify_one();
    }

    pub fn get(&self, kind: Kind, key: &Key) -> Option<Value> {
        self.inner
            .lock()
            .unwrap()
            .objects
            .get(&kind)
            .and_then(|m| m.get(key))
            .cloned()
    }

    /// All objects of a kind (in a namespace, if given), sorted by key.
    pub fn list(&self, kind: Kind, ns: Option<&str>) -> Vec<Value> {
        let inner = self.inner.lock().unwrap();
        let Some(map) = inner.objects.get(&kind) else {
            return Vec::new();
        };
        map.iter()
            .filter(|((n, _), _)| ns.is_none_or(|ns| ns == n))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Objects of `kind` in `ns` whose controller owner has `uid`.
    pub fn owned_by(&self, kind: Kind, ns: &str, uid: &str) -> Vec<Value> {
        self.list(kind, Some(ns))
            .into_iter()
            .filter(|o| controller_uid(o) == Some(uid))
            .collect()
    }
}

/// The UID of the object's controller owner.
pub fn controller_uid(obj: &Value) -> Option<&str> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .and_then(|r| r.get("uid"))
        .and_then(Value::as_str)
}

/// Runs one list+watch loop per kind until shutdown.
pub fn spawn_watches(client: &Client, world: &Arc<World>, shutdown: &CancellationToken) {
    for kind in Kind::ALL {
        let api = kind.api(client, None);
        let world = Arc::clone(world);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = watch_kind(kind, api, world) => {}
            }
        });
    }
}

async fn watch_kind(kind: Kind, api: Api<DynamicObject>, world: Arc<World>) {
    let mut first = true;
    loop {
        let list = match api.list(&ListParams::default()).await {
            Ok(list) => list,
            Err(error) => {
                tracing::debug!(?kind, %error, "list failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let mut version = list.metadata.resource_version.clone().unwrap_or_default();
        let items = list
            .items
            .into_iter()
            .filter_map(|o| to_value(kind, o))
            .collect();
        world.replace_all(kind, items, first);
        first = false;
        // Watch until the server expires the version, then list again.
        'watch: loop {
            let params = WatchParams::default().timeout(290);
            let stream = match api.watch(&params, &version).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::debug!(?kind, %error, "watch failed; relisting");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    break 'watch;
                }
            };
            let mut stream = stream.boxed();
            loop {
                match stream.try_next().await {
                    Ok(Some(WatchEvent::Added(o) | WatchEvent::Modified(o))) => {
                        if let Some(v) = to_value(kind, o) {
                            version = str_at(&v, "/metadata/resourceVersion").to_string();
                            world.put(kind, v);
                        }
                    }
                    Ok(Some(WatchEvent::Deleted(o))) => {
                        if let Some(v) = to_value(kind, o) {
                            version = str_at(&v, "/metadata/resourceVersion").to_string();
                            world.remove(kind, &key_of(&v));
                        }
                    }
                    Ok(Some(WatchEvent::Bookmark(b))) => {
                        version = b.metadata.resource_version;
                    }
                    Ok(Some(WatchEvent::Error(e))) => {
                        tracing::debug!(?kind, error = %e.message, "watch error; relisting");
                        break 'watch;
                    }
                    Ok(None) => continue 'watch,
                    Err(error) => {
                        tracing::debug!(?kind, %error, "watch stream failed; relisting");
                        break 'watch;
                    }
                }
            }
        }
    }
}

fn to_value(kind: Kind, o: DynamicObject) -> Option<Value> {
    let mut v = serde_json::to_value(o).ok()?;
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), Value::String(kind.api_version()));
        m.insert("kind".into(), Value::String(kind.kind().into()));
    }
    Some(v)
}
