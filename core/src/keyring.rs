//! The org's API keys as one value: which key may act at a given instant, and
//! the rules for revoking, rotating and listing keys. The actor stores each
//! change in D1 and applies it here; nothing in this module does I/O.
//!
//! A key that has been rotated (its `replaced_by` is set) is a *predecessor*:
//! it keeps working for its grace period, but it may not create, revoke or
//! rotate keys, and it does not count as the other admin key that lets an
//! admin key be revoked. So rotating a leaked admin key contains it: the old
//! key cannot undo the rotation or revoke its successor.

use crate::auth::{Access, AuthFailure, KeyStatus};
use crate::error::ApiError;
use crate::key::KeyPrefix;
use crate::keys::{rotated_expiry, KeyRecord, KeyView};
use crate::scope::{Scope, Scopes};
use crate::timefmt::rfc3339;
use std::collections::HashMap;

/// Appended to a key's name to name its successor (never twice).
pub const ROTATED_SUFFIX: &str = " (rotated)";
/// Conflict message when the last live admin key would be revoked.
pub const LAST_LIVE_ADMIN_MESSAGE: &str =
    "this is the org's last active admin key; create or rotate to another admin key before revoking it";
/// Conflict message when a key that is not live would be rotated.
pub const NOT_LIVE_MESSAGE: &str = "only an active key can be rotated";
/// Conflict message when a key that has been rotated would be rotated again.
pub const ROTATED_ALREADY_MESSAGE: &str = "this key has been rotated already; rotate its successor";
/// Refusal message when a key in its rotation grace period would manage keys.
pub const PREDECESSOR_MESSAGE: &str = "a key in its rotation grace period cannot manage keys; use its successor";

/// Why a key management operation is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyRingError {
    /// No key of this org has the prefix.
    #[error("no such key")]
    NotFound,
    /// Revoking this key would leave the org without a live admin key.
    #[error("{LAST_LIVE_ADMIN_MESSAGE}")]
    LastLiveAdmin,
    /// Only a live key (active, not expired) can be rotated.
    #[error("{NOT_LIVE_MESSAGE}")]
    NotLive,
    /// The key has been rotated already: a second successor would copy its
    /// grace-shortened expiry and could stand in for the real successor.
    #[error("{ROTATED_ALREADY_MESSAGE}")]
    RotatedAlready,
    /// The caller has been rotated out: it may not create, revoke or rotate keys.
    #[error("{PREDECESSOR_MESSAGE}")]
    Predecessor,
}

impl From<KeyRingError> for ApiError {
    fn from(e: KeyRingError) -> Self {
        match e {
            KeyRingError::NotFound => ApiError::NotFound,
            KeyRingError::LastLiveAdmin | KeyRingError::NotLive | KeyRingError::RotatedAlready => {
                ApiError::Conflict { message: e.to_string() }
            }
            KeyRingError::Predecessor => ApiError::Forbidden { message: e.to_string() },
        }
    }
}

/// What revoking a key means now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Revocation {
    /// The key is revoked already: answer its view, write nothing.
    AlreadyRevoked(KeyView),
    /// Revoke it: this is its record before the change. Applying the
    /// revocation before the write, and re-inserting this record if the write
    /// fails, keeps two interleaved revocations from both passing the
    /// last-admin check.
    Revoke(KeyRecord),
}

/// A planned rotation: what the successor is and when the old key stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key being rotated out, as it is now.
    pub old: KeyRecord,
    /// Its new expiry: the end of the grace period, never past its own expiry.
    pub old_expiry: i64,
    /// The successor's name: the old name with [`ROTATED_SUFFIX`] once.
    pub successor_name: String,
    /// The successor's scopes (the old key's).
    pub scopes: Scopes,
    /// The successor's expiry (the old key's own, unshortened).
    pub expires_at: Option<i64>,
}

impl Rotation {
    /// The successor's record once stored under `prefix` at `now_ms`.
    pub fn successor(&self, prefix: KeyPrefix, now_ms: i64) -> KeyRecord {
        KeyRecord::new_active(prefix, self.successor_name.clone(), self.scopes, self.expires_at, now_ms)
    }

    /// The old key's record once replaced by `successor`.
    pub fn retired(&self, successor: KeyPrefix) -> KeyRecord {
        let mut record = self.old.clone();
        record.state.expires_at = Some(self.old_expiry);
        record.replaced_by = Some(successor.to_string());
        record
    }
}

/// The views a rotation answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotated {
    /// The successor.
    pub key: KeyView,
    /// The key rotated out, with its shortened expiry.
    pub previous: KeyView,
}

/// The successor name of a key named `name`.
fn successor_name(name: &str) -> String {
    format!("{}{ROTATED_SUFFIX}", name.trim_end_matches(ROTATED_SUFFIX))
}

fn is_live_admin(record: &KeyRecord, now_ms: i64) -> bool {
    record.is_live(now_ms) && record.state.scopes.contains(Scope::Admin)
}

