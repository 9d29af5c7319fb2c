//! The singleton Janitor: retention of rows that belong to no org (audit rows
//! with a NULL `org_id`, written for requests whose key named no known org).
//!
//! Its alarm works like an OrgActor's: each run deletes one bounded chunk
//! (`retention::run_orgless`), logs one JSON `alarm` line, keeps a
//! summary in its storage and re-arms, soon while work remains and at the
//! normal interval when done. Every OrgActor instance fetches [`ARM_URL`] once
//! when it starts serving, which sets the alarm if there is none (first
//! deploy, or an alarm lost after its retries ran out) or if the one set is
//! overdue (a local runtime restarted after its time passed).

use crate::platform::{config, directory, now_ms, storage_error};
use crate::retention;
use interlog_core::ApiError;
use worker::{console_error, console_log, durable_object, DurableObject, Env, Request, Response, Result, State};

/// Name used with `id_from_name` to reach the one Janitor.
pub const JANITOR_NAME: &str = "janitor";
/// URL an OrgActor fetches to make sure the Janitor's alarm is set.
pub const ARM_URL: &str = "https://janitor.internal/arm";
/// Storage key of the last run's summary.
pub const LAST_RUN_KEY: &str = "last_retention_run";
/// Delay of the first alarm after arming.
const FIRST_ALARM_DELAY_MS: i64 = 1_000;

#[durable_object]
pub struct Janitor {
    state: State,
    env: Env,
}

impl DurableObject for Janitor {
    fn new(state: State, env: Env) -> Self {
        Self { state, env }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        match req.path().as_str() {
            "/arm" => match self.arm().await {
                Ok(()) => Ok(Response::builder().with_status(204).empty()),
                Err(e) => Response::error(format!("janitor could not arm its alarm: {e}"), 503),
            },
            _ => Response::error("not found", 404),
        }
    }

    async fn alarm(&self) -> Result<Response> {
        if let Err(e) = self.on_alarm().await {
            // Returning an error makes the platform retry with backoff.
            console_error!("janitor alarm failed: {e}");
            return Err(worker::Error::RustError(e.to_string()));
        }
        Ok(Response::builder().with_status(204).empty())
    }
}

impl Janitor {
    /// Sets the alarm when none is set, or when the one set is overdue (its
    /// time passed without it firing, as after a local restart). Setting it
    /// again is harmless: runs are idempotent.
    async fn arm(&self) -> Result<()> {
        let storage = self.state.storage();
        match storage.get_alarm().await? {
            Some(at) if at >= now_ms() => Ok(()),
            _ => storage.set_alarm(FIRST_ALARM_DELAY_MS).await,
        }
    }

    /// One run: a bounded chunk of org-less expired rows, then re-arm.
    async fn on_alarm(&self) -> std::result::Result<(), ApiError> {
        let storage = self.state.storage();
        let now = now_ms();
        let cfg = &config(&self.env)?.retention;
        let report = retention::run_orgless(&directory(&self.env)?, now, cfg).await?;
        let summary = report.summary(now);
        let line = serde_json::json!({
            "event": "alarm",
            "level": "info",
            "actor": "janitor",
            "org_id": null,
            "retention": &summary,
        });
        console_log!("{line}");
        storage.put(LAST_RUN_KEY, summary).await.map_err(|e| storage_error("janitor summary", e))?;
        let next = if report.more { cfg.busy_interval_ms } else { cfg.interval_ms };
        storage.set_alarm(next).await.map_err(|e| storage_error("janitor rearm", e))?;
        Ok(())
    }
}
