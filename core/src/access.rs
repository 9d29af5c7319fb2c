//! The OrgActor's access decision for a hash-verified key, as a pure state
//! machine: is the key live, does it hold the route's scope, does L2 admit the
//! request, is its `Origin` allowed. [`Gate::decide`] answers with a
//! [`Decision`] and the [`Effect`]s the actor must carry out (audit rows,
//! alerts, a re-hash, checkpoints, alarms), in the order it carries them out.

use crate::alerts::{AlertKind, AlertRules, AlertTracker, AlertWrite};
use crate::audit::{AuditAction, AuditCount, AuditEvent, Closed, Tally, Throttle};
use crate::auth::{Access, AuthFailure};
use crate::error::{ApiError, RateTier};
use crate::key::KeyPrefix;
use crate::keyring::KeyRing;
use crate::keys::KeyMaterial;
use crate::protocol::{RateStanding, Refusal, VerifiedKey};
use crate::ratelimit::RateLimiter;
use crate::scope::{Scope, Scopes};
use serde_json::json;
use std::collections::HashMap;

/// Unsaved L2 admissions after which a checkpoint is written right away.
pub const CHECKPOINT_EVERY: u64 = 200;
/// Longest a counted admission waits for its checkpoint (via the alarm).
pub const CHECKPOINT_DELAY_MS: i64 = 5_000;
/// How soon after a key is used its `last_used_at` reaches D1 (via the alarm).
pub const FLUSH_DELAY_MS: i64 = 30_000;
/// At most one audit row per key and this interval for L2 denials.
pub const L2_AUDIT_EVERY_MS: i64 = 60_000;
/// Keys the L2 audit throttle remembers (far above any org's key count).
const L2_AUDIT_CAPACITY: usize = 4_096;
/// Auth failures of one prefix and reason share one audit row per window.
pub const AUTH_FAILURE_WINDOW_MS: i64 = 60_000;
/// (prefix, reason) windows the auth-failure tally keeps open.
const AUTH_FAILURE_CAPACITY: usize = 4_096;
/// Most final counts one call or alarm run stores.
pub const COUNTS_PER_RUN: usize = 64;
/// The 403 message of a request whose `Origin` the org does not list.
pub const ORIGIN_REFUSED_MESSAGE: &str = "this Origin is not in the org's allowed_origins";

/// One request to decide.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    /// The key whose hash verified, the scope its route needs, a re-hash if due.
    pub key: &'a VerifiedKey,
    /// The request's `Origin` header, if any.
    pub origin: Option<&'a str>,
    /// The instant of the decision (Unix ms).
    pub now_ms: i64,
    /// How L2 is counted.
    pub l2: L2Check,
}

/// How L2 is counted: by the in-memory limiter (production), or by an answer
/// the adapter already got elsewhere (bench-only D1 mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L2Check {
    /// Count with [`Gate::limiter`].
    InMemory,
    /// Counted elsewhere; this is its answer (a refusal retries after 1 s).
    External {
        /// Whether the request was admitted.
        allowed: bool,
        /// Requests still admitted in the window.
        remaining: u32,
        /// Requests per window.
        limit: u32,
        /// The window in seconds.
        window_s: u64,
    },
}

/// The access decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Serve the request.
    Granted(Authorized),
    /// Not live (or unknown): the uniform 401.
    Denied(AuthFailure),
    /// Live but lacking the route's scope: 403.
    MissingScope(Scope),
    /// Over the key's L2 limit: 429.
    RateLimited { retry_after_s: u64 },
    /// The `Origin` is not in the org's `allowed_origins`: 403.
    OriginRefused,
}

impl Decision {
    /// Whether the request may be served.
    pub fn is_granted(&self) -> bool {
        matches!(self, Decision::Granted(_))
    }

    /// The proof of access, or the refusal the actor answers with.
    pub fn into_result(self) -> Result<Authorized, Refusal> {
        let error = match self {
            Decision::Granted(auth) => return Ok(auth),
            Decision::Denied(reason) => return Err(Refusal::Denied { reason }),
            Decision::MissingScope(s) => ApiError::Forbidden { message: format!("this API key lacks the '{s}' scope") },
            Decision::RateLimited { retry_after_s } => ApiError::RateLimited { retry_after_s, tier: RateTier::PerKey },
            Decision::OriginRefused => ApiError::Forbidden { message: ORIGIN_REFUSED_MESSAGE.into() },
        };
        Err(Refusal::Failed { error })
    }
}

