//! Turning a controller's hook spec into a callable [`HookEndpoint`].
//!
//! `url` wins over `service`; a service (which needs `path`) becomes
//! `<protocol>://<name>.<namespace>:<port><path>`, with protocol `http` and port 80 unless
//! given (port 80 whatever the protocol, as upstream). The timeout is the spec's Go duration,
//! 10s by default.
//!
//! TLS and credentials come from the webhook's own `caBundle`, `clientTLS`, `authorization`
//! and `basicAuth` when any is set (the matching `endpointConfigs` entry is then ignored as a
//! whole, never merged), else from the controller's `endpointConfigs` entry whose host matches
//! the URL. Values kept in Secrets and ConfigMaps are named by [`required_data`], fetched by
//! the caller (see [`crate::credentials`], which follows their changes), and passed back in a
//! [`DataMap`], so everything here stays pure. Errors name Secrets, ConfigMaps and keys, never
//! their values.

use std::collections::BTreeMap;
use std::time::Duration;

use metacontroller_api::{
    Authorization, BasicAuth, CaBundle, ClientTls, EndpointConfig, Hook, ResponseUnmarshallMode,
    Webhook,
};
use metacontroller_hooks::{
    EtagConfig, HookAuth, HookEndpoint, HookOwner, TlsConfig, UnmarshalMode,
};

/// Why a hook spec cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The hook has no `webhook` block.
    #[error("{0} hook has no webhook")]
    NoWebhook(&'static str),
    /// Neither `url` nor `service` is set.
    #[error("{0} hook: webhook needs either url or service")]
    NoTarget(&'static str),
    /// The URL is not an absolute http(s) URL.
    #[error("{hook} hook: invalid webhook url {url:?}")]
    BadUrl {
        /// Which hook.
        hook: &'static str,
        /// The offending URL.
        url: String,
    },
    /// The service reference is incomplete or has an unknown protocol.
    #[error("{hook} hook: invalid service reference: {reason}")]
    BadService {
        /// Which hook.
        hook: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// `authorization` and `basicAuth` are both set.
    #[error("{0} hook: authorization and basicAuth are mutually exclusive")]
    ConflictingAuth(&'static str),
    /// `authorization.type` is `Basic`, which must be configured with `basicAuth`.
    #[error("{0} hook: authorization type Basic is not allowed, use basicAuth")]
    BasicInAuthorization(&'static str),
    /// `caBundle` sets none, or more than one, of `inline`, `secretRef` and `configMapRef`.
    #[error("{0} hook: caBundle needs exactly one of inline, secretRef or configMapRef")]
    BadCaBundle(&'static str),
    /// A Secret or ConfigMap value the hook needs is missing.
    #[error("{hook} hook: {what} has no key {key:?}")]
    MissingData {
        /// Which hook.
        hook: &'static str,
        /// `Secret ns/name` or `ConfigMap ns/name`.
        what: String,
        /// The missing key.
        key: String,
    },
    /// A Secret or ConfigMap value the hook needs is empty.
    #[error("{hook} hook: key {key:?} of {what} is empty")]
    EmptyData {
        /// Which hook.
        hook: &'static str,
        /// `Secret ns/name` or `ConfigMap ns/name`.
        what: String,
        /// The empty key.
        key: String,
    },
}

impl WebhookError {
    /// Whether the error comes from Secret or ConfigMap contents (which may change while the
    /// controller runs) rather than from the controller's spec.
    pub fn is_data_error(&self) -> bool {
        matches!(
            self,
            WebhookError::MissingData { .. } | WebhookError::EmptyData { .. }
        )
    }
}

/// `url` without any `user:password@` part, for logs, events and errors.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

fn valid_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.starts_with('/')
}

/// The URL a hook spec points at.
pub fn hook_url(hook_name: &'static str, hook: &Hook) -> Result<String, WebhookError> {
    let webhook = hook
        .webhook
        .as_ref()
        .ok_or(WebhookError::NoWebhook(hook_name))?;
    if let Some(url) = webhook.url.as_deref().filter(|u| !u.is_empty()) {
        if !valid_url(url) {
            return Err(WebhookError::BadUrl {
                hook: hook_name,
                url: redact_url(url),
            });
        }
        return Ok(url.to_string());
    }
    let service = webhook
        .service
        .as_ref()
        .ok_or(WebhookError::NoTarget(hook_name))?;
    let bad = |reason: &str| WebhookError::BadService {
        hook: hook_name,
        reason: reason.to_string(),
    };
    if service.name.is_empty() || service.namespace.is_empty() {
        return Err(bad("name and namespace are required"));
    }
    let Some(path) = webhook.path.as_deref() else {
        return Err(bad("path is required with service"));
    };
    let protocol = service.protocol.as_deref().unwrap_or("http");
    if !matches!(protocol, "http" | "https") {
        return Err(bad(&format!("unknown protocol {protocol:?}")));
    }
    // Upstream defaults to port 80 whatever the protocol.
    let port = service.port.unwrap_or(80);
    if !(1..=65535).contains(&port) {
        return Err(bad(&format!("port {port} out of range")));
    }
    let slash = if path.is_empty() || path.starts_with('/') {
        ""
    } else {
        "/"
    };
    Ok(format!(
        "{protocol}://{}.{}:{port}{slash}{path}",
        service.name, service.namespace
    ))
}

/// Resolves a hook spec into an endpoint owned by `owner`, taking Secret and ConfigMap values
/// from `data` (see [`required_data`]).
pub fn resolve_endpoint(
    hook_name: &'static str,
    hook: &Hook,
    owner: HookOwner,
    endpoint_configs: &[EndpointConfig],
    data: &DataMap,
) -> Result<HookEndpoint, WebhookError> {
    let url = hook_url(hook_name, hook)?;
    let webhook = hook
        .webhook
        .as_ref()
        .ok_or(WebhookError::NoWebhook(hook_name))?;
    let mut endpoint = HookEndpoint::new(url)
        .with_timeout(webhook.timeout_or_default())
        .with_owner(owner)
        .with_unmarshal_mode(match webhook.response_unmarshall_mode(hook.version()) {
            ResponseUnmarshallMode::Loose => UnmarshalMode::Loose,
            ResponseUnmarshallMode::Strict => UnmarshalMode::Strict,
        });
    if let Some(etag) = &webhook.etag {
        let secs = |s: Option<i32>| {
            s.filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s.unsigned_abs())))
        };
        endpoint = endpoint.with_etag(EtagConfig {
            enabled: etag.enabled.unwrap_or(false),
            cache_timeout: secs(etag.cache_timeout_seconds),
            cache_cleanup: secs(etag.cache_cleanup_seconds),
        });
    }
    let security = security_for(webhook, &endpoint.url, endpoint_configs);
    apply_security(hook_name, endpoint, &security, data)
}

/// Where a value is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DataKind {
    /// A Secret (values decoded from base64 by the API types).
    Secret,
    /// A ConfigMap (`data` or `binaryData`).
    ConfigMap,
}

