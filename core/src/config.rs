//! The deployment's configuration as one checked value: [`Config::from_source`]
//! reads every var, collects every problem and fails once, listing them all.
//! Binding names (D1, Durable Objects, rate limiter, secrets) are here too, so
//! nothing else spells them.
//!
//! **Fatal** (no [`Config`] is built): a missing or invalid `PEPPER_VERSION`,
//! an invalid `PEPPER_PREVIOUS_VERSION` or one equal to `PEPPER_VERSION`, and
//! any invalid entry of `CORS_PREFLIGHT_ORIGINS`. Getting these wrong would
//! lock out keys or open CORS to something unintended, so they stop the deploy.
//!
//! **Defaulted with a warning** ([`Config::warnings`], for the adapter to log):
//! retention settings and L2 tuning (`L2_LIMIT`, `L2_PERIOD_MS`) outside their
//! bounds or unreadable, and unrecognised `L2_MODE` or `TEST_FAULTS` values.
//! Each falls back to the production default, which is always the safe one.

use crate::origin::Origin;
use crate::ratelimit::{self, RateLimiter};
use crate::retention::{bounded_setting, RetentionConfig, MS_PER_HOUR};
use crate::webhook::DeliveryConfig;
use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hash};

/// Where vars come from: the Worker's environment, or a map in tests.
pub trait ConfigSource {
    /// The text of var `name`, `None` when unset.
    fn var(&self, name: &str) -> Option<String>;
}

impl<S: BuildHasher> ConfigSource for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl ConfigSource for [(&str, &str)] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_string())
    }
}

impl<const N: usize> ConfigSource for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.as_slice().var(name)
    }
}

impl<F: Fn(&str) -> Option<String>> ConfigSource for F {
    fn var(&self, name: &str) -> Option<String> {
        self(name)
    }
}

/// Names of the Worker's bindings.
pub mod binding {
    /// The D1 database.
    pub const DB: &str = "DB";
    /// The per-org Durable Object namespace.
    pub const ORG_ACTOR: &str = "ORG_ACTOR";
    /// The Janitor Durable Object namespace.
    pub const JANITOR: &str = "JANITOR";
    /// The L1 (per client address) rate limiter.
    pub const L1_LIMITER: &str = "L1_LIMITER";
    /// The second L1 tier: per IPv6 /48 (IPv4 clients have the first only).
    pub const L1_48_LIMITER: &str = "L1_48_LIMITER";
    /// The current pepper (secrets store).
    pub const PEPPER: &str = "PEPPER";
    /// The previous pepper during a rotation (secrets store).
    pub const PEPPER_PREVIOUS: &str = "PEPPER_PREVIOUS";
}

/// Names of the vars [`Config`] reads (the retention ones are in [`crate::retention`]).
pub mod var {
    /// Version of the pepper in the `PEPPER` secret.
    pub const PEPPER_VERSION: &str = "PEPPER_VERSION";
    /// Version of the pepper in `PEPPER_PREVIOUS` (0 or unset: no rotation).
    pub const PEPPER_PREVIOUS_VERSION: &str = "PEPPER_PREVIOUS_VERSION";
    /// Comma-separated origins whose CORS preflights are answered.
    pub const CORS_PREFLIGHT_ORIGINS: &str = "CORS_PREFLIGHT_ORIGINS";
    /// `enabled` lets tests inject D1 faults (never set in production).
    pub const TEST_FAULTS: &str = "TEST_FAULTS";
    /// L2 requests per key per period.
    pub const L2_LIMIT: &str = "L2_LIMIT";
    /// The L2 period in milliseconds.
    pub const L2_PERIOD_MS: &str = "L2_PERIOD_MS";
    /// `memory` (default) or `d1` (bench only).
    pub const L2_MODE: &str = "L2_MODE";
}

