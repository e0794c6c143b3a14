//! The HTTP front end: authentication, routing, body handling and responses.
//!
//! ```text
//! request ─► auth (bearer token) ─► route ─┬─ discovery / openapi / version / health / metrics
//!                                         └─ resource ─► verb handler ─► Store ─► JSON | Table
//!                                                       └─ watch ─► streamed JSON lines
//! ```
//!
//! Every error leaves as a `Status` object with the matching HTTP code.

pub mod media;
pub mod query;
mod resource;
pub mod route;
mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{HeaderValue, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, WARNING};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Frame, Incoming};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::{not_found, ApiError, Result};
use crate::faults::{self, FaultConfig, Faults};
use crate::metrics::{Metrics, RequestInfo};
use crate::store::Store;
use crate::{discovery, openapi};
use query::Query;
use route::Route;

pub use crate::model::MAX_BODY_BYTES;

/// A response body: a buffered one or a stream (watches).
pub type Body = BoxBody<Bytes, Infallible>;

/// What every request handler shares.
#[derive(Debug)]
pub struct AppState {
    pub store: Arc<Store>,
    /// The bearer token required on every request (except health and version), if any.
    pub token: Option<String>,
    /// The address clients reach the server at (for `/api`'s `serverAddressByClientCIDRs`).
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    /// Cancelled at shutdown: running watches end.
    pub shutdown: CancellationToken,
    /// Where `pods/{name}/log` reads container output, once a node installs a provider.
    pub pod_logs: crate::podlogs::PodLogSlot,
    /// Injected failures (`metacontroller dev --fault-*`, `/debug/faults`).
    pub faults: Arc<Faults>,
}

/// Handles one request. Never fails: errors become `Status` responses.
pub async fn handle(
    state: Arc<AppState>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = req.into_parts();
    let route = route::route(parts.uri.path());
    let query = Query::parse(parts.uri.query());
    let info = request_info(&parts.method, &route, &query);

    let started = std::time::Instant::now();
    let method = parts.method.clone();
    let path = parts.uri.path().to_string();
    let warning = deprecation_warning(&route);
    let resp = if !authorized(&state, &route, &parts.headers) {
        error(&ApiError::unauthorized())
    } else if let Some(resp) = inject_fault(&state, &route, &info).await {
        resp
    } else {
        let req = Req {
            method: parts.method,
            headers: parts.headers,
            query,
            body: Some(body),
        };
        match dispatch(&state, route, req, &info).await {
            Ok(r) => r,
            Err(e) => error(&e),
        }
    };
    let mut resp = resp;
    if let Some(w) = warning {
        resp.headers_mut()
            .insert(WARNING, HeaderValue::from_static(w));
    }
    // Watches are counted when they start (their running count is in the gauges).
    state.metrics.record_request(&info, resp.status().as_u16());
    tracing::debug!(%method, %path, status = resp.status().as_u16(), elapsed_ms = started.elapsed().as_millis() as u64, "request");
    Ok(resp)
}