/// One value of a Secret or ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DataRef {
    /// Secret or ConfigMap.
    pub kind: DataKind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Key.
    pub key: String,
}

impl DataRef {
    fn secret(namespace: &str, name: &str, key: &str) -> Self {
        DataRef {
            kind: DataKind::Secret,
            namespace: namespace.into(),
            name: name.into(),
            key: key.into(),
        }
    }

    fn describe(&self) -> String {
        let kind = match self.kind {
            DataKind::Secret => "Secret",
            DataKind::ConfigMap => "ConfigMap",
        };
        format!("{kind} {}/{}", self.namespace, self.name)
    }
}

/// Fetched Secret and ConfigMap values.
pub type DataMap = BTreeMap<DataRef, Vec<u8>>;

/// The TLS and credential settings that apply to one webhook.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Security<'a> {
    /// CA certificates.
    pub ca_bundle: Option<&'a CaBundle>,
    /// Client certificate.
    pub client_tls: Option<&'a ClientTls>,
    /// `Authorization` credential.
    pub authorization: Option<&'a Authorization>,
    /// HTTP Basic credentials.
    pub basic_auth: Option<&'a BasicAuth>,
}

/// Host and port of an http(s) URL (`None` when the URL names no port).
fn url_host(url: &str) -> Option<(&str, &str, Option<&str>)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(stripped) = authority.strip_prefix('[') {
        let (h, after) = stripped.split_once(']')?;
        (h, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    Some((scheme, host, port))
}

/// The `endpointConfigs` entry for `url`: its host matches `host`, `host:port`, or the host
/// with the scheme's default port.
pub fn match_endpoint_config<'a>(
    url: &str,
    configs: &'a [EndpointConfig],
) -> Option<&'a EndpointConfig> {
    let (scheme, host, port) = url_host(url)?;
    let default_port = match scheme {
        "https" => "443",
        _ => "80",
    };
    let effective_port = port.unwrap_or(default_port);
    let with_port = format!("{host}:{effective_port}");
    configs.iter().find(|c| {
        c.host.eq_ignore_ascii_case(&with_port)
            || (effective_port == default_port && c.host.eq_ignore_ascii_case(host))
    })
}

