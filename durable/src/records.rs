//! The OrgActor's audit and alert rows: listing them newest first with keyset
//! pages, and writing deduplicated alerts.

use crate::platform::{all, ms, random_bytes, run};
use interlog_core::alerts::AlertView;
use interlog_core::alerts::AlertWrite;
use interlog_core::audit::AuditView;
use interlog_core::cursor::PagePosition;
use interlog_core::ids::ID_ENTROPY_BYTES;
use interlog_core::listing::{AlertFilter, AuditFilter};
use interlog_core::protocol::{Outcome, Page};
use interlog_core::timefmt::rfc3339;
use interlog_core::{ApiError, OrgId};
use serde::Deserialize;
use serde_json::Value;
use worker::wasm_bindgen::JsValue;
use worker::D1Database;

type Res<T> = Result<T, ApiError>;

#[derive(Deserialize)]
struct AuditRow {
    id: f64,
    at: f64,
    action: String,
    reason: Option<String>,
    prefix: Option<String>,
    ip: Option<String>,
    request_id: Option<String>,
    detail: Option<String>,
    count: f64,
    first_at: f64,
    last_at: f64,
}

#[derive(Deserialize)]
struct AlertRow {
    id: String,
    kind: String,
    prefix: String,
    state: String,
    first_seen: f64,
    last_seen: f64,
    count: f64,
}

/// Runs a keyset page query: `sql` selects rows of this org newest first;
/// `time_col`/`id_col` order it. Returns rows and the next position.
async fn page<T: for<'de> Deserialize<'de>>(
    db: &D1Database,
    mut sql: String,
    mut binds: Vec<JsValue>,
    (time_col, id_col, id_is_number): (&str, &str, bool),
    limit: u32,
    after: Option<&PagePosition>,
    pos: impl Fn(&T) -> PagePosition,
) -> Res<(Vec<T>, Option<PagePosition>)> {
    if let Some(p) = after {
        sql.push_str(&format!(" AND ({time_col} < ? OR ({time_col} = ? AND {id_col} < ?))"));
        let id: JsValue = if id_is_number {
            JsValue::from_f64(p.id.parse::<f64>().map_err(|_| ApiError::validation("invalid cursor"))?)
        } else {
            p.id.as_str().into()
        };
        binds.extend([ms(p.at), ms(p.at), id]);
    }
    sql.push_str(&format!(" ORDER BY {time_col} DESC, {id_col} DESC LIMIT ?"));
    binds.push(JsValue::from_f64(f64::from(limit) + 1.0));
    let mut rows: Vec<T> = all(db, sql, &binds, "page bind").await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(pos) } else { None };
    Ok((rows, next))
}

/// `GET /v1/audit-log`.
pub async fn list_audit(
    db: &D1Database,
    org: &OrgId,
    f: &AuditFilter,
    limit: u32,
    after: Option<&PagePosition>,
) -> Res<Outcome> {
    let mut sql =
        "SELECT id, at, action, reason, prefix, ip, request_id, detail, count, COALESCE(first_at, at) AS first_at, \
         COALESCE(last_at, at) AS last_at FROM audit_log WHERE org_id = ?"
            .to_string();
    let mut binds: Vec<JsValue> = vec![org.as_str().into()];
    if let Some(a) = &f.action {
        sql.push_str(" AND action = ?");
        binds.push(a.as_str().into());
    }
    if let Some(p) = &f.prefix {
        sql.push_str(" AND prefix = ?");
        binds.push(p.as_str().into());
    }
    let (rows, next) = page::<AuditRow>(db, sql, binds, ("at", "id", true), limit, after, |r| PagePosition {
        at: r.at as i64,
        id: (r.id as i64).to_string(),
    })
    .await?;
    let items = rows
        .into_iter()
        .map(|r| AuditView {
            id: r.id as i64,
            at: rfc3339(r.at as i64),
            action: r.action,
            reason: r.reason,
            prefix: r.prefix,
            ip: r.ip,
            request_id: r.request_id,
            detail: r.detail.and_then(|d| serde_json::from_str::<Value>(&d).ok()),
            count: r.count as i64,
            first_at: rfc3339(r.first_at as i64),
            last_at: rfc3339(r.last_at as i64),
        })
        .collect();
    Ok(Outcome::Audit(Page { items, next }))
}

/// `GET /v1/alerts`.
pub async fn list_alerts(
    db: &D1Database,
    org: &OrgId,
    f: &AlertFilter,
    limit: u32,
    after: Option<&PagePosition>,
) -> Res<Outcome> {
    let mut sql =
        "SELECT id, kind, prefix, state, first_seen, last_seen, count FROM alerts WHERE org_id = ?".to_string();
    let mut binds: Vec<JsValue> = vec![org.as_str().into()];
    if let Some(k) = &f.kind {
        sql.push_str(" AND kind = ?");
        binds.push(k.as_str().into());
    }
    if let Some(s) = &f.state {
        sql.push_str(" AND state = ?");
        binds.push(s.as_str().into());
    }
    let (rows, next) = page::<AlertRow>(db, sql, binds, ("last_seen", "id", false), limit, after, |r| PagePosition {
        at: r.last_seen as i64,
        id: r.id.clone(),
    })
    .await?;
    let items = rows
        .into_iter()
        .map(|r| AlertView {
            id: r.id,
            kind: r.kind,
            prefix: if r.prefix.is_empty() { None } else { Some(r.prefix) },
            state: r.state,
            first_seen: rfc3339(r.first_seen as i64),
            last_seen: rfc3339(r.last_seen as i64),
            count: r.count as i64,
        })
        .collect();
    Ok(Outcome::Alerts(Page { items, next }))
}

/// Opens an alert or adds to the open one of the same cause and key.
pub async fn write_alert(db: &D1Database, org: &OrgId, w: &AlertWrite) -> Res<()> {
    let id = interlog_core::ids::RequestId::generate(w.at as u64, &random_bytes::<ID_ENTROPY_BYTES>()?)
        .to_string()
        .replacen("req_", "alr_", 1);
    run(
        db,
        "INSERT INTO alerts (id, org_id, kind, prefix, state, first_seen, last_seen, count) \
         VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?5, ?6) \
         ON CONFLICT (org_id, kind, prefix) WHERE state = 'open' \
         DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen), count = count + excluded.count",
        &[
            id.into(),
            org.as_str().into(),
            w.kind.as_str().into(),
            w.prefix.as_str().into(),
            ms(w.at),
            JsValue::from_f64(f64::from(w.count)),
        ],
        "alert bind",
    )
    .await?;
    Ok(())
}
