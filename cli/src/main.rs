//! `interlog-admin`: the operator command. Creates orgs and keys, sets
//! quotas, lists orgs and keys and revokes keys, by writing D1 through
//! `wrangler d1 execute`, locally or (`--remote`) on the deployed databases:
//! the directory (orgs, their shard, keys) and the data shards (each org's
//! own rows). Every change is written with its audit row (actor `operator`),
//! and a revocation is pushed to the running Worker (`reconcile`). Opens and
//! closes shards to new orgs (`shards`) and drives the Worker's move of an
//! org between shards (`moves`). Prints exactly one JSON line; a plaintext
//! key is shown only there.
//!
//! Exit codes: 0 done, 1 failure, 2 usage (see `--help`).

mod args;
mod audit;
mod d1;
mod fail;
mod keys;
mod material;
mod moves;
mod orgs;
mod reconcile;
mod shards;
mod signed;

use args::{Cli, Command};
use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use fail::{error_line, Failure};
use std::process::ExitCode;

fn run(cli: &Cli) -> Result<serde_json::Value, Failure> {
    let g = &cli.global;
    match &cli.command {
        Command::CreateOrg(a) => orgs::create(g, a),
        Command::CreateKey(a) => keys::create(g, a),
        Command::SetQuota(a) => orgs::set_quota(g, a),
        Command::ListOrgs(a) => orgs::list(g, a),
        Command::ShowOrg(a) => orgs::show(g, a),
        Command::ListKeys(a) => keys::list(g, a),
        Command::RevokeKey(a) => keys::revoke(g, a),
        Command::ListShards => shards::list(g),
        Command::SetShard(a) => shards::set(g, a),
        Command::MoveOrg(a) => moves::run(a, g.json),
    }
}

/// A command line clap refused (or `--help` / `--version`): printed as clap
/// renders it, or as one JSON line on stderr when `--json` was asked for.
fn refused(e: &clap::Error, json: bool) -> ExitCode {
    let informational = matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion);
    if json && !informational {
        eprintln!("{}", error_line("USAGE", e.render().to_string().trim_end(), true));
    } else {
        // stdout for --help/--version, stderr for usage errors.
        let _ = e.print();
    }
    ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2))
}

/// What clap cannot check itself: `move-org` needs a URL, and an empty
/// `INTERLOG_URL` is none.
fn checked(cli: Cli) -> Result<Cli, clap::Error> {
    if let Command::MoveOrg(m) = &cli.command {
        if m.url.as_deref().is_none_or(|u| u.trim().is_empty()) {
            let mut top = Cli::command();
            top.build();
            let message = "move-org needs the Worker's URL: --url <URL> or INTERLOG_URL";
            return Err(match top.find_subcommand_mut("move-org") {
                Some(sub) => sub.error(ErrorKind::MissingRequiredArgument, message),
                None => top.error(ErrorKind::MissingRequiredArgument, message),
            });
        }
    }
    Ok(cli)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&argv).and_then(checked) {
        Ok(cli) => cli,
        Err(e) => return refused(&e, argv.iter().skip(1).any(|a| a == "--json")),
    };
    match run(&cli) {
        Ok(v) => {
            println!("{v}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{}", e.line(cli.global.json));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("interlog-admin").chain(args.iter().copied())).and_then(checked)
    }

    #[test]
    fn move_org_without_a_url_is_a_usage_error() {
        for url in ["", "  "] {
            let e = parsed(&["move-org", "--org", "org_1", "--to", "DATA_2", "--url", url]).unwrap_err();
            assert_eq!((e.kind(), e.exit_code()), (ErrorKind::MissingRequiredArgument, 2), "{url:?}");
            assert!(e.render().to_string().contains("Usage: interlog-admin move-org"));
        }
        assert!(parsed(&["move-org", "--org", "org_1", "--to", "DATA_2", "--url", "http://x"]).is_ok());
        assert!(parsed(&["list-shards"]).is_ok(), "other commands need no URL");
    }
}
