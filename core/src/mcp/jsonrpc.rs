//! JSON-RPC 2.0 message shapes: ids, error codes and objects, result bodies and
//! the responses that carry them.

use super::versions::{supported_versions, Version, META_SERVER_INFO};
use super::{LIST_TTL_MS, SERVER_NAME, SERVER_VERSION};
use serde_json::{json, Map, Value};

/// JSON-RPC: invalid JSON.
pub const PARSE_ERROR: i64 = -32700;
/// JSON-RPC: not a valid request object.
pub const INVALID_REQUEST: i64 = -32600;
/// JSON-RPC: unknown method.
pub const METHOD_NOT_FOUND: i64 = -32601;
/// JSON-RPC: invalid parameters (unknown tool or prompt, bad arguments).
pub const INVALID_PARAMS: i64 = -32602;
/// JSON-RPC: the server failed.
pub const INTERNAL_ERROR: i64 = -32603;
/// MCP 2026-07-28: HTTP headers missing or not matching the body.
pub const HEADER_MISMATCH: i64 = -32020;
/// MCP 2026-07-28: a capability the client did not declare is required.
pub const MISSING_REQUIRED_CLIENT_CAPABILITY: i64 = -32021;
/// MCP 2026-07-28: the requested protocol version is not served.
pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;

/// A JSON-RPC error before it is tied to a request id.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct RpcError {
    code: i64,
    message: String,
    data: Option<Value>,
}

impl RpcError {
    pub(super) fn new(code: i64, message: impl Into<String>) -> Self {
        RpcError { code, message: message.into(), data: None }
    }

    pub(super) fn params(message: impl Into<String>) -> Self {
        RpcError::new(INVALID_PARAMS, message)
    }

    pub(super) fn internal() -> Self {
        RpcError::new(INTERNAL_ERROR, "internal error")
    }

    /// The version `requested` is not served; the data lists those that are.
    pub(super) fn unsupported_version(requested: Value) -> Self {
        RpcError {
            code: UNSUPPORTED_PROTOCOL_VERSION,
            message: "Unsupported protocol version".into(),
            data: Some(json!({ "supported": supported_versions(), "requested": requested })),
        }
    }
}

pub(super) fn error_response(id: &Value, e: RpcError) -> Value {
    let mut error = json!({ "code": e.code, "message": e.message });
    if let Some(d) = e.data {
        error["data"] = d;
    }
    json!({ "jsonrpc": "2.0", "id": id, "error": error })
}

pub(super) fn result_response(id: &Value, result: Value) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "result": result })
}

/// A JSON-RPC id: a string or an integer.
pub(super) fn valid_id(v: &Value) -> bool {
    match v {
        Value::String(_) => true,
        // An integer, written as JSON Schema counts integers: `7` or `7.0`.
        Value::Number(n) => {
            n.is_i64() || n.is_u64() || n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
        }
        _ => false,
    }
}

/// The id of `body` when it is a single message with a valid id, else `null`.
pub(super) fn id_of(body: &Value) -> Value {
    body.get("id").filter(|v| valid_id(v)).cloned().unwrap_or(Value::Null)
}

/// A result body and whether it is cacheable (2026-07-28 `ttlMs`/`cacheScope`).
pub(super) struct Output {
    body: Map<String, Value>,
    cacheable: bool,
}

impl Output {
    pub(super) fn plain(body: Value) -> Self {
        Output { body: into_map(body), cacheable: false }
    }

    pub(super) fn cacheable(body: Value) -> Self {
        Output { body: into_map(body), cacheable: true }
    }
}

fn into_map(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Adds what 2026-07-28 requires of every result: `resultType`, the server's
/// identity in `_meta`, and the cache hints of cacheable results.
pub(super) fn decorate(version: Version, result: Output) -> Value {
    let mut body = result.body;
    if version.is_modern() {
        body.insert("resultType".into(), json!("complete"));
        let meta = body.entry("_meta").or_insert_with(|| json!({}));
        if let Value::Object(m) = meta {
            m.insert(META_SERVER_INFO.into(), json!({ "name": SERVER_NAME, "version": SERVER_VERSION }));
        }
        if result.cacheable {
            body.insert("ttlMs".into(), json!(LIST_TTL_MS));
            body.insert("cacheScope".into(), json!("public"));
        }
    }
    Value::Object(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ids_are_strings_or_integers_as_json_schema_counts_them() {
        for ok in [json!("a"), json!(7), json!(-7), json!(505021656.0), json!(u64::MAX)] {
            assert!(valid_id(&ok), "{ok}");
        }
        for bad in [json!(1.5), json!(null), json!(true), json!([1]), json!({"a": 1}), json!(1e300)] {
            assert!(!valid_id(&bad), "{bad}");
        }
    }
}
