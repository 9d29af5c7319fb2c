//! `interlog-admin`: operator command. Creates an org with its first admin key
//! (or another key for an existing org), or sets an org's storage quota, by
//! writing D1 through `wrangler d1 execute`, locally or (`--remote`) on a
//! deployed database. Prints exactly one JSON line; the plaintext key is shown
//! only there.
//!
//! Names, scopes, ids, keys and times follow core's rules (`interlog_core`),
//! the ones the API applies.

use interlog_core::ids::ID_ENTROPY_BYTES;
use interlog_core::key::ENTROPY_BYTES;
use interlog_core::keys;
use interlog_core::org::OrgUsage;
use interlog_core::timefmt::parse_rfc3339;
use interlog_core::{ApiKey, OrgId, Pepper, Scope, Scopes};
use std::process::{Command, ExitCode};
use std::time::{SystemTime, UNIX_EPOCH};

const USAGE: &str = "\
usage:
  interlog-admin create-org --name NAME [TARGET]
  interlog-admin create-key --org ORG_ID [--name NAME] [--scopes ingest,read,admin] [--expires-at RFC3339] [TARGET]
  interlog-admin set-quota --org ORG_ID [--rows N|default] [--bytes N|default] [TARGET]
TARGET: --local [--persist-to DIR] (default) | --remote
other:  --config wrangler.toml  --database DB
env:    INTERLOG_PEPPER (required: the pepper stored in the Secrets Store),
        INTERLOG_PEPPER_VERSION (default 1),
        INTERLOG_WRANGLER (default: node_modules/.bin/wrangler, else npx wrangler)";

#[derive(Debug, Default)]
struct Args {
    command: String,
    name: Option<String>,
    org: Option<String>,
    scopes: Option<String>,
    expires_at: Option<String>,
    rows: Option<String>,
    bytes: Option<String>,
    remote: bool,
    persist_to: Option<String>,
    config: Option<String>,
    database: Option<String>,
}

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut a = Args { command: it.next().ok_or("missing command")?, ..Args::default() };
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--name" => a.name = Some(value()?),
            "--org" => a.org = Some(value()?),
            "--scopes" => a.scopes = Some(value()?),
            "--expires-at" => a.expires_at = Some(value()?),
            "--rows" => a.rows = Some(value()?),
            "--bytes" => a.bytes = Some(value()?),
            "--persist-to" => a.persist_to = Some(value()?),
            "--config" => a.config = Some(value()?),
            "--database" => a.database = Some(value()?),
            "--remote" => a.remote = true,
            "--local" => a.remote = false,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

/// SQL text literal. Inputs are checked first: no control characters.
fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// An org or key name: core's key-name rule, the one `POST /v1/keys` applies.
fn check_name(name: &str) -> Result<(), String> {
    keys::check_name(name).map_err(|m| format!("name {m}"))
}

/// `--scopes ingest,read,admin`: scope names as core parses them, each trimmed.
fn parse_scopes(list: &str) -> Result<Scopes, String> {
    let scopes = list
        .split(',')
        .map(|x| Scope::parse(x.trim()).ok_or(format!("unknown scope {x}")))
        .collect::<Result<Scopes, _>>()?;
    if scopes.is_empty() {
        return Err("at least one scope is required".into());
    }
    Ok(scopes)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).map_err(|e| format!("getrandom: {e}"))?;
    Ok(b)
}

