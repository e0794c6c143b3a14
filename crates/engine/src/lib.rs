//! The Metacontroller engine.
pub mod children;
pub mod claim;
pub mod discovery;
pub mod informer;
pub mod parent;
pub mod queue;
pub mod store;
pub mod webhook;
