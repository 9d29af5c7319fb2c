//! The front Worker ↔ OrgActor protocol: one JSON request per `fetch` to the
//! org's Durable Object, one JSON reply. Defined once, here, and typed end to
//! end: the actor answers with an [`Outcome`] (never HTTP), and the front
//! Worker's `respond` module is the one place that turns it into HTTP.

use crate::alerts::AlertView;
use crate::audit::AuditView;
use crate::auth::AuthFailure;
use crate::cursor::PagePosition;
use crate::erasure::ErasureView;
use crate::error::ApiError;
use crate::export::ExportRequest;
use crate::ids::OrgId;
use crate::interaction::{Interaction, NewInteraction};
use crate::key::KeyPrefix;
use crate::keys::{KeyMaterial, KeyRequest, KeyView};
use crate::listing::{AlertFilter, AuditFilter, InteractionFilter};
use crate::moving::MoveReport;
use crate::netaddr::ClientIp;
use crate::operator::MoveAction;
use crate::org::OrgView;
use crate::origin::Origin;
use crate::scope::Scope;
use crate::shard::ShardId;
use crate::webhook::{DeliveryView, WebhookView};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Header carrying the [`DoRequest`] when the call's body is the client's own
/// body (so that body is parsed once, in the actor).
pub const CALL_HEADER: &str = "x-interlog-call";

/// Header carrying the [`DoResponse`] when the reply's body is a stream (an
/// export's NDJSON lines), so the front Worker can pass the body through.
pub const REPLY_HEADER: &str = "x-interlog-reply";

/// URL the front Worker posts [`DoRequest`]s to (the host is never resolved).
pub const ORG_ACTOR_URL: &str = "https://org-actor.internal/rpc";

/// Who asks and from where: the same for every call of one client request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallMeta {
    /// The org the key belongs to; the actor refuses any other.
    pub org_id: OrgId,
    pub request_id: String,
    /// The client address in its canonical form, when the edge gave one.
    pub client_ip: Option<ClientIp>,
}

/// A key whose hash verified; the actor still checks it is live and scoped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedKey {
    pub prefix: KeyPrefix,
    /// The scope the route needs.
    pub scope: Scope,
    /// A digest under the current pepper when the stored one was made with
    /// the previous pepper (the actor stores it once the key is live).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rehash: Option<KeyMaterial>,
}

/// One call from the front Worker to an OrgActor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
// A request is built once per call and moved, never stored in bulk: the
// size difference between its variants costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
pub enum DoRequest {
    /// Serve `op` for a verified key, after the access decision.
    Serve {
        meta: CallMeta,
        key: VerifiedKey,
        /// The request's `Origin` header, if any (checked against the org's list).
        #[serde(default)]
        origin: Option<String>,
        /// Test environment only: make this request's D1 writes fail (see
        /// `src/faults.rs` for the guards that keep it out of production).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        inject_fault: bool,
        /// Test environment only: the data shard to treat as down for this
        /// request (an org on it is answered 503; others are untouched).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fail_shard: Option<ShardId>,
        op: Op,
    },
    /// A wrong secret was presented for a prefix of this org: record it
    /// (audit, alert rules), nothing else.
    AuthFailure { meta: CallMeta, prefix: KeyPrefix },
    /// The operator changed the org's keys in D1 (`POST
    /// /v1/operator/reconcile`, signed): read them again and apply D1's
    /// revocations and expiries to the keys held (`KeyRing::reconcile`).
    /// Answered `Outcome::Done`.
    Reconcile { meta: CallMeta },
    /// One step of moving the org's data to shard `to` (`POST
    /// /v1/operator/move`, signed). Answered `Outcome::Moved`.
    Move { meta: CallMeta, to: ShardId, action: MoveAction },
}

impl DoRequest {
    /// Who asks.
    pub fn meta(&self) -> &CallMeta {
        match self {
            DoRequest::Serve { meta, .. } | DoRequest::AuthFailure { meta, .. } => meta,
            DoRequest::Reconcile { meta } | DoRequest::Move { meta, .. } => meta,
        }
    }

