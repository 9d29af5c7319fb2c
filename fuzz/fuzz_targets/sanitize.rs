//! The prompt sanitizer: `sanitize::sanitize` on arbitrary text (bytes read
//! as UTF-8, invalid sequences replaced).
//!
//! Properties beyond "never panics", the guarantees of `core/src/sanitize.rs`:
//! - the output never contains a control token: `contains_control_token` is
//!   false on it, whatever disguise the input used;
//! - sanitizing is idempotent: a second pass returns its input borrowed;
//! - text without a token comes back borrowed and unchanged, and text with
//!   one comes back changed.
#![no_main]

use interlog_core::sanitize::{contains_control_token, sanitize};
use libfuzzer_sys::fuzz_target;
use std::borrow::Cow;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let had_token = contains_control_token(&input);
    let out = sanitize(&input);
    assert_eq!(matches!(out, Cow::Borrowed(_)), !had_token, "borrowed iff no token, input {input:?}");
    assert!(!contains_control_token(&out), "token left in {out:?} (input {input:?})");
    let again = sanitize(&out);
    assert!(matches!(again, Cow::Borrowed(_)), "second pass changed {out:?} into {again:?}");
});
