//! Test-only fault injection. A request asks for a D1 failure with the
//! `x-interlog-fault: d1` header; it is honoured only when the `TEST_FAULTS`
//! var is `enabled` (set by the test command with `wrangler dev --var`, never
//! in wrangler.toml) AND the request was addressed to a loopback host, which
//! no request reaching a deployed Worker through Cloudflare's edge can be.

use interlog_core::config::Config;
use worker::Request;

/// Whether this request should have its D1 writes fail.
pub fn requested(req: &Request, cfg: &Config) -> bool {
    if !cfg.test_faults {
        return false;
    }
    let loopback = req
        .url()
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .is_some_and(|h| h == "127.0.0.1" || h == "localhost" || h == "[::1]");
    let asked = req.headers().get("x-interlog-fault").ok().flatten().is_some_and(|v| v == "d1");
    loopback && asked
}
