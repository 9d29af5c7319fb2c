//! Alert rules: which observed events are worth a human's attention, and how
//! often they are written (deduplicated per cause and key, throttled so a
//! flood of events is a few D1 writes, not one per event).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// An alert as `GET /v1/alerts` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertView {
    pub id: String,
    pub kind: String,
    pub prefix: Option<String>,
    pub state: String,
    pub first_seen: String,
    pub last_seen: String,
    pub count: i64,
    /// When the alert was resolved (by an admin or by itself); `None` while open.
    #[serde(default)]
    pub resolved_at: Option<String>,
}

/// An alert's state. Stored and shown as `open` or `resolved`; `closed` is
/// accepted as a filter value meaning `resolved` (its earlier name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Open,
    Resolved,
}

impl AlertState {
    /// Storage and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Open => "open",
            AlertState::Resolved => "resolved",
        }
    }

    /// Parses a filter value (`closed` is an alias of `resolved`).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(AlertState::Open),
            "resolved" | "closed" => Some(AlertState::Resolved),
            _ => None,
        }
    }
}

/// Kinds that resolve by themselves once no new event came for the quiet
/// time: bursts and repeated uses, which end when the traffic stops.
pub const RESOLVE_WHEN_QUIET: [AlertKind; 3] =
    [AlertKind::L2LimitRepeated, AlertKind::AuthFailureBurst, AlertKind::DeadKeyUsed];

/// Kinds about one key that resolve when that key is rotated or revoked:
/// the expiry they warn about no longer matters.
pub const RESOLVE_WHEN_KEY_REPLACED: [AlertKind; 1] = [AlertKind::KeyExpiring];

/// Whether an open alert of `kind` last seen at `last_seen_ms` has been quiet
/// long enough at `now_ms` to resolve by itself.
pub fn quiet_enough(kind: AlertKind, last_seen_ms: i64, now_ms: i64, quiet_ms: i64) -> bool {
    RESOLVE_WHEN_QUIET.contains(&kind) && now_ms.saturating_sub(last_seen_ms) >= quiet_ms
}

/// The alert id of a path, canonical (`alr_` + a sortable id), or `None` (404).
pub fn parse_alert_id(raw: &str) -> Option<String> {
    let body = raw.strip_prefix("alr_")?;
    let tag = crate::ids::RequestId::TAG;
    crate::ids::RequestId::parse(&format!("{tag}{body}")).map(|r| r.as_str().replacen(tag, "alr_", 1))
}

/// The causes an alert can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AlertKind {
    /// A key keeps hitting its L2 limit.
    L2LimitRepeated,
    /// A burst of wrong-secret attempts on one of the org's prefixes.
    AuthFailureBurst,
    /// A revoked or expired key is still being used.
    DeadKeyUsed,
    /// A key in use expires within 7 days.
    KeyExpiring,
    /// The org's stored interactions reached 80 % of a storage quota.
    QuotaWarning,
    /// The org's storage quota is used up, or a write was refused for it.
    QuotaReached,
    /// A webhook endpoint did not acknowledge a delivery through its retries.
    WebhookFailing,
}

impl AlertKind {
    /// Storage and API name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::L2LimitRepeated => "l2_limit_repeated",
            AlertKind::AuthFailureBurst => "auth_failure_burst",
            AlertKind::DeadKeyUsed => "dead_key_used",
            AlertKind::KeyExpiring => "key_expiring",
            AlertKind::QuotaWarning => "quota_80",
            AlertKind::QuotaReached => "quota_reached",
            AlertKind::WebhookFailing => "webhook_failing",
        }
    }

    /// Every kind.
    pub const ALL: [AlertKind; 7] = [
        AlertKind::L2LimitRepeated,
        AlertKind::AuthFailureBurst,
        AlertKind::DeadKeyUsed,
        AlertKind::KeyExpiring,
        AlertKind::QuotaWarning,
        AlertKind::QuotaReached,
        AlertKind::WebhookFailing,
    ];

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Thresholds and throttling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertRules {
    /// L2 denials of one key within `window_ms` before an alert opens.
    pub l2_denials: u32,
    /// Wrong-secret attempts on one prefix within `window_ms` before an alert opens.
    pub auth_failures: u32,
    /// Counting window for the thresholds.
    pub window_ms: i64,
    /// A key expiring within this much time raises `key_expiring`.
    pub expiring_within_ms: i64,
    /// At most one write per alert within this interval; events in between
    /// are added to the count of the next write.
    pub write_interval_ms: i64,
}

