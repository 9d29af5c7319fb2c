//! The error enum every layer returns, its envelope code and public message;
//! the Worker's `respond` module is the one place that picks its HTTP status.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// An API failure. Public text comes from [`ApiError::public_message`]; the
/// `detail` of `Internal`/`Unavailable` is for logs only.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ApiError {
    #[error("invalid or missing API key")]
    Unauthorized,
    #[error("forbidden: {message}")]
    Forbidden { message: String },
    #[error("not found")]
    NotFound,
    #[error("method not allowed")]
    MethodNotAllowed { allow: Vec<String> },
    #[error("validation failed: {message}")]
    Validation {
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        details: Option<Value>,
    },
    #[error("conflict: {message}")]
    Conflict { message: String },
    #[error("payload too large (limit {limit} bytes)")]
    PayloadTooLarge { limit: u64 },
    #[error("unsupported media type")]
    UnsupportedMediaType,
    #[error("rate limited")]
    RateLimited { retry_after_s: u64, tier: RateTier },
    /// The org's stored-data quota would be crossed: the write is refused
    /// whole. The message names the quotas in force.
    #[error("quota exceeded ({quota_rows} rows, {quota_bytes} bytes)")]
    QuotaExceeded { quota_rows: u64, quota_bytes: u64 },
    #[error("internal error: {detail}")]
    Internal { detail: String },
    #[error("unavailable: {detail}")]
    Unavailable { retry_after_s: u64, detail: String },
}

/// Which rate limit refused a request; its 429 message names it (as the
/// `RateLimit-Policy` header does).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateTier {
    /// L1, per client IP (IPv6 per /64).
    PerIp,
    /// L1, per IPv6 /48.
    Per48,
    /// L2, per API key.
    PerKey,
}

impl RateTier {
    /// Its name in `RateLimit-Policy` / `RateLimit` headers.
    pub fn policy(self) -> &'static str {
        match self {
            RateTier::PerIp => "per-ip",
            RateTier::Per48 => "per-48",
            RateTier::PerKey => "per-key",
        }
    }

    /// The client's message: which budget ran out and what to do.
    pub fn message(self) -> &'static str {
        match self {
            RateTier::PerIp => {
                "rate limit exceeded for this client address (60 requests / 60 s before authentication); \
                 retry after Retry-After seconds, batch writes with POST /v1/interactions/batch"
            }
            RateTier::Per48 => {
                "rate limit exceeded for this IPv6 /48 network (600 requests / 60 s before authentication); \
                 retry after Retry-After seconds"
            }
            RateTier::PerKey => "rate limit exceeded for this API key; retry after Retry-After seconds",
        }
    }
}

impl ApiError {
    /// Shorthand for an internal error with a log-only detail.
    pub fn internal(detail: impl Into<String>) -> Self {
        ApiError::Internal { detail: detail.into() }
    }

    /// Shorthand for a validation error without details.
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Validation { message: message.into(), details: None }
    }

    /// Envelope `code`.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::Unauthorized => "UNAUTHORIZED",
            ApiError::Forbidden { .. } => "FORBIDDEN",
            ApiError::NotFound => "NOT_FOUND",
            ApiError::MethodNotAllowed { .. } => "METHOD_NOT_ALLOWED",
            ApiError::Validation { .. } => "VALIDATION_FAILED",
            ApiError::Conflict { .. } => "CONFLICT",
            ApiError::PayloadTooLarge { .. } => "PAYLOAD_TOO_LARGE",
            ApiError::UnsupportedMediaType => "UNSUPPORTED_MEDIA_TYPE",
            ApiError::RateLimited { .. } => "RATE_LIMITED",
            ApiError::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            ApiError::Internal { .. } => "INTERNAL",
            ApiError::Unavailable { .. } => "UNAVAILABLE",
        }
    }

    /// The message a client sees: never internal detail.
    pub fn public_message(&self) -> String {
        match self {
            ApiError::Unauthorized => "invalid or missing API key".into(),
            ApiError::Forbidden { message } | ApiError::Validation { message, .. } | ApiError::Conflict { message } => {
                message.clone()
            }
            ApiError::NotFound => "resource not found".into(),
            ApiError::MethodNotAllowed { .. } => "method not allowed on this resource".into(),
            ApiError::PayloadTooLarge { limit } => {
                format!("request body exceeds the limit of {limit} bytes")
            }
            ApiError::UnsupportedMediaType => "request body must be application/json".into(),
            ApiError::RateLimited { tier, .. } => tier.message().into(),
            ApiError::QuotaExceeded { quota_rows, quota_bytes } => format!(
                "the organisation's storage quota ({quota_rows} interactions, {quota_bytes} bytes) would be \
                 exceeded; nothing was stored. Erase interactions or ask the operator to raise the quota"
            ),
            ApiError::Internal { .. } => "internal error".into(),
            ApiError::Unavailable { .. } => "service temporarily unavailable; retry later".into(),
        }
    }

    /// `Retry-After` seconds, where the error has one.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::RateLimited { retry_after_s, .. } | ApiError::Unavailable { retry_after_s, .. } => {
                Some(*retry_after_s)
            }
            _ => None,
        }
    }

    /// The JSON envelope `{"error":{code,message,request_id,details?}}`.
    pub fn envelope(&self, request_id: &str) -> Value {
        let mut error = json!({
            "code": self.code(),
            "message": self.public_message(),
            "request_id": request_id,
        });
        if let ApiError::Validation { details: Some(d), .. } = self {
            error["details"] = d.clone();
        }
        json!({ "error": error })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // claim: posture.auth-envelope
    #[test]
    fn unauthorized_envelope_is_the_documented_one() {
        let v = ApiError::Unauthorized.envelope("req_1");
        assert_eq!(
            v.to_string(),
            r#"{"error":{"code":"UNAUTHORIZED","message":"invalid or missing API key","request_id":"req_1"}}"#
        );
    }

    // claim: owasp.api3, owasp.api8, posture.auth-envelope
    #[test]
    fn internal_detail_never_public() {
        let e = ApiError::internal("D1_ERROR: secret table name");
        assert!(!e.envelope("r").to_string().contains("D1_ERROR"));
        assert_eq!(e.code(), "INTERNAL");
    }

    #[test]
    fn quota_exceeded_envelope_names_the_quota() {
        let v = ApiError::QuotaExceeded { quota_rows: 10, quota_bytes: 2048 }.envelope("r");
        assert_eq!(v["error"]["code"], "QUOTA_EXCEEDED");
        assert_eq!(v["error"].get("details"), None);
        assert!(v["error"]["message"].as_str().unwrap().contains("10 interactions, 2048 bytes"));
    }

    #[test]
    fn serde_roundtrip() {
        let e = ApiError::Validation { message: "type: required".into(), details: Some(json!([1])) };
        let back: ApiError = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.envelope("r")["error"]["details"], json!([1]));
    }
}
