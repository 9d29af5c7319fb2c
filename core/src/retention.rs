//! Retention rules: how long each table keeps a row, as pure functions of a
//! `now_ms` the caller passes in.
//!
//! | table | column | kept for | default |
//! |---|---|---|---|
//! | `interactions` | `received_at` | calendar months | 24 months |
//! | `rate_limits` | `updated_at` | milliseconds | 2 hours |
//! | `audit_log` | `at` | days of 24 h | 90 days |
//! | `alerts` | `last_seen` | days of 24 h | 90 days |
//!
//! **Which column.** An interaction's age is counted from `received_at`, the
//! time the data has lived with us, not from the client-supplied
//! `occurred_at` (a client may legitimately send old events; they are kept
//! for the full period after we received them, and a client cannot make us
//! keep or drop data early by lying about `occurred_at`). A `rate_limits` row
//! ages from its last write. An alert ages from `last_seen`: an alert that
//! keeps firing stays however old its `first_seen` is; an alert not seen for
//! the period is deleted whether it is open or closed.
//!
//! **Cutoffs.** [`RetentionPeriods::cutoffs`] gives, per table, the instant
//! before which (strictly) rows are expired: a row is deleted iff its column
//! is `< cutoff`; a row exactly at the cutoff is kept. Every cutoff is
//! non-decreasing in `now_ms` (a row never comes back into its window) and
//! never later than `now_ms - 1 ms` for any configured period.
//!
//! **Calendar months** (UTC, via `time`). A row with timestamp `t` is kept
//! until the same day of the month and time of day `N` months later; when
//! that month has no such day (the 29th–31st), it is kept until the end of
//! that month's last day. It is expired once `now` is later than that
//! ([`keep_until_months`]). So, with 1 month: a row of 2026-01-31T10:00Z is
//! kept through 2026-02-28T23:59:59.999Z; on 2026-03-31 everything received
//! on or before 2026-02-28 is expired (cutoff 2026-03-01T00:00Z). With 24
//! months: a row of the leap day 2028-02-29 is kept through the end of
//! 2030-02-28, and on 2028-02-29 every row of 2026-02-28 or earlier is expired.
//! This reading never deletes a row before `N` whole months have passed by
//! any of the usual conventions (clamping 31 Jan + 1 month to 28 Feb, or
//! overflowing it into March would both end the period earlier or at the
//! same time). [`months_before`] is the cutoff; the unit tests check that
//! `t < months_before(now, N)` exactly when `now > keep_until_months(t, N)`.
//!
//! **Days** are 86 400 000 ms (UTC has no daylight saving; Unix time has no
//! leap seconds), so "90 days" is the same length in every season.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Milliseconds in an hour.
pub const MS_PER_HOUR: i64 = 3_600_000;
/// Milliseconds in a day (UTC).
pub const MS_PER_DAY: i64 = 86_400_000;

/// The `[vars]` names of the periods, with their bounds (see [`RetentionPeriods::from_vars`]).
pub const VAR_INTERACTIONS_MONTHS: &str = "RETENTION_INTERACTIONS_MONTHS";
pub const VAR_RATE_LIMITS_HOURS: &str = "RETENTION_RATE_LIMITS_HOURS";
pub const VAR_AUDIT_DAYS: &str = "RETENTION_AUDIT_DAYS";
pub const VAR_ALERTS_DAYS: &str = "RETENTION_ALERTS_DAYS";

/// How long each table keeps its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPeriods {
    /// `interactions`, by `received_at`, in calendar months.
    pub interactions_months: u32,
    /// `rate_limits`, by `updated_at`, in milliseconds.
    pub rate_limits_ms: i64,
    /// `audit_log`, by `at`, in days.
    pub audit_days: u32,
    /// `alerts`, by `last_seen`, in days.
    pub alerts_days: u32,
}

impl Default for RetentionPeriods {
    /// The posture: interactions 24 months, rate limits 2 hours, audit log
    /// and alerts 90 days.
    fn default() -> Self {
        Self { interactions_months: 24, rate_limits_ms: 2 * MS_PER_HOUR, audit_days: 90, alerts_days: 90 }
    }
}

/// Per table, the instant (Unix ms) before which rows are expired: a row is
/// deleted iff its age column is strictly less than the cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// Against `interactions.received_at`.
    pub interactions: i64,
    /// Against `rate_limits.updated_at`.
    pub rate_limits: i64,
    /// Against `audit_log.at`.
    pub audit_log: i64,
    /// Against `alerts.last_seen`.
    pub alerts: i64,
}

