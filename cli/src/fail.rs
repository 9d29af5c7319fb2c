//! A command's failure: a stable code and a message, printed as one line on
//! stderr (as JSON with `--json`); the process exits 1.

use serde_json::json;
use std::borrow::Cow;

/// Why a command could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `VALIDATION_FAILED`, `NOT_FOUND`, `CONFLICT` (a shard closed to new
    /// orgs), `UNAVAILABLE` (wrangler or D1), `RECONCILE_FAILED` (the Worker
    /// was not told), `INTERNAL`, or the Worker's own code for a refused move
    /// step (`UNAUTHORIZED`, `NOT_FOUND`, `VALIDATION_FAILED`, `CONFLICT`, …).
    pub code: Cow<'static, str>,
    pub message: String,
}

impl Failure {
    /// A value the rules refuse.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self { code: "VALIDATION_FAILED".into(), message: message.into() }
    }

    /// No such org or key.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { code: "NOT_FOUND".into(), message: message.into() }
    }

    /// wrangler or D1 failed.
    pub fn storage(message: impl Into<String>) -> Self {
        Self { code: "UNAVAILABLE".into(), message: message.into() }
    }

    /// The change is stored but the Worker was not told.
    pub fn reconcile(message: impl Into<String>) -> Self {
        Self { code: "RECONCILE_FAILED".into(), message: message.into() }
    }

    /// Anything else (no randomness, no clock).
    pub fn internal(message: impl Into<String>) -> Self {
        Self { code: "INTERNAL".into(), message: message.into() }
    }

    /// A state that refuses the change (a closed shard).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self { code: "CONFLICT".into(), message: message.into() }
    }

    /// A failure with a code of the Worker's error envelope.
    pub fn coded(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }

    /// The stderr line: `{"error":{"code","message"}}` with `--json`, else text.
    pub fn line(&self, json: bool) -> String {
        error_line(&self.code, &self.message, json)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::invalid(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::invalid(message)
    }
}

/// One stderr line for `code` and `message`.
pub fn error_line(code: &str, message: &str, json: bool) -> String {
    if json {
        json!({ "error": { "code": code, "message": message } }).to_string()
    } else {
        format!("interlog-admin: {message}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_errors_are_one_line() {
        let line = Failure::not_found("no org\norg_x").line(true);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["error"]["code"], "NOT_FOUND");
        assert_eq!(v["error"]["message"], "no org\norg_x");
        assert_eq!(Failure::invalid("x").line(false), "interlog-admin: x");
    }
}
