//! Cursor decoding: `cursor::CursorKey::decode` on arbitrary text, plus the
//! tamper-evidence of cursors the server itself minted.
//!
//! Properties beyond "never panics":
//! - a cursor the fuzzer wrote from scratch is accepted only if it is exactly
//!   what `encode` gives for the position it decodes to (no forgery without
//!   the key: the MAC would have to be guessed);
//! - a minted cursor (≤ the length cap) decodes to its position for its own
//!   scope, and is refused for any other scope or key;
//! - any single-byte edit of a minted cursor is refused.
#![no_main]

use arbitrary::Arbitrary;
use interlog_core::cursor::{CursorKey, PagePosition, MAX_CURSOR_LEN};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input<'a> {
    key: [u8; 32],
    scope: &'a str,
    other_scope: &'a str,
    at: i64,
    id: &'a str,
    edit_at: u16,
    edit_to: u8,
    raw: &'a str,
}

fuzz_target!(|input: Input<'_>| {
    let key = CursorKey::new(input.key);

    // Arbitrary text: refused, or exactly a cursor this key minted.
    if let Ok(pos) = key.decode(input.scope, input.raw) {
        assert_eq!(key.encode(input.scope, &pos), input.raw, "accepted a cursor the key never minted");
    }

    // A minted cursor: round trip, bound to its scope and key.
    let pos = PagePosition { at: input.at, id: input.id.to_string() };
    let cursor = key.encode(input.scope, &pos);
    if cursor.len() > MAX_CURSOR_LEN {
        assert!(key.decode(input.scope, &cursor).is_err());
        return;
    }
    assert_eq!(key.decode(input.scope, &cursor), Ok(pos));
    if input.other_scope != input.scope {
        assert!(key.decode(input.other_scope, &cursor).is_err(), "cursor replayed into another scope");
    }
    let mut other_key = input.key;
    other_key[usize::from(input.edit_to) % 32] ^= 1;
    assert!(CursorKey::new(other_key).decode(input.scope, &cursor).is_err(), "cursor accepted under another key");

    // One byte changed anywhere: refused.
    let mut bytes = cursor.clone().into_bytes();
    let i = usize::from(input.edit_at) % bytes.len();
    if bytes[i] != input.edit_to {
        bytes[i] = input.edit_to;
        if let Ok(edited) = String::from_utf8(bytes) {
            assert!(key.decode(input.scope, &edited).is_err(), "edited cursor {edited:?} accepted");
        }
    }
});
