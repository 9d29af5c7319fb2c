//! Key commands: create-key, list-keys, revoke-key (and the key insert that
//! create-org shares). Names, scopes and times follow core's rules, the ones
//! the API applies; listings use the API's key view.

use crate::args::{CreateKey, Global, OrgRef, RevokeKey};
use crate::audit;
use crate::d1::{self, lit};
use crate::fail::Failure;
use crate::material::{now_ms, pepper, random};
use crate::reconcile;
use interlog_core::audit::AuditAction;
use interlog_core::auth::{KeyState, KeyStatus};
use interlog_core::key::ENTROPY_BYTES;
use interlog_core::keyring::KeyRing;
use interlog_core::keys::{self, KeyRecord};
use interlog_core::timefmt::parse_rfc3339;
use interlog_core::{ApiKey, KeyPrefix, OrgId, Scope, Scopes};
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

/// Inserts a new key (retrying on the rare prefix collision) between
/// `before` statements and its `key.created` audit row, all in one
/// `wrangler d1 execute`. Returns the plaintext key.
pub fn insert_key(g: &Global, before: &str, new: &NewKey<'_>, now: i64) -> Result<ApiKey, Failure> {
    let pepper = pepper()?;
    for _ in 0..5 {
        let key = ApiKey::from_entropy(&random::<ENTROPY_BYTES>()?);
        let prefix = key.prefix();
        let detail = json!({
            "name": new.name,
            "scopes": new.scopes,
            "expires_at": new.expires_at.map(interlog_core::timefmt::rfc3339),
        });
        let sql = format!(
            "{before}INSERT INTO api_keys (prefix, org_id, name, scopes, hash, pepper_version, state, created_at, expires_at) \
             VALUES ({}, {}, {}, {}, {}, {}, 'active', {now}, {}); {}",
            lit(prefix.as_str()),
            lit(new.org.as_str()),
            lit(new.name),
            lit(&new.scopes.to_db()),
            lit(&pepper.digest(&key).to_hex()),
            pepper.version(),
            new.expires_at.map_or("NULL".into(), |e| e.to_string()),
            audit::insert(new.org, AuditAction::KeyCreated, Some(prefix.as_str()), detail, now, None),
        );
        match d1::execute(g, &sql) {
            Ok(_) => return Ok(key),
            Err(e) if keys::is_prefix_collision(&e.message) => {}
            Err(e) => return Err(e),
        }
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
    let key = insert_key(g, "", &new, now_ms())?;
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

/// The SQL of `revoke-key` at `now`: the revocation (of a key not yet
/// revoked), its audit row (only when this statement revoked it), the row.
fn revoke_sql(org: &OrgId, prefix: &KeyPrefix, now: i64) -> String {
    let (o, p) = (lit(org.as_str()), lit(prefix.as_str()));
    let this_key = format!("org_id = {o} AND prefix = {p}");
    let revoked_now = format!("EXISTS (SELECT 1 FROM api_keys WHERE {this_key} AND revoked_at = {now})");
    format!(
        "UPDATE api_keys SET state = 'revoked', revoked_at = {now} WHERE {this_key} AND state <> 'revoked'; \
         {} SELECT {KEY_COLUMNS}, revoked_at FROM api_keys WHERE {this_key};",
        audit::insert(org, AuditAction::KeyRevoked, Some(prefix.as_str()), json!({}), now, Some(&revoked_now)),
    )
}

/// `revoke-key`: revokes in D1 (authoritative: the revocation holds even if
/// what follows fails), then tells the running Worker so the org's actor
/// applies it to the next request. Idempotent: a revoked key is told again.
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
    let rows = d1::rows(&d1::execute(g, &revoke_sql(&org, &prefix, now))?, -1)?;
    let row = rows.first().ok_or_else(|| Failure::not_found(format!("no key {prefix} in org {org}")))?;
    let view = record(row).ok_or_else(|| Failure::internal(format!("unreadable api_keys row {prefix}")))?.view(now);
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
    fn a_revocation_is_audited_only_when_it_revoked() {
        let org = OrgId::generate(1, &[1; interlog_core::ids::ID_ENTROPY_BYTES]);
        let prefix = KeyPrefix::parse("ABCDEFGH").unwrap();
        let sql = revoke_sql(&org, &prefix, 42);
        let statements: Vec<&str> = sql.split("; ").collect();
        assert_eq!(statements.len(), 3, "{sql}");
        assert!(statements[0].starts_with("UPDATE api_keys SET state = 'revoked', revoked_at = 42 WHERE"));
        assert!(statements[0].ends_with("AND state <> 'revoked'"));
        assert!(statements[1].starts_with("INSERT INTO audit_log"));
        assert!(statements[1].contains("'key.revoked'") && statements[1].contains("AND revoked_at = 42)"));
        assert!(statements[2].starts_with("SELECT prefix"));
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
