//! The node `dev-node`: its Node object, a scheduler binding pods to it, and a kubelet that
//! runs their containers (simulated, or as local processes) and reports their status.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::logs::{LogFile, LogStore};
use crate::ops::{now, Ops};
use crate::process::{self, Unstartable};
use crate::world::{str_at, Kind};
use crate::{RuntimeKind, NODE_NAME};

/// The kubelet's restart back-off: 10s, doubling, at most five minutes.
const BACKOFF_START: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// How a simulated container ends: never, or with this exit code after this long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimPlan {
    Runs,
    Exits {
        after: Duration,
        code: i32,
        output: String,
    },
}

/// The simulated runtime's rule. The container's command line is `command` followed by
/// `args`; for `sh -c SCRIPT` / `bash -c SCRIPT` the script's words are used instead. Its
/// first word decides:
/// `echo`, `printf` (their text is the log), `true`, `date`, `env`, `hostname`, `whoami`,
/// `ls`, `cat`: exit 0 at once; `false`: exit 1; `exit N`: exit N; `sleep N`: exit 0 after N
/// seconds. Anything else — servers, interpreters, no command at all — runs until the pod is
/// deleted.
pub fn sim_plan(container: &Value) -> SimPlan {
    let mut words: Vec<String> = ["command", "args"]
        .iter()
        .filter_map(|k| container.get(*k).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect();
    if words.len() >= 3 && matches!(base(&words[0]), "sh" | "bash" | "ash") && words[1] == "-c" {
        words = words[2].split_whitespace().map(str::to_string).collect();
    }
    let Some(first) = words.first() else {
        return SimPlan::Runs;
    };
    let rest = &words[1..];
    let done = |code: i32, output: String| SimPlan::Exits {
        after: Duration::ZERO,
        code,
        output,
    };
    match base(first) {
        "echo" => {
            let (newline, text) = match rest.first().map(String::as_str) {
                Some("-n") => (false, &rest[1..]),
                _ => (true, rest),
            };
            let mut out = text.join(" ");
            if newline {
                out.push('\n');
            }
            done(0, out)
        }
        "printf" => done(0, rest.join(" ").replace("\\n", "\n")),
        "true" | "date" | "env" | "hostname" | "whoami" | "ls" | "cat" => done(0, String::new()),
        "false" => done(1, String::new()),
        "exit" => done(
            rest.first()
                .and_then(|c| c.trim_end_matches(';').parse().ok())
                .unwrap_or(0),
            String::new(),
        ),
        "sleep" => match rest
            .first()
            .and_then(|s| s.trim_end_matches(';').parse::<f64>().ok())
        {
            Some(secs) if secs.is_finite() && secs >= 0.0 => SimPlan::Exits {
                after: Duration::from_secs_f64(secs),
                code: 0,
                output: String::new(),
            },
            _ => SimPlan::Runs,
        },
        _ => SimPlan::Runs,
    }
}

fn base(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

#[derive(Debug, Clone)]
struct Exit {
    code: i32,
    reason: String,
    message: Option<String>,
    finished: String,
}

/// One run of a container.
#[derive(Debug)]
struct Instance {
    started: String,
    started_at: Instant,
    container_id: String,
    exit: Arc<Mutex<Option<Exit>>>,
    /// The readiness probe's verdict (process runtime); `None` without a probe.
    probe_ready: Option<Arc<AtomicBool>>,
    /// The process group to signal (process runtime).
    pgid: Option<u32>,
    log: LogFile,
}

impl Instance {
    fn exit(&self) -> Option<Exit> {
        self.exit.lock().unwrap().clone()
    }
}

#[derive(Debug)]
struct Container {
    spec: Value,
    init: bool,
    current: Option<Instance>,
    last: Option<(String, String, Exit)>,
    restarts: u32,
    /// Waiting before the next start: (reason, message).
    waiting: Option<(String, String)>,
    backoff: Duration,
    next_start: Option<Instant>,
    /// Could never start: the container is terminated with this.
    fatal: Option<Exit>,
}

impl Container {
    fn name(&self) -> &str {
        str_at(&self.spec, "/name")
    }
}

#[derive(Debug)]
struct PodRt {
    uid: String,
    ns: String,
    name: String,
    dir: PathBuf,
    start_time: String,
    containers: Vec<Container>,
    volumes: Option<BTreeMap<String, PathBuf>>,
    pod_ip: String,
    /// `terminationGracePeriodSeconds`.
    grace: Duration,
}

pub struct Kubelet {
    ops: Ops,
    runtime: RuntimeKind,
    dir: PathBuf,
    logs: Arc<LogStore>,
    pods: HashMap<String, PodRt>,
    next_ip: u32,
    node_ready: bool,
}

impl Kubelet {
    pub fn new(ops: Ops, runtime: RuntimeKind, dir: PathBuf, logs: Arc<LogStore>) -> Self {
        Self {
            ops,
            runtime,
            dir,
            logs,
            pods: HashMap::new(),
            next_ip: 2,
            node_ready: false,
        }
    }

    /// Registers the Node (once) with its capacity and a Ready condition.
    pub async fn ensure_node(&mut self) {
        if self.node_ready
            && self
                .ops
                .world
                .get(Kind::Node, &(String::new(), NODE_NAME.into()))
                .is_some()
        {
            return;
        }
        let capacity =
            json!({"cpu": "8", "memory": "32Gi", "pods": "110", "ephemeral-storage": "100Gi"});
        let stamp = now();
        let node = json!({
            "metadata": {"name": NODE_NAME, "labels": {
                "kubernetes.io/hostname": NODE_NAME,
                "kubernetes.io/os": std::env::consts::OS,
                "kubernetes.io/arch": match std::env::consts::ARCH { "x86_64" => "amd64", "aarch64" => "arm64", a => a },
                "beta.kubernetes.io/os": std::env::consts::OS,
                "node-role.kubernetes.io/control-plane": "",
            }},
            "spec": {},
        });
        let existing = self
            .ops
            .world
            .get(Kind::Node, &(String::new(), NODE_NAME.into()));
        let node = match existing {
            Some(n) => n,
            None => match self.ops.create(Kind::Node, node).await {
                Ok(n) => n,
                Err(error) => {
                    tracing::warn!(%error, "registering the node failed");
                    return;
                }
            },
        };
        let runtime = match self.runtime {
            RuntimeKind::Simulated => "simulated",
            RuntimeKind::Process => "process",
        };
        let status = json!({"status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory", "message": "kubelet has sufficient memory available", "lastHeartbeatTime": stamp, "lastTransitionTime": stamp},
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure", "message": "kubelet has no disk pressure", "lastHeartbeatTime": stamp, "lastTransitionTime": stamp},
                {"type": "PIDPressure", "status": "False", "reason": "KubeletHasSufficientPID", "message": "kubelet has sufficient PID available", "lastHeartbeatTime": stamp, "lastTransitionTime": stamp},
                {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status", "lastHeartbeatTime": stamp, "lastTransitionTime": stamp},
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": NODE_NAME},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "architecture": std::env::consts::ARCH,
                "operatingSystem": std::env::consts::OS,
                "kubeletVersion": "v1.32.0",
                "kubeProxyVersion": "",
                "containerRuntimeVersion": format!("metacontroller-dev://{runtime}"),
                "osImage": "metacontroller dev",
                "kernelVersion": "", "machineID": "", "systemUUID": "", "bootID": "",
            },
        }});
        if node.pointer("/status/conditions").is_none() {
            if let Err(error) = self.ops.merge(Kind::Node, &node, status, true).await {
                tracing::warn!(%error, "reporting the node's status failed");
                return;
            }
        }
        self.node_ready = true;
    }

    /// Binds pending pods to the node: the default scheduler's job, for a single node.
    pub async fn schedule(&mut self) {
        let node = self
            .ops
            .world
            .get(Kind::Node, &(String::new(), NODE_NAME.into()));
        let labels = node
            .as_ref()
            .and_then(|n| n.pointer("/metadata/labels"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for pod in self.ops.world.list(Kind::Pod, None) {
            if !str_at(&pod, "/spec/nodeName").is_empty()
                || pod.pointer("/metadata/deletionTimestamp").is_some()
                || !matches!(
                    str_at(&pod, "/spec/schedulerName"),
                    "" | "default-scheduler"
                )
                || matches!(str_at(&pod, "/status/phase"), "Succeeded" | "Failed")
            {
                continue;
            }
            let fits = pod
                .pointer("/spec/nodeSelector")
                .and_then(Value::as_object)
                .is_none_or(|sel| sel.iter().all(|(k, v)| labels.get(k) == Some(v)));
            if !fits || node.is_none() {
                let message =
                    "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector.";
                let cond = json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": message, "lastProbeTime": null, "lastTransitionTime": now()}]);
                let current = pod
                    .pointer("/status/conditions")
                    .cloned()
                    .unwrap_or(Value::Null);
                if node.is_some() && current.pointer("/0/reason") != Some(&json!("Unschedulable")) {
                    let _ = self
                        .ops
                        .merge(
                            Kind::Pod,
                            &pod,
                            json!({"status": {"conditions": cond}}),
                            true,
                        )
                        .await;
                    self.ops
                        .event(
                            &pod,
                            "default-scheduler",
                            "Warning",
                            "FailedScheduling",
                            message,
                        )
                        .await;
                }
                continue;
            }
            match self
                .ops
                .merge(
                    Kind::Pod,
                    &pod,
                    json!({"spec": {"nodeName": NODE_NAME}}),
                    false,
                )
                .await
            {
                Ok(bound) => {
                    let cond = json!([{"type": "PodScheduled", "status": "True",
                        "lastProbeTime": null, "lastTransitionTime": now()}]);
                    let _ = self
                        .ops
                        .merge(
                            Kind::Pod,
                            &bound,
                            json!({"status": {"conditions": cond}}),
                            true,
                        )
                        .await;
                    let message = format!(
                        "Successfully assigned {}/{} to {NODE_NAME}",
                        str_at(&pod, "/metadata/namespace"),
                        str_at(&pod, "/metadata/name")
                    );
                    self.ops
                        .event(&bound, "default-scheduler", "Normal", "Scheduled", &message)
                        .await;
                }
                Err(error) => tracing::debug!(%error, "binding a pod failed"),
            }
        }
    }

    /// One pass over the node's pods.
    pub async fn sync(&mut self) {
        let pods: Vec<Value> = self
            .ops
            .world
            .list(Kind::Pod, None)
            .into_iter()
            .filter(|p| str_at(p, "/spec/nodeName") == NODE_NAME)
            .collect();
        let live: std::collections::HashSet<String> = pods
            .iter()
            .map(|p| str_at(p, "/metadata/uid").to_string())
            .collect();
        // Pods that are gone: stop what runs, forget them.
        let gone: Vec<String> = self
            .pods
            .keys()
            .filter(|uid| !live.contains(*uid))
            .cloned()
            .collect();
        for uid in gone {
            if let Some(rt) = self.pods.remove(&uid) {
                let grace = rt.grace;
                self.stop_pod(rt, grace, true);
            }
        }
        for pod in pods {
            self.sync_pod(pod).await;
        }
    }

    /// Stops every running container of a pod (SIGTERM, SIGKILL after `grace`); `forget`
    /// also drops its logs and directory.
    fn stop_pod(&self, rt: PodRt, grace: Duration, forget: bool) {
        let groups: Vec<u32> = rt
            .containers
            .iter()
            .filter_map(|c| c.current.as_ref())
            .filter(|i| i.exit().is_none())
            .filter_map(|i| i.pgid)
            .collect();
        if forget {
            self.logs.forget(&rt.ns, &rt.name, &rt.uid);
        }
        let dir = rt.dir.clone();
        tokio::spawn(async move {
            terminate(&groups, grace).await;
            if forget {
                let _ = tokio::fs::remove_dir_all(&dir).await;
            }
        });
    }

    /// Kills every process at once (shutdown).
    pub fn kill_all(&mut self) {
        for rt in self.pods.values() {
            for i in rt.containers.iter().filter_map(|c| c.current.as_ref()) {
                if let (Some(pgid), None) = (i.pgid, i.exit()) {
                    signal(pgid, "KILL");
                }
            }
        }
    }

    async fn sync_pod(&mut self, pod: Value) {
        let uid = str_at(&pod, "/metadata/uid").to_string();
        let phase = str_at(&pod, "/status/phase").to_string();
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            // Graceful deletion: stop the containers, then remove the pod for good.
            let grace = pod
                .pointer("/metadata/deletionGracePeriodSeconds")
                .and_then(Value::as_u64)
                .unwrap_or(30);
            if let Some(rt) = self.pods.remove(&uid) {
                self.stop_pod(rt, Duration::from_secs(grace), false);
            }
            let ops = self.ops.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let _ = ops.delete(Kind::Pod, &pod, Some(0)).await;
            });
            return;
        }
        if !self.pods.contains_key(&uid) {
            if matches!(phase.as_str(), "Succeeded" | "Failed") {
                // Finished before this node process started: nothing to run again.
                return;
            }
            let ns = str_at(&pod, "/metadata/namespace").to_string();
            let name = str_at(&pod, "/metadata/name").to_string();
            let pod_ip = match self.runtime {
                RuntimeKind::Process => "127.0.0.1".to_string(),
                RuntimeKind::Simulated => {
                    self.next_ip += 1;
                    format!(
                        "10.244.{}.{}",
                        (self.next_ip / 250) % 250,
                        self.next_ip % 250 + 2
                    )
                }
            };
            let containers = ["initContainers", "containers"]
                .iter()
                .filter_map(|k| {
                    pod.pointer(&format!("/spec/{k}"))
                        .and_then(Value::as_array)
                        .map(|a| (*k, a))
                })
                .flat_map(|(k, a)| a.iter().map(move |c| (k == "initContainers", c.clone())))
                .map(|(init, spec)| Container {
                    spec,
                    init,
                    current: None,
                    last: None,
                    restarts: 0,
                    waiting: None,
                    backoff: BACKOFF_START,
                    next_start: None,
                    fatal: None,
                })
                .collect();
            self.pods.insert(
                uid.clone(),
                PodRt {
                    dir: self.dir.join("pods").join(format!("{ns}_{name}_{uid}")),
                    uid: uid.clone(),
                    ns,
                    name,
                    start_time: now(),
                    containers,
                    volumes: None,
                    pod_ip,
                    grace: Duration::from_secs(
                        pod.pointer("/spec/terminationGracePeriodSeconds")
                            .and_then(Value::as_u64)
                            .unwrap_or(30),
                    ),
                },
            );
        }
        let restart_policy = match str_at(&pod, "/spec/restartPolicy") {
            "" => "Always".to_string(),
            p => p.to_string(),
        };
        let mut rt = self.pods.remove(&uid).expect("inserted above");
        self.step(&pod, &mut rt, &restart_policy).await;
        let status = pod_status(&pod, &rt, &restart_policy);
        self.pods.insert(uid, rt);
        let current = pod.get("status").cloned().unwrap_or(Value::Null);
        let changed: serde_json::Map<String, Value> = status
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| current.get(k.as_str()) != Some(v))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        if !changed.is_empty() {
            if let Err(error) = self
                .ops
                .merge(Kind::Pod, &pod, json!({"status": changed}), true)
                .await
            {
                tracing::debug!(%error, "updating a pod's status failed");
            }
        }
    }

    /// Starts, restarts and reaps containers as the restart policy says.
    async fn step(&mut self, pod: &Value, rt: &mut PodRt, restart_policy: &str) {
        let now_i = Instant::now();
        // Reap exits and decide restarts.
        for c in rt.containers.iter_mut() {
            let Some(inst) = c.current.as_ref() else {
                continue;
            };
            let Some(exit) = inst.exit() else { continue };
            inst.log.done.store(true, Ordering::Release);
            let restart = if c.init {
                exit.code != 0 && restart_policy != "Never"
            } else {
                match restart_policy {
                    "Always" => true,
                    "OnFailure" => exit.code != 0,
                    _ => false,
                }
            };
            if restart && c.next_start.is_none() {
                let ran = inst.started_at.elapsed();
                if ran > Duration::from_secs(600) {
                    c.backoff = BACKOFF_START;
                }
                c.next_start = Some(now_i + c.backoff);
                c.waiting = Some((
                    "CrashLoopBackOff".into(),
                    format!(
                        "back-off {}s restarting failed container={} pod={}_{}({})",
                        c.backoff.as_secs(),
                        c.name(),
                        rt.name,
                        rt.ns,
                        rt.uid
                    ),
                ));
                c.backoff = (c.backoff * 2).min(BACKOFF_MAX);
            }
        }
        // Init containers run one at a time, in order; the others once all succeeded.
        let mut init_done = true;
        let mut init_failed = false;
        let mut to_start = Vec::new();
        for (i, c) in rt.containers.iter().enumerate().filter(|(_, c)| c.init) {
            if c.fatal.is_some() {
                init_failed = true;
                init_done = false;
                break;
            }
            match c.current.as_ref().map(Instance::exit) {
                Some(Some(e)) if e.code == 0 => continue,
                Some(Some(_)) => {
                    init_done = false;
                    if restart_policy == "Never" {
                        init_failed = true;
                    } else if c.next_start.is_some_and(|t| t <= now_i) {
                        to_start.push(i);
                    }
                    break;
                }
                Some(None) => {
                    init_done = false;
                    break;
                }
                None => {
                    init_done = false;
                    to_start.push(i);
                    break;
                }
            }
        }
        if init_done && !init_failed {
            for (i, c) in rt.containers.iter().enumerate().filter(|(_, c)| !c.init) {
                if c.fatal.is_some() {
                    continue;
                }
                match &c.current {
                    None => to_start.push(i),
                    Some(inst)
                        if inst.exit().is_some() && c.next_start.is_some_and(|t| t <= now_i) =>
                    {
                        to_start.push(i)
                    }
                    _ => {}
                }
            }
        }
        for i in to_start {
            self.start(pod, rt, i).await;
        }
    }

    async fn start(&mut self, pod: &Value, rt: &mut PodRt, i: usize) {
        let restarts = {
            let c = &rt.containers[i];
            if c.current.is_some() {
                c.restarts + 1
            } else {
                c.restarts
            }
        };
        let name = rt.containers[i].name().to_string();
        let spec = rt.containers[i].spec.clone();
        let log_path = rt
            .dir
            .join("logs")
            .join(&name)
            .join(format!("{restarts}.log"));
        if let Some(parent) = log_path.parent() {
            if let Err(error) = std::fs::create_dir_all(parent) {
                tracing::warn!(%error, "creating a pod's directory failed");
                return;
            }
        }
        let exit = Arc::new(Mutex::new(None));
        let log = LogFile {
            path: log_path.clone(),
            done: Arc::new(AtomicBool::new(false)),
        };
        let mut probe_ready = None;
        let mut pgid = None;
        match self.runtime {
            RuntimeKind::Simulated => {
                let plan = sim_plan(&spec);
                let output = match &plan {
                    SimPlan::Exits { output, .. } => output.clone(),
                    SimPlan::Runs => String::new(),
                };
                if let Err(error) = std::fs::write(&log_path, output) {
                    tracing::warn!(%error, "writing a container log failed");
                }
                if let SimPlan::Exits { after, code, .. } = plan {
                    let exit = Arc::clone(&exit);
                    let world = Arc::clone(&self.ops.world);
                    tokio::spawn(async move {
                        tokio::time::sleep(after).await;
                        *exit.lock().unwrap() = Some(exit_with(code));
                        world.changed.notify_one();
                    });
                }
            }
            RuntimeKind::Process => {
                if rt.volumes.is_none() {
                    let claims = self.dir.join("claims");
                    match process::materialise_volumes(&self.ops.world, pod, &rt.dir, &claims) {
                        Ok(v) => rt.volumes = Some(v),
                        Err(e) => return self.unstartable(pod, rt, i, e).await,
                    }
                }
                let volumes = rt.volumes.clone().unwrap_or_default();
                let launch = match process::launch(
                    &self.ops.world,
                    pod,
                    &spec,
                    &volumes,
                    &rt.dir,
                    &rt.pod_ip,
                ) {
                    Ok(l) => l,
                    Err(e) => return self.unstartable(pod, rt, i, e).await,
                };
                match spawn(
                    &launch,
                    &log_path,
                    Arc::clone(&exit),
                    Arc::clone(&self.ops.world),
                ) {
                    Ok(pid) => pgid = Some(pid),
                    Err(error) => {
                        let message = format!(
                            "failed to start container {name:?}: exec: {:?}: {error}",
                            launch.program
                        );
                        return self
                            .unstartable(pod, rt, i, Unstartable::Fatal("StartError", message))
                            .await;
                    }
                }
                if let Some(probe) = spec.get("readinessProbe") {
                    let flag = Arc::new(AtomicBool::new(false));
                    probe_ready = Some(Arc::clone(&flag));
                    tokio::spawn(run_probe(
                        probe.clone(),
                        launch,
                        flag,
                        Arc::clone(&exit),
                        Arc::clone(&self.ops.world),
                    ));
                }
            }
        }
        self.logs
            .started(&rt.ns, &rt.name, &rt.uid, &name, log.clone());
        let c = &mut rt.containers[i];
        if let Some(prev) = c.current.take() {
            if let Some(e) = prev.exit() {
                c.last = Some((prev.started.clone(), prev.container_id.clone(), e));
            }
        }
        c.restarts = restarts;
        c.waiting = None;
        c.next_start = None;
        c.current = Some(Instance {
            started: now(),
            started_at: Instant::now(),
            container_id: format!("dev://{}-{name}-{restarts}", &rt.uid[..rt.uid.len().min(8)]),
            exit,
            probe_ready,
            pgid,
            log,
        });
        self.ops
            .event(
                pod,
                "kubelet",
                "Normal",
                "Started",
                &format!("Started container {name} (run {restarts})"),
            )
            .await;
    }

    async fn unstartable(&mut self, pod: &Value, rt: &mut PodRt, i: usize, e: Unstartable) {
        let c = &mut rt.containers[i];
        match e {
            Unstartable::Fatal(reason, message) => {
                self.ops
                    .event(pod, "kubelet", "Warning", "Failed", &message)
                    .await;
                let c = &mut rt.containers[i];
                c.fatal = Some(Exit {
                    code: 128,
                    reason: reason.into(),
                    message: Some(message),
                    finished: now(),
                });
                c.waiting = None;
            }
            Unstartable::Waiting(reason, message) => {
                let event_reason = if reason == "ContainerCreating" {
                    "FailedMount"
                } else {
                    "Failed"
                };
                c.waiting = Some((reason.into(), message.clone()));
                self.ops
                    .event(pod, "kubelet", "Warning", event_reason, &message)
                    .await;
            }
        }
    }
}

