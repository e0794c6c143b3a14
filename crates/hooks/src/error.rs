//! Why a hook call failed.
//!
//! Every variant names the hook's URL (with any `user:password@` part removed) and never the
//! credentials sent with the call. The engine uses [`HookError::retry_after`] to honour a hook's
//! `429 Too Many Requests`.

use std::time::Duration;

/// Result of this crate's operations.
pub type Result<T, E = HookError> = std::result::Result<T, E>;

/// A failed hook call.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// No complete response arrived before the endpoint's deadline.
    #[error("hook {url}: no response within {after:?}")]
    Timeout {
        /// The hook's URL.
        url: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The hook could not be reached, the TLS handshake failed, or the connection broke.
    #[error("hook {url}: request failed: {source}")]
    Connect {
        /// The hook's URL.
        url: String,
        /// The transport error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The hook answered with a status that is not a success.
    #[error("hook {url}: unsupported status code {code}: {body_excerpt}")]
    Status {
        /// The hook's URL.
        url: String,
        /// The HTTP status code.
        code: u16,
        /// The start of the response body, lossily decoded as UTF-8.
        body_excerpt: String,
        /// For 429: how long the hook asked to wait (`Retry-After`, seconds or HTTP date).
        retry_after: Option<Duration>,
    },
    /// The response body is not valid JSON for the expected type, or breaks strict mode.
    #[error("hook {url}: can't decode response: {message}")]
    Decode {
        /// The hook's URL.
        url: String,
        /// What was wrong.
        message: String,
    },
    /// The endpoint's configuration is unusable (bad CA bundle, client certificate, auth).
    #[error("invalid hook configuration: {0}")]
    Config(String),
}

impl HookError {
    /// How long the hook asked the caller to wait before trying again (429 only).
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status code, when the hook answered with one.
    pub fn status_code(&self) -> Option<u16> {
        match self {
            Self::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// True for errors a later retry may cure (all but configuration errors).
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::Config(_))
    }
}

/// The URL as it may appear in logs and errors: without userinfo.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{}://{}", &url[..scheme_end], &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// At most `max` bytes of `body`, cut on a character boundary, lossily decoded.
pub(crate) fn excerpt(body: &[u8], max: usize) -> String {
    if body.len() <= max {
        return String::from_utf8_lossy(body).into_owned();
    }
    let mut cut = &body[..max];
    // Drop a partial UTF-8 sequence at the end (at most 3 bytes).
    for _ in 0..3 {
        if std::str::from_utf8(cut).is_ok() {
            break;
        }
        cut = &cut[..cut.len() - 1];
    }
    format!("{}…", String::from_utf8_lossy(cut))
}

/// The error and its causes on one line (`outer: inner: ...`, a cause whose text is already
/// there left out).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_userinfo_only() {
        assert_eq!(redact_url("http://u:p@h:80/a@b"), "http://h:80/a@b");
        assert_eq!(redact_url("https://h/x?y=@z"), "https://h/x?y=@z");
        assert_eq!(redact_url("http://h"), "http://h");
        assert_eq!(redact_url("not a url"), "not a url");
    }

    #[test]
    fn excerpt_cuts_on_char_boundary() {
        assert_eq!(excerpt(b"short", 512), "short");
        let s = "é".repeat(10); // 2 bytes each
        assert_eq!(excerpt(s.as_bytes(), 5), format!("{}…", "é".repeat(2)));
        assert_eq!(excerpt(&[b'a'; 600], 512).len(), 512 + '…'.len_utf8());
    }

    #[test]
    fn retry_after_only_on_status() {
        let e = HookError::Status {
            url: "u".into(),
            code: 429,
            body_excerpt: String::new(),
            retry_after: Some(Duration::from_secs(3)),
        };
        assert_eq!(e.retry_after(), Some(Duration::from_secs(3)));
        assert_eq!(e.status_code(), Some(429));
        let t = HookError::Timeout {
            url: "u".into(),
            after: Duration::from_secs(1),
        };
        assert_eq!(t.retry_after(), None);
        assert!(t.is_transient() && !HookError::Config("x".into()).is_transient());
    }
}
