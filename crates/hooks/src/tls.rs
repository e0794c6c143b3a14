//! One pooled HTTP client per distinct TLS configuration.
//!
//! Like upstream, a `caBundle` replaces the system roots for that hook (it does not add to
//! them), a client certificate is presented when the server asks for one, and TLS 1.2 is the
//! minimum. Clients are cached by their TLS material so that hooks sharing it share a
//! keep-alive connection pool.
//!
//! Proxies come from the usual environment variables (`HTTP_PROXY`, `HTTPS_PROXY`,
//! `NO_PROXY`), except that, as Go's HTTP client does, `localhost` and loopback addresses are
//! always reached directly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls_pemfile::Item;

use crate::endpoint::TlsConfig;
use crate::error::{error_chain, HookError, Result};

/// Distinct TLS configurations kept; past this the cache is emptied (clients are cheap to
/// rebuild, and rotated secrets would otherwise accumulate).
const MAX_CACHED_CLIENTS: usize = 256;

/// The `User-Agent` hooks see, from either transport.
pub(crate) const USER_AGENT_VALUE: &str = concat!("metacontroller/", env!("CARGO_PKG_VERSION"));

/// How long an idle keep-alive connection is kept (Go's default transport uses 90s).
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Caches clients by TLS material.
#[derive(Debug, Default)]
pub(crate) struct ClientCache {
    clients: Mutex<HashMap<ClientKey, reqwest::Client>>,
}

type ClientKey = (TlsConfig, Route, Option<Pin>);

/// A host name connected to at a fixed address instead of through DNS (a URL a resolver
/// mapped), so that TLS still names the host.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Pin {
    pub name: String,
    pub addr: std::net::SocketAddr,
}

/// Whether a client may use the environment's proxy settings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Route {
    /// Proxies from the environment apply.
    Proxied,
    /// Always connect directly (loopback hosts).
    Direct,
}

impl Route {
    /// `Direct` for `localhost` and loopback IPs, as Go's proxy selection does.
    pub fn for_url(url: &reqwest::Url) -> Self {
        let host = url.host_str().unwrap_or_default();
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let direct = host.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if direct {
            Self::Direct
        } else {
            Self::Proxied
        }
    }
}

impl ClientCache {
    /// The client for `tls`, `route` and `pin`, built on first use.
    pub fn get(&self, tls: &TlsConfig, route: Route, pin: Option<Pin>) -> Result<reqwest::Client> {
        let key = (tls.clone(), route, pin);
        if let Some(c) = self.lock().get(&key) {
            return Ok(c.clone());
        }
        // Build outside the lock: loading native roots can take a while.
        let client = build_client(tls, route, key.2.as_ref())?;
        let mut clients = self.lock();
        if clients.len() >= MAX_CACHED_CLIENTS {
            clients.clear();
        }
        Ok(clients.entry(key).or_insert(client).clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, reqwest::Client>> {
        // Only whole clients are inserted, so the map is consistent after a panic.
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }
}

/// Builds a client for one TLS configuration.
pub(crate) fn build_client(
    tls: &TlsConfig,
    route: Route,
    pin: Option<&Pin>,
) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    if route == Route::Direct {
        builder = builder.no_proxy();
    }
    if let Some(pin) = pin {
        builder = builder.resolve(&pin.name, pin.addr);
    }
    builder
        .use_preconfigured_tls(rustls_config(tls)?)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .user_agent(USER_AGENT_VALUE)
        .build()
        .map_err(|e| HookError::Config(format!("can't build HTTP client: {}", error_chain(&e))))
}

/// The TLS configuration of one hook client, built here rather than by the HTTP client so
/// that a client certificate is taken as Go takes it: any X.509 version (v1 included, what
/// `openssl x509 -req` makes without extensions), its key checked against it where the
/// certificate can be parsed.
fn rustls_config(tls: &TlsConfig) -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = match &tls.ca_bundle_pem {
        Some(pem) => {
            let certs =
                parse_certificates(pem).map_err(|e| HookError::Config(format!("caBundle: {e}")))?;
            if certs.is_empty() {
                return Err(HookError::Config(
                    "caBundle: no valid PEM-encoded certificates found".to_owned(),
                ));
            }
            let mut roots = rustls::RootCertStore::empty();
            for der in certs {
                roots
                    .add(CertificateDer::from(der))
                    .map_err(|e| HookError::Config(format!("caBundle: {e}")))?;
            }
            Arc::new(roots)
        }
        None => native_roots(),
    };
    // TLS 1.2 is the minimum, as upstream's.
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| HookError::Config(format!("TLS: {e}")))?
        .with_root_certificates(roots);
    let mut config = match (&tls.client_cert_pem, &tls.client_key_pem) {
        (None, None) => builder.with_no_client_auth(),
        (Some(cert), Some(key)) => {
            let identity = certified_key(cert, key, &provider)?;
            builder
                .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(identity)))
        }
        _ => {
            return Err(HookError::Config(
                "clientTLS: both a certificate and a private key are required".to_owned(),
            ))
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// The system's trusted roots, loaded once per process.
fn native_roots() -> Arc<rustls::RootCertStore> {
    static ROOTS: OnceLock<Arc<rustls::RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for error in &loaded.errors {
                tracing::warn!(%error, "can't load a system root certificate");
            }
            let mut roots = rustls::RootCertStore::empty();
            roots.add_parsable_certificates(loaded.certs);
            Arc::new(roots)
        })
        .clone()
}