/// Largest accepted `L2_LIMIT`.
pub const MAX_L2_LIMIT: i64 = 1_000_000;
/// Shortest accepted `L2_PERIOD_MS`.
pub const MIN_L2_PERIOD_MS: i64 = 1_000;
/// Longest accepted `L2_PERIOD_MS`: an hour, the shortest retention of
/// `rate_limits`, so a checkpoint is never deleted inside its window.
pub const MAX_L2_PERIOD_MS: i64 = MS_PER_HOUR;

/// How L2 is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum L2Mode {
    /// In the actor's memory, checkpointed to D1 (production).
    #[default]
    Memory,
    /// A D1 query per request (bench only, to compare the two designs).
    D1,
}

/// The checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Version of the current pepper (≥ 1).
    pub pepper_version: u32,
    /// Version of the previous pepper while a rotation is in progress.
    pub pepper_previous_version: Option<u32>,
    /// Origins whose preflights are answered.
    pub cors_preflight: Vec<Origin>,
    /// Whether tests may inject D1 faults.
    pub test_faults: bool,
    /// L2 requests per key per period.
    pub l2_limit: u32,
    /// The L2 period.
    pub l2_period_ms: i64,
    /// How L2 is counted.
    pub l2_mode: L2Mode,
    /// Retention runs and periods.
    pub retention: RetentionConfig,
    /// Erasure jobs: chunk size, rows per alarm run, re-run interval.
    pub erasure: crate::erasure::ErasureConfig,
    /// Webhook delivery (retries, loopback in tests) and alert auto-resolution.
    pub delivery: DeliveryConfig,
    /// Settings that were invalid and took their default, for the log.
    pub warnings: Vec<String>,
}

/// One fatal problem: which var, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The var's name.
    pub var: &'static str,
    /// What is wrong with it (follows the name in messages).
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.var, self.message)
    }
}

/// Every fatal problem of a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    /// In the order the vars are read.
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        write!(f, "invalid configuration: {}", all.join("; "))
    }
}

impl std::error::Error for ConfigErrors {}

impl ConfigErrors {
    /// Whether some problem is about `var`.
    pub fn concerns(&self, var: &str) -> bool {
        self.problems.iter().any(|p| p.var == var)
    }
}

/// Problems found so far.
#[derive(Default)]
struct Findings {
    problems: Vec<ConfigProblem>,
    warnings: Vec<String>,
}

impl Findings {
    fn fatal(&mut self, var: &'static str, message: String) {
        self.problems.push(ConfigProblem { var, message });
    }

    fn check<T>(&mut self, var: &'static str, parsed: Result<T, String>) -> Option<T> {
        parsed.map_err(|m| self.fatal(var, m)).ok()
    }

    fn warn(&mut self, warning: Option<String>) {
        self.warnings.extend(warning);
    }
}

impl Config {
    /// Reads and checks every var of `src` (see the module docs for which
    /// problems are fatal and which take a default).
    pub fn from_source(src: &(impl ConfigSource + ?Sized)) -> Result<Config, ConfigErrors> {
        let mut found = Findings::default();
        let current = found.check(var::PEPPER_VERSION, pepper_version(src.var(var::PEPPER_VERSION).as_deref()));
        let previous = previous_version(src.var(var::PEPPER_PREVIOUS_VERSION).as_deref(), current);
        let previous = found.check(var::PEPPER_PREVIOUS_VERSION, previous);
        let cors = origins(src.var(var::CORS_PREFLIGHT_ORIGINS).as_deref()).unwrap_or_else(|bad| {
            bad.into_iter().for_each(|m| found.fatal(var::CORS_PREFLIGHT_ORIGINS, m));
            Vec::new()
        });
        let (test_faults, w) = test_faults(src.var(var::TEST_FAULTS).as_deref());
        found.warn(w);
        let (l2_mode, w) = l2_mode(src.var(var::L2_MODE).as_deref());
        found.warn(w);
        let (l2_limit, l2_period_ms) = l2_tuning(src, &mut found);
        let (retention, w) = RetentionConfig::from_vars(|name| src.var(name));
        found.warnings.extend(w);
        let (delivery, w) = DeliveryConfig::from_vars(|name| src.var(name));
        found.warnings.extend(w);
        let (erasure, w) = crate::erasure::ErasureConfig::from_vars(|name| src.var(name));
        found.warnings.extend(w);
        match (current, previous) {
            (Some(pepper_version), Some(pepper_previous_version)) if found.problems.is_empty() => Ok(Config {
                pepper_version,
                pepper_previous_version,
                cors_preflight: cors,
                test_faults,
                l2_limit,
                l2_period_ms,
                l2_mode,
                retention,
                erasure,
                delivery,
                warnings: found.warnings,
            }),
            _ => Err(ConfigErrors { problems: found.problems }),
        }
    }

