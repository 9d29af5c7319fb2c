//! Writing audit rows: the one place an `AuditEvent` becomes an `audit_log`
//! row, for the org actors and for the front Worker's org-less rows alike;
//! and storing the final count of an aggregated row.

use crate::platform::{ms, opt_str, run, storage_error};
use interlog_core::audit::{AuditCount, AuditEvent, Tally};
use interlog_core::netaddr::ClientIp;
use interlog_core::protocol::CallMeta;
use interlog_core::{ApiError, OrgId};
use std::cell::RefCell;
use worker::{console_error, D1Database};

/// Org-less auth failures of one client (or prefix) and reason share one row
/// per this window in an isolate.
const ORGLESS_WINDOW_MS: i64 = 60_000;
/// (client, reason) windows an isolate keeps open.
const ORGLESS_MEMORY: usize = 10_000;

thread_local! {
    static ORGLESS: RefCell<Tally<String, String>> = RefCell::new(Tally::new(ORGLESS_WINDOW_MS, ORGLESS_MEMORY));
}

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

/// Appends one audit row at `at_ms` (count 1, first and last at `at_ms`). A
/// failure is logged (never with key material) and returned; callers decide
/// whether it changes their answer (for a client's request it never does).
pub async fn write(db: &D1Database, who: Asker<'_>, event: &AuditEvent, at_ms: i64) -> Result<(), ApiError> {
    let prefix = event.prefix.map(|p| p.to_string());
    let ip = who.ip.map(|ip| ip.to_string());
    let detail = event.detail.as_ref().map(ToString::to_string);
    db.prepare(
        "INSERT INTO audit_log (org_id, at, action, reason, prefix, ip, request_id, detail, count, first_at, last_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?2, ?2)",
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

/// Stores the final count of the aggregated row `c` of `org` (`None`: an
/// org-less row): the row written at `c.first_at` for the same action,
/// reason and prefix.
pub async fn set_count(db: &D1Database, org: Option<&OrgId>, c: &AuditCount) -> Result<(), ApiError> {
    let prefix = c.event.prefix.map(|p| p.to_string());
    let sql = "UPDATE audit_log SET count = ?1, last_at = ?2 WHERE org_id IS ?3 AND prefix IS ?4 AND at = ?5 \
               AND action = ?6 AND reason IS ?7";
    let binds = [
        ms(i64::try_from(c.count).unwrap_or(i64::MAX)),
        ms(c.last_at),
        opt_str(org.map(OrgId::as_str)),
        opt_str(prefix.as_deref()),
        ms(c.first_at),
        c.event.action.as_str().into(),
        opt_str(c.event.reason),
    ];
    run(db, sql, &binds, "audit count").await.map(|_| ())
}

/// An auth failure that names no org (written by the front Worker),
/// aggregated per isolate: the first failure of `tally_key` (the client's L1
/// key, else the prefix) and reason in a minute writes a row; later ones only
/// count, and that count is stored on the row when the same client fails for
/// the same reason again after the window. Approximate by design: isolates
/// count apart (one row per isolate and minute), and a window nobody hits
/// again keeps the count it had. At most one insert and one update a call.
pub async fn orgless_failure(db: &D1Database, who: Asker<'_>, event: &AuditEvent, tally_key: &str, at_ms: i64) {
    let key = format!("{tally_key}|{}", event.reason.unwrap_or(""));
    let (first, ended) = ORGLESS.with(|t| {
        let mut t = t.borrow_mut();
        let first = t.note_tagged(key, who.request_id.to_string(), at_ms);
        (first, if first { t.take_closed(1) } else { Vec::new() })
    });
    if !first {
        return;
    }
    // Logged inside; the client's answer is the same either way.
    let _ = write(db, who, event, at_ms).await;
    for c in ended {
        let sql = "UPDATE audit_log SET count = ?1, last_at = ?2 WHERE at = ?3 AND request_id = ?4 AND org_id IS NULL";
        let binds = [ms(i64::try_from(c.count).unwrap_or(i64::MAX)), ms(c.last_at), ms(c.first_at), c.tag.into()];
        if let Err(e) = run(db, sql, &binds, "org-less audit count").await {
            console_error!("org-less audit count not stored: {e}");
        }
    }
}
