//! What a real cluster adds to the API server, for `metacontroller dev`: one node (`dev-node`)
//! with a scheduler and a kubelet that runs pods, and the workload controllers of
//! kube-controller-manager (Deployment, ReplicaSet, StatefulSet, DaemonSet, Job) plus a volume
//! provisioner that binds claims.
//!
//! Everything here is a client of the Kubernetes API through kube-rs (list, watch, create,
//! patch, delete), as kubelet and kube-controller-manager are; nothing reaches into the API
//! server's storage. Two container runtimes:
//!
//! - [`RuntimeKind::Simulated`]: nothing runs; a container runs until its pod is deleted, or
//!   completes by the rule of [`kubelet::sim_plan`].
//! - [`RuntimeKind::Process`]: a container is a local process (see [`process`]), its output
//!   served by `pods/log` through [`DevCluster::logs`], and hook URLs naming a Service reach its
//!   pods through [`DevCluster::resolve_service_url`].
//!
//! ```text
//!  watches ─► World (cache) ─► one pass: node, Deployments ─► ReplicaSets ─► Pods,
//!                                StatefulSets (+claims), DaemonSets, Jobs, scheduler, kubelet
//!                     ▲                                  │ writes (reflected in the cache)
//!                     └──────────────────────────────────┘
//! ```

pub mod files;
pub mod kubelet;
pub mod logs;
pub mod ops;
pub mod process;
pub mod workloads;
pub mod world;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::logs::LogStore;
use crate::ops::Ops;
use crate::world::{str_at, Kind, World};

/// The name of the node.
pub const NODE_NAME: &str = "dev-node";

/// How containers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    Simulated,
    Process,
}

/// Where and how the node runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub runtime: RuntimeKind,
    /// Pod directories (logs, volumes) and claims live here.
    pub dir: PathBuf,
}

/// A running node and controllers.
#[derive(Clone)]
pub struct DevCluster {
    world: Arc<World>,
    logs: Arc<LogStore>,
    runtime: RuntimeKind,
}

/// Starts watching and working; the task ends (after stopping every process) on shutdown.
pub fn start(
    client: kube::Client,
    options: Options,
    shutdown: CancellationToken,
) -> (DevCluster, JoinHandle<()>) {
    let world = World::new();
    world::spawn_watches(&client, &world, &shutdown);
    let logs = Arc::new(LogStore::default());
    let ops = Ops::new(client, Arc::clone(&world));
    let mut kubelet = kubelet::Kubelet::new(
        ops.clone(),
        options.runtime,
        options.dir.clone(),
        Arc::clone(&logs),
    );
    let dir = options.dir.clone();
    let task = tokio::spawn({
        let world = Arc::clone(&world);
        async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = world.changed.notified() => {}
                    _ = tokio::time::sleep(workloads::TICK) => {}
                }
                if !world.synced() {
                    continue;
                }
                kubelet.ensure_node().await;
                workloads::deployments(&ops).await;
                workloads::replicasets(&ops).await;
                workloads::statefulsets(&ops).await;
                workloads::daemonsets(&ops).await;
                workloads::jobs(&ops).await;
                workloads::bind_claims(&ops).await;
                kubelet.schedule().await;
                kubelet.sync().await;
            }
            kubelet.kill_all();
            let _ = std::fs::remove_dir_all(dir.join("pods"));
        }
    });
    (
        DevCluster {
            world,
            logs,
            runtime: options.runtime,
        },
        task,
    )
}

impl DevCluster {
    /// The node's container logs.
    pub fn logs(&self) -> &Arc<LogStore> {
        &self.logs
    }

    /// For a URL naming a Service as cluster DNS does (`NAME.NAMESPACE`, `NAME.NAMESPACE.svc`,
    /// `NAME.NAMESPACE.svc.cluster.local`), the same URL at the address and target port of one
    /// of its pods (a Ready one if any); `None` for other URLs, for unknown Services, and in the
    /// simulated runtime (its pods listen nowhere).
    pub fn resolve_service_url(&self, url: &str) -> Option<String> {
        if self.runtime != RuntimeKind::Process {
            return None;
        }
        let (scheme, rest) = url.split_once("://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return None;
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<i64>().ok()?),
            None => (authority, if scheme == "https" { 443 } else { 80 }),
        };
        let labels: Vec<&str> = host.split('.').collect();
        let (name, ns) = match labels.as_slice() {
            [n, ns] | [n, ns, "svc"] | [n, ns, "svc", "cluster", "local"] => (*n, *ns),
            _ => return None,
        };
        let svc = self.world.get(Kind::Service, &(ns.into(), name.into()))?;
        let sp = svc
            .pointer("/spec/ports")
            .and_then(Value::as_array)?
            .iter()
            .find(|p| p.get("port").and_then(Value::as_i64) == Some(port))?
            .clone();
        let selector = svc.pointer("/spec/selector").and_then(Value::as_object)?;
        let mut pods: Vec<Value> = self
            .world
            .list(Kind::Pod, Some(ns))
            .into_iter()
            .filter(workloads::is_active)
            .filter(|p| str_at(p, "/status/phase") == "Running")
            .filter(|p| {
                selector
                    .iter()
                    .all(|(k, v)| p.pointer("/metadata/labels").and_then(|l| l.get(k)) == Some(v))
            })
            .collect();
        pods.sort_by_key(|p| !workloads::is_ready(p));
        let pod = pods.first()?;
        let target = match sp.get("targetPort") {
            Some(Value::Number(n)) => n.as_i64()?,
            Some(Value::String(named)) => pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)?
                .iter()
                .flat_map(|c| {
                    c.get("ports")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default()
                })
                .find(|p| str_at(p, "/name") == named)
                .and_then(|p| p.get("containerPort").and_then(Value::as_i64))?,
            _ => port,
        };
        Some(format!("{scheme}://127.0.0.1:{target}{path}"))
    }
}