    /// The L2 limiter as configured.
    pub fn new_limiter<K: Eq + Hash + Clone>(&self) -> RateLimiter<K> {
        RateLimiter::new(self.l2_limit, self.l2_period_ms).unwrap_or_default()
    }
}

/// `PEPPER_VERSION`: required, a whole number ≥ 1.
fn pepper_version(raw: Option<&str>) -> Result<u32, String> {
    let raw = raw.ok_or("is required: the version of the PEPPER secret, a whole number from 1")?;
    raw.trim().parse::<u32>().ok().filter(|v| *v >= 1).ok_or_else(|| format!("={raw:?} is not a whole number from 1"))
}

/// `PEPPER_PREVIOUS_VERSION`: unset, empty or 0 is no rotation; otherwise a
/// whole number other than the current version.
fn previous_version(raw: Option<&str>, current: Option<u32>) -> Result<Option<u32>, String> {
    let Some(text) = raw.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(None);
    };
    match text.parse::<u32>() {
        Ok(0) => Ok(None),
        Ok(v) if Some(v) == current => Err(format!("={v} must differ from PEPPER_VERSION (0 when not rotating)")),
        Ok(v) => Ok(Some(v)),
        Err(_) => Err(format!("={text:?} is not a whole number (0 when not rotating)")),
    }
}

/// `CORS_PREFLIGHT_ORIGINS`: comma-separated canonical origins; empty entries
/// are skipped, every invalid one is reported.
fn origins(raw: Option<&str>) -> Result<Vec<Origin>, Vec<String>> {
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for entry in raw.unwrap_or_default().split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match Origin::parse(entry) {
            Ok(o) => good.push(o),
            Err(why) => bad.push(format!("entry {entry:?}: {why}")),
        }
    }
    if bad.is_empty() {
        Ok(good)
    } else {
        Err(bad)
    }
}

/// `TEST_FAULTS`: exactly `enabled` turns faults on; anything but unset,
/// empty or `disabled` is warned about (and leaves them off).
fn test_faults(raw: Option<&str>) -> (bool, Option<String>) {
    match raw {
        Some("enabled") => (true, None),
        None | Some("" | "disabled") => (false, None),
        Some(other) => {
            (false, Some(format!("TEST_FAULTS={other:?} is neither \"enabled\" nor \"disabled\"; faults stay off")))
        }
    }
}

/// `L2_MODE`: unset or `memory` is [`L2Mode::Memory`], `d1` is [`L2Mode::D1`];
/// anything else is warned about and counts in memory.
fn l2_mode(raw: Option<&str>) -> (L2Mode, Option<String>) {
    match raw {
        None | Some("" | "memory") => (L2Mode::Memory, None),
        Some("d1") => (L2Mode::D1, None),
        Some(other) => {
            (L2Mode::Memory, Some(format!("L2_MODE={other:?} is neither \"memory\" nor \"d1\"; using memory")))
        }
    }
}

