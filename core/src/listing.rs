//! Query strings of listing routes: `limit`, `cursor` and per-route filters.
//! Unknown or repeated parameters are refused with a message naming them.

use crate::error::ApiError;
use crate::timefmt::parse_rfc3339;
use serde::{Deserialize, Serialize};

/// Default page size.
pub const DEFAULT_LIMIT: u32 = 50;
/// Largest page size.
pub const MAX_LIMIT: u32 = 200;
/// Byte budget of one page of `GET /v1/interactions` (and of the MCP tools
/// and prompts that read through it): 2 MiB of stored row bytes (the UTF-8
/// length of every text column, as the storage quota counts them). A page
/// ends early, with a cursor, before the row that would pass it; its first
/// row is always included, so a page holds at most the budget or one row.
pub const PAGE_BYTE_BUDGET: u64 = 2 * 1024 * 1024;

/// Where a page of rows ends: `take` rows make it; `more` when rows are left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageCut {
    pub take: usize,
    pub more: bool,
}

/// Cuts a page from the sizes of the next rows in order (at most `limit + 1`
/// of them, the extra one telling whether more follow): at most `limit` rows
/// whose sizes add up to at most `budget`, but never fewer than one row when
/// there is one.
pub fn cut_page(sizes: &[u64], limit: usize, budget: u64) -> PageCut {
    let mut used = 0u64;
    let mut take = 0usize;
    for &size in sizes.iter().take(limit) {
        let total = used.saturating_add(size);
        if take > 0 && total > budget {
            break;
        }
        used = total;
        take += 1;
    }
    PageCut { take, more: take < sizes.len() }
}

/// The order of an interaction listing, by (`occurred_at`, `id`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Newest first (`GET /v1/interactions`).
    #[default]
    NewestFirst,
    /// Oldest first (a session's conversation; an export with `order=asc`).
    OldestFirst,
}

/// Filters of `GET /v1/interactions`. `since` is inclusive, `until` exclusive,
/// both on `occurred_at`. `order` is part of the filter so that every reader
/// of the listing (HTTP, sessions, MCP, export) pages the same way.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractionFilter {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub actor: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    #[serde(default)]
    pub order: Order,
}

impl InteractionFilter {
    /// The cursor scope: the listing, the org and every filter value.
    pub fn cursor_scope(&self, org_id: &str) -> String {
        let mut scope = serde_json::json!(["interactions", org_id, self.since, self.until, self.actor, self.kind]);
        if self.session.is_some() || self.order != Order::NewestFirst {
            if let Some(parts) = scope.as_array_mut() {
                parts.extend([serde_json::json!(self.session), serde_json::json!(self.order)]);
            }
        }
        scope.to_string()
    }
}

/// The query parameters that filter interactions (the listing's and the
/// export's), applied to `f`.
pub fn apply_interaction_filter(f: &mut InteractionFilter, k: &str, v: &str) -> Result<(), ApiError> {
    match k {
        "since" => f.since = Some(time_param("since", v)?),
        "until" => f.until = Some(time_param("until", v)?),
        "actor" => f.actor = Some(text_param("actor", v, crate::interaction::MAX_LABEL_LEN)?),
        "session" => f.session = Some(text_param("session", v, crate::interaction::MAX_LABEL_LEN)?),
        _ => f.kind = Some(text_param("type", v, crate::interaction::MAX_TYPE_LEN)?),
    }
    Ok(())
}

/// Refuses a window that ends before it starts.
pub fn check_window(f: &InteractionFilter) -> Result<(), ApiError> {
    match (f.since, f.until) {
        (Some(s), Some(u)) if s >= u => Err(bad("since", "must be earlier than 'until'")),
        _ => Ok(()),
    }
}

/// A parsed listing request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListRequest<F> {
    pub limit: u32,
    pub cursor: Option<String>,
    pub filter: F,
}

fn bad(param: &str, why: &str) -> ApiError {
    ApiError::Validation {
        message: format!("query parameter '{param}' {why}"),
        details: Some(serde_json::json!([{ "field": param, "message": why }])),
    }
}

fn time_param(name: &str, v: &str) -> Result<i64, ApiError> {
    parse_rfc3339(v).ok_or_else(|| bad(name, "must be an RFC 3339 date-time"))
}

