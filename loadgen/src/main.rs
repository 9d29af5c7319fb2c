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

mod args;
mod load;
mod stats;
mod timing;

use args::{Args, Cli, Mode};
use clap::Parser;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};

static IP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh client address per call (10.0.0.0/8, then wraps): L1 is per IP.
pub fn next_ip() -> String {
    let c = IP_COUNTER.fetch_add(1, Ordering::Relaxed) % ((1 << 24) - 2) + 1;
    format!("10.{}.{}.{}", (c >> 16) & 255, (c >> 8) & 255, c & 255)
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version on stdout (exit 0), usage errors on stderr (exit 2).
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.mode {
        Mode::Timing(t) => rt.block_on(timing::run(&Args::from(t))),
        Mode::Load(l) => rt.block_on(load::run(&Args::from(l))),
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
