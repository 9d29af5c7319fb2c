//! Key verification in the front Worker: parse → directory lookup by prefix →
//! `core::credential::check` (peppered hash, constant-time compare, the same
//! work for every outcome). The caller holds the answer to the 80 ms floor,
//! and the org's actor confirms the key is live before serving anything.

use crate::actor;
use interlog_core::audit::{AuditAction, AuditEvent};
use interlog_core::auth::{parse_authorization, AuthFailure, DUMMY_LOOKUP_PREFIX};
use interlog_core::config::{binding, Config};
use interlog_core::credential::{check, Credential, Peppers, StoredKey};
use interlog_core::cursor::CursorKey;
use interlog_core::directory::DirectoryCache;
use interlog_core::keys::KeyMaterial;
use interlog_core::pepper_cache::{PepperCache, PepperVersions};
use interlog_core::protocol::CallMeta;
use interlog_core::{ApiError, ApiKey, KeyDigest, KeyPrefix, OrgId, Pepper};
use interlog_durable::audit::{self, Asker};
use interlog_durable::platform::{directory, first};
use serde::Deserialize;
use std::cell::RefCell;
use worker::{Env, Request};

const CURSOR_LABEL: &str = "cursor/v1";

thread_local! {
    /// This isolate's peppers, keyed by the configured versions (see `core::pepper_cache`).
    static PEPPERS: RefCell<PepperCache> = const { RefCell::new(PepperCache::new()) };
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

/// The peppers for the configured versions: from this isolate's cache when
/// read under the same versions less than a minute ago (then `true`), else
/// from the Secrets Store. Every outcome uses the same value, so timing is
/// unaffected.
async fn load_peppers(env: &Env, cfg: &Config, now: i64) -> Result<(Peppers, bool), ApiError> {
    let versions = PepperVersions { current: cfg.pepper_version, previous: cfg.pepper_previous_version };
    if let Some(p) = PEPPERS.with(|c| c.borrow().get(versions, now)) {
        return Ok((p, true));
    }
    Ok((read_peppers(env, cfg, now).await?, false))
}

/// Reads the peppers of the configured versions from the Secrets Store and
/// caches them.
async fn read_peppers(env: &Env, cfg: &Config, now: i64) -> Result<Peppers, ApiError> {
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
    PEPPERS.with(|c| c.borrow_mut().put(fresh.clone(), now));
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
    let row: Option<KeyRow> = first(&directory(env)?, sql, &[text.into()], "key lookup").await?;
    row.map(|r| {
        let org = OrgId::parse(&r.org_id).ok_or_else(|| ApiError::internal("api_keys row holds an invalid org id"))?;
        Ok(StoredKey { org, digest: KeyDigest::from_hex(&r.hash), pepper_version: r.pepper_version as u32 })
    })
    .transpose()
}

thread_local! {
    static DIRECTORY: RefCell<DirectoryCache> = RefCell::new(DirectoryCache::default());
}

/// The directory row of `prefix`: from the isolate's cache when a key of it
/// verified less than a minute ago, else from D1. Says which it was.
async fn directory_row(env: &Env, prefix: Option<KeyPrefix>, now: i64) -> Result<(Option<StoredKey>, bool), ApiError> {
    let cached = prefix.and_then(|p| DIRECTORY.with(|c| c.borrow().get(&p, now).cloned()));
    match cached {
        Some(row) => Ok((Some(row), true)),
        None => Ok((lookup(env, prefix).await?, false)),
    }
}

/// The credential check with its two second looks: a cached directory row
/// that does not match is read again from D1, and a failure under cached
/// peppers reads the secrets again (bounded). Returns the decision, the row
/// and the peppers it was made with.
async fn decide(
    env: &Env,
    cfg: &Config,
    presented: &Result<ApiKey, AuthFailure>,
    now: i64,
) -> Result<(Credential, Option<StoredKey>, Peppers), ApiError> {
    let prefix = presented.as_ref().ok().map(ApiKey::prefix);
    let (mut row, row_cached) = directory_row(env, prefix, now).await?;
    let (mut peppers, cached) = load_peppers(env, cfg, now).await?;
    let (mut credential, _) = check(presented, row.as_ref(), &peppers);
    // A cached row that no longer matches may be stale (the key was re-hashed
    // under a new pepper): D1 answers before it is a failure.
    if row_cached && !matches!(credential, Credential::Verified { .. }) {
        if let Some(p) = prefix {
            DIRECTORY.with(|c| c.borrow_mut().forget(&p));
        }
        row = lookup(env, prefix).await?;
        credential = check(presented, row.as_ref(), &peppers).0;
    }
    // A secret's value can change without a deployment, and a cached pepper
    // would then fail keys minted under the new value until the entry expires.
    // So a failed check under a cached pepper reads the secrets once more and
    // checks again, at most once a minute per isolate: wrong secrets cannot
    // make every request a Secrets Store read. Every failure (wrong secret,
    // unknown prefix, malformed, missing) takes that path alike, so the extra
    // read and digest do not tell one failure from another; they happen before
    // the floor, which hides them. If the read fails, the first answer stands.
    let failed = !matches!(credential, Credential::Verified { .. });
    if cached && failed && PEPPERS.with(|c| c.borrow_mut().take_reread(now)) {
        if let Ok(fresh) = read_peppers(env, cfg, now).await {
            peppers = fresh;
            credential = check(presented, row.as_ref(), &peppers).0;
        }
    }
    Ok((credential, row, peppers))
}

/// Verifies the presented key. Every failure is audited (org-less ones here,
/// wrong secrets by the org's actor) and comes back as the uniform 401.
pub async fn verify(req: &Request, env: &Env, cfg: &Config, incoming: &Incoming) -> Result<Verified, ApiError> {
    let header = req.headers().get("authorization").ok().flatten();
    let presented = parse_authorization(header.as_deref());
    let (credential, row, peppers) = decide(env, cfg, &presented, incoming.now_ms).await?;
    match credential {
        Credential::Verified { org, prefix, rehash } => {
            remember(prefix, row, rehash.is_some(), incoming.now_ms);
            Ok(Verified { org, prefix, pepper: peppers.current, rehash })
        }
        Credential::WrongSecret { org, prefix } => {
            let meta = CallMeta { org_id: org, request_id: incoming.id.clone(), client_ip: incoming.ip };
            // Recorded by the org's actor; the answer is the same 401 whatever it says.
            let _ = actor::record_auth_failure(env, meta, prefix).await;
            Err(ApiError::Unauthorized)
        }
        Credential::Refused { reason, prefix } => {
            let event = AuditEvent::new(AuditAction::AuthFailure, prefix).with_reason(reason.reason());
            let who = Asker { org: None, request_id: &incoming.id, ip: incoming.ip };
            // One row per client (else prefix) and reason a minute, counted;
            // logged inside; the client's answer is the same either way.
            let client = incoming.ip.map(|ip| ip.l1_key()).or_else(|| prefix.map(|p| p.to_string()));
            audit::orgless_failure(&directory(env)?, who, &event, client.as_deref().unwrap_or(""), incoming.now_ms)
                .await;
            Err(ApiError::Unauthorized)
        }
    }
}

/// Caches the directory row of a key that just verified. A row about to be
/// re-hashed is not cached (the next request reads the new one from D1).
fn remember(prefix: KeyPrefix, row: Option<StoredKey>, rehashing: bool, now: i64) {
    DIRECTORY.with(|c| match (row, rehashing) {
        (Some(row), false) => c.borrow_mut().remember(prefix, row, now),
        _ => c.borrow_mut().forget(&prefix),
    });
}
