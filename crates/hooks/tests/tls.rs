//! HTTPS hooks: private CAs and mutual TLS, with certificates made at test time.

mod support;

use std::sync::Arc;

use metacontroller_hooks::{HookClient, HookEndpoint, HookError, TlsConfig};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use support::{Reply, TestServer};

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

struct Leaf {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    fn pem(&self) -> Vec<u8> {
        self.issuer.pem().into_bytes()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    fn leaf(&self, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key,
        }
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS acceptor serving `server`; when `client_ca` is given, clients must present a
/// certificate signed by it.
fn acceptor(server: &Leaf, client_ca: Option<&Ca>) -> tokio_rustls::TlsAcceptor {
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key.serialize_der()));
    let config = builder
        .with_single_cert(vec![server.cert_der.clone()], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn https_server(server_cert: &Leaf, client_ca: Option<&Ca>) -> TestServer {
    TestServer::start_tls(acceptor(server_cert, client_ca), |_| {
        Reply::json(200, r#"{"ok":true}"#)
    })
    .await
}

fn assert_connect_error(err: HookError) {
    assert!(matches!(err, HookError::Connect { .. }), "{err:?}");
}

#[tokio::test]
async fn private_ca_right_works_wrong_or_missing_fails() {
    let ca = Ca::new("hooks-ca");
    let other = Ca::new("other-ca");
    let cert = ca.leaf(
        &["127.0.0.1", "localhost"],
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let server = https_server(&cert, None).await;
    let client = HookClient::new();
    let body = json!({"parent": {}});

    let good = HookEndpoint::new(server.https_url("/sync")).with_tls(TlsConfig {
        ca_bundle_pem: Some(ca.pem()),
        ..Default::default()
    });
    let r = client.call::<Value>("sync", &good, &body).await.unwrap();
    assert_eq!(r.value, json!({"ok": true}));
    assert_eq!(server.requests().len(), 1);

    // A bundle with several certificates, the right one among them, works too.
    let mut bundle = other.pem();
    bundle.extend_from_slice(&ca.pem());
    let multi = HookEndpoint::new(server.https_url("/sync")).with_tls(TlsConfig {
        ca_bundle_pem: Some(bundle),
        ..Default::default()
    });
    client.call::<Value>("sync", &multi, &body).await.unwrap();

    let wrong = HookEndpoint::new(server.https_url("/sync")).with_tls(TlsConfig {
        ca_bundle_pem: Some(other.pem()),
        ..Default::default()
    });
    assert_connect_error(
        client
            .call::<Value>("sync", &wrong, &body)
            .await
            .unwrap_err(),
    );

    // System roots do not know a private CA.
    let system = HookEndpoint::new(server.https_url("/sync"));
    assert_connect_error(
        client
            .call::<Value>("sync", &system, &body)
            .await
            .unwrap_err(),
    );

    // The failed handshakes never delivered a request.
    assert_eq!(server.requests().len(), 2);
}

#[tokio::test]
async fn mutual_tls_needs_the_right_client_certificate() {
    let ca = Ca::new("hooks-ca");
    let rogue_ca = Ca::new("rogue-ca");
    let server_cert = ca.leaf(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let server = https_server(&server_cert, Some(&ca)).await;
    let client = HookClient::new();
    let body = json!({});

    let with = |leaf: &Leaf| {
        HookEndpoint::new(server.https_url("/sync")).with_tls(TlsConfig {
            ca_bundle_pem: Some(ca.pem()),
            client_cert_pem: Some(leaf.cert_pem.clone().into_bytes()),
            client_key_pem: Some(leaf.key.serialize_pem().into_bytes()),
        })
    };
    let good = ca.leaf(&["metacontroller"], ExtendedKeyUsagePurpose::ClientAuth);
    let r = client
        .call::<Value>("sync", &with(&good), &body)
        .await
        .unwrap();
    assert_eq!(r.value, json!({"ok": true}));

    let without = HookEndpoint::new(server.https_url("/sync")).with_tls(TlsConfig {
        ca_bundle_pem: Some(ca.pem()),
        ..Default::default()
    });
    assert_connect_error(
        client
            .call::<Value>("sync", &without, &body)
            .await
            .unwrap_err(),
    );

    let rogue = rogue_ca.leaf(&["metacontroller"], ExtendedKeyUsagePurpose::ClientAuth);
    assert_connect_error(
        client
            .call::<Value>("sync", &with(&rogue), &body)
            .await
            .unwrap_err(),
    );

    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn bad_tls_material_is_a_config_error_before_any_request() {
    let server = TestServer::start(|_| Reply::json(200, "{}")).await;
    let client = HookClient::new();
    let ep = HookEndpoint::new(server.url("/sync")).with_tls(TlsConfig {
        ca_bundle_pem: Some(
            b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n".to_vec(),
        ),
        ..Default::default()
    });
    let err = client
        .call::<Value>("sync", &ep, &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::Config(_)), "{err:?}");
    assert!(server.requests().is_empty());
}
