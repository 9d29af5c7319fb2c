//! The front isolate's key-directory cache: prefix → the directory row
//! (org, digest, pepper version) of a key that verified recently. Bounded in
//! size and age; it holds no negative entries (a prefix that is unknown or
//! whose secret did not match is never remembered), so nobody can fill it
//! without holding valid keys. It can never make a dead key live: whether a
//! key is revoked or expired is decided by the org's actor on every request.

use crate::credential::StoredKey;
use crate::key::KeyPrefix;
use std::collections::HashMap;

/// Longest an entry is trusted (Unix ms).
pub const DIRECTORY_TTL_MS: i64 = 60_000;
/// Most entries one isolate keeps.
pub const DIRECTORY_CAPACITY: usize = 10_000;

/// The cache. Time is a parameter; the adapter keeps one per isolate.
#[derive(Debug, Clone)]
pub struct DirectoryCache {
    ttl_ms: i64,
    capacity: usize,
    entries: HashMap<KeyPrefix, (i64, StoredKey)>,
}

impl Default for DirectoryCache {
    fn default() -> Self {
        Self::new(DIRECTORY_TTL_MS, DIRECTORY_CAPACITY)
    }
}

impl DirectoryCache {
    /// A cache trusting entries for `ttl_ms`, holding at most `capacity`.
    pub fn new(ttl_ms: i64, capacity: usize) -> Self {
        Self { ttl_ms, capacity: capacity.max(1), entries: HashMap::new() }
    }

    /// The row of `prefix` if it was remembered less than the TTL ago.
    pub fn get(&self, prefix: &KeyPrefix, now_ms: i64) -> Option<&StoredKey> {
        self.entries.get(prefix).filter(|(at, _)| now_ms - at < self.ttl_ms && now_ms >= *at).map(|(_, row)| row)
    }

    /// Remembers the row of a key that verified at `now_ms`. When full,
    /// stale entries go first, then the oldest one.
    pub fn remember(&mut self, prefix: KeyPrefix, row: StoredKey, now_ms: i64) {
        if !self.entries.contains_key(&prefix) && self.entries.len() >= self.capacity {
            let ttl = self.ttl_ms;
            self.entries.retain(|_, (at, _)| now_ms - *at < ttl);
            if self.entries.len() >= self.capacity {
                if let Some(oldest) = self.entries.iter().min_by_key(|(_, (at, _))| *at).map(|(p, _)| *p) {
                    self.entries.remove(&oldest);
                }
            }
        }
        self.entries.insert(prefix, (now_ms, row));
    }

    /// Drops `prefix` (its row changed, or it no longer verifies).
    pub fn forget(&mut self, prefix: &KeyPrefix) {
        self.entries.remove(prefix);
    }

    /// Entries held now (stale ones included until they are pushed out).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::OrgId;
    use proptest::prelude::*;

    fn prefix(n: u32) -> KeyPrefix {
        let alphabet = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let text: String = (0..8).map(|i| alphabet[((n >> (i * 4)) & 31) as usize] as char).collect();
        KeyPrefix::parse(&text).unwrap()
    }

    fn row(v: u32) -> StoredKey {
        StoredKey { org: OrgId::generate(1, &[1; 10]), digest: None, pepper_version: v }
    }

    #[test]
    fn entries_expire_after_the_ttl() {
        let mut c = DirectoryCache::new(60_000, 10);
        c.remember(prefix(1), row(1), 1_000);
        assert!(c.get(&prefix(1), 60_999).is_some());
        assert!(c.get(&prefix(1), 61_000).is_none());
        assert!(c.get(&prefix(1), 999).is_none(), "a clock that went back does not extend trust");
    }

    #[test]
    fn forgotten_entries_are_gone() {
        let mut c = DirectoryCache::default();
        c.remember(prefix(1), row(1), 0);
        c.forget(&prefix(1));
        assert!(c.get(&prefix(1), 1).is_none());
    }

    #[test]
    fn a_full_cache_drops_stale_then_oldest() {
        let mut c = DirectoryCache::new(100, 3);
        c.remember(prefix(1), row(1), 0);
        c.remember(prefix(2), row(1), 50);
        c.remember(prefix(3), row(1), 60);
        c.remember(prefix(4), row(1), 120); // 1 is stale: it goes
        assert!(c.get(&prefix(1), 120).is_none() && c.get(&prefix(2), 120).is_some());
        c.remember(prefix(5), row(1), 130); // none stale: the oldest (2) goes
        assert!(c.get(&prefix(2), 130).is_none());
        assert_eq!(c.len(), 3);
    }

    proptest! {
        /// Never more than the capacity, and never an entry older than the TTL.
        #[test]
        fn bounded_in_size_and_age(ops in proptest::collection::vec((0u32..64, 0i64..50), 1..500)) {
            let mut c = DirectoryCache::new(200, 16);
            let mut now = 0;
            for (p, dt) in ops {
                now += dt;
                c.remember(prefix(p), row(1), now);
                prop_assert!(c.len() <= 16);
                for q in 0..64 {
                    if let Some(r) = c.get(&prefix(q), now + 200) {
                        prop_assert!(false, "entry {q} older than the ttl: {r:?}");
                    }
                }
            }
        }
    }
}
