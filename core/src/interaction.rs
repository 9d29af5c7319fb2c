//! Interactions: validating what clients send (each problem reported with its
//! field, and its item index in a batch; at most twenty kept, every one
//! counted: see `field_errors`) and the shape the API returns.

use crate::timefmt::{parse_rfc3339, rfc3339};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Body cap of `POST /v1/interactions` (1 MiB).
pub const SINGLE_BODY_LIMIT: u64 = 1024 * 1024;
/// Body cap of `POST /v1/interactions/batch` (5 MiB).
pub const BATCH_BODY_LIMIT: u64 = 5 * 1024 * 1024;
/// Items in one batch.
pub const MAX_BATCH_ITEMS: usize = 100;
/// `type`: 1–64 characters of `[a-z0-9_.:-]`.
pub const MAX_TYPE_LEN: usize = 64;
/// `actor`, `session`: at most 256 characters.
pub const MAX_LABEL_LEN: usize = 256;
/// `idempotency_key`: 1–128 characters.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 128;
/// `occurred_at` may lie at most this far in the future.
pub const MAX_FUTURE_SKEW_MS: i64 = 5 * 60 * 1000;

const FIELDS: [&str; 7] = ["type", "occurred_at", "actor", "session", "content", "metadata", "idempotency_key"];

/// A validated interaction, ready to store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewInteraction {
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: i64,
    pub actor: Option<String>,
    pub session: Option<String>,
    pub content: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub idempotency_key: Option<String>,
}

pub use crate::field_errors::{FieldError, FieldErrors, MAX_FIELD_ERRORS};

/// Checks an idempotency key (also used for the `Idempotency-Key` header).
pub fn check_idempotency_key(k: &str) -> Result<(), String> {
    let n = k.chars().count();
    if n == 0 || n > MAX_IDEMPOTENCY_KEY_LEN {
        return Err(format!("must be 1-{MAX_IDEMPOTENCY_KEY_LEN} characters"));
    }
    if k.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Checks an `Idempotency-Key` header value: 1–128 visible ASCII characters
/// (header bytes outside ASCII cannot be told apart once decoded).
pub fn check_idempotency_header(k: &str) -> Result<(), String> {
    if !k.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err("must be visible ASCII characters only (put other keys in the body's idempotency_key)".into());
    }
    check_idempotency_key(k)
}

fn check_type(t: &str) -> Result<(), String> {
    let ok_chars = t.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b':' | b'-'));
    if t.is_empty() || t.len() > MAX_TYPE_LEN || !ok_chars {
        return Err(format!("must be 1-{MAX_TYPE_LEN} characters of [a-z0-9_.:-]"));
    }
    Ok(())
}

fn opt_string(obj: &Map<String, Value>, field: &str, max_chars: Option<usize>, at: &mut At<'_>) -> Option<String> {
    match obj.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            if let Some(m) = max_chars.filter(|m| s.chars().count() > *m) {
                at.push(field, format!("must be at most {m} characters"));
            }
            Some(s.clone())
        }
        Some(_) => {
            at.push(field, "must be a string");
            None
        }
    }
}

/// The collector, with the batch index (if any) of the item being checked.
struct At<'a> {
    errs: &'a mut FieldErrors,
    index: Option<usize>,
}

impl At<'_> {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.errs.push_at(self.index, field, message);
    }
}

/// Validates one interaction object at `now_ms`.
pub fn validate(value: &Value, now_ms: i64) -> Result<NewInteraction, FieldErrors> {
    let mut errs = FieldErrors::new();
    let item = check_item(value, now_ms, &mut At { errs: &mut errs, index: None });
    match item {
        Some(v) if errs.is_empty() => Ok(v),
        _ => Err(errs),
    }
}

fn check_kind(obj: &Map<String, Value>, at: &mut At<'_>) -> String {
    match obj.get("type") {
        Some(Value::String(t)) => {
            if let Err(m) = check_type(t) {
                at.push("type", m);
            }
            t.clone()
        }
        None | Some(Value::Null) => {
            at.push("type", "is required");
            String::new()
        }
        Some(_) => {
            at.push("type", "must be a string");
            String::new()
        }
    }
}

fn check_occurred_at(obj: &Map<String, Value>, now_ms: i64, at: &mut At<'_>) -> i64 {
    match obj.get("occurred_at") {
        None | Some(Value::Null) => now_ms,
        Some(Value::String(s)) => match parse_rfc3339(s) {
            Some(t) if t > now_ms + MAX_FUTURE_SKEW_MS => {
                at.push("occurred_at", "must not be more than 5 minutes in the future");
                t
            }
            Some(t) if t < 0 => {
                at.push("occurred_at", "must not be before 1970-01-01T00:00:00Z");
                t
            }
            Some(t) => t,
            None => {
                at.push("occurred_at", "must be an RFC 3339 date-time, e.g. 2026-01-31T12:00:00Z");
                now_ms
            }
        },
        Some(_) => {
            at.push("occurred_at", "must be an RFC 3339 date-time string");
            now_ms
        }
    }
}

