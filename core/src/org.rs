//! The org resource as the API shows it, and its storage quota: the usage
//! D1 keeps beside the org (exact, maintained by triggers in the same
//! transaction as every write and delete) and how full it is.

use crate::ids::OrgId;
use crate::timefmt::rfc3339;
use serde::{Deserialize, Serialize};

/// Stored interactions an org may hold when the operator set no quota of its own.
/// Also in `migrations/data/0001_data.sql` (the trigger that enforces it).
pub const DEFAULT_QUOTA_ROWS: u64 = 1_000_000;
/// Stored bytes (see [`OrgUsage`]) an org may hold when the operator set no
/// quota of its own: 1 GiB. Also in `migrations/data/0001_data.sql`.
pub const DEFAULT_QUOTA_BYTES: u64 = 1 << 30;
/// Usage at or above this percentage of either quota raises `quota_80`.
pub const WARNING_PERCENT: u64 = 80;

/// `GET /v1/org` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgView {
    pub id: OrgId,
    pub name: String,
    pub allowed_origins: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub usage: OrgUsage,
}

impl OrgView {
    /// Builds the view from stored columns (times in Unix ms).
    pub fn from_row(
        id: OrgId,
        name: String,
        allowed_origins_json: &str,
        created_at: i64,
        updated_at: i64,
        usage: OrgUsage,
    ) -> Self {
        Self {
            id,
            name,
            allowed_origins: serde_json::from_str(allowed_origins_json).unwrap_or_default(),
            created_at: rfc3339(created_at),
            updated_at: rfc3339(updated_at),
            usage,
        }
    }
}

/// An org's stored volume and its quota. `rows` counts stored interactions;
/// `bytes` is the UTF-8 length of every text column stored for them (id,
/// type, actor, session, content, metadata as JSON text, idempotency key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrgUsage {
    pub rows: u64,
    pub bytes: u64,
    pub quota_rows: u64,
    pub quota_bytes: u64,
}

/// How full an org's storage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum QuotaLevel {
    /// Below [`WARNING_PERCENT`] of both quotas.
    Normal,
    /// At or above [`WARNING_PERCENT`] of a quota.
    Warning,
    /// A quota is used up: the next write that stores anything is refused.
    Reached,
}

impl OrgUsage {
    /// Usage from stored columns; a missing (NULL) or negative quota is the default.
    pub fn from_stored(rows: f64, bytes: f64, quota_rows: Option<f64>, quota_bytes: Option<f64>) -> Self {
        let count = |v: f64| if v.is_finite() && v > 0.0 { v as u64 } else { 0 };
        let quota = |q: Option<f64>, default: u64| q.filter(|q| q.is_finite() && *q >= 0.0).map_or(default, count);
        Self {
            rows: count(rows),
            bytes: count(bytes),
            quota_rows: quota(quota_rows, DEFAULT_QUOTA_ROWS),
            quota_bytes: quota(quota_bytes, DEFAULT_QUOTA_BYTES),
        }
    }

    /// The fuller of the two quotas decides.
    pub fn level(&self) -> QuotaLevel {
        fn one(used: u64, quota: u64) -> QuotaLevel {
            if used >= quota {
                QuotaLevel::Reached
            } else if u128::from(used) * 100 >= u128::from(quota) * u128::from(WARNING_PERCENT) {
                QuotaLevel::Warning
            } else {
                QuotaLevel::Normal
            }
        }
        one(self.rows, self.quota_rows).max(one(self.bytes, self.quota_bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        // claim: owasp.api4
        #[test]
        fn reached_exactly_when_a_quota_is_used_up(rows in any::<u64>(), bytes in any::<u64>(), qr in any::<u64>(), qb in any::<u64>()) {
            let level = usage(rows, bytes, qr, qb).level();
            prop_assert_eq!(level == QuotaLevel::Reached, rows >= qr || bytes >= qb);
            if level == QuotaLevel::Normal {
                prop_assert!(u128::from(rows) * 100 < u128::from(qr) * 80 && u128::from(bytes) * 100 < u128::from(qb) * 80);
            }
        }

        #[test]
        fn more_usage_is_never_less_full(rows in 0u64..1_000, extra in 0u64..1_000, qr in 0u64..2_000) {
            prop_assert!(usage(rows, 0, qr, u64::MAX).level() <= usage(rows + extra, 0, qr, u64::MAX).level());
        }
    }

    fn usage(rows: u64, bytes: u64, quota_rows: u64, quota_bytes: u64) -> OrgUsage {
        OrgUsage { rows, bytes, quota_rows, quota_bytes }
    }

    #[test]
    fn levels_follow_the_fuller_quota() {
        assert_eq!(usage(7, 0, 10, 100).level(), QuotaLevel::Normal);
        assert_eq!(usage(8, 0, 10, 100).level(), QuotaLevel::Warning);
        assert_eq!(usage(0, 80, 10, 100).level(), QuotaLevel::Warning);
        assert_eq!(usage(10, 0, 10, 100).level(), QuotaLevel::Reached);
        assert_eq!(usage(1, 100, 10, 100).level(), QuotaLevel::Reached);
        assert_eq!(usage(0, 0, 0, 100).level(), QuotaLevel::Reached);
        assert_eq!(usage(u64::MAX - 1, 0, u64::MAX, u64::MAX).level(), QuotaLevel::Warning);
    }

    #[test]
    fn null_quota_is_the_default() {
        let u = OrgUsage::from_stored(3.0, 40.0, None, Some(500.0));
        assert_eq!(u, usage(3, 40, DEFAULT_QUOTA_ROWS, 500));
        let odd = OrgUsage::from_stored(-1.0, f64::NAN, Some(-5.0), Some(f64::INFINITY));
        assert_eq!(odd, usage(0, 0, DEFAULT_QUOTA_ROWS, DEFAULT_QUOTA_BYTES));
    }

    #[test]
    fn defaults_match_the_enforcing_trigger() {
        let sql = include_str!("../../migrations/data/0001_data.sql");
        let guard = format!(
            "used_rows > COALESCE(quota_rows, {DEFAULT_QUOTA_ROWS}) OR used_bytes > COALESCE(quota_bytes, {DEFAULT_QUOTA_BYTES})"
        );
        assert!(sql.contains(&guard), "the trigger must enforce {guard}");
    }

    #[test]
    fn view_shows_usage() {
        let id = OrgId::generate(1, &[1; 10]);
        let v = OrgView::from_row(id, "A".into(), "[]", 0, 0, usage(1, 2, 3, 4));
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["usage"], serde_json::json!({"rows": 1, "bytes": 2, "quota_rows": 3, "quota_bytes": 4}));
    }
}
