//! Fuzzed hook responses: wrong types, missing `apiVersion`/`kind`/`name`, children of
//! undeclared types or other namespaces, bad labels, duplicates, deep nesting, bodies over
//! the size limit and plain garbage. Each must be a clear error, never a plan that writes.
//!
//! - 10,000 generated responses go through what the engine does with a sync response: the
//!   hook client over HTTP (status, size limit, decoding) and the validation of the desired
//!   children. Every one must be rejected with a message naming the problem.
//! - Hundreds more go through the running engine against the embedded API server: each is a
//!   Warning event and a logged error on its parent, and no child (nor status) is written.
//!
//! The generator is a seeded splitmix64 (`FUZZ_SEED` replays a run), so a failing case is
//! reported with its number and body and reproduces.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use metacontroller_api::hook::CompositeHookResponse;
use metacontroller_engine::children::{prepare_desired, ChildType, DesiredContext};
use metacontroller_engine::ResourceInfo;
use metacontroller_hooks::{HookClient, HookEndpoint};
use metacontroller_merge::selector::LabelSelector;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

mod common;

use common::{api_writes, crd, wait_for, Env};

const CASES: u64 = 10_000;
/// Cases (by number modulo this) whose body exceeds the hook client's size limit.
const HUGE_EVERY: u64 = 2_500;

fn seed() -> u64 {
    std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(7)
}

fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A deterministic stream of choices for one case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = mix(self.0);
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// A body and what is wrong with it (the first mutation applied, which decides the error).
struct Case {
    body: Bytes,
    what: &'static str,
    /// Text the error must contain when only this mutation was applied.
    expect: Option<&'static str>,
}

fn valid_child(i: usize) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": format!("c-{i}"), "labels": {"app": "fuzz"}},
           "data": {"k": "v"}})
}

fn wrong_value(r: &mut Rng) -> Value {
    r.pick(&[
        json!(42),
        json!(-1.5),
        json!(true),
        json!([1, "a"]),
        json!({"x": {}}),
        json!(null),
    ])
    .clone()
}

fn wrong_non_null(r: &mut Rng) -> Value {
    r.pick(&[
        json!(42),
        json!(true),
        json!([1, "a"]),
        json!({"x": {}}),
        json!("text"),
    ])
    .clone()
}

fn deep(levels: usize) -> String {
    format!("{}{}", "[".repeat(levels), "]".repeat(levels))
}

/// Applies one invalid mutation to `resp`; returns its name and expected error text.
fn mutate(resp: &mut Value, r: &mut Rng) -> (&'static str, Option<&'static str>) {
    let children = resp["children"].as_array().map_or(0, Vec::len);
    let i = r.below(children as u64) as usize;
    let child = &mut resp["children"][i];
    match r.below(13) {
        0 => {
            child[*r.pick(&["apiVersion", "kind"])] = wrong_value(r);
            ("apiVersion or kind of the wrong type", Some("has no"))
        }
        1 => {
            let field = *r.pick(&["apiVersion", "kind"]);
            child.as_object_mut().map(|o| o.remove(field));
            ("apiVersion or kind missing", Some("has no"))
        }
        2 => {
            match r.below(3) {
                0 => {
                    child["metadata"].as_object_mut().map(|o| o.remove("name"));
                }
                1 => child["metadata"]["name"] = wrong_value(r),
                _ => child["metadata"]["name"] = json!(""),
            }
            ("name missing, empty or not a string", Some("metadata.name"))
        }
        3 => {
            child["metadata"] = wrong_non_null(r);
            ("metadata not an object", Some("metadata.name"))
        }
        4 => {
            *child = r
                .pick(&[json!(42), json!(true), json!([1]), json!(null), json!("x")])
                .clone();
            ("child not an object", Some("not an object"))
        }
        5 => {
            let (av, kind) = *r.pick(&[
                ("apps/v1", "Deployment"),
                ("v1", "Secret"),
                ("v2", "ConfigMap"),
                ("example.com/v1", "ConfigMap"),
                ("v1", "configmap"),
            ]);
            child["apiVersion"] = json!(av);
            child["kind"] = json!(kind);
            ("child of an undeclared type", Some("not declared"))
        }
        6 => {
            child["metadata"]["namespace"] = json!(format!("other-{}", r.below(100)));
            (
                "child in another namespace",
                Some("outside the parent's namespace"),
            )
        }
        7 => {
            child["metadata"]["labels"] = r
                .pick(&[
                    json!("app=fuzz"),
                    json!(5),
                    json!(["app"]),
                    json!({"app": 5}),
                ])
                .clone();
            ("labels not a map of strings", Some("labels"))
        }
        8 => {
            child["metadata"]["labels"] = json!({"app": "someone-else"});
            ("labels outside the selector", Some("selector"))
        }
        9 => {
            let copy = child.clone();
            if let Some(a) = resp["children"].as_array_mut() {
                a.push(copy);
            }
            ("duplicate child", Some("more than once"))
        }
        10 => {
            resp["children"] = r
                .pick(&[json!(42), json!(true), json!({"x": {}}), json!("text")])
                .clone();
            ("children not a list", Some("decode"))
        }
        11 => {
            let field = *r.pick(&["status", "resyncAfterSeconds", "finalized"]);
            resp[field] = wrong_non_null(r);
            if field == "finalized" && resp[field].is_boolean() {
                resp[field] = json!("yes");
            }
            if field == "resyncAfterSeconds" && resp[field].is_number() {
                resp[field] = json!("soon");
            }
            if field == "status" && resp[field].is_object() {
                resp[field] = json!("ready");
            }
            ("a top-level field of the wrong type", Some("decode"))
        }
        _ => {
            // Nested far past the decoder's depth limit.
            child["data"] = json!({"deep": "__DEEP__"});
            ("nesting past the depth limit", Some("decode"))
        }
    }
}

