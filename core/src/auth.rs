//! Authentication rules: reading the bearer credential, the failure reasons
//! (which are the audit reasons), and the live-state decision the OrgActor makes.

use crate::key::{ApiKey, KeyPrefix};
use crate::scope::{Scope, Scopes};
use serde::{Deserialize, Serialize};

/// No auth decision is answered sooner than this after the request arrived.
pub const AUTH_FLOOR_MS: u64 = 80;

/// Looked up instead of a real prefix when none parsed, so every outcome runs
/// the same query. It can never match: `-` is not a Crockford symbol.
pub const DUMMY_LOOKUP_PREFIX: &str = "--------";

/// Why a credential was refused. Each variant is an audit reason; the client
/// always sees the same 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// Not `Bearer <ck_live_…>` with a well-formed key.
    Malformed,
    /// Well-formed key whose prefix is not on record.
    UnknownPrefix,
    /// Prefix on record, secret does not match.
    WrongHash,
    /// The key was revoked (or its rotation grace ended).
    Revoked,
    /// The key's `expires_at` has passed.
    Expired,
}

impl AuthFailure {
    /// Every reason.
    pub const ALL: [AuthFailure; 6] = [
        AuthFailure::Missing,
        AuthFailure::Malformed,
        AuthFailure::UnknownPrefix,
        AuthFailure::WrongHash,
        AuthFailure::Revoked,
        AuthFailure::Expired,
    ];

    /// The `audit_log.reason` text.
    pub fn reason(self) -> &'static str {
        match self {
            AuthFailure::Missing => "missing",
            AuthFailure::Malformed => "malformed",
            AuthFailure::UnknownPrefix => "unknown_prefix",
            AuthFailure::WrongHash => "wrong_hash",
            AuthFailure::Revoked => "revoked",
            AuthFailure::Expired => "expired",
        }
    }
}

/// Reads `Authorization: Bearer <key>` (scheme case-insensitive, one or more
/// spaces). Anything else is `Malformed`; no header is `Missing`.
pub fn parse_authorization(header: Option<&str>) -> Result<ApiKey, AuthFailure> {
    let value = header.ok_or(AuthFailure::Missing)?;
    let (scheme, rest) = value.split_once(' ').ok_or(AuthFailure::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::Malformed);
    }
    ApiKey::parse(rest.trim_start_matches(' ')).map_err(|_| AuthFailure::Malformed)
}

/// Whether a key is usable, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStatus {
    Active,
    Revoked,
}

impl KeyStatus {
    /// Storage text.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "active",
            KeyStatus::Revoked => "revoked",
        }
    }

    /// Parses the storage text.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(KeyStatus::Active),
            "revoked" => Some(KeyStatus::Revoked),
            _ => None,
        }
    }
}

/// The live state of one key, as the OrgActor holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyState {
    pub prefix: KeyPrefix,
    pub scopes: Scopes,
    pub status: KeyStatus,
    /// Unix ms after which the key no longer works (inclusive bound).
    pub expires_at: Option<i64>,
}

/// The OrgActor's answer for a hash-verified key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Live and holding the scope.
    Granted,
    /// Not live: answered with the uniform 401.
    Denied(AuthFailure),
    /// Live but lacking the scope: 403.
    MissingScope(Scope),
}

impl KeyState {
    /// Decides access at `now_ms` for a route needing `scope` (if any).
    pub fn access(&self, scope: Option<Scope>, now_ms: i64) -> Access {
        if self.status == KeyStatus::Revoked {
            return Access::Denied(AuthFailure::Revoked);
        }
        if self.expires_at.is_some_and(|exp| now_ms >= exp) {
            return Access::Denied(AuthFailure::Expired);
        }
        match scope {
            Some(s) if !self.scopes.contains(s) => Access::MissingScope(s),
            _ => Access::Granted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::ENTROPY_BYTES;

    fn key_text() -> String {
        ApiKey::from_entropy(&[7; ENTROPY_BYTES]).expose_secret()
    }

    #[test]
    fn authorization_header_shapes() {
        let k = key_text();
        assert!(parse_authorization(Some(&format!("Bearer {k}"))).is_ok());
        assert!(parse_authorization(Some(&format!("bearer {k}"))).is_ok());
        assert!(parse_authorization(Some(&format!("BEARER  {k}"))).is_ok());
        assert_eq!(parse_authorization(None), Err(AuthFailure::Missing));
        for bad in [
            String::new(),
            "Bearer".into(),
            format!("Basic {k}"),
            format!("Bearer{k}"),
            format!("Bearer {k} "),
            format!("Bearer {k}x"),
            format!("Token {k}"),
            k.clone(),
        ] {
            assert_eq!(parse_authorization(Some(&bad)), Err(AuthFailure::Malformed), "{bad:?}");
        }
    }

    // claim: posture.auth-envelope
    #[test]
    fn reasons_are_distinct() {
        let mut r: Vec<_> = AuthFailure::ALL.iter().map(|f| f.reason()).collect();
        r.sort();
        r.dedup();
        assert_eq!(r.len(), AuthFailure::ALL.len());
    }

    // claim: owasp.api5, threat.scope-escalation
    #[test]
    fn access_rules() {
        let prefix = KeyPrefix::parse("ABCDEFGH").unwrap();
        let mut k = KeyState {
            prefix,
            scopes: [Scope::Read].into_iter().collect(),
            status: KeyStatus::Active,
            expires_at: Some(1_000),
        };
        assert_eq!(k.access(Some(Scope::Read), 999), Access::Granted);
        assert_eq!(k.access(None, 999), Access::Granted);
        assert_eq!(k.access(Some(Scope::Admin), 999), Access::MissingScope(Scope::Admin));
        assert_eq!(k.access(Some(Scope::Read), 1_000), Access::Denied(AuthFailure::Expired));
        k.status = KeyStatus::Revoked;
        assert_eq!(k.access(Some(Scope::Read), 0), Access::Denied(AuthFailure::Revoked));
    }
}
