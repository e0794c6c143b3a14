//! The registry of served resource types: the built-in table plus whatever CRDs define.
//!
//! Storage is keyed by [`GroupResource`]; a resource served at several versions (a CRD with
//! several `served` versions) shares one storage, and objects are converted by rewriting
//! `apiVersion` (conversion strategy `None`).

use std::sync::Arc;

use serde_json::Value;

/// `(group, plural)`: the identity of a resource's storage, independent of version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupResource {
    pub group: String,
    pub resource: String,
}

/// One resource type as served at one group/version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    pub group: String,
    pub version: String,
    /// The plural resource name used in URLs, e.g. `deployments`.
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub list_kind: String,
    pub namespaced: bool,
    pub verbs: Vec<String>,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    /// Whether `/status` is served (built-ins with a status, CRDs with `subresources.status`).
    pub status_subresource: bool,
    /// CRD `subresources.scale` (specReplicasPath, statusReplicasPath, labelSelectorPath), if any.
    pub scale_subresource: Option<Value>,
    /// CRD `additionalPrinterColumns` for this version, if any.
    pub printer_columns: Option<Value>,
    /// CRD `openAPIV3Schema` for this version (pruning, defaults, strict field validation), if any.
    pub schema: Option<Value>,
    /// True for resources defined by a CustomResourceDefinition.
    pub custom: bool,
    /// The version objects are stored at (the CRD's storage version; for built-ins, `version`).
    pub storage_version: String,
}

impl ResourceType {
    pub fn group_resource(&self) -> GroupResource {
        GroupResource { group: self.group.clone(), resource: self.plural.clone() }
    }

    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// A served API group for discovery.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInfo {
    pub name: String,
    /// Served versions, preferred first (Kubernetes version ordering).
    pub versions: Vec<String>,
}

/// All served resource types. Cheap to read concurrently; CRD changes replace entries.
#[derive(Debug, Default)]
pub struct Registry {
    // Filled in by the implementation.
}

impl Registry {
    /// A registry with every built-in type served by the embedded server.
    pub fn with_builtins() -> Self {
        todo!()
    }

    /// The type served at `group/version/plural`, if any.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        let _ = (group, version, plural);
        todo!()
    }

    /// The type for a kind at a group/version (used for `kind`/`apiVersion` checks).
    pub fn lookup_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let _ = (group, version, kind);
        todo!()
    }

    /// Served groups in discovery order; the core group ("") is not included.
    pub fn groups(&self) -> Vec<GroupInfo> {
        todo!()
    }

    /// Types served at one group/version, in a stable order.
    pub fn resources(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        let _ = (group, version);
        todo!()
    }

    /// Bumped whenever the set of served types changes (used for OpenAPI hashes, discovery caches).
    pub fn revision(&self) -> u64 {
        todo!()
    }
}