    /// Serialises for the wire.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// What a verified caller asks the actor to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// Nothing but the access decision (liveness, scope, L2, origin).
    Ping,
    /// `GET /v1/org`.
    GetOrg,
    /// `POST /v1/interactions`.
    CreateInteraction { item: NewInteraction },
    /// `POST /v1/interactions/batch`, all or nothing. The client's body is
    /// forwarded as the call's body: parsed and validated once, by the actor,
    /// after the access decision.
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
    /// `GET /v1/sessions/{session}`: the listing of one session (its filter
    /// says which, oldest first); a session with no interaction at all is
    /// not found.
    GetSession { filter: InteractionFilter, limit: u32, after: Option<PagePosition> },
    /// `GET /v1/interactions/export`: the actor checks `after` and streams.
    ExportInteractions { request: ExportRequest },
    /// `POST /v1/erasures`: start (or find the running) erasure of `actor`.
    StartErasure { actor: String },
    /// `GET /v1/erasures/{id}`.
    GetErasure { id: String },
    /// The request itself is invalid: answer `error`, but only once the key
    /// is confirmed live (so a dead key never learns more than 401).
    Invalid { error: ApiError },
    /// `POST /v1/alerts/{id}/resolve` (idempotent).
    ResolveAlert { id: String },
    /// `POST /v1/webhooks` with a signing secret minted by the front Worker.
    /// The body is checked by the actor (`webhook::parse_webhook_request`,
    /// under the deployment's URL policy).
    CreateWebhook { body: Value, secret: String },
    /// `GET /v1/webhooks`.
    ListWebhooks,
    /// `DELETE /v1/webhooks/{id}`.
    DeleteWebhook { id: String },
    /// `POST /v1/webhooks/{id}/rotate-secret`: `secret` signs from now on, the
    /// previous one too for the overlap.
    RotateWebhookSecret { id: String, secret: String },
    /// `GET /v1/webhooks/{id}/deliveries`: newest first.
    ListDeliveries { id: String, limit: u32, after: Option<PagePosition> },
}

impl Op {
    /// A listing that starts after `position` (other operations unchanged).
    pub fn after(mut self, position: Option<PagePosition>) -> Self {
        if let Op::ListInteractions { after, .. } | Op::ListAudit { after, .. } | Op::ListAlerts { after, .. } =
            &mut self
        {
            *after = position;
        } else if let Op::ListDeliveries { after, .. } = &mut self {
            *after = position;
        }
        self
    }
}

/// One page of a listing: its items and where the next page starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// `None` on the last page; the front Worker signs it into a cursor.
    pub next: Option<PagePosition>,
}

/// Whether a write stored something new or answered an earlier write of the
/// same idempotency key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stored {
    Created,
    Replayed,
}

/// What the actor did, as typed values. No HTTP here: statuses, headers and
/// JSON bodies are chosen by the front Worker's `respond` module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done, nothing to show (ping, erasure).
    Done,
    /// The org's settings.
    Org {
        org: OrgView,
        last_retention_run: Option<Value>,
    },
    /// One interaction: stored now, replayed, or read.
    Interaction {
        record: Interaction,
        stored: Option<Stored>,
    },
    /// An all-or-nothing batch: every record in request order.
    Batch {
        records: Vec<Interaction>,
        created: usize,
        replayed: usize,
    },
    Interactions(Page<Interaction>),
    Keys {
        keys: Vec<KeyView>,
    },
    /// A key created (its plaintext is added by the front Worker, which
    /// minted it) or revoked.
    Key {
        key: KeyView,
        created: bool,
    },
    /// A rotation: the successor and what became of its predecessor.
    Rotated {
        key: KeyView,
        previous: KeyView,
    },
    Audit(Page<AuditView>),
    Alerts(Page<AlertView>),
    /// One alert (after a resolve).
    Alert {
        alert: AlertView,
    },
    /// An endpoint created (`secret` shown this once), or its secret rotated
    /// (`secret` is the new one, shown once).
    Webhook {
        webhook: WebhookView,
        secret: Option<String>,
        created: bool,
    },
    Webhooks {
        webhooks: Vec<WebhookView>,
    },
    Deliveries(Page<DeliveryView>),
    /// Where a move between shards stands after one step.
    Moved {
        report: MoveReport,
    },
    /// An export may start: its rows follow as the body of the actor's reply
    /// (the header carries this answer), from after `after` in `filter`'s order.
    Export {
        filter: InteractionFilter,
        after: Option<PagePosition>,
    },
    /// An erasure job: started now (`Created`), the one already running for
    /// that actor (`Replayed`), or read (`None`).
    Erasure {
        job: ErasureView,
        stored: Option<Stored>,
    },
}

