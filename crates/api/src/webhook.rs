//! Hook and webhook configuration shared by both controller kinds.
//!
//! A [`Hook`] names a protocol [`HookVersion`] and a [`Webhook`]: where to send the request
//! (`url`, or `service` + `path`), how long to wait, whether to use ETags, how strictly to
//! decode the reply, and how to secure the connection (`caBundle`, `clientTLS`,
//! `authorization`, `basicAuth`). Connection settings can also come from a controller's
//! `endpointConfigs`, matched by host; settings on the webhook itself win.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::duration::GoDuration;

/// Timeout used when a webhook sets none (or an invalid one), as upstream does.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// One hook of a controller: the protocol version and the webhook that implements it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// Protocol version of the request; `v1` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "v1"))]
    pub version: Option<HookVersion>,
    /// The HTTP endpoint to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Webhook>,
}

impl Hook {
    /// The effective protocol version (`v1` unless set).
    pub fn version(&self) -> HookVersion {
        self.version.unwrap_or_default()
    }
}

/// Hook protocol version. It changes how objects are keyed in the request's maps:
/// `v1` keys namespaced objects by bare name when they share the parent's namespace,
/// `v2` always keys them `namespace/name`.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    JsonSchema,
)]
pub enum HookVersion {
    /// Names relative to the parent.
    #[default]
    #[serde(rename = "v1")]
    V1,
    /// Uniform `namespace/name` keys.
    #[serde(rename = "v2")]
    V2,
}

impl HookVersion {
    /// The wire spelling: `v1` or `v2`.
    pub fn as_str(self) -> &'static str {
        match self {
            HookVersion::V1 => "v1",
            HookVersion::V2 => "v2",
        }
    }
}

/// Where and how to call a hook over HTTP(S).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// Full URL of the hook. Takes precedence over `service`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Request timeout as a Go duration (`10s`, `1m`); 10 seconds when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Response caching keyed by ETag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<WebhookEtagConfig>,
    /// URL path appended to the service address when `service` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// In-cluster Service to call when `url` is absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceReference>,
    /// How strictly to decode the hook's reply: `loose` or `strict`; when absent, `strict`
    /// for `v2` hooks and `loose` for `v1` hooks.
    #[serde(
        default,
        rename = "responseUnMarshallMode",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_unmarshall_mode: Option<ResponseUnmarshallMode>,
    /// CA certificates that verify the hook server; overrides the matching endpointConfigs
    /// entry. The system roots are used when neither sets one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundle>,
    /// Client certificate for mutual TLS; overrides the matching endpointConfigs entry.
    #[serde(default, rename = "clientTLS", skip_serializing_if = "Option::is_none")]
    pub client_tls: Option<ClientTls>,
    /// `Authorization` header credential; excludes `basicAuth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// HTTP Basic credentials; excludes `authorization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
}

impl Webhook {
    /// The configured timeout, or [`DEFAULT_WEBHOOK_TIMEOUT`] when unset, zero or negative.
    pub fn timeout_or_default(&self) -> Duration {
        self.timeout
            .as_ref()
            .and_then(GoDuration::positive)
            .unwrap_or(DEFAULT_WEBHOOK_TIMEOUT)
    }

    /// The effective decode mode for a hook of `version`: the configured one, else
    /// `strict` for `v2` hooks and `loose` for `v1` hooks (upstream's defaults).
    pub fn response_unmarshall_mode(&self, version: HookVersion) -> ResponseUnmarshallMode {
        self.response_unmarshall_mode.unwrap_or(match version {
            HookVersion::V1 => ResponseUnmarshallMode::Loose,
            HookVersion::V2 => ResponseUnmarshallMode::Strict,
        })
    }
}

/// ETag caching of hook responses: when enabled, Metacontroller sends `If-None-Match` and
/// reuses the cached reply on `304 Not Modified`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEtagConfig {
    /// Turns ETag caching on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// How long a cached response lives, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_timeout_seconds: Option<i32>,
    /// How often expired cache entries are swept, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_cleanup_seconds: Option<i32>,
}

