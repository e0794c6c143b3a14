//! What the engine tells the client about one hook: where it lives and how to talk to it.
//!
//! The engine resolves a controller's `webhook` spec (a full `url`, or a Service reference plus
//! `path`, and the secrets behind `caBundle`, `clientTLS`, `authorization` and `basicAuth`) into a
//! [`HookEndpoint`]. Types that hold secrets implement `Debug` by hand so that credentials never
//! reach logs or error messages.

use std::fmt;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Deadline of a hook call when the webhook spec names none (upstream's default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A hook, resolved and ready to call. `Debug` shows the URL without userinfo.
#[derive(Clone, PartialEq, Eq)]
pub struct HookEndpoint {
    /// Full URL: the spec's `url`, or `<protocol>://<svc>.<ns>:<port><path>`.
    pub url: String,
    /// The whole call (connect, send, read the response) is abandoned at this deadline.
    pub timeout: Duration,
    /// How strictly the response is decoded.
    pub unmarshal_mode: UnmarshalMode,
    /// ETag caching of responses, when the webhook spec enables it.
    pub etag: Option<EtagConfig>,
    /// Private CA and client certificate; empty means system roots, no client certificate.
    pub tls: TlsConfig,
    /// The `Authorization` header to send, if any.
    pub auth: Option<HookAuth>,
    /// Which controller owns this hook: labels its metrics and scopes its ETag cache.
    pub owner: HookOwner,
}

impl fmt::Debug for HookEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookEndpoint")
            .field("url", &crate::error::redact_url(&self.url))
            .field("timeout", &self.timeout)
            .field("unmarshal_mode", &self.unmarshal_mode)
            .field("etag", &self.etag)
            .field("tls", &self.tls)
            .field("auth", &self.auth)
            .field("owner", &self.owner)
            .finish()
    }
}

impl HookEndpoint {
    /// An endpoint with upstream's defaults: 10s timeout, loose decoding, no ETag, TLS or auth.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            timeout: DEFAULT_TIMEOUT,
            unmarshal_mode: UnmarshalMode::Loose,
            etag: None,
            tls: TlsConfig::default(),
            auth: None,
            owner: HookOwner::default(),
        }
    }

    /// Sets the deadline; a zero duration falls back to [`DEFAULT_TIMEOUT`], as upstream does
    /// for non-positive timeouts.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = if timeout.is_zero() {
            DEFAULT_TIMEOUT
        } else {
            timeout
        };
        self
    }

    /// Sets the decoding mode.
    pub fn with_unmarshal_mode(mut self, mode: UnmarshalMode) -> Self {
        self.unmarshal_mode = mode;
        self
    }

    /// Enables (or configures) the ETag cache.
    pub fn with_etag(mut self, etag: EtagConfig) -> Self {
        self.etag = Some(etag);
        self
    }

    /// Sets the TLS material.
    pub fn with_tls(mut self, tls: TlsConfig) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the `Authorization` header.
    pub fn with_auth(mut self, auth: HookAuth) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Names the controller that owns the hook.
    pub fn with_owner(mut self, owner: HookOwner) -> Self {
        self.owner = owner;
        self
    }
}

/// The controller a hook belongs to. Upstream attaches these as constant labels
/// (`controller_name`, `controller_type`, together with `url`) to every hook metric.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HookOwner {
    /// `metadata.name` of the CompositeController or DecoratorController.
    pub controller_name: String,
    /// `CompositeController` or `DecoratorController`.
    pub controller_type: String,
}

impl HookOwner {
    /// A controller of the given type and name.
    pub fn new(controller_type: impl Into<String>, controller_name: impl Into<String>) -> Self {
        Self {
            controller_name: controller_name.into(),
            controller_type: controller_type.into(),
        }
    }
}

/// How the response body is decoded into the caller's type (`responseUnMarshallMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum UnmarshalMode {
    /// Unknown fields are ignored (and reported back), duplicate keys keep the last value.
    #[default]
    Loose,
    /// Unknown fields and duplicate keys are decode errors.
    Strict,
}

/// The webhook's `etag` block.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EtagConfig {
    /// `enabled`: when false the endpoint behaves as if no ETag block were given.
    pub enabled: bool,
    /// `cacheTimeoutSeconds`: how long a cached response is kept. `None` or zero: entries do not
    /// age out (they are still replaced, and the per-hook cache is bounded in size).
    pub cache_timeout: Option<Duration>,
    /// `cacheCleanupSeconds`: how often expired entries are swept. `None` or zero: every
    /// `cache_timeout`.
    pub cache_cleanup: Option<Duration>,
}

impl EtagConfig {
    /// An enabled cache with no expiry configured.
    pub fn enabled() -> Self {
        Self {
            enabled: true,
            cache_timeout: None,
            cache_cleanup: None,
        }
    }
}

/// TLS material for one endpoint, all PEM.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct TlsConfig {
    /// CA certificates that replace the system roots for this endpoint.
    pub ca_bundle_pem: Option<Vec<u8>>,
    /// Client certificate chain for mutual TLS (needs `client_key_pem`).
    pub client_cert_pem: Option<Vec<u8>>,
    /// Private key of the client certificate.
    pub client_key_pem: Option<Vec<u8>>,
}