impl RetentionPeriods {
    /// The cutoffs at `now_ms`.
    pub fn cutoffs(&self, now_ms: i64) -> Cutoffs {
        Cutoffs {
            interactions: months_before(now_ms, self.interactions_months),
            rate_limits: now_ms.saturating_sub(self.rate_limits_ms),
            audit_log: now_ms.saturating_sub(i64::from(self.audit_days).saturating_mul(MS_PER_DAY)),
            alerts: now_ms.saturating_sub(i64::from(self.alerts_days).saturating_mul(MS_PER_DAY)),
        }
    }

    /// Reads the periods from configuration (`lookup` returns a var's text,
    /// `None` when unset). An unset var takes the default; a var that is not
    /// a whole number in its range (months 1–1200, rate-limit hours 1–8760,
    /// days 1–36500) also takes the default, and is reported in the returned
    /// warnings so the caller can log it. Rate limits keep at least an hour so
    /// that no limiter window is ever cut short.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let d = Self::default();
        let mut warnings = Vec::new();
        let mut get = |name: &str, default: i64, min: i64, max: i64| {
            let (v, w) = bounded_setting(name, lookup(name).as_deref(), default, min, max);
            warnings.extend(w);
            v
        };
        let interactions_months = get(VAR_INTERACTIONS_MONTHS, i64::from(d.interactions_months), 1, 1200);
        let rate_limit_hours = get(VAR_RATE_LIMITS_HOURS, d.rate_limits_ms / MS_PER_HOUR, 1, 8760);
        let audit_days = get(VAR_AUDIT_DAYS, i64::from(d.audit_days), 1, 36_500);
        let alerts_days = get(VAR_ALERTS_DAYS, i64::from(d.alerts_days), 1, 36_500);
        let periods = Self {
            interactions_months: u32::try_from(interactions_months).unwrap_or(d.interactions_months),
            rate_limits_ms: rate_limit_hours * MS_PER_HOUR,
            audit_days: u32::try_from(audit_days).unwrap_or(d.audit_days),
            alerts_days: u32::try_from(alerts_days).unwrap_or(d.alerts_days),
        };
        (periods, warnings)
    }
}

/// Parses one whole-number setting. Unset → `default`; not a whole number or
/// outside `min..=max` → `default` plus a warning naming the var.
pub fn bounded_setting(name: &str, raw: Option<&str>, default: i64, min: i64, max: i64) -> (i64, Option<String>) {
    let Some(raw) = raw.map(str::trim) else {
        return (default, None);
    };
    match raw.parse::<i64>() {
        Ok(v) if (min..=max).contains(&v) => (v, None),
        _ => (default, Some(format!("{name}={raw:?} is not a whole number in {min}..={max}; using {default}"))),
    }
}

/// The `[vars]` names of the run settings (see [`RetentionConfig::from_vars`]).
pub const VAR_INTERVAL_MS: &str = "RETENTION_INTERVAL_MS";
pub const VAR_BUSY_INTERVAL_MS: &str = "RETENTION_BUSY_INTERVAL_MS";
pub const VAR_BATCH_ROWS: &str = "RETENTION_BATCH_ROWS";
pub const VAR_MAX_ROWS_PER_RUN: &str = "RETENTION_MAX_ROWS_PER_RUN";

/// Longest interval between retention runs (a week).
const MAX_INTERVAL_MS: i64 = 7 * MS_PER_DAY;

/// How retention runs: how often, in what chunks, and the periods it enforces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// How long until the next run when the previous one finished its work.
    pub interval_ms: i64,
    /// How long until the next run when the previous one stopped at its bound.
    pub busy_interval_ms: i64,
    /// Rows deleted by one statement at most.
    pub batch_rows: u32,
    /// Rows deleted by one run (all tables together) at most.
    pub max_rows_per_run: u32,
    /// How long each table keeps its rows.
    pub periods: RetentionPeriods,
}

impl Default for RetentionConfig {
    /// Production: hourly, 1 s between runs while work remains, 500 rows a
    /// statement, 5 000 rows a run, the posture's periods.
    fn default() -> Self {
        Self {
            interval_ms: MS_PER_HOUR,
            busy_interval_ms: 1_000,
            batch_rows: 500,
            max_rows_per_run: 5_000,
            periods: RetentionPeriods::default(),
        }
    }
}