fn parse_certificates(pem: &[u8]) -> std::result::Result<Vec<Vec<u8>>, String> {
    rustls_pemfile::certs(&mut &pem[..])
        .map(|r| r.map(|c| c.as_ref().to_vec()).map_err(|e| e.to_string()))
        .collect()
}

/// A client identity from a certificate chain and a key. Other PEM blocks (like `EC
/// PARAMETERS`) are skipped.
fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    provider: &rustls::crypto::CryptoProvider,
) -> Result<rustls::sign::CertifiedKey> {
    let certs = parse_certificates(cert_pem)
        .map_err(|e| HookError::Config(format!("clientTLS certificate: {e}")))?;
    if certs.is_empty() {
        return Err(HookError::Config(
            "clientTLS certificate: no PEM-encoded certificate found".to_owned(),
        ));
    }
    let mut key = None;
    for item in rustls_pemfile::read_all(&mut &key_pem[..]) {
        // Never echo the parse error's input: it is key material.
        let item =
            item.map_err(|_| HookError::Config("clientTLS private key: invalid PEM".to_owned()))?;
        let found = match item {
            Item::Pkcs8Key(k) => Some(PrivateKeyDer::Pkcs8(k)),
            Item::Pkcs1Key(k) => Some(PrivateKeyDer::Pkcs1(k)),
            Item::Sec1Key(k) => Some(PrivateKeyDer::Sec1(k)),
            _ => None,
        };
        if found.is_some() {
            key = found;
            break;
        }
    }
    let key = key.ok_or_else(|| {
        HookError::Config("clientTLS private key: no PEM-encoded private key found".to_owned())
    })?;
    let signer = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| HookError::Config(format!("clientTLS private key: unusable ({e})")))?;
    let chain = certs.into_iter().map(CertificateDer::from).collect();
    let identity = rustls::sign::CertifiedKey::new(chain, signer);
    match identity.keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(
            HookError::Config("clientTLS: the private key does not match the certificate".into()),
        ),
        // Matching, or not checkable here (a certificate the verifier library cannot parse,
        // such as X.509 v1): the server is the judge, as with Go's client.
        _ => Ok(identity),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["localhost".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn default_and_valid_configs_build_and_are_cached() {
        let cache = ClientCache::default();
        cache
            .get(&TlsConfig::default(), Route::Direct, None)
            .unwrap();
        cache
            .get(&TlsConfig::default(), Route::Direct, None)
            .unwrap();
        assert_eq!(cache.len(), 1);
        cache
            .get(&TlsConfig::default(), Route::Proxied, None)
            .unwrap();
        assert_eq!(cache.len(), 2);
        let (cert, key) = ca_pem();
        let tls = TlsConfig {
            ca_bundle_pem: Some(cert.clone().into_bytes()),
            client_cert_pem: Some(cert.into_bytes()),
            client_key_pem: Some(key.into_bytes()),
        };
        cache.get(&tls, Route::Direct, None).unwrap();
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn bad_material_is_a_config_error() {
        let (cert, key) = ca_pem();
        let cases = [
            TlsConfig {
                ca_bundle_pem: Some(b"not pem".to_vec()),
                ..Default::default()
            },
            TlsConfig {
                ca_bundle_pem: Some(key.clone().into_bytes()),
                ..Default::default()
            },
            TlsConfig {
                client_cert_pem: Some(cert.clone().into_bytes()),
                ..Default::default()
            },
            TlsConfig {
                client_key_pem: Some(key.clone().into_bytes()),
                ..Default::default()
            },
            TlsConfig {
                client_cert_pem: Some(cert.clone().into_bytes()),
                client_key_pem: Some(cert.clone().into_bytes()),
                ..Default::default()
            },
            TlsConfig {
                client_cert_pem: Some(key.clone().into_bytes()),
                client_key_pem: Some(key.clone().into_bytes()),
                ..Default::default()
            },
        ];
        for (i, tls) in cases.iter().enumerate() {
            match build_client(tls, Route::Proxied, None) {
                Err(HookError::Config(msg)) => {
                    assert!(!msg.contains("PRIVATE KEY-----"), "case {i}: {msg}");
                }
                other => panic!("case {i}: expected a config error, got {other:?}"),
            }
        }
    }

    #[test]
    fn loopback_hosts_bypass_proxies() {
        let route = |u: &str| Route::for_url(&reqwest::Url::parse(u).unwrap());
        assert_eq!(route("http://localhost:8080/x"), Route::Direct);
        assert_eq!(route("http://LOCALHOST/x"), Route::Direct);
        assert_eq!(route("http://127.0.0.1/x"), Route::Direct);
        assert_eq!(route("http://127.3.4.5/x"), Route::Direct);
        assert_eq!(route("https://[::1]:443/x"), Route::Direct);
        assert_eq!(route("http://hooks.default:80/sync"), Route::Proxied);
        assert_eq!(route("http://10.0.0.1/x"), Route::Proxied);
        assert_eq!(route("http://localhost.example.com/x"), Route::Proxied);
    }
}