/// A Service that serves a hook: `<protocol>://<name>.<namespace>:<port><path>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceReference {
    /// Service name.
    pub name: String,
    /// Service namespace.
    pub namespace: String,
    /// Port; 80 for http and 443 for https when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    /// `http` (default) or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

/// How a hook's JSON reply is decoded. Unknown fields and duplicate keys are detected in
/// both modes; only `strict` turns them into errors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResponseUnmarshallMode {
    /// Unknown fields and duplicate keys are tolerated.
    #[default]
    Loose,
    /// Unknown and duplicated fields are errors.
    Strict,
}

/// Source of PEM CA certificates; exactly one of the three fields is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CaBundle {
    /// PEM text embedded in the controller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// A key of a Secret holding the PEM text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<ResourceKeyRef>,
    /// A key of a ConfigMap holding the PEM text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_ref: Option<ResourceKeyRef>,
}

/// A key of a namespaced Secret or ConfigMap; the key defaults to `ca.crt`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceKeyRef {
    /// Object name.
    pub name: String,
    /// Object namespace.
    pub namespace: String,
    /// Data key; `ca.crt` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "ca.crt"))]
    pub key: Option<String>,
}

impl ResourceKeyRef {
    /// The effective data key.
    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("ca.crt")
    }
}

/// A namespaced Secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRef {
    /// Secret name.
    pub name: String,
    /// Secret namespace.
    pub namespace: String,
}

/// One key of a namespaced Secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Secret namespace.
    pub namespace: String,
    /// Data key.
    pub key: String,
}

/// Credential sent as `Authorization: <type> <secret value>`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// Scheme, matched case-insensitively; `Bearer` when absent. `Basic` is refused: use
    /// `basicAuth`.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "Bearer"))]
    pub type_: Option<String>,
    /// Secret key holding the credential.
    pub secret_ref: SecretKeyRef,
}

impl Authorization {
    /// The effective scheme.
    pub fn scheme(&self) -> &str {
        match self.type_.as_deref() {
            None | Some("") => "Bearer",
            Some(s) => s,
        }
    }
}

/// HTTP Basic credentials read from one Secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The Secret holding both values.
    pub secret_ref: SecretRef,
    /// Key of the user name; `username` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "username"))]
    pub username_key: Option<String>,
    /// Key of the password; `password` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "password"))]
    pub password_key: Option<String>,
}

impl BasicAuth {
    /// The effective user-name key.
    pub fn username_key(&self) -> &str {
        non_empty_or(self.username_key.as_deref(), "username")
    }

    /// The effective password key.
    pub fn password_key(&self) -> &str {
        non_empty_or(self.password_key.as_deref(), "password")
    }
}

/// Client certificate and key for mutual TLS, read from one Secret.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientTls {
    /// The Secret holding both PEM values.
    pub secret_ref: SecretRef,
    /// Key of the certificate; `tls.crt` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "tls.crt"))]
    pub cert_key: Option<String>,
    /// Key of the private key; `tls.key` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("default" = "tls.key"))]
    pub private_key_key: Option<String>,
}

impl ClientTls {
    /// The effective certificate key.
    pub fn cert_key(&self) -> &str {
        non_empty_or(self.cert_key.as_deref(), "tls.crt")
    }

    /// The effective private-key key.
    pub fn private_key_key(&self) -> &str {
        non_empty_or(self.private_key_key.as_deref(), "tls.key")
    }
}

/// Connection settings for every webhook whose URL host (`host` or `host:port`) equals
/// [`EndpointConfig::host`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndpointConfig {
    /// Host or `host:port` to match, e.g. `hooks.example.svc:8443`.
    pub host: String,
    /// CA certificates that verify the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_bundle: Option<CaBundle>,
    /// Client certificate for mutual TLS.
    #[serde(default, rename = "clientTLS", skip_serializing_if = "Option::is_none")]
    pub client_tls: Option<ClientTls>,
    /// `Authorization` header credential; excludes `basicAuth`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// HTTP Basic credentials; excludes `authorization`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth: Option<BasicAuth>,
}

