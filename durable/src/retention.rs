//! Retention: deleting expired rows in bounded chunks. The rules (which column,
//! which cutoff) are `interlog_core::retention`; this is the D1 side, called by
//! the OrgActor's alarm (`run_org`) and the Janitor's (`run_orgless`).
//!
//! One run deletes at most `max_rows_per_run` rows, in statements of at most
//! `batch_rows` rows each, every statement scoped to one org (or to
//! `org_id IS NULL`) and binding at most five parameters (D1 allows 100). A
//! read-only probe first finds the tables with anything expired, so an idle
//! run writes nothing (and holds no write lock). Tables go in a fixed order
//! (rate_limits, audit_log, alerts, interactions): small, short-lived tables
//! first, so the big one cannot starve them. Each statement is atomic and only
//! deletes rows older than the cutoff, so a run that is repeated or stopped
//! half-way is harmless: the next run picks up whatever expired rows are left.

use crate::platform::{all, ms, storage_error};
use interlog_core::retention::{Cutoffs, RetentionConfig};
use interlog_core::timefmt::rfc3339;
use interlog_core::{ApiError, OrgId};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use worker::wasm_bindgen::JsValue;
use worker::D1Database;

/// What one run did.
#[derive(Debug, Clone, Default)]
pub struct RunReport {
    /// Rows deleted, per table.
    pub deleted: Vec<(&'static str, u64)>,
    /// True when the run stopped at its bound with expired rows left.
    pub more: bool,
}

impl RunReport {
    /// Rows deleted by the run, all tables together.
    pub fn total(&self) -> u64 {
        self.deleted.iter().map(|(_, n)| n).sum()
    }

