//! L1: the per-IP limit in front of everything but health, through the
//! Workers Rate Limiting binding. It fails closed: if the binding is missing
//! or errors, the request is refused with 503.

use crate::auth::Incoming;
use interlog_core::audit::{AuditAction, AuditEvent, Throttle};
use interlog_core::config::binding;
use interlog_core::ApiError;
use interlog_durable::audit::{self, Asker};
use interlog_durable::platform::db;
use std::cell::RefCell;
use worker::{console_error, Env};

/// An isolate writes at most one audit row per client and minute for L1
/// denials, so a flood cannot turn L1 into a D1 write amplifier.
const AUDIT_EVERY_MS: i64 = 60_000;
/// Clients remembered for that throttle.
const AUDIT_MEMORY: usize = 10_000;
/// Seconds a client is told to wait after an L1 denial (the binding's period).
const L1_RETRY_AFTER_S: u64 = 60;
/// Requests per period the binding allows (wrangler.toml `[[ratelimits]]`).
const L1_LIMIT: u32 = 60;

thread_local! {
    static AUDITED: RefCell<Throttle<String>> = RefCell::new(Throttle::new(AUDIT_EVERY_MS, AUDIT_MEMORY));
}

async fn audit_denial(env: &Env, key: String, incoming: &Incoming) {
    if !AUDITED.with(|t| t.borrow_mut().admit(key, incoming.now_ms)) {
        return;
    }
    let Ok(db) = db(env) else { return };
    let event = AuditEvent::new(AuditAction::RateLimited, None).with_reason("l1");
    let who = Asker { org: None, request_id: &incoming.id, ip: incoming.ip };
    // Logged inside; the answer is the 429 either way.
    let _ = audit::write(&db, who, &event, incoming.now_ms).await;
}

/// RateLimit headers of an L1 denial (IETF httpapi draft). The binding does
/// not say when its window ends, so `t` is the whole period (as Retry-After).
pub fn l1_headers() -> Vec<(&'static str, String)> {
    vec![
        ("ratelimit-policy", format!("\"per-ip\";q={L1_LIMIT};w={L1_RETRY_AFTER_S}")),
        ("ratelimit", format!("\"per-ip\";r=0;t={L1_RETRY_AFTER_S}")),
    ]
}

/// Checks the client's address against L1; a denial is audited (throttled).
pub async fn check_l1(env: &Env, incoming: &Incoming) -> Result<(), ApiError> {
    // Requests without a usable address share one bucket.
    let key = incoming.ip.map_or_else(|| "unknown".to_string(), |ip| ip.l1_key());
    let limiter = env.rate_limiter(binding::L1_LIMITER).map_err(|e| {
        console_error!("L1 binding unavailable: {e}");
        ApiError::Unavailable { retry_after_s: 5, detail: format!("L1 binding: {e}") }
    })?;
    match limiter.limit(key.clone()).await {
        Ok(outcome) if outcome.success => Ok(()),
        Ok(_) => {
            audit_denial(env, key, incoming).await;
            Err(ApiError::RateLimited { retry_after_s: L1_RETRY_AFTER_S })
        }
        Err(e) => {
            console_error!("L1 limiter failed: {e}");
            Err(ApiError::Unavailable { retry_after_s: 5, detail: format!("L1 limit: {e}") })
        }
    }
}
