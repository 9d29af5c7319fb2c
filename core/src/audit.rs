//! The audit trail's vocabulary: every action an audit row can record, the
//! event an adapter writes, the row as `GET /v1/audit-log` lists it, the
//! throttle that keeps repeated denials from turning into one write each, and
//! the tally that folds repeated auth failures into one counted row a minute.

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
    /// An erasure of one actor's interactions started.
    #[serde(rename = "erasure.started")]
    ErasureStarted,
    /// An erasure finished: no interaction of the actor was left.
    #[serde(rename = "erasure.completed")]
    ErasureCompleted,
    /// The operator command created an org.
    #[serde(rename = "org.created")]
    OrgCreated,
    /// The operator command set an org's storage quota.
    #[serde(rename = "org.quota_set")]
    QuotaSet,
    /// An admin resolved an alert.
    #[serde(rename = "alert.resolved")]
    AlertResolved,
    #[serde(rename = "webhook.created")]
    WebhookCreated,
    #[serde(rename = "webhook.deleted")]
    WebhookDeleted,
    /// A webhook's signing secret was rotated (the previous one signs for an overlap).
    #[serde(rename = "webhook.secret_rotated")]
    WebhookSecretRotated,
    /// The org's data moved to another shard (written on the new one).
    #[serde(rename = "org.moved")]
    OrgMoved,
    /// The operator command opened or closed a shard to new orgs (org-less).
    #[serde(rename = "shard.state_set")]
    ShardStateSet,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [AuditAction; 19] = [
        AuditAction::AuthFailure,
        AuditAction::AuthForbidden,
        AuditAction::RateLimited,
        AuditAction::CorsRefused,
        AuditAction::OrgUpdated,
        AuditAction::InteractionDeleted,
        AuditAction::KeyCreated,
        AuditAction::KeyRevoked,
        AuditAction::KeyRotated,
        AuditAction::ErasureStarted,
        AuditAction::ErasureCompleted,
        AuditAction::OrgCreated,
        AuditAction::QuotaSet,
        AuditAction::AlertResolved,
        AuditAction::WebhookCreated,
        AuditAction::WebhookDeleted,
        AuditAction::WebhookSecretRotated,
        AuditAction::OrgMoved,
        AuditAction::ShardStateSet,
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
            AuditAction::ErasureStarted => "erasure.started",
            AuditAction::ErasureCompleted => "erasure.completed",
            AuditAction::OrgCreated => "org.created",
            AuditAction::QuotaSet => "org.quota_set",
            AuditAction::AlertResolved => "alert.resolved",
            AuditAction::WebhookCreated => "webhook.created",
            AuditAction::WebhookDeleted => "webhook.deleted",
            AuditAction::WebhookSecretRotated => "webhook.secret_rotated",
            AuditAction::OrgMoved => "org.moved",
            AuditAction::ShardStateSet => "shard.state_set",
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

/// An audit row as `GET /v1/audit-log` lists it. An aggregated row (auth
/// failures) stands for `count` events between `first_at` and `last_at`; its
/// `request_id` and `ip` are those of the first. Every other row has count 1.
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
    pub count: i64,
    pub first_at: String,
    pub last_at: String,
}

/// The final count of an aggregated row: the row written at `first_at` for
/// `event` stands for `count` events, the last at `last_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditCount {
    pub event: AuditEvent,
    pub first_at: i64,
    pub last_at: i64,
    pub count: u64,
}

/// One window of a [`Tally`] key; `tag` is what the first event brought.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Window<T> {
    tag: T,
    first_at: i64,
    last_at: i64,
    count: u64,
}

/// A window that ended with more events than its first row says; `tag` is
/// what its first event brought (e.g. the request id of the row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Closed<K, T = ()> {
    pub key: K,
    pub tag: T,
    pub first_at: i64,
    pub last_at: i64,
    pub count: u64,
}

