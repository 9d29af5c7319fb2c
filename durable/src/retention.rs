//! Retention: deleting expired rows in bounded chunks (stub; see issue 6).

use interlog_core::{ApiError, OrgId};
use worker::{D1Database, Env};

/// Retention settings read from the environment (production defaults).
#[derive(Debug, Clone)]
pub struct RetentionConfig {
    /// How long until the next run when the previous one finished its work.
    pub interval_ms: i64,
    /// How long until the next run when the previous one stopped at its bound.
    pub busy_interval_ms: i64,
}

impl RetentionConfig {
    /// Reads the configuration from vars, falling back to the defaults.
    pub fn from_env(_env: &Env) -> Self {
        Self { interval_ms: 3_600_000, busy_interval_ms: 1_000 }
    }
}

/// What one run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Rows deleted, per table.
    pub deleted: Vec<(&'static str, u64)>,
    /// True when the run stopped at its bound with expired rows left.
    pub more: bool,
}

/// Deletes one bounded chunk of `org`'s expired rows of every table.
pub async fn run_org(
    _db: &D1Database,
    _org: &OrgId,
    _now_ms: i64,
    _cfg: &RetentionConfig,
) -> Result<RunReport, ApiError> {
    Ok(RunReport::default())
}

/// Deletes one bounded chunk of expired rows that belong to no org.
pub async fn run_orgless(_db: &D1Database, _now_ms: i64, _cfg: &RetentionConfig) -> Result<RunReport, ApiError> {
    Ok(RunReport::default())
}
