//! The Metacontroller engine.
pub mod children;
pub mod claim;
pub mod discovery;
pub mod informer;
pub mod queue;
pub mod store;
