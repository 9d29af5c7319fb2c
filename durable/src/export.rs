//! `GET /v1/interactions/export`, the actor's side: the request is checked
//! (its `after` id must name a row of this org) and answered like any other
//! call; then the actor's reply streams the rows as NDJSON, one bounded page
//! of the listing at a time (`interactions::list`: at most
//! `EXPORT_PAGE_ROWS` rows and `PAGE_BYTE_BUDGET` bytes), read only when the
//! reader pulls the next chunk. Memory stays one page whatever the export's
//! size. The lines' format and the final control line are
//! `interlog_core::export`.

use crate::interactions;
use crate::platform::first;
use interlog_core::cursor::PagePosition;
use interlog_core::export::{complete_line, failed_line, ExportRequest, EXPORT_PAGE_ROWS, NDJSON};
use interlog_core::listing::InteractionFilter;
use interlog_core::protocol::{DoResponse, Outcome, REPLY_HEADER};
use interlog_core::{ApiError, OrgId};
use serde::Deserialize;
use worker::{D1Database, Headers, Response};

use std::cell::Cell;
use std::rc::Rc;

type Res<T> = Result<T, ApiError>;

/// Checks an export request: where it resumes, if it does. An `after` that
/// names no interaction of this org is not found (404: absent, erased since,
/// or another org's, which cannot be told apart).
pub async fn prepare(db: &D1Database, org: &OrgId, request: &ExportRequest) -> Res<Outcome> {
    let after = match &request.after {
        None => None,
        Some(id) => {
            #[derive(Deserialize)]
            struct At {
                occurred_at: f64,
            }
            let sql = "SELECT occurred_at FROM interactions WHERE org_id = ?1 AND id = ?2";
            let at: Option<At> = first(db, sql, &[org.as_str().into(), id.as_str().into()], "export after").await?;
            let at = at.ok_or(ApiError::NotFound)?;
            Some(PagePosition { at: at.occurred_at as i64, id: id.clone() })
        }
    };
    Ok(Outcome::Export { filter: request.filter.clone(), after })
}

/// Where a stream stands between two pulls.
struct Reader {
    db: D1Database,
    org: OrgId,
    filter: InteractionFilter,
    after: Option<PagePosition>,
    count: u64,
    last_id: Option<String>,
    ended: bool,
    /// The org's shard epoch when the export began, and the live one: the
    /// export ends (incomplete, resumable with `after`) once its org moved.
    epoch: (u32, Rc<Cell<u32>>),
}

impl Reader {
    /// The next chunk of the body: one page of lines (the final line added
    /// after the last page), or the failure line; `None` once ended.
    async fn next_chunk(mut self) -> Option<(Result<Vec<u8>, worker::Error>, Self)> {
        if self.ended {
            return None;
        }
        if self.epoch.1.get() != self.epoch.0 {
            let moved =
                ApiError::Unavailable { retry_after_s: 1, detail: "the org's data moved to another shard".into() };
            return Some(self.fail(Vec::new(), &moved));
        }
        let page = interactions::list(&self.db, &self.org, &self.filter, EXPORT_PAGE_ROWS, self.after.as_ref()).await;
        let mut out = Vec::new();
        match page {
            Ok(Outcome::Interactions(page)) => {
                for item in &page.items {
                    if serde_json::to_writer(&mut out, item).is_err() {
                        return Some(self.fail(out, &ApiError::internal("export row not serialisable")));
                    }
                    out.push(b'\n');
                    self.count += 1;
                    self.last_id = Some(item.id.clone());
                }
                match page.next {
                    Some(next) => self.after = Some(next),
                    None => {
                        out.extend_from_slice(complete_line(self.count, self.last_id.as_deref()).as_bytes());
                        self.ended = true;
                        self.log_end();
                    }
                }
                Some((Ok(out), self))
            }
            Ok(_) => Some(self.fail(out, &ApiError::internal("export read an unexpected outcome"))),
            Err(e) => Some(self.fail(out, &e)),
        }
    }

    /// The export's one log line: how many rows, and the size of the
    /// isolate's wasm memory when it ended (linear memory only grows, so an
    /// export that held its body would show here).
    fn log_end(&self) {
        let line = serde_json::json!({
            "event": "export",
            "level": "info",
            "org_id": self.org.as_str(),
            "rows": self.count,
            "wasm_memory_bytes": wasm_memory_bytes(),
        });
        worker::console_log!("{line}");
    }

    fn fail(mut self, mut out: Vec<u8>, error: &ApiError) -> (Result<Vec<u8>, worker::Error>, Self) {
        worker::console_error!("export stopped after {} rows: {error}", self.count);
        out.extend_from_slice(failed_line(self.count, self.last_id.as_deref(), error).as_bytes());
        self.ended = true;
        (Ok(out), self)
    }
}

/// The actor's reply to an export that may start: `answer` (the access
/// decision's result, rate standing, CORS) in [`REPLY_HEADER`], the rows as
/// the streamed body.
pub fn respond(
    db: D1Database,
    org: OrgId,
    answer: &DoResponse,
    filter: InteractionFilter,
    after: Option<PagePosition>,
    epoch: Rc<Cell<u32>>,
) -> worker::Result<Response> {
    let epoch = (epoch.get(), epoch);
    let reader = Reader { db, org, filter, after, count: 0, last_id: None, ended: false, epoch };
    let body = futures::stream::unfold(reader, Reader::next_chunk);
    let headers = Headers::new();
    headers.set(REPLY_HEADER, &answer.to_header_json())?;
    headers.set("content-type", NDJSON)?;
    Ok(Response::from_stream(body)?.with_headers(headers))
}

/// The size of this instance's linear memory (0 off wasm).
fn wasm_memory_bytes() -> usize {
    #[cfg(target_arch = "wasm32")]
    {
        core::arch::wasm32::memory_size(0) * 65_536
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        0
    }
}
