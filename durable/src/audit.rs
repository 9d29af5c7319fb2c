//! Writing audit rows: the one place an `AuditEvent` becomes an `audit_log`
//! row, for the org actors and for the front Worker's org-less rows alike.

use crate::platform::{ms, opt_str, storage_error};
use interlog_core::audit::AuditEvent;
use interlog_core::netaddr::ClientIp;
use interlog_core::protocol::CallMeta;
use interlog_core::{ApiError, OrgId};
use worker::D1Database;

/// Who asked, as an audit row records it.
#[derive(Debug, Clone, Copy)]
pub struct Asker<'a> {
    /// `None` for rows that belong to no org (the key named none).
    pub org: Option<&'a OrgId>,
    pub request_id: &'a str,
    pub ip: Option<ClientIp>,
}

impl<'a> From<&'a CallMeta> for Asker<'a> {
    fn from(m: &'a CallMeta) -> Self {
        Asker { org: Some(&m.org_id), request_id: &m.request_id, ip: m.client_ip }
    }
}

/// Appends one audit row at `at_ms`. A failure is logged (never with key
/// material) and returned; callers decide whether it changes their answer
/// (for a client's request it never does).
pub async fn write(db: &D1Database, who: Asker<'_>, event: &AuditEvent, at_ms: i64) -> Result<(), ApiError> {
    let prefix = event.prefix.map(|p| p.to_string());
    let ip = who.ip.map(|ip| ip.to_string());
    let detail = event.detail.as_ref().map(ToString::to_string);
    db.prepare(
        "INSERT INTO audit_log (org_id, at, action, reason, prefix, ip, request_id, detail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )
    .bind(&[
        opt_str(who.org.map(OrgId::as_str)),
        ms(at_ms),
        event.action.as_str().into(),
        opt_str(event.reason),
        opt_str(prefix.as_deref()),
        opt_str(ip.as_deref()),
        who.request_id.into(),
        opt_str(detail.as_deref()),
    ])
    .map_err(|err| storage_error("audit bind", err))?
    .run()
    .await
    .map_err(|err| storage_error("audit insert", err))?;
    Ok(())
}