impl Default for AlertRules {
    fn default() -> Self {
        Self {
            l2_denials: 3,
            auth_failures: 5,
            window_ms: 10 * 60 * 1000,
            expiring_within_ms: 7 * 24 * 3600 * 1000,
            write_interval_ms: 60 * 1000,
        }
    }
}

/// An alert write: open the alert or add `count` occurrences to the open one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertWrite {
    pub kind: AlertKind,
    pub prefix: String,
    pub at: i64,
    pub count: u32,
}

#[derive(Debug, Clone, Default)]
struct Counter {
    window_start: i64,
    in_window: u32,
    pending: u32,
    last_write: Option<i64>,
}

/// Tracks events per (cause, prefix) in memory.
#[derive(Debug, Default)]
pub struct AlertTracker {
    rules: AlertRules,
    counters: HashMap<(AlertKind, String), Counter>,
}

impl AlertTracker {
    /// A tracker with `rules`.
    pub fn new(rules: AlertRules) -> Self {
        Self { rules, counters: HashMap::new() }
    }

    /// The rules in force.
    pub fn rules(&self) -> AlertRules {
        self.rules
    }

    fn threshold(&self, kind: AlertKind) -> u32 {
        match kind {
            AlertKind::L2LimitRepeated => self.rules.l2_denials,
            AlertKind::AuthFailureBurst => self.rules.auth_failures,
            AlertKind::DeadKeyUsed
            | AlertKind::KeyExpiring
            | AlertKind::QuotaWarning
            | AlertKind::QuotaReached
            | AlertKind::WebhookFailing => 1,
        }
    }

    /// Records one event at `now_ms`; returns the write to make, if any.
    pub fn observe(&mut self, kind: AlertKind, prefix: &str, now_ms: i64) -> Option<AlertWrite> {
        let threshold = self.threshold(kind);
        let rules = self.rules;
        if self.counters.len() > 10_000 {
            self.evict(now_ms);
        }
        let c = self.counters.entry((kind, prefix.to_string())).or_default();
        if now_ms - c.window_start >= rules.window_ms {
            c.window_start = now_ms;
            c.in_window = 0;
        }
        c.in_window = c.in_window.saturating_add(1);
        c.pending = c.pending.saturating_add(1);
        let open = c.in_window >= threshold || c.last_write.is_some_and(|w| now_ms - w < rules.window_ms);
        let due = c.last_write.is_none_or(|w| now_ms - w >= rules.write_interval_ms);
        if open && due {
            let count = std::mem::take(&mut c.pending);
            c.last_write = Some(now_ms);
            return Some(AlertWrite { kind, prefix: prefix.to_string(), at: now_ms, count });
        }
        None
    }

    /// Whether a key expiring at `expires_at` should raise `key_expiring` now.
    pub fn expiring_soon(&self, expires_at: Option<i64>, now_ms: i64) -> bool {
        expires_at.is_some_and(|e| e > now_ms && e - now_ms <= self.rules.expiring_within_ms)
    }

    /// Forgets the counter of one cause and key (its alert was resolved): a
    /// recurrence is judged afresh and opens a new alert.
    pub fn forget(&mut self, kind: AlertKind, prefix: &str) {
        self.counters.remove(&(kind, prefix.to_string()));
    }

