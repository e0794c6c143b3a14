//! Go duration strings (`10s`, `1m30s`, `500ms`, `1.5h`), the format of a webhook's `timeout`.
//!
//! Upstream stores the timeout as a Kubernetes `metav1.Duration`, which accepts exactly what
//! Go's `time.ParseDuration` accepts. [`parse_go_duration`] implements that grammar;
//! [`format_go_duration`] renders a duration the way Go prints one. [`GoDuration`] is the
//! field type: it validates on deserialization and keeps the user's spelling on the way out.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid Go duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string was empty (or only a sign).
    #[error("invalid duration {0:?}: empty")]
    Empty(String),
    /// A number was expected but something else was found.
    #[error("invalid duration {0:?}: expected a number")]
    ExpectedNumber(String),
    /// A number was not followed by a unit.
    #[error("invalid duration {0:?}: missing unit (one of ns, us, µs, ms, s, m, h)")]
    MissingUnit(String),
    /// The unit is not one Go knows.
    #[error("invalid duration {input:?}: unknown unit {unit:?}")]
    UnknownUnit {
        /// The whole input.
        input: String,
        /// The unit as written.
        unit: String,
    },
    /// The duration is longer than Go's limit of about 292 years.
    #[error("invalid duration {0:?}: out of range")]
    Overflow(String),
    /// The duration is negative, which no Metacontroller field accepts.
    #[error("invalid duration {0:?}: negative")]
    Negative(String),
}

/// Largest duration Go can represent: `i64::MAX` nanoseconds.
const MAX_NANOS: u128 = i64::MAX as u128;

const NANOS_PER_UNIT: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("\u{b5}s", 1_000),  // micro sign
    ("\u{3bc}s", 1_000), // Greek small letter mu
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60 * 1_000_000_000),
    ("h", 3_600 * 1_000_000_000),
];

/// Parses a Go duration string such as `10s`, `1m30s`, `500ms`, `1.5h`, `2us` or `0`.
///
/// The grammar is Go's `time.ParseDuration`: an optional sign, then one or more
/// `<decimal><unit>` pairs, where the decimal may have a fraction (`1.5`, `.5`, `1.`);
/// the bare string `0` needs no unit. Fractions are truncated to whole nanoseconds, as in
/// Go. Negative durations (other than zero) are rejected because [`Duration`] is unsigned.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let err_input = || input.to_string();
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(DurationError::Empty(err_input()));
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        // Integer part.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, after_int) = rest.split_at(int_len);
        // Optional fraction.
        let (frac_digits, after_num) = match after_int.strip_prefix('.') {
            Some(after_dot) => {
                let frac_len = after_dot.bytes().take_while(u8::is_ascii_digit).count();
                after_dot.split_at(frac_len)
            }
            None => ("", after_int),
        };
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(DurationError::ExpectedNumber(err_input()));
        }
        // Unit: everything up to the next digit or dot.
        let unit_len = after_num
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after_num.len(), |(i, _)| i);
        let (unit, after_unit) = after_num.split_at(unit_len);
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(err_input()));
        }
        let scale = NANOS_PER_UNIT
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, nanos)| *nanos)
            .ok_or_else(|| DurationError::UnknownUnit {
                input: err_input(),
                unit: unit.to_string(),
            })?;

        let mut int_value: u128 = 0;
        for d in int_digits.bytes() {
            int_value = int_value * 10 + u128::from(d - b'0');
            if int_value > MAX_NANOS {
                return Err(DurationError::Overflow(err_input()));
            }
        }
        let mut nanos = int_value
            .checked_mul(scale)
            .filter(|n| *n <= MAX_NANOS)
            .ok_or_else(|| DurationError::Overflow(err_input()))?;
        // Fraction: keep at most 30 digits, far more precision than a nanosecond needs.
        let mut frac_value: u128 = 0;
        let mut frac_scale: u128 = 1;
        for d in frac_digits.bytes().take(30) {
            frac_value = frac_value * 10 + u128::from(d - b'0');
            frac_scale *= 10;
        }
        nanos += frac_value * scale / frac_scale;
        total += nanos;
        if total > MAX_NANOS {
            return Err(DurationError::Overflow(err_input()));
        }
        rest = after_unit;
    }
    if negative && total != 0 {
        return Err(DurationError::Negative(err_input()));
    }
    let secs =
        u64::try_from(total / 1_000_000_000).map_err(|_| DurationError::Overflow(err_input()))?;
    // The remainder is below one billion, so it fits in a u32.
    let sub =
        u32::try_from(total % 1_000_000_000).map_err(|_| DurationError::Overflow(err_input()))?;
    Ok(Duration::new(secs, sub))
}

