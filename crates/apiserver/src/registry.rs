//! The registry of served resource types: the built-in table plus whatever CRDs define.
//!
//! Storage is keyed by [`GroupResource`]; a resource served at several versions (a CRD with
//! several `served` versions) shares one storage, and objects are converted by rewriting
//! `apiVersion` (conversion strategy `None`).

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::{Arc, RwLock};

use crate::model::{GroupInfo, GroupResource, ResourceType};

/// All served resource types. Cheap to read concurrently; CRD changes replace entries.
#[derive(Debug, Default)]
pub struct Registry {
    inner: RwLock<Inner>,
    revision: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    /// `(group, version, plural)` → type.
    by_gvr: BTreeMap<(String, String, String), Arc<ResourceType>>,
    /// `(group, version, kind)` → type.
    by_gvk: HashMap<(String, String, String), Arc<ResourceType>>,
    /// Groups defined by CRDs (discovery lists them after the built-in groups, alphabetically).
    crd_groups: BTreeSet<String>,
}

impl Inner {
    fn insert(&mut self, rt: ResourceType) {
        let rt = Arc::new(rt);
        self.by_gvk.insert(
            (rt.group.clone(), rt.version.clone(), rt.kind.clone()),
            rt.clone(),
        );
        self.by_gvr.insert(
            (rt.group.clone(), rt.version.clone(), rt.plural.clone()),
            rt,
        );
    }

    fn remove_resource(&mut self, gr: &GroupResource) -> bool {
        let keys: Vec<_> = self
            .by_gvr
            .keys()
            .filter(|(g, _, p)| *g == gr.group && *p == gr.resource)
            .cloned()
            .collect();
        for k in &keys {
            if let Some(rt) = self.by_gvr.remove(k) {
                let gvk = (rt.group.clone(), rt.version.clone(), rt.kind.clone());
                if self.by_gvk.get(&gvk).is_some_and(|t| t.plural == rt.plural) {
                    self.by_gvk.remove(&gvk);
                }
            }
        }
        if !self.by_gvr.keys().any(|(g, _, _)| *g == gr.group) {
            self.crd_groups.remove(&gr.group);
        }
        !keys.is_empty()
    }
}

