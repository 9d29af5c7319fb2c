//! The OrgActor's webhook endpoints and their deliveries: the admin endpoints
//! (create, list, delete, rotate the secret, the delivery log) and the
//! alarm's delivery step, which sends due messages from the outbox (D1, so a
//! restart loses nothing), signs them (Standard Webhooks, `core::webhook`),
//! bounds every attempt (timeout, bytes read, no redirects), logs it and
//! schedules the retry or gives up and marks the endpoint failing. Alerts
//! that resolve by themselves are resolved here too.

use crate::alarm::AlarmCtx;
use crate::ctx::Ctx;
use crate::due;
use crate::platform::{all, first, ms, random_bytes, run, storage_error};
use crate::records;
use futures::future::{join_all, select, Either};
use futures::StreamExt;
use interlog_core::access::Authorized;
use interlog_core::alerts::{AlertKind, AlertWrite};
use interlog_core::audit::{AuditAction, AuditEvent};
use interlog_core::cursor::PagePosition;
use interlog_core::ids::ID_ENTROPY_BYTES;
use interlog_core::interaction::validation_error;
use interlog_core::protocol::{Outcome, Page, Refusal};
use interlog_core::timefmt::rfc3339;
use interlog_core::webhook::{
    self, acknowledged, events_from_db, events_to_db, next_attempt_at, parse_webhook_request, signature_header,
    DeliveryView, WebhookState, WebhookView, ATTEMPT_TIMEOUT_MS, DELIVERIES_PER_RUN, DELIVERY_LOG_PER_WEBHOOK,
    MAX_WEBHOOKS_PER_ORG, RESPONSE_EXCERPT_CHARS, RESPONSE_READ_LIMIT, SECRET_OVERLAP_MS,
};
use interlog_core::{ApiError, OrgId};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use worker::wasm_bindgen::JsValue;
use worker::{
    console_error, console_log, AbortController, D1Database, D1PreparedStatement, Delay, Fetch, Headers, Method,
    Request, RequestInit, RequestRedirect,
};

type Answer = Result<Outcome, Refusal>;
type Res<T> = Result<T, ApiError>;

/// Delivered and given-up outbox rows are kept this long (then deleted).
const OUTBOX_KEEP_MS: i64 = 7 * 24 * 3600 * 1000;
/// A failed step is tried again after this long.
const STEP_RETRY_MS: i64 = 5_000;

#[derive(Deserialize)]
struct WebhookRow {
    id: String,
    url: String,
    events: String,
    state: String,
    created_at: f64,
    previous_expires_at: Option<f64>,
}

impl WebhookRow {
    fn view(self, now: i64) -> WebhookView {
        WebhookView {
            id: self.id,
            url: self.url,
            events: events_from_db(&self.events),
            state: if self.state == "failing" { WebhookState::Failing } else { WebhookState::Active },
            created_at: rfc3339(self.created_at as i64),
            previous_secret_expires_at: self.previous_expires_at.map(|t| t as i64).filter(|t| *t > now).map(rfc3339),
        }
    }
}

const WEBHOOK_COLUMNS: &str = "id, url, events, state, created_at, previous_expires_at";

async fn read(db: &D1Database, org: &OrgId, id: &str) -> Res<Option<WebhookRow>> {
    first(
        db,
        format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1 AND org_id = ?2"),
        &[id.into(), org.as_str().into()],
        "webhook read",
    )
    .await
}

async fn audit(ctx: &Ctx<'_>, by: &Authorized, action: AuditAction, detail: Value) {
    ctx.audit(&AuditEvent::new(action, Some(by.prefix())).with_detail(detail)).await;
}

