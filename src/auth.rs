//! Key verification in the front Worker: parse → directory lookup by prefix →
//! `core::credential::check` (peppered hash, constant-time compare, the same
//! work for every outcome). The caller holds the answer to the 80 ms floor,
//! and the org's actor confirms the key is live before serving anything.

use crate::actor;
use interlog_core::audit::{AuditAction, AuditEvent};
use interlog_core::auth::{parse_authorization, DUMMY_LOOKUP_PREFIX};
use interlog_core::config::{binding, Config};
use interlog_core::credential::{check, Credential, Peppers, StoredKey};
use interlog_core::cursor::CursorKey;
use interlog_core::keys::KeyMaterial;
use interlog_core::protocol::CallMeta;
use interlog_core::{ApiError, ApiKey, KeyDigest, KeyPrefix, OrgId, Pepper};
use interlog_durable::audit::{self, Asker};
use interlog_durable::platform::{db, first};
use serde::Deserialize;
use std::cell::RefCell;
use worker::{Env, Request};

/// How long an isolate keeps the peppers before reading them again.
const PEPPER_TTL_MS: i64 = 60_000;
const CURSOR_LABEL: &str = "cursor/v1";

thread_local! {
    static PEPPERS: RefCell<Option<(i64, Peppers)>> = const { RefCell::new(None) };
}

/// A key whose hash verified; the org's actor still decides if it is live.
pub struct Verified {
    pub org: OrgId,
    pub prefix: KeyPrefix,
    /// The current pepper (mints keys, signs cursors).
    pub pepper: Pepper,
    /// A digest under the current pepper when the stored one used the previous.
    pub rehash: Option<KeyMaterial>,
}

impl Verified {
    /// The key that signs this org's page cursors.
    pub fn cursor_key(&self) -> CursorKey {
        CursorKey::new(self.pepper.derive(CURSOR_LABEL))
    }

    /// Who asks, for every actor call of this request.
    pub fn meta(&self, request: &Incoming) -> CallMeta {
        CallMeta { org_id: self.org.clone(), request_id: request.id.clone(), client_ip: request.ip }
    }
}

/// What the front knows of a request before authenticating it.
#[derive(Debug, Clone)]
pub struct Incoming {
    pub id: String,
    pub ip: Option<interlog_core::netaddr::ClientIp>,
    /// When the request arrived (the clock is read once per request).
    pub now_ms: i64,
}

fn unavailable(detail: String) -> ApiError {
    ApiError::Unavailable { retry_after_s: 5, detail }
}

async fn secret(env: &Env, name: &str) -> Result<String, ApiError> {
    env.secret_store(name)
        .map_err(|e| unavailable(format!("{name} binding: {e}")))?
        .get()
        .await
        .map_err(|e| unavailable(format!("{name} secret: {e}")))?
        .ok_or_else(|| unavailable(format!("{name} secret is empty")))
}

/// The peppers, read from the Secrets Store at most once a minute per isolate
/// (every outcome uses the same cached value, so timing is unaffected).
async fn load_peppers(env: &Env, cfg: &Config, now: i64) -> Result<Peppers, ApiError> {
    let cached =
        PEPPERS.with(|c| c.borrow().as_ref().filter(|(at, _)| now - at < PEPPER_TTL_MS).map(|(_, p)| p.clone()));
    if let Some(p) = cached {
        return Ok(p);
    }
    let current = Pepper::new(cfg.pepper_version, secret(env, binding::PEPPER).await?)
        .map_err(|e| unavailable(format!("PEPPER: {e}")))?;
    let previous = match cfg.pepper_previous_version {
        None => None,
        Some(v) => Some(
            Pepper::new(v, secret(env, binding::PEPPER_PREVIOUS).await?)
                .map_err(|e| unavailable(format!("PEPPER_PREVIOUS: {e}")))?,
        ),
    };
    let fresh = Peppers { current, previous };
    PEPPERS.with(|c| *c.borrow_mut() = Some((now, fresh.clone())));
    Ok(fresh)
}

#[derive(Deserialize)]
struct KeyRow {
    org_id: String,
    hash: String,
    pepper_version: f64,
}

/// The directory row of `prefix` (a dummy prefix when none parsed, so every
/// outcome runs the same query).
async fn lookup(env: &Env, prefix: Option<KeyPrefix>) -> Result<Option<StoredKey>, ApiError> {
    let text = prefix.map_or_else(|| DUMMY_LOOKUP_PREFIX.to_string(), |p| p.to_string());
    let sql = "SELECT org_id, hash, pepper_version FROM api_keys WHERE prefix = ?1";
    let row: Option<KeyRow> = first(&db(env)?, sql, &[text.into()], "key lookup").await?;
    row.map(|r| {
        let org = OrgId::parse(&r.org_id).ok_or_else(|| ApiError::internal("api_keys row holds an invalid org id"))?;
        Ok(StoredKey { org, digest: KeyDigest::from_hex(&r.hash), pepper_version: r.pepper_version as u32 })
    })
    .transpose()
}

/// Verifies the presented key. Every failure is audited (org-less ones here,
/// wrong secrets by the org's actor) and comes back as the uniform 401.
pub async fn verify(req: &Request, env: &Env, cfg: &Config, incoming: &Incoming) -> Result<Verified, ApiError> {
    let header = req.headers().get("authorization").ok().flatten();
    let presented = parse_authorization(header.as_deref());
    let row = lookup(env, presented.as_ref().ok().map(ApiKey::prefix)).await?;
    let peppers = load_peppers(env, cfg, incoming.now_ms).await?;
    let (credential, _) = check(&presented, row.as_ref(), &peppers);
    match credential {
        Credential::Verified { org, prefix, rehash } => Ok(Verified { org, prefix, pepper: peppers.current, rehash }),
        Credential::WrongSecret { org, prefix } => {
            let meta = CallMeta { org_id: org, request_id: incoming.id.clone(), client_ip: incoming.ip };
            // Recorded by the org's actor; the answer is the same 401 whatever it says.
            let _ = actor::record_auth_failure(env, meta, prefix).await;
            Err(ApiError::Unauthorized)
        }
        Credential::Refused { reason, prefix } => {
            let event = AuditEvent::new(AuditAction::AuthFailure, prefix).with_reason(reason.reason());
            let who = Asker { org: None, request_id: &incoming.id, ip: incoming.ip };
            // Logged inside; the client's answer is the same either way.
            let _ = audit::write(&db(env)?, who, &event, incoming.now_ms).await;
            Err(ApiError::Unauthorized)
        }
    }
}
