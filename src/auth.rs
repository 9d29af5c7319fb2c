//! Key verification in the front Worker: parse → D1 lookup by prefix →
//! peppered hash compared in constant time. Every outcome does the same lookup
//! and hash work; the caller holds the answer to the 80 ms floor, and the
//! org's actor confirms the key is live before serving anything.

use interlog_core::auth::{parse_authorization, AuthFailure, DUMMY_LOOKUP_PREFIX};
use interlog_core::key::ENTROPY_BYTES;
use interlog_core::keys::KeyMaterial;
use interlog_core::protocol::{Caller, DoRequest, DoResponse, Op, CALL_HEADER, ORG_ACTOR_URL};
use interlog_core::{ApiError, ApiKey, KeyDigest, KeyPrefix, OrgId, Pepper};
use interlog_durable::platform::{now_ms, storage_error, write_audit, AuditEntry};
use serde::Deserialize;
use worker::wasm_bindgen::JsValue;
use worker::{Env, Headers, Method, Request, RequestInit};

#[derive(Deserialize)]
struct KeyLookup {
    org_id: String,
    hash: String,
    pepper_version: f64,
}

/// The current pepper and, during a rotation, the previous one.
#[derive(Clone)]
struct Peppers {
    current: Pepper,
    previous: Option<Pepper>,
}

/// The client address as the edge reports it, if it is a valid IP.
pub fn client_ip(req: &Request) -> Option<String> {
    let raw = req.headers().get("cf-connecting-ip").ok().flatten()?;
    raw.trim().parse::<std::net::IpAddr>().ok().map(|ip| ip.to_string())
}

fn unavailable(detail: String) -> ApiError {
    ApiError::Unavailable { retry_after_s: 5, detail }
}

fn var_u32(env: &Env, name: &str) -> Option<u32> {
    env.var(name).ok().and_then(|v| v.to_string().trim().parse().ok())
}

async fn secret(env: &Env, binding: &str) -> Result<String, ApiError> {
    env.secret_store(binding)
        .map_err(|e| unavailable(format!("{binding} binding: {e}")))?
        .get()
        .await
        .map_err(|e| unavailable(format!("{binding} secret: {e}")))?
        .ok_or_else(|| unavailable(format!("{binding} secret is empty")))
}

/// How long an isolate keeps the peppers before reading them again.
const PEPPER_TTL_MS: i64 = 60_000;

thread_local! {
    static PEPPERS: std::cell::RefCell<Option<(i64, Peppers)>> = const { std::cell::RefCell::new(None) };
}

/// The peppers, read from the Secrets Store at most once a minute per isolate
/// (every outcome uses the same cached value, so timing is unaffected).
async fn load_peppers(env: &Env) -> Result<Peppers, ApiError> {
    let now = now_ms();
    let cached =
        PEPPERS.with(|c| c.borrow().as_ref().filter(|(at, _)| now - at < PEPPER_TTL_MS).map(|(_, p)| p.clone()));
    if let Some(p) = cached {
        return Ok(p);
    }
    let fresh = read_peppers(env).await?;
    PEPPERS.with(|c| *c.borrow_mut() = Some((now, fresh.clone())));
    Ok(fresh)
}

/// Reads the peppers. `PEPPER` (version `PEPPER_VERSION`) is required; during
/// a rotation `PEPPER_PREVIOUS` (version `PEPPER_PREVIOUS_VERSION` > 0) too.
async fn read_peppers(env: &Env) -> Result<Peppers, ApiError> {
    let version = var_u32(env, "PEPPER_VERSION").ok_or_else(|| unavailable("PEPPER_VERSION is not a number".into()))?;
    let current =
        Pepper::new(version, secret(env, "PEPPER").await?).map_err(|e| unavailable(format!("PEPPER: {e}")))?;
    let previous = match var_u32(env, "PEPPER_PREVIOUS_VERSION").filter(|v| *v > 0) {
        None => None,
        Some(v) => Some(
            Pepper::new(v, secret(env, "PEPPER_PREVIOUS").await?)
                .map_err(|e| unavailable(format!("PEPPER_PREVIOUS: {e}")))?,
        ),
    };
    Ok(Peppers { current, previous })
}

