//! Component tests of hook security through the engine: private CAs from every source, mutual
//! TLS, `Authorization` headers, credentials rotated in their Secret while the controller
//! runs, the ETag cache, strict decoding and timeouts.
//!
//! The engine runs against the embedded API server over real HTTP; hooks are served by the
//! test on 127.0.0.1 (HTTPS with certificates generated at test time). Every wait is bounded;
//! every server and engine is stopped by the test.

#[path = "../../hooks/tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::ByteString;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::ApiResource;
use kube::Client;
use metacontroller_hooks::HookClient;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{json, Value};
use support::{Reply, Request, TestServer};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

mod common;

use common::{
    api_writes, crd, engine_options, install_crds, join_engine, obj, resource, spawn_engine,
    start_api_server, wait_for, Engine,
};

// ---------------------------------------------------------------------------------------------
// Certificates and HTTPS hook servers.

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

struct Leaf {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA certificate"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn leaf(&self, sans: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
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

/// An HTTPS hook on 127.0.0.1 with a certificate from `ca`; when `client_ca` is given, only
/// clients presenting a certificate it signed get through the handshake.
async fn https_hook(
    ca: &Ca,
    client_ca: Option<&Ca>,
    handler: impl Fn(&Request) -> Reply + Send + Sync + 'static,
) -> TestServer {
    let server = ca.leaf(&["127.0.0.1"], ExtendedKeyUsagePurpose::ServerAuth);
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("TLS versions");
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(client_ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(client_ca.issuer.der().clone())
                .expect("client CA");
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
    };
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server.key.serialize_der()));
    let config = builder
        .with_single_cert(vec![server.cert_der.clone()], key)
        .expect("server certificate");
    TestServer::start_tls(tokio_rustls::TlsAcceptor::from(Arc::new(config)), handler).await
}

// ---------------------------------------------------------------------------------------------
// Hook behaviour.

/// The parent's name in a hook request.
fn parent_name(req: &Request) -> String {
    req.json()["parent"]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The usual answer: one ConfigMap `<parent>-cm` carrying the parent's color, and the color
/// as status. `extra` is merged into the top level of the reply.
fn color_body(req: &Request, extra: Value) -> String {
    let request = req.json();
    let parent = &request["parent"];
    let name = parent["metadata"]["name"].as_str().unwrap_or_default();
    let color = parent["spec"]["color"].clone();
    let mut body = json!({
        "status": {"color": color},
        "children": [{
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("{name}-cm"), "labels": {"thing": name}},
            "data": {"color": color}
        }]
    });
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    body.to_string()
}

fn color_reply(req: &Request) -> Reply {
    Reply::json(200, &color_body(req, json!({})))
}

// ---------------------------------------------------------------------------------------------
// The embedded API server and the engine.

struct Env {
    client: Client,
    hooks: HookClient,
    shutdown: CancellationToken,
    engine: Engine,
}

/// Base64, as Secret `data` holds values.
fn b64(value: &str) -> Value {
    serde_json::to_value(ByteString(value.as_bytes().to_vec())).expect("base64")
}

impl Env {
    async fn start() -> Env {
        let shutdown = CancellationToken::new();
        let client = start_api_server(&shutdown).await;
        install_crds(&client, [crd("Thing", "things", "Namespaced")]).await;
        let hooks = HookClient::new();
        let opts = metacontroller_engine::EngineOptions {
            hook_client: hooks.clone(),
            ..engine_options()
        };
        let engine = spawn_engine(&client, opts, &shutdown);
        Env {
            client,
            hooks,
            shutdown,
            engine,
        }
    }