impl Outcome {
    /// Where the next page of a listing starts (`None`: last page, or not a listing).
    pub fn next(&self) -> Option<&PagePosition> {
        match self {
            Outcome::Interactions(p) => p.next.as_ref(),
            Outcome::Audit(p) => p.next.as_ref(),
            Outcome::Alerts(p) => p.next.as_ref(),
            Outcome::Deliveries(p) => p.next.as_ref(),
            _ => None,
        }
    }
}

/// Why the actor did not produce an [`Outcome`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The key is not live; the actor has written the audit row.
    Denied { reason: AuthFailure },
    /// The minted key's prefix is taken: the front Worker mints another.
    PrefixCollision,
    /// Any other failure, answered as this error.
    Failed { error: ApiError },
}

impl From<ApiError> for Refusal {
    fn from(error: ApiError) -> Self {
        Refusal::Failed { error }
    }
}

/// The actor's whole answer: the result, whether the caller's `Origin` is in
/// the org's `allowed_origins` (the front Worker sets CORS headers) and the
/// caller's L2 standing (RateLimit headers).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoResponse {
    pub result: Result<Outcome, Refusal>,
    #[serde(default)]
    pub origin_allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<RateStanding>,
}

impl DoResponse {
    /// A reply to a request the actor could not read at all.
    pub fn unreadable(detail: String) -> Self {
        let error = ApiError::internal(format!("bad actor request: {detail}"));
        Self { result: Err(Refusal::Failed { error }), origin_allowed: false, rate: None }
    }

