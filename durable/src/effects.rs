//! Carrying out what the access decision asked for: audit rows (and the final
//! counts of aggregated ones), alerts, re-hashes, L2 checkpoints and alarm
//! deadlines. The decision itself is
//! `interlog_core::access`; this module only performs it.

use crate::ctx::Ctx;
use crate::{audit, keys, limits, records};
use interlog_core::access::{Effect, Gate};
use interlog_core::alerts::AlertWrite;
use interlog_core::{ApiError, OrgId};
use std::cell::RefCell;
use worker::{console_error, D1Database, State};

/// Performs `effects` in order. Audit and alert failures are logged and
/// ignored (they never change the client's answer); a failed re-hash is the
/// call's failure, as a storage error.
pub async fn perform(ctx: &Ctx<'_>, effects: Vec<Effect>) -> Result<(), ApiError> {
    for effect in effects {
        match effect {
            Effect::Audit(event) => ctx.audit(&event).await,
            Effect::Alert(write) => alert(ctx, &write).await,
            Effect::Rehash(material) => keys::rehash(&ctx.dir, ctx.org(), &material).await?,
            Effect::Checkpoint => {
                checkpoint(&ctx.db, ctx.org(), ctx.gate_cell(), ctx.now).await;
            }
            Effect::Schedule { delay_ms } => schedule(ctx.state, delay_ms, ctx.now).await,
            Effect::AuditCount(count) => {
                if let Err(e) = audit::set_count(&ctx.db, Some(ctx.org()), &count).await {
                    console_error!("audit count not stored: {e}");
                    let _ = ctx.gate(|g| g.requeue_counts(vec![count]));
                }
            }
        }
    }
    Ok(())
}

/// Writes an alert (and queues its webhook deliveries, then makes the alarm
/// run soon to send them); a failure is logged.
pub async fn alert(ctx: &Ctx<'_>, write: &AlertWrite) {
    match records::write_alert(&ctx.db, ctx.org(), write).await {
        Ok(queued) => crate::webhooks::wake(ctx, queued).await,
        Err(e) => console_error!("alert write failed ({}): {e}", write.kind.as_str()),
    }
}

/// Writes the limiter's changed buckets; on failure they are kept for the next try.
pub async fn checkpoint(db: &D1Database, org: &OrgId, gate: &RefCell<Option<Gate>>, now: i64) {
    let rows = gate.borrow_mut().as_mut().map(|g| g.limiter.snapshot_dirty(now)).unwrap_or_default();
    if let Err(e) = limits::save(db, org, &rows, now).await {
        console_error!("L2 checkpoint failed: {e}");
        if let Some(g) = gate.borrow_mut().as_mut() {
            g.limiter.requeue(rows);
        }
    }
}

/// Makes sure the alarm fires within `delay_ms`.
pub async fn schedule(state: &State, delay_ms: i64, now: i64) {
    let storage = state.storage();
    let due = storage.get_alarm().await.ok().flatten();
    if due.is_none_or(|t| t > now + delay_ms) {
        if let Err(e) = storage.set_alarm(delay_ms).await {
            console_error!("could not schedule the alarm: {e}");
        }
    }
}
