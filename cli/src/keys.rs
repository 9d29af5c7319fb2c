//! Key commands: create-key, list-keys, revoke-key (and the key insert that
//! create-org shares). Names, scopes and times follow core's rules, the ones
//! the API applies; listings use the API's key view.

use crate::args::{CreateKey, Global, OrgRef, RevokeKey};
use crate::audit;
use crate::d1::{self, lit};
use crate::fail::Failure;
use crate::material::{now_ms, pepper, random};
use crate::reconcile;
use crate::shards;
use interlog_core::audit::AuditAction;
use interlog_core::auth::{KeyState, KeyStatus};
use interlog_core::key::ENTROPY_BYTES;
use interlog_core::keyring::KeyRing;
use interlog_core::keys::{self, KeyRecord};
use interlog_core::timefmt::parse_rfc3339;
use interlog_core::{ApiKey, KeyPrefix, OrgId, Pepper, Scope, Scopes};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The columns a key row is read with.
const KEY_COLUMNS: &str = "prefix, name, scopes, state, created_at, last_used_at, expires_at, replaced_by";

/// `--org`: an org id as core parses it.
pub fn org_id(text: &str) -> Result<OrgId, Failure> {
    OrgId::parse(text).ok_or_else(|| Failure::invalid("--org must be an org id (org_…)"))
}

/// An org or key name: core's key-name rule, the one `POST /v1/keys` applies.
pub fn check_name(name: &str) -> Result<(), Failure> {
    keys::check_name(name).map_err(|m| Failure::invalid(format!("name {m}")))
}

/// `--scopes ingest,read,admin`: scope names as core parses them, each trimmed.
pub fn parse_scopes(list: &str) -> Result<Scopes, Failure> {
    let scopes = list
        .split(',')
        .map(|x| Scope::parse(x.trim()).ok_or_else(|| Failure::invalid(format!("unknown scope {x}"))))
        .collect::<Result<Scopes, _>>()?;
    if scopes.is_empty() {
        return Err(Failure::invalid("at least one scope is required"));
    }
    Ok(scopes)
}

/// A new key's columns.
pub struct NewKey<'a> {
    pub org: &'a OrgId,
    pub name: &'a str,
    pub scopes: Scopes,
    pub expires_at: Option<i64>,
}

/// A fresh key.
pub fn generate_key() -> Result<ApiKey, Failure> {
    Ok(ApiKey::from_entropy(&random::<ENTROPY_BYTES>()?))
}

/// The directory INSERT of a new key, written only if its org is in the
/// directory.
pub fn key_insert_sql(new: &NewKey<'_>, key: &ApiKey, pepper: &Pepper, now: i64) -> String {
    let org = lit(new.org.as_str());
    format!(
        "INSERT INTO api_keys (prefix, org_id, name, scopes, hash, pepper_version, state, created_at, expires_at) \
         SELECT {}, {org}, {}, {}, {}, {}, 'active', {now}, {} WHERE EXISTS (SELECT 1 FROM orgs WHERE id = {org});",
        lit(key.prefix().as_str()),
        lit(new.name),
        lit(&new.scopes.to_db()),
        lit(&pepper.digest(key).to_hex()),
        pepper.version(),
        new.expires_at.map_or("NULL".into(), |e| e.to_string()),
    )
}

/// The `key.created` audit row of a new key (on the org's shard).
pub fn key_audit_sql(new: &NewKey<'_>, prefix: &KeyPrefix, now: i64) -> String {
    let detail = json!({
        "name": new.name,
        "scopes": new.scopes,
        "expires_at": new.expires_at.map(interlog_core::timefmt::rfc3339),
    });
    audit::insert(Some(new.org), AuditAction::KeyCreated, Some(prefix.as_str()), detail, now, None)
}

/// Deletes a key that was never shown (its audit row could not be written).
fn forget_key_sql(org: &OrgId, prefix: &KeyPrefix) -> String {
    format!("DELETE FROM api_keys WHERE org_id = {} AND prefix = {};", lit(org.as_str()), lit(prefix.as_str()))
}

