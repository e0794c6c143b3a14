//! `propagation`: how fast one parent propagates a ConfigMap to many namespaces.
//!
//! Everything runs in this process: the embedded API server on a loopback port, the engine,
//! and the customize and sync hooks of a CompositeController whose cluster-scoped parent names
//! a source ConfigMap (a related object) and N target namespaces. Two figures are measured,
//! each from the write that starts it until a watch has seen every copy in its final state:
//!
//! ```text
//! create    parent created ─► N copies exist with the source's data
//! update    source edited  ─► the edit reached all N copies (related fan-in + N updates)
//! ```

use std::collections::HashSet;
use std::convert::Infallible;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::ApiResource;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Parser)]
#[command(about = "Time a ConfigMap propagated by one parent to many namespaces")]
struct Args {
    /// Target namespaces (one copy each).
    #[arg(long, default_value_t = 1000)]
    namespaces: usize,
    /// Engine workers per controller.
    #[arg(long, default_value_t = 5)]
    workers: usize,
    /// Give up on a phase after this many seconds.
    #[arg(long, default_value_t = 120)]
    timeout: u64,
}

fn resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.into(),
        plural: plural.into(),
    }
}

fn obj(v: Value) -> Result<DynamicObject> {
    Ok(serde_json::from_value(v)?)
}

fn target(i: usize) -> String {
    format!("target-{i:05}")
}

/// The hooks: `/customize` relates the source ConfigMap, `/sync` copies it to every target.
async fn hook_reply(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(400, json!({})),
    };
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return reply(400, json!({}));
    };
    let spec = &request["parent"]["spec"];
    let (src_ns, src_name) = (
        spec["source"]["namespace"].as_str().unwrap_or(""),
        spec["source"]["name"].as_str().unwrap_or(""),
    );
    match path.as_str() {
        "/customize" => reply(
            200,
            json!({"relatedResources": [{
                "apiVersion": "v1", "resource": "configmaps",
                "namespace": src_ns, "names": [src_name]
            }]}),
        ),
        "/sync" => {
            let source = &request["related"]["ConfigMap.v1"][format!("{src_ns}/{src_name}")];
            let Some(data) = source.get("data") else {
                // No source yet: keep what exists.
                return reply(200, json!({"children": []}));
            };
            let children: Vec<Value> = spec["targetNamespaces"]
                .as_array()
                .map(|a| a.as_slice())
                .unwrap_or_default()
                .iter()
                .map(|ns| {
                    json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": src_name, "namespace": ns,
                                     "labels": {"propagated": "yes"}},
                        "data": data
                    })
                })
                .collect();
            reply(200, json!({"children": children}))
        }
        _ => reply(404, json!({})),
    }
}

fn reply(code: u16, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = hyper::StatusCode::from_u16(code).unwrap_or(hyper::StatusCode::OK);
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

async fn serve_hooks(listener: TcpListener, shutdown: CancellationToken) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(_) => return,
            },
        };
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                Ok::<_, Infallible>(hook_reply(req).await)
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

/// Waits until every target namespace holds a copy whose `data.v` is `want`, following a
/// watch on propagated ConfigMaps from `resource_version`.
async fn wait_copies(
    api: &Api<DynamicObject>,
    resource_version: &str,
    targets: usize,
    want: &str,
    limit: Duration,
) -> Result<()> {
    let params = WatchParams::default().labels("propagated=yes");
    let mut done: HashSet<String> = HashSet::new();
    let mut rv = resource_version.to_string();
    let deadline = Instant::now() + limit;
    // A watch may end (server timeout); resume from the last version seen, within the limit.
    while Instant::now() < deadline {
        let stream = api.watch(&params, &rv).await.context("watch copies")?;
        futures::pin_mut!(stream);
        loop {
            let next = tokio::time::timeout_at(deadline.into(), stream.try_next()).await;
            let event = match next {
                Err(_) => bail!("timed out with {} of {targets} copies", done.len()),
                Ok(Err(e)) => return Err(e).context("watch stream"),
                Ok(Ok(None)) => break,
                Ok(Ok(Some(e))) => e,
            };
            match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    rv = o.metadata.resource_version.clone().unwrap_or(rv);
                    let ns = o.metadata.namespace.clone().unwrap_or_default();
                    if o.data["data"]["v"] == want {
                        done.insert(ns);
                    } else {
                        done.remove(&ns);
                    }
                }
                WatchEvent::Deleted(o) => {
                    done.remove(&o.metadata.namespace.unwrap_or_default());
                }
                WatchEvent::Bookmark(b) => rv = b.metadata.resource_version,
                WatchEvent::Error(e) => bail!("watch error: {e:?}"),
            }
            if done.len() == targets {
                return Ok(());
            }
        }
    }
    bail!("timed out with {} of {targets} copies", done.len())
}

