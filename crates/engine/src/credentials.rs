//! Hook endpoints that follow the Secrets and ConfigMaps they are built from.
//!
//! A controller's hooks are resolved when it starts, reading the Secrets and ConfigMaps that
//! hold their CA bundles, client certificates and credentials once. After that those objects
//! are followed through the engine's shared informers, started only while some running
//! controller names an object of that kind, and every change of a named object re-resolves
//! the endpoint in place: a rotated token or CA is used from the next call on, without
//! restarting the controller.
//!
//! ```text
//!  Secret / ConfigMap informer ──event──► CredentialWatch ──observe──► LiveEndpoint
//!   (shared; started lazily)              (only named objects)          │ changed?
//!                                                                        └─► on_change (requeue)
//! ```
//!
//! While a named value is missing the endpoint is unusable: calls fail with a configuration
//! error (the sync writes nothing), and the next change of the object fixes it.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::{Arc, Mutex};

use kube::api::DynamicObject;
use metacontroller_api::{EndpointConfig, Hook, HookVersion};
use metacontroller_hooks::{HookEndpoint, HookError, HookOwner};
use serde_json::Value;

use crate::discovery::ResourceInfo;
use crate::informer::{Informer, InformerFactory, Subscription};
use crate::store::Event;
use crate::webhook::{
    hook_url, redact_url, required_data, resolve_endpoint, security_for, DataKind, DataMap,
    DataRef, WebhookError,
};

/// A hook to call: its endpoint and wire version.
#[derive(Debug, Clone)]
pub struct HookTarget {
    /// The endpoint as resolved when the controller started. Calls should use
    /// [`HookTarget::current`], which follows later changes of Secrets and ConfigMaps.
    pub endpoint: HookEndpoint,
    /// Which request/response keying it speaks.
    pub version: HookVersion,
    /// The endpoint kept current by a [`CredentialWatch`].
    pub live: LiveEndpoint,
}

impl HookTarget {
    /// A target whose endpoint is usable now (every value it names was found).
    pub fn new(live: LiveEndpoint, version: HookVersion) -> Result<HookTarget, WebhookError> {
        let endpoint = live.current()?;
        Ok(HookTarget {
            endpoint: HookEndpoint::clone(&endpoint),
            version,
            live,
        })
    }

    /// The endpoint to call now, or why it cannot be called (a configuration error naming
    /// the missing Secret or ConfigMap key, never a value).
    pub fn current(&self) -> Result<Arc<HookEndpoint>, HookError> {
        self.live
            .current()
            .map_err(|e| HookError::Config(e.to_string()))
    }
}

/// An endpoint re-resolved whenever a Secret or ConfigMap it names changes. Cheap to clone;
/// clones share the state.
#[derive(Clone)]
pub struct LiveEndpoint {
    inner: Arc<Inner>,
}

struct Inner {
    hook_name: &'static str,
    hook: Hook,
    owner: HookOwner,
    endpoint_configs: Vec<EndpointConfig>,
    /// The values this endpoint is built from.
    refs: Vec<DataRef>,
    state: Mutex<State>,
}

struct State {
    /// The current values of `refs` (absent keys are missing).
    data: DataMap,
    current: Result<Arc<HookEndpoint>, WebhookError>,
}

impl fmt::Debug for LiveEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL without userinfo; the endpoint's own Debug redacts keys and credentials.
        let state = self.state();
        let current = state
            .current
            .as_ref()
            .map(|e| redact_url(&e.url))
            .map_err(ToString::to_string);
        f.debug_struct("LiveEndpoint")
            .field("hook", &self.inner.hook_name)
            .field("owner", &self.inner.owner)
            .field("refs", &self.inner.refs)
            .field("current", &current)
            .finish()
    }
}

