//! An embedded, in-memory Kubernetes API server.
//!
//! It serves what real clients (kubectl, kube-rs, the Python client) need from kube-apiserver,
//! plus the two kube-controller-manager loops controllers depend on: the garbage collector and
//! namespace deletion. `metacontroller dev` runs it; the test suites run against it.

pub mod error;
pub mod protobuf;
pub mod registry;
pub mod store;
pub mod table;

pub use error::ApiError;
