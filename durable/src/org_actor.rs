//! The per-org Durable Object's shell: reading a call, binding to its org for
//! life (it refuses calls for any other), loading the org's access state,
//! asking `interlog_core::access` for the decision, performing its effects
//! and dispatching the operation; and its alarm.

use crate::alarm::{self, AlarmCtx};
use crate::ctx::{Busy, Ctx, Memory};
use crate::platform::{config, directory, now_ms, shard, storage_error};
use crate::{dispatch, effects, key_ops, keys, limits, moving, org_ops};
use interlog_core::access::{AccessRequest, Decision, Effect, Gate, L2Check};
use interlog_core::alerts::AlertRules;
use interlog_core::auth::AuthFailure;
use interlog_core::config::{Config, L2Mode};
use interlog_core::operator::MoveAction;
use interlog_core::org::OrgView;
use interlog_core::protocol::{
    org_matches, CallMeta, DoRequest, DoResponse, Op, Outcome, Refusal, VerifiedKey, CALL_HEADER,
};
use interlog_core::shard::ShardId;
use interlog_core::{ApiError, KeyPrefix, OrgId};
use std::cell::{Cell, RefCell};
use worker::{console_error, durable_object, D1Database, DurableObject, Env, Request, Response, Result, State};

type Res<T> = std::result::Result<T, ApiError>;

const BOUND_ORG_KEY: &str = "org_id";

#[durable_object]
pub struct OrgActor {
    state: State,
    env: Env,
    bound: RefCell<Option<OrgId>>,
    /// The org's keys, settings, L2 windows and alert counters, loaded on
    /// first use; this actor is their only writer.
    memory: Memory,
    /// Whether this instance has checked its alarm (and the Janitor's) yet.
    armed: Cell<bool>,
}

impl DurableObject for OrgActor {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, bound: RefCell::new(None), memory: Memory::default(), armed: Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // The call comes as the body, or in a header when the body is the
        // client's own (a batch, parsed once, here).
        let header = req.headers().get(CALL_HEADER).ok().flatten();
        let (call, payload) = match header {
            Some(h) => (parse_call(&h), Some(req.bytes().await?)),
            // Parsed from text by serde_json: `json()` would build a JS object
            // first and walk it across the wasm boundary field by field.
            None => (req.text().await.map_err(|e| e.to_string()).and_then(|t| parse_call(&t)), None),
        };
        let response = match call {
            Ok(call) => self.handle(call, payload.as_deref()).await,
            Err(e) => DoResponse::unreadable(e),
        };
        // An export that may start streams its rows as this reply's body.
        if let (Ok(Outcome::Export { filter, after }), Some(org)) = (&response.result, self.bound.borrow().clone()) {
            let placed = self.memory.shard.borrow().clone();
            let db = placed
                .ok_or_else(|| ApiError::internal("export without a shard"))
                .and_then(|s| shard(&self.env, &s))
                .map_err(|e| worker::Error::RustError(e.to_string()))?;
            let epoch = self.memory.epoch.clone();
            return crate::export::respond(db, org, &response, filter.clone(), after.clone(), epoch);
        }
        Response::from_json(&response)
    }

    async fn alarm(&self) -> Result<Response> {
        if let Err(e) = self.on_alarm().await {
            // Returning an error makes the platform retry with backoff.
            console_error!("org actor alarm failed: {e}");
            return Err(worker::Error::RustError(e.to_string()));
        }
        Ok(Response::builder().with_status(204).empty())
    }
}

fn parse_call(text: &str) -> std::result::Result<DoRequest, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

fn refused(error: ApiError) -> DoResponse {
    DoResponse { result: Err(error.into()), origin_allowed: false, rate: None }
}

