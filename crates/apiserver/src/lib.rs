//! An embedded, in-memory Kubernetes API server.
//!
//! It serves what real clients (kubectl, kube-rs, the Python client) need from kube-apiserver,
//! plus the two kube-controller-manager loops controllers depend on: the garbage collector and
//! namespace deletion. `metacontroller dev` runs it; the test suites run against it.

pub mod builtins;
pub mod crd;
pub mod discovery;
pub mod error;
pub mod faults;
pub mod gc;
pub mod http;
pub mod metrics;
pub mod model;
pub mod openapi;
pub mod podlogs;
pub mod protobuf;
pub mod registry;
pub mod server;
pub mod store;
pub mod table;
pub mod tls;

pub use error::ApiError;
pub use faults::{FaultConfig, Faults};
pub use server::{start, start_on, Server, ServerConfig, StartError};
