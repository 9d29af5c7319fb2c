//! The audit trail's vocabulary: every action an audit row can record, the
//! event an adapter writes, the row as `GET /v1/audit-log` lists it, and the
//! throttle that keeps repeated denials from turning into one write each.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::hash::Hash;

/// What an audit row records. The text is the stored `audit_log.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    /// A credential was refused (the reason says why).
    #[serde(rename = "auth.failure")]
    AuthFailure,
    /// A live key lacked the route's scope.
    #[serde(rename = "auth.forbidden")]
    AuthForbidden,
    /// L1 or L2 refused a request (reason `l1` / `l2`).
    #[serde(rename = "rate_limited")]
    RateLimited,
    /// An actual request's `Origin` is not in the org's list.
    #[serde(rename = "cors.refused")]
    CorsRefused,
    #[serde(rename = "org.updated")]
    OrgUpdated,
    #[serde(rename = "interaction.deleted")]
    InteractionDeleted,
    #[serde(rename = "key.created")]
    KeyCreated,
    #[serde(rename = "key.revoked")]
    KeyRevoked,
    #[serde(rename = "key.rotated")]
    KeyRotated,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [AuditAction; 9] = [
        AuditAction::AuthFailure,
        AuditAction::AuthForbidden,
        AuditAction::RateLimited,
        AuditAction::CorsRefused,
        AuditAction::OrgUpdated,
        AuditAction::InteractionDeleted,
        AuditAction::KeyCreated,
        AuditAction::KeyRevoked,
        AuditAction::KeyRotated,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::AuthFailure => "auth.failure",
            AuditAction::AuthForbidden => "auth.forbidden",
            AuditAction::RateLimited => "rate_limited",
            AuditAction::CorsRefused => "cors.refused",
            AuditAction::OrgUpdated => "org.updated",
            AuditAction::InteractionDeleted => "interaction.deleted",
            AuditAction::KeyCreated => "key.created",
            AuditAction::KeyRevoked => "key.revoked",
            AuditAction::KeyRotated => "key.rotated",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// One audit row to write: what happened, why, to which key. Who asked
/// (request id, client address) and when are added by the adapter that
/// writes it. `detail` never holds key material.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub action: AuditAction,
    pub reason: Option<&'static str>,
    pub prefix: Option<crate::KeyPrefix>,
    pub detail: Option<Value>,
}

impl AuditEvent {
    /// An event with neither reason nor detail.
    pub fn new(action: AuditAction, prefix: Option<crate::KeyPrefix>) -> Self {
        Self { action, reason: None, prefix, detail: None }
    }

    /// The same event with a reason.
    pub fn with_reason(mut self, reason: &'static str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// The same event with a detail object.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// An audit row as `GET /v1/audit-log` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditView {
    pub id: i64,
    pub at: String,
    pub action: String,
    pub reason: Option<String>,
    pub prefix: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    pub detail: Option<Value>,
}

/// At most one event per key and window: L1 denials per client, L2 denials
/// per key. Memory is bounded: past `capacity` keys, entries older than the
/// window are dropped, and if that is not enough the map starts over (which
/// can only let an extra row through, never lose a denial).
#[derive(Debug, Clone)]
pub struct Throttle<K> {
    window_ms: i64,
    capacity: usize,
    seen: HashMap<K, i64>,
}

impl<K: Eq + Hash> Throttle<K> {
    /// One event per key every `window_ms`, remembering at most `capacity` keys.
    pub fn new(window_ms: i64, capacity: usize) -> Self {
        Self { window_ms, capacity: capacity.max(1), seen: HashMap::new() }
    }

    /// Whether an event for `key` at `now_ms` should be written (and, if so,
    /// remembers it).
    pub fn admit(&mut self, key: K, now_ms: i64) -> bool {
        if self.seen.len() >= self.capacity {
            let window = self.window_ms;
            self.seen.retain(|_, t| now_ms - *t < window);
            if self.seen.len() >= self.capacity {
                self.seen.clear();
            }
        }
        match self.seen.get(&key) {
            Some(t) if now_ms - *t < self.window_ms => false,
            _ => {
                self.seen.insert(key, now_ms);
                true
            }
        }
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no key is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn actions_round_trip_and_are_distinct() {
        for a in AuditAction::ALL {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
            assert_eq!(serde_json::to_value(a).unwrap(), Value::from(a.as_str()));
        }
        let mut names: Vec<_> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), AuditAction::ALL.len());
    }

    #[test]
    fn throttle_admits_once_per_window() {
        let mut t = Throttle::new(60_000, 100);
        assert!(t.admit("a", 0));
        assert!(!t.admit("a", 59_999));
        assert!(t.admit("b", 1));
        assert!(t.admit("a", 60_000));
    }

    proptest! {
        /// Never more than `capacity` keys in memory, and never two admissions
        /// of one key closer than the window while the key is remembered.
        #[test]
        fn throttle_memory_is_bounded(keys in proptest::collection::vec(0u16..500, 1..2000)) {
            let mut t = Throttle::new(1_000, 64);
            for (i, k) in keys.iter().enumerate() {
                t.admit(*k, i as i64);
                prop_assert!(t.len() <= 64);
            }
        }
    }
}