async fn run(args: Args) -> Result<()> {
    let shutdown = CancellationToken::new();
    let server = metacontroller_apiserver::start(
        metacontroller_apiserver::ServerConfig {
            listen: "127.0.0.1:0".parse()?,
            tls: false,
        },
        shutdown.clone(),
    )
    .await
    .context("start the API server")?;
    let kubeconfig = Kubeconfig::from_yaml(&server.kubeconfig_yaml())?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    let client = kube::Client::try_from(config)?;

    let crds: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(
            "apiextensions.k8s.io",
            "v1",
            "CustomResourceDefinition",
            "customresourcedefinitions",
        ),
    );
    for crd in metacontroller_api::crds() {
        crds.create(&PostParams::default(), &obj(crd)?).await?;
    }
    crds.create(
        &PostParams::default(),
        &obj(json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "configmappropagations.example.com"},
            "spec": {
                "group": "example.com", "scope": "Cluster",
                "names": {"plural": "configmappropagations", "singular": "configmappropagation",
                          "kind": "ConfigMapPropagation", "listKind": "ConfigMapPropagationList"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                              "subresources": {"status": {}},
                              "schema": {"openAPIV3Schema": {"type": "object",
                                         "x-kubernetes-preserve-unknown-fields": true}}}]
            }
        }))?,
    )
    .await?;

    let namespaces: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("", "v1", "Namespace", "namespaces"),
    );
    let names: Vec<String> = (0..args.namespaces).map(target).collect();
    futures::stream::iter(names.iter().cloned().chain(["shared".to_string()]))
        .map(|ns| {
            let api = namespaces.clone();
            async move {
                api.create(
                    &PostParams::default(),
                    &obj(
                        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
                    )?,
                )
                .await?;
                Ok::<_, anyhow::Error>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<_>>()
        .await
        .context("create namespaces")?;
    let cm_resource = resource("", "v1", "ConfigMap", "configmaps");
    let shared: Api<DynamicObject> = Api::namespaced_with(client.clone(), "shared", &cm_resource);
    shared
        .create(
            &PostParams::default(),
            &obj(json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "settings"}, "data": {"v": "1"}}))?,
        )
        .await?;

    let hooks = TcpListener::bind("127.0.0.1:0").await?;
    let hook_url = format!("http://{}", hooks.local_addr()?);
    tokio::spawn(serve_hooks(hooks, shutdown.clone()));
    let engine = tokio::spawn(metacontroller_engine::run(
        client.clone(),
        metacontroller_engine::EngineOptions {
            discovery_interval: Duration::from_secs(5),
            workers: args.workers,
            ..Default::default()
        },
        shutdown.clone(),
    ));
    let controllers: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(
            "metacontroller.k8s.io",
            "v1alpha1",
            "CompositeController",
            "compositecontrollers",
        ),
    );
    controllers
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "metacontroller.k8s.io/v1alpha1", "kind": "CompositeController",
                "metadata": {"name": "propagation"},
                "spec": {
                    "generateSelector": true,
                    "parentResource": {"apiVersion": "example.com/v1",
                                       "resource": "configmappropagations"},
                    "childResources": [{"apiVersion": "v1", "resource": "configmaps",
                                        "updateStrategy": {"method": "InPlace"}}],
                    "hooks": {
                        "customize": {"version": "v2",
                                      "webhook": {"url": format!("{hook_url}/customize")}},
                        "sync": {"version": "v2", "webhook": {"url": format!("{hook_url}/sync")}}
                    }
                }
            }))?,
        )
        .await?;
    // Let the controller start and its informers list before the clock starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let copies: Api<DynamicObject> = Api::all_with(client.clone(), &cm_resource);
    let limit = Duration::from_secs(args.timeout);
    let parents: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(
            "example.com",
            "v1",
            "ConfigMapPropagation",
            "configmappropagations",
        ),
    );
    let start_rv = copies
        .list_metadata(&Default::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let started = Instant::now();
    parents
        .create(
            &PostParams::default(),
            &obj(json!({
                "apiVersion": "example.com/v1", "kind": "ConfigMapPropagation",
                "metadata": {"name": "settings"},
                "spec": {"source": {"namespace": "shared", "name": "settings"},
                         "targetNamespaces": names}
            }))?,
        )
        .await?;
    wait_copies(&copies, &start_rv, args.namespaces, "1", limit).await?;
    let create = started.elapsed();

    // Let the parent settle (the syncs woken by its own child writes) before the edit.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let update_rv = copies
        .list_metadata(&Default::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let started = Instant::now();
    shared
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"v": "2"}})),
        )
        .await?;
    wait_copies(&copies, &update_rv, args.namespaces, "2", limit).await?;
    let update = started.elapsed();

    println!(
        "namespaces={} workers={} create_all_copies={:.3}s source_edit_reaches_all={:.3}s",
        args.namespaces,
        args.workers,
        create.as_secs_f64(),
        update.as_secs_f64()
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), engine).await;
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}