/// Whether [`mutate`] can index into the response without meeting a non-object.
fn mutable(resp: &Value) -> bool {
    resp.is_object()
        && resp["children"].as_array().is_some_and(|a| {
            !a.is_empty()
                && a.iter().all(|c| {
                    c.is_object() && (c["metadata"].is_object() || c["metadata"].is_null())
                })
        })
}

fn generate(seed: u64, n: u64) -> Case {
    let mut r = Rng(seed ^ n.wrapping_mul(0xa076_1d64_78bd_642f));
    if n % HUGE_EVERY == HUGE_EVERY - 1 {
        // Over the hook client's 64 MiB limit: valid JSON that never gets decoded.
        let filler = "x".repeat(metacontroller_hooks::MAX_RESPONSE_BYTES + 1024);
        let body = format!("{{\"status\": {{\"pad\": \"{filler}\"}}, \"children\": []}}");
        return Case {
            body: Bytes::from(body),
            what: "body over the size limit",
            expect: Some("exceeds"),
        };
    }
    let mut resp = json!({
        "status": {"observed": r.below(5)},
        "children": (0..1 + r.below(3) as usize).map(valid_child).collect::<Vec<_>>(),
    });
    match r.below(10) {
        // Not a JSON object at all.
        0 => {
            let text = resp.to_string();
            let body: Vec<u8> = match r.below(5) {
                0 => text.as_bytes()[..r.below(text.len() as u64 - 1) as usize].to_vec(),
                1 => b"<html><body>502 Bad Gateway</body></html>".to_vec(),
                2 => (0..1 + r.below(64)).map(|_| (r.below(256)) as u8).collect(),
                3 => format!("{text} trailing").into_bytes(),
                _ => Vec::new(),
            };
            // Random bytes could by chance be a valid document such as `1`; make sure not.
            let mut body = body;
            if serde_json::from_slice::<Value>(&body).is_ok() {
                body.insert(0, b'<');
            }
            Case {
                body: Bytes::from(body),
                what: "not JSON",
                expect: Some("decode"),
            }
        }
        // Any object is a response (unknown fields are ignored in loose mode, as upstream):
        // only other JSON values are garbage at the top.
        1 => Case {
            body: Bytes::from(
                r.pick(&[
                    json!(42),
                    json!(true),
                    json!([1, "a"]),
                    json!(null),
                    json!("x"),
                ])
                .to_string(),
            ),
            what: "not an object",
            expect: Some("decode"),
        },
        _ => {
            let (what, expect) = mutate(&mut resp, &mut r);
            // Sometimes more damage on top; the first mutation still guarantees an error.
            let extra = r.below(3);
            for _ in 0..extra {
                if mutable(&resp) {
                    mutate(&mut resp, &mut r);
                }
            }
            let levels = if r.below(2) == 0 { 200 } else { 100_000 };
            let text = resp.to_string().replace("\"__DEEP__\"", &deep(levels));
            Case {
                body: Bytes::from(text),
                what,
                expect: if extra == 0 { expect } else { None },
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// A hook server: `/case/N` answers case N; `/sync` answers the engine (valid or fuzzed).

struct Fuzzer {
    seed: u64,
    fuzzing: AtomicBool,
    served: AtomicU64,
    next: AtomicU64,
}

async fn serve(listener: TcpListener, fuzzer: Arc<Fuzzer>, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => return,
            },
        };
        let fuzzer = fuzzer.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let fuzzer = fuzzer.clone();
                async move { Ok::<_, Infallible>(answer(req, &fuzzer).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                _ = conn => {}
                _ = stop.cancelled() => {}
            }
        });
    }
}