impl OrgActor {
    /// One call: the clock is read once, here, and passed down.
    async fn handle(&self, call: DoRequest, payload: Option<&[u8]>) -> DoResponse {
        let now = now_ms();
        let cfg = match config(&self.env) {
            Ok(cfg) => cfg,
            Err(e) => return refused(e),
        };
        if let DoRequest::Move { meta, to, action } = &call {
            return self.move_step(meta, to, *action, now).await;
        }
        let paused = moving::wait_for_pause(&self.memory).await;
        if paused && !matches!(call, DoRequest::AuthFailure { .. }) {
            return refused(ApiError::Unavailable { retry_after_s: 2, detail: "the org's data is moving".into() });
        }
        // Counted from here (no await before): a move waits for this call.
        let _busy = Busy::enter(&self.memory);
        let dbs = match self.prepare(call.meta(), &cfg, now).await {
            Ok(dbs) => dbs,
            Err(e) => return refused(e),
        };
        if let DoRequest::Serve { fail_shard: Some(down), .. } = &call {
            if self.memory.shard.borrow().as_ref() == Some(down) {
                return refused(ApiError::Unavailable {
                    retry_after_s: 1,
                    detail: format!("test fault: shard {down} down"),
                });
            }
        }
        let ctx = Ctx::new(dbs, call.meta(), now, &cfg, &self.state, &self.memory);
        if paused {
            // A refused credential while the data moves: its records wait.
            if let DoRequest::AuthFailure { prefix, .. } = &call {
                let fx = ctx.gate(|g| g.record_auth_failure(*prefix, ctx.now)).unwrap_or_default();
                self.memory.deferred.borrow_mut().extend(fx);
            }
            return DoResponse {
                result: Err(Refusal::Denied { reason: AuthFailure::WrongHash }),
                origin_allowed: false,
                rate: None,
            };
        }
        let deferred = std::mem::take(&mut *self.memory.deferred.borrow_mut());
        if !deferred.is_empty() {
            let _ = effects::perform(&ctx, deferred).await;
        }
        match &call {
            DoRequest::AuthFailure { prefix, .. } => self.auth_failure(&ctx, *prefix).await,
            DoRequest::Reconcile { .. } => reconcile(&ctx).await,
            DoRequest::Serve { key, origin, inject_fault, op, .. } => {
                self.serve(&ctx, key, origin.as_deref(), *inject_fault, op, payload).await
            }
            DoRequest::Move { .. } => refused(ApiError::internal("move handled above")),
        }
    }

    /// One step of a move between shards (`crate::moving`).
    async fn move_step(&self, meta: &CallMeta, to: &ShardId, action: MoveAction, now: i64) -> DoResponse {
        if let Err(e) = self.bind_org(&meta.org_id).await {
            return refused(e);
        }
        let mover = moving::Mover { env: &self.env, memory: &self.memory, org: &meta.org_id, now };
        let result =
            moving::step(&mover, to, action).await.map(|report| Outcome::Moved { report }).map_err(Refusal::from);
        DoResponse { result, origin_allowed: false, rate: None }
    }

    /// The org's shard: as the directory named it when first asked, then as
    /// this actor's own moves changed it.
    async fn placed(&self, dir: &D1Database, org: &OrgId) -> Res<ShardId> {
        if let Some(s) = self.memory.shard.borrow().clone() {
            return Ok(s);
        }
        let s = moving::placed(dir, org).await?;
        *self.memory.shard.borrow_mut() = Some(s.clone());
        Ok(s)
    }

    /// Binds to the org, arms the alarms once, loads the access state.
    async fn prepare(&self, meta: &CallMeta, cfg: &Config, now: i64) -> Res<(D1Database, D1Database)> {
        self.bind_org(&meta.org_id).await?;
        if !self.armed.get() {
            self.armed.set(alarm::ensure_armed(&self.state, &self.env, now).await);
        }
        let dir = directory(&self.env)?;
        let db = shard(&self.env, &self.placed(&dir, &meta.org_id).await?)?;
        if self.memory.gate.borrow().is_none() {
            let (gate, settings) = load((&db, &dir), &meta.org_id, cfg, now).await?;
            // Another call may have loaded it while this one waited.
            if self.memory.gate.borrow().is_none() {
                *self.memory.gate.borrow_mut() = Some(gate);
                *self.memory.settings.borrow_mut() = settings;
            }
        }
        Ok((db, dir))
    }

    /// A wrong secret on one of this org's prefixes: recorded, nothing else.
    async fn auth_failure(&self, ctx: &Ctx<'_>, prefix: KeyPrefix) -> DoResponse {
        let fx = ctx.gate(|g| g.record_auth_failure(prefix, ctx.now)).unwrap_or_default();
        let _ = effects::perform(ctx, fx).await;
        DoResponse {
            result: Err(Refusal::Denied { reason: AuthFailure::WrongHash }),
            origin_allowed: false,
            rate: None,
        }
    }

    /// The access decision, its effects, then the operation.
    async fn serve(
        &self,
        ctx: &Ctx<'_>,
        key: &VerifiedKey,
        origin: Option<&str>,
        inject_fault: bool,
        op: &Op,
        payload: Option<&[u8]>,
    ) -> DoResponse {
        let (decision, fx, rate) = match self.decide(ctx, key, origin).await {
            Ok(d) => d,
            Err(e) => return refused(e),
        };
        let result = match effects::perform(ctx, fx).await {
            Err(e) => Err(e.into()),
            Ok(()) => match decision.into_result() {
                Ok(by) => dispatch::run(ctx, &by, op, inject_fault, payload).await,
                Err(refusal) => Err(refusal),
            },
        };
        let origin_allowed = origin.is_some_and(|o| ctx.gate(|g| g.origin_allowed(o)).unwrap_or(false));
        DoResponse { result, origin_allowed, rate }
    }