/// Parses `limit`, `cursor` and the filters `allowed` (applied by `apply`),
/// refusing unknown and repeated parameters.
pub fn parse_list<F: Default>(
    pairs: &[(String, String)],
    allowed: &[&str],
    mut apply: impl FnMut(&mut F, &str, &str) -> Result<(), ApiError>,
) -> Result<ListRequest<F>, ApiError> {
    let mut req = ListRequest { limit: DEFAULT_LIMIT, cursor: None, filter: F::default() };
    let mut seen: Vec<&str> = Vec::new();
    for (k, v) in pairs {
        if seen.contains(&k.as_str()) {
            return Err(bad(k, "is given more than once"));
        }
        seen.push(k);
        match k.as_str() {
            "limit" => {
                req.limit = v
                    .parse::<u32>()
                    .ok()
                    .filter(|n| (1..=MAX_LIMIT).contains(n))
                    .ok_or_else(|| bad("limit", "must be an integer from 1 to 200"))?;
            }
            "cursor" => req.cursor = Some(v.clone()),
            name if allowed.contains(&name) => apply(&mut req.filter, name, v)?,
            other => {
                let names = ["limit", "cursor"].iter().chain(allowed).copied().collect::<Vec<_>>().join(", ");
                return Err(bad(other, &format!("is not supported (use {names})")));
            }
        }
    }
    Ok(req)
}

fn text_param(name: &str, v: &str, max: usize) -> Result<String, ApiError> {
    if v.is_empty() || v.chars().count() > max {
        return Err(bad(name, &format!("must be 1-{max} characters")));
    }
    Ok(v.to_string())
}

/// Parses the decoded query pairs of `GET /v1/interactions`.
pub fn parse_interaction_list(pairs: &[(String, String)]) -> Result<ListRequest<InteractionFilter>, ApiError> {
    let req = parse_list(pairs, &["since", "until", "actor", "type", "session"], apply_interaction_filter)?;
    check_window(&req.filter)?;
    Ok(req)
}

/// Decodes a percent-encoded path segment (`%2F` and the like; `+` stays a
/// plus). `None` when an escape is malformed or the bytes are not UTF-8.
pub fn decode_path_segment(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parses `GET /v1/sessions/{session}`: the path segment as sent
/// (percent-encoded) and the decoded query pairs, `limit` and `cursor` only;
/// the session's interactions, oldest first.
pub fn parse_session_list(
    raw_session: &str,
    pairs: &[(String, String)],
) -> Result<ListRequest<InteractionFilter>, ApiError> {
    let mut req = parse_list(pairs, &[], |_: &mut InteractionFilter, _, _| Ok(()))?;
    let session = decode_path_segment(raw_session)
        .ok_or_else(|| bad("session", "is not a valid percent-encoded path segment"))?;
    req.filter.session = Some(text_param("session", &session, crate::interaction::MAX_LABEL_LEN)?);
    req.filter.order = Order::OldestFirst;
    Ok(req)
}

/// `bad` for other modules' query parameters: a 400 naming the parameter.
pub fn bad_param(param: &str, why: &str) -> ApiError {
    bad(param, why)
}

/// Filters of `GET /v1/audit-log`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditFilter {
    pub action: Option<String>,
    pub prefix: Option<String>,
}

impl AuditFilter {
    /// The cursor scope: the listing, the org and every filter value.
    pub fn cursor_scope(&self, org_id: &str) -> String {
        serde_json::json!(["audit", org_id, self.action, self.prefix]).to_string()
    }
}

/// Parses the decoded query pairs of `GET /v1/audit-log`.
pub fn parse_audit_list(pairs: &[(String, String)]) -> Result<ListRequest<AuditFilter>, ApiError> {
    parse_list(pairs, &["action", "prefix"], |f: &mut AuditFilter, k, v| {
        match k {
            "action" => f.action = Some(text_param("action", v, 64)?),
            _ => {
                let p = crate::key::KeyPrefix::parse(v).map_err(|_| bad("prefix", "must be an 8-symbol key prefix"))?;
                f.prefix = Some(p.to_string());
            }
        }
        Ok(())
    })
}

/// Filters of `GET /v1/alerts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertFilter {
    pub kind: Option<String>,
    pub state: Option<String>,
}

impl AlertFilter {
    /// The cursor scope: the listing, the org and every filter value.
    pub fn cursor_scope(&self, org_id: &str) -> String {
        serde_json::json!(["alerts", org_id, self.kind, self.state]).to_string()
    }
}

