//! Key verification in the front Worker: parse → D1 lookup by prefix →
//! peppered hash compared in constant time. Every outcome does the same lookup
//! and hash work; the caller holds the answer to the 80 ms floor, and the
//! org's actor confirms the key is live before serving anything.

use interlog_core::auth::{parse_authorization, AuthFailure, DUMMY_LOOKUP_PREFIX};
use interlog_core::key::ENTROPY_BYTES;
use interlog_core::protocol::{Caller, DoReply, DoRequest, Op, ORG_ACTOR_URL};
use interlog_core::{ApiError, ApiKey, KeyDigest, KeyPrefix, OrgId, Pepper};
use interlog_durable::platform::{now_ms, storage_error, write_audit, AuditEntry};
use serde::Deserialize;
use worker::wasm_bindgen::JsValue;
use worker::{Env, Method, Request, RequestInit};

#[derive(Deserialize)]
struct KeyLookup {
    org_id: String,
    hash: String,
}

/// The client address as the edge reports it, if it is a valid IP.
pub fn client_ip(req: &Request) -> Option<String> {
    let raw = req.headers().get("cf-connecting-ip").ok().flatten()?;
    raw.trim().parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

async fn load_pepper(env: &Env) -> Result<Pepper, ApiError> {
    let unavailable = |detail: String| ApiError::Unavailable { retry_after_s: 5, detail };
    let version: u32 = env
        .var("PEPPER_VERSION")
        .map(|v| v.to_string())
        .unwrap_or_default()
        .parse()
        .map_err(|_| unavailable("PEPPER_VERSION is not set to a number".into()))?;
    let secret = env
        .secret_store("PEPPER")
        .map_err(|e| unavailable(format!("PEPPER binding: {e}")))?
        .get()
        .await
        .map_err(|e| unavailable(format!("PEPPER secret: {e}")))?
        .ok_or_else(|| unavailable("PEPPER secret is empty".into()))?;
    Pepper::new(version, secret).map_err(|e| unavailable(format!("PEPPER: {e}")))
}

/// A key whose hash verified; the org's actor still decides if it is live.
pub struct Verified {
    pub org: OrgId,
    pub prefix: KeyPrefix,
    pub pepper: Pepper,
}

/// Verifies the presented key. Every failure is audited (org-less ones here,
/// the rest by the org's actor) and comes back as the uniform 401.
pub async fn verify(req: &Request, env: &Env, request_id: &str, ip: Option<&str>) -> Result<Verified, ApiError> {
    let header = req.headers().get("authorization").ok().flatten();
    let parsed = parse_authorization(header.as_deref());
    let prefix = parsed.as_ref().ok().map(ApiKey::prefix);
    let lookup_prefix = prefix.map_or_else(|| DUMMY_LOOKUP_PREFIX.to_string(), |p| p.to_string());

    let db = env.d1("DB").map_err(|e| storage_error("d1 binding", e))?;
    let row: Option<KeyLookup> = db
        .prepare("SELECT org_id, hash FROM api_keys WHERE prefix = ?1")
        .bind(&[JsValue::from_str(&lookup_prefix)])
        .map_err(|e| storage_error("key lookup bind", e))?
        .first(None)
        .await
        .map_err(|e| storage_error("key lookup", e))?;
    let pepper = load_pepper(env).await?;

    // Same hash-and-compare work whatever happened above.
    let dummy = ApiKey::from_entropy(&[0u8; ENTROPY_BYTES]);
    let presented = parsed.as_ref().unwrap_or(&dummy);
    let stored = row.as_ref().and_then(|r| KeyDigest::from_hex(&r.hash)).unwrap_or(KeyDigest::DUMMY);
    let verified = pepper.verify(presented, &stored);

    let failure = match (&parsed, &row) {
        (Err(f), _) => Some(*f),
        (Ok(_), None) => Some(AuthFailure::UnknownPrefix),
        (Ok(_), Some(_)) if !verified => Some(AuthFailure::WrongHash),
        _ => None,
    };
    match (failure, row.map(|r| r.org_id), prefix) {
        (None, Some(org), Some(prefix)) => Ok(Verified { org: parse_org(&org)?, prefix, pepper }),
        // A failure on a prefix of a known org goes to that org's actor for the audit row.
        (Some(reason @ AuthFailure::WrongHash), Some(org), Some(prefix)) => {
            let caller = Caller::FailedKey { prefix, reason };
            let ip = ip.map(str::to_string);
            let _ = call_actor(env, parse_org(&org)?, request_id, ip, caller, Op::RecordAuthFailure).await;
            Err(ApiError::Unauthorized)
        }
        (Some(reason), _, _) => {
            let prefix_text = prefix.map(|p| p.to_string());
            let entry = AuditEntry {
                org_id: None,
                at: now_ms(),
                action: "auth.failure",
                reason: Some(reason.reason()),
                prefix: prefix_text.as_deref(),
                ip,
                request_id,
                detail: None,
            };
            // Logged inside; the client's answer is the same either way.
            let _ = write_audit(&db, &entry).await;
            Err(ApiError::Unauthorized)
        }
        (None, _, _) => Err(ApiError::internal("verified key without org or prefix")),
    }
}

fn parse_org(raw: &str) -> Result<OrgId, ApiError> {
    OrgId::parse(raw).ok_or_else(|| ApiError::internal("api_keys row holds an invalid org id"))
}

/// Sends one call to the org's actor and reads its reply.
pub async fn call_actor(
    env: &Env,
    org_id: OrgId,
    request_id: &str,
    client_ip: Option<String>,
    caller: Caller,
    op: Op,
) -> Result<DoReply, ApiError> {
    let call = DoRequest { org_id, request_id: request_id.to_string(), client_ip, caller, op };
    let stub = env
        .durable_object("ORG_ACTOR")
        .and_then(|ns| ns.id_from_name(call.org_id.as_str())?.get_stub())
        .map_err(|e| storage_error("org actor stub", e))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post).with_body(Some(JsValue::from_str(&call.to_json())));
    let request = Request::new_with_init(ORG_ACTOR_URL, &init).map_err(|e| storage_error("org actor request", e))?;
    let mut resp = stub.fetch_with_request(request).await.map_err(|e| storage_error("org actor call", e))?;
    resp.json::<DoReply>().await.map_err(|e| storage_error("org actor reply", e))
}
