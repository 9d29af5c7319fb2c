//! `POST /mcp`: the MCP endpoint (stub; see issue 7). The key is already
//! verified; every data access goes through the org's actor via `actor`.

use crate::api::{actor, Forwarded};
use crate::auth::Verified;
use crate::respond::Reply;
use interlog_core::protocol::{DoReply, Op};
use interlog_core::ApiError;
use serde_json::Value;
use worker::{Env, Request};

/// Handles one MCP POST. `body` is the parsed JSON body (or why it is not).
pub async fn handle(
    _req: &Request,
    env: &Env,
    who: &Verified,
    ctx: &crate::api::CallCtx,
    _body: Result<Value, ApiError>,
) -> Result<Forwarded, ApiError> {
    // Confirms the key is live, scoped and within L2 before anything else.
    let response = actor(env, who, ctx, Op::Ping).await?;
    let reply: Result<Reply, ApiError> = match response.reply {
        DoReply::Denied { .. } => return Err(ApiError::Unauthorized),
        DoReply::Failed { error } => Err(error),
        DoReply::Ok { .. } => Err(ApiError::NotFound),
    };
    Ok(Forwarded { reply, origin_allowed: response.origin_allowed, rate: response.rate })
}
