//! Leader election on a `coordination.k8s.io/v1` Lease, with client-go's semantics so our
//! replicas and client-go-based ones agree on who leads:
//!
//! - the holder writes `holderIdentity`, `leaseDurationSeconds`, `acquireTime`, `renewTime`
//!   (MicroTime) and bumps `leaseTransitions` when the holder changes;
//! - every write is a replace carrying the `resourceVersion` read, so two candidates racing
//!   for an expired Lease cannot both win (the loser gets a 409 Conflict);
//! - expiry is judged on the local clock: a Lease is free once its record has not changed for
//!   `leaseDurationSeconds` since this process first saw it, so clock skew between nodes does
//!   not matter;
//! - the leader renews every retry period and gives up leading when it could not renew for
//!   the renew deadline; an empty `holderIdentity` means released, free at once.
//!
//! ```text
//!  acquire: ─► try ─(held by another, unexpired)─► sleep retry period ─► try ...
//!               └─(created / taken / renewed)─► leading
//!  hold:    ─► sleep retry period ─► try ─ok─► (loop)
//!                                       └─failed for renew deadline, or taken─► lost
//! ```

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use kube::api::{Api, PostParams};
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Timing and identity of one candidate.
#[derive(Debug, Clone)]
pub struct Config {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

/// What to do with the Lease as last read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// No Lease yet: create it.
    Create,
    /// We hold it: renew.
    Renew,
    /// Released or expired: take it over.
    Take,
    /// Another candidate holds a valid Lease.
    HeldByOther(String),
}

/// client-go's `tryAcquireOrRenew` decision. `observed_for` is how long the current record
/// has been unchanged, as seen by this process.
pub fn decide(spec: Option<&LeaseSpec>, identity: &str, observed_for: Duration) -> Decision {
    let Some(spec) = spec else {
        return Decision::Create;
    };
    let holder = spec.holder_identity.as_deref().unwrap_or("");
    if holder == identity {
        return Decision::Renew;
    }
    if holder.is_empty() {
        return Decision::Take;
    }
    let duration = Duration::from_secs(spec.lease_duration_seconds.unwrap_or(0).max(0) as u64);
    if observed_for < duration {
        Decision::HeldByOther(holder.to_string())
    } else {
        Decision::Take
    }
}

/// A Lease timestamp: RFC 3339 with microseconds, as Kubernetes writes MicroTime.
pub fn micro_time(now: chrono::DateTime<chrono::Utc>) -> String {
    now.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// The Lease spec to write for `decision`, given the current one.
pub fn next_spec(
    decision: &Decision,
    current: Option<&LeaseSpec>,
    cfg: &Config,
    now: &str,
) -> serde_json::Value {
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    let acquire_time = match (decision, current) {
        (Decision::Renew, Some(spec)) => spec
            .acquire_time
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .unwrap_or_else(|| json!(now)),
        _ => json!(now),
    };
    let transitions = match decision {
        Decision::Take => transitions + 1,
        _ => transitions,
    };
    json!({
        "holderIdentity": cfg.identity,
        "leaseDurationSeconds": cfg.lease_duration.as_secs().max(1),
        "acquireTime": acquire_time,
        "renewTime": now,
        "leaseTransitions": transitions,
    })
}

/// Why [`Elector::hold`] returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldEnd {
    /// `stop` was cancelled while leading.
    Stopped,
    /// The Lease was lost (not renewed in time, or taken by another candidate).
    Lost(String),
}

/// One candidate for the Lease.
#[derive(Debug)]
pub struct Elector {
    api: Api<Lease>,
    cfg: Config,
    /// The last record read and when it was first seen unchanged.
    observed: Option<(Option<LeaseSpec>, Instant)>,
}

impl Elector {
    pub fn new(client: kube::Client, cfg: Config) -> Self {
        Elector {
            api: Api::namespaced(client, &cfg.namespace),
            cfg,
            observed: None,
        }
    }

