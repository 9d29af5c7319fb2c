//! The front Worker: routes, authenticates (behind the 80 ms floor) and
//! forwards each call to the org's `OrgActor`. Stateless.
#![forbid(unsafe_code)]

mod api;
mod auth;
mod body;
mod cors;
mod faults;
mod limits;
mod mcp;
mod respond;

pub use interlog_durable::{Janitor, OrgActor};

use interlog_core::routes::{resolve, Route};
use interlog_core::{ApiError, RequestId, AUTH_FLOOR_MS};
use interlog_durable::platform::{now_ms, random_bytes};
use respond::{finish, Reply};
use std::time::Duration;
use worker::{event, Context, Delay, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    // The floor's timer is the first thing started, before any work: a Delay
    // arms its timer on first poll, so poll it once right away.
    let mut floor = Box::pin(Delay::from(Duration::from_millis(AUTH_FLOOR_MS)));
    let _ = futures::poll!(floor.as_mut());
    let request_id = random_bytes()
        .map(|e| RequestId::generate(now_ms() as u64, &e).to_string())
        .unwrap_or_else(|_| "req_unavailable".into());
    // Route on the method as sent: worker's `Method` turns unknown names into GET.
    let method = req.inner().method();
    let path = req.path();
    let (outcome, extra) = match resolve(&method, &path) {
        Ok(Route::Health) => (Ok(health()), Vec::new()),
        // A preflight for a known path (every known path refuses OPTIONS itself).
        Err(ApiError::MethodNotAllowed { .. }) if method == "OPTIONS" => (cors::preflight(&req, &env), Vec::new()),
        route => {
            // L1 comes first for everything but health and preflights; its
            // denials wait for the floor too.
            match limits::check_l1(&req, &env, &request_id).await {
                Err(e) => {
                    floor.await;
                    let headers =
                        if matches!(e, ApiError::RateLimited { .. }) { limits::l1_headers() } else { Vec::new() };
                    (Err(e), headers)
                }
                Ok(()) => match route {
                    Ok(Route::Api { scope, endpoint }) => {
                        match endpoint.body_limit().map(|l| body::precheck(&req, l)) {
                            Some(Err(e)) => (Err(e), Vec::new()),
                            _ => {
                                let work = api::handle(&mut req, &env, scope, endpoint, &request_id);
                                let (_, out) = futures::join!(floor, work);
                                out
                            }
                        }
                    }
                    Ok(Route::Health) => (Ok(health()), Vec::new()),
                    Err(e) => (Err(e), Vec::new()),
                },
            }
        }
    };
    Ok(finish(outcome, &request_id, extra))
}

fn health() -> Reply {
    Reply::json(200, serde_json::json!({ "status": "ok" }))
}
