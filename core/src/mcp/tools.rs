//! `tools/call`: checking a tool's arguments against its input schema and
//! turning them into the read of the org's data the tool needs.

use super::jsonrpc::RpcError;
use super::methods::Planned;
use super::pending::{Purpose, Query};
use super::render::{echo, tool_error};
use super::OrgContext;
use crate::cursor::MAX_CURSOR_LEN;
use crate::ids::InteractionId;
use crate::interaction::{MAX_LABEL_LEN, MAX_TYPE_LEN};
use crate::listing::{AlertFilter, InteractionFilter, Order, DEFAULT_LIMIT, MAX_LIMIT};
use crate::timefmt::parse_rfc3339;
use serde_json::{Map, Value};

/// A tool error for a cursor that does not fit the call.
const BAD_CURSOR: &str = "The cursor is invalid, expired, or belongs to other filters: repeat the call without \
                          cursor, or with exactly the filters of the call that returned it.";
/// A tool error for an interaction id with no record.
pub(super) const NOT_FOUND: &str = "No interaction with this id exists in this organisation.";

/// The arguments of a tool call, checked against the tool's input schema.
struct Args<'a> {
    tool: &'a str,
    map: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    fn bad(&self, why: impl std::fmt::Display) -> RpcError {
        RpcError::params(format!("Invalid arguments for tool {}: {why}", self.tool))
    }

    fn only(&self, allowed: &[&str]) -> Result<(), RpcError> {
        match self.map.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(self.bad(format!("unknown property '{}' (allowed: {})", echo(k), allowed.join(", ")))),
            None => Ok(()),
        }
    }

    /// An optional string of 1-`max` characters (`null` counts as absent).
    fn string(&self, key: &str, max: usize) -> Result<Option<&'a str>, RpcError> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= max => Ok(Some(s)),
            Some(Value::String(_)) => Err(self.bad(format!("'{key}' must be 1-{max} characters"))),
            Some(_) => Err(self.bad(format!("'{key}' must be a string"))),
        }
    }

    /// An optional integer in `min..=max` (`null` counts as absent).
    fn integer(&self, key: &str, min: u32, max: u32) -> Result<Option<u32>, RpcError> {
        let v = match self.map.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => {
                n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0).map(|f| f as u64))
            }
            Some(_) => None,
        };
        match v.and_then(|v| u32::try_from(v).ok()).filter(|v| (min..=max).contains(v)) {
            Some(v) => Ok(Some(v)),
            None => Err(self.bad(format!("'{key}' must be an integer from {min} to {max}"))),
        }
    }
}

/// Plans a `tools/call`.
pub(super) fn call_tool(params: &Map<String, Value>, org: &OrgContext<'_>) -> Result<Planned, RpcError> {
    let Some(name) = params.get("name").and_then(Value::as_str) else {
        return Err(RpcError::params("params.name must be a string"));
    };
    let empty = Map::new();
    let map = match params.get("arguments") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(m)) => m,
        Some(_) => {
            return Err(RpcError::params(format!("Invalid arguments for tool {}: must be an object", echo(name))))
        }
    };
    let args = Args { tool: name, map };
    match name {
        "list_interactions" => list_interactions(&args, org),
        "get_interaction" => get_interaction(&args),
        "list_alerts" => list_alerts(&args, org),
        "get_session" => get_session(&args, org),
        other => Err(RpcError::params(format!("Unknown tool: {}", echo(other)))),
    }
}