    /// A CompositeController for the Things labelled `group=<name>`, whose sync hook is
    /// `webhook` (plus `version` when given); `extra_spec` is merged into the spec.
    async fn create_controller(&self, name: &str, sync_hook: Value, extra_spec: Value) {
        let mut spec = json!({
            "parentResource": {
                "apiVersion": "example.com/v1", "resource": "things",
                "labelSelector": {"matchLabels": {"group": name}}
            },
            "childResources": [{
                "apiVersion": "v1", "resource": "configmaps",
                "updateStrategy": {"method": "InPlace"}
            }],
            "hooks": {"sync": sync_hook}
        });
        if let (Some(s), Some(e)) = (spec.as_object_mut(), extra_spec.as_object()) {
            s.extend(e.clone());
        }
        self.controllers()
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "metacontroller.k8s.io/v1alpha1",
                    "kind": "CompositeController",
                    "metadata": {"name": name},
                    "spec": spec
                })),
            )
            .await
            .expect("create CompositeController");
    }

    /// A Thing `name` in `default`, selected by the controller `group`.
    async fn create_thing(&self, group: &str, name: &str, color: &str) {
        self.things()
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "example.com/v1", "kind": "Thing",
                    "metadata": {"name": name, "labels": {"group": group}},
                    "spec": {"color": color, "selector": {"matchLabels": {"thing": name}}}
                })),
            )
            .await
            .expect("create Thing");
    }

    /// Creates or replaces the Secret `name` in `default` with `values`.
    async fn put_secret(&self, name: &str, values: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = values
            .iter()
            .map(|(k, v)| (k.to_string(), b64(v)))
            .collect();
        self.put(
            &resource("", "v1", "Secret", "secrets"),
            json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "default"}, "data": data}),
        )
        .await;
    }

    /// Creates the ConfigMap `name` in `default` with `values`.
    async fn put_config_map(&self, name: &str, values: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = values
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        self.put(
            &resource("", "v1", "ConfigMap", "configmaps"),
            json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": "default"}, "data": data}),
        )
        .await;
    }

    async fn put(&self, ar: &ApiResource, object: Value) {
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), "default", ar);
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_string();
        match api.get_opt(&name).await.expect("get") {
            None => {
                api.create(&PostParams::default(), &obj(object))
                    .await
                    .expect("create");
            }
            Some(_) => {
                api.patch(&name, &PatchParams::default(), &Patch::Merge(object))
                    .await
                    .expect("update");
            }
        }
    }

    fn controllers(&self) -> Api<DynamicObject> {
        Api::all_with(
            self.client.clone(),
            &resource(
                "metacontroller.k8s.io",
                "v1alpha1",
                "CompositeController",
                "compositecontrollers",
            ),
        )
    }

    fn things(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            "default",
            &resource("example.com", "v1", "Thing", "things"),
        )
    }

    fn configmaps(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.client.clone(),
            "default",
            &resource("", "v1", "ConfigMap", "configmaps"),
        )
    }

    async fn child_color(&self, thing: &str) -> Option<String> {
        let cm = self
            .configmaps()
            .get_opt(&format!("{thing}-cm"))
            .await
            .ok()??;
        cm.data["data"]["color"].as_str().map(str::to_string)
    }

    async fn wait_child(&self, thing: &str, color: &str) {
        wait_for(&format!("child of {thing}"), || async {
            (self.child_color(thing).await.as_deref() == Some(color)).then_some(())
        })
        .await;
    }

    /// Messages of Warning events with `reason` about the object `name`.
    async fn warnings(&self, name: &str, reason: &str) -> Vec<String> {
        let events: Api<DynamicObject> = Api::namespaced_with(
            self.client.clone(),
            "default",
            &resource("events.k8s.io", "v1", "Event", "events"),
        );
        let Ok(list) = events.list(&ListParams::default()).await else {
            return Vec::new();
        };
        list.items
            .iter()
            .filter(|e| {
                e.data["type"] == "Warning"
                    && e.data["reason"] == reason
                    && e.data["regarding"]["name"] == name
            })
            .map(|e| e.data["note"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Waits for a Warning event with `reason` about `name` and returns its message.
    async fn wait_warning(&self, name: &str, reason: &str) -> String {
        wait_for(&format!("{reason} event on {name}"), || async {
            self.warnings(name, reason).await.into_iter().next()
        })
        .await
    }

    /// Write requests (POST, PUT, PATCH, DELETE) the API server served, events excluded.
    async fn write_count(&self) -> u64 {
        api_writes(&self.client, false).await
    }

    /// Asserts that a failing Thing got neither a child nor a status.
    async fn assert_untouched(&self, thing: &str) {
        assert_eq!(self.child_color(thing).await, None, "{thing} has a child");
        let t = self.things().get(thing).await.expect("Thing");
        assert!(t.data.get("status").is_none(), "{thing} has a status");
    }

    async fn stop(self) {
        self.shutdown.cancel();
        join_engine(self.engine).await;
    }
}

fn requests_for(server: &TestServer, thing: &str) -> Vec<Request> {
    server
        .requests()
        .into_iter()
        .filter(|r| parent_name(r) == thing)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_ca_from_each_source() {
    let env = Env::start().await;
    let ca = Ca::new("hooks-ca");
    let hook = https_hook(&ca, None, color_reply).await;
    let url = hook.https_url("/sync");
    env.put_secret("ca-secret", &[("bundle.pem", &ca.pem())])
        .await;
    env.put_config_map("ca-config", &[("ca.crt", &ca.pem())])
        .await;

    env.create_controller(
        "inline",
        json!({"webhook": {"url": url, "caBundle": {"inline": ca.pem()}}}),
        json!({}),
    )
    .await;
    env.create_controller(
        "secret",
        json!({"webhook": {"url": url, "caBundle": {"secretRef":
            {"name": "ca-secret", "namespace": "default", "key": "bundle.pem"}}}}),
        json!({}),
    )
    .await;
    // The key defaults to `ca.crt`.
    env.create_controller(
        "configmap",
        json!({"webhook": {"url": url, "caBundle": {"configMapRef":
            {"name": "ca-config", "namespace": "default"}}}}),
        json!({}),
    )
    .await;
    env.create_thing("inline", "a", "red").await;
    env.create_thing("secret", "b", "green").await;
    env.create_thing("configmap", "c", "blue").await;
    env.wait_child("a", "red").await;
    env.wait_child("b", "green").await;
    env.wait_child("c", "blue").await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_fails_the_sync_with_a_warning_and_no_writes() {
    let env = Env::start().await;
    let ca = Ca::new("hooks-ca");
    let other = Ca::new("other-ca");
    let hook = https_hook(&ca, None, color_reply).await;
    env.create_controller(
        "wrong",
        json!({"webhook": {"url": hook.https_url("/sync"), "caBundle": {"inline": other.pem()}}}),
        json!({}),
    )
    .await;
    env.create_thing("wrong", "w", "red").await;
    let writes = env.write_count().await;
    let message = env.wait_warning("w", "SyncError").await;
    assert!(message.contains("sync hook failed"), "{message}");
    // A retry or two later, still nothing was written and no request got through.
    sleep(Duration::from_millis(500)).await;
    assert_eq!(env.write_count().await, writes);
    env.assert_untouched("w").await;
    assert!(hook.requests().is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let env = Env::start().await;
    let ca = Ca::new("hooks-ca");
    let hook = https_hook(&ca, Some(&ca), color_reply).await;
    let url = hook.https_url("/sync");
    let client = ca.leaf(&["metacontroller"], ExtendedKeyUsagePurpose::ClientAuth);
    env.put_secret(
        "client-tls",
        &[
            ("cert.pem", &client.cert_pem),
            ("key.pem", &client.key.serialize_pem()),
        ],
    )
    .await;
    env.put_secret(
        "default-keys",
        &[
            ("tls.crt", &client.cert_pem),
            ("tls.key", &client.key.serialize_pem()),
        ],
    )
    .await;
    env.create_controller(
        "mtls",
        json!({"webhook": {"url": url, "caBundle": {"inline": ca.pem()},
            "clientTLS": {"secretRef": {"name": "client-tls", "namespace": "default"},
                          "certKey": "cert.pem", "privateKeyKey": "key.pem"}}}),
        json!({}),
    )
    .await;
    // The same client certificate from an endpointConfigs entry, with the default keys.
    env.create_controller(
        "endpoint",
        json!({"webhook": {"url": url}}),
        json!({"endpointConfigs": [{
            "host": format!("127.0.0.1:{}", hook.addr.port()),
            "caBundle": {"inline": ca.pem()},
            "clientTLS": {"secretRef": {"name": "default-keys", "namespace": "default"}}
        }]}),
    )
    .await;
    env.create_controller(
        "anonymous",
        json!({"webhook": {"url": url, "caBundle": {"inline": ca.pem()}}}),
        json!({}),
    )
    .await;
    env.create_thing("mtls", "with-cert", "red").await;
    env.create_thing("endpoint", "from-endpoint-config", "blue")
        .await;
    env.create_thing("anonymous", "without-cert", "green").await;
    env.wait_child("with-cert", "red").await;
    env.wait_child("from-endpoint-config", "blue").await;
    env.wait_warning("without-cert", "SyncError").await;
    env.assert_untouched("without-cert").await;
    assert!(requests_for(&hook, "without-cert").is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_headers_exactly_as_configured() {
    let env = Env::start().await;
    let hook = TestServer::start(color_reply).await;
    let url = hook.url("/sync");
    env.put_secret("token", &[("token", " s3cret-token\n")])
        .await;
    env.put_secret("custom", &[("value", "abc123")]).await;
    env.put_secret("basic", &[("user", "hook-user"), ("password", "pa55")])
        .await;
    env.create_controller(
        "bearer",
        json!({"webhook": {"url": url, "authorization":
            {"secretRef": {"name": "token", "namespace": "default", "key": "token"}}}}),
        json!({}),
    )
    .await;
    env.create_controller(
        "custom",
        json!({"webhook": {"url": url, "authorization": {"type": "Token",
            "secretRef": {"name": "custom", "namespace": "default", "key": "value"}}}}),
        json!({}),
    )
    .await;
    env.create_controller(
        "basic",
        json!({"webhook": {"url": url, "basicAuth": {"usernameKey": "user",
            "secretRef": {"name": "basic", "namespace": "default"}}}}),
        json!({}),
    )
    .await;
    // From an endpointConfigs entry; the host matches whatever its case.
    env.create_controller(
        "endpoint",
        json!({"webhook": {"url": url}}),
        json!({"endpointConfigs": [{"host": "LOCALHOST"}, {
            "host": format!("127.0.0.1:{}", hook.addr.port()),
            "authorization": {"secretRef": {"name": "custom", "namespace": "default", "key": "value"}}
        }]}),
    )
    .await;
    env.create_thing("bearer", "b1", "red").await;
    env.create_thing("custom", "c1", "red").await;
    env.create_thing("basic", "d1", "red").await;
    env.create_thing("endpoint", "e1", "red").await;
    for thing in ["b1", "c1", "d1", "e1"] {
        env.wait_child(thing, "red").await;
    }
    let header = |thing: &str| {
        let requests = requests_for(&hook, thing);
        assert!(!requests.is_empty(), "no request for {thing}");
        let values: Vec<Option<String>> = requests
            .iter()
            .map(|r| r.header("authorization").map(str::to_string))
            .collect();
        assert!(values.windows(2).all(|w| w[0] == w[1]), "{values:?}");
        values[0].clone()
    };
    assert_eq!(header("b1").as_deref(), Some("Bearer s3cret-token"));
    assert_eq!(header("c1").as_deref(), Some("Token abc123"));
    // base64("hook-user:pa55")
    assert_eq!(header("d1").as_deref(), Some("Basic aG9vay11c2VyOnBhNTU="));
    assert_eq!(header("e1").as_deref(), Some("Bearer abc123"));

    // Nothing the engine wrote mentions a credential.
    let events: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        "default",
        &resource("events.k8s.io", "v1", "Event", "events"),
    );
    let all = serde_json::to_string(
        &events
            .list(&ListParams::default())
            .await
            .expect("events")
            .items,
    )
    .expect("json");
    assert!(!all.contains("s3cret") && !all.contains("pa55") && !all.contains("abc123"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_authorization_is_an_invalid_controller() {
    let env = Env::start().await;
    let hook = TestServer::start(color_reply).await;
    let url = hook.url("/sync");
    env.put_secret(
        "token",
        &[("token", "t"), ("username", "u"), ("password", "p")],
    )
    .await;
    env.create_controller(
        "both",
        json!({"webhook": {"url": url,
            "authorization": {"secretRef": {"name": "token", "namespace": "default", "key": "token"}},
            "basicAuth": {"secretRef": {"name": "token", "namespace": "default"}}}}),
        json!({}),
    )
    .await;
    env.create_controller(
        "basic-type",
        json!({"webhook": {"url": url, "authorization": {"type": "basic",
            "secretRef": {"name": "token", "namespace": "default", "key": "token"}}}}),
        json!({}),
    )
    .await;
    env.create_controller("fine", json!({"webhook": {"url": url}}), json!({}))
        .await;
    env.create_thing("both", "x1", "red").await;
    env.create_thing("fine", "x2", "red").await;
    env.wait_child("x2", "red").await;
    let message = env.wait_warning("both", "CreateError").await;
    assert!(message.contains("mutually exclusive"), "{message}");
    let message = env.wait_warning("basic-type", "CreateError").await;
    assert!(message.contains("Basic"), "{message}");
    env.assert_untouched("x1").await;
    assert!(requests_for(&hook, "x1").is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_secret_is_used_without_restarting_the_controller() {
    let env = Env::start().await;
    let accepted = Arc::new(Mutex::new("Bearer first".to_string()));
    let hook = {
        let accepted = accepted.clone();
        TestServer::start(move |req: &Request| {
            let want = accepted.lock().expect("token").clone();
            if req.header("authorization") == Some(want.as_str()) {
                color_reply(req)
            } else {
                Reply::json(401, r#"{"error":"unauthorized"}"#)
            }
        })
        .await
    };
    env.put_secret("token", &[("token", "first")]).await;
    env.create_controller(
        "rotate",
        json!({"webhook": {"url": hook.url("/sync"), "authorization":
            {"secretRef": {"name": "token", "namespace": "default", "key": "token"}}}}),
        json!({}),
    )
    .await;
    env.create_thing("rotate", "r1", "red").await;
    env.wait_child("r1", "red").await;
    let generation = env
        .controllers()
        .get("rotate")
        .await
        .expect("controller")
        .metadata
        .generation;

    // The hook server moves to a new token; the old one is refused until the Secret follows.
    *accepted.lock().expect("token") = "Bearer second".to_string();
    env.things()
        .patch(
            "r1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "blue"}})),
        )
        .await
        .expect("patch Thing");
    env.wait_warning("r1", "SyncError").await;
    assert_eq!(env.child_color("r1").await.as_deref(), Some("red"));

    // Rotating the Secret is enough: the parent is synced again with the new token.
    env.put_secret("token", &[("token", "second")]).await;
    env.wait_child("r1", "blue").await;
    let last = requests_for(&hook, "r1").pop().expect("requests");
    assert_eq!(last.header("authorization"), Some("Bearer second"));
    let controller = env.controllers().get("rotate").await.expect("controller");
    assert_eq!(controller.metadata.generation, generation);
    // The controller was started once and never restarted.
    let events: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        "default",
        &resource("events.k8s.io", "v1", "Event", "events"),
    );
    let stops = events
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .iter()
        .filter(|e| e.data["regarding"]["name"] == "rotate" && e.data["reason"] == "Stopping")
        .count();
    assert_eq!(stops, 0);

    // Deleting the Secret makes the hook unusable: the parent is synced again at once (its
    // hook's credentials changed) and fails with a warning naming the Secret.
    let secrets: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        "default",
        &resource("", "v1", "Secret", "secrets"),
    );
    secrets
        .delete("token", &Default::default())
        .await
        .expect("delete Secret");
    let message = wait_for("warning about the missing Secret", || async {
        env.warnings("r1", "SyncError")
            .await
            .into_iter()
            .find(|m| m.contains("Secret default/token"))
    })
    .await;
    // Once the engine knows the Secret is gone, a change to the parent reaches no hook and
    // writes nothing.
    let calls = requests_for(&hook, "r1").len();
    env.things()
        .patch(
            "r1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "black"}})),
        )
        .await
        .expect("patch Thing");
    sleep(Duration::from_secs(1)).await;
    assert_eq!(requests_for(&hook, "r1").len(), calls);
    assert!(!message.contains("second"), "{message}");
    assert_eq!(env.child_color("r1").await.as_deref(), Some("blue"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_waiting_for_its_secret_starts_once_it_exists() {
    let env = Env::start().await;
    let hook = TestServer::start(color_reply).await;
    env.create_controller(
        "later",
        json!({"webhook": {"url": hook.url("/sync"), "authorization":
            {"secretRef": {"name": "late", "namespace": "default", "key": "token"}}}}),
        json!({}),
    )
    .await;
    env.create_thing("later", "l1", "red").await;
    let message = env.wait_warning("later", "CreateError").await;
    assert!(message.contains("Secret default/late"), "{message}");
    env.put_secret("late", &[("token", "now")]).await;
    env.wait_child("l1", "red").await;
    let last = requests_for(&hook, "l1").pop().expect("requests");
    assert_eq!(last.header("authorization"), Some("Bearer now"));
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_round_trip_through_the_engine() {
    let env = Env::start().await;
    let hook = TestServer::start(|req: &Request| {
        if req.header("if-none-match") == Some("\"v1\"") {
            Reply::json(304, "")
        } else {
            color_reply(req).header("ETag", "\"v1\"")
        }
    })
    .await;
    env.create_controller(
        "etag",
        json!({"webhook": {"url": hook.url("/sync"),
            "etag": {"enabled": true, "cacheTimeoutSeconds": 60}}}),
        json!({"resyncPeriodSeconds": 1}),
    )
    .await;
    env.create_thing("etag", "e1", "red").await;
    env.wait_child("e1", "red").await;
    wait_for("replayed responses", || async {
        let replays = requests_for(&hook, "e1")
            .iter()
            .filter(|r| r.header("if-none-match") == Some("\"v1\""))
            .count();
        (replays >= 2).then_some(())
    })
    .await;
    // Replays act as the cached answer: the child and status stay as the hook said.
    assert_eq!(env.child_color("e1").await.as_deref(), Some("red"));
    let thing = env.things().get("e1").await.expect("Thing");
    assert_eq!(thing.data["status"]["color"], "red");
    assert!(env.warnings("e1", "SyncError").await.is_empty());
    // The engine's hook client is the one whose metrics are exposed.
    let mut metrics = String::new();
    env.hooks.render_prometheus(&mut metrics);
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("metacontroller_sync_requests_total{")
                && l.contains("code=\"304\"")),
        "{metrics}"
    );
    assert!(metrics.contains("controller_name=\"etag\""), "{metrics}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_decoding_rejects_unknown_fields_loose_accepts_them() {
    let env = Env::start().await;
    let hook = TestServer::start(|req: &Request| {
        Reply::json(200, &color_body(req, json!({"unexpected": true})))
    })
    .await;
    let url = hook.url("/sync");
    // v2 hooks decode strictly unless told otherwise; v1 hooks loosely.
    env.create_controller(
        "v2-default",
        json!({"version": "v2", "webhook": {"url": url}}),
        json!({}),
    )
    .await;
    env.create_controller(
        "v2-loose",
        json!({"version": "v2", "webhook": {"url": url, "responseUnMarshallMode": "loose"}}),
        json!({}),
    )
    .await;
    env.create_controller("v1-default", json!({"webhook": {"url": url}}), json!({}))
        .await;
    env.create_controller(
        "v1-strict",
        json!({"webhook": {"url": url, "responseUnMarshallMode": "strict"}}),
        json!({}),
    )
    .await;
    env.create_thing("v2-default", "s1", "red").await;
    env.create_thing("v2-loose", "s2", "red").await;
    env.create_thing("v1-default", "s3", "red").await;
    env.create_thing("v1-strict", "s4", "red").await;
    env.wait_child("s2", "red").await;
    env.wait_child("s3", "red").await;
    for thing in ["s1", "s4"] {
        let message = env.wait_warning(thing, "SyncError").await;
        assert!(message.contains("unexpected"), "{message}");
        env.assert_untouched(thing).await;
    }
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_hook_times_out_without_writes() {
    let env = Env::start().await;
    let hook =
        TestServer::start(|req: &Request| color_reply(req).delayed(Duration::from_secs(3))).await;
    env.create_controller(
        "slow",
        json!({"webhook": {"url": hook.url("/sync"), "timeout": "300ms"}}),
        json!({}),
    )
    .await;
    env.create_thing("slow", "t1", "red").await;
    let started = Instant::now();
    let message = env.wait_warning("t1", "SyncError").await;
    assert!(message.contains("no response within 300ms"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the deadline was not honoured"
    );
    env.assert_untouched("t1").await;
    env.stop().await;
}

/// Watches of Secrets the API server holds open.
async fn secret_watchers(env: &Env) -> u64 {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("request");
    let text = env.client.request_text(request).await.expect("metrics");
    text.lines()
        .filter(|l| l.starts_with("apiserver_registered_watchers{"))
        .filter(|l| l.contains("kind=\"Secret\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_watched_only_while_a_controller_reads_one() {
    let env = Env::start().await;
    let hook = TestServer::start(color_reply).await;
    env.create_controller(
        "plain",
        json!({"webhook": {"url": hook.url("/sync")}}),
        json!({}),
    )
    .await;
    env.create_thing("plain", "p1", "red").await;
    env.wait_child("p1", "red").await;
    assert_eq!(secret_watchers(&env).await, 0);

    env.put_secret("token", &[("token", "t")]).await;
    env.create_controller(
        "reads",
        json!({"webhook": {"url": hook.url("/sync"), "authorization":
            {"secretRef": {"name": "token", "namespace": "default", "key": "token"}}}}),
        json!({}),
    )
    .await;
    env.create_thing("reads", "p2", "red").await;
    env.wait_child("p2", "red").await;
    wait_for("a Secret watch", || async {
        (secret_watchers(&env).await == 1).then_some(())
    })
    .await;

    env.controllers()
        .delete("reads", &Default::default())
        .await
        .expect("delete controller");
    wait_for("the Secret watch to stop", || async {
        (secret_watchers(&env).await == 0).then_some(())
    })
    .await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decorator_follows_a_rotated_secret() {
    let env = Env::start().await;
    let accepted = Arc::new(Mutex::new("Bearer first".to_string()));
    let hook = {
        let accepted = accepted.clone();
        TestServer::start(move |req: &Request| {
            let want = accepted.lock().expect("token").clone();
            if req.header("authorization") != Some(want.as_str()) {
                return Reply::json(401, r#"{"error":"unauthorized"}"#);
            }
            let request = req.json();
            let object = &request["object"];
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            let body = json!({"attachments": [{
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": format!("{name}-cm")},
                "data": {"color": object["spec"]["color"]}
            }]});
            Reply::json(200, &body.to_string())
        })
        .await
    };
    env.put_secret("deco-token", &[("token", "first")]).await;
    let decorators: Api<DynamicObject> = Api::all_with(
        env.client.clone(),
        &resource(
            "metacontroller.k8s.io",
            "v1alpha1",
            "DecoratorController",
            "decoratorcontrollers",
        ),
    );
    decorators
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "metacontroller.k8s.io/v1alpha1",
                "kind": "DecoratorController",
                "metadata": {"name": "deco"},
                "spec": {
                    "resources": [{"apiVersion": "example.com/v1", "resource": "things",
                                   "labelSelector": {"matchLabels": {"group": "deco"}}}],
                    "attachments": [{"apiVersion": "v1", "resource": "configmaps",
                                     "updateStrategy": {"method": "InPlace"}}],
                    "hooks": {"sync": {"webhook": {"url": hook.url("/sync"), "authorization":
                        {"secretRef": {"name": "deco-token", "namespace": "default", "key": "token"}}}}}
                }
            })),
        )
        .await
        .expect("create DecoratorController");
    env.create_thing("deco", "d1", "red").await;
    env.wait_child("d1", "red").await;

    *accepted.lock().expect("token") = "Bearer second".to_string();
    env.things()
        .patch(
            "d1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"color": "blue"}})),
        )
        .await
        .expect("patch Thing");
    env.wait_warning("d1", "SyncError").await;
    assert_eq!(env.child_color("d1").await.as_deref(), Some("red"));

    env.put_secret("deco-token", &[("token", "second")]).await;
    env.wait_child("d1", "blue").await;
    let last = server_last(&hook, "d1");
    assert_eq!(last.header("authorization"), Some("Bearer second"));
    env.stop().await;
}

/// The last request about the decorated object `name`.
fn server_last(server: &TestServer, name: &str) -> Request {
    server
        .requests()
        .into_iter()
        .rfind(|r| r.json()["object"]["metadata"]["name"] == name)
        .expect("requests")
}
