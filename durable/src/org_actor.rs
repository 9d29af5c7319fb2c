//! The per-org Durable Object. Bound to one org for life (it refuses calls for
//! any other), it holds the authoritative live state of the org's keys and
//! executes every read and write of the org's rows.

use crate::interactions;
use crate::platform::{now_ms, storage_error, write_audit, AuditEntry};
use crate::retention::{self, RetentionConfig};
use interlog_core::auth::{Access, AuthFailure, KeyState, KeyStatus};
use interlog_core::org::OrgView;
use interlog_core::protocol::{org_matches, Caller, DoReply, DoRequest, Op};
use interlog_core::timefmt::rfc3339;
use interlog_core::{ApiError, KeyPrefix, OrgId, Scopes};
use serde::Deserialize;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{console_error, console_log, durable_object, DurableObject, Env, Request, Response, Result, State};

const BOUND_ORG_KEY: &str = "org_id";
const NEXT_RETENTION_KEY: &str = "next_retention_at";
const LAST_RETENTION_KEY: &str = "last_retention_run";
/// First alarm after an actor starts serving (lets a restart catch up soon).
const FIRST_ALARM_DELAY_MS: i64 = 1_000;

#[durable_object]
pub struct OrgActor {
    state: State,
    env: Env,
    bound: RefCell<Option<OrgId>>,
    keys: RefCell<Option<HashMap<KeyPrefix, KeyState>>>,
    /// Whether this instance has checked its alarm (and the Janitor's) yet.
    armed: std::cell::Cell<bool>,
}

#[derive(Deserialize)]
struct KeyRow {
    prefix: String,
    scopes: String,
    state: String,
    expires_at: Option<f64>,
}

#[derive(Deserialize)]
struct OrgRow {
    name: String,
    allowed_origins: String,
    created_at: f64,
    updated_at: f64,
}

impl DurableObject for OrgActor {
    fn new(state: State, env: Env) -> Self {
        Self { state, env, bound: RefCell::new(None), keys: RefCell::new(None), armed: std::cell::Cell::new(false) }
    }