/// Checks one item, recording its problems in `at`; the item when it has none
/// of its own (problems recorded before it do not count).
fn check_item(value: &Value, now_ms: i64, at: &mut At<'_>) -> Option<NewInteraction> {
    let Some(obj) = value.as_object() else {
        at.push("", "must be a JSON object");
        return None;
    };
    let before = at.errs.total();
    for k in obj.keys().filter(|k| !FIELDS.contains(&k.as_str())) {
        at.push(k, "unknown field");
    }
    let kind = check_kind(obj, at);
    let occurred_at = check_occurred_at(obj, now_ms, at);
    let actor = opt_string(obj, "actor", Some(MAX_LABEL_LEN), at);
    let session = opt_string(obj, "session", Some(MAX_LABEL_LEN), at);
    let content = opt_string(obj, "content", None, at);
    let metadata = match obj.get("metadata") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) => Some(m.clone()),
        Some(_) => {
            at.push("metadata", "must be a JSON object");
            None
        }
    };
    let idempotency_key = opt_string(obj, "idempotency_key", None, at);
    if let Some(k) = &idempotency_key {
        if let Err(m) = check_idempotency_key(k) {
            at.push("idempotency_key", m);
        }
    }
    (at.errs.total() == before).then_some(NewInteraction {
        kind,
        occurred_at,
        actor,
        session,
        content,
        metadata,
        idempotency_key,
    })
}

/// Validates a batch body `{"interactions":[…]}`: all items or none.
pub fn validate_batch(value: &Value, now_ms: i64) -> Result<Vec<NewInteraction>, FieldErrors> {
    let Some(obj) = value.as_object() else {
        return Err(FieldErrors::one("", "must be a JSON object with an \"interactions\" array"));
    };
    if let Some(k) = obj.keys().find(|k| k.as_str() != "interactions") {
        return Err(FieldErrors::one(k, "unknown field"));
    }
    let Some(items) = obj.get("interactions").and_then(Value::as_array) else {
        return Err(FieldErrors::one("interactions", "is required and must be an array"));
    };
    if items.is_empty() || items.len() > MAX_BATCH_ITEMS {
        return Err(FieldErrors::one(
            "interactions",
            format!("must hold 1-{MAX_BATCH_ITEMS} items (got {})", items.len()),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut errs = FieldErrors::new();
    let mut seen_keys = std::collections::HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let mut at = At { errs: &mut errs, index: Some(i) };
        if let Some(v) = check_item(item, now_ms, &mut at) {
            if let Some(k) = &v.idempotency_key {
                if let Some(first) = seen_keys.insert(k.clone(), i) {
                    at.push("idempotency_key", format!("duplicates item {first} of this batch"));
                }
            }
            out.push(v);
        }
    }
    errs.into_result(out)
}

/// Parses a JSON request body, with a 400 that says where it broke.
pub fn parse_json_body(bytes: &[u8]) -> Result<Value, crate::ApiError> {
    if bytes.is_empty() {
        return Err(crate::ApiError::validation("request body is empty; a JSON object is required"));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| crate::ApiError::validation(format!("request body is not valid JSON: {e}")))
}

/// The 400 for field problems: a summary as the message (with the count of
/// every problem), at most [`MAX_FIELD_ERRORS`] of them in `details`.
pub fn validation_error(errs: FieldErrors) -> crate::ApiError {
    crate::ApiError::Validation { message: summary(&errs), details: serde_json::to_value(errs.kept()).ok() }
}

/// A batch body as the client sent it, parsed and validated in one pass.
pub fn parse_batch(bytes: &[u8], now_ms: i64) -> Result<Vec<NewInteraction>, crate::ApiError> {
    validate_batch(&parse_json_body(bytes)?, now_ms).map_err(validation_error)
}

/// Summarises field errors for the envelope's `message`: the first problem,
/// how many more there are, and (when some were left out of `details`) how
/// many `details` lists.
pub fn summary(errs: &FieldErrors) -> String {
    let first = errs.kept().first().map_or_else(String::new, |e| match e.index {
        Some(i) => format!("interactions[{i}].{}: {}", e.field, e.message),
        None if e.field.is_empty() => format!("body {}", e.message),
        None => format!("{}: {}", e.field, e.message),
    });
    let more = match errs.total() {
        0 | 1 => return first,
        2 => "1 more problem".to_string(),
        n => format!("{} more problems", n - 1),
    };
    if errs.dropped() == 0 {
        format!("{first} (and {more})")
    } else {
        format!("{first} (and {more}; details lists the first {})", errs.kept().len())
    }
}

/// An interaction as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Interaction {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: String,
    pub received_at: String,
    pub actor: Option<String>,
    pub session: Option<String>,
    pub content: Option<String>,
    pub metadata: Option<Value>,
    pub idempotency_key: Option<String>,
}

/// Stored columns of one `interactions` row (times in Unix ms, metadata as text).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InteractionRow {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: f64,
    pub received_at: f64,
    pub actor: Option<String>,
    pub session: Option<String>,
    pub content: Option<String>,
    pub metadata: Option<String>,
    pub idempotency_key: Option<String>,
}

