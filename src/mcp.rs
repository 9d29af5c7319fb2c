//! `POST /mcp`: the MCP endpoint's adapter. The key is already verified (and
//! the body read under its cap); `interlog_core::mcp` plans the JSON-RPC
//! answer, this module runs the org-actor calls the plan needs. Every request
//! makes at least one actor call, which checks the key is live, holds the
//! `read` scope, is within L2 and that the `Origin` (if any) is allowed,
//! before anything but a 401/403/429 is revealed.

use crate::actor::ActorClient;
use crate::answered::{refusal_error, Answered};
use crate::auth::Verified;
use crate::respond;
use interlog_core::mcp::{plan, Fetched, Headers, Item, OrgContext};
use interlog_core::protocol::{Op, Outcome, RateStanding, Refusal};
use interlog_core::ApiError;
use serde_json::Value;
use worker::Request;

/// What the last actor call said about the caller, for the response headers.
#[derive(Default)]
struct Standing {
    origin_allowed: bool,
    rate: Option<RateStanding>,
}

impl Standing {
    fn answer(self, reply: Result<respond::Reply, ApiError>) -> Answered {
        Answered { reply, origin_allowed: self.origin_allowed, rate: self.rate }
    }
}

/// One actor call. `Ok(Ok(outcome))`: the op ran; `Ok(Err(error))`: the actor
/// refused or failed it; `Err`: the key is not live (the uniform 401) or the
/// actor could not be reached.
async fn call(
    client: &ActorClient<'_>,
    op: Op,
    standing: &mut Standing,
) -> Result<Result<Outcome, ApiError>, ApiError> {
    let response = client.call(op).await?;
    standing.origin_allowed = response.origin_allowed;
    standing.rate = response.rate;
    match response.result {
        Ok(outcome) => Ok(Ok(outcome)),
        Err(Refusal::Denied { .. }) => Err(ApiError::Unauthorized),
        Err(refusal) => Ok(Err(refusal_error(refusal))),
    }
}

fn header(req: &Request, name: &str) -> Option<String> {
    req.headers().get(name).ok().flatten()
}

/// Handles one MCP POST. `body` is the parsed JSON body (or why it is not).
pub async fn handle(
    req: &Request,
    client: &ActorClient<'_>,
    who: &Verified,
    body: Result<Value, ApiError>,
) -> Result<Answered, ApiError> {
    let mut standing = Standing::default();
    let body = match body {
        Ok(v) => Some(v),
        // Over the cap while reading (no Content-Length): the same 413 as the
        // Content-Length precheck, once the key is confirmed.
        Err(e @ ApiError::PayloadTooLarge { .. }) => {
            let refused = call(client, Op::Ping, &mut standing).await?.err();
            return Ok(standing.answer(Err(refused.unwrap_or(e))));
        }
        // Anything else is a body that is not JSON: a JSON-RPC parse error.
        Err(_) => None,
    };
    let names = ["mcp-protocol-version", "mcp-method", "mcp-name", "accept"].map(|n| header(req, n));
    let headers = Headers {
        protocol_version: names[0].as_deref(),
        method: names[1].as_deref(),
        name: names[2].as_deref(),
        accept: names[3].as_deref(),
    };
    let key = who.cursor_key();
    let plan = plan(&headers, body.as_ref(), &OrgContext { org_id: who.org.as_str(), cursor_key: &key });

    // Nothing is answered before the actor has confirmed the key: a plan that
    // reads no data pings first.
    if !plan.needs_data() {
        if let Err(refused) = call(client, Op::Ping, &mut standing).await? {
            return Ok(standing.answer(Err(refused)));
        }
    }
    let (items, responder) = plan.into_parts();
    let mut outputs = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Item::Ready(response) => outputs.push(response),
            Item::Fetch(pending) => {
                let fetched = match call(client, pending.op(), &mut standing).await? {
                    Ok(outcome) => Fetched::Found(outcome),
                    Err(ApiError::NotFound) => Fetched::NotFound,
                    Err(ApiError::Validation { message, .. }) => Fetched::Invalid(message),
                    // Scope, origin, L2, storage: the HTTP API's answer.
                    Err(refused) => return Ok(standing.answer(Err(refused))),
                };
                outputs.push(Some(pending.finish(fetched)));
            }
        }
    }
    Ok(standing.answer(Ok(respond::mcp(responder.answer(outputs)))))
}
