//! The OrgActor's key storage: loading its org's keys, creating, revoking and
//! rotating them, re-hashing under a new pepper and flushing `last_used_at`.

use crate::platform::{all, ms, run, storage_error};
use interlog_core::auth::{KeyState, KeyStatus};
use interlog_core::keyring::{KeyRing, Rotation};
use interlog_core::keys::{is_prefix_collision, KeyMaterial, KeyRecord, KeyRequest};
use interlog_core::protocol::Refusal;
use interlog_core::{ApiError, KeyPrefix, OrgId, Scopes};
use serde::Deserialize;
use worker::wasm_bindgen::JsValue;
use worker::{console_error, D1Database};

type Res<T> = Result<T, ApiError>;

#[derive(Deserialize)]
struct KeyRow {
    prefix: String,
    name: String,
    scopes: String,
    state: String,
    created_at: f64,
    last_used_at: Option<f64>,
    expires_at: Option<f64>,
    replaced_by: Option<String>,
}

/// Every key of `org`.
pub async fn load(db: &D1Database, org: &OrgId) -> Res<KeyRing> {
    let rows: Vec<KeyRow> = all(
        db,
        "SELECT prefix, name, scopes, state, created_at, last_used_at, expires_at, replaced_by \
             FROM api_keys WHERE org_id = ?1",
        &[org.as_str().into()],
        "keys bind",
    )
    .await?;
    let mut records = Vec::with_capacity(rows.len());
    for r in rows {
        let (Ok(prefix), Some(scopes), Some(status)) =
            (KeyPrefix::parse(&r.prefix), Scopes::from_db(&r.scopes), KeyStatus::parse(&r.state))
        else {
            console_error!("skipping unreadable api_keys row (prefix {})", r.prefix);
            continue;
        };
        let state = KeyState { prefix, scopes, status, expires_at: r.expires_at.map(|v| v as i64) };
        records.push(KeyRecord {
            state,
            name: r.name,
            created_at: r.created_at as i64,
            last_used_at: r.last_used_at.map(|v| v as i64),
            replaced_by: r.replaced_by,
        });
    }
    Ok(KeyRing::new(records))
}

fn insert_statement(
    db: &D1Database,
    org: &OrgId,
    name: &str,
    scopes: Scopes,
    expires_at: Option<i64>,
    m: &KeyMaterial,
    now: i64,
) -> Res<worker::D1PreparedStatement> {
    db.prepare(
        "INSERT INTO api_keys (prefix, org_id, name, scopes, hash, pepper_version, state, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?8)",
    )
    .bind(&[
        m.prefix.as_str().into(),
        org.as_str().into(),
        name.into(),
        scopes.to_db().into(),
        m.hash.as_str().into(),
        JsValue::from_f64(f64::from(m.pepper_version)),
        ms(now),
        expires_at.map_or(JsValue::NULL, ms),
    ])
    .map_err(|e| storage_error("key insert bind", e))
}

/// A taken prefix is its own refusal (the front Worker mints another key);
/// anything else is a storage failure.
fn collision_or(err: worker::Error, context: &str) -> Refusal {
    if is_prefix_collision(&err.to_string()) {
        Refusal::PrefixCollision
    } else {
        storage_error(context, err).into()
    }
}

/// Stores a new key.
pub async fn create(
    db: &D1Database,
    org: &OrgId,
    req: &KeyRequest,
    m: &KeyMaterial,
    now: i64,
) -> Result<KeyRecord, Refusal> {
    insert_statement(db, org, &req.name, req.scopes, req.expires_at, m, now)?
        .run()
        .await
        .map_err(|e| collision_or(e, "key insert"))?;
    Ok(KeyRecord::new_active(m.prefix, req.name.clone(), req.scopes, req.expires_at, now))
}

/// Marks a key revoked.
pub async fn revoke(db: &D1Database, org: &OrgId, prefix: &KeyPrefix, now: i64) -> Res<()> {
    let sql = "UPDATE api_keys SET state = 'revoked', revoked_at = ?1 WHERE org_id = ?2 AND prefix = ?3";
    run(db, sql, &[ms(now), org.as_str().into(), prefix.as_str().into()], "revoke").await?;
    Ok(())
}

/// Stores the successor and shortens the old key's life, in one transaction.
pub async fn rotate(
    db: &D1Database,
    org: &OrgId,
    r: &Rotation,
    m: &KeyMaterial,
    now: i64,
) -> Result<KeyRecord, Refusal> {
    let insert = insert_statement(db, org, &r.successor_name, r.scopes, r.expires_at, m, now)?;
    let old = r.old.state.prefix;
    let update = db
        .prepare("UPDATE api_keys SET expires_at = ?1, replaced_by = ?2 WHERE org_id = ?3 AND prefix = ?4")
        .bind(&[ms(r.old_expiry), m.prefix.as_str().into(), org.as_str().into(), old.as_str().into()])
        .map_err(|e| storage_error("rotate bind", e))?;
    db.batch(vec![insert, update]).await.map_err(|e| collision_or(e, "rotate"))?;
    Ok(r.successor(m.prefix, now))
}

/// Replaces a key's digest with one made under the current pepper.
pub async fn rehash(db: &D1Database, org: &OrgId, m: &KeyMaterial) -> Res<()> {
    let sql = "UPDATE api_keys SET hash = ?1, pepper_version = ?2 WHERE org_id = ?3 AND prefix = ?4";
    let version = JsValue::from_f64(f64::from(m.pepper_version));
    run(db, sql, &[m.hash.as_str().into(), version, org.as_str().into(), m.prefix.as_str().into()], "rehash").await?;
    Ok(())
}

/// Writes the remembered `last_used_at` values in one batch.
pub async fn flush_last_used(db: &D1Database, org: &OrgId, used: &[(KeyPrefix, i64)]) -> Res<()> {
    if used.is_empty() {
        return Ok(());
    }
    let mut stmts = Vec::with_capacity(used.len());
    for (prefix, at) in used {
        stmts.push(
            db.prepare(
                "UPDATE api_keys SET last_used_at = MAX(IFNULL(last_used_at, 0), ?1) WHERE org_id = ?2 AND prefix = ?3",
            )
            .bind(&[ms(*at), org.as_str().into(), prefix.as_str().into()])
            .map_err(|e| storage_error("last used bind", e))?,
        );
    }
    db.batch(stmts).await.map_err(|e| storage_error("last used flush", e))?;
    Ok(())
}