/// A key whose hash verified; the org's actor still decides if it is live.
pub struct Verified {
    pub org: OrgId,
    pub prefix: KeyPrefix,
    /// The current pepper (mints keys, signs cursors).
    pub pepper: Pepper,
    /// A digest under the current pepper when the stored one used the previous.
    pub rehash: Option<KeyMaterial>,
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
        .prepare("SELECT org_id, hash, pepper_version FROM api_keys WHERE prefix = ?1")
        .bind(&[JsValue::from_str(&lookup_prefix)])
        .map_err(|e| storage_error("key lookup bind", e))?
        .first(None)
        .await
        .map_err(|e| storage_error("key lookup", e))?;
    let peppers = load_peppers(env).await?;

    // Same hash-and-compare work whatever happened above.
    let dummy = ApiKey::from_entropy(&[0u8; ENTROPY_BYTES]);
    let presented = parsed.as_ref().unwrap_or(&dummy);
    let stored = row.as_ref().and_then(|r| KeyDigest::from_hex(&r.hash)).unwrap_or(KeyDigest::DUMMY);
    let row_version = row.as_ref().map_or(peppers.current.version(), |r| r.pepper_version as u32);
    let by_previous = peppers.previous.as_ref().filter(|p| p.version() == row_version);
    let verified = by_previous.unwrap_or(&peppers.current).verify(presented, &stored);
    let rehash = match (verified, by_previous, prefix) {
        (true, Some(_), Some(prefix)) => Some(KeyMaterial {
            prefix,
            hash: peppers.current.digest(presented).to_hex(),
            pepper_version: peppers.current.version(),
        }),
        _ => None,
    };

    let failure = match (&parsed, &row) {
        (Err(f), _) => Some(*f),
        (Ok(_), None) => Some(AuthFailure::UnknownPrefix),
        (Ok(_), Some(_)) if !verified => Some(AuthFailure::WrongHash),
        _ => None,
    };
    match (failure, row.map(|r| r.org_id), prefix) {
        (None, Some(org), Some(prefix)) => {
            Ok(Verified { org: parse_org(&org)?, prefix, pepper: peppers.current, rehash })
        }
        // A failure on a prefix of a known org goes to that org's actor for the audit row.
        (Some(reason @ AuthFailure::WrongHash), Some(org), Some(prefix)) => {
            let caller = Caller::FailedKey { prefix, reason };
            let ip = ip.map(str::to_string);
            let _ =
                call_actor(env, &parse_org(&org)?, request_id, ip, None, false, caller, Op::RecordAuthFailure, None)
                    .await;
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

/// Sends one call to the org's actor and reads its answer.
#[allow(clippy::too_many_arguments)]
pub async fn call_actor(
    env: &Env,
    org_id: &OrgId,
    request_id: &str,
    client_ip: Option<String>,
    origin: Option<String>,
    inject_fault: bool,
    caller: Caller,
    op: Op,
    payload: Option<&[u8]>,
) -> Result<DoResponse, ApiError> {
    let call = DoRequest {
        org_id: org_id.clone(),
        request_id: request_id.to_string(),
        client_ip,
        origin,
        inject_fault,
        caller,
        op,
    };
    let stub = env
        .durable_object("ORG_ACTOR")
        .and_then(|ns| ns.id_from_name(call.org_id.as_str())?.get_stub())
        .map_err(|e| storage_error("org actor stub", e))?;
    let mut init = RequestInit::new();
    init.with_method(Method::Post);
    match payload {
        // The client's body travels as is; the call itself in a header.
        Some(bytes) => {
            let headers = Headers::new();
            headers.set(CALL_HEADER, &call.to_json()).map_err(|e| storage_error("org actor header", e))?;
            init.with_headers(headers).with_body(Some(worker::js_sys::Uint8Array::from(bytes).into()));
        }
        None => {
            init.with_body(Some(JsValue::from_str(&call.to_json())));
        }
    }
    let request = Request::new_with_init(ORG_ACTOR_URL, &init).map_err(|e| storage_error("org actor request", e))?;
    let mut resp = stub.fetch_with_request(request).await.map_err(|e| storage_error("org actor call", e))?;
    resp.json::<DoResponse>().await.map_err(|e| storage_error("org actor reply", e))
}
