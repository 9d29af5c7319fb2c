//! Turning an HTTP request (path, query, parsed body) into the actor
//! operation it asks for. Pure parsing over `core`'s rules; any problem is an
//! `ApiError` that the caller sends as `Op::Invalid`, so it is answered only
//! once the actor has confirmed the key.

use crate::auth::Verified;
use interlog_core::cursor::PagePosition;
use interlog_core::erasure::{parse_request as parse_erasure, ErasureId};
use interlog_core::export::parse_export;
use interlog_core::field_errors::{clip, FieldErrors};
use interlog_core::interaction::{check_idempotency_header, validate, validation_error};
use interlog_core::key::ENTROPY_BYTES;
use interlog_core::keys::{check_name, parse_grace, parse_key_request, KeyMaterial};
use interlog_core::listing::{parse_alert_list, parse_audit_list, parse_interaction_list, parse_session_list};
use interlog_core::origin::Origin;
use interlog_core::protocol::Op;
use interlog_core::routes::Endpoint;
use interlog_core::{ApiError, ApiKey, InteractionId, KeyPrefix};
use interlog_durable::platform::random_bytes;
use serde_json::{json, Map, Value};
use worker::Request;

/// Most origins an org may list.
const MAX_ALLOWED_ORIGINS: usize = 50;

/// An operation and what answering it needs besides the actor's outcome.
pub struct Built {
    pub op: Op,
    /// Cursor scope of a listing (signs its next cursor).
    pub cursor_scope: Option<String>,
    /// Plaintext of a key minted for this request (returned once).
    pub minted: Option<ApiKey>,
}

impl Built {
    fn op(op: Op) -> Self {
        Self { op, cursor_scope: None, minted: None }
    }
}

/// What the request asks for, at `now_ms`.
pub fn build(
    req: &Request,
    endpoint: &Endpoint,
    who: &Verified,
    body: Option<&Value>,
    now_ms: i64,
) -> Result<Built, ApiError> {
    let body = || body.ok_or_else(|| ApiError::validation("request body is required"));
    Ok(match endpoint {
        Endpoint::GetOrg => Built::op(Op::GetOrg),
        Endpoint::UpdateOrg => Built::op(update_org(body()?)?),
        Endpoint::CreateInteraction => Built::op(create_interaction(req, body()?, now_ms)?),
        Endpoint::ListInteractions | Endpoint::ListAudit | Endpoint::ListAlerts => listing(req, endpoint, who)?,
        Endpoint::GetInteraction(id) => Built::op(Op::GetInteraction { id: known_id(id)? }),
        Endpoint::DeleteInteraction(id) => Built::op(Op::DeleteInteraction { id: known_id(id)? }),
        Endpoint::CreateKey => {
            let request = parse_key_request(body()?, now_ms).map_err(validation_error)?;
            let (key, material) = mint(who)?;
            Built { op: Op::CreateKey { request, material }, cursor_scope: None, minted: Some(key) }
        }
        Endpoint::ListKeys => Built::op(Op::ListKeys),
        Endpoint::GetSession(raw) => session(req, raw, who)?,
        Endpoint::ExportInteractions => {
            Built::op(Op::ExportInteractions { request: parse_export(&query_pairs(req)?)? })
        }
        Endpoint::StartErasure => Built::op(Op::StartErasure { actor: parse_erasure(body()?)? }),
        Endpoint::GetErasure(id) => {
            let id = ErasureId::parse(id).ok_or(ApiError::NotFound)?;
            Built::op(Op::GetErasure { id: id.to_string() })
        }
        Endpoint::RevokeKey(p) => Built::op(Op::RevokeKey { prefix: key_prefix(p)? }),
        Endpoint::RotateKey(p) => {
            let prefix = key_prefix(p)?;
            let grace_ms = parse_grace(body()?).map_err(invalid_pairs)?;
            let (key, material) = mint(who)?;
            Built { op: Op::RotateKey { prefix, grace_ms, material }, cursor_scope: None, minted: Some(key) }
        }
        // Served elsewhere: MCP by the mcp module, batches forwarded as sent.
        Endpoint::ResolveAlert(id) => {
            Built::op(Op::ResolveAlert { id: interlog_core::alerts::parse_alert_id(id).ok_or(ApiError::NotFound)? })
        }
        Endpoint::CreateWebhook => Built::op(Op::CreateWebhook { body: body()?.clone(), secret: webhook_secret()? }),
        Endpoint::ListWebhooks => Built::op(Op::ListWebhooks),
        Endpoint::DeleteWebhook(id) => Built::op(Op::DeleteWebhook { id: webhook_id(id)? }),
        Endpoint::RotateWebhookSecret(id) => {
            Built::op(Op::RotateWebhookSecret { id: webhook_id(id)?, secret: webhook_secret()? })
        }
        Endpoint::ListDeliveries(id) => deliveries(req, who, webhook_id(id)?)?,
        Endpoint::Mcp | Endpoint::CreateInteractions => return Err(ApiError::internal("not built by ops::build")),
    })
}

