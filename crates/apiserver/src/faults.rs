//! Fault injection: the server misbehaving on purpose, so controllers can be tested against
//! the failures a real cluster produces.
//!
//! ```text
//! request ─► auth ─► faults: added latency, then maybe an injected error (429/5xx, by verb)
//!                    └─► watches: maybe 410 Expired on resume, streams cut every N seconds
//! ```
//!
//! Only resource requests (`/api/...`, `/apis/.../{resource}...`) are affected; discovery,
//! health, metrics and `/debug/faults` itself never are. An injected error happens before the
//! request is handled, so it never changes anything. Decisions come from one random generator
//! that is seeded (`seed`), so a failing sequence of requests can be replayed. Everything off
//! (the default) costs one atomic load per request.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;

/// The verbs a rate can name (kube-apiserver's request verbs), plus `*` for all of them.
pub const VERBS: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];

/// The codes an injected error may carry.
pub const STATUSES: &[u16] = &[429, 500, 502, 503, 504];

/// The codes used when none are configured.
pub const DEFAULT_STATUSES: &[u16] = &[500, 503, 429];

/// What to inject. The JSON form is what `/debug/faults` accepts and returns.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultConfig {
    /// Fraction (0 to 1) of requests answered with an injected error, by verb (`get`, `list`,
    /// `watch`, `create`, `update`, `patch`, `delete`, `deletecollection`; `*` for any verb
    /// not named).
    #[serde(default)]
    pub error_rates: BTreeMap<String, f64>,
    /// The codes of injected errors, picked at random (empty: 500, 503 and 429).
    #[serde(default)]
    pub statuses: Vec<u16>,
    /// Added to every resource request before it is handled, in milliseconds.
    #[serde(default)]
    pub latency_ms: u64,
    /// Every watch stream ends after this many milliseconds (0: only at its own timeout).
    #[serde(default)]
    pub watch_close_every_ms: u64,
    /// Fraction (0 to 1) of watches resuming from a resourceVersion that get a `410 Expired`
    /// ERROR event instead of their events, so the client must relist.
    #[serde(default)]
    pub watch_gone_rate: f64,
    /// Seed of the random decisions (absent: one is picked and shown by `GET /debug/faults`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
}

impl FaultConfig {
    /// Checks rates, verbs and codes; the message names the offending value.
    pub fn validate(&self) -> Result<(), String> {
        let rate = |what: &str, r: f64| {
            if (0.0..=1.0).contains(&r) {
                Ok(())
            } else {
                Err(format!("{what}: rate {r} is not between 0 and 1"))
            }
        };
        for (verb, r) in &self.error_rates {
            if verb != "*" && !VERBS.contains(&verb.as_str()) {
                return Err(format!(
                    "unknown verb {verb:?} (one of {}, or *)",
                    VERBS.join(", ")
                ));
            }
            rate(verb, *r)?;
        }
        rate("watchGoneRate", self.watch_gone_rate)?;
        for code in &self.statuses {
            if !STATUSES.contains(code) {
                return Err(format!(
                    "status {code} cannot be injected (one of {STATUSES:?})"
                ));
            }
        }
        Ok(())
    }

    fn is_active(&self) -> bool {
        self.error_rates.values().any(|r| *r > 0.0)
            || self.latency_ms > 0
            || self.watch_close_every_ms > 0
            || self.watch_gone_rate > 0.0
    }

    fn rate_for(&self, verb: &str) -> f64 {
        self.error_rates
            .get(verb)
            .or_else(|| self.error_rates.get("*"))
            .copied()
            .unwrap_or(0.0)
    }
}

/// Parses `VERB=RATE` (as the `--fault-error-rate` flag takes it).
pub fn parse_verb_rate(s: &str) -> Result<(String, f64), String> {
    let (verb, rate) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected VERB=RATE, e.g. create=0.05"))?;
    let verb = verb.trim().to_ascii_lowercase();
    let rate: f64 = rate
        .trim()
        .parse()
        .map_err(|_| format!("{s:?}: {rate:?} is not a number"))?;
    let mut probe = FaultConfig::default();
    probe.error_rates.insert(verb.clone(), rate);
    probe.validate()?;
    Ok((verb, rate))
}

