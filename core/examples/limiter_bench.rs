//! Native benchmark of the L2 limiter (`interlog_core::ratelimit`).
//!
//! `cargo run --release -p interlog-core --example limiter_bench`
//!
//! Prints decisions per second for one hot key (mostly denied, and all
//! admitted), for traffic spread over 10,000 keys, the cost of a snapshot and
//! a restore of those keys, and the memory per key. Simulated time advances
//! with the loop, so windows slide and buckets are recycled as in production.
//! The release profile is the Worker's (`opt-level = "z"`), so these are not
//! best-case native figures; they compare designs on one machine.

// Timing the limiter is this benchmark's purpose; core/clippy.toml bans clock
// reads for the rules, which take `now` as input.
#![allow(clippy::disallowed_methods)]

use interlog_core::ratelimit::{RateLimiter, L2_LIMIT, L2_PERIOD_MS};
use interlog_core::KeyPrefix;
use std::hint::black_box;
use std::time::Instant;

const START_MS: i64 = 1_700_000_000_000;
const SPREAD_KEYS: usize = 10_000;

/// `n` distinct prefixes (Crockford symbols of the index).
fn prefixes(n: usize) -> Vec<KeyPrefix> {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    (0..n)
        .map(|i| {
            let text: String = (0..8).map(|d| ALPHABET[(i >> (5 * (7 - d))) & 31] as char).collect();
            KeyPrefix::parse(&text).expect("alphabet symbols")
        })
        .collect()
}

/// Runs `n` checks, `per_ms` of them per simulated millisecond, cycling over
/// `keys`; prints the rate and returns the admitted count.
fn run(label: &str, rl: &mut RateLimiter<KeyPrefix>, keys: &[KeyPrefix], n: usize, per_ms: usize) -> usize {
    let mut admitted = 0usize;
    let started = Instant::now();
    for i in 0..n {
        let now = START_MS + (i / per_ms) as i64;
        let d = rl.check(black_box(&keys[i % keys.len()]), now);
        admitted += usize::from(black_box(d).allowed);
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{label:<44} {:>6.1} M decisions/s  ({n} checks over {} simulated s, {admitted} admitted)",
        n as f64 / secs / 1e6,
        n / per_ms / 1000,
    );
    admitted
}

fn main() {
    let n = 6_000_000;
    println!("L2 limiter: {L2_LIMIT} requests / {L2_PERIOD_MS} ms per key");

    let hot = prefixes(1);
    let mut rl = RateLimiter::<KeyPrefix>::default();
    let admitted = run("hot key, L2 limit (almost all denied)", &mut rl, &hot, n, 50);
    assert!(admitted <= L2_LIMIT as usize * 3, "{admitted}");

    let mut rl = RateLimiter::<KeyPrefix>::new(u32::MAX, L2_PERIOD_MS).expect("valid config");
    run("hot key, unlimited (all admitted)", &mut rl, &hot, n, 50);

    let keys = prefixes(SPREAD_KEYS);
    let mut rl = RateLimiter::<KeyPrefix>::default();
    // 100 checks per ms over 10,000 keys: 600 per key per minute, all admitted.
    let admitted = run("10,000 keys, round robin (all admitted)", &mut rl, &keys, n, 100);
    assert_eq!(admitted, n);

    let now = START_MS + (n / 100) as i64;
    let started = Instant::now();
    let rows = rl.snapshot_dirty(now);
    let snap = started.elapsed();
    let started = Instant::now();
    let mut restored = RateLimiter::<KeyPrefix>::default();
    restored.restore(rows.iter().copied(), now);
    let rest = started.elapsed();
    println!(
        "snapshot_dirty of {} keys: {} rows in {:.2} ms; restore: {:.2} ms",
        rl.len(),
        rows.len(),
        snap.as_secs_f64() * 1e3,
        rest.as_secs_f64() * 1e3
    );

    println!(
        "memory: bytes_per_key() = {} B; table now {} B for {} keys = {} B/key",
        RateLimiter::<KeyPrefix>::bytes_per_key(),
        rl.approx_table_bytes(),
        rl.len(),
        rl.approx_table_bytes() / rl.len().max(1)
    );
}
