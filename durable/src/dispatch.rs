//! Runs one authorized operation: the short table from `Op` to the module
//! that owns it. Everything here happens after the access decision, and every
//! handler takes the proof of it.

use crate::ctx::Ctx;
use crate::interactions::{self, Write};
use crate::{key_ops, org_ops, records};
use interlog_core::access::Authorized;
use interlog_core::audit::{AuditAction, AuditEvent};
use interlog_core::interaction::parse_batch;
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
        Op::CreateInteraction { item } => Ok(interactions::create_one(db, org, item, write).await?),
        Op::CreateInteractionsFromBody => {
            let items = parse_batch(payload.unwrap_or_default(), ctx.now)?;
            Ok(interactions::create_many(db, org, &items, write).await?)
        }
        Op::ListInteractions { filter, limit, after } => {
            Ok(interactions::list(db, org, filter, *limit, after.as_ref()).await?)
        }
        Op::GetInteraction { id } => Ok(interactions::get(db, org, id).await?),
        Op::DeleteInteraction { id } => delete_interaction(ctx, by, id).await,
        Op::CreateKey { request, material } => key_ops::create(ctx, by, request, material).await,
        Op::ListKeys => key_ops::list(ctx, by),
        Op::RevokeKey { prefix } => key_ops::revoke(ctx, by, prefix).await,
        Op::RotateKey { prefix, grace_ms, material } => key_ops::rotate(ctx, by, prefix, *grace_ms, material).await,
        Op::ListAudit { filter, limit, after } => {
            Ok(records::list_audit(db, org, filter, *limit, after.as_ref()).await?)
        }
        Op::ListAlerts { filter, limit, after } => {
            Ok(records::list_alerts(db, org, filter, *limit, after.as_ref()).await?)
        }
        Op::Invalid { error } => Err(error.clone().into()),
    }
}

/// `GET /v1/org`: the settings row and the last retention run.
async fn get_org(ctx: &Ctx<'_>) -> Answer {
    let org = org_ops::read(&ctx.db, ctx.org()).await?.ok_or(ApiError::NotFound)?;
    let last: Option<Value> = ctx
        .state
        .storage()
        .get(LAST_RETENTION_KEY)
        .await
        .map_err(|e| crate::platform::storage_error("org retention", e))?;
    Ok(Outcome::Org { org, last_retention_run: last })
}

/// `PATCH /v1/org`: stored, remembered (origins), audited, then answered as read.
async fn update_org(ctx: &Ctx<'_>, by: &Authorized, name: Option<&str>, origins: Option<&[Origin]>) -> Answer {
    let origins_json = org_ops::update(&ctx.db, ctx.org(), name, origins, ctx.now).await?;
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
    let detail = json!({ "interaction_id": id });
    ctx.audit(&AuditEvent::new(AuditAction::InteractionDeleted, Some(by.prefix())).with_detail(detail)).await;
    Ok(Outcome::Done)
}
