//! URL path routing: which endpoint a request path names.
//!
//! Resource paths follow kube-apiserver's grammar:
//!
//! ```text
//! /api/v1[/watch]/[namespaces/{ns}/]{resource}[/{name}[/{subresource}]]
//! /apis/{group}/{version}[/watch]/[namespaces/{ns}/]{resource}[/{name}[/{subresource}]]
//! ```
//!
//! with `namespaces/{name}/status` and `namespaces/{name}/finalize` naming subresources of a
//! namespace rather than a resource inside it.

use super::query::decode_path;

/// A parsed request path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Version,
    Healthz,
    Metrics,
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1` or `/apis/{group}/{version}`
    GroupVersion {
        group: String,
        version: String,
    },
    /// `/openapi/v2`
    OpenApiV2,
    /// `/openapi/v3`
    OpenApiRoot,
    /// `/openapi/v3/api/v1` or `/openapi/v3/apis/{group}/{version}`
    OpenApiGroupVersion {
        group: String,
        version: String,
    },
    Resource(ResourcePath),
    /// `/debug/faults`: fault injection settings.
    DebugFaults,
    NotFound,
}

/// A path under a group/version naming a resource collection, object or subresource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePath {
    pub group: String,
    pub version: String,
    /// The legacy `/watch/` prefix was used.
    pub legacy_watch: bool,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Subresources of a namespace addressed as `namespaces/{name}/{sub}`.
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Routes a request path (already split from its query).
pub fn route(path: &str) -> Route {
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_path)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    match seg.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "readyz" | "livez", ..] => Route::Healthz,
        ["metrics"] => Route::Metrics,
        ["debug", "faults"] => Route::DebugFaults,
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiRoot,
        ["openapi", "v3", "api", v] => Route::OpenApiGroupVersion {
            group: String::new(),
            version: v.to_string(),
        },
        ["openapi", "v3", "apis", g, v] => Route::OpenApiGroupVersion {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["api"] => Route::CoreVersions,
        ["api", v] => Route::GroupVersion {
            group: String::new(),
            version: v.to_string(),
        },
        ["api", v, rest @ ..] => resource_route("", v, rest),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::GroupVersion {
            group: g.to_string(),
            version: v.to_string(),
        },
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        _ => Route::NotFound,
    }
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let (legacy_watch, rest) = match rest {
        ["watch", tail @ ..] if !tail.is_empty() => (true, tail),
        _ => (false, rest),
    };
    let mut namespace = None;
    let mut parts = rest;
    if let ["namespaces", ns, tail @ ..] = rest {
        namespace = Some(ns.to_string());
        match tail {
            // `namespaces/{name}` and `namespaces/{name}/status|finalize` address the namespace.
            [] => {}
            [sub] if NAMESPACE_SUBRESOURCES.contains(sub) => {}
            _ => parts = tail,
        }
    }
    let p = |resource: &str, name: Option<&str>, sub: Option<&str>, namespace: Option<String>| {
        Route::Resource(ResourcePath {
            group: group.to_string(),
            version: version.to_string(),
            legacy_watch,
            namespace,
            resource: resource.to_string(),
            name: name.map(str::to_string),
            subresource: sub.map(str::to_string),
        })
    };
    match parts {
        // The namespace itself: its name is in `namespace`; report it as the object's name.
        ["namespaces", name] => p("namespaces", Some(name), None, None),
        ["namespaces", name, sub] if NAMESPACE_SUBRESOURCES.contains(sub) => {
            p("namespaces", Some(name), Some(sub), None)
        }
        [resource] => p(resource, None, None, namespace),
        [resource, name] => p(resource, Some(name), None, namespace),
        [resource, name, sub] => p(resource, Some(name), Some(sub), namespace),
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(
        g: &str,
        v: &str,
        ns: Option<&str>,
        r: &str,
        name: Option<&str>,
        sub: Option<&str>,
        watch: bool,
    ) -> Route {
        Route::Resource(ResourcePath {
            group: g.into(),
            version: v.into(),
            legacy_watch: watch,
            namespace: ns.map(Into::into),
            resource: r.into(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        })
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(route("/version"), Route::Version);
        assert_eq!(route("/version/"), Route::Version);
        assert_eq!(route("/healthz"), Route::Healthz);
        assert_eq!(route("/readyz/ping"), Route::Healthz);
        assert_eq!(route("/api"), Route::CoreVersions);
        assert_eq!(route("/apis"), Route::Groups);
        assert_eq!(route("/apis/apps"), Route::Group("apps".into()));
        assert_eq!(
            route("/api/v1"),
            Route::GroupVersion {
                group: String::new(),
                version: "v1".into()
            }
        );
        assert_eq!(
            route("/apis/apps/v1/"),
            Route::GroupVersion {
                group: "apps".into(),
                version: "v1".into()
            }
        );
        assert_eq!(route("/openapi/v3"), Route::OpenApiRoot);
        assert_eq!(
            route("/openapi/v3/apis/example.com/v1"),
            Route::OpenApiGroupVersion {
                group: "example.com".into(),
                version: "v1".into()
            }
        );
        assert_eq!(route("/"), Route::NotFound);
        assert_eq!(route("/bogus"), Route::NotFound);
    }

    #[test]
    fn resource_paths() {
        assert_eq!(
            route("/api/v1/configmaps"),
            res("", "v1", None, "configmaps", None, None, false)
        );
        assert_eq!(
            route("/api/v1/namespaces/ns/configmaps/x"),
            res("", "v1", Some("ns"), "configmaps", Some("x"), None, false)
        );
        assert_eq!(
            route("/apis/apps/v1/namespaces/ns/deployments/d/status"),
            res(
                "apps",
                "v1",
                Some("ns"),
                "deployments",
                Some("d"),
                Some("status"),
                false
            )
        );
        assert_eq!(
            route("/apis/example.com/v1/watch/namespaces/ns/widgets"),
            res("example.com", "v1", Some("ns"), "widgets", None, None, true)
        );
        assert_eq!(
            route("/api/v1/namespaces"),
            res("", "v1", None, "namespaces", None, None, false)
        );
        assert_eq!(
            route("/api/v1/namespaces/hello"),
            res("", "v1", None, "namespaces", Some("hello"), None, false)
        );
        assert_eq!(
            route("/api/v1/namespaces/hello/status"),
            res(
                "",
                "v1",
                None,
                "namespaces",
                Some("hello"),
                Some("status"),
                false
            )
        );
        assert_eq!(
            route("/api/v1/namespaces/hello/finalize"),
            res(
                "",
                "v1",
                None,
                "namespaces",
                Some("hello"),
                Some("finalize"),
                false
            )
        );
        assert_eq!(
            route("/api/v1/namespaces/ns/pods"),
            res("", "v1", Some("ns"), "pods", None, None, false)
        );
        assert_eq!(
            route("/api/v1/watch/namespaces"),
            res("", "v1", None, "namespaces", None, None, true)
        );
        assert_eq!(route("/api/v1/a/b/c/d"), Route::NotFound);
        assert_eq!(route("/api/v1/namespaces/ns/a/b/c/d"), Route::NotFound);
        assert_eq!(
            route("/api/v1/namespaces/ns/configmaps/a%3Ab"),
            res("", "v1", Some("ns"), "configmaps", Some("a:b"), None, false)
        );
    }
}
