//! `interlog-admin`: the operator command. Creates orgs and keys, sets
//! quotas, lists orgs and keys and revokes keys, by writing D1 through
//! `wrangler d1 execute`, locally or (`--remote`) on a deployed database;
//! every change is written with its audit row (actor `operator`), and a
//! revocation is pushed to the running Worker (`reconcile`). Prints exactly
//! one JSON line; a plaintext key is shown only there.
//!
//! Exit codes: 0 done, 1 failure, 2 usage (see `--help`).

mod args;
mod audit;
mod d1;
mod fail;
mod keys;
mod material;
mod orgs;
mod reconcile;

use args::{Cli, Command};
use clap::error::ErrorKind;
use clap::Parser;
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

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let cli = match Cli::try_parse_from(&argv) {
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
