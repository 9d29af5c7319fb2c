//! The OrgActor's interaction storage: inserts (single and all-or-nothing
//! batches, idempotent per org), keyset listing, get and erase. Every
//! statement is scoped to the actor's own org.

use crate::org_ops::{self, UsageRow, USAGE_SQL};
use crate::platform::{all, first, ms, opt_str, random_bytes, run, storage_error};
use interlog_core::cursor::PagePosition;
use interlog_core::ids::ID_ENTROPY_BYTES;
use interlog_core::interaction::{Interaction, InteractionRow, NewInteraction};
use interlog_core::listing::{InteractionFilter, Order};
use interlog_core::org::{OrgUsage, DEFAULT_QUOTA_BYTES, DEFAULT_QUOTA_ROWS};
use interlog_core::protocol::{Outcome, Page, Stored};
use interlog_core::timefmt::rfc3339;
use interlog_core::{ApiError, InteractionId, OrgId};
use serde_json::Value;
use std::collections::HashMap;
use worker::wasm_bindgen::JsValue;
use worker::{D1Database, D1PreparedStatement, D1Result};

const COLUMNS: &str = "id, type, occurred_at, received_at, actor, session, content, metadata, idempotency_key";
const INSERT_COLUMNS: usize = 10;
/// A statement that always fails, appended to a write when a test injects a
/// D1 fault: the real transaction then aborts after the real inserts ran.
const INJECTED_FAULT: &str = "INSERT INTO interlog_injected_fault (x) VALUES (1)";
const CONFLICT: &str = "ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING";

type Res<T> = Result<T, ApiError>;

/// How a write is made: when it is received, and (test environment only)
/// whether its transaction must fail.
#[derive(Debug, Clone, Copy)]
pub struct Write {
    pub now: i64,
    pub inject_fault: bool,
}

/// A new row: the client's fields plus id and receipt time.
struct Prepared<'a> {
    id: InteractionId,
    received_at: i64,
    item: &'a NewInteraction,
    metadata: Option<String>,
}

impl Prepared<'_> {
    fn binds(&self, org: &OrgId) -> [JsValue; INSERT_COLUMNS] {
        let i = self.item;
        [
            org.as_str().into(),
            self.id.as_str().into(),
            i.kind.as_str().into(),
            ms(i.occurred_at),
            ms(self.received_at),
            opt_str(i.actor.as_deref()),
            opt_str(i.session.as_deref()),
            opt_str(i.content.as_deref()),
            opt_str(self.metadata.as_deref()),
            opt_str(i.idempotency_key.as_deref()),
        ]
    }

    fn view(&self) -> Interaction {
        let i = self.item;
        Interaction {
            id: self.id.to_string(),
            kind: i.kind.clone(),
            occurred_at: rfc3339(i.occurred_at),
            received_at: rfc3339(self.received_at),
            actor: i.actor.clone(),
            session: i.session.clone(),
            content: i.content.clone(),
            metadata: i.metadata.clone().map(Value::Object),
            idempotency_key: i.idempotency_key.clone(),
        }
    }
}

fn prepare(items: &[NewInteraction], now: i64) -> Res<Vec<Prepared<'_>>> {
    items
        .iter()
        .map(|item| {
            let id = InteractionId::generate(now as u64, &random_bytes::<ID_ENTROPY_BYTES>()?);
            let metadata = item.metadata.as_ref().map(|m| Value::Object(m.clone()).to_string());
            Ok(Prepared { id, received_at: now, item, metadata })
        })
        .collect()
}

/// A batch is inserted from JSON: each statement binds one JSON array of rows
/// (`[id, type, occurred_at, received_at, actor, session, content, metadata,
/// idempotency_key]`) that SQLite unpacks with `json_each`, so 100 rows cost
/// one statement and two bound values instead of ten statements and 1,000.
const INSERT_FROM_JSON: &str = "INSERT INTO interactions (org_id, id, type, occurred_at, received_at, actor, session, \
     content, metadata, idempotency_key) \
     SELECT ?1, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), \
     json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), \
     json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]') \
     FROM json_each(?2) WHERE true \
     ON CONFLICT (org_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING RETURNING id";
/// Largest JSON text bound to one statement (D1 allows 2 MB a string).
const JSON_CHUNK_BYTES: usize = 1024 * 1024;