fn reply(body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

async fn answer(req: Request<Incoming>, f: &Fuzzer) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let body = req.into_body().collect().await.map(|b| b.to_bytes());
    if let Some(n) = path.strip_prefix("/case/") {
        let n: u64 = n.parse().unwrap_or(0);
        return reply(generate(f.seed, n).body);
    }
    if f.fuzzing.load(Ordering::SeqCst) {
        f.served.fetch_add(1, Ordering::SeqCst);
        // Huge bodies are left to the pipeline test; skip their numbers here.
        let mut n = f.next.fetch_add(1, Ordering::SeqCst);
        if n % HUGE_EVERY == HUGE_EVERY - 1 {
            n = f.next.fetch_add(1, Ordering::SeqCst);
        }
        return reply(generate(f.seed ^ 0x5eed, n).body);
    }
    let request: Value = body
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default();
    let name = request["parent"]["metadata"]["name"]
        .as_str()
        .unwrap_or_default();
    let observed = common::count(&request["children"]["ConfigMap.v1"]);
    reply(Bytes::from(
        json!({
            "status": {"observed": observed},
            "children": [{"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": format!("{name}-child"), "labels": {"app": "fuzz"}},
                          "data": {"k": "v"}}]
        })
        .to_string(),
    ))
}

async fn start_hook(seed: u64, shutdown: &CancellationToken) -> (String, Arc<Fuzzer>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let fuzzer = Arc::new(Fuzzer {
        seed,
        fuzzing: AtomicBool::new(false),
        served: AtomicU64::new(0),
        next: AtomicU64::new(0),
    });
    tokio::spawn(serve(listener, fuzzer.clone(), shutdown.clone()));
    (base, fuzzer)
}

// ---------------------------------------------------------------------------------------
// 10,000 responses through the hook client and the children validation

fn configmap_type() -> Vec<ChildType> {
    vec![ChildType {
        resource: Arc::new(ResourceInfo {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            plural: "configmaps".into(),
            namespaced: true,
            has_status_subresource: false,
            verbs: vec![],
        }),
        method: metacontroller_api::UpdateMethod::InPlace,
    }]
}

