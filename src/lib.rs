//! The front Worker: routes, authenticates (behind the 80 ms floor) and
//! forwards each call to the org's `OrgActor`. Stateless but for per-isolate
//! caches (configuration, peppers, the L1 audit throttle).

mod access_log;
mod actor;
mod answered;
mod api;
mod auth;
mod body;
mod console;
mod cors;
mod export;
mod faults;
mod limits;
mod mcp;
mod operator;
mod ops;
mod respond;
mod spec;

pub use interlog_durable::{Janitor, OrgActor};

use auth::Incoming;
use interlog_core::netaddr::ClientIp;
use interlog_core::routes::{resolve, Route};
use interlog_core::{ApiError, RequestId, AUTH_FLOOR_MS};
use interlog_durable::platform::{config, now_ms, random_bytes};
use respond::{finish, ExtraHeaders, Reply};
use std::time::Duration;
use worker::{event, Context, Delay, Env, Request, Response, Result};

#[event(fetch)]
async fn fetch(mut req: Request, env: Env, _ctx: Context) -> Result<Response> {
    // The floor's timer is the first thing started, before any work: a Delay
    // arms its timer on first poll, so poll it once right away.
    let mut floor = Box::pin(Delay::from(Duration::from_millis(AUTH_FLOOR_MS)));
    let _ = futures::poll!(floor.as_mut());
    let incoming = arrive(&req);
    // Route on the method as sent: worker's `Method` turns unknown names into GET.
    let method = req.inner().method();
    let path = req.path();
    // The console's static files: public, the same for everyone, no floor.
    if let Some(asset) = interlog_core::routes::console_asset(&path) {
        let (response, outcome) = console::serve(&env, &method, asset, &incoming.id).await;
        let summary = access_log::Summary::of(&outcome, &Vec::new());
        let asked = access_log::Asked::new(&method, &path);
        access_log::emit(&access_log::line(&incoming, &asked, &summary, None, response.status_code(), now_ms()));
        return Ok(response);
    }
    let route = resolve(&method, &path);
    let (outcome, extra, seen) = match (route, config(&env)) {
        (Ok(Route::Health), _) => (Ok(health()), Vec::new(), None),
        (_, Err(e)) => {
            floor.await;
            (Err(e), Vec::new(), None)
        }
        // A preflight for a known path (every known path refuses OPTIONS itself).
        (Err(ApiError::MethodNotAllowed { .. }), Ok(cfg)) if method == "OPTIONS" => {
            (cors::preflight(&req, &cfg), Vec::new(), None)
        }
        (route, Ok(cfg)) => {
            // L1 comes first for everything but health and preflights; its
            // denials wait for the floor too.
            match limits::check_l1(&env, &incoming).await {
                Err((e, headers)) => {
                    floor.await;
                    (Err(e), headers, None)
                }
                Ok(()) => routed(&mut req, &env, &cfg, &incoming, route, floor).await,
            }
        }
    };
    let summary = access_log::Summary::of(&outcome, &extra);
    let response = finish(outcome, &incoming.id, extra);
    let asked = access_log::Asked::new(&method, &path);
    access_log::emit(&access_log::line(&incoming, &asked, &summary, seen.as_ref(), response.status_code(), now_ms()));
    Ok(response)
}

/// What is known of a request as it arrives: its id, the client address in
/// canonical form, and the time (the clock is read once per request).
fn arrive(req: &Request) -> Incoming {
    let now_ms = now_ms();
    let id = random_bytes()
        .map(|e| RequestId::generate(now_ms as u64, &e).to_string())
        .unwrap_or_else(|_| "req_unavailable".into());
    let ip = req.headers().get("cf-connecting-ip").ok().flatten().and_then(|raw| ClientIp::parse(&raw));
    Incoming { id, ip, now_ms }
}

/// A request past L1: body checks before anything is read, then the call
/// itself, answered no sooner than the floor.
async fn routed(
    req: &mut Request,
    env: &Env,
    cfg: &interlog_core::config::Config,
    incoming: &Incoming,
    route: std::result::Result<Route, ApiError>,
    floor: std::pin::Pin<Box<Delay>>,
) -> (std::result::Result<Reply, ApiError>, ExtraHeaders, Option<access_log::Seen>) {
    match route {
        Ok(Route::Api { scope, endpoint }) => match endpoint.body_limit().map(|l| body::precheck(req, l)) {
            Some(Err(e)) => (Err(e), Vec::new(), None),
            _ => {
                let work = api::handle(req, env, cfg, incoming, (scope, endpoint));
                let (_, out) = futures::join!(floor, work);
                out
            }
        },
        Ok(Route::Health) => (Ok(health()), Vec::new(), None),
        // The operator's signed call: no key, but behind L1 and the floor.
        Ok(call @ (Route::Reconcile | Route::Move)) => match body::precheck(req, interlog_core::operator::BODY_LIMIT) {
            Err(e) => (Err(e), Vec::new(), None),
            Ok(()) => {
                let (_, out) = futures::join!(floor, operator::handle(req, env, cfg, incoming, call == Route::Move));
                (out, Vec::new(), None)
            }
        },
        // Public and static: past L1, but no key and so no floor to wait for.
        Ok(Route::Spec) => (spec::openapi(), Vec::new(), None),
        Err(e) => (Err(e), Vec::new(), None),
    }
}

fn health() -> Reply {
    Reply::json(200, serde_json::json!({ "status": "ok" }))
}
