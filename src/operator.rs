//! The operator command's signed calls: `POST /v1/operator/reconcile` asks an
//! org's actor to read its keys again from D1 (a key revoked with
//! `interlog-admin revoke-key` then fails on its very next request), `POST
//! /v1/operator/move` asks it for one step of moving its data to another shard. The
//! signature rules are `interlog_core::operator`; this module reads the
//! pepper, checks the call and forwards it. It runs behind L1 and the 80 ms
//! floor like every API call, and every refusal of the signature is the
//! uniform 401.

use crate::actor;
use crate::auth::Incoming;
use crate::body::read_capped;
use crate::respond::Reply;
use interlog_core::audit::{AuditAction, AuditEvent};
use interlog_core::config::{binding, Config};
use interlog_core::operator::{self, MoveRequest, ReconcileRequest};
use interlog_core::protocol::{CallMeta, Refusal};
use interlog_core::{ApiError, OrgId, Pepper};
use interlog_durable::audit::{self, Asker};
use interlog_durable::platform::{directory, first};
use worker::{Env, Request};

fn unavailable(detail: String) -> ApiError {
    ApiError::Unavailable { retry_after_s: 5, detail }
}

/// One pepper from the Secrets Store (operator calls are rare: not cached).
async fn pepper(env: &Env, name: &str, version: u32) -> Result<Pepper, ApiError> {
    let secret = env
        .secret_store(name)
        .map_err(|e| unavailable(format!("{name} binding: {e}")))?
        .get()
        .await
        .map_err(|e| unavailable(format!("{name} secret: {e}")))?
        .ok_or_else(|| unavailable(format!("{name} secret is empty")))?;
    Pepper::new(version, secret).map_err(|e| unavailable(format!("{name}: {e}")))
}

/// The signature's verdict. A malformed or stale header is refused before
/// the secrets are read (no Secrets Store read for those).
async fn verified(
    env: &Env,
    cfg: &Config,
    header: Option<&str>,
    body: &[u8],
    now_ms: i64,
) -> Result<Result<(), operator::Reason>, ApiError> {
    if let Err(reason) = operator::precheck(header, now_ms) {
        return Ok(Err(reason));
    }
    let current = pepper(env, binding::PEPPER, cfg.pepper_version).await?;
    let previous = match cfg.pepper_previous_version {
        Some(v) => Some(pepper(env, binding::PEPPER_PREVIOUS, v).await?),
        None => None,
    };
    Ok(operator::verify_any(&current, previous.as_ref(), header, body, now_ms))
}

/// Checks the signature under the current pepper (and the previous one during
/// a rotation). A refusal is audited as an org-less auth failure (one row per
/// client and reason a minute) and answered 401.
async fn check_signature(
    env: &Env,
    cfg: &Config,
    incoming: &Incoming,
    header: Option<&str>,
    body: &[u8],
) -> Result<(), ApiError> {
    let Err(reason) = verified(env, cfg, header, body, incoming.now_ms).await? else {
        return Ok(());
    };
    let event = AuditEvent::new(AuditAction::AuthFailure, None).with_reason(reason.as_str());
    let who = Asker { org: None, request_id: &incoming.id, ip: incoming.ip };
    let client = incoming.ip.map(|ip| ip.l1_key()).unwrap_or_default();
    audit::orgless_failure(&directory(env)?, who, &event, &client, incoming.now_ms).await;
    Err(ApiError::Unauthorized)
}

/// Whether the org exists (an unknown id gets 404, not a new actor).
async fn org_exists(env: &Env, org: &OrgId) -> Result<bool, ApiError> {
    let row: Option<serde_json::Value> =
        first(&directory(env)?, "SELECT id FROM orgs WHERE id = ?1", &[org.as_str().into()], "operator org lookup")
            .await?;
    Ok(row.is_some())
}

/// The whole call: body (capped), signature, then the reconcile or the move
/// step (`moving`).
pub async fn handle(
    req: &mut Request,
    env: &Env,
    cfg: &Config,
    incoming: &Incoming,
    moving: bool,
) -> Result<Reply, ApiError> {
    let header = req.headers().get(operator::HEADER).ok().flatten();
    let body = read_capped(req, operator::BODY_LIMIT).await?;
    check_signature(env, cfg, incoming, header.as_deref(), &body).await?;
    if moving {
        move_step(env, incoming, &body).await
    } else {
        reconcile(env, incoming, &body).await
    }
}

fn meta(org_id: OrgId, incoming: &Incoming) -> CallMeta {
    CallMeta { org_id, request_id: incoming.id.clone(), client_ip: incoming.ip }
}

fn failed(error: Refusal, what: &str) -> ApiError {
    match error {
        Refusal::Failed { error } => error,
        other => ApiError::internal(format!("unexpected {what} answer: {other:?}")),
    }
}

/// 204 once the actor has applied D1's revocations and expiries to the keys
/// it holds.
async fn reconcile(env: &Env, incoming: &Incoming, body: &[u8]) -> Result<Reply, ApiError> {
    let asked = ReconcileRequest::parse(body)
        .ok_or_else(|| ApiError::validation("the body must be {\"org_id\":\"org_…\"} and nothing else"))?;
    if !org_exists(env, &asked.org_id).await? {
        return Err(ApiError::NotFound);
    }
    match actor::reconcile(env, meta(asked.org_id, incoming)).await?.result {
        Ok(_) => Ok(Reply::empty(204)),
        Err(refusal) => Err(failed(refusal, "reconcile")),
    }
}

/// One step of an org's move between shards: 200 with where it stands.
async fn move_step(env: &Env, incoming: &Incoming, body: &[u8]) -> Result<Reply, ApiError> {
    let asked = MoveRequest::parse(body).ok_or_else(|| {
        ApiError::validation(
            "the body must be {\"org_id\":\"org_…\",\"to\":\"DATA_…\",\"action\":\"step\"|\"rollback\"} and nothing else",
        )
    })?;
    if !org_exists(env, &asked.org_id).await? {
        return Err(ApiError::NotFound);
    }
    let answer = actor::move_step(env, meta(asked.org_id, incoming), asked.to, asked.action).await?;
    match answer.result {
        Ok(outcome) => Ok(crate::respond::outcome(&outcome, &crate::respond::Additions::default())),
        Err(refusal) => Err(failed(refusal, "move")),
    }
}