/// Renders a duration the way Go's `Duration.String` does: `1h0m0s`, `1m30s`, `1.5s`,
/// `500ms`, `2µs`, `0s`. The output always parses back to the same value (for durations
/// within Go's range).
pub fn format_go_duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    if nanos < 1_000_000_000 {
        let (unit_nanos, unit) = if nanos < 1_000 {
            (1, "ns")
        } else if nanos < 1_000_000 {
            (1_000, "\u{b5}s")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{unit}", decimal(nanos, unit_nanos));
    }
    let hours = nanos / 3_600_000_000_000;
    let minutes = (nanos / 60_000_000_000) % 60;
    let seconds = decimal(nanos % 60_000_000_000, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{seconds}s")
    } else if minutes > 0 {
        format!("{minutes}m{seconds}s")
    } else {
        format!("{seconds}s")
    }
}

/// `err` reported against the whole `input` rather than the part that was parsed.
fn with_input(err: DurationError, input: &str) -> DurationError {
    let input = input.to_string();
    match err {
        DurationError::Empty(_) => DurationError::Empty(input),
        DurationError::ExpectedNumber(_) => DurationError::ExpectedNumber(input),
        DurationError::MissingUnit(_) => DurationError::MissingUnit(input),
        DurationError::UnknownUnit { unit, .. } => DurationError::UnknownUnit { input, unit },
        DurationError::Overflow(_) => DurationError::Overflow(input),
        DurationError::Negative(_) => DurationError::Negative(input),
    }
}

/// `value / unit` as a decimal without trailing zeros in the fraction.
fn decimal(value: u128, unit: u128) -> String {
    let int = value / unit;
    let frac = value % unit;
    if frac == 0 {
        return int.to_string();
    }
    let width = unit.ilog10() as usize;
    let digits = format!("{frac:0width$}");
    format!("{int}.{}", digits.trim_end_matches('0'))
}

/// A validated Go duration that remembers how it was written.
///
/// Deserializing rejects malformed strings; serializing writes the original text back, so a
/// manifest round-trips unchanged. Negative durations are valid Go and therefore accepted
/// here (a manifest holding one must still load); [`GoDuration::is_negative`] tells them
/// apart and [`GoDuration::duration`] gives their magnitude.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GoDuration {
    text: String,
    duration: Duration,
    negative: bool,
}

impl GoDuration {
    /// The parsed value (the magnitude, for a negative duration).
    pub fn duration(&self) -> Duration {
        self.duration
    }

    /// Whether the duration is below zero.
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The duration when it is positive; `None` for zero or negative durations.
    pub fn positive(&self) -> Option<Duration> {
        (!self.negative && !self.duration.is_zero()).then_some(self.duration)
    }

