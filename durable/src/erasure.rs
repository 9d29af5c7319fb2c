//! Erasure by actor, the D1 side: starting a job (`POST /v1/erasures`),
//! reading one (`GET /v1/erasures/{id}`), and the alarm step that deletes a
//! running job's rows in bounded chunks. The rules (ids, body, budget) are
//! `interlog_core::erasure`.
//!
//! One chunk is one D1 transaction of three statements: count the rows the
//! delete will take (into the job's `deleted`), delete at most `limit` rows of
//! the actor (counted from RETURNING: D1's `changes` also counts the usage
//! triggers' writes), and mark the job `done` at `now` if no row of the actor
//! is left. So `done` is decided in the same transaction as the last delete:
//! every row of the actor stored before `finished_at` is gone.

use crate::alarm::AlarmCtx;
use crate::audit::{self, Asker};
use crate::ctx::Ctx;
use crate::due;
use crate::platform::{all, first, ms, random_bytes, storage_error};
use interlog_core::access::Authorized;
use interlog_core::audit::{AuditAction, AuditEvent};
use interlog_core::erasure::{ErasureId, ErasureState, ErasureView, RunBudget};
use interlog_core::protocol::{Outcome, Refusal, Stored};
use interlog_core::timefmt::rfc3339;
use interlog_core::{ApiError, KeyPrefix, OrgId};
use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::json;
use worker::wasm_bindgen::JsValue;
use worker::{console_error, console_log, D1Database};

type Res<T> = Result<T, ApiError>;

/// Running jobs one alarm run looks at (the rest wait for the next run).
const JOBS_PER_RUN: u32 = 20;
/// How soon the alarm retries after an erasure step failed.
const RETRY_DELAY_MS: i64 = 1_000;

const COLUMNS: &str = "id, actor, state, deleted, started_at, finished_at";

/// A stored job.
#[derive(Deserialize)]
struct JobRow {
    id: String,
    actor: String,
    state: String,
    deleted: f64,
    started_at: f64,
    finished_at: Option<f64>,
}

impl JobRow {
    fn view(self) -> Res<ErasureView> {
        let state = ErasureState::from_db(&self.state).ok_or_else(|| ApiError::internal("unknown erasure state"))?;
        Ok(ErasureView {
            id: self.id,
            actor: self.actor,
            state,
            deleted: self.deleted.max(0.0) as u64,
            started_at: rfc3339(self.started_at as i64),
            finished_at: self.finished_at.map(|t| rfc3339(t as i64)),
        })
    }
}

async fn running_for(db: &D1Database, org: &OrgId, actor: &str) -> Res<Option<JobRow>> {
    let sql = format!("SELECT {COLUMNS} FROM erasures WHERE org_id = ?1 AND actor = ?2 AND state = 'running'");
    first(db, sql, &[org.as_str().into(), actor.into()], "erasure running").await
}

/// `POST /v1/erasures`: a new job (audited, the alarm armed to run soon), or
/// the job already running for that actor.
pub async fn start(ctx: &Ctx<'_>, by: &Authorized, actor: &str) -> Result<Outcome, Refusal> {
    let (db, org) = (&ctx.db, ctx.org());
    // Two attempts: a running job found by the insert may finish before it is read.
    for _ in 0..2 {
        let id = ErasureId::generate(ctx.now as u64, &random_bytes()?);
        let sql = "INSERT INTO erasures (id, org_id, actor, state, deleted, started_at, requested_by) \
                   VALUES (?1, ?2, ?3, 'running', 0, ?4, ?5) \
                   ON CONFLICT (org_id, actor) WHERE state = 'running' DO NOTHING RETURNING id";
        let binds =
            [id.as_str().into(), org.as_str().into(), actor.into(), ms(ctx.now), by.prefix().to_string().into()];
        let inserted: Vec<IgnoredAny> = all(db, sql, &binds, "erasure start").await?;
        let created = !inserted.is_empty();
        let Some(row) = running_for(db, org, actor).await? else { continue };
        if created {
            let detail = json!({ "erasure_id": id.as_str() });
            ctx.audit(&AuditEvent::new(AuditAction::ErasureStarted, Some(by.prefix())).with_detail(detail)).await;
            arm_soon(ctx).await;
        }
        let stored = if created { Stored::Created } else { Stored::Replayed };
        return Ok(Outcome::Erasure { job: row.view()?, stored: Some(stored) });
    }
    Err(ApiError::Conflict { message: "an erasure of this actor just finished; retry".into() }.into())
}