impl RetentionConfig {
    /// Reads the configuration through `lookup` (a var's text, `None` when
    /// unset). The periods are read by [`RetentionPeriods::from_vars`]; the
    /// intervals must be 100 ms to a week, a statement 1–10 000 rows and a
    /// run 1–1 000 000 rows. An unset or invalid var keeps its default; each
    /// invalid one is reported in the returned warnings for the caller to log.
    pub fn from_vars(lookup: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let d = Self::default();
        let (periods, mut warnings) = RetentionPeriods::from_vars(&lookup);
        let mut get = |name: &str, default: i64, min: i64, max: i64| {
            let (v, w) = bounded_setting(name, lookup(name).as_deref(), default, min, max);
            warnings.extend(w);
            v
        };
        let interval_ms = get(VAR_INTERVAL_MS, d.interval_ms, 100, MAX_INTERVAL_MS);
        let busy_interval_ms = get(VAR_BUSY_INTERVAL_MS, d.busy_interval_ms, 100, MAX_INTERVAL_MS);
        let batch_rows = get(VAR_BATCH_ROWS, i64::from(d.batch_rows), 1, 10_000);
        let max_rows_per_run = get(VAR_MAX_ROWS_PER_RUN, i64::from(d.max_rows_per_run), 1, 1_000_000);
        let config = Self {
            interval_ms,
            busy_interval_ms,
            batch_rows: u32::try_from(batch_rows).unwrap_or(d.batch_rows),
            max_rows_per_run: u32::try_from(max_rows_per_run).unwrap_or(d.max_rows_per_run),
            periods,
        };
        (config, warnings)
    }
}

