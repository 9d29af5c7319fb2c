//! API keys: `ck_live_` + 26 Crockford symbols (130 random bits), and the
//! public 8-symbol prefix.

use crate::crockford;
use std::fmt;

/// Literal that starts every live key.
pub const LIVE_PREFIX: &str = "ck_live_";
/// Symbols after [`LIVE_PREFIX`].
pub const BODY_LEN: usize = 26;
/// Symbols of the public prefix.
pub const PREFIX_LEN: usize = 8;
/// Random bytes a key is made from (136 bits, of which the first 130 are used).
pub const ENTROPY_BYTES: usize = 17;

/// Why a presented key could not be parsed. Deliberately carries no detail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("malformed API key")]
pub struct MalformedKey;

/// A syntactically valid API key. The secret is only reachable through
/// [`ApiKey::expose_secret`]; `Debug` shows the public prefix only.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    body: [u8; BODY_LEN],
}

impl ApiKey {
    /// Builds a key from 17 random bytes (the adapter reads them from `getrandom`).
    pub fn from_entropy(entropy: &[u8; ENTROPY_BYTES]) -> Self {
        let encoded = crockford::encode_bits(entropy, BODY_LEN);
        let mut body = [0u8; BODY_LEN];
        body.copy_from_slice(encoded.as_bytes());
        Self { body }
    }

    /// Parses a presented key. Accepts any letter case, nothing else: no
    /// surrounding whitespace, no other prefixes, no `I L O U`, exact length.
    pub fn parse(s: &str) -> Result<Self, MalformedKey> {
        let rest = s.strip_prefix(LIVE_PREFIX).ok_or(MalformedKey)?;
        let body = crockford::parse_symbols::<BODY_LEN>(rest).ok_or(MalformedKey)?;
        Ok(Self { body })
    }

    /// The public prefix (first 8 symbols after `ck_live_`).
    pub fn prefix(&self) -> KeyPrefix {
        let mut p = [0u8; PREFIX_LEN];
        p.copy_from_slice(&self.body[..PREFIX_LEN]);
        KeyPrefix(p)
    }

    /// The canonical full key. Only for hashing and the one-time creation reply.
    pub fn expose_secret(&self) -> String {
        let mut s = String::with_capacity(LIVE_PREFIX.len() + BODY_LEN);
        s.push_str(LIVE_PREFIX);
        s.extend(self.body.iter().map(|b| *b as char));
        s
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}{}…)", LIVE_PREFIX, self.prefix())
    }
}

/// The public, unique 8-symbol key prefix (canonical upper case).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPrefix([u8; PREFIX_LEN]);

impl KeyPrefix {
    /// Parses a prefix as shown in listings (any case, exactly 8 symbols).
    pub fn parse(s: &str) -> Result<Self, MalformedKey> {
        crockford::parse_symbols::<PREFIX_LEN>(s).map(Self).ok_or(MalformedKey)
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        // Only ASCII symbols from the alphabet are ever stored.
        std::str::from_utf8(&self.0).unwrap_or("")
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPrefix({})", self.as_str())
    }
}

