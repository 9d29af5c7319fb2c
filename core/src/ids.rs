//! Identifiers: org ids, interaction ids (sortable: 48-bit ms time + 80 random
//! bits), request ids. All are a tag plus 26 Crockford symbols.

use crate::crockford;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Random bytes a sortable id takes.
pub const ID_ENTROPY_BYTES: usize = 10;

fn sortable(now_ms: u64, entropy: &[u8; ID_ENTROPY_BYTES]) -> String {
    let time = u128::from(now_ms & 0xFFFF_FFFF_FFFF);
    let rand = entropy.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
    crockford::encode_u128((time << 80) | rand)
}

fn parse_tagged(tag: &str, s: &str) -> Option<String> {
    let body = s.strip_prefix(tag)?;
    let canon = crockford::parse_symbols::<26>(body)?;
    // The first symbol carries only 3 bits (130-bit space, 128 used).
    if canon[0] > b'7' {
        return None;
    }
    Some(format!("{tag}{}", std::str::from_utf8(&canon).ok()?))
}

macro_rules! tagged_id {
    ($(#[$doc:meta])* $name:ident, $tag:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The tag every id of this kind starts with.
            pub const TAG: &'static str = $tag;

            /// A new id from the current time and 10 random bytes.
            pub fn generate(now_ms: u64, entropy: &[u8; ID_ENTROPY_BYTES]) -> Self {
                Self(format!("{}{}", $tag, sortable(now_ms, entropy)))
            }

            /// Parses an id (tag exact, symbols any case).
            pub fn parse(s: &str) -> Option<Self> {
                parse_tagged($tag, s).map(Self)
            }

            /// The canonical text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).ok_or_else(|| serde::de::Error::custom(concat!("invalid ", stringify!($name))))
            }
        }
    };
}

tagged_id!(
    /// An organisation (tenant).
    OrgId,
    "org_"
);
tagged_id!(
    /// One stored interaction; sorts by creation time.
    InteractionId,
    "int_"
);
tagged_id!(
    /// One HTTP request, echoed in `x-request-id` and error envelopes.
    RequestId,
    "req_"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn roundtrip(t in 0u64..(1 << 48), e in any::<[u8; ID_ENTROPY_BYTES]>()) {
            let id = InteractionId::generate(t, &e);
            prop_assert_eq!(id.as_str().len(), 30);
            prop_assert_eq!(InteractionId::parse(id.as_str()), Some(id.clone()));
            prop_assert_eq!(InteractionId::parse(&id.as_str().to_lowercase()), Some(id.clone()));
            prop_assert_eq!(OrgId::parse(id.as_str()), None);
        }

        #[test]
        fn sorts_by_time(a in 0u64..(1 << 47), d in 1u64..1000, e in any::<[u8; ID_ENTROPY_BYTES]>(), f in any::<[u8; ID_ENTROPY_BYTES]>()) {
            prop_assert!(InteractionId::generate(a, &e) < InteractionId::generate(a + d, &f));
        }
    }

    #[test]
    fn rejects_overflowing_first_symbol() {
        assert!(OrgId::parse(&format!("org_8{}", "0".repeat(25))).is_none());
        assert!(OrgId::parse(&format!("org_7{}", "Z".repeat(25))).is_some());
        assert!(OrgId::parse("org_").is_none());
    }
}
