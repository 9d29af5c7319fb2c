//! Telling the running Worker that an org's keys changed in D1: the signed
//! `POST /v1/operator/reconcile` (`interlog_core::operator`), after which the
//! org's actor applies D1's revocations to the very next request.
//!
//! The call is made with Node's `fetch` (Node runs wrangler already, so it is
//! there): a Rust HTTPS client would bring TLS crates whose licences are
//! outside deny.toml's list. URL, header and body travel as environment
//! variables, never through a shell.

use crate::fail::Failure;
use interlog_core::operator::{self, ReconcileRequest};
use interlog_core::{OrgId, Pepper};
use std::process::Command;

/// Tries this many times when the Worker is busy (429, 503) or unreachable.
const ATTEMPTS: u32 = 3;

const FETCH: &str = r#"
const { R_URL: url, R_SIG: sig, R_BODY: body } = process.env;
fetch(url, {
  method: "POST",
  headers: { "content-type": "application/json", "x-interlog-operator": sig },
  body,
  signal: AbortSignal.timeout(15000),
}).then(async (r) => {
  const text = await r.text();
  process.stdout.write(String(r.status) + "\n" + text.slice(0, 2000));
}).catch((e) => {
  process.stderr.write(String(e && e.cause ? e.cause : e));
  process.exit(1);
});
"#;

/// The reconcile URL of a Worker at `base` (http or https, no query).
pub fn endpoint(base: &str) -> Result<String, Failure> {
    let base = base.trim().trim_end_matches('/');
    let rest = base.strip_prefix("https://").or_else(|| base.strip_prefix("http://"));
    match rest {
        Some(host) if !host.is_empty() && !base.contains(['?', '#', ' ']) => {
            Ok(format!("{base}{}", operator::RECONCILE_PATH))
        }
        _ => Err(Failure::invalid(format!("--url must be an http(s) URL of the Worker, got {base:?}"))),
    }
}

/// One call; `Ok((status, body))` when the Worker answered.
fn post(url: &str, signature: &str, body: &str) -> Result<(u16, String), String> {
    let node = std::env::var("INTERLOG_NODE").unwrap_or_else(|_| "node".into());
    let out = Command::new(node)
        .args(["-e", FETCH])
        .env("R_URL", url)
        .env("R_SIG", signature)
        .env("R_BODY", body)
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

/// Asks the Worker at `base` to reconcile `org`, signed with `pepper` at
/// `now_ms()` (a fresh signature per attempt).
pub fn tell(base: &str, pepper: &Pepper, org: &OrgId, now_ms: impl Fn() -> i64) -> Result<(), Failure> {
    let url = endpoint(base)?;
    let body = ReconcileRequest { org_id: org.clone() }.to_body();
    let mut last = String::new();
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(1000 * u64::from(attempt)));
        }
        let signature = operator::sign(pepper, now_ms(), body.as_bytes());
        match post(&url, &signature, &body) {
            Ok((204, _)) => return Ok(()),
            Ok((401, _)) => {
                return Err(Failure::reconcile(format!(
                    "{url} refused the signature: INTERLOG_PEPPER (and its version) must be the Worker's pepper"
                )))
            }
            Ok((404, _)) => return Err(Failure::reconcile(format!("{url}: the Worker does not know org {org}"))),
            Ok((status @ (429 | 500..), text)) => last = format!("{url} answered {status}: {}", text.trim()),
            Ok((status, text)) => return Err(Failure::reconcile(format!("{url} answered {status}: {}", text.trim()))),
            Err(e) => last = e,
        }
    }
    Err(Failure::reconcile(last))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_urls_of_the_worker() {
        assert_eq!(endpoint("http://127.0.0.1:8787").unwrap(), "http://127.0.0.1:8787/v1/operator/reconcile");
        assert_eq!(endpoint("https://api.example.com/").unwrap(), "https://api.example.com/v1/operator/reconcile");
        for bad in ["", "127.0.0.1:8787", "ftp://x", "http://", "http://x/?a=1", "javascript:alert(1)"] {
            assert_eq!(endpoint(bad).unwrap_err().code, "VALIDATION_FAILED", "{bad}");
        }
    }
}