    async fn fetch(&self, mut req: Request) -> Result<Response> {
        let reply = match req.json::<DoRequest>().await {
            Ok(call) => self.handle(call).await,
            Err(e) => DoReply::Failed { error: ApiError::internal(format!("bad actor request: {e}")) },
        };
        Response::from_json(&reply)
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
    async fn handle(&self, call: DoRequest) -> DoReply {
        match self.serve(&call).await {
            Ok(reply) => reply,
            Err(error) => DoReply::Failed { error },
        }
    }

    async fn serve(&self, call: &DoRequest) -> std::result::Result<DoReply, ApiError> {
        self.bind_org(&call.org_id).await?;
        if !self.armed.get() {
            self.ensure_armed().await;
        }
        match &call.caller {
            Caller::FailedKey { prefix, reason } => {
                self.audit_failure(call, Some(*prefix), *reason).await;
                Ok(DoReply::Denied { reason: *reason })
            }
            Caller::Key { prefix, scope } => {
                let now = now_ms();
                let state = self.key_state(&call.org_id, prefix).await?;
                let access = state.map_or(Access::Denied(AuthFailure::UnknownPrefix), |k| k.access(Some(*scope), now));
                match access {
                    Access::Denied(reason) => {
                        self.audit_failure(call, Some(*prefix), reason).await;
                        Ok(DoReply::Denied { reason })
                    }
                    Access::MissingScope(s) => {
                        self.audit(call, "auth.forbidden", Some(s.as_str()), Some(*prefix), None).await;
                        Err(ApiError::Forbidden { message: format!("this API key lacks the '{s}' scope") })
                    }
                    Access::Granted => self.run(call).await,
                }
            }
        }
    }

    async fn run(&self, call: &DoRequest) -> std::result::Result<DoReply, ApiError> {
        let org = &call.org_id;
        let db = || self.env.d1("DB").map_err(|e| storage_error("d1 binding", e));
        match &call.op {
            Op::GetOrg => {
                let view = self.org_view(org).await?;
                let mut body = serde_json::to_value(view).map_err(|e| ApiError::internal(e.to_string()))?;
                let last: Option<serde_json::Value> = self
                    .state
                    .storage()
                    .get(LAST_RETENTION_KEY)
                    .await
                    .map_err(|e| storage_error("org retention", e))?;
                body["last_retention_run"] = last.unwrap_or(serde_json::Value::Null);
                Ok(DoReply::Ok { status: 200, body, next: None, replayed: false })
            }
            Op::CreateInteraction { item } => interactions::create_one(&db()?, org, item).await,
            Op::CreateInteractions { items } => interactions::create_many(&db()?, org, items).await,
            Op::ListInteractions { filter, limit, after } => {
                interactions::list(&db()?, org, filter, *limit, after.as_ref()).await
            }
            Op::GetInteraction { id } => interactions::get(&db()?, org, id).await,
            Op::DeleteInteraction { id } => {
                if !interactions::delete(&db()?, org, id).await? {
                    return Err(ApiError::NotFound);
                }
                let detail = serde_json::json!({ "interaction_id": id }).to_string();
                self.audit(call, "interaction.deleted", None, self.caller_prefix(call), Some(&detail)).await;
                Ok(DoReply::Ok { status: 204, body: serde_json::Value::Null, next: None, replayed: false })
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

    /// Makes sure this actor's alarm is set and pings the Janitor so that it
    /// is armed too. Runs once per instance; failures are logged and retried
    /// on the next request.
    async fn ensure_armed(&self) {
        let storage = self.state.storage();
        let ok = match storage.get_alarm().await {
            Ok(Some(_)) => true,
            Ok(None) => storage.set_alarm(FIRST_ALARM_DELAY_MS).await.is_ok(),
            Err(_) => false,
        };
        let janitor =
            self.env.durable_object("JANITOR").and_then(|ns| ns.id_from_name(crate::janitor::JANITOR_NAME)?.get_stub());
        let janitor_ok = match janitor {
            Ok(stub) => stub.fetch_with_str(crate::janitor::ARM_URL).await.is_ok(),
            Err(_) => false,
        };
        if !(ok && janitor_ok) {
            console_error!("org actor could not arm alarms (own: {ok}, janitor: {janitor_ok})");
        }
        self.armed.set(ok && janitor_ok);
    }

    /// One alarm run: retention when due, then re-arm for the next due work.
    async fn on_alarm(&self) -> std::result::Result<(), ApiError> {
        let storage = self.state.storage();
        let org: Option<String> = storage.get(BOUND_ORG_KEY).await.map_err(|e| storage_error("alarm org", e))?;
        let Some(org) = org.as_deref().and_then(OrgId::parse) else {
            // Never served a request: nothing of an org to keep tidy.
            return Ok(());
        };
        let now = now_ms();
        let cfg = RetentionConfig::from_env(&self.env);
        let due: Option<i64> = storage.get(NEXT_RETENTION_KEY).await.map_err(|e| storage_error("alarm due", e))?;
        let mut next = due.unwrap_or(now);
        if next <= now {
            let db = self.env.d1("DB").map_err(|e| storage_error("d1 binding", e))?;
            let report = retention::run_org(&db, &org, now, &cfg).await?;
            let deleted: serde_json::Map<String, serde_json::Value> =
                report.deleted.iter().map(|(t, n)| ((*t).to_string(), (*n).into())).collect();
            let summary = serde_json::json!({ "at": rfc3339(now), "deleted": deleted, "complete": !report.more });
            console_log!("retention org={org} {summary}");
            next = now + if report.more { cfg.busy_interval_ms } else { cfg.interval_ms };
            storage.put(LAST_RETENTION_KEY, summary).await.map_err(|e| storage_error("alarm summary", e))?;
            storage.put(NEXT_RETENTION_KEY, next).await.map_err(|e| storage_error("alarm next", e))?;
        }
        storage.set_alarm(next.saturating_sub(now).max(0)).await.map_err(|e| storage_error("alarm rearm", e))?;
        Ok(())
    }

    /// Binds this actor to `asked` on first use; refuses any other org after.
    async fn bind_org(&self, asked: &OrgId) -> std::result::Result<(), ApiError> {
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

    /// The live state of `prefix`, loading the org's keys from D1 on first use
    /// and reloading once when a prefix is not known yet (a key made elsewhere).
    async fn key_state(&self, org: &OrgId, prefix: &KeyPrefix) -> std::result::Result<Option<KeyState>, ApiError> {
        let cached = self.keys.borrow().as_ref().map(|m| m.get(prefix).cloned());
        if let Some(Some(k)) = cached {
            return Ok(Some(k));
        }
        let loaded = self.load_keys(org).await?;
        let found = loaded.get(prefix).cloned();
        *self.keys.borrow_mut() = Some(loaded);
        Ok(found)
    }

    async fn load_keys(&self, org: &OrgId) -> std::result::Result<HashMap<KeyPrefix, KeyState>, ApiError> {
        let db = self.env.d1("DB").map_err(|e| storage_error("d1 binding", e))?;
        let rows: Vec<KeyRow> = db
            .prepare("SELECT prefix, scopes, state, expires_at FROM api_keys WHERE org_id = ?1")
            .bind(&[org.as_str().into()])
            .map_err(|e| storage_error("keys bind", e))?
            .all()
            .await
            .map_err(|e| storage_error("keys select", e))?
            .results()
            .map_err(|e| storage_error("keys decode", e))?;
        let mut map = HashMap::with_capacity(rows.len());
        for r in rows {
            let (Ok(prefix), Some(scopes), Some(status)) =
                (KeyPrefix::parse(&r.prefix), Scopes::from_db(&r.scopes), KeyStatus::parse(&r.state))
            else {
                console_error!("skipping unreadable api_keys row (prefix {})", r.prefix);
                continue;
            };
            let expires_at = r.expires_at.map(|v| v as i64);
            map.insert(prefix, KeyState { prefix, scopes, status, expires_at });
        }
        Ok(map)
    }

    async fn org_view(&self, org: &OrgId) -> std::result::Result<OrgView, ApiError> {
        let db = self.env.d1("DB").map_err(|e| storage_error("d1 binding", e))?;
        let row: Option<OrgRow> = db
            .prepare("SELECT name, allowed_origins, created_at, updated_at FROM orgs WHERE id = ?1")
            .bind(&[org.as_str().into()])
            .map_err(|e| storage_error("org bind", e))?
            .first(None)
            .await
            .map_err(|e| storage_error("org select", e))?;
        let row = row.ok_or(ApiError::NotFound)?;
        Ok(OrgView::from_row(org.clone(), row.name, &row.allowed_origins, row.created_at as i64, row.updated_at as i64))
    }

    async fn audit_failure(&self, call: &DoRequest, prefix: Option<KeyPrefix>, reason: AuthFailure) {
        self.audit(call, "auth.failure", Some(reason.reason()), prefix, None).await;
    }

    async fn audit(
        &self,
        call: &DoRequest,
        action: &str,
        reason: Option<&str>,
        prefix: Option<KeyPrefix>,
        detail: Option<&str>,
    ) {
        let Ok(db) = self.env.d1("DB") else {
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
