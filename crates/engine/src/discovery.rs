//! Resource discovery: resolves `(apiVersion, resource plural)` and `(apiVersion, kind)` to
//! what the engine needs to talk to a resource type.
//!
//! Only the group versions the engine was asked about are fetched (one
//! `/api/v1` or `/apis/<group>/<version>` request each). They are refreshed every discovery
//! interval by [`Discovery::run`], and a lookup that misses fetches its group version again at
//! once, so a CRD created a moment ago is found. Subscribers of [`Discovery::refreshed`] learn
//! about every periodic refresh (the manager retries invalid controllers then).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::APIResourceList;
use kube::discovery::{ApiResource, Scope};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// Errors from discovery.
#[derive(Debug, thiserror::Error)]
pub enum DiscoveryError {
    /// The server does not serve the group version.
    #[error("group version {0:?} is not served")]
    UnknownGroupVersion(String),
    /// The group version is served but has no such resource.
    #[error("resource {resource:?} not found in {api_version:?}")]
    UnknownResource {
        /// The requested group version.
        api_version: String,
        /// The requested plural name or kind.
        resource: String,
    },
    /// Fetching discovery failed.
    #[error("discovery request for {api_version:?} failed")]
    FetchFailed {
        /// The requested group version.
        api_version: String,
        /// The cause.
        #[source]
        source: Box<kube::Error>,
    },
}

/// What the engine knows about one resource type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceInfo {
    /// API group, empty for the core group.
    pub group: String,
    /// API version within the group.
    pub version: String,
    /// `group/version`, or `version` for the core group.
    pub api_version: String,
    /// Kind of the objects.
    pub kind: String,
    /// Plural resource name used in URLs.
    pub plural: String,
    /// Whether objects live in namespaces.
    pub namespaced: bool,
    /// Whether `<plural>/status` is served.
    pub has_status_subresource: bool,
    /// Verbs the resource supports.
    pub verbs: Vec<String>,
}

impl ResourceInfo {
    /// A resource for unit tests: no status subresource, no verbs.
    #[cfg(test)]
    pub(crate) fn for_test(
        api_version: &str,
        kind: &str,
        plural: &str,
        namespaced: bool,
    ) -> std::sync::Arc<ResourceInfo> {
        let (group, version) = split_api_version(api_version);
        std::sync::Arc::new(ResourceInfo {
            group: group.into(),
            version: version.into(),
            api_version: api_version.into(),
            kind: kind.into(),
            plural: plural.into(),
            namespaced,
            has_status_subresource: false,
            verbs: Vec::new(),
        })
    }

    /// The kube-rs description of this resource, for dynamic API handles.
    pub fn api_resource(&self) -> ApiResource {
        ApiResource {
            group: self.group.clone(),
            version: self.version.clone(),
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            plural: self.plural.clone(),
        }
    }

    /// The kube-rs scope of this resource.
    pub fn scope(&self) -> Scope {
        if self.namespaced {
            Scope::Namespaced
        } else {
            Scope::Cluster
        }
    }

    /// Whether the resource supports `verb`.
    pub fn supports(&self, verb: &str) -> bool {
        self.verbs.iter().any(|v| v == verb)
    }
}

/// Splits `group/version` (or `version` for the core group) into `(group, version)`.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    api_version.split_once('/').unwrap_or(("", api_version))
}

/// The resources of one group version, keyed by plural name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupVersionResources {
    by_plural: HashMap<String, Arc<ResourceInfo>>,
}

impl GroupVersionResources {
    /// Builds the table from a discovery document. Subresources (`x/status`, `x/scale`) are
    /// folded into their parent resource.
    pub fn from_list(api_version: &str, list: &APIResourceList) -> Self {
        let (group, version) = split_api_version(api_version);
        let mut infos: HashMap<String, ResourceInfo> = HashMap::new();
        for r in list.resources.iter().filter(|r| !r.name.contains('/')) {
            infos.insert(
                r.name.clone(),
                ResourceInfo {
                    group: group.to_string(),
                    version: version.to_string(),
                    api_version: api_version.to_string(),
                    kind: r.kind.clone(),
                    plural: r.name.clone(),
                    namespaced: r.namespaced,
                    has_status_subresource: false,
                    verbs: r.verbs.clone(),
                },
            );
        }
        for r in &list.resources {
            if let Some((base, "status")) = r.name.split_once('/') {
                if let Some(info) = infos.get_mut(base) {
                    info.has_status_subresource = true;
                }
            }
        }
        GroupVersionResources {
            by_plural: infos.into_iter().map(|(k, v)| (k, Arc::new(v))).collect(),
        }
    }

    /// The resource with this plural name.
    pub fn by_plural(&self, plural: &str) -> Option<Arc<ResourceInfo>> {
        self.by_plural.get(plural).cloned()
    }

    /// The resource serving this kind.
    pub fn by_kind(&self, kind: &str) -> Option<Arc<ResourceInfo>> {
        let mut matches: Vec<&Arc<ResourceInfo>> =
            self.by_plural.values().filter(|r| r.kind == kind).collect();
        // Deterministic when several resources share a kind.
        matches.sort_by(|a, b| a.plural.cmp(&b.plural));
        matches.first().map(|r| (*r).clone())
    }
}

/// The shared, refreshing discovery cache.
pub struct Discovery {
    client: kube::Client,
    cache: RwLock<HashMap<String, Arc<GroupVersionResources>>>,
    refreshed: watch::Sender<u64>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery").finish_non_exhaustive()
    }
}

fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}

impl Discovery {
    /// An empty cache; lookups fill it.
    pub fn new(client: kube::Client) -> Arc<Self> {
        Arc::new(Discovery {
            client,
            cache: RwLock::new(HashMap::new()),
            refreshed: watch::channel(0).0,
        })
    }