/// Proof that the access decision admitted this caller. Only [`Gate::decide`]
/// builds one; the actor's operation handlers take `&Authorized`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorized {
    prefix: KeyPrefix,
    scopes: Scopes,
}

impl Authorized {
    /// The caller's key.
    pub fn prefix(&self) -> KeyPrefix {
        self.prefix
    }

    /// Every scope the caller's key holds.
    pub fn scopes(&self) -> Scopes {
        self.scopes
    }
}

/// Something the actor must do because of a decision, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Write this audit row.
    Audit(AuditEvent),
    /// Write (open or add to) this alert.
    Alert(AlertWrite),
    /// Store this digest under the current pepper (only for a granted key).
    Rehash(KeyMaterial),
    /// Unsaved L2 admissions reached [`CHECKPOINT_EVERY`]: write them now.
    Checkpoint,
    /// Make sure the alarm fires within `delay_ms`.
    Schedule { delay_ms: i64 },
    /// Store the final count of an aggregated audit row.
    AuditCount(AuditCount),
}

/// The actor's in-memory access state (it is the only writer of all of it).
#[derive(Debug)]
pub struct Gate {
    /// The org's keys.
    pub keys: KeyRing,
    /// The org's `allowed_origins` (exact strings).
    pub origins: Vec<String>,
    /// L2: per-key sliding windows.
    pub limiter: RateLimiter<KeyPrefix>,
    /// The alert rules' counters.
    pub alerts: AlertTracker,
    /// `last_used_at` values not yet written to D1.
    pub unsaved_use: HashMap<KeyPrefix, i64>,
    l2_audit: Throttle<KeyPrefix>,
    /// Auth failures per (prefix, reason): one row per window, then counted.
    failures: Tally<(KeyPrefix, &'static str)>,
}

/// What L2 answered: the caller's standing and, when refused, `Retry-After`.
struct L2Answer {
    standing: RateStanding,
    refused: Option<u64>,
}

fn ceil_s(ms: i64) -> u64 {
    u64::try_from(ms.max(0)).unwrap_or(0).div_ceil(1000)
}

impl Gate {
    /// A gate over `keys` and `origins` with `limiter` and alert `rules`.
    pub fn new(keys: KeyRing, origins: Vec<String>, limiter: RateLimiter<KeyPrefix>, rules: AlertRules) -> Self {
        Self {
            keys,
            origins,
            limiter,
            alerts: AlertTracker::new(rules),
            unsaved_use: HashMap::new(),
            l2_audit: Throttle::new(L2_AUDIT_EVERY_MS, L2_AUDIT_CAPACITY),
            failures: Tally::new(AUTH_FAILURE_WINDOW_MS, AUTH_FAILURE_CAPACITY),
        }
    }

