//! Key parsing: `ApiKey::parse`, `KeyPrefix::parse`, `auth::parse_authorization`.
//!
//! Properties checked on every input, beyond "never panics":
//! - an accepted key is `ck_live_` + exactly 26 symbols, equal to the input up
//!   to letter case, and its canonical form parses back to the same key;
//! - an accepted prefix is 8 symbols equal to the input up to letter case;
//! - an accepted `Authorization` value names a key that `ApiKey::parse` accepts
//!   from the value's tail, and the scheme is `Bearer` (any case).
#![no_main]

use interlog_core::auth::{parse_authorization, AuthFailure};
use interlog_core::crockford::ALPHABET;
use interlog_core::key::{ApiKey, KeyPrefix, BODY_LEN, LIVE_PREFIX, PREFIX_LEN};
use libfuzzer_sys::fuzz_target;

fn canonical_body(s: &str) -> bool {
    s.len() == BODY_LEN && s.bytes().all(|b| ALPHABET.contains(&b))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };

    if let Ok(key) = ApiKey::parse(s) {
        let canon = key.expose_secret();
        assert_eq!(canon.len(), LIVE_PREFIX.len() + BODY_LEN);
        assert!(canon.starts_with(LIVE_PREFIX));
        assert!(canonical_body(&canon[LIVE_PREFIX.len()..]), "non-canonical body {canon:?}");
        assert!(canon.eq_ignore_ascii_case(s), "{s:?} parsed to {canon:?}");
        assert!(s.starts_with(LIVE_PREFIX), "the literal is lower case only: {s:?}");
        assert_eq!(ApiKey::parse(&canon).as_ref(), Ok(&key));
        assert_eq!(key.prefix().as_str(), &canon[LIVE_PREFIX.len()..LIVE_PREFIX.len() + PREFIX_LEN]);
        assert_eq!(KeyPrefix::parse(key.prefix().as_str()), Ok(key.prefix()));
        // Debug never shows more than the public prefix.
        let dbg = format!("{key:?}");
        assert!(!dbg.contains(&canon[LIVE_PREFIX.len() + PREFIX_LEN..]), "{dbg}");
    }

    if let Ok(prefix) = KeyPrefix::parse(s) {
        assert_eq!(prefix.as_str().len(), PREFIX_LEN);
        assert!(prefix.as_str().eq_ignore_ascii_case(s));
        assert_eq!(KeyPrefix::parse(prefix.as_str()), Ok(prefix));
    }

    match parse_authorization(Some(s)) {
        Ok(key) => {
            let (scheme, rest) = s.split_once(' ').expect("accepted without a space");
            assert!(scheme.eq_ignore_ascii_case("bearer"), "scheme {scheme:?}");
            assert_eq!(ApiKey::parse(rest.trim_start_matches(' ')).as_ref(), Ok(&key));
        }
        Err(f) => assert_eq!(f, AuthFailure::Malformed, "a present header is never {f:?}"),
    }
    assert_eq!(parse_authorization(None).err(), Some(AuthFailure::Missing));
});