    /// Asks the gate. A prefix it does not hold is looked up in D1 first (a
    /// key made by the operator command behind the actor's back); L2 in the
    /// bench-only D1 mode is counted in D1 before the decision.
    async fn decide(
        &self,
        ctx: &Ctx<'_>,
        key: &VerifiedKey,
        origin: Option<&str>,
    ) -> Res<(Decision, Vec<Effect>, Option<interlog_core::protocol::RateStanding>)> {
        if !ctx.gate(|g| g.keys.contains(&key.prefix))? {
            // Only keys this actor does not know yet are added: its own
            // records are newer than any snapshot.
            key_ops::adopt_stored(ctx).await?;
        }
        let l2 = match ctx.cfg.l2_mode {
            L2Mode::Memory => L2Check::InMemory,
            L2Mode::D1 => bench_l2(ctx, key.prefix).await?,
        };
        let req = AccessRequest { key, origin, now_ms: ctx.now, l2 };
        ctx.gate(|g| g.decide(&req))
    }

    async fn on_alarm(&self) -> Res<()> {
        let stored: Option<String> =
            self.state.storage().get(BOUND_ORG_KEY).await.map_err(|e| storage_error("alarm org", e))?;
        let Some(org) = stored.as_deref().and_then(OrgId::parse) else {
            // Never served a request: nothing of an org to keep tidy.
            return Ok(());
        };
        let cfg = config(&self.env)?;
        if moving::wait_for_pause(&self.memory).await {
            // The org's data is moving: its duties run after the switch.
            let storage = self.state.storage();
            return storage.set_alarm(5_000).await.map_err(|e| storage_error("alarm rearm", e));
        }
        let _busy = Busy::enter(&self.memory);
        let dir = directory(&self.env)?;
        let a = AlarmCtx {
            state: &self.state,
            db: shard(&self.env, &self.placed(&dir, &org).await?)?,
            dir,
            org: &org,
            cfg: &cfg,
            memory: &self.memory,
            now: now_ms(),
        };
        alarm::run(&a).await
    }

    /// Binds this actor to `asked` on first use; refuses any other org after.
    async fn bind_org(&self, asked: &OrgId) -> Res<()> {
        if self.bound.borrow().is_none() {
            let storage = self.state.storage();
            let stored: Option<String> =
                storage.get(BOUND_ORG_KEY).await.map_err(|e| storage_error("actor bound org", e))?;
            let org = match stored.as_deref().map(OrgId::parse) {
                Some(Some(org)) => org,
                Some(None) => return Err(ApiError::internal("actor holds an unparseable org id")),
                None => {
                    storage.put(BOUND_ORG_KEY, asked.as_str()).await.map_err(|e| storage_error("actor bind org", e))?;
                    asked.clone()
                }
            };
            *self.bound.borrow_mut() = Some(org);
        }
        let bound = self.bound.borrow().clone();
        if org_matches(bound.as_ref(), asked) {
            Ok(())
        } else {
            console_error!("org actor bound to {bound:?} refused a call for {asked}");
            Err(ApiError::internal("org actor refused a call for another org"))
        }
    }
}

/// The org's access state and settings from D1: keys, the org row (allowed
/// origins, usage), L2 checkpoints.
async fn load(
    (db, dir): (&D1Database, &D1Database),
    org: &OrgId,
    cfg: &Config,
    now: i64,
) -> Res<(Gate, Option<OrgView>)> {
    let mut limiter = cfg.new_limiter();
    let rows = limits::load(db, org, &limiter, now).await?;
    limiter.restore(rows, now);
    let keys = keys::load(dir, org).await?;
    let settings = org_ops::read(db, org).await?;
    let origins = settings.as_ref().map(|o| o.allowed_origins.clone()).unwrap_or_default();
    Ok((Gate::new(keys, origins, limiter, AlertRules::default()), settings))
}

/// The operator changed keys in D1 behind the actor's back: read them again
/// and apply D1's revocations and expiries to the keys held (D1's ends win,
/// nothing held is revived). Idempotent.
async fn reconcile(ctx: &Ctx<'_>) -> DoResponse {
    let result = match keys::load(&ctx.dir, ctx.org()).await {
        Ok(stored) => ctx.gate(|g| g.keys.reconcile(stored)).map(|_| Outcome::Done).map_err(Refusal::from),
        Err(e) => Err(e.into()),
    };
    DoResponse { result, origin_allowed: false, rate: None }
}

/// Bench only: L2 counted by a D1 write and read per request.
async fn bench_l2(ctx: &Ctx<'_>, prefix: KeyPrefix) -> Res<L2Check> {
    let limiter = ctx.cfg.new_limiter();
    let (allowed, remaining) = limits::check_with_d1(&ctx.db, ctx.org(), &prefix, &limiter, ctx.now).await?;
    let window_s = u64::try_from(limiter.period_ms()).unwrap_or(60_000).div_ceil(1000);
    Ok(L2Check::External { allowed, remaining, limit: limiter.limit(), window_s })
}