/// Field problems as `(field, message)` pairs, through the bounded collector
/// (field names clipped, at most 20 in `details`).
fn invalid_pairs(errs: Vec<(String, String)>) -> ApiError {
    let mut out = FieldErrors::new();
    for (field, message) in errs {
        out.push(&field, message);
    }
    validation_error(out)
}

/// Fresh key material under the current pepper: the plaintext stays here.
fn mint(who: &Verified) -> Result<(ApiKey, KeyMaterial), ApiError> {
    let key = ApiKey::from_entropy(&random_bytes::<ENTROPY_BYTES>()?);
    let material = KeyMaterial {
        prefix: key.prefix(),
        hash: who.pepper.digest(&key).to_hex(),
        pepper_version: who.pepper.version(),
    };
    Ok((key, material))
}

/// A fresh webhook signing secret (`whsec_…`).
fn webhook_secret() -> Result<String, ApiError> {
    Ok(interlog_core::webhook::secret_text(&random_bytes::<{ interlog_core::webhook::SECRET_BYTES }>()?))
}

/// A webhook id that cannot exist is simply not found.
fn webhook_id(raw: &str) -> Result<String, ApiError> {
    interlog_core::webhook::parse_webhook_id(raw).ok_or(ApiError::NotFound)
}

/// `GET /v1/webhooks/{id}/deliveries`: `limit` and `cursor` only.
fn deliveries(req: &Request, who: &Verified, id: String) -> Result<Built, ApiError> {
    let l = interlog_core::listing::parse_list::<()>(&query_pairs(req)?, &[], |_, _, _| Ok(()))?;
    let scope = json!(["deliveries", who.org.as_str(), id]).to_string();
    let after = decode_cursor(who, &scope, l.cursor.as_ref())?;
    let op = Op::ListDeliveries { id, limit: l.limit, after };
    Ok(Built { op, cursor_scope: Some(scope), minted: None })
}

/// A path prefix that cannot exist is simply not found.
fn key_prefix(raw: &str) -> Result<KeyPrefix, ApiError> {
    KeyPrefix::parse(raw).map_err(|_| ApiError::NotFound)
}

/// A path id that cannot exist is simply not found.
fn known_id(raw: &str) -> Result<String, ApiError> {
    InteractionId::parse(raw).map(|i| i.to_string()).ok_or(ApiError::NotFound)
}

fn update_org(body: &Value) -> Result<Op, ApiError> {
    let obj = body.as_object().ok_or_else(|| ApiError::validation("body must be a JSON object"))?;
    let mut errs = FieldErrors::new();
    for k in obj.keys().filter(|k| !["name", "allowed_origins"].contains(&k.as_str())) {
        errs.push(k, "unknown field");
    }
    let name = match obj.get("name") {
        None => None,
        Some(Value::String(n)) => {
            if let Err(m) = check_name(n) {
                errs.push("name", m);
            }
            Some(n.clone())
        }
        Some(_) => {
            errs.push("name", "must be a string");
            None
        }
    };
    let allowed_origins = allowed_origins(obj, &mut errs);
    if !errs.is_empty() {
        return Err(validation_error(errs));
    }
    Ok(Op::UpdateOrg { name, allowed_origins })
}

/// Longest origin text repeated back in an error.
const MAX_ECHOED_ORIGIN_CHARS: usize = 128;

