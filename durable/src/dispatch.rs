//! Runs one authorized operation: the short table from `Op` to the module
//! that owns it. Everything here happens after the access decision, and every
//! handler takes the proof of it.

use crate::ctx::Ctx;
use crate::interactions::{self, Write, Written};
use crate::{effects, key_ops, org_ops, records, webhooks};
use interlog_core::access::Authorized;
use interlog_core::alerts::AlertKind;
use interlog_core::audit::{AuditAction, AuditEvent};
use interlog_core::interaction::parse_batch;
use interlog_core::org::QuotaLevel;
use interlog_core::origin::Origin;
use interlog_core::protocol::{Op, Outcome, Refusal};
use interlog_core::ApiError;
use serde_json::{json, Value};

/// Storage key of the last retention run's summary.
pub const LAST_RETENTION_KEY: &str = "last_retention_run";

type Answer = Result<Outcome, Refusal>;

/// Runs `op` for an authorized caller. `payload` is the client's own body
/// when the front Worker forwarded it as sent (a batch).
pub async fn run(ctx: &Ctx<'_>, by: &Authorized, op: &Op, inject_fault: bool, payload: Option<&[u8]>) -> Answer {
    let db = &ctx.db;
    let org = ctx.org();
    let write = Write { now: ctx.now, inject_fault };
    match op {
        Op::Ping => Ok(Outcome::Done),
        Op::GetOrg => get_org(ctx).await,
        Op::UpdateOrg { name, allowed_origins } => {
            update_org(ctx, by, name.as_deref(), allowed_origins.as_deref()).await
        }
        Op::CreateInteraction { item } => watch_quota(ctx, interactions::create_one(db, org, item, write).await).await,
        Op::CreateInteractionsFromBody => {
            let items = parse_batch(payload.unwrap_or_default(), ctx.now)?;
            watch_quota(ctx, interactions::create_many(db, org, &items, write).await).await
        }
        Op::ListInteractions { filter, limit, after } => {
            Ok(interactions::list(db, org, filter, *limit, after.as_ref()).await?)
        }
        Op::GetInteraction { id } => Ok(interactions::get(db, org, id).await?),
        Op::DeleteInteraction { id } => delete_interaction(ctx, by, id).await,
        Op::CreateKey { request, material } => key_ops::create(ctx, by, request, material).await,
        Op::ListKeys => key_ops::list(ctx, by).await,
        Op::RevokeKey { prefix } => key_replaced(ctx, prefix, key_ops::revoke(ctx, by, prefix).await).await,
        Op::RotateKey { prefix, grace_ms, material } => {
            key_replaced(ctx, prefix, key_ops::rotate(ctx, by, prefix, *grace_ms, material).await).await
        }
        Op::ListAudit { filter, limit, after } => {
            Ok(records::list_audit(db, org, filter, *limit, after.as_ref()).await?)
        }
        Op::ListAlerts { filter, limit, after } => {
            Ok(records::list_alerts(db, org, filter, *limit, after.as_ref()).await?)
        }
        Op::GetSession { filter, limit, after } => {
            let page = interactions::list(db, org, filter, *limit, after.as_ref()).await?;
            match &page {
                Outcome::Interactions(p) if after.is_none() && p.items.is_empty() => Err(ApiError::NotFound.into()),
                _ => Ok(page),
            }
        }
        Op::ExportInteractions { request } => Ok(crate::export::prepare(db, org, request).await?),
        Op::StartErasure { actor } => crate::erasure::start(ctx, by, actor).await,
        Op::GetErasure { id } => Ok(crate::erasure::get(db, org, id).await?),
        Op::Invalid { error } => Err(error.clone().into()),
        Op::ResolveAlert { id } => webhooks::resolve_alert(ctx, by, id).await,
        Op::CreateWebhook { body, secret } => webhooks::create(ctx, by, body, secret).await,
        Op::ListWebhooks => webhooks::list(ctx).await,
        Op::DeleteWebhook { id } => webhooks::delete(ctx, by, id).await,
        Op::RotateWebhookSecret { id, secret } => webhooks::rotate_secret(ctx, by, id, secret).await,
        Op::ListDeliveries { id, limit, after } => webhooks::deliveries(ctx, id, *limit, after.as_ref()).await,
    }
}