    /// The run's summary as logged and kept in storage:
    /// `{"at", "deleted": {table: rows}, "complete"}`.
    pub fn summary(&self, now_ms: i64) -> Value {
        let deleted: Map<String, Value> = self.deleted.iter().map(|(t, n)| ((*t).to_string(), (*n).into())).collect();
        json!({ "at": rfc3339(now_ms), "deleted": deleted, "complete": !self.more })
    }
}

/// Whose rows a statement may touch.
#[derive(Clone, Copy)]
enum Scope<'a> {
    Org(&'a OrgId),
    NoOrg,
}

/// One table's chunked delete: `table` rows whose `column` is before the
/// cutoff. `key` selects the rows in the subquery (the primary key, or the
/// rowid where the key is not a single column); the outer statement repeats
/// the scope and the age condition (`+` keeps them out of index choice, so the
/// outer delete goes by key).
struct Sweep {
    table: &'static str,
    column: &'static str,
    key: &'static str,
    cutoff: fn(&Cutoffs) -> i64,
}

/// Fixed order: small, short-lived tables first.
const SWEEPS: [Sweep; 4] = [
    Sweep { table: "rate_limits", column: "updated_at", key: "rowid", cutoff: |c| c.rate_limits },
    Sweep { table: "audit_log", column: "at", key: "id", cutoff: |c| c.audit_log },
    Sweep { table: "alerts", column: "last_seen", key: "rowid", cutoff: |c| c.alerts },
    Sweep { table: "interactions", column: "received_at", key: "id", cutoff: |c| c.interactions },
];

impl Sweep {
    /// For an org `?1` is the org and `?2` the cutoff; for org-less rows `?1`
    /// is the cutoff. The limit is our own integer, written into the text.
    fn sql(&self, scope: Scope<'_>, limit: u32) -> String {
        let (table, column, key) = (self.table, self.column, self.key);
        match scope {
            // interactions is WITHOUT ROWID with key (org_id, id): the outer
            // `org_id = ?1` plus `id IN (..)` is a primary-key lookup.
            Scope::Org(_) => format!(
                "DELETE FROM {table} WHERE org_id = ?1 AND {key} IN \
                 (SELECT {key} FROM {table} WHERE org_id = ?1 AND {column} < ?2 LIMIT {limit}) \
                 AND +{column} < ?2"
            ),
            Scope::NoOrg => format!(
                "DELETE FROM {table} WHERE {key} IN \
                 (SELECT {key} FROM {table} WHERE org_id IS NULL AND {column} < ?1 LIMIT {limit}) \
                 AND +org_id IS NULL AND +{column} < ?1"
            ),
        }
    }
}

/// Deletes up to `limit` expired rows of one table; returns how many went.
async fn delete_chunk(
    db: &D1Database,
    sweep: &Sweep,
    scope: Scope<'_>,
    cutoff: i64,
    limit: u32,
) -> Result<u64, ApiError> {
    let binds: Vec<JsValue> = match scope {
        Scope::Org(org) => vec![org.as_str().into(), ms(cutoff)],
        Scope::NoOrg => vec![ms(cutoff)],
    };
    let context = sweep.table;
    // Counted from RETURNING: D1's `changes` also counts what triggers change
    // (the quota triggers update the org's usage for every deleted row).
    let sql = format!("{} RETURNING 1 AS gone", sweep.sql(scope, limit));
    let rows: Vec<serde::de::IgnoredAny> = all(db, sql, &binds, &format!("retention delete {context}")).await?;
    Ok(rows.len() as u64)
}

/// Which of `sweeps` hold at least one expired row of `scope`: one read-only
/// statement (an index seek per table), so that a run with nothing to delete
/// writes nothing. Without an answer every table counts as due.
async fn expired_tables(
    db: &D1Database,
    scope: Scope<'_>,
    sweeps: &[&Sweep],
    cutoffs: &Cutoffs,
) -> Result<Vec<bool>, ApiError> {
    let mut binds: Vec<JsValue> = Vec::with_capacity(sweeps.len() + 1);
    let owner = match scope {
        Scope::Org(org) => {
            binds.push(org.as_str().into());
            "org_id = ?1"
        }
        Scope::NoOrg => "org_id IS NULL",
    };
    let mut columns = Vec::with_capacity(sweeps.len());
    for s in sweeps {
        binds.push(ms((s.cutoff)(cutoffs)));
        let (table, column, n) = (s.table, s.column, binds.len());
        columns.push(format!("EXISTS (SELECT 1 FROM {table} WHERE {owner} AND {column} < ?{n}) AS {table}"));
    }
    let row: Option<HashMap<String, f64>> = db
        .prepare(format!("SELECT {}", columns.join(", ")))
        .bind(&binds)
        .map_err(|e| storage_error("retention probe bind", e))?
        .first(None)
        .await
        .map_err(|e| storage_error("retention probe", e))?;
    Ok(sweeps.iter().map(|s| row.as_ref().is_none_or(|r| r.get(s.table).is_none_or(|v| *v != 0.0))).collect())
}

/// One bounded run over `sweeps` for `scope`.
async fn run(
    db: &D1Database,
    scope: Scope<'_>,
    sweeps: &[&Sweep],
    now_ms: i64,
    cfg: &RetentionConfig,
) -> Result<RunReport, ApiError> {
    let cutoffs = cfg.periods.cutoffs(now_ms);
    let batch = cfg.batch_rows.max(1);
    let mut budget = cfg.max_rows_per_run.max(1);
    let mut report = RunReport { deleted: sweeps.iter().map(|s| (s.table, 0)).collect(), more: false };
    let due = expired_tables(db, scope, sweeps, &cutoffs).await?;
    'tables: for (i, sweep) in sweeps.iter().enumerate() {
        if !due[i] {
            continue;
        }
        let cutoff = (sweep.cutoff)(&cutoffs);
        loop {
            if budget == 0 {
                report.more = true;
                break 'tables;
            }
            let limit = batch.min(budget);
            let n = delete_chunk(db, sweep, scope, cutoff, limit).await?;
            report.deleted[i].1 += n;
            // The database answers for what it deleted; never trust it past the limit.
            budget = budget.saturating_sub(u32::try_from(n).unwrap_or(u32::MAX).min(limit));
            if n < u64::from(limit) {
                continue 'tables;
            }
        }
    }
    Ok(report)
}

/// Deletes one bounded chunk of `org`'s expired rows of every table.
pub async fn run_org(db: &D1Database, org: &OrgId, now_ms: i64, cfg: &RetentionConfig) -> Result<RunReport, ApiError> {
    let sweeps: Vec<&Sweep> = SWEEPS.iter().collect();
    run(db, Scope::Org(org), &sweeps, now_ms, cfg).await
}

/// Deletes one bounded chunk of expired rows that belong to no org. Only
/// `audit_log` allows a NULL `org_id` (audit of requests whose key named no
/// known org); the other tables' `org_id` is NOT NULL. Rows of an org stay
/// with that org's actor, whose alarm keeps running even if the org is gone.
pub async fn run_orgless(db: &D1Database, now_ms: i64, cfg: &RetentionConfig) -> Result<RunReport, ApiError> {
    let sweeps: Vec<&Sweep> = SWEEPS.iter().filter(|s| s.table == "audit_log").collect();
    run(db, Scope::NoOrg, &sweeps, now_ms, cfg).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_are_scoped_and_bounded() {
        for s in &SWEEPS {
            let sql = s.sql(Scope::NoOrg, 7);
            assert!(sql.contains("org_id IS NULL AND") && sql.contains("LIMIT 7") && !sql.contains("?2"), "{sql}");
        }
    }
}
