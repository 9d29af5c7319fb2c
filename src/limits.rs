//! L1: the per-IP limit in front of everything but health, through the
//! Workers Rate Limiting binding. It fails closed: if the binding is missing
//! or errors, the request is refused with 503.

use interlog_core::netaddr::l1_key;
use interlog_core::ApiError;
use worker::{console_error, Env, Request};

/// Binding name in wrangler.toml.
pub const L1_BINDING: &str = "L1_LIMITER";
/// Seconds a client is told to wait after an L1 denial (the binding's period).
const L1_RETRY_AFTER_S: u64 = 60;

/// Checks the client's address against L1.
pub async fn check_l1(req: &Request, env: &Env) -> Result<(), ApiError> {
    let raw = req.headers().get("cf-connecting-ip").ok().flatten().unwrap_or_default();
    // Requests without a usable address share one bucket.
    let key = l1_key(&raw).unwrap_or_else(|| "unknown".into());
    let limiter = env.rate_limiter(L1_BINDING).map_err(|e| {
        console_error!("L1 binding unavailable: {e}");
        ApiError::Unavailable { retry_after_s: 5, detail: format!("L1 binding: {e}") }
    })?;
    match limiter.limit(key).await {
        Ok(outcome) if outcome.success => Ok(()),
        Ok(_) => Err(ApiError::RateLimited { retry_after_s: L1_RETRY_AFTER_S }),
        Err(e) => {
            console_error!("L1 limiter failed: {e}");
            Err(ApiError::Unavailable { retry_after_s: 5, detail: format!("L1 limit: {e}") })
        }
    }
}
