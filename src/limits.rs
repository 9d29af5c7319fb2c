//! L1: the per-client limits in front of everything but health, through the
//! Workers Rate Limiting bindings: per IP (IPv6 folded to its /64), then for
//! IPv6 clients per /48 (a routed /48 holds 65,536 /64s, each with its own
//! per-IP budget). Both fail closed: if a binding is missing or errors, the
//! request is refused with 503.

use crate::auth::Incoming;
use crate::respond::ExtraHeaders;
use interlog_core::audit::{AuditAction, AuditEvent, Throttle};
use interlog_core::l1::{verdict, BindingAnswer, Tier, Verdict, L1_RETRY_AFTER_S, PER_48, PER_IP};
use interlog_core::ApiError;
use interlog_durable::audit::{self, Asker};
use interlog_durable::platform::directory;
use std::cell::RefCell;
use worker::{console_error, Env};

/// An isolate writes at most one audit row per client (or /48) and minute
/// for L1 denials, so a flood cannot turn L1 into a D1 write amplifier.
const AUDIT_EVERY_MS: i64 = 60_000;
/// Clients remembered for that throttle.
const AUDIT_MEMORY: usize = 10_000;

thread_local! {
    static AUDITED: RefCell<Throttle<String>> = RefCell::new(Throttle::new(AUDIT_EVERY_MS, AUDIT_MEMORY));
}

async fn audit_denial(env: &Env, tier: &Tier, key: &str, incoming: &Incoming) {
    let throttle_key = format!("{}|{key}", tier.reason);
    if !AUDITED.with(|t| t.borrow_mut().admit(throttle_key, incoming.now_ms)) {
        return;
    }
    let Ok(db) = directory(env) else { return };
    let event = AuditEvent::new(AuditAction::RateLimited, None).with_reason(tier.reason);
    let who = Asker { org: None, request_id: &incoming.id, ip: incoming.ip };
    // Logged inside; the answer is the 429 either way.
    let _ = audit::write(&db, who, &event, incoming.now_ms).await;
}

/// RateLimit headers of an L1 denial (IETF httpapi draft). The binding does
/// not say when its window ends, so `t` is the whole period (as Retry-After).
fn tier_headers(tier: &Tier) -> ExtraHeaders {
    let (policy, limit) = (tier.rate.policy(), tier.limit);
    vec![
        ("ratelimit-policy", format!("\"{policy}\";q={limit};w={L1_RETRY_AFTER_S}")),
        ("ratelimit", format!("\"{policy}\";r=0;t={L1_RETRY_AFTER_S}")),
    ]
}

/// What the tier's binding answers for `key`.
async fn ask(env: &Env, tier: &Tier, key: String) -> BindingAnswer {
    match env.rate_limiter(tier.binding) {
        Err(e) => BindingAnswer::Missing(e.to_string()),
        Ok(limiter) => match limiter.limit(key).await {
            Ok(outcome) => BindingAnswer::Counted { success: outcome.success },
            Err(e) => BindingAnswer::Failed(e.to_string()),
        },
    }
}

/// Counts `key` against one tier (`core::l1` decides); a denial is audited
/// (throttled) and comes with its tier's RateLimit headers.
async fn check_tier(env: &Env, tier: &Tier, key: String, incoming: &Incoming) -> Result<(), (ApiError, ExtraHeaders)> {
    let decided = verdict(tier, ask(env, tier, key.clone()).await);
    let headers = match &decided {
        Verdict::Pass => return Ok(()),
        Verdict::Limited => {
            audit_denial(env, tier, &key, incoming).await;
            tier_headers(tier)
        }
        Verdict::Unavailable(detail) => {
            console_error!("{detail}");
            Vec::new()
        }
    };
    decided.into_result(tier).map_err(|e| (e, headers))
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
