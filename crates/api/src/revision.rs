//! ControllerRevision: a snapshot of selected parent fields, with the children that were
//! last synced from it, used by rolling updates.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consts;
use crate::meta::ObjectMeta;

/// One recorded revision of a CompositeController parent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControllerRevision {
    /// Always `metacontroller.k8s.io/v1alpha1`.
    #[serde(default = "default_api_version")]
    pub api_version: String,
    /// Always `ControllerRevision`.
    #[serde(default = "default_kind")]
    pub kind: String,
    /// Standard object metadata.
    pub metadata: ObjectMeta,
    /// A partial parent object holding only the recorded field paths.
    pub parent_patch: Value,
    /// Children that belong to this revision, grouped by kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<ControllerRevisionChildren>,
}

fn default_api_version() -> String {
    consts::API_VERSION.to_string()
}

fn default_kind() -> String {
    consts::CONTROLLER_REVISION_KIND.to_string()
}

/// Names of the children of one kind that belong to a revision.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ControllerRevisionChildren {
    /// API group of the child kind (`""` for the core group).
    pub api_group: String,
    /// Child kind.
    pub kind: String,
    /// Child names.
    pub names: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips() {
        let raw = json!({
            "apiVersion": "metacontroller.k8s.io/v1alpha1",
            "kind": "ControllerRevision",
            "metadata": {"name": "p-5d8f", "namespace": "ns",
                         "labels": {"metacontroller.k8s.io/apiGroup": "ctl.example.com"}},
            "parentPatch": {"spec": {"template": {"x": 1}}},
            "children": [{"apiGroup": "", "kind": "Pod", "names": ["p-1", "p-2"]}]
        });
        let rev: ControllerRevision = serde_json::from_value(raw.clone()).expect("valid");
        assert_eq!(rev.children[0].names, ["p-1", "p-2"]);
        assert_eq!(serde_json::to_value(&rev).expect("serializes"), raw);
    }

    #[test]
    fn parent_patch_is_required() {
        assert!(serde_json::from_value::<ControllerRevision>(json!({"metadata": {}})).is_err());
    }
}
