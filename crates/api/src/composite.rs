//! CompositeController: a parent resource whose children are computed by a sync hook.
//!
//! ```text
//! CompositeController
//! └── spec
//!     ├── parentResource   which objects are parents (+ labelSelector, revisionHistory)
//!     ├── childResources[] which kinds the hook may return, and how to update them
//!     ├── hooks            sync, finalize, customize, preUpdateChild, postUpdateChild
//!     ├── endpointConfigs  per-host TLS/auth for the hooks
//!     └── resyncPeriodSeconds, generateSelector
//! ```

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::UpdateMethod;
use crate::consts;
use crate::meta::{LabelSelector, ObjectMeta};
use crate::webhook::{EndpointConfig, Hook};

/// A controller that owns children of a parent resource, computed by a sync webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositeController {
    /// Always `metacontroller.k8s.io/v1alpha1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Always `CompositeController`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// What to watch and which hooks to call.
    pub spec: CompositeControllerSpec,
    /// Reserved; upstream defines no status fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<ControllerStatus>,
}

fn default_api_version() -> String {
    consts::API_VERSION.to_string()
}

fn default_kind() -> String {
    consts::COMPOSITE_CONTROLLER_KIND.to_string()
}

impl CompositeController {
    /// A controller with the given name and spec.
    pub fn new(name: impl Into<String>, spec: CompositeControllerSpec) -> Self {
        CompositeController {
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

    /// The finalizer this controller puts on parents when it has a finalize hook.
    pub fn finalizer_name(&self) -> String {
        consts::composite_finalizer(self.name())
    }
}

/// Specification of a [`CompositeController`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositeControllerSpec {
    /// The parent kind.
    pub parent_resource: ParentResourceRule,
    /// Child kinds the sync hook may return.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub child_resources: Vec<ChildResourceRule>,
    /// The webhooks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hooks: Option<CompositeControllerHooks>,
    /// Connection settings (TLS, credentials) for hooks, matched by URL host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint_configs: Vec<EndpointConfig>,
    /// Re-sync every parent at this interval even without changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resync_period_seconds: Option<i32>,
    /// Select children by a generated `controller-uid` label instead of the parent's
    /// `spec.selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_selector: Option<bool>,
}

impl CompositeControllerSpec {
    /// The periodic resync interval, if a positive one is set.
    pub fn resync_period(&self) -> Option<Duration> {
        positive_seconds(self.resync_period_seconds)
    }

    /// Whether selectors are generated (`generateSelector: true`).
    pub fn generate_selector(&self) -> bool {
        self.generate_selector.unwrap_or(false)
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

    /// The rule for the child kind at `api_version` / `resource`, if declared.
    pub fn child_rule(&self, api_version: &str, resource: &str) -> Option<&ChildResourceRule> {
        self.child_resources
            .iter()
            .find(|c| c.api_version == api_version && c.resource == resource)
    }
}

pub(crate) fn positive_seconds(seconds: Option<i32>) -> Option<Duration> {
    match seconds {
        Some(s) if s > 0 => Some(Duration::from_secs(s.unsigned_abs().into())),
        _ => None,
    }
}

/// Which objects are parents of a [`CompositeController`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ParentResourceRule {
    /// Group/version of the parent kind, e.g. `example.com/v1`.
    pub api_version: String,
    /// Plural resource name, e.g. `helloworlds`.
    pub resource: String,
    /// Record ControllerRevisions of these parent fields for rolling updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision_history: Option<RevisionHistory>,
    /// Only parents matching this selector are managed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Do not sync when only the parent's status changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_status_changes: Option<bool>,
}

/// Which parent fields a ControllerRevision records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionHistory {
    /// Dotted field paths (e.g. `spec.template`); `spec` when empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub field_paths: Vec<String>,
}

/// A child kind a [`CompositeController`] manages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildResourceRule {
    /// Group/version of the child kind, e.g. `apps/v1`.
    pub api_version: String,
    /// Plural resource name, e.g. `deployments`.
    pub resource: String,
    /// How existing children are updated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_strategy: Option<ChildUpdateStrategy>,
}

