//! Turning a controller's hook spec into a callable [`HookEndpoint`].
//!
//! `url` wins over `service`; a service becomes
//! `<protocol>://<name>.<namespace>:<port><path>` (protocol `http` and port 80 unless given,
//! port 443 for `https`). The timeout is the spec's Go duration, 10s by default.

use metacontroller_api::{Hook, ResponseUnmarshallMode};
use metacontroller_hooks::{EtagConfig, HookEndpoint, HookOwner, TlsConfig, UnmarshalMode};
use std::time::Duration;

/// Why a hook spec cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// The hook has no `webhook` block.
    #[error("{0} hook has no webhook")]
    NoWebhook(&'static str),
    /// Neither `url` nor `service` is set.
    #[error("{0} hook: webhook needs either url or service")]
    NoTarget(&'static str),
    /// The URL is not an absolute http(s) URL.
    #[error("{hook} hook: invalid webhook url {url:?}")]
    BadUrl {
        /// Which hook.
        hook: &'static str,
        /// The offending URL.
        url: String,
    },
    /// The service reference is incomplete or has an unknown protocol.
    #[error("{hook} hook: invalid service reference: {reason}")]
    BadService {
        /// Which hook.
        hook: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A setting that needs reading Secrets or ConfigMaps is not supported.
    #[error("{hook} hook: {setting} is not supported")]
    Unsupported {
        /// Which hook.
        hook: &'static str,
        /// The setting.
        setting: &'static str,
    },
}

fn valid_url(url: &str) -> bool {
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https") && !rest.is_empty() && !rest.starts_with('/')
}

/// The URL a hook spec points at.
pub fn hook_url(hook_name: &'static str, hook: &Hook) -> Result<String, WebhookError> {
    let webhook = hook
        .webhook
        .as_ref()
        .ok_or(WebhookError::NoWebhook(hook_name))?;
    if let Some(url) = webhook.url.as_deref().filter(|u| !u.is_empty()) {
        if !valid_url(url) {
            return Err(WebhookError::BadUrl {
                hook: hook_name,
                url: url.to_string(),
            });
        }
        return Ok(url.to_string());
    }
    let service = webhook
        .service
        .as_ref()
        .ok_or(WebhookError::NoTarget(hook_name))?;
    let bad = |reason: &str| WebhookError::BadService {
        hook: hook_name,
        reason: reason.to_string(),
    };
    if service.name.is_empty() || service.namespace.is_empty() {
        return Err(bad("name and namespace are required"));
    }
    let protocol = service.protocol.as_deref().unwrap_or("http");
    let default_port = match protocol {
        "http" => 80,
        "https" => 443,
        other => return Err(bad(&format!("unknown protocol {other:?}"))),
    };
    let port = service.port.unwrap_or(default_port);
    if !(1..=65535).contains(&port) {
        return Err(bad(&format!("port {port} out of range")));
    }
    let path = webhook.path.as_deref().unwrap_or("");
    let slash = if path.is_empty() || path.starts_with('/') {
        ""
    } else {
        "/"
    };
    Ok(format!(
        "{protocol}://{}.{}:{port}{slash}{path}",
        service.name, service.namespace
    ))
}

/// Resolves a hook spec into an endpoint owned by `owner`.
pub fn resolve_endpoint(
    hook_name: &'static str,
    hook: &Hook,
    owner: HookOwner,
) -> Result<HookEndpoint, WebhookError> {
    let url = hook_url(hook_name, hook)?;
    let webhook = hook
        .webhook
        .as_ref()
        .ok_or(WebhookError::NoWebhook(hook_name))?;
    let mut endpoint = HookEndpoint::new(url)
        .with_timeout(webhook.timeout_or_default())
        .with_owner(owner)
        .with_unmarshal_mode(match webhook.response_unmarshall_mode(hook.version()) {
            ResponseUnmarshallMode::Loose => UnmarshalMode::Loose,
            ResponseUnmarshallMode::Strict => UnmarshalMode::Strict,
        });
    if let Some(etag) = &webhook.etag {
        let secs = |s: Option<i32>| {
            s.filter(|s| *s > 0)
                .map(|s| Duration::from_secs(u64::from(s.unsigned_abs())))
        };
        endpoint = endpoint.with_etag(EtagConfig {
            enabled: etag.enabled.unwrap_or(false),
            cache_timeout: secs(etag.cache_timeout_seconds),
            cache_cleanup: secs(etag.cache_cleanup_seconds),
        });
    }
    if let Some(ca) = &webhook.ca_bundle {
        if ca.secret_ref.is_some() || ca.config_map_ref.is_some() {
            return Err(WebhookError::Unsupported {
                hook: hook_name,
                setting: "caBundle from a Secret or ConfigMap",
            });
        }
        if let Some(inline) = &ca.inline {
            endpoint = endpoint.with_tls(TlsConfig {
                ca_bundle_pem: Some(inline.clone().into_bytes()),
                ..TlsConfig::default()
            });
        }
    }
    if webhook.client_tls.is_some() {
        return Err(WebhookError::Unsupported {
            hook: hook_name,
            setting: "clientTLS",
        });
    }
    if webhook.authorization.is_some() || webhook.basic_auth.is_some() {
        return Err(WebhookError::Unsupported {
            hook: hook_name,
            setting: "authorization and basicAuth",
        });
    }
    Ok(endpoint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hook(v: serde_json::Value) -> Hook {
        serde_json::from_value(v).expect("hook")
    }

    #[test]
    fn url_wins_over_service() {
        let h = hook(json!({"webhook":{"url":"http://127.0.0.1:9/sync",
            "service":{"name":"s","namespace":"n"}}}));
        assert_eq!(
            hook_url("sync", &h).as_deref(),
            Ok("http://127.0.0.1:9/sync")
        );
    }

    #[test]
    fn service_urls() {
        let h = hook(json!({"webhook":{"service":{"name":"s","namespace":"n"},"path":"/sync"}}));
        assert_eq!(hook_url("sync", &h).as_deref(), Ok("http://s.n:80/sync"));
        let h = hook(json!({"webhook":{"service":{"name":"s","namespace":"n","port":8080}}}));
        assert_eq!(hook_url("sync", &h).as_deref(), Ok("http://s.n:8080"));
        let h = hook(
            json!({"webhook":{"service":{"name":"s","namespace":"n","protocol":"https"},"path":"x"}}),
        );
        assert_eq!(hook_url("sync", &h).as_deref(), Ok("https://s.n:443/x"));
        let h = hook(json!({"webhook":{"service":{"name":"s","namespace":"n","protocol":"ftp"}}}));
        assert!(matches!(
            hook_url("sync", &h),
            Err(WebhookError::BadService { .. })
        ));
        let h = hook(json!({"webhook":{"service":{"name":"","namespace":"n"}}}));
        assert!(matches!(
            hook_url("sync", &h),
            Err(WebhookError::BadService { .. })
        ));
        let h = hook(json!({"webhook":{"service":{"name":"s","namespace":"n","port":70000}}}));
        assert!(matches!(
            hook_url("sync", &h),
            Err(WebhookError::BadService { .. })
        ));
    }

    #[test]
    fn bad_or_missing_targets() {
        assert_eq!(
            hook_url("sync", &hook(json!({}))),
            Err(WebhookError::NoWebhook("sync"))
        );
        assert_eq!(
            hook_url("sync", &hook(json!({"webhook":{}}))),
            Err(WebhookError::NoTarget("sync"))
        );
        for bad in ["not a url", "ftp://x/y", "http://", "http:///path"] {
            let h = hook(json!({"webhook":{"url": bad}}));
            assert!(
                matches!(hook_url("sync", &h), Err(WebhookError::BadUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn endpoint_settings() {
        let h = hook(json!({"webhook":{"url":"http://h/s","timeout":"2.5s",
            "responseUnMarshallMode":"strict","etag":{"enabled":true,"cacheTimeoutSeconds":60}}}));
        let e = resolve_endpoint("sync", &h, HookOwner::new("CompositeController", "c"))
            .expect("endpoint");
        assert_eq!(e.url, "http://h/s");
        assert_eq!(e.timeout, Duration::from_millis(2500));
        assert_eq!(e.unmarshal_mode, UnmarshalMode::Strict);
        let etag = e.etag.expect("etag");
        assert!(etag.enabled);
        assert_eq!(etag.cache_timeout, Some(Duration::from_secs(60)));
        let d = resolve_endpoint(
            "sync",
            &hook(json!({"webhook":{"url":"http://h/s"}})),
            HookOwner::default(),
        )
        .expect("endpoint");
        assert_eq!(d.timeout, Duration::from_secs(10));
        assert_eq!(d.unmarshal_mode, UnmarshalMode::Loose);
    }

    #[test]
    fn secret_backed_settings_are_reported() {
        let h = hook(json!({"webhook":{"url":"http://h/s",
            "authorization":{"secretRef":{"name":"s","namespace":"n","key":"k"}}}}));
        assert!(matches!(
            resolve_endpoint("sync", &h, HookOwner::default()),
            Err(WebhookError::Unsupported { .. })
        ));
    }
}
