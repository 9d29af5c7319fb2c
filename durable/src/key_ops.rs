//! Key operations of the org's admins: create, list, revoke, rotate. The
//! rules are `interlog_core::keyring`; this module stores their results and
//! writes their audit rows. Key material arrives minted (the plaintext never
//! reaches the actor).

use crate::ctx::Ctx;
use crate::keys;
use interlog_core::access::Authorized;
use interlog_core::audit::{AuditAction, AuditEvent};
use interlog_core::keyring::Revocation;
use interlog_core::keys::{KeyMaterial, KeyRequest};
use interlog_core::protocol::{Outcome, Refusal};
use interlog_core::KeyPrefix;
use serde_json::json;

type Answer = Result<Outcome, Refusal>;

/// `POST /v1/keys`.
pub async fn create(ctx: &Ctx<'_>, _by: &Authorized, request: &KeyRequest, material: &KeyMaterial) -> Answer {
    let record = keys::create(&ctx.db, ctx.org(), request, material, ctx.now).await?;
    let view = record.view(ctx.now);
    ctx.gate(|g| g.keys.insert(record))?;
    let detail = json!({ "name": request.name, "scopes": request.scopes, "expires_at": view.expires_at });
    ctx.audit(&AuditEvent::new(AuditAction::KeyCreated, Some(material.prefix)).with_detail(detail)).await;
    Ok(Outcome::Key { key: view, created: true })
}

/// `GET /v1/keys`: from memory, with last-use times not yet stored.
pub fn list(ctx: &Ctx<'_>, _by: &Authorized) -> Answer {
    let keys = ctx.gate(|g| g.keys.views(ctx.now, &g.unsaved_use))?;
    Ok(Outcome::Keys { keys })
}

/// `POST /v1/keys/{prefix}/revoke`: idempotent; the last live admin key stays.
pub async fn revoke(ctx: &Ctx<'_>, _by: &Authorized, prefix: &KeyPrefix) -> Answer {
    // Planned and applied in memory before the write, so two interleaved
    // revocations cannot both pass the last-admin rule; undone if the write fails.
    let planned = ctx.gate(|g| {
        let plan = g.keys.plan_revoke(prefix, ctx.now)?;
        if let Revocation::Revoke(_) = &plan {
            g.keys.apply_revoke(prefix, ctx.now);
        }
        Ok::<_, interlog_core::keyring::KeyRingError>(plan)
    })?;
    let before = match planned.map_err(interlog_core::ApiError::from)? {
        Revocation::AlreadyRevoked(view) => return Ok(Outcome::Key { key: view, created: false }),
        Revocation::Revoke(before) => before,
    };
    if let Err(e) = keys::revoke(&ctx.db, ctx.org(), prefix, ctx.now).await {
        ctx.gate(|g| g.keys.insert(before))?;
        return Err(e.into());
    }
    let view = ctx.gate(|g| g.keys.get(prefix).map(|r| r.view(ctx.now)))?;
    ctx.audit(&AuditEvent::new(AuditAction::KeyRevoked, Some(*prefix))).await;
    let view = view.ok_or(interlog_core::ApiError::NotFound)?;
    Ok(Outcome::Key { key: view, created: false })
}

/// `POST /v1/keys/{prefix}/rotate`: a successor with the same scopes and
/// expiry; the old key lives on for the grace period, never past its own expiry.
pub async fn rotate(ctx: &Ctx<'_>, _by: &Authorized, prefix: &KeyPrefix, grace_ms: i64, m: &KeyMaterial) -> Answer {
    let rotation =
        ctx.gate(|g| g.keys.plan_rotation(prefix, grace_ms, ctx.now))?.map_err(interlog_core::ApiError::from)?;
    let successor = keys::rotate(&ctx.db, ctx.org(), &rotation, m, ctx.now).await?;
    let rotated = ctx.gate(|g| g.keys.apply_rotation(&rotation, successor, ctx.now))?;
    let detail = json!({
        "successor": m.prefix,
        "grace_seconds": grace_ms / 1000,
        "expires_at": rotated.previous.expires_at,
    });
    ctx.audit(&AuditEvent::new(AuditAction::KeyRotated, Some(*prefix)).with_detail(detail)).await;
    Ok(Outcome::Rotated { key: rotated.key, previous: rotated.previous })
}
