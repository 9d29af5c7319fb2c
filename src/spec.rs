//! `GET /v1/openapi.json`: the API description, public and static.
//!
//! docs/openapi.yaml is the source; scripts/openapi_json.py writes the JSON
//! form embedded here (tests/test_openapi.py fails while the two differ).

use crate::respond::Reply;
use interlog_core::ApiError;
use serde_json::Value;

/// How long clients and caches may keep the spec: it changes only with a deploy.
const CACHE_CONTROL: &str = "public, max-age=300";

thread_local! {
    /// Parsed once per isolate.
    static SPEC: Result<Value, String> =
        serde_json::from_str(include_str!("../docs/openapi.json")).map_err(|e| e.to_string());
}

/// The spec as JSON, cacheable.
pub fn openapi() -> Result<Reply, ApiError> {
    let spec = SPEC.with(|s| s.clone()).map_err(|e| ApiError::internal(format!("embedded openapi.json: {e}")))?;
    let mut reply = Reply::json(200, spec);
    reply.headers.push(("cache-control", CACHE_CONTROL.into()));
    Ok(reply)
}