impl LiveEndpoint {
    /// Validates the spec and resolves it with the values in `data` (see
    /// [`LiveEndpoint::refs`]). Errors are spec errors (bad URL, `authorization` with
    /// `basicAuth`, type `Basic`, a `caBundle` without exactly one source); a missing value
    /// only leaves the endpoint unusable until [`LiveEndpoint::observe`] delivers it.
    pub fn new(
        hook_name: &'static str,
        hook: &Hook,
        owner: HookOwner,
        endpoint_configs: &[EndpointConfig],
        data: DataMap,
    ) -> Result<LiveEndpoint, WebhookError> {
        let url = hook_url(hook_name, hook)?;
        let refs = match &hook.webhook {
            Some(webhook) => required_data(&security_for(webhook, &url, endpoint_configs)),
            None => Vec::new(),
        };
        // Spec errors show up whatever the values are: resolve once with stand-ins.
        let stand_ins: DataMap = refs
            .iter()
            .map(|r| (r.clone(), b"stand-in".to_vec()))
            .collect();
        resolve_endpoint(hook_name, hook, owner.clone(), endpoint_configs, &stand_ins)?;
        let data: DataMap = data.into_iter().filter(|(r, _)| refs.contains(r)).collect();
        let current =
            resolve_endpoint(hook_name, hook, owner.clone(), endpoint_configs, &data).map(Arc::new);
        Ok(LiveEndpoint {
            inner: Arc::new(Inner {
                hook_name,
                hook: hook.clone(),
                owner,
                endpoint_configs: endpoint_configs.to_vec(),
                refs,
                state: Mutex::new(State { data, current }),
            }),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update replaces whole fields, so a poisoned lock still holds a usable state.
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The hook's name (`sync`, `finalize`, `customize`).
    pub fn hook_name(&self) -> &'static str {
        self.inner.hook_name
    }

    /// The Secret and ConfigMap values the endpoint is built from.
    pub fn refs(&self) -> &[DataRef] {
        &self.inner.refs
    }

    /// Whether the endpoint reads any object of `kind`.
    pub fn needs(&self, kind: DataKind) -> bool {
        self.inner.refs.iter().any(|r| r.kind == kind)
    }

    /// Whether the endpoint reads the object `kind` `namespace/name`.
    pub fn names(&self, kind: DataKind, namespace: &str, name: &str) -> bool {
        self.inner
            .refs
            .iter()
            .any(|r| r.kind == kind && r.namespace == namespace && r.name == name)
    }

    /// The endpoint to call now, or why it cannot be called.
    pub fn current(&self) -> Result<Arc<HookEndpoint>, WebhookError> {
        self.state().current.clone()
    }

    /// Takes the current state of the object `kind` `namespace/name` (`None`: deleted) and
    /// re-resolves the endpoint. Returns true when the endpoint (or its error) changed.
    pub fn observe(
        &self,
        kind: DataKind,
        namespace: &str,
        name: &str,
        object: Option<&DynamicObject>,
    ) -> bool {
        let mut state = self.state();
        let mut data = state.data.clone();
        for r in self
            .inner
            .refs
            .iter()
            .filter(|r| r.kind == kind && r.namespace == namespace && r.name == name)
        {
            match object.and_then(|o| object_value(kind, o, &r.key)) {
                Some(value) => data.insert(r.clone(), value),
                None => data.remove(r),
            };
        }
        if data == state.data {
            return false;
        }
        let next = resolve_endpoint(
            self.inner.hook_name,
            &self.inner.hook,
            self.inner.owner.clone(),
            &self.inner.endpoint_configs,
            &data,
        );
        state.data = data;
        let changed = match (&state.current, &next) {
            (Ok(old), Ok(new)) => **old != *new,
            (Err(old), Err(new)) => old != new,
            _ => true,
        };
        if changed {
            state.current = next.map(Arc::new);
        }
        changed
    }
}

/// One value of a Secret (`stringData` over base64 `data`) or ConfigMap (`data`, then base64
/// `binaryData`) as the API returns them; `None` when absent or undecodable.
pub fn object_value(kind: DataKind, object: &DynamicObject, key: &str) -> Option<Vec<u8>> {
    let field = |f: &str| object.data.get(f).and_then(|m| m.get(key));
    let text = |v: &Value| v.as_str().map(|s| s.as_bytes().to_vec());
    let binary = |v: &Value| {
        serde_json::from_value::<k8s_openapi::ByteString>(v.clone())
            .ok()
            .map(|b| b.0)
    };
    match kind {
        DataKind::Secret => field("stringData")
            .and_then(text)
            .or_else(|| field("data").and_then(binary)),
        DataKind::ConfigMap => field("data")
            .and_then(text)
            .or_else(|| field("binaryData").and_then(binary)),
    }
}

/// The core `v1` resource holding values of `kind`.
pub fn data_resource(kind: DataKind) -> Arc<ResourceInfo> {
    let (kind, plural) = match kind {
        DataKind::Secret => ("Secret", "secrets"),
        DataKind::ConfigMap => ("ConfigMap", "configmaps"),
    };
    Arc::new(ResourceInfo {
        group: String::new(),
        version: "v1".to_string(),
        api_version: "v1".to_string(),
        kind: kind.to_string(),
        plural: plural.to_string(),
        namespaced: true,
        has_status_subresource: false,
        verbs: ["get", "list", "watch"].map(String::from).to_vec(),
    })
}

/// Called after an endpoint changed (e.g. to requeue the controller's objects). Runs on an
/// informer's watch task: it must not block.
pub type OnChange = Arc<dyn Fn() + Send + Sync>;

/// Keeps a controller's [`LiveEndpoint`]s current. Holds the Secret and ConfigMap informers
/// only while it lives, and only for the kinds its endpoints name; dropping it unsubscribes.
pub struct CredentialWatch {
    informers: Vec<Arc<Informer>>,
    _subscriptions: Vec<Subscription>,
}

impl fmt::Debug for CredentialWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialWatch")
            .field("informers", &self.informers)
            .finish()
    }
}

