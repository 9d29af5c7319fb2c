//! Data shards as the operator command sees them: the D1 bindings of the
//! wrangler config whose name starts with `DATA_` (`--config`, with `--env`
//! those of `[env.NAME]`), their state in the directory's `shards` table (no
//! row: open) and how many orgs the directory places on each. Placement of a
//! new org is `interlog_core::shard::place` over these; `list-shards` and
//! `set-shard` show and change them.

use crate::args::{Global, SetShard};
use crate::audit;
use crate::d1::{self, lit};
use crate::fail::Failure;
use crate::material::now_ms;
use interlog_core::audit::AuditAction;
use interlog_core::shard::{place, ShardId, ShardLoad, BINDING_PREFIX};
use interlog_core::OrgId;
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The config file read when `--config` is not given.
const DEFAULT_CONFIG: &str = "wrangler.toml";

/// The part of a wrangler config read here; everything else is ignored.
#[derive(Debug, Default, Deserialize)]
struct WranglerConfig {
    #[serde(default)]
    d1_databases: Vec<D1Binding>,
    #[serde(default)]
    env: BTreeMap<String, EnvConfig>,
}

#[derive(Debug, Default, Deserialize)]
struct EnvConfig {
    #[serde(default)]
    d1_databases: Vec<D1Binding>,
}

#[derive(Debug, Deserialize)]
struct D1Binding {
    binding: String,
    #[serde(default)]
    database_name: Option<String>,
}

/// A data shard of the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shard {
    pub id: ShardId,
    /// Its `database_name`.
    pub database: Option<String>,
}

/// The data shards of a wrangler config's text (of `[env.NAME]` when `env`
/// is given), in the config's order; `source` names the file in errors.
pub fn parse_config(text: &str, env: Option<&str>, source: &str) -> Result<Vec<Shard>, Failure> {
    let config: WranglerConfig =
        toml::from_str(text).map_err(|e| Failure::invalid(format!("{source} is not a wrangler TOML config: {e}")))?;
    let (bindings, place) = match env {
        None => (&config.d1_databases, source.to_string()),
        Some(name) => {
            let section = config
                .env
                .get(name)
                .ok_or_else(|| Failure::invalid(format!("{source} has no [env.{name}] (--env {name})")))?;
            (&section.d1_databases, format!("[env.{name}] of {source}"))
        }
    };
    let mut shards: Vec<Shard> = Vec::new();
    for b in bindings.iter().filter(|b| b.binding.starts_with(BINDING_PREFIX)) {
        let id = ShardId::parse(&b.binding).ok_or_else(|| {
            Failure::invalid(format!(
                "D1 binding {:?} in {place} starts with {BINDING_PREFIX} but is not a shard name \
                 ({BINDING_PREFIX} then A-Z, 0-9, _)",
                b.binding
            ))
        })?;
        if shards.iter().any(|s| s.id == id) {
            return Err(Failure::invalid(format!("D1 binding {id} appears twice in {place}")));
        }
        shards.push(Shard { id, database: b.database_name.clone() });
    }
    if shards.is_empty() {
        return Err(Failure::invalid(format!(
            "no data shards in {place}: add a [[d1_databases]] binding named {BINDING_PREFIX}1"
        )));
    }
    Ok(shards)
}

/// The data shards of the config the command runs with.
pub fn configured(g: &Global) -> Result<Vec<Shard>, Failure> {
    let path = g.config.as_deref().unwrap_or(DEFAULT_CONFIG);
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::invalid(format!("cannot read the wrangler config {path} (--config): {e}")))?;
    parse_config(&text, g.env.as_deref(), path)
}

/// What the directory says about shards: the states set (no row: open) and
/// how many orgs each holds, as read by [`DIRECTORY_SQL`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Directory {
    pub states: BTreeMap<String, String>,
    pub orgs: BTreeMap<String, u64>,
}

