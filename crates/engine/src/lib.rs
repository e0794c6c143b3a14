//! The Metacontroller engine.
pub mod queue;
