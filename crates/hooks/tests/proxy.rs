//! Proxies from the environment apply to remote hooks but never to loopback ones.
//!
//! This binary holds a single test because it sets process-wide environment variables.

mod support;

use metacontroller_hooks::{HookClient, HookEndpoint};
use serde_json::{json, Value};
use support::{Reply, TestServer};

#[tokio::test]
async fn env_proxy_is_used_except_for_loopback() {
    let proxy = TestServer::start(|_| Reply::json(200, r#"{"via":"proxy"}"#)).await;
    let hook = TestServer::start(|_| Reply::json(200, r#"{"via":"direct"}"#)).await;
    for var in ["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"] {
        std::env::set_var(var, proxy.url(""));
    }
    for var in ["NO_PROXY", "no_proxy"] {
        std::env::remove_var(var);
    }
    let client = HookClient::new();

    let direct = client
        .call::<Value>("sync", &HookEndpoint::new(hook.url("/sync")), &json!({}))
        .await
        .unwrap();
    assert_eq!(direct.value, json!({"via": "direct"}));
    let port = hook.addr.port();
    let by_name = client
        .call::<Value>(
            "sync",
            &HookEndpoint::new(format!("http://localhost:{port}/sync")),
            &json!({}),
        )
        .await;
    // `localhost` may resolve to ::1 first where the hook is not listening; what matters is
    // that the proxy never saw the request.
    if let Ok(r) = by_name {
        assert_eq!(r.value, json!({"via": "direct"}));
    }
    assert!(proxy.requests().is_empty());

    let remote = client
        .call::<Value>(
            "sync",
            &HookEndpoint::new("http://hooks.example.invalid:8080/sync"),
            &json!({}),
        )
        .await
        .unwrap();
    assert_eq!(remote.value, json!({"via": "proxy"}));
    let seen = proxy.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "http://hooks.example.invalid:8080/sync");
}