/// Parses the decoded query pairs of `GET /v1/alerts`.
pub fn parse_alert_list(pairs: &[(String, String)]) -> Result<ListRequest<AlertFilter>, ApiError> {
    parse_list(pairs, &["kind", "state"], |f: &mut AlertFilter, k, v| {
        match k {
            "kind" => f.kind = Some(text_param("kind", v, 64)?),
            _ => match crate::alerts::AlertState::parse(v) {
                Some(state) => f.state = Some(state.as_str().to_string()),
                None => return Err(bad("state", "must be open or resolved (closed is an alias of resolved)")),
            },
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn page_cut_by_count_and_bytes() {
        let mb = 900 * 1024;
        assert_eq!(cut_page(&[], 50, PAGE_BYTE_BUDGET), PageCut { take: 0, more: false });
        assert_eq!(cut_page(&[1, 1, 1], 2, PAGE_BYTE_BUDGET), PageCut { take: 2, more: true });
        assert_eq!(cut_page(&[1, 1], 2, PAGE_BYTE_BUDGET), PageCut { take: 2, more: false });
        assert_eq!(cut_page(&[mb; 12], 200, PAGE_BYTE_BUDGET), PageCut { take: 2, more: true });
        assert_eq!(cut_page(&[mb, mb], 200, PAGE_BYTE_BUDGET), PageCut { take: 2, more: false });
        // One row larger than the budget still makes a page of its own.
        assert_eq!(cut_page(&[u64::MAX, 1], 200, 10), PageCut { take: 1, more: true });
        assert_eq!(cut_page(&[10, 1], 200, 10), PageCut { take: 1, more: true });
        assert_eq!(cut_page(&[5, 5, 1], 200, 10), PageCut { take: 2, more: true });
    }

    proptest! {
        // claim: threat.large-pages
        #[test]
        fn page_cut_is_bounded_and_skips_nothing(sizes in proptest::collection::vec(0u64..5_000_000, 0..=201), limit in 1usize..=200) {
            let sizes = &sizes[..sizes.len().min(limit + 1)];
            let cut = cut_page(sizes, limit, PAGE_BYTE_BUDGET);
            let used: u64 = sizes[..cut.take].iter().sum();
            prop_assert!(cut.take <= limit);
            prop_assert!(cut.take >= 1 || sizes.is_empty());
            prop_assert!(used <= PAGE_BYTE_BUDGET || cut.take == 1);
            prop_assert_eq!(cut.more, cut.take < sizes.len());
            // A page ends early only because the next row would pass the budget.
            if cut.more && cut.take < limit {
                prop_assert!(used + sizes[cut.take] > PAGE_BYTE_BUDGET);
            }
        }
    }

    fn q(pairs: &[(&str, &str)]) -> Result<ListRequest<InteractionFilter>, ApiError> {
        parse_interaction_list(&pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>())
    }

    #[test]
    fn defaults() {
        let r = q(&[]).unwrap();
        assert_eq!(r.limit, 50);
        assert_eq!(r.filter, InteractionFilter::default());
    }

    // claim: owasp.api4
    #[test]
    fn limits_and_errors_name_the_parameter() {
        assert_eq!(q(&[("limit", "200")]).unwrap().limit, 200);
        for bad in ["0", "201", "-1", "x", ""] {
            let e = q(&[("limit", bad)]).unwrap_err();
            assert!(e.public_message().contains("'limit'"), "{bad}");
        }
        assert!(q(&[("org_id", "x")]).unwrap_err().public_message().contains("'org_id'"));
        let pairs = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        assert!(parse_audit_list(&pairs("prefix", "bad")).is_err());
        assert_eq!(parse_audit_list(&pairs("prefix", "abcd1234")).unwrap().filter.prefix.as_deref(), Some("ABCD1234"));
        assert!(parse_alert_list(&pairs("state", "weird")).is_err());
        assert!(parse_alert_list(&pairs("since", "x")).unwrap_err().public_message().contains("kind, state"));
        assert!(q(&[("limit", "1"), ("limit", "2")]).is_err());
        assert!(q(&[("since", "2026-01-02T00:00:00Z"), ("until", "2026-01-01T00:00:00Z")]).is_err());
    }

    // claim: posture.tenancy
    #[test]
    fn scope_differs_by_org_and_filter() {
        let f = InteractionFilter::default();
        let g = InteractionFilter { actor: Some("a".into()), ..f.clone() };
        assert_ne!(f.cursor_scope("org_a"), f.cursor_scope("org_b"));
        assert_ne!(f.cursor_scope("org_a"), g.cursor_scope("org_a"));
        let s = InteractionFilter { session: Some("a".into()), ..f.clone() };
        let asc = InteractionFilter { order: Order::OldestFirst, ..s.clone() };
        assert_ne!(s.cursor_scope("org_a"), f.cursor_scope("org_a"));
        assert_ne!(s.cursor_scope("org_a"), asc.cursor_scope("org_a"));
        assert_ne!(s.cursor_scope("org_a"), g.cursor_scope("org_a"));
    }

    #[test]
    fn session_filter_and_session_listing() {
        assert_eq!(q(&[("session", "chat-1")]).unwrap().filter.session.as_deref(), Some("chat-1"));
        assert!(q(&[("session", "")]).unwrap_err().public_message().contains("'session'"));
        let pairs = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
        let r = parse_session_list("chat-1", &pairs("limit", "3")).unwrap();
        assert_eq!((r.limit, r.filter.order, r.filter.session.as_deref()), (3, Order::OldestFirst, Some("chat-1")));
        assert!(parse_session_list("chat-1", &pairs("actor", "x")).is_err());
        assert!(parse_session_list(&"s".repeat(257), &[]).is_err());
        let r = parse_session_list("chat%201%2F%C3%A9", &[]).unwrap();
        assert_eq!(r.filter.session.as_deref(), Some("chat 1/é"));
        for bad in ["%", "%4", "%zz", "%ff"] {
            assert!(parse_session_list(bad, &[]).is_err(), "{bad}");
        }
    }
}