    /// Drops counters with nothing pending whose window has passed.
    pub fn evict(&mut self, now_ms: i64) -> usize {
        let before = self.counters.len();
        let window = self.rules.window_ms;
        self.counters
            .retain(|_, c| now_ms - c.window_start < window || c.last_write.is_some_and(|w| now_ms - w < window));
        before - self.counters.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> AlertTracker {
        AlertTracker::new(AlertRules::default())
    }

    // claim: owasp.api6
    #[test]
    fn threshold_opens_then_throttles() {
        let mut t = tracker();
        assert_eq!(t.observe(AlertKind::AuthFailureBurst, "P", 0), None);
        for i in 1..4 {
            assert_eq!(t.observe(AlertKind::AuthFailureBurst, "P", i), None);
        }
        let w = t.observe(AlertKind::AuthFailureBurst, "P", 4).unwrap();
        assert_eq!((w.count, w.at), (5, 4));
        // Within the write interval: counted, not written.
        assert_eq!(t.observe(AlertKind::AuthFailureBurst, "P", 1000), None);
        assert_eq!(t.observe(AlertKind::AuthFailureBurst, "P", 2000), None);
        let w = t.observe(AlertKind::AuthFailureBurst, "P", 61_000).unwrap();
        assert_eq!(w.count, 3);
    }

    #[test]
    fn below_threshold_in_window_never_alerts() {
        let mut t = tracker();
        for i in 0..20 {
            // 4 per window, windows apart.
            let base = i / 4 * 700_000;
            assert_eq!(t.observe(AlertKind::AuthFailureBurst, "P", base + i), None);
        }
    }

    #[test]
    fn dead_key_alerts_at_once_and_prefixes_are_independent() {
        let mut t = tracker();
        assert!(t.observe(AlertKind::DeadKeyUsed, "A", 0).is_some());
        assert!(t.observe(AlertKind::DeadKeyUsed, "B", 0).is_some());
        assert!(t.observe(AlertKind::DeadKeyUsed, "A", 10).is_none());
    }

    #[test]
    fn quota_alerts_at_once_then_throttled() {
        let mut t = tracker();
        let w = t.observe(AlertKind::QuotaWarning, "", 0).unwrap();
        assert_eq!((w.kind.as_str(), w.prefix.as_str(), w.count), ("quota_80", "", 1));
        assert!(t.observe(AlertKind::QuotaReached, "", 5).is_some());
        assert!(t.observe(AlertKind::QuotaReached, "", 10).is_none());
        assert_eq!(t.observe(AlertKind::QuotaReached, "", 60_005).map(|w| w.count), Some(2));
        assert_eq!(AlertKind::QuotaReached.as_str(), "quota_reached");
    }

    #[test]
    fn expiring_window() {
        let t = tracker();
        let day = 24 * 3600 * 1000;
        assert!(t.expiring_soon(Some(7 * day), 0));
        assert!(!t.expiring_soon(Some(7 * day + 1), 0));
        assert!(!t.expiring_soon(Some(0), 0));
        assert!(!t.expiring_soon(None, 0));
    }

    #[test]
    fn a_resolved_cause_that_recurs_writes_again_at_once() {
        let mut t = tracker();
        assert!(t.observe(AlertKind::DeadKeyUsed, "A", 0).is_some());
        assert!(t.observe(AlertKind::DeadKeyUsed, "A", 10).is_none(), "throttled");
        t.forget(AlertKind::DeadKeyUsed, "A");
        assert_eq!(t.observe(AlertKind::DeadKeyUsed, "A", 20).map(|w| w.count), Some(1));
    }

    #[test]
    fn quiet_resolution_only_for_bursts_and_only_after_the_quiet_time() {
        assert!(quiet_enough(AlertKind::AuthFailureBurst, 0, 1000, 1000));
        assert!(!quiet_enough(AlertKind::AuthFailureBurst, 0, 999, 1000));
        assert!(quiet_enough(AlertKind::L2LimitRepeated, 0, 5000, 1000));
        for kind in
            [AlertKind::KeyExpiring, AlertKind::QuotaReached, AlertKind::QuotaWarning, AlertKind::WebhookFailing]
        {
            assert!(!quiet_enough(kind, 0, i64::MAX, 1000), "{kind:?}");
        }
    }

    #[test]
    fn states_and_kinds_parse() {
        assert_eq!(AlertState::parse("closed"), Some(AlertState::Resolved));
        assert_eq!(AlertState::parse("resolved").map(AlertState::as_str), Some("resolved"));
        assert_eq!(AlertState::parse("weird"), None);
        for k in AlertKind::ALL {
            assert_eq!(AlertKind::parse(k.as_str()), Some(k));
        }
        let id = crate::ids::RequestId::generate(5, &[1; 10]).as_str().replacen("req_", "alr_", 1);
        assert_eq!(parse_alert_id(&id.to_lowercase()), Some(id));
        assert_eq!(parse_alert_id("alr_x"), None);
        assert_eq!(parse_alert_id("int_01"), None);
    }

    #[test]
    fn eviction_keeps_recent() {
        let mut t = tracker();
        t.observe(AlertKind::L2LimitRepeated, "A", 0);
        t.observe(AlertKind::L2LimitRepeated, "B", 900_000);
        assert_eq!(t.evict(1_000_000), 1);
    }
}
