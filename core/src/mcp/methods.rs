//! Routing a request to its method by era: the 2026-07-28 `_meta` envelope,
//! the handshake methods, and the methods both eras share.

use super::catalogue::{capabilities, prompt_definitions, tool_definitions, INSTRUCTIONS};
use super::headers::{check_mirrored, Headers};
use super::jsonrpc::{Output, RpcError, INVALID_REQUEST, METHOD_NOT_FOUND};
use super::pending::{Purpose, Query};
use super::prompts::get_prompt;
use super::render::echo;
use super::tools::call_tool;
use super::versions::{supported_versions, Version, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION};
use super::{OrgContext, SERVER_NAME, SERVER_VERSION};
use serde_json::{json, Map, Value};

/// What a request needs.
pub(super) enum Planned {
    /// Its result (undecorated), known now.
    Now(Output),
    /// One read of the org's data, then rendering for `Purpose`.
    Later(Query, Purpose),
}

/// The 2026-07-28 request checks: the `_meta` envelope, then the headers that
/// mirror it, then the method.
pub(super) fn modern_request(
    method: &str,
    params: &Map<String, Value>,
    headers: &Headers<'_>,
    org: &OrgContext<'_>,
) -> Result<Planned, RpcError> {
    let meta = meta_envelope(params)?;
    let body_version = meta.get(META_PROTOCOL_VERSION).and_then(Value::as_str);
    check_mirrored(headers, body_version, method, params)?;
    let version = body_version.and_then(Version::parse).filter(|v| v.is_modern());
    let Some(version) = version else {
        // Unreachable through HTTP (the header was parsed and matched); kept for safety.
        return Err(RpcError::unsupported_version(json!(body_version.map(echo))));
    };
    match method {
        "server/discover" => Ok(Planned::Now(discover())),
        _ => common_request(method, params, version, org),
    }
}

/// `params._meta`, which must carry the request's version and the client's capabilities.
fn meta_envelope(params: &Map<String, Value>) -> Result<&Map<String, Value>, RpcError> {
    let Some(meta) = params.get("_meta").and_then(Value::as_object) else {
        return Err(RpcError::params(format!(
            "params._meta must be an object carrying {META_PROTOCOL_VERSION} and {META_CLIENT_CAPABILITIES}"
        )));
    };
    let missing: Vec<&str> =
        [META_PROTOCOL_VERSION, META_CLIENT_CAPABILITIES].into_iter().filter(|k| !meta.contains_key(*k)).collect();
    if !missing.is_empty() {
        return Err(RpcError::params(format!("params._meta is missing {}", missing.join(" and "))));
    }
    Ok(meta)
}

/// `server/discover` (2026-07-28).
fn discover() -> Output {
    Output::cacheable(json!({
        "supportedVersions": supported_versions(),
        "capabilities": capabilities(),
        "instructions": INSTRUCTIONS,
    }))
}

/// The handshake-era methods.
pub(super) fn legacy_request(
    method: &str,
    params: &Map<String, Value>,
    version: Version,
    org: &OrgContext<'_>,
    in_batch: bool,
) -> Result<Planned, RpcError> {
    match method {
        "initialize" => initialize(params, in_batch).map(Planned::Now),
        "ping" => Ok(Planned::Now(Output::plain(json!({})))),
        _ => common_request(method, params, version, org),
    }
}

/// `initialize`: negotiates the version and describes the server.
fn initialize(params: &Map<String, Value>, in_batch: bool) -> Result<Output, RpcError> {
    if in_batch {
        return Err(RpcError::new(INVALID_REQUEST, "initialize must not be part of a JSON-RPC batch"));
    }
    let Some(requested) = params.get("protocolVersion").and_then(Value::as_str) else {
        return Err(RpcError::params("params.protocolVersion must be a string"));
    };
    let negotiated = Version::negotiate(requested);
    let mut info = json!({ "name": SERVER_NAME, "version": SERVER_VERSION });
    if negotiated.has_structured_output() {
        info["title"] = json!("interlog");
    }
    Ok(Output::plain(json!({
        "protocolVersion": negotiated.as_str(),
        "capabilities": capabilities(),
        "serverInfo": info,
        "instructions": INSTRUCTIONS,
    })))
}