/// Reads the shards' states and org counts from the directory (one batch).
pub const DIRECTORY_SQL: &str =
    "SELECT name, state FROM shards; SELECT shard, COUNT(*) AS orgs FROM orgs GROUP BY shard;";

impl Directory {
    /// From wrangler's output of [`DIRECTORY_SQL`].
    pub fn from_output(out: &str) -> Result<Self, Failure> {
        let states = d1::rows(out, 0)?
            .iter()
            .filter_map(|r| Some((r["name"].as_str()?.to_string(), r["state"].as_str()?.to_string())))
            .collect();
        let orgs = d1::rows(out, 1)?
            .iter()
            .filter_map(|r| Some((r["shard"].as_str()?.to_string(), r["orgs"].as_u64()?)))
            .collect();
        Ok(Self { states, orgs })
    }

    /// Reads it.
    pub fn read(g: &Global) -> Result<Self, Failure> {
        Self::from_output(&d1::execute(g, DIRECTORY_SQL)?)
    }

    /// `open` or `closed`.
    pub fn state(&self, shard: &str) -> &str {
        self.states.get(shard).map_or("open", String::as_str)
    }

    fn load(&self, shard: &ShardId) -> ShardLoad {
        ShardLoad {
            shard: shard.clone(),
            open: self.state(shard.as_str()) != "closed",
            orgs: self.orgs.get(shard.as_str()).copied().unwrap_or(0),
        }
    }
}

/// The placement inputs: each configured shard with its state and org count.
pub fn loads(shards: &[Shard], dir: &Directory) -> Vec<ShardLoad> {
    shards.iter().map(|s| dir.load(&s.id)).collect()
}

/// The shards' names, for messages: `DATA_1, DATA_2`.
fn names(shards: &[Shard]) -> String {
    shards.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(", ")
}

/// `--shard NAME`: a shard of the config. Whether it is open is checked in
/// the directory batch that writes the org ([`closed_guard`]), so naming a
/// shard costs no directory read.
pub fn requested<'a>(shards: &'a [Shard], want: &ShardId) -> Result<&'a Shard, Failure> {
    shards.iter().find(|s| &s.id == want).ok_or_else(|| {
        Failure::not_found(format!("no shard {want} in the wrangler config (shards: {})", names(shards)))
    })
}

/// The shard the placement rule picks for a new org.
pub fn choose(shards: &[Shard], dir: &Directory) -> Result<ShardId, Failure> {
    place(&loads(shards, dir)).ok_or_else(|| {
        let names = names(shards);
        Failure::conflict(format!("every shard is closed to new orgs ({names}): open one with `set-shard NAME --open`"))
    })
}

/// The value of a directory row's `shard` column: `shard`, or NULL (which
/// the NOT NULL column refuses, failing the whole batch) when the
/// directory says it is closed. The check and the write are one statement.
pub fn closed_guard(shard: &ShardId) -> String {
    let name = lit(shard.as_str());
    format!(
        "CASE WHEN EXISTS (SELECT 1 FROM shards WHERE name = {name} AND state = 'closed') THEN NULL ELSE {name} END"
    )
}

/// Whether a directory write failed on [`closed_guard`].
pub fn is_closed_refusal(message: &str) -> bool {
    message.contains("NOT NULL constraint failed: orgs.shard")
}

/// The refusal of a new org on a closed shard.
pub fn closed(shard: &ShardId) -> Failure {
    Failure::conflict(format!(
        "shard {shard} is closed to new orgs (open it with `set-shard {shard} --open`, or choose another)"
    ))
}

/// A shard name stored in the directory, checked before it names a binding.
pub fn stored(org: &OrgId, text: Option<&str>) -> Result<ShardId, Failure> {
    text.and_then(ShardId::parse)
        .ok_or_else(|| Failure::internal(format!("the directory row of org {org} names no valid shard: {text:?}")))
}

