//! Planning one `POST /mcp`: the request's version, batch or single message,
//! and each JSON-RPC message's envelope, answered now or waiting for data.

use super::answer::{AnswerStatus, Responder, Shape};
use super::headers::{accepts_json, Headers};
use super::jsonrpc::{
    decorate, error_response, id_of, result_response, valid_id, RpcError, INVALID_REQUEST, PARSE_ERROR,
};
use super::methods::{legacy_request, modern_request, Planned};
use super::pending::Pending;
use super::render::truncate_chars;
use super::versions::{looks_modern, Version};
use super::{OrgContext, MAX_BATCH};
use serde_json::{json, Map, Value};

/// One message of the request: answered already, or waiting for one read of
/// the org's data.
#[derive(Debug)]
pub enum Item {
    /// The JSON-RPC response (`None`: a notification or a posted response, nothing to answer).
    Ready(Option<Value>),
    /// Run [`Pending::op`] on the org's actor, then [`Pending::finish`].
    Fetch(Box<Pending>),
}

/// What to do with one `POST /mcp`: its messages and how to answer them.
#[derive(Debug)]
pub struct Plan {
    shape: Shape,
    items: Vec<Item>,
}

impl Plan {
    /// Whether any message needs the org's data (else the caller confirms the
    /// key with a `Ping` before answering).
    pub fn needs_data(&self) -> bool {
        self.items.iter().any(|i| matches!(i, Item::Fetch(_)))
    }

    /// The messages, and what turns their responses into the HTTP answer.
    pub fn into_parts(self) -> (Vec<Item>, Responder) {
        (self.items, Responder::new(self.shape))
    }

    fn fixed(status: AnswerStatus, body: Value) -> Self {
        Plan { shape: Shape::Fixed(status), items: vec![Item::Ready(Some(body))] }
    }
}

/// Plans the answer to one `POST /mcp`. `body` is the parsed JSON body, or
/// `None` when it was not JSON. Pure: the caller runs the data reads.
pub fn plan(headers: &Headers<'_>, body: Option<&Value>, org: &OrgContext<'_>) -> Plan {
    if !accepts_json(headers.accept) {
        let e = RpcError::new(INVALID_REQUEST, "Not Acceptable: the Accept header must allow application/json");
        return Plan::fixed(AnswerStatus::NotAcceptable, error_response(&Value::Null, e));
    }
    let Some(body) = body else {
        let e = RpcError::new(PARSE_ERROR, "Parse error: invalid JSON");
        return Plan::fixed(AnswerStatus::BadRequest, error_response(&Value::Null, e));
    };
    let version = match request_version(headers, body) {
        Ok(v) => v,
        Err(refused) => return refused,
    };
    match body {
        Value::Array(messages) => batch(messages, version, headers, org),
        single => Plan { shape: Shape::Single(version), items: vec![message(single, version, headers, org, false)] },
    }
}

/// The version a request is served in: its header's, else the era its body
/// plainly belongs to; a version not served refuses the whole request.
fn request_version(headers: &Headers<'_>, body: &Value) -> Result<Version, Plan> {
    match headers.protocol_version {
        Some(raw) => Version::parse(raw).ok_or_else(|| unsupported_version(id_of(body), raw)),
        None if looks_modern(body) => Ok(Version::V2026_07_28),
        None => Ok(Version::WITHOUT_HEADER),
    }
}

fn unsupported_version(id: Value, requested: &str) -> Plan {
    let (requested, _) = truncate_chars(requested, 64);
    Plan::fixed(AnswerStatus::BadRequest, error_response(&id, RpcError::unsupported_version(json!(requested))))
}