impl serde::Serialize for KeyPrefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for KeyPrefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key_of(e: [u8; ENTROPY_BYTES]) -> ApiKey {
        ApiKey::from_entropy(&e)
    }

    proptest! {
        // claim: posture.key-format
        #[test]
        fn generate_format_parse_roundtrip(e in any::<[u8; ENTROPY_BYTES]>()) {
            let key = key_of(e);
            let text = key.expose_secret();
            prop_assert_eq!(text.len(), LIVE_PREFIX.len() + BODY_LEN);
            prop_assert!(text[LIVE_PREFIX.len()..].bytes().all(|b| crockford::ALPHABET.contains(&b)));
            prop_assert_eq!(ApiKey::parse(&text).unwrap(), key.clone());
            prop_assert_eq!(ApiKey::parse(&text.to_ascii_lowercase()[..]).map(|k| k.expose_secret()), Ok(text.clone()));
            let prefix = key.prefix();
            prop_assert_eq!(&text[LIVE_PREFIX.len()..LIVE_PREFIX.len() + PREFIX_LEN], prefix.as_str());
        }

        // claim: posture.key-format
        #[test]
        fn case_mix_parses_to_canonical(e in any::<[u8; ENTROPY_BYTES]>(), mask in any::<u32>()) {
            let text = key_of(e).expose_secret();
            let mixed: String = text.char_indices().map(|(i, c)| {
                if i >= LIVE_PREFIX.len() && mask & (1 << (i % 32)) != 0 { c.to_ascii_lowercase() } else { c }
            }).collect();
            prop_assert_eq!(ApiKey::parse(&mixed).unwrap().expose_secret(), text);
        }

        // claim: posture.key-format
        #[test]
        fn wrong_length_is_malformed(e in any::<[u8; ENTROPY_BYTES]>(), cut in 0usize..BODY_LEN, extra in "[0-9A-Z]{1,5}") {
            let text = key_of(e).expose_secret();
            prop_assert_eq!(ApiKey::parse(&text[..LIVE_PREFIX.len() + cut]), Err(MalformedKey));
            prop_assert_eq!(ApiKey::parse(&format!("{text}{extra}")), Err(MalformedKey));
        }

        // claim: posture.key-format
        #[test]
        fn ambiguous_letters_are_malformed(e in any::<[u8; ENTROPY_BYTES]>(), pos in 0usize..BODY_LEN, bad in prop::sample::select(vec!['I','i','L','l','O','o','U','u'])) {
            let mut text: Vec<char> = key_of(e).expose_secret().chars().collect();
            text[LIVE_PREFIX.len() + pos] = bad;
            let text: String = text.into_iter().collect();
            prop_assert_eq!(ApiKey::parse(&text), Err(MalformedKey));
        }

        // claim: posture.key-format
        #[test]
        fn whitespace_and_unicode_are_malformed(e in any::<[u8; ENTROPY_BYTES]>(), pos in 0usize..=BODY_LEN,
            junk in prop::sample::select(vec![" ", "\t", "\n", "\u{00a0}", "\u{200b}", "\u{ff21}", "é", "\u{0410}", "-", "_", "="])) {
            let text = key_of(e).expose_secret();
            let at = LIVE_PREFIX.len() + pos;
            let inserted = format!("{}{}{}", &text[..at], junk, &text[at..]);
            prop_assert_eq!(ApiKey::parse(&inserted), Err(MalformedKey));
            // Replacing a symbol keeps the length in symbols but not in validity.
            if pos < BODY_LEN {
                let replaced = format!("{}{}{}", &text[..at], junk, &text[at + 1..]);
                prop_assert_eq!(ApiKey::parse(&replaced), Err(MalformedKey));
            }
            prop_assert_eq!(ApiKey::parse(&format!(" {text}")), Err(MalformedKey));
            prop_assert_eq!(ApiKey::parse(&format!("{text} ")), Err(MalformedKey));
        }

        // claim: posture.key-format
        #[test]
        fn other_prefixes_are_malformed(e in any::<[u8; ENTROPY_BYTES]>(),
            lit in prop::sample::select(vec!["ck_test_", "CK_LIVE_", "ck-live-", "ck_live", "sk_live_", "ck_live__", ""])) {
            let body = &key_of(e).expose_secret()[LIVE_PREFIX.len()..];
            prop_assert_eq!(ApiKey::parse(&format!("{lit}{body}")), Err(MalformedKey));
        }

        // claim: threat.parser-crash
        #[test]
        fn arbitrary_strings_never_panic(s in "\\PC{0,64}") {
            let _ = ApiKey::parse(&s);
            let _ = KeyPrefix::parse(&s);
        }
    }

    // claim: threat.key-leakage
    #[test]
    fn debug_hides_the_secret() {
        let key = key_of([0xAB; ENTROPY_BYTES]);
        let shown = format!("{key:?}");
        assert!(!shown.contains(&key.expose_secret()));
        assert!(shown.contains(key.prefix().as_str()));
    }

    // claim: owasp.api2, posture.key-format, threat.key-enumeration
    #[test]
    fn uses_130_bits() {
        // Bits past 130 do not change the key; bits before do.
        let mut a = [0u8; ENTROPY_BYTES];
        let b = a;
        a[16] = 0b0011_1111; // only bits 130..136
        assert_eq!(key_of(a), key_of(b));
        a[16] = 0b0100_0000; // bit 129
        assert_ne!(key_of(a), key_of(b));
    }

    #[test]
    fn prefix_parse() {
        assert_eq!(KeyPrefix::parse("abcd1234").unwrap().as_str(), "ABCD1234");
        assert!(KeyPrefix::parse("ABCD123").is_err());
        assert!(KeyPrefix::parse("ABCD123I").is_err());
    }
}