    /// One acquire-or-renew attempt; `Ok(None)` when we hold the Lease afterwards, else
    /// `Ok(Some(holder))`.
    pub async fn try_acquire_or_renew(&mut self) -> Result<Option<String>, kube::Error> {
        let current = match self.api.get(&self.cfg.name).await {
            Ok(lease) => Some(lease),
            Err(kube::Error::Api(status)) if status.code == 404 => None,
            Err(error) => return Err(error),
        };
        let spec = current.as_ref().and_then(|l| l.spec.clone());
        let now = Instant::now();
        let observed_for = match &self.observed {
            Some((seen, since)) if *seen == spec && current.is_some() => now - *since,
            _ => {
                self.observed = Some((spec.clone(), now));
                Duration::ZERO
            }
        };
        let decision = decide(spec.as_ref(), &self.cfg.identity, observed_for);
        if let Decision::HeldByOther(holder) = decision {
            return Ok(Some(holder));
        }
        let timestamp = micro_time(chrono::Utc::now());
        let body = next_spec(&decision, spec.as_ref(), &self.cfg, &timestamp);
        let written = match current {
            None => {
                let lease: Lease = serde_json::from_value(json!({
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.cfg.name, "namespace": self.cfg.namespace},
                    "spec": body,
                }))
                .map_err(kube::Error::SerdeError)?;
                self.api.create(&PostParams::default(), &lease).await?
            }
            Some(mut lease) => {
                lease.spec = Some(serde_json::from_value(body).map_err(kube::Error::SerdeError)?);
                // The read resourceVersion stays in metadata: a concurrent writer makes this
                // a 409 Conflict instead of a lost update.
                self.api
                    .replace(&self.cfg.name, &PostParams::default(), &lease)
                    .await?
            }
        };
        if decision == Decision::Take || decision == Decision::Create {
            tracing::info!(lease = %self.cfg.name, namespace = %self.cfg.namespace, identity = %self.cfg.identity, "acquired the leader lease");
        }
        self.observed = Some((written.spec, Instant::now()));
        Ok(None)
    }

    /// One attempt, bounded by `limit`; errors are logged and count as not holding.
    async fn attempt(&mut self, limit: Duration) -> Result<(), String> {
        match tokio::time::timeout(limit, self.try_acquire_or_renew()).await {
            Ok(Ok(None)) => Ok(()),
            Ok(Ok(Some(holder))) => Err(format!("held by {holder}")),
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => {
                Err("another candidate wrote the lease first".to_string())
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, lease = %self.cfg.name, "leader election request failed");
                Err(error.to_string())
            }
            Err(_) => Err("leader election request timed out".to_string()),
        }
    }

    /// Tries until the Lease is ours (`true`) or `stop` is cancelled (`false`).
    pub async fn acquire(&mut self, stop: &CancellationToken) -> bool {
        tracing::info!(lease = %self.cfg.name, namespace = %self.cfg.namespace, identity = %self.cfg.identity, "waiting for the leader lease");
        let mut last_holder = String::new();
        loop {
            match self.attempt(self.cfg.renew_deadline).await {
                Ok(()) => return true,
                Err(reason) => {
                    if reason != last_holder {
                        tracing::info!(%reason, "not leading yet");
                        last_holder = reason;
                    }
                }
            }
            let wait = jittered(self.cfg.retry_period);
            tokio::select! {
                _ = stop.cancelled() => return false,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Renews until `stop` is cancelled or the Lease is lost.
    pub async fn hold(&mut self, stop: &CancellationToken) -> HoldEnd {
        let mut renewed = Instant::now();
        loop {
            tokio::select! {
                _ = stop.cancelled() => return HoldEnd::Stopped,
                _ = tokio::time::sleep(self.cfg.retry_period) => {}
            }
            let left = self
                .cfg
                .renew_deadline
                .saturating_sub(renewed.elapsed())
                .max(Duration::from_millis(100));
            match self.attempt(left).await {
                Ok(()) => renewed = Instant::now(),
                Err(reason) if reason.starts_with("held by ") => return HoldEnd::Lost(reason),
                Err(reason) => {
                    if renewed.elapsed() >= self.cfg.renew_deadline {
                        return HoldEnd::Lost(format!(
                            "could not renew within {:?}: {reason}",
                            self.cfg.renew_deadline
                        ));
                    }
                }
            }
        }
    }

    /// Gives the Lease up (if still ours) so a standby takes over at once: an empty holder
    /// with a one-second duration, as client-go releases.
    pub async fn release(&mut self) {
        let result = async {
            let mut lease = self.api.get(&self.cfg.name).await?;
            let ours = lease
                .spec
                .as_ref()
                .and_then(|s| s.holder_identity.as_deref())
                == Some(self.cfg.identity.as_str());
            if !ours {
                return Ok(false);
            }
            let now = micro_time(chrono::Utc::now());
            let transitions = lease.spec.as_ref().and_then(|s| s.lease_transitions);
            lease.spec = Some(
                serde_json::from_value(json!({
                    "leaseDurationSeconds": 1,
                    "acquireTime": now,
                    "renewTime": now,
                    "leaseTransitions": transitions,
                }))
                .map_err(kube::Error::SerdeError)?,
            );
            self.api
                .replace(&self.cfg.name, &PostParams::default(), &lease)
                .await?;
            Ok::<bool, kube::Error>(true)
        };
        match tokio::time::timeout(self.cfg.renew_deadline, result).await {
            Ok(Ok(true)) => tracing::info!(lease = %self.cfg.name, "released the leader lease"),
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "could not release the leader lease"),
            Err(_) => tracing::warn!("releasing the leader lease timed out"),
        }
    }
}

/// `period` stretched by up to 20%, as client-go jitters its retries, so candidates started
/// together do not stay in lockstep.
fn jittered(period: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .subsec_nanos();
    period + period.mul_f64(f64::from(nanos % 1000) / 1000.0 * 0.2)
}

/// This process's identity: the host name (the pod name in a cluster) and a random suffix,
/// as controller-runtime builds it.
pub fn identity() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "metacontroller".to_string());
    format!("{host}_{}", uuid::Uuid::new_v4())
}