/// A JSON-RPC batch: 2025-03-26 only, 1 to [`MAX_BATCH`] messages.
fn batch(messages: &[Value], version: Version, headers: &Headers<'_>, org: &OrgContext<'_>) -> Plan {
    let refuse = |msg: String| {
        Plan::fixed(AnswerStatus::BadRequest, error_response(&Value::Null, RpcError::new(INVALID_REQUEST, msg)))
    };
    if version != Version::V2025_03_26 {
        return refuse(format!(
            "JSON-RPC batches are not part of protocol version {} (removed in 2025-06-18): send one message per POST",
            version.as_str()
        ));
    }
    if messages.is_empty() || messages.len() > MAX_BATCH {
        return refuse(format!("a JSON-RPC batch must hold 1-{MAX_BATCH} messages"));
    }
    let items = messages.iter().map(|m| message(m, version, headers, org, true)).collect();
    Plan { shape: Shape::Batch, items }
}

/// A request's envelope, once it is known to need an answer.
struct Request<'a> {
    id: Value,
    method: &'a str,
    params: Option<&'a Map<String, Value>>,
}

/// Plans one JSON-RPC message.
fn message(msg: &Value, version: Version, headers: &Headers<'_>, org: &OrgContext<'_>, in_batch: bool) -> Item {
    let request = match envelope(msg, version) {
        Ok(r) => r,
        Err(answered) => return answered,
    };
    let empty = Map::new();
    let (id, method, params) = (request.id, request.method, request.params.unwrap_or(&empty));
    let planned = if version.is_modern() {
        modern_request(method, params, headers, org)
    } else {
        legacy_request(method, params, version, org, in_batch)
    };
    match planned {
        Ok(Planned::Now(result)) => Item::Ready(Some(result_response(&id, decorate(version, result)))),
        Ok(Planned::Later(query, purpose)) => Item::Fetch(Box::new(Pending::new(id, version, query, purpose, org))),
        Err(e) => Item::Ready(Some(error_response(&id, e))),
    }
}