/// Makes the alarm fire within the erasure interval (sets it earlier if it is
/// set later). A failure is logged: the next alarm run still finds the job.
async fn arm_soon(ctx: &Ctx<'_>) {
    let soon = ctx.now + ctx.cfg.erasure.interval_ms;
    due::mark(ctx.state, ctx.memory(), due::ERASURES, soon).await;
    let storage = ctx.state.storage();
    let armed = match storage.get_alarm().await {
        Ok(Some(at)) if at <= soon => Ok(()),
        _ => storage.set_alarm(ctx.cfg.erasure.interval_ms).await,
    };
    if let Err(e) = armed {
        console_error!("erasure: alarm not armed: {e}");
    }
}

/// `GET /v1/erasures/{id}`: the job, or 404 (another org's job is not found).
pub async fn get(db: &D1Database, org: &OrgId, id: &str) -> Res<Outcome> {
    let sql = format!("SELECT {COLUMNS} FROM erasures WHERE org_id = ?1 AND id = ?2");
    let row: Option<JobRow> = first(db, sql, &[org.as_str().into(), id.into()], "erasure get").await?;
    Ok(Outcome::Erasure { job: row.ok_or(ApiError::NotFound)?.view()?, stored: None })
}

/// A running job as the alarm reads it.
#[derive(Deserialize)]
struct Running {
    id: String,
    actor: String,
    requested_by: Option<String>,
}

/// What one chunk did.
struct Chunk {
    deleted: u64,
    /// The job's total when this chunk finished it.
    finished: Option<u64>,
}

/// One chunk of `job`, one transaction (see the module docs).
async fn chunk(db: &D1Database, org: &OrgId, job: &Running, limit: u32, now: i64) -> Res<Chunk> {
    let (o, a, id): (JsValue, JsValue, JsValue) =
        (org.as_str().into(), job.actor.as_str().into(), job.id.as_str().into());
    let prep =
        |sql: String, binds: &[JsValue]| db.prepare(sql).bind(binds).map_err(|e| storage_error("erasure bind", e));
    let statements = vec![
        prep(
            format!(
                "UPDATE erasures SET deleted = deleted + (SELECT COUNT(*) FROM \
                 (SELECT 1 FROM interactions WHERE org_id = ?1 AND actor = ?2 LIMIT {limit})) \
                 WHERE org_id = ?1 AND id = ?3 AND state = 'running'"
            ),
            &[o.clone(), a.clone(), id.clone()],
        )?,
        prep(
            format!(
                "DELETE FROM interactions WHERE org_id = ?1 AND id IN \
                 (SELECT id FROM interactions WHERE org_id = ?1 AND actor = ?2 LIMIT {limit}) RETURNING 1 AS gone"
            ),
            &[o.clone(), a.clone()],
        )?,
        prep(
            "UPDATE erasures SET state = 'done', finished_at = ?4 \
             WHERE org_id = ?1 AND id = ?3 AND state = 'running' \
             AND NOT EXISTS (SELECT 1 FROM interactions WHERE org_id = ?1 AND actor = ?2) RETURNING deleted"
                .into(),
            &[o, a, id, ms(now)],
        )?,
    ];
    let results = db.batch(statements).await.map_err(|e| storage_error("erasure chunk", e))?;
    let deleted = results.get(1).and_then(|r| r.results::<IgnoredAny>().ok()).map_or(0, |rows| rows.len() as u64);
    #[derive(Deserialize)]
    struct Total {
        deleted: f64,
    }
    let finished = results
        .get(2)
        .and_then(|r| r.results::<Total>().ok())
        .and_then(|rows| rows.first().map(|t| t.deleted.max(0.0) as u64));
    Ok(Chunk { deleted, finished })
}

