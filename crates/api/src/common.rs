//! Pieces shared by both controller kinds: child update methods and `apiVersion` helpers.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How Metacontroller brings an existing child (or attachment) in line with the desired
/// object returned by the hook.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum UpdateMethod {
    /// Leave existing objects alone; changes apply only to newly created ones.
    #[default]
    OnDelete,
    /// Delete the object and create it again with the desired content.
    Recreate,
    /// Update the object in place.
    InPlace,
    /// Like `Recreate`, one child at a time, waiting for each to be ready.
    RollingRecreate,
    /// Like `InPlace`, one child at a time, waiting for each to be ready.
    RollingInPlace,
}

impl UpdateMethod {
    /// Every method, in upstream's declaration order.
    pub const ALL: [UpdateMethod; 5] = [
        UpdateMethod::OnDelete,
        UpdateMethod::Recreate,
        UpdateMethod::InPlace,
        UpdateMethod::RollingRecreate,
        UpdateMethod::RollingInPlace,
    ];

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UpdateMethod::OnDelete => "OnDelete",
            UpdateMethod::Recreate => "Recreate",
            UpdateMethod::InPlace => "InPlace",
            UpdateMethod::RollingRecreate => "RollingRecreate",
            UpdateMethod::RollingInPlace => "RollingInPlace",
        }
    }

    /// Whether children are updated one at a time with readiness checks in between.
    pub fn is_rolling(self) -> bool {
        matches!(
            self,
            UpdateMethod::RollingRecreate | UpdateMethod::RollingInPlace
        )
    }

    /// Whether an update deletes and recreates the object (as opposed to patching it).
    pub fn recreates(self) -> bool {
        matches!(self, UpdateMethod::Recreate | UpdateMethod::RollingRecreate)
    }

    /// Whether an update patches the object in place.
    pub fn updates_in_place(self) -> bool {
        matches!(self, UpdateMethod::InPlace | UpdateMethod::RollingInPlace)
    }
}

/// Splits an `apiVersion` into `(group, version)`: `"apps/v1"` → `("apps", "v1")`,
/// `"v1"` → `("", "v1")`.
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_method_wire_names() {
        for m in UpdateMethod::ALL {
            let json = serde_json::to_string(&m).expect("serializes");
            assert_eq!(json, format!("\"{}\"", m.as_str()));
            let back: UpdateMethod = serde_json::from_str(&json).expect("deserializes");
            assert_eq!(back, m);
        }
        assert_eq!(UpdateMethod::default(), UpdateMethod::OnDelete);
        assert!(serde_json::from_str::<UpdateMethod>("\"onDelete\"").is_err());
    }

    #[test]
    fn update_method_classes() {
        let rolling: Vec<_> = UpdateMethod::ALL
            .into_iter()
            .filter(|m| m.is_rolling())
            .collect();
        assert_eq!(
            rolling,
            [UpdateMethod::RollingRecreate, UpdateMethod::RollingInPlace]
        );
        let recreate: Vec<_> = UpdateMethod::ALL
            .into_iter()
            .filter(|m| m.recreates())
            .collect();
        assert_eq!(
            recreate,
            [UpdateMethod::Recreate, UpdateMethod::RollingRecreate]
        );
        let in_place: Vec<_> = UpdateMethod::ALL
            .into_iter()
            .filter(|m| m.updates_in_place())
            .collect();
        assert_eq!(
            in_place,
            [UpdateMethod::InPlace, UpdateMethod::RollingInPlace]
        );
        assert!(!UpdateMethod::OnDelete.recreates() && !UpdateMethod::OnDelete.updates_in_place());
    }

    #[test]
    fn splits_api_versions() {
        assert_eq!(split_api_version("apps/v1"), ("apps", "v1"));
        assert_eq!(split_api_version("v1"), ("", "v1"));
        assert_eq!(
            split_api_version("example.com/v1beta1"),
            ("example.com", "v1beta1")
        );
    }
}
