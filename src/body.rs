//! Request bodies: media type (415) and size caps (413). `Content-Length` is
//! checked before anything is read; without it the stream is counted while
//! reading and buffering stops at the cap: the rest is read and discarded (at
//! most `DRAIN_LIMIT` bytes, then the stream is cancelled) before the 413.

use futures::StreamExt;
use interlog_core::ApiError;
use serde_json::Value;
use worker::{ByteStream, Request};

/// Bytes past the cap read and discarded, never kept, before a 413 is answered.
///
/// Only `wrangler dev` needs this: its proxy relays the client's body to the
/// Worker, and once the Worker has answered a body it started reading but did
/// not finish, the relay fails ("Can't read from request stream after response
/// has been sent") and the proxy's next request to the Worker fails with its
/// own 503 "Your worker restarted mid-request" (workers-sdk
/// packages/wrangler/templates/startDevWorker/ProxyWorker.ts, the `.catch` of
/// the `fetch(userWorkerUrl, …)`). Wrangler's dev-only body-draining middleware
/// (templates/middleware/middleware-ensure-req-body-drained.ts) skips a body
/// already read from. On the Cloudflare edge an early answer is fine; draining
/// there costs at most this many bytes of upload, counted and dropped.
const DRAIN_LIMIT: u64 = 4 * 1024 * 1024;

/// Checks `Content-Type` and `Content-Length` without touching the body.
pub fn precheck(req: &Request, limit: u64) -> Result<(), ApiError> {
    let ct = req.headers().get("content-type").ok().flatten().unwrap_or_default();
    let media = ct.split(';').next().unwrap_or("").trim();
    if !media.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let declared = req.headers().get("content-length").ok().flatten();
    if let Some(len) = declared.and_then(|v| v.trim().parse::<u64>().ok()) {
        if len > limit {
            return Err(ApiError::PayloadTooLarge { limit });
        }
    }
    Ok(())
}

/// Reads at most `limit` bytes; one byte more is a 413.
pub async fn read_capped(req: &mut Request, limit: u64) -> Result<Vec<u8>, ApiError> {
    let Ok(mut stream) = req.stream() else {
        return Ok(Vec::new());
    };
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| ApiError::validation("request body could not be read"))?;
        if (buf.len() + chunk.len()) as u64 > limit {
            drain(&mut stream, DRAIN_LIMIT).await;
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Reads and drops the rest of a body until its end, an error, or more than
/// `bound` bytes (one chunk past it at most); the caller's drop of the stream
/// then cancels whatever is left.
async fn drain(stream: &mut ByteStream, bound: u64) {
    let mut seen = 0u64;
    while seen <= bound {
        match stream.next().await {
            Some(Ok(chunk)) => seen += chunk.len() as u64,
            _ => return,
        }
    }
}

/// Parses a JSON body, with a 400 that says where it broke.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    interlog_core::interaction::parse_json_body(bytes)
}