/// What happens to one request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decision {
    pub latency: Duration,
    /// The error to answer with instead of handling the request.
    pub error: Option<u16>,
}

/// The live fault settings of a server, changeable while it runs.
#[derive(Debug)]
pub struct Faults {
    active: AtomicBool,
    state: Mutex<State>,
    requests: AtomicU64,
}

#[derive(Debug)]
struct State {
    config: FaultConfig,
    seed: u64,
    rng: StdRng,
    /// Injected errors by verb and code.
    errors: BTreeMap<(String, u16), u64>,
    watches_cut: u64,
    watches_gone: u64,
}

impl Default for Faults {
    fn default() -> Self {
        Self::new()
    }
}

impl Faults {
    /// No faults.
    pub fn new() -> Self {
        let seed = rand::rng().random();
        Self {
            active: AtomicBool::new(false),
            state: Mutex::new(State {
                config: FaultConfig::default(),
                seed,
                rng: StdRng::seed_from_u64(seed),
                errors: BTreeMap::new(),
                watches_cut: 0,
                watches_gone: 0,
            }),
            requests: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the settings (and restarts the random sequence from the seed).
    pub fn set(&self, config: FaultConfig) -> Result<(), String> {
        config.validate()?;
        let mut st = self.lock();
        let seed = config.seed.unwrap_or_else(|| rand::rng().random());
        st.seed = seed;
        st.rng = StdRng::seed_from_u64(seed);
        self.active.store(config.is_active(), Ordering::Release);
        st.config = config;
        Ok(())
    }

    pub fn config(&self) -> FaultConfig {
        self.lock().config.clone()
    }

    /// Whether any fault is configured.
    pub fn active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Decides the fate of a resource request with this verb (lower case).
    pub fn decide(&self, verb: &str) -> Decision {
        if !self.active() {
            return Decision::default();
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        let latency = Duration::from_millis(st.config.latency_ms);
        let rate = st.config.rate_for(verb);
        if rate <= 0.0 || !st.rng.random_bool(rate) {
            return Decision {
                latency,
                error: None,
            };
        }
        let codes = if st.config.statuses.is_empty() {
            DEFAULT_STATUSES.to_vec()
        } else {
            st.config.statuses.clone()
        };
        let code = codes[st.rng.random_range(0..codes.len())];
        *st.errors.entry((verb.to_string(), code)).or_default() += 1;
        Decision {
            latency,
            error: Some(code),
        }
    }

    /// How long a watch starting now may run before it is cut, if watches are being cut.
    pub fn watch_close_after(&self) -> Option<Duration> {
        if !self.active() {
            return None;
        }
        let st = self.lock();
        (st.config.watch_close_every_ms > 0)
            .then(|| Duration::from_millis(st.config.watch_close_every_ms))
    }

    /// Records that a watch was cut by `watch_close_every_ms`.
    pub fn watch_cut(&self) {
        self.lock().watches_cut += 1;
    }

    /// Whether a watch resuming from a resourceVersion is answered with 410 Expired.
    pub fn watch_gone(&self) -> bool {
        if !self.active() {
            return false;
        }
        let mut st = self.lock();
        let rate = st.config.watch_gone_rate;
        if rate > 0.0 && st.rng.random_bool(rate) {
            st.watches_gone += 1;
            true
        } else {
            false
        }
    }

    /// The settings, the seed in use and what was injected so far (`GET /debug/faults`).
    pub fn report(&self) -> Value {
        let st = self.lock();
        let mut config = serde_json::to_value(&st.config).unwrap_or_else(|_| json!({}));
        config["seed"] = json!(st.seed);
        let mut errors: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
        let mut total = 0;
        for ((verb, code), n) in &st.errors {
            total += n;
            errors
                .entry(verb.clone())
                .or_default()
                .insert(code.to_string(), *n);
        }
        json!({
            "config": config,
            "injected": {
                "requests": self.requests.load(Ordering::Relaxed),
                "errors": total,
                "errorsByVerb": errors,
                "watchesCut": st.watches_cut,
                "watchesGone": st.watches_gone,
            },
        })
    }
}

/// The error response kube-apiserver would give for this code.
pub fn injected_error(code: u16) -> ApiError {
    match code {
        429 => ApiError::new(
            429,
            "TooManyRequests",
            "Too many requests, please try again later. (injected fault)",
        )
        .with_details(json!({"retryAfterSeconds": 1})),
        502 => ApiError::new(502, "InternalError", "bad gateway (injected fault)"),
        503 => ApiError::new(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request (injected fault)",
        ),
        504 => ApiError::new(
            504,
            "Timeout",
            "the server was unable to return a response in the time allotted (injected fault)",
        ),
        _ => ApiError::internal("Internal error occurred: injected fault"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(rate: f64, seed: u64) -> FaultConfig {
        FaultConfig {
            error_rates: BTreeMap::from([("create".to_string(), rate)]),
            seed: Some(seed),
            ..Default::default()
        }
    }

    #[test]
    fn off_by_default() {
        let f = Faults::new();
        assert!(!f.active());
        assert_eq!(f.decide("create"), Decision::default());
        assert_eq!(f.watch_close_after(), None);
        assert!(!f.watch_gone());
    }

    #[test]
    fn rates_apply_per_verb_and_are_reproducible_from_the_seed() {
        let f = Faults::new();
        f.set(config(0.25, 7)).expect("valid");
        let first: Vec<Option<u16>> = (0..2000).map(|_| f.decide("create").error).collect();
        let hits = first.iter().filter(|e| e.is_some()).count();
        assert!((400..600).contains(&hits), "{hits} of 2000 at rate 0.25");
        assert!(first.iter().flatten().all(|c| DEFAULT_STATUSES.contains(c)));
        assert!((0..500).all(|_| f.decide("get").error.is_none()));
        // The same seed replays the same decisions.
        f.set(config(0.25, 7)).expect("valid");
        let again: Vec<Option<u16>> = (0..2000).map(|_| f.decide("create").error).collect();
        assert_eq!(first, again);
        let report = f.report();
        assert_eq!(report["config"]["seed"], 7);
        assert!(report["injected"]["errors"].as_u64().expect("count") >= hits as u64);
    }

    #[test]
    fn wildcard_and_codes() {
        let f = Faults::new();
        f.set(FaultConfig {
            error_rates: BTreeMap::from([("*".to_string(), 1.0), ("get".to_string(), 0.0)]),
            statuses: vec![504],
            seed: Some(1),
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(f.decide("patch").error, Some(504));
        assert_eq!(f.decide("get").error, None);
        assert_eq!(injected_error(504).reason, "Timeout");
        assert_eq!(injected_error(429).code, 429);
    }

    #[test]
    fn bad_settings_are_refused_with_the_value_named() {
        let f = Faults::new();
        let err = f.set(config(1.5, 1)).expect_err("rate above 1");
        assert!(err.contains("1.5"), "{err}");
        let mut c = config(0.1, 1);
        c.error_rates.insert("frobnicate".into(), 0.1);
        assert!(f.set(c).expect_err("verb").contains("frobnicate"));
        let c = FaultConfig {
            statuses: vec![404],
            ..Default::default()
        };
        assert!(f.set(c).expect_err("code").contains("404"));
        assert!(!f.active());
        assert_eq!(
            parse_verb_rate("PATCH=0.5").expect("valid"),
            ("patch".into(), 0.5)
        );
        assert!(parse_verb_rate("patch").is_err());
        assert!(parse_verb_rate("patch=x").is_err());
    }

    #[test]
    fn watch_faults() {
        let f = Faults::new();
        f.set(FaultConfig {
            watch_close_every_ms: 1500,
            watch_gone_rate: 1.0,
            ..Default::default()
        })
        .expect("valid");
        assert_eq!(f.watch_close_after(), Some(Duration::from_millis(1500)));
        assert!(f.watch_gone());
        assert_eq!(f.report()["injected"]["watchesGone"], 1);
    }

    #[test]
    fn json_form_is_camel_case_and_strict() {
        let c: FaultConfig = serde_json::from_value(json!({
            "errorRates": {"create": 0.05}, "latencyMs": 20, "watchCloseEveryMs": 10000,
            "watchGoneRate": 0.5, "statuses": [500], "seed": 3
        }))
        .expect("parses");
        assert_eq!(c.latency_ms, 20);
        assert!(serde_json::from_value::<FaultConfig>(json!({"errorRate": 1})).is_err());
    }
}
