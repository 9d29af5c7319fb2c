//! The per-org Durable Object. Bound to one org for life (it refuses calls for
//! any other), it holds the authoritative live state of the org's keys and
//! settings and executes every read and write of the org's rows.

use crate::interactions;
use crate::keys;
use crate::limits;
use crate::platform::{first, ms, now_ms, opt_str, run, storage_error, write_audit, AuditEntry};
use crate::records;
use crate::retention::{self, RetentionConfig};
use interlog_core::alerts::{AlertKind, AlertRules, AlertTracker};
use interlog_core::auth::{Access, AuthFailure, KeyStatus};
use interlog_core::interaction::parse_batch;
use interlog_core::keys::{rotated_expiry, KeyRecord};
use interlog_core::org::OrgView;
use interlog_core::protocol::{org_matches, Caller, DoReply, DoRequest, DoResponse, Op, RateStanding, CALL_HEADER};
use interlog_core::ratelimit::RateLimiter;
use interlog_core::timefmt::rfc3339;
use interlog_core::{ApiError, KeyPrefix, OrgId, Scope};
use serde::Deserialize;
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use worker::{
    console_error, console_log, durable_object, D1Database, DurableObject, Env, Request, Response, Result, State,
};

type Res<T> = std::result::Result<T, ApiError>;

const BOUND_ORG_KEY: &str = "org_id";
const NEXT_RETENTION_KEY: &str = "next_retention_at";
const LAST_RETENTION_KEY: &str = "last_retention_run";
/// First alarm after an actor starts serving (lets a restart catch up soon).
const FIRST_ALARM_DELAY_MS: i64 = 1_000;
/// How soon after a key is used its `last_used_at` reaches D1.
const FLUSH_DELAY_MS: i64 = 30_000;
/// At most one audit row per key and minute for L2 denials.
const L2_AUDIT_EVERY_MS: i64 = 60_000;

#[durable_object]
pub struct OrgActor {
    state: State,
    env: Env,
    bound: RefCell<Option<OrgId>>,
    /// The org's keys, loaded on first use; this actor is their only writer.
    keys: RefCell<Option<HashMap<KeyPrefix, KeyRecord>>>,
    /// The org's `allowed_origins`, loaded on first use.
    origins: RefCell<Option<Vec<String>>>,
    /// `last_used_at` values not yet written to D1.
    used: RefCell<HashMap<KeyPrefix, i64>>,
    alerts: RefCell<AlertTracker>,
    /// L2: per-key sliding windows, restored from D1 checkpoints on first use.
    limiter: RefCell<Option<RateLimiter<KeyPrefix>>>,
    /// When each key's last L2 denial was audited (one row per key and minute).
    l2_audited: RefCell<HashMap<KeyPrefix, i64>>,
    /// Whether this instance has checked its alarm (and the Janitor's) yet.
    armed: Cell<bool>,
}

#[derive(Deserialize)]
struct OrgRow {
    name: String,
    allowed_origins: String,
    created_at: f64,
    updated_at: f64,
}

/// The org's settings row.
async fn org_row(db: &D1Database, org: &OrgId) -> Res<Option<OrgRow>> {
    let sql = "SELECT name, allowed_origins, created_at, updated_at FROM orgs WHERE id = ?1";
    first(db, sql, &[org.as_str().into()], "org select").await
}

fn ok(status: u16, body: Value) -> DoReply {
    DoReply::Ok { status, body, next: None, replayed: false }
}

fn to_value<T: serde::Serialize>(v: &T) -> Res<Value> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