/// A key revoked or rotated: alerts that end with it resolve by themselves.
async fn key_replaced(ctx: &Ctx<'_>, prefix: &interlog_core::KeyPrefix, done: Answer) -> Answer {
    if done.is_ok() {
        webhooks::key_replaced(ctx, prefix.as_str()).await;
    }
    done
}

/// Raises the quota alerts a write calls for: `quota_80` once usage is at 80 %
/// of a quota, and `quota_reached` (with `quota_80`) once a quota is used up or
/// a write was refused for it. Each is throttled by the alert tracker, so a
/// full org costs at most one alert write per interval, not one per request.
async fn watch_quota(ctx: &Ctx<'_>, written: Result<Written, ApiError>) -> Answer {
    if let Ok((_, Some(usage))) = &written {
        ctx.note_usage(*usage);
    }
    let level = match &written {
        Ok((_, usage)) => usage.map_or(QuotaLevel::Normal, |u| u.level()),
        Err(ApiError::QuotaExceeded { .. }) => QuotaLevel::Reached,
        Err(_) => QuotaLevel::Normal,
    };
    let kinds: &[AlertKind] = match level {
        QuotaLevel::Normal => &[],
        QuotaLevel::Warning => &[AlertKind::QuotaWarning],
        QuotaLevel::Reached => &[AlertKind::QuotaWarning, AlertKind::QuotaReached],
    };
    for kind in kinds {
        // Alert bookkeeping never changes the write's answer.
        if let Ok(Some(w)) = ctx.gate(|g| g.alerts.observe(*kind, "", ctx.now)) {
            effects::alert(ctx, &w).await;
        }
    }
    Ok(written?.0)
}

/// `GET /v1/org`: the settings from the actor's memory (read from D1 only
/// when not held: first use, or after a change made outside a write's own
/// transaction) and the last retention run (the actor's own storage).
async fn get_org(ctx: &Ctx<'_>) -> Answer {
    let org = match ctx.settings() {
        Some(org) => org,
        None => {
            let org = org_ops::read(&ctx.db, ctx.org()).await?.ok_or(ApiError::NotFound)?;
            ctx.remember_settings(Some(org.clone()));
            org
        }
    };
    Ok(Outcome::Org { org, last_retention_run: last_retention(ctx).await? })
}

/// The last retention run's summary: read from the actor's storage once,
/// then kept in memory (the alarm, its only writer, updates both).
async fn last_retention(ctx: &Ctx<'_>) -> Result<Option<Value>, ApiError> {
    if let Some(known) = ctx.memory().last_retention.borrow().clone() {
        return Ok(known);
    }
    let stored: Option<Value> = ctx
        .state
        .storage()
        .get(LAST_RETENTION_KEY)
        .await
        .map_err(|e| crate::platform::storage_error("org retention", e))?;
    *ctx.memory().last_retention.borrow_mut() = Some(stored.clone());
    Ok(stored)
}

/// `PATCH /v1/org`: stored, remembered (origins), audited, then answered as read.
async fn update_org(ctx: &Ctx<'_>, by: &Authorized, name: Option<&str>, origins: Option<&[Origin]>) -> Answer {
    let origins_json = org_ops::update(&ctx.db, ctx.org(), name, origins, ctx.now).await?;
    if let Some(name) = name {
        org_ops::rename_in_directory(&ctx.dir, ctx.org(), name).await?;
    }
    ctx.remember_settings(None);
    if let Some(list) = origins {
        ctx.gate(|g| g.origins = list.iter().map(|o| o.to_string()).collect())?;
    }
    let detail = json!({ "name": name, "allowed_origins": origins_json });
    ctx.audit(&AuditEvent::new(AuditAction::OrgUpdated, Some(by.prefix())).with_detail(detail)).await;
    get_org(ctx).await
}

/// `DELETE /v1/interactions/{id}`: erased and audited, or not found.
async fn delete_interaction(ctx: &Ctx<'_>, by: &Authorized, id: &str) -> Answer {
    if !interactions::delete(&ctx.db, ctx.org(), id).await? {
        return Err(ApiError::NotFound.into());
    }
    // The delete trigger changed the usage.
    ctx.remember_settings(None);
    let detail = json!({ "interaction_id": id });
    ctx.audit(&AuditEvent::new(AuditAction::InteractionDeleted, Some(by.prefix())).with_detail(detail)).await;
    Ok(Outcome::Done)
}
