//! `move-org`: drives the move of an org between data shards, which the
//! running Worker performs one bounded step per signed `POST
//! /v1/operator/move` (`interlog_core::operator::MoveRequest`). The command
//! asks for the next step (or the next rollback step) until the report says
//! `done`, printing one progress line per call on stderr and the final
//! report on stdout.

use crate::args::MoveOrg;
use crate::fail::Failure;
use crate::keys::org_id;
use crate::material::{now_ms, pepper};
use crate::signed;
use interlog_core::operator::{MoveAction, MoveRequest, MOVE_PATH};
use serde_json::{json, Value};
use std::time::Duration;

/// Busy answers (429, 503) and unreachable Workers tolerated in a row.
const BUSY_TRIES: u32 = 30;
/// The wait after a busy answer.
const BUSY_WAIT: Duration = Duration::from_secs(1);
/// How long one step may take (a page copied or checked, the switch).
const TIMEOUT_MS: u32 = 30_000;
/// Restarts of the copy (a lost write pause, a failed check) tolerated in
/// one run before giving up.
const MAX_RESTARTS: u64 = 10;
/// Calls the pacer lets through at once, then how many a minute after that:
/// at most 10 + 45 = 55 calls in any minute, under rate limit L1's 60 a
/// minute per client address, so steps are never held back for a whole L1
/// window (which would let the org's 15 s write pause lapse and restart the
/// copy); one step every 1.33 s at most once the burst is spent.
const BURST: f64 = 10.0;
const PER_MINUTE: f64 = 45.0;

/// A token bucket over the calls of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct Pacer {
    tokens: f64,
    /// When the tokens were counted (seconds since the run began).
    at: f64,
}

impl Pacer {
    pub fn new() -> Self {
        Self { tokens: BURST, at: 0.0 }
    }

    /// How long to wait before a call at `now` (seconds since the run
    /// began); the call is counted as made after that wait.
    pub fn delay(&mut self, now: f64) -> Duration {
        let rate = PER_MINUTE / 60.0;
        self.tokens = (self.tokens + (now - self.at).max(0.0) * rate).min(BURST);
        self.at = now;
        let wait = if self.tokens >= 1.0 { 0.0 } else { (1.0 - self.tokens) / rate };
        self.tokens += wait * rate - 1.0;
        self.at += wait;
        Duration::from_secs_f64(wait)
    }
}

/// Steps in one run at most: far more than a move of an org at its quota
/// takes (1,000,000 interactions at 200 rows a page, copied, checked on both
/// sides and deleted twice).
const MAX_CALLS: u64 = 100_000;

/// What one answer of the Worker means for the loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// A report (`{"move": …}`).
    Report(Value),
    /// Busy or unreachable: wait and ask again.
    Retry(String),
    /// Refused: stop with this failure.
    Stop(Failure),
}

/// Reads one answer of `url`.
pub fn classify(url: &str, answer: Result<(u16, String), String>) -> Answer {
    let (status, body) = match answer {
        Ok(a) => a,
        Err(unreachable) => return Answer::Retry(unreachable),
    };
    let refused = |default: &'static str, hint: &str| {
        let (code, message) = signed::envelope(&body).unwrap_or_else(|| (default.into(), body.trim().to_string()));
        let mut text = format!("{url} answered {status} {code}: {message}");
        if !hint.is_empty() {
            text.push_str(" (");
            text.push_str(hint);
            text.push(')');
        }
        Answer::Stop(Failure::coded(code, text))
    };
    match status {
        200 => match serde_json::from_str::<Value>(&body).ok().and_then(|v| v.get("move").cloned()) {
            Some(report) if report["done"].is_boolean() => Answer::Report(report),
            _ => Answer::Stop(Failure::internal(format!("{url} answered 200 without a move report: {}", body.trim()))),
        },
        s if signed::busy(s) => Answer::Retry(format!("{url} answered {status}: {}", body.trim())),
        401 => refused("UNAUTHORIZED", "INTERLOG_PEPPER and INTERLOG_PEPPER_VERSION must be the Worker's pepper"),
        404 => refused("NOT_FOUND", ""),
        400 => refused("VALIDATION_FAILED", ""),
        409 => refused("CONFLICT", ""),
        _ => refused("UNAVAILABLE", ""),
    }
}