impl DurableObject for OrgActor {
    fn new(state: State, env: Env) -> Self {
        Self {
            state,
            env,
            bound: RefCell::new(None),
            keys: RefCell::new(None),
            origins: RefCell::new(None),
            used: RefCell::new(HashMap::new()),
            alerts: RefCell::new(AlertTracker::new(AlertRules::default())),
            limiter: RefCell::new(None),
            l2_audited: RefCell::new(HashMap::new()),
            armed: Cell::new(false),
        }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        // The call comes as the body, or in a header when the body is the
        // client's own (a batch, parsed once, here).
        let header = req.headers().get(CALL_HEADER).ok().flatten();
        let (call, payload) = match header {
            Some(h) => (serde_json::from_str::<DoRequest>(&h).map_err(|e| e.to_string()), Some(req.bytes().await?)),
            None => (req.json::<DoRequest>().await.map_err(|e| e.to_string()), None),
        };
        let response = match call {
            Ok(call) => self.handle(call, payload.as_deref()).await,
            Err(e) => DoResponse {
                reply: DoReply::Failed { error: ApiError::internal(format!("bad actor request: {e}")) },
                origin_allowed: false,
                rate: None,
            },
        };
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

impl OrgActor {
    fn db(&self) -> Res<D1Database> {
        self.env.d1("DB").map_err(|e| storage_error("d1 binding", e))
    }

    async fn handle(&self, call: DoRequest, payload: Option<&[u8]>) -> DoResponse {
        // Per call: requests of this actor interleave at every await, so the
        // caller's L2 standing must never live in shared state.
        let standing = Cell::new(None);
        let reply = match self.serve(&call, &standing, payload).await {
            Ok(reply) => reply,
            Err(error) => DoReply::Failed { error },
        };
        let origin_allowed = call.origin.as_ref().is_some_and(|o| self.origin_allowed(o));
        DoResponse { reply, origin_allowed, rate: standing.take() }
    }

    fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.borrow().as_ref().is_some_and(|list| list.iter().any(|o| o == origin))
    }

    async fn serve(
        &self,
        call: &DoRequest,
        standing: &Cell<Option<RateStanding>>,
        payload: Option<&[u8]>,
    ) -> Res<DoReply> {
        self.bind_org(&call.org_id).await?;
        if !self.armed.get() {
            self.ensure_armed().await;
        }
        let db = self.db()?;
        let org = &call.org_id;
        self.ensure_loaded(&db, org).await?;
        match &call.caller {
            Caller::FailedKey { prefix, reason } => {
                self.audit(call, "auth.failure", Some(reason.reason()), Some(*prefix), None).await;
                self.observe(&db, org, AlertKind::AuthFailureBurst, *prefix).await;
                Ok(DoReply::Denied { reason: *reason })
            }
            Caller::Key { prefix, scope, rehash } => {
                let now = now_ms();
                let record = self.key_record(&db, org, prefix).await?;
                let access = record
                    .as_ref()
                    .map_or(Access::Denied(AuthFailure::UnknownPrefix), |k| k.state.access(Some(*scope), now));
                match access {
                    Access::Denied(reason) => {
                        self.audit(call, "auth.failure", Some(reason.reason()), Some(*prefix), None).await;
                        if matches!(reason, AuthFailure::Revoked | AuthFailure::Expired) {
                            self.observe(&db, org, AlertKind::DeadKeyUsed, *prefix).await;
                        }
                        Ok(DoReply::Denied { reason })
                    }
                    Access::MissingScope(s) => {
                        self.audit(call, "auth.forbidden", Some(s.as_str()), Some(*prefix), None).await;
                        Err(ApiError::Forbidden { message: format!("this API key lacks the '{s}' scope") })
                    }
                    Access::Granted => {
                        self.check_l2(call, &db, *prefix, now, standing).await?;
                        if let Some(o) = &call.origin {
                            if !self.origin_allowed(o) {
                                let detail = json!({ "origin": o }).to_string();
                                self.audit(call, "cors.refused", None, Some(*prefix), Some(&detail)).await;
                                return Err(ApiError::Forbidden {
                                    message: "this Origin is not in the org's allowed_origins".into(),
                                });
                            }
                        }
                        if let Some(m) = rehash {
                            keys::rehash(&db, org, m).await?;
                        }
                        let expires_at = record.and_then(|r| r.state.expires_at);
                        self.note_use(&db, org, *prefix, expires_at, now).await;
                        self.run(call, &db, now, payload).await
                    }
                }
            }
        }
    }

    async fn run(&self, call: &DoRequest, db: &D1Database, now: i64, payload: Option<&[u8]>) -> Res<DoReply> {
        let org = &call.org_id;
        match &call.op {
            Op::Ping => Ok(ok(204, Value::Null)),
            Op::GetOrg => self.org_reply(db, org).await,
            Op::UpdateOrg { name, allowed_origins } => {
                let origins_json = allowed_origins
                    .as_ref()
                    .map(|list| Value::from(list.iter().map(|o| o.to_string()).collect::<Vec<_>>()));
                run(
                    db,
                    "UPDATE orgs SET name = COALESCE(?1, name), allowed_origins = COALESCE(?2, allowed_origins), \
                     updated_at = ?3 WHERE id = ?4",
                    &[
                        opt_str(name.as_deref()),
                        opt_str(origins_json.as_ref().map(Value::to_string).as_deref()),
                        ms(now),
                        org.as_str().into(),
                    ],
                    "org update bind",
                )
                .await?;
                if let Some(list) = allowed_origins {
                    *self.origins.borrow_mut() = Some(list.iter().map(|o| o.to_string()).collect());
                }
                let detail = json!({ "name": name, "allowed_origins": origins_json }).to_string();
                self.audit(call, "org.updated", None, self.caller_prefix(call), Some(&detail)).await;
                self.org_reply(db, org).await
            }
            Op::CreateInteraction { item } => interactions::create_one(db, org, item, call.inject_fault).await,
            Op::CreateInteractionsFromBody => {
                let items = parse_batch(payload.unwrap_or_default(), now)?;
                interactions::create_many(db, org, &items, call.inject_fault).await
            }
            Op::ListInteractions { filter, limit, after } => {
                interactions::list(db, org, filter, *limit, after.as_ref()).await
            }
            Op::GetInteraction { id } => interactions::get(db, org, id).await,
            Op::DeleteInteraction { id } => {
                if !interactions::delete(db, org, id).await? {
                    return Err(ApiError::NotFound);
                }
                let detail = json!({ "interaction_id": id }).to_string();
                self.audit(call, "interaction.deleted", None, self.caller_prefix(call), Some(&detail)).await;
                Ok(ok(204, Value::Null))
            }
            Op::CreateKey { request, material } => {
                let record = keys::create(db, org, request, material, now).await?;
                let view = record.view(now);
                self.keys_mut(|m| {
                    m.insert(material.prefix, record);
                });
                let detail = json!({ "name": request.name, "scopes": request.scopes, "expires_at": view.expires_at });
                self.audit(call, "key.created", None, Some(material.prefix), Some(&detail.to_string())).await;
                Ok(ok(201, to_value(&view)?))
            }
            Op::ListKeys => {
                let used = self.used.borrow().clone();
                let mut list: Vec<KeyRecord> =
                    self.keys.borrow().as_ref().map(|m| m.values().cloned().collect()).unwrap_or_default();
                list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.state.prefix.cmp(&a.state.prefix)));
                let views: Vec<Value> = list
                    .iter_mut()
                    .map(|r| {
                        if let Some(t) = used.get(&r.state.prefix) {
                            r.last_used_at = Some(r.last_used_at.map_or(*t, |x| x.max(*t)));
                        }
                        to_value(&r.view(now))
                    })
                    .collect::<Res<_>>()?;
                Ok(ok(200, json!({ "keys": views })))
            }
            Op::RevokeKey { prefix } => {
                let record = self.cached_key(prefix).ok_or(ApiError::NotFound)?;
                if record.state.status == KeyStatus::Revoked {
                    return Ok(ok(200, to_value(&record.view(now))?));
                }
                if self.is_last_live_admin(&record, now) {
                    return Err(ApiError::Conflict {
                        message: "this is the org's last active admin key; create or rotate to another admin key \
                                  before revoking it"
                            .into(),
                    });
                }
                keys::revoke(db, org, prefix, now).await?;
                let mut revoked = record;
                revoked.state.status = KeyStatus::Revoked;
                let view = revoked.view(now);
                self.keys_mut(|m| {
                    m.insert(*prefix, revoked);
                });
                self.audit(call, "key.revoked", None, Some(*prefix), None).await;
                Ok(ok(200, to_value(&view)?))
            }
            Op::RotateKey { prefix, grace_ms, material } => {
                let old = self.cached_key(prefix).ok_or(ApiError::NotFound)?;
                if !old.is_live(now) {
                    return Err(ApiError::Conflict { message: "only an active key can be rotated".into() });
                }
                let old_expiry = rotated_expiry(old.state.expires_at, now, *grace_ms);
                let successor = keys::rotate(db, org, &old, old_expiry, material, now).await?;
                let mut previous = old;
                previous.state.expires_at = Some(old_expiry);
                previous.replaced_by = Some(material.prefix.to_string());
                let (new_view, old_view) = (successor.view(now), previous.view(now));
                self.keys_mut(|m| {
                    m.insert(material.prefix, successor);
                    m.insert(*prefix, previous);
                });
                let detail = json!({ "successor": material.prefix, "grace_seconds": grace_ms / 1000, "expires_at": old_view.expires_at });
                self.audit(call, "key.rotated", None, Some(*prefix), Some(&detail.to_string())).await;
                let mut body = to_value(&new_view)?;
                body["previous"] = to_value(&old_view)?;
                Ok(ok(201, body))
            }
            Op::ListAudit { filter, limit, after } => {
                records::list_audit(db, org, filter, *limit, after.as_ref()).await
            }
            Op::ListAlerts { filter, limit, after } => {
                records::list_alerts(db, org, filter, *limit, after.as_ref()).await
            }
            Op::Invalid { error } => Err(error.clone()),
            Op::RecordAuthFailure => Err(ApiError::internal("record_auth_failure needs a failed key")),
        }
    }

    fn caller_prefix(&self, call: &DoRequest) -> Option<KeyPrefix> {
        match call.caller {
            Caller::Key { prefix, .. } | Caller::FailedKey { prefix, .. } => Some(prefix),
        }
    }

    fn cached_key(&self, prefix: &KeyPrefix) -> Option<KeyRecord> {
        self.keys.borrow().as_ref().and_then(|m| m.get(prefix).cloned())
    }

    fn keys_mut(&self, f: impl FnOnce(&mut HashMap<KeyPrefix, KeyRecord>)) {
        if let Some(m) = self.keys.borrow_mut().as_mut() {
            f(m);
        }
    }

    fn is_last_live_admin(&self, target: &KeyRecord, now: i64) -> bool {
        if !target.is_live(now) || !target.state.scopes.contains(Scope::Admin) {
            return false;
        }
        let keys = self.keys.borrow();
        let others = keys.as_ref().map_or(0, |m| {
            m.values()
                .filter(|k| {
                    k.state.prefix != target.state.prefix && k.is_live(now) && k.state.scopes.contains(Scope::Admin)
                })
                .count()
        });
        others == 0
    }

    async fn org_reply(&self, db: &D1Database, org: &OrgId) -> Res<DoReply> {
        let row = org_row(db, org).await?;
        let row = row.ok_or(ApiError::NotFound)?;
        let view = OrgView::from_row(
            org.clone(),
            row.name,
            &row.allowed_origins,
            row.created_at as i64,
            row.updated_at as i64,
        );
        let mut body = to_value(&view)?;
        let last: Option<Value> =
            self.state.storage().get(LAST_RETENTION_KEY).await.map_err(|e| storage_error("org retention", e))?;
        body["last_retention_run"] = last.unwrap_or(Value::Null);
        Ok(ok(200, body))
    }

    /// Loads the org's keys, settings and L2 checkpoints on first use.
    async fn ensure_loaded(&self, db: &D1Database, org: &OrgId) -> Res<()> {
        if self.limiter.borrow().is_none() {
            let mut limiter = limits::new_limiter(&self.env);
            let now = now_ms();
            let rows = limits::load(db, org, &limiter, now).await?;
            limiter.restore(rows, now);
            // Another request may have restored it while this one waited.
            if self.limiter.borrow().is_none() {
                *self.limiter.borrow_mut() = Some(limiter);
            }
        }
        if self.keys.borrow().is_none() {
            let loaded = keys::load(db, org).await?;
            *self.keys.borrow_mut() = Some(loaded);
        }
        if self.origins.borrow().is_none() {
            let row = org_row(db, org).await?;
            let list: Vec<String> = row.and_then(|r| serde_json::from_str(&r.allowed_origins).ok()).unwrap_or_default();
            *self.origins.borrow_mut() = Some(list);
        }
        Ok(())
    }

    /// The live record of `prefix`; reloads once for a prefix not known yet
    /// (a key made by the operator command behind the actor's back).
    async fn key_record(&self, db: &D1Database, org: &OrgId, prefix: &KeyPrefix) -> Res<Option<KeyRecord>> {
        if let Some(k) = self.cached_key(prefix) {
            return Ok(Some(k));
        }
        let loaded = keys::load(db, org).await?;
        let found = loaded.get(prefix).cloned();
        *self.keys.borrow_mut() = Some(loaded);
        Ok(found)
    }

    /// L2 for a live key: counts the request, records the standing for the
    /// RateLimit headers, and refuses with 429 when the key is over its limit.
    async fn check_l2(
        &self,
        call: &DoRequest,
        db: &D1Database,
        prefix: KeyPrefix,
        now: i64,
        standing: &Cell<Option<RateStanding>>,
    ) -> Res<()> {
        let org = &call.org_id;
        if limits::d1_mode(&self.env) {
            return self.check_l2_bench_d1(db, org, prefix, now, standing).await;
        }
        let decision = {
            let mut guard = self.limiter.borrow_mut();
            let limiter = guard.get_or_insert_with(|| limits::new_limiter(&self.env));
            let d = limiter.check(&prefix, now);
            standing.set(Some(RateStanding {
                limit: d.limit,
                remaining: d.remaining,
                reset_s: u64::try_from(d.reset_ms.max(0)).unwrap_or(0).div_ceil(1000),
                window_s: u64::try_from(limiter.period_ms()).unwrap_or(60_000).div_ceil(1000),
            }));
            d
        };
        if !decision.allowed {
            self.observe(db, org, AlertKind::L2LimitRepeated, prefix).await;
            let audit_due = {
                let mut audited = self.l2_audited.borrow_mut();
                audited.retain(|_, t| now - *t < L2_AUDIT_EVERY_MS);
                audited.insert(prefix, now).is_none()
            };
            if audit_due {
                self.audit(call, "rate_limited", Some("l2"), Some(prefix), None).await;
            }
            return Err(ApiError::RateLimited { retry_after_s: decision.retry_after_s() });
        }
        let unsaved = self.limiter.borrow().as_ref().map_or(0, RateLimiter::unsaved_admissions);
        if unsaved >= limits::CHECKPOINT_EVERY {
            self.checkpoint(db, org, now).await;
        } else if unsaved == 1 {
            self.schedule(limits::CHECKPOINT_DELAY_MS, now).await;
        }
        Ok(())
    }

    /// Bench only (`L2_MODE=d1`): the same policy with a D1 query per request.
    async fn check_l2_bench_d1(
        &self,
        db: &D1Database,
        org: &OrgId,
        prefix: KeyPrefix,
        now: i64,
        standing: &Cell<Option<RateStanding>>,
    ) -> Res<()> {
        let limiter = limits::new_limiter(&self.env);
        let (allowed, remaining) = limits::check_with_d1(db, org, &prefix, &limiter, now).await?;
        standing.set(Some(RateStanding {
            limit: limiter.limit(),
            remaining,
            reset_s: if allowed { 0 } else { 1 },
            window_s: u64::try_from(limiter.period_ms()).unwrap_or(60_000).div_ceil(1000),
        }));
        if allowed {
            Ok(())
        } else {
            Err(ApiError::RateLimited { retry_after_s: 1 })
        }
    }

    /// Writes the limiter's changed buckets; on failure they are kept for the next try.
    async fn checkpoint(&self, db: &D1Database, org: &OrgId, now: i64) {
        let rows = self.limiter.borrow_mut().as_mut().map(|l| l.snapshot_dirty(now)).unwrap_or_default();
        if let Err(e) = limits::save(db, org, &rows, now).await {
            console_error!("L2 checkpoint failed: {e}");
            if let Some(l) = self.limiter.borrow_mut().as_mut() {
                l.requeue(rows);
            }
        }
    }

    /// Makes sure the alarm fires within `delay_ms`.
    async fn schedule(&self, delay_ms: i64, now: i64) {
        let storage = self.state.storage();
        let due = storage.get_alarm().await.ok().flatten();
        if due.is_none_or(|t| t > now + delay_ms) {
            if let Err(e) = storage.set_alarm(delay_ms).await {
                console_error!("could not schedule the alarm: {e}");
            }
        }
    }

    /// Remembers that a key was used (written to D1 by the alarm, not per
    /// request) and raises `key_expiring` for keys close to their expiry.
    async fn note_use(&self, db: &D1Database, org: &OrgId, prefix: KeyPrefix, expires_at: Option<i64>, now: i64) {
        let first_dirty = {
            let mut used = self.used.borrow_mut();
            let was_empty = used.is_empty();
            used.insert(prefix, now);
            was_empty
        };
        if first_dirty {
            self.schedule(FLUSH_DELAY_MS, now).await;
        }
        let expiring = self.alerts.borrow().expiring_soon(expires_at, now);
        if expiring {
            self.observe(db, org, AlertKind::KeyExpiring, prefix).await;
        }
    }

    /// Feeds the alert rules; writes the alert when they say so.
    async fn observe(&self, db: &D1Database, org: &OrgId, kind: AlertKind, prefix: KeyPrefix) {
        let write = self.alerts.borrow_mut().observe(kind, prefix.as_str(), now_ms());
        if let Some(w) = write {
            if let Err(e) = records::write_alert(db, org, &w).await {
                console_error!("alert write failed ({}): {e}", kind.as_str());
            }
        }
    }

    /// Makes sure this actor's alarm is set and pings the Janitor so that it
    /// is armed too. Runs once per instance; failures are logged and retried
    /// on the next request.
    async fn ensure_armed(&self) {
        let storage = self.state.storage();
        // None set, or one whose time has passed without it firing (the local
        // runtime can lose an alarm that fell due while it was down): set it
        // again. An extra run is harmless, runs are idempotent.
        let ok = match storage.get_alarm().await {
            Ok(Some(at)) if at >= now_ms() => true,
            Ok(_) => storage.set_alarm(FIRST_ALARM_DELAY_MS).await.is_ok(),
            Err(_) => false,
        };
        let janitor =
            self.env.durable_object("JANITOR").and_then(|ns| ns.id_from_name(crate::janitor::JANITOR_NAME)?.get_stub());
        let janitor_ok = match janitor {
            Ok(stub) => matches!(stub.fetch_with_str(crate::janitor::ARM_URL).await, Ok(r) if r.status_code() < 300),
            Err(_) => false,
        };
        if !(ok && janitor_ok) {
            console_error!("org actor could not arm alarms (own: {ok}, janitor: {janitor_ok})");
        }
        self.armed.set(ok && janitor_ok);
    }

    /// One alarm run: flush `last_used_at`, retention when due, then re-arm
    /// for the next due work.
    async fn on_alarm(&self) -> Res<()> {
        let storage = self.state.storage();
        let org: Option<String> = storage.get(BOUND_ORG_KEY).await.map_err(|e| storage_error("alarm org", e))?;
        let Some(org) = org.as_deref().and_then(OrgId::parse) else {
            // Never served a request: nothing of an org to keep tidy.
            return Ok(());
        };
        let now = now_ms();
        let db = self.db()?;
        let used: Vec<(KeyPrefix, i64)> = self.used.borrow_mut().drain().collect();
        if let Err(e) = keys::flush_last_used(&db, &org, &used).await {
            // Keep them for the next run.
            self.used.borrow_mut().extend(used);
            return Err(e);
        }
        for (prefix, at) in &used {
            self.keys_mut(|m| {
                if let Some(k) = m.get_mut(prefix) {
                    k.last_used_at = Some(k.last_used_at.map_or(*at, |x| x.max(*at)));
                }
            });
        }
        self.alerts.borrow_mut().evict(now);
        self.checkpoint(&db, &org, now).await;
        if let Some(l) = self.limiter.borrow_mut().as_mut() {
            l.evict_idle(now);
        }

        let cfg = RetentionConfig::from_env(&self.env);
        let due: Option<i64> = storage.get(NEXT_RETENTION_KEY).await.map_err(|e| storage_error("alarm due", e))?;
        let mut next = due.unwrap_or(now);
        if next <= now {
            let report = retention::run_org(&db, &org, now, &cfg).await?;
            let deleted: serde_json::Map<String, Value> =
                report.deleted.iter().map(|(t, n)| ((*t).to_string(), (*n).into())).collect();
            let summary = json!({ "at": rfc3339(now), "deleted": deleted, "complete": !report.more });
            console_log!("retention org={org} {summary}");
            next = now + if report.more { cfg.busy_interval_ms } else { cfg.interval_ms };
            storage.put(LAST_RETENTION_KEY, summary).await.map_err(|e| storage_error("alarm summary", e))?;
            storage.put(NEXT_RETENTION_KEY, next).await.map_err(|e| storage_error("alarm next", e))?;
        }
        if !self.used.borrow().is_empty() {
            next = next.min(now + FLUSH_DELAY_MS);
        }
        if self.limiter.borrow().as_ref().is_some_and(|l| l.unsaved_admissions() > 0) {
            next = next.min(now + limits::CHECKPOINT_DELAY_MS);
        }
        storage.set_alarm(next.saturating_sub(now).max(0)).await.map_err(|e| storage_error("alarm rearm", e))?;
        Ok(())
    }

    /// Binds this actor to `asked` on first use; refuses any other org after.
    async fn bind_org(&self, asked: &OrgId) -> Res<()> {
        if self.bound.borrow().is_none() {
            let stored: Option<String> =
                self.state.storage().get(BOUND_ORG_KEY).await.map_err(|e| storage_error("actor bound org", e))?;
            match stored.as_deref().map(OrgId::parse) {
                Some(Some(org)) => *self.bound.borrow_mut() = Some(org),
                Some(None) => return Err(ApiError::internal("actor holds an unparseable org id")),
                None => {
                    self.state
                        .storage()
                        .put(BOUND_ORG_KEY, asked.as_str())
                        .await
                        .map_err(|e| storage_error("actor bind org", e))?;
                    *self.bound.borrow_mut() = Some(asked.clone());
                }
            }
        }
        let bound = self.bound.borrow().clone();
        if org_matches(bound.as_ref(), asked) {
            Ok(())
        } else {
            console_error!("org actor bound to {bound:?} refused a call for {asked}");
            Err(ApiError::internal("org actor refused a call for another org"))
        }
    }

    async fn audit(
        &self,
        call: &DoRequest,
        action: &str,
        reason: Option<&str>,
        prefix: Option<KeyPrefix>,
        detail: Option<&str>,
    ) {
        let Ok(db) = self.db() else {
            console_error!("audit: no DB binding");
            return;
        };
        let prefix_text = prefix.map(|p| p.to_string());
        let entry = AuditEntry {
            org_id: Some(call.org_id.as_str()),
            at: now_ms(),
            action,
            reason,
            prefix: prefix_text.as_deref(),
            ip: call.client_ip.as_deref(),
            request_id: &call.request_id,
            detail,
        };
        // Logged inside; an audit failure must not change the client's answer.
        let _ = write_audit(&db, &entry).await;
    }
}
