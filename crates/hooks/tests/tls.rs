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

// An X.509 v1 certificate, as `openssl x509 -req` makes one without an extensions file: no
// version field, no extensions. The certificate library cannot make one, so it is encoded
// here (DER) and signed with the issuer's key.

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = content.len();
    if n < 0x80 {
        out.push(n as u8);
    } else if n < 0x100 {
        out.extend([0x81, n as u8]);
    } else {
        out.extend([0x82, (n >> 8) as u8, n as u8]);
    }
    out.extend_from_slice(content);
    out
}

fn common_name(cn: &str) -> Vec<u8> {
    const CN: [u8; 5] = [0x06, 0x03, 0x55, 0x04, 0x03];
    let attribute = der(0x30, &[&CN[..], &der(0x0c, cn.as_bytes())].concat());
    der(0x30, &der(0x31, &attribute))
}

/// A v1 certificate for `subject`'s key, issued by `issuer_cn` with `issuer`'s key (ECDSA
/// P-256 with SHA-256, rcgen's default).
fn v1_certificate(subject: &KeyPair, issuer_cn: &str, issuer: &KeyPair) -> CertificateDer<'static> {
    use rcgen::{PublicKeyData, SigningKey};
    const ECDSA_SHA256: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
    let algorithm = der(0x30, &ECDSA_SHA256);
    let validity = der(
        0x30,
        &[der(0x17, b"260101000000Z"), der(0x17, b"491231235959Z")].concat(),
    );
    let tbs = der(
        0x30,
        &[
            der(0x02, &[0x01]),
            algorithm.clone(),
            common_name(issuer_cn),
            validity,
            common_name("metacontroller"),
            subject.subject_public_key_info(),
        ]
        .concat(),
    );
    let signature = issuer.sign(&tbs).expect("sign");
    let cert = der(
        0x30,
        &[
            tbs,
            algorithm,
            der(0x03, &[&[0u8][..], &signature].concat()),
        ]
        .concat(),
    );
    CertificateDer::from(cert)
}

fn pem(label: &str, der: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out.into_bytes()
}

