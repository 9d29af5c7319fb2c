//! Org commands: create-org, set-quota, list-orgs, show-org. The directory
//! holds each org's name and shard; its settings and usage are on its shard.

use crate::args::{CreateOrg, Global, ListOrgs, OrgRef, SetQuota};
use crate::audit;
use crate::d1::{self, lit};
use crate::fail::Failure;
use crate::keys::{check_name, generate_key, key_audit_sql, key_insert_sql, org_id, NewKey};
use crate::material::{now_ms, pepper, random};
use crate::shards;
use interlog_core::audit::AuditAction;
use interlog_core::ids::ID_ENTROPY_BYTES;
use interlog_core::keys;
use interlog_core::moving::{MoveState, Phase, Progress};
use interlog_core::org::OrgUsage;
use interlog_core::shard::ShardId;
use interlog_core::timefmt::rfc3339;
use interlog_core::{KeyPrefix, OrgId, Scopes};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};

/// The usage columns of an org row.
const USAGE_COLUMNS: &str = "used_rows, used_bytes, quota_rows, quota_bytes";

/// The shard SQL of `create-org`: the org's data row, its `org.created` and
/// its first key's `key.created` audit rows (one batch).
fn create_on_shard_sql(org: &OrgId, name: &str, key: &NewKey<'_>, prefix: &KeyPrefix, now: i64) -> String {
    format!(
        "INSERT INTO orgs (id, name, allowed_origins, created_at, updated_at) VALUES ({}, {}, '[]', {now}, {now}); {} {}",
        lit(org.as_str()),
        lit(name),
        audit::insert(Some(org), AuditAction::OrgCreated, None, json!({ "name": name }), now, None),
        key_audit_sql(key, prefix, now),
    )
}

/// The directory row of a new org on `shard`; it fails (and with it the
/// batch) if the directory says the shard is closed.
fn create_in_directory_sql(org: &OrgId, name: &str, shard: &ShardId, now: i64) -> String {
    format!(
        "INSERT INTO orgs (id, name, shard, created_at) VALUES ({}, {}, {}, {now});",
        lit(org.as_str()),
        lit(name),
        shards::closed_guard(shard)
    )
}

/// The first key's audit row names another prefix (its first prefix was taken).
fn audit_prefix_sql(org: &OrgId, old: &KeyPrefix, new: &KeyPrefix) -> String {
    format!(
        "UPDATE audit_log SET prefix = {} WHERE org_id = {} AND action = {} AND prefix = {};",
        lit(new.as_str()),
        lit(org.as_str()),
        lit(AuditAction::KeyCreated.as_str()),
        lit(old.as_str())
    )
}

/// Removes what a failed `create-org` wrote (best effort: the key was never
/// shown, so nothing can use the org).
fn undo_create(g: &Global, org: &OrgId, shard: &ShardId) {
    let id = lit(org.as_str());
    let _ = d1::execute(g, &format!("DELETE FROM api_keys WHERE org_id = {id}; DELETE FROM orgs WHERE id = {id};"));
    let _ = d1::execute_shard(
        g,
        shard,
        &format!("DELETE FROM audit_log WHERE org_id = {id}; DELETE FROM orgs WHERE id = {id};"),
    );
}