    /// A receiver that changes after every periodic refresh.
    pub fn refreshed(&self) -> watch::Receiver<u64> {
        self.refreshed.subscribe()
    }

    fn cached(&self, api_version: &str) -> Option<Arc<GroupVersionResources>> {
        self.cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(api_version)
            .cloned()
    }

    async fn fetch(&self, api_version: &str) -> Result<Arc<GroupVersionResources>, DiscoveryError> {
        let (group, version) = split_api_version(api_version);
        let result = if group.is_empty() {
            self.client.list_core_api_resources(version).await
        } else {
            self.client.list_api_group_resources(api_version).await
        };
        match result {
            Ok(list) => {
                let table = Arc::new(GroupVersionResources::from_list(api_version, &list));
                self.cache
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(api_version.to_string(), table.clone());
                Ok(table)
            }
            Err(err) if is_not_found(&err) => {
                self.cache
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(api_version);
                Err(DiscoveryError::UnknownGroupVersion(api_version.to_string()))
            }
            Err(err) => Err(DiscoveryError::FetchFailed {
                api_version: api_version.to_string(),
                source: Box::new(err),
            }),
        }
    }

    async fn lookup(
        &self,
        api_version: &str,
        name: &str,
        find: impl Fn(&GroupVersionResources) -> Option<Arc<ResourceInfo>>,
    ) -> Result<Arc<ResourceInfo>, DiscoveryError> {
        if let Some(found) = self.cached(api_version).and_then(|t| find(&t)) {
            return Ok(found);
        }
        let table = self.fetch(api_version).await?;
        find(&table).ok_or_else(|| DiscoveryError::UnknownResource {
            api_version: api_version.to_string(),
            resource: name.to_string(),
        })
    }

    /// Resolves `(apiVersion, plural)`, fetching the group version when the cache misses.
    pub async fn resolve(
        &self,
        api_version: &str,
        plural: &str,
    ) -> Result<Arc<ResourceInfo>, DiscoveryError> {
        self.lookup(api_version, plural, |t| t.by_plural(plural))
            .await
    }

    /// Resolves `(apiVersion, kind)`, fetching the group version when the cache misses.
    pub async fn resolve_kind(
        &self,
        api_version: &str,
        kind: &str,
    ) -> Result<Arc<ResourceInfo>, DiscoveryError> {
        self.lookup(api_version, kind, |t| t.by_kind(kind)).await
    }

    /// Fetches every known group version again and notifies subscribers.
    pub async fn refresh(&self) {
        let known: Vec<String> = self
            .cache
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for api_version in known {
            if let Err(error) = self.fetch(&api_version).await {
                tracing::debug!(%api_version, %error, "discovery refresh failed");
            }
        }
        self.refreshed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Refreshes every `interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: CancellationToken) {
        let interval = interval.max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => self.refresh().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(value: serde_json::Value) -> APIResourceList {
        serde_json::from_value(value).expect("valid APIResourceList")
    }

    #[test]
    fn splits_api_versions() {
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
    }

    #[test]
    fn builds_resources_and_folds_subresources() {
        let l = list(json!({
            "groupVersion": "example.com/v1",
            "resources": [
                {"name":"widgets","singularName":"widget","namespaced":true,"kind":"Widget",
                 "verbs":["create","delete","get","list","patch","update","watch"]},
                {"name":"widgets/status","singularName":"","namespaced":true,"kind":"Widget",
                 "verbs":["get","patch","update"]},
                {"name":"gadgets","singularName":"gadget","namespaced":false,"kind":"Gadget",
                 "verbs":["get","list"]},
                {"name":"gadgets/scale","singularName":"","namespaced":false,"kind":"Scale",
                 "group":"autoscaling","version":"v1","verbs":["get"]}
            ]
        }));
        let t = GroupVersionResources::from_list("example.com/v1", &l);
        let w = t.by_plural("widgets").expect("widgets");
        assert_eq!(
            *w,
            ResourceInfo {
                group: "example.com".into(),
                version: "v1".into(),
                api_version: "example.com/v1".into(),
                kind: "Widget".into(),
                plural: "widgets".into(),
                namespaced: true,
                has_status_subresource: true,
                verbs: vec![
                    "create".into(),
                    "delete".into(),
                    "get".into(),
                    "list".into(),
                    "patch".into(),
                    "update".into(),
                    "watch".into()
                ],
            }
        );
        assert!(w.supports("watch"));
        assert_eq!(w.scope(), Scope::Namespaced);
        let g = t.by_plural("gadgets").expect("gadgets");
        assert!(!g.has_status_subresource, "scale is not status");
        assert!(!g.namespaced);
        assert!(!g.supports("watch"));
        assert!(t.by_plural("widgets/status").is_none());
        assert!(t.by_plural("nothing").is_none());
        assert_eq!(t.by_kind("Gadget").expect("by kind").plural, "gadgets");
        assert!(t.by_kind("Scale").is_none());
        let ar = w.api_resource();
        assert_eq!(ar.api_version, "example.com/v1");
        assert_eq!(ar.plural, "widgets");
    }

    #[test]
    fn core_group_resources() {
        let l = list(json!({
            "groupVersion": "v1",
            "resources": [{"name":"configmaps","singularName":"configmap","namespaced":true,
                           "kind":"ConfigMap","verbs":["get"]}]
        }));
        let t = GroupVersionResources::from_list("v1", &l);
        let cm = t.by_plural("configmaps").expect("configmaps");
        assert_eq!(cm.group, "");
        assert_eq!(cm.version, "v1");
        assert_eq!(cm.api_version, "v1");
    }
}
