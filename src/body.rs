//! Request bodies: media type (415) and size caps (413). `Content-Length` is
//! checked before anything is read; without it the stream is counted while
//! reading and reading stops at the cap, so nothing past it is buffered.

use futures::StreamExt;
use interlog_core::ApiError;
use serde_json::Value;
use worker::Request;

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
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

/// Parses a JSON body, with a 400 that says where it broke.
pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    interlog_core::interaction::parse_json_body(bytes)
}
