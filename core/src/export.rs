//! `GET /v1/interactions/export`: the query (the listing's filters, `order`,
//! `after`), the plan the actor streams from, and the lines of the stream.
//!
//! The body is NDJSON: one interaction per line, in the listing's order, then
//! exactly one final control line, `{"export": {...}}`:
//! - `{"export":{"complete":true,"count":N,"last_id":ID|null}}` when every
//!   matching row was sent;
//! - `{"export":{"complete":false,"count":N,"last_id":ID|null,"error":{"code","message"}}}`
//!   when a read failed midway: resume with `after=<last_id>`.
//!
//! A body without a final control line was cut in transit: resume the same way.

use crate::error::ApiError;
use crate::ids::InteractionId;
use crate::listing::{apply_interaction_filter, bad_param, check_window, InteractionFilter, Order};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Rows read from D1 per page of an export (each page also within
/// `listing::PAGE_BYTE_BUDGET`): what the actor holds at most at a time.
pub const EXPORT_PAGE_ROWS: u32 = 200;

/// The media type of the export's body.
pub const NDJSON: &str = "application/x-ndjson";

/// A parsed export request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    /// The listing's filters, with the order asked for (newest first unless
    /// `order=asc`).
    pub filter: InteractionFilter,
    /// Resume after this interaction (the last id a previous export sent).
    pub after: Option<String>,
}

/// Parses the decoded query pairs: `since`, `until`, `actor`, `type`,
/// `session` (as the listing), `order` (`desc`, the default, or `asc`) and
/// `after` (an interaction id). Unknown and repeated parameters are refused.
pub fn parse_export(pairs: &[(String, String)]) -> Result<ExportRequest, ApiError> {
    const ALLOWED: [&str; 7] = ["since", "until", "actor", "type", "session", "order", "after"];
    let mut req = ExportRequest::default();
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in pairs {
        if seen.contains(&k.as_str()) {
            return Err(bad_param(k, "is given more than once"));
        }
        seen.push(k);
        match k.as_str() {
            "order" => {
                req.filter.order = match v.as_str() {
                    "desc" => Order::NewestFirst,
                    "asc" => Order::OldestFirst,
                    _ => return Err(bad_param("order", "must be asc or desc")),
                }
            }
            "after" => {
                let id = InteractionId::parse(v).ok_or_else(|| bad_param("after", "must be an interaction id"))?;
                req.after = Some(id.to_string());
            }
            name if ALLOWED.contains(&name) => apply_interaction_filter(&mut req.filter, name, v)?,
            other => return Err(bad_param(other, &format!("is not supported (use {})", ALLOWED.join(", ")))),
        }
    }
    check_window(&req.filter)?;
    Ok(req)
}

/// The final line of a complete export.
pub fn complete_line(count: u64, last_id: Option<&str>) -> String {
    format!("{}\n", json!({ "export": { "complete": true, "count": count, "last_id": last_id } }))
}

/// The final line of an export whose read failed after `count` rows.
pub fn failed_line(count: u64, last_id: Option<&str>, error: &ApiError) -> String {
    let error = json!({ "code": error.code(), "message": error.public_message() });
    format!("{}\n", json!({ "export": { "complete": false, "count": count, "last_id": last_id, "error": error } }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Result<ExportRequest, ApiError> {
        parse_export(&pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>())
    }

    #[test]
    fn query_takes_the_listing_filters_order_and_after() {
        let r = q(&[]).unwrap();
        assert_eq!((r.filter.order, r.after), (Order::NewestFirst, None));
        let id = InteractionId::generate(5, &[1; 10]).to_string();
        let r = q(&[("order", "asc"), ("actor", "u"), ("session", "s"), ("after", &id.to_lowercase())]).unwrap();
        assert_eq!(r.filter.order, Order::OldestFirst);
        assert_eq!((r.filter.actor.as_deref(), r.filter.session.as_deref()), (Some("u"), Some("s")));
        assert_eq!(r.after, Some(id));
        for bad in [
            vec![("order", "up")],
            vec![("after", "int_x")],
            vec![("limit", "5")],
            vec![("cursor", "x")],
            vec![("order", "asc"), ("order", "desc")],
            vec![("since", "2026-01-02T00:00:00Z"), ("until", "2026-01-01T00:00:00Z")],
        ] {
            let e = q(&bad).unwrap_err();
            assert!(matches!(e, ApiError::Validation { .. }), "{bad:?}");
            assert!(e.public_message().contains(&format!("'{}'", bad[0].0)), "{bad:?}: {}", e.public_message());
        }
    }

    #[test]
    fn control_lines_tell_the_end_from_a_failure() {
        let done: serde_json::Value = serde_json::from_str(complete_line(3, Some("int_x")).trim_end()).unwrap();
        assert_eq!(done, json!({ "export": { "complete": true, "count": 3, "last_id": "int_x" } }));
        let e = ApiError::Unavailable { retry_after_s: 1, detail: "d1: secret detail".into() };
        let line = failed_line(2, None, &e);
        assert!(line.ends_with('\n') && !line.contains("secret detail"), "{line}");
        let failed: serde_json::Value = serde_json::from_str(line.trim_end()).unwrap();
        assert_eq!(failed["export"]["complete"], false);
        assert_eq!(failed["export"]["error"]["code"], "UNAVAILABLE");
    }
}