/// The SQL reading the shard of `org` from the directory.
pub fn shard_of_sql(org: &OrgId) -> String {
    format!("SELECT shard FROM orgs WHERE id = {};", lit(org.as_str()))
}

/// The shard the directory places `org` on (`NOT_FOUND`: no such org).
pub fn shard_of(g: &Global, org: &OrgId) -> Result<ShardId, Failure> {
    let rows = d1::rows(&d1::execute(g, &shard_of_sql(org))?, -1)?;
    let row = rows.first().ok_or_else(|| Failure::not_found(format!("no org {org}")))?;
    stored(org, row["shard"].as_str())
}

/// One shard as listed.
fn view(name: &str, database: Option<&str>, dir: &Directory) -> Value {
    json!({
        "name": name,
        "database": database,
        "state": dir.state(name),
        "orgs": dir.orgs.get(name).copied().unwrap_or(0),
    })
}

/// The listing: the configured shards in the config's order, then any
/// other shard the directory names (orgs placed there, or a state set),
/// with `database: null` (not in this config).
pub fn listing(shards: &[Shard], dir: &Directory) -> Value {
    let mut out: Vec<Value> = shards.iter().map(|s| view(s.id.as_str(), s.database.as_deref(), dir)).collect();
    let known: BTreeSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
    let others: BTreeSet<&String> =
        dir.states.keys().chain(dir.orgs.keys()).filter(|n| !known.contains(n.as_str())).collect();
    out.extend(others.into_iter().map(|n| view(n, None, dir)));
    json!({ "shards": out })
}

/// `list-shards`.
pub fn list(g: &Global) -> Result<Value, Failure> {
    let shards = configured(g)?;
    Ok(listing(&shards, &Directory::read(g)?))
}

/// The SQL of `set-shard` at `now`: the state stored (only if it differs
/// from the current one, a missing row being open), the org-less
/// `shard.state_set` audit row (only when this statement changed it), then
/// the shard's row and org count.
pub fn set_state_sql(shard: &ShardId, state: &str, now: i64) -> String {
    let (name, st) = (lit(shard.as_str()), lit(state));
    let changed_now =
        format!("EXISTS (SELECT 1 FROM shards WHERE name = {name} AND state = {st} AND updated_at = {now})");
    format!(
        "INSERT INTO shards (name, state, updated_at) SELECT {name}, {st}, {now} \
         WHERE COALESCE((SELECT state FROM shards WHERE name = {name}), 'open') <> {st} \
         ON CONFLICT (name) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at; \
         {} SELECT state, updated_at FROM shards WHERE name = {name}; \
         SELECT COUNT(*) AS orgs FROM orgs WHERE shard = {name};",
        audit::insert(
            None,
            AuditAction::ShardStateSet,
            None,
            json!({ "shard": shard, "state": state }),
            now,
            Some(&changed_now)
        ),
    )
}