/// `POST /v1/webhooks`: checked under the deployment's URL policy, at most
/// [`MAX_WEBHOOKS_PER_ORG`] per org; answered with the secret, this once.
pub async fn create(ctx: &Ctx<'_>, by: &Authorized, body: &Value, secret: &str) -> Answer {
    let request = parse_webhook_request(body, ctx.cfg.delivery.allow_loopback).map_err(validation_error)?;
    let id = webhook::new_webhook_id(ctx.now, &random_bytes::<ID_ENTROPY_BYTES>()?);
    let added = run(
        &ctx.db,
        "INSERT INTO webhooks (id, org_id, url, events, secret, created_at) \
         SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE (SELECT COUNT(*) FROM webhooks WHERE org_id = ?2) < ?7",
        &[
            id.as_str().into(),
            ctx.org().as_str().into(),
            request.url.as_str().into(),
            events_to_db(&request.events).into(),
            secret.into(),
            ms(ctx.now),
            JsValue::from_f64(MAX_WEBHOOKS_PER_ORG as f64),
        ],
        "webhook create",
    )
    .await?;
    if added == 0 {
        return Err(ApiError::Conflict {
            message: format!("an org has at most {MAX_WEBHOOKS_PER_ORG} webhook endpoints; delete one first"),
        }
        .into());
    }
    audit(ctx, by, AuditAction::WebhookCreated, json!({ "webhook_id": id, "url": request.url })).await;
    let webhook = read(&ctx.db, ctx.org(), &id).await?.ok_or(ApiError::NotFound)?.view(ctx.now);
    Ok(Outcome::Webhook { webhook, secret: Some(secret.to_string()), created: true })
}

/// `GET /v1/webhooks`: oldest first, never a secret.
pub async fn list(ctx: &Ctx<'_>) -> Answer {
    let rows: Vec<WebhookRow> = all(
        &ctx.db,
        format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE org_id = ?1 ORDER BY created_at, id LIMIT ?2"),
        &[ctx.org().as_str().into(), JsValue::from_f64(MAX_WEBHOOKS_PER_ORG as f64)],
        "webhook list",
    )
    .await?;
    Ok(Outcome::Webhooks { webhooks: rows.into_iter().map(|r| r.view(ctx.now)).collect() })
}

/// `DELETE /v1/webhooks/{id}`: the endpoint, its queued deliveries and its log.
pub async fn delete(ctx: &Ctx<'_>, by: &Authorized, id: &str) -> Answer {
    let org = ctx.org().as_str();
    let stmt = |sql: &str| {
        ctx.db.prepare(sql).bind(&[id.into(), org.into()]).map_err(|e| storage_error("webhook delete bind", e))
    };
    let results = ctx
        .db
        .batch(vec![
            stmt("DELETE FROM webhooks WHERE id = ?1 AND org_id = ?2")?,
            stmt("DELETE FROM webhook_outbox WHERE webhook_id = ?1 AND org_id = ?2")?,
            stmt("DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND org_id = ?2")?,
        ])
        .await
        .map_err(|e| storage_error("webhook delete", e))?;
    let deleted = results.first().and_then(|r| r.meta().ok().flatten()).and_then(|m| m.changes).unwrap_or(0);
    if deleted == 0 {
        return Err(ApiError::NotFound.into());
    }
    audit(ctx, by, AuditAction::WebhookDeleted, json!({ "webhook_id": id })).await;
    Ok(Outcome::Done)
}

/// `POST /v1/webhooks/{id}/rotate-secret`: the new secret signs from now on;
/// the previous one signs too for [`SECRET_OVERLAP_MS`].
pub async fn rotate_secret(ctx: &Ctx<'_>, by: &Authorized, id: &str, secret: &str) -> Answer {
    let changed = run(
        &ctx.db,
        "UPDATE webhooks SET previous_secret = secret, previous_expires_at = ?1, secret = ?2 \
         WHERE id = ?3 AND org_id = ?4",
        &[ms(ctx.now + SECRET_OVERLAP_MS), secret.into(), id.into(), ctx.org().as_str().into()],
        "webhook rotate",
    )
    .await?;
    if changed == 0 {
        return Err(ApiError::NotFound.into());
    }
    let until = rfc3339(ctx.now + SECRET_OVERLAP_MS);
    audit(ctx, by, AuditAction::WebhookSecretRotated, json!({ "webhook_id": id, "previous_valid_until": until })).await;
    let webhook = read(&ctx.db, ctx.org(), id).await?.ok_or(ApiError::NotFound)?.view(ctx.now);
    Ok(Outcome::Webhook { webhook, secret: Some(secret.to_string()), created: false })
}

