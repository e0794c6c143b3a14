//! Where `GET pods/{name}/log` reads container output from.
//!
//! kube-apiserver relays log requests to the kubelet of the pod's node. This server runs no
//! containers; whoever does (a node of a development cluster) can install a [`PodLogs`]
//! provider in the server's [`PodLogSlot`]. Without one, or when the provider has no record of
//! the container, the server answers as for a container that has not started.

use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::mpsc;

/// One log request, with the query parameters kubectl sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRequest {
    pub namespace: String,
    pub pod: String,
    pub uid: String,
    pub container: String,
    /// The previous, terminated instance of the container.
    pub previous: bool,
    /// Keep the stream open and send new output as it is written.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
    /// At most N bytes.
    pub limit_bytes: Option<i64>,
}

/// A source of container logs.
pub trait PodLogs: Send + Sync {
    /// The log of the container, as chunks sent through the channel (the response ends when
    /// the sender is dropped), or `None` when there is no record of that container (instance).
    fn open(&self, req: &LogRequest) -> Option<mpsc::Receiver<Bytes>>;
}

/// The provider slot shared by the server and whoever installs a provider (once).
#[derive(Clone, Default)]
pub struct PodLogSlot(Arc<OnceLock<Arc<dyn PodLogs>>>);

impl PodLogSlot {
    /// Installs `provider`; `false` if one was installed already.
    pub fn install(&self, provider: Arc<dyn PodLogs>) -> bool {
        self.0.set(provider).is_ok()
    }

    pub fn get(&self) -> Option<&Arc<dyn PodLogs>> {
        self.0.get()
    }
}

impl std::fmt::Debug for PodLogSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLogSlot")
            .field("installed", &self.0.get().is_some())
            .finish()
    }
}