fn pepper() -> Result<Pepper, String> {
    let secret = std::env::var("INTERLOG_PEPPER").map_err(|_| "INTERLOG_PEPPER is not set".to_string())?;
    let version = std::env::var("INTERLOG_PEPPER_VERSION")
        .unwrap_or_else(|_| "1".into())
        .parse()
        .map_err(|_| "INTERLOG_PEPPER_VERSION must be a number".to_string())?;
    Pepper::new(version, secret).map_err(|e| e.to_string())
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

/// Runs SQL through `wrangler d1 execute`, retrying twice after a failure
/// that is not a constraint violation (a busy local database, a network
/// hiccup); returns the output of the last failure.
fn execute(a: &Args, sql: &str) -> Result<String, String> {
    let mut last = String::new();
    for attempt in 0..3 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(500 * attempt));
        }
        match execute_once(a, sql) {
            Ok(out) => return Ok(out),
            Err(e) if e.contains("constraint failed") => return Err(e),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Runs SQL once; returns wrangler's JSON output (one result per statement).
fn execute_once(a: &Args, sql: &str) -> Result<String, String> {
    let w = wrangler();
    let mut cmd = Command::new(&w[0]);
    cmd.args(&w[1..]).args(["d1", "execute", a.database.as_deref().unwrap_or("DB"), "--json", "--command", sql]);
    if a.remote {
        cmd.arg("--remote");
    } else {
        cmd.arg("--local");
        if let Some(p) = &a.persist_to {
            cmd.args(["--persist-to", p]);
        }
    }
    if let Some(c) = &a.config {
        cmd.args(["--config", c]);
    }
    cmd.env("CI", "true").env("WRANGLER_SEND_METRICS", "false");
    let out = cmd.output().map_err(|e| format!("cannot run wrangler: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "wrangler d1 execute failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// Inserts a new key (retrying on the rare prefix collision) after `before`
/// statements, all in one `wrangler d1 execute`. Returns the plaintext key.
fn insert_key(
    a: &Args,
    before: &str,
    org: &OrgId,
    name: &str,
    scopes: Scopes,
    expires_at: Option<i64>,
) -> Result<ApiKey, String> {
    let pepper = pepper()?;
    let now = now_ms();
    for _ in 0..5 {
        let key = ApiKey::from_entropy(&random::<ENTROPY_BYTES>()?);
        let sql = format!(
            "{before}INSERT INTO api_keys (prefix, org_id, name, scopes, hash, pepper_version, state, created_at, expires_at) \
             VALUES ({}, {}, {}, {}, {}, {}, 'active', {now}, {});",
            lit(key.prefix().as_str()),
            lit(org.as_str()),
            lit(name),
            lit(&scopes.to_db()),
            lit(&pepper.digest(&key).to_hex()),
            pepper.version(),
            expires_at.map_or("NULL".into(), |e| e.to_string()),
        );
        match execute(a, &sql) {
            Ok(_) => return Ok(key),
            Err(e) if keys::is_prefix_collision(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Err("could not find a free key prefix".into())
}

/// `--rows`/`--bytes`: a non-negative integer, or `default` (stored as NULL:
/// the default quota, which follows the defaults of future releases).
fn parse_quota(flag: &str, v: &str) -> Result<Option<u64>, String> {
    if v == "default" {
        return Ok(None);
    }
    match v.parse::<u64>() {
        Ok(n) if n <= 1 << 53 => Ok(Some(n)),
        _ => Err(format!("{flag} must be a whole number (0 to 2^53) or \"default\"")),
    }
}

/// The SQL of `set-quota`: the update, then the org's row to report.
fn set_quota_sql(org: &OrgId, rows: Option<Option<u64>>, bytes: Option<Option<u64>>) -> String {
    let value = |q: Option<u64>| q.map_or("NULL".to_string(), |n| n.to_string());
    let mut sets = Vec::new();
    if let Some(r) = rows {
        sets.push(format!("quota_rows = {}", value(r)));
    }
    if let Some(b) = bytes {
        sets.push(format!("quota_bytes = {}", value(b)));
    }
    let id = lit(org.as_str());
    format!(
        "UPDATE orgs SET {} WHERE id = {id}; \
         SELECT used_rows, used_bytes, quota_rows, quota_bytes FROM orgs WHERE id = {id};",
        sets.join(", ")
    )
}

/// The usage row in wrangler's JSON output of [`set_quota_sql`] (the last
/// statement's first row), if the org exists.
fn usage_from_output(out: &str) -> Result<Option<OrgUsage>, String> {
    let v: serde_json::Value = serde_json::from_str(out).map_err(|e| format!("unexpected wrangler output: {e}"))?;
    let row = v.as_array().and_then(|r| r.last()).and_then(|r| r["results"].as_array()).and_then(|r| r.first());
    Ok(row.map(|r| {
        let num = |k: &str| r[k].as_f64();
        OrgUsage::from_stored(
            num("used_rows").unwrap_or(0.0),
            num("used_bytes").unwrap_or(0.0),
            num("quota_rows"),
            num("quota_bytes"),
        )
    }))
}

fn run(a: Args) -> Result<serde_json::Value, String> {
    match a.command.as_str() {
        "create-org" => {
            let name = a.name.clone().ok_or("--name is required")?;
            check_name(&name)?;
            let org = OrgId::generate(now_ms() as u64, &random::<ID_ENTROPY_BYTES>()?);
            let now = now_ms();
            let before = format!(
                "INSERT INTO orgs (id, name, allowed_origins, created_at, updated_at) VALUES ({}, {}, '[]', {now}, {now}); ",
                lit(org.as_str()),
                lit(&name)
            );
            let key = insert_key(&a, &before, &org, "initial admin key", Scopes::all(), None)?;
            Ok(serde_json::json!({ "org_id": org, "key": key.expose_secret() }))
        }
        "create-key" => {
            let org = a.org.as_deref().and_then(OrgId::parse).ok_or("--org must be an org id (org_…)")?;
            let name = a.name.clone().unwrap_or_else(|| "operator key".into());
            check_name(&name)?;
            let scopes = match &a.scopes {
                None => Scopes::all(),
                Some(s) => parse_scopes(s)?,
            };
            let expires_at = match &a.expires_at {
                None => None,
                Some(t) => Some(parse_rfc3339(t).ok_or("--expires-at must be RFC 3339")?),
            };
            let key = insert_key(&a, "", &org, &name, scopes, expires_at)?;
            Ok(serde_json::json!({ "org_id": org, "key": key.expose_secret(), "prefix": key.prefix() }))
        }
        "set-quota" => {
            let org = a.org.as_deref().and_then(OrgId::parse).ok_or("--org must be an org id (org_…)")?;
            let rows = a.rows.as_deref().map(|v| parse_quota("--rows", v)).transpose()?;
            let bytes = a.bytes.as_deref().map(|v| parse_quota("--bytes", v)).transpose()?;
            if rows.is_none() && bytes.is_none() {
                return Err("--rows or --bytes is required".into());
            }
            let usage =
                usage_from_output(&execute(&a, &set_quota_sql(&org, rows, bytes))?)?.ok_or(format!("no org {org}"))?;
            Ok(serde_json::json!({ "org_id": org, "usage": usage }))
        }
        other => Err(format!("unknown command {other}")),
    }
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("interlog-admin: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("interlog-admin: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_quotes() {
        assert_eq!(lit("O'Brien"), "'O''Brien'");
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("Acme").is_ok());
        assert!(check_name(&"é".repeat(128)).is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("   ").is_err());
        assert!(check_name(&"x".repeat(129)).is_err());
        assert_eq!(check_name("a\nb"), Err("name must be 1-128 characters without control characters".into()));
    }

    #[test]
    fn scopes_parse() {
        assert_eq!(parse_scopes("read, ingest").map(Scopes::to_db), Ok("ingest,read".into()));
        assert_eq!(parse_scopes("admin,read,ingest"), Ok(Scopes::all()));
        assert_eq!(parse_scopes("read,root"), Err("unknown scope root".into()));
        assert_eq!(parse_scopes(""), Err("unknown scope ".into()));
    }

    #[test]
    fn prefix_collisions_are_recognised() {
        let wrangler = "wrangler d1 execute failed (exit status: 1): \
                        X [ERROR] UNIQUE constraint failed: api_keys.prefix: SQLITE_CONSTRAINT_PRIMARYKEY";
        assert!(keys::is_prefix_collision(wrangler));
        assert!(!keys::is_prefix_collision(
            "X [ERROR] UNIQUE constraint failed: orgs.id: SQLITE_CONSTRAINT_PRIMARYKEY"
        ));
        assert!(!keys::is_prefix_collision("X [ERROR] NOT NULL constraint failed: api_keys.hash"));
    }

    #[test]
    fn quotas_parse_and_build_one_update() {
        assert_eq!(parse_quota("--rows", "10"), Ok(Some(10)));
        assert_eq!(parse_quota("--rows", "default"), Ok(None));
        assert!(parse_quota("--rows", "-1").is_err());
        assert!(parse_quota("--bytes", "1e9").is_err());
        assert!(parse_quota("--bytes", "1; DROP TABLE orgs").is_err());
        let org = OrgId::generate(1, &[1; ID_ENTROPY_BYTES]);
        let sql = set_quota_sql(&org, Some(Some(10)), Some(None));
        assert!(sql.starts_with(&format!("UPDATE orgs SET quota_rows = 10, quota_bytes = NULL WHERE id = '{org}';")));
        assert!(!set_quota_sql(&org, None, Some(Some(5))).contains("quota_rows ="));
    }

    #[test]
    fn quota_output_is_read_from_the_last_statement() {
        let out = r#"[{"results":[],"success":true},
            {"results":[{"used_rows":3,"used_bytes":40,"quota_rows":10,"quota_bytes":null}],"success":true}]"#;
        let u = usage_from_output(out).unwrap().unwrap();
        assert_eq!((u.rows, u.bytes, u.quota_rows), (3, 40, 10));
        assert_eq!(u.quota_bytes, interlog_core::org::DEFAULT_QUOTA_BYTES);
        assert_eq!(usage_from_output(r#"[{"results":[]},{"results":[]}]"#), Ok(None));
    }

    #[test]
    fn args_parse() {
        let a = parse_args(["create-org", "--name", "Acme", "--remote"].map(String::from).into_iter()).unwrap();
        assert_eq!(a.name.as_deref(), Some("Acme"));
        assert!(a.remote);
        assert!(parse_args(["create-org", "--bogus"].map(String::from).into_iter()).is_err());
    }
}