/// Checks a message's JSON-RPC envelope. `Err` is its whole answer: an error
/// object, or nothing for a notification or a posted response.
fn envelope(msg: &Value, version: Version) -> Result<Request<'_>, Item> {
    let invalid = |id: &Value, m: &str| Item::Ready(Some(error_response(id, RpcError::new(INVALID_REQUEST, m))));
    let Some(obj) = msg.as_object() else {
        return Err(invalid(&Value::Null, "a JSON-RPC message must be an object"));
    };
    let id = match obj.get("id") {
        None => None,
        Some(v) if valid_id(v) => Some(v.clone()),
        Some(_) => return Err(invalid(&Value::Null, "id must be a string or an integer")),
    };
    let shown_id = id.clone().unwrap_or(Value::Null);
    if obj.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Err(invalid(&shown_id, "jsonrpc must be \"2.0\""));
    }
    if !obj.contains_key("method") && (obj.contains_key("result") || obj.contains_key("error")) {
        // A response to a server request: this server never sends any.
        if version.is_modern() {
            return Err(invalid(&shown_id, "clients must not send JSON-RPC responses in protocol version 2026-07-28"));
        }
        return Err(Item::Ready(None));
    }
    let Some(method) = obj.get("method").and_then(Value::as_str) else {
        return Err(invalid(&shown_id, "method must be a string"));
    };
    let params = match obj.get("params") {
        None | Some(Value::Null) => None,
        Some(Value::Object(p)) => Some(p),
        Some(_) => {
            return Err(match id {
                Some(id) => Item::Ready(Some(error_response(&id, RpcError::params("params must be an object")))),
                None => invalid(&Value::Null, "params must be an object"),
            })
        }
    };
    // A notification: accepted; none of them needs acting on here.
    let id = id.ok_or(Item::Ready(None))?;
    Ok(Request { id, method, params })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::testkit::*;
    use crate::mcp::{Answer, INVALID_PARAMS, METHOD_NOT_FOUND, UNSUPPORTED_PROTOCOL_VERSION};

    #[test]
    fn parse_error_and_invalid_requests() {
        let a = answer(run(Headers::default(), None));
        assert_eq!((a.status, code(&a)), (AnswerStatus::BadRequest, Some(PARSE_ERROR)));
        assert_eq!(a.body.as_ref().unwrap()["id"], Value::Null);
        for bad in [
            json!(5),
            json!({ "id": 1, "method": "ping" }),
            json!({ "jsonrpc": "2.0", "id": 1.5, "method": "ping" }),
            json!({ "jsonrpc": "2.0", "id": null, "method": "ping" }),
            json!({ "jsonrpc": "2.0", "id": 1, "method": 3 }),
        ] {
            let a = answer(run(legacy("2025-11-25"), Some(&bad)));
            assert_eq!((a.status, code(&a)), (AnswerStatus::BadRequest, Some(INVALID_REQUEST)), "{bad}");
        }
        let a = answer(run(
            legacy("2025-11-25"),
            Some(&json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": [1] })),
        ));
        assert_eq!((a.status, code(&a)), (AnswerStatus::Ok, Some(INVALID_PARAMS)));
    }

    #[test]
    fn notifications_and_posted_responses_are_accepted() {
        let n = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        assert_eq!(answer(run(legacy("2025-11-25"), Some(&n))), Answer { status: AnswerStatus::Accepted, body: None });
        let r = json!({ "jsonrpc": "2.0", "id": 3, "result": {} });
        assert_eq!(answer(run(legacy("2025-11-25"), Some(&r))).status, AnswerStatus::Accepted);
        let a = answer(run(modern("x", None), Some(&r)));
        assert_eq!((a.status, code(&a)), (AnswerStatus::BadRequest, Some(INVALID_REQUEST)));
        assert_eq!(answer(run(modern("notifications/x", None), Some(&n))).status, AnswerStatus::Accepted);
    }

    #[test]
    fn unsupported_version_header_is_400_with_the_supported_list() {
        let body = req("tools/list", json!({}));
        for v in ["2024-11-05", "1900-01-01", "", "2026-07-28 "] {
            let a = answer(run(Headers { protocol_version: Some(v), ..Headers::default() }, Some(&body)));
            assert_eq!((a.status, code(&a)), (AnswerStatus::BadRequest, Some(UNSUPPORTED_PROTOCOL_VERSION)), "{v:?}");
            let b = a.body.unwrap();
            assert_eq!(b["id"], 1);
            assert_eq!(b["error"]["data"]["requested"], v);
            assert_eq!(b["error"]["data"]["supported"][0], "2026-07-28");
        }
    }

    #[test]
    fn batches_only_in_2025_03_26() {
        let batch = json!([req("ping", json!({})), { "jsonrpc": "2.0", "method": "notifications/initialized" }, req("nope", json!({}))]);
        let a = answer(run(legacy("2025-11-25"), Some(&batch)));
        assert_eq!((a.status, code(&a)), (AnswerStatus::BadRequest, Some(INVALID_REQUEST)));
        let a = answer(run(Headers::default(), Some(&batch)));
        assert_eq!(a.status, AnswerStatus::Ok);
        let list = a.body.unwrap();
        assert_eq!(list.as_array().map(Vec::len), Some(2));
        assert_eq!(list[1]["error"]["code"], METHOD_NOT_FOUND);
        let only_notes = json!([{ "jsonrpc": "2.0", "method": "notifications/initialized" }]);
        assert_eq!(answer(run(Headers::default(), Some(&only_notes))).status, AnswerStatus::Accepted);
        assert_eq!(answer(run(Headers::default(), Some(&json!([])))).status, AnswerStatus::BadRequest);
        let init = json!([req("initialize", json!({ "protocolVersion": "2025-03-26" }))]);
        assert_eq!(answer(run(Headers::default(), Some(&init))).body.unwrap()[0]["error"]["code"], INVALID_REQUEST);
        let big = Value::Array(vec![req("ping", json!({})); MAX_BATCH + 1]);
        assert_eq!(answer(run(Headers::default(), Some(&big))).status, AnswerStatus::BadRequest);
    }
}