impl Registry {
    /// A registry with every built-in type served by the embedded server.
    pub fn with_builtins() -> Self {
        let mut inner = Inner::default();
        for rt in crate::builtins::builtin_types() {
            inner.insert(rt);
        }
        Self {
            inner: RwLock::new(inner),
            revision: AtomicU64::new(1),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The type served at `group/version/plural`, if any.
    pub fn lookup(&self, group: &str, version: &str, plural: &str) -> Option<Arc<ResourceType>> {
        self.read()
            .by_gvr
            .get(&(group.to_string(), version.to_string(), plural.to_string()))
            .cloned()
    }

    /// The type for a kind at a group/version (used for `kind`/`apiVersion` checks).
    pub fn lookup_kind(&self, group: &str, version: &str, kind: &str) -> Option<Arc<ResourceType>> {
        self.read()
            .by_gvk
            .get(&(group.to_string(), version.to_string(), kind.to_string()))
            .cloned()
    }

    /// The type for a kind in a group at any served version, preferred version first
    /// (what the garbage collector needs to resolve an ownerReference).
    pub fn lookup_group_kind(&self, group: &str, kind: &str) -> Option<Arc<ResourceType>> {
        let inner = self.read();
        let mut found: Vec<&Arc<ResourceType>> = inner
            .by_gvk
            .iter()
            .filter(|((g, _, k), _)| g == group && k == kind)
            .map(|(_, t)| t)
            .collect();
        found.sort_by(|a, b| compare_versions(&a.version, &b.version));
        found.first().map(|t| (*t).clone())
    }

    /// The type that defines a resource's storage (its storage version), if the resource is served.
    pub fn storage_type(&self, gr: &GroupResource) -> Option<Arc<ResourceType>> {
        let inner = self.read();
        let mut any = None;
        for ((g, _, p), rt) in inner.by_gvr.iter() {
            if *g == gr.group && *p == gr.resource {
                if rt.version == rt.storage_version {
                    return Some(rt.clone());
                }
                any = Some(rt.clone());
            }
        }
        any
    }

    /// One type per stored resource (its storage version), e.g. for the namespace controller.
    /// `events.k8s.io` events share storage with core events and are left out.
    pub fn storage_types(&self) -> Vec<Arc<ResourceType>> {
        let inner = self.read();
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for rt in inner.by_gvr.values() {
            if rt.group == "events.k8s.io" || rt.verbs.iter().all(|v| v == "create") {
                continue;
            }
            let gr = rt.group_resource();
            if seen.contains(&gr) {
                continue;
            }
            if let Some(st) = inner
                .by_gvr
                .get(&(
                    rt.group.clone(),
                    rt.storage_version.clone(),
                    rt.plural.clone(),
                ))
                .cloned()
            {
                seen.insert(gr);
                out.push(st);
            }
        }
        out
    }

    /// Served groups in discovery order; the core group ("") is not included.
    pub fn groups(&self) -> Vec<GroupInfo> {
        let inner = self.read();
        let mut versions: HashMap<&str, BTreeSet<&str>> = HashMap::new();
        for (g, v, _) in inner.by_gvr.keys() {
            if !g.is_empty() {
                versions.entry(g.as_str()).or_default().insert(v.as_str());
            }
        }
        let builtin = crate::builtins::GROUP_ORDER.iter().copied();
        let custom = inner
            .crd_groups
            .iter()
            .map(String::as_str)
            .filter(|g| !crate::builtins::GROUP_ORDER.contains(g));
        builtin
            .chain(custom)
            .filter_map(|g| {
                let vs = versions.get(g)?;
                let mut vs: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
                vs.sort_by(|a, b| compare_versions(a, b));
                Some(GroupInfo {
                    name: g.to_string(),
                    versions: vs,
                })
            })
            .collect()
    }

    /// Versions served for the core group (always `["v1"]`).
    pub fn core_versions(&self) -> Vec<String> {
        let inner = self.read();
        let vs: BTreeSet<&str> = inner
            .by_gvr
            .keys()
            .filter(|(g, _, _)| g.is_empty())
            .map(|(_, v, _)| v.as_str())
            .collect();
        let mut vs: Vec<String> = vs.into_iter().map(str::to_string).collect();
        vs.sort_by(|a, b| compare_versions(a, b));
        vs
    }

    /// Types served at one group/version, in a stable order.
    pub fn resources(&self, group: &str, version: &str) -> Vec<Arc<ResourceType>> {
        self.read()
            .by_gvr
            .iter()
            .filter(|((g, v, _), _)| g == group && v == version)
            .map(|(_, rt)| rt.clone())
            .collect()
    }

    /// Bumped whenever the set of served types changes (used for OpenAPI hashes, discovery caches).
    pub fn revision(&self) -> u64 {
        self.revision.load(AtomicOrdering::SeqCst)
    }

    /// Replaces every served version of one custom resource with `types` (all of the same
    /// group and plural). Built-in resources cannot be replaced.
    pub fn set_custom_resource(&self, types: Vec<ResourceType>) {
        let Some(first) = types.first() else { return };
        let gr = first.group_resource();
        let mut inner = self.write();
        let builtin = inner
            .by_gvr
            .values()
            .any(|t| !t.custom && t.group_resource() == gr);
        if builtin {
            return;
        }
        let old: Vec<Arc<ResourceType>> = inner
            .by_gvr
            .values()
            .filter(|t| t.group_resource() == gr)
            .cloned()
            .collect();
        let unchanged = old.len() == types.len() && old.iter().zip(&types).all(|(a, b)| **a == *b);
        if unchanged {
            return;
        }
        inner.remove_resource(&gr);
        inner.crd_groups.insert(gr.group.clone());
        for t in types {
            inner.insert(t);
        }
        drop(inner);
        self.revision.fetch_add(1, AtomicOrdering::SeqCst);
    }

    /// Stops serving a custom resource at every version.
    pub fn remove_custom_resource(&self, gr: &GroupResource) {
        let mut inner = self.write();
        if inner
            .by_gvr
            .values()
            .any(|t| !t.custom && t.group_resource() == *gr)
        {
            return;
        }
        if inner.remove_resource(gr) {
            drop(inner);
            self.revision.fetch_add(1, AtomicOrdering::SeqCst);
        }
    }
}

/// Kubernetes version ordering: GA before beta before alpha; higher major first, then higher
/// minor; versions that do not look like `v<N>[alpha|beta<M>]` come last, alphabetically.
/// `Ordering::Less` means "preferred".
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    match (parse_version(a), parse_version(b)) {
        (Some(x), Some(y)) => {
            // (stability rank, major, minor): larger is preferred.
            (y.0, y.1, y.2).cmp(&(x.0, x.1, x.2))
        }
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// `(stability, major, minor)` with stability 2 = GA, 1 = beta, 0 = alpha.
fn parse_version(v: &str) -> Option<(u8, u64, u64)> {
    let rest = v.strip_prefix('v')?;
    let digits = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    if digits == 0 || rest.starts_with('0') {
        return None;
    }
    let major: u64 = rest[..digits].parse().ok()?;
    let tail = &rest[digits..];
    if tail.is_empty() {
        return Some((2, major, 0));
    }
    let (rank, num) = if let Some(n) = tail.strip_prefix("beta") {
        (1, n)
    } else if let Some(n) = tail.strip_prefix("alpha") {
        (0, n)
    } else {
        return None;
    };
    if num.is_empty() || num.starts_with('0') || !num.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some((rank, major, num.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn custom(group: &str, version: &str, plural: &str, kind: &str) -> ResourceType {
        ResourceType {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            list_kind: format!("{kind}List"),
            namespaced: true,
            verbs: vec!["get".into()],
            short_names: vec![],
            categories: vec![],
            status_subresource: false,
            scale_subresource: None,
            generation: true,
            printer_columns: None,
            schema: None,
            custom: true,
            storage_version: "v1".into(),
        }
    }

    #[test]
    fn version_ordering_follows_kubernetes() {
        let mut vs = vec![
            "v1alpha1",
            "foo",
            "v2beta1",
            "v1",
            "v11alpha2",
            "v10",
            "v1beta1",
            "v12alpha1",
            "v2",
            "bar",
            "v3beta1",
        ];
        vs.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            vs,
            [
                "v10",
                "v2",
                "v1",
                "v3beta1",
                "v2beta1",
                "v1beta1",
                "v12alpha1",
                "v11alpha2",
                "v1alpha1",
                "bar",
                "foo"
            ]
        );
        assert_eq!(parse_version("v0"), None);
        assert_eq!(parse_version("v1beta"), None);
        assert_eq!(parse_version("v1gamma1"), None);
    }

    #[test]
    fn builtins_are_found_by_plural_and_kind() {
        let r = Registry::with_builtins();
        let d = r.lookup("apps", "v1", "deployments").expect("deployments");
        assert_eq!(d.kind, "Deployment");
        assert!(d.status_subresource && d.scale_subresource.is_some());
        assert_eq!(
            r.lookup_kind("", "v1", "ConfigMap")
                .map(|t| t.plural.clone())
                .as_deref(),
            Some("configmaps")
        );
        assert!(r.lookup("", "v1", "nothings").is_none());
        assert_eq!(
            r.lookup_group_kind("apps", "Deployment")
                .map(|t| t.plural.clone())
                .as_deref(),
            Some("deployments")
        );
        assert_eq!(r.core_versions(), ["v1"]);
        let names: Vec<String> = r
            .resources("", "v1")
            .iter()
            .map(|t| t.plural.clone())
            .collect();
        assert!(names.contains(&"pods".to_string()) && names.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn groups_are_listed_builtins_first_then_crd_groups_alphabetically() {
        let r = Registry::with_builtins();
        let rev = r.revision();
        r.set_custom_resource(vec![custom("zeta.io", "v1", "zs", "Z")]);
        r.set_custom_resource(vec![custom("alpha.io", "v1", "as", "A"), {
            let mut t = custom("alpha.io", "v2beta1", "as", "A");
            t.storage_version = "v1".into();
            t
        }]);
        assert!(r.revision() > rev);
        let groups: Vec<String> = r.groups().into_iter().map(|g| g.name).collect();
        let builtin: Vec<String> = crate::builtins::GROUP_ORDER
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(&groups[..builtin.len()], &builtin[..]);
        assert_eq!(&groups[builtin.len()..], ["alpha.io", "zeta.io"]);
        let alpha = r
            .groups()
            .into_iter()
            .find(|g| g.name == "alpha.io")
            .map(|g| g.versions);
        assert_eq!(alpha, Some(vec!["v1".to_string(), "v2beta1".to_string()]));
        let st = r.storage_type(&GroupResource {
            group: "alpha.io".into(),
            resource: "as".into(),
        });
        assert_eq!(st.map(|t| t.version.clone()).as_deref(), Some("v1"));
    }

    #[test]
    fn replacing_and_removing_custom_resources() {
        let r = Registry::with_builtins();
        r.set_custom_resource(vec![custom("ex.com", "v1", "ws", "W")]);
        let rev = r.revision();
        // Same definition again: nothing changes.
        r.set_custom_resource(vec![custom("ex.com", "v1", "ws", "W")]);
        assert_eq!(r.revision(), rev);
        r.set_custom_resource(vec![custom("ex.com", "v2", "ws", "W")]);
        assert!(r.lookup("ex.com", "v1", "ws").is_none());
        assert!(r.lookup("ex.com", "v2", "ws").is_some());
        r.remove_custom_resource(&GroupResource {
            group: "ex.com".into(),
            resource: "ws".into(),
        });
        assert!(r.lookup("ex.com", "v2", "ws").is_none());
        assert!(r.lookup_kind("ex.com", "v2", "W").is_none());
        assert!(!r.groups().iter().any(|g| g.name == "ex.com"));
        // Built-ins cannot be replaced or removed through the CRD path.
        r.set_custom_resource(vec![custom("apps", "v1", "deployments", "Foo")]);
        r.remove_custom_resource(&GroupResource {
            group: "apps".into(),
            resource: "deployments".into(),
        });
        assert_eq!(
            r.lookup("apps", "v1", "deployments")
                .map(|t| t.kind.clone())
                .as_deref(),
            Some("Deployment")
        );
    }
}