fn exit_with(code: i32) -> Exit {
    Exit {
        code,
        reason: if code == 0 { "Completed" } else { "Error" }.into(),
        message: None,
        finished: now(),
    }
}

/// Spawns the process in its own process group, output to `log`; a task records its exit.
fn spawn(
    launch: &process::Launch,
    log: &Path,
    exit: Arc<Mutex<Option<Exit>>>,
    world: Arc<crate::world::World>,
) -> std::io::Result<u32> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    let mut cmd = tokio::process::Command::new(&launch.program);
    cmd.args(&launch.args)
        .env_clear()
        .envs(&launch.env)
        .current_dir(&launch.cwd)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or_default();
    tokio::spawn(async move {
        let status = child.wait().await;
        let e = match status {
            Ok(s) => {
                use std::os::unix::process::ExitStatusExt;
                match (s.code(), s.signal()) {
                    (Some(code), _) => exit_with(code),
                    (None, Some(sig)) => Exit {
                        code: 128 + sig,
                        reason: "Error".into(),
                        message: None,
                        finished: now(),
                    },
                    _ => exit_with(1),
                }
            }
            Err(_) => exit_with(1),
        };
        *exit.lock().unwrap() = Some(e);
        world.changed.notify_one();
    });
    Ok(pid)
}

