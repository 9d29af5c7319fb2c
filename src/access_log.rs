//! One structured log line per request: a single JSON object with no text
//! prefix, so Workers Logs indexes its fields. It names the route by its
//! template (never the raw path), the outcome by its error code (and a 429 by
//! the limit tier that refused it), the org and key prefix once the key
//! verified, and the client address in its canonical form. Never key
//! material, Authorization, bodies or query strings.

use crate::auth::Incoming;
use crate::respond::ExtraHeaders;
use interlog_core::{ApiError, KeyPrefix, OrgId};
use serde::Serialize;
use serde_json::json;
use worker::{console_error, console_log};

/// Longest method name logged (anything can be sent as a method).
const METHOD_MAX: usize = 16;

/// Who made the request, once its key verified.
#[derive(Debug, Clone)]
pub struct Seen {
    pub org: OrgId,
    pub prefix: KeyPrefix,
}

/// The outcome of a request, taken before the response is built from it.
#[derive(Debug)]
pub struct Summary {
    outcome: &'static str,
    tier: Option<&'static str>,
}

impl Summary {
    /// `ok`, or the error's code; a 429 also names the tier that refused it.
    pub fn of<T>(outcome: &Result<T, ApiError>, extra: &ExtraHeaders) -> Self {
        match outcome {
            Ok(_) => Self { outcome: "ok", tier: None },
            Err(e @ ApiError::RateLimited { .. }) => Self { outcome: e.code(), tier: tier_of(extra) },
            Err(e) => Self { outcome: e.code(), tier: None },
        }
    }
}

/// The limit tier of a 429, read from its `RateLimit-Policy` header: the L1
/// bindings answer `per-ip` / `per-48`, the actor's L2 `per-key`.
fn tier_of(extra: &ExtraHeaders) -> Option<&'static str> {
    let policy = extra.iter().find(|(k, _)| *k == "ratelimit-policy").map(|(_, v)| v.as_str())?;
    let name = policy.strip_prefix('"')?.split('"').next()?;
    match name {
        "per-ip" => Some("l1"),
        "per-48" => Some("l1_48"),
        "per-key" => Some("l2"),
        _ => None,
    }
}

/// What the request was: its method as sent (bounded) and its route.
#[derive(Debug)]
pub struct Asked {
    pub method: String,
    pub route: Option<&'static str>,
}

impl Asked {
    pub fn new(method: &str, path: &str) -> Self {
        Self { method: method.chars().take(METHOD_MAX).collect(), route: interlog_core::routes::template(path) }
    }
}

/// The request's line: serialised straight from borrowed fields (one pass,
/// no intermediate JSON tree).
#[derive(Serialize)]
pub struct Line<'a> {
    event: &'static str,
    level: &'static str,
    request_id: &'a str,
    route: Option<&'static str>,
    method: &'a str,
    status: u16,
    duration_ms: i64,
    outcome: &'static str,
    limit_tier: Option<&'static str>,
    org_id: Option<&'a str>,
    key_prefix: Option<&'a str>,
    client_ip: Option<String>,
}

pub fn line<'a>(
    incoming: &'a Incoming,
    asked: &'a Asked,
    summary: &Summary,
    seen: Option<&'a Seen>,
    status: u16,
    now_ms: i64,
) -> Line<'a> {
    Line {
        event: "request",
        level: if status >= 500 { "error" } else { "info" },
        request_id: &incoming.id,
        route: asked.route,
        method: &asked.method,
        status,
        duration_ms: now_ms.saturating_sub(incoming.now_ms).max(0),
        outcome: summary.outcome,
        limit_tier: summary.tier,
        org_id: seen.map(|s| s.org.as_str()),
        key_prefix: seen.map(|s| s.prefix.as_str()),
        client_ip: incoming.ip.map(|ip| ip.to_string()),
    }
}

/// Writes the request's line.
pub fn emit(line: &Line<'_>) {
    if let Ok(text) = serde_json::to_string(line) {
        console_log!("{text}");
    }
}

/// The detail of an internal error, in the same shape as the request's line
/// (the answer itself never carries it).
pub fn internal(request_id: &str, err: &ApiError) {
    let detail = match err {
        ApiError::Internal { detail } | ApiError::Unavailable { detail, .. } => detail.clone(),
        other => other.to_string(),
    };
    let line = json!({
        "event": "internal_error",
        "level": "error",
        "request_id": request_id,
        "outcome": err.code(),
        "detail": detail,
    });
    console_error!("{line}");
}
