//! The front Worker ↔ OrgActor protocol: one JSON request per `fetch` to the
//! org's Durable Object, one JSON reply. Defined once, here.

use crate::auth::AuthFailure;
use crate::cursor::PagePosition;
use crate::error::ApiError;
use crate::ids::OrgId;
use crate::interaction::NewInteraction;
use crate::key::KeyPrefix;
use crate::keys::{KeyMaterial, KeyRequest};
use crate::listing::{AlertFilter, AuditFilter, InteractionFilter};
use crate::origin::Origin;
use crate::scope::Scope;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Header carrying the [`DoRequest`] when the call's body is the client's own
/// body (so that body is parsed once, in the actor).
pub const CALL_HEADER: &str = "x-interlog-call";

/// URL the front Worker posts [`DoRequest`]s to (the host is never resolved).
pub const ORG_ACTOR_URL: &str = "https://org-actor.internal/rpc";

/// Who is calling, as established by the front Worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Caller {
    /// A key whose hash verified; the actor still checks it is live and scoped.
    /// `rehash` carries a digest under the current pepper when the stored one
    /// was made with the previous pepper.
    Key {
        prefix: KeyPrefix,
        scope: Scope,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rehash: Option<KeyMaterial>,
    },
    /// A key of this org whose hash did not verify: record it, nothing else.
    FailedKey { prefix: KeyPrefix, reason: AuthFailure },
}

/// What the caller asks the actor to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Op {
    /// Record a credential failure (used with [`Caller::FailedKey`]).
    RecordAuthFailure,
    /// Nothing but the key checks (liveness, scope, L2, origin): 204.
    Ping,
    /// `GET /v1/org`.
    GetOrg,
    /// `POST /v1/interactions`.
    CreateInteraction { item: NewInteraction },
    /// `POST /v1/interactions/batch`, all or nothing. The client's body is
    /// forwarded as the call's body: parsed and validated once, by the actor,
    /// after the key check.
    CreateInteractionsFromBody,
    /// `GET /v1/interactions`: newest first, after `after` if given.
    ListInteractions { filter: InteractionFilter, limit: u32, after: Option<PagePosition> },
    /// `GET /v1/interactions/{id}`.
    GetInteraction { id: String },
    /// `DELETE /v1/interactions/{id}`.
    DeleteInteraction { id: String },
    /// `PATCH /v1/org`.
    UpdateOrg { name: Option<String>, allowed_origins: Option<Vec<Origin>> },
    /// `POST /v1/keys` with key material minted by the front Worker.
    CreateKey { request: KeyRequest, material: KeyMaterial },
    /// `GET /v1/keys`.
    ListKeys,
    /// `POST /v1/keys/{prefix}/revoke`.
    RevokeKey { prefix: KeyPrefix },
    /// `POST /v1/keys/{prefix}/rotate`: a successor with the same scopes and expiry.
    RotateKey { prefix: KeyPrefix, grace_ms: i64, material: KeyMaterial },
    /// `GET /v1/audit-log`.
    ListAudit { filter: AuditFilter, limit: u32, after: Option<PagePosition> },
    /// `GET /v1/alerts`.
    ListAlerts { filter: AlertFilter, limit: u32, after: Option<PagePosition> },
    /// The request itself is invalid: answer `error`, but only once the key
    /// is confirmed live (so a dead key never learns more than 401).
    Invalid { error: ApiError },
}

/// One call from the front Worker to an OrgActor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoRequest {
    /// The org the authenticated key belongs to; the actor refuses any other.
    pub org_id: OrgId,
    pub request_id: String,
    pub client_ip: Option<String>,
    /// The request's `Origin` header, if any (checked against the org's list).
    #[serde(default)]
    pub origin: Option<String>,
    /// Test environment only: make this request's D1 writes fail (see
    /// `src/faults.rs` for the guards that keep it out of production).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inject_fault: bool,
    pub caller: Caller,
    pub op: Op,
}

/// The actor's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum DoReply {
    /// Success: status and JSON body for the client (`Null`: no body). A
    /// listing names where its next page starts; the front Worker turns that
    /// into a signed cursor.
    Ok {
        status: u16,
        body: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<PagePosition>,
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        replayed: bool,
    },
    /// The key is not live; the actor has written the audit row.
    Denied { reason: AuthFailure },
    /// Any other failure, mapped to HTTP by the front Worker.
    Failed { error: ApiError },
}

/// The actor's whole answer: the reply plus whether the caller's `Origin`
/// is in the org's `allowed_origins` (the front Worker sets CORS headers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoResponse {
    pub reply: DoReply,
    #[serde(default)]
    pub origin_allowed: bool,
    /// The caller's L2 standing, for the RateLimit headers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateStanding>,
}

/// A key's L2 standing after this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateStanding {
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until at least one more request would be admitted (0: now).
    pub reset_s: u64,
    /// The policy window in seconds.
    pub window_s: u64,
}

impl RateStanding {
    /// `RateLimit-Policy` (IETF httpapi draft): `"per-key";q=1000;w=60`.
    pub fn policy_header(&self) -> String {
        format!("\"per-key\";q={};w={}", self.limit, self.window_s)
    }

    /// `RateLimit` (IETF httpapi draft): `"per-key";r=999;t=0`.
    pub fn header(&self) -> String {
        format!("\"per-key\";r={};t={}", self.remaining, self.reset_s)
    }
}

impl DoRequest {
    /// Serialises for the wire.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Checks that an actor bound to `bound` (if it knows yet) may serve `asked`.
/// An actor serves exactly one org for its whole life.
pub fn org_matches(bound: Option<&OrgId>, asked: &OrgId) -> bool {
    bound.is_none_or(|b| b == asked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn org(n: u8) -> OrgId {
        OrgId::generate(u64::from(n), &[n; 10])
    }

    #[test]
    fn request_roundtrip() {
        let r = DoRequest {
            org_id: org(1),
            request_id: "req_x".into(),
            client_ip: Some("203.0.113.9".into()),
            origin: None,
            inject_fault: false,
            caller: Caller::Key { prefix: KeyPrefix::parse("ABCDEFGH").unwrap(), scope: Scope::Admin, rehash: None },
            op: Op::GetOrg,
        };
        let back: DoRequest = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn reply_roundtrip() {
        for r in [
            DoReply::Ok { status: 200, body: serde_json::json!({"a": 1}), next: None, replayed: false },
            DoReply::Ok {
                status: 200,
                body: serde_json::json!([]),
                next: Some(PagePosition { at: 5, id: "int_x".into() }),
                replayed: true,
            },
            DoReply::Denied { reason: AuthFailure::Revoked },
            DoReply::Failed { error: ApiError::NotFound },
        ] {
            let back: DoReply = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn actor_refuses_other_orgs() {
        assert!(org_matches(None, &org(1)));
        assert!(org_matches(Some(&org(1)), &org(1)));
        assert!(!org_matches(Some(&org(1)), &org(2)));
    }
}
