//! The one place that turns outcomes into HTTP: status, envelope, headers.
//! Internal detail is logged with the request id and never sent.

use interlog_core::ApiError;
use serde_json::Value;
use worker::{console_error, Headers, Response};

/// A successful answer before headers are added.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Option<Value>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    /// A JSON answer.
    pub fn json(status: u16, body: Value) -> Self {
        Self { status, body: Some(body), headers: Vec::new() }
    }

    /// An answer without a body (204).
    pub fn empty(status: u16) -> Self {
        Self { status, body: None, headers: Vec::new() }
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

/// Builds the response for an outcome, adding `extra` headers (CORS) to it
/// whether it succeeded or not. Never fails.
pub fn finish(outcome: Result<Reply, ApiError>, request_id: &str, extra: Vec<(&'static str, String)>) -> Response {
    let headers = base_headers(request_id);
    for (k, v) in &extra {
        let _ = headers.set(k, v);
    }
    let (status, body) = match outcome {
        Ok(reply) => {
            for (k, v) in &reply.headers {
                let _ = headers.set(k, v);
            }
            (reply.status, reply.body)
        }
        Err(err) => {
            if err.status() >= 500 {
                console_error!("request {request_id} failed: {err}");
            }
            if let Some(s) = err.retry_after() {
                let _ = headers.set("retry-after", &s.to_string());
            }
            match &err {
                ApiError::MethodNotAllowed { allow } => {
                    let _ = headers.set("allow", &allow.join(", "));
                }
                ApiError::Unauthorized => {
                    let _ = headers.set("www-authenticate", "Bearer realm=\"interlog\"");
                }
                _ => {}
            }
            (err.status(), Some(err.envelope(request_id)))
        }
    };
    match body {
        Some(v) => {
            let _ = headers.set("content-type", "application/json");
            Response::builder().with_status(status).with_headers(headers).fixed(v.to_string().into_bytes())
        }
        None => Response::builder().with_status(status).with_headers(headers).empty(),
    }
}
