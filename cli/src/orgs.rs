//! Org commands: create-org, set-quota, list-orgs, show-org.

use crate::args::{CreateOrg, Global, ListOrgs, OrgRef, SetQuota};
use crate::audit;
use crate::d1::{self, lit};
use crate::fail::Failure;
use crate::keys::{check_name, insert_key, org_id, NewKey};
use crate::material::{now_ms, random};
use interlog_core::audit::AuditAction;
use interlog_core::ids::ID_ENTROPY_BYTES;
use interlog_core::org::OrgUsage;
use interlog_core::timefmt::rfc3339;
use interlog_core::{OrgId, Scopes};
use serde_json::{json, Value};

/// The usage columns of an org row.
const USAGE_COLUMNS: &str = "used_rows, used_bytes, quota_rows, quota_bytes";

/// `create-org`: the org, its first admin key and both audit rows, at once.
pub fn create(g: &Global, a: &CreateOrg) -> Result<Value, Failure> {
    check_name(&a.name)?;
    let now = now_ms();
    let org = OrgId::generate(now.unsigned_abs(), &random::<ID_ENTROPY_BYTES>()?);
    let before = format!(
        "INSERT INTO orgs (id, name, allowed_origins, created_at, updated_at) VALUES ({}, {}, '[]', {now}, {now}); {} ",
        lit(org.as_str()),
        lit(&a.name),
        audit::insert(&org, AuditAction::OrgCreated, None, json!({ "name": a.name }), now, None),
    );
    let new = NewKey { org: &org, name: "initial admin key", scopes: Scopes::all(), expires_at: None };
    let key = insert_key(g, &before, &new, now)?;
    Ok(json!({ "org_id": org, "key": key.expose_secret() }))
}

/// `--rows`/`--bytes`: a non-negative integer, or `default` (stored as NULL:
/// the default quota, which follows the defaults of future releases).
pub fn parse_quota(flag: &str, v: &str) -> Result<Option<u64>, Failure> {
    if v == "default" {
        return Ok(None);
    }
    match v.parse::<u64>() {
        Ok(n) if n <= 1 << 53 => Ok(Some(n)),
        _ => Err(Failure::invalid(format!("{flag} must be a whole number (0 to 2^53) or \"default\""))),
    }
}

/// The SQL of `set-quota` at `now`: the update, its audit row (when the org
/// exists), then the org's usage row to report.
pub fn set_quota_sql(org: &OrgId, rows: Option<Option<u64>>, bytes: Option<Option<u64>>, now: i64) -> String {
    let value = |q: Option<u64>| q.map_or("NULL".to_string(), |n| n.to_string());
    let mut sets = Vec::new();
    let mut detail = serde_json::Map::new();
    if let Some(r) = rows {
        sets.push(format!("quota_rows = {}", value(r)));
        detail.insert("quota_rows".into(), r.map_or(json!("default"), |n| json!(n)));
    }
    if let Some(b) = bytes {
        sets.push(format!("quota_bytes = {}", value(b)));
        detail.insert("quota_bytes".into(), b.map_or(json!("default"), |n| json!(n)));
    }
    let id = lit(org.as_str());
    let exists = format!("EXISTS (SELECT 1 FROM orgs WHERE id = {id})");
    format!(
        "UPDATE orgs SET {} WHERE id = {id}; {} SELECT {USAGE_COLUMNS} FROM orgs WHERE id = {id};",
        sets.join(", "),
        audit::insert(org, AuditAction::QuotaSet, None, Value::Object(detail), now, Some(&exists)),
    )
}

/// The usage of an org row.
fn usage(row: &Value) -> OrgUsage {
    let num = |k: &str| row[k].as_f64();
    OrgUsage::from_stored(
        num("used_rows").unwrap_or(0.0),
        num("used_bytes").unwrap_or(0.0),
        num("quota_rows"),
        num("quota_bytes"),
    )
}

/// The usage row in wrangler's JSON output of [`set_quota_sql`] (the last
/// statement's first row), if the org exists.
pub fn usage_from_output(out: &str) -> Result<Option<OrgUsage>, Failure> {
    Ok(d1::rows(out, -1)?.first().map(usage))
}

