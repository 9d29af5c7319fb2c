//! An authenticated call end to end: verify the key, turn the request into an
//! actor operation (body, query, cursor — any problem becomes `Op::Invalid`,
//! answered only after the actor confirms the key is live), forward it, and
//! shape the actor's reply.

use crate::auth::{call_actor, client_ip, verify, Verified};
use crate::body::{parse_json, read_capped};
use crate::cors::origin_of;
use crate::respond::Reply;
use interlog_core::cursor::{CursorKey, PagePosition};
use interlog_core::interaction::{check_idempotency_header, validate, validation_error, FieldError};
use interlog_core::key::ENTROPY_BYTES;
use interlog_core::keys::{check_name, parse_grace, parse_key_request, KeyMaterial, PREFIX_COLLISION};
use interlog_core::listing::{parse_alert_list, parse_audit_list, parse_interaction_list};
use interlog_core::origin::Origin;
use interlog_core::protocol::{Caller, DoReply, DoResponse, Op, RateStanding};
use interlog_core::routes::Endpoint;
use interlog_core::{ApiError, ApiKey, InteractionId, KeyPrefix, Scope};
use interlog_durable::platform::{now_ms, random_bytes};
use serde_json::{json, Value};
use worker::{Env, Request};

const CURSOR_LABEL: &str = "cursor/v1";
/// Most origins an org may list.
const MAX_ALLOWED_ORIGINS: usize = 50;
/// Fresh key material is minted this many times at most on prefix collisions.
const MINT_ATTEMPTS: usize = 3;

fn invalid(errs: Vec<FieldError>) -> ApiError {
    validation_error(errs)
}

fn invalid_pairs(errs: Vec<(String, String)>) -> ApiError {
    let errs = errs.into_iter().map(|(field, message)| FieldError { index: None, field, message }).collect();
    invalid(errs)
}

/// What building an operation produced besides the op itself.
#[derive(Default)]
struct Extra {
    /// Cursor scope of a listing.
    cursor_scope: Option<String>,
    /// Plaintext of a key minted for this request (returned once).
    minted: Option<ApiKey>,
}

fn query_pairs(req: &Request) -> Result<Vec<(String, String)>, ApiError> {
    let url = req.url().map_err(|_| ApiError::validation("unreadable URL"))?;
    Ok(url.query_pairs().into_owned().collect())
}

fn cursor_error() -> ApiError {
    ApiError::Validation {
        message: "query parameter 'cursor' is invalid, expired or belongs to another listing".into(),
        details: Some(json!([{ "field": "cursor", "message": "invalid cursor" }])),
    }
}

fn decode_cursor(who: &Verified, scope: &str, cursor: Option<&String>) -> Result<Option<PagePosition>, ApiError> {
    cursor.map(|c| cursor_key(who).decode(scope, c).map_err(|_| cursor_error())).transpose()
}

fn mint(who: &Verified) -> Result<(ApiKey, KeyMaterial), ApiError> {
    let key = ApiKey::from_entropy(&random_bytes::<ENTROPY_BYTES>()?);
    let material = KeyMaterial {
        prefix: key.prefix(),
        hash: who.pepper.digest(&key).to_hex(),
        pepper_version: who.pepper.version(),
    };
    Ok((key, material))
}

fn key_prefix(raw: &str) -> Result<KeyPrefix, ApiError> {
    KeyPrefix::parse(raw).map_err(|_| ApiError::NotFound)
}

