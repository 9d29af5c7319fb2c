//! The HTTP answer to one `POST /mcp`: its status class, by each era's rules,
//! and its body.

use super::jsonrpc::{
    HEADER_MISMATCH, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND, MISSING_REQUIRED_CLIENT_CAPABILITY,
    PARSE_ERROR, UNSUPPORTED_PROTOCOL_VERSION,
};
use super::versions::Version;
use serde_json::Value;

/// The HTTP status class of an [`Answer`]. The Worker's `respond` module is
/// the one place that turns it into a status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnswerStatus {
    /// A JSON-RPC response or batch of them (200), error objects included
    /// where the era defines no other status.
    Ok,
    /// Nothing to answer (202): only notifications or posted responses.
    Accepted,
    /// The message cannot be accepted (400): parse, request, header and
    /// version errors, and 2026-07-28's invalid params.
    BadRequest,
    /// 2026-07-28: the method does not exist (404).
    NotFound,
    /// The `Accept` header does not allow a JSON answer (406).
    NotAcceptable,
}

/// The HTTP answer: status and JSON body (`None`: no body, [`AnswerStatus::Accepted`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: AnswerStatus,
    pub body: Option<Value>,
}

/// How a plan's responses become one answer.
#[derive(Debug, Clone, Copy)]
pub(super) enum Shape {
    /// One message, its HTTP status by the era's rules.
    Single(Version),
    /// A 2025-03-26 batch: the array of responses, [`AnswerStatus::Accepted`] when there are none.
    Batch,
    /// Refused as a whole with this status (the one item holds the error object).
    Fixed(AnswerStatus),
}

/// Turns the responses of a [`super::Plan`]'s items (in order) into the HTTP answer.
#[derive(Debug)]
pub struct Responder(Shape);

impl Responder {
    pub(super) fn new(shape: Shape) -> Self {
        Responder(shape)
    }

    /// The answer for `outputs`, one per item, in order.
    pub fn answer(&self, outputs: Vec<Option<Value>>) -> Answer {
        match self.0 {
            Shape::Fixed(status) => Answer { status, body: outputs.into_iter().flatten().next() },
            Shape::Single(version) => match outputs.into_iter().flatten().next() {
                None => Answer { status: AnswerStatus::Accepted, body: None },
                Some(body) => Answer { status: status_for(version, &body), body: Some(body) },
            },
            Shape::Batch => {
                let responses: Vec<Value> = outputs.into_iter().flatten().collect();
                if responses.is_empty() {
                    Answer { status: AnswerStatus::Accepted, body: None }
                } else {
                    Answer { status: AnswerStatus::Ok, body: Some(Value::Array(responses)) }
                }
            }
        }
    }
}

/// HTTP status of a single JSON-RPC response. 2026-07-28 (the transport spec
/// and the official SDK's table): 400 for parse, request, params, header and
/// version errors, 404 for an unknown method. Earlier revisions define no
/// status for a request's error, so a well-formed request gets 200 with its
/// error object; only messages that cannot be accepted at all get 400.
pub fn status_for(version: Version, response: &Value) -> AnswerStatus {
    let Some(code) = response.get("error").and_then(|e| e.get("code")).and_then(Value::as_i64) else {
        return AnswerStatus::Ok;
    };
    match code {
        PARSE_ERROR
        | INVALID_REQUEST
        | HEADER_MISMATCH
        | MISSING_REQUIRED_CLIENT_CAPABILITY
        | UNSUPPORTED_PROTOCOL_VERSION => AnswerStatus::BadRequest,
        INVALID_PARAMS if version.is_modern() => AnswerStatus::BadRequest,
        METHOD_NOT_FOUND if version.is_modern() => AnswerStatus::NotFound,
        _ => AnswerStatus::Ok,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mcp::INTERNAL_ERROR;
    use serde_json::json;

    fn error(code: i64) -> Value {
        json!({ "jsonrpc": "2.0", "id": 1, "error": { "code": code, "message": "m" } })
    }

    #[test]
    fn status_rules_by_era() {
        for v in Version::SUPPORTED {
            let modern = v.is_modern();
            assert_eq!(status_for(v, &json!({ "jsonrpc": "2.0", "id": 1, "result": {} })), AnswerStatus::Ok);
            for code in [PARSE_ERROR, INVALID_REQUEST, HEADER_MISMATCH, UNSUPPORTED_PROTOCOL_VERSION] {
                assert_eq!(status_for(v, &error(code)), AnswerStatus::BadRequest, "{v:?} {code}");
            }
            let params = if modern { AnswerStatus::BadRequest } else { AnswerStatus::Ok };
            assert_eq!(status_for(v, &error(INVALID_PARAMS)), params);
            let method = if modern { AnswerStatus::NotFound } else { AnswerStatus::Ok };
            assert_eq!(status_for(v, &error(METHOD_NOT_FOUND)), method);
            assert_eq!(status_for(v, &error(INTERNAL_ERROR)), AnswerStatus::Ok);
        }
    }

    #[test]
    fn shapes_answer_by_their_rules() {
        let fixed = Responder::new(Shape::Fixed(AnswerStatus::NotAcceptable));
        let a = fixed.answer(vec![Some(error(INVALID_REQUEST))]);
        assert_eq!(a, Answer { status: AnswerStatus::NotAcceptable, body: Some(error(INVALID_REQUEST)) });
        let single = Responder::new(Shape::Single(Version::V2025_11_25));
        assert_eq!(single.answer(vec![None]), Answer { status: AnswerStatus::Accepted, body: None });
        let batch = Responder::new(Shape::Batch);
        assert_eq!(batch.answer(vec![None, None]), Answer { status: AnswerStatus::Accepted, body: None });
        let a = batch.answer(vec![None, Some(error(METHOD_NOT_FOUND))]);
        assert_eq!(a, Answer { status: AnswerStatus::Ok, body: Some(json!([error(METHOD_NOT_FOUND)])) });
    }
}
