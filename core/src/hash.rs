//! The keyed hash of API keys: HMAC-SHA-256(pepper, canonical key), compared in
//! constant time. The pepper carries a version so it can be rotated.

use crate::key::ApiKey;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;
use subtle::ConstantTimeEq;

/// Shortest pepper accepted, in bytes.
pub const MIN_PEPPER_LEN: usize = 32;

/// Why a pepper was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PepperError {
    #[error("pepper must be at least {MIN_PEPPER_LEN} bytes")]
    TooShort,
    #[error("pepper version must be at least 1")]
    BadVersion,
}

/// A versioned secret pepper. `Debug` never shows the secret.
#[derive(Clone)]
pub struct Pepper {
    version: u32,
    secret: Vec<u8>,
}

impl Pepper {
    /// A pepper of at least [`MIN_PEPPER_LEN`] bytes with version ≥ 1.
    pub fn new(version: u32, secret: impl Into<Vec<u8>>) -> Result<Self, PepperError> {
        let secret = secret.into();
        if version == 0 {
            return Err(PepperError::BadVersion);
        }
        if secret.len() < MIN_PEPPER_LEN {
            return Err(PepperError::TooShort);
        }
        Ok(Self { version, secret })
    }

    /// The version stored beside each hash made with this pepper.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// HMAC-SHA-256 of the canonical key text.
    pub fn digest(&self, key: &ApiKey) -> KeyDigest {
        self.digest_bytes(key.expose_secret().as_bytes())
    }

    fn digest_bytes(&self, data: &[u8]) -> KeyDigest {
        // HMAC accepts keys of any length; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        mac.update(data);
        KeyDigest(mac.finalize().into_bytes().into())
    }

    /// A 32-byte secret for another purpose (e.g. signing cursors), derived
    /// from the pepper with a distinct label so the two never coincide.
    pub fn derive(&self, label: &str) -> [u8; 32] {
        self.digest_bytes(format!("interlog/derive/{label}").as_bytes()).0
    }

    /// Constant-time check of `key` against a stored digest.
    pub fn verify(&self, key: &ApiKey, stored: &KeyDigest) -> bool {
        self.digest(key).ct_eq(stored)
    }
}

impl fmt::Debug for Pepper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pepper(v{}, <redacted>)", self.version)
    }
}

/// A stored key digest (32 bytes, kept as lower-case hex in D1).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyDigest([u8; 32]);

impl KeyDigest {
    /// A digest no key produces in practice; compared against when a prefix is
    /// unknown so that every outcome does the same work.
    pub const DUMMY: KeyDigest = KeyDigest([0u8; 32]);

    /// Lower-case hex.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits (any case).
    pub fn from_hex(s: &str) -> Option<Self> {
        let bytes = s.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            *o = (hi * 16 + lo) as u8;
        }
        Some(Self(out))
    }

    /// Constant-time equality.
    pub fn ct_eq(&self, other: &KeyDigest) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for KeyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyDigest(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ENTROPY_BYTES;
    use proptest::prelude::*;

    fn pepper(v: u32, fill: u8) -> Pepper {
        Pepper::new(v, vec![fill; 32]).unwrap()
    }

    // claim: posture.key-storage
    #[test]
    fn rfc4231_case_2_shape() {
        // HMAC-SHA-256 known answer (RFC 4231 test case 2) through the same code path.
        let p = Pepper { version: 1, secret: b"Jefe".to_vec() };
        let d = p.digest_bytes(b"what do ya want for nothing?");
        assert_eq!(d.to_hex(), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    }

    // claim: owasp.api10, posture.key-storage
    #[test]
    fn short_or_unversioned_peppers_are_refused() {
        assert_eq!(Pepper::new(1, vec![1; 31]).unwrap_err(), PepperError::TooShort);
        assert_eq!(Pepper::new(0, vec![1; 32]).unwrap_err(), PepperError::BadVersion);
        assert!(!format!("{:?}", pepper(3, 7)).contains('7'.to_string().repeat(2).as_str()));
    }

    proptest! {
        // claim: owasp.api2, posture.key-storage, threat.db-key-theft
        #[test]
        fn verify_accepts_own_digest_only(e in any::<[u8; ENTROPY_BYTES]>(), f in any::<[u8; ENTROPY_BYTES]>()) {
            let a = ApiKey::from_entropy(&e);
            let b = ApiKey::from_entropy(&f);
            let p = pepper(1, 9);
            let da = p.digest(&a);
            prop_assert!(p.verify(&a, &da));
            prop_assert_eq!(p.verify(&b, &da), a == b);
            // Another pepper never verifies.
            prop_assert!(!pepper(2, 8).verify(&a, &da));
            prop_assert!(!p.verify(&a, &KeyDigest::DUMMY));
        }

        #[test]
        fn hex_roundtrip(bytes in any::<[u8; 32]>()) {
            let d = KeyDigest(bytes);
            prop_assert_eq!(KeyDigest::from_hex(&d.to_hex()), Some(d));
            prop_assert_eq!(KeyDigest::from_hex(&d.to_hex().to_uppercase()), Some(d));
        }
    }

    #[test]
    fn bad_hex_is_none() {
        assert!(KeyDigest::from_hex("zz").is_none());
        assert!(KeyDigest::from_hex(&"g".repeat(64)).is_none());
    }
}