#[derive(Deserialize)]
struct DeliveryRow {
    id: f64,
    message_id: String,
    event: String,
    attempt: f64,
    status: Option<f64>,
    duration_ms: f64,
    outcome: String,
    error: Option<String>,
    at: f64,
}

/// `GET /v1/webhooks/{id}/deliveries`: every attempt, newest first.
pub async fn deliveries(ctx: &Ctx<'_>, id: &str, limit: u32, after: Option<&PagePosition>) -> Answer {
    if read(&ctx.db, ctx.org(), id).await?.is_none() {
        return Err(ApiError::NotFound.into());
    }
    let sql = "SELECT id, message_id, event, attempt, status, duration_ms, outcome, error, at \
               FROM webhook_deliveries WHERE webhook_id = ? AND org_id = ?"
        .to_string();
    let binds: Vec<JsValue> = vec![id.into(), ctx.org().as_str().into()];
    let (rows, next) = records::page::<DeliveryRow>(&ctx.db, sql, binds, ("at", "id", true), limit, after, |r| {
        PagePosition { at: r.at as i64, id: (r.id as i64).to_string() }
    })
    .await?;
    let items = rows
        .into_iter()
        .map(|r| DeliveryView {
            message_id: r.message_id,
            event: r.event,
            attempt: r.attempt as u32,
            status: r.status.map(|s| s as u16),
            duration_ms: r.duration_ms as i64,
            outcome: r.outcome,
            error: r.error,
            at: rfc3339(r.at as i64),
        })
        .collect();
    Ok(Outcome::Deliveries(Page { items, next }))
}

/// The alarm's step when it is due (else it reads nothing): resolve quiet
/// alerts, send due deliveries, tidy the outbox; returns when the step is
/// due next (`due::NEVER` or later: nothing waits). Failures are logged and
/// retried soon; they never fail the alarm.
pub async fn step(a: &AlarmCtx<'_>) -> i64 {
    if let Some(at) = due::claim(a.state, a.memory, due::WEBHOOKS, a.now).await {
        return at;
    }
    let quiet = auto_resolve(a).await;
    let sent = send_due(a).await;
    let next = match (quiet, sent) {
        (Ok(q), Ok(s)) => q.min(s),
        (q, s) => {
            for e in [q.err(), s.err()].into_iter().flatten() {
                console_error!("webhook step failed: {e}");
            }
            a.now + STEP_RETRY_MS
        }
    };
    due::finish(a.state, a.memory, due::WEBHOOKS, next, a.now).await
}

/// Resolves the burst alerts quiet for the configured time; returns when the
/// next one becomes due.
async fn auto_resolve(a: &AlarmCtx<'_>) -> Res<i64> {
    let quiet_ms = a.cfg.delivery.alert_quiet_ms;
    let due = records::next_quiet_due(&a.db, a.org, quiet_ms).await?;
    if due.is_none_or(|t| t > a.now) {
        return Ok(due.unwrap_or(i64::MAX));
    }
    let (resolved, _) = records::resolve_quiet(&a.db, a.org, a.now - quiet_ms, a.now).await?;
    if let Some(g) = a.memory.gate.borrow_mut().as_mut() {
        for (kind, prefix) in &resolved {
            g.alerts.forget(*kind, prefix);
        }
    }
    let next = records::next_quiet_due(&a.db, a.org, quiet_ms).await?;
    Ok(next.map_or(i64::MAX, |t| t.max(a.now + 1_000)))
}

#[derive(Deserialize)]
struct Due {
    webhook_id: String,
    message_id: String,
    event: String,
    body: String,
    attempts: f64,
    created_at: f64,
    url: String,
    secret: String,
    previous_secret: Option<String>,
    previous_expires_at: Option<f64>,
    state: String,
}

#[derive(Deserialize)]
struct Earliest {
    at: Option<f64>,
}

