//! The MCP JSON-RPC parser: `mcp::plan` on arbitrary headers and body, then
//! every planned read answered with data made from the body's own strings
//! (`Pending::finish`) and the HTTP answer built (`Responder::answer`) — the
//! whole pure path of `POST /mcp` (src/mcp.rs adds only I/O).
//!
//! Input format (text, so a dictionary and JSON seeds work well): four header
//! lines, then a fetch-mode line, then the body.
//!
//! ```text
//! MCP-Protocol-Version   ("-": absent)
//! Mcp-Method             ("-": absent, "=": the body's `method`)
//! Mcp-Name               ("-": absent, "=": the body's `params.name`, "=b": it, base64-sentineled)
//! Accept                 ("-": absent)
//! fetch mode             (0 found, 1 found + next page, 2 not found, 3 invalid,
//!                         4 an outcome the read did not ask for; anything else: 0)
//! body…                  (parsed as JSON; not JSON is passed as `None`, as the Worker does)
//! ```
//!
//! Properties beyond "never panics":
//! - the status is `Accepted` (202) exactly when there is no body;
//! - the body is one JSON-RPC 2.0 response or (2025-03-26 batches) an array of
//!   them, each with exactly one of `result`/`error`, an id that is a string, an
//!   integer or null, and an error code from the JSON-RPC/MCP set;
//! - no `result` (tool results, prompt messages and descriptions) contains a
//!   host-reserved control token, whatever the stored data or the arguments held.
#![no_main]

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use interlog_core::alerts::AlertView;
use interlog_core::cursor::{CursorKey, PagePosition};
use interlog_core::interaction::Interaction;
use interlog_core::mcp::{plan, AnswerStatus, Fetched, Headers, Item, OrgContext};
use interlog_core::protocol::{Op, Outcome, Page};
use interlog_core::sanitize::contains_control_token;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

const CODES: [i64; 8] = [-32700, -32600, -32601, -32602, -32603, -32020, -32021, -32022];

fn header<'a>(line: &'a str, mirrored: Option<&'a str>) -> Option<String> {
    match line {
        "-" => None,
        "=" => mirrored.map(str::to_string),
        "=b" => mirrored.map(|m| format!("=?base64?{}?=", STANDARD.encode(m))),
        other => Some(other.to_string()),
    }
}

/// Every string in `v` (object keys included), depth first.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.iter().for_each(|(k, x)| {
            out.push(k.clone());
            strings(x, out)
        }),
        _ => {}
    }
}

/// Stored data for a read, made of the body's strings (so the fuzzer controls it).
fn data_for(op: &Op, pool: &[String], body: Option<&Value>, mode: &str) -> Fetched {
    let s = |i: usize| pool.get(i % pool.len().max(1)).cloned().unwrap_or_default();
    let interaction = |i: usize| Interaction {
        id: s(i),
        kind: s(i + 1),
        occurred_at: "2026-01-01T00:00:00.000Z".into(),
        received_at: s(i + 2),
        actor: Some(s(i + 3)),
        session: None,
        content: Some(s(i + 4)),
        metadata: body.cloned().filter(Value::is_object),
        idempotency_key: Some(s(i + 5)),
    };
    let alert = |i: usize, prefix: Option<String>| AlertView {
        id: s(i),
        kind: s(i + 1),
        prefix,
        state: s(i + 2),
        first_seen: s(i + 3),
        last_seen: s(i + 4),
        count: i64::try_from(pool.len()).unwrap_or(i64::MAX),
    };
    let next = (mode == "1").then(|| PagePosition { at: 1_795_910_400_000, id: s(6) });
    match mode {
        "2" => return Fetched::NotFound,
        "3" => return Fetched::Invalid(s(7)),
        "4" => return Fetched::Found(Outcome::Done),
        _ => {}
    }
    let outcome = match op {
        Op::GetInteraction { .. } => Outcome::Interaction { record: interaction(0), stored: None },
        Op::ListAlerts { .. } => Outcome::Alerts(Page { items: vec![alert(0, Some(s(5))), alert(6, None)], next }),
        _ => {
            let items = (0..pool.len().clamp(1, 4)).map(interaction).collect();
            Outcome::Interactions(Page { items, next })
        }
    };
    Fetched::Found(outcome)
}

fn check_response(r: &Value) {
    let obj = r.as_object().expect("a response is an object");
    assert_eq!(obj.get("jsonrpc"), Some(&json!("2.0")), "{r}");
    assert!(matches!(obj.get("id"), Some(Value::String(_) | Value::Null)) || obj["id"].is_i64() || obj["id"].is_u64());
    match (obj.get("result"), obj.get("error")) {
        (Some(result), None) => {
            let text = result.to_string();
            assert!(!contains_control_token(&text), "control token in a result: {text}");
        }
        (None, Some(error)) => {
            let code = error.get("code").and_then(Value::as_i64).expect("error code");
            assert!(CODES.contains(&code), "unknown error code {code}");
            assert!(error.get("message").is_some_and(Value::is_string));
        }
        _ => panic!("exactly one of result and error: {r}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.splitn(6, '\n');
    let mut next_line = || lines.next().unwrap_or("-").to_string();
    let (pv, method_line, name_line, accept, mode) = (next_line(), next_line(), next_line(), next_line(), next_line());
    let raw_body = lines.next().unwrap_or("");
    let body: Option<Value> = serde_json::from_str(raw_body).ok();

    let body_method = body.as_ref().and_then(|b| b.get("method")).and_then(Value::as_str);
    let body_name = body.as_ref().and_then(|b| b.get("params")).and_then(|p| p.get("name")).and_then(Value::as_str);
    let method_h = header(&method_line, body_method);
    let name_h = header(&name_line, body_name);
    let headers = Headers {
        protocol_version: (pv != "-").then_some(pv.as_str()),
        method: method_h.as_deref(),
        name: name_h.as_deref(),
        accept: (accept != "-").then_some(accept.as_str()),
    };
    let mut pool = Vec::new();
    if let Some(b) = &body {
        strings(b, &mut pool);
    }

    let key = CursorKey::new([7; 32]);
    let org = OrgContext { org_id: "org_fuzz", cursor_key: &key };
    let (items, responder) = plan(&headers, body.as_ref(), &org).into_parts();
    let outputs: Vec<Option<Value>> = items
        .into_iter()
        .map(|item| match item {
            Item::Ready(v) => v,
            Item::Fetch(p) => {
                let fetched = data_for(&p.op(), &pool, body.as_ref(), &mode);
                Some(p.finish(fetched))
            }
        })
        .collect();
    let answer = responder.answer(outputs);

    assert_eq!(answer.status == AnswerStatus::Accepted, answer.body.is_none(), "{answer:?}");
    match &answer.body {
        Some(Value::Array(responses)) => {
            assert!(!responses.is_empty());
            responses.iter().for_each(check_response);
        }
        Some(r) => check_response(r),
        None => {}
    }
});