/// Methods both eras share.
fn common_request(
    method: &str,
    params: &Map<String, Value>,
    version: Version,
    org: &OrgContext<'_>,
) -> Result<Planned, RpcError> {
    match method {
        "tools/list" => {
            no_cursor(params)?;
            Ok(Planned::Now(Output::cacheable(json!({ "tools": tool_definitions(version) }))))
        }
        "prompts/list" => {
            no_cursor(params)?;
            Ok(Planned::Now(Output::cacheable(json!({ "prompts": prompt_definitions(version) }))))
        }
        "tools/call" => call_tool(params, org),
        "prompts/get" => get_prompt(params),
        other => Err(RpcError::new(METHOD_NOT_FOUND, format!("Method not found: {}", echo(other)))),
    }
}

/// The lists have one page: any cursor is one this server never issued.
fn no_cursor(params: &Map<String, Value>) -> Result<(), RpcError> {
    match params.get("cursor") {
        None | Some(Value::Null) => Ok(()),
        Some(_) => Err(RpcError::params("Invalid cursor")),
    }
}

#[cfg(test)]
mod tests {
    use crate::mcp::testkit::*;
    use crate::mcp::{
        AnswerStatus, Headers, INVALID_PARAMS, LIST_TTL_MS, META_SERVER_INFO, METHOD_NOT_FOUND, TOOL_NAMES,
    };
    use serde_json::json;

    #[test]
    fn initialize_negotiates_and_describes_the_server() {
        let body = req(
            "initialize",
            json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "c", "version": "1" } }),
        );
        let a = answer(run(Headers::default(), Some(&body)));
        assert_eq!(a.status, AnswerStatus::Ok);
        let r = result(&a);
        assert_eq!(r["protocolVersion"], "2025-06-18");
        assert_eq!(r["serverInfo"]["name"], "interlog");
        assert!(r["capabilities"]["tools"].is_object() && r["capabilities"]["prompts"].is_object());
        assert!(r.get("resultType").is_none());
        let body = req("initialize", json!({ "protocolVersion": "1999-01-01", "capabilities": {} }));
        assert_eq!(result(&answer(run(Headers::default(), Some(&body))))["protocolVersion"], "2025-11-25");
        let bad = req("initialize", json!({ "capabilities": {} }));
        assert_eq!(code(&answer(run(Headers::default(), Some(&bad)))), Some(INVALID_PARAMS));
    }

    #[test]
    fn unknown_methods_by_era() {
        let a = answer(run(legacy("2025-11-25"), Some(&req("resources/list", json!({})))));
        assert_eq!((a.status, code(&a)), (AnswerStatus::Ok, Some(METHOD_NOT_FOUND)));
        let a = answer(run(modern("resources/list", None), Some(&req("resources/list", json!({ "_meta": meta() })))));
        assert_eq!((a.status, code(&a)), (AnswerStatus::NotFound, Some(METHOD_NOT_FOUND)));
        // initialize and ping do not exist in 2026-07-28.
        let a = answer(run(modern("ping", None), Some(&req("ping", json!({ "_meta": meta() })))));
        assert_eq!(code(&a), Some(METHOD_NOT_FOUND));
        let a = answer(run(legacy("2025-11-25"), Some(&req("ping", json!({})))));
        assert_eq!(result(&a), &json!({}));
    }

    #[test]
    fn modern_discover_and_lists() {
        let a = answer(run(modern("server/discover", None), Some(&req("server/discover", json!({ "_meta": meta() })))));
        assert_eq!(a.status, AnswerStatus::Ok);
        let r = result(&a);
        assert_eq!(r["resultType"], "complete");
        assert_eq!(r["supportedVersions"][0], "2026-07-28");
        assert_eq!(r["_meta"][META_SERVER_INFO]["name"], "interlog");
        assert_eq!((r["ttlMs"].as_u64(), r["cacheScope"].as_str()), (Some(LIST_TTL_MS), Some("public")));
        let a = answer(run(modern("tools/list", None), Some(&req("tools/list", json!({ "_meta": meta() })))));
        let names: Vec<&str> =
            result(&a)["tools"].as_array().unwrap().iter().filter_map(|t| t["name"].as_str()).collect();
        assert_eq!(names, TOOL_NAMES);
        let a = answer(run(modern("prompts/list", None), Some(&req("prompts/list", json!({ "_meta": meta() })))));
        assert_eq!(result(&a)["prompts"].as_array().map(Vec::len), Some(2));
        let a = answer(run(
            modern("tools/list", None),
            Some(&req("tools/list", json!({ "_meta": meta(), "cursor": "x" }))),
        ));
        assert_eq!((a.status, code(&a)), (AnswerStatus::BadRequest, Some(INVALID_PARAMS)));
    }
}
