//! The HTTP request headers MCP reads: `Accept`, and the 2026-07-28 headers
//! that mirror the body (`MCP-Protocol-Version`, `Mcp-Method`, `Mcp-Name`).

use super::jsonrpc::{RpcError, HEADER_MISMATCH};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};

/// The request headers MCP looks at (raw values; `None` when absent).
#[derive(Debug, Clone, Copy, Default)]
pub struct Headers<'a> {
    /// `MCP-Protocol-Version`.
    pub protocol_version: Option<&'a str>,
    /// `Mcp-Method` (2026-07-28).
    pub method: Option<&'a str>,
    /// `Mcp-Name` (2026-07-28), possibly `=?base64?…?=` encoded.
    pub name: Option<&'a str>,
    /// `Accept`.
    pub accept: Option<&'a str>,
}

/// Whether the `Accept` header allows a JSON answer (absent or empty: yes).
pub(super) fn accepts_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept.map(str::trim).filter(|a| !a.is_empty()) else {
        return true;
    };
    accept.split(',').any(|part| {
        let mut pieces = part.split(';');
        let media = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = pieces
            .any(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()).is_some_and(|q| q <= 0.0));
        !refused && matches!(media.as_str(), "application/json" | "application/*" | "*/*")
    })
}

/// Decodes a header value that may use the `=?base64?…?=` sentinel; `None`
/// when the sentinel is malformed.
fn decode_header_value(raw: &str) -> Option<String> {
    let Some(payload) = raw.strip_prefix("=?base64?").and_then(|r| r.strip_suffix("?=")) else {
        return Some(raw.to_string());
    };
    let bytes = STANDARD.decode(payload).ok()?;
    if STANDARD.encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// Checks that the 2026-07-28 headers are present and mirror the body: the
/// version `_meta` names, the method and (for `tools/call` and `prompts/get`)
/// `params.name`.
pub(super) fn check_mirrored(
    headers: &Headers<'_>,
    body_version: Option<&str>,
    method: &str,
    params: &Map<String, Value>,
) -> Result<(), RpcError> {
    let mismatch = |m: &str| Err(RpcError::new(HEADER_MISMATCH, format!("Header mismatch: {m}")));
    match headers.protocol_version {
        None => return mismatch("the MCP-Protocol-Version header is required"),
        Some(h) if Some(h) != body_version => {
            return mismatch("MCP-Protocol-Version header does not match params._meta's protocol version")
        }
        Some(_) => {}
    }
    match headers.method {
        None => return mismatch("the Mcp-Method header is required"),
        Some(h) if h != method => return mismatch("Mcp-Method header does not match the request's method"),
        Some(_) => {}
    }
    if matches!(method, "tools/call" | "prompts/get") {
        if let Some(name) = params.get("name").and_then(Value::as_str) {
            match headers.name.map(decode_header_value) {
                None => return mismatch("the Mcp-Name header is required"),
                Some(Some(h)) if h == name => {}
                Some(_) => return mismatch("Mcp-Name header does not match params.name"),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::testkit::*;
    use crate::mcp::{AnswerStatus, INVALID_PARAMS, META_PROTOCOL_VERSION};
    use serde_json::json;

    #[test]
    fn accept_must_allow_json() {
        let h = |a| Headers { accept: Some(a), ..legacy("2025-11-25") };
        let body = req("ping", json!({}));
        assert_eq!(answer(run(h("text/event-stream"), Some(&body))).status, AnswerStatus::NotAcceptable);
        assert_eq!(
            answer(run(h("application/json;q=0, text/event-stream"), Some(&body))).status,
            AnswerStatus::NotAcceptable
        );
        for ok in ["application/json, text/event-stream", "*/*", "application/*", ""] {
            assert_eq!(answer(run(h(ok), Some(&body))).status, AnswerStatus::Ok, "{ok}");
        }
    }

    #[test]
    fn modern_envelope_and_header_checks() {
        let discover = |params: Value| req("server/discover", params);
        // Missing _meta or one of its required keys: -32602.
        for params in [json!({}), json!({ "_meta": { META_PROTOCOL_VERSION: "2026-07-28" } })] {
            let a = answer(run(modern("server/discover", None), Some(&discover(params))));
            assert_eq!((a.status, code(&a)), (AnswerStatus::BadRequest, Some(INVALID_PARAMS)));
        }
        // Header-less modern requests are refused by the header rung.
        let a = answer(run(Headers::default(), Some(&discover(json!({ "_meta": meta() })))));
        assert_eq!((a.status, code(&a)), (AnswerStatus::BadRequest, Some(HEADER_MISMATCH)));
        let a = answer(run(Headers::default(), Some(&discover(json!({})))));
        assert_eq!(code(&a), Some(INVALID_PARAMS));
        // Mcp-Method missing or different.
        let h = Headers { method: None, ..modern("", None) };
        assert_eq!(code(&answer(run(h, Some(&discover(json!({ "_meta": meta() })))))), Some(HEADER_MISMATCH));
        assert_eq!(
            code(&answer(run(modern("tools/list", None), Some(&discover(json!({ "_meta": meta() })))))),
            Some(HEADER_MISMATCH)
        );
        // _meta version differs from the header.
        let mut m = meta();
        m[META_PROTOCOL_VERSION] = json!("2025-11-25");
        assert_eq!(
            code(&answer(run(modern("server/discover", None), Some(&discover(json!({ "_meta": m })))))),
            Some(HEADER_MISMATCH)
        );
        // Mcp-Name: plain, base64, wrong, missing.
        let call =
            req("tools/call", json!({ "_meta": meta(), "name": "get_interaction", "arguments": { "id": "bad" } }));
        let ok = |name: Option<&str>| answer(run(modern("tools/call", name), Some(&call)));
        assert_eq!(ok(Some("get_interaction")).status, AnswerStatus::Ok);
        let b64 = format!("=?base64?{}?=", STANDARD.encode("get_interaction"));
        assert_eq!(ok(Some(&b64)).status, AnswerStatus::Ok);
        assert_eq!(code(&ok(Some("list_alerts"))), Some(HEADER_MISMATCH));
        assert_eq!(code(&ok(Some("=?base64?!!?="))), Some(HEADER_MISMATCH));
        assert_eq!(code(&ok(None)), Some(HEADER_MISMATCH));
    }

    #[test]
    fn header_values_decode() {
        assert_eq!(decode_header_value("plain"), Some("plain".into()));
        assert_eq!(decode_header_value("=?base64?SGVsbG8sIOS4lueVjA==?="), Some("Hello, 世界".into()));
        assert_eq!(decode_header_value("=?base64?SGVsbG8sIOS4lueVjA?="), None);
    }
}