    /// Serialises for a header ([`REPLY_HEADER`]): JSON with every non-ASCII
    /// character (and DEL) escaped (`\uXXXX`), since a header value holds bytes only.
    pub fn to_header_json(&self) -> String {
        let json = serde_json::to_string(self).unwrap_or_default();
        let mut out = String::with_capacity(json.len());
        for c in json.chars() {
            if c.is_ascii() && c != '\u{7f}' {
                out.push(c);
            } else {
                // Only occurs inside JSON strings: escape as UTF-16 units.
                for unit in c.encode_utf16(&mut [0u16; 2]) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out
    }

    /// Reads the actor's reply as the front Worker received it. Anything that
    /// is not a well-formed `DoResponse` is an internal error (a `500` with no
    /// detail out), never a pass and never a retryable `503`.
    pub fn from_reply(bytes: &[u8]) -> Result<Self, ApiError> {
        serde_json::from_slice(bytes).map_err(|e| ApiError::internal(format!("unreadable org actor reply: {e}")))
    }
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

/// Checks that an actor bound to `bound` (if it knows yet) may serve `asked`.
/// An actor serves exactly one org for its whole life.
pub fn org_matches(bound: Option<&OrgId>, asked: &OrgId) -> bool {
    bound.is_none_or(|b| b == asked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyViewState;
    use crate::scope::Scopes;

    fn org(n: u8) -> OrgId {
        OrgId::generate(u64::from(n), &[n; 10])
    }

    fn prefix() -> KeyPrefix {
        KeyPrefix::parse("ABCDEFGH").unwrap()
    }

    fn meta() -> CallMeta {
        CallMeta { org_id: org(1), request_id: "req_x".into(), client_ip: ClientIp::parse("203.0.113.9") }
    }

    fn key_view() -> KeyView {
        KeyView {
            prefix: prefix(),
            name: "ci".into(),
            scopes: Scopes::from_db("read").unwrap(),
            created_at: "2026-01-01T00:00:00Z".into(),
            last_used_at: None,
            expires_at: None,
            state: KeyViewState::Active,
            replaced_by: None,
        }
    }

    #[test]
    fn request_roundtrip() {
        let key = VerifiedKey { prefix: prefix(), scope: Scope::Admin, rehash: None };
        for r in [
            DoRequest::Serve { meta: meta(), key, origin: None, inject_fault: false, fail_shard: None, op: Op::GetOrg },
            DoRequest::AuthFailure { meta: meta(), prefix: prefix() },
            DoRequest::Reconcile { meta: meta() },
        ] {
            let back: DoRequest = serde_json::from_str(&r.to_json()).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn outcome_roundtrip() {
        let page = Page { items: Vec::new(), next: Some(PagePosition { at: 5, id: "int_x".into() }) };
        for result in [
            Ok(Outcome::Done),
            Ok(Outcome::Interactions(page)),
            Ok(Outcome::Key { key: key_view(), created: true }),
            Ok(Outcome::Rotated { key: key_view(), previous: key_view() }),
            Err(Refusal::Denied { reason: AuthFailure::Revoked }),
            Err(Refusal::PrefixCollision),
            Err(Refusal::Failed { error: ApiError::NotFound }),
        ] {
            let r = DoResponse { result, origin_allowed: true, rate: None };
            let back: DoResponse = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(back, r);
        }
    }

    #[test]
    fn header_json_is_ascii_and_reads_back() {
        let filter = InteractionFilter { actor: Some("é😀\u{7f}\"x".into()), ..InteractionFilter::default() };
        let r = DoResponse { result: Ok(Outcome::Export { filter, after: None }), origin_allowed: true, rate: None };
        let text = r.to_header_json();
        assert!(text.bytes().all(|b| (0x20..0x7f).contains(&b)), "{text}");
        assert_eq!(DoResponse::from_reply(text.as_bytes()).unwrap(), r);
    }

    // claim: owasp.api10
    #[test]
    fn unreadable_replies_are_refusals() {
        for bad in ["", "{}", "{\"result\":{\"Ok\":{\"outcome\":\"nope\"}}}", "[1,2]"] {
            assert!(serde_json::from_str::<DoResponse>(bad).is_err(), "{bad}");
        }
        let r = DoResponse::unreadable("x".into());
        assert!(matches!(r.result, Err(Refusal::Failed { error: ApiError::Internal { .. } })));
    }

    /// What the front Worker receives from the actor: a reply it cannot read
    /// (garbage, an unknown outcome or refusal, a wrong shape, a truncated
    /// body) is an internal error whose envelope carries no detail; a
    /// well-formed one is read as sent.
    #[test]
    fn unreadable_replies_are_internal_errors_for_the_client() {
        let good = DoResponse { result: Err(Refusal::PrefixCollision), origin_allowed: true, rate: None };
        let good_json = serde_json::to_string(&good).unwrap();
        assert_eq!(DoResponse::from_reply(good_json.as_bytes()).unwrap(), good);
        let truncated = &good_json[..good_json.len() - 1];
        let bad: [&[u8]; 8] = [
            b"",
            b"garbage",
            b"{}",
            b"[1,2]",
            b"{\"result\":{\"Ok\":{\"outcome\":\"nope\"}}}",
            b"{\"result\":{\"Err\":{\"refusal\":\"unknown\"}}}",
            b"\xff\xfe",
            truncated.as_bytes(),
        ];
        for reply in bad {
            let e = DoResponse::from_reply(reply).unwrap_err();
            assert!(matches!(e, ApiError::Internal { .. }), "{reply:?} gave {e:?}");
            assert_eq!(e.code(), "INTERNAL");
            assert_eq!(e.retry_after(), None, "not retryable");
            let envelope = e.envelope("req_x").to_string();
            assert!(!envelope.contains("unreadable") && !envelope.contains("line"), "{envelope}");
        }
    }

    // claim: owasp.api1, posture.measured-tenancy, posture.tenancy, threat.cross-tenant
    #[test]
    fn actor_refuses_other_orgs() {
        assert!(org_matches(None, &org(1)));
        assert!(org_matches(Some(&org(1)), &org(1)));
        assert!(!org_matches(Some(&org(1)), &org(2)));
    }
}