/// Whether `record` has been rotated out (it names a successor).
fn is_predecessor(record: &KeyRecord) -> bool {
    record.replaced_by.is_some()
}

/// A live admin key that has not been rotated out: one that can manage keys.
fn is_managing_admin(record: &KeyRecord, now_ms: i64) -> bool {
    is_live_admin(record, now_ms) && !is_predecessor(record)
}

/// Every key of one org, by prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyRing {
    keys: HashMap<KeyPrefix, KeyRecord>,
}

impl KeyRing {
    /// A ring holding `records` (a later record replaces an earlier one of the same prefix).
    pub fn new(records: impl IntoIterator<Item = KeyRecord>) -> Self {
        Self { keys: records.into_iter().map(|r| (r.state.prefix, r)).collect() }
    }

    /// The record of `prefix`.
    pub fn get(&self, prefix: &KeyPrefix) -> Option<&KeyRecord> {
        self.keys.get(prefix)
    }

    /// Whether a key has `prefix`.
    pub fn contains(&self, prefix: &KeyPrefix) -> bool {
        self.keys.contains_key(prefix)
    }

    /// How many keys the org has (revoked and expired ones included).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the org has no key at all.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Every record, in no particular order.
    pub fn records(&self) -> impl Iterator<Item = &KeyRecord> {
        self.keys.values()
    }

    /// Whether some key is live at `now_ms` and holds the admin scope.
    pub fn has_live_admin(&self, now_ms: i64) -> bool {
        self.keys.values().any(|k| is_live_admin(k, now_ms))
    }

    /// Access for a hash-verified key needing `scope` at `now_ms`; an unknown
    /// prefix is [`AuthFailure::UnknownPrefix`].
    pub fn access(&self, prefix: &KeyPrefix, scope: Scope, now_ms: i64) -> Access {
        self.keys
            .get(prefix)
            .map_or(Access::Denied(AuthFailure::UnknownPrefix), |k| k.state.access(Some(scope), now_ms))
    }

    /// Adds a stored key (replacing any record of the same prefix).
    pub fn insert(&mut self, record: KeyRecord) {
        self.keys.insert(record.state.prefix, record);
    }

    /// Merges a snapshot read from storage: adds the records of prefixes this
    /// ring does not hold (keys made behind the actor's back, such as by the
    /// operator command) and keeps every record it holds as it is. The
    /// actor's own records are never older than a snapshot, which may have
    /// been read before a revocation, rotation or use it has applied since.
    /// Returns how many records were added.
    pub fn adopt_unknown(&mut self, stored: KeyRing) -> usize {
        let before = self.keys.len();
        for (prefix, record) in stored.keys {
            self.keys.entry(prefix).or_insert(record);
        }
        self.keys.len() - before
    }

    /// Applies what storage says has ended to the keys this ring holds (the
    /// operator command revokes in D1 behind the actor's back): a key revoked
    /// in `stored` is revoked here, and a stored expiry earlier than the held
    /// one (or where none is held) replaces it. Storage only ever ends keys
    /// here: nothing revoked in the ring is revived and no expiry is
    /// lengthened; every other field of a held record stays as the ring has
    /// it. Keys the ring does not hold are adopted as [`KeyRing::adopt_unknown`]
    /// does. Returns how many records were ended, shortened or added.
    pub fn reconcile(&mut self, stored: KeyRing) -> usize {
        let mut changed = 0;
        for (prefix, record) in stored.keys {
            let Some(held) = self.keys.get_mut(&prefix) else {
                self.keys.insert(prefix, record);
                changed += 1;
                continue;
            };
            let mut touched = false;
            if record.state.status == KeyStatus::Revoked && held.state.status != KeyStatus::Revoked {
                held.state.status = KeyStatus::Revoked;
                touched = true;
            }
            if let Some(e) = record.state.expires_at {
                if held.state.expires_at.is_none_or(|h| e < h) {
                    held.state.expires_at = Some(e);
                    touched = true;
                }
            }
            changed += usize::from(touched);
        }
        changed
    }

    /// Whether the key `caller` may create, revoke or rotate keys: a key that
    /// has been rotated out may not, even during its grace period (it can
    /// still read). An unknown caller is [`KeyRingError::NotFound`].
    pub fn may_manage_keys(&self, caller: &KeyPrefix) -> Result<(), KeyRingError> {
        let record = self.keys.get(caller).ok_or(KeyRingError::NotFound)?;
        if is_predecessor(record) {
            return Err(KeyRingError::Predecessor);
        }
        Ok(())
    }

    /// Decides a revocation at `now_ms`. A revoked key is answered as it is;
    /// a live admin key may only go while another live admin key remains
    /// that has not been rotated out (a predecessor in its grace period does
    /// not count: it cannot manage keys and its life is short).
    pub fn plan_revoke(&self, prefix: &KeyPrefix, now_ms: i64) -> Result<Revocation, KeyRingError> {
        let record = self.keys.get(prefix).ok_or(KeyRingError::NotFound)?;
        if record.state.status == KeyStatus::Revoked {
            return Ok(Revocation::AlreadyRevoked(record.view(now_ms)));
        }
        if self.is_last_live_admin(record, now_ms) {
            return Err(KeyRingError::LastLiveAdmin);
        }
        Ok(Revocation::Revoke(record.clone()))
    }