/// `set-quota`.
pub fn set_quota(g: &Global, a: &SetQuota) -> Result<Value, Failure> {
    let org = org_id(&a.org)?;
    let rows = a.rows.as_deref().map(|v| parse_quota("--rows", v)).transpose()?;
    let bytes = a.bytes.as_deref().map(|v| parse_quota("--bytes", v)).transpose()?;
    if rows.is_none() && bytes.is_none() {
        return Err(Failure::invalid("--rows or --bytes is required"));
    }
    let out = d1::execute(g, &set_quota_sql(&org, rows, bytes, now_ms()))?;
    let usage = usage_from_output(&out)?.ok_or_else(|| Failure::not_found(format!("no org {org}")))?;
    Ok(json!({ "org_id": org, "usage": usage }))
}

/// One org as listed.
fn summary(row: &Value) -> Value {
    json!({
        "org_id": row["id"],
        "name": row["name"],
        "created_at": row["created_at"].as_f64().map(|t| rfc3339(t as i64)),
        "usage": usage(row),
    })
}

/// `list-orgs`: newest first, at most `--limit`.
pub fn list(g: &Global, a: &ListOrgs) -> Result<Value, Failure> {
    let sql = format!(
        "SELECT id, name, created_at, {USAGE_COLUMNS} FROM orgs ORDER BY created_at DESC, id DESC LIMIT {};",
        a.limit
    );
    let rows = d1::rows(&d1::execute(g, &sql)?, -1)?;
    Ok(json!({ "orgs": rows.iter().map(summary).collect::<Vec<_>>() }))
}

/// `show-org`: the org's settings, usage and how many of its keys are live.
pub fn show(g: &Global, a: &OrgRef) -> Result<Value, Failure> {
    let org = org_id(&a.org)?;
    let id = lit(org.as_str());
    let now = now_ms();
    let sql = format!(
        "SELECT id, name, allowed_origins, created_at, updated_at, {USAGE_COLUMNS} FROM orgs WHERE id = {id}; \
         SELECT COUNT(*) AS total, COALESCE(SUM(state = 'active' AND (expires_at IS NULL OR expires_at > {now})), 0) \
         AS live FROM api_keys WHERE org_id = {id};"
    );
    let out = d1::execute(g, &sql)?;
    let rows = d1::rows(&out, 0)?;
    let row = rows.first().ok_or_else(|| Failure::not_found(format!("no org {org}")))?;
    let counts = d1::rows(&out, 1)?.first().cloned().unwrap_or(Value::Null);
    let origins: Value =
        row["allowed_origins"].as_str().and_then(|s| serde_json::from_str(s).ok()).unwrap_or(json!([]));
    let mut out = summary(row);
    out["allowed_origins"] = origins;
    out["updated_at"] = json!(row["updated_at"].as_f64().map(|t| rfc3339(t as i64)));
    out["keys"] =
        json!({ "total": counts["total"].as_u64().unwrap_or(0), "live": counts["live"].as_u64().unwrap_or(0) });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_and_build_one_update_with_its_audit_row() {
        assert_eq!(parse_quota("--rows", "10"), Ok(Some(10)));
        assert_eq!(parse_quota("--rows", "default"), Ok(None));
        assert!(parse_quota("--rows", "-1").is_err());
        assert!(parse_quota("--bytes", "1e9").is_err());
        assert!(parse_quota("--bytes", "1; DROP TABLE orgs").is_err());
        let org = OrgId::generate(1, &[1; ID_ENTROPY_BYTES]);
        let sql = set_quota_sql(&org, Some(Some(10)), Some(None), 7);
        assert!(sql.starts_with(&format!("UPDATE orgs SET quota_rows = 10, quota_bytes = NULL WHERE id = '{org}';")));
        assert!(sql.contains(r#"'{"actor":"operator","quota_bytes":"default","quota_rows":10}'"#), "{sql}");
        assert!(sql.contains("'org.quota_set'") && sql.contains("WHERE EXISTS (SELECT 1 FROM orgs"));
        assert!(!set_quota_sql(&org, None, Some(Some(5)), 7).contains("quota_rows ="));
    }

    #[test]
    fn quota_output_is_read_from_the_last_statement() {
        let out = r#"[{"results":[],"success":true},{"results":[],"success":true},
            {"results":[{"used_rows":3,"used_bytes":40,"quota_rows":10,"quota_bytes":null}],"success":true}]"#;
        let u = usage_from_output(out).unwrap().unwrap();
        assert_eq!((u.rows, u.bytes, u.quota_rows), (3, 40, 10));
        assert_eq!(u.quota_bytes, interlog_core::org::DEFAULT_QUOTA_BYTES);
        assert_eq!(usage_from_output(r#"[{"results":[]},{"results":[]}]"#), Ok(None));
    }
}
