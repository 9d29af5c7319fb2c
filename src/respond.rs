//! The one place that turns outcomes into HTTP: status, envelope, headers.
//! The actor's typed `Outcome`s, MCP answers and every `ApiError` become
//! responses here and nowhere else. Internal detail is logged with the
//! request id and never sent.

use interlog_core::mcp::{Answer, AnswerStatus};
use interlog_core::protocol::{Outcome, Page, RateStanding, Stored};
use interlog_core::ApiError;
use serde::Serialize;
use serde_json::{json, Value};
use worker::{Headers, Response};

/// Response headers beside the fixed ones.
pub type ExtraHeaders = Vec<(&'static str, String)>;

/// A successful answer before the fixed headers are added.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: ExtraHeaders,
    /// A streamed body instead of `body` (an export's NDJSON, passed through
    /// from the org's actor as it comes).
    pub stream: Option<worker::web_sys::ReadableStream>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, body: Some(body), headers: Vec::new(), stream: None }
    }

    /// An answer without a body.
    pub fn empty(status: u16) -> Self {
        Self { status, body: None, headers: Vec::new(), stream: None }
    }
}

/// What the front Worker adds to an outcome: the signed cursor of the next
/// page and the plaintext of a key it minted (shown this once).
#[derive(Debug, Default)]
pub struct Additions {
    pub next_cursor: Option<String>,
    pub key: Option<String>,
}

fn value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn page<T: Serialize>(field: &str, page: &Page<T>, add: &Additions) -> Value {
    json!({ field: value(&page.items), "next_cursor": add.next_cursor })
}

fn with_key(mut body: Value, add: &Additions) -> Value {
    if let Some(k) = &add.key {
        body["key"] = json!(k);
    }
    body
}

fn replayed(mut reply: Reply) -> Reply {
    reply.headers.push(("idempotent-replayed", "true".into()));
    reply
}

/// The HTTP answer to an actor outcome.
pub fn outcome(outcome: &Outcome, add: &Additions) -> Reply {
    match outcome {
        Outcome::Done => Reply::empty(204),
        Outcome::Org { org, last_retention_run } => {
            let mut body = value(org);
            body["last_retention_run"] = last_retention_run.clone().unwrap_or(Value::Null);
            Reply::json(200, body)
        }
        Outcome::Interaction { record, stored: Some(Stored::Created) } => Reply::json(201, value(record)),
        Outcome::Interaction { record, stored: Some(Stored::Replayed) } => replayed(Reply::json(200, value(record))),
        Outcome::Interaction { record, stored: None } => Reply::json(200, value(record)),
        Outcome::Batch { records, created, replayed: again } => {
            let body = json!({ "interactions": records, "created": created, "replayed": again });
            if *created > 0 {
                Reply::json(201, body)
            } else {
                replayed(Reply::json(200, body))
            }
        }
        Outcome::Interactions(p) => Reply::json(200, page("interactions", p, add)),
        Outcome::Audit(p) => Reply::json(200, page("entries", p, add)),
        Outcome::Alerts(p) => Reply::json(200, page("alerts", p, add)),
        Outcome::Alert { alert } => Reply::json(200, value(alert)),
        Outcome::Webhook { webhook, secret, created } => {
            let mut body = value(webhook);
            if let Some(s) = secret {
                body["secret"] = json!(s);
            }
            Reply::json(if *created { 201 } else { 200 }, body)
        }
        Outcome::Moved { report } => Reply::json(200, json!({ "move": report })),
        Outcome::Webhooks { webhooks } => Reply::json(200, json!({ "webhooks": webhooks })),
        Outcome::Deliveries(p) => Reply::json(200, page("deliveries", p, add)),
        Outcome::Keys { keys } => Reply::json(200, json!({ "keys": keys })),
        Outcome::Key { key, created: true } => Reply::json(201, with_key(value(key), add)),
        Outcome::Key { key, created: false } => Reply::json(200, value(key)),
        Outcome::Export { .. } => {
            let mut reply = Reply::empty(200);
            reply.headers.push(("content-type", interlog_core::export::NDJSON.into()));
            reply
        }
        Outcome::Erasure { job, stored: Some(Stored::Created) } => Reply::json(202, value(job)),
        Outcome::Erasure { job, stored: Some(Stored::Replayed) } => replayed(Reply::json(202, value(job))),
        Outcome::Erasure { job, stored: None } => Reply::json(200, value(job)),
        Outcome::Rotated { key, previous } => {
            let mut body = with_key(value(key), add);
            body["previous"] = value(previous);
            Reply::json(201, body)
        }
    }
}