/// A server-side check that accepts exactly one client certificate (the verifier library
/// refuses v1 certificates, as Go's server does not).
#[derive(Debug)]
struct ExactlyThisClient(CertificateDer<'static>);

impl rustls::server::danger::ClientCertVerifier for ExactlyThisClient {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.0.as_ref() {
            Ok(rustls::server::danger::ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the expected client".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[tokio::test]
async fn an_x509_v1_client_certificate_is_presented() {
    let ca = Ca::new("hooks-ca");
    let server_cert = ca.leaf(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let client_key = KeyPair::generate().unwrap();
    let ca_key = KeyPair::generate().unwrap();
    let client_cert = v1_certificate(&client_key, "hooks-ca", &ca_key);

    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(Arc::new(ExactlyThisClient(client_cert.clone())))
        .with_single_cert(
            vec![server_cert.cert_der.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_cert.key.serialize_der())),
        )
        .unwrap();
    let server = TestServer::start_tls(tokio_rustls::TlsAcceptor::from(Arc::new(config)), |_| {
        Reply::json(200, r#"{"ok":true}"#)
    })
    .await;
    let ep = HookEndpoint::new(server.https_url("/sync")).with_tls(TlsConfig {
        ca_bundle_pem: Some(ca.pem()),
        client_cert_pem: Some(pem("CERTIFICATE", &client_cert)),
        client_key_pem: Some(client_key.serialize_pem().into_bytes()),
    });
    let r = HookClient::new()
        .call::<Value>("sync", &ep, &json!({}))
        .await
        .expect("a v1 client certificate is accepted and presented");
    assert_eq!(r.value, json!({"ok": true}));
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_key_that_does_not_match_its_certificate_is_named_as_the_cause() {
    let ca = Ca::new("hooks-ca");
    let leaf = ca.leaf(&["metacontroller"], ExtendedKeyUsagePurpose::ClientAuth);
    let other_key = KeyPair::generate().unwrap();
    let ep = HookEndpoint::new("https://127.0.0.1:1/sync").with_tls(TlsConfig {
        ca_bundle_pem: Some(ca.pem()),
        client_cert_pem: Some(leaf.cert_pem.into_bytes()),
        client_key_pem: Some(other_key.serialize_pem().into_bytes()),
    });
    match HookClient::new()
        .call::<Value>("sync", &ep, &json!({}))
        .await
    {
        Err(HookError::Config(msg)) => {
            assert!(msg.contains("does not match"), "{msg}");
            assert!(!msg.contains("builder error"), "{msg}");
        }
        other => panic!("expected a config error, got {other:?}"),
    }
}

/// A TLS server for one request that answers `response` as raw bytes and then closes the TCP
/// connection itself, without close_notify; returns its address and its task.
async fn closing_without_close_notify(
    ca: &Ca,
    response: &'static [u8],
) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server_cert = ca.leaf(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let acceptor = acceptor(&server_cert, None);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        // The request: headers, then a body of Content-Length bytes.
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = tls.read(&mut buf).await.unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
            assert!(n > 0, "the request ended early");
        }
        tls.write_all(response).await.unwrap();
        tls.flush().await.unwrap();
        let (tcp, _) = tls.into_inner();
        drop(tcp);
    });
    (addr, task)
}

/// Python's `http.server` over TLS answers HTTP/1.0 without a `Content-Length` and ends the
/// body by closing the connection, without TLS close_notify. Go's client reads such a body to
/// its end; so must this one.
#[tokio::test]
async fn a_body_ended_by_closing_without_close_notify_is_read_to_its_end() {
    let ca = Ca::new("hooks-ca");
    let (addr, server) = closing_without_close_notify(
        &ca,
        b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"ok\":true}",
    )
    .await;
    let ep = HookEndpoint::new(format!("https://{addr}/sync")).with_tls(TlsConfig {
        ca_bundle_pem: Some(ca.pem()),
        ..Default::default()
    });
    let r = HookClient::new()
        .call::<Value>("sync", &ep, &json!({}))
        .await
        .expect("the body up to the close is the response");
    assert_eq!(r.value, json!({"ok": true}));
    server.await.unwrap();
}

/// A body that announced its length and was cut short is not whole, close_notify or not: the
/// call fails and nothing is decoded from the part that came.
#[tokio::test]
async fn a_body_shorter_than_its_length_is_an_error_even_without_close_notify() {
    let ca = Ca::new("hooks-ca");
    let (addr, server) = closing_without_close_notify(
        &ca,
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"ok\":true}",
    )
    .await;
    let ep = HookEndpoint::new(format!("https://{addr}/sync")).with_tls(TlsConfig {
        ca_bundle_pem: Some(ca.pem()),
        ..Default::default()
    });
    let err = HookClient::new()
        .call::<Value>("sync", &ep, &json!({}))
        .await
        .expect_err("a truncated body");
    assert!(matches!(err, HookError::Connect { .. }), "{err:?}");
    server.await.unwrap();
}

/// Sends `https://hook.default.svc/...` to one address, as `dev` does for Service URLs.
struct ServiceAt(String);

impl metacontroller_hooks::UrlResolver for ServiceAt {
    fn resolve(&self, url: &metacontroller_hooks::Url) -> Option<metacontroller_hooks::Url> {
        (url.host_str() == Some("hook.default.svc")).then(|| {
            metacontroller_hooks::Url::parse(&format!("{}{}", self.0, url.path())).unwrap()
        })
    }
}

/// A hook URL naming a Service, resolved to a pod's address, still names the Service for SNI
/// and certificate verification: its certificate is for the Service's name, not the pod's IP.
#[tokio::test]
async fn a_resolved_service_url_keeps_its_name_for_tls() {
    let ca = Ca::new("hooks-ca");
    let server_cert = ca.leaf(&["hook.default.svc"], ExtendedKeyUsagePurpose::ServerAuth);
    let server = https_server(&server_cert, None).await;
    let base = server.https_url("");
    let client =
        HookClient::with_resolver(Arc::new(ServiceAt(base.trim_end_matches('/').to_string())));
    let ep = HookEndpoint::new("https://hook.default.svc/sync").with_tls(TlsConfig {
        ca_bundle_pem: Some(ca.pem()),
        ..Default::default()
    });
    let r = client
        .call::<Value>("sync", &ep, &json!({}))
        .await
        .expect("the certificate names the Service");
    assert_eq!(r.value, json!({"ok": true}));
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].path, "/sync");
    assert_eq!(requests[0].header("host"), Some("hook.default.svc"));
}
