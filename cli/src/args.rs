//! The command line, as clap types: global options (where D1 is, `--json`)
//! and one subcommand each. Values are checked by core's rules in the
//! commands, so a bad value is the same error through any subcommand.

use clap::{ArgGroup, Args, Parser, Subcommand};
use interlog_core::shard::ShardId;

/// Shown after every `--help`: exit codes and environment.
const AFTER_HELP: &str = "\
Exit codes:
  0  done (one JSON line on stdout)
  1  failure: the command ran and could not do it (bad value, no such org,
     key or shard, a closed shard, D1 or the Worker refused); message on stderr
  2  usage: unknown subcommand or flag, missing or malformed argument; usage on stderr

With --json, a failure is one JSON line on stderr:
  {\"error\":{\"code\":\"…\",\"message\":\"…\"}}

Databases: the directory is --database (default DB); the data shards are the
D1 bindings starting with DATA_ in the wrangler config (--config, default
./wrangler.toml; with --env NAME those of [env.NAME]).

Environment:
  INTERLOG_PEPPER          the pepper stored in the Secrets Store (create-org,
                           create-key, revoke-key, move-org)
  INTERLOG_PEPPER_VERSION  its version (default 1)
  INTERLOG_URL             the Worker's URL for revoke-key and move-org (or --url)
  INTERLOG_WRANGLER        wrangler command (default node_modules/.bin/wrangler,
                           else npx wrangler)
  INTERLOG_NODE            node command for the Worker calls (default node)";

/// Shown after `move-org --help`: how it runs and ends.
const MOVE_AFTER_HELP: &str = "\
Calls POST /v1/operator/move on the Worker (signed with INTERLOG_PEPPER) until
the move is done: one progress line per call on stderr, then the final report
(the \"move\" object) as one JSON line on stdout. The Worker pauses the org's
writes (only that org's) while it copies and verifies, then switches the
directory and deletes the old rows. Calls are paced to stay under the Worker's
per-address rate limit (a burst of 10, then 45 a minute). Busy answers (429,
503) and an unreachable Worker are retried every second, up to 30 times in a
row. Interrupted, it resumes when run again (the copy starts over);
--rollback undoes a move that has not switched yet.

Exit codes:
  0  done (the report on stdout)
  1  failure: the Worker refused (its error code and message: UNAUTHORIZED for
     a wrong pepper, NOT_FOUND for an unknown org, VALIDATION_FAILED for a shard
     the Worker does not have, CONFLICT for a rollback after the switch or
     another move in progress), kept busy or unreachable, or the move restarted
     too often; message on stderr
  2  usage: unknown flag, missing or malformed argument (no --url and no
     INTERLOG_URL); usage on stderr

With --json, a failure is one JSON line on stderr, and so is each progress line:
  {\"progress\":{…the report…}}

Environment:
  INTERLOG_PEPPER          the Worker's pepper (signs each call)
  INTERLOG_PEPPER_VERSION  its version (default 1)
  INTERLOG_URL             the Worker's URL (or --url)
  INTERLOG_NODE            node command for the calls (default node)";

/// A data shard's name on the command line: `DATA_` then A-Z, 0-9, _.
fn shard_arg(s: &str) -> Result<ShardId, String> {
    ShardId::parse(s).ok_or_else(|| format!("a shard is a D1 binding named DATA_ then A-Z, 0-9 or _, got {s:?}"))
}

/// interlog operator command: creates orgs and keys, sets quotas, lists and
/// revokes keys, opens and closes data shards and moves orgs between them, by
/// writing D1 through `wrangler d1 execute`, locally (default) or on the
/// deployed databases (--remote). Every change is written together with its
/// audit_log row (actor "operator"). Prints exactly one JSON line.
#[derive(Debug, Parser)]
#[command(name = "interlog-admin", version, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Where D1 is and how to report; accepted before or after the subcommand.
#[derive(Debug, Clone, Default, Args)]
pub struct Global {
    /// The local D1 of `wrangler dev` (the default)
    #[arg(long, global = true, conflicts_with = "remote")]
    pub local: bool,
    /// State folder of the local D1 (as given to `wrangler dev --persist-to`)
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "remote")]
    pub persist_to: Option<String>,
    /// The deployed D1 (needs a Cloudflare login or API token)
    #[arg(long, global = true)]
    pub remote: bool,
    /// wrangler configuration file (default ./wrangler.toml); its D1 bindings
    /// starting with DATA_ are the data shards
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<String>,
    /// wrangler environment: the D1 bindings of [env.NAME] (passed to wrangler)
    #[arg(long, global = true, value_name = "NAME")]
    pub env: Option<String>,
    /// The directory's D1 binding or database name
    #[arg(long, global = true, value_name = "DB", default_value = "DB")]
    pub database: String,
    /// Failures as one JSON line on stderr: {"error":{"code","message"}}
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an org with its first admin key (the key is shown only here),
    /// on the open shard with the fewest orgs or on --shard
    #[command(after_help = AFTER_HELP)]
    CreateOrg(CreateOrg),
    /// Create another key for an org (the key is shown only here)
    #[command(after_help = AFTER_HELP)]
    CreateKey(CreateKey),
    /// Set an org's storage quota (rows and/or bytes)
    #[command(after_help = AFTER_HELP)]
    SetQuota(SetQuota),
    /// List orgs, newest first
    #[command(after_help = AFTER_HELP)]
    ListOrgs(ListOrgs),
    /// Show one org: settings, usage, key counts
    #[command(after_help = AFTER_HELP)]
    ShowOrg(OrgRef),
    /// List an org's keys (prefix, name, scopes, state; never a secret)
    #[command(after_help = AFTER_HELP)]
    ListKeys(OrgRef),
    /// Revoke a key; the Worker's running actor is told at once (--url)
    #[command(after_help = AFTER_HELP)]
    RevokeKey(RevokeKey),
    /// List the data shards: database, open or closed, orgs placed on each
    #[command(after_help = AFTER_HELP)]
    ListShards,
    /// Open a data shard to new orgs or close it (its orgs stay)
    #[command(after_help = AFTER_HELP)]
    SetShard(SetShard),
    /// Move an org to another data shard through the running Worker (or roll
    /// back a move that has not switched yet)
    #[command(after_help = MOVE_AFTER_HELP)]
    MoveOrg(MoveOrg),
}

#[derive(Debug, Args)]
pub struct CreateOrg {
    /// The org's name (1-128 characters, no control characters)
    #[arg(long)]
    pub name: String,
    /// Place the org on this data shard (it must be open) instead of the
    /// open shard with the fewest orgs
    #[arg(long, value_name = "NAME", value_parser = shard_arg)]
    pub shard: Option<ShardId>,
}

#[derive(Debug, Args)]
pub struct CreateKey {
    /// The org's id (org_…)
    #[arg(long)]
    pub org: String,
    /// The key's name
    #[arg(long, default_value = "operator key")]
    pub name: String,
    /// Comma-separated scopes: ingest, read, admin (default: all three)
    #[arg(long, value_name = "LIST")]
    pub scopes: Option<String>,
    /// When the key stops working (RFC 3339)
    #[arg(long, value_name = "RFC3339")]
    pub expires_at: Option<String>,
}

#[derive(Debug, Args)]
pub struct SetQuota {
    /// The org's id (org_…)
    #[arg(long)]
    pub org: String,
    /// Stored interactions allowed: a whole number, or `default`
    #[arg(long, value_name = "N|default", required_unless_present = "bytes")]
    pub rows: Option<String>,
    /// Stored bytes allowed: a whole number, or `default`
    #[arg(long, value_name = "N|default")]
    pub bytes: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListOrgs {
    /// At most this many orgs (1-1000)
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub limit: u32,
}

#[derive(Debug, Args)]
pub struct OrgRef {
    /// The org's id (org_…)
    #[arg(long)]
    pub org: String,
}

#[derive(Debug, Args)]
pub struct RevokeKey {
    /// The org's id (org_…)
    #[arg(long)]
    pub org: String,
    /// The key's public 8-character prefix
    #[arg(long)]
    pub prefix: String,
    /// The Worker's URL, told of the revocation so its running actor applies
    /// it to the next request (default: $INTERLOG_URL)
    #[arg(long, env = "INTERLOG_URL", hide_env_values = true, value_name = "URL")]
    pub url: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("state").required(true).args(["open", "closed"])))]
pub struct SetShard {
    /// The shard (a DATA_… binding of the wrangler config)
    #[arg(value_name = "NAME", value_parser = shard_arg)]
    pub name: ShardId,
    /// New orgs may be placed on it
    #[arg(long)]
    pub open: bool,
    /// No new orgs are placed on it (its orgs stay and keep working)
    #[arg(long)]
    pub closed: bool,
}

#[derive(Debug, Args)]
pub struct MoveOrg {
    /// The org's id (org_…)
    #[arg(long)]
    pub org: String,
    /// The shard to move it to (for --rollback: the shard of the move to undo)
    #[arg(long, value_name = "SHARD", value_parser = shard_arg)]
    pub to: ShardId,
    /// Undo the move to --to instead (only before the switch)
    #[arg(long)]
    pub rollback: bool,
    /// The Worker's URL (default: $INTERLOG_URL)
    #[arg(long, env = "INTERLOG_URL", hide_env_values = true, value_name = "URL")]
    pub url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    const SUBCOMMANDS: [&str; 10] = [
        "create-org",
        "create-key",
        "set-quota",
        "list-orgs",
        "show-org",
        "list-keys",
        "revoke-key",
        "list-shards",
        "set-shard",
        "move-org",
    ];

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("interlog-admin").chain(args.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_renders_for_the_command_and_every_subcommand() {
        let top = parse(&["--help"]).unwrap_err();
        assert_eq!(top.kind(), ErrorKind::DisplayHelp);
        let text = top.to_string();
        for sub in SUBCOMMANDS {
            assert!(text.contains(sub), "{sub} missing from --help");
        }
        assert!(text.contains("Exit codes:") && text.contains("2  usage"));
        for sub in SUBCOMMANDS {
            let e = parse(&[sub, "--help"]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{sub}");
            assert!(e.to_string().contains("--json"), "{sub}: global flags listed");
            assert!(e.to_string().contains("Exit codes:"), "{sub}: exit codes listed");
        }
        assert_eq!(Cli::command().get_subcommands().count(), SUBCOMMANDS.len());
    }

    #[test]
    fn unknown_flags_and_missing_values_are_usage_errors() {
        let e = parse(&["create-org", "--name", "A", "--bogus"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        assert_eq!(e.exit_code(), 2);
        assert_eq!(parse(&["create-org"]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(parse(&["frobnicate"]).unwrap_err().kind(), ErrorKind::InvalidSubcommand);
        assert_eq!(parse(&[]).unwrap_err().exit_code(), 2);
        assert_eq!(parse(&["set-quota", "--org", "org_x"]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(parse(&["list-orgs", "--limit", "0"]).unwrap_err().kind(), ErrorKind::ValueValidation);
        let both = parse(&["list-orgs", "--remote", "--persist-to", "x"]).unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
    }

    #[test]
    fn shard_commands_refuse_bad_usage() {
        let e = parse(&["create-org", "--name", "A", "--shard", "data_1"]).unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::ValueValidation, 2));
        assert_eq!(
            parse(&["create-org", "--name", "A", "--shard", "DB"]).unwrap_err().kind(),
            ErrorKind::ValueValidation
        );
        assert_eq!(parse(&["set-shard", "DATA_1"]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(parse(&["set-shard", "--closed"]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        let both = parse(&["set-shard", "DATA_1", "--open", "--closed"]).unwrap_err();
        assert_eq!(both.kind(), ErrorKind::ArgumentConflict);
        assert_eq!(parse(&["set-shard", "X_1", "--open"]).unwrap_err().kind(), ErrorKind::ValueValidation);
        assert_eq!(parse(&["list-shards", "extra"]).unwrap_err().exit_code(), 2);
        let no_to = parse(&["move-org", "--org", "org_1", "--url", "http://x"]).unwrap_err();
        assert_eq!(no_to.kind(), ErrorKind::MissingRequiredArgument);
        let bad_to = parse(&["move-org", "--org", "org_1", "--to", "DATA-2", "--url", "http://x"]).unwrap_err();
        assert_eq!(bad_to.kind(), ErrorKind::ValueValidation);
    }

    #[test]
    fn shard_commands_parse() {
        let cli = parse(&["create-org", "--name", "A", "--shard", "DATA_2", "--env", "staging"]).unwrap();
        assert!(
            matches!(&cli.command, Command::CreateOrg(c) if c.shard.as_ref().map(ShardId::as_str) == Some("DATA_2"))
        );
        assert_eq!(cli.global.env.as_deref(), Some("staging"));
        let cli = parse(&["set-shard", "DATA_1", "--closed"]).unwrap();
        assert!(matches!(&cli.command, Command::SetShard(s) if s.closed && !s.open && s.name.as_str() == "DATA_1"));
        assert!(matches!(parse(&["list-shards", "--json"]).unwrap().command, Command::ListShards));
        let cli = parse(&["move-org", "--org", "org_1", "--to", "DATA_2", "--rollback", "--url", "http://127.0.0.1:1"])
            .unwrap();
        assert!(matches!(&cli.command, Command::MoveOrg(m) if m.rollback && m.to.as_str() == "DATA_2"
            && m.url.as_deref() == Some("http://127.0.0.1:1")));
    }

    #[test]
    fn existing_invocations_still_parse() {
        let cli = parse(&["create-org", "--name", "Acme", "--persist-to", "/tmp/p"]).unwrap();
        assert!(matches!(&cli.command, Command::CreateOrg(c) if c.name == "Acme"));
        assert_eq!(cli.global.persist_to.as_deref(), Some("/tmp/p"));
        let cli =
            parse(&["--remote", "--config", "w.toml", "create-key", "--org", "org_1", "--scopes", "read"]).unwrap();
        assert!(cli.global.remote);
        assert!(matches!(&cli.command, Command::CreateKey(k) if k.scopes.as_deref() == Some("read")));
        let cli = parse(&["set-quota", "--org", "org_1", "--bytes", "default", "--json"]).unwrap();
        assert!(cli.global.json);
        assert!(
            matches!(&cli.command, Command::SetQuota(q) if q.rows.is_none() && q.bytes.as_deref() == Some("default"))
        );
        let cli = parse(&["revoke-key", "--org", "org_1", "--prefix", "ABCDEFGH", "--url", "http://x"]).unwrap();
        assert!(matches!(&cli.command, Command::RevokeKey(r) if r.url.as_deref() == Some("http://x")));
    }
}
