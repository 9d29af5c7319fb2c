//! L1: the per-client limits in front of everything but health, through the
//! Workers Rate Limiting bindings: per IP (IPv6 folded to its /64), then for
//! IPv6 clients per /48 (a routed /48 holds 65,536 /64s, each with its own
//! per-IP budget). Both fail closed: if a binding is missing or errors, the
//! request is refused with 503.

use crate::auth::Incoming;
use crate::respond::ExtraHeaders;
use interlog_core::audit::{AuditAction, AuditEvent, Throttle};
use interlog_core::config::binding;
use interlog_core::ApiError;
use interlog_durable::audit::{self, Asker};
use interlog_durable::platform::db;
use std::cell::RefCell;
use worker::{console_error, Env};

/// An isolate writes at most one audit row per client (or /48) and minute
/// for L1 denials, so a flood cannot turn L1 into a D1 write amplifier.
const AUDIT_EVERY_MS: i64 = 60_000;
/// Clients remembered for that throttle.
const AUDIT_MEMORY: usize = 10_000;
/// Seconds a client is told to wait after an L1 denial (the bindings' period).
const L1_RETRY_AFTER_S: u64 = 60;
/// Requests per period the per-IP binding allows (wrangler.toml `[[ratelimits]]`).
const L1_LIMIT: u32 = 60;
/// Requests per period the per-/48 binding allows (wrangler.toml): ten busy
/// subscribers' worth of per-IP budget for one routed site, while a flood
/// from one /48 costs at most this many auth attempts a minute.
const L1_48_LIMIT: u32 = 600;

thread_local! {
    static AUDITED: RefCell<Throttle<String>> = RefCell::new(Throttle::new(AUDIT_EVERY_MS, AUDIT_MEMORY));
}

/// One L1 tier: its binding, policy name, limit and audit reason.
struct Tier {
    binding: &'static str,
    policy: &'static str,
    limit: u32,
    reason: &'static str,
}

const PER_IP: Tier = Tier { binding: binding::L1_LIMITER, policy: "per-ip", limit: L1_LIMIT, reason: "l1" };
const PER_48: Tier = Tier { binding: binding::L1_48_LIMITER, policy: "per-48", limit: L1_48_LIMIT, reason: "l1_48" };

async fn audit_denial(env: &Env, tier: &Tier, key: &str, incoming: &Incoming) {
    let throttle_key = format!("{}|{key}", tier.reason);
    if !AUDITED.with(|t| t.borrow_mut().admit(throttle_key, incoming.now_ms)) {
        return;
    }
    let Ok(db) = db(env) else { return };
    let event = AuditEvent::new(AuditAction::RateLimited, None).with_reason(tier.reason);
    let who = Asker { org: None, request_id: &incoming.id, ip: incoming.ip };
    // Logged inside; the answer is the 429 either way.
    let _ = audit::write(&db, who, &event, incoming.now_ms).await;
}

/// RateLimit headers of an L1 denial (IETF httpapi draft). The binding does
/// not say when its window ends, so `t` is the whole period (as Retry-After).
fn tier_headers(tier: &Tier) -> ExtraHeaders {
    let (policy, limit) = (tier.policy, tier.limit);
    vec![
        ("ratelimit-policy", format!("\"{policy}\";q={limit};w={L1_RETRY_AFTER_S}")),
        ("ratelimit", format!("\"{policy}\";r=0;t={L1_RETRY_AFTER_S}")),
    ]
}

/// Counts `key` against one tier; a denial is audited (throttled) and comes
/// with its tier's RateLimit headers.
async fn check_tier(env: &Env, tier: &Tier, key: String, incoming: &Incoming) -> Result<(), (ApiError, ExtraHeaders)> {
    let limiter = env.rate_limiter(tier.binding).map_err(|e| {
        console_error!("L1 binding {} unavailable: {e}", tier.binding);
        (ApiError::Unavailable { retry_after_s: 5, detail: format!("L1 binding: {e}") }, Vec::new())
    })?;
    match limiter.limit(key.clone()).await {
        Ok(outcome) if outcome.success => Ok(()),
        Ok(_) => {
            audit_denial(env, tier, &key, incoming).await;
            Err((ApiError::RateLimited { retry_after_s: L1_RETRY_AFTER_S }, tier_headers(tier)))
        }
        Err(e) => {
            console_error!("L1 limiter {} failed: {e}", tier.binding);
            Err((ApiError::Unavailable { retry_after_s: 5, detail: format!("L1 limit: {e}") }, Vec::new()))
        }
    }
}

/// Checks the client's address against L1: per IP, then (IPv6 only) per
/// /48. A refusal carries the headers of the tier that refused.
pub async fn check_l1(env: &Env, incoming: &Incoming) -> Result<(), (ApiError, ExtraHeaders)> {
    // Requests without a usable address share one bucket.
    let key = incoming.ip.map_or_else(|| "unknown".to_string(), |ip| ip.l1_key());
    check_tier(env, &PER_IP, key, incoming).await?;
    match incoming.ip.and_then(|ip| ip.l1_key_48()) {
        Some(key_48) => check_tier(env, &PER_48, key_48, incoming).await,
        None => Ok(()),
    }
}
