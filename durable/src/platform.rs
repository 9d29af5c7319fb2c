//! Thin adapters over the Workers runtime shared by the front Worker and the
//! Durable Objects: clock, randomness, D1 errors and audit rows.

use interlog_core::ApiError;
use worker::wasm_bindgen::JsValue;
use worker::{console_error, D1Database};

/// Wall-clock Unix milliseconds (advances only across I/O in production).
pub fn now_ms() -> i64 {
    worker::Date::now().as_millis() as i64
}

/// `N` bytes from the platform CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut buf = [0u8; N];
    getrandom::getrandom(&mut buf).map_err(|e| ApiError::internal(format!("getrandom: {e}")))?;
    Ok(buf)
}

/// Maps a storage failure to a retryable 503, logging the detail.
pub fn storage_error(context: &str, err: worker::Error) -> ApiError {
    console_error!("storage error in {context}: {err}");
    ApiError::Unavailable { retry_after_s: 1, detail: format!("{context}: {err}") }
}

/// Binds an optional string as TEXT or NULL.
pub fn opt_str(v: Option<&str>) -> JsValue {
    v.map_or(JsValue::NULL, JsValue::from_str)
}

/// Binds milliseconds (exact up to 2^53) as a JS number.
pub fn ms(v: i64) -> JsValue {
    JsValue::from_f64(v as f64)
}

/// One `audit_log` row.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    pub org_id: Option<&'a str>,
    pub at: i64,
    pub action: &'a str,
    pub reason: Option<&'a str>,
    pub prefix: Option<&'a str>,
    pub ip: Option<&'a str>,
    pub request_id: &'a str,
    /// JSON text with extra facts (never key material).
    pub detail: Option<&'a str>,
}

/// Appends an audit row. Failures are logged (without key material) and
/// reported to the caller, who decides whether they matter.
pub async fn write_audit(db: &D1Database, e: &AuditEntry<'_>) -> Result<(), ApiError> {
    db.prepare(
        "INSERT INTO audit_log (org_id, at, action, reason, prefix, ip, request_id, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(&[
        opt_str(e.org_id),
        ms(e.at),
        e.action.into(),
        opt_str(e.reason),
        opt_str(e.prefix),
        opt_str(e.ip),
        e.request_id.into(),
        opt_str(e.detail),
    ])
    .map_err(|err| storage_error("audit bind", err))?
    .run()
    .await
    .map_err(|err| storage_error("audit insert", err))?;
    Ok(())
}

/// Runs a query and decodes every row; D1 failures become retryable 503s
/// named by `context` (logged, never sent).
pub async fn all<T: serde::de::DeserializeOwned>(
    db: &D1Database,
    sql: impl Into<String>,
    binds: &[JsValue],
    context: &str,
) -> Result<Vec<T>, ApiError> {
    db.prepare(sql)
        .bind(binds)
        .map_err(|e| storage_error(context, e))?
        .all()
        .await
        .map_err(|e| storage_error(context, e))?
        .results()
        .map_err(|e| storage_error(context, e))
}

/// Runs a query and decodes its first row, if any.
pub async fn first<T: serde::de::DeserializeOwned>(
    db: &D1Database,
    sql: impl Into<String>,
    binds: &[JsValue],
    context: &str,
) -> Result<Option<T>, ApiError> {
    db.prepare(sql)
        .bind(binds)
        .map_err(|e| storage_error(context, e))?
        .first(None)
        .await
        .map_err(|e| storage_error(context, e))
}

/// Runs a write; returns how many rows it changed.
pub async fn run(db: &D1Database, sql: impl Into<String>, binds: &[JsValue], context: &str) -> Result<usize, ApiError> {
    let result = db
        .prepare(sql)
        .bind(binds)
        .map_err(|e| storage_error(context, e))?
        .run()
        .await
        .map_err(|e| storage_error(context, e))?;
    Ok(result.meta().ok().flatten().and_then(|m| m.changes).unwrap_or(0))
}
