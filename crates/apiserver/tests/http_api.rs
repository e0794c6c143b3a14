//! The HTTP API driven with raw requests: authentication, discovery, OpenAPI, error Status
//! shapes, CRUD semantics the HTTP layer owns, watch framing, tables, metrics and shutdown.

mod common;

use std::time::Duration;

use common::{create_widget_crd, fixture, Resp, TestServer};
use reqwest::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn assert_status(r: &Resp, code: u16, reason: &str) -> Value {
    assert_eq!(r.status, code, "{}", r.text());
    assert!(
        r.content_type().starts_with("application/json"),
        "content type {}",
        r.content_type()
    );
    let v = r.json();
    assert_eq!(v["kind"], "Status", "{v}");
    assert_eq!(v["apiVersion"], "v1");
    assert_eq!(v["status"], "Failure");
    assert_eq!(v["code"], code);
    assert_eq!(v["reason"], reason, "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    v
}

fn configmap(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"k": "v"}})
}

/// Reads a watch response line by line.
struct Lines {
    resp: reqwest::Response,
    buf: Vec<u8>,
}

impl Lines {
    fn new(resp: reqwest::Response) -> Self {
        Self {
            resp,
            buf: Vec::new(),
        }
    }

    /// The next complete line, or `None` when the stream ends.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                return Some(
                    serde_json::from_slice(&line[..line.len() - 1])
                        .expect("each line is one JSON event"),
                );
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.resp.chunk())
                .await
                .expect("watch event within 10s")
                .expect("stream readable");
            match chunk {
                Some(c) => self.buf.extend_from_slice(&c),
                None => {
                    assert!(
                        self.buf.is_empty(),
                        "partial line at end: {:?}",
                        String::from_utf8_lossy(&self.buf)
                    );
                    return None;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_need_the_token() {
    let s = TestServer::start().await;
    let no_token = s.send(s.client.get(s.url("/api/v1/namespaces"))).await;
    assert_status(&no_token, 401, "Unauthorized");
    let bad = s
        .send(
            s.client
                .get(s.url("/api/v1/namespaces"))
                .bearer_auth("not-the-token"),
        )
        .await;
    assert_status(&bad, 401, "Unauthorized");
    let metrics = s.send(s.client.get(s.url("/metrics"))).await;
    assert_eq!(metrics.status, 401);
    // Health and version stay readable anonymously, as with kube-apiserver's defaults.
    let health = s.send(s.client.get(s.url("/healthz"))).await;
    assert_eq!((health.status, health.text().as_str()), (200, "ok"));
    for p in ["/readyz", "/livez"] {
        assert_eq!(s.send(s.client.get(s.url(p))).await.status, 200);
    }
    assert_eq!(
        s.send(s.client.get(s.url("/version"))).await.json()["gitVersion"],
        "v1.32.0"
    );
    let ok = s.get("/api/v1/namespaces").await;
    assert_eq!(ok.status, 200);
    assert!(s.server.token.as_ref().is_some_and(|t| t.len() >= 32));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_http2_over_tls_and_plain_http_without_auth() {
    let s = TestServer::start().await;
    let resp = s
        .req(Method::GET, "/version")
        .send()
        .await
        .expect("request");
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    s.stop().await;

    let plain = TestServer::start_with(false).await;
    assert!(plain.server.url.starts_with("http://"));
    assert!(plain.server.token.is_none() && plain.server.ca_pem.is_none());
    let r = plain
        .send(plain.client.get(plain.url("/api/v1/namespaces/default")))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!plain.server.kubeconfig_yaml().contains("token:"));
    plain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_documents() {
    let s = TestServer::start().await;
    let api = s.get("/api").await.json();
    assert_eq!(api["kind"], "APIVersions");
    assert_eq!(api["versions"], json!(["v1"]));
    assert_eq!(
        api["serverAddressByClientCIDRs"][0]["serverAddress"],
        s.server.addr.to_string()
    );

    let groups = s.get("/apis").await.json();
    assert_eq!(groups["kind"], "APIGroupList");
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    for g in ["apps", "apiextensions.k8s.io", "authorization.k8s.io"] {
        assert!(names.contains(&g), "{g} missing from {names:?}");
    }
    let apps = s.get("/apis/apps").await.json();
    assert_eq!(apps["kind"], "APIGroup");
    assert_eq!(apps["preferredVersion"]["groupVersion"], "apps/v1");
    assert_eq!(s.get("/apis/nope.example.com").await.status, 404);

    let core = s.get("/api/v1").await.json();
    assert_eq!(core["kind"], "APIResourceList");
    assert_eq!(core["groupVersion"], "v1");
    let cm = core["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["name"] == "configmaps")
        .expect("configmaps");
    assert_eq!(cm["kind"], "ConfigMap");
    assert_eq!(cm["namespaced"], true);
    assert_eq!(cm["singularName"], "configmap");
    let token = core["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["name"] == "serviceaccounts/token")
        .expect("token");
    assert_eq!(
        (token["group"].as_str(), token["kind"].as_str()),
        (Some("authentication.k8s.io"), Some("TokenRequest"))
    );
    assert_eq!(token["verbs"], json!(["create"]));

    let apps_v1 = s.get("/apis/apps/v1").await.json();
    let find = |n: &str| {
        apps_v1["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .find(|r| r["name"] == n)
            .cloned()
    };
    assert_eq!(
        find("deployments/status").expect("status")["verbs"],
        json!(["get", "patch", "update"])
    );
    let scale = find("deployments/scale").expect("scale");
    assert_eq!(
        (
            scale["group"].as_str(),
            scale["version"].as_str(),
            scale["kind"].as_str()
        ),
        (Some("autoscaling"), Some("v1"), Some("Scale"))
    );

    // Aggregated discovery when the client offers apidiscovery.k8s.io/v2, legacy otherwise.
    let v2 =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let agg = s
        .send(s.req(Method::GET, "/apis").header("accept", v2))
        .await;
    assert_eq!(agg.status, 200);
    assert_eq!(
        agg.content_type(),
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let agg = agg.json();
    assert_eq!(
        (agg["kind"].as_str(), agg["apiVersion"].as_str()),
        (
            Some("APIGroupDiscoveryList"),
            Some("apidiscovery.k8s.io/v2")
        )
    );
    let apps = agg["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .expect("apps");
    assert_eq!(apps["versions"][0]["version"], "v1");
    assert_eq!(apps["versions"][0]["freshness"], "Current");
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["resource"] == "deployments")
        .expect("deployments");
    assert_eq!(deploy["scope"], "Namespaced");
    assert_eq!(deploy["responseKind"]["kind"], "Deployment");
    let core = s
        .send(s.req(Method::GET, "/api").header("accept", v2))
        .await
        .json();
    assert_eq!(core["items"].as_array().map(Vec::len), Some(1));
    assert_eq!(core["items"][0]["metadata"]["name"], "");
    let ns = core["items"][0]["versions"][0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .find(|r| r["resource"] == "namespaces")
        .expect("namespaces");
    assert_eq!(ns["scope"], "Cluster");
    let legacy = s
        .send(s.req(Method::GET, "/apis").header("accept", "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"))
        .await;
    assert_eq!(legacy.content_type(), "application/json");
    assert_eq!(legacy.json()["kind"], "APIGroupList");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_crds_appear_in_discovery_and_openapi_at_once() {
    let s = TestServer::start().await;
    let root_before = s.get("/openapi/v3").await.json();
    assert!(root_before["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .is_some_and(|u| u.starts_with("/openapi/v3/api/v1?hash=")));
    assert!(root_before["paths"].get("apis/example.com/v1").is_none());
    assert_eq!(s.get("/apis/example.com/v1").await.status, 404);

    create_widget_crd(&s).await;

    let rl = s.get("/apis/example.com/v1").await.json();
    let names: Vec<&str> = rl["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, vec!["widgets", "widgets/status", "widgets/scale"]);
    assert_eq!(rl["resources"][0]["shortNames"], json!(["wd"]));

    let root = s.get("/openapi/v3").await.json();
    let url = root["paths"]["apis/example.com/v1"]["serverRelativeURL"]
        .as_str()
        .expect("new group/version listed");
    assert_ne!(
        root_before["paths"]["apis/apps/v1"], root["paths"]["apis/apps/v1"],
        "hashes change with the registry"
    );
    let doc = s.get(url).await.json();
    assert_eq!(doc["openapi"], "3.0.0");
    let op = &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert_eq!(
        op["x-kubernetes-group-version-kind"],
        json!({"group": "example.com", "version": "v1", "kind": "Widget"})
    );
    assert_eq!(op["parameters"][0]["name"], "fieldValidation");
    let core = s.get("/openapi/v3/api/v1").await.json();
    assert!(core["paths"].get("/api/v1/namespaces/{name}").is_some());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_mismatched_bodies_are_status_errors() {
    let s = TestServer::start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let r = s
        .send(
            s.req(Method::POST, cms)
                .header("content-type", "application/json")
                .body("{not json"),
        )
        .await;
    assert_status(&r, 400, "BadRequest");
    let r = s
        .send(
            s.req(Method::POST, cms)
                .header("content-type", "application/yaml")
                .body("a: [b"),
        )
        .await;
    assert_status(&r, 400, "BadRequest");
    let r = s
        .send(
            s.req(Method::POST, cms)
                .header("content-type", "application/json")
                .body("[1,2]"),
        )
        .await;
    assert_status(&r, 400, "BadRequest");
    let r = s
        .send(
            s.req(Method::POST, cms)
                .header("content-type", "image/png")
                .body("x"),
        )
        .await;
    assert_status(&r, 415, "UnsupportedMediaType");

    // YAML bodies work.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n";
    let r = s
        .send(
            s.req(Method::POST, cms)
                .header("content-type", "application/yaml")
                .body(yaml),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["data"]["a"], "b");

    let mut wrong_version = configmap("x");
    wrong_version["apiVersion"] = json!("apps/v1");
    assert_status(&s.post(cms, &wrong_version).await, 400, "BadRequest");
    let mut wrong_kind = configmap("x");
    wrong_kind["kind"] = json!("Secret");
    assert_status(&s.post(cms, &wrong_kind).await, 400, "BadRequest");
    let mut other_ns = configmap("x");
    other_ns["metadata"]["namespace"] = json!("kube-system");
    let v = assert_status(&s.post(cms, &other_ns).await, 400, "BadRequest");
    assert!(v["message"]
        .as_str()
        .is_some_and(|m| m.contains("does not match the namespace")));
    let nameless = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}});
    assert_status(&s.post(cms, &nameless).await, 422, "Invalid");

    // A body without apiVersion/kind (as some clients send) is accepted for the URL's type.
    let bare = json!({"metadata": {"name": "bare"}});
    let r = s.post(cms, &bare).await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(
        (r.json()["kind"].as_str(), r.json()["apiVersion"].as_str()),
        (Some("ConfigMap"), Some("v1"))
    );

    // PUT with a different name than the URL.
    let r = s.put(&format!("{cms}/bare"), &configmap("other")).await;
    assert_status(&r, 400, "BadRequest");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_selectors_and_methods() {
    let s = TestServer::start().await;
    let v = assert_status(
        &s.get("/api/v1/namespaces/default/nothings").await,
        404,
        "NotFound",
    );
    assert_eq!(
        v["message"],
        "the server could not find the requested resource"
    );
    assert_status(
        &s.get("/apis/example.com/v1/widgets").await,
        404,
        "NotFound",
    );
    assert_status(&s.get("/nope").await, 404, "NotFound");
    // A cluster-scoped type under a namespace, a namespaced object without one.
    assert_status(
        &s.get("/api/v1/namespaces/default/nodes").await,
        404,
        "NotFound",
    );
    assert_status(&s.get("/api/v1/configmaps/x").await, 404, "NotFound");
    let missing = assert_status(
        &s.get("/api/v1/namespaces/default/configmaps/missing").await,
        404,
        "NotFound",
    );
    assert_eq!(missing["details"]["name"], "missing");

    assert_status(
        &s.get("/api/v1/namespaces/default/configmaps?labelSelector=a%20in%20(b")
            .await,
        400,
        "BadRequest",
    );
    assert_status(
        &s.get("/api/v1/namespaces/default/configmaps?fieldSelector=spec.bogus%3Dx")
            .await,
        400,
        "BadRequest",
    );
    assert_status(
        &s.get("/api/v1/namespaces/default/configmaps?watch=maybe")
            .await,
        400,
        "BadRequest",
    );
    let r = s
        .send(
            s.req(Method::PUT, "/api/v1/namespaces/default/configmaps")
                .json(&configmap("x")),
        )
        .await;
    assert_status(&r, 405, "MethodNotAllowed");
    let r = s
        .send(
            s.req(Method::POST, "/api/v1/configmaps")
                .json(&configmap("x")),
        )
        .await;
    assert_status(&r, 405, "MethodNotAllowed");

    // Verbs a type does not list are refused (namespaces have no deletecollection).
    assert_status(
        &s.delete("/api/v1/namespaces").await,
        405,
        "MethodNotAllowed",
    );
    let r = s
        .send(s.req(
            Method::GET,
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        ))
        .await;
    assert_status(&r, 405, "MethodNotAllowed");

    // Tolerant query parsing.
    for q in [
        "?",
        "?&",
        "?labelSelector=",
        "?&force=true&fieldManager=x",
        "?timeout=32s&bogus",
    ] {
        let r = s
            .get(&format!("/api/v1/namespaces/default/configmaps{q}"))
            .await;
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        assert!(r.json()["metadata"]["resourceVersion"]
            .as_str()
            .is_some_and(|rv| !rv.is_empty()));
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_refused() {
    let s = TestServer::start().await;
    let mut big = configmap("big");
    big["data"]["k"] = json!("x".repeat(3 * 1024 * 1024 + 10));
    let r = s.post("/api/v1/namespaces/default/configmaps", &big).await;
    assert_status(&r, 413, "RequestEntityTooLarge");
    assert_eq!(
        s.get("/api/v1/namespaces/default/configmaps/big")
            .await
            .status,
        404
    );
    s.stop().await;

    // Chunked bodies without a Content-Length are limited too (raw HTTP/1.1 on a plain server).
    let plain = TestServer::start_with(false).await;
    let mut conn = tokio::net::TcpStream::connect(plain.server.addr)
        .await
        .expect("connect");
    let head = "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    conn.write_all(head.as_bytes()).await.expect("write");
    let chunk = vec![b' '; 1024 * 1024];
    for _ in 0..4 {
        if conn
            .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .await
            .is_err()
            || conn.write_all(&chunk).await.is_err()
            || conn.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("\"reason\":\"RequestEntityTooLarge\""),
        "{answer}"
    );
    plain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_round_trip() {
    let s = TestServer::start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let created = s.post(cms, &configmap("a")).await;
    assert_eq!(created.status, 201, "{}", created.text());
    let obj = created.json();
    let rv = obj["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    assert!(obj["metadata"]["uid"].as_str().is_some());
    assert_status(&s.post(cms, &configmap("a")).await, 409, "AlreadyExists");

    let list = s.get(cms).await;
    assert_eq!(list.status, 200);
    let list = list.json();
    assert_eq!(list["kind"], "ConfigMapList");
    assert_eq!(list["apiVersion"], "v1");
    assert_eq!(list["items"].as_array().map(Vec::len), Some(1));
    assert!(s.get("/api/v1/configmaps").await.json()["items"]
        .as_array()
        .is_some_and(|i| !i.is_empty()));

    // Update with the current version, then a stale one.
    let mut upd = obj.clone();
    upd["data"]["k"] = json!("v2");
    let r = s.put(&format!("{cms}/a"), &upd).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_ne!(
        r.json()["metadata"]["resourceVersion"].as_str(),
        Some(rv.as_str())
    );
    let v = assert_status(&s.put(&format!("{cms}/a"), &upd).await, 409, "Conflict");
    assert!(v["message"]
        .as_str()
        .is_some_and(|m| m.contains("the object has been modified")));

    // Patches select their type by Content-Type.
    let r = s
        .patch(
            &format!("{cms}/a"),
            "application/merge-patch+json",
            r#"{"data":{"m":"1"}}"#,
        )
        .await;
    assert_eq!(r.json()["data"]["m"], "1");
    let r = s
        .patch(
            &format!("{cms}/a"),
            "application/json-patch+json",
            r#"[{"op":"add","path":"/data/j","value":"2"}]"#,
        )
        .await;
    assert_eq!(r.json()["data"]["j"], "2", "{}", r.text());
    let r = s
        .patch(
            &format!("{cms}/a"),
            "application/strategic-merge-patch+json",
            r#"{"data":{"s":"3"}}"#,
        )
        .await;
    assert_eq!(r.json()["data"]["s"], "3", "{}", r.text());
    let r = s.patch(&format!("{cms}/a"), "application/json", "{}").await;
    assert_status(&r, 415, "UnsupportedMediaType");
    let r = s
        .patch(&format!("{cms}/nope"), "application/merge-patch+json", "{}")
        .await;
    assert_status(&r, 404, "NotFound");

    // Server-side apply creates, with a field manager.
    let applied = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ssa\ndata:\n  x: y\n";
    let r = s
        .send(
            s.req(
                Method::PATCH,
                &format!("{cms}/ssa?fieldManager=test&force=true"),
            )
            .header("content-type", "application/apply-patch+yaml")
            .body(applied),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let r = s
        .send(
            s.req(Method::PATCH, &format!("{cms}/ssa"))
                .header("content-type", "application/apply-patch+yaml")
                .body(applied),
        )
        .await;
    assert_status(&r, 422, "Invalid");

    // dryRun persists nothing.
    let r = s
        .post(&format!("{cms}?dryRun=All"), &configmap("dry"))
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(s.get(&format!("{cms}/dry")).await.status, 404);

    // Preconditions and dry runs in DeleteOptions, from the body or the query.
    let wrong_uid = json!({"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": "not-the-uid"}, "dryRun": null});
    let r = s
        .send(s.req(Method::DELETE, &format!("{cms}/a")).json(&wrong_uid))
        .await;
    assert_status(&r, 409, "Conflict");
    let r = s
        .send(
            s.req(Method::DELETE, &format!("{cms}/a"))
                .json(&json!({"dryRun": ["All"]})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .delete(&format!("{cms}/a?dryRun=All&propagationPolicy=Foreground"))
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        s.get(&format!("{cms}/a")).await.status,
        200,
        "dry-run deletes keep the object"
    );
    let r = s
        .send(
            s.req(Method::DELETE, &format!("{cms}/a"))
                .json(&json!({"dryRun": ["Some"]})),
        )
        .await;
    assert_status(&r, 400, "BadRequest");

    // Delete answers a Success Status once gone.
    let r = s
        .send(
            s.req(Method::DELETE, &format!("{cms}/a"))
                .json(&json!({"propagationPolicy": "Background"})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let st = r.json();
    assert_eq!(
        (st["kind"].as_str(), st["status"].as_str()),
        (Some("Status"), Some("Success"))
    );
    assert_eq!(st["details"]["name"], "a");
    assert_status(&s.delete(&format!("{cms}/a")).await, 404, "NotFound");
    let r = s
        .send(
            s.req(Method::DELETE, &format!("{cms}/ssa"))
                .json(&json!({"propagationPolicy": "Sideways"})),
        )
        .await;
    assert_status(&r, 422, "Invalid");

    // An object with a finalizer stays, deleting, and comes back in the response.
    let mut fin = configmap("fin");
    fin["metadata"]["finalizers"] = json!(["example.com/hold"]);
    assert_eq!(s.post(cms, &fin).await.status, 201);
    let r = s
        .send(
            s.req(Method::DELETE, &format!("{cms}/fin"))
                .json(&json!({})),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.json()["metadata"]["deletionTimestamp"].as_str().is_some(),
        "{}",
        r.text()
    );
    let r = s
        .patch(
            &format!("{cms}/fin"),
            "application/merge-patch+json",
            r#"{"metadata":{"finalizers":null}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s.get(&format!("{cms}/fin")).await.status, 404);

    // Delete collection returns the list of what it deleted.
    for n in ["c1", "c2"] {
        let mut cm = configmap(n);
        cm["metadata"]["labels"] = json!({"batch": "yes"});
        assert_eq!(s.post(cms, &cm).await.status, 201);
    }
    let r = s.delete(&format!("{cms}?labelSelector=batch%3Dyes")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["kind"], "ConfigMapList");
    assert_eq!(r.json()["items"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        s.get(&format!("{cms}?labelSelector=batch%3Dyes"))
            .await
            .json()["items"],
        json!([])
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_missing_and_terminating() {
    let s = TestServer::start().await;
    let r = s
        .post("/api/v1/namespaces/ghost/configmaps", &configmap("a"))
        .await;
    assert_status(&r, 404, "NotFound");
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "doomed"}});
    assert_eq!(s.post("/api/v1/namespaces", &ns).await.status, 201);
    let mut held = configmap("held");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    assert_eq!(
        s.post("/api/v1/namespaces/doomed/configmaps", &held)
            .await
            .status,
        201
    );
    let r = s.delete("/api/v1/namespaces/doomed").await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = s
        .post("/api/v1/namespaces/doomed/configmaps", &configmap("late"))
        .await;
    assert_status(&r, 403, "Forbidden");
    assert_status(
        &s.delete("/api/v1/namespaces/default").await,
        403,
        "Forbidden",
    );

    // Terminating until released through the finalize subresource.
    let ns = s.get("/api/v1/namespaces/doomed").await.json();
    assert_eq!(ns["status"]["phase"], "Terminating", "{ns}");
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]), "{ns}");
    let mut release = ns.clone();
    release["spec"]["finalizers"] = json!([]);
    let r = s
        .send(
            s.req(Method::POST, "/api/v1/namespaces/doomed/finalize")
                .json(&release),
        )
        .await;
    assert_status(&r, 405, "MethodNotAllowed");
    let r = s.put("/api/v1/namespaces/doomed/finalize", &release).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_status(&s.get("/api/v1/namespaces/doomed").await, 404, "NotFound");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_bodies_are_decoded() {
    let s = TestServer::start().await;
    let r = s
        .send(
            s.req(Method::POST, "/api/v1/namespaces")
                .header("content-type", "application/vnd.kubernetes.protobuf")
                .body(fixture("protobuf/ns-hello.pb")),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["metadata"]["name"], "hello");
    let r = s
        .send(
            s.req(Method::POST, "/api/v1/namespaces/default/configmaps")
                .header("content-type", "application/vnd.kubernetes.protobuf")
                .body(b"k8s\x00garbage".to_vec()),
        )
        .await;
    assert!(r.status == 400 || r.status == 415, "{}", r.text());
    assert_eq!(r.json()["kind"], "Status");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_status_scale_and_strategic_patch() {
    let s = TestServer::start().await;
    create_widget_crd(&s).await;
    let ws = "/apis/example.com/v1/namespaces/default/widgets";
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": "L", "replicas": 1}});
    let r = s.post(ws, &w).await;
    assert_eq!(r.status, 201, "{}", r.text());

    // The status subresource writes only status.
    let r = s
        .patch(
            &format!("{ws}/w1/status"),
            "application/merge-patch+json",
            r#"{"status":{"replicas":1},"spec":{"size":"XL"}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["status"]["replicas"], 1);
    assert_eq!(r.json()["spec"]["size"], "L");
    let got = s.get(&format!("{ws}/w1/status")).await;
    assert_eq!(got.json()["metadata"]["name"], "w1");

    // Scale speaks autoscaling/v1.
    let scale = s.get(&format!("{ws}/w1/scale")).await.json();
    assert_eq!(
        (scale["kind"].as_str(), scale["apiVersion"].as_str()),
        (Some("Scale"), Some("autoscaling/v1"))
    );
    assert_eq!(
        (
            scale["spec"]["replicas"].as_i64(),
            scale["status"]["replicas"].as_i64()
        ),
        (Some(1), Some(1))
    );
    let r = s
        .patch(
            &format!("{ws}/w1/scale"),
            "application/merge-patch+json",
            r#"{"spec":{"replicas":4}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["spec"]["replicas"], 4);
    assert_eq!(
        s.get(&format!("{ws}/w1")).await.json()["spec"]["replicas"],
        4
    );
    let mut put = scale.clone();
    put["spec"]["replicas"] = json!(2);
    assert_status(
        &s.put(&format!("{ws}/w1/scale"), &put).await,
        409,
        "Conflict",
    );

    // A custom resource of the wrong kind is a field error.
    let mut wrong = w.clone();
    wrong["kind"] = json!("Gadget");
    let v = assert_status(&s.post(ws, &wrong).await, 422, "Invalid");
    assert_eq!(v["details"]["causes"][0]["field"], "kind");

    // Strategic merge patch is for built-in kinds only.
    let r = s
        .patch(
            &format!("{ws}/w1"),
            "application/strategic-merge-patch+json",
            r#"{"spec":{"size":"S"}}"#,
        )
        .await;
    let v = assert_status(&r, 415, "UnsupportedMediaType");
    assert!(v["message"]
        .as_str()
        .is_some_and(|m| m.contains("application/merge-patch+json")));
    assert_status(&s.get(&format!("{ws}/w1/bogus")).await, 404, "NotFound");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_v1beta1_crds_are_converted() {
    let s = TestServer::start().await;
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1beta1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "helloworlds.example.com"},
        "spec": {"group": "example.com", "version": "v1", "scope": "Namespaced",
                 "names": {"kind": "HelloWorld", "plural": "helloworlds", "singular": "helloworld"}},
    });
    let r = s
        .post(
            "/apis/apiextensions.k8s.io/v1beta1/customresourcedefinitions",
            &crd,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let v1 = s
        .get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/helloworlds.example.com")
        .await
        .json();
    assert_eq!(v1["spec"]["versions"][0]["name"], "v1");
    let beta = s
        .get("/apis/apiextensions.k8s.io/v1beta1/customresourcedefinitions/helloworlds.example.com")
        .await
        .json();
    assert_eq!(beta["apiVersion"], "apiextensions.k8s.io/v1beta1");
    assert_eq!(beta["spec"]["version"], "v1");
    let r = s
        .patch(
            "/apis/apiextensions.k8s.io/v1beta1/customresourcedefinitions/helloworlds.example.com",
            "application/merge-patch+json",
            r#"{"spec":{"names":{"shortNames":["hw"]}}}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rl = s.get("/apis/example.com/v1").await.json();
    assert_eq!(rl["resources"][0]["shortNames"], json!(["hw"]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_streams_json_lines() {
    let s = TestServer::start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let rv = s.get(cms).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    let resp = s
        .req(
            Method::GET,
            &format!(
                "{cms}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true&timeoutSeconds=5"
            ),
        )
        .send()
        .await
        .expect("watch");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    let mut lines = Lines::new(resp);
    assert_eq!(s.post(cms, &configmap("w1")).await.status, 201);
    let ev = lines.next().await.expect("event");
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["metadata"]["name"], "w1");
    assert_eq!(
        s.patch(
            &format!("{cms}/w1"),
            "application/merge-patch+json",
            r#"{"data":{"x":"1"}}"#
        )
        .await
        .status,
        200
    );
    assert_eq!(lines.next().await.expect("event")["type"], "MODIFIED");
    assert_eq!(s.delete(&format!("{cms}/w1")).await.status, 200);
    let ev = lines.next().await.expect("event");
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["metadata"]["name"], "w1");
    // timeoutSeconds ends the stream cleanly.
    let start = std::time::Instant::now();
    while let Some(ev) = lines.next().await {
        assert_eq!(ev["type"], "BOOKMARK", "{ev}");
    }
    assert!(start.elapsed() < Duration::from_secs(8));

    // The legacy /watch/ prefix and a single-object watch by URL.
    let resp = s
        .req(
            Method::GET,
            "/api/v1/watch/namespaces/default/configmaps/solo?timeoutSeconds=5",
        )
        .send()
        .await
        .expect("watch");
    let mut solo = Lines::new(resp);
    assert_eq!(s.post(cms, &configmap("other")).await.status, 201);
    assert_eq!(s.post(cms, &configmap("solo")).await.status, 201);
    let ev = solo.next().await.expect("event");
    assert_eq!(
        (
            ev["type"].as_str(),
            ev["object"]["metadata"]["name"].as_str()
        ),
        (Some("ADDED"), Some("solo"))
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_from_an_expired_version_gets_an_error_event() {
    let s = TestServer::start().await;
    let resp = s
        .req(
            Method::GET,
            "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=1",
        )
        .send()
        .await
        .expect("watch");
    assert_eq!(resp.status(), 200, "never an HTTP 410");
    let mut lines = Lines::new(resp);
    let ev = lines.next().await.expect("error event");
    assert_eq!(ev["type"], "ERROR");
    assert_eq!(ev["object"]["kind"], "Status");
    assert_eq!(ev["object"]["code"], 410);
    assert!(
        lines.next().await.is_none(),
        "the stream ends after the error"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_list_ends_initial_events_with_a_bookmark() {
    let s = TestServer::start().await;
    let resp = s
        .req(Method::GET, "/api/v1/namespaces?watch=true&sendInitialEvents=true&resourceVersionMatch=NotOlderThan&resourceVersion=0&allowWatchBookmarks=true&timeoutSeconds=3")
        .send()
        .await
        .expect("watch");
    let mut lines = Lines::new(resp);
    let mut added = 0;
    loop {
        let ev = lines.next().await.expect("event");
        match ev["type"].as_str() {
            Some("ADDED") => added += 1,
            Some("BOOKMARK") => {
                assert_eq!(ev["object"]["kind"], "Namespace");
                assert_eq!(ev["object"]["apiVersion"], "v1");
                assert_eq!(
                    ev["object"]["metadata"]["annotations"]["k8s.io/initial-events-end"],
                    "true"
                );
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(added >= 4, "the default namespaces");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_for_kubectl() {
    let s = TestServer::start().await;
    create_widget_crd(&s).await;
    let ws = "/apis/example.com/v1/namespaces/default/widgets";
    let w = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w1"}, "spec": {"size": "L"}});
    assert_eq!(s.post(ws, &w).await.status, 201);
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let r = s
        .send(s.req(Method::GET, ws).header("accept", accept))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.content_type(),
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    );
    let t = r.json();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(cols, vec!["Name", "Size"]);
    assert_eq!(t["rows"][0]["cells"], json!(["w1", "L"]));
    assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
    assert!(t["metadata"]["resourceVersion"].as_str().is_some());

    let r = s
        .send(
            s.req(Method::GET, &format!("{ws}/w1?includeObject=Object"))
                .header("accept", accept),
        )
        .await;
    assert_eq!(r.json()["rows"][0]["object"]["spec"]["size"], "L");
    let r = s
        .send(
            s.req(Method::GET, &format!("{ws}?includeObject=Everything"))
                .header("accept", accept),
        )
        .await;
    assert_status(&r, 400, "BadRequest");

    // Metadata-only lists.
    let r = s
        .send(s.req(Method::GET, ws).header(
            "accept",
            "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
        ))
        .await;
    let l = r.json();
    assert_eq!(l["kind"], "PartialObjectMetadataList");
    assert_eq!(l["items"][0]["metadata"]["name"], "w1");
    assert!(l["items"][0].get("spec").is_none());

    // Watch events are Tables too.
    let resp = s
        .req(Method::GET, &format!("{ws}?watch=true&timeoutSeconds=3"))
        .header("accept", accept)
        .send()
        .await
        .expect("watch");
    assert_eq!(
        resp.headers()["content-type"],
        "application/json;as=Table;v=v1;g=meta.k8s.io"
    );
    let mut lines = Lines::new(resp);
    let ev = lines.next().await.expect("event");
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["kind"], "Table");
    assert_eq!(ev["object"]["rows"][0]["cells"][0], "w1");
    assert_eq!(ev["object"]["columnDefinitions"][1]["name"], "Size");
    // Later events leave the column definitions out, as kube-apiserver does.
    let w2 = json!({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w2"}, "spec": {"size": "S"}});
    assert_eq!(s.post(ws, &w2).await.status, 201);
    let ev = lines.next().await.expect("event");
    assert_eq!(ev["object"]["kind"], "Table");
    assert_eq!(ev["object"]["columnDefinitions"], Value::Null);
    assert_eq!(ev["object"]["rows"][0]["cells"], json!(["w2", "S"]));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_access_reviews() {
    let s = TestServer::start().await;
    assert_eq!(
        s.get("/api/v1/namespaces/default/configmaps").await.status,
        200
    );
    assert_eq!(
        s.post("/api/v1/namespaces/default/configmaps", &configmap("m"))
            .await
            .status,
        201
    );
    let resp = s
        .req(
            Method::GET,
            "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=30",
        )
        .send()
        .await
        .expect("watch");
    assert_eq!(resp.status(), 200);
    let m = s.get("/metrics").await;
    assert_eq!(m.status, 200);
    let text = m.text();
    assert!(text.contains(r#"apiserver_request_total{code="200",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="LIST",version="v1"} 1"#), "{text}");
    assert!(text.contains(r#"code="201",component="apiserver",dry_run="",group="",resource="configmaps",scope="namespace",subresource="",verb="POST",version="v1"} 1"#), "{text}");
    assert!(
        text.contains(r#"apiserver_registered_watchers{group="",kind="ConfigMap",version="v1"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"verb="WATCH",version="v1"} 1"#), "{text}");
    drop(resp);
    // The watcher is unregistered promptly once the client goes away.
    let mut gone = false;
    for _ in 0..50 {
        if s.get("/metrics")
            .await
            .text()
            .contains(r#"apiserver_registered_watchers{group="",kind="ConfigMap",version="v1"} 0"#)
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "watch still registered after the client disconnected");

    let review = json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
                        "spec": {"resourceAttributes": {"verb": "create", "resource": "pods", "namespace": "default"}}});
    let r = s
        .post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            &review,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    assert_eq!(r.json()["status"]["allowed"], true);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_watches_and_stops() {
    let s = TestServer::start().await;
    let resp = s
        .req(Method::GET, "/api/v1/namespaces?watch=true")
        .send()
        .await
        .expect("watch");
    let mut lines = Lines::new(resp);
    for _ in 0..4 {
        assert_eq!(lines.next().await.expect("initial event")["type"], "ADDED");
    }
    let addr = s.server.addr;
    s.shutdown.cancel();
    // The stream ends (cleanly or by the connection closing) instead of hanging.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = lines.resp.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "watch still open after shutdown");
    s.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_reports_bind_errors_and_writes_a_kubeconfig() {
    use metacontroller_apiserver::{start, start_on, ServerConfig, StartError};
    use tokio_util::sync::CancellationToken;

    let taken = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = taken.local_addr().expect("addr");
    let err = start(
        ServerConfig {
            listen: addr,
            tls: true,
        },
        CancellationToken::new(),
    )
    .await;
    assert!(matches!(err, Err(StartError::Bind { .. })), "{err:?}");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let shutdown = CancellationToken::new();
    let server = start_on(listener, true, shutdown.clone())
        .await
        .expect("start");
    assert_eq!(server.addr, addr);
    assert_eq!(server.url, format!("https://{addr}"));
    let kc: serde_yaml::Value =
        serde_yaml::from_str(&server.kubeconfig_yaml()).expect("kubeconfig is YAML");
    assert_eq!(kc["current-context"].as_str(), Some("metacontroller-dev"));
    assert_eq!(
        kc["contexts"][0]["name"].as_str(),
        Some("metacontroller-dev")
    );
    assert_eq!(
        kc["clusters"][0]["cluster"]["server"].as_str(),
        Some(server.url.as_str())
    );
    assert_eq!(
        kc["users"][0]["user"]["token"].as_str(),
        server.token.as_deref()
    );
    let ca = kc["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("CA data");
    use base64::Engine as _;
    let pem = base64::engine::general_purpose::STANDARD
        .decode(ca)
        .expect("base64");
    assert_eq!(Some(String::from_utf8(pem).expect("utf8")), server.ca_pem);
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(15), server.stopped())
        .await
        .expect("stops in time");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_watches_share_one_http2_connection() {
    let s = TestServer::start().await;
    let cms = "/api/v1/namespaces/default/configmaps";
    let rv = s.get(cms).await.json()["metadata"]["resourceVersion"]
        .as_str()
        .expect("rv")
        .to_string();
    // More than hyper's default stream limit (200); kube-apiserver allows 1000 per connection.
    let mut watches = Vec::new();
    for _ in 0..250 {
        let resp = s
            .req(
                Method::GET,
                &format!("{cms}?watch=true&resourceVersion={rv}&timeoutSeconds=30"),
            )
            .send()
            .await
            .expect("watch");
        assert_eq!(resp.version(), reqwest::Version::HTTP_2);
        watches.push(Lines::new(resp));
    }
    assert_eq!(s.post(cms, &configmap("hello")).await.status, 201);
    for w in &mut watches {
        let ev = w.next().await.expect("event");
        assert_eq!(ev["object"]["metadata"]["name"], "hello");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_does_not_wait_for_stalled_handshakes() {
    let s = TestServer::start().await;
    // A client that connects and never starts TLS.
    let _stalled = tokio::net::TcpStream::connect(s.server.addr)
        .await
        .expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(3), s.server.stopped())
        .await
        .expect("stopped without waiting out the handshake");
    let _ = std::fs::remove_dir_all(&s.dir);
}
