//! The Metacontroller engine.
pub mod discovery;
pub mod informer;
pub mod queue;
pub mod store;