fn to_datetime(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

fn to_ms(dt: OffsetDateTime) -> Option<i64> {
    i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The year and month `delta` months after (`delta` < 0: before) `date`'s.
fn shift_month(date: Date, delta: i64) -> Option<(i32, Month)> {
    let index = i64::from(date.year()) * 12 + i64::from(u8::from(date.month())) - 1 + delta;
    let year = i32::try_from(index.div_euclid(12)).ok()?;
    let month = Month::try_from(u8::try_from(index.rem_euclid(12) + 1).ok()?).ok()?;
    Some((year, month))
}

/// The first instant of the month after `year`-`month` (the end of its last day).
fn end_of_month(year: i32, month: Month) -> Option<OffsetDateTime> {
    let last = Date::from_calendar_date(year, month, month.length(year)).ok()?;
    Some(PrimitiveDateTime::new(last.next_day()?, Time::MIDNIGHT).assume_utc())
}

/// The cutoff for a period of `months` calendar months at `now_ms`: `now`
/// moved back `months` months keeping day and time of day (UTC); when the
/// target month lacks that day, the end of the target month (so 2026-03-31
/// minus 1 month is the end of 2026-02-28, and 2028-02-29 minus 24 months is
/// the end of 2026-02-28). Outside the calendar's range it returns
/// `i64::MIN`, which expires nothing.
pub fn months_before(now_ms: i64, months: u32) -> i64 {
    (|| {
        let now = to_datetime(now_ms)?;
        let (year, month) = shift_month(now.date(), -i64::from(months))?;
        let cutoff = if now.day() <= month.length(year) {
            now.replace_date(Date::from_calendar_date(year, month, now.day()).ok()?)
        } else {
            end_of_month(year, month)?
        };
        to_ms(cutoff)
    })()
    .unwrap_or(i64::MIN)
}

/// The last instant (Unix ms, inclusive) at which a row stamped `t_ms` is
/// still inside a period of `months` calendar months: the same day and time
/// `months` later, or the last millisecond of that month when it lacks the
/// day. Outside the calendar's range it returns `i64::MAX` (kept).
pub fn keep_until_months(t_ms: i64, months: u32) -> i64 {
    (|| {
        let t = to_datetime(t_ms)?;
        let (year, month) = shift_month(t.date(), i64::from(months))?;
        if t.day() <= month.length(year) {
            to_ms(t.replace_date(Date::from_calendar_date(year, month, t.day()).ok()?))
        } else {
            Some(to_ms(end_of_month(year, month)?)? - 1)
        }
    })()
    .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timefmt::{parse_rfc3339, rfc3339};
    use proptest::prelude::*;

    fn at(s: &str) -> i64 {
        parse_rfc3339(s).unwrap_or_else(|| panic!("bad test time {s}"))
    }

    fn expired(cutoff: i64, t: i64) -> bool {
        t < cutoff
    }

    // claim: posture.retention
    #[test]
    fn defaults_are_the_posture() {
        let p = RetentionPeriods::default();
        assert_eq!(p.interactions_months, 24);
        assert_eq!(p.rate_limits_ms, 7_200_000);
        assert_eq!(p.audit_days, 90);
        assert_eq!(p.alerts_days, 90);
    }

    // claim: posture.retention
    #[test]
    fn interactions_24_months_edges() {
        let now = at("2026-11-15T10:30:00Z");
        let c = RetentionPeriods::default().cutoffs(now);
        assert_eq!(rfc3339(c.interactions), "2024-11-15T10:30:00.000Z");
        assert!(!expired(c.interactions, at("2024-11-15T10:30:00Z")), "exactly 24 months old is kept");
        assert!(!expired(c.interactions, at("2024-11-15T10:30:00.001Z")), "just inside");
        assert!(expired(c.interactions, at("2024-11-15T10:29:59.999Z")), "just outside");
        assert!(!expired(c.interactions, at("2024-11-16T10:30:00Z")));
        assert!(expired(c.interactions, at("2024-11-14T10:30:00Z")));
    }

    #[test]
    fn month_end_moves_to_end_of_shorter_month() {
        // 2026-03-31 minus 1 month: February 2026 has no 31st → end of 2026-02-28.
        assert_eq!(rfc3339(months_before(at("2026-03-31T12:00:00Z"), 1)), "2026-03-01T00:00:00.000Z");
        assert_eq!(rfc3339(months_before(at("2026-03-29T00:00:00Z"), 1)), "2026-03-01T00:00:00.000Z");
        assert_eq!(rfc3339(months_before(at("2026-03-28T23:59:59.999Z"), 1)), "2026-02-28T23:59:59.999Z");
        // 2026-05-31 minus 1 month: April has 30 days.
        assert_eq!(rfc3339(months_before(at("2026-05-31T08:00:00Z"), 1)), "2026-05-01T00:00:00.000Z");
        // A month start jumps forward (never back).
        assert_eq!(rfc3339(months_before(at("2026-03-01T00:00:00Z"), 1)), "2026-02-01T00:00:00.000Z");
        // Month ends where the day exists are plain.
        assert_eq!(rfc3339(months_before(at("2026-12-31T23:59:59.999Z"), 24)), "2024-12-31T23:59:59.999Z");
        // Crossing a year boundary.
        assert_eq!(rfc3339(months_before(at("2026-01-15T00:00:00Z"), 1)), "2025-12-15T00:00:00.000Z");
        assert_eq!(rfc3339(months_before(at("2026-02-10T00:00:00Z"), 14)), "2024-12-10T00:00:00.000Z");
    }

    #[test]
    fn month_end_rows_kept_through_end_of_target_month() {
        let t = at("2026-01-31T10:00:00Z");
        assert_eq!(rfc3339(keep_until_months(t, 1)), "2026-02-28T23:59:59.999Z");
        assert!(!expired(months_before(at("2026-02-28T23:59:59.999Z"), 1), t), "still inside on Feb 28");
        assert!(expired(months_before(at("2026-03-01T00:00:00Z"), 1), t), "outside once February ends");
        // On 2026-03-31, all of 2026-02-28 is outside a 1-month period, 2026-03-01 inside.
        let c = months_before(at("2026-03-31T12:00:00Z"), 1);
        assert!(expired(c, at("2026-02-28T23:59:59.999Z")));
        assert!(!expired(c, at("2026-03-01T00:00:00Z")));
    }

    // claim: posture.measured-retention
    #[test]
    fn leap_years() {
        // Leap day minus 24 months: 2026 has no Feb 29 → everything of 2026-02-28 and before expires.
        let c = months_before(at("2028-02-29T12:00:00Z"), 24);
        assert_eq!(rfc3339(c), "2026-03-01T00:00:00.000Z");
        assert!(expired(c, at("2026-02-28T23:59:59.999Z")));
        assert!(!expired(c, at("2026-03-01T00:00:00Z")));
        // Leap day minus 48 months lands on a leap day.
        assert_eq!(rfc3339(months_before(at("2028-02-29T12:00:00Z"), 48)), "2024-02-29T12:00:00.000Z");
        // A row of a leap day is kept through the end of February two years on.
        let leap = at("2028-02-29T06:00:00Z");
        assert_eq!(rfc3339(keep_until_months(leap, 24)), "2030-02-28T23:59:59.999Z");
        assert!(!expired(months_before(at("2030-02-28T23:59:59.999Z"), 24), leap));
        assert!(expired(months_before(at("2030-03-01T00:00:00Z"), 24), leap));
        // 2026-02-28 minus 24 months: 2024-02-28 (the leap day 2024-02-29 stays inside until March).
        let c = months_before(at("2026-02-28T12:00:00Z"), 24);
        assert_eq!(rfc3339(c), "2024-02-28T12:00:00.000Z");
        assert!(!expired(c, at("2024-02-29T00:00:00Z")));
        assert!(expired(months_before(at("2026-03-01T00:00:00Z"), 24), at("2024-02-29T23:59:59.999Z")));
        // 90 days across a leap February are 90 × 24 h.
        let c = RetentionPeriods::default().cutoffs(at("2028-03-31T00:00:00Z"));
        assert_eq!(rfc3339(c.audit_log), "2028-01-01T00:00:00.000Z");
        let c = RetentionPeriods::default().cutoffs(at("2027-03-31T00:00:00Z"));
        assert_eq!(rfc3339(c.audit_log), "2026-12-31T00:00:00.000Z");
    }

    // claim: posture.retention
    #[test]
    fn rate_limits_two_hours_edges() {
        let now = at("2026-11-15T10:30:00Z");
        let c = RetentionPeriods::default().cutoffs(now);
        assert_eq!(rfc3339(c.rate_limits), "2026-11-15T08:30:00.000Z");
        assert!(!expired(c.rate_limits, now - 2 * MS_PER_HOUR), "exactly 2 h old is kept");
        assert!(!expired(c.rate_limits, now - 2 * MS_PER_HOUR + 1));
        assert!(expired(c.rate_limits, now - 2 * MS_PER_HOUR - 1));
        assert!(!expired(c.rate_limits, now));
    }

    // claim: posture.retention
    #[test]
    fn audit_and_alerts_ninety_days_edges() {
        let now = at("2026-11-15T10:30:00Z");
        let c = RetentionPeriods::default().cutoffs(now);
        assert_eq!(rfc3339(c.audit_log), "2026-08-17T10:30:00.000Z");
        assert_eq!(c.alerts, c.audit_log);
        for cutoff in [c.audit_log, c.alerts] {
            assert!(!expired(cutoff, now - 90 * MS_PER_DAY));
            assert!(!expired(cutoff, now - 90 * MS_PER_DAY + 1));
            assert!(expired(cutoff, now - 90 * MS_PER_DAY - 1));
            assert!(!expired(cutoff, now - 89 * MS_PER_DAY));
        }
        let custom = RetentionPeriods { audit_days: 30, alerts_days: 7, ..Default::default() }.cutoffs(now);
        assert_eq!(custom.audit_log, now - 30 * MS_PER_DAY);
        assert_eq!(custom.alerts, now - 7 * MS_PER_DAY);
    }

    #[test]
    fn out_of_range_expires_nothing() {
        assert_eq!(months_before(i64::MIN, 24), i64::MIN);
        assert_eq!(months_before(i64::MAX, 24), i64::MIN);
        assert_eq!(keep_until_months(i64::MAX, 24), i64::MAX);
        let c = RetentionPeriods::default().cutoffs(i64::MIN);
        assert_eq!(c.audit_log, i64::MIN);
        assert_eq!(c.rate_limits, i64::MIN);
        // The epoch and times before it are ordinary.
        assert_eq!(rfc3339(months_before(0, 1)), "1969-12-01T00:00:00.000Z");
    }

    #[test]
    fn vars_parse_with_defaults_and_bounds() {
        let vars = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| (*v).to_string())
        };
        let (p, w) = RetentionPeriods::from_vars(vars(&[]));
        assert_eq!((p, w.len()), (RetentionPeriods::default(), 0));
        let (p, w) = RetentionPeriods::from_vars(vars(&[
            (VAR_INTERACTIONS_MONTHS, "12"),
            (VAR_RATE_LIMITS_HOURS, " 3 "),
            (VAR_AUDIT_DAYS, "30"),
            (VAR_ALERTS_DAYS, "7"),
        ]));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(
            p,
            RetentionPeriods {
                interactions_months: 12,
                rate_limits_ms: 3 * MS_PER_HOUR,
                audit_days: 30,
                alerts_days: 7
            }
        );
        // Zero, negative, fractional or garbage never shortens a period: the default holds, with a warning.
        let (p, w) = RetentionPeriods::from_vars(vars(&[
            (VAR_INTERACTIONS_MONTHS, "0"),
            (VAR_RATE_LIMITS_HOURS, "-1"),
            (VAR_AUDIT_DAYS, "1.5"),
            (VAR_ALERTS_DAYS, "ninety"),
        ]));
        assert_eq!(p, RetentionPeriods::default());
        assert_eq!(w.len(), 4);
        assert!(w[0].contains(VAR_INTERACTIONS_MONTHS), "{w:?}");
        assert_eq!(
            bounded_setting("X", Some("5000"), 1, 1, 10),
            (1, Some("X=\"5000\" is not a whole number in 1..=10; using 1".into()))
        );
    }

    #[test]
    fn run_config_defaults_overrides_and_bounds() {
        let (c, w) = RetentionConfig::from_vars(|_| None);
        assert_eq!((&c, w.len()), (&RetentionConfig::default(), 0));
        assert_eq!(
            (c.interval_ms, c.busy_interval_ms, c.batch_rows, c.max_rows_per_run),
            (3_600_000, 1_000, 500, 5_000)
        );
        let (c, w) = RetentionConfig::from_vars(|n| match n {
            VAR_INTERVAL_MS => Some("2000".into()),
            VAR_BUSY_INTERVAL_MS => Some("300".into()),
            VAR_BATCH_ROWS => Some("400".into()),
            VAR_MAX_ROWS_PER_RUN => Some("4000".into()),
            VAR_AUDIT_DAYS => Some("30".into()),
            _ => None,
        });
        assert!(w.is_empty(), "{w:?}");
        assert_eq!((c.interval_ms, c.busy_interval_ms, c.batch_rows, c.max_rows_per_run), (2_000, 300, 400, 4_000));
        assert_eq!(c.periods.audit_days, 30);
        let (c, w) = RetentionConfig::from_vars(|n| match n {
            VAR_INTERVAL_MS => Some("99".into()),
            VAR_BUSY_INTERVAL_MS => Some("604800001".into()),
            VAR_BATCH_ROWS => Some("0".into()),
            VAR_MAX_ROWS_PER_RUN => Some("many".into()),
            VAR_ALERTS_DAYS => Some("0".into()),
            _ => None,
        });
        assert_eq!(c, RetentionConfig::default());
        assert_eq!(w.len(), 5, "{w:?}");
    }

    /// Times from 1990 to 2110, so month ends and leap days are well covered.
    fn any_ms() -> impl Strategy<Value = i64> {
        631_152_000_000i64..4_417_977_600_000i64
    }

    /// Times within a few days of a month's end (where the rule matters).
    fn near_month_end() -> impl Strategy<Value = i64> {
        (1990i32..2100, 1u8..=12, 0i64..5 * MS_PER_DAY).prop_map(|(y, m, back)| {
            let month = Month::try_from(m).expect("month");
            end_of_month(y, month).and_then(to_ms).expect("in range") - back
        })
    }

    proptest! {
        #[test]
        fn cutoff_matches_keep_until(now in near_month_end(), back_days in 0i64..1200, jitter in -MS_PER_DAY..MS_PER_DAY, months in prop::sample::select(vec![1u32, 2, 12, 24, 25, 48])) {
            let t = now - back_days * MS_PER_DAY + jitter;
            prop_assert_eq!(t < months_before(now, months), now > keep_until_months(t, months));
        }

        // claim: posture.measured-retention
        #[test]
        fn cutoff_matches_keep_until_anywhere(now in any_ms(), t in any_ms(), months in 1u32..60) {
            prop_assert_eq!(t < months_before(now, months), now > keep_until_months(t, months));
        }

        // claim: posture.retention
        #[test]
        fn cutoffs_never_move_back_and_stay_in_the_past(a in near_month_end(), d in 0i64..3 * MS_PER_DAY, months in 1u32..60) {
            let b = a + d;
            prop_assert!(months_before(a, months) <= months_before(b, months));
            prop_assert!(months_before(a, months) < a);
            let p = RetentionPeriods { interactions_months: months, ..Default::default() };
            let (ca, cb) = (p.cutoffs(a), p.cutoffs(b));
            prop_assert!(ca.interactions <= cb.interactions && ca.rate_limits <= cb.rate_limits);
            prop_assert!(ca.audit_log <= cb.audit_log && ca.alerts <= cb.alerts);
        }

        #[test]
        fn at_least_n_times_28_days(now in any_ms(), months in 1u32..60) {
            // Whatever the month lengths, N months keep at least N × 28 days.
            prop_assert!(now - months_before(now, months) >= i64::from(months) * 28 * MS_PER_DAY);
        }
    }
}
