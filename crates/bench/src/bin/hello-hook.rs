//! The hello-world tutorial's sync hook compiled: the same answer as `examples/hello-world/sync.py`
//! (one Pod per HelloWorld, `status.pods` = the Pods observed), served over keep-alive HTTP/1.1
//! by hyper on one thread. `hello-load --hook compiled` runs it as its own process to show the
//! engine's ceiling, with a hook that costs next to nothing.
//!
//! Listens on 127.0.0.1 on a free port and prints it; `GET /calls` answers the number of POSTs
//! served so far. Stops when stdin closes, so it never outlives the benchmark that started it.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

fn sync(observed: &Value) -> Value {
    let parent = &observed["parent"];
    let who = parent["spec"]["who"].as_str().unwrap_or("World");
    let pods = observed["children"]["Pod.v1"]
        .as_object()
        .map_or(0, serde_json::Map::len);
    json!({
        "status": {"pods": pods},
        "children": [{
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": parent["metadata"]["name"]},
            "spec": {
                "restartPolicy": "OnFailure",
                "containers": [{
                    "name": "hello",
                    "image": "busybox",
                    "command": ["echo", format!("Hello, {who}!")]
                }]
            }
        }]
    })
}

async fn answer(req: Request<Incoming>, calls: &AtomicU64) -> Response<Full<Bytes>> {
    if req.method() == Method::GET && req.uri().path() == "/calls" {
        return reply(200, "text/plain", calls.load(Ordering::Relaxed).to_string());
    }
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return reply(400, "text/plain", e.to_string()),
    };
    calls.fetch_add(1, Ordering::Relaxed);
    match serde_json::from_slice::<Value>(&body) {
        Ok(observed) => reply(200, "application/json", sync(&observed).to_string()),
        Err(e) => reply(400, "text/plain", e.to_string()),
    }
}

fn reply(code: u16, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or_default();
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    resp
}

fn main() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        println!("{}", listener.local_addr()?.port());
        let calls = Arc::new(AtomicU64::new(0));
        std::thread::spawn(|| {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            std::process::exit(0);
        });
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            let calls = calls.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let calls = calls.clone();
                    async move { Ok::<_, Infallible>(answer(req, &calls).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}