    /// Whether `origin` is in the org's `allowed_origins` (exact match).
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o == origin)
    }

    /// Decides one request: liveness, scope, L2, origin, in that order. The
    /// standing is `Some` once L2 was asked. A prefix the ring does not hold
    /// is denied as unknown: the actor reloads its keys once before deciding
    /// when [`KeyRing::contains`] says no (a key made behind its back).
    pub fn decide(&mut self, req: &AccessRequest<'_>) -> (Decision, Vec<Effect>, Option<RateStanding>) {
        let mut fx = Vec::new();
        let (scopes, expires_at) = match self.check_key(req, &mut fx) {
            Ok(live) => live,
            Err(refused) => return (refused, fx, None),
        };
        let l2 = self.check_l2(req, &mut fx);
        if let Some(retry_after_s) = l2.refused {
            return (Decision::RateLimited { retry_after_s }, fx, Some(l2.standing));
        }
        let decision = self.admit(req, scopes, expires_at, &mut fx);
        (decision, fx, Some(l2.standing))
    }

    /// A wrong secret on one of this org's prefixes: counted, and fed to the
    /// burst alert rule. Bounded work whoever sends it: memory only, plus at
    /// most one audit row per prefix and minute (the first failure of the
    /// window; the rest are its count), one alert write a minute, and the
    /// final count of a window that ended.
    pub fn record_auth_failure(&mut self, prefix: KeyPrefix, now_ms: i64) -> Vec<Effect> {
        let mut fx = Vec::new();
        self.audit_failure(prefix, AuthFailure::WrongHash, now_ms, &mut fx);
        self.observe(AlertKind::AuthFailureBurst, prefix, now_ms, &mut fx);
        fx
    }

    /// The final counts of auth-failure windows that have ended by `now_ms`
    /// (at most [`COUNTS_PER_RUN`]; the alarm asks again while
    /// [`Gate::counts_due_at`] says so).
    pub fn due_counts(&mut self, now_ms: i64) -> Vec<AuditCount> {
        self.failures.close_due(now_ms);
        self.failures.take_closed(COUNTS_PER_RUN).into_iter().map(failure_count).collect()
    }

    /// Puts back counts that could not be stored.
    pub fn requeue_counts(&mut self, counts: Vec<AuditCount>) {
        let closed = counts.into_iter().filter_map(|c| {
            let (prefix, reason) = (c.event.prefix?, c.event.reason?);
            Some(Closed { key: (prefix, reason), tag: (), first_at: c.first_at, last_at: c.last_at, count: c.count })
        });
        self.failures.requeue(closed.collect());
    }

    /// When an auth-failure count is due to be stored next, if any.
    pub fn counts_due_at(&self, now_ms: i64) -> Option<i64> {
        self.failures.next_due(now_ms)
    }

    /// One auth failure into the tally: the first of its window is written
    /// now; the second schedules the alarm for the window's end; a window of
    /// the same key that ended is stored with its final count.
    fn audit_failure(&mut self, prefix: KeyPrefix, reason: AuthFailure, now_ms: i64, fx: &mut Vec<Effect>) {
        let key = (prefix, reason.reason());
        if self.failures.note(key, now_ms) {
            fx.push(Effect::Audit(auth_failure(prefix, reason)));
            // One stored count per call at most; any more wait for the alarm.
            let ended = self.failures.take_closed(1);
            fx.extend(ended.into_iter().map(|c| Effect::AuditCount(failure_count(c))));
            if self.failures.next_due(now_ms) == Some(now_ms) {
                fx.push(Effect::Schedule { delay_ms: 0 });
            }
        } else if let Some(due) = self.failures.due_at_if_second(&key) {
            fx.push(Effect::Schedule { delay_ms: (due - now_ms).max(0) });
        }
    }

    /// Liveness and scope; on success the key's scopes and expiry.
    fn check_key(&mut self, req: &AccessRequest<'_>, fx: &mut Vec<Effect>) -> Result<(Scopes, Option<i64>), Decision> {
        let prefix = req.key.prefix;
        match self.keys.access(&prefix, req.key.scope, req.now_ms) {
            Access::Denied(reason) => {
                self.audit_failure(prefix, reason, req.now_ms, fx);
                if matches!(reason, AuthFailure::Revoked | AuthFailure::Expired) {
                    self.observe(AlertKind::DeadKeyUsed, prefix, req.now_ms, fx);
                }
                Err(Decision::Denied(reason))
            }
            Access::MissingScope(s) => {
                let event = AuditEvent::new(AuditAction::AuthForbidden, Some(prefix)).with_reason(s.as_str());
                fx.push(Effect::Audit(event));
                Err(Decision::MissingScope(s))
            }
            Access::Granted => {
                let state = self.keys.get(&prefix).map(|k| (k.state.scopes, k.state.expires_at));
                state.ok_or(Decision::Denied(AuthFailure::UnknownPrefix))
            }
        }
    }

    /// Counts the request against the key's L2 budget.
    fn check_l2(&mut self, req: &AccessRequest<'_>, fx: &mut Vec<Effect>) -> L2Answer {
        let answer = match req.l2 {
            L2Check::InMemory => self.count_in_memory(req.key.prefix, req.now_ms, fx),
            L2Check::External { allowed, remaining, limit, window_s } => L2Answer {
                standing: RateStanding { limit, remaining, reset_s: u64::from(!allowed), window_s },
                refused: (!allowed).then_some(1),
            },
        };
        if answer.refused.is_some() {
            self.observe(AlertKind::L2LimitRepeated, req.key.prefix, req.now_ms, fx);
            if self.l2_audit.admit(req.key.prefix, req.now_ms) {
                let event = AuditEvent::new(AuditAction::RateLimited, Some(req.key.prefix)).with_reason("l2");
                fx.push(Effect::Audit(event));
            }
        }
        answer
    }

    fn count_in_memory(&mut self, prefix: KeyPrefix, now_ms: i64, fx: &mut Vec<Effect>) -> L2Answer {
        let d = self.limiter.check(&prefix, now_ms);
        let standing = RateStanding {
            limit: d.limit,
            remaining: d.remaining,
            reset_s: ceil_s(d.reset_ms),
            window_s: ceil_s(self.limiter.period_ms()),
        };
        if !d.allowed {
            return L2Answer { standing, refused: Some(d.retry_after_s()) };
        }
        let unsaved = self.limiter.unsaved_admissions();
        if unsaved >= CHECKPOINT_EVERY {
            fx.push(Effect::Checkpoint);
        } else if unsaved == 1 {
            fx.push(Effect::Schedule { delay_ms: CHECKPOINT_DELAY_MS });
        }
        L2Answer { standing, refused: None }
    }

    /// After L2 admitted the request: the origin check, then the re-hash and
    /// the use of the key.
    fn admit(
        &mut self,
        req: &AccessRequest<'_>,
        scopes: Scopes,
        expires_at: Option<i64>,
        fx: &mut Vec<Effect>,
    ) -> Decision {
        let prefix = req.key.prefix;
        if let Some(origin) = req.origin.filter(|o| !self.origin_allowed(o)) {
            let event =
                AuditEvent::new(AuditAction::CorsRefused, Some(prefix)).with_detail(json!({ "origin": origin }));
            fx.push(Effect::Audit(event));
            return Decision::OriginRefused;
        }
        if let Some(m) = req.key.rehash.as_ref().filter(|m| m.prefix == prefix) {
            fx.push(Effect::Rehash(m.clone()));
        }
        self.note_use(prefix, expires_at, req.now_ms, fx);
        Decision::Granted(Authorized { prefix, scopes })
    }

    /// Remembers the use (stored by the alarm, not per request) and raises
    /// `key_expiring` for a key close to its expiry.
    fn note_use(&mut self, prefix: KeyPrefix, expires_at: Option<i64>, now_ms: i64, fx: &mut Vec<Effect>) {
        if self.unsaved_use.is_empty() {
            fx.push(Effect::Schedule { delay_ms: FLUSH_DELAY_MS });
        }
        let at = self.unsaved_use.entry(prefix).or_insert(now_ms);
        *at = (*at).max(now_ms);
        if self.alerts.expiring_soon(expires_at, now_ms) {
            self.observe(AlertKind::KeyExpiring, prefix, now_ms, fx);
        }
    }

    /// Feeds the alert rules; an alert effect when they say to write.
    fn observe(&mut self, kind: AlertKind, prefix: KeyPrefix, now_ms: i64, fx: &mut Vec<Effect>) {
        if let Some(write) = self.alerts.observe(kind, prefix.as_str(), now_ms) {
            fx.push(Effect::Alert(write));
        }
    }
}