/// Applies the configured latency and, when one is drawn, answers with an injected error
/// before the request is handled (resource requests only).
async fn inject_fault(
    state: &AppState,
    route: &Route,
    info: &RequestInfo,
) -> Option<Response<Body>> {
    if !state.faults.active() || !matches!(route, Route::Resource(_)) {
        return None;
    }
    let verb = match info.verb.as_str() {
        "GET" => "get",
        "LIST" => "list",
        "WATCH" => "watch",
        "POST" => "create",
        "PUT" => "update",
        "PATCH" => "patch",
        "DELETE" => "delete",
        "DELETECOLLECTION" => "deletecollection",
        _ => return None,
    };
    let decision = state.faults.decide(verb);
    if !decision.latency.is_zero() {
        tokio::time::sleep(decision.latency).await;
    }
    let code = decision.error?;
    tracing::debug!(verb, code, "injecting a fault");
    let mut resp = error(&faults::injected_error(code));
    if code == 429 {
        resp.headers_mut()
            .insert(http::header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    Some(resp)
}

/// `/debug/faults`: `GET` shows the settings and what was injected, `PUT` replaces the
/// settings with a JSON [`FaultConfig`] (`{}` turns every fault off).
async fn debug_faults(state: &AppState, mut req: Req) -> Result<Response<Body>> {
    match req.method {
        Method::GET | Method::HEAD => {}
        Method::PUT => {
            let body = req.read_body().await?;
            let config: FaultConfig = serde_json::from_slice(&body)
                .map_err(|e| ApiError::bad_request(format!("invalid fault settings: {e}")))?;
            state
                .faults
                .set(config)
                .map_err(|e| ApiError::bad_request(format!("invalid fault settings: {e}")))?;
            tracing::info!(faults = %state.faults.report()["config"], "fault injection changed");
        }
        _ => {
            return Err(ApiError::method_not_allowed(
                "/debug/faults supports GET and PUT",
            ))
        }
    }
    Ok(json(StatusCode::OK, &state.faults.report()))
}

/// The `Warning` header kube-apiserver sends for deprecated APIs, for the ones served here
/// although Kubernetes 1.32 no longer does.
fn deprecation_warning(route: &Route) -> Option<&'static str> {
    match route {
        Route::Resource(p)
            if p.group == discovery::APIEXTENSIONS_GROUP && p.version == "v1beta1" =>
        {
            Some("299 - \"apiextensions.k8s.io/v1beta1 CustomResourceDefinition is deprecated in v1.16+, unavailable in v1.22+; use apiextensions.k8s.io/v1 CustomResourceDefinition\"")
        }
        _ => None,
    }
}

/// The parts of a request handlers need.
pub(crate) struct Req {
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Query,
    /// Taken by the first [`Req::read_body`].
    pub body: Option<Incoming>,
}

impl Req {
    pub fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Reads the whole body, refusing more than [`MAX_BODY_BYTES`] with a 413.
    pub async fn read_body(&mut self) -> Result<Bytes> {
        let too_large = || {
            ApiError::too_large(format!(
                "the request body is too large: the limit is {MAX_BODY_BYTES} bytes"
            ))
        };
        if let Some(len) = self
            .header(CONTENT_LENGTH)
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            if len > MAX_BODY_BYTES as u64 {
                return Err(too_large());
            }
        }
        let Some(body) = self.body.take() else {
            return Ok(Bytes::new());
        };
        match Limited::new(body, MAX_BODY_BYTES).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
            Err(e) => Err(ApiError::bad_request(format!(
                "error reading the request body: {e}"
            ))),
        }
    }
}

fn authorized(state: &AppState, route: &Route, headers: &HeaderMap) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    // kube-apiserver lets anonymous clients read health and version (system:public-info-viewer).
    if matches!(route, Route::Healthz | Route::Version) {
        return true;
    }
    let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let mut parts = value.trim().splitn(2, ' ');
    let scheme = parts.next().unwrap_or("");
    let presented = parts.next().unwrap_or("").trim();
    scheme.eq_ignore_ascii_case("bearer")
        && constant_time_eq(presented.as_bytes(), token.as_bytes())
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn dispatch(
    state: &Arc<AppState>,
    route: Route,
    req: Req,
    info: &RequestInfo,
) -> Result<Response<Body>> {
    let registry = state.store.registry();
    match route {
        Route::Healthz => Ok(text(StatusCode::OK, "ok")),
        Route::Metrics => Ok(text(StatusCode::OK, &state.metrics.render())),
        Route::Version => get_only(&req, || Ok(discovery::version())),
        Route::CoreVersions | Route::Groups
            if discovery::wants_aggregated(req.header(http::header::ACCEPT)) =>
        {
            let doc = discovery::aggregated(&registry, route == Route::CoreVersions);
            let mut resp = get_only(&req, || Ok(doc))?;
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(discovery::AGGREGATED_CONTENT_TYPE),
            );
            Ok(resp)
        }
        Route::CoreVersions => get_only(&req, || Ok(discovery::core_versions(state.addr))),
        Route::Groups => get_only(&req, || Ok(discovery::group_list(&registry))),
        Route::Group(g) => get_only(&req, || discovery::group(&registry, &g)),
        Route::GroupVersion { group, version } => get_only(&req, || {
            discovery::resource_list(&registry, &group, &version)
        }),
        Route::OpenApiV2 => {
            get_only(&req, || Ok(Value::Null))?;
            let doc = openapi::v2(&registry);
            let accept = req.header(http::header::ACCEPT).unwrap_or("");
            if accept.contains("com.github.proto-openapi.spec.v2") && accept.contains("protobuf") {
                let body = Bytes::from(openapi::v2_protobuf(&doc));
                Ok(bytes_response(StatusCode::OK, openapi::V2_PROTOBUF, body))
            } else {
                Ok(json(StatusCode::OK, &doc))
            }
        }
        Route::OpenApiRoot => get_only(&req, || Ok(openapi::root(&registry))),
        Route::OpenApiGroupVersion { group, version } => {
            get_only(&req, || openapi::group_version(&registry, &group, &version))
        }
        Route::Resource(path) => resource::handle(state, path, req, info).await,
        Route::DebugFaults => debug_faults(state, req).await,
        Route::NotFound => Err(not_found()),
    }
}

