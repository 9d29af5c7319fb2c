//! The operator's signed calls to the running Worker (`interlog_core::operator`):
//! `POST /v1/operator/reconcile` and `POST /v1/operator/move`, each body
//! signed with a key derived from the pepper at the time of the call.
//!
//! The call is made with Node's `fetch` (Node runs wrangler already, so it is
//! there): a Rust HTTPS client would bring TLS crates whose licences are
//! outside deny.toml's list. URL, header and body travel as environment
//! variables, never through a shell.

use crate::fail::Failure;
use interlog_core::operator;
use interlog_core::Pepper;
use serde_json::Value;
use std::process::Command;

const FETCH: &str = r#"
const { R_URL: url, R_SIG: sig, R_BODY: body, R_TIMEOUT_MS: timeout } = process.env;
fetch(url, {
  method: "POST",
  headers: { "content-type": "application/json", "x-interlog-operator": sig },
  body,
  signal: AbortSignal.timeout(Number(timeout)),
}).then(async (r) => {
  const text = await r.text();
  process.stdout.write(String(r.status) + "\n" + text.slice(0, 65536));
}).catch((e) => {
  process.stderr.write(String(e && e.cause ? e.cause : e));
  process.exit(1);
});
"#;

/// The URL of the operator call `path` on a Worker at `base` (http or
/// https, no query).
pub fn endpoint(base: &str, path: &str) -> Result<String, Failure> {
    let base = base.trim().trim_end_matches('/');
    let rest = base.strip_prefix("https://").or_else(|| base.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !base.contains(['?', '#', ' ']) => Ok(format!("{base}{path}")),
        _ => Err(Failure::invalid(format!("--url must be an http(s) URL of the Worker, got {base:?}"))),
    }
}

/// One POST of `body` to `url`, signed with `pepper` at `now_ms`, given up
/// after `timeout_ms`; `Ok((status, body))` when the Worker answered,
/// `Err(reason)` when it could not be reached.
pub fn post(url: &str, pepper: &Pepper, now_ms: i64, body: &str, timeout_ms: u32) -> Result<(u16, String), String> {
    let signature = operator::sign(pepper, now_ms, body.as_bytes());
    let node = std::env::var("INTERLOG_NODE").unwrap_or_else(|_| "node".into());
    let out = Command::new(node)
        .args(["-e", FETCH])
        .env("R_URL", url)
        .env("R_SIG", &signature)
        .env("R_BODY", body)
        .env("R_TIMEOUT_MS", timeout_ms.to_string())
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(format!("{url} unreachable: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    let (status, rest) = stdout.split_once('\n').unwrap_or((&stdout, ""));
    let status = status.trim().parse().map_err(|_| format!("unexpected answer from {url}: {stdout}"))?;
    Ok((status, rest.to_string()))
}

/// The `code` and `message` of the Worker's error envelope
/// (`{"error":{"code","message",…}}`), if the body is one.
pub fn envelope(body: &str) -> Option<(String, String)> {
    let v: Value = serde_json::from_str(body).ok()?;
    let e = v.get("error")?;
    Some((e.get("code")?.as_str()?.to_string(), e.get("message")?.as_str()?.to_string()))
}

/// Whether a status means "busy, try again shortly" (the Worker's rate
/// limit or a paused or unavailable actor).
pub fn busy(status: u16) -> bool {
    matches!(status, 429 | 503)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_urls_of_the_worker() {
        let path = operator::MOVE_PATH;
        assert_eq!(endpoint("http://127.0.0.1:8787", path).unwrap(), "http://127.0.0.1:8787/v1/operator/move");
        assert_eq!(endpoint("https://api.example.com/", path).unwrap(), "https://api.example.com/v1/operator/move");
        for bad in ["", "127.0.0.1:8787", "ftp://x", "http://", "http://x/?a=1", "javascript:alert(1)"] {
            assert_eq!(endpoint(bad, path).unwrap_err().code, "VALIDATION_FAILED", "{bad}");
        }
    }

    #[test]
    fn error_envelopes_are_read() {
        let body = r#"{"error":{"code":"CONFLICT","message":"a move is in progress","request_id":"req_1"}}"#;
        assert_eq!(envelope(body), Some(("CONFLICT".into(), "a move is in progress".into())));
        assert_eq!(envelope("<html>"), None);
        assert_eq!(envelope(r#"{"error":"x"}"#), None);
        assert!(busy(429) && busy(503) && !busy(500) && !busy(409));
    }
}