    /// The text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl From<Duration> for GoDuration {
    fn from(duration: Duration) -> Self {
        GoDuration {
            text: format_go_duration(duration),
            duration,
            negative: false,
        }
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (negative, magnitude) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if negative && magnitude.starts_with(['-', '+']) {
            return Err(DurationError::ExpectedNumber(text.to_string()));
        }
        let duration = parse_go_duration(magnitude).map_err(|e| with_input(e, text))?;
        Ok(GoDuration {
            negative: negative && !duration.is_zero(),
            duration,
            text: text.to_string(),
        })
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for GoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl JsonSchema for GoDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "GoDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({ "type": "string", "format": "duration" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_go_duration(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"))
    }

    #[test]
    fn parses_common_forms() {
        assert_eq!(ok("10s"), Duration::from_secs(10));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1.5s"), Duration::from_millis(1500));
        assert_eq!(ok("2us"), Duration::from_micros(2));
        assert_eq!(ok("2µs"), Duration::from_micros(2));
        assert_eq!(ok("2μs"), Duration::from_micros(2));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("+0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("1h2m3s4ms5us6ns"), Duration::new(3723, 4_005_006));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("0.000000001s"), Duration::from_nanos(1));
        // Sub-nanosecond fractions truncate.
        assert_eq!(ok("1.9ns"), Duration::from_nanos(1));
        // Units may repeat, as in Go.
        assert_eq!(ok("1s1s"), Duration::from_secs(2));
    }

    #[test]
    fn rejects_malformed_input() {
        assert!(matches!(
            parse_go_duration(""),
            Err(DurationError::Empty(_))
        ));
        assert!(matches!(
            parse_go_duration("-"),
            Err(DurationError::Empty(_))
        ));
        assert!(matches!(
            parse_go_duration("10"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_go_duration("1s5"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_go_duration("s"),
            Err(DurationError::ExpectedNumber(_))
        ));
        assert!(matches!(
            parse_go_duration(".s"),
            Err(DurationError::ExpectedNumber(_))
        ));
        assert!(matches!(
            parse_go_duration("1 s"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("3d"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("1S"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration("-1s"),
            Err(DurationError::Negative(_))
        ));
        assert!(matches!(
            parse_go_duration("3000000h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_go_duration("99999999999999999999999999s"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn accepts_the_go_maximum_and_not_one_more() {
        assert_eq!(
            ok("9223372036854775807ns"),
            Duration::from_nanos(i64::MAX as u64)
        );
        assert!(matches!(
            parse_go_duration("9223372036854775808ns"),
            Err(DurationError::Overflow(_))
        ));
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_duration(Duration::from_nanos(7)), "7ns");
        assert_eq!(format_go_duration(Duration::from_micros(2)), "2µs");
        assert_eq!(format_go_duration(Duration::from_nanos(1_500)), "1.5µs");
        assert_eq!(format_go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(
            format_go_duration(Duration::new(3723, 4_000_000)),
            "1h2m3.004s"
        );
    }

    #[test]
    fn format_then_parse_is_identity() {
        for nanos in [
            1u64,
            999,
            1_000,
            1_001,
            999_999_999,
            1_000_000_000,
            61_000_000_001,
        ] {
            let d = Duration::from_nanos(nanos);
            assert_eq!(ok(&format_go_duration(d)), d, "{nanos}ns");
        }
    }

    #[test]
    fn go_duration_keeps_its_spelling() {
        let d: GoDuration = serde_json::from_str("\"90s\"").expect("valid");
        assert_eq!(d.duration(), Duration::from_secs(90));
        assert_eq!(serde_json::to_string(&d).expect("serializes"), "\"90s\"");
        assert!(serde_json::from_str::<GoDuration>("\"ten seconds\"").is_err());
        assert_eq!(GoDuration::from(Duration::from_secs(90)).as_str(), "1m30s");
        assert_eq!(d.positive(), Some(Duration::from_secs(90)));
    }

    #[test]
    fn go_duration_accepts_negative_values_as_go_does() {
        let neg: GoDuration = "-5s".parse().expect("valid Go");
        assert!(neg.is_negative());
        assert_eq!(neg.duration(), Duration::from_secs(5));
        assert_eq!(neg.positive(), None);
        assert_eq!(neg.to_string(), "-5s");
        let zero: GoDuration = "-0s".parse().expect("valid Go");
        assert!(!zero.is_negative());
        assert_eq!(zero.positive(), None);
        assert_eq!(
            "--5s".parse::<GoDuration>(),
            Err(DurationError::ExpectedNumber("--5s".into()))
        );
        assert_eq!(
            "-".parse::<GoDuration>(),
            Err(DurationError::Empty("-".into()))
        );
    }
}
