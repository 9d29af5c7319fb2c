//! L1: the per-IP limit in front of everything but health, through the
//! Workers Rate Limiting binding. It fails closed: if the binding is missing
//! or errors, the request is refused with 503.

use interlog_core::netaddr::l1_key;
use interlog_core::ApiError;
use interlog_durable::platform::{now_ms, write_audit, AuditEntry};
use std::cell::RefCell;
use std::collections::HashMap;
use worker::{console_error, Env, Request};

/// An isolate writes at most one audit row per client and minute for L1
/// denials, so a flood cannot turn L1 into a D1 write amplifier.
const AUDIT_EVERY_MS: i64 = 60_000;
/// Clients remembered for that throttle before old entries are dropped.
const AUDIT_MEMORY: usize = 10_000;

thread_local! {
    static AUDITED: RefCell<HashMap<String, i64>> = RefCell::new(HashMap::new());
}

fn audit_due(key: &str, now: i64) -> bool {
    AUDITED.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= AUDIT_MEMORY {
            m.retain(|_, t| now - *t < AUDIT_EVERY_MS);
            if m.len() >= AUDIT_MEMORY {
                m.clear();
            }
        }
        match m.get(key) {
            Some(t) if now - *t < AUDIT_EVERY_MS => false,
            _ => {
                m.insert(key.to_string(), now);
                true
            }
        }
    })
}

async fn audit_denial(env: &Env, key: &str, ip: Option<&str>, request_id: &str) {
    let now = now_ms();
    if !audit_due(key, now) {
        return;
    }
    let Ok(db) = env.d1("DB") else { return };
    let entry = AuditEntry {
        org_id: None,
        at: now,
        action: "rate_limited",
        reason: Some("l1"),
        prefix: None,
        ip,
        request_id,
        detail: None,
    };
    // Logged inside; the answer is the 429 either way.
    let _ = write_audit(&db, &entry).await;
}

/// Binding name in wrangler.toml.
pub const L1_BINDING: &str = "L1_LIMITER";
/// Seconds a client is told to wait after an L1 denial (the binding's period).
const L1_RETRY_AFTER_S: u64 = 60;

/// RateLimit headers of an L1 denial (IETF httpapi draft). The binding does
/// not say when its window ends, so `t` is the whole period (as Retry-After).
pub fn l1_headers() -> Vec<(&'static str, String)> {
    vec![
        ("ratelimit-policy", format!("\"per-ip\";q=60;w={L1_RETRY_AFTER_S}")),
        ("ratelimit", format!("\"per-ip\";r=0;t={L1_RETRY_AFTER_S}")),
    ]
}

/// Checks the client's address against L1; a denial is audited (throttled).
pub async fn check_l1(req: &Request, env: &Env, request_id: &str) -> Result<(), ApiError> {
    let raw = req.headers().get("cf-connecting-ip").ok().flatten().unwrap_or_default();
    // Requests without a usable address share one bucket.
    let key = l1_key(&raw).unwrap_or_else(|| "unknown".into());
    let limiter = env.rate_limiter(L1_BINDING).map_err(|e| {
        console_error!("L1 binding unavailable: {e}");
        ApiError::Unavailable { retry_after_s: 5, detail: format!("L1 binding: {e}") }
    })?;
    match limiter.limit(key.clone()).await {
        Ok(outcome) if outcome.success => Ok(()),
        Ok(_) => {
            let ip = l1_key(&raw).map(|_| raw.trim().to_string());
            audit_denial(env, &key, ip.as_deref(), request_id).await;
            Err(ApiError::RateLimited { retry_after_s: L1_RETRY_AFTER_S })
        }
        Err(e) => {
            console_error!("L1 limiter failed: {e}");
            Err(ApiError::Unavailable { retry_after_s: 5, detail: format!("L1 limit: {e}") })
        }
    }
}