    /// Marks `prefix` revoked; returns its view at `now_ms` (`None`: no such key).
    pub fn apply_revoke(&mut self, prefix: &KeyPrefix, now_ms: i64) -> Option<KeyView> {
        let record = self.keys.get_mut(prefix)?;
        record.state.status = KeyStatus::Revoked;
        Some(record.view(now_ms))
    }

    /// Decides a rotation of `prefix` with `grace_ms` at `now_ms`: only a
    /// live key that has not been rotated yet can be rotated.
    pub fn plan_rotation(&self, prefix: &KeyPrefix, grace_ms: i64, now_ms: i64) -> Result<Rotation, KeyRingError> {
        let old = self.keys.get(prefix).ok_or(KeyRingError::NotFound)?;
        if !old.is_live(now_ms) {
            return Err(KeyRingError::NotLive);
        }
        if is_predecessor(old) {
            return Err(KeyRingError::RotatedAlready);
        }
        Ok(Rotation {
            old_expiry: rotated_expiry(old.state.expires_at, now_ms, grace_ms),
            successor_name: successor_name(&old.name),
            scopes: old.state.scopes,
            expires_at: old.state.expires_at,
            old: old.clone(),
        })
    }

    /// Marks the old key of a planned rotation as replaced by `successor`
    /// before the rotation is stored: from then on it is a predecessor, so
    /// neither a call made with it nor a second rotation of it can slip in
    /// while the write is in flight. Its expiry is shortened only once stored.
    pub fn begin_rotation(&mut self, rotation: &Rotation, successor: KeyPrefix) {
        if let Some(old) = self.keys.get_mut(&rotation.old.state.prefix) {
            old.replaced_by = Some(successor.to_string());
        }
    }

    /// Undoes [`KeyRing::begin_rotation`] when the write failed, keeping
    /// any other change made meanwhile (such as a revocation).
    pub fn abandon_rotation(&mut self, rotation: &Rotation, successor: KeyPrefix) {
        if let Some(old) = self.keys.get_mut(&rotation.old.state.prefix) {
            if old.replaced_by.as_deref() == Some(successor.as_str()) {
                old.replaced_by.clone_from(&rotation.old.replaced_by);
            }
        }
    }

    /// Records a stored rotation: adds `successor` and shortens the old key,
    /// as it is now (a change made meanwhile, such as a revocation, stays),
    /// never lengthening its expiry. Returns both views at `now_ms`.
    pub fn apply_rotation(&mut self, rotation: &Rotation, successor: KeyRecord, now_ms: i64) -> Rotated {
        let successor_prefix = successor.state.prefix;
        let key = successor.view(now_ms);
        self.keys.insert(successor_prefix, successor);
        let old_prefix = rotation.old.state.prefix;
        let old = self.keys.entry(old_prefix).or_insert_with(|| rotation.retired(successor_prefix));
        let expiry = old.state.expires_at.map_or(rotation.old_expiry, |e| e.min(rotation.old_expiry));
        old.state.expires_at = Some(expiry);
        old.replaced_by = Some(successor_prefix.to_string());
        Rotated { key, previous: old.view(now_ms) }
    }

    /// Records a use of `prefix` at `at_ms` (the later of the known and the new time wins).
    pub fn note_used(&mut self, prefix: &KeyPrefix, at_ms: i64) {
        if let Some(k) = self.keys.get_mut(prefix) {
            k.last_used_at = Some(k.last_used_at.map_or(at_ms, |t| t.max(at_ms)));
        }
    }

