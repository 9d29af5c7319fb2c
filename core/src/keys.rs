//! Key management requests (`POST /v1/keys`, rotate) and the key resource as
//! listed. Key material is minted by the front Worker; the actor stores it.

use crate::auth::{KeyState, KeyStatus};
use crate::field_errors::FieldErrors;
use crate::key::KeyPrefix;
use crate::scope::{Scope, Scopes};
use crate::timefmt::{parse_rfc3339, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body cap of key and org management requests.
pub const MANAGEMENT_BODY_LIMIT: u64 = 64 * 1024;
/// Longest rotation grace period (30 days).
pub const MAX_GRACE_SECONDS: i64 = 30 * 24 * 3600;

/// SQLite's message for a key prefix already taken (`api_keys.prefix` is the
/// table's primary key), as D1 and `wrangler d1 execute` report it.
pub const PREFIX_UNIQUE_VIOLATION: &str = "UNIQUE constraint failed: api_keys.prefix";

/// Whether a storage error says the new key's prefix is taken: the one place
/// that reads that text.
pub fn is_prefix_collision(message: &str) -> bool {
    message.contains(PREFIX_UNIQUE_VIOLATION)
}

/// A validated `POST /v1/keys` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRequest {
    pub name: String,
    pub scopes: Scopes,
    pub expires_at: Option<i64>,
}

/// Newly minted key material: what the actor stores (never the plaintext).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyMaterial {
    pub prefix: KeyPrefix,
    pub hash: String,
    pub pepper_version: u32,
}

fn field_err(field: &str, message: &str) -> (String, String) {
    (field.to_string(), message.to_string())
}

/// Validates a key name.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err("must be 1-128 characters without control characters".into());
    }
    Ok(())
}

/// Validates `POST /v1/keys` at `now_ms`: `{name, scopes, expires_at?}`.
/// Problems are collected with a bound (see [`FieldErrors`]).
pub fn parse_key_request(v: &Value, now_ms: i64) -> Result<KeyRequest, FieldErrors> {
    let Some(obj) = v.as_object() else { return Err(FieldErrors::one("", "must be a JSON object")) };
    let mut errs = FieldErrors::new();
    for k in obj.keys().filter(|k| !["name", "scopes", "expires_at"].contains(&k.as_str())) {
        errs.push(k, "unknown field");
    }
    let name = match obj.get("name") {
        Some(Value::String(s)) => {
            if let Err(m) = check_name(s) {
                errs.push("name", m);
            }
            s.clone()
        }
        _ => {
            errs.push("name", "is required and must be a string");
            String::new()
        }
    };
    let mut scopes = Scopes::default();
    match obj.get("scopes").and_then(Value::as_array) {
        Some(list) if !list.is_empty() => {
            for s in list {
                match s.as_str().and_then(Scope::parse) {
                    Some(x) => scopes = scopes.iter().chain([x]).collect(),
                    None => errs.push("scopes", "each scope must be one of ingest, read, admin"),
                }
            }
        }
        _ => errs.push("scopes", "is required: a non-empty array of ingest, read, admin"),
    }
    let expires_at = match obj.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => match parse_rfc3339(s) {
            Some(t) if t > now_ms => Some(t),
            Some(_) => {
                errs.push("expires_at", "must be in the future");
                None
            }
            None => {
                errs.push("expires_at", "must be an RFC 3339 date-time");
                None
            }
        },
        Some(_) => {
            errs.push("expires_at", "must be an RFC 3339 date-time string");
            None
        }
    };
    errs.into_result(KeyRequest { name, scopes, expires_at })
}

/// Validates a rotate body `{"grace_seconds": N}` (0 to 30 days); returns ms.
pub fn parse_grace(v: &Value) -> Result<i64, Vec<(String, String)>> {
    let Some(obj) = v.as_object() else { return Err(vec![field_err("", "must be a JSON object")]) };
    if let Some(k) = obj.keys().find(|k| k.as_str() != "grace_seconds") {
        return Err(vec![field_err(k, "unknown field")]);
    }
    // An integer in JSON Schema's sense: `60` and `60.0` are the same number.
    let whole =
        |v: &Value| v.as_i64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= 1e15).map(|f| f as i64));
    match obj.get("grace_seconds").and_then(whole) {
        Some(g) if (0..=MAX_GRACE_SECONDS).contains(&g) => Ok(g * 1000),
        _ => Err(vec![field_err("grace_seconds", "is required: an integer from 0 to 2592000 (30 days)")]),
    }
}

/// The expiry of a rotated-out key: the grace end, never past its own expiry.
pub fn rotated_expiry(own_expiry: Option<i64>, now_ms: i64, grace_ms: i64) -> i64 {
    let end = now_ms.saturating_add(grace_ms);
    own_expiry.map_or(end, |e| e.min(end))
}

/// A key's state as listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyViewState {
    Active,
    Revoked,
    Expired,
}