impl CredentialWatch {
    /// Subscribes `endpoints` to the informers of the kinds they name (starting them if
    /// needed); nothing is watched when they name no Secret or ConfigMap. `controller` names
    /// the owner in logs.
    pub fn start(
        factory: &InformerFactory,
        controller: &str,
        endpoints: Vec<LiveEndpoint>,
        on_change: OnChange,
    ) -> CredentialWatch {
        let kinds: BTreeSet<DataKind> = endpoints
            .iter()
            .flat_map(|e| e.refs().iter().map(|r| r.kind))
            .collect();
        let mut informers = Vec::new();
        let mut subscriptions = Vec::new();
        for kind in kinds {
            let informer = factory.informer(&data_resource(kind));
            let mine: Vec<LiveEndpoint> = endpoints
                .iter()
                .filter(|e| e.needs(kind))
                .cloned()
                .collect();
            let controller = controller.to_string();
            let on_change = on_change.clone();
            subscriptions.push(informer.subscribe(Arc::new(move |event: &Event| {
                let Some(obj) = event.object() else { return };
                let namespace = obj.metadata.namespace.as_deref().unwrap_or("");
                let name = obj.metadata.name.as_deref().unwrap_or("");
                let mut changed = false;
                for endpoint in mine.iter().filter(|e| e.names(kind, namespace, name)) {
                    if endpoint.observe(kind, namespace, name, event.new.as_deref()) {
                        changed = true;
                        match endpoint.current() {
                            Ok(_) => tracing::info!(
                                controller = %controller, hook = endpoint.hook_name(),
                                object = %format!("{kind:?} {namespace}/{name}"),
                                "hook endpoint re-resolved"
                            ),
                            Err(error) => tracing::warn!(
                                controller = %controller, hook = endpoint.hook_name(), %error,
                                "hook endpoint unusable"
                            ),
                        }
                    }
                }
                if changed {
                    on_change();
                }
            })));
            informers.push(informer);
        }
        CredentialWatch {
            informers,
            _subscriptions: subscriptions,
        }
    }