fn non_empty_or<'a>(value: Option<&'a str>, default: &'a str) -> &'a str {
    match value {
        None | Some("") => default,
        Some(s) => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hook_version_defaults_to_v1() {
        assert_eq!(Hook::default().version(), HookVersion::V1);
        let h: Hook = serde_json::from_value(json!({"version": "v2"})).expect("valid");
        assert_eq!(h.version(), HookVersion::V2);
        assert_eq!(h.version().as_str(), "v2");
        assert!(serde_json::from_value::<Hook>(json!({"version": "v3"})).is_err());
    }

    #[test]
    fn webhook_uses_upstream_field_names() {
        let raw = json!({
            "url": "https://hooks.example/sync",
            "timeout": "30s",
            "etag": {"enabled": true, "cacheTimeoutSeconds": 60, "cacheCleanupSeconds": 300},
            "path": "/sync",
            "service": {"name": "hooks", "namespace": "ns", "port": 8443, "protocol": "https"},
            "responseUnMarshallMode": "strict",
            "caBundle": {"configMapRef": {"name": "ca", "namespace": "ns"}},
            "clientTLS": {"secretRef": {"name": "client", "namespace": "ns"}},
            "authorization": {"type": "Token", "secretRef": {"name": "t", "namespace": "ns", "key": "k"}}
        });
        let w: Webhook = serde_json::from_value(raw.clone()).expect("valid");
        assert_eq!(w.timeout_or_default(), Duration::from_secs(30));
        assert_eq!(
            w.response_unmarshall_mode(HookVersion::V1),
            ResponseUnmarshallMode::Strict
        );
        assert_eq!(
            w.authorization.as_ref().map(Authorization::scheme),
            Some("Token")
        );
        let ca = w.ca_bundle.as_ref().and_then(|c| c.config_map_ref.as_ref());
        assert_eq!(ca.map(ResourceKeyRef::key), Some("ca.crt"));
        let tls = w.client_tls.as_ref().expect("clientTLS");
        assert_eq!(
            (tls.cert_key(), tls.private_key_key()),
            ("tls.crt", "tls.key")
        );
        assert_eq!(serde_json::to_value(&w).expect("serializes"), raw);
    }

    #[test]
    fn webhook_defaults() {
        let w = Webhook::default();
        assert_eq!(w.timeout_or_default(), DEFAULT_WEBHOOK_TIMEOUT);
        assert_eq!(
            w.response_unmarshall_mode(HookVersion::V1),
            ResponseUnmarshallMode::Loose
        );
        assert_eq!(
            w.response_unmarshall_mode(HookVersion::V2),
            ResponseUnmarshallMode::Strict
        );
        let loose: Webhook =
            serde_json::from_value(json!({"responseUnMarshallMode": "loose"})).expect("valid");
        assert_eq!(
            loose.response_unmarshall_mode(HookVersion::V2),
            ResponseUnmarshallMode::Loose
        );
        let zero: Webhook = serde_json::from_value(json!({"timeout": "0s"})).expect("valid");
        assert_eq!(zero.timeout_or_default(), DEFAULT_WEBHOOK_TIMEOUT);
        let negative: Webhook = serde_json::from_value(json!({"timeout": "-1s"})).expect("valid");
        assert_eq!(negative.timeout_or_default(), DEFAULT_WEBHOOK_TIMEOUT);
        assert!(serde_json::from_value::<Webhook>(json!({"timeout": "soon"})).is_err());
    }

    #[test]
    fn auth_defaults() {
        let a: Authorization = serde_json::from_value(
            json!({"secretRef": {"name": "t", "namespace": "ns", "key": "token"}}),
        )
        .expect("valid");
        assert_eq!(a.scheme(), "Bearer");
        let b: BasicAuth = serde_json::from_value(
            json!({"secretRef": {"name": "b", "namespace": "ns"}, "usernameKey": "user"}),
        )
        .expect("valid");
        assert_eq!((b.username_key(), b.password_key()), ("user", "password"));
        assert!(serde_json::from_value::<BasicAuth>(json!({"usernameKey": "user"})).is_err());
    }
}
