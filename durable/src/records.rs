//! The OrgActor's audit and alert rows: listing them newest first with keyset
//! pages, writing deduplicated alerts and resolving them. An alert that opens
//! or resolves queues its webhook deliveries (`webhook_outbox`) in the same
//! D1 transaction, so no event is lost to a restart.

use crate::platform::{all, first, ms, random_bytes, storage_error};
use interlog_core::alerts::{AlertKind, AlertView, AlertWrite, RESOLVE_WHEN_KEY_REPLACED, RESOLVE_WHEN_QUIET};
use interlog_core::audit::AuditView;
use interlog_core::cursor::PagePosition;
use interlog_core::ids::ID_ENTROPY_BYTES;
use interlog_core::listing::{AlertFilter, AuditFilter};
use interlog_core::protocol::{Outcome, Page};
use interlog_core::timefmt::rfc3339;
use interlog_core::webhook::{alert_payload, new_message_id, EventType};
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
    resolved_at: Option<f64>,
}

impl AlertRow {
    fn view(self) -> AlertView {
        AlertView {
            id: self.id,
            kind: self.kind,
            prefix: if self.prefix.is_empty() { None } else { Some(self.prefix) },
            state: self.state,
            first_seen: rfc3339(self.first_seen as i64),
            last_seen: rfc3339(self.last_seen as i64),
            count: self.count as i64,
            resolved_at: self.resolved_at.map(|t| rfc3339(t as i64)),
        }
    }
}

const ALERT_COLUMNS: &str = "id, kind, prefix, state, first_seen, last_seen, count, resolved_at";

/// Runs a keyset page query: `sql` selects rows of this org newest first;
/// `time_col`/`id_col` order it. Returns rows and the next position.
pub(crate) async fn page<T: for<'de> Deserialize<'de>>(
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
    let mut sql = format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE org_id = ?");
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
    let items = rows.into_iter().map(AlertRow::view).collect();
    Ok(Outcome::Alerts(Page { items, next }))
}

/// Queues `event` about alert `alert_id` (whose payload is `body`) for every
/// endpoint of the org subscribed to it, but only if `guard` (SQL over the
/// alert row `a`) holds: run in the same batch as the change it reports.
fn enqueue(
    db: &D1Database,
    org: &OrgId,
    alert_id: &str,
    event: EventType,
    body: &str,
    guard: &str,
    now: i64,
) -> Res<worker::D1PreparedStatement> {
    let msg = new_message_id(now, &random_bytes::<ID_ENTROPY_BYTES>()?);
    let sql = format!(
        "INSERT INTO webhook_outbox (webhook_id, message_id, org_id, event, body, created_at, next_attempt_at) \
         SELECT w.id, ?1, ?2, ?3, ?4, ?5, ?5 FROM webhooks w WHERE w.org_id = ?2 \
         AND instr(',' || w.events || ',', ',' || ?3 || ',') > 0 \
         AND EXISTS (SELECT 1 FROM alerts a WHERE a.id = ?6 AND a.org_id = ?2 AND {guard})"
    );
    db.prepare(sql)
        .bind(&[msg.into(), org.as_str().into(), event.as_str().into(), body.into(), ms(now), alert_id.into()])
        .map_err(|e| storage_error("outbox bind", e))
}

/// How many rows a batch's statement `i` changed.
fn changes(results: &[worker::D1Result], i: usize) -> usize {
    results.get(i).and_then(|r| r.meta().ok().flatten()).and_then(|m| m.changes).unwrap_or(0)
}

/// Opens an alert or adds to the open one of the same cause and key; a new
/// alert queues its `alert.opened` deliveries in the same transaction.
/// Returns how many deliveries were queued.
pub async fn write_alert(db: &D1Database, org: &OrgId, w: &AlertWrite) -> Res<usize> {
    let id = interlog_core::ids::RequestId::generate(w.at as u64, &random_bytes::<ID_ENTROPY_BYTES>()?)
        .to_string()
        .replacen("req_", "alr_", 1);
    let insert = db
        .prepare(
            "INSERT INTO alerts (id, org_id, kind, prefix, state, first_seen, last_seen, count) \
             VALUES (?1, ?2, ?3, ?4, 'open', ?5, ?5, ?6) \
             ON CONFLICT (org_id, kind, prefix) WHERE state = 'open' \
             DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen), count = count + excluded.count",
        )
        .bind(&[
            id.as_str().into(),
            org.as_str().into(),
            w.kind.as_str().into(),
            w.prefix.as_str().into(),
            ms(w.at),
            JsValue::from_f64(f64::from(w.count)),
        ])
        .map_err(|e| storage_error("alert bind", e))?;
    let view = AlertView {
        id: id.clone(),
        kind: w.kind.as_str().into(),
        prefix: (!w.prefix.is_empty()).then(|| w.prefix.clone()),
        state: "open".into(),
        first_seen: rfc3339(w.at),
        last_seen: rfc3339(w.at),
        count: i64::from(w.count),
        resolved_at: None,
    };
    let body = alert_payload(EventType::AlertOpened, &view, w.at);
    // The alert's new id exists only if this insert opened it.
    let queue = enqueue(db, org, &id, EventType::AlertOpened, &body, "a.state = 'open'", w.at)?;
    let results = db.batch(vec![insert, queue]).await.map_err(|e| storage_error("alert write", e))?;
    Ok(changes(&results, 1))
}