/// The namespace of the pod's service account, when running in a cluster.
pub fn in_cluster_namespace() -> Option<String> {
    std::fs::read_to_string("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(holder: &str, secs: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(holder.to_string()),
            lease_duration_seconds: Some(secs),
            lease_transitions: Some(3),
            ..Default::default()
        }
    }

    fn cfg() -> Config {
        Config {
            namespace: "ns".into(),
            name: "metacontroller".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    #[test]
    fn decisions() {
        let fresh = Duration::from_secs(1);
        assert_eq!(decide(None, "me", fresh), Decision::Create);
        assert_eq!(decide(Some(&spec("me", 15)), "me", fresh), Decision::Renew);
        assert_eq!(
            decide(Some(&spec("other", 15)), "me", fresh),
            Decision::HeldByOther("other".into())
        );
        assert_eq!(
            decide(Some(&spec("other", 15)), "me", Duration::from_secs(15)),
            Decision::Take
        );
        assert_eq!(decide(Some(&spec("", 1)), "me", fresh), Decision::Take);
    }

    #[test]
    fn taking_over_bumps_transitions_and_acquire_time() {
        let current = spec("other", 15);
        let body = next_spec(&Decision::Take, Some(&current), &cfg(), "T1");
        assert_eq!(body["holderIdentity"], "me");
        assert_eq!(body["leaseDurationSeconds"], 15);
        assert_eq!(body["leaseTransitions"], 4);
        assert_eq!(body["acquireTime"], "T1");
        assert_eq!(body["renewTime"], "T1");
        let created = next_spec(&Decision::Create, None, &cfg(), "T0");
        assert_eq!(created["leaseTransitions"], 0);
    }

    #[test]
    fn renewing_keeps_acquire_time_and_transitions() {
        let mut current: LeaseSpec = serde_json::from_value(json!({
            "holderIdentity": "me",
            "leaseDurationSeconds": 15,
            "acquireTime": "2024-01-02T03:04:05.123456Z",
            "renewTime": "2024-01-02T03:04:05.123456Z",
            "leaseTransitions": 2,
        }))
        .unwrap();
        current.lease_transitions = Some(2);
        let body = next_spec(&Decision::Renew, Some(&current), &cfg(), "T2");
        assert_eq!(body["acquireTime"], "2024-01-02T03:04:05.123456Z");
        assert_eq!(body["renewTime"], "T2");
        assert_eq!(body["leaseTransitions"], 2);
    }

    #[test]
    fn micro_time_format() {
        let t = chrono::DateTime::parse_from_rfc3339("2024-05-06T07:08:09.5Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(micro_time(t), "2024-05-06T07:08:09.500000Z");
    }

    #[test]
    fn jitter_stays_within_a_fifth() {
        let d = jittered(Duration::from_secs(2));
        assert!(d >= Duration::from_secs(2) && d <= Duration::from_millis(2400));
    }

    #[test]
    fn identities_are_unique() {
        assert_ne!(identity(), identity());
    }
}