/// A key as `GET /v1/keys` shows it (never a hash or plaintext).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyView {
    pub prefix: KeyPrefix,
    pub name: String,
    pub scopes: Scopes,
    pub created_at: String,
    pub last_used_at: Option<String>,
    pub expires_at: Option<String>,
    pub state: KeyViewState,
    pub replaced_by: Option<String>,
}

/// Stored columns of one key plus its live state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRecord {
    pub state: KeyState,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub replaced_by: Option<String>,
}

impl KeyRecord {
    /// A key stored at `created_at`: active, never used, not replaced.
    pub fn new_active(
        prefix: KeyPrefix,
        name: String,
        scopes: Scopes,
        expires_at: Option<i64>,
        created_at: i64,
    ) -> Self {
        Self {
            state: KeyState { prefix, scopes, status: KeyStatus::Active, expires_at },
            name,
            created_at,
            last_used_at: None,
            replaced_by: None,
        }
    }

    /// The listing view at `now_ms`.
    pub fn view(&self, now_ms: i64) -> KeyView {
        let s = &self.state;
        let state = match (s.status, s.expires_at) {
            (KeyStatus::Revoked, _) => KeyViewState::Revoked,
            (_, Some(e)) if now_ms >= e => KeyViewState::Expired,
            _ => KeyViewState::Active,
        };
        KeyView {
            prefix: s.prefix,
            name: self.name.clone(),
            scopes: s.scopes,
            created_at: rfc3339(self.created_at),
            last_used_at: self.last_used_at.map(rfc3339),
            expires_at: s.expires_at.map(rfc3339),
            state,
            replaced_by: self.replaced_by.clone(),
        }
    }

    /// Live (not revoked, not expired) at `now_ms`.
    pub fn is_live(&self, now_ms: i64) -> bool {
        self.view(now_ms).state == KeyViewState::Active
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn key_request_valid() {
        let r = parse_key_request(&json!({"name": "ci", "scopes": ["read", "ingest"]}), NOW).unwrap();
        assert_eq!(r.scopes.to_db(), "ingest,read");
        assert_eq!(r.expires_at, None);
    }

    // claim: owasp.api3
    #[test]
    fn key_request_errors_name_fields() {
        let e =
            parse_key_request(&json!({"scopes": [], "expires_at": "2000-01-01T00:00:00Z", "x": 1}), NOW).unwrap_err();
        let mut f: Vec<_> = e.iter().map(|x| x.field.as_str()).collect();
        f.sort();
        assert_eq!(f, vec!["expires_at", "name", "scopes", "x"]);
        assert!(parse_key_request(&json!({"name": "a", "scopes": ["root"]}), NOW).is_err());
    }

    #[test]
    fn key_request_errors_are_bounded() {
        let scopes = vec![json!("root"); 10_000];
        let e = parse_key_request(&json!({"name": "a", "scopes": scopes, "x".repeat(100_000): 1}), NOW).unwrap_err();
        assert_eq!(e.total(), 10_001);
        assert_eq!(e.kept().len(), crate::field_errors::MAX_FIELD_ERRORS);
        assert!(e.iter().all(|x| x.field.len() < 100));
    }

    #[test]
    fn grace_accepts_a_float_with_zero_fraction() {
        assert_eq!(parse_grace(&json!({"grace_seconds": 2_592_000.0})), Ok(2_592_000_000));
        assert_eq!(parse_grace(&json!({"grace_seconds": 60.0})), Ok(60_000));
        assert_eq!(parse_grace(&json!({"grace_seconds": 0.0})), Ok(0));
        let body: Value = serde_json::from_str(r#"{"grace_seconds": 6e1}"#).unwrap();
        assert_eq!(parse_grace(&body), Ok(60_000));
        for bad in [json!(60.5), json!(-1.0), json!(2_592_001.0), json!(1e300), json!("60"), json!(true)] {
            assert!(parse_grace(&json!({ "grace_seconds": bad })).is_err(), "{bad}");
        }
    }

    #[test]
    fn grace_bounds() {
        assert_eq!(parse_grace(&json!({"grace_seconds": 0})), Ok(0));
        assert_eq!(parse_grace(&json!({"grace_seconds": 60})), Ok(60_000));
        assert!(parse_grace(&json!({"grace_seconds": -1})).is_err());
        assert!(parse_grace(&json!({"grace_seconds": MAX_GRACE_SECONDS + 1})).is_err());
        assert!(parse_grace(&json!({})).is_err());
    }

    #[test]
    fn rotated_expiry_never_past_own() {
        assert_eq!(rotated_expiry(None, NOW, 1000), NOW + 1000);
        assert_eq!(rotated_expiry(Some(NOW + 500), NOW, 1000), NOW + 500);
        assert_eq!(rotated_expiry(Some(NOW + 5000), NOW, 1000), NOW + 1000);
    }
}
