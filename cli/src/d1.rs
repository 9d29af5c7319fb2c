//! D1 through `wrangler d1 execute`: the local databases of `wrangler dev`
//! (`--persist-to`) or the deployed ones (`--remote`), by binding: the
//! directory (`--database`, default `DB`) or a data shard (`DATA_…`). Every
//! change and its audit row travel in one `--command` (one batch) on one
//! database.

use crate::args::Global;
use crate::fail::Failure;
use interlog_core::shard::ShardId;
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

/// Runs SQL on the directory (`--database`); see [`execute_on`].
pub fn execute(g: &Global, sql: &str) -> Result<String, Failure> {
    execute_on(g, &g.database, sql)
}

/// Runs SQL on a data shard; see [`execute_on`].
pub fn execute_shard(g: &Global, shard: &ShardId, sql: &str) -> Result<String, Failure> {
    execute_on(g, shard.as_str(), sql)
}

/// Runs SQL on the database of binding `db`, trying again after a failure
/// that is not a constraint violation (a busy local database, a network
/// hiccup), 0.5 s longer each time (7.5 s in all); returns wrangler's JSON
/// output (one result per statement) or the last failure.
pub fn execute_on(g: &Global, db: &str, sql: &str) -> Result<String, Failure> {
    let mut last = Failure::storage(String::new());
    for attempt in 0..ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(500 * attempt));
        }
        match execute_once(g, db, sql) {
            Ok(out) => return Ok(out),
            Err(e) if e.message.contains("constraint failed") => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The arguments after the wrangler command that run `sql` on `db`.
fn execute_args(g: &Global, db: &str, sql: &str) -> Vec<String> {
    let mut args: Vec<String> = ["d1", "execute", db, "--json", "--command", sql].map(String::from).into();
    if g.remote {
        args.push("--remote".into());
    } else {
        args.push("--local".into());
        if let Some(p) = &g.persist_to {
            args.extend(["--persist-to".into(), p.clone()]);
        }
    }
    if let Some(c) = &g.config {
        args.extend(["--config".into(), c.clone()]);
    }
    if let Some(e) = &g.env {
        args.extend(["--env".into(), e.clone()]);
    }
    args
}

fn execute_once(g: &Global, db: &str, sql: &str) -> Result<String, Failure> {
    let w = wrangler();
    let mut cmd = Command::new(&w[0]);
    cmd.args(&w[1..]).args(execute_args(g, db, sql));
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
    fn statements_run_on_the_database_asked_for_with_the_same_flags() {
        let local = Global { persist_to: Some("/tmp/p".into()), database: "DB".into(), ..Global::default() };
        assert_eq!(
            execute_args(&local, "DATA_2", "SELECT 1"),
            ["d1", "execute", "DATA_2", "--json", "--command", "SELECT 1", "--local", "--persist-to", "/tmp/p"]
        );
        let remote = Global {
            remote: true,
            config: Some("w.toml".into()),
            env: Some("staging".into()),
            database: "DB".into(),
            ..Global::default()
        };
        assert_eq!(
            execute_args(&remote, "DB", "SELECT 1"),
            [
                "d1",
                "execute",
                "DB",
                "--json",
                "--command",
                "SELECT 1",
                "--remote",
                "--config",
                "w.toml",
                "--env",
                "staging"
            ]
        );
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