/// `create-org`: the shard chosen (`--shard`, or the placement rule over the
/// configured shards, their states and org counts in the directory), the
/// org's data row and audit rows written there, then its directory row and
/// first admin key (one batch, refused if the shard is closed by then) — so
/// the directory never names an org its shard does not have.
pub fn create(g: &Global, a: &CreateOrg) -> Result<Value, Failure> {
    check_name(&a.name)?;
    let pepper = pepper()?;
    let configured = shards::configured(g)?;
    let shard = match &a.shard {
        Some(want) => shards::requested(&configured, want)?.id.clone(),
        None => shards::choose(&configured, &shards::Directory::read(g)?)?,
    };
    let now = now_ms();
    let org = OrgId::generate(now.unsigned_abs(), &random::<ID_ENTROPY_BYTES>()?);
    let new = NewKey { org: &org, name: "initial admin key", scopes: Scopes::all(), expires_at: None };
    let mut key = generate_key()?;
    d1::execute_shard(g, &shard, &create_on_shard_sql(&org, &a.name, &new, &key.prefix(), now))?;
    let directory_row = create_in_directory_sql(&org, &a.name, &shard, now);
    for _ in 0..5 {
        let sql = format!("{directory_row} {}", key_insert_sql(&new, &key, &pepper, now));
        match d1::execute(g, &sql) {
            Ok(_) => return Ok(json!({ "org_id": org, "key": key.expose_secret(), "shard": shard })),
            Err(e) if keys::is_prefix_collision(&e.message) => {
                let other = generate_key()?;
                if let Err(e) = d1::execute_shard(g, &shard, &audit_prefix_sql(&org, &key.prefix(), &other.prefix())) {
                    undo_create(g, &org, &shard);
                    return Err(e);
                }
                key = other;
            }
            Err(e) if shards::is_closed_refusal(&e.message) => {
                undo_create(g, &org, &shard);
                return Err(shards::closed(&shard));
            }
            Err(e) => {
                undo_create(g, &org, &shard);
                return Err(e);
            }
        }
    }
    undo_create(g, &org, &shard);
    Err(Failure::internal("could not find a free key prefix"))
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
        audit::insert(Some(org), AuditAction::QuotaSet, None, Value::Object(detail), now, Some(&exists)),
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
    let shard = shards::shard_of(g, &org)?;
    let out = d1::execute_shard(g, &shard, &set_quota_sql(&org, rows, bytes, now_ms()))?;
    let usage = usage_from_output(&out)?
        .ok_or_else(|| Failure::not_found(format!("org {org} has no row on its shard {shard}")))?;
    Ok(json!({ "org_id": org, "usage": usage }))
}

/// One org as listed: its directory row (`id, name, shard, created_at`) and
/// its shard's `orgs` row (`None`: not there, usage `null`).
fn summary(row: &Value, data: Option<&Value>) -> Value {
    json!({
        "org_id": row["id"],
        "name": row["name"],
        "shard": row["shard"],
        "created_at": row["created_at"].as_f64().map(|t| rfc3339(t as i64)),
        "usage": data.map(usage),
    })
}

/// The shard SQL reading the usage of `ids` (all on that shard).
fn usage_sql(ids: &[&str]) -> String {
    let list = ids.iter().map(|i| lit(i)).collect::<Vec<_>>().join(", ");
    format!("SELECT id, {USAGE_COLUMNS} FROM orgs WHERE id IN ({list});")
}

/// The directory rows grouped by the shard they name (checked names only).
fn by_shard(rows: &[Value]) -> Result<BTreeMap<ShardId, Vec<&str>>, Failure> {
    let mut out: BTreeMap<ShardId, Vec<&str>> = BTreeMap::new();
    for row in rows {
        let id = row["id"].as_str().unwrap_or_default();
        let shard = ShardId::parse(row["shard"].as_str().unwrap_or_default())
            .ok_or_else(|| Failure::internal(format!("the directory row of org {id} names no valid shard")))?;
        out.entry(shard).or_default().push(id);
    }
    Ok(out)
}

/// `list-orgs`: newest first, at most `--limit`, each with its shard and the
/// usage read from that shard (one read per shard).
pub fn list(g: &Global, a: &ListOrgs) -> Result<Value, Failure> {
    let sql =
        format!("SELECT id, name, shard, created_at FROM orgs ORDER BY created_at DESC, id DESC LIMIT {};", a.limit);
    let rows = d1::rows(&d1::execute(g, &sql)?, -1)?;
    let mut data: HashMap<String, Value> = HashMap::new();
    for (shard, ids) in by_shard(&rows)? {
        for row in d1::rows(&d1::execute_shard(g, &shard, &usage_sql(&ids))?, -1)? {
            if let Some(id) = row["id"].as_str() {
                data.insert(id.to_string(), row.clone());
            }
        }
    }
    let orgs: Vec<Value> = rows.iter().map(|r| summary(r, r["id"].as_str().and_then(|id| data.get(id)))).collect();
    Ok(json!({ "orgs": orgs }))
}

