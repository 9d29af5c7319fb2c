//! What the commands take from the machine: the pepper (from the
//! environment), randomness and the clock.

use crate::fail::Failure;
use interlog_core::Pepper;
use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// `N` random bytes from the operating system.
pub fn random<const N: usize>() -> Result<[u8; N], Failure> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| Failure::internal(format!("getrandom: {e}")))?;
    Ok(b)
}

/// The pepper the Worker holds: `INTERLOG_PEPPER` (version
/// `INTERLOG_PEPPER_VERSION`, default 1).
pub fn pepper() -> Result<Pepper, Failure> {
    let secret = std::env::var("INTERLOG_PEPPER").map_err(|_| Failure::invalid("INTERLOG_PEPPER is not set"))?;
    let version = std::env::var("INTERLOG_PEPPER_VERSION")
        .unwrap_or_else(|_| "1".into())
        .parse()
        .map_err(|_| Failure::invalid("INTERLOG_PEPPER_VERSION must be a number"))?;
    Pepper::new(version, secret).map_err(|e| Failure::invalid(e.to_string()))
}
