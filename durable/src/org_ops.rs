//! The org's settings: reading them (`GET /v1/org`) and changing them
//! (`PATCH /v1/org`). The actor keeps `allowed_origins` in memory; D1 holds
//! the row.

use crate::platform::{first, ms, opt_str, run};
use interlog_core::org::{OrgUsage, OrgView};
use interlog_core::origin::Origin;
use interlog_core::{ApiError, OrgId};
use serde::Deserialize;
use serde_json::Value;
use worker::wasm_bindgen::JsValue;
use worker::D1Database;

type Res<T> = Result<T, ApiError>;

#[derive(Deserialize)]
struct OrgRow {
    name: String,
    allowed_origins: String,
    created_at: f64,
    updated_at: f64,
    used_rows: f64,
    used_bytes: f64,
    quota_rows: Option<f64>,
    quota_bytes: Option<f64>,
}

/// The org's usage columns (kept exact by the triggers of
/// `migrations/data/0001_data.sql`); NULL quotas are the defaults.
#[derive(Deserialize)]
pub struct UsageRow {
    used_rows: f64,
    used_bytes: f64,
    quota_rows: Option<f64>,
    quota_bytes: Option<f64>,
}

impl UsageRow {
    /// The usage as the API shows it.
    pub fn usage(&self) -> OrgUsage {
        OrgUsage::from_stored(self.used_rows, self.used_bytes, self.quota_rows, self.quota_bytes)
    }
}

/// Selects the org's [`UsageRow`]; `?1` is the org.
pub const USAGE_SQL: &str = "SELECT used_rows, used_bytes, quota_rows, quota_bytes FROM orgs WHERE id = ?1";

/// The org's stored volume and quota, if the org exists.
pub async fn usage(db: &D1Database, org: &OrgId) -> Res<Option<OrgUsage>> {
    let row: Option<UsageRow> = first(db, USAGE_SQL, &[JsValue::from(org.as_str())], "usage select").await?;
    Ok(row.map(|r| r.usage()))
}

/// The org's settings as the API shows them, if the org exists.
pub async fn read(db: &D1Database, org: &OrgId) -> Res<Option<OrgView>> {
    let sql = "SELECT name, allowed_origins, created_at, updated_at, used_rows, used_bytes, quota_rows, quota_bytes \
               FROM orgs WHERE id = ?1";
    let row: Option<OrgRow> = first(db, sql, &[org.as_str().into()], "org select").await?;
    Ok(row.map(|r| {
        let usage = OrgUsage::from_stored(r.used_rows, r.used_bytes, r.quota_rows, r.quota_bytes);
        OrgView::from_row(org.clone(), r.name, &r.allowed_origins, r.created_at as i64, r.updated_at as i64, usage)
    }))
}

/// Changes the name and/or the allowed origins (fields left `None` stay).
/// Returns the stored origins text for the audit detail.
pub async fn update(
    db: &D1Database,
    org: &OrgId,
    name: Option<&str>,
    origins: Option<&[Origin]>,
    now_ms: i64,
) -> Res<Option<Value>> {
    let origins_json = origins.map(|list| Value::from(list.iter().map(|o| o.to_string()).collect::<Vec<_>>()));
    run(
        db,
        "UPDATE orgs SET name = COALESCE(?1, name), allowed_origins = COALESCE(?2, allowed_origins), \
         updated_at = ?3 WHERE id = ?4",
        &[
            opt_str(name),
            opt_str(origins_json.as_ref().map(Value::to_string).as_deref()),
            ms(now_ms),
            org.as_str().into(),
        ],
        "org update",
    )
    .await?;
    Ok(origins_json)
}

/// The directory's copy of the name (what the operator command lists); the
/// shard's row stays the org's settings.
pub async fn rename_in_directory(dir: &D1Database, org: &OrgId, name: &str) -> Res<()> {
    let sql = "UPDATE orgs SET name = ?1 WHERE id = ?2";
    run(dir, sql, &[name.into(), org.as_str().into()], "org rename in directory").await.map(|_| ())
}
