//! A request waiting for one read of the org's data: the actor operation it
//! needs, and its JSON-RPC response once the actor has answered.

use super::jsonrpc::{decorate, error_response, result_response, Output, RpcError};
use super::render::{alert_values, echo, interaction_value, summarize_prompt, tool_error, tool_ok, triage_prompt};
use super::tools::NOT_FOUND;
use super::versions::Version;
use super::{OrgContext, LIST_CONTENT_CHARS};
use crate::cursor::{CursorKey, PagePosition};
use crate::listing::{AlertFilter, InteractionFilter};
use crate::protocol::{Op, Outcome};
use serde_json::{json, Value};

/// The read a request needs.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Query {
    Interactions { filter: InteractionFilter, limit: u32, after: Option<PagePosition>, scope: String },
    Interaction { id: String },
    Alerts { filter: AlertFilter, limit: u32, after: Option<PagePosition>, scope: String },
}

/// What the data is rendered into.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Purpose {
    Tool,
    Summarize { described: String, limit: u32 },
    Triage { described: String },
}

/// What the org's actor answered for a [`Pending::op`].
// Built once per read and handed straight to `Pending::finish`: boxing the
// outcome would only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Fetched {
    /// The op's outcome: [`Outcome::Interactions`] for a listing of
    /// interactions, [`Outcome::Interaction`] for one, [`Outcome::Alerts`]
    /// for alerts. Any other outcome is answered as an internal error.
    Found(Outcome),
    /// No such record in this org.
    NotFound,
    /// The actor refused the request as invalid (its message).
    Invalid(String),
}

/// A request waiting for one read of the org's data.
pub struct Pending {
    id: Value,
    version: Version,
    query: Query,
    purpose: Purpose,
    cursor_key: CursorKey,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("query", &self.query)
            .field("purpose", &self.purpose)
            .finish_non_exhaustive()
    }
}

impl Pending {
    pub(super) fn new(id: Value, version: Version, query: Query, purpose: Purpose, org: &OrgContext<'_>) -> Self {
        Pending { id, version, query, purpose, cursor_key: org.cursor_key.clone() }
    }

    /// The actor operation to run (the same ops as the HTTP routes).
    pub fn op(&self) -> Op {
        match &self.query {
            Query::Interactions { filter, limit, after, .. } => {
                Op::ListInteractions { filter: filter.clone(), limit: *limit, after: after.clone() }
            }
            Query::Interaction { id } => Op::GetInteraction { id: id.clone() },
            Query::Alerts { filter, limit, after, .. } => {
                Op::ListAlerts { filter: filter.clone(), limit: *limit, after: after.clone() }
            }
        }
    }

    /// The JSON-RPC response, rendered from what the actor answered.
    pub fn finish(self, fetched: Fetched) -> Value {
        let rendered = self.render(fetched);
        match rendered {
            Ok(result) => result_response(&self.id, decorate(self.version, result)),
            Err(e) => error_response(&self.id, e),
        }
    }

    /// The signed cursor of the page after this one (`null` on the last page).
    fn next_cursor(&self, next: Option<PagePosition>) -> Value {
        match (&self.query, next) {
            (Query::Interactions { scope, .. } | Query::Alerts { scope, .. }, Some(pos)) => {
                json!(self.cursor_key.encode(scope, &pos))
            }
            _ => Value::Null,
        }
    }

    fn render(&self, fetched: Fetched) -> Result<Output, RpcError> {
        match fetched {
            Fetched::Found(outcome) => self.render_outcome(outcome),
            Fetched::NotFound => match self.purpose {
                Purpose::Tool => Ok(tool_error(NOT_FOUND)),
                _ => Err(RpcError::internal()),
            },
            Fetched::Invalid(message) => match self.purpose {
                Purpose::Tool => Ok(tool_error(&message)),
                _ => Err(RpcError::params(echo(&message))),
            },
        }
    }

    /// The result for the outcome the query asked for; any other outcome is
    /// the server's fault.
    fn render_outcome(&self, outcome: Outcome) -> Result<Output, RpcError> {
        match (&self.query, &self.purpose, outcome) {
            (Query::Interactions { .. }, Purpose::Tool, Outcome::Interactions(page)) => {
                let list: Vec<Value> =
                    page.items.iter().map(|i| interaction_value(i, Some(LIST_CONTENT_CHARS))).collect();
                Ok(tool_ok(self.version, json!({ "interactions": list, "next_cursor": self.next_cursor(page.next) })))
            }
            (Query::Interaction { .. }, Purpose::Tool, Outcome::Interaction { record, .. }) => {
                Ok(tool_ok(self.version, interaction_value(&record, None)))
            }
            (Query::Alerts { .. }, Purpose::Tool, Outcome::Alerts(page)) => {
                let alerts = alert_values(&page.items);
                Ok(tool_ok(self.version, json!({ "alerts": alerts, "next_cursor": self.next_cursor(page.next) })))
            }
            (Query::Interactions { .. }, Purpose::Summarize { described, limit }, Outcome::Interactions(page)) => {
                Ok(summarize_prompt(described, *limit, &page.items, page.next.is_some()))
            }
            (Query::Alerts { .. }, Purpose::Triage { described }, Outcome::Alerts(page)) => {
                Ok(triage_prompt(described, &alert_values(&page.items), page.next.is_some()))
            }
            _ => Err(RpcError::internal()),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::mcp::testkit::*;
    use crate::mcp::{Fetched, INTERNAL_ERROR, INVALID_PARAMS};
    use crate::protocol::Outcome;
    use serde_json::{json, Value};

    fn call(name: &str, args: Value) -> Value {
        req("tools/call", json!({ "name": name, "arguments": args }))
    }

    fn prompt(name: &str) -> Value {
        req("prompts/get", json!({ "name": name, "arguments": {} }))
    }

    #[test]
    fn an_outcome_other_than_the_one_asked_for_is_an_internal_error() {
        let id = crate::ids::InteractionId::generate(1, &[1; 10]).to_string();
        for (body, wrong) in [
            (call("list_interactions", json!({})), found_alerts(vec![], None)),
            (call("get_interaction", json!({ "id": id })), found_interactions(vec![], None)),
            (call("list_alerts", json!({})), found_interaction(interaction("int_1", "x"))),
            (prompt("summarize_interactions"), Fetched::Found(Outcome::Done)),
            (prompt("triage_alerts"), found_interactions(vec![], None)),
        ] {
            let (a, _) = answer_with(run(legacy("2025-11-25"), Some(&body)), wrong);
            assert_eq!(code(&a), Some(INTERNAL_ERROR), "{body}");
        }
    }

    #[test]
    fn prompts_turn_missing_and_invalid_reads_into_errors() {
        let (a, _) = answer_with(run(legacy("2025-11-25"), Some(&prompt("triage_alerts"))), Fetched::NotFound);
        assert_eq!(code(&a), Some(INTERNAL_ERROR));
        let invalid = Fetched::Invalid("bad <|im_start|> filter".into());
        let (a, _) = answer_with(run(legacy("2025-11-25"), Some(&prompt("summarize_interactions"))), invalid);
        assert_eq!(code(&a), Some(INVALID_PARAMS));
        assert_eq!(a.body.unwrap()["error"]["message"], "bad [filtered:im_start] filter");
    }
}
