//! `interlog-load`: measures a running interlog system (normally the local
//! `wrangler dev` started by `scripts/bench.sh`).
//!
//! - `timing`: sequential auth-failure and rate-limited requests, round-robin
//!   over the outcomes; p50/p90/p99/max per outcome, two-sample KS for every
//!   pair, overruns of the 80 ms floor.
//! - `load`: mixed traffic from many orgs and keys for a fixed time; retries
//!   ingests with the same idempotency keys; verifies stored = acknowledged.
//!   With `--restart-at` it also probes L2 budgets and alarms across a server
//!   restart done by the calling script.
//!
//! Every request carries its own `CF-Connecting-IP` so L1 (60/min/IP) never
//! couples requests, except where the rate-limited outcome needs it to.

mod load;
mod stats;
mod timing;

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

const USAGE: &str = "\
usage:
  interlog-load timing --url URL --admin-key KEY --revoked-key KEY --expired-key KEY
                       [--samples 300] [--path /v1/org] [--floor-ms 80] [--over-ms 90]
  interlog-load load --url URL --orgs-file FILE [--duration 300] [--concurrency 12]
                     [--keys-per-org 3] [--batch-size 10] [--timeout-ms 10000]
                     [--restart-at SECONDS --ready-file FILE]
orgs-file: JSON lines of the operator command, {\"org_id\":…,\"key\":…} (admin keys);
with --restart-at the last org is kept quiet (alarm probe).";

/// Parsed `--name value` pairs.
pub struct Args(HashMap<String, String>);

impl Args {
    fn parse(raw: &[String]) -> Result<Self, String> {
        let mut map = HashMap::new();
        let mut it = raw.iter();
        while let Some(name) = it.next() {
            let name = name.strip_prefix("--").ok_or_else(|| format!("unexpected argument {name}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            map.insert(name.to_string(), value.clone());
        }
        Ok(Self(map))
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

static IP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh client address per call (10.0.0.0/8, then wraps): L1 is per IP.
pub fn next_ip() -> String {
    let c = IP_COUNTER.fetch_add(1, Ordering::Relaxed) % ((1 << 24) - 2) + 1;
    format!("10.{}.{}.{}", (c >> 16) & 255, (c >> 8) & 255, c & 255)
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = argv.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let args = match Args::parse(rest) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cmd.as_str() {
        "timing" => rt.block_on(timing::run(&args)),
        "load" => rt.block_on(load::run(&args)),
        _ => Err(format!("unknown command {cmd}\n{USAGE}")),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("FAILED: a goal or check above was not met");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