/// A move in progress as `show-org` shows it: the report a step of the move
/// answers, with the row's start and last change.
fn move_view(org: &OrgId, row: &Value) -> Value {
    let text = |k: &str| row[k].as_str().unwrap_or_default();
    let state = (|| {
        Some(MoveState {
            org_id: org.clone(),
            from: ShardId::parse(text("from_shard"))?,
            to: ShardId::parse(text("to_shard"))?,
            phase: Phase::parse(text("phase"))?,
            progress: serde_json::from_str::<Progress>(text("progress")).ok()?,
        })
    })();
    let mut out = match state {
        Some(s) => serde_json::to_value(s.report()).unwrap_or(Value::Null),
        None => json!({ "org_id": org, "from": row["from_shard"], "to": row["to_shard"], "phase": row["phase"] }),
    };
    out["started_at"] = json!(row["started_at"].as_f64().map(|t| rfc3339(t as i64)));
    out["updated_at"] = json!(row["updated_at"].as_f64().map(|t| rfc3339(t as i64)));
    out
}

/// `show-org`: the org's shard, settings, usage, how many of its keys are
/// live, and its move between shards if one is in progress.
pub fn show(g: &Global, a: &OrgRef) -> Result<Value, Failure> {
    let org = org_id(&a.org)?;
    let id = lit(org.as_str());
    let now = now_ms();
    let sql = format!(
        "SELECT id, name, shard, created_at FROM orgs WHERE id = {id}; \
         SELECT COUNT(*) AS total, COALESCE(SUM(state = 'active' AND (expires_at IS NULL OR expires_at > {now})), 0) \
         AS live FROM api_keys WHERE org_id = {id}; \
         SELECT from_shard, to_shard, phase, progress, started_at, updated_at FROM org_moves WHERE org_id = {id};"
    );
    let out = d1::execute(g, &sql)?;
    let rows = d1::rows(&out, 0)?;
    let row = rows.first().ok_or_else(|| Failure::not_found(format!("no org {org}")))?;
    let counts = d1::rows(&out, 1)?.first().cloned().unwrap_or(Value::Null);
    let moving = d1::rows(&out, 2)?.first().map(|m| move_view(&org, m));
    let shard = shards::stored(&org, row["shard"].as_str())?;
    let data_sql = format!("SELECT allowed_origins, updated_at, {USAGE_COLUMNS} FROM orgs WHERE id = {id};");
    let data_rows = d1::rows(&d1::execute_shard(g, &shard, &data_sql)?, -1)?;
    let data = data_rows.first();
    let origins: Value = data
        .and_then(|d| d["allowed_origins"].as_str())
        .and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or(json!([]));
    let mut out = summary(row, data);
    out["allowed_origins"] = origins;
    out["updated_at"] = json!(data.and_then(|d| d["updated_at"].as_f64()).map(|t| rfc3339(t as i64)));
    out["keys"] =
        json!({ "total": counts["total"].as_u64().unwrap_or(0), "live": counts["live"].as_u64().unwrap_or(0) });
    if let Some(m) = moving {
        out["move"] = m;
    }
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

    fn org() -> OrgId {
        OrgId::generate(1, &[1; ID_ENTROPY_BYTES])
    }

    #[test]
    fn a_new_org_is_written_on_its_shard_then_in_the_directory() {
        let org = org();
        let new = NewKey { org: &org, name: "initial admin key", scopes: Scopes::all(), expires_at: None };
        let prefix = KeyPrefix::parse("ABCDEFGH").unwrap();
        let on_shard = create_on_shard_sql(&org, "O'Hara", &new, &prefix, 7);
        let statements: Vec<&str> = on_shard.split("; ").collect();
        assert_eq!(statements.len(), 3, "{on_shard}");
        assert_eq!(
            statements[0],
            format!(
                "INSERT INTO orgs (id, name, allowed_origins, created_at, updated_at) VALUES ('{org}', 'O''Hara', '[]', 7, 7)"
            )
        );
        assert!(statements[1].contains("'org.created'") && statements[1].contains(r#""name":"O''Hara""#));
        assert!(statements[2].contains("'key.created', NULL, 'ABCDEFGH'"), "{}", statements[2]);
        let shard = ShardId::parse("DATA_2").unwrap();
        assert_eq!(
            create_in_directory_sql(&org, "O'Hara", &shard, 7),
            format!(
                "INSERT INTO orgs (id, name, shard, created_at) VALUES ('{org}', 'O''Hara', {}, 7);",
                shards::closed_guard(&shard)
            )
        );
        let moved = audit_prefix_sql(&org, &prefix, &KeyPrefix::parse("HGFEDCBA").unwrap());
        assert!(moved.starts_with("UPDATE audit_log SET prefix = 'HGFEDCBA' WHERE org_id = "), "{moved}");
        assert!(moved.ends_with("AND action = 'key.created' AND prefix = 'ABCDEFGH';"));
    }

    #[test]
    fn listed_orgs_are_read_per_shard() {
        let rows = vec![
            json!({"id": "org_a", "shard": "DATA_2"}),
            json!({"id": "org_b", "shard": "DATA_1"}),
            json!({"id": "org_c", "shard": "DATA_2"}),
        ];
        let grouped = by_shard(&rows).unwrap();
        let seen: Vec<(&str, &[&str])> = grouped.iter().map(|(s, ids)| (s.as_str(), ids.as_slice())).collect();
        assert_eq!(seen, [("DATA_1", &["org_b"][..]), ("DATA_2", &["org_a", "org_c"][..])]);
        assert_eq!(by_shard(&[json!({"id": "org_d", "shard": "DB"})]).unwrap_err().code, "INTERNAL");
        assert_eq!(
            usage_sql(&["org_a", "o'c"]),
            "SELECT id, used_rows, used_bytes, quota_rows, quota_bytes FROM orgs WHERE id IN ('org_a', 'o''c');"
        );
        let listed = summary(&json!({"id": "org_a", "name": "A", "shard": "DATA_2", "created_at": 0}), None);
        assert_eq!(listed["shard"], "DATA_2");
        assert_eq!(listed["usage"], Value::Null, "no row on the shard: no usage");
    }

    #[test]
    fn a_move_in_progress_is_shown_as_its_report() {
        let org = org();
        let row = json!({"from_shard": "DATA_1", "to_shard": "DATA_2", "phase": "copying",
            "progress": r#"{"table":1,"copied":{"orgs":1,"interactions":200},"attempt":2}"#,
            "started_at": 0, "updated_at": 1000});
        let shown = move_view(&org, &row);
        assert_eq!((shown["from"].as_str(), shown["to"].as_str()), (Some("DATA_1"), Some("DATA_2")));
        let second = interlog_core::shard::TABLES[1].name;
        assert_eq!((shown["phase"].as_str(), shown["table"].as_str()), (Some("copying"), Some(second)));
        assert_eq!(shown["copied"], json!({"orgs": 1, "interactions": 200}));
        assert_eq!((shown["attempt"].as_u64(), shown["done"].as_bool()), (Some(2), Some(false)));
        assert_eq!(shown["updated_at"], "1970-01-01T00:00:01.000Z");
        let mut unreadable = row.clone();
        unreadable["progress"] = json!("not json");
        let shown = move_view(&org, &unreadable);
        assert_eq!((shown["phase"].as_str(), shown["to"].as_str()), (Some("copying"), Some("DATA_2")));
    }
}
