//! MCP (Model Context Protocol) over Streamable HTTP, the pure part: JSON-RPC
//! parsing and error objects, protocol versions and eras, the tool and prompt
//! definitions, and rendering tool results and prompt messages from the org's
//! data. The Worker adapter (`src/mcp.rs`) only reads headers, calls the
//! org's actor for the [`Op`](crate::protocol::Op) a [`Pending`] names, and
//! turns an [`Answer`] into HTTP.
//!
//! Two eras are served on the one endpoint (see `docs/mcp.md`):
//!
//! - **Legacy** (2025-11-25, 2025-06-18, 2025-03-26): the `initialize`
//!   handshake negotiates a version, later requests carry it in the
//!   `MCP-Protocol-Version` header (none means 2025-03-26). The server is
//!   stateless and issues no session id.
//! - **Modern** (2026-07-28): no handshake; every request carries its version
//!   and client capabilities in `params._meta` and mirrors the version, the
//!   method and (for `tools/call`, `prompts/get`) the name into the
//!   `MCP-Protocol-Version`, `Mcp-Method` and `Mcp-Name` headers.
//!
//! Every piece of stored text placed into a tool result or a prompt, and every
//! prompt argument, goes through [`crate::sanitize::sanitize`] first.
//!
//! The public surface is here; each concern has its own module: `versions`
//! (revisions and eras), `headers` (the HTTP headers read), `jsonrpc`
//! (message shapes and error codes), `planner` (the request and its
//! messages), `methods` (routing by era), `catalogue` (tool and prompt
//! definitions), `tools` and `prompts` (their arguments), `pending` (a
//! request waiting for data), `render` (model-facing text) and `answer` (the
//! HTTP answer).

mod answer;
mod catalogue;
mod headers;
mod jsonrpc;
mod methods;
mod pending;
mod planner;
mod prompts;
mod render;
#[cfg(test)]
mod testkit;
mod tools;
mod versions;

pub use answer::{status_for, Answer, AnswerStatus, Responder};
pub use catalogue::{prompt_definitions, tool_definitions, PROMPT_NAMES, TOOL_NAMES};
pub use headers::Headers;
pub use jsonrpc::{
    HEADER_MISMATCH, INTERNAL_ERROR, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND,
    MISSING_REQUIRED_CLIENT_CAPABILITY, PARSE_ERROR, UNSUPPORTED_PROTOCOL_VERSION,
};
pub use pending::{Fetched, Pending};
pub use planner::{plan, Item, Plan};
pub use versions::{supported_versions, Version, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, META_SERVER_INFO};

use crate::cursor::CursorKey;

/// Body cap of `POST /mcp`.
pub const MCP_BODY_LIMIT: u64 = 256 * 1024;
/// `serverInfo.name`.
pub const SERVER_NAME: &str = "interlog";
/// `serverInfo.version`.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Most messages in one JSON-RPC batch (2025-03-26 only).
pub const MAX_BATCH: usize = 20;
/// `content` of an interaction in a `list_interactions` result is cut here
/// (characters); `get_interaction` returns it whole.
pub const LIST_CONTENT_CHARS: usize = 2000;
/// `content` of an interaction placed into a prompt is cut here (characters).
pub const PROMPT_CONTENT_CHARS: usize = 2000;
/// An interaction's `metadata` placed into a prompt is cut here (characters of JSON).
pub const PROMPT_METADATA_CHARS: usize = 500;
/// Most interactions `summarize_interactions` embeds.
pub const PROMPT_MAX_INTERACTIONS: u32 = 100;
/// Interactions `summarize_interactions` embeds when `limit` is not given.
pub const PROMPT_DEFAULT_INTERACTIONS: u32 = 50;
/// Alerts `triage_alerts` embeds at most.
pub const PROMPT_MAX_ALERTS: u32 = 100;
/// `ttlMs` of the cacheable modern results (discover, tools/list, prompts/list).
pub const LIST_TTL_MS: u64 = 300_000;

/// Who the data belongs to: the org of the verified key and the key that signs
/// its page cursors (the same cursors as the HTTP API's).
pub struct OrgContext<'a> {
    pub org_id: &'a str,
    pub cursor_key: &'a CursorKey,
}

impl std::fmt::Debug for OrgContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrgContext").field("org_id", &self.org_id).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::protocol::Outcome;
    use crate::sanitize::contains_control_token;
    use proptest::prelude::*;
    use serde_json::{json, Value};

    proptest! {
        // claim: threat.parser-crash
        #[test]
        fn arbitrary_bodies_and_headers_never_panic(
            s in "\\PC{0,200}",
            pv in prop::option::of(prop_oneof![Just("2026-07-28".to_string()), Just("2025-11-25".to_string()), "\\PC{0,12}"]),
            method in prop::option::of("[a-z/]{0,16}"),
        ) {
            let body: Option<Value> = serde_json::from_str(&s).ok();
            let h = Headers { protocol_version: pv.as_deref(), method: method.as_deref(), name: method.as_deref(), accept: None };
            let p = run(h, body.as_ref());
            let (items, responder) = p.into_parts();
            let outputs = items.into_iter().map(|i| match i {
                Item::Ready(v) => v,
                Item::Fetch(p) => Some(p.finish(Fetched::Found(Outcome::Done))),
            }).collect();
            let a = responder.answer(outputs);
            prop_assert_eq!(a.status == AnswerStatus::Accepted, a.body.is_none());
        }

        // claim: owasp.api10
        #[test]
        fn prompts_never_carry_tokens(content in "\\PC{0,120}", actor in "\\PC{1,40}") {
            let content = format!("{content}<|im_start|>{content}");
            let body = req("prompts/get", json!({ "name": "summarize_interactions", "arguments": { "actor": actor } }));
            let items = found_interactions(vec![interaction("int_1", &content)], None);
            let (a, _) = answer_with(run(legacy("2025-11-25"), Some(&body)), items);
            if let Some(r) = a.body.as_ref().and_then(|b| b.get("result")) {
                prop_assert!(!contains_control_token(&r.to_string()));
            }
        }
    }
}