/// Aggregates repeated events per key into one row per window: the first
/// event of a window is written at once (count 1); later ones in the window
/// are only counted in memory, and when the window has ended the final count
/// is handed out as a [`Closed`] (for the adapter to store on that row).
///
/// Memory is bounded: at most `capacity` open windows and `capacity` closed
/// ones waiting to be stored. A full map first closes its ended windows, then
/// closes every window early (their counts are stored as they stand and a
/// new window starts on the next event: an extra row, never a lost one).
/// Closed windows past the queue's bound are dropped (their rows keep the
/// last count stored), which only an adapter that never drains can reach.
#[derive(Debug, Clone)]
pub struct Tally<K, T = ()> {
    window_ms: i64,
    capacity: usize,
    open: HashMap<K, Window<T>>,
    closed: Vec<Closed<K, T>>,
}

impl<K: Eq + Hash + Clone, T: Default> Tally<K, T> {
    /// Counts one event for `key` at `now_ms` (see [`Tally::note_tagged`]).
    pub fn note(&mut self, key: K, now_ms: i64) -> bool {
        self.note_tagged(key, T::default(), now_ms)
    }
}

impl<K: Eq + Hash + Clone, T> Tally<K, T> {
    /// Windows of `window_ms`, at most `capacity` keys open.
    pub fn new(window_ms: i64, capacity: usize) -> Self {
        Self { window_ms, capacity: capacity.max(1), open: HashMap::new(), closed: Vec::new() }
    }

    /// Counts one event for `key` at `now_ms`. `true`: it opens a window
    /// (tagged `tag`), so write its row now; `false`: it was only counted.
    pub fn note_tagged(&mut self, key: K, tag: T, now_ms: i64) -> bool {
        if let Some(w) = self.open.get_mut(&key) {
            if now_ms - w.first_at < self.window_ms {
                w.count = w.count.saturating_add(1);
                w.last_at = w.last_at.max(now_ms);
                return false;
            }
            if let Some(ended) = self.open.remove(&key) {
                self.close(key.clone(), ended);
            }
        } else if self.open.len() >= self.capacity {
            self.close_due(now_ms);
            if self.open.len() >= self.capacity {
                let all: Vec<(K, Window<T>)> = self.open.drain().collect();
                for (k, w) in all {
                    self.close(k, w);
                }
            }
        }
        self.open.insert(key, Window { tag, first_at: now_ms, last_at: now_ms, count: 1 });
        true
    }

    /// The window of `key` holds its second event: the instant it ends (when
    /// its count is due), once per window.
    pub fn due_at_if_second(&self, key: &K) -> Option<i64> {
        self.open.get(key).filter(|w| w.count == 2).map(|w| w.first_at + self.window_ms)
    }

    /// Closes every window that has ended by `now_ms`.
    pub fn close_due(&mut self, now_ms: i64) {
        let window = self.window_ms;
        let ended: Vec<K> =
            self.open.iter().filter(|(_, w)| now_ms - w.first_at >= window).map(|(k, _)| k.clone()).collect();
        for k in ended {
            if let Some(w) = self.open.remove(&k) {
                self.close(k, w);
            }
        }
    }

    /// Takes up to `max` closed windows whose counts must be stored.
    pub fn take_closed(&mut self, max: usize) -> Vec<Closed<K, T>> {
        let n = self.closed.len().min(max);
        self.closed.drain(..n).collect()
    }

    /// Puts back closed windows whose counts could not be stored.
    pub fn requeue(&mut self, closed: Vec<Closed<K, T>>) {
        for c in closed {
            self.push_closed(c);
        }
    }

    /// When the next count is due: now if some wait, else the end of the
    /// earliest open window holding more than its first event.
    pub fn next_due(&self, now_ms: i64) -> Option<i64> {
        if !self.closed.is_empty() {
            return Some(now_ms);
        }
        self.open.values().filter(|w| w.count > 1).map(|w| w.first_at + self.window_ms).min()
    }

    /// Open windows now.
    pub fn len(&self) -> usize {
        self.open.len()
    }

    /// Whether no window is open and no count waits.
    pub fn is_empty(&self) -> bool {
        self.open.is_empty() && self.closed.is_empty()
    }

