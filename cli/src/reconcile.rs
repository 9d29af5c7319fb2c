//! Telling the running Worker that an org's keys changed in D1: the signed
//! `POST /v1/operator/reconcile` (`interlog_core::operator`, sent by
//! [`crate::signed`]), after which the org's actor applies D1's revocations
//! to the very next request.

use crate::fail::Failure;
use crate::signed;
use interlog_core::operator::{ReconcileRequest, RECONCILE_PATH};
use interlog_core::{OrgId, Pepper};

/// Tries this many times when the Worker is busy (429, 503) or unreachable.
const ATTEMPTS: u32 = 3;
/// How long one call may take.
const TIMEOUT_MS: u32 = 15_000;

/// The reconcile URL of a Worker at `base` (http or https, no query).
pub fn endpoint(base: &str) -> Result<String, Failure> {
    signed::endpoint(base, RECONCILE_PATH)
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
        match signed::post(&url, pepper, now_ms(), &body, TIMEOUT_MS) {
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
