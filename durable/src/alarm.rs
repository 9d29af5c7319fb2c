//! The OrgActor's alarm: flushing `last_used_at`, L2 checkpoints and the
//! final counts of aggregated auth-failure audit rows, running
//! retention when due and re-arming for the next due work; and arming it (and
//! the Janitor's) when an actor starts serving. Runs are idempotent: the
//! platform delivers alarms at least once.

use crate::ctx::Memory;
use crate::effects::checkpoint;
use crate::janitor::{ARM_URL, JANITOR_NAME};
use crate::platform::storage_error;
use crate::{audit, keys, retention};
use interlog_core::access::{CHECKPOINT_DELAY_MS, FLUSH_DELAY_MS};
use interlog_core::config::{binding, Config};
use interlog_core::{ApiError, KeyPrefix, OrgId};
use worker::{console_error, console_log, D1Database, Env, State};

/// Storage key of when retention is due next.
const NEXT_RETENTION_KEY: &str = "next_retention_at";
/// First alarm after an actor starts serving (lets a restart catch up soon).
const FIRST_ALARM_DELAY_MS: i64 = 1_000;

type Res<T> = Result<T, ApiError>;

/// What an alarm run works on.
pub struct AlarmCtx<'a> {
    pub state: &'a State,
    /// The org's data shard.
    pub db: D1Database,
    /// The directory (keys' `last_used_at`).
    pub dir: D1Database,
    pub org: &'a OrgId,
    pub cfg: &'a Config,
    pub memory: &'a Memory,
    pub now: i64,
}

/// One alarm run: flush `last_used_at`, checkpoints, retention when due,
/// then re-arm for the next due work.
pub async fn run(a: &AlarmCtx<'_>) -> Res<()> {
    let flushed = flush_last_used(a).await?;
    if let Some(g) = a.memory.gate.borrow_mut().as_mut() {
        g.alerts.evict(a.now);
    }
    let admissions = a.memory.gate.borrow().as_ref().map_or(0, |g| g.limiter.unsaved_admissions());
    checkpoint(&a.db, a.org, &a.memory.gate, a.now).await;
    flush_audit_counts(a).await;
    if let Some(g) = a.memory.gate.borrow_mut().as_mut() {
        g.limiter.evict_idle(a.now);
    }
    let (next, retention) = retention_when_due(a).await?;
    // A running erasure is due again soon (its step never fails the run).
    let next = crate::erasure::step(a).await.map_or(next, |due| next.min(due));
    // Webhook deliveries and alerts that resolve by themselves (never fails the run).
    let next = next.min(crate::webhooks::step(a).await);
    let next = next_deadline(a, next);
    log_run(a.org, flushed, admissions, retention);
    a.state.storage().set_alarm(next.saturating_sub(a.now).max(0)).await.map_err(|e| storage_error("alarm rearm", e))
}

/// The run's one structured log line (a JSON object, no prefix).
fn log_run(org: &OrgId, flushed: usize, admissions: u64, retention: Option<serde_json::Value>) {
    let line = serde_json::json!({
        "event": "alarm",
        "level": "info",
        "actor": "org",
        "org_id": org.as_str(),
        "flushed": flushed,
        "checkpoint": admissions,
        "retention": retention,
    });
    console_log!("{line}");
}

/// Writes the remembered last-use times (how many); kept for the next run on
/// failure.
async fn flush_last_used(a: &AlarmCtx<'_>) -> Res<usize> {
    let used: Vec<(KeyPrefix, i64)> =
        a.memory.gate.borrow_mut().as_mut().map(|g| g.unsaved_use.drain().collect()).unwrap_or_default();
    if let Err(e) = keys::flush_last_used(&a.dir, a.org, &used).await {
        if let Some(g) = a.memory.gate.borrow_mut().as_mut() {
            g.unsaved_use.extend(used);
        }
        return Err(e);
    }
    if let Some(g) = a.memory.gate.borrow_mut().as_mut() {
        for (prefix, at) in &used {
            g.keys.note_used(prefix, *at);
        }
    }
    Ok(used.len())
}

