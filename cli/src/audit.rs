//! The audit row every change of the operator command writes, in the same
//! `wrangler d1 execute` as the change. The row names no request and no
//! client address; its `detail.actor` is `operator` (`core::operator::ACTOR`),
//! and its action is one of `core::audit::AuditAction`.

use crate::d1::{lit, opt_lit};
use interlog_core::audit::AuditAction;
use interlog_core::operator::ACTOR;
use interlog_core::OrgId;
use serde_json::{Map, Value};

/// The `detail` of an operator row: `fields` and `actor: "operator"`.
pub fn detail(fields: Value) -> Value {
    let mut out = Map::new();
    out.insert("actor".into(), ACTOR.into());
    if let Value::Object(m) = fields {
        out.extend(m);
    }
    Value::Object(out)
}

/// An INSERT of one audit row of `org` (`None`: an org-less row of the
/// directory) at `at`, written only when `only_if` (an SQL condition) holds,
/// if given.
pub fn insert(
    org: Option<&OrgId>,
    action: AuditAction,
    prefix: Option<&str>,
    fields: Value,
    at: i64,
    only_if: Option<&str>,
) -> String {
    format!(
        "INSERT INTO audit_log (org_id, at, action, reason, prefix, ip, request_id, detail, count, first_at, last_at) \
         SELECT {}, {at}, {}, NULL, {}, NULL, NULL, {}, 1, {at}, {at}{};",
        opt_lit(org.map(OrgId::as_str)),
        lit(action.as_str()),
        opt_lit(prefix),
        lit(&detail(fields).to_string()),
        only_if.map(|c| format!(" WHERE {c}")).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_name_the_operator_and_escape_their_detail() {
        let org = OrgId::generate(1, &[1; interlog_core::ids::ID_ENTROPY_BYTES]);
        let sql = insert(Some(&org), AuditAction::KeyRevoked, Some("ABCDEFGH"), json!({ "name": "O'Brien" }), 5, None);
        assert!(sql.contains("'key.revoked'"));
        assert!(sql.contains(r#"'{"actor":"operator","name":"O''Brien"}'"#), "{sql}");
        assert!(sql.ends_with("1, 5, 5;"));
        let when = insert(Some(&org), AuditAction::QuotaSet, None, json!({}), 5, Some("changes() > 0"));
        assert!(when.ends_with("1, 5, 5 WHERE changes() > 0;"), "{when}");
        assert!(when.contains(", NULL, NULL, NULL, '{\"actor\":\"operator\"}'"));
        let orgless = insert(None, AuditAction::ShardStateSet, None, json!({ "shard": "DATA_2" }), 5, None);
        assert!(orgless.contains("SELECT NULL, 5, 'shard.state_set', NULL, NULL,"), "{orgless}");
    }
}
