//! Pure JSON algorithms shared by the embedded API server and the controllers.
//!
//! Everything here works on [`serde_json::Value`] and does no I/O:
//!
//! - [`merge_patch`]: RFC 7386 JSON merge patch (apply and diff).
//! - [`json_patch`]: RFC 6902 JSON patch with the semantics Kubernetes uses.
//! - [`strategic`]: Kubernetes strategic merge patch for built-in kinds.
//! - [`apply`]: the "dynamic apply" three-way merge used to update children.
//! - [`selector`]: label selectors (string syntax and `metav1.LabelSelector` JSON).

pub mod apply;
pub mod json_patch;
pub mod merge_patch;
pub mod selector;
pub mod strategic;

mod value;

pub use json_patch::JsonPatchError;
pub use selector::{LabelSelector, SelectorError};
pub use strategic::StrategicError;