/// Stores the final counts of auth-failure windows that have ended (a bounded
/// batch; the rest are due at once, see [`next_deadline`]); failed ones are
/// kept for the next run.
async fn flush_audit_counts(a: &AlarmCtx<'_>) {
    let counts = a.memory.gate.borrow_mut().as_mut().map(|g| g.due_counts(a.now)).unwrap_or_default();
    let mut failed = Vec::new();
    for c in counts {
        if let Err(e) = audit::set_count(&a.db, Some(a.org), &c).await {
            console_error!("audit count not stored: {e}");
            failed.push(c);
        }
    }
    if let Some(g) = a.memory.gate.borrow_mut().as_mut() {
        g.requeue_counts(failed);
    }
}

/// Runs retention if it is due; returns when it is due next and the run's
/// summary, if it ran.
async fn retention_when_due(a: &AlarmCtx<'_>) -> Res<(i64, Option<serde_json::Value>)> {
    let storage = a.state.storage();
    let due: Option<i64> = storage.get(NEXT_RETENTION_KEY).await.map_err(|e| storage_error("alarm due", e))?;
    let next = due.unwrap_or(a.now);
    if next > a.now {
        return Ok((next, None));
    }
    let cfg = &a.cfg.retention;
    let report = retention::run_org(&a.db, a.org, a.now, cfg).await?;
    if report.total() > 0 {
        // The delete triggers changed the usage: read it again when asked.
        *a.memory.settings.borrow_mut() = None;
    }
    let summary = report.summary(a.now);
    let next = a.now + if report.more { cfg.busy_interval_ms } else { cfg.interval_ms };
    storage.put(crate::dispatch::LAST_RETENTION_KEY, &summary).await.map_err(|e| storage_error("alarm summary", e))?;
    storage.put(NEXT_RETENTION_KEY, next).await.map_err(|e| storage_error("alarm next", e))?;
    *a.memory.last_retention.borrow_mut() = Some(Some(summary.clone()));
    Ok((next, Some(summary)))
}

/// The earliest of retention's next run and any unsaved state's deadline.
fn next_deadline(a: &AlarmCtx<'_>, retention_next: i64) -> i64 {
    let guard = a.memory.gate.borrow();
    let Some(g) = guard.as_ref() else { return retention_next };
    let mut next = retention_next;
    if !g.unsaved_use.is_empty() {
        next = next.min(a.now + FLUSH_DELAY_MS);
    }
    if g.limiter.unsaved_admissions() > 0 {
        next = next.min(a.now + CHECKPOINT_DELAY_MS);
    }
    if let Some(due) = g.counts_due_at(a.now) {
        // Counts that failed wait a little rather than spin the alarm.
        next = next.min(due.max(a.now + FIRST_ALARM_DELAY_MS));
    }
    next
}

/// Makes sure this actor's alarm is set and pings the Janitor so that it is
/// armed too. Returns whether both are; failures are logged and retried on
/// the next request.
pub async fn ensure_armed(state: &State, env: &Env, now: i64) -> bool {
    let storage = state.storage();
    // None set, or one whose time has passed without it firing (the local
    // runtime can lose an alarm that fell due while it was down): set it
    // again. An extra run is harmless, runs are idempotent.
    let own = match storage.get_alarm().await {
        Ok(Some(at)) if at >= now => true,
        Ok(_) => storage.set_alarm(FIRST_ALARM_DELAY_MS).await.is_ok(),
        Err(_) => false,
    };
    let janitor = env.durable_object(binding::JANITOR).and_then(|ns| ns.id_from_name(JANITOR_NAME)?.get_stub());
    let janitor = match janitor {
        Ok(stub) => matches!(stub.fetch_with_str(ARM_URL).await, Ok(r) if r.status_code() < 300),
        Err(_) => false,
    };
    if !(own && janitor) {
        console_error!("org actor could not arm alarms (own: {own}, janitor: {janitor})");
    }
    own && janitor
}
