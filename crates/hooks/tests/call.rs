//! `HookClient::call` against hook servers on loopback.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use metacontroller_hooks::{
    EtagConfig, HookAuth, HookClient, HookEndpoint, HookError, HookOwner, UnmarshalMode, Url,
    UrlResolver, BODY_EXCERPT_BYTES,
};
use serde::Deserialize;
use serde_json::{json, Value};
use support::{Reply, TestServer};

#[derive(Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct SyncResponse {
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    children: Vec<Value>,
    #[serde(default)]
    resync_after_seconds: Option<f64>,
}

fn sync_request(name: &str) -> Value {
    json!({
        "controller": {"metadata": {"name": "ctl"}},
        "parent": {"apiVersion": "example.com/v1", "kind": "Thing",
                   "metadata": {"name": name, "namespace": "ns"}},
        "children": {},
    })
}

#[tokio::test]
async fn success_posts_json_and_decodes() {
    let server = TestServer::start(|_| {
        Reply::json(
            200,
            r#"{"status":{"replicas":1},"children":[{"kind":"Pod"}]}"#,
        )
    })
    .await;
    let client = HookClient::new();
    let body = sync_request("a");
    let resp = client
        .call::<SyncResponse>("sync", &HookEndpoint::new(server.url("/sync")), &body)
        .await
        .unwrap();
    assert_eq!(resp.value.status, Some(json!({"replicas": 1})));
    assert_eq!(resp.value.children, vec![json!({"kind": "Pod"})]);
    assert!(resp.unknown_fields.is_empty());
    assert!(!resp.from_etag_cache);

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].method, "POST");
    assert_eq!(reqs[0].path, "/sync");
    assert_eq!(reqs[0].header("content-type"), Some("application/json"));
    assert_eq!(reqs[0].header("authorization"), None);
    assert_eq!(reqs[0].header("if-none-match"), None);
    assert_eq!(reqs[0].json(), body);
}