/// `allowed_origins` of a PATCH: canonical, sorted, without duplicates.
fn allowed_origins(obj: &Map<String, Value>, errs: &mut FieldErrors) -> Option<Vec<Origin>> {
    match obj.get("allowed_origins") {
        None => None,
        Some(Value::Array(list)) if list.len() <= MAX_ALLOWED_ORIGINS => {
            let mut out = Vec::with_capacity(list.len());
            for (i, v) in list.iter().enumerate() {
                match v.as_str().map(|s| (s, Origin::parse(s))) {
                    Some((_, Ok(o))) => out.push(o),
                    Some((s, Err(m))) => errs.push(
                        &format!("allowed_origins[{i}]"),
                        format!("{}: {m}", Value::from(clip(s, MAX_ECHOED_ORIGIN_CHARS))),
                    ),
                    None => errs.push(&format!("allowed_origins[{i}]"), "must be a string"),
                }
            }
            out.sort();
            out.dedup();
            Some(out)
        }
        Some(_) => {
            errs.push("allowed_origins", format!("must be an array of at most {MAX_ALLOWED_ORIGINS} origins"));
            None
        }
    }
}

fn create_interaction(req: &Request, body: &Value, now_ms: i64) -> Result<Op, ApiError> {
    let header_key = req.headers().get("idempotency-key").ok().flatten();
    let mut item = validate(body, now_ms).map_err(validation_error)?;
    if let Some(h) = header_key {
        check_idempotency_header(&h).map_err(|m| ApiError::Validation {
            message: format!("Idempotency-Key header {m}"),
            details: Some(json!([{ "field": "Idempotency-Key", "message": m }])),
        })?;
        match &item.idempotency_key {
            Some(b) if *b != h => {
                return Err(ApiError::validation(
                    "Idempotency-Key header and body idempotency_key differ; send one or make them equal",
                ))
            }
            _ => item.idempotency_key = Some(h),
        }
    }
    Ok(Op::CreateInteraction { item })
}

fn query_pairs(req: &Request) -> Result<Vec<(String, String)>, ApiError> {
    let url = req.url().map_err(|_| ApiError::validation("unreadable URL"))?;
    Ok(url.query_pairs().into_owned().collect())
}

fn cursor_error() -> ApiError {
    ApiError::Validation {
        message: "query parameter 'cursor' is invalid, expired or belongs to another listing".into(),
        details: Some(json!([{ "field": "cursor", "message": "invalid cursor" }])),
    }
}

fn decode_cursor(who: &Verified, scope: &str, cursor: Option<&String>) -> Result<Option<PagePosition>, ApiError> {
    cursor.map(|c| who.cursor_key().decode(scope, c).map_err(|_| cursor_error())).transpose()
}

/// `GET /v1/sessions/{session}`: the session's listing, oldest first, its
/// cursor scoped to the org and the session.
fn session(req: &Request, raw: &str, who: &Verified) -> Result<Built, ApiError> {
    let l = parse_session_list(raw, &query_pairs(req)?)?;
    let scope = l.filter.cursor_scope(who.org.as_str());
    let after = decode_cursor(who, &scope, l.cursor.as_ref())?;
    let op = Op::GetSession { filter: l.filter, limit: l.limit, after };
    Ok(Built { op, cursor_scope: Some(scope), minted: None })
}

/// The three listings: filters and limit from the query, the cursor checked
/// against the org and the filters it was issued for.
fn listing(req: &Request, endpoint: &Endpoint, who: &Verified) -> Result<Built, ApiError> {
    let pairs = query_pairs(req)?;
    let org = who.org.as_str();
    let (op, scope, cursor) = match endpoint {
        Endpoint::ListAudit => {
            let l = parse_audit_list(&pairs)?;
            let scope = l.filter.cursor_scope(org);
            (Op::ListAudit { filter: l.filter, limit: l.limit, after: None }, scope, l.cursor)
        }
        Endpoint::ListAlerts => {
            let l = parse_alert_list(&pairs)?;
            let scope = l.filter.cursor_scope(org);
            (Op::ListAlerts { filter: l.filter, limit: l.limit, after: None }, scope, l.cursor)
        }
        _ => {
            let l = parse_interaction_list(&pairs)?;
            let scope = l.filter.cursor_scope(org);
            (Op::ListInteractions { filter: l.filter, limit: l.limit, after: None }, scope, l.cursor)
        }
    };
    let after = decode_cursor(who, &scope, cursor.as_ref())?;
    Ok(Built { op: op.after(after), cursor_scope: Some(scope), minted: None })
}