    /// A window with only its first event needs nothing more stored.
    fn close(&mut self, key: K, w: Window<T>) {
        if w.count > 1 {
            self.push_closed(Closed { key, tag: w.tag, first_at: w.first_at, last_at: w.last_at, count: w.count });
        }
    }

    fn push_closed(&mut self, c: Closed<K, T>) {
        if self.closed.len() < self.capacity {
            self.closed.push(c);
        }
    }
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

    #[test]
    fn tally_writes_the_first_event_and_counts_the_rest() {
        let mut t: Tally<&str> = Tally::new(60_000, 100);
        assert!(t.note("a", 1_000));
        assert_eq!(t.due_at_if_second(&"a"), None);
        assert!(!t.note("a", 2_000));
        assert_eq!(t.due_at_if_second(&"a"), Some(61_000));
        assert!(!t.note("a", 60_999));
        assert_eq!(t.due_at_if_second(&"a"), None, "due once per window");
        assert!(t.note("b", 3_000), "keys are apart");
        assert_eq!(t.next_due(10_000), Some(61_000));
        t.close_due(60_999);
        assert!(t.take_closed(10).is_empty(), "not ended yet");
        assert!(t.note("a", 61_000), "the next window writes a row");
        assert_eq!(t.take_closed(10), vec![Closed { key: "a", tag: (), first_at: 1_000, last_at: 60_999, count: 3 }]);
        t.close_due(200_000);
        assert!(t.take_closed(10).is_empty(), "windows of one event need no update");
        assert!(t.is_empty());
    }

    #[test]
    fn tally_keeps_the_tag_of_the_first_event() {
        let mut t: Tally<&str, &str> = Tally::new(1_000, 10);
        assert!(t.note_tagged("k", "req-1", 0));
        assert!(!t.note_tagged("k", "req-2", 5));
        assert!(t.note_tagged("k", "req-3", 1_000));
        let closed = t.take_closed(10);
        assert_eq!(closed, vec![Closed { key: "k", tag: "req-1", first_at: 0, last_at: 5, count: 2 }]);
    }

    #[test]
    fn tally_requeues_and_hands_out_in_bounded_batches() {
        let mut t: Tally<i32> = Tally::new(1_000, 100);
        for k in 0..5 {
            t.note(k, 0);
            t.note(k, 1);
        }
        t.close_due(1_000);
        let first = t.take_closed(2);
        assert_eq!(first.len(), 2);
        assert_eq!(t.next_due(1_000), Some(1_000));
        t.requeue(first);
        assert_eq!(t.take_closed(100).len(), 5);
        assert_eq!(t.next_due(1_000), None);
    }

    proptest! {
        // claim: threat.failed-login-writes
        /// Whatever the events: memory bounded, a second row for a key within
        /// its window only when the map was full, and every event in a row's
        /// count (first rows + stored counts + still open add up to the events).
        #[test]
        fn tally_accounts_for_every_event(events in proptest::collection::vec((0u8..60, 0i64..800), 1..600)) {
            let mut t: Tally<u8> = Tally::new(10_000, 16);
            let mut now = 0;
            let (mut rows, mut stored) = (0u64, 0u64);
            let mut last_row: HashMap<u8, i64> = HashMap::new();
            for (k, step) in &events {
                now += step;
                let full = t.len() >= 16 && !t.open.contains_key(k);
                if t.note(*k, now) {
                    rows += 1;
                    if full && t.len() == 1 {
                        // Every window was closed early: each key may start anew.
                        last_row.clear();
                    }
                    let early = last_row.get(k).is_some_and(|at| now - at < 10_000);
                    prop_assert!(!early, "early row for {} at {}", k, now);
                    last_row.insert(*k, now);
                }
                prop_assert!(t.len() <= 16);
                stored += t.take_closed(usize::MAX).iter().map(|c| c.count - 1).sum::<u64>();
            }
            let open: u64 = t.open.values().map(|w| w.count - 1).sum();
            prop_assert_eq!(rows + stored + open, events.len() as u64);
        }
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