fn auth_failure(prefix: KeyPrefix, reason: AuthFailure) -> AuditEvent {
    AuditEvent::new(AuditAction::AuthFailure, Some(prefix)).with_reason(reason.reason())
}

fn failure_count(c: Closed<(KeyPrefix, &'static str)>) -> AuditCount {
    let (prefix, reason) = c.key;
    let event = AuditEvent::new(AuditAction::AuthFailure, Some(prefix)).with_reason(reason);
    AuditCount { event, first_at: c.first_at, last_at: c.last_at, count: c.count }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::KeyStatus;
    use crate::keys::KeyRecord;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000;
    const DAY: i64 = 86_400_000;
    const SITE: &str = "https://app.example.com";

    fn prefix(n: usize) -> KeyPrefix {
        KeyPrefix::parse(&format!("K{n:07}")).unwrap()
    }

    fn record(n: usize, scopes: &[Scope], expires_at: Option<i64>) -> KeyRecord {
        KeyRecord::new_active(prefix(n), format!("key {n}"), scopes.iter().copied().collect(), expires_at, NOW - DAY)
    }

    fn gate(records: impl IntoIterator<Item = KeyRecord>, limit: u32) -> Gate {
        let limiter = RateLimiter::new(limit, 60_000).unwrap();
        Gate::new(KeyRing::new(records), vec![SITE.into()], limiter, AlertRules::default())
    }

    fn verified(n: usize, scope: Scope) -> VerifiedKey {
        VerifiedKey { prefix: prefix(n), scope, rehash: None }
    }

    fn ask<'a>(key: &'a VerifiedKey, origin: Option<&'a str>, now_ms: i64) -> AccessRequest<'a> {
        AccessRequest { key, origin, now_ms, l2: L2Check::InMemory }
    }

    fn audits(fx: &[Effect]) -> Vec<&AuditEvent> {
        fx.iter().filter_map(|e| if let Effect::Audit(a) = e { Some(a) } else { None }).collect()
    }

    fn alerts(fx: &[Effect]) -> Vec<AlertKind> {
        fx.iter().filter_map(|e| if let Effect::Alert(a) = e { Some(a.kind) } else { None }).collect()
    }

    #[test]
    fn live_scoped_key_is_granted_with_a_flush_scheduled() {
        let mut g = gate([record(1, &[Scope::Read], None)], 10);
        let key = verified(1, Scope::Read);
        let (d, fx, rate) = g.decide(&ask(&key, Some(SITE), NOW));
        let auth = d.into_result().unwrap();
        assert_eq!((auth.prefix(), auth.scopes()), (prefix(1), [Scope::Read].into_iter().collect()));
        assert_eq!(
            fx,
            vec![Effect::Schedule { delay_ms: CHECKPOINT_DELAY_MS }, Effect::Schedule { delay_ms: FLUSH_DELAY_MS }]
        );
        assert_eq!(rate, Some(RateStanding { limit: 10, remaining: 9, reset_s: 0, window_s: 60 }));
        assert_eq!(g.unsaved_use.get(&prefix(1)), Some(&NOW));
        let (_, fx, _) = g.decide(&ask(&key, None, NOW + 1));
        assert!(fx.is_empty(), "{fx:?}");
    }

    #[test]
    fn revoked_key_is_denied_and_audited() {
        let mut revoked = record(1, &[Scope::Read], None);
        revoked.state.status = KeyStatus::Revoked;
        let mut g = gate([revoked], 10);
        let (d, fx, rate) = g.decide(&ask(&verified(1, Scope::Read), None, NOW));
        assert_eq!(d, Decision::Denied(AuthFailure::Revoked));
        assert_eq!(rate, None);
        assert!(
            matches!(&fx[0], Effect::Audit(a) if a.action == AuditAction::AuthFailure && a.reason == Some("revoked"))
        );
        assert_eq!(alerts(&fx), vec![AlertKind::DeadKeyUsed]);
        assert_eq!(fx.len(), 2);
        assert!(g.unsaved_use.is_empty() && g.limiter.is_empty(), "a dead key is neither counted nor noted");
        assert_eq!(d.into_result(), Err(Refusal::Denied { reason: AuthFailure::Revoked }));
    }

    #[test]
    fn expired_key_is_denied_and_audited() {
        let mut g = gate([record(1, &[Scope::Read], Some(NOW))], 10);
        let (d, fx, _) = g.decide(&ask(&verified(1, Scope::Read), None, NOW));
        assert_eq!(d, Decision::Denied(AuthFailure::Expired));
        assert_eq!(audits(&fx)[0].reason, Some("expired"));
        assert_eq!(alerts(&fx), vec![AlertKind::DeadKeyUsed]);
    }

    #[test]
    fn unknown_prefix_is_denied_without_an_alert() {
        let mut g = gate([], 10);
        let (d, fx, _) = g.decide(&ask(&verified(7, Scope::Read), None, NOW));
        assert_eq!(d, Decision::Denied(AuthFailure::UnknownPrefix));
        assert_eq!(audits(&fx)[0].reason, Some("unknown_prefix"));
        assert_eq!(fx.len(), 1);
    }

    #[test]
    fn missing_scope_is_forbidden_and_audited_with_the_scope() {
        let mut g = gate([record(1, &[Scope::Read], None)], 10);
        let (d, fx, rate) = g.decide(&ask(&verified(1, Scope::Admin), None, NOW));
        assert_eq!(d, Decision::MissingScope(Scope::Admin));
        assert_eq!(rate, None);
        assert_eq!(
            fx,
            vec![Effect::Audit(AuditEvent::new(AuditAction::AuthForbidden, Some(prefix(1))).with_reason("admin"))]
        );
        let error = ApiError::Forbidden { message: "this API key lacks the 'admin' scope".into() };
        assert_eq!(d.into_result(), Err(Refusal::Failed { error }));
    }

    #[test]
    fn l2_denials_audit_once_per_minute() {
        let mut g = gate([record(1, &[Scope::Read], None)], 1);
        let key = verified(1, Scope::Read);
        assert!(g.decide(&ask(&key, None, NOW)).0.is_granted());
        let mut rows = 0;
        for t in 1..=120 {
            let (d, fx, rate) = g.decide(&ask(&key, None, NOW + t * 1_000 - 500));
            if t < 60 {
                assert!(matches!(d, Decision::RateLimited { retry_after_s } if retry_after_s >= 1), "{d:?}");
                assert!(rate.is_some_and(|r| r.remaining == 0));
                rows += audits(&fx).len();
            }
        }
        assert_eq!(rows, 1, "one rate_limited row within the first minute");
        let mut g = gate([record(1, &[Scope::Read], None)], 1);
        g.decide(&ask(&key, None, NOW));
        let (_, first, _) = g.decide(&ask(&key, None, NOW + 1));
        let (_, later, _) = g.decide(&ask(&key, None, NOW + 1 + L2_AUDIT_EVERY_MS - 1));
        let (_, next, _) = g.decide(&ask(&key, None, NOW + 1 + L2_AUDIT_EVERY_MS));
        assert_eq!((audits(&first).len(), audits(&later).len()), (1, 0));
        let row = AuditEvent::new(AuditAction::RateLimited, Some(prefix(1))).with_reason("l2");
        assert_eq!(audits(&next), vec![&row]);
    }

    #[test]
    fn repeated_l2_denials_raise_an_alert_before_the_audit() {
        let mut g = gate([record(1, &[Scope::Read], None)], 1);
        let key = verified(1, Scope::Read);
        g.decide(&ask(&key, None, NOW));
        let mut kinds = Vec::new();
        for t in 1..=3 {
            let (_, fx, _) = g.decide(&ask(&key, None, NOW + t));
            kinds.extend(alerts(&fx));
            if t == 1 {
                assert!(matches!(fx[..], [Effect::Audit(_)]), "{fx:?}");
            }
            if t == 3 {
                assert!(matches!(fx[..], [Effect::Alert(_)]), "throttled audit, alert only: {fx:?}");
            }
        }
        assert_eq!(kinds, vec![AlertKind::L2LimitRepeated]);
    }

    #[test]
    fn origin_outside_list_is_refused_after_l2_counts() {
        let mut g = gate([record(1, &[Scope::Read], None)], 10);
        let key = verified(1, Scope::Read);
        let (d, fx, rate) = g.decide(&ask(&key, Some("https://evil.example"), NOW));
        assert_eq!(d, Decision::OriginRefused);
        assert_eq!(rate.map(|r| r.remaining), Some(9), "the refused request was counted");
        let row = AuditEvent::new(AuditAction::CorsRefused, Some(prefix(1)))
            .with_detail(json!({ "origin": "https://evil.example" }));
        assert_eq!(fx, vec![Effect::Schedule { delay_ms: CHECKPOINT_DELAY_MS }, Effect::Audit(row)]);
        assert!(g.unsaved_use.is_empty(), "a refused request is not a use");
        let error = ApiError::Forbidden { message: ORIGIN_REFUSED_MESSAGE.into() };
        assert_eq!(d.into_result(), Err(Refusal::Failed { error }));
        assert!(g.origin_allowed(SITE) && !g.origin_allowed("https://app.example.com/"));
    }

    #[test]
    fn checkpoint_is_due_every_200_unsaved_admissions() {
        let mut g = gate([record(1, &[Scope::Ingest], None)], 1_000);
        let key = verified(1, Scope::Ingest);
        let mut checkpoints = Vec::new();
        for i in 0..CHECKPOINT_EVERY as i64 {
            let (_, fx, _) = g.decide(&ask(&key, None, NOW + i));
            if fx.contains(&Effect::Checkpoint) {
                checkpoints.push(i + 1);
            }
        }
        assert_eq!(checkpoints, vec![CHECKPOINT_EVERY as i64]);
    }

    #[test]
    fn rehash_is_an_effect_only_when_granted() {
        let material = KeyMaterial { prefix: prefix(1), hash: "ab".repeat(32), pepper_version: 2 };
        let key = VerifiedKey { rehash: Some(material.clone()), ..verified(1, Scope::Read) };
        let mut g = gate([record(1, &[Scope::Read], None)], 10);
        let (_, fx, _) = g.decide(&ask(&key, None, NOW));
        assert!(fx.contains(&Effect::Rehash(material.clone())));
        let (_, fx, _) = g.decide(&ask(&key, Some("https://other.example"), NOW));
        assert!(!fx.iter().any(|e| matches!(e, Effect::Rehash(_))));
        let other = VerifiedKey { rehash: Some(KeyMaterial { prefix: prefix(2), ..material }), ..key };
        let (_, fx, _) = g.decide(&ask(&other, None, NOW));
        assert!(!fx.iter().any(|e| matches!(e, Effect::Rehash(_))), "material for another prefix is ignored");
    }

    #[test]
    fn key_close_to_expiry_raises_key_expiring_once() {
        let mut g = gate([record(1, &[Scope::Read], Some(NOW + 3 * DAY))], 10);
        let key = verified(1, Scope::Read);
        let (_, fx, _) = g.decide(&ask(&key, None, NOW));
        assert_eq!(alerts(&fx), vec![AlertKind::KeyExpiring]);
        let (_, fx, _) = g.decide(&ask(&key, None, NOW + 1));
        assert!(alerts(&fx).is_empty());
    }

    #[test]
    fn external_l2_answer_is_used_as_is() {
        let mut g = gate([record(1, &[Scope::Read], None)], 10);
        let key = verified(1, Scope::Read);
        let l2 = L2Check::External { allowed: false, remaining: 0, limit: 5, window_s: 60 };
        let (d, fx, rate) = g.decide(&AccessRequest { l2, ..ask(&key, None, NOW) });
        assert_eq!(d, Decision::RateLimited { retry_after_s: 1 });
        assert_eq!(rate, Some(RateStanding { limit: 5, remaining: 0, reset_s: 1, window_s: 60 }));
        assert_eq!(audits(&fx).len(), 1);
        let l2 = L2Check::External { allowed: true, remaining: 4, limit: 5, window_s: 60 };
        let (d, fx, rate) = g.decide(&AccessRequest { l2, ..ask(&key, None, NOW) });
        assert!(d.is_granted() && g.limiter.is_empty());
        assert_eq!(rate.map(|r| r.reset_s), Some(0));
        assert_eq!(fx, vec![Effect::Schedule { delay_ms: FLUSH_DELAY_MS }]);
    }

    #[test]
    fn wrong_secret_is_audited_once_a_minute_and_bursts_alert() {
        let mut g = gate([record(1, &[Scope::Read], None)], 10);
        let row = AuditEvent::new(AuditAction::AuthFailure, Some(prefix(1))).with_reason("wrong_hash");
        assert_eq!(g.record_auth_failure(prefix(1), NOW), vec![Effect::Audit(row.clone())]);
        let due = AUTH_FAILURE_WINDOW_MS - 1;
        assert_eq!(g.record_auth_failure(prefix(1), NOW + 1), vec![Effect::Schedule { delay_ms: due }]);
        for i in 2..4 {
            assert_eq!(g.record_auth_failure(prefix(1), NOW + i), vec![], "counted, not written");
        }
        let fx = g.record_auth_failure(prefix(1), NOW + 4);
        assert_eq!(alerts(&fx), vec![AlertKind::AuthFailureBurst]);
        assert!(audits(&fx).is_empty());
    }

    fn counts(fx: &[Effect]) -> Vec<&AuditCount> {
        fx.iter().filter_map(|e| if let Effect::AuditCount(c) = e { Some(c) } else { None }).collect()
    }

    // claim: threat.failed-login-writes
    #[test]
    fn wrong_secret_flood_is_one_row_per_minute_with_its_count() {
        let mut g = gate([record(1, &[Scope::Read], None)], 10);
        let (mut rows, mut effects) = (0, 0);
        // 2,000 failures over 100 s: two windows, two rows.
        for i in 0..2_000 {
            let fx = g.record_auth_failure(prefix(1), NOW + i * 50);
            rows += audits(&fx).len();
            effects += fx.len();
            if i == 1_200 {
                let row = AuditEvent::new(AuditAction::AuthFailure, Some(prefix(1))).with_reason("wrong_hash");
                let last = NOW + 1_199 * 50;
                assert_eq!(counts(&fx), vec![&AuditCount { event: row, first_at: NOW, last_at: last, count: 1_200 }]);
            }
        }
        assert_eq!(rows, 2);
        assert!(effects <= 10, "bounded work: {effects} effects for 2,000 failures");
        assert_eq!(g.counts_due_at(NOW), Some(NOW + 1_200 * 50 + AUTH_FAILURE_WINDOW_MS));
        assert!(g.due_counts(NOW + 1_200 * 50 + AUTH_FAILURE_WINDOW_MS - 1).is_empty());
        let last = g.due_counts(NOW + 1_200 * 50 + AUTH_FAILURE_WINDOW_MS);
        assert_eq!(last.iter().map(|c| c.count).collect::<Vec<_>>(), vec![800]);
        assert_eq!(g.counts_due_at(NOW + 200_000), None);
        g.requeue_counts(last);
        assert_eq!(g.counts_due_at(NOW + 200_000), Some(NOW + 200_000), "a failed store is retried");
        assert_eq!(g.due_counts(NOW + 200_000).len(), 1);
    }

    #[test]
    fn dead_key_failures_share_the_tally_per_reason() {
        let mut revoked = record(1, &[Scope::Read], None);
        revoked.state.status = KeyStatus::Revoked;
        let mut g = gate([revoked], 10);
        let key = verified(1, Scope::Read);
        let (_, first, _) = g.decide(&ask(&key, None, NOW));
        let (_, second, _) = g.decide(&ask(&key, None, NOW + 1));
        assert_eq!((audits(&first).len(), audits(&second).len()), (1, 0));
        let wrong = g.record_auth_failure(prefix(1), NOW + 2);
        assert_eq!(audits(&wrong).len(), 1, "another reason, another row");
    }

    /// A key for the property test: scopes as bits, revoked, expiry offset.
    fn key_spec() -> impl Strategy<Value = (u8, bool, Option<i64>)> {
        (0u8..8, prop::bool::weighted(0.2), proptest::option::weighted(0.4, -60_000i64..600_000))
    }

    fn spec_record(i: usize, (bits, revoked, expires_in): (u8, bool, Option<i64>)) -> KeyRecord {
        let scopes: Vec<Scope> =
            Scope::ALL.into_iter().enumerate().filter(|(b, _)| bits & (1 << b) != 0).map(|(_, s)| s).collect();
        let mut r = record(i, &scopes, expires_in.map(|e| NOW + e));
        if revoked {
            r.state.status = KeyStatus::Revoked;
        }
        r
    }

    /// A request: key index (past the ring: unknown), scope, time step, origin choice.
    fn request_spec() -> impl Strategy<Value = (usize, usize, i64, u8)> {
        (0usize..7, 0usize..3, 0i64..20_000, 0u8..3)
    }

    proptest! {
        /// No dead, unknown or unscoped key is ever granted; every refusal is
        /// audited exactly once, except L2 denials inside the key's audit
        /// minute and auth failures inside their (prefix, reason) window
        /// (counted on that window's row); a grant is never audited.
        #[test]
        fn decisions_are_safe_and_refusals_audited(
            keys in proptest::collection::vec(key_spec(), 1..6),
            requests in proptest::collection::vec(request_spec(), 1..80),
        ) {
            let mut g = gate(keys.iter().enumerate().map(|(i, spec)| spec_record(i, *spec)), 3);
            let mut last_l2_audit: HashMap<KeyPrefix, i64> = HashMap::new();
            let mut last_failure_row: HashMap<(KeyPrefix, &'static str), i64> = HashMap::new();
            let mut now = NOW;
            for (k, s, step, o) in requests {
                now += step;
                let key = verified(k, Scope::ALL[s]);
                let origin = [None, Some(SITE), Some("https://evil.example")][usize::from(o)];
                let before = g.keys.get(&key.prefix).cloned();
                let (d, fx, _) = g.decide(&ask(&key, origin, now));
                let rows = audits(&fx).len();
                match d {
                    Decision::Granted(_) => {
                        let r = before.expect("granted an unknown key");
                        prop_assert!(r.state.status == KeyStatus::Active);
                        prop_assert!(r.state.expires_at.is_none_or(|e| now < e));
                        prop_assert!(r.state.scopes.contains(key.scope));
                        prop_assert_eq!(rows, 0);
                    }
                    Decision::RateLimited { .. } => {
                        let due = last_l2_audit.get(&key.prefix).is_none_or(|t| now - t >= L2_AUDIT_EVERY_MS);
                        prop_assert_eq!(rows, usize::from(due));
                        if due { last_l2_audit.insert(key.prefix, now); }
                    }
                    Decision::Denied(reason) => {
                        let k = (key.prefix, reason.reason());
                        let due = last_failure_row.get(&k).is_none_or(|t| now - t >= AUTH_FAILURE_WINDOW_MS);
                        prop_assert_eq!(rows, usize::from(due));
                        if due { last_failure_row.insert(k, now); }
                    }
                    _ => prop_assert_eq!(rows, 1),
                }
            }
        }
    }
}