/// The stderr line of one report: `move org_… DATA_1 -> DATA_2 (attempt 1):
/// copying interactions; copied orgs=1 interactions=200` (`--json`: the
/// report as `{"progress": …}`).
pub fn progress_line(report: &Value, json: bool) -> String {
    if json {
        return json!({ "progress": report }).to_string();
    }
    let text = |k: &str| report[k].as_str().unwrap_or("?").to_string();
    let mut line = format!(
        "interlog-admin: move {} {} -> {} (attempt {}): {}",
        text("org_id"),
        text("from"),
        text("to"),
        report["attempt"].as_u64().unwrap_or(0),
        text("phase")
    );
    if let Some(t) = report["table"].as_str() {
        line.push(' ');
        line.push_str(t);
    }
    let counts = |k: &str| -> Vec<String> {
        report[k]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(t, v)| format!("{t}={}", v.as_u64().or_else(|| v["rows"].as_u64()).unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default()
    };
    for (label, key) in [("copied", "copied"), ("verified", "verified")] {
        let c = counts(key);
        if !c.is_empty() {
            line.push_str(&format!("; {label} {}", c.join(" ")));
        }
    }
    if let Some(note) = report["note"].as_str() {
        line.push_str(&format!("; note: {note}"));
    }
    line
}

/// `move-org`: steps (or rolls back) until done.
pub fn run(a: &MoveOrg, json_lines: bool) -> Result<Value, Failure> {
    let org = org_id(&a.org)?;
    let base = a
        .url
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Failure::invalid("move-org needs the Worker's URL: --url or INTERLOG_URL"))?;
    let url = signed::endpoint(base, MOVE_PATH)?;
    let pepper = pepper()?;
    let action = if a.rollback { MoveAction::Rollback } else { MoveAction::Step };
    let body = MoveRequest { org_id: org.clone(), to: a.to.clone(), action }.to_body();
    let (mut busy, mut first_attempt) = (0u32, None::<u64>);
    let (began, mut pacer) = (std::time::Instant::now(), Pacer::new());
    for _ in 0..MAX_CALLS {
        std::thread::sleep(pacer.delay(began.elapsed().as_secs_f64()));
        match classify(&url, signed::post(&url, &pepper, now_ms(), &body, TIMEOUT_MS)) {
            Answer::Report(report) => {
                busy = 0;
                eprintln!("{}", progress_line(&report, json_lines));
                if report["done"] == json!(true) {
                    return Ok(report);
                }
                let attempt = report["attempt"].as_u64().unwrap_or(0);
                let first = *first_attempt.get_or_insert(attempt);
                if attempt >= first + MAX_RESTARTS {
                    return Err(Failure::storage(format!(
                        "the move of {org} restarted its copy {} times in this run (last note: {}); \
                         run the command again, or roll it back with --rollback",
                        attempt - first,
                        report["note"].as_str().unwrap_or("none")
                    )));
                }
            }
            Answer::Retry(why) => {
                busy += 1;
                if busy >= BUSY_TRIES {
                    return Err(Failure::storage(format!(
                        "{why}; gave up after {BUSY_TRIES} tries in a row: run the command again to resume"
                    )));
                }
                if json_lines {
                    eprintln!("{}", json!({ "retry": { "reason": why, "try": busy, "of": BUSY_TRIES } }));
                } else {
                    eprintln!("interlog-admin: {why}; trying again in 1 s ({busy}/{BUSY_TRIES})");
                }
                std::thread::sleep(BUSY_WAIT);
            }
            Answer::Stop(f) => return Err(f),
        }
    }
    Err(Failure::internal(format!("the move of {org} did not end within {MAX_CALLS} steps; run the command again")))
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:1/v1/operator/move";

    fn report(phase: &str, done: bool) -> Value {
        json!({"org_id":"org_x","from":"DATA_1","to":"DATA_2","phase":phase,"table":"interactions",
               "copied":{"orgs":1,"interactions":200},"verified":{"orgs":{"rows":1,"checksum":"00000000000000ff"}},
               "attempt":2,"done":done,"note":null})
    }

    #[test]
    fn reports_busy_answers_and_refusals_are_told_apart() {
        let ok = json!({ "move": report("copying", false) }).to_string();
        assert_eq!(classify(URL, Ok((200, ok))), Answer::Report(report("copying", false)));
        for status in [429, 503] {
            assert!(matches!(classify(URL, Ok((status, "{}".into()))), Answer::Retry(_)), "{status}");
        }
        assert!(matches!(classify(URL, Err("unreachable".into())), Answer::Retry(_)));
        let conflict = r#"{"error":{"code":"CONFLICT","message":"the org already uses DATA_2","request_id":"r"}}"#;
        match classify(URL, Ok((409, conflict.into()))) {
            Answer::Stop(f) => {
                assert_eq!(f.code, "CONFLICT");
                assert!(f.message.ends_with("answered 409 CONFLICT: the org already uses DATA_2"), "{}", f.message);
            }
            other => panic!("{other:?}"),
        }
        let unauthorized = r#"{"error":{"code":"UNAUTHORIZED","message":"invalid or missing API key"}}"#;
        match classify(URL, Ok((401, unauthorized.into()))) {
            Answer::Stop(f) => assert!(f.code == "UNAUTHORIZED" && f.message.contains("INTERLOG_PEPPER"), "{f:?}"),
            other => panic!("{other:?}"),
        }
        for (status, code) in [(404, "NOT_FOUND"), (400, "VALIDATION_FAILED"), (500, "UNAVAILABLE")] {
            match classify(URL, Ok((status, "not json".into()))) {
                Answer::Stop(f) => assert_eq!(f.code, code, "{status}"),
                other => panic!("{status}: {other:?}"),
            }
        }
        assert!(matches!(classify(URL, Ok((200, "{}".into()))), Answer::Stop(f) if f.code == "INTERNAL"));
    }

    #[test]
    fn the_pacer_allows_a_burst_then_stays_under_l1() {
        let mut p = Pacer::new();
        let mut now = 0.0;
        let mut starts = Vec::new();
        for _ in 0..200 {
            now += p.delay(now).as_secs_f64();
            starts.push(now);
            now += 0.2; // the call itself
        }
        assert!(starts[9] < 2.5, "the first 10 calls are not held back: {}", starts[9]);
        for (i, t) in starts.iter().enumerate() {
            let in_minute = starts[i..].iter().take_while(|s| **s < t + 60.0).count();
            assert!(in_minute <= 55, "{in_minute} calls in the minute from {t}");
        }
        let gaps = starts.windows(2).map(|w| w[1] - w[0]);
        assert!(gaps.fold(0.0_f64, f64::max) < 2.0, "never a gap near the 15 s write pause");
        let mut idle = Pacer::new();
        idle.delay(0.0);
        assert_eq!(idle.delay(3600.0), Duration::ZERO, "tokens refill, up to the burst");
    }

    #[test]
    fn progress_lines_show_phase_table_and_counts() {
        let line = progress_line(&report("copying", false), false);
        assert_eq!(
            line,
            "interlog-admin: move org_x DATA_1 -> DATA_2 (attempt 2): copying interactions; \
             copied interactions=200 orgs=1; verified orgs=1"
        );
        let v: Value = serde_json::from_str(&progress_line(&report("done", true), true)).unwrap();
        assert_eq!(v["progress"]["phase"], "done");
        let mut noted = report("clearing", false);
        noted["table"] = Value::Null;
        noted["note"] = json!("the write pause lapsed");
        assert!(progress_line(&noted, false).ends_with(
            "(attempt 2): clearing; copied interactions=200 orgs=1; \
             verified orgs=1; note: the write pause lapsed"
        ));
    }
}
