//! Latency summaries and the process's resident memory.

use std::time::Duration;

/// Percentiles of a set of latency samples.
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub samples: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |p: usize| samples[(samples.len() * p / 100).min(samples.len() - 1)];
        Self {
            samples: samples.len(),
            p50: at(50),
            p99: at(99),
            max: samples[samples.len() - 1],
        }
    }

    /// `p50 / p99` in milliseconds, or `n/a` without samples.
    pub fn display(&self) -> String {
        if self.samples == 0 {
            return "n/a".to_string();
        }
        format!("{} / {}", ms(self.p50), ms(self.p99))
    }
}

/// Milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e5).round() / 1e2
}

/// The resident set size (`VmRSS` in `/proc/<pid>/status`) of a process, this one by default,
/// where available.
pub fn rss_bytes(pid: Option<u32>) -> Option<u64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/status"),
        None => "/proc/self/status".to_string(),
    };
    let status = std::fs::read_to_string(path).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// A byte count as MiB with one decimal.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// An integer with thousands separators.
pub fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_hundred_samples() {
        let l = Latency::of((1..=100).rev().map(Duration::from_millis).collect());
        assert_eq!(
            (l.samples, l.p50, l.p99, l.max),
            (
                100,
                Duration::from_millis(51),
                Duration::from_millis(100),
                Duration::from_millis(100)
            )
        );
        assert_eq!(Latency::of(vec![]).display(), "n/a");
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(1234567.4), "1,234,567");
        assert_eq!(thousands(999.0), "999");
    }

    #[test]
    fn reads_rss() {
        if cfg!(target_os = "linux") {
            assert!(rss_bytes(None).is_some_and(|b| b > 0));
            assert!(rss_bytes(Some(std::process::id())).is_some_and(|b| b > 0));
        }
    }
}
