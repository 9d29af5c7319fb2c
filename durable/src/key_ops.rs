//! Key operations of the org's admins: create, list, revoke, rotate. The
//! rules are `interlog_core::keyring`; this module stores their results and
//! writes their audit rows. Key material arrives minted (the plaintext never
//! reaches the actor).
//!
//! Keys made by the operator command are written to D1 behind the actor's
//! back. So the listing always merges the stored keys in first, and a revoke
//! or rotate of a prefix the actor does not hold looks in D1 before answering
//! 404 (one D1 read, only on these admin routes). A merge only adds keys the
//! actor does not know: its own records are never older than what it reads.
//!
//! A key in its rotation grace period (a predecessor) may read the listing but
//! may not create, revoke or rotate keys (403).

use crate::ctx::Ctx;
use crate::keys;
use interlog_core::access::Authorized;
use interlog_core::audit::{AuditAction, AuditEvent};
use interlog_core::keyring::{KeyRingError, Revocation};
use interlog_core::keys::{KeyMaterial, KeyRequest};
use interlog_core::protocol::{Outcome, Refusal};
use interlog_core::{ApiError, KeyPrefix};
use serde_json::json;

type Answer = Result<Outcome, Refusal>;

/// Merges the org's stored keys into the actor's ring: adds the keys it does
/// not hold and changes none it does, so a read that started before a
/// revocation, rotation or use finished never undoes it. Returns how many were added.
pub async fn adopt_stored(ctx: &Ctx<'_>) -> Result<usize, ApiError> {
    let stored = keys::load(&ctx.dir, ctx.org()).await?;
    ctx.gate(|g| g.keys.adopt_unknown(stored))
}

/// Makes sure the actor holds `prefix` if D1 does (one read when it does not).
async fn know(ctx: &Ctx<'_>, prefix: &KeyPrefix) -> Result<(), ApiError> {
    if !ctx.gate(|g| g.keys.contains(prefix))? {
        adopt_stored(ctx).await?;
    }
    Ok(())
}

/// Refuses a caller that has been rotated out (403), with an audit row.
async fn may_manage(ctx: &Ctx<'_>, by: &Authorized) -> Result<(), ApiError> {
    let allowed = ctx.gate(|g| g.keys.may_manage_keys(&by.prefix()))?;
    if let Err(e @ KeyRingError::Predecessor) = allowed {
        let event = AuditEvent::new(AuditAction::AuthForbidden, Some(by.prefix())).with_reason("predecessor");
        ctx.audit(&event).await;
        return Err(e.into());
    }
    Ok(allowed?)
}

/// `POST /v1/keys`.
pub async fn create(ctx: &Ctx<'_>, by: &Authorized, request: &KeyRequest, material: &KeyMaterial) -> Answer {
    may_manage(ctx, by).await?;
    let record = keys::create(&ctx.dir, ctx.org(), request, material, ctx.now).await?;
    let view = record.view(ctx.now);
    ctx.gate(|g| g.keys.insert(record))?;
    let detail = json!({ "name": request.name, "scopes": request.scopes, "expires_at": view.expires_at });
    ctx.audit(&AuditEvent::new(AuditAction::KeyCreated, Some(material.prefix)).with_detail(detail)).await;
    Ok(Outcome::Key { key: view, created: true })
}

/// `GET /v1/keys`: from memory after merging the stored keys in, with
/// last-use times not yet stored.
pub async fn list(ctx: &Ctx<'_>, _by: &Authorized) -> Answer {
    adopt_stored(ctx).await?;
    let keys = ctx.gate(|g| g.keys.views(ctx.now, &g.unsaved_use))?;
    Ok(Outcome::Keys { keys })
}

/// `POST /v1/keys/{prefix}/revoke`: idempotent; the last live admin key stays.
pub async fn revoke(ctx: &Ctx<'_>, by: &Authorized, prefix: &KeyPrefix) -> Answer {
    may_manage(ctx, by).await?;
    know(ctx, prefix).await?;
    // Planned and applied in memory before the write, so two interleaved
    // revocations cannot both pass the last-admin rule; undone if the write fails.
    let planned = ctx.gate(|g| {
        let plan = g.keys.plan_revoke(prefix, ctx.now)?;
        if let Revocation::Revoke(_) = &plan {
            g.keys.apply_revoke(prefix, ctx.now);
        }
        Ok::<_, KeyRingError>(plan)
    })?;
    let before = match planned.map_err(ApiError::from)? {
        Revocation::AlreadyRevoked(view) => return Ok(Outcome::Key { key: view, created: false }),
        Revocation::Revoke(before) => before,
    };
    if let Err(e) = keys::revoke(&ctx.dir, ctx.org(), prefix, ctx.now).await {
        ctx.gate(|g| g.keys.insert(before))?;
        return Err(e.into());
    }
    let view = ctx.gate(|g| g.keys.get(prefix).map(|r| r.view(ctx.now)))?;
    ctx.audit(&AuditEvent::new(AuditAction::KeyRevoked, Some(*prefix))).await;
    let view = view.ok_or(ApiError::NotFound)?;
    Ok(Outcome::Key { key: view, created: false })
}

/// `POST /v1/keys/{prefix}/rotate`: a successor with the same scopes and
/// expiry; the old key lives on for the grace period, never past its own expiry.
pub async fn rotate(ctx: &Ctx<'_>, by: &Authorized, prefix: &KeyPrefix, grace_ms: i64, m: &KeyMaterial) -> Answer {
    may_manage(ctx, by).await?;
    know(ctx, prefix).await?;
    // Planned and begun in memory before the write (the old key is a
    // predecessor from here on), so neither a call made with it nor a second
    // rotation of it interleaves with the write; undone if the write fails.
    let planned = ctx.gate(|g| {
        let rotation = g.keys.plan_rotation(prefix, grace_ms, ctx.now)?;
        g.keys.begin_rotation(&rotation, m.prefix);
        Ok::<_, KeyRingError>(rotation)
    })?;
    let rotation = planned.map_err(ApiError::from)?;
    let successor = match keys::rotate(&ctx.dir, ctx.org(), &rotation, m, ctx.now).await {
        Ok(successor) => successor,
        Err(e) => {
            ctx.gate(|g| g.keys.abandon_rotation(&rotation, m.prefix))?;
            return Err(e);
        }
    };
    let rotated = ctx.gate(|g| g.keys.apply_rotation(&rotation, successor, ctx.now))?;
    let detail = json!({
        "successor": m.prefix,
        "grace_seconds": grace_ms / 1000,
        "expires_at": rotated.previous.expires_at,
    });
    ctx.audit(&AuditEvent::new(AuditAction::KeyRotated, Some(*prefix)).with_detail(detail)).await;
    Ok(Outcome::Rotated { key: rotated.key, previous: rotated.previous })
}