/// `L2_LIMIT` (1 to [`MAX_L2_LIMIT`]) and `L2_PERIOD_MS` ([`MIN_L2_PERIOD_MS`]
/// to [`MAX_L2_PERIOD_MS`]); each defaults to the posture's value.
fn l2_tuning(src: &(impl ConfigSource + ?Sized), found: &mut Findings) -> (u32, i64) {
    let default_limit = i64::from(ratelimit::L2_LIMIT);
    let (limit, w) = bounded_setting(var::L2_LIMIT, src.var(var::L2_LIMIT).as_deref(), default_limit, 1, MAX_L2_LIMIT);
    found.warn(w);
    let raw_period = src.var(var::L2_PERIOD_MS);
    let (period, w) = bounded_setting(
        var::L2_PERIOD_MS,
        raw_period.as_deref(),
        ratelimit::L2_PERIOD_MS,
        MIN_L2_PERIOD_MS,
        MAX_L2_PERIOD_MS,
    );
    found.warn(w);
    (u32::try_from(limit).unwrap_or(ratelimit::L2_LIMIT), period)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retention::{RetentionPeriods, VAR_AUDIT_DAYS, VAR_BATCH_ROWS};
    use proptest::prelude::*;

    #[test]
    fn defaults_from_an_empty_source_except_the_pepper_version() {
        let c = Config::from_source(&[(var::PEPPER_VERSION, "1")]).unwrap();
        assert_eq!(
            c,
            Config {
                pepper_version: 1,
                pepper_previous_version: None,
                cors_preflight: Vec::new(),
                test_faults: false,
                l2_limit: 1000,
                l2_period_ms: 60_000,
                l2_mode: L2Mode::Memory,
                retention: RetentionConfig::default(),
                erasure: crate::erasure::ErasureConfig::default(),
                delivery: DeliveryConfig::default(),
                warnings: Vec::new(),
            }
        );
        let limiter: RateLimiter<u8> = c.new_limiter();
        assert_eq!((limiter.limit(), limiter.period_ms()), (1000, 60_000));
    }

    #[test]
    fn the_pepper_version_is_required() {
        let e = Config::from_source(&[]).unwrap_err();
        assert_eq!(e.problems.len(), 1);
        assert!(e.concerns(var::PEPPER_VERSION));
        for bad in ["", "0", "-1", "one", "1.5", "4294967296"] {
            let e = Config::from_source(&[(var::PEPPER_VERSION, bad)]).unwrap_err();
            assert!(e.concerns(var::PEPPER_VERSION), "{bad:?}");
        }
        assert_eq!(Config::from_source(&[(var::PEPPER_VERSION, " 7 ")]).unwrap().pepper_version, 7);
    }

    #[test]
    fn the_previous_pepper_version_is_optional_but_checked() {
        let with =
            |prev: &str| Config::from_source(&[(var::PEPPER_VERSION, "2"), (var::PEPPER_PREVIOUS_VERSION, prev)]);
        assert_eq!(with("0").unwrap().pepper_previous_version, None);
        assert_eq!(with("").unwrap().pepper_previous_version, None);
        assert_eq!(with("1").unwrap().pepper_previous_version, Some(1));
        assert!(with("2").unwrap_err().concerns(var::PEPPER_PREVIOUS_VERSION), "equal to the current one");
        assert!(with("x").unwrap_err().concerns(var::PEPPER_PREVIOUS_VERSION));
    }

    #[test]
    fn every_bad_var_is_reported_at_once() {
        let src: HashMap<String, String> = [
            (var::PEPPER_VERSION, "zero"),
            (var::PEPPER_PREVIOUS_VERSION, "-3"),
            (var::CORS_PREFLIGHT_ORIGINS, "https://ok.example, null,https://Bad.example/ ,"),
            (var::L2_LIMIT, "0"),
            (var::L2_MODE, "redis"),
            (VAR_AUDIT_DAYS, "0"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let e = Config::from_source(&src).unwrap_err();
        let vars: Vec<&str> = e.problems.iter().map(|p| p.var).collect();
        assert_eq!(
            vars,
            vec![
                var::PEPPER_VERSION,
                var::PEPPER_PREVIOUS_VERSION,
                var::CORS_PREFLIGHT_ORIGINS,
                var::CORS_PREFLIGHT_ORIGINS
            ]
        );
        let text = e.to_string();
        assert!(text.starts_with("invalid configuration: PEPPER_VERSION"), "{text}");
        assert!(text.contains("\"null\"") && text.contains("\"https://Bad.example/\""), "{text}");
    }

    #[test]
    fn tuning_problems_are_warnings_with_defaults() {
        let c = Config::from_source(&[
            (var::PEPPER_VERSION, "1"),
            (var::L2_LIMIT, "0"),
            (var::L2_PERIOD_MS, "3600001"),
            (var::L2_MODE, "redis"),
            (var::TEST_FAULTS, "yes"),
            (VAR_AUDIT_DAYS, "0"),
            (VAR_BATCH_ROWS, "lots"),
        ])
        .unwrap();
        assert_eq!((c.l2_limit, c.l2_period_ms, c.l2_mode, c.test_faults), (1000, 60_000, L2Mode::Memory, false));
        assert_eq!(c.retention, RetentionConfig::default());
        assert_eq!(c.warnings.len(), 6, "{:?}", c.warnings);
    }

    #[test]
    fn tuning_bounds() {
        let l2 = |limit: &str, period: &str| {
            let c =
                Config::from_source(&[(var::PEPPER_VERSION, "1"), (var::L2_LIMIT, limit), (var::L2_PERIOD_MS, period)])
                    .unwrap();
            (c.l2_limit, c.l2_period_ms, c.warnings.len())
        };
        assert_eq!(l2("1", "1000"), (1, 1000, 0));
        assert_eq!(l2("1000000", "3600000"), (1_000_000, 3_600_000, 0));
        assert_eq!(l2("1000001", "999"), (1000, 60_000, 2));
        assert_eq!(l2("-5", "0"), (1000, 60_000, 2));
        assert!(MAX_L2_PERIOD_MS <= RetentionPeriods::default().rate_limits_ms);
    }

    #[test]
    fn switches_and_origins() {
        let c = Config::from_source(&[
            (var::PEPPER_VERSION, "1"),
            (var::TEST_FAULTS, "enabled"),
            (var::L2_MODE, "d1"),
            (var::CORS_PREFLIGHT_ORIGINS, " https://a.example ,, http://localhost:3000"),
        ])
        .unwrap();
        assert!(c.test_faults);
        assert_eq!(c.l2_mode, L2Mode::D1);
        let list: Vec<&str> = c.cors_preflight.iter().map(Origin::as_str).collect();
        assert_eq!(list, vec!["https://a.example", "http://localhost:3000"]);
        let closure = |name: &str| (name == var::PEPPER_VERSION).then(|| "3".to_string());
        assert_eq!(Config::from_source(&closure).unwrap().pepper_version, 3);
    }

    proptest! {
        /// Whatever the tuning vars say, a config that builds has them in bounds
        /// and a limiter that builds.
        #[test]
        fn built_configs_are_in_bounds(limit in ".{0,12}", period in ".{0,12}", n in any::<i64>()) {
            for l in [limit.as_str(), &n.to_string()] {
                let src = [(var::PEPPER_VERSION, "1"), (var::L2_LIMIT, l), (var::L2_PERIOD_MS, &period)];
                let c = Config::from_source(&src).unwrap();
                prop_assert!((1..=MAX_L2_LIMIT).contains(&i64::from(c.l2_limit)));
                prop_assert!((MIN_L2_PERIOD_MS..=MAX_L2_PERIOD_MS).contains(&c.l2_period_ms));
                prop_assert!(RateLimiter::<u8>::new(c.l2_limit, c.l2_period_ms).is_ok());
            }
        }
    }
}
