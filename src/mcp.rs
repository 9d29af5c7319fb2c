//! `POST /mcp`: the MCP endpoint's adapter. The key is already verified (and
//! the body read under its cap); `interlog_core::mcp` plans the JSON-RPC
//! answer, this module runs the org-actor calls the plan needs and turns the
//! answer into HTTP. Every request makes at least one actor call, which checks
//! the key is live, holds the `read` scope, is within L2 and that the `Origin`
//! (if any) is allowed, before anything but a 401/403/429 is revealed.

use crate::api::{actor, cursor_key, CallCtx, Forwarded};
use crate::auth::Verified;
use crate::respond::Reply;
use interlog_core::mcp::{plan, Fetched, Headers, Item, OrgContext};
use interlog_core::protocol::{DoReply, DoResponse, Op, RateStanding};
use interlog_core::ApiError;
use serde_json::Value;
use worker::{Env, Request};

/// What the last actor call said about the caller, for the response headers.
#[derive(Default)]
struct Standing {
    origin_allowed: bool,
    rate: Option<RateStanding>,
}

impl Standing {
    fn note(&mut self, r: &DoResponse) {
        self.origin_allowed = r.origin_allowed;
        self.rate = r.rate;
    }

    fn answer(self, reply: Result<Reply, ApiError>) -> Forwarded {
        Forwarded { reply, origin_allowed: self.origin_allowed, rate: self.rate }
    }
}

/// One actor call. `Ok(Ok(reply))`: the op ran; `Ok(Err(error))`: the actor
/// refused or failed it; `Err`: the key is not live (the uniform 401).
async fn call(
    env: &Env,
    who: &Verified,
    ctx: &CallCtx,
    op: Op,
    standing: &mut Standing,
) -> Result<Result<(Value, Option<interlog_core::cursor::PagePosition>), ApiError>, ApiError> {
    let response = actor(env, who, ctx, op).await?;
    standing.note(&response);
    match response.reply {
        DoReply::Denied { .. } => Err(ApiError::Unauthorized),
        DoReply::Failed { error } => Ok(Err(error)),
        DoReply::Ok { body, next, .. } => Ok(Ok((body, next))),
    }
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// Handles one MCP POST. `body` is the parsed JSON body (or why it is not).
pub async fn handle(
    req: &Request,
    env: &Env,
    who: &Verified,
    ctx: &CallCtx,
    body: Result<Value, ApiError>,
) -> Result<Forwarded, ApiError> {
    let mut standing = Standing::default();
    let body = match body {
        Ok(v) => Some(v),
        // Over the cap while reading (no Content-Length): the same 413 as the
        // Content-Length precheck, once the key is confirmed.
        Err(e @ ApiError::PayloadTooLarge { .. }) => {
            return Ok(match call(env, who, ctx, Op::Ping, &mut standing).await? {
                Ok(_) => standing.answer(Err(e)),
                Err(refused) => standing.answer(Err(refused)),
            });
        }
        // Anything else is a body that is not JSON: a JSON-RPC parse error.
        Err(_) => None,
    };
    let (protocol_version, method, name, accept) = (
        header(req, "mcp-protocol-version"),
        header(req, "mcp-method"),
        header(req, "mcp-name"),
        header(req, "accept"),
    );
    let headers = Headers {
        protocol_version: protocol_version.as_deref(),
        method: method.as_deref(),
        name: name.as_deref(),
        accept: accept.as_deref(),
    };
    let key = cursor_key(who);
    let plan = plan(&headers, body.as_ref(), &OrgContext { org_id: who.org.as_str(), cursor_key: &key });

    // Nothing is answered before the actor has confirmed the key: a plan that
    // reads no data pings first.
    if !plan.needs_data() {
        if let Err(refused) = call(env, who, ctx, Op::Ping, &mut standing).await? {
            return Ok(standing.answer(Err(refused)));
        }
    }
    let (items, responder) = plan.into_parts();
    let mut outputs = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Ready(response) => outputs.push(response),
            Item::Fetch(pending) => {
                let fetched = match call(env, who, ctx, pending.op(), &mut standing).await? {
                    Ok((body, next)) => Fetched::Found { body, next },
                    Err(ApiError::NotFound) => Fetched::NotFound,
                    Err(ApiError::Validation { message, .. }) => Fetched::Invalid(message),
                    // Scope, origin, L2, storage: the HTTP API's answer.
                    Err(refused) => return Ok(standing.answer(Err(refused))),
                };
                outputs.push(Some(pending.finish(fetched)));
            }
        }
    }
    let answer = responder.answer(outputs);
    let mut reply = match answer.body {
        Some(body) => Reply::json(answer.status, body),
        None => Reply::empty(answer.status),
    };
    if let Some(rate) = standing.rate {
        reply.headers.push(("ratelimit-policy", rate.policy_header()));
        reply.headers.push(("ratelimit", rate.header()));
    }
    Ok(standing.answer(Ok(reply)))
}