/// `set-shard NAME --open|--closed`: only shards of the config.
pub fn set(g: &Global, a: &SetShard) -> Result<Value, Failure> {
    let shards = configured(g)?;
    let shard = requested(&shards, &a.name)?;
    let state = if a.closed { "closed" } else { "open" };
    let now = now_ms();
    let out = d1::execute(g, &set_state_sql(&shard.id, state, now))?;
    let row = d1::rows(&out, -2)?.first().cloned().unwrap_or(Value::Null);
    let orgs = d1::rows(&out, -1)?.first().and_then(|r| r["orgs"].as_u64()).unwrap_or(0);
    Ok(json!({
        "name": shard.id,
        "database": shard.database,
        "state": row["state"].as_str().unwrap_or("open"),
        "orgs": orgs,
        "changed": row["updated_at"].as_f64() == Some(now as f64),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
name = "interlog"
[[d1_databases]]
binding = "DB"
database_name = "interlog"
[[d1_databases]]
binding = "DATA_1"
database_name = "interlog-data-1"
[[d1_databases]]
binding = "DATA_2"
database_name = "interlog-data-2"
[[ratelimits]]
name = "L1_LIMITER"
[env.staging]
name = "interlog-staging"
[[env.staging.d1_databases]]
binding = "DB"
database_name = "interlog-staging"
[[env.staging.d1_databases]]
binding = "DATA_1"
database_name = "interlog-staging-data-1"
[env.empty]
name = "x"
"#;

    fn id(s: &str) -> ShardId {
        ShardId::parse(s).unwrap()
    }

    fn names(shards: &[Shard]) -> Vec<&str> {
        shards.iter().map(|s| s.id.as_str()).collect()
    }

    #[test]
    fn shards_are_the_data_bindings_of_the_config_or_of_its_env() {
        let top = parse_config(CONFIG, None, "w.toml").unwrap();
        assert_eq!(names(&top), ["DATA_1", "DATA_2"]);
        assert_eq!(top[1].database.as_deref(), Some("interlog-data-2"));
        let staging = parse_config(CONFIG, Some("staging"), "w.toml").unwrap();
        assert_eq!(names(&staging), ["DATA_1"]);
        assert_eq!(staging[0].database.as_deref(), Some("interlog-staging-data-1"));
        let missing = parse_config(CONFIG, Some("prod"), "w.toml").unwrap_err();
        assert!(missing.message.contains("no [env.prod]"), "{}", missing.message);
        let empty = parse_config(CONFIG, Some("empty"), "w.toml").unwrap_err();
        assert!(empty.message.starts_with("no data shards in [env.empty] of w.toml"), "{}", empty.message);
    }

    #[test]
    fn the_repository_config_names_two_local_shards_and_one_deployed() {
        let text = include_str!("../../wrangler.toml");
        assert_eq!(names(&parse_config(text, None, "wrangler.toml").unwrap()), ["DATA_1", "DATA_2"]);
        for env in ["staging", "production"] {
            assert_eq!(names(&parse_config(text, Some(env), "wrangler.toml").unwrap()), ["DATA_1"], "{env}");
        }
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        let bad_name = "[[d1_databases]]\nbinding = \"DATA_x\"\n";
        assert!(parse_config(bad_name, None, "w").unwrap_err().message.contains("\"DATA_x\""));
        let twice = "[[d1_databases]]\nbinding = \"DATA_1\"\n[[d1_databases]]\nbinding = \"DATA_1\"\n";
        assert!(parse_config(twice, None, "w").unwrap_err().message.contains("twice"));
        assert!(parse_config("[[d1_databases]]\nbinding = \"DB\"\n", None, "w").is_err());
        assert!(parse_config("{\"d1_databases\": []}", None, "w.json")
            .unwrap_err()
            .message
            .contains("not a wrangler TOML"));
        assert!(parse_config("", None, "w").is_err());
    }

    fn directory() -> Directory {
        let out = r#"[{"results":[{"name":"DATA_2","state":"closed"},{"name":"DATA_1","state":"open"}],"success":true},
            {"results":[{"shard":"DATA_1","orgs":5},{"shard":"DATA_2","orgs":1},{"shard":"DATA_9","orgs":2}],"success":true}]"#;
        Directory::from_output(out).unwrap()
    }

    fn configured_shards(list: &[&str]) -> Vec<Shard> {
        list.iter().map(|s| Shard { id: id(s), database: Some(format!("db-{s}")) }).collect()
    }

    #[test]
    fn placement_inputs_come_from_the_directory() {
        let dir = directory();
        let shards = configured_shards(&["DATA_1", "DATA_2", "DATA_3"]);
        let loads = loads(&shards, &dir);
        let seen: Vec<(&str, bool, u64)> = loads.iter().map(|l| (l.shard.as_str(), l.open, l.orgs)).collect();
        assert_eq!(seen, [("DATA_1", true, 5), ("DATA_2", false, 1), ("DATA_3", true, 0)]);
        assert_eq!(choose(&shards, &dir).unwrap().as_str(), "DATA_3");
        assert_eq!(choose(&shards[..2], &dir).unwrap().as_str(), "DATA_1", "the closed one is skipped");
    }

    #[test]
    fn an_explicit_shard_must_be_configured_and_is_checked_open_where_it_is_written() {
        let shards = configured_shards(&["DATA_1", "DATA_2"]);
        assert_eq!(requested(&shards, &id("DATA_2")).unwrap().id.as_str(), "DATA_2");
        let unknown = requested(&shards, &id("DATA_9")).unwrap_err();
        assert_eq!(unknown.code, "NOT_FOUND");
        assert!(unknown.message.contains("(shards: DATA_1, DATA_2)"), "{}", unknown.message);
        assert_eq!(
            closed_guard(&id("DATA_2")),
            "CASE WHEN EXISTS (SELECT 1 FROM shards WHERE name = 'DATA_2' AND state = 'closed') THEN NULL ELSE 'DATA_2' END"
        );
        assert!(is_closed_refusal(
            "wrangler d1 execute failed: NOT NULL constraint failed: orgs.shard: SQLITE_CONSTRAINT"
        ));
        assert!(!is_closed_refusal("NOT NULL constraint failed: orgs.name"));
        let refused = closed(&id("DATA_2"));
        assert_eq!(refused.code, "CONFLICT");
        assert!(refused.message.contains("shard DATA_2 is closed"), "{}", refused.message);
        let all_closed = choose(&shards[1..], &directory()).unwrap_err();
        assert_eq!(all_closed.code, "CONFLICT");
    }

    #[test]
    fn listings_show_configured_shards_then_others_the_directory_names() {
        let v = listing(&configured_shards(&["DATA_1", "DATA_2", "DATA_3"]), &directory());
        assert_eq!(
            v,
            json!({"shards": [
                {"name": "DATA_1", "database": "db-DATA_1", "state": "open", "orgs": 5},
                {"name": "DATA_2", "database": "db-DATA_2", "state": "closed", "orgs": 1},
                {"name": "DATA_3", "database": "db-DATA_3", "state": "open", "orgs": 0},
                {"name": "DATA_9", "database": null, "state": "open", "orgs": 2},
            ]})
        );
    }

    #[test]
    fn a_state_is_stored_and_audited_only_when_it_changes() {
        let sql = set_state_sql(&id("DATA_2"), "closed", 42);
        let statements: Vec<&str> = sql.split("; ").collect();
        assert_eq!(statements.len(), 4, "{sql}");
        assert!(statements[0].starts_with("INSERT INTO shards (name, state, updated_at) SELECT 'DATA_2', 'closed', 42"));
        assert!(
            statements[0].contains("COALESCE((SELECT state FROM shards WHERE name = 'DATA_2'), 'open') <> 'closed'")
        );
        assert!(statements[0].contains("ON CONFLICT (name) DO UPDATE"));
        assert!(
            statements[1].starts_with("INSERT INTO audit_log")
                && statements[1].contains("SELECT NULL, 42, 'shard.state_set'")
        );
        assert!(
            statements[1].contains(r#"'{"actor":"operator","shard":"DATA_2","state":"closed"}'"#),
            "{}",
            statements[1]
        );
        assert!(statements[1].ends_with("AND state = 'closed' AND updated_at = 42)"));
        assert!(statements[3].starts_with("SELECT COUNT(*) AS orgs FROM orgs WHERE shard = 'DATA_2'"));
    }

    #[test]
    fn stored_shard_names_are_checked() {
        let org = OrgId::generate(1, &[1; interlog_core::ids::ID_ENTROPY_BYTES]);
        assert_eq!(stored(&org, Some("DATA_1")).unwrap().as_str(), "DATA_1");
        assert_eq!(stored(&org, Some("DATA_1; --")).unwrap_err().code, "INTERNAL");
        assert!(stored(&org, None).is_err());
    }
}
