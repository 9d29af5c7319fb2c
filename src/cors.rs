//! CORS. Preflights are answered only for origins in the env-level allowlist
//! (`CORS_PREFLIGHT_ORIGINS`); actual responses allow an origin only when the
//! authenticated org lists it. Never `*`, never credentials, `Vary: Origin`
//! always.

use crate::respond::Reply;
use interlog_core::origin::parse_list;
use interlog_core::ApiError;
use worker::{Env, Request};

/// Methods a preflight may allow.
const METHODS: &str = "GET, POST, PATCH, DELETE";
/// Request headers a preflight may allow.
const HEADERS: &str =
    "authorization, content-type, idempotency-key, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name";
/// Response headers scripts may read.
pub const EXPOSE: &str = "x-request-id, ratelimit, ratelimit-policy, retry-after, idempotent-replayed";

/// The request's `Origin` header, if any.
pub fn origin_of(req: &Request) -> Option<String> {
    req.headers().get("origin").ok().flatten()
}

/// Answers an `OPTIONS` preflight.
pub fn preflight(req: &Request, env: &Env) -> Result<Reply, ApiError> {
    let allowlist = env.var("CORS_PREFLIGHT_ORIGINS").map(|v| v.to_string()).unwrap_or_default();
    let origin = origin_of(req).unwrap_or_default();
    if !parse_list(&allowlist).iter().any(|o| o.as_str() == origin) {
        return Err(ApiError::Forbidden { message: "origin not allowed".into() });
    }
    let mut reply = Reply::empty(204);
    reply.headers.extend([
        ("access-control-allow-origin", origin),
        ("access-control-allow-methods", METHODS.into()),
        ("access-control-allow-headers", HEADERS.into()),
        ("access-control-max-age", "600".into()),
    ]);
    Ok(reply)
}
