//! CORS. Preflights are answered only for origins in the env-level allowlist
//! (`CORS_PREFLIGHT_ORIGINS`); actual responses allow an origin only when the
//! authenticated org lists it. Never `*`, never credentials, `Vary: Origin`
//! always.

use crate::respond::{ExtraHeaders, Reply};
use interlog_core::config::Config;
use interlog_core::ApiError;
use worker::Request;

/// Methods a preflight may allow.
const METHODS: &str = "GET, POST, PATCH, DELETE";
/// Request headers a preflight may allow.
const HEADERS: &str =
    "authorization, content-type, idempotency-key, mcp-protocol-version, mcp-session-id, mcp-method, mcp-name";
/// Response headers scripts may read.
const EXPOSE: &str = "x-request-id, ratelimit, ratelimit-policy, retry-after, idempotent-replayed";

/// The request's `Origin` header, if any. A page of this very origin (the
/// web console under `/console/`) is not a cross-origin caller: browsers send
/// `Origin` on its same-origin writes, and CORS does not apply to them.
pub fn origin_of(req: &Request) -> Option<String> {
    let origin = req.headers().get("origin").ok().flatten()?;
    let own = req.url().ok().map(|u| u.origin().ascii_serialization());
    (own.as_deref() != Some(origin.as_str())).then_some(origin)
}

/// Headers of an actual response to an origin the org allows.
pub fn cors_headers(origin: Option<String>) -> ExtraHeaders {
    match origin {
        Some(o) => vec![("access-control-allow-origin", o), ("access-control-expose-headers", EXPOSE.to_string())],
        None => Vec::new(),
    }
}

/// Answers an `OPTIONS` preflight.
pub fn preflight(req: &Request, cfg: &Config) -> Result<Reply, ApiError> {
    let origin = origin_of(req).unwrap_or_default();
    if !cfg.cors_preflight.iter().any(|o| o.as_str() == origin) {
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
