//! L2 in the OrgActor: the per-key limiter's state lives in memory and is
//! checkpointed to D1 `rate_limits` in batches (never one write per request),
//! then restored when the actor starts, so a restart does not hand out a
//! fresh budget. Worst-case slack: see docs/ratelimit.md.

use crate::platform::{all, ms, storage_error};
use interlog_core::ratelimit::{Checkpoint, RateLimiter};
use interlog_core::{ApiError, KeyPrefix, OrgId};
use serde::Deserialize;
use worker::wasm_bindgen::JsValue;
use worker::D1Database;

/// Columns a `rate_limits` upsert binds (D1 allows 100 per statement).
const COLUMNS: usize = 5;
const ROWS_PER_STATEMENT: usize = 100 / COLUMNS;
#[derive(Deserialize)]
struct Row {
    prefix: String,
    window_start: f64,
    count: f64,
}

/// Loads the org's checkpoints that still matter at `now_ms`.
pub async fn load(
    db: &D1Database,
    org: &OrgId,
    limiter: &RateLimiter<KeyPrefix>,
    now_ms: i64,
) -> Result<Vec<Checkpoint<KeyPrefix>>, ApiError> {
    let since = now_ms - limiter.period_ms() - limiter.bucket_ms();
    let rows: Vec<Row> = all(
        db,
        "SELECT prefix, window_start, count FROM rate_limits WHERE org_id = ?1 AND window_start >= ?2",
        &[org.as_str().into(), ms(since)],
        "rate limits bind",
    )
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            Some(Checkpoint {
                key: KeyPrefix::parse(&r.prefix).ok()?,
                window_start: r.window_start as i64,
                count: r.count as u32,
            })
        })
        .collect())
}

/// Upserts checkpoints in one D1 batch (20 rows a statement).
pub async fn save(db: &D1Database, org: &OrgId, rows: &[Checkpoint<KeyPrefix>], now_ms: i64) -> Result<(), ApiError> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut stmts = Vec::with_capacity(rows.len().div_ceil(ROWS_PER_STATEMENT));
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let values = vec!["(?, ?, ?, ?, ?)"; chunk.len()].join(", ");
        let sql = format!(
            "INSERT INTO rate_limits (prefix, org_id, window_start, count, updated_at) VALUES {values} \
             ON CONFLICT (prefix, window_start) DO UPDATE SET count = excluded.count, updated_at = excluded.updated_at"
        );
        let binds: Vec<JsValue> = chunk
            .iter()
            .flat_map(|c| {
                [
                    c.key.as_str().into(),
                    org.as_str().into(),
                    ms(c.window_start),
                    JsValue::from_f64(f64::from(c.count)),
                    ms(now_ms),
                ]
            })
            .collect();
        stmts.push(db.prepare(sql).bind(&binds).map_err(|e| storage_error("checkpoint bind", e))?);
    }
    db.batch(stmts).await.map_err(|e| storage_error("checkpoint", e))?;
    Ok(())
}

#[derive(Deserialize)]
struct Sum {
    n: Option<f64>,
}

/// Bench only (`L2_MODE=d1`, never set in wrangler.toml): the sliding window
/// kept in D1, a write and a read per request, so the benchmark can compare
/// it with the in-memory limiter in one run. Counts the request in a
/// one-second bucket of `rate_limits` and sums the buckets of the last
/// period, in one D1 batch. Returns whether it is admitted and how many
/// requests remain.
pub async fn check_with_d1(
    db: &D1Database,
    org: &OrgId,
    prefix: &KeyPrefix,
    limiter: &RateLimiter<KeyPrefix>,
    now_ms: i64,
) -> Result<(bool, u32), ApiError> {
    let bucket = now_ms - now_ms.rem_euclid(1000);
    let count = db
        .prepare(
            "INSERT INTO rate_limits (prefix, org_id, window_start, count, updated_at) VALUES (?1, ?2, ?3, 1, ?4) \
             ON CONFLICT (prefix, window_start) DO UPDATE SET count = count + 1, updated_at = excluded.updated_at",
        )
        .bind(&[prefix.as_str().into(), org.as_str().into(), ms(bucket), ms(now_ms)])
        .map_err(|e| storage_error("bench l2 bind", e))?;
    let sum = db
        .prepare("SELECT SUM(count) AS n FROM rate_limits WHERE prefix = ?1 AND window_start > ?2")
        .bind(&[prefix.as_str().into(), ms(now_ms - limiter.period_ms())])
        .map_err(|e| storage_error("bench l2 bind", e))?;
    let results = db.batch(vec![count, sum]).await.map_err(|e| storage_error("bench l2", e))?;
    let used = results
        .get(1)
        .and_then(|r| r.results::<Sum>().ok())
        .and_then(|rows| rows.first().and_then(|s| s.n))
        .unwrap_or(0.0) as u64;
    let limit = u64::from(limiter.limit());
    Ok((used <= limit, u32::try_from(limit.saturating_sub(used)).unwrap_or(0)))
}
