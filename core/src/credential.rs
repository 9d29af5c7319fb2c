//! The front Worker's credential check as a pure decision: given what was
//! presented, the directory row its prefix found (if any) and the peppers, is
//! the key verified, a wrong secret for a known org, or refused outright?
//! Every outcome performs the same work: one digest and one constant-time
//! compare, with dummies standing in for what is missing.

use crate::auth::AuthFailure;
use crate::hash::{KeyDigest, Pepper};
use crate::ids::OrgId;
use crate::key::{ApiKey, KeyPrefix, ENTROPY_BYTES};
use crate::keys::KeyMaterial;

/// The current pepper and, during a rotation, the previous one.
#[derive(Debug, Clone)]
pub struct Peppers {
    pub current: Pepper,
    pub previous: Option<Pepper>,
}

/// A directory row: the org of a prefix, its stored digest and the version
/// of the pepper that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub org: OrgId,
    pub digest: Option<KeyDigest>,
    pub pepper_version: u32,
}

/// What the credential check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The secret matches; the org's actor still decides whether the key is live.
    Verified { org: OrgId, prefix: KeyPrefix, rehash: Option<KeyMaterial> },
    /// A well-formed key of a known org with the wrong secret: that org's
    /// actor records it.
    WrongSecret { org: OrgId, prefix: KeyPrefix },
    /// Refused before any org is known (missing, malformed, unknown prefix).
    Refused { reason: AuthFailure, prefix: Option<KeyPrefix> },
}

/// The work every outcome performs, counted (tests check that no outcome
/// skips the digest or the compare).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    pub digests: u32,
    pub compares: u32,
}

/// Decides a credential. `presented` is the parsed `Authorization` header;
/// `row` is what the directory holds for its prefix (looked up with a dummy
/// prefix when nothing parsed, so every outcome queries too).
pub fn check(
    presented: &Result<ApiKey, AuthFailure>,
    row: Option<&StoredKey>,
    peppers: &Peppers,
) -> (Credential, Work) {
    let mut work = Work::default();
    let dummy = ApiKey::from_entropy(&[0u8; ENTROPY_BYTES]);
    let key = presented.as_ref().unwrap_or(&dummy);
    let stored = row.and_then(|r| r.digest).unwrap_or(KeyDigest::DUMMY);
    let row_version = row.map_or(peppers.current.version(), |r| r.pepper_version);
    let by_previous = peppers.previous.as_ref().filter(|p| p.version() == row_version);
    // Re-hash only towards a newer version. While a rotation is announced, the
    // second pepper is the *next* version (docs/operations.md): rows the next
    // deployment writes under it verify here and are left as they are.
    let upgrade = by_previous.filter(|p| p.version() < peppers.current.version());
    let digest = work.digest(by_previous.unwrap_or(&peppers.current), key);
    let matches = work.compare(&digest, &stored);
    let prefix = presented.as_ref().ok().map(ApiKey::prefix);
    let credential = match (presented, row, prefix) {
        (Err(reason), _, _) => Credential::Refused { reason: *reason, prefix: None },
        (Ok(_), None, prefix) => Credential::Refused { reason: AuthFailure::UnknownPrefix, prefix },
        (Ok(_), Some(r), Some(prefix)) if matches => {
            // Only a verified key under the previous pepper pays a second digest.
            let rehash = upgrade.map(|_| KeyMaterial {
                prefix,
                hash: work.digest(&peppers.current, key).to_hex(),
                pepper_version: peppers.current.version(),
            });
            Credential::Verified { org: r.org.clone(), prefix, rehash }
        }
        (Ok(_), Some(r), Some(prefix)) => Credential::WrongSecret { org: r.org.clone(), prefix },
        (Ok(_), Some(_), None) => Credential::Refused { reason: AuthFailure::Malformed, prefix: None },
    };
    (credential, work)
}

impl Work {
    /// A digest of `key` under `pepper`, counted.
    fn digest(&mut self, pepper: &Pepper, key: &ApiKey) -> KeyDigest {
        self.digests += 1;
        pepper.digest(key)
    }

