//! Millisecond timestamps to and from RFC 3339 text (UTC, millisecond precision).

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `1970-01-01T00:00:00.000Z` style text for a Unix time in milliseconds.
/// Values outside the representable range render as the epoch.
pub fn rfc3339(ms: i64) -> String {
    let dt =
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");
    dt.format(&fmt).unwrap_or_else(|_| "1970-01-01T00:00:00.000Z".into())
}

/// Parses RFC 3339 text (any offset) into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(dt.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        let t = 1_764_000_000_123;
        assert_eq!(parse_rfc3339(&rfc3339(t)), Some(t));
        assert_eq!(parse_rfc3339("2026-11-29T02:00:00+01:00"), parse_rfc3339("2026-11-29T01:00:00Z"));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