/// When the org's next pending delivery is due (`i64::MAX`: none).
async fn next_due(a: &AlarmCtx<'_>) -> Res<i64> {
    let next: Option<Earliest> = first(
        &a.db,
        "SELECT MIN(next_attempt_at) AS at FROM webhook_outbox WHERE org_id = ?1 AND state = 'pending'",
        &[a.org.as_str().into()],
        "outbox next",
    )
    .await?;
    Ok(next.and_then(|n| n.at).map_or(i64::MAX, |t| t as i64))
}

/// Sends the due deliveries (a bounded batch, concurrently) and records each
/// attempt, then tidies the outbox; returns when the next one is due.
async fn send_due(a: &AlarmCtx<'_>) -> Res<i64> {
    let next = next_due(a).await?;
    if next > a.now {
        return Ok(next);
    }
    let due: Vec<Due> = all(
        &a.db,
        "SELECT o.webhook_id, o.message_id, o.event, o.body, o.attempts, o.created_at, w.url, w.secret, \
         w.previous_secret, w.previous_expires_at, w.state \
         FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id \
         WHERE o.org_id = ?1 AND o.state = 'pending' AND o.next_attempt_at <= ?2 \
         ORDER BY o.next_attempt_at LIMIT ?3",
        &[a.org.as_str().into(), ms(a.now), JsValue::from_f64(f64::from(DELIVERIES_PER_RUN))],
        "outbox due",
    )
    .await?;
    let attempts = join_all(due.iter().map(|d| attempt(d, a.now))).await;
    for (d, result) in due.iter().zip(attempts) {
        record(a, d, result).await?;
    }
    if let Err(e) = tidy(&a.db, a.org, a.now).await {
        console_error!("webhook outbox tidy failed: {e}");
    }
    Ok(next_due(a).await?.max(a.now + 100))
}

/// What one attempt got.
struct Attempt {
    status: Option<u16>,
    duration_ms: i64,
    error: Option<String>,
}

/// One signed POST, bounded: [`ATTEMPT_TIMEOUT_MS`] for the whole exchange,
/// at most [`RESPONSE_READ_LIMIT`] bytes of the answer read, redirects not
/// followed (a 3xx is a failure).
async fn attempt(d: &Due, now: i64) -> Attempt {
    let started = crate::platform::now_ms();
    let controller = AbortController::default();
    let signal = controller.signal();
    let exchange = Box::pin(exchange(d, now, signal));
    let timeout = Box::pin(Delay::from(Duration::from_millis(ATTEMPT_TIMEOUT_MS)));
    let (status, error) = match select(exchange, timeout).await {
        Either::Left((Ok((status, excerpt)), _)) => {
            (Some(status), (!acknowledged(status)).then(|| format!("status {status}: {excerpt}")))
        }
        Either::Left((Err(e), _)) => (None, Some(e)),
        Either::Right(_) => {
            controller.abort();
            (None, Some(format!("no answer within {ATTEMPT_TIMEOUT_MS} ms")))
        }
    };
    Attempt { status, duration_ms: crate::platform::now_ms() - started, error }
}

/// The request and the first bytes of its answer.
async fn exchange(d: &Due, now: i64, signal: worker::AbortSignal) -> Result<(u16, String), String> {
    let ts = now / 1000;
    let mut secrets = vec![d.secret.as_str()];
    if let Some(prev) = d.previous_secret.as_deref().filter(|_| d.previous_expires_at.is_some_and(|t| t as i64 > now)) {
        secrets.push(prev);
    }
    let signature = signature_header(&secrets, &d.message_id, ts, d.body.as_bytes());
    let headers = Headers::new();
    for (k, v) in [
        ("content-type", "application/json"),
        ("user-agent", "interlog-webhooks/1"),
        ("webhook-id", d.message_id.as_str()),
        ("webhook-timestamp", &ts.to_string()),
        ("webhook-signature", &signature),
    ] {
        headers.set(k, v).map_err(|e| e.to_string())?;
    }
    let mut init = RequestInit::new();
    init.with_method(Method::Post)
        .with_headers(headers)
        .with_redirect(RequestRedirect::Manual)
        .with_body(Some(JsValue::from_str(&d.body)));
    let req = Request::new_with_init(&d.url, &init).map_err(|e| format!("request: {e}"))?;
    let mut resp = Fetch::Request(req).send_with_signal(&signal).await.map_err(|e| format!("fetch: {e}"))?;
    let status = resp.status_code();
    let mut read = Vec::new();
    if let Ok(mut stream) = resp.stream() {
        while read.len() < RESPONSE_READ_LIMIT {
            match stream.next().await {
                Some(Ok(chunk)) => read.extend_from_slice(&chunk),
                _ => break,
            }
        }
    }
    read.truncate(RESPONSE_READ_LIMIT);
    let excerpt: String = String::from_utf8_lossy(&read).chars().take(RESPONSE_EXCERPT_CHARS).collect();
    Ok((status, excerpt))
}