    /// A constant-time compare, counted.
    fn compare(&mut self, a: &KeyDigest, b: &KeyDigest) -> bool {
        self.compares += 1;
        a.ct_eq(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pepper(v: u32, b: u8) -> Pepper {
        Pepper::new(v, vec![b; 32]).unwrap()
    }

    fn key(b: u8) -> ApiKey {
        ApiKey::from_entropy(&[b; ENTROPY_BYTES])
    }

    fn org() -> OrgId {
        OrgId::generate(1, &[1; 10])
    }

    fn row_for(k: &ApiKey, p: &Pepper) -> StoredKey {
        StoredKey { org: org(), digest: Some(p.digest(k)), pepper_version: p.version() }
    }

    // claim: owasp.api2
    #[test]
    fn every_outcome_digests_and_compares_once() {
        let peppers = Peppers { current: pepper(2, 2), previous: Some(pepper(1, 1)) };
        let k = key(7);
        let good = row_for(&k, &peppers.current);
        let old = row_for(&k, peppers.previous.as_ref().unwrap());
        let wrong = row_for(&key(8), &peppers.current);
        let cases: Vec<(Result<ApiKey, AuthFailure>, Option<&StoredKey>)> = vec![
            (Err(AuthFailure::Missing), None),
            (Err(AuthFailure::Malformed), None),
            (Ok(k.clone()), None),
            (Ok(k.clone()), Some(&wrong)),
            (Ok(k.clone()), Some(&good)),
            (Ok(k.clone()), Some(&old)),
        ];
        for (presented, row) in cases {
            let (credential, work) = check(&presented, row, &peppers);
            // Counted where the work is done. Only a verified key stored under
            // the previous pepper pays a second digest (its re-hash), after
            // the outcome is known to be a success.
            let rehash = matches!(credential, Credential::Verified { rehash: Some(_), .. });
            let digests = if rehash { 2 } else { 1 };
            assert_eq!(work, Work { digests, compares: 1 }, "{credential:?}");
        }
    }

    /// The front-side case behind every `AuthFailure` (the match is
    /// exhaustive, so a new reason needs a case here). Revoked and expired
    /// keys verify at the front: the actor refuses them afterwards, so the
    /// front's work is that of the verified path.
    fn front_case(
        reason: AuthFailure,
        k: &ApiKey,
        good: &StoredKey,
        wrong: &StoredKey,
    ) -> (Result<ApiKey, AuthFailure>, Option<StoredKey>) {
        match reason {
            AuthFailure::Missing => (Err(AuthFailure::Missing), None),
            AuthFailure::Malformed => (Err(AuthFailure::Malformed), None),
            AuthFailure::UnknownPrefix => (Ok(k.clone()), None),
            AuthFailure::WrongHash => (Ok(k.clone()), Some(wrong.clone())),
            AuthFailure::Revoked | AuthFailure::Expired => (Ok(k.clone()), Some(good.clone())),
        }
    }

    #[test]
    fn every_auth_failure_reason_does_the_same_work() {
        let k = key(7);
        let rotating = Peppers { current: pepper(2, 2), previous: Some(pepper(1, 1)) };
        let settled = Peppers { current: pepper(2, 2), previous: None };
        for peppers in [&rotating, &settled] {
            let good = row_for(&k, &peppers.current);
            let wrong = row_for(&key(8), &peppers.current);
            for reason in AuthFailure::ALL {
                let (presented, row) = front_case(reason, &k, &good, &wrong);
                let (credential, work) = check(&presented, row.as_ref(), peppers);
                assert_eq!(work, Work { digests: 1, compares: 1 }, "{reason:?}");
                let expected_kind = match reason {
                    AuthFailure::Missing | AuthFailure::Malformed | AuthFailure::UnknownPrefix => "refused",
                    AuthFailure::WrongHash => "wrong",
                    AuthFailure::Revoked | AuthFailure::Expired => "verified",
                };
                let kind = match credential {
                    Credential::Refused { reason: r, .. } => {
                        assert_eq!(r, reason, "the audit reason is the real one");
                        "refused"
                    }
                    Credential::WrongSecret { .. } => "wrong",
                    Credential::Verified { .. } => "verified",
                };
                assert_eq!(kind, expected_kind, "{reason:?}");
            }
            // A directory row without a digest is a wrong secret, after the same work.
            let bare = StoredKey { digest: None, ..good.clone() };
            let (credential, work) = check(&Ok(k.clone()), Some(&bare), peppers);
            assert_eq!(work, Work { digests: 1, compares: 1 });
            assert!(matches!(credential, Credential::WrongSecret { .. }), "{credential:?}");
        }
    }

    #[test]
    fn outcomes_by_case() {
        let peppers = Peppers { current: pepper(2, 2), previous: Some(pepper(1, 1)) };
        let k = key(7);
        let (c, _) = check(&Err(AuthFailure::Missing), None, &peppers);
        assert_eq!(c, Credential::Refused { reason: AuthFailure::Missing, prefix: None });
        let (c, _) = check(&Ok(k.clone()), None, &peppers);
        assert_eq!(c, Credential::Refused { reason: AuthFailure::UnknownPrefix, prefix: Some(k.prefix()) });
        let (c, _) = check(&Ok(k.clone()), Some(&row_for(&key(8), &peppers.current)), &peppers);
        assert_eq!(c, Credential::WrongSecret { org: org(), prefix: k.prefix() });
        let (c, _) = check(&Ok(k.clone()), Some(&row_for(&k, &peppers.current)), &peppers);
        assert_eq!(c, Credential::Verified { org: org(), prefix: k.prefix(), rehash: None });
    }

    #[test]
    fn previous_pepper_verifies_and_asks_for_a_rehash() {
        let peppers = Peppers { current: pepper(2, 2), previous: Some(pepper(1, 1)) };
        let k = key(7);
        let (c, _) = check(&Ok(k.clone()), Some(&row_for(&k, peppers.previous.as_ref().unwrap())), &peppers);
        let Credential::Verified { rehash: Some(m), .. } = c else { panic!("{c:?}") };
        assert_eq!(m.pepper_version, 2);
        assert_eq!(m.hash, peppers.current.digest(&k).to_hex());
        let announced = Peppers { current: pepper(1, 1), previous: Some(pepper(2, 2)) };
        let (c, work) = check(&Ok(k.clone()), Some(&row_for(&k, announced.previous.as_ref().unwrap())), &announced);
        assert_eq!(c, Credential::Verified { org: org(), prefix: k.prefix(), rehash: None });
        assert_eq!(work, Work { digests: 1, compares: 1 });
        let retired = Peppers { current: pepper(2, 2), previous: None };
        let (c, _) = check(&Ok(k.clone()), Some(&row_for(&k, peppers.previous.as_ref().unwrap())), &retired);
        assert!(matches!(c, Credential::WrongSecret { .. }));
    }
}