    /// The listing at `now_ms`: newest first (by `created_at`, then prefix,
    /// both descending), with the last-use times not yet stored merged in.
    pub fn views(&self, now_ms: i64, unsaved_use: &HashMap<KeyPrefix, i64>) -> Vec<KeyView> {
        let mut list: Vec<&KeyRecord> = self.keys.values().collect();
        list.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.state.prefix.cmp(&a.state.prefix)));
        list.into_iter()
            .map(|r| {
                let mut view = r.view(now_ms);
                if let Some(t) = unsaved_use.get(&r.state.prefix) {
                    let last = r.last_used_at.map_or(*t, |x| x.max(*t));
                    view.last_used_at = Some(rfc3339(last));
                }
                view
            })
            .collect()
    }

    /// Whether `target` is a live admin key and no other key is a live admin
    /// key that can manage keys (predecessors are not counted).
    fn is_last_live_admin(&self, target: &KeyRecord, now_ms: i64) -> bool {
        is_live_admin(target, now_ms)
            && !self.keys.values().any(|k| k.state.prefix != target.state.prefix && is_managing_admin(k, now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyViewState;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000;

    fn prefix(n: usize) -> KeyPrefix {
        KeyPrefix::parse(&format!("K{n:07}")).unwrap()
    }

    fn scopes(list: &[Scope]) -> Scopes {
        list.iter().copied().collect()
    }

    fn key(n: usize, s: &[Scope], expires_at: Option<i64>) -> KeyRecord {
        KeyRecord::new_active(prefix(n), format!("key {n}"), scopes(s), expires_at, NOW - 1_000 + n as i64)
    }

    fn admin(n: usize) -> KeyRecord {
        key(n, &[Scope::Admin], None)
    }

    #[test]
    fn unknown_prefix_is_denied_as_unknown() {
        let ring = KeyRing::new([admin(1)]);
        assert_eq!(ring.access(&prefix(2), Scope::Read, NOW), Access::Denied(AuthFailure::UnknownPrefix));
        assert_eq!(ring.access(&prefix(1), Scope::Admin, NOW), Access::Granted);
        assert_eq!(ring.access(&prefix(1), Scope::Read, NOW), Access::MissingScope(Scope::Read));
    }

    #[test]
    fn last_live_admin_cannot_be_revoked() {
        let mut ring = KeyRing::new([admin(1), key(2, &[Scope::Read], None)]);
        assert_eq!(ring.plan_revoke(&prefix(1), NOW), Err(KeyRingError::LastLiveAdmin));
        assert!(matches!(ring.plan_revoke(&prefix(2), NOW), Ok(Revocation::Revoke(_))));
        ring.insert(admin(3));
        assert!(matches!(ring.plan_revoke(&prefix(1), NOW), Ok(Revocation::Revoke(_))));
        ring.apply_revoke(&prefix(1), NOW);
        assert_eq!(ring.plan_revoke(&prefix(3), NOW), Err(KeyRingError::LastLiveAdmin));
    }

    #[test]
    fn an_expired_admin_does_not_count_as_the_other_admin() {
        let ring = KeyRing::new([admin(1), key(2, &[Scope::Admin], Some(NOW))]);
        assert_eq!(ring.plan_revoke(&prefix(1), NOW), Err(KeyRingError::LastLiveAdmin));
        // The expired one itself may be revoked.
        assert!(matches!(ring.plan_revoke(&prefix(2), NOW), Ok(Revocation::Revoke(_))));
    }

    #[test]
    fn revoking_twice_answers_the_revoked_view() {
        let mut ring = KeyRing::new([admin(1), key(2, &[Scope::Ingest], None)]);
        let view = ring.apply_revoke(&prefix(2), NOW).unwrap();
        assert_eq!(view.state, KeyViewState::Revoked);
        assert_eq!(ring.plan_revoke(&prefix(2), NOW), Ok(Revocation::AlreadyRevoked(view)));
        assert_eq!(ring.plan_revoke(&prefix(9), NOW), Err(KeyRingError::NotFound));
        assert_eq!(ring.apply_revoke(&prefix(9), NOW), None);
    }

    #[test]
    fn errors_map_to_todays_answers() {
        assert_eq!(ApiError::from(KeyRingError::NotFound), ApiError::NotFound);
        assert_eq!(
            ApiError::from(KeyRingError::LastLiveAdmin),
            ApiError::Conflict {
                message: "this is the org's last active admin key; create or rotate to another admin key before \
                          revoking it"
                    .into()
            }
        );
        assert_eq!(
            ApiError::from(KeyRingError::NotLive),
            ApiError::Conflict { message: "only an active key can be rotated".into() }
        );
        assert_eq!(
            ApiError::from(KeyRingError::RotatedAlready),
            ApiError::Conflict { message: "this key has been rotated already; rotate its successor".into() }
        );
        assert_eq!(
            ApiError::from(KeyRingError::Predecessor),
            ApiError::Forbidden {
                message: "a key in its rotation grace period cannot manage keys; use its successor".into()
            }
        );
    }

    /// Rotates `old` to `new` with `grace_ms` at `NOW`.
    fn rotate(ring: &mut KeyRing, old: usize, new: usize, grace_ms: i64) {
        let plan = ring.plan_rotation(&prefix(old), grace_ms, NOW).unwrap();
        ring.apply_rotation(&plan, plan.successor(prefix(new), NOW), NOW);
    }

    #[test]
    fn a_predecessor_cannot_manage_keys_but_can_act() {
        let mut ring = KeyRing::new([admin(1), key(2, &[Scope::Read], None)]);
        assert_eq!(ring.may_manage_keys(&prefix(1)), Ok(()));
        rotate(&mut ring, 1, 3, 60_000);
        assert_eq!(ring.may_manage_keys(&prefix(1)), Err(KeyRingError::Predecessor));
        assert_eq!(ring.may_manage_keys(&prefix(3)), Ok(()));
        assert_eq!(ring.may_manage_keys(&prefix(2)), Ok(()), "never rotated");
        assert_eq!(ring.may_manage_keys(&prefix(9)), Err(KeyRingError::NotFound));
        // Still live during its grace period.
        assert_eq!(ring.access(&prefix(1), Scope::Admin, NOW + 59_999), Access::Granted);
    }

    #[test]
    fn a_key_in_grace_is_not_rotated_again() {
        let mut ring = KeyRing::new([admin(1), admin(2)]);
        rotate(&mut ring, 1, 3, 60_000);
        // A second successor would copy the grace-shortened expiry, count as
        // the other admin while the real successor is revoked, then expire.
        assert_eq!(ring.plan_rotation(&prefix(1), 0, NOW), Err(KeyRingError::RotatedAlready));
        assert!(ring.plan_rotation(&prefix(3), 0, NOW).is_ok());
    }

    #[test]
    fn a_rotation_in_flight_already_makes_a_predecessor() {
        let mut ring = KeyRing::new([admin(1), admin(2)]);
        let plan = ring.plan_rotation(&prefix(1), 60_000, NOW).unwrap();
        ring.begin_rotation(&plan, prefix(3));
        assert_eq!(ring.may_manage_keys(&prefix(1)), Err(KeyRingError::Predecessor));
        assert_eq!(ring.plan_rotation(&prefix(1), 0, NOW), Err(KeyRingError::RotatedAlready));
        assert_eq!(ring.plan_revoke(&prefix(2), NOW), Err(KeyRingError::LastLiveAdmin), "not counted meanwhile");
        // The write failed: back as it was, but a revocation made meanwhile stays.
        ring.apply_revoke(&prefix(1), NOW);
        ring.abandon_rotation(&plan, prefix(3));
        let old = ring.get(&prefix(1)).unwrap();
        assert_eq!((old.replaced_by.as_deref(), old.state.status), (None, KeyStatus::Revoked));
        // Stored: as if applied at once.
        let mut ring = KeyRing::new([admin(1), admin(2)]);
        let plan = ring.plan_rotation(&prefix(1), 60_000, NOW).unwrap();
        ring.begin_rotation(&plan, prefix(3));
        ring.apply_rotation(&plan, plan.successor(prefix(3), NOW), NOW);
        assert_eq!(ring.get(&prefix(1)), Some(&plan.retired(prefix(3))));
        assert_eq!(ring.may_manage_keys(&prefix(3)), Ok(()));
    }

    #[test]
    fn a_predecessor_is_not_the_other_admin() {
        let mut ring = KeyRing::new([admin(1)]);
        rotate(&mut ring, 1, 2, 60_000);
        assert!(ring.get(&prefix(1)).unwrap().is_live(NOW), "in grace");
        assert_eq!(ring.plan_revoke(&prefix(2), NOW), Err(KeyRingError::LastLiveAdmin));
        // The predecessor itself may go: its successor remains.
        assert!(matches!(ring.plan_revoke(&prefix(1), NOW), Ok(Revocation::Revoke(_))));
        ring.insert(admin(3));
        assert!(matches!(ring.plan_revoke(&prefix(2), NOW), Ok(Revocation::Revoke(_))));
    }

    #[test]
    fn adopting_a_snapshot_keeps_what_the_ring_changed_since() {
        let mut ring = KeyRing::new([admin(1), key(2, &[Scope::Read], None), admin(3)]);
        // Read from storage before the changes below, with a key the operator made.
        let mut snapshot = ring.clone();
        snapshot.insert(key(4, &[Scope::Ingest], None));
        ring.apply_revoke(&prefix(2), NOW);
        rotate(&mut ring, 3, 5, 1_000);
        ring.note_used(&prefix(1), NOW);
        let before = ring.clone();
        assert_eq!(ring.adopt_unknown(snapshot), 1);
        assert_eq!(ring.get(&prefix(2)).unwrap().state.status, KeyStatus::Revoked);
        assert_eq!(ring.get(&prefix(3)), before.get(&prefix(3)), "still rotated");
        assert_eq!(ring.get(&prefix(1)).unwrap().last_used_at, Some(NOW));
        assert_eq!(ring.get(&prefix(4)), Some(&key(4, &[Scope::Ingest], None)));
        assert!(ring.contains(&prefix(5)), "a successor the snapshot misses stays");
        assert_eq!(ring.len(), 5);
    }

    #[test]
    fn reconciling_applies_stored_revocations_and_earlier_expiries_only() {
        let mut ring = KeyRing::new([admin(1), key(2, &[Scope::Read], Some(NOW + 50)), admin(3), admin(4)]);
        ring.apply_revoke(&prefix(4), NOW);
        ring.note_used(&prefix(1), NOW);
        let mut stored = KeyRing::new([admin(1), key(2, &[Scope::Read], None), admin(3), admin(4)]);
        stored.apply_revoke(&prefix(1), NOW);
        stored.insert(key(3, &[Scope::Admin], Some(NOW + 10)));
        stored.insert(key(5, &[Scope::Ingest], None));
        assert_eq!(ring.reconcile(stored), 3);
        assert_eq!(ring.access(&prefix(1), Scope::Admin, NOW), Access::Denied(AuthFailure::Revoked));
        assert_eq!(ring.get(&prefix(1)).unwrap().last_used_at, Some(NOW), "use is kept");
        assert_eq!(ring.get(&prefix(2)).unwrap().state.expires_at, Some(NOW + 50), "not lengthened");
        assert_eq!(ring.get(&prefix(3)).unwrap().state.expires_at, Some(NOW + 10));
        assert_eq!(ring.get(&prefix(4)).unwrap().state.status, KeyStatus::Revoked, "not revived");
        assert!(ring.contains(&prefix(5)));
    }

    #[test]
    fn rotation_shortens_the_old_key_and_copies_scopes_and_expiry() {
        let mut ring = KeyRing::new([key(1, &[Scope::Admin, Scope::Read], Some(NOW + 10_000))]);
        let plan = ring.plan_rotation(&prefix(1), 60_000, NOW).unwrap();
        assert_eq!(plan.old_expiry, NOW + 10_000, "never past its own expiry");
        assert_eq!(plan.successor_name, "key 1 (rotated)");
        assert_eq!((plan.scopes, plan.expires_at), (scopes(&[Scope::Admin, Scope::Read]), Some(NOW + 10_000)));
        let successor = plan.successor(prefix(2), NOW);
        let done = ring.apply_rotation(&plan, successor, NOW);
        assert_eq!(done.key.name, "key 1 (rotated)");
        assert_eq!(done.previous.replaced_by.as_deref(), Some(prefix(2).as_str()));
        assert_eq!(ring.get(&prefix(1)), Some(&plan.retired(prefix(2))));
        assert_eq!(ring.get(&prefix(2)).unwrap().state.expires_at, Some(NOW + 10_000));
        let short = ring.plan_rotation(&prefix(2), 1_000, NOW).unwrap();
        assert_eq!(short.old_expiry, NOW + 1_000);
        assert_eq!(short.successor_name, "key 1 (rotated)", "the suffix is not doubled");
    }

    #[test]
    fn only_live_keys_rotate() {
        let mut ring = KeyRing::new([admin(1), key(2, &[Scope::Read], Some(NOW))]);
        assert_eq!(ring.plan_rotation(&prefix(2), 0, NOW), Err(KeyRingError::NotLive));
        ring.apply_revoke(&prefix(1), NOW);
        assert_eq!(ring.plan_rotation(&prefix(1), 0, NOW), Err(KeyRingError::NotLive));
        assert_eq!(ring.plan_rotation(&prefix(3), 0, NOW), Err(KeyRingError::NotFound));
    }

    #[test]
    fn a_revocation_during_a_rotation_stays() {
        let mut ring = KeyRing::new([admin(1), admin(2)]);
        let plan = ring.plan_rotation(&prefix(2), 60_000, NOW).unwrap();
        ring.apply_revoke(&prefix(2), NOW);
        ring.apply_rotation(&plan, plan.successor(prefix(3), NOW), NOW);
        assert_eq!(ring.get(&prefix(2)).unwrap().state.status, KeyStatus::Revoked);
    }

    #[test]
    fn listing_is_newest_first_with_unsaved_use_merged() {
        let mut ring = KeyRing::new([admin(1), admin(2)]);
        ring.insert(KeyRecord { created_at: NOW, ..key(3, &[Scope::Read], None) });
        ring.insert(KeyRecord { created_at: NOW, ..key(4, &[Scope::Read], None) });
        ring.note_used(&prefix(1), NOW - 5);
        ring.note_used(&prefix(1), NOW - 9);
        let unsaved = HashMap::from([(prefix(1), NOW - 7), (prefix(2), NOW - 3)]);
        let views = ring.views(NOW, &unsaved);
        let order: Vec<_> = views.iter().map(|v| v.prefix).collect();
        assert_eq!(order, vec![prefix(4), prefix(3), prefix(2), prefix(1)]);
        assert_eq!(views[3].last_used_at, Some(rfc3339(NOW - 5)));
        assert_eq!(views[2].last_used_at, Some(rfc3339(NOW - 3)));
        assert_eq!(views[0].last_used_at, None);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Create { scopes: u8, expires_in: Option<i64> },
        Revoke(usize),
        Rotate { key: usize, grace_ms: i64 },
        Advance(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..8, proptest::option::of(1i64..200_000))
                .prop_map(|(scopes, expires_in)| Op::Create { scopes, expires_in }),
            (0usize..16).prop_map(Op::Revoke),
            (0usize..16, 0i64..100_000).prop_map(|(key, grace_ms)| Op::Rotate { key, grace_ms }),
            (0i64..100_000).prop_map(Op::Advance),
        ]
    }

    fn scope_set(bits: u8) -> Scopes {
        Scope::ALL.into_iter().enumerate().filter(|(i, _)| bits & (1 << i) != 0).map(|(_, s)| s).collect()
    }

    /// The model's ring: keys made so far, the clock and the next prefix number.
    struct World {
        ring: KeyRing,
        made: Vec<KeyPrefix>,
        now: i64,
    }

    impl World {
        fn mint(&mut self) -> KeyPrefix {
            self.made.push(prefix(self.made.len()));
            self.made[self.made.len() - 1]
        }

        fn pick(&self, i: usize) -> KeyPrefix {
            self.made.get(i % self.made.len().max(1)).copied().unwrap_or_else(|| prefix(999))
        }

        fn step(&mut self, op: &Op) -> Result<(), TestCaseError> {
            match *op {
                Op::Create { scopes, expires_in } => {
                    let p = self.mint();
                    let record = KeyRecord::new_active(
                        p,
                        "k".into(),
                        scope_set(scopes),
                        expires_in.map(|e| self.now + e),
                        self.now,
                    );
                    self.ring.insert(record);
                }
                Op::Revoke(i) => self.revoke(self.pick(i))?,
                Op::Rotate { key, grace_ms } => self.rotate(self.pick(key), grace_ms)?,
                Op::Advance(ms) => self.now += ms,
            }
            Ok(())
        }

        fn revoke(&mut self, p: KeyPrefix) -> Result<(), TestCaseError> {
            if let Ok(Revocation::Revoke(record)) = self.ring.plan_revoke(&p, self.now) {
                if is_live_admin(&record, self.now) {
                    let others =
                        self.ring.records().filter(|k| k.state.prefix != p && is_managing_admin(k, self.now)).count();
                    prop_assert!(others > 0, "the last live successor admin key was cleared for revocation");
                }
                self.ring.apply_revoke(&p, self.now);
            }
            Ok(())
        }

        fn rotate(&mut self, p: KeyPrefix, grace_ms: i64) -> Result<(), TestCaseError> {
            let before = self.ring.get(&p).and_then(|k| k.state.expires_at);
            if let Ok(plan) = self.ring.plan_rotation(&p, grace_ms, self.now) {
                let successor = plan.successor(self.mint(), self.now);
                self.ring.begin_rotation(&plan, successor.state.prefix);
                if grace_ms % 7 == 0 {
                    // The write failed: nothing changes.
                    self.ring.abandon_rotation(&plan, successor.state.prefix);
                    prop_assert_eq!(self.ring.get(&p), Some(&plan.old));
                    return Ok(());
                }
                self.ring.apply_rotation(&plan, successor, self.now);
                let after = self.ring.get(&p).and_then(|k| k.state.expires_at);
                prop_assert!(after.is_some());
                prop_assert!(before.is_none_or(|b| after.is_some_and(|a| a <= b)), "{before:?} -> {after:?}");
            }
            Ok(())
        }

        fn check(&self) -> Result<(), TestCaseError> {
            for k in self.ring.records() {
                let dead = k.state.status == KeyStatus::Revoked || k.state.expires_at.is_some_and(|e| self.now >= e);
                for s in Scope::ALL {
                    prop_assert!(!(dead && self.ring.access(&k.state.prefix, s, self.now) == Access::Granted));
                }
            }
            let views = self.ring.views(self.now, &HashMap::new());
            prop_assert_eq!(views.len(), self.ring.len());
            for pair in views.windows(2) {
                let key = |v: &KeyView| (self.ring.get(&v.prefix).map(|r| r.created_at), v.prefix);
                prop_assert!(key(&pair[0]) > key(&pair[1]), "listing out of order");
            }
            for v in &views {
                let text = serde_json::to_string(v).unwrap();
                prop_assert!(!text.contains("hash") && !text.contains("pepper"), "{}", text);
            }
            for k in self.ring.records() {
                let expected = if k.replaced_by.is_some() { Err(KeyRingError::Predecessor) } else { Ok(()) };
                prop_assert_eq!(self.ring.may_manage_keys(&k.state.prefix), expected);
            }
            Ok(())
        }

        fn has_managing_admin(&self) -> bool {
            self.ring.records().any(|k| is_managing_admin(k, self.now))
        }
    }

    fn world() -> World {
        World { ring: KeyRing::default(), made: Vec::new(), now: NOW }
    }

    /// Keys made without an expiry, so only revocation and rotation end them.
    fn op_without_expiry() -> impl Strategy<Value = Op> {
        op().prop_map(|o| match o {
            Op::Create { scopes, .. } => Op::Create { scopes, expires_in: None },
            other => other,
        })
    }

    proptest! {
        /// Over any sequence of key operations: no dead key is granted, the
        /// last live admin is never cleared for revocation, rotation never
        /// lengthens a key's life, and listings are ordered and hash-free.
        #[test]
        fn key_operations_keep_the_ring_invariants(ops in proptest::collection::vec(op(), 1..60)) {
            let mut world = world();
            for op in &ops {
                world.step(op)?;
                world.check()?;
            }
        }

        // claim: owasp.api2, threat.admin-survives-rotation
        /// Whatever is revoked or rotated, and however much time passes, an
        /// org whose keys do not expire keeps a live admin key that may manage
        /// keys: a predecessor never stands in for the last successor.
        #[test]
        fn a_managing_admin_always_remains(ops in proptest::collection::vec(op_without_expiry(), 1..60)) {
            let mut world = world();
            let first = world.mint();
            world.ring.insert(KeyRecord::new_active(first, "k".into(), scopes(&[Scope::Admin]), None, NOW));
            for op in &ops {
                world.step(op)?;
                world.check()?;
                prop_assert!(world.has_managing_admin(), "no admin key left that may manage keys after {:?}", op);
            }
        }

        // claim: threat.key-behind-actor
        /// A snapshot read at any moment, merged at any later moment, adds the
        /// keys made behind the ring's back and changes no record the ring holds.
        #[test]
        fn adopting_a_snapshot_never_replaces_a_known_record(
            before in proptest::collection::vec(op(), 0..30),
            after in proptest::collection::vec(op(), 0..30),
            foreign in proptest::collection::vec(0u8..8, 0..4),
        ) {
            let mut world = world();
            for op in &before {
                world.step(op)?;
            }
            let mut snapshot = world.ring.clone();
            for (i, bits) in foreign.iter().enumerate() {
                snapshot.insert(KeyRecord::new_active(prefix(500 + i), "op".into(), scope_set(*bits), None, world.now));
            }
            for op in &after {
                world.step(op)?;
            }
            let held = world.ring.clone();
            prop_assert_eq!(world.ring.adopt_unknown(snapshot.clone()), foreign.len());
            for k in held.records() {
                prop_assert_eq!(world.ring.get(&k.state.prefix), Some(k));
            }
            for k in snapshot.records().filter(|k| !held.contains(&k.state.prefix)) {
                prop_assert_eq!(world.ring.get(&k.state.prefix), Some(k));
            }
            prop_assert_eq!(world.ring.len(), held.len() + foreign.len());
            world.check()?;
        }

        // claim: threat.operator-endpoint
        /// Reconciling with a snapshot in which any keys were revoked or
        /// given an expiry: a key revoked in storage is revoked after the
        /// merge, nothing the ring had revoked is revived, no expiry grows,
        /// and no key dead on either side is granted.
        #[test]
        fn reconciling_makes_stored_revocations_win_and_revives_nothing(
            ops in proptest::collection::vec(op(), 0..40),
            ended in proptest::collection::vec(
                (0usize..16, any::<bool>(), proptest::option::of(-50_000i64..50_000)),
                0..8,
            ),
            later in proptest::collection::vec(op(), 0..10),
        ) {
            let mut world = world();
            for op in &ops {
                world.step(op)?;
            }
            let mut stored = world.ring.clone();
            for (i, revoke, expiry) in &ended {
                let p = world.pick(*i);
                if *revoke {
                    stored.apply_revoke(&p, world.now);
                }
                if let (Some(e), Some(k)) = (expiry, stored.keys.get_mut(&p)) {
                    k.state.expires_at = Some(world.now + e);
                }
            }
            for op in &later {
                world.step(op)?;
            }
            let held = world.ring.clone();
            world.ring.reconcile(stored.clone());
            for k in world.ring.records() {
                let p = k.state.prefix;
                let was = held.get(&p);
                let on_disk = stored.get(&p);
                if on_disk.is_some_and(|s| s.state.status == KeyStatus::Revoked)
                    || was.is_some_and(|h| h.state.status == KeyStatus::Revoked)
                {
                    prop_assert_eq!(k.state.status, KeyStatus::Revoked);
                }
                if let Some(h) = was {
                    prop_assert!(h.state.expires_at.is_none_or(|e| k.state.expires_at.is_some_and(|a| a <= e)));
                    let kept = (&k.name, k.last_used_at, &k.replaced_by);
                    prop_assert_eq!(kept, (&h.name, h.last_used_at, &h.replaced_by));
                }
                let dead = |r: Option<&KeyRecord>| r.is_some_and(|r| !r.is_live(world.now));
                if dead(was) || dead(on_disk) {
                    for s in Scope::ALL {
                        prop_assert!(world.ring.access(&p, s, world.now) != Access::Granted);
                    }
                }
            }
            let adopted = stored.records().filter(|k| !held.contains(&k.state.prefix)).count();
            prop_assert_eq!(world.ring.len(), held.len() + adopted);
            world.check()?;
        }

        /// Revocations alone never take away the org's last live admin key.
        #[test]
        fn revocations_alone_keep_a_live_admin(
            keys in proptest::collection::vec((0u8..8, any::<bool>()), 1..10),
            revokes in proptest::collection::vec(0usize..10, 0..30),
        ) {
            let records = keys.iter().enumerate().map(|(i, (bits, expired))| {
                KeyRecord::new_active(prefix(i), "k".into(), scope_set(*bits), expired.then_some(NOW), NOW - 1)
            });
            let mut ring = KeyRing::new(records);
            let had_admin = ring.has_live_admin(NOW);
            for i in revokes {
                let p = prefix(i % keys.len());
                if let Ok(Revocation::Revoke(_)) = ring.plan_revoke(&p, NOW) {
                    ring.apply_revoke(&p, NOW);
                }
                prop_assert_eq!(ring.has_live_admin(NOW), had_admin);
            }
        }
    }
}