/// Stores an attempt: the log row, then the outbox row delivered, retried
/// later or given up (the endpoint then fails and an alert says so).
async fn record(a: &AlarmCtx<'_>, d: &Due, got: Attempt) -> Res<()> {
    let n = d.attempts as u32 + 1;
    let delivered = got.status.is_some_and(acknowledged);
    let random = u16::from_le_bytes(random_bytes::<2>()?);
    let retry_at =
        if delivered { None } else { next_attempt_at(d.created_at as i64, n, a.now, &a.cfg.delivery, random) };
    let (state, outcome) = match (delivered, retry_at) {
        (true, _) => ("delivered", "delivered"),
        (false, Some(_)) => ("pending", "retrying"),
        (false, None) => ("failed", "failed"),
    };
    let mut batch = vec![
        outbox_update(a, d, state, n, retry_at.unwrap_or(a.now))?,
        delivery_log(a, d, n, &got, outcome)?,
        delivery_log_trim(a, d)?,
    ];
    let new_state = match (delivered, retry_at) {
        (true, _) if d.state == "failing" => Some("active"),
        (false, None) => Some("failing"),
        _ => None,
    };
    if let Some(s) = new_state {
        let mark =
            a.db.prepare("UPDATE webhooks SET state = ?1 WHERE id = ?2")
                .bind(&[s.into(), d.webhook_id.as_str().into()])
                .map_err(|e| storage_error("webhook state bind", e))?;
        batch.push(mark);
    }
    a.db.batch(batch).await.map_err(|e| storage_error("delivery record", e))?;
    if !delivered && retry_at.is_none() {
        give_up(a, d, n).await;
    }
    Ok(())
}

/// The outbox row after attempt `n`: its state and when it is due next.
fn outbox_update(a: &AlarmCtx<'_>, d: &Due, state: &str, n: u32, next_at: i64) -> Res<D1PreparedStatement> {
    a.db.prepare(
        "UPDATE webhook_outbox SET state = ?3, attempts = ?4, next_attempt_at = ?5 \
         WHERE webhook_id = ?1 AND message_id = ?2",
    )
    .bind(&[
        d.webhook_id.as_str().into(),
        d.message_id.as_str().into(),
        state.into(),
        JsValue::from_f64(f64::from(n)),
        ms(next_at),
    ])
    .map_err(|e| storage_error("outbox update bind", e))
}

/// The delivery log's row of attempt `n` (none once the endpoint is deleted).
fn delivery_log(a: &AlarmCtx<'_>, d: &Due, n: u32, got: &Attempt, outcome: &str) -> Res<D1PreparedStatement> {
    let error = got.error.as_deref().map(|e| e.chars().take(RESPONSE_EXCERPT_CHARS + 32).collect::<String>());
    a.db.prepare(
        "INSERT INTO webhook_deliveries (webhook_id, org_id, message_id, event, attempt, status, duration_ms, \
         outcome, error, at) SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10 \
         WHERE EXISTS (SELECT 1 FROM webhooks WHERE id = ?1)",
    )
    .bind(&[
        d.webhook_id.as_str().into(),
        a.org.as_str().into(),
        d.message_id.as_str().into(),
        d.event.as_str().into(),
        JsValue::from_f64(f64::from(n)),
        got.status.map_or(JsValue::NULL, |s| JsValue::from_f64(f64::from(s))),
        ms(got.duration_ms),
        outcome.into(),
        error.as_deref().map_or(JsValue::NULL, JsValue::from_str),
        ms(a.now),
    ])
    .map_err(|e| storage_error("delivery log bind", e))
}