/// The settings for a webhook: its own when it sets any, else its endpoint config's.
pub fn security_for<'a>(
    webhook: &'a Webhook,
    url: &str,
    configs: &'a [EndpointConfig],
) -> Security<'a> {
    let own = Security {
        ca_bundle: webhook.ca_bundle.as_ref(),
        client_tls: webhook.client_tls.as_ref(),
        authorization: webhook.authorization.as_ref(),
        basic_auth: webhook.basic_auth.as_ref(),
    };
    if own != Security::default() {
        return own;
    }
    match match_endpoint_config(url, configs) {
        Some(c) => Security {
            ca_bundle: c.ca_bundle.as_ref(),
            client_tls: c.client_tls.as_ref(),
            authorization: c.authorization.as_ref(),
            basic_auth: c.basic_auth.as_ref(),
        },
        None => Security::default(),
    }
}

/// The Secret and ConfigMap values `security` needs.
pub fn required_data(security: &Security<'_>) -> Vec<DataRef> {
    let mut refs = Vec::new();
    if let Some(ca) = security.ca_bundle {
        refs.extend(ca_bundle_ref(ca));
    }
    if let Some(t) = security.client_tls {
        let s = &t.secret_ref;
        refs.push(DataRef::secret(&s.namespace, &s.name, t.cert_key()));
        refs.push(DataRef::secret(&s.namespace, &s.name, t.private_key_key()));
    }
    if let Some(a) = security.authorization {
        let s = &a.secret_ref;
        refs.push(DataRef::secret(&s.namespace, &s.name, &s.key));
    }
    if let Some(b) = security.basic_auth {
        let s = &b.secret_ref;
        refs.push(DataRef::secret(&s.namespace, &s.name, b.username_key()));
        refs.push(DataRef::secret(&s.namespace, &s.name, b.password_key()));
    }
    refs
}

/// Where a `caBundle` kept in a Secret or ConfigMap lives (`None` for inline or invalid).
fn ca_bundle_ref(ca: &CaBundle) -> Option<DataRef> {
    match (&ca.secret_ref, &ca.config_map_ref) {
        (Some(r), None) => Some(DataRef::secret(&r.namespace, &r.name, r.key())),
        (None, Some(r)) => Some(DataRef {
            kind: DataKind::ConfigMap,
            namespace: r.namespace.clone(),
            name: r.name.clone(),
            key: r.key().to_string(),
        }),
        _ => None,
    }
}

fn lookup(hook: &'static str, data: &DataMap, r: DataRef) -> Result<Vec<u8>, WebhookError> {
    match data.get(&r) {
        None => Err(WebhookError::MissingData {
            hook,
            what: r.describe(),
            key: r.key.clone(),
        }),
        Some(v) if v.iter().all(u8::is_ascii_whitespace) => Err(WebhookError::EmptyData {
            hook,
            what: r.describe(),
            key: r.key.clone(),
        }),
        Some(v) => Ok(v.clone()),
    }
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8_lossy(&bytes).trim().to_string()
}

