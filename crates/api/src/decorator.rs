//! DecoratorController: adds labels, annotations, status and attachments to existing
//! objects it does not own, as computed by a sync hook.
//!
//! ```text
//! DecoratorController
//! └── spec
//!     ├── resources[]     which objects to decorate (label/annotation selectors)
//!     ├── attachments[]   which kinds the hook may attach, and how to update them
//!     ├── hooks           sync, finalize, customize
//!     ├── endpointConfigs per-host TLS/auth for the hooks
//!     └── resyncPeriodSeconds
//! ```

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::UpdateMethod;
use crate::composite::{positive_seconds, ControllerStatus};
use crate::consts;
use crate::meta::{LabelSelector, LabelSelectorRequirement, ObjectMeta};
use crate::webhook::{EndpointConfig, Hook};

/// A controller that decorates existing objects.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecoratorController {
    /// Always `metacontroller.k8s.io/v1alpha1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Always `DecoratorController`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// What to decorate and which hooks to call.
    pub spec: DecoratorControllerSpec,
    /// Reserved; upstream defines no status fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ControllerStatus>,
}

fn default_api_version() -> String {
    consts::API_VERSION.to_string()
}

fn default_kind() -> String {
    consts::DECORATOR_CONTROLLER_KIND.to_string()
}

impl DecoratorController {
    /// A controller with the given name and spec.
    pub fn new(name: impl Into<String>, spec: DecoratorControllerSpec) -> Self {
        DecoratorController {
            api_version: default_api_version(),
            kind: default_kind(),
            metadata: ObjectMeta::named(name),
            spec,
            status: None,
        }
    }

    /// The controller's name, or `""`.
    pub fn name(&self) -> &str {
        self.metadata.name_or_empty()
    }

    /// The finalizer this controller puts on targets when it has a finalize hook.
    pub fn finalizer_name(&self) -> String {
        consts::decorator_finalizer(self.name())
    }
}

/// Specification of a [`DecoratorController`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecoratorControllerSpec {
    /// Kinds (and selectors) of the objects to decorate.
    pub resources: Vec<DecoratorResourceRule>,
    /// Kinds the sync hook may attach to a decorated object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<AttachmentRule>,
    /// The webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<DecoratorControllerHooks>,
    /// Connection settings (TLS, credentials) for hooks, matched by URL host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint_configs: Vec<EndpointConfig>,
    /// Re-sync every target at this interval even without changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_period_seconds: Option<i32>,
}

impl DecoratorControllerSpec {
    /// The periodic resync interval, if a positive one is set.
    pub fn resync_period(&self) -> Option<Duration> {
        positive_seconds(self.resync_period_seconds)
    }

    /// The sync hook, if configured.
    pub fn sync_hook(&self) -> Option<&Hook> {
        self.hooks.as_ref().and_then(|h| h.sync.as_ref())
    }

    /// The finalize hook, if configured.
    pub fn finalize_hook(&self) -> Option<&Hook> {
        self.hooks.as_ref().and_then(|h| h.finalize.as_ref())
    }

    /// The customize hook, if configured.
    pub fn customize_hook(&self) -> Option<&Hook> {
        self.hooks.as_ref().and_then(|h| h.customize.as_ref())
    }

    /// The rule for the attachment kind at `api_version` / `resource`, if declared.
    pub fn attachment_rule(&self, api_version: &str, resource: &str) -> Option<&AttachmentRule> {
        self.attachments
            .iter()
            .find(|a| a.api_version == api_version && a.resource == resource)
    }
}

/// A kind of object to decorate; an object must match both selectors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecoratorResourceRule {
    /// Group/version of the kind, e.g. `apps/v1`.
    pub api_version: String,
    /// Plural resource name, e.g. `statefulsets`.
    pub resource: String,
    /// Only objects whose labels match are decorated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Only objects whose annotations match are decorated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotation_selector: Option<AnnotationSelector>,
    /// Do not sync when only the object's status changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_status_changes: Option<bool>,
}

/// Selects objects by annotations, with the semantics of a label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnnotationSelector {
    /// Exact key/value pairs that must all be present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_annotations: Option<BTreeMap<String, String>>,
    /// Set-based requirements on annotations that must all hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_expressions: Option<Vec<LabelSelectorRequirement>>,
}

/// An attachment kind of a [`DecoratorController`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentRule {
    /// Group/version of the kind, e.g. `v1`.
    pub api_version: String,
    /// Plural resource name, e.g. `services`.
    pub resource: String,
    /// How existing attachments are updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<AttachmentUpdateStrategy>,
}

impl AttachmentRule {
    /// The effective update method (`OnDelete` unless set).
    pub fn update_method(&self) -> UpdateMethod {
        self.update_strategy
            .as_ref()
            .and_then(|s| s.method)
            .unwrap_or_default()
    }
}

/// Update strategy of an attachment kind (no rolling checks for decorators).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentUpdateStrategy {
    /// The method; `OnDelete` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<UpdateMethod>,
}

/// Hooks of a [`DecoratorController`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecoratorControllerHooks {
    /// Declares related resources the sync hook should also see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customize: Option<Hook>,
    /// Computes labels, annotations, status and attachments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Hook>,
    /// Called instead of sync while the object is being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalize: Option<Hook>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decorator_accessors() {
        let dc: DecoratorController = serde_json::from_value(json!({
            "metadata": {"name": "svc-per-pod"},
            "spec": {
                "resources": [{
                    "apiVersion": "apps/v1",
                    "resource": "statefulsets",
                    "annotationSelector": {
                        "matchExpressions": [{"key": "service-per-pod-label", "operator": "Exists"}]
                    }
                }],
                "attachments": [{"apiVersion": "v1", "resource": "services",
                                 "updateStrategy": {"method": "InPlace"}}],
                "hooks": {"sync": {"webhook": {"url": "http://h/sync"}},
                          "finalize": {"webhook": {"url": "http://h/finalize"}}},
                "resyncPeriodSeconds": 30
            }
        }))
        .expect("valid");
        assert_eq!(dc.kind, consts::DECORATOR_CONTROLLER_KIND);
        assert_eq!(
            dc.finalizer_name(),
            "metacontroller.io/decoratorcontroller-svc-per-pod"
        );
        assert_eq!(dc.spec.resync_period(), Some(Duration::from_secs(30)));
        assert!(dc.spec.sync_hook().is_some() && dc.spec.finalize_hook().is_some());
        assert!(dc.spec.customize_hook().is_none());
        let svc = dc.spec.attachment_rule("v1", "services").expect("rule");
        assert_eq!(svc.update_method(), UpdateMethod::InPlace);
        assert!(dc.spec.attachment_rule("v1", "pods").is_none());
        let sel = dc.spec.resources[0]
            .annotation_selector
            .as_ref()
            .expect("selector");
        assert_eq!(sel.match_expressions.as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn resources_are_required() {
        assert!(serde_json::from_value::<DecoratorControllerSpec>(json!({})).is_err());
        let dc = DecoratorController::new("d", DecoratorControllerSpec::default());
        let v = serde_json::to_value(&dc).expect("serializes");
        assert_eq!(v["spec"], json!({"resources": []}));
    }
}
