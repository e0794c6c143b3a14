//! Calling Metacontroller hooks (webhooks) over HTTP(S).
//!
//! The engine resolves a controller's `webhook` spec into a [`HookEndpoint`] and calls
//! [`HookClient::call`] with the request body; this crate does the rest the way upstream
//! Metacontroller does: JSON over `POST`, only `200` as success, `429 Retry-After`, the ETag
//! cache, loose or strict decoding, private CAs and mutual TLS, `Authorization` headers, and
//! per-hook Prometheus metrics.
//!
//! ```text
//!  engine ──HookEndpoint + JSON──► HookClient::call ──► plain http://, no proxy: HTTP/1.1 over
//!                                   │   │                 the client's own keep-alive pool
//!                                   │   │               └ otherwise (TLS, proxies, redirects):
//!                                   │   │                 reqwest, pooled per TLS config
//!                                   │   └─ etag: If-None-Match / replay on 304, 412
//!                                   └───── metrics: requests, durations, in flight
//! ```

mod client;
mod decode;
mod endpoint;
mod error;
mod etag;
mod metrics;
mod plain;
pub mod redact;
mod tls;

pub use client::{
    parse_retry_after, HookClient, HookResponse, UrlResolver, BODY_EXCERPT_BYTES,
    MAX_RESPONSE_BYTES,
};
pub use endpoint::{
    EtagConfig, HookAuth, HookEndpoint, HookOwner, TlsConfig, UnmarshalMode, DEFAULT_TIMEOUT,
};
pub use error::{error_chain, HookError, Result};
pub use etag::{ObjectKey, MAX_ENTRIES_PER_SCOPE};
pub use metrics::DEFAULT_BUCKETS;
pub use reqwest::Url;
