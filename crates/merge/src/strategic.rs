//! Kubernetes strategic merge patch for built-in kinds (in progress).

/// Why a strategic merge patch could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StrategicError {
    /// The patch is malformed.
    #[error("invalid strategic merge patch: {reason}")]
    InvalidPatch { reason: String },
}