/// Keeps the endpoint's newest `DELIVERY_LOG_PER_WEBHOOK` log rows.
fn delivery_log_trim(a: &AlarmCtx<'_>, d: &Due) -> Res<D1PreparedStatement> {
    a.db.prepare(
        "DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND id <= \
         (SELECT id FROM webhook_deliveries WHERE webhook_id = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )
    .bind(&[d.webhook_id.as_str().into(), JsValue::from_f64(f64::from(DELIVERY_LOG_PER_WEBHOOK))])
    .map_err(|e| storage_error("delivery log trim bind", e))
}

/// A delivery given up: the `webhook_failing` alert (its own deliveries go
/// to the org's endpoints like any alert's).
async fn give_up(a: &AlarmCtx<'_>, d: &Due, attempts: u32) {
    let line = json!({
        "event": "webhook_failing", "level": "warn", "org_id": a.org.as_str(),
        "webhook_id": d.webhook_id, "message_id": d.message_id, "attempts": attempts,
    });
    console_log!("{line}");
    let write = AlertWrite { kind: AlertKind::WebhookFailing, prefix: String::new(), at: a.now, count: 1 };
    if let Err(e) = records::write_alert(&a.db, a.org, &write).await {
        console_error!("webhook_failing alert not stored: {e}");
    }
}

/// Deletes outbox rows that are done (delivered or given up) and old.
async fn tidy(db: &D1Database, org: &OrgId, now: i64) -> Res<usize> {
    run(
        db,
        "DELETE FROM webhook_outbox WHERE rowid IN (SELECT rowid FROM webhook_outbox \
         WHERE org_id = ?1 AND state != 'pending' AND created_at < ?2 LIMIT 100)",
        &[org.as_str().into(), ms(now - OUTBOX_KEEP_MS)],
        "outbox tidy",
    )
    .await
}

/// After an alert changed: the webhook step is due (a burst may resolve
/// when quiet), and the alarm runs soon when deliveries were queued.
pub async fn wake(ctx: &Ctx<'_>, queued: usize) {
    due::mark(ctx.state, ctx.memory(), due::WEBHOOKS, ctx.now).await;
    if queued > 0 {
        crate::effects::schedule(ctx.state, 0, ctx.now).await;
    }
}

/// `POST /v1/alerts/{id}/resolve`: resolved and audited (an already resolved
/// alert is answered as it is, nothing written); 404 for an id of no alert
/// of this org. The cause's counter is forgotten, so a recurrence opens a
/// new alert.
pub async fn resolve_alert(ctx: &Ctx<'_>, by: &Authorized, id: &str) -> Answer {
    let by_text = by.prefix().to_string();
    let resolved =
        records::resolve_alert(&ctx.db, ctx.org(), id, &by_text, ctx.now).await?.ok_or(ApiError::NotFound)?;
    if resolved.changed {
        if let Some(kind) = AlertKind::parse(&resolved.alert.kind) {
            let prefix = resolved.alert.prefix.clone().unwrap_or_default();
            ctx.gate(|g| g.alerts.forget(kind, &prefix))?;
        }
        audit(ctx, by, AuditAction::AlertResolved, json!({ "alert_id": id, "kind": resolved.alert.kind })).await;
        wake(ctx, resolved.queued).await;
    }
    Ok(Outcome::Alert { alert: resolved.alert })
}

/// After key `prefix` was revoked or rotated: its `key_expiring` alert
/// resolves by itself. A failure is logged (the key change stands).
pub async fn key_replaced(ctx: &Ctx<'_>, prefix: &str) {
    match records::resolve_for_key(&ctx.db, ctx.org(), prefix, ctx.now).await {
        Ok((resolved, queued)) => {
            let _ = ctx.gate(|g| resolved.iter().for_each(|(k, p)| g.alerts.forget(*k, p)));
            wake(ctx, queued).await;
        }
        Err(e) => console_error!("key alerts not resolved: {e}"),
    }
}
