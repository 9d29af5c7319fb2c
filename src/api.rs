//! An authenticated call end to end: verify the key, turn the request into an
//! actor operation (body, query, cursor — any problem becomes `Op::Invalid`,
//! answered only after the actor confirms the key is live), forward it, and
//! shape the actor's reply.

use crate::auth::{call_actor, client_ip, verify, Verified};
use crate::body::{parse_json, read_capped};
use crate::respond::Reply;
use interlog_core::cursor::CursorKey;
use interlog_core::interaction::{check_idempotency_key, summary, validate, validate_batch, FieldError};
use interlog_core::listing::parse_interaction_list;
use interlog_core::protocol::{Caller, DoReply, Op};
use interlog_core::routes::Endpoint;
use interlog_core::{ApiError, InteractionId, Scope};
use interlog_durable::platform::now_ms;
use serde_json::json;
use worker::{Env, Request};

const CURSOR_LABEL: &str = "cursor/v1";

fn invalid(errs: Vec<FieldError>) -> ApiError {
    ApiError::Validation { message: summary(&errs), details: Some(json!(errs)) }
}

/// Builds the operation; on any request problem, `Op::Invalid`. Also returns
/// the cursor scope of a listing.
async fn build_op(req: &mut Request, endpoint: &Endpoint, who: &Verified) -> (Op, Option<String>) {
    match build(req, endpoint, who).await {
        Ok(pair) => pair,
        Err(error) => (Op::Invalid { error }, None),
    }
}

async fn build(req: &mut Request, endpoint: &Endpoint, who: &Verified) -> Result<(Op, Option<String>), ApiError> {
    let limit = endpoint.body_limit().unwrap_or(0);
    Ok(match endpoint {
        Endpoint::GetOrg => (Op::GetOrg, None),
        Endpoint::CreateInteraction => {
            let header_key = req.headers().get("idempotency-key").ok().flatten();
            let value = parse_json(&read_capped(req, limit).await?)?;
            let mut item = validate(&value, now_ms()).map_err(invalid)?;
            if let Some(h) = header_key {
                check_idempotency_key(&h).map_err(|m| ApiError::Validation {
                    message: format!("Idempotency-Key header {m}"),
                    details: Some(json!([{ "field": "Idempotency-Key", "message": m }])),
                })?;
                match &item.idempotency_key {
                    Some(b) if *b != h => {
                        return Err(ApiError::validation(
                            "Idempotency-Key header and body idempotency_key differ; send one or make them equal",
                        ))
                    }
                    _ => item.idempotency_key = Some(h),
                }
            }
            (Op::CreateInteraction { item }, None)
        }
        Endpoint::CreateInteractions => {
            let value = parse_json(&read_capped(req, limit).await?)?;
            (Op::CreateInteractions { items: validate_batch(&value, now_ms()).map_err(invalid)? }, None)
        }
        Endpoint::ListInteractions => {
            let url = req.url().map_err(|_| ApiError::validation("unreadable URL"))?;
            let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
            let list = parse_interaction_list(&pairs)?;
            let scope = list.filter.cursor_scope(who.org.as_str());
            let after = match &list.cursor {
                None => None,
                Some(c) => Some(cursor_key(who).decode(&scope, c).map_err(|_| ApiError::Validation {
                    message: "query parameter 'cursor' is invalid, expired or belongs to another listing".into(),
                    details: Some(json!([{ "field": "cursor", "message": "invalid cursor" }])),
                })?),
            };
            (Op::ListInteractions { filter: list.filter, limit: list.limit, after }, Some(scope))
        }
        Endpoint::GetInteraction(id) => (Op::GetInteraction { id: known_id(id)? }, None),
        Endpoint::DeleteInteraction(id) => (Op::DeleteInteraction { id: known_id(id)? }, None),
    })
}

/// A path id that cannot exist is simply not found.
fn known_id(raw: &str) -> Result<String, ApiError> {
    InteractionId::parse(raw).map(|i| i.to_string()).ok_or(ApiError::NotFound)
}

fn cursor_key(who: &Verified) -> CursorKey {
    CursorKey::new(who.pepper.derive(CURSOR_LABEL))
}

/// Authenticates, forwards and shapes the answer of one API call.
pub async fn handle(
    req: &mut Request,
    env: &Env,
    scope: Scope,
    endpoint: Endpoint,
    request_id: &str,
) -> Result<Reply, ApiError> {
    let ip = client_ip(req);
    let who = verify(req, env, request_id, ip.as_deref()).await?;
    let (op, cursor_scope) = build_op(req, &endpoint, &who).await;
    let caller = Caller::Key { prefix: who.prefix, scope };
    match call_actor(env, who.org.clone(), request_id, ip, caller, op).await? {
        DoReply::Ok { status, mut body, next, replayed } => {
            if let (Some(pos), Some(scope)) = (next, cursor_scope) {
                body["next_cursor"] = json!(cursor_key(&who).encode(&scope, &pos));
            }
            let mut reply = if body.is_null() { Reply::empty(status) } else { Reply::json(status, body) };
            if replayed {
                reply.headers.push(("idempotent-replayed", "true".into()));
            }
            Ok(reply)
        }
        DoReply::Denied { .. } => Err(ApiError::Unauthorized),
        DoReply::Failed { error } => Err(error),
    }
}