/// The rows as JSON arrays, grouped into texts of at most `JSON_CHUNK_BYTES`
/// (a single larger row gets a text of its own).
fn json_chunks(prepared: &[Prepared<'_>]) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut current = String::from("[");
    for p in prepared {
        let i = p.item;
        let row = serde_json::json!([
            p.id.as_str(),
            i.kind,
            i.occurred_at,
            p.received_at,
            i.actor,
            i.session,
            i.content,
            p.metadata,
            i.idempotency_key
        ])
        .to_string();
        if current.len() > 1 && current.len() + row.len() + 2 > JSON_CHUNK_BYTES {
            current.push(']');
            chunks.push(std::mem::replace(&mut current, String::from("[")));
        }
        if current.len() > 1 {
            current.push(',');
        }
        current.push_str(&row);
    }
    current.push(']');
    chunks.push(current);
    chunks
}

fn insert_sql(rows: usize) -> String {
    let one = format!("({})", ["?"; INSERT_COLUMNS].join(", "));
    format!("INSERT INTO interactions (org_id, {COLUMNS}) VALUES {} {CONFLICT}", vec![one.as_str(); rows].join(", "))
}

/// Stored rows of this org with the given idempotency keys, by key.
async fn by_idempotency_keys(db: &D1Database, org: &OrgId, keys: &[&str]) -> Res<HashMap<String, InteractionRow>> {
    let mut out = HashMap::with_capacity(keys.len());
    for chunk in keys.chunks(99) {
        let sql = format!(
            "SELECT {COLUMNS} FROM interactions WHERE org_id = ? AND idempotency_key IN ({})",
            vec!["?"; chunk.len()].join(", ")
        );
        let mut binds: Vec<JsValue> = vec![org.as_str().into()];
        binds.extend(chunk.iter().map(|k| JsValue::from_str(k)));
        let rows: Vec<InteractionRow> = all(db, sql, &binds, "idempotency bind").await?;
        for r in rows {
            if let Some(k) = r.idempotency_key.clone() {
                out.insert(k, r);
            }
        }
    }
    Ok(out)
}

/// A write's answer and the org's usage right after it (read in the same
/// transaction; `None` when the org has no row).
pub type Written = (Outcome, Option<OrgUsage>);

/// Runs the insert statements of one write as one D1 transaction, with the
/// org's usage read at its end. The quota trigger aborts the transaction when
/// the write would cross the quota: nothing is stored, and the answer is
/// `QUOTA_EXCEEDED`. Returns the insert results and the usage.
async fn write_guarded(
    db: &D1Database,
    org: &OrgId,
    mut statements: Vec<D1PreparedStatement>,
    w: Write,
    context: &str,
) -> Res<(Vec<D1Result>, Option<OrgUsage>)> {
    let inserts = statements.len();
    statements.push(db.prepare(USAGE_SQL).bind(&[org.as_str().into()]).map_err(|e| storage_error(context, e))?);
    if w.inject_fault {
        statements.push(db.prepare(INJECTED_FAULT));
    }
    let mut results = match db.batch(statements).await {
        Ok(r) => r,
        Err(e) if e.to_string().contains("QUOTA_EXCEEDED") => return Err(quota_exceeded(db, org).await),
        Err(e) => return Err(storage_error(context, e)),
    };
    results.truncate(inserts + 1);
    let usage =
        results.pop().and_then(|r| r.results::<UsageRow>().ok()).and_then(|rows| rows.first().map(UsageRow::usage));
    Ok((results, usage))
}

/// The refusal of a write that would cross the org's quota, naming the quota.
async fn quota_exceeded(db: &D1Database, org: &OrgId) -> ApiError {
    let usage = org_ops::usage(db, org).await.ok().flatten();
    ApiError::QuotaExceeded {
        quota_rows: usage.map_or(DEFAULT_QUOTA_ROWS, |u| u.quota_rows),
        quota_bytes: usage.map_or(DEFAULT_QUOTA_BYTES, |u| u.quota_bytes),
    }
}

/// `POST /v1/interactions`: the new record, or the record first stored under
/// the same idempotency key.
pub async fn create_one(db: &D1Database, org: &OrgId, item: &NewInteraction, w: Write) -> Res<Written> {
    let prepared = prepare(std::slice::from_ref(item), w.now)?;
    let p = &prepared[0];
    let insert = db.prepare(insert_sql(1)).bind(&p.binds(org)).map_err(|e| storage_error("insert bind", e))?;
    let (results, usage) = write_guarded(db, org, vec![insert], w, "insert").await?;
    let inserted = results.first().and_then(|r| r.meta().ok().flatten()).and_then(|m| m.changes).unwrap_or(0) > 0;
    if inserted {
        return Ok((Outcome::Interaction { record: p.view(), stored: Some(Stored::Created) }, usage));
    }
    let key = item.idempotency_key.as_deref().ok_or_else(|| ApiError::internal("insert changed no row"))?;
    let mut existing = by_idempotency_keys(db, org, &[key]).await?;
    let row = existing.remove(key).ok_or_else(|| ApiError::Conflict {
        message: "a concurrent request with this idempotency key is being erased; retry".into(),
    })?;
    Ok((Outcome::Interaction { record: Interaction::from(row), stored: Some(Stored::Replayed) }, usage))
}

/// `POST /v1/interactions/batch`: one D1 transaction for all items, chunked
/// under the bound-parameter limit. Items whose idempotency key is already
/// stored come back as the stored record and are not written again.
pub async fn create_many(db: &D1Database, org: &OrgId, items: &[NewInteraction], w: Write) -> Res<Written> {
    let prepared = prepare(items, w.now)?;
    let mut statements = Vec::new();
    for rows in json_chunks(&prepared) {
        let binds = [org.as_str().into(), JsValue::from_str(&rows)];
        statements.push(db.prepare(INSERT_FROM_JSON).bind(&binds).map_err(|e| storage_error("batch bind", e))?);
    }
    let (results, usage) = write_guarded(db, org, statements, w, "batch insert").await?;
    // Rows inserted, counted from RETURNING: D1's `changes` also counts the
    // rows the quota trigger updates.
    let inserted: usize = results.iter().map(|r| r.results::<Value>().map_or(0, |rows| rows.len())).sum();

    // Only when some row was skipped (its key was stored before) are the
    // stored records looked up; the common all-new batch costs no extra query.
    let keys: Vec<&str> = items.iter().filter_map(|i| i.idempotency_key.as_deref()).collect();
    let all_new = inserted == prepared.len();
    let mut stored =
        if keys.is_empty() || all_new { HashMap::new() } else { by_idempotency_keys(db, org, &keys).await? };
    let mut created = 0usize;
    let mut records = Vec::with_capacity(prepared.len());
    for p in &prepared {
        let earlier =
            p.item.idempotency_key.as_deref().and_then(|k| stored.remove(k)).filter(|r| r.id != p.id.as_str());
        match earlier {
            Some(row) => records.push(Interaction::from(row)),
            None => {
                created += 1;
                records.push(p.view());
            }
        }
    }
    let replayed = records.len() - created;
    Ok((Outcome::Batch { records, created, replayed }, usage))
}

/// Stored bytes of a row, as the storage quota counts them: the UTF-8 length
/// of every text column.
const ROW_BYTES: &str = "LENGTH(CAST(id AS BLOB)) + LENGTH(CAST(type AS BLOB)) \
     + COALESCE(LENGTH(CAST(actor AS BLOB)), 0) + COALESCE(LENGTH(CAST(session AS BLOB)), 0) \
     + COALESCE(LENGTH(CAST(content AS BLOB)), 0) + COALESCE(LENGTH(CAST(metadata AS BLOB)), 0) \
     + COALESCE(LENGTH(CAST(idempotency_key AS BLOB)), 0)";

/// A listed row's position and stored size, read before any content.
#[derive(serde::Deserialize)]
struct RowSize {
    id: String,
    occurred_at: f64,
    bytes: f64,
}

/// `WHERE` clause and binds of a listing: the org, the filters, and the rows
/// after the cursor.
fn list_where(org: &OrgId, filter: &InteractionFilter, after: Option<&PagePosition>) -> (String, Vec<JsValue>) {
    let mut sql = String::from(" WHERE org_id = ?");
    let mut binds: Vec<JsValue> = vec![org.as_str().into()];
    if let Some(s) = filter.since {
        sql.push_str(" AND occurred_at >= ?");
        binds.push(ms(s));
    }
    if let Some(u) = filter.until {
        sql.push_str(" AND occurred_at < ?");
        binds.push(ms(u));
    }
    if let Some(a) = &filter.actor {
        sql.push_str(" AND actor = ?");
        binds.push(a.as_str().into());
    }
    if let Some(t) = &filter.kind {
        sql.push_str(" AND type = ?");
        binds.push(t.as_str().into());
    }
    if let Some(s) = &filter.session {
        sql.push_str(" AND session = ?");
        binds.push(s.as_str().into());
    }
    if let Some(p) = after {
        // The first term bounds the index range (a page starts where the
        // previous one ended instead of scanning past it); the second breaks ties.
        sql.push_str(match filter.order {
            Order::NewestFirst => " AND occurred_at <= ? AND (occurred_at < ? OR id < ?)",
            Order::OldestFirst => " AND occurred_at >= ? AND (occurred_at > ? OR id > ?)",
        });
        binds.extend([ms(p.at), ms(p.at), p.id.as_str().into()]);
    }
    (sql, binds)
}

/// `GET /v1/interactions`: newest first (`occurred_at`, then `id`; oldest
/// first when the filter says so: a session, an export), keyset
/// paged, within `listing::PAGE_BYTE_BUDGET`. The sizes of the next rows are
/// read first (no content); the page is cut there, and only its rows are read
/// in full, so the actor never holds more than the budget (or one larger row).
pub async fn list(
    db: &D1Database,
    org: &OrgId,
    filter: &InteractionFilter,
    limit: u32,
    after: Option<&PagePosition>,
) -> Res<Outcome> {
    let (order, up_to_last) = match filter.order {
        Order::NewestFirst => {
            (" ORDER BY occurred_at DESC, id DESC LIMIT ?", "occurred_at > ? OR (occurred_at = ? AND id >= ?)")
        }
        Order::OldestFirst => {
            (" ORDER BY occurred_at ASC, id ASC LIMIT ?", "occurred_at < ? OR (occurred_at = ? AND id <= ?)")
        }
    };
    let (clause, mut binds) = list_where(org, filter, after);
    let sizes_sql = format!("SELECT id, occurred_at, {ROW_BYTES} AS bytes FROM interactions{clause}{order}");
    let mut size_binds = binds.clone();
    size_binds.push(JsValue::from_f64(f64::from(limit) + 1.0));
    let sizes: Vec<RowSize> = all(db, sizes_sql, &size_binds, "list sizes").await?;
    let byte_sizes: Vec<u64> = sizes.iter().map(|r| r.bytes.max(0.0) as u64).collect();
    let cut = interlog_core::listing::cut_page(&byte_sizes, limit as usize, interlog_core::listing::PAGE_BYTE_BUDGET);
    let Some(last) = cut.take.checked_sub(1).and_then(|i| sizes.get(i)) else {
        return Ok(Outcome::Interactions(Page { items: Vec::new(), next: None }));
    };
    // The page's rows only: up to and including the last row of the cut (a
    // row inserted meanwhile can only push the last one to the next page).
    let rows_sql = format!("SELECT {COLUMNS} FROM interactions{clause} AND ({up_to_last}){order}");
    binds.extend([JsValue::from_f64(last.occurred_at), JsValue::from_f64(last.occurred_at), last.id.as_str().into()]);
    binds.push(JsValue::from_f64(cut.take as f64));
    let rows: Vec<InteractionRow> = all(db, rows_sql, &binds, "list bind").await?;
    let next = if cut.more {
        let (at, id) = rows.last().map_or((last.occurred_at, &last.id), |r| (r.occurred_at, &r.id));
        Some(PagePosition { at: at as i64, id: id.clone() })
    } else {
        None
    };
    let items = rows.into_iter().map(Interaction::from).collect();
    Ok(Outcome::Interactions(Page { items, next }))
}

/// `GET /v1/interactions/{id}`: 404 when absent (or another org's: the query
/// is scoped to this org, so the two cannot be told apart).
pub async fn get(db: &D1Database, org: &OrgId, id: &str) -> Res<Outcome> {
    let row: Option<InteractionRow> = first(
        db,
        format!("SELECT {COLUMNS} FROM interactions WHERE org_id = ?1 AND id = ?2"),
        &[org.as_str().into(), id.into()],
        "get bind",
    )
    .await?;
    let row = row.ok_or(ApiError::NotFound)?;
    Ok(Outcome::Interaction { record: Interaction::from(row), stored: None })
}

/// `DELETE /v1/interactions/{id}`: erasure; true when a row was deleted.
pub async fn delete(db: &D1Database, org: &OrgId, id: &str) -> Res<bool> {
    let sql = "DELETE FROM interactions WHERE org_id = ?1 AND id = ?2";
    Ok(run(db, sql, &[org.as_str().into(), id.into()], "delete").await? > 0)
}