impl TlsConfig {
    /// True when nothing is configured: system roots, no client certificate.
    pub fn is_default(&self) -> bool {
        self.ca_bundle_pem.is_none()
            && self.client_cert_pem.is_none()
            && self.client_key_pem.is_none()
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let len = |v: &Option<Vec<u8>>| v.as_ref().map(|b| b.len());
        f.debug_struct("TlsConfig")
            .field("ca_bundle_pem_bytes", &len(&self.ca_bundle_pem))
            .field("client_cert_pem_bytes", &len(&self.client_cert_pem))
            .field(
                "client_key_pem",
                &self.client_key_pem.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Credentials sent in the `Authorization` header.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum HookAuth {
    /// `Authorization: <scheme> <credentials>`; the scheme defaults to `Bearer`.
    Authorization {
        /// e.g. `Bearer`, `Token`; empty means `Bearer`.
        scheme: String,
        /// The secret value (surrounding whitespace is trimmed when sent).
        credentials: String,
    },
    /// `Authorization: Basic base64(username:password)`.
    Basic {
        /// Must not contain `:`.
        username: String,
        /// The password.
        password: String,
    },
}

impl HookAuth {
    /// A bearer token.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self::Authorization {
            scheme: "Bearer".to_owned(),
            credentials: token.into(),
        }
    }

    /// Basic credentials.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Basic {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The header value, built as upstream does: the scheme and the secret are trimmed, an
    /// empty scheme means `Bearer`, and a basic username may not contain `:`.
    pub(crate) fn header_value(&self) -> Result<String, String> {
        match self {
            Self::Authorization {
                scheme,
                credentials,
            } => {
                let scheme = match scheme.trim() {
                    "" => "Bearer",
                    s => s,
                };
                if scheme.eq_ignore_ascii_case("basic") {
                    return Err(
                        "authorization scheme \"Basic\" is not supported; use basic credentials instead"
                            .to_owned(),
                    );
                }
                Ok(format!("{scheme} {}", credentials.trim()))
            }
            Self::Basic { username, password } => {
                let username = username.trim();
                if username.contains(':') {
                    return Err("basic auth username must not contain ':'".to_owned());
                }
                let raw = format!("{username}:{}", password.trim());
                Ok(format!("Basic {}", STANDARD.encode(raw.as_bytes())))
            }
        }
    }
}

impl fmt::Debug for HookAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Authorization { scheme, .. } => f
                .debug_struct("Authorization")
                .field("scheme", scheme)
                .field("credentials", &"<redacted>")
                .finish(),
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_upstream() {
        let e = HookEndpoint::new("http://h/sync");
        assert_eq!(e.timeout, Duration::from_secs(10));
        assert_eq!(e.unmarshal_mode, UnmarshalMode::Loose);
        assert!(e.etag.is_none() && e.auth.is_none() && e.tls.is_default());
        assert_eq!(
            e.clone().with_timeout(Duration::ZERO).timeout,
            DEFAULT_TIMEOUT
        );
        assert_eq!(
            e.with_timeout(Duration::from_secs(2)).timeout,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn header_values() {
        assert_eq!(
            HookAuth::bearer(" t0k ").header_value().unwrap(),
            "Bearer t0k"
        );
        let custom = HookAuth::Authorization {
            scheme: "Token".into(),
            credentials: "abc".into(),
        };
        assert_eq!(custom.header_value().unwrap(), "Token abc");
        let blank = HookAuth::Authorization {
            scheme: "  ".into(),
            credentials: "abc".into(),
        };
        assert_eq!(blank.header_value().unwrap(), "Bearer abc");
        let basic_scheme = HookAuth::Authorization {
            scheme: "basic".into(),
            credentials: "abc".into(),
        };
        assert!(basic_scheme.header_value().is_err());
        assert_eq!(
            HookAuth::basic("Aladdin", "open sesame")
                .header_value()
                .unwrap(),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ=="
        );
        assert!(HookAuth::basic("a:b", "c").header_value().is_err());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let a = format!("{:?}", HookAuth::bearer("s3cret-token"));
        let b = format!("{:?}", HookAuth::basic("user", "pa55word"));
        let t = format!(
            "{:?}",
            TlsConfig {
                ca_bundle_pem: Some(b"ca".to_vec()),
                client_cert_pem: Some(b"cert".to_vec()),
                client_key_pem: Some(b"KEYMATERIAL".to_vec()),
            }
        );
        let e = format!(
            "{:?}",
            HookEndpoint::new("http://user:pa55word@x/sync")
                .with_auth(HookAuth::bearer("s3cret-token"))
        );
        assert!(!a.contains("s3cret") && a.contains("redacted"));
        assert!(!b.contains("pa55word") && b.contains("user"));
        assert!(!t.contains("KEYMATERIAL"));
        assert!(!e.contains("s3cret") && !e.contains("pa55word") && e.contains("http://x/sync"));
    }
}
