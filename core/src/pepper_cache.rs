//! The front Worker's per-isolate pepper cache, as a pure policy (the Worker
//! holds one per isolate and passes the clock in).
//!
//! Reading the Secrets Store on every request would cost a round trip each, so
//! an isolate keeps the peppers for [`PEPPER_TTL_MS`]. Two rules keep a cached
//! pepper from failing a valid key:
//!
//! - **Keyed by version.** An entry is only served for the versions it was read
//!   under (`PEPPER_VERSION`, `PEPPER_PREVIOUS_VERSION`). When the configured
//!   versions change, the entry is a miss and the secrets are read again, so a
//!   secret is never used under a version it was not read for.
//! - **One re-read on a failed check.** A secret's value can change without a
//!   deployment; until the entry expires the isolate would check every key
//!   minted under the new value with the old one. A failed check under a
//!   cached entry may re-read the secrets and check once more, at most once
//!   per [`PEPPER_TTL_MS`] per isolate ([`PepperCache::take_reread`]), so wrong
//!   secrets cannot force a Secrets Store read per request.

use crate::credential::Peppers;

/// How long an isolate keeps the peppers before reading the secrets again, and
/// the least time between two re-reads forced by failed checks.
pub const PEPPER_TTL_MS: i64 = 60_000;

/// The pepper versions a configuration names: `PEPPER_VERSION` and, during a
/// rotation, `PEPPER_PREVIOUS_VERSION`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PepperVersions {
    pub current: u32,
    pub previous: Option<u32>,
}

impl PepperVersions {
    /// The versions `peppers` were read under.
    pub fn of(peppers: &Peppers) -> Self {
        Self { current: peppers.current.version(), previous: peppers.previous.as_ref().map(|p| p.version()) }
    }
}

/// One isolate's peppers and when they were read.
#[derive(Debug, Default)]
pub struct PepperCache {
    held: Option<(i64, Peppers)>,
    /// When a failed check last re-read the secrets.
    last_reread_ms: Option<i64>,
}

impl PepperCache {
    /// An empty cache (usable in a `const` thread-local initialiser).
    pub const fn new() -> Self {
        Self { held: None, last_reread_ms: None }
    }

    /// The peppers held for exactly `versions`, read less than
    /// [`PEPPER_TTL_MS`] before `now_ms`. Other versions, an expired entry or a
    /// clock that went back are misses.
    pub fn get(&self, versions: PepperVersions, now_ms: i64) -> Option<Peppers> {
        let (read_at, peppers) = self.held.as_ref()?;
        let fresh = (0..PEPPER_TTL_MS).contains(&now_ms.saturating_sub(*read_at));
        (fresh && PepperVersions::of(peppers) == versions).then(|| peppers.clone())
    }

    /// Holds `peppers`, just read from the secrets at `now_ms`.
    pub fn put(&mut self, peppers: Peppers, now_ms: i64) {
        self.held = Some((now_ms, peppers));
    }

    /// After a check under cached peppers failed: whether the caller may read
    /// the secrets again and check once more. Yes at most once per
    /// [`PEPPER_TTL_MS`]; a yes is recorded, so the next one waits a full TTL.
    pub fn take_reread(&mut self, now_ms: i64) -> bool {
        let due = self.last_reread_ms.is_none_or(|at| !(0..PEPPER_TTL_MS).contains(&now_ms.saturating_sub(at)));
        if due {
            self.last_reread_ms = Some(now_ms);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credential::{check, Credential, StoredKey};
    use crate::hash::Pepper;
    use crate::ids::OrgId;
    use crate::key::{ApiKey, ENTROPY_BYTES};

    fn pepper(v: u32, b: u8) -> Pepper {
        Pepper::new(v, vec![b; 32]).unwrap()
    }

    fn versions(current: u32, previous: Option<u32>) -> PepperVersions {
        PepperVersions { current, previous }
    }

    // claim: threat.pepper-lockout
    #[test]
    fn a_change_of_versions_is_a_miss() {
        let mut cache = PepperCache::new();
        cache.put(Peppers { current: pepper(1, 1), previous: None }, 0);
        assert!(cache.get(versions(1, None), 10).is_some());
        // The deployment now names v2 current and v1 previous: the v1 secret
        // held as "current" must not be served as v2.
        assert!(cache.get(versions(2, Some(1)), 10).is_none());
        assert!(cache.get(versions(1, Some(2)), 10).is_none());
        cache.put(Peppers { current: pepper(2, 2), previous: Some(pepper(1, 1)) }, 20);
        let held = cache.get(versions(2, Some(1)), 30).unwrap();
        assert_eq!(PepperVersions::of(&held), versions(2, Some(1)));
        assert!(cache.get(versions(2, None), 30).is_none());
    }

    #[test]
    fn entries_expire_after_the_ttl_and_when_the_clock_goes_back() {
        let mut cache = PepperCache::new();
        assert!(cache.get(versions(1, None), 0).is_none());
        cache.put(Peppers { current: pepper(1, 1), previous: None }, 1_000);
        assert!(cache.get(versions(1, None), 1_000 + PEPPER_TTL_MS - 1).is_some());
        assert!(cache.get(versions(1, None), 1_000 + PEPPER_TTL_MS).is_none());
        assert!(cache.get(versions(1, None), 999).is_none());
        assert!(cache.get(versions(1, None), i64::MIN).is_none());
    }

    #[test]
    fn a_reread_is_allowed_once_per_ttl() {
        let mut cache = PepperCache::new();
        assert!(cache.take_reread(5_000));
        for now in [5_000, 5_001, 5_000 + PEPPER_TTL_MS - 1] {
            assert!(!cache.take_reread(now), "{now}");
        }
        assert!(cache.take_reread(5_000 + PEPPER_TTL_MS));
        assert!(!cache.take_reread(5_000 + PEPPER_TTL_MS + 1));
        // A clock that went back does not lock re-reads out for long.
        assert!(cache.take_reread(0));
    }

    /// The secret's value changed under the same version while an isolate held
    /// the old one: a key minted with the new value fails once under the cached
    /// pepper, verifies after the one re-read, and wrong secrets after that
    /// cannot force another read within the TTL.
    #[test]
    fn a_key_minted_under_a_changed_secret_verifies_after_one_reread() {
        let stale = Peppers { current: pepper(2, 1), previous: None };
        let live = Peppers { current: pepper(2, 2), previous: None };
        let key = ApiKey::from_entropy(&[7; ENTROPY_BYTES]);
        let org = OrgId::generate(1, &[1; 10]);
        let row = StoredKey { org, digest: Some(live.current.digest(&key)), pepper_version: 2 };
        let mut cache = PepperCache::new();
        cache.put(stale, 0);
        let held = cache.get(versions(2, None), 100).unwrap();
        assert!(matches!(check(&Ok(key.clone()), Some(&row), &held).0, Credential::WrongSecret { .. }));
        assert!(cache.take_reread(100));
        cache.put(live, 100);
        let held = cache.get(versions(2, None), 200).unwrap();
        assert!(matches!(check(&Ok(key), Some(&row), &held).0, Credential::Verified { .. }));
        assert!(!cache.take_reread(200));
    }
}