impl ChildResourceRule {
    /// The effective update method (`OnDelete` unless set).
    pub fn update_method(&self) -> UpdateMethod {
        self.update_strategy
            .as_ref()
            .and_then(|s| s.method)
            .unwrap_or_default()
    }
}

/// Update strategy of a child kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChildUpdateStrategy {
    /// The method; `OnDelete` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<UpdateMethod>,
    /// What "ready" means during rolling updates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_checks: Option<StatusChecks>,
}

/// Readiness checks for rolling updates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusChecks {
    /// Conditions in the child's `status.conditions` that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<StatusConditionCheck>,
}

/// One required condition of a child's `status.conditions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StatusConditionCheck {
    /// Condition type, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    /// Required status (`True`, `False`, `Unknown`); any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Required reason; any when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Hooks of a [`CompositeController`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CompositeControllerHooks {
    /// Declares related resources the sync hook should also see.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customize: Option<Hook>,
    /// Computes desired children and parent status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sync: Option<Hook>,
    /// Called instead of sync while the parent is being deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finalize: Option<Hook>,
    /// Declared by upstream for child update notifications; upstream never calls it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_update_child: Option<Hook>,
    /// Declared by upstream for child update notifications; upstream never calls it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_update_child: Option<Hook>,
}

/// Status of a controller object; upstream defines no fields.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ControllerStatus {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_and_accessors() {
        let cc: CompositeController = serde_json::from_value(json!({
            "metadata": {"name": "hello"},
            "spec": {
                "parentResource": {"apiVersion": "example.com/v1", "resource": "helloworlds"},
                "childResources": [
                    {"apiVersion": "v1", "resource": "pods"},
                    {"apiVersion": "apps/v1", "resource": "deployments",
                     "updateStrategy": {"method": "RollingInPlace",
                        "statusChecks": {"conditions": [{"type": "Ready", "status": "True"}]}}}
                ],
                "hooks": {"sync": {"webhook": {"url": "http://h/sync"}}},
                "resyncPeriodSeconds": 5
            }
        }))
        .expect("valid");
        assert_eq!(cc.api_version, consts::API_VERSION);
        assert_eq!(cc.kind, consts::COMPOSITE_CONTROLLER_KIND);
        assert_eq!(
            cc.finalizer_name(),
            "metacontroller.io/compositecontroller-hello"
        );
        assert_eq!(cc.spec.resync_period(), Some(Duration::from_secs(5)));
        assert!(!cc.spec.generate_selector());
        assert!(cc.spec.sync_hook().is_some());
        assert!(cc.spec.finalize_hook().is_none() && cc.spec.customize_hook().is_none());
        let pods = cc.spec.child_rule("v1", "pods").expect("pods rule");
        assert_eq!(pods.update_method(), UpdateMethod::OnDelete);
        let deploys = cc
            .spec
            .child_rule("apps/v1", "deployments")
            .expect("deployments rule");
        assert_eq!(deploys.update_method(), UpdateMethod::RollingInPlace);
        assert!(cc.spec.child_rule("apps/v1", "pods").is_none());
    }

    #[test]
    fn non_positive_resync_is_none() {
        let mut spec = CompositeControllerSpec::default();
        assert_eq!(spec.resync_period(), None);
        spec.resync_period_seconds = Some(0);
        assert_eq!(spec.resync_period(), None);
        spec.resync_period_seconds = Some(-3);
        assert_eq!(spec.resync_period(), None);
    }

    #[test]
    fn spec_requires_parent_resource() {
        let err = serde_json::from_value::<CompositeControllerSpec>(json!({"childResources": []}));
        assert!(err.is_err());
    }

    #[test]
    fn new_sets_type_meta() {
        let cc = CompositeController::new("x", CompositeControllerSpec::default());
        let v = serde_json::to_value(&cc).expect("serializes");
        assert_eq!(v["apiVersion"], "metacontroller.k8s.io/v1alpha1");
        assert_eq!(v["kind"], "CompositeController");
        assert_eq!(v["metadata"], json!({"name": "x"}));
    }
}