/// Inserts a new key in the directory (retrying on the rare prefix
/// collision), reading the org's shard in the same batch, then writes its
/// `key.created` audit row on that shard; if that fails, the key is deleted
/// again (it was never shown). Returns the plaintext key.
pub fn insert_key(g: &Global, new: &NewKey<'_>, now: i64) -> Result<ApiKey, Failure> {
    let pepper = pepper()?;
    for _ in 0..5 {
        let key = generate_key()?;
        let sql = format!("{} {}", key_insert_sql(new, &key, &pepper, now), shards::shard_of_sql(new.org));
        let out = match d1::execute(g, &sql) {
            Ok(out) => out,
            Err(e) if keys::is_prefix_collision(&e.message) => continue,
            Err(e) => return Err(e),
        };
        let rows = d1::rows(&out, -1)?;
        let row = rows.first().ok_or_else(|| Failure::not_found(format!("no org {}", new.org)))?;
        let shard = shards::stored(new.org, row["shard"].as_str())?;
        if let Err(e) = d1::execute_shard(g, &shard, &key_audit_sql(new, &key.prefix(), now)) {
            let undone = d1::execute(g, &forget_key_sql(new.org, &key.prefix())).is_ok();
            return Err(Failure::storage(format!(
                "the key's audit row could not be written on shard {shard}, so the key was {} ({})",
                if undone { "not created" } else { "left unusable (never shown)" },
                e.message
            )));
        }
        return Ok(key);
    }
    Err(Failure::internal("could not find a free key prefix"))
}

/// `create-key`.
pub fn create(g: &Global, a: &CreateKey) -> Result<Value, Failure> {
    let org = org_id(&a.org)?;
    check_name(&a.name)?;
    let scopes = match &a.scopes {
        None => Scopes::all(),
        Some(s) => parse_scopes(s)?,
    };
    let expires_at = match &a.expires_at {
        None => None,
        Some(t) => Some(parse_rfc3339(t).ok_or("--expires-at must be RFC 3339")?),
    };
    let new = NewKey { org: &org, name: &a.name, scopes, expires_at };
    let key = insert_key(g, &new, now_ms())?;
    Ok(json!({ "org_id": org, "key": key.expose_secret(), "prefix": key.prefix() }))
}

/// A stored key row as the actor reads it (`None`: unreadable).
fn record(row: &Value) -> Option<KeyRecord> {
    let text = |k: &str| row[k].as_str();
    let time = |k: &str| row[k].as_f64().map(|v| v as i64);
    let state = KeyState {
        prefix: KeyPrefix::parse(text("prefix")?).ok()?,
        scopes: Scopes::from_db(text("scopes")?)?,
        status: KeyStatus::parse(text("state")?)?,
        expires_at: time("expires_at"),
    };
    Some(KeyRecord {
        state,
        name: text("name")?.to_string(),
        created_at: time("created_at")?,
        last_used_at: time("last_used_at"),
        replaced_by: text("replaced_by").map(String::from),
    })
}

/// `list-keys`: the API's key views, newest first.
pub fn list(g: &Global, a: &OrgRef) -> Result<Value, Failure> {
    let org = org_id(&a.org)?;
    let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = {};", lit(org.as_str()));
    let rows = d1::rows(&d1::execute(g, &sql)?, -1)?;
    let ring = KeyRing::new(rows.iter().filter_map(record));
    Ok(json!({ "org_id": org, "keys": ring.views(now_ms(), &HashMap::new()) }))
}

/// The directory SQL of `revoke-key` at `now`: the revocation (of a key not
/// yet revoked), the key's row, the org's shard.
fn revoke_sql(org: &OrgId, prefix: &KeyPrefix, now: i64) -> String {
    let (o, p) = (lit(org.as_str()), lit(prefix.as_str()));
    let this_key = format!("org_id = {o} AND prefix = {p}");
    format!(
        "UPDATE api_keys SET state = 'revoked', revoked_at = {now} WHERE {this_key} AND state <> 'revoked'; \
         SELECT {KEY_COLUMNS}, revoked_at FROM api_keys WHERE {this_key}; {}",
        shards::shard_of_sql(org)
    )
}

