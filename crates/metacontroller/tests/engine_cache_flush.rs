//! `--cache-flush-interval`: informers relist on that period, so a cache never stays wrong
//! for longer, and they keep a single watch between flushes.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

mod common;

use common::{metrics, start_api_server, wait_for};

/// LIST requests the server answered for configmaps.
async fn configmap_lists(client: &kube::Client) -> u64 {
    metrics(client)
        .await
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
        .filter(|l| l.contains("verb=\"LIST\"") && l.contains("resource=\"configmaps\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn informer_lists(flush: Option<Duration>, run_for: Duration) -> u64 {
    let shutdown = CancellationToken::new();
    let client = start_api_server(&shutdown).await;
    let discovery = metacontroller_engine::Discovery::new(client.clone());
    let resource = discovery
        .resolve("v1", "configmaps")
        .await
        .expect("resolve");
    let factory = metacontroller_engine::InformerFactory::with_flush_interval(
        client.clone(),
        flush,
        Default::default(),
    );
    let informer = factory.informer(&resource);
    tokio::time::timeout(common::WAIT, informer.wait_synced())
        .await
        .expect("initial list");
    tokio::time::sleep(run_for).await;
    let lists = configmap_lists(&client).await;
    drop(informer);
    shutdown.cancel();
    lists
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn informers_relist_on_the_flush_interval() {
    // Without a flush interval: the initial list only.
    assert_eq!(informer_lists(None, Duration::from_millis(1200)).await, 1);
    // With 200ms: several relists in 1.2s (bounded below, generously, for a loaded machine).
    let lists = informer_lists(
        Some(Duration::from_millis(200)),
        Duration::from_millis(1200),
    )
    .await;
    assert!(
        lists >= 3,
        "expected periodic relists, saw {lists} LIST requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relist_keeps_the_cache_correct() {
    let shutdown = CancellationToken::new();
    let client = start_api_server(&shutdown).await;
    let discovery = metacontroller_engine::Discovery::new(client.clone());
    let resource = discovery
        .resolve("v1", "configmaps")
        .await
        .expect("resolve");
    let factory = metacontroller_engine::InformerFactory::with_flush_interval(
        client.clone(),
        Some(Duration::from_millis(200)),
        Default::default(),
    );
    let informer = factory.informer(&resource);
    tokio::time::timeout(common::WAIT, informer.wait_synced())
        .await
        .expect("initial list");
    let api: kube::Api<kube::api::DynamicObject> =
        kube::Api::namespaced_with(client.clone(), "default", &common::configmaps());
    api.create(
        &Default::default(),
        &common::obj(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "flushed"}})),
    )
    .await
    .expect("create");
    wait_for("the object in the cache", || async {
        informer.get("default", "flushed").map(|_| ())
    })
    .await;
    // Across several flushes the object stays cached, and its deletion is seen.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(informer.get("default", "flushed").is_some());
    api.delete("flushed", &Default::default())
        .await
        .expect("delete");
    wait_for("the deletion in the cache", || async {
        informer.get("default", "flushed").is_none().then_some(())
    })
    .await;
    shutdown.cancel();
}