async fn build(
    req: &mut Request,
    endpoint: &Endpoint,
    who: &Verified,
    body: Option<&Value>,
) -> Result<(Op, Extra), ApiError> {
    let now = now_ms();
    let body = || body.ok_or_else(|| ApiError::validation("request body is required"));
    let mut extra = Extra::default();
    let op = match endpoint {
        // Served by crate::mcp, never built here.
        Endpoint::Mcp => return Err(ApiError::NotFound),
        Endpoint::GetOrg => Op::GetOrg,
        Endpoint::UpdateOrg => {
            let obj = body()?.as_object().ok_or_else(|| ApiError::validation("body must be a JSON object"))?;
            let mut errs = Vec::new();
            if let Some(k) = obj.keys().find(|k| !["name", "allowed_origins"].contains(&k.as_str())) {
                errs.push((k.clone(), "unknown field".to_string()));
            }
            let name = match obj.get("name") {
                None => None,
                Some(Value::String(n)) => {
                    if let Err(m) = check_name(n) {
                        errs.push(("name".into(), m));
                    }
                    Some(n.clone())
                }
                Some(_) => {
                    errs.push(("name".into(), "must be a string".into()));
                    None
                }
            };
            let allowed_origins = match obj.get("allowed_origins") {
                None => None,
                Some(Value::Array(list)) if list.len() <= MAX_ALLOWED_ORIGINS => {
                    let mut out = Vec::with_capacity(list.len());
                    for (i, v) in list.iter().enumerate() {
                        match v.as_str().map(Origin::parse) {
                            Some(Ok(o)) => out.push(o),
                            Some(Err(m)) => errs.push((format!("allowed_origins[{i}]"), format!("{v}: {m}"))),
                            None => errs.push((format!("allowed_origins[{i}]"), "must be a string".into())),
                        }
                    }
                    out.sort();
                    out.dedup();
                    Some(out)
                }
                Some(_) => {
                    errs.push((
                        "allowed_origins".into(),
                        format!("must be an array of at most {MAX_ALLOWED_ORIGINS} origins"),
                    ));
                    None
                }
            };
            if !errs.is_empty() {
                return Err(invalid_pairs(errs));
            }
            Op::UpdateOrg { name, allowed_origins }
        }
        Endpoint::CreateInteraction => {
            let header_key = req.headers().get("idempotency-key").ok().flatten();
            let mut item = validate(body()?, now).map_err(invalid)?;
            if let Some(h) = header_key {
                check_idempotency_header(&h).map_err(|m| ApiError::Validation {
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
            Op::CreateInteraction { item }
        }
        // Forwarded as the client's body (see `forward`), never built here.
        Endpoint::CreateInteractions => return Err(ApiError::internal("batch bodies are forwarded as sent")),
        Endpoint::ListInteractions => {
            let list = parse_interaction_list(&query_pairs(req)?)?;
            let scope = list.filter.cursor_scope(who.org.as_str());
            let after = decode_cursor(who, &scope, list.cursor.as_ref())?;
            extra.cursor_scope = Some(scope);
            Op::ListInteractions { filter: list.filter, limit: list.limit, after }
        }
        Endpoint::GetInteraction(id) => Op::GetInteraction { id: known_id(id)? },
        Endpoint::DeleteInteraction(id) => Op::DeleteInteraction { id: known_id(id)? },
        Endpoint::CreateKey => {
            let request = parse_key_request(body()?, now).map_err(invalid_pairs)?;
            let (key, material) = mint(who)?;
            extra.minted = Some(key);
            Op::CreateKey { request, material }
        }
        Endpoint::ListKeys => Op::ListKeys,
        Endpoint::RevokeKey(p) => Op::RevokeKey { prefix: key_prefix(p)? },
        Endpoint::RotateKey(p) => {
            let prefix = key_prefix(p)?;
            let grace_ms = parse_grace(body()?).map_err(invalid_pairs)?;
            let (key, material) = mint(who)?;
            extra.minted = Some(key);
            Op::RotateKey { prefix, grace_ms, material }
        }
        Endpoint::ListAudit => {
            let list = parse_audit_list(&query_pairs(req)?)?;
            let scope = list.filter.cursor_scope(who.org.as_str());
            let after = decode_cursor(who, &scope, list.cursor.as_ref())?;
            extra.cursor_scope = Some(scope);
            Op::ListAudit { filter: list.filter, limit: list.limit, after }
        }
        Endpoint::ListAlerts => {
            let list = parse_alert_list(&query_pairs(req)?)?;
            let scope = list.filter.cursor_scope(who.org.as_str());
            let after = decode_cursor(who, &scope, list.cursor.as_ref())?;
            extra.cursor_scope = Some(scope);
            Op::ListAlerts { filter: list.filter, limit: list.limit, after }
        }
    };
    Ok((op, extra))
}

/// A path id that cannot exist is simply not found.
fn known_id(raw: &str) -> Result<String, ApiError> {
    InteractionId::parse(raw).map(|i| i.to_string()).ok_or(ApiError::NotFound)
}

pub(crate) fn cursor_key(who: &Verified) -> CursorKey {
    CursorKey::new(who.pepper.derive(CURSOR_LABEL))
}

/// Who is calling and from where, for every actor call of one request.
pub struct CallCtx {
    pub request_id: String,
    pub ip: Option<String>,
    pub origin: Option<String>,
    /// Test environment only (see `crate::faults`).
    pub inject_fault: bool,
    pub caller: Caller,
}

/// An answer the actor produced, with what the response headers need.
pub struct Forwarded {
    pub reply: Result<Reply, ApiError>,
    pub origin_allowed: bool,
    pub rate: Option<RateStanding>,
}

/// One call to the caller's org actor.
pub async fn actor(env: &Env, who: &Verified, ctx: &CallCtx, op: Op) -> Result<DoResponse, ApiError> {
    actor_with_body(env, who, ctx, op, None).await
}

/// One call to the caller's org actor, forwarding the client's body as is.
async fn actor_with_body(
    env: &Env,
    who: &Verified,
    ctx: &CallCtx,
    op: Op,
    payload: Option<&[u8]>,
) -> Result<DoResponse, ApiError> {
    call_actor(
        env,
        &who.org,
        &ctx.request_id,
        ctx.ip.clone(),
        ctx.origin.clone(),
        ctx.inject_fault,
        ctx.caller.clone(),
        op,
        payload,
    )
    .await
}

/// Headers added to the answer whatever it is (CORS for allowed origins).
pub type ExtraHeaders = Vec<(&'static str, String)>;

/// Authenticates, forwards and shapes the answer of one API call.
pub async fn handle(
    req: &mut Request,
    env: &Env,
    scope: Scope,
    endpoint: Endpoint,
    request_id: &str,
) -> (Result<Reply, ApiError>, ExtraHeaders) {
    let origin = origin_of(req);
    match forward(req, env, scope, endpoint, request_id, origin.clone()).await {
        Ok(Forwarded { reply, origin_allowed, rate }) => {
            let mut extra = Vec::new();
            if let (true, Some(o)) = (origin_allowed, origin) {
                extra.push(("access-control-allow-origin", o));
                extra.push(("access-control-expose-headers", crate::cors::EXPOSE.to_string()));
            }
            // Errors carry the key's standing too (a 429 above all).
            if let (Err(_), Some(rate)) = (&reply, rate) {
                extra.push(("ratelimit-policy", rate.policy_header()));
                extra.push(("ratelimit", rate.header()));
            }
            (reply, extra)
        }
        Err(e) => (Err(e), Vec::new()),
    }
}

/// The call itself, once the key is verified and the actor answered.
async fn forward(
    req: &mut Request,
    env: &Env,
    scope: Scope,
    endpoint: Endpoint,
    request_id: &str,
    origin: Option<String>,
) -> Result<Forwarded, ApiError> {
    let ip = client_ip(req);
    let who = verify(req, env, request_id, ip.as_deref()).await?;
    // The body is read once (capped); problems with it are answered only once
    // the actor has confirmed the key.
    let raw = match endpoint.body_limit() {
        Some(limit) => Some(read_capped(req, limit).await),
        None => None,
    };
    // A batch body goes to the actor as sent and is parsed once, there.
    if endpoint == Endpoint::CreateInteractions {
        let caller = Caller::Key { prefix: who.prefix, scope, rehash: who.rehash.clone() };
        let inject_fault = crate::faults::requested(req, env);
        let ctx = CallCtx { request_id: request_id.to_string(), ip, origin, inject_fault, caller };
        let (op, bytes) = match &raw {
            Some(Ok(b)) => (Op::CreateInteractionsFromBody, Some(b.as_slice())),
            Some(Err(e)) => (Op::Invalid { error: e.clone() }, None),
            None => (Op::Invalid { error: ApiError::validation("request body is required") }, None),
        };
        let response = actor_with_body(env, &who, &ctx, op, bytes).await?;
        return shape(response, &Extra::default(), &who);
    }
    let body = raw.map(|r| r.and_then(|b| parse_json(&b)));
    let caller = Caller::Key { prefix: who.prefix, scope, rehash: who.rehash.clone() };
    let inject_fault = crate::faults::requested(req, env);
    let ctx = CallCtx { request_id: request_id.to_string(), ip, origin, inject_fault, caller };
    if endpoint == Endpoint::Mcp {
        let body = body.unwrap_or_else(|| Err(ApiError::validation("request body is required")));
        return crate::mcp::handle(req, env, &who, &ctx, body).await;
    }
    let mut attempt = 0;
    let (response, extra) = loop {
        attempt += 1;
        let (op, extra) = match &body {
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(v)) => build(req, &endpoint, &who, Some(v)).await,
            None => build(req, &endpoint, &who, None).await,
        }
        .unwrap_or_else(|error| (Op::Invalid { error }, Extra::default()));
        let response = actor(env, &who, &ctx, op).await?;
        let collided = matches!(&response.reply, DoReply::Failed { error: ApiError::Conflict { message } } if message == PREFIX_COLLISION);
        if !(collided && attempt < MINT_ATTEMPTS) {
            break (response, extra);
        }
    };
    shape(response, &extra, &who)
}

/// Turns the actor's answer into the client's: signed next cursor, minted
/// key, replay header, RateLimit headers.
fn shape(response: DoResponse, extra: &Extra, who: &Verified) -> Result<Forwarded, ApiError> {
    let reply = match response.reply {
        DoReply::Ok { status, mut body, next, replayed } => {
            if let (Some(pos), Some(scope)) = (next, &extra.cursor_scope) {
                body["next_cursor"] = json!(cursor_key(who).encode(scope, &pos));
            }
            if let Some(key) = &extra.minted {
                body["key"] = json!(key.expose_secret());
            }
            let mut reply = if body.is_null() { Reply::empty(status) } else { Reply::json(status, body) };
            if replayed {
                reply.headers.push(("idempotent-replayed", "true".into()));
            }
            Ok(reply)
        }
        DoReply::Denied { .. } => return Err(ApiError::Unauthorized),
        DoReply::Failed { error } => Err(error),
    };
    let reply = match (reply, response.rate) {
        (Ok(mut r), Some(rate)) => {
            r.headers.push(("ratelimit-policy", rate.policy_header()));
            r.headers.push(("ratelimit", rate.header()));
            Ok(r)
        }
        (reply, _) => reply,
    };
    Ok(Forwarded { reply, origin_allowed: response.origin_allowed, rate: response.rate })
}
