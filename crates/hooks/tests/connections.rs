//! How `HookClient` uses connections to plain `http://` hooks: kept alive and reused when the
//! server allows it, never reused when it closes them, redirects followed.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use metacontroller_hooks::{HookClient, HookEndpoint, HookError};
use serde_json::{json, Value};
use support::{Conn, Reply, TestServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn call(client: &HookClient, url: &str, n: u64) -> Value {
    client
        .call::<Value>("sync", &HookEndpoint::new(url), &json!({"n": n}))
        .await
        .unwrap_or_else(|e| panic!("call {n}: {e}"))
        .value
}

/// A hook answering `{"echo": n}` to a request `{"n": n}`.
async fn echo_server(conn: Conn) -> TestServer {
    TestServer::start_with(conn, |r| {
        Reply::json(200, &json!({"echo": r.json()["n"]}).to_string())
    })
    .await
}

#[tokio::test]
async fn keep_alive_connections_are_reused() {
    let server = echo_server(Conn::KeepAlive).await;
    let client = HookClient::new();
    let url = server.url("/sync?x=1");
    for n in 0..10 {
        assert_eq!(call(&client, &url, n).await, json!({"echo": n}));
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);

    // Concurrent calls need connections of their own; afterwards they are all reused.
    let calls = (0..5).map(|n| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move { call(&client, &url, n).await })
    });
    for c in calls {
        c.await.expect("join");
    }
    let after_burst = server.connections.load(Ordering::SeqCst);
    assert!((1..=5).contains(&after_burst), "{after_burst} connections");
    for n in 0..10 {
        call(&client, &url, n).await;
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), after_burst);

    let requests = server.requests();
    assert_eq!(requests.len(), 25);
    let first = &requests[0];
    assert_eq!(first.method, "POST");
    assert_eq!(first.path, "/sync?x=1");
    assert_eq!(first.header("host"), Some(server.addr.to_string().as_str()));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("accept"), Some("*/*"));
    assert!(first
        .header("user-agent")
        .is_some_and(|ua| ua.starts_with("metacontroller/")));
}

/// Makes `calls` calls to a hook that closes every connection after one answer: each call
/// reaches the hook exactly once, over a connection of its own.
async fn assert_a_connection_per_call(conn: Conn, calls: u64) {
    let server = echo_server(conn).await;
    let client = HookClient::new();
    let url = server.url("/sync");
    for n in 0..calls {
        assert_eq!(call(&client, &url, n).await, json!({"echo": n}));
    }
    assert_eq!(
        server.requests().len() as u64,
        calls,
        "each call reached the hook once"
    );
    assert_eq!(server.connections.load(Ordering::SeqCst) as u64, calls);
}

#[tokio::test]
async fn a_connection_the_server_closed_after_answering_is_not_reused() {
    // Each answer looks keep-alive, but the server closes the connection right after it: a
    // pooled connection found closed (or closing before the request went out) is replaced.
    assert_a_connection_per_call(Conn::DropAfterOne, 20).await;
}

#[tokio::test]
async fn http_1_0_servers_get_a_connection_per_call() {
    assert_a_connection_per_call(Conn::Http10, 10).await;
}

#[tokio::test]
async fn chunked_responses_are_read_whole() {
    let big = "x".repeat(100_000);
    let body = json!({"status": {"text": big}}).to_string();
    let server =
        TestServer::start_with(Conn::KeepAlive, move |_| Reply::json(200, &body).chunked()).await;
    let client = HookClient::new();
    let url = server.url("/sync");
    for n in 0..3 {
        let value = call(&client, &url, n).await;
        assert_eq!(
            value["status"]["text"].as_str().map(str::len),
            Some(100_000)
        );
    }
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn redirects_are_followed_with_the_same_request() {
    let server = TestServer::start(|r| match r.path.as_str() {
        "/sync" => Reply::json(307, "").header("Location", "/moved"),
        "/moved" => Reply::json(200, &json!({"moved": r.json()["n"]}).to_string()),
        _ => Reply::json(404, ""),
    })
    .await;
    let client = HookClient::new();
    assert_eq!(
        call(&client, &server.url("/sync"), 7).await,
        json!({"moved": 7})
    );
    let requests = server.requests();
    let last = requests.last().expect("requests");
    assert_eq!(
        (last.method.as_str(), last.path.as_str()),
        ("POST", "/moved")
    );
    assert_eq!(last.json(), json!({"n": 7}));
    // The redirecting URL answers the redirect itself; it never runs the hook's logic.
    assert!(requests[..requests.len() - 1]
        .iter()
        .all(|r| r.path == "/sync"));
}

#[tokio::test]
async fn a_call_that_times_out_closes_its_connection() {
    // A hook that reads the request and never answers; it reports when the client hangs up.
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel();
    let addr = support::one_connection(|mut stream| async move {
        let mut buf = [0u8; 4096];
        // Bounded: ends at EOF, on an error, or with the test's runtime.
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        let _ = closed_tx.send(());
    })
    .await;

    let client = HookClient::new();
    let endpoint =
        HookEndpoint::new(format!("http://{addr}/sync")).with_timeout(Duration::from_millis(200));
    let err = client
        .call::<Value>("sync", &endpoint, &json!({}))
        .await
        .expect_err("no answer");
    assert!(matches!(err, HookError::Timeout { .. }), "{err:?}");
    tokio::time::timeout(Duration::from_secs(5), closed_rx)
        .await
        .expect("the abandoned connection is closed")
        .expect("server task");
}

#[tokio::test]
async fn a_response_cut_short_is_a_connect_error() {
    // Promises 100 bytes of body, sends 10, closes.
    let addr = support::one_connection(|mut stream| async move {
        let mut buf = [0u8; 4096];
        let _ = stream.read(&mut buf).await;
        let _ = stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"status\":")
            .await;
    })
    .await;
    let client = HookClient::new();
    let endpoint = HookEndpoint::new(format!("http://{addr}/sync"));
    let err = client
        .call::<Value>("sync", &endpoint, &json!({}))
        .await
        .expect_err("cut short");
    assert!(matches!(err, HookError::Connect { .. }), "{err:?}");
}