/// Applies `security` to `endpoint`, reading values from `data`.
pub fn apply_security(
    hook: &'static str,
    mut endpoint: HookEndpoint,
    security: &Security<'_>,
    data: &DataMap,
) -> Result<HookEndpoint, WebhookError> {
    if security.authorization.is_some() && security.basic_auth.is_some() {
        return Err(WebhookError::ConflictingAuth(hook));
    }
    let mut tls = TlsConfig::default();
    if let Some(ca) = security.ca_bundle {
        let sources = [
            ca.inline.is_some(),
            ca.secret_ref.is_some(),
            ca.config_map_ref.is_some(),
        ];
        if sources.iter().filter(|set| **set).count() != 1 {
            return Err(WebhookError::BadCaBundle(hook));
        }
        tls.ca_bundle_pem = Some(match (&ca.inline, ca_bundle_ref(ca)) {
            (Some(inline), _) => inline.as_bytes().to_vec(),
            (None, Some(r)) => lookup(hook, data, r)?,
            (None, None) => return Err(WebhookError::BadCaBundle(hook)),
        });
    }
    if let Some(t) = security.client_tls {
        let s = &t.secret_ref;
        tls.client_cert_pem = Some(lookup(
            hook,
            data,
            DataRef::secret(&s.namespace, &s.name, t.cert_key()),
        )?);
        tls.client_key_pem = Some(lookup(
            hook,
            data,
            DataRef::secret(&s.namespace, &s.name, t.private_key_key()),
        )?);
    }
    if !tls.is_default() {
        endpoint = endpoint.with_tls(tls);
    }
    if let Some(a) = security.authorization {
        if a.scheme().trim().eq_ignore_ascii_case("basic") {
            return Err(WebhookError::BasicInAuthorization(hook));
        }
        let s = &a.secret_ref;
        let credentials = text(lookup(
            hook,
            data,
            DataRef::secret(&s.namespace, &s.name, &s.key),
        )?);
        endpoint = endpoint.with_auth(HookAuth::Authorization {
            scheme: a.scheme().to_string(),
            credentials,
        });
    }
    if let Some(b) = security.basic_auth {
        let s = &b.secret_ref;
        let username = text(lookup(
            hook,
            data,
            DataRef::secret(&s.namespace, &s.name, b.username_key()),
        )?);
        let password = text(lookup(
            hook,
            data,
            DataRef::secret(&s.namespace, &s.name, b.password_key()),
        )?);
        endpoint = endpoint.with_auth(HookAuth::basic(username, password));
    }
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hook(v: serde_json::Value) -> Hook {
        serde_json::from_value(v).expect("hook")
    }

    #[test]
    fn url_wins_over_service() {
        let h = hook(json!({"webhook":{"url":"http://127.0.0.1:9/sync",
            "service":{"name":"s","namespace":"n"}}}));
        assert_eq!(
            hook_url("sync", &h).as_deref(),
            Ok("http://127.0.0.1:9/sync")
        );
    }

    #[test]
    fn service_urls() {
        let h = hook(json!({"webhook":{"service":{"name":"s","namespace":"n"},"path":"/sync"}}));
        assert_eq!(hook_url("sync", &h).as_deref(), Ok("http://s.n:80/sync"));
        let h =
            hook(json!({"webhook":{"service":{"name":"s","namespace":"n","port":8080},"path":""}}));
        assert_eq!(hook_url("sync", &h).as_deref(), Ok("http://s.n:8080"));
        // Port 80 is the default whatever the protocol, as upstream.
        let h = hook(
            json!({"webhook":{"service":{"name":"s","namespace":"n","protocol":"https"},"path":"/x"}}),
        );
        assert_eq!(hook_url("sync", &h).as_deref(), Ok("https://s.n:80/x"));
        let h = hook(
            json!({"webhook":{"service":{"name":"hooks","namespace":"ops",
            "protocol":"https","port":8443},"path":"/sync"}}),
        );
        assert_eq!(
            hook_url("sync", &h).as_deref(),
            Ok("https://hooks.ops:8443/sync")
        );
        let h = hook(json!({"webhook":{"service":{"name":"s","namespace":"n"},"path":"x"}}));
        assert_eq!(hook_url("sync", &h).as_deref(), Ok("http://s.n:80/x"));
        // A service needs a path.
        let h = hook(json!({"webhook":{"service":{"name":"s","namespace":"n"}}}));
        assert!(matches!(
            hook_url("sync", &h),
            Err(WebhookError::BadService { .. })
        ));
        let h = hook(
            json!({"webhook":{"service":{"name":"s","namespace":"n","protocol":"ftp"},"path":"/"}}),
        );
        assert!(matches!(
            hook_url("sync", &h),
            Err(WebhookError::BadService { .. })
        ));
        let h = hook(json!({"webhook":{"service":{"name":"","namespace":"n"},"path":"/"}}));
        assert!(matches!(
            hook_url("sync", &h),
            Err(WebhookError::BadService { .. })
        ));
        let h = hook(
            json!({"webhook":{"service":{"name":"s","namespace":"n","port":70000},"path":"/"}}),
        );
        assert!(matches!(
            hook_url("sync", &h),
            Err(WebhookError::BadService { .. })
        ));
    }

    #[test]
    fn bad_or_missing_targets() {
        assert_eq!(
            hook_url("sync", &hook(json!({}))),
            Err(WebhookError::NoWebhook("sync"))
        );
        assert_eq!(
            hook_url("sync", &hook(json!({"webhook":{}}))),
            Err(WebhookError::NoTarget("sync"))
        );
        for bad in ["not a url", "ftp://x/y", "http://", "http:///path"] {
            let h = hook(json!({"webhook":{"url": bad}}));
            assert!(
                matches!(hook_url("sync", &h), Err(WebhookError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn endpoint_settings() {
        let h = hook(json!({"webhook":{"url":"http://h/s","timeout":"2.5s",
            "responseUnMarshallMode":"strict","etag":{"enabled":true,"cacheTimeoutSeconds":60}}}));
        let e = resolve_endpoint(
            "sync",
            &h,
            HookOwner::new("CompositeController", "c"),
            &[],
            &DataMap::new(),
        )
        .expect("endpoint");
        assert_eq!(e.url, "http://h/s");
        assert_eq!(e.timeout, Duration::from_millis(2500));
        assert_eq!(e.unmarshal_mode, UnmarshalMode::Strict);
        let etag = e.etag.expect("etag");
        assert!(etag.enabled);
        assert_eq!(etag.cache_timeout, Some(Duration::from_secs(60)));
        let d = resolve_endpoint(
            "sync",
            &hook(json!({"webhook":{"url":"http://h/s"}})),
            HookOwner::default(),
            &[],
            &DataMap::new(),
        )
        .expect("endpoint");
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert_eq!(d.unmarshal_mode, UnmarshalMode::Loose);
    }

    #[test]
    fn etag_settings_may_come_alone() {
        let resolve = |etag: serde_json::Value| {
            let h = hook(json!({"webhook": {"url": "http://h/s", "etag": etag}}));
            resolve_endpoint("sync", &h, HookOwner::default(), &[], &DataMap::new())
                .expect("endpoint")
                .etag
                .expect("etag block")
        };
        let only_cleanup = resolve(json!({"enabled": true, "cacheCleanupSeconds": 30}));
        assert!(only_cleanup.enabled);
        assert_eq!(only_cleanup.cache_timeout, None);
        assert_eq!(only_cleanup.cache_cleanup, Some(Duration::from_secs(30)));
        let only_timeout = resolve(json!({"enabled": true, "cacheTimeoutSeconds": 5}));
        assert_eq!(only_timeout.cache_timeout, Some(Duration::from_secs(5)));
        assert_eq!(only_timeout.cache_cleanup, None);
        // Without `enabled: true` the block is inert.
        assert!(!resolve(json!({"cacheTimeoutSeconds": 5})).enabled);
        // Zero and negative values mean unset.
        let zero =
            resolve(json!({"enabled": true, "cacheTimeoutSeconds": 0, "cacheCleanupSeconds": -1}));
        assert_eq!((zero.cache_timeout, zero.cache_cleanup), (None, None));
    }

    #[test]
    fn owner_scopes_each_controller_hook() {
        let h = hook(json!({"webhook": {"url": "http://h/s"}}));
        let owner = HookOwner::new("DecoratorController", "d");
        let e =
            resolve_endpoint("sync", &h, owner.clone(), &[], &DataMap::new()).expect("endpoint");
        assert_eq!(e.owner, owner);
    }

    #[test]
    fn redacts_userinfo_in_errors() {
        assert_eq!(redact_url("https://u:p@h:1/x@y"), "https://h:1/x@y");
        assert_eq!(redact_url("http://h/x"), "http://h/x");
        let h = hook(json!({"webhook": {"url": "ftp://user:pa55@h/x"}}));
        let error = hook_url("sync", &h).expect_err("bad scheme").to_string();
        assert!(!error.contains("pa55"), "{error}");
    }

    fn configs(v: serde_json::Value) -> Vec<EndpointConfig> {
        serde_json::from_value(v).expect("endpoint configs")
    }

    #[test]
    fn endpoint_configs_match_by_host_and_port() {
        let c = configs(
            json!([{"host": "a.example"}, {"host": "b.example:8443"}, {"host": "C.example:443"}]),
        );
        let host = |url: &str| match_endpoint_config(url, &c).map(|e| e.host.clone());
        assert_eq!(host("http://a.example/x").as_deref(), Some("a.example"));
        assert_eq!(host("http://a.example:80/x").as_deref(), Some("a.example"));
        assert_eq!(host("http://a.example:8080/x"), None);
        assert_eq!(
            host("https://b.example:8443").as_deref(),
            Some("b.example:8443")
        );
        assert_eq!(host("https://b.example"), None);
        assert_eq!(host("https://c.example/").as_deref(), Some("C.example:443"));
        assert_eq!(
            host("https://user:pw@c.example:443/").as_deref(),
            Some("C.example:443")
        );
        assert_eq!(host("not a url"), None);
        // A default port in the entry is the same as none in the URL.
        let c = configs(json!([{"host": "d.example:80"}, {"host": "e.example:443"}]));
        let host = |url: &str| match_endpoint_config(url, &c).map(|e| e.host.clone());
        assert_eq!(host("http://D.EXAMPLE/x").as_deref(), Some("d.example:80"));
        assert_eq!(
            host("https://e.example/x").as_deref(),
            Some("e.example:443")
        );
        assert_eq!(host("http://e.example/x"), None);
        // The first matching entry wins.
        let c = configs(json!([{"host": "f.example"}, {"host": "F.example:80"}]));
        assert_eq!(
            match_endpoint_config("http://f.example:80/", &c).map(|e| e.host.as_str()),
            Some("f.example")
        );
        assert_eq!(
            url_host("http://[::1]:9/x"),
            Some(("http", "::1", Some("9")))
        );
    }

    #[test]
    fn webhook_settings_win_over_endpoint_configs() {
        let c = configs(
            json!([{"host": "h", "authorization": {"secretRef": {"name": "cfg", "namespace": "n", "key": "k"}}}]),
        );
        let own: Webhook = serde_json::from_value(json!({"url": "http://h/s",
            "basicAuth": {"secretRef": {"name": "own", "namespace": "n"}}}))
        .expect("webhook");
        let s = security_for(&own, "http://h/s", &c);
        assert!(s.basic_auth.is_some() && s.authorization.is_none());
        let plain: Webhook = serde_json::from_value(json!({"url": "http://h/s"})).expect("webhook");
        let s = security_for(&plain, "http://h/s", &c);
        assert!(s.authorization.is_some());
        // Any setting of its own replaces the whole entry: nothing is merged from it.
        let ca_only: Webhook = serde_json::from_value(json!({"url": "http://h/s",
            "caBundle": {"inline": "PEM"}}))
        .expect("webhook");
        let s = security_for(&ca_only, "http://h/s", &c);
        assert!(s.ca_bundle.is_some() && s.authorization.is_none());
        assert_eq!(
            security_for(&plain, "http://other/s", &c),
            Security::default()
        );
    }

    #[test]
    fn secret_backed_credentials_and_tls() {
        let h = hook(json!({"webhook":{"url":"https://h/s",
            "caBundle": {"configMapRef": {"name": "ca", "namespace": "n"}},
            "clientTLS": {"secretRef": {"name": "tls", "namespace": "n"}},
            "authorization": {"type": "Token", "secretRef": {"name": "tok", "namespace": "n", "key": "t"}}}}));
        let w = h.webhook.as_ref().expect("webhook");
        let refs = required_data(&security_for(w, "https://h/s", &[]));
        assert_eq!(refs.len(), 4);
        let mut data = DataMap::new();
        for r in &refs {
            data.insert(r.clone(), format!("{}-value\n", r.key).into_bytes());
        }
        let e = resolve_endpoint("sync", &h, HookOwner::default(), &[], &data).expect("endpoint");
        assert_eq!(e.tls.ca_bundle_pem.as_deref(), Some(&b"ca.crt-value\n"[..]));
        assert_eq!(
            e.tls.client_cert_pem.as_deref(),
            Some(&b"tls.crt-value\n"[..])
        );
        assert_eq!(
            e.tls.client_key_pem.as_deref(),
            Some(&b"tls.key-value\n"[..])
        );
        assert_eq!(
            e.auth,
            Some(HookAuth::Authorization {
                scheme: "Token".into(),
                credentials: "t-value".into()
            })
        );
        data.remove(&refs[3]);
        assert!(matches!(
            resolve_endpoint("sync", &h, HookOwner::default(), &[], &data),
            Err(WebhookError::MissingData { .. })
        ));
    }

    #[test]
    fn basic_auth_and_conflicts() {
        let h = hook(json!({"webhook":{"url":"http://h/s",
            "basicAuth": {"secretRef": {"name": "b", "namespace": "n"}}}}));
        let mut data = DataMap::new();
        data.insert(DataRef::secret("n", "b", "username"), b"me".to_vec());
        data.insert(DataRef::secret("n", "b", "password"), b"pw\n".to_vec());
        let e = resolve_endpoint("sync", &h, HookOwner::default(), &[], &data).expect("endpoint");
        assert_eq!(e.auth, Some(HookAuth::basic("me", "pw")));
        let both = hook(json!({"webhook":{"url":"http://h/s",
            "basicAuth": {"secretRef": {"name": "b", "namespace": "n"}},
            "authorization": {"secretRef": {"name": "t", "namespace": "n", "key": "k"}}}}));
        assert_eq!(
            resolve_endpoint("sync", &both, HookOwner::default(), &[], &data),
            Err(WebhookError::ConflictingAuth("sync"))
        );
        let basic_type = hook(json!({"webhook":{"url":"http://h/s",
            "authorization": {"type": "basic", "secretRef": {"name": "t", "namespace": "n", "key": "k"}}}}));
        assert_eq!(
            resolve_endpoint("sync", &basic_type, HookOwner::default(), &[], &data),
            Err(WebhookError::BasicInAuthorization("sync"))
        );
    }

    #[test]
    fn ca_bundle_needs_exactly_one_source_and_a_value() {
        for ca in [
            json!({}),
            json!({"inline": "PEM", "configMapRef": {"name": "c", "namespace": "n"}}),
            json!({"secretRef": {"name": "s", "namespace": "n"},
                   "configMapRef": {"name": "c", "namespace": "n"}}),
        ] {
            let h = hook(json!({"webhook": {"url": "https://h/s", "caBundle": ca}}));
            assert_eq!(
                resolve_endpoint("sync", &h, HookOwner::default(), &[], &DataMap::new()),
                Err(WebhookError::BadCaBundle("sync")),
                "{ca}"
            );
        }
        let h = hook(json!({"webhook": {"url": "https://h/s",
            "caBundle": {"secretRef": {"name": "s", "namespace": "n"}}}}));
        let mut data = DataMap::new();
        data.insert(DataRef::secret("n", "s", "ca.crt"), b" \n".to_vec());
        assert!(matches!(
            resolve_endpoint("sync", &h, HookOwner::default(), &[], &data),
            Err(WebhookError::EmptyData { .. })
        ));
    }

    #[test]
    fn inline_ca_bundle_needs_no_data() {
        let h = hook(json!({"webhook":{"url":"https://h/s","caBundle":{"inline":"PEM"}}}));
        let w = h.webhook.as_ref().expect("webhook");
        assert!(required_data(&security_for(w, "https://h/s", &[])).is_empty());
        let e = resolve_endpoint("sync", &h, HookOwner::default(), &[], &DataMap::new())
            .expect("endpoint");
        assert_eq!(e.tls.ca_bundle_pem.as_deref(), Some(&b"PEM"[..]));
    }
}
