//! An authenticated API call end to end: verify the key, read the body under
//! its cap, build the operation (any problem becomes `Op::Invalid`, answered
//! only after the actor confirms the key is live), ask the org's actor and
//! shape its typed answer.

use crate::access_log::Seen;
use crate::actor::ActorClient;
use crate::answered::Answered;
use crate::auth::{verify, Incoming, Verified};
use crate::body::{parse_json, read_capped};
use crate::cors::{cors_headers, origin_of};
use crate::mcp;
use crate::ops::{build, Built};
use crate::respond::{self, ExtraHeaders, Reply};
use interlog_core::config::Config;
use interlog_core::protocol::{Op, Refusal, VerifiedKey};
use interlog_core::routes::Endpoint;
use interlog_core::{ApiError, Scope};
use serde_json::Value;
use worker::{Env, Request};

/// Fresh key material is minted this many times at most on prefix collisions.
const MINT_ATTEMPTS: usize = 3;

/// Authenticates, forwards and shapes the answer of one API call; also says
/// whose key it was, once verified (for the request's log line).
pub async fn handle(
    req: &mut Request,
    env: &Env,
    cfg: &Config,
    incoming: &Incoming,
    (scope, endpoint): (Scope, Endpoint),
) -> (Result<Reply, ApiError>, ExtraHeaders, Option<Seen>) {
    let origin = origin_of(req);
    let who = match verify(req, env, cfg, incoming).await {
        Ok(who) => who,
        Err(e) => return (Err(e), Vec::new(), None),
    };
    let seen = Some(Seen { org: who.org.clone(), prefix: who.prefix });
    match serve(req, env, cfg, incoming, &who, (scope, endpoint), origin.clone()).await {
        Ok(Answered { reply, origin_allowed, rate }) => {
            let mut extra = if origin_allowed { cors_headers(origin) } else { Vec::new() };
            // Errors carry the key's standing too (a 429 above all).
            extra.extend(rate.as_ref().map(respond::rate_headers).unwrap_or_default());
            (reply, extra, seen)
        }
        Err(e) => (Err(e), Vec::new(), seen),
    }
}

/// The call itself, once the key is verified.
async fn serve(
    req: &mut Request,
    env: &Env,
    cfg: &Config,
    incoming: &Incoming,
    who: &Verified,
    (scope, endpoint): (Scope, Endpoint),
    origin: Option<String>,
) -> Result<Answered, ApiError> {
    // The body is read once (capped); problems with it are answered only once
    // the actor has confirmed the key.
    let raw = match endpoint.body_limit() {
        Some(limit) => Some(read_capped(req, limit).await),
        None => None,
    };
    let key = VerifiedKey { prefix: who.prefix, scope, rehash: who.rehash.clone() };
    let faults = crate::faults::requested(req, cfg);
    let client = ActorClient::new(env, who.meta(incoming), key, origin, faults);
    match endpoint {
        Endpoint::Mcp => {
            let body = raw
                .unwrap_or_else(|| Err(ApiError::validation("request body is required")))
                .and_then(|b| parse_json(&b));
            mcp::handle(req, &client, who, body).await
        }
        Endpoint::CreateInteractions => batch(&client, who, raw).await,
        Endpoint::ExportInteractions => crate::export::serve(req, &client, who, incoming.now_ms).await,
        _ => {
            let body = raw.map(|r| r.and_then(|b| parse_json(&b)));
            operation(req, &endpoint, &client, who, body, incoming.now_ms).await
        }
    }
}

/// A batch body goes to the actor as sent and is parsed once, there.
async fn batch(
    client: &ActorClient<'_>,
    who: &Verified,
    raw: Option<Result<Vec<u8>, ApiError>>,
) -> Result<Answered, ApiError> {
    let response = match raw {
        Some(Ok(bytes)) => client.call_with_body(Op::CreateInteractionsFromBody, &bytes).await?,
        Some(Err(error)) => client.call(Op::Invalid { error }).await?,
        None => client.call(Op::Invalid { error: ApiError::validation("request body is required") }).await?,
    };
    Ok(Answered::from_response(response, who, None))
}

/// Any other route: build the operation and ask the actor; a minted key
/// whose prefix is taken is minted again.
async fn operation(
    req: &Request,
    endpoint: &Endpoint,
    client: &ActorClient<'_>,
    who: &Verified,
    body: Option<Result<Value, ApiError>>,
    now_ms: i64,
) -> Result<Answered, ApiError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let built = match &body {
            Some(Err(e)) => Err(e.clone()),
            Some(Ok(v)) => build(req, endpoint, who, Some(v), now_ms),
            None => build(req, endpoint, who, None, now_ms),
        }
        .unwrap_or_else(|error| Built { op: Op::Invalid { error }, cursor_scope: None, minted: None });
        let response = client.call(built.op.clone()).await?;
        let collided = matches!(response.result, Err(Refusal::PrefixCollision));
        if !(collided && attempt < MINT_ATTEMPTS) {
            return Ok(Answered::from_response(response, who, Some(&built)));
        }
    }
}