/// Sends `sig` to a process group.
fn signal(pgid: u32, sig: &str) {
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status();
}

/// SIGTERM, then SIGKILL to whatever remains after `grace`.
async fn terminate(groups: &[u32], grace: Duration) {
    if groups.is_empty() {
        return;
    }
    for g in groups {
        signal(*g, "TERM");
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        let alive = groups.iter().any(|g| {
            std::process::Command::new("kill")
                .arg("-0")
                .arg("--")
                .arg(format!("-{g}"))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if !alive {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for g in groups {
        signal(*g, "KILL");
    }
}

/// The readiness probe of a process: `httpGet` (2xx/3xx), `tcpSocket` (connects) or `exec`
/// (exit 0), against 127.0.0.1, after `initialDelaySeconds`, every `periodSeconds`, with the
/// success and failure thresholds. Other probe kinds are assumed to pass.
async fn run_probe(
    probe: Value,
    launch: process::Launch,
    ready: Arc<AtomicBool>,
    exit: Arc<Mutex<Option<Exit>>>,
    world: Arc<crate::world::World>,
) {
    let secs = |k: &str, d: u64| probe.get(k).and_then(Value::as_u64).unwrap_or(d);
    let period = Duration::from_secs(secs("periodSeconds", 10).max(1));
    let timeout = Duration::from_secs(secs("timeoutSeconds", 1).max(1));
    let success_needed = secs("successThreshold", 1).max(1);
    let failure_needed = secs("failureThreshold", 3).max(1);
    tokio::time::sleep(Duration::from_secs(secs("initialDelaySeconds", 0))).await;
    let (mut successes, mut failures) = (0, 0);
    loop {
        if exit.lock().unwrap().is_some() {
            return;
        }
        let ok = tokio::time::timeout(timeout, probe_once(&probe, &launch))
            .await
            .unwrap_or(false);
        if ok {
            successes += 1;
            failures = 0;
        } else {
            failures += 1;
            successes = 0;
        }
        let was = ready.load(Ordering::Acquire);
        let now_ready = if was {
            failures < failure_needed
        } else {
            successes >= success_needed
        };
        if now_ready != was {
            ready.store(now_ready, Ordering::Release);
            world.changed.notify_one();
        }
        tokio::time::sleep(period).await;
    }
}

fn probe_port(p: &Value, launch: &process::Launch) -> Option<u16> {
    match p.get("port") {
        Some(Value::Number(n)) => n.as_u64().and_then(|n| u16::try_from(n).ok()),
        Some(Value::String(s)) => s
            .parse()
            .ok()
            .or_else(|| launch.env.get(s).and_then(|v| v.parse().ok())),
        _ => None,
    }
}

async fn probe_once(probe: &Value, launch: &process::Launch) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if let Some(h) = probe.get("httpGet") {
        let Some(port) = probe_port(h, launch) else {
            return false;
        };
        let path = match str_at(h, "/path") {
            "" => "/",
            p => p,
        };
        let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
            return false;
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: kube-probe/1.32\r\nConnection: close\r\n\r\n");
        if s.write_all(req.as_bytes()).await.is_err() {
            return false;
        }
        let mut buf = [0u8; 32];
        let n = s.read(&mut buf).await.unwrap_or(0);
        let line = String::from_utf8_lossy(&buf[..n]);
        let code: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        return (200..400).contains(&code);
    }
    if let Some(t) = probe.get("tcpSocket") {
        let Some(port) = probe_port(t, launch) else {
            return false;
        };
        return tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
    }
    if let Some(e) = probe.get("exec") {
        let words: Vec<&str> = e
            .get("command")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let Some((first, rest)) = words.split_first() else {
            return false;
        };
        return tokio::process::Command::new(first)
            .args(rest)
            .env_clear()
            .envs(&launch.env)
            .current_dir(&launch.cwd)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .status()
            .await
            .is_ok_and(|s| s.success());
    }
    true
}

fn container_ready(c: &Container, inst: &Instance) -> bool {
    if inst.exit().is_some() {
        return false;
    }
    match (&inst.probe_ready, c.spec.get("readinessProbe")) {
        (Some(flag), _) => flag.load(Ordering::Acquire),
        (None, Some(p)) => {
            // Simulated: the probe passes once its initial delay is over.
            let delay = p
                .get("initialDelaySeconds")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            inst.started_at.elapsed() >= Duration::from_secs(delay)
        }
        (None, None) => true,
    }
}

fn terminated_json(started: &str, id: &str, e: &Exit) -> Value {
    let mut t = json!({
        "exitCode": e.code,
        "reason": e.reason,
        "startedAt": started,
        "finishedAt": e.finished,
        "containerID": id,
    });
    if let Some(m) = &e.message {
        t["message"] = json!(m);
    }
    t
}

/// The pod's status as the kubelet reports it.
fn pod_status(pod: &Value, rt: &PodRt, restart_policy: &str) -> Value {
    let mut statuses = Vec::new();
    let mut init_statuses = Vec::new();
    let (mut pending, mut running, mut failed) = (0, 0, 0);
    let mut all_ready = true;
    let mut init_ok = true;
    for c in &rt.containers {
        let image = str_at(&c.spec, "/image");
        let mut s = json!({
            "name": c.name(),
            "image": image,
            "imageID": "",
            "ready": false,
            "started": false,
            "restartCount": c.restarts,
            "state": {"waiting": {"reason": if c.init { "PodInitializing" } else { "ContainerCreating" }}},
            "lastState": {},
        });
        if let Some((started, id, e)) = &c.last {
            s["lastState"] = json!({"terminated": terminated_json(started, id, e)});
        }
        let mut will_run = true;
        let mut ok_done = false;
        if let Some(e) = &c.fatal {
            s["state"] = json!({"terminated": {"exitCode": e.code, "reason": e.reason,
                "message": e.message, "startedAt": null, "finishedAt": e.finished}});
            will_run = false;
        } else if let Some(inst) = &c.current {
            s["containerID"] = json!(inst.container_id);
            s["imageID"] = json!(format!("dev://{image}"));
            match inst.exit() {
                None => {
                    let ready = container_ready(c, inst);
                    s["state"] = json!({"running": {"startedAt": inst.started}});
                    s["started"] = json!(true);
                    s["ready"] = json!(ready);
                    if !ready {
                        all_ready = false;
                    }
                }
                Some(e) => {
                    all_ready &= c.init;
                    match &c.waiting {
                        Some((reason, message)) => {
                            s["state"] = json!({"waiting": {"reason": reason, "message": message}});
                            s["lastState"] = json!({"terminated": terminated_json(&inst.started, &inst.container_id, &e)});
                        }
                        None => {
                            s["state"] = json!({"terminated": terminated_json(&inst.started, &inst.container_id, &e)});
                            will_run = false;
                            ok_done = e.code == 0;
                        }
                    }
                    if c.init && e.code == 0 {
                        s["ready"] = json!(true);
                    }
                }
            }
        } else if let Some((reason, message)) = &c.waiting {
            s["state"] = json!({"waiting": {"reason": reason, "message": message}});
            all_ready &= c.init;
        } else {
            all_ready &= c.init;
        }
        if c.init {
            let finished_ok = c
                .current
                .as_ref()
                .and_then(Instance::exit)
                .is_some_and(|e| e.code == 0);
            if !finished_ok {
                init_ok = false;
                if !will_run {
                    failed += 1;
                }
            }
            init_statuses.push(s);
            continue;
        }
        match (&c.current, will_run) {
            (_, false) if ok_done => {}
            (_, false) => failed += 1,
            (None, true) => pending += 1,
            (Some(_), true) => running += 1,
        }
        statuses.push(s);
    }
    let phase = if failed > 0 && !init_ok {
        "Failed"
    } else if !init_ok || pending > 0 {
        "Pending"
    } else if running > 0 {
        "Running"
    } else if failed > 0 {
        "Failed"
    } else if restart_policy == "Always" {
        "Running"
    } else {
        "Succeeded"
    };
    let terminal = matches!(phase, "Succeeded" | "Failed");
    let ready = all_ready && !terminal && running > 0;
    let not_ready_reason = if terminal {
        "PodCompleted"
    } else {
        "ContainersNotReady"
    };
    let existing = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let stamp = now();
    let cond = |ty: &str, ok: bool, reason: Option<&str>| {
        let status = if ok { "True" } else { "False" };
        let since = existing
            .iter()
            .find(|c| str_at(c, "/type") == ty && str_at(c, "/status") == status)
            .and_then(|c| c.get("lastTransitionTime").cloned())
            .unwrap_or_else(|| json!(stamp));
        let mut c = json!({"type": ty, "status": status, "lastProbeTime": null, "lastTransitionTime": since});
        if let (false, Some(r)) = (ok, reason) {
            c["reason"] = json!(r);
        }
        c
    };
    let not_ready: Vec<&str> = rt
        .containers
        .iter()
        .filter(|c| !c.init)
        .filter(|c| !c.current.as_ref().is_some_and(|i| container_ready(c, i)))
        .map(Container::name)
        .collect();
    let mut conditions = vec![
        cond("PodReadyToStartContainers", true, None),
        cond("Initialized", init_ok, Some("ContainersNotInitialized")),
        cond("Ready", ready, Some(not_ready_reason)),
        cond("ContainersReady", ready, Some(not_ready_reason)),
        cond("PodScheduled", true, None),
    ];
    if !ready && !terminal {
        let message = format!("containers with unready status: [{}]", not_ready.join(" "));
        conditions[2]["message"] = json!(message);
        conditions[3]["message"] = json!(message);
    }
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": "127.0.0.1",
        "hostIPs": [{"ip": "127.0.0.1"}],
        "podIP": rt.pod_ip,
        "podIPs": [{"ip": rt.pod_ip}],
        "startTime": rt.start_time,
        "containerStatuses": statuses,
    });
    if !init_statuses.is_empty() {
        status["initContainerStatuses"] = json!(init_statuses);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_rule() {
        let c = |cmd: Value| json!({"name": "c", "command": cmd});
        assert_eq!(
            sim_plan(&c(json!(["echo", "Hello, You!"]))),
            SimPlan::Exits {
                after: Duration::ZERO,
                code: 0,
                output: "Hello, You!\n".into()
            }
        );
        assert_eq!(
            sim_plan(&c(json!(["/bin/sh", "-c", "exit 3"]))),
            SimPlan::Exits {
                after: Duration::ZERO,
                code: 3,
                output: String::new()
            }
        );
        assert_eq!(
            sim_plan(&c(json!(["sleep", "2"]))),
            SimPlan::Exits {
                after: Duration::from_secs(2),
                code: 0,
                output: String::new()
            }
        );
        assert!(matches!(
            sim_plan(&c(json!(["false"]))),
            SimPlan::Exits { code: 1, .. }
        ));
        assert_eq!(
            sim_plan(&c(json!(["python3", "/hooks/sync.py"]))),
            SimPlan::Runs
        );
        assert_eq!(sim_plan(&c(json!(["sleep", "infinity"]))), SimPlan::Runs);
        assert_eq!(
            sim_plan(&json!({"name": "nginx", "image": "nginx"})),
            SimPlan::Runs
        );
    }
}
