//! HTTP clients for the server under test: keep-alive HTTP/1.1 over rustls, trusting the
//! server's CA, with its bearer token on every request.

use std::time::Duration;

use anyhow::Context;
use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

/// Where the server is and how to reach it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `https://host:port`, without a trailing slash.
    pub base: String,
    pub token: Option<String>,
    pub ca_pem: Option<String>,
    pub insecure: bool,
}

/// A single request may take this long before it counts as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl Target {
    /// A new client with its own connection pool; used by one task, it keeps one connection.
    pub fn client(&self) -> anyhow::Result<reqwest::Client> {
        let mut headers = HeaderMap::new();
        if let Some(token) = &self.token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .context("token is not a valid header value")?;
            headers.insert(AUTHORIZATION, value);
        }
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .http1_only()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .default_headers(headers);
        if let Some(pem) = &self.ca_pem {
            let cert = reqwest::Certificate::from_pem(pem.as_bytes())
                .context("parsing the CA certificate")?;
            builder = builder
                .tls_built_in_root_certs(false)
                .add_root_certificate(cert);
        }
        if self.insecure {
            builder = builder.danger_accept_invalid_certs(true);
        }
        builder.build().context("building an HTTP client")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}
