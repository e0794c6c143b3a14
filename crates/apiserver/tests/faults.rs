//! Fault injection through `/debug/faults`: injected errors per verb with kube-apiserver's
//! Status shapes, nothing written by a failed request, added latency, watch streams cut, and
//! `410 Expired` on watch resume.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use reqwest::Method;
use serde_json::{json, Value};

const CMS: &str = "/api/v1/namespaces/default/configmaps";

async fn set_faults(s: &TestServer, config: Value) -> Value {
    let r = s
        .send(s.req(Method::PUT, "/debug/faults").json(&config))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn cm(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

#[tokio::test]
async fn injected_errors_follow_the_verb_rates_and_write_nothing() {
    let s = TestServer::start().await;
    let report = set_faults(
        &s,
        json!({"errorRates": {"create": 1.0}, "statuses": [429], "seed": 5}),
    )
    .await;
    assert_eq!(report["config"]["seed"], 5);

    let r = s.post(CMS, &cm("a")).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.headers.get("retry-after").expect("Retry-After"), "1");
    let st = r.json();
    assert_eq!(
        (
            st["kind"].as_str(),
            st["reason"].as_str(),
            st["code"].as_u64()
        ),
        (Some("Status"), Some("TooManyRequests"), Some(429))
    );
    assert_eq!(st["details"]["retryAfterSeconds"], 1);
    // The failed create wrote nothing; reads are unaffected.
    assert_eq!(s.get(&format!("{CMS}/a")).await.status, 404);
    // Discovery is never faulted.
    assert_eq!(s.get("/api/v1").await.status, 200);

    // A mixed rate: about half of the creates fail, each failure with one of the codes.
    set_faults(
        &s,
        json!({"errorRates": {"*": 0.5}, "statuses": [500, 503, 504], "seed": 9}),
    )
    .await;
    let (mut ok, mut failed) = (0, 0);
    for i in 0..200 {
        let r = s.post(CMS, &cm(&format!("m{i}"))).await;
        match r.status {
            201 => ok += 1,
            500 | 503 | 504 => {
                failed += 1;
                let reason = r.json()["reason"].as_str().unwrap_or_default().to_string();
                assert!(
                    ["InternalError", "ServiceUnavailable", "Timeout"].contains(&reason.as_str()),
                    "{reason}"
                );
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
    }
    assert!((60..140).contains(&failed), "{failed} of 200 failed");
    let report = s.get("/debug/faults").await.json();
    assert!(report["injected"]["errors"].as_u64().expect("count") >= failed);

    // Everything off: the objects that were created are exactly those answered 201.
    set_faults(&s, json!({})).await;
    let list = s.get(CMS).await.json();
    let names: Vec<&str> = list["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|i| i["metadata"]["name"].as_str())
        .filter(|n| n.starts_with('m'))
        .collect();
    assert_eq!(names.len(), ok);
    s.stop().await;
}

#[tokio::test]
async fn bad_settings_are_refused_and_change_nothing() {
    let s = TestServer::start().await;
    for bad in [
        json!({"errorRates": {"create": 2}}),
        json!({"errorRates": {"fetch": 0.1}}),
        json!({"statuses": [404]}),
        json!({"latency": 5}),
    ] {
        let r = s.send(s.req(Method::PUT, "/debug/faults").json(&bad)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        assert!(r.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("invalid fault settings"));
    }
    let r = s
        .send(
            s.req(Method::PUT, "/debug/faults")
                .body("{not json")
                .header("content-type", "application/json"),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(s.delete("/debug/faults").await.status, 405);
    assert_eq!(
        s.get("/debug/faults").await.json()["config"]["errorRates"],
        json!({})
    );
    // The endpoint needs the token like every other.
    let anon = s
        .client
        .get(s.url("/debug/faults"))
        .send()
        .await
        .expect("answered");
    assert_eq!(anon.status().as_u16(), 401);
    s.stop().await;
}

#[tokio::test]
async fn latency_is_added_to_resource_requests() {
    let s = TestServer::start().await;
    set_faults(&s, json!({"latencyMs": 300})).await;
    let started = Instant::now();
    assert_eq!(s.get(CMS).await.status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    s.stop().await;
}

/// Reads a watch body line by line until it ends, with a bound.
async fn watch_lines(s: &TestServer, query: &str, bound: Duration) -> (Vec<Value>, bool) {
    let mut resp = s
        .req(Method::GET, &format!("{CMS}?watch=true&{query}"))
        .send()
        .await
        .expect("watch starts");
    assert_eq!(resp.status().as_u16(), 200);
    let mut buf = Vec::new();
    let ended = tokio::time::timeout(bound, async {
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.extend_from_slice(&chunk);
        }
    })
    .await
    .is_ok();
    let lines = buf
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("event line"))
        .collect();
    (lines, ended)
}

#[tokio::test]
async fn watches_are_cut_and_resumes_expire() {
    let s = TestServer::start().await;
    let created = s.post(CMS, &cm("w")).await.json();
    let rv = created["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();

    set_faults(&s, json!({"watchCloseEveryMs": 500})).await;
    let started = Instant::now();
    let (lines, ended) = watch_lines(&s, "resourceVersion=0", Duration::from_secs(10)).await;
    assert!(ended, "the stream was cut");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert!(lines.iter().any(|l| l["type"] == "ADDED"));
    // Wait for the pump to count the cut.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(s.get("/debug/faults").await.json()["injected"]["watchesCut"].as_u64() >= Some(1));

    set_faults(&s, json!({"watchGoneRate": 1.0})).await;
    let (lines, ended) = watch_lines(
        &s,
        &format!("resourceVersion={rv}"),
        Duration::from_secs(10),
    )
    .await;
    assert!(ended);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "ERROR");
    assert_eq!(lines[0]["object"]["code"], 410);
    assert_eq!(lines[0]["object"]["reason"], "Expired");
    // A watch that does not resume (no resourceVersion) is not expired.
    let (lines, ended) = watch_lines(&s, "timeoutSeconds=1", Duration::from_secs(10)).await;
    assert!(ended);
    assert!(lines.iter().all(|l| l["type"] != "ERROR"), "{lines:?}");
    s.stop().await;
}
