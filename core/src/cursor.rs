//! Opaque, tamper-evident page cursors. A cursor names the last item of a page
//! (`occurred_at`, `id`) and is MACed together with its scope (the org and the
//! listing's filters), so it cannot be forged, altered, or replayed against
//! another org or other filters.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Longest cursor text accepted.
pub const MAX_CURSOR_LEN: usize = 200;
const MAC_LEN: usize = 16;

/// Position after which the next page starts (newest-first order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PagePosition {
    pub at: i64,
    pub id: String,
}

/// Why a cursor was refused (deliberately without detail).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("invalid cursor")]
pub struct InvalidCursor;

/// The secret that signs cursors (derived from the pepper by the adapter).
#[derive(Clone)]
pub struct CursorKey([u8; 32]);

impl CursorKey {
    /// Wraps 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    fn mac(&self, scope: &str, payload: &[u8]) -> [u8; MAC_LEN] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        m.update(scope.as_bytes());
        m.update(&[0]);
        m.update(payload);
        let full = m.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    /// Encodes `pos` for `scope`.
    pub fn encode(&self, scope: &str, pos: &PagePosition) -> String {
        let payload = format!("{}.{}", pos.at, pos.id);
        let mac = self.mac(scope, payload.as_bytes());
        format!("{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(mac))
    }

    /// Decodes a cursor minted for exactly this `scope`.
    pub fn decode(&self, scope: &str, cursor: &str) -> Result<PagePosition, InvalidCursor> {
        if cursor.len() > MAX_CURSOR_LEN {
            return Err(InvalidCursor);
        }
        let (p, m) = cursor.split_once('.').ok_or(InvalidCursor)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| InvalidCursor)?;
        let mac = URL_SAFE_NO_PAD.decode(m).map_err(|_| InvalidCursor)?;
        if mac.len() != MAC_LEN || !bool::from(self.mac(scope, &payload).ct_eq(&mac[..])) {
            return Err(InvalidCursor);
        }
        let text = std::str::from_utf8(&payload).map_err(|_| InvalidCursor)?;
        let (at, id) = text.split_once('.').ok_or(InvalidCursor)?;
        Ok(PagePosition { at: at.parse().map_err(|_| InvalidCursor)?, id: id.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(b: u8) -> CursorKey {
        CursorKey::new([b; 32])
    }

    proptest! {
        #[test]
        fn roundtrip(at in any::<i64>(), id in "[a-zA-Z0-9_]{0,40}", scope in "\\PC{0,40}") {
            let pos = PagePosition { at, id };
            let c = key(1).encode(&scope, &pos);
            prop_assert!(c.len() <= MAX_CURSOR_LEN);
            prop_assert_eq!(key(1).decode(&scope, &c), Ok(pos));
        }

        // claim: owasp.api1, posture.tenancy
        #[test]
        fn other_scope_or_key_rejected(at in any::<i64>(), scope in "[a-z]{1,10}") {
            let pos = PagePosition { at, id: "int_x".into() };
            let c = key(1).encode(&scope, &pos);
            prop_assert_eq!(key(1).decode(&format!("{scope}x"), &c), Err(InvalidCursor));
            prop_assert_eq!(key(2).decode(&scope, &c), Err(InvalidCursor));
        }

        // claim: threat.cursor-forgery
        #[test]
        fn any_single_edit_rejected(at in any::<i64>(), pos_i in 0usize..64, ch in "[A-Za-z0-9_.-]") {
            let c = key(1).encode("s", &PagePosition { at, id: "int_abc".into() });
            let i = pos_i % c.len();
            let mut edited: Vec<char> = c.chars().collect();
            let new = ch.chars().next().unwrap_or('A');
            prop_assume!(edited[i] != new);
            edited[i] = new;
            let edited: String = edited.into_iter().collect();
            prop_assert_eq!(key(1).decode("s", &edited), Err(InvalidCursor));
        }

        // claim: threat.parser-crash
        #[test]
        fn garbage_never_panics(s in "\\PC{0,300}") {
            let _ = key(1).decode("s", &s);
        }
    }
}