/// What the engine makes of one response: the validated children, or the error.
async fn outcome(client: &HookClient, url: String) -> Result<usize, String> {
    let endpoint = HookEndpoint::new(url).with_timeout(Duration::from_secs(30));
    let response = client
        .call::<CompositeHookResponse>("sync", &endpoint, &json!({"parent": {}}))
        .await
        .map_err(|e| e.to_string())?;
    let types = configmap_type();
    let selector =
        LabelSelector::from_json(&json!({"matchLabels": {"app": "fuzz"}})).expect("selector");
    let desired = prepare_desired(
        response.value.children,
        &DesiredContext {
            parent_namespace: Some("default"),
            types: &types,
            selector: &selector,
            generated_uid: None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(desired.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_fuzzed_responses_are_all_clear_errors() {
    let shutdown = CancellationToken::new();
    let seed = seed();
    let (base, _) = start_hook(seed, &shutdown).await;
    let client = HookClient::new();
    // The generator itself: a valid base really is accepted, so every rejection below is
    // the mutation's doing.
    assert_eq!(
        prepare_desired(
            vec![valid_child(0), valid_child(1)],
            &DesiredContext {
                parent_namespace: Some("default"),
                types: &configmap_type(),
                selector: &LabelSelector::from_json(&json!({"matchLabels": {"app": "fuzz"}}))
                    .expect("selector"),
                generated_uid: None,
            },
        )
        .map(|d| d.len()),
        Ok(2)
    );

    let results: Vec<(u64, Result<usize, String>)> = futures::stream::iter(0..CASES)
        .map(|n| {
            let client = client.clone();
            let url = format!("{base}/case/{n}");
            async move { (n, outcome(&client, url).await) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    shutdown.cancel();

    let mut by_kind: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (n, result) in &results {
        let case = generate(seed, *n);
        *by_kind.entry(case.what).or_default() += 1;
        let excerpt =
            || String::from_utf8_lossy(&case.body[..case.body.len().min(300)]).into_owned();
        match result {
            Ok(children) => panic!(
                "case {n} ({}) was accepted with {children} children: {}",
                case.what,
                excerpt()
            ),
            Err(message) => {
                assert!(!message.trim().is_empty(), "case {n}: empty error");
                if let Some(expect) = case.expect {
                    assert!(
                        message.contains(expect),
                        "case {n} ({}): error {message:?} does not mention {expect:?}; body {}",
                        case.what,
                        excerpt()
                    );
                }
            }
        }
    }
    assert_eq!(results.len() as u64, CASES);
    eprintln!("fuzzed hook responses (seed {seed}): {CASES} rejected, by kind: {by_kind:#?}");
    assert!(
        by_kind.len() >= 14,
        "every kind of damage was generated: {by_kind:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Through the running engine

/// Captured log output of this test binary, at the engine's default level.
fn logs() -> Arc<Mutex<Vec<u8>>> {
    common::capture_logs("info")
}

/// Successful writes to ConfigMaps and to parents' status.
async fn child_and_status_writes(client: &kube::Client) -> u64 {
    let text = common::metrics(client).await;
    text.lines()
        .filter(|l| l.starts_with("apiserver_request_total{") && l.contains("code=\"2"))
        .filter(|l| {
            l.contains("resource=\"configmaps\"")
                || (l.contains("resource=\"things\"") && l.contains("subresource=\"status\""))
        })
        .filter(|l| {
            ["POST", "PUT", "PATCH", "DELETE"]
                .iter()
                .any(|v| l.contains(&format!("verb=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fuzzed_responses_through_the_engine_are_events_and_write_nothing() {
    const PARENTS: usize = 40;
    const AT_LEAST: u64 = 300;
    let logs = logs();
    let seed = seed();
    let env = Env::start_with([crd("Thing", "things", "Namespaced")]).await;
    let shutdown = CancellationToken::new();
    let (base, fuzzer) = start_hook(seed, &shutdown).await;
    let controllers: Api<DynamicObject> =
        Api::all_with(env.client.clone(), &common::composite_controllers());
    controllers
        .create(
            &PostParams::default(),
            &common::obj(json!({
                "apiVersion": "metacontroller.k8s.io/v1alpha1", "kind": "CompositeController",
                "metadata": {"name": "fuzz"},
                "spec": {
                    "parentResource": {"apiVersion": "example.com/v1", "resource": "things"},
                    "childResources": [{"apiVersion": "v1", "resource": "configmaps",
                                        "updateStrategy": {"method": "InPlace"}}],
                    "hooks": {"sync": {"webhook": {"url": format!("{base}/sync"), "timeout": "10s"}}}
                }
            })),
        )
        .await
        .expect("controller");
    let things = env.things();
    for i in 0..PARENTS {
        things
            .create(
                &PostParams::default(),
                &common::obj(json!({
                    "apiVersion": "example.com/v1", "kind": "Thing",
                    "metadata": {"name": format!("t{i}")},
                    "spec": {"selector": {"matchLabels": {"app": "fuzz"}}, "n": 0}
                })),
            )
            .await
            .expect("parent");
    }
    let cms = env.configmaps();
    let uids = wait_for("every parent's child and status", || async {
        let list = cms
            .list(&ListParams::default().labels("app=fuzz"))
            .await
            .ok()?;
        let parents = things.list(&ListParams::default()).await.ok()?;
        let settled = parents
            .items
            .iter()
            .all(|p| p.data["status"]["observed"] == 1);
        (list.items.len() == PARENTS && settled).then(|| {
            list.items
                .iter()
                .map(|c| (c.metadata.name.clone(), c.metadata.uid.clone()))
                .collect::<BTreeMap<_, _>>()
        })
    })
    .await;
    // Let late writes of the valid phase land before counting.
    sleep(Duration::from_millis(500)).await;
    let writes_before = child_and_status_writes(&env.client).await;
    let all_writes_before = api_writes(&env.client, true).await;

    fuzzer.fuzzing.store(true, Ordering::SeqCst);
    // Every parent changes, so every parent is synced against the fuzzed hook.
    for i in 0..PARENTS {
        things
            .patch(
                &format!("t{i}"),
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"n": 1}})),
            )
            .await
            .expect("touch parent");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while fuzzer.served.load(Ordering::SeqCst) < AT_LEAST {
        assert!(
            Instant::now() < deadline,
            "only {} fuzzed responses served",
            fuzzer.served.load(Ordering::SeqCst)
        );
        sleep(Duration::from_millis(100)).await;
    }
    let served = fuzzer.served.load(Ordering::SeqCst);
    let writes_after = child_and_status_writes(&env.client).await;

    // No child or status write; the children are the same objects.
    assert_eq!(writes_after, writes_before, "writes to children or status");
    let now: BTreeMap<_, _> = cms
        .list(&ListParams::default().labels("app=fuzz"))
        .await
        .expect("children")
        .items
        .iter()
        .map(|c| (c.metadata.name.clone(), c.metadata.uid.clone()))
        .collect();
    assert_eq!(now, uids, "children deleted or replaced");

    // A Warning event on each parent explains it.
    let events: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        "default",
        &common::resource("", "v1", "Event", "events"),
    );
    let warned = wait_for("a SyncError event on every parent", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        let mut warned = std::collections::BTreeSet::new();
        for e in &list.items {
            if e.data["type"] == "Warning" && e.data["reason"] == "SyncError" {
                let message = e.data["message"].as_str().unwrap_or_default();
                assert!(
                    message.starts_with("Sync error: ") && message.len() > "Sync error: ".len(),
                    "{message}"
                );
                if let Some(n) = e.data["involvedObject"]["name"].as_str() {
                    warned.insert(n.to_string());
                }
            }
        }
        (warned.len() == PARENTS).then_some(warned)
    })
    .await;
    assert_eq!(warned.len(), PARENTS);
    // And the log says so, naming the parent.
    let text = String::from_utf8_lossy(&logs.lock().expect("logs")).into_owned();
    let failures: Vec<&str> = text.lines().filter(|l| l.contains("sync failed")).collect();
    assert!(!failures.is_empty(), "no 'sync failed' log lines");
    // Each names the parent; what failed depends on the response (undecodable, or children
    // the engine refuses), so any of them may come first.
    for line in &failures {
        assert!(line.contains("object=default/t"), "{line}");
    }
    let example = failures
        .iter()
        .find(|l| l.contains("sync hook failed"))
        .expect("an undecodable response is logged as a failed sync hook");
    eprintln!("e.g. {example}");

    // Back to a sane hook: everything is as before, with no child replaced.
    fuzzer.fuzzing.store(false, Ordering::SeqCst);
    for i in 0..PARENTS {
        things
            .patch(
                &format!("t{i}"),
                &PatchParams::default(),
                &Patch::Merge(&json!({"spec": {"n": 2}})),
            )
            .await
            .expect("touch parent");
    }
    sleep(Duration::from_secs(1)).await;
    let after: BTreeMap<_, _> = cms
        .list(&ListParams::default().labels("app=fuzz"))
        .await
        .expect("children")
        .items
        .iter()
        .map(|c| (c.metadata.name.clone(), c.metadata.uid.clone()))
        .collect();
    assert_eq!(after, uids);
    eprintln!(
        "engine under fuzzed responses (seed {seed}): {served} responses to {PARENTS} parents, \
         0 child/status writes, {} 'sync failed' log lines, {} writes in all before \
         (events excluded)",
        failures.len(),
        all_writes_before
    );
    shutdown.cancel();
    env.stop().await;
}
