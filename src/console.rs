//! The web console: static files built from `console/` and served from the
//! asset binding under `/console/`. Every request reaches the Worker first
//! (`run_worker_first`), so every console answer — the files, a 404, a 405 —
//! carries the security headers below. The files are the same for everyone
//! and reveal nothing about any org: no key, no 80 ms floor and no L1 budget
//! (the API calls the console makes are limited as any others).

use crate::respond::{finish, ExtraHeaders};
use interlog_core::ApiError;
use worker::{Env, Headers, Method, RequestInit, Response};

/// The asset binding (wrangler.toml `[assets]`).
const BINDING: &str = "ASSETS";

/// No inline script or style, no eval, no framing, nothing from another
/// origin; the API is called same-origin (`connect-src 'self'`).
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// The headers every console answer carries.
pub fn security_headers() -> ExtraHeaders {
    vec![
        ("content-security-policy", CSP.to_string()),
        ("referrer-policy", "no-referrer".to_string()),
        ("x-content-type-options", "nosniff".to_string()),
        ("x-frame-options", "DENY".to_string()),
        ("cross-origin-opener-policy", "same-origin".to_string()),
        ("cross-origin-resource-policy", "same-origin".to_string()),
    ]
}

/// Answers a request for a console path; `asset` is the file it names
/// (`core::routes::console_asset`), `None` when it can name no file. Also
/// returns the outcome, for the request's log line.
pub async fn serve(
    env: &Env,
    method: &str,
    asset: Option<String>,
    request_id: &str,
) -> (Response, Result<(), ApiError>) {
    if method != "GET" && method != "HEAD" {
        let allow = vec!["GET".to_string(), "HEAD".to_string()];
        return refuse(ApiError::MethodNotAllowed { allow }, request_id);
    }
    let found = match asset {
        Some(name) => fetch_asset(env, method, &name).await,
        None => None,
    };
    match found {
        Some(response) => (response, Ok(())),
        None => refuse(ApiError::NotFound, request_id),
    }
}

fn refuse(err: ApiError, request_id: &str) -> (Response, Result<(), ApiError>) {
    (finish(Err(err.clone()), request_id, security_headers()), Err(err))
}

/// The asset's bytes with the console's headers, or `None` when the store has
/// no such file (or cannot be reached: the console is then simply absent).
async fn fetch_asset(env: &Env, method: &str, name: &str) -> Option<Response> {
    let assets = env.assets(BINDING).ok()?;
    let mut init = RequestInit::new();
    init.with_method(if method == "HEAD" { Method::Head } else { Method::Get });
    let mut upstream = assets.fetch(format!("https://assets.local{name}"), Some(init)).await.ok()?;
    if upstream.status_code() != 200 {
        return None;
    }
    let content_type = upstream.headers().get("content-type").ok().flatten();
    let body = if method == "HEAD" { Vec::new() } else { upstream.bytes().await.ok()? };
    let headers = Headers::new();
    for (k, v) in security_headers() {
        let _ = headers.set(k, &v);
    }
    let _ = headers.set("content-type", content_type.as_deref().unwrap_or("application/octet-stream"));
    // Always revalidated: a new deploy is picked up on the next load.
    let _ = headers.set("cache-control", "no-cache");
    Some(Response::builder().with_status(200).with_headers(headers).fixed(body))
}