/// One alert of the org.
pub async fn read_alert(db: &D1Database, org: &OrgId, id: &str) -> Res<Option<AlertView>> {
    let row: Option<AlertRow> = first(
        db,
        format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1 AND org_id = ?2"),
        &[id.into(), org.as_str().into()],
        "alert read",
    )
    .await?;
    Ok(row.map(AlertRow::view))
}

/// What resolving an alert did.
pub struct Resolved {
    /// The alert as it is now.
    pub alert: AlertView,
    /// Whether this call resolved it (false: it was already resolved).
    pub changed: bool,
    /// Deliveries of `alert.resolved` queued.
    pub queued: usize,
}

/// Resolves an open alert of the org (`by`: an admin key's prefix or
/// `auto`), queuing its `alert.resolved` deliveries in the same transaction.
/// `None` when the org has no such alert; resolving a resolved one changes
/// nothing.
pub async fn resolve_alert(db: &D1Database, org: &OrgId, id: &str, by: &str, now: i64) -> Res<Option<Resolved>> {
    let Some(mut alert) = read_alert(db, org, id).await? else { return Ok(None) };
    if alert.state != "open" {
        return Ok(Some(Resolved { alert, changed: false, queued: 0 }));
    }
    alert.state = "resolved".into();
    alert.resolved_at = Some(rfc3339(now));
    let body = alert_payload(EventType::AlertResolved, &alert, now);
    let queue = enqueue(db, org, id, EventType::AlertResolved, &body, "a.state = 'open'", now)?;
    let update = db
        .prepare(
            "UPDATE alerts SET state = 'resolved', resolved_at = ?1, resolved_by = ?2 \
             WHERE id = ?3 AND org_id = ?4 AND state = 'open'",
        )
        .bind(&[ms(now), by.into(), id.into(), org.as_str().into()])
        .map_err(|e| storage_error("alert resolve bind", e))?;
    let results = db.batch(vec![queue, update]).await.map_err(|e| storage_error("alert resolve", e))?;
    let changed = changes(&results, 1) > 0;
    let alert = if changed { alert } else { read_alert(db, org, id).await?.unwrap_or(alert) };
    Ok(Some(Resolved { alert, changed, queued: changes(&results, 0) }))
}

#[derive(Deserialize)]
struct OpenAlert {
    id: String,
    kind: String,
    prefix: String,
}

/// At most this many alerts resolve by themselves per run (the rest next run).
const AUTO_RESOLVE_PER_RUN: u32 = 20;

fn kind_list(kinds: &[AlertKind]) -> String {
    kinds.iter().map(|k| format!("'{}'", k.as_str())).collect::<Vec<_>>().join(", ")
}

/// Resolves the open alerts whose cause ended by itself: bursts quiet since
/// `quiet_before`. Returns the (kind, prefix) of each resolved one and how
/// many deliveries were queued.
pub async fn resolve_quiet(
    db: &D1Database,
    org: &OrgId,
    quiet_before: i64,
    now: i64,
) -> Res<(Vec<(AlertKind, String)>, usize)> {
    let rows: Vec<OpenAlert> = all(
        db,
        format!(
            "SELECT id, kind, prefix FROM alerts WHERE org_id = ?1 AND state = 'open' AND kind IN ({}) \
             AND last_seen <= ?2 ORDER BY last_seen LIMIT ?3",
            kind_list(&RESOLVE_WHEN_QUIET)
        ),
        &[org.as_str().into(), ms(quiet_before), JsValue::from_f64(f64::from(AUTO_RESOLVE_PER_RUN))],
        "quiet alerts",
    )
    .await?;
    resolve_each(db, org, rows, now).await
}

/// Resolves the open alerts about key `prefix` that end when it is rotated
/// or revoked (`key_expiring`).
pub async fn resolve_for_key(
    db: &D1Database,
    org: &OrgId,
    prefix: &str,
    now: i64,
) -> Res<(Vec<(AlertKind, String)>, usize)> {
    let rows: Vec<OpenAlert> = all(
        db,
        format!(
            "SELECT id, kind, prefix FROM alerts WHERE org_id = ?1 AND state = 'open' AND prefix = ?2 AND kind IN ({})",
            kind_list(&RESOLVE_WHEN_KEY_REPLACED)
        ),
        &[org.as_str().into(), prefix.into()],
        "key alerts",
    )
    .await?;
    resolve_each(db, org, rows, now).await
}

async fn resolve_each(
    db: &D1Database,
    org: &OrgId,
    rows: Vec<OpenAlert>,
    now: i64,
) -> Res<(Vec<(AlertKind, String)>, usize)> {
    let (mut done, mut queued) = (Vec::new(), 0);
    for r in rows {
        if let Some(res) = resolve_alert(db, org, &r.id, "auto", now).await? {
            queued += res.queued;
            if let (true, Some(kind)) = (res.changed, AlertKind::parse(&r.kind)) {
                done.push((kind, r.prefix));
            }
        }
    }
    Ok((done, queued))
}

#[derive(Deserialize)]
struct Earliest {
    at: Option<f64>,
}

/// When the next open burst alert becomes quiet enough to resolve, if any.
pub async fn next_quiet_due(db: &D1Database, org: &OrgId, quiet_ms: i64) -> Res<Option<i64>> {
    let row: Option<Earliest> = first(
        db,
        format!(
            "SELECT MIN(last_seen) AS at FROM alerts WHERE org_id = ?1 AND state = 'open' AND kind IN ({})",
            kind_list(&RESOLVE_WHEN_QUIET)
        ),
        &[org.as_str().into()],
        "quiet due",
    )
    .await?;
    Ok(row.and_then(|r| r.at).map(|t| (t as i64).saturating_add(quiet_ms)))
}