fn get_only(req: &Req, f: impl FnOnce() -> Result<Value>) -> Result<Response<Body>> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return Err(ApiError::method_not_allowed(
            "the server does not allow this method on the requested resource",
        ));
    }
    Ok(json(StatusCode::OK, &f()?))
}

/// The user the server's bearer token authenticates, and the kubeconfig context (and
/// cluster) name written for it.
pub const CONTEXT_NAME: &str = "metacontroller-dev";

fn request_info(method: &Method, route: &Route, query: &Query) -> RequestInfo {
    let Route::Resource(p) = route else {
        return RequestInfo {
            verb: method.as_str().to_string(),
            ..Default::default()
        };
    };
    let watch = p.legacy_watch || query.bool("watch").unwrap_or(false);
    let verb = match (method.as_str(), p.name.is_some()) {
        ("GET" | "HEAD", _) if watch => "WATCH",
        ("GET" | "HEAD", true) => "GET",
        ("GET" | "HEAD", false) => "LIST",
        ("DELETE", false) => "DELETECOLLECTION",
        (m, _) => m,
    };
    let scope = if p.name.is_some() {
        "resource"
    } else if p.namespace.is_some() {
        "namespace"
    } else {
        "cluster"
    };
    RequestInfo {
        verb: verb.to_string(),
        dry_run: query.dry_run().unwrap_or(false),
        group: p.group.clone(),
        version: p.version.clone(),
        resource: p.resource.clone(),
        subresource: p.subresource.clone().unwrap_or_default(),
        scope: scope.to_string(),
    }
}

// ----- responses -----

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub(crate) fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Body> {
    let mut resp = Response::new(full(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub(crate) fn json(status: StatusCode, v: &Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    bytes_response(status, "application/json", Bytes::from(body))
}

fn text(status: StatusCode, s: &str) -> Response<Body> {
    bytes_response(
        status,
        "text/plain; charset=utf-8",
        Bytes::from(s.to_string()),
    )
}

/// A `Status` response for an error.
pub fn error(e: &ApiError) -> Response<Body> {
    let status = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json(status, &e.to_status())
}

/// A streamed body fed through a bounded channel; it ends when the sender is dropped.
pub(crate) struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl ChannelBody {
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        Self { rx }
    }
}

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|b| Ok(Frame::data(b))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_info_verbs_and_scopes() {
        let q = Query::parse(Some("watch=true"));
        let none = Query::default();
        let i = request_info(&Method::GET, &route::route("/api/v1/namespaces/a/pods"), &q);
        assert_eq!(
            (i.verb.as_str(), i.scope.as_str(), i.resource.as_str()),
            ("WATCH", "namespace", "pods")
        );
        let i = request_info(&Method::GET, &route::route("/api/v1/pods"), &none);
        assert_eq!((i.verb.as_str(), i.scope.as_str()), ("LIST", "cluster"));
        let i = request_info(
            &Method::PUT,
            &route::route("/apis/apps/v1/namespaces/a/deployments/d/status"),
            &none,
        );
        assert_eq!(
            (i.verb.as_str(), i.scope.as_str(), i.subresource.as_str()),
            ("PUT", "resource", "status")
        );
        let i = request_info(
            &Method::DELETE,
            &route::route("/api/v1/namespaces/a/configmaps"),
            &none,
        );
        assert_eq!(i.verb, "DELETECOLLECTION");
        let i = request_info(
            &Method::GET,
            &route::route("/api/v1/watch/namespaces"),
            &none,
        );
        assert_eq!(i.verb, "WATCH");
        let i = request_info(&Method::GET, &route::route("/version"), &none);
        assert_eq!((i.verb.as_str(), i.resource.as_str()), ("GET", ""));
    }

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
