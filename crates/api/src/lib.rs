//! The `metacontroller.k8s.io/v1alpha1` API: CompositeController, DecoratorController and
//! ControllerRevision, the hook wire protocol, and CRD manifests generated from the types.
//!
//! Field names, JSON shapes and defaults follow upstream Metacontroller v4.17, so existing
//! manifests and hooks work unchanged. The crate is pure: no I/O, no Kubernetes client.
//!
//! ```text
//! lib ─┬─ composite   CompositeController and its spec
//!      ├─ decorator   DecoratorController and its spec
//!      ├─ revision    ControllerRevision
//!      ├─ webhook     Hook / Webhook / TLS and auth settings (shared)
//!      ├─ common      UpdateMethod, apiVersion helpers
//!      ├─ meta        ObjectMeta, LabelSelector
//!      ├─ duration    Go duration strings
//!      ├─ consts      group, kinds, annotation/label/finalizer names
//!      ├─ hook        request/response bodies of the webhooks
//!      └─ crd         CustomResourceDefinitions generated from the types
//! ```

pub mod common;
pub mod composite;
pub mod consts;
pub mod crd;
pub mod decorator;
pub mod duration;
pub mod hook;
pub mod meta;
pub mod revision;
pub mod webhook;

pub use common::{split_api_version, UpdateMethod};
pub use composite::{
    ChildResourceRule, ChildUpdateStrategy, CompositeController, CompositeControllerHooks,
    CompositeControllerSpec, ControllerStatus, ParentResourceRule, RevisionHistory, StatusChecks,
    StatusConditionCheck,
};
pub use crd::{crds, crds_yaml, structural_errors};
pub use decorator::{
    AnnotationSelector, AttachmentRule, AttachmentUpdateStrategy, DecoratorController,
    DecoratorControllerHooks, DecoratorControllerSpec, DecoratorResourceRule,
};
pub use duration::{format_go_duration, parse_go_duration, DurationError, GoDuration};
pub use meta::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
pub use revision::{ControllerRevision, ControllerRevisionChildren};
pub use webhook::{
    Authorization, BasicAuth, CaBundle, ClientTls, EndpointConfig, Hook, HookVersion,
    ResourceKeyRef, ResponseUnmarshallMode, SecretKeyRef, SecretRef, ServiceReference, Webhook,
    WebhookEtagConfig, DEFAULT_WEBHOOK_TIMEOUT,
};