    /// The informers this watch holds.
    pub fn informers(&self) -> &[Arc<Informer>] {
        &self.informers
    }

    /// Waits until every informer delivered its initial list, so the endpoints hold the
    /// values that existed when the controller started.
    pub async fn wait_synced(&self) {
        for informer in &self.informers {
            informer.wait_synced().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metacontroller_hooks::HookAuth;
    use serde_json::json;

    fn hook(v: Value) -> Hook {
        serde_json::from_value(v).expect("hook")
    }

    fn secret(ns: &str, name: &str, data: Value) -> DynamicObject {
        serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"namespace": ns, "name": name}, "data": data}))
        .expect("secret")
    }

    fn bearer_hook() -> Hook {
        hook(json!({"webhook": {"url": "http://h/sync",
            "authorization": {"secretRef": {"name": "tok", "namespace": "n", "key": "token"}}}}))
    }

    #[test]
    fn unusable_until_the_secret_arrives_then_follows_it() {
        let e = LiveEndpoint::new(
            "sync",
            &bearer_hook(),
            HookOwner::default(),
            &[],
            DataMap::new(),
        )
        .expect("valid spec");
        assert!(e.needs(DataKind::Secret) && !e.needs(DataKind::ConfigMap));
        assert!(e.names(DataKind::Secret, "n", "tok"));
        assert!(!e.names(DataKind::Secret, "n", "other"));
        assert!(matches!(e.current(), Err(WebhookError::MissingData { .. })));

        // "one" and "two", base64.
        let v1 = secret("n", "tok", json!({"token": "b25l"}));
        assert!(e.observe(DataKind::Secret, "n", "tok", Some(&v1)));
        assert_eq!(
            e.current().expect("usable").auth,
            Some(HookAuth::bearer("one"))
        );
        // The same values again change nothing.
        assert!(!e.observe(DataKind::Secret, "n", "tok", Some(&v1)));
        let v2 = secret("n", "tok", json!({"token": "dHdv", "other": "eA=="}));
        assert!(e.observe(DataKind::Secret, "n", "tok", Some(&v2)));
        assert_eq!(
            e.current().expect("usable").auth,
            Some(HookAuth::bearer("two"))
        );
        // Deleted: unusable again, and the error names no value.
        assert!(e.observe(DataKind::Secret, "n", "tok", None));
        let error = e.current().expect_err("unusable").to_string();
        assert!(error.contains("n/tok") && !error.contains("two"), "{error}");
        let debug = format!("{e:?}");
        assert!(!debug.contains("two") && !debug.contains("dHdv"), "{debug}");
    }

    #[test]
    fn spec_errors_are_found_before_any_value_is_read() {
        let both = hook(json!({"webhook": {"url": "http://h/s",
            "basicAuth": {"secretRef": {"name": "b", "namespace": "n"}},
            "authorization": {"secretRef": {"name": "t", "namespace": "n", "key": "k"}}}}));
        assert_eq!(
            LiveEndpoint::new("sync", &both, HookOwner::default(), &[], DataMap::new()).err(),
            Some(WebhookError::ConflictingAuth("sync"))
        );
        let basic = hook(json!({"webhook": {"url": "http://h/s",
            "authorization": {"type": " Basic ", "secretRef": {"name": "t", "namespace": "n", "key": "k"}}}}));
        assert_eq!(
            LiveEndpoint::new("sync", &basic, HookOwner::default(), &[], DataMap::new()).err(),
            Some(WebhookError::BasicInAuthorization("sync"))
        );
        let two_sources = hook(json!({"webhook": {"url": "https://h/s",
            "caBundle": {"inline": "PEM", "secretRef": {"name": "ca", "namespace": "n"}}}}));
        assert_eq!(
            LiveEndpoint::new(
                "sync",
                &two_sources,
                HookOwner::default(),
                &[],
                DataMap::new()
            )
            .err(),
            Some(WebhookError::BadCaBundle("sync"))
        );
        let plain = hook(json!({"webhook": {"url": "http://h/s"}}));
        let e = LiveEndpoint::new("sync", &plain, HookOwner::default(), &[], DataMap::new())
            .expect("valid");
        assert!(e.refs().is_empty());
        assert_eq!(e.current().expect("usable").url, "http://h/s");
    }

    #[test]
    fn values_as_the_api_returns_them() {
        let s: DynamicObject = serde_json::from_value(json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s"}, "data": {"a": "YQ==", "bad": "%%%"},
            "stringData": {"b": "plain"}}))
        .expect("secret");
        assert_eq!(
            object_value(DataKind::Secret, &s, "a").as_deref(),
            Some(&b"a"[..])
        );
        assert_eq!(
            object_value(DataKind::Secret, &s, "b").as_deref(),
            Some(&b"plain"[..])
        );
        assert_eq!(object_value(DataKind::Secret, &s, "bad"), None);
        assert_eq!(object_value(DataKind::Secret, &s, "none"), None);
        let cm: DynamicObject = serde_json::from_value(json!({"apiVersion": "v1",
            "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"ca.crt": "PEM"},
            "binaryData": {"bin": "Ymlu"}}))
        .expect("configmap");
        assert_eq!(
            object_value(DataKind::ConfigMap, &cm, "ca.crt").as_deref(),
            Some(&b"PEM"[..])
        );
        assert_eq!(
            object_value(DataKind::ConfigMap, &cm, "bin").as_deref(),
            Some(&b"bin"[..])
        );
    }

    #[test]
    fn empty_values_are_errors() {
        let e = LiveEndpoint::new(
            "sync",
            &bearer_hook(),
            HookOwner::default(),
            &[],
            DataMap::new(),
        )
        .expect("valid spec");
        let empty = secret("n", "tok", json!({"token": ""}));
        assert!(e.observe(DataKind::Secret, "n", "tok", Some(&empty)));
        assert!(matches!(e.current(), Err(WebhookError::EmptyData { .. })));
    }

    #[test]
    fn targets_start_usable_and_report_later_losses_as_configuration_errors() {
        let live = || {
            LiveEndpoint::new(
                "sync",
                &bearer_hook(),
                HookOwner::default(),
                &[],
                DataMap::new(),
            )
            .expect("valid spec")
        };
        assert!(matches!(
            HookTarget::new(live(), HookVersion::V1),
            Err(WebhookError::MissingData { .. })
        ));
        let mut data = DataMap::new();
        let r = DataRef {
            kind: DataKind::Secret,
            namespace: "n".into(),
            name: "tok".into(),
            key: "token".into(),
        };
        data.insert(r, b"start".to_vec());
        // Values nobody asked for are not kept.
        data.insert(
            DataRef {
                kind: DataKind::Secret,
                namespace: "n".into(),
                name: "tok".into(),
                key: "unrelated".into(),
            },
            b"x".to_vec(),
        );
        let live = LiveEndpoint::new("sync", &bearer_hook(), HookOwner::default(), &[], data)
            .expect("valid spec");
        let t = HookTarget::new(live, HookVersion::V2).expect("usable");
        assert_eq!(t.endpoint.auth, Some(HookAuth::bearer("start")));
        assert_eq!(
            t.current().expect("usable").auth,
            Some(HookAuth::bearer("start"))
        );
        assert!(t.live.observe(DataKind::Secret, "n", "tok", None));
        let error = t.current().expect_err("secret deleted");
        assert!(!error.is_transient());
        assert!(error.to_string().contains("Secret n/tok"), "{error}");
    }
}