/// The shard SQL of `revoke-key`: the `key.revoked` audit row of a key
/// revoked at `at`, unless the shard has one for it already (a revocation is
/// audited once, whoever made it and however often the command runs).
fn revoke_audit_sql(org: &OrgId, prefix: &KeyPrefix, at: i64) -> String {
    let unaudited = format!(
        "NOT EXISTS (SELECT 1 FROM audit_log WHERE org_id = {} AND action = {} AND prefix = {})",
        lit(org.as_str()),
        lit(AuditAction::KeyRevoked.as_str()),
        lit(prefix.as_str())
    );
    audit::insert(Some(org), AuditAction::KeyRevoked, Some(prefix.as_str()), json!({}), at, Some(&unaudited))
}

/// `revoke-key`: revokes in the directory (authoritative: the revocation
/// holds even if what follows fails), writes its audit row on the org's
/// shard, then tells the running Worker so the org's actor applies it to the
/// next request. Idempotent: a revoked key is told again, and its audit row
/// written if it is missing.
pub fn revoke(g: &Global, a: &RevokeKey) -> Result<Value, Failure> {
    let org = org_id(&a.org)?;
    let prefix = KeyPrefix::parse(&a.prefix).map_err(|_| Failure::invalid("--prefix must be a key prefix"))?;
    // Checked before anything is written (an empty URL is no URL), so a
    // bad URL or a missing pepper never leaves a revocation untold.
    let notice = match a.url.as_deref().map(str::trim).filter(|u| !u.is_empty()) {
        Some(url) => Some((reconcile::endpoint(url).map(|_| url.to_string())?, pepper()?)),
        None => None,
    };
    let now = now_ms();
    let out = d1::execute(g, &revoke_sql(&org, &prefix, now))?;
    let rows = d1::rows(&out, -2)?;
    let row = rows.first().ok_or_else(|| Failure::not_found(format!("no key {prefix} in org {org}")))?;
    let view = record(row).ok_or_else(|| Failure::internal(format!("unreadable api_keys row {prefix}")))?.view(now);
    let shard = shards::stored(&org, d1::rows(&out, -1)?.first().and_then(|r| r["shard"].as_str()))?;
    let revoked_at = row["revoked_at"].as_f64().map_or(now, |t| t as i64);
    let audited = d1::execute_shard(g, &shard, &revoke_audit_sql(&org, &prefix, revoked_at)).map_err(|e| {
        Failure::storage(format!(
            "the key is revoked, but its audit row on shard {shard} was not written ({}); run the command again",
            e.message
        ))
    });
    let mut out = json!({
        "org_id": org,
        "prefix": prefix,
        "key": view,
        "revoked_now": row["revoked_at"].as_f64() == Some(now as f64),
    });
    match notice {
        Some((url, pepper)) => {
            reconcile::tell(&url, &pepper, &org, now_ms).map_err(|e| {
                Failure::reconcile(format!(
                    "the key is revoked in D1, but the running Worker was not told ({}); run the command again",
                    e.message
                ))
            })?;
            out["actor_told"] = json!(true);
        }
        None => {
            out["actor_told"] = json!(false);
            out["warning"] = json!(
                "no --url or INTERLOG_URL: the key is revoked in D1, and the org's running actor applies it \
                 when it next loads the org's keys (a restart or eviction); until then the key may still work"
            );
        }
    }
    audited?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked() {
        assert!(check_name("Acme").is_ok());
        assert!(check_name(&"é".repeat(128)).is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(129)).is_err());
        assert_eq!(check_name("a\nb").unwrap_err().message, "name must be 1-128 characters without control characters");
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(parse_scopes("read, ingest").map(Scopes::to_db), Ok("ingest,read".into()));
        assert_eq!(parse_scopes("admin,read,ingest"), Ok(Scopes::all()));
        assert_eq!(parse_scopes("read,root").unwrap_err().message, "unknown scope root");
        assert_eq!(parse_scopes("").unwrap_err().message, "unknown scope ");
    }

    #[test]
    fn prefix_collisions_are_recognised() {
        let wrangler = "wrangler d1 execute failed (exit status: 1): \
                        X [ERROR] UNIQUE constraint failed: api_keys.prefix: SQLITE_CONSTRAINT_PRIMARYKEY";
        assert!(keys::is_prefix_collision(wrangler));
        assert!(!keys::is_prefix_collision(
            "X [ERROR] UNIQUE constraint failed: orgs.id: SQLITE_CONSTRAINT_PRIMARYKEY"
        ));
        assert!(!keys::is_prefix_collision("X [ERROR] NOT NULL constraint failed: api_keys.hash"));
    }

    #[test]
    fn a_revocation_reads_the_key_and_the_shard_and_is_audited_once() {
        let org = OrgId::generate(1, &[1; interlog_core::ids::ID_ENTROPY_BYTES]);
        let prefix = KeyPrefix::parse("ABCDEFGH").unwrap();
        let sql = revoke_sql(&org, &prefix, 42);
        let statements: Vec<&str> = sql.split("; ").collect();
        assert_eq!(statements.len(), 3, "{sql}");
        assert!(statements[0].starts_with("UPDATE api_keys SET state = 'revoked', revoked_at = 42 WHERE"));
        assert!(statements[0].ends_with("AND state <> 'revoked'"));
        assert!(statements[1].starts_with("SELECT prefix"));
        assert_eq!(statements[2], format!("SELECT shard FROM orgs WHERE id = '{org}';"));
        let audit = revoke_audit_sql(&org, &prefix, 40);
        assert!(audit.starts_with("INSERT INTO audit_log") && audit.contains("'key.revoked'"));
        assert!(audit.contains(&format!("SELECT '{org}', 40, 'key.revoked', NULL, 'ABCDEFGH'")), "{audit}");
        assert!(audit.ends_with(&format!(
            "WHERE NOT EXISTS (SELECT 1 FROM audit_log WHERE org_id = '{org}' AND action = 'key.revoked' \
             AND prefix = 'ABCDEFGH');"
        )));
    }

    #[test]
    fn a_key_is_inserted_only_for_an_org_of_the_directory() {
        let org = OrgId::generate(1, &[1; interlog_core::ids::ID_ENTROPY_BYTES]);
        let pepper = Pepper::new(3, "p".repeat(32)).unwrap();
        let key = ApiKey::from_entropy(&[7; ENTROPY_BYTES]);
        let new = NewKey { org: &org, name: "O'Brien", scopes: Scopes::all(), expires_at: Some(9) };
        let sql = key_insert_sql(&new, &key, &pepper, 5);
        assert!(sql.starts_with("INSERT INTO api_keys (prefix, org_id"), "{sql}");
        assert!(sql.contains(&format!("'{}', '{org}', 'O''Brien', 'ingest,read,admin', '", key.prefix())), "{sql}");
        assert!(sql.contains(", 3, 'active', 5, 9 WHERE EXISTS (SELECT 1 FROM orgs WHERE id = "));
        assert!(!sql.contains(&key.expose_secret()), "never the key itself");
        let audit = key_audit_sql(&new, &key.prefix(), 5);
        assert!(audit.contains("'key.created'") && audit.contains(&format!("'{}'", key.prefix())));
        assert!(audit.contains(r#""expires_at":"1970-01-01T00:00:00.009Z""#), "{audit}");
    }

    #[test]
    fn stored_rows_read_as_the_actor_reads_them() {
        let row = json!({"prefix":"ABCDEFGH","name":"k","scopes":"ingest,read","state":"revoked",
            "created_at":5.0,"last_used_at":null,"expires_at":9.0,"replaced_by":null});
        let r = record(&row).unwrap();
        assert_eq!((r.state.status, r.state.expires_at, r.created_at), (KeyStatus::Revoked, Some(9), 5));
        assert!(record(&json!({"prefix":"bad"})).is_none());
    }
}