#[tokio::test]
async fn only_200_is_success_and_errors_carry_an_excerpt() {
    let long = format!(r#"{{"error":"{}"}}"#, "x".repeat(2000));
    let long2 = long.clone();
    let server = TestServer::start(move |req| match req.path.as_str() {
        "/500" => Reply::json(500, &long2),
        "/201" => Reply::json(201, "{}"),
        "/204" => Reply::json(204, ""),
        "/304" => Reply::json(304, ""),
        _ => Reply::json(404, "not found"),
    })
    .await;
    let client = HookClient::new();
    let err = client
        .call::<Value>("sync", &HookEndpoint::new(server.url("/500")), &json!({}))
        .await
        .unwrap_err();
    match &err {
        HookError::Status {
            code,
            body_excerpt,
            retry_after,
            url,
        } => {
            assert_eq!(*code, 500);
            assert!(body_excerpt.starts_with(r#"{"error":"xxx"#));
            assert!(body_excerpt.len() <= BODY_EXCERPT_BYTES + 3);
            assert!(body_excerpt.len() >= BODY_EXCERPT_BYTES);
            assert_eq!(*retry_after, None);
            assert_eq!(url, &server.url("/500"));
        }
        other => panic!("expected Status, got {other:?}"),
    }
    assert!(err.to_string().contains("500"));
    for (path, code) in [("/201", 201), ("/204", 204), ("/304", 304), ("/x", 404)] {
        let err = client
            .call::<Value>("sync", &HookEndpoint::new(server.url(path)), &json!({}))
            .await
            .unwrap_err();
        assert_eq!(err.status_code(), Some(code), "{path}: {err}");
    }
}

#[tokio::test]
async fn too_many_requests_carries_retry_after() {
    let date = httpdate_in(Duration::from_secs(30));
    let server = TestServer::start(move |req| match req.path.as_str() {
        "/secs" => Reply::json(429, "slow down").header("Retry-After", "7"),
        "/date" => Reply::json(429, "").header("Retry-After", &date),
        "/bad" => Reply::json(429, "").header("Retry-After", "later"),
        _ => Reply::json(429, ""),
    })
    .await;
    let client = HookClient::new();
    let call = |path: &str| {
        let ep = HookEndpoint::new(server.url(path));
        let client = client.clone();
        async move {
            client
                .call::<Value>("sync", &ep, &json!({}))
                .await
                .unwrap_err()
        }
    };
    let e = call("/secs").await;
    assert_eq!(e.status_code(), Some(429));
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    let got = call("/date").await.retry_after().unwrap();
    assert!(
        (Duration::from_secs(28)..=Duration::from_secs(31)).contains(&got),
        "{got:?}"
    );
    assert_eq!(call("/bad").await.retry_after(), None);
    assert_eq!(call("/none").await.retry_after(), None);
}

fn httpdate_in(d: Duration) -> String {
    // IMF-fixdate, built by hand to keep the test independent of the parser under test.
    let secs = (SystemTime::now() + d)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let mon = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {mon} {year} {h:02}:{m:02}:{s:02} GMT")
}

#[tokio::test]
async fn invalid_json_is_a_decode_error() {
    let server = TestServer::start(|req| match req.path.as_str() {
        "/garbage" => Reply::json(200, "<html>oops</html>"),
        "/empty" => Reply::json(200, ""),
        _ => Reply::json(200, r#"{"children":"not a list"}"#),
    })
    .await;
    let client = HookClient::new();
    for path in ["/garbage", "/empty", "/type"] {
        let err = client
            .call::<SyncResponse>("sync", &HookEndpoint::new(server.url(path)), &json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::Decode { .. }), "{path}: {err:?}");
    }
}

#[tokio::test]
async fn timeout_is_honoured() {
    let server =
        TestServer::start(|_| Reply::json(200, "{}").delayed(Duration::from_secs(5))).await;
    let client = HookClient::new();
    let ep = HookEndpoint::new(server.url("/slow")).with_timeout(Duration::from_millis(200));
    let started = Instant::now();
    let err = client
        .call::<Value>("sync", &ep, &json!({}))
        .await
        .unwrap_err();
    let took = started.elapsed();
    match err {
        HookError::Timeout { after, .. } => assert_eq!(after, Duration::from_millis(200)),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(took >= Duration::from_millis(190), "{took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test]
async fn refused_connection_is_a_connect_error_without_credentials() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = HookClient::new();
    // With credentials in the URL the general client makes the call; without, the plain
    // transport does.
    for url in [
        format!("http://user:hunter2@{addr}/sync"),
        format!("http://{addr}/sync"),
    ] {
        let ep = HookEndpoint::new(url).with_auth(HookAuth::bearer("tok-secret"));
        let err = client
            .call::<Value>("sync", &ep, &json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::Connect { .. }), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("tok-secret"), "{shown}");
        assert!(shown.contains(&addr.to_string()), "{shown}");
    }
}

#[tokio::test]
async fn strict_and_loose_decoding() {
    let server = TestServer::start(|req| match req.path.as_str() {
        "/unknown" => Reply::json(200, r#"{"resyncAfterSeconds":3,"bogus":{"a":1}}"#),
        _ => Reply::json(200, r#"{"resyncAfterSeconds":1,"resyncAfterSeconds":2}"#),
    })
    .await;
    let client = HookClient::new();
    let loose = |p: &str| HookEndpoint::new(server.url(p));
    let strict = |p: &str| loose(p).with_unmarshal_mode(UnmarshalMode::Strict);

    let r = client
        .call::<SyncResponse>("sync", &loose("/unknown"), &json!({}))
        .await
        .unwrap();
    assert_eq!(r.value.resync_after_seconds, Some(3.0));
    assert_eq!(r.unknown_fields, vec!["bogus"]);
    let err = client
        .call::<SyncResponse>("sync", &strict("/unknown"), &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HookError::Decode { message, .. } if message.contains("\"bogus\"")),
        "{err:?}"
    );

    let r = client
        .call::<SyncResponse>("sync", &loose("/dup"), &json!({}))
        .await
        .unwrap();
    assert_eq!(r.value.resync_after_seconds, Some(2.0));
    let err = client
        .call::<SyncResponse>("sync", &strict("/dup"), &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HookError::Decode { message, .. } if message.contains("duplicate") && message.contains("resyncAfterSeconds")),
        "{err:?}"
    );
}

#[tokio::test]
async fn etag_round_trip_and_expiry() {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let server = TestServer::start(move |req| {
        h.fetch_add(1, Ordering::SeqCst);
        match (req.path.as_str(), req.header("if-none-match")) {
            ("/412", Some("\"v1\"")) => Reply::json(412, ""),
            (_, Some("\"v1\"")) => Reply::json(304, ""),
            _ => Reply::json(200, r#"{"status":{"gen":1}}"#).header("ETag", "\"v1\""),
        }
    })
    .await;
    let client = HookClient::new();
    let ep = HookEndpoint::new(server.url("/sync"))
        .with_owner(HookOwner::new("CompositeController", "ctl"))
        .with_etag(EtagConfig {
            enabled: true,
            cache_timeout: Some(Duration::from_millis(400)),
            cache_cleanup: None,
        });

    let first = client
        .call::<SyncResponse>("sync", &ep, &sync_request("a"))
        .await
        .unwrap();
    assert!(!first.from_etag_cache);
    let second = client
        .call::<SyncResponse>("sync", &ep, &sync_request("a"))
        .await
        .unwrap();
    assert!(second.from_etag_cache);
    assert_eq!(second.value, first.value);
    // Another parent has its own entry; another hook name its own scope.
    client
        .call::<SyncResponse>("sync", &ep, &sync_request("b"))
        .await
        .unwrap();
    client
        .call::<SyncResponse>("finalize", &ep, &sync_request("a"))
        .await
        .unwrap();
    let reqs = server.requests();
    let inm: Vec<_> = reqs.iter().map(|r| r.header("if-none-match")).collect();
    assert_eq!(inm, vec![None, Some("\"v1\""), None, None]);

    // 412 replays too.
    let ep412 = HookEndpoint {
        url: server.url("/412"),
        ..ep.clone()
    };
    client
        .call::<SyncResponse>("sync", &ep412, &sync_request("a"))
        .await
        .unwrap();
    let replay = client
        .call::<SyncResponse>("sync", &ep412, &sync_request("a"))
        .await
        .unwrap();
    assert!(replay.from_etag_cache);
    assert_eq!(replay.value.status, Some(json!({"gen": 1})));

    // After cache_timeout the entry is gone: no If-None-Match, a full response.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = client
        .call::<SyncResponse>("sync", &ep, &sync_request("a"))
        .await
        .unwrap();
    assert!(!after.from_etag_cache);
    assert_eq!(
        server.requests().last().unwrap().header("if-none-match"),
        None
    );

    // Disabled or absent config: never conditional.
    let plain = HookEndpoint::new(server.url("/sync"));
    let disabled = plain.clone().with_etag(EtagConfig::default());
    for ep in [&plain, &disabled] {
        for _ in 0..2 {
            client
                .call::<SyncResponse>("sync", ep, &sync_request("a"))
                .await
                .unwrap();
            assert_eq!(
                server.requests().last().unwrap().header("if-none-match"),
                None
            );
        }
    }
    assert_eq!(hits.load(Ordering::SeqCst), 11);
}

#[tokio::test]
async fn not_modified_without_cached_entry_is_an_error() {
    // The server claims 304 even though nothing was cached: only acceptable after If-None-Match.
    let server = TestServer::start(|_| Reply::json(304, "")).await;
    let client = HookClient::new();
    let ep = HookEndpoint::new(server.url("/sync")).with_etag(EtagConfig::enabled());
    let err = client
        .call::<Value>("sync", &ep, &sync_request("a"))
        .await
        .unwrap_err();
    assert_eq!(err.status_code(), Some(304));
}

#[tokio::test]
async fn authorization_headers_exactly_as_configured() {
    let server = TestServer::start(|_| Reply::json(200, "{}")).await;
    let client = HookClient::new();
    let cases = [
        (HookAuth::bearer("abc.def"), "Bearer abc.def"),
        (
            HookAuth::Authorization {
                scheme: "Token".into(),
                credentials: " xyz \n".into(),
            },
            "Token xyz",
        ),
        (
            HookAuth::Authorization {
                scheme: String::new(),
                credentials: "xyz".into(),
            },
            "Bearer xyz",
        ),
        (
            HookAuth::basic("Aladdin", "open sesame"),
            "Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==",
        ),
    ];
    for (i, (auth, expected)) in cases.into_iter().enumerate() {
        let ep = HookEndpoint::new(server.url("/sync")).with_auth(auth);
        client.call::<Value>("sync", &ep, &json!({})).await.unwrap();
        assert_eq!(server.requests()[i].header("authorization"), Some(expected));
    }
    let bad = HookEndpoint::new(server.url("/sync")).with_auth(HookAuth::basic("a:b", "pw"));
    let err = client
        .call::<Value>("sync", &bad, &json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::Config(_)), "{err:?}");
    let bad = HookEndpoint::new(server.url("/sync")).with_auth(HookAuth::bearer("a\nb\u{1}"));
    let err = client
        .call::<Value>("sync", &bad, &json!({}))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, HookError::Config(m) if !m.contains("a\nb")),
        "{err:?}"
    );
}

#[tokio::test]
async fn metrics_after_calls() {
    let server = TestServer::start(|req| match req.path.as_str() {
        "/ok" => Reply::json(200, "{}"),
        _ => Reply::json(500, "boom"),
    })
    .await;
    let client = HookClient::new();
    let owner = HookOwner::new("DecoratorController", "deco");
    let ok = HookEndpoint::new(server.url("/ok")).with_owner(owner.clone());
    let bad = HookEndpoint::new(server.url("/bad")).with_owner(owner);
    for _ in 0..3 {
        client.call::<Value>("sync", &ok, &json!({})).await.unwrap();
    }
    client
        .call::<Value>("sync", &bad, &json!({}))
        .await
        .unwrap_err();
    client
        .call::<Value>("customize", &ok, &json!({}))
        .await
        .unwrap();

    let mut out = String::new();
    client.clone().render_prometheus(&mut out);
    let ok_url = server.url("/ok");
    let bad_url = server.url("/bad");
    let labels = r#"controller_name="deco",controller_type="DecoratorController""#;
    for line in [
        format!(
            r#"metacontroller_sync_requests_total{{code="200",{labels},method="post",url="{ok_url}"}} 3"#
        ),
        format!(
            r#"metacontroller_sync_requests_total{{code="500",{labels},method="post",url="{bad_url}"}} 1"#
        ),
        format!(
            r#"metacontroller_customize_requests_total{{code="200",{labels},method="post",url="{ok_url}"}} 1"#
        ),
        format!(
            r#"metacontroller_sync_request_duration_histogram_seconds_count{{{labels},method="post",url="{ok_url}"}} 3"#
        ),
        format!(
            r#"metacontroller_sync_request_duration_histogram_seconds_bucket{{{labels},method="post",url="{ok_url}",le="+Inf"}} 3"#
        ),
        format!(r#"metacontroller_sync_in_flight_requests{{{labels},url="{ok_url}"}} 0"#),
        format!(r#"metacontroller_sync_in_flight_requests{{{labels},url="{bad_url}"}} 0"#),
    ] {
        assert!(out.lines().any(|l| l == line), "missing {line}\n{out}");
    }
}

#[tokio::test]
async fn cancelled_call_leaves_no_request_in_flight() {
    let server =
        TestServer::start(|_| Reply::json(200, "{}").delayed(Duration::from_secs(5))).await;
    let client = HookClient::new();
    let ep = HookEndpoint::new(server.url("/slow"));
    let body = json!({});
    let call = client.call::<Value>("sync", &ep, &body);
    // The caller gives up on its own (e.g. shutdown) before the hook's deadline.
    assert!(tokio::time::timeout(Duration::from_millis(200), call)
        .await
        .is_err());
    let mut out = String::new();
    client.render_prometheus(&mut out);
    let url = server.url("/slow");
    assert!(
        out.contains(&format!(r#"metacontroller_sync_in_flight_requests{{controller_name="",controller_type="",url="{url}"}} 0"#)),
        "{out}"
    );
}

#[tokio::test]
async fn concurrent_calls_share_one_client() {
    let server = TestServer::start(|req| {
        let n = req.json()["n"].as_u64().unwrap();
        Reply::json(200, &format!(r#"{{"n":{n}}}"#))
    })
    .await;
    let client = HookClient::new();
    let ep = HookEndpoint::new(server.url("/sync"));
    let mut set = tokio::task::JoinSet::new();
    for n in 0..20u64 {
        let (client, ep) = (client.clone(), ep.clone());
        set.spawn(async move {
            let r = client
                .call::<Value>("sync", &ep, &json!({"n": n}))
                .await
                .unwrap();
            assert_eq!(r.value["n"], n);
        });
    }
    while let Some(r) = set.join_next().await {
        r.unwrap();
    }
    assert_eq!(server.requests().len(), 20);
}

#[tokio::test]
async fn unusable_urls_are_config_errors() {
    let client = HookClient::new();
    for url in ["", "not a url", "ftp://127.0.0.1/x", "/relative/path"] {
        let err = client
            .call::<Value>("sync", &HookEndpoint::new(url), &json!({}))
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::Config(_)), "{url:?}: {err:?}");
    }
}

#[tokio::test]
async fn undecodable_responses_are_not_cached() {
    let server =
        TestServer::start(|_| Reply::json(200, r#"{"bogus":1}"#).header("ETag", "\"bad\"")).await;
    let client = HookClient::new();
    let ep = HookEndpoint::new(server.url("/sync"))
        .with_unmarshal_mode(UnmarshalMode::Strict)
        .with_etag(EtagConfig::enabled());
    for _ in 0..2 {
        let err = client
            .call::<SyncResponse>("sync", &ep, &sync_request("a"))
            .await
            .unwrap_err();
        assert!(matches!(err, HookError::Decode { .. }), "{err:?}");
    }
    let inm: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("if-none-match").map(str::to_owned))
        .collect();
    assert_eq!(inm, vec![None, None]);
}

/// Sends every URL on host `svc.ns` to one address, as `dev` does for Service URLs.
struct ToServer(String);

impl UrlResolver for ToServer {
    fn resolve(&self, url: &Url) -> Option<Url> {
        (url.host_str() == Some("svc.ns"))
            .then(|| Url::parse(&format!("{}{}", self.0, url.path())).unwrap())
    }
}

#[tokio::test]
async fn a_resolver_redirects_requests_and_others_go_as_written() {
    let server = TestServer::start(|_| Reply::json(200, r#"{"children":[]}"#)).await;
    let base = server.url("");
    let client =
        HookClient::with_resolver(Arc::new(ToServer(base.trim_end_matches('/').to_string())));
    let resp = client
        .call::<SyncResponse>(
            "sync",
            &HookEndpoint::new("http://svc.ns/sync".to_string()),
            &sync_request("a"),
        )
        .await
        .unwrap();
    assert!(resp.value.children.is_empty());
    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].path, "/sync");
    assert_eq!(
        reqs[0].header("host"),
        Some("svc.ns"),
        "the Host header of the URL as written, as inside a cluster"
    );
    // A URL the resolver does not know is sent as written.
    client
        .call::<SyncResponse>(
            "sync",
            &HookEndpoint::new(server.url("/other")),
            &sync_request("a"),
        )
        .await
        .unwrap();
    assert_eq!(server.requests()[1].path, "/other");
}
