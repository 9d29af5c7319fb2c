//! The command line, as clap types: one subcommand per mode, each with its
//! own `--help`. The modes read their options by name through [`Args`] (what
//! was given on the command line; defaults are the modes' own).

use clap::{Parser, Subcommand};
use std::collections::HashMap;

/// interlog load and timing tool: measures a running interlog system
/// (normally the local `wrangler dev` started by scripts/bench.sh).
#[derive(Debug, Parser)]
#[command(
    name = "interlog-load",
    version,
    after_help = "Exit codes: 0 every goal met, 1 a goal or check missed (or an error), 2 usage."
)]
pub struct Cli {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// Sequential auth-failure and rate-limited requests, round-robin over the
    /// outcomes: p50/p90/p99/max per outcome, two-sample KS for every pair,
    /// overruns of the 80 ms floor
    Timing(Timing),
    /// Mixed traffic from many orgs and keys for a fixed time; retries ingests
    /// with the same idempotency keys; verifies stored = acknowledged
    Load(Load),
}

#[derive(Debug, clap::Args)]
pub struct Timing {
    /// The system's base URL
    #[arg(long)]
    pub url: String,
    /// A live admin key (it also revokes --revoked-key)
    #[arg(long)]
    pub admin_key: String,
    /// A key of the same org to revoke and then present
    #[arg(long)]
    pub revoked_key: String,
    /// An expired key of the same org
    #[arg(long)]
    pub expired_key: String,
    /// Requests per outcome [default: 300]
    #[arg(long)]
    pub samples: Option<usize>,
    /// The path every request asks for [default: /v1/org]
    #[arg(long)]
    pub path: Option<String>,
    /// The floor the answers must not beat, in ms [default: 80]
    #[arg(long)]
    pub floor_ms: Option<f64>,
    /// An answer slower than this (ms) is an overrun [default: floor + 10]
    #[arg(long)]
    pub over_ms: Option<f64>,
}

#[derive(Debug, clap::Args)]
#[command(after_help = "orgs-file: JSON lines of the operator command, {\"org_id\":…,\"key\":…} (admin keys); \
with --restart-at the last org is kept quiet (alarm probe).")]
pub struct Load {
    /// The system's base URL
    #[arg(long)]
    pub url: String,
    /// JSON lines of `interlog-admin create-org` output, one org each
    #[arg(long, value_name = "FILE")]
    pub orgs_file: String,
    /// Seconds of traffic [default: 300]
    #[arg(long)]
    pub duration: Option<u64>,
    /// Requests in flight [default: 12]
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// Keys made per org [default: 3]
    #[arg(long)]
    pub keys_per_org: Option<usize>,
    /// Interactions per batch request [default: 10]
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Per-request timeout in ms [default: 10000]
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// When the calling script restarts the server (seconds after start)
    #[arg(long, value_name = "SECONDS", requires = "ready_file")]
    pub restart_at: Option<u64>,
    /// Written once the load runs (the calling script waits for it)
    #[arg(long, value_name = "FILE")]
    pub ready_file: Option<String>,
}

/// The options given, by their flag name without `--`.
#[derive(Debug)]
pub struct Args(HashMap<&'static str, String>);

impl Args {
    fn of(pairs: Vec<(&'static str, Option<String>)>) -> Self {
        Self(pairs.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))).collect())
    }

    /// A required string.
    pub fn req(&self, name: &str) -> Result<String, String> {
        self.0.get(name).cloned().ok_or_else(|| format!("--{name} is required"))
    }

    /// An optional string.
    pub fn opt(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }

    /// A number with a default.
    pub fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
        match self.0.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| format!("--{name} must be a number")),
        }
    }
}

fn text<T: ToString>(v: Option<T>) -> Option<String> {
    v.map(|v| v.to_string())
}

impl From<Timing> for Args {
    fn from(t: Timing) -> Self {
        Args::of(vec![
            ("url", Some(t.url)),
            ("admin-key", Some(t.admin_key)),
            ("revoked-key", Some(t.revoked_key)),
            ("expired-key", Some(t.expired_key)),
            ("samples", text(t.samples)),
            ("path", t.path),
            ("floor-ms", text(t.floor_ms)),
            ("over-ms", text(t.over_ms)),
        ])
    }
}

impl From<Load> for Args {
    fn from(l: Load) -> Self {
        Args::of(vec![
            ("url", Some(l.url)),
            ("orgs-file", Some(l.orgs_file)),
            ("duration", text(l.duration)),
            ("concurrency", text(l.concurrency)),
            ("keys-per-org", text(l.keys_per_org)),
            ("batch-size", text(l.batch_size)),
            ("timeout-ms", text(l.timeout_ms)),
            ("restart-at", text(l.restart_at)),
            ("ready-file", l.ready_file),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::CommandFactory;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("interlog-load").chain(args.iter().copied()))
    }

    #[test]
    fn the_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn help_renders_for_every_mode() {
        assert_eq!(parse(&["--help"]).unwrap_err().kind(), ErrorKind::DisplayHelp);
        for mode in ["timing", "load"] {
            let e = parse(&[mode, "--help"]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{mode}");
            assert!(e.to_string().contains("--url"), "{mode}");
        }
    }

    #[test]
    fn unknown_flags_and_bad_numbers_are_usage_errors() {
        let e = parse(&["load", "--url", "u", "--orgs-file", "f", "--bogus", "1"]).unwrap_err();
        assert_eq!((e.kind(), e.exit_code()), (ErrorKind::UnknownArgument, 2));
        let e = parse(&["load", "--url", "u", "--orgs-file", "f", "--duration", "soon"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert_eq!(parse(&["timing", "--url", "u"]).unwrap_err().kind(), ErrorKind::MissingRequiredArgument);
        assert_eq!(parse(&["sprint"]).unwrap_err().kind(), ErrorKind::InvalidSubcommand);
        let e = parse(&["load", "--url", "u", "--orgs-file", "f", "--restart-at", "80"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MissingRequiredArgument, "--restart-at needs --ready-file");
    }

    #[test]
    fn the_bench_script_invocations_parse_into_the_modes_options() {
        let cli = parse(&[
            "timing",
            "--url",
            "http://x",
            "--admin-key",
            "a",
            "--samples",
            "300",
            "--revoked-key",
            "r",
            "--expired-key",
            "e",
        ])
        .unwrap();
        let Mode::Timing(t) = cli.mode else { panic!("timing") };
        let args = Args::from(t);
        assert_eq!(args.num("samples", 0usize), Ok(300));
        assert_eq!(args.req("expired-key"), Ok("e".into()));
        assert_eq!(args.num("floor-ms", 80.0), Ok(80.0), "default left to the mode");
        assert_eq!(args.opt("over-ms"), None);
        let cli = parse(&[
            "load",
            "--url",
            "http://x",
            "--orgs-file",
            "o.jsonl",
            "--duration",
            "180",
            "--concurrency",
            "8",
            "--restart-at",
            "80",
            "--ready-file",
            "ready",
        ])
        .unwrap();
        let Mode::Load(l) = cli.mode else { panic!("load") };
        let args = Args::from(l);
        assert_eq!(args.num("duration", 0u64), Ok(180));
        assert_eq!(args.opt("restart-at").as_deref(), Some("80"));
        assert_eq!(args.opt("ready-file").as_deref(), Some("ready"));
        assert_eq!(args.num("keys-per-org", 3usize), Ok(3));
    }
}