/// The alarm's erasure step when it is due (else it reads nothing): runs the
/// org's running jobs within one run's budget. Returns when the alarm must
/// run again (`None`: no job running).
/// A failure is logged and retried soon; it never stops the rest of the alarm.
pub async fn step(a: &AlarmCtx<'_>) -> Option<i64> {
    if let Some(at) = due::claim(a.state, a.memory, due::ERASURES, a.now).await {
        return (at < due::NEVER).then_some(at);
    }
    let next = match run_due(a).await {
        Ok(more) => more.then_some(a.now + a.cfg.erasure.interval_ms),
        Err(e) => {
            console_error!("erasure step failed: {e}");
            Some(a.now + RETRY_DELAY_MS.max(a.cfg.erasure.interval_ms))
        }
    };
    let next = due::finish(a.state, a.memory, due::ERASURES, next.unwrap_or(due::NEVER), a.now).await;
    (next < due::NEVER).then_some(next)
}

/// Deletes chunks of running jobs, oldest job first; true while some job
/// is still running.
async fn run_due(a: &AlarmCtx<'_>) -> Res<bool> {
    let sql = format!(
        "SELECT id, actor, requested_by FROM erasures WHERE org_id = ?1 AND state = 'running' \
         ORDER BY started_at LIMIT {JOBS_PER_RUN}"
    );
    let jobs: Vec<Running> = all(&a.db, sql, &[a.org.as_str().into()], "erasure jobs").await?;
    let mut budget = RunBudget::new(&a.cfg.erasure);
    let (mut deleted, mut finished) = (0u64, 0usize);
    'jobs: for job in &jobs {
        loop {
            let Some(limit) = budget.next_chunk() else { break 'jobs };
            let c = chunk(&a.db, a.org, job, limit, a.now).await;
            let c = match c {
                Ok(c) => c,
                Err(e) => {
                    forget_usage(a, deleted);
                    return Err(e);
                }
            };
            budget.spend(limit, c.deleted);
            deleted += c.deleted;
            if let Some(total) = c.finished {
                finished += 1;
                completed(a, job, total).await;
                continue 'jobs;
            }
        }
    }
    forget_usage(a, deleted);
    log_step(a.org, jobs.len(), deleted, finished);
    Ok(finished < jobs.len() || jobs.len() == JOBS_PER_RUN as usize)
}

/// The delete triggers changed the usage: read it again when asked.
fn forget_usage(a: &AlarmCtx<'_>, deleted: u64) {
    if deleted > 0 {
        *a.memory.settings.borrow_mut() = None;
    }
}

/// The end of a job, audited (a failure is logged: the job's row says done).
async fn completed(a: &AlarmCtx<'_>, job: &Running, total: u64) {
    let by = job.requested_by.as_deref().and_then(|p| KeyPrefix::parse(p).ok());
    let detail = json!({ "erasure_id": job.id, "deleted": total });
    let event = AuditEvent::new(AuditAction::ErasureCompleted, by).with_detail(detail);
    let asker = Asker { org: Some(a.org), request_id: "alarm", ip: None };
    let _ = audit::write(&a.db, asker, &event, a.now).await;
}

fn log_step(org: &OrgId, jobs: usize, deleted: u64, finished: usize) {
    if jobs == 0 {
        return;
    }
    let line = json!({
        "event": "erasure",
        "level": "info",
        "actor": "org",
        "org_id": org.as_str(),
        "jobs": jobs,
        "deleted": deleted,
        "finished": finished,
    });
    console_log!("{line}");
}