impl From<InteractionRow> for Interaction {
    fn from(r: InteractionRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            occurred_at: rfc3339(r.occurred_at as i64),
            received_at: rfc3339(r.received_at as i64),
            actor: r.actor,
            session: r.session,
            content: r.content,
            metadata: r.metadata.and_then(|m| serde_json::from_str(&m).ok()),
            idempotency_key: r.idempotency_key,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000_000;

    fn fields(e: &FieldErrors) -> Vec<&str> {
        e.iter().map(|x| x.field.as_str()).collect()
    }

    #[test]
    fn minimal_is_valid_and_defaults_time() {
        let v = validate(&json!({"type": "chat.turn"}), NOW).unwrap();
        assert_eq!(v.kind, "chat.turn");
        assert_eq!(v.occurred_at, NOW);
        assert_eq!(v.actor, None);
    }

    #[test]
    fn full_is_valid() {
        let v = validate(
            &json!({"type": "a:b-c_d.e", "occurred_at": "2026-01-01T00:00:00Z", "actor": "u1", "session": "s",
                    "content": "hi", "metadata": {"k": [1]}, "idempotency_key": "k1"}),
            NOW,
        )
        .unwrap();
        assert_eq!(v.metadata.unwrap()["k"], json!([1]));
        assert_eq!(v.idempotency_key.as_deref(), Some("k1"));
    }

    // claim: owasp.api3
    #[test]
    fn every_problem_names_its_field() {
        let e = validate(
            &json!({"type": "Bad Type", "occurred_at": "soon", "actor": 5, "metadata": [], "extra": 1,
                    "idempotency_key": ""}),
            NOW,
        )
        .unwrap_err();
        let mut f = fields(&e);
        f.sort();
        assert_eq!(f, vec!["actor", "extra", "idempotency_key", "metadata", "occurred_at", "type"]);
        assert!(summary(&e).contains("(and 5 more problems)"));
    }

    #[test]
    fn type_rules() {
        assert!(validate(&json!({}), NOW).is_err());
        assert!(validate(&json!({"type": ""}), NOW).is_err());
        assert!(validate(&json!({"type": "x".repeat(64)}), NOW).is_ok());
        assert!(validate(&json!({"type": "x".repeat(65)}), NOW).is_err());
        assert!(validate(&json!({"type": "é"}), NOW).is_err());
    }

    #[test]
    fn occurred_at_window() {
        let at = |ms: i64| json!({"type": "t", "occurred_at": rfc3339(ms)});
        assert!(validate(&at(NOW + MAX_FUTURE_SKEW_MS), NOW).is_ok());
        assert!(validate(&at(NOW + MAX_FUTURE_SKEW_MS + 1), NOW).is_err());
        assert!(validate(&at(0), NOW).is_ok());
    }

    #[test]
    fn label_lengths_count_characters() {
        assert!(validate(&json!({"type": "t", "actor": "é".repeat(256)}), NOW).is_ok());
        assert!(validate(&json!({"type": "t", "actor": "é".repeat(257)}), NOW).is_err());
        assert!(validate(&json!({"type": "t", "idempotency_key": "k".repeat(129)}), NOW).is_err());
    }

    #[test]
    fn idempotency_header_is_visible_ascii() {
        assert!(check_idempotency_header("order-42:retry").is_ok());
        for bad in ["k\u{FFFD}", "caf\u{e9}", "a b", "", "tab\tkey"] {
            assert!(check_idempotency_header(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn metadata_floats_round_trip_exactly() {
        // Found by the interaction_validate fuzz target: without serde_json's
        // `float_roundtrip`, these came back 1-2 ULP off once stored and read.
        let raw = r#"{"type":"i","metadata":{"k":[55555,0.00000010933834357614193924,0.745555555555555554]}}"#;
        let v = validate(&serde_json::from_str(raw).unwrap(), NOW).unwrap();
        let text = serde_json::to_string(&v).unwrap();
        let back: NewInteraction = serde_json::from_str(&text).unwrap();
        assert_eq!(back, v);
        let stored = Value::Object(v.metadata.clone().unwrap()).to_string();
        assert_eq!(serde_json::from_str::<Value>(&stored).unwrap(), Value::Object(v.metadata.unwrap()));
    }

    // claim: posture.body-caps
    #[test]
    fn batch_rules() {
        let item = json!({"type": "t"});
        assert_eq!(validate_batch(&json!({"interactions": vec![item.clone(); 100]}), NOW).unwrap().len(), 100);
        let e = validate_batch(&json!({"interactions": vec![item.clone(); 101]}), NOW).unwrap_err();
        assert!(e.kept()[0].message.contains("1-100"));
        assert!(validate_batch(&json!({"interactions": []}), NOW).is_err());
        assert!(validate_batch(&json!({"items": []}), NOW).is_err());
        let e = validate_batch(&json!({"interactions": [item, {"type": 1}, {"type": "t", "idempotency_key": "a"}, {"type": "t", "idempotency_key": "a"}]}), NOW).unwrap_err();
        assert_eq!(e.iter().map(|x| x.index).collect::<Vec<_>>(), vec![Some(1), Some(3)]);
        assert!(summary(&e).starts_with("interactions[1].type"));
    }

    /// A batch whose items carry `unknown` unknown fields each (and a valid type).
    fn batch_of_unknown_fields(items: usize, unknown: usize) -> Value {
        let mut item = Map::new();
        item.insert("type".into(), json!("t"));
        for f in 0..unknown {
            item.insert(format!("f{f}"), Value::Null);
        }
        json!({ "interactions": vec![Value::Object(item); items] })
    }

    // claim: owasp.api4, threat.error-amplification
    #[test]
    fn a_batch_of_a_million_unknown_fields_gives_twenty_details_and_the_count() {
        let e = validate_batch(&batch_of_unknown_fields(100, 10_000), NOW).unwrap_err();
        assert_eq!(e.total(), 1_000_000);
        assert_eq!(e.kept().len(), MAX_FIELD_ERRORS);
        let err = validation_error(e);
        let body = err.envelope("r").to_string();
        assert!(body.len() < 4096, "{} bytes", body.len());
        assert_eq!(err.envelope("r")["error"]["details"].as_array().map(Vec::len), Some(MAX_FIELD_ERRORS));
        let msg = err.public_message();
        assert!(msg.contains("(and 999999 more problems; details lists the first 20)"), "{msg}");
    }

    #[test]
    fn long_unknown_field_names_are_clipped() {
        let name = "n".repeat(1024 * 1024);
        let e = validate(&json!({"type": "t", name.clone(): 1}), NOW).unwrap_err();
        let body = validation_error(e).envelope("r").to_string();
        assert!(body.len() < 1024, "{} bytes", body.len());
        assert!(body.contains(&format!("{}…", "n".repeat(crate::field_errors::MAX_FIELD_NAME_CHARS))));
    }

    #[test]
    fn summary_counts_without_a_note_when_nothing_is_left_out() {
        let e = validate(&json!({"a": 1, "b": 2}), NOW).unwrap_err();
        assert_eq!(e.total(), 3);
        assert_eq!(summary(&e), "a: unknown field (and 2 more problems)");
    }

    proptest! {
        // claim: threat.parser-crash
        #[test]
        fn arbitrary_json_never_panics(s in "\\PC{0,200}") {
            if let Ok(v) = serde_json::from_str::<Value>(&s) {
                let _ = validate(&v, NOW);
                let _ = validate_batch(&v, NOW);
            }
        }

        #[test]
        fn details_never_exceed_the_bound(items in 1usize..=MAX_BATCH_ITEMS, unknown in 0usize..40, bad_type in any::<bool>()) {
            let mut batch = batch_of_unknown_fields(items, unknown);
            if bad_type {
                batch["interactions"][0]["type"] = json!(1);
            }
            let expected = items * unknown + usize::from(bad_type);
            match validate_batch(&batch, NOW) {
                Ok(v) => prop_assert_eq!((v.len(), expected), (items, 0)),
                Err(e) => {
                    prop_assert_eq!(e.total(), expected);
                    let env = validation_error(e).envelope("r");
                    let details = env["error"]["details"].as_array().map_or(0, Vec::len);
                    prop_assert!(details <= MAX_FIELD_ERRORS && details == expected.min(MAX_FIELD_ERRORS));
                }
            }
        }

        #[test]
        fn valid_types_accepted(t in "[a-z0-9_.:-]{1,64}") {
            let ok = validate(&json!({"type": t}), NOW).is_ok();
            prop_assert!(ok);
        }
    }
}
