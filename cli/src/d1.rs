//! D1 through `wrangler d1 execute`: the local database of `wrangler dev`
//! (`--persist-to`) or the deployed one (`--remote`). Every change and its
//! audit row travel in one `--command` (one batch).

use crate::args::Global;
use crate::fail::Failure;
use serde_json::Value;
use std::process::Command;

/// SQL text literal. Inputs are checked first (no control characters).
pub fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An optional SQL text literal (`NULL` for none).
pub fn opt_lit(s: Option<&str>) -> String {
    s.map_or_else(|| "NULL".into(), lit)
}

fn wrangler() -> Vec<String> {
    if let Ok(w) = std::env::var("INTERLOG_WRANGLER") {
        return w.split_whitespace().map(String::from).collect();
    }
    if std::path::Path::new("node_modules/.bin/wrangler").exists() {
        return vec!["node_modules/.bin/wrangler".into()];
    }
    vec!["npx".into(), "wrangler".into()]
}

/// Attempts of one statement batch. A local database stays busy while the
/// running server writes a large batch (an erasure, a retention run).
const ATTEMPTS: u64 = 6;

/// Runs SQL, trying again after a failure that is not a constraint violation
/// (a busy local database, a network hiccup), 0.5 s longer each time (7.5 s
/// in all); returns wrangler's JSON output (one result per statement) or the
/// last failure.
pub fn execute(g: &Global, sql: &str) -> Result<String, Failure> {
    let mut last = Failure::storage(String::new());
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(500 * attempt));
        }
        match execute_once(g, sql) {
            Ok(out) => return Ok(out),
            Err(e) if e.message.contains("constraint failed") => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

fn execute_once(g: &Global, sql: &str) -> Result<String, Failure> {
    let w = wrangler();
    let mut cmd = Command::new(&w[0]);
    cmd.args(&w[1..]).args(["d1", "execute", &g.database, "--json", "--command", sql]);
    if g.remote {
        cmd.arg("--remote");
    } else {
        cmd.arg("--local");
        if let Some(p) = &g.persist_to {
            cmd.args(["--persist-to", p]);
        }
    }
    if let Some(c) = &g.config {
        cmd.args(["--config", c]);
    }
    cmd.env("CI", "true").env("WRANGLER_SEND_METRICS", "false");
    let out = cmd.output().map_err(|e| Failure::storage(format!("cannot run wrangler: {e}")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(Failure::storage(format!(
            "wrangler d1 execute failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// The rows of statement `index` in wrangler's JSON output (negative: from
/// the end, `-1` the last).
pub fn rows(out: &str, index: isize) -> Result<Vec<Value>, Failure> {
    let v: Value =
        serde_json::from_str(out).map_err(|e| Failure::storage(format!("unexpected wrangler output: {e}")))?;
    let results = v.as_array().cloned().unwrap_or_default();
    let i = if index < 0 { results.len().checked_sub(index.unsigned_abs()) } else { Some(index.unsigned_abs()) };
    Ok(i.and_then(|i| results.get(i)).and_then(|r| r["results"].as_array()).cloned().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes() {
        assert_eq!(lit("O'Brien"), "'O''Brien'");
        assert_eq!(opt_lit(None), "NULL");
        assert_eq!(opt_lit(Some("a")), "'a'");
    }

    #[test]
    fn rows_are_read_per_statement() {
        let out = r#"[{"results":[],"success":true},{"results":[{"a":1},{"a":2}],"success":true}]"#;
        assert_eq!(rows(out, -1).unwrap().len(), 2);
        assert_eq!(rows(out, 1).unwrap().len(), 2);
        assert!(rows(out, 0).unwrap().is_empty());
        assert!(rows(out, 5).unwrap().is_empty());
        assert!(rows(out, -3).unwrap().is_empty());
        assert!(rows("not json", -1).is_err());
    }
}
