//! L1's rules: the per-client tiers in front of authentication and what a
//! Rate Limiting binding's answer means. It fails closed: a binding that is
//! missing or errors refuses the request (503), it never lets it through.

use crate::config::binding;
use crate::error::{ApiError, RateTier};

/// Seconds a client is told to wait after an L1 denial (the bindings' period).
pub const L1_RETRY_AFTER_S: u64 = 60;

/// One L1 tier: its binding, limit per period and audit reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tier {
    pub binding: &'static str,
    pub rate: RateTier,
    /// Requests per period (wrangler.toml `[[ratelimits]]`).
    pub limit: u32,
    /// The `audit_log.reason` of its denials.
    pub reason: &'static str,
}

/// Per client IP (IPv6 folded to its /64): 60 requests / 60 s.
pub const PER_IP: Tier = Tier { binding: binding::L1_LIMITER, rate: RateTier::PerIp, limit: 60, reason: "l1" };
/// Per IPv6 /48: ten busy subscribers' worth of per-IP budget for one routed
/// site, while a flood from one /48 costs at most this many attempts a minute.
pub const PER_48: Tier = Tier { binding: binding::L1_48_LIMITER, rate: RateTier::Per48, limit: 600, reason: "l1_48" };

/// What a binding answered, as the adapter saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingAnswer {
    /// The binding is not configured.
    Missing(String),
    /// The call failed.
    Failed(String),
    /// The call answered: admitted or not.
    Counted { success: bool },
}

/// What L1 decides for one tier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Over the tier's limit: 429 with the tier's RateLimit headers, audited.
    Limited,
    /// The binding is missing or failed: 503, fails closed.
    Unavailable(String),
}

/// The verdict of `tier` given the binding's answer.
pub fn verdict(tier: &Tier, answer: BindingAnswer) -> Verdict {
    match answer {
        BindingAnswer::Counted { success: true } => Verdict::Pass,
        BindingAnswer::Counted { success: false } => Verdict::Limited,
        BindingAnswer::Missing(e) => Verdict::Unavailable(format!("L1 binding {}: {e}", tier.binding)),
        BindingAnswer::Failed(e) => Verdict::Unavailable(format!("L1 limiter {}: {e}", tier.binding)),
    }
}

impl Verdict {
    /// The error a refusal is answered with.
    pub fn into_result(self, tier: &Tier) -> Result<(), ApiError> {
        match self {
            Verdict::Pass => Ok(()),
            Verdict::Limited => Err(ApiError::RateLimited { retry_after_s: L1_RETRY_AFTER_S, tier: tier.rate }),
            Verdict::Unavailable(detail) => Err(ApiError::Unavailable { retry_after_s: 5, detail }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // claim: owasp.api4
    #[test]
    fn a_failing_or_missing_binding_fails_closed() {
        for tier in [PER_IP, PER_48] {
            for answer in [BindingAnswer::Missing("no binding".into()), BindingAnswer::Failed("boom".into())] {
                let err = verdict(&tier, answer).into_result(&tier).unwrap_err();
                assert!(matches!(err, ApiError::Unavailable { retry_after_s: 5, .. }), "{err:?}");
            }
        }
    }

    #[test]
    fn a_denial_is_a_429_naming_its_tier() {
        let err = verdict(&PER_48, BindingAnswer::Counted { success: false }).into_result(&PER_48).unwrap_err();
        assert_eq!(err, ApiError::RateLimited { retry_after_s: 60, tier: RateTier::Per48 });
        assert!(err.public_message().contains("/48"), "{}", err.public_message());
        assert_eq!(verdict(&PER_IP, BindingAnswer::Counted { success: true }), Verdict::Pass);
    }
}