fn list_interactions(args: &Args<'_>, org: &OrgContext<'_>) -> Result<Planned, RpcError> {
    args.only(&["limit", "cursor", "since", "until", "actor", "type"])?;
    let limit = args.integer("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let cursor = args.string("cursor", MAX_CURSOR_LEN)?;
    let since = args.string("since", 64)?;
    let until = args.string("until", 64)?;
    let filter = InteractionFilter {
        since: None,
        until: None,
        actor: args.string("actor", MAX_LABEL_LEN)?.map(str::to_string),
        kind: args.string("type", MAX_TYPE_LEN)?.map(str::to_string),
        ..InteractionFilter::default()
    };
    let filter = match time_window(filter, since, until) {
        Ok(f) => f,
        Err(m) => return Ok(Planned::Now(tool_error(&m))),
    };
    let scope = filter.cursor_scope(org.org_id);
    let Ok(after) = cursor.map(|c| org.cursor_key.decode(&scope, c)).transpose() else {
        return Ok(Planned::Now(tool_error(BAD_CURSOR)));
    };
    Ok(Planned::Later(Query::Interactions { filter, limit, after, scope }, Purpose::Tool))
}

/// One session's conversation, oldest first, paged like `list_interactions`.
fn get_session(args: &Args<'_>, org: &OrgContext<'_>) -> Result<Planned, RpcError> {
    args.only(&["session", "limit", "cursor"])?;
    let Some(session) = args.string("session", MAX_LABEL_LEN)? else {
        return Err(args.bad("missing required property 'session'"));
    };
    let limit = args.integer("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let cursor = args.string("cursor", MAX_CURSOR_LEN)?;
    let filter = InteractionFilter {
        session: Some(session.to_string()),
        order: Order::OldestFirst,
        ..InteractionFilter::default()
    };
    let scope = filter.cursor_scope(org.org_id);
    let Ok(after) = cursor.map(|c| org.cursor_key.decode(&scope, c)).transpose() else {
        return Ok(Planned::Now(tool_error(BAD_CURSOR)));
    };
    Ok(Planned::Later(Query::Interactions { filter, limit, after, scope }, Purpose::Tool))
}

fn get_interaction(args: &Args<'_>) -> Result<Planned, RpcError> {
    args.only(&["id"])?;
    let Some(id) = args.string("id", 64)? else {
        return Err(args.bad("missing required property 'id'"));
    };
    match InteractionId::parse(id) {
        Some(id) => Ok(Planned::Later(Query::Interaction { id: id.to_string() }, Purpose::Tool)),
        // An id that cannot exist is simply not found (as GET /v1/interactions/{id}).
        None => Ok(Planned::Now(tool_error(NOT_FOUND))),
    }
}

fn list_alerts(args: &Args<'_>, org: &OrgContext<'_>) -> Result<Planned, RpcError> {
    args.only(&["limit", "cursor", "kind", "state"])?;
    let limit = args.integer("limit", 1, MAX_LIMIT)?.unwrap_or(DEFAULT_LIMIT);
    let cursor = args.string("cursor", MAX_CURSOR_LEN)?;
    let kind = args.string("kind", 64)?.map(str::to_string);
    let state = match args.string("state", 6)? {
        None => None,
        Some(s @ ("open" | "closed")) => Some(s.to_string()),
        Some(_) => return Err(args.bad("'state' must be open or closed")),
    };
    let filter = AlertFilter { kind, state };
    let scope = filter.cursor_scope(org.org_id);
    let Ok(after) = cursor.map(|c| org.cursor_key.decode(&scope, c)).transpose() else {
        return Ok(Planned::Now(tool_error(BAD_CURSOR)));
    };
    Ok(Planned::Later(Query::Alerts { filter, limit, after, scope }, Purpose::Tool))
}

/// Applies `since`/`until` (RFC 3339) to `filter`, or says what is wrong.
pub(super) fn time_window(
    mut filter: InteractionFilter,
    since: Option<&str>,
    until: Option<&str>,
) -> Result<InteractionFilter, String> {
    let parse = |name: &str, v: &str| {
        parse_rfc3339(v).ok_or_else(|| format!("'{name}' must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z"))
    };
    filter.since = since.map(|v| parse("since", v)).transpose()?;
    filter.until = until.map(|v| parse("until", v)).transpose()?;
    if let (Some(s), Some(u)) = (filter.since, filter.until) {
        if s >= u {
            return Err("'since' must be earlier than 'until'".into());
        }
    }
    Ok(filter)
}

#[cfg(test)]
mod tests {
    use crate::cursor::PagePosition;
    use crate::ids::InteractionId;
    use crate::listing::InteractionFilter;
    use crate::mcp::testkit::*;
    use crate::mcp::{AnswerStatus, Fetched, Headers, INVALID_PARAMS, LIST_CONTENT_CHARS};
    use crate::protocol::Op;
    use serde_json::{json, Value};

    #[test]
    fn list_interactions_reads_through_the_actor_and_pages_with_signed_cursors() {
        let call = |args: Value| req("tools/call", json!({ "name": "list_interactions", "arguments": args }));
        let p = run(legacy("2025-11-25"), Some(&call(json!({ "actor": "alice", "limit": 2 }))));
        assert!(p.needs_data());
        let items = vec![interaction("int_b", "hello"), interaction("int_a", &"x".repeat(3000))];
        let next = PagePosition { at: 5, id: "int_a".into() };
        let (a, op) = answer_with(p, found_interactions(items, Some(next.clone())));
        let filter = InteractionFilter { actor: Some("alice".into()), ..InteractionFilter::default() };
        assert_eq!(op, Some(Op::ListInteractions { filter: filter.clone(), limit: 2, after: None }));
        let r = result(&a);
        assert_eq!(r["isError"], false);
        let data = &r["structuredContent"];
        assert_eq!(serde_json::from_str::<Value>(r["content"][0]["text"].as_str().unwrap()).unwrap(), *data);
        assert_eq!(data["interactions"][1]["content_truncated"], true);
        assert_eq!(data["interactions"][1]["content"].as_str().unwrap().chars().count(), LIST_CONTENT_CHARS);
        let cursor = data["next_cursor"].as_str().unwrap().to_string();
        // The cursor is the HTTP API's: same key, same scope.
        assert_eq!(key().decode(&filter.cursor_scope(ORG), &cursor), Ok(next.clone()));
        let p = run(legacy("2025-11-25"), Some(&call(json!({ "actor": "alice", "cursor": cursor }))));
        let (_, op) = answer_with(p, found_interactions(vec![], None));
        assert_eq!(op, Some(Op::ListInteractions { filter, limit: 50, after: Some(next) }));
        // Another filter or org: the cursor is refused, as a tool error.
        let p = run(legacy("2025-11-25"), Some(&call(json!({ "actor": "bob", "cursor": cursor }))));
        let a = answer(p);
        assert_eq!(result(&a)["isError"], true);
        // 2025-03-26 has no structured output.
        let p = run(Headers::default(), Some(&call(json!({}))));
        let (a, _) = answer_with(p, found_interactions(vec![], None));
        assert!(result(&a).get("structuredContent").is_none());
    }

    // claim: owasp.api3
    #[test]
    fn tool_argument_errors() {
        let call = |name: &str, args: Value| req("tools/call", json!({ "name": name, "arguments": args }));
        let h = legacy("2025-11-25");
        // Schema violations: -32602.
        for (name, args) in [
            ("list_interactions", json!({ "limit": 0 })),
            ("list_interactions", json!({ "limit": "5" })),
            ("list_interactions", json!({ "org_id": "x" })),
            ("list_interactions", json!({ "actor": "" })),
            ("get_interaction", json!({})),
            ("list_alerts", json!({ "state": "weird" })),
            ("nope", json!({})),
        ] {
            let a = answer(run(h, Some(&call(name, args.clone()))));
            assert_eq!(code(&a), Some(INVALID_PARAMS), "{name} {args}");
        }
        let a = answer(run(h, Some(&req("tools/call", json!({ "name": "list_alerts", "arguments": [1] })))));
        assert_eq!(code(&a), Some(INVALID_PARAMS));
        // Semantic problems: a tool error the model can act on.
        for (name, args) in [
            ("list_interactions", json!({ "since": "yesterday" })),
            ("list_interactions", json!({ "since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z" })),
            ("list_interactions", json!({ "cursor": "forged.cursor" })),
            ("get_interaction", json!({ "id": "not-an-id" })),
        ] {
            let a = answer(run(h, Some(&call(name, args.clone()))));
            assert_eq!(result(&a)["isError"], true, "{name} {args}");
        }
        let (a, op) = answer_with(
            run(h, Some(&call("list_interactions", json!({ "limit": 7.0 })))),
            found_interactions(vec![], None),
        );
        assert_eq!(a.status, AnswerStatus::Ok);
        assert!(matches!(op, Some(Op::ListInteractions { limit: 7, .. })));
    }

    #[test]
    fn get_session_reads_one_conversation_oldest_first_sanitized() {
        use crate::listing::Order;
        let call = |args: Value| req("tools/call", json!({ "name": "get_session", "arguments": args }));
        let p = run(legacy("2025-11-25"), Some(&call(json!({ "session": "chat-1", "limit": 2 }))));
        let items = vec![interaction("int_a", "hi <|im_start|>system"), interaction("int_b", "ok")];
        let next = PagePosition { at: 5, id: "int_b".into() };
        let (a, op) = answer_with(p, found_interactions(items, Some(next.clone())));
        let filter = InteractionFilter {
            session: Some("chat-1".into()),
            order: Order::OldestFirst,
            ..InteractionFilter::default()
        };
        assert_eq!(op, Some(Op::ListInteractions { filter: filter.clone(), limit: 2, after: None }));
        let data = &result(&a)["structuredContent"];
        assert!(!data["interactions"][0]["content"].as_str().unwrap().contains("<|im_start|>"));
        let cursor = data["next_cursor"].as_str().unwrap().to_string();
        assert_eq!(key().decode(&filter.cursor_scope(ORG), &cursor), Ok(next.clone()));
        let p = run(legacy("2025-11-25"), Some(&call(json!({ "session": "chat-1", "cursor": cursor }))));
        let (_, op) = answer_with(p, found_interactions(vec![], None));
        assert_eq!(op, Some(Op::ListInteractions { filter, limit: 50, after: Some(next) }));
        // The session is required; a cursor of another listing is a tool error.
        assert_eq!(code(&answer(run(legacy("2025-11-25"), Some(&call(json!({})))))), Some(INVALID_PARAMS));
        let list_cursor =
            key().encode(&InteractionFilter::default().cursor_scope(ORG), &PagePosition { at: 1, id: "int_a".into() });
        let a = answer(run(legacy("2025-11-25"), Some(&call(json!({ "session": "chat-1", "cursor": list_cursor })))));
        assert_eq!(result(&a)["isError"], true);
    }

    #[test]
    fn get_interaction_found_and_not_found() {
        let id = InteractionId::generate(1, &[1; 10]).to_string();
        let call = req("tools/call", json!({ "name": "get_interaction", "arguments": { "id": id } }));
        let (a, op) = answer_with(run(legacy("2025-11-25"), Some(&call)), Fetched::NotFound);
        assert_eq!(op, Some(Op::GetInteraction { id: id.clone() }));
        assert_eq!(result(&a)["isError"], true);
        let big = "y".repeat(5000);
        let (a, _) = answer_with(run(legacy("2025-11-25"), Some(&call)), found_interaction(interaction(&id, &big)));
        assert_eq!(result(&a)["structuredContent"]["content"], json!(big));
        assert!(result(&a)["structuredContent"].get("content_truncated").is_none());
    }
}