/// The HTTP answer to an MCP POST.
pub fn mcp(answer: Answer) -> Reply {
    let status = match answer.status {
        AnswerStatus::Ok => 200,
        AnswerStatus::Accepted => 202,
        AnswerStatus::BadRequest => 400,
        AnswerStatus::NotFound => 404,
        AnswerStatus::NotAcceptable => 406,
    };
    match answer.body {
        Some(body) => Reply::json(status, body),
        None => Reply::empty(status),
    }
}

/// RateLimit headers (IETF httpapi draft) of a key's L2 standing.
pub fn rate_headers(rate: &RateStanding) -> ExtraHeaders {
    vec![("ratelimit-policy", rate.policy_header()), ("ratelimit", rate.header())]
}

/// The status of an error.
fn status_of(err: &ApiError) -> u16 {
    match err {
        ApiError::Unauthorized => 401,
        ApiError::Forbidden { .. } => 403,
        ApiError::NotFound => 404,
        ApiError::MethodNotAllowed { .. } => 405,
        ApiError::Validation { .. } => 400,
        ApiError::Conflict { .. } => 409,
        ApiError::PayloadTooLarge { .. } => 413,
        ApiError::UnsupportedMediaType => 415,
        ApiError::RateLimited { .. } => 429,
        // The org's stored data conflicts with the write: retrying does not
        // help until room is made (erasure, retention) or the quota raised.
        ApiError::QuotaExceeded { .. } => 409,
        ApiError::Internal { .. } => 500,
        ApiError::Unavailable { .. } => 503,
    }
}

fn base_headers(request_id: &str) -> Headers {
    let h = Headers::new();
    for (k, v) in [
        ("x-request-id", request_id),
        ("cache-control", "no-store"),
        ("x-content-type-options", "nosniff"),
        ("vary", "Origin"),
    ] {
        let _ = h.set(k, v);
    }
    h
}

fn error_reply(err: &ApiError, request_id: &str) -> Reply {
    let status = status_of(err);
    if status >= 500 {
        crate::access_log::internal(request_id, err);
    }
    let mut reply = Reply::json(status, err.envelope(request_id));
    if let Some(s) = err.retry_after() {
        reply.headers.push(("retry-after", s.to_string()));
    }
    match err {
        ApiError::MethodNotAllowed { allow } => reply.headers.push(("allow", allow.join(", "))),
        ApiError::Unauthorized => reply.headers.push(("www-authenticate", "Bearer realm=\"interlog\"".into())),
        _ => {}
    }
    reply
}

/// Builds the response for an outcome, adding `extra` headers (CORS,
/// RateLimit) whether it succeeded or not. Never fails.
pub fn finish(outcome: Result<Reply, ApiError>, request_id: &str, extra: ExtraHeaders) -> Response {
    let headers = base_headers(request_id);
    let reply = outcome.unwrap_or_else(|err| error_reply(&err, request_id));
    for (k, v) in extra.iter().chain(&reply.headers) {
        let _ = headers.set(k, v);
    }
    if let Some(stream) = reply.stream {
        return Response::builder().with_status(reply.status).with_headers(headers).stream(stream);
    }
    match reply.body {
        Some(v) => {
            let _ = headers.set("content-type", "application/json");
            Response::builder().with_status(reply.status).with_headers(headers).fixed(v.to_string().into_bytes())
        }
        None => Response::builder().with_status(reply.status).with_headers(headers).empty(),
    }
}
