//! Test-only fault injection. A request asks for a fault with the
//! `x-interlog-fault` header; it is honoured only when the `TEST_FAULTS` var is
//! `enabled` (set by the test command with `wrangler dev --var`, never in
//! wrangler.toml) AND the request was addressed to a loopback host, which no
//! request reaching a deployed Worker through Cloudflare's edge can be.
//!
//! - `d1`: the call's D1 writes fail (after the real statements ran).
//! - `wrong-org`: the call goes to the actor of the org named in
//!   `x-interlog-fault-org` while it still names the caller's org, as a
//!   routing bug would; that actor must refuse it.
//! - `shard`: the data shard named in `x-interlog-fault-shard` is down for
//!   this request: an org on it is answered 503, an org elsewhere is not.

use interlog_core::config::Config;
use interlog_core::shard::ShardId;
use interlog_core::OrgId;
use worker::Request;

const FAULT_HEADER: &str = "x-interlog-fault";
const FAULT_ORG_HEADER: &str = "x-interlog-fault-org";
const FAULT_SHARD_HEADER: &str = "x-interlog-fault-shard";

/// The faults one request asked for (none unless honoured).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Fail the call's D1 writes.
    pub d1: bool,
    /// Address this org's actor instead of the caller's.
    pub actor_of: Option<OrgId>,
    /// Treat this data shard as down.
    pub shard_down: Option<ShardId>,
}

/// The faults this request should suffer.
pub fn requested(req: &Request, cfg: &Config) -> Faults {
    if !cfg.test_faults || !loopback(req) {
        return Faults::default();
    }
    let header = |name: &str| req.headers().get(name).ok().flatten();
    match header(FAULT_HEADER).as_deref() {
        Some("d1") => Faults { d1: true, ..Faults::default() },
        Some("wrong-org") => {
            Faults { actor_of: header(FAULT_ORG_HEADER).as_deref().and_then(OrgId::parse), ..Faults::default() }
        }
        Some("shard") => {
            Faults { shard_down: header(FAULT_SHARD_HEADER).as_deref().and_then(ShardId::parse), ..Faults::default() }
        }
        _ => Faults::default(),
    }
}

fn loopback(req: &Request) -> bool {
    req.url()
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]")
}
