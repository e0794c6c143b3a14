//! Secrets never reach the logs, at any level: with every target logging at `trace`, a full
//! run of the engine against the embedded API server (TLS and a bearer token) with hooks that
//! authenticate with a bearer token and with basic auth from Secrets, and children that are
//! Secrets, leaves none of those values in the output, raw or base64-encoded.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::ByteString;
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::Client;
use metacontroller_apiserver::ServerConfig;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

mod common;

use common::{composite_controllers, crd, install_crds, obj, resource, wait_for, Hook};

const HOOK_TOKEN: &str = "hook-token-Zq81xVb3";
const HOOK_PASSWORD: &str = "hook-password-Pw93kQ";
const CHILD_SECRET: &str = "child-secret-Ks02mW";
const CHILD_STRING: &str = "child-string-Tr55nH";

fn b64(s: &str) -> String {
    // ByteString serializes as standard base64, as Secret data is written.
    serde_json::to_value(ByteString(s.as_bytes().to_vec()))
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .expect("base64")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_token_or_password_is_logged_at_trace_level() {
    let buf = common::capture_logs("trace");

    // The API server with TLS and a bearer token, as `dev` runs it.
    let shutdown = CancellationToken::new();
    let server = metacontroller_apiserver::start(
        ServerConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            tls: true,
        },
        shutdown.clone(),
    )
    .await
    .expect("server");
    let server_token = server.token.clone().expect("a token");
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml()).expect("kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("config");
    let client = Client::try_from(config).expect("client");
    install_crds(&client, [crd("Thing", "things", "Namespaced")]).await;

    // Credentials for the hooks, in Secrets.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(client.clone(), "default");
    for (name, data) in [
        ("hook-token", vec![("token", HOOK_TOKEN)]),
        (
            "hook-basic",
            vec![("username", "hook-user"), ("password", HOOK_PASSWORD)],
        ),
    ] {
        let secret = k8s_openapi::api::core::v1::Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            data: Some(
                data.into_iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .expect("secret");
    }

    // A hook whose children are Secrets.
    let responder: common::Responder = Arc::new(|req: &Value| {
        let name = req["parent"]["metadata"]["name"].as_str().unwrap_or("x");
        let owner = req["controller"]["metadata"]["name"]
            .as_str()
            .unwrap_or("x");
        let observed = req["children"]["Secret.v1"]
            .as_object()
            .map_or(0, |m| m.len());
        (
            200,
            json!({
                "status": {"observed": observed},
                "children": [{
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": format!("{name}-secret"), "labels": {"owner": owner}},
                    "type": "Opaque",
                    "data": {"key": b64(CHILD_SECRET)},
                    "stringData": {"other": CHILD_STRING}
                }]
            }),
        )
    });
    let hook = Hook::start(responder, shutdown.clone()).await;
    let controllers: Api<DynamicObject> = Api::all_with(client.clone(), &composite_controllers());
    for (name, auth) in [
        (
            "bearer",
            json!({"authorization": {"secretRef": {"name": "hook-token", "namespace": "default", "key": "token"}}}),
        ),
        (
            "basic",
            json!({"basicAuth": {"secretRef": {"name": "hook-basic", "namespace": "default"}}}),
        ),
    ] {
        let mut webhook = json!({"url": hook.url, "timeout": "5s"});
        for (k, v) in auth.as_object().expect("auth") {
            webhook[k] = v.clone();
        }
        controllers
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "metacontroller.k8s.io/v1alpha1", "kind": "CompositeController",
                    "metadata": {"name": name},
                    "spec": {
                        "parentResource": {"apiVersion": "example.com/v1", "resource": "things",
                                           "labelSelector": {"matchLabels": {"controller": name}}},
                        "childResources": [{"apiVersion": "v1", "resource": "secrets",
                                            "updateStrategy": {"method": "InPlace"}}],
                        "hooks": {"sync": {"webhook": webhook}}
                    }
                })),
            )
            .await
            .expect("controller");
    }
    let engine = common::spawn_engine(&client, common::engine_options(), &shutdown);

    // A parent for each controller (each selects its own by label).
    let things: Api<DynamicObject> =
        Api::namespaced_with(client.clone(), "default", &common::things());
    for (controller, parent) in [("bearer", "p-bearer"), ("basic", "p-basic")] {
        things
            .create(
                &PostParams::default(),
                &obj(json!({
                    "apiVersion": "example.com/v1", "kind": "Thing",
                    "metadata": {"name": parent, "labels": {"controller": controller}},
                    "spec": {"selector": {"matchLabels": {"owner": controller}}}
                })),
            )
            .await
            .expect("parent");
    }
    // Converged means the hook saw the Secret child it asked for: the request carrying the
    // Secret's data was made (and traced).
    wait_for("both parents to observe their Secret child", || async {
        let list = things.list(&ListParams::default()).await.ok()?;
        (list.items.len() == 2 && list.items.iter().all(|p| p.data["status"]["observed"] == 1))
            .then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    common::join_engine(engine).await;
    let _ = tokio::time::timeout(Duration::from_secs(15), server.stopped()).await;

    let text = String::from_utf8_lossy(&buf.lock().expect("logs")).into_owned();
    // The capture really holds trace output of the hook exchanges and of the API client.
    assert!(text.contains("hook request"), "no hook request traced");
    assert!(text.contains("hook response"), "no hook response traced");
    assert!(text.lines().count() > 100, "{} lines", text.lines().count());
    let basic = b64(&format!("hook-user:{HOOK_PASSWORD}"));
    for (what, secret) in [
        ("the API server's bearer token", server_token.as_str()),
        ("the hook bearer token", HOOK_TOKEN),
        ("the hook bearer token (base64)", &b64(HOOK_TOKEN)),
        ("the hook basic-auth password", HOOK_PASSWORD),
        ("the hook basic-auth password (base64)", &b64(HOOK_PASSWORD)),
        ("the basic-auth header value", &basic),
        ("a child Secret's data", CHILD_SECRET),
        ("a child Secret's data (base64)", &b64(CHILD_SECRET)),
        ("a child Secret's stringData", CHILD_STRING),
        ("a child Secret's stringData (base64)", &b64(CHILD_STRING)),
    ] {
        if let Some(line) = text.lines().find(|l| l.contains(secret)) {
            let excerpt: String = line.chars().take(400).collect();
            panic!("{what} is in the logs: {excerpt}");
        }
    }
    eprintln!(
        "{} log lines ({} bytes) at trace level; no secret in them",
        text.lines().count(),
        text.len()
    );
    let _ = resource;
}
