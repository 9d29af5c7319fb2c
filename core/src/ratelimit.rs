//! Per-key sliding-window rate limiting (L2). Pure: time is passed in.
//!
//! [`RateLimiter`] admits at most `limit` requests per key in **any** interval
//! of `period_ms` milliseconds. It is a bucketed sliding window: the period is
//! cut into [`BUCKETS_PER_PERIOD`] buckets of `bucket_ms = ceil(period_ms / 60)`
//! aligned on multiples of `bucket_ms`, and a key holds a ring of the counts of
//! its last 61 buckets. A request at `t` is admitted only if the counts of all
//! buckets overlapping `(t - period_ms, t]` (the oldest, partly overlapping one
//! counted whole) sum to less than `limit`; only admitted requests are counted.
//!
//! **Never permissive.** Every earlier admission inside `(t - period_ms, t]`
//! sits in one of the summed buckets, so after an admission at `t` that
//! interval holds at most `limit`. Any interval of length `period_ms` ending at
//! its last admission `t` lies inside `(t - period_ms, t]`; hence no interval
//! of length `period_ms` ever holds more than `limit` admissions.
//!
//! **Conservative by at most one bucket.** The summed buckets only cover
//! `(t - period_ms - bucket_ms + 1, t]`, so a request is denied only if that
//! wider interval already holds `limit` admissions. In particular, traffic in
//! which no interval of length `period_ms + bucket_ms` holds more than `limit`
//! requests is admitted in full.
//!
//! Time never runs backwards for a key: a `now_ms` older than the latest one
//! the key has seen is treated as that latest one. The guarantees above are
//! stated over these effective times, which equal the given ones whenever the
//! caller's clock does not go backwards.
//!
//! Memory is fixed per key ([`RateLimiter::bytes_per_key`]); keys whose period
//! holds no admission are dropped by [`RateLimiter::evict_idle`], which
//! [`RateLimiter::check`] also runs, amortised, whenever the map has doubled.
//!
//! For the adapter's D1 table `rate_limits` each non-empty bucket is one row,
//! [`Checkpoint`]: [`RateLimiter::snapshot_dirty`] returns the buckets changed
//! since the previous snapshot, [`RateLimiter::restore`] adds rows back after a
//! restart. A key's admissions after the last snapshot that reached D1 are
//! lost on a restart, and only they can be handed out again: any period then
//! holds at most `limit + lost` (never more than `2 × limit`). `docs/ratelimit.md`
//! bounds `lost` for the adapter's checkpoint policies.

use std::collections::HashMap;
use std::hash::Hash;
use std::mem::size_of;

/// The L2 budget: requests admitted per key per [`L2_PERIOD_MS`].
pub const L2_LIMIT: u32 = 1000;
/// The L2 period.
pub const L2_PERIOD_MS: i64 = 60_000;
/// Buckets a period is divided into (bucket width `ceil(period_ms / 60)`).
pub const BUCKETS_PER_PERIOD: usize = 60;

/// Ring slots per key: `(t - period, t]` overlaps at most 61 buckets.
const SLOTS: usize = BUCKETS_PER_PERIOD + 1;
/// The map is swept for idle keys once it reaches this many entries, then
/// whenever it has doubled since the last sweep.
const MIN_SWEEP: usize = 64;

/// The answer to one request. A denial is a value, not an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request was (or, from [`RateLimiter::peek`], would be) admitted.
    pub allowed: bool,
    /// The configured limit per period.
    pub limit: u32,
    /// Requests that would still be admitted at this instant, after this one.
    pub remaining: u32,
    /// Milliseconds from `now_ms` until at least one more request would be
    /// admitted (0 when `remaining > 0`).
    pub reset_ms: i64,
}

impl Decision {
    /// `Retry-After` in whole seconds: `reset_ms` rounded up, at least 1 when denied.
    pub fn retry_after_s(&self) -> u64 {
        let s = u64::try_from(self.reset_ms).unwrap_or(0).div_ceil(1000);
        if self.allowed {
            s
        } else {
            s.max(1)
        }
    }
}

/// One bucket of one key, as the adapter stores it in `rate_limits`
/// (`prefix`, `window_start`, `count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Checkpoint<K> {
    /// The limited key (the key prefix).
    pub key: K,
    /// Unix ms at which the bucket starts (a multiple of the bucket width).
    pub window_start: i64,
    /// Requests admitted in the bucket (absolute, not a delta: upsert it).
    pub count: u32,
}

/// Why a limiter could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LimiterConfigError {
    /// `limit` was 0: nothing could ever be admitted.
    #[error("rate limit must admit at least one request per period")]
    ZeroLimit,
    /// `period_ms` was below 1.
    #[error("rate limit period must be at least 1 ms")]
    EmptyPeriod,
}

/// The shape of the window; copied out so it can be used while a key's state
/// is borrowed mutably.
#[derive(Debug, Clone, Copy)]
struct Geometry {
    limit: u32,
    period_ms: i64,
    bucket_ms: i64,
}

impl Geometry {
    /// The bucket holding time `t`.
    fn bucket(&self, t: i64) -> i64 {
        t.div_euclid(self.bucket_ms)
    }

    /// The oldest bucket overlapping `(t - period_ms, t]`.
    fn first(&self, t: i64) -> i64 {
        self.bucket(t.saturating_sub(self.period_ms - 1))
    }

    /// Unix ms at which bucket `b` starts.
    fn start(&self, b: i64) -> i64 {
        b.saturating_mul(self.bucket_ms)
    }

    /// The bucket a stored row belongs to. An aligned `window_start` is its own
    /// bucket; an unaligned one is rounded up (later), which keeps the row in
    /// the window at least as long as the requests it counts.
    fn bucket_of_row(&self, window_start: i64) -> i64 {
        let b = window_start.div_euclid(self.bucket_ms);
        if window_start.rem_euclid(self.bucket_ms) == 0 {
            b
        } else {
            b + 1
        }
    }

    /// Admissions counted against a request at effective time `t`.
    /// The ring's total less its buckets older than the period: O(1) once the
    /// ring has been advanced to `t` and the width divides the period.
    fn used(&self, win: &Window, t: i64) -> u64 {
        let (head, first) = (win.head(self), self.first(t));
        if first > head {
            return 0;
        }
        let oldest = head.saturating_sub(BUCKETS_PER_PERIOD as i64);
        (oldest..first).fold(win.total, |sum, b| sum - u64::from(win.counts[Window::slot(b)]))
    }

    /// The decision for a key whose state (after counting, if it was) is `win`,
    /// with `used` admissions counted against `t`.
    fn decision(&self, win: Option<&Window>, t: i64, now_ms: i64, allowed: bool, used: u64) -> Decision {
        let remaining = u32::try_from(u64::from(self.limit).saturating_sub(used)).unwrap_or(u32::MAX);
        let reset_ms = match win {
            Some(w) if remaining == 0 => self.free_at(w, t, used).saturating_sub(now_ms),
            _ => 0,
        };
        Decision { allowed, limit: self.limit, remaining, reset_ms }
    }

    /// The earliest time after `t` at which, with no further admissions, the
    /// counted sum (`used` at `t`) drops below the limit: the end of the period
    /// starting right after the youngest bucket that must expire.
    fn free_at(&self, win: &Window, t: i64, mut used: u64) -> i64 {
        let mut expiring = win.head(self);
        for (b, c) in win.buckets(self, self.first(t)) {
            used = used.saturating_sub(u64::from(c));
            if used < u64::from(self.limit) {
                expiring = b;
                break;
            }
        }
        // Bucket b stops counting once first(t') > b, i.e. t' - period + 1 >= start(b + 1).
        self.start(expiring.saturating_add(1)).saturating_add(self.period_ms - 1)
    }
}

/// One key's state: a ring of bucket counts ending at the bucket of `last_ms`.
#[derive(Debug, Clone)]
struct Window {
    /// Slot `b mod SLOTS` holds bucket `b`, for `b` in `head - 60 ..= head`.
    counts: [u32; SLOTS],
    /// The latest effective time seen; its bucket is the ring's head.
    last_ms: i64,
    /// Bit `s` set: slot `s` changed since the last snapshot.
    dirty: u64,
    /// Sum of `counts`.
    total: u64,
}

impl Window {
    fn new(t: i64) -> Self {
        Self { counts: [0; SLOTS], last_ms: t, dirty: 0, total: 0 }
    }

    fn slot(b: i64) -> usize {
        // rem_euclid of a positive modulus is in 0..SLOTS.
        usize::try_from(b.rem_euclid(SLOTS as i64)).unwrap_or(0)
    }

    fn head(&self, g: &Geometry) -> i64 {
        g.bucket(self.last_ms)
    }

    /// `(bucket, count)` for the buckets from `from` to the head that the ring
    /// still holds, oldest first. Buckets after the head are empty.
    fn buckets<'a>(&'a self, g: &Geometry, from: i64) -> impl Iterator<Item = (i64, u32)> + 'a {
        let head = self.head(g);
        let lo = from.max(head.saturating_sub(BUCKETS_PER_PERIOD as i64));
        (lo..=head).map(move |b| (b, self.counts[Self::slot(b)]))
    }

    /// Moves the head to the bucket of `t` (if later), emptying the slots of
    /// the buckets that fall off the ring.
    fn advance(&mut self, g: &Geometry, t: i64) {
        if t <= self.last_ms {
            return;
        }
        let steps = g.bucket(t).saturating_sub(self.head(g)).min(SLOTS as i64);
        let mut s = Self::slot(self.head(g));
        for _ in 0..steps {
            s = (s + 1) % SLOTS;
            self.total -= u64::from(self.counts[s]);
            self.counts[s] = 0;
            self.dirty &= !(1u64 << s);
        }
        self.last_ms = t;
    }

    /// Adds `n` to bucket `b`, which must be held by the ring.
    fn add(&mut self, b: i64, n: u32, mark_dirty: bool) {
        let s = Self::slot(b);
        let added = n.min(u32::MAX - self.counts[s]);
        self.counts[s] += added;
        self.total += u64::from(added);
        if mark_dirty {
            self.dirty |= 1u64 << s;
        }
    }
}

/// Per-key sliding-window limiter (see the module docs for the guarantee).
///
/// `K` is the limited key, in interlog the key's [`crate::KeyPrefix`]. The
/// map uses std's SipHash `RandomState`; its keys are authenticated prefixes,
/// so callers cannot choose them to collide.
#[derive(Debug, Clone)]
pub struct RateLimiter<K> {
    geo: Geometry,
    windows: HashMap<K, Window>,
    sweep_at: usize,
    unsaved: u64,
}

impl<K: Eq + Hash + Clone> Default for RateLimiter<K> {
    /// The L2 limiter: [`L2_LIMIT`] per [`L2_PERIOD_MS`].
    fn default() -> Self {
        Self::build(L2_LIMIT, L2_PERIOD_MS)
    }
}

impl<K: Eq + Hash + Clone> RateLimiter<K> {
    /// A limiter admitting `limit` requests per key in any `period_ms` interval.
    pub fn new(limit: u32, period_ms: i64) -> Result<Self, LimiterConfigError> {
        if limit == 0 {
            return Err(LimiterConfigError::ZeroLimit);
        }
        if period_ms < 1 {
            return Err(LimiterConfigError::EmptyPeriod);
        }
        Ok(Self::build(limit, period_ms))
    }

    fn build(limit: u32, period_ms: i64) -> Self {
        let bucket_ms = (period_ms - 1) / BUCKETS_PER_PERIOD as i64 + 1;
        Self { geo: Geometry { limit, period_ms, bucket_ms }, windows: HashMap::new(), sweep_at: MIN_SWEEP, unsaved: 0 }
    }

    /// Decides one request of `key` at `now_ms`, counting it if admitted.
    pub fn check(&mut self, key: &K, now_ms: i64) -> Decision {
        let g = self.geo;
        if let Some(win) = self.windows.get_mut(key) {
            let t = now_ms.max(win.last_ms);
            win.advance(&g, t);
            let used = g.used(win, t);
            let allowed = used < u64::from(g.limit);
            if allowed {
                win.add(g.bucket(t), 1, true);
                self.unsaved += 1;
            }
            return g.decision(Some(win), t, now_ms, allowed, used + u64::from(allowed));
        }
        // An unknown key has nothing counted and the limit is at least 1.
        if self.windows.len() >= self.sweep_at {
            self.evict_idle(now_ms);
        }
        let mut win = Window::new(now_ms);
        win.add(g.bucket(now_ms), 1, true);
        self.unsaved += 1;
        let decision = g.decision(Some(&win), now_ms, now_ms, true, 1);
        self.windows.insert(key.clone(), win);
        decision
    }

    /// What [`check`](Self::check) would answer at `now_ms`, without counting
    /// anything: `remaining` is how many requests would be admitted now.
    pub fn peek(&self, key: &K, now_ms: i64) -> Decision {
        let g = self.geo;
        match self.windows.get(key) {
            Some(win) => {
                let t = now_ms.max(win.last_ms);
                let used = g.used(win, t);
                g.decision(Some(win), t, now_ms, used < u64::from(g.limit), used)
            }
            None => g.decision(None, now_ms, now_ms, true, 0),
        }
    }

    /// Drops every key with no admission inside its period at `now_ms`;
    /// returns how many were dropped. Such a key's next request is decided
    /// exactly as if it were still held.
    pub fn evict_idle(&mut self, now_ms: i64) -> usize {
        let g = self.geo;
        let before = self.windows.len();
        self.windows.retain(|_, w| g.used(w, now_ms.max(w.last_ms)) > 0);
        let after = self.windows.len();
        if self.windows.capacity() > 4 * after.max(MIN_SWEEP) {
            self.windows.shrink_to(2 * after);
        }
        self.sweep_at = (2 * after).max(MIN_SWEEP);
        before - after
    }

    /// The buckets changed since the previous snapshot that still overlap the
    /// period at `now_ms`, with their absolute counts (upsert them on
    /// `(prefix, window_start)`); marks everything clean and resets
    /// [`unsaved_admissions`](Self::unsaved_admissions). Order is unspecified.
    pub fn snapshot_dirty(&mut self, now_ms: i64) -> Vec<Checkpoint<K>> {
        let g = self.geo;
        let mut rows = Vec::new();
        for (key, win) in self.windows.iter_mut() {
            if win.dirty == 0 {
                continue;
            }
            let t = now_ms.max(win.last_ms);
            for (b, count) in win.buckets(&g, g.first(t)) {
                if count > 0 && win.dirty & (1u64 << Window::slot(b)) != 0 {
                    rows.push(Checkpoint { key: key.clone(), window_start: g.start(b), count });
                }
            }
            win.dirty = 0;
        }
        self.unsaved = 0;
        rows
    }

    /// Marks the buckets of `rows` (from a snapshot whose write failed) dirty
    /// again, so the next snapshot re-sends their then-current counts, and adds
    /// their counts to [`unsaved_admissions`](Self::unsaved_admissions).
    pub fn requeue(&mut self, rows: impl IntoIterator<Item = Checkpoint<K>>) {
        let g = self.geo;
        for row in rows {
            let Some(win) = self.windows.get_mut(&row.key) else { continue };
            let b = g.bucket_of_row(row.window_start);
            if win.buckets(&g, b).next().is_some_and(|(held, count)| held == b && count > 0) {
                win.dirty |= 1u64 << Window::slot(b);
            }
            self.unsaved = self.unsaved.saturating_add(u64::from(row.count));
        }
    }

    /// Adds checkpoint rows back (at start-up, before the first `check`).
    ///
    /// Rows whose bucket lies wholly before `(now_ms - period, now_ms]` are
    /// ignored. A row stamped after `now_ms` (the previous instance's clock was
    /// ahead) is counted in the current bucket: its requests were admitted
    /// before now, and this keeps them for a full period from now without
    /// letting a bad timestamp block a key indefinitely.
    ///
    /// Counts are **summed** into what the limiter already holds, never
    /// maxed: rows describe admissions of an earlier instance, disjoint from
    /// anything this instance has counted, so the sum is exact and the max
    /// could forget admissions. Restoring the same rows twice double-counts:
    /// stricter, never more permissive. Restored buckets are not dirty (D1
    /// already has them); a later admission in one makes the next snapshot
    /// write the bucket's full count.
    pub fn restore(&mut self, rows: impl IntoIterator<Item = Checkpoint<K>>, now_ms: i64) {
        let g = self.geo;
        for row in rows {
            if row.count == 0 {
                continue;
            }
            let t = self.windows.get(&row.key).map_or(now_ms, |w| now_ms.max(w.last_ms));
            let b = g.bucket_of_row(row.window_start).min(g.bucket(t));
            if b < g.first(t) {
                continue;
            }
            let win = self.windows.entry(row.key).or_insert_with(|| Window::new(t));
            win.advance(&g, t);
            win.add(b, row.count, false);
        }
        self.sweep_at = self.sweep_at.max(2 * self.windows.len());
    }

    /// Admissions counted since the last [`snapshot_dirty`](Self::snapshot_dirty):
    /// what a restart now would lose from the count.
    pub fn unsaved_admissions(&self) -> u64 {
        self.unsaved
    }

    /// The configured limit per period.
    pub fn limit(&self) -> u32 {
        self.geo.limit
    }

    /// The configured period.
    pub fn period_ms(&self) -> i64 {
        self.geo.period_ms
    }

    /// The bucket width, `ceil(period_ms / 60)`: the most the window may
    /// over-count by, in time.
    pub fn bucket_ms(&self) -> i64 {
        self.geo.bucket_ms
    }

    /// Keys currently held.
    pub fn len(&self) -> usize {
        self.windows.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Bytes one held key costs: its `(K, state)` entry plus hashbrown's one
    /// control byte, over the maximum load factor 7/8. Just after the table
    /// grows it is half that full, so up to twice this. Excludes heap memory
    /// owned by `K` itself (none for `KeyPrefix`).
    pub fn bytes_per_key() -> usize {
        (size_of::<(K, Window)>() + 1) * 8 / 7
    }

    /// Approximate bytes held by the map's table now (from its capacity).
    pub fn approx_table_bytes(&self) -> usize {
        self.windows.capacity() * (size_of::<(K, Window)>() + 1) * 8 / 7
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPrefix;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    const MIN: i64 = 60_000;

    fn limiter(limit: u32, period_ms: i64) -> RateLimiter<u8> {
        RateLimiter::new(limit, period_ms).unwrap()
    }

    /// Admitted timestamps per key.
    type Log = BTreeMap<u8, Vec<i64>>;

    /// Most entries of `times` (sorted) inside any half-open interval `(s, s + len]`.
    fn max_in_any_window(times: &[i64], len: i64) -> usize {
        let mut lo = 0;
        let mut best = 0;
        for (hi, &t) in times.iter().enumerate() {
            while times[lo] <= t - len {
                lo += 1;
            }
            best = best.max(hi + 1 - lo);
        }
        best
    }

    /// Entries of `times` (sorted) inside `(t - len, t]`.
    fn count_in(times: &[i64], t: i64, len: i64) -> usize {
        times.partition_point(|&x| x <= t) - times.partition_point(|&x| x <= t - len)
    }

    /// Non-decreasing timeline of `(key, now_ms)`; gaps scale with the period.
    fn timeline(period_ms: i64, max_len: usize) -> impl Strategy<Value = Vec<(u8, i64)>> {
        let unit = (period_ms / 40).max(1);
        // Mostly bursts (gap 0) and small steps, sometimes a period or more.
        let gap = |r: u16| -> i64 {
            let r = i64::from(r);
            match r {
                0..300 => 0,
                300..750 => r % 4,
                750..900 => r % 30,
                _ => r % 120,
            }
        };
        prop::collection::vec((0u8..3, 0u16..1000), 0..max_len).prop_map(move |v| {
            let mut now = 1_700_000_000_000i64;
            v.into_iter()
                .map(|(k, r)| {
                    now += gap(r) * unit;
                    (k, now)
                })
                .collect()
        })
    }

    fn config() -> impl Strategy<Value = (u32, i64)> {
        (1u32..12, prop_oneof![1i64..=7, 8i64..=400, Just(MIN)])
    }

    proptest! {
        // claim: posture.l2
        #[test]
        fn never_admits_more_than_limit_in_any_period(
            ((limit, period), events) in config().prop_flat_map(|c| (Just(c), timeline(c.1, 400))),
        ) {
            let mut rl = limiter(limit, period);
            let mut admitted = Log::new();
            for &(k, t) in &events {
                if rl.check(&k, t).allowed {
                    admitted.entry(k).or_default().push(t);
                }
            }
            for times in admitted.values() {
                prop_assert!(max_in_any_window(times, period) <= limit as usize);
            }
        }

        #[test]
        fn denies_only_when_period_plus_one_bucket_is_full(
            ((limit, period), events) in config().prop_flat_map(|c| (Just(c), timeline(c.1, 400))),
        ) {
            let mut rl = limiter(limit, period);
            let w = rl.bucket_ms();
            let mut admitted = Log::new();
            for &(k, t) in &events {
                let d = rl.check(&k, t);
                let times = admitted.entry(k).or_default();
                if d.allowed {
                    // Exact reference: the period before this admission had room.
                    prop_assert!(count_in(times, t, period) < limit as usize);
                    times.push(t);
                } else {
                    prop_assert!(count_in(times, t, period + w - 1) >= limit as usize);
                }
            }
        }

        #[test]
        fn admits_everything_when_no_period_plus_bucket_holds_more_than_limit(
            ((limit, period), events) in config().prop_flat_map(|c| (Just(c), timeline(c.1, 400))),
        ) {
            let mut rl = limiter(limit, period);
            let span = period + rl.bucket_ms();
            // Thin the traffic with an exact sliding log of window period + bucket_ms.
            let mut sent = Log::new();
            let mut under: Vec<(u8, i64)> = Vec::new();
            for &(k, t) in &events {
                let times = sent.entry(k).or_default();
                if count_in(times, t, span) < limit as usize {
                    times.push(t);
                    under.push((k, t));
                }
            }
            for (k, t) in under {
                prop_assert!(rl.check(&k, t).allowed, "denied {k} at {t}");
            }
        }

        #[test]
        fn peek_agrees_with_check_and_counts_nothing(
            ((limit, period), events) in config().prop_flat_map(|c| (Just(c), timeline(c.1, 200))),
        ) {
            let mut rl = limiter(limit, period);
            for &(k, t) in &events {
                let before = rl.peek(&k, t);
                prop_assert_eq!(rl.peek(&k, t), before);
                let d = rl.check(&k, t);
                prop_assert_eq!(d.allowed, before.allowed);
                prop_assert_eq!(d.remaining, before.remaining.saturating_sub(u32::from(d.allowed)));
                prop_assert!(d.allowed || d.reset_ms > 0);
            }
        }

        #[test]
        fn reset_ms_is_exactly_when_the_next_request_is_admitted(
            ((limit, period), events) in config().prop_flat_map(|c| (Just(c), timeline(c.1, 200))),
        ) {
            let mut rl = limiter(limit, period);
            for &(k, t) in &events {
                let d = rl.check(&k, t);
                if d.remaining == 0 {
                    prop_assert!(d.reset_ms > 0);
                    prop_assert!(!rl.peek(&k, t + d.reset_ms - 1).allowed);
                    prop_assert!(rl.peek(&k, t + d.reset_ms).allowed);
                } else {
                    prop_assert_eq!(d.reset_ms, 0);
                }
            }
        }

        // claim: posture.l2
        /// A restart loses only the admissions after the last snapshot that
        /// reached storage: counting those as "lost", every period holds at
        /// most `limit` of the others, and at most `limit + lost` in all.
        #[test]
        fn restart_slack_is_at_most_the_admissions_after_the_last_snapshot(
            ((limit, period), events, ops) in config().prop_flat_map(|c| (
                Just(c),
                timeline(c.1, 400),
                prop::collection::vec(0u8..8, 400),
            )),
            crash_at in 0usize..400,
            snapshot_before_crash in any::<bool>(),
        ) {
            let crash_at = crash_at.min(events.len());
            let mut old = limiter(limit, period);
            let mut d1: BTreeMap<(u8, i64), u32> = BTreeMap::new();
            let mut saved = Log::new();
            let mut unsaved = Log::new();
            let mut save = |rl: &mut RateLimiter<u8>, now: i64, unsaved: &mut Log, saved: &mut Log| {
                for row in rl.snapshot_dirty(now) {
                    d1.insert((row.key, row.window_start), row.count);
                }
                for (k, mut v) in std::mem::take(unsaved) {
                    saved.entry(k).or_default().append(&mut v);
                }
            };
            for (i, &(k, t)) in events[..crash_at].iter().enumerate() {
                if old.check(&k, t).allowed {
                    unsaved.entry(k).or_default().push(t);
                }
                if ops[i] == 0 {
                    save(&mut old, t, &mut unsaved, &mut saved);
                }
            }
            let crash_ms = events.get(crash_at).or(events.last()).map_or(0, |e| e.1);
            if snapshot_before_crash {
                save(&mut old, crash_ms, &mut unsaved, &mut saved);
            }
            let mut new = limiter(limit, period);
            new.restore(d1.iter().map(|(&(key, window_start), &count)| Checkpoint { key, window_start, count }), crash_ms);
            let mut known = saved;
            let mut all = known.clone();
            for (k, v) in &unsaved {
                all.entry(*k).or_default().extend(v);
            }
            for &(k, t) in &events[crash_at..] {
                if new.check(&k, t).allowed {
                    known.entry(k).or_default().push(t);
                    all.entry(k).or_default().push(t);
                }
            }
            for (k, times) in known.iter_mut() {
                times.sort_unstable();
                prop_assert!(max_in_any_window(times, period) <= limit as usize, "key {k}: {times:?}");
            }
            for (k, times) in all.iter_mut() {
                times.sort_unstable();
                let lost = unsaved.get(k).map_or(0, Vec::len);
                prop_assert!(max_in_any_window(times, period) <= limit as usize + lost);
                if snapshot_before_crash {
                    prop_assert!(max_in_any_window(times, period) <= limit as usize);
                }
            }
        }

        // claim: posture.l2
        #[test]
        fn snapshot_then_restore_reproduces_every_decision(
            ((limit, period), events) in config().prop_flat_map(|c| (Just(c), timeline(c.1, 200))),
            probe in 0i64..3,
        ) {
            let mut rl = limiter(limit, period);
            for &(k, t) in &events {
                rl.check(&k, t);
            }
            let now = events.last().map_or(0, |e| e.1);
            let mut copy = limiter(limit, period);
            copy.restore(rl.snapshot_dirty(now), now);
            for k in 0u8..3 {
                let at = now + probe * period / 2;
                prop_assert_eq!(copy.peek(&k, at), rl.peek(&k, at));
            }
        }

        #[test]
        fn arbitrary_times_never_panic(ts in prop::collection::vec(any::<i64>(), 0..50), period in 1i64..i64::MAX) {
            let mut rl = limiter(3, period);
            for &t in &ts {
                let d = rl.check(&0, t);
                let _ = d.retry_after_s();
                let _ = rl.peek(&1, t);
                let rows = rl.snapshot_dirty(t);
                rl.restore(rows, t);
                rl.evict_idle(t);
            }
        }
    }

    #[test]
    fn decision_fields_count_down_then_deny_until_the_bucket_leaves_the_period() {
        let mut rl = limiter(3, MIN);
        assert_eq!(rl.bucket_ms(), 1_000);
        assert_eq!(rl.check(&1, 500), Decision { allowed: true, limit: 3, remaining: 2, reset_ms: 0 });
        assert_eq!(rl.check(&1, 700).remaining, 1);
        // Last one: admitted, but nothing more until bucket [0, 1000) leaves the period at 60_999.
        let last = rl.check(&1, 900);
        assert_eq!(last, Decision { allowed: true, limit: 3, remaining: 0, reset_ms: 60_099 });
        assert_eq!(last.retry_after_s(), 61);
        let denied = rl.check(&1, 30_000);
        assert_eq!(denied, Decision { allowed: false, limit: 3, remaining: 0, reset_ms: 30_999 });
        assert_eq!(denied.retry_after_s(), 31);
        assert!(!rl.check(&1, 60_998).allowed);
        // Denials were not counted: the whole budget is back.
        assert_eq!(rl.check(&1, 60_999), Decision { allowed: true, limit: 3, remaining: 2, reset_ms: 0 });
    }

    #[test]
    fn retry_after_is_at_least_one_second_when_denied() {
        let d = Decision { allowed: false, limit: 1, remaining: 0, reset_ms: 0 };
        assert_eq!(d.retry_after_s(), 1);
        assert_eq!(Decision { reset_ms: 1, ..d }.retry_after_s(), 1);
        assert_eq!(Decision { reset_ms: 1_001, ..d }.retry_after_s(), 2);
        assert_eq!(Decision { allowed: true, remaining: 5, ..d }.retry_after_s(), 0);
    }

    // claim: posture.l2
    #[test]
    fn l2_defaults_admit_1000_per_minute() {
        let mut rl: RateLimiter<KeyPrefix> = RateLimiter::default();
        let key = KeyPrefix::parse("ABCDEFGH").unwrap();
        assert_eq!((rl.limit(), rl.period_ms(), rl.bucket_ms()), (1000, 60_000, 1_000));
        for i in 0..1000 {
            assert!(rl.check(&key, i * 50).allowed, "request {i}");
        }
        assert!(!rl.check(&key, 50_000).allowed);
        assert_eq!(rl.peek(&key, 50_000).remaining, 0);
    }

    // claim: posture.l2
    #[test]
    fn keys_are_independent() {
        let mut rl = limiter(2, MIN);
        assert!(rl.check(&1, 0).allowed);
        assert!(rl.check(&1, 0).allowed);
        assert!(!rl.check(&1, 0).allowed);
        assert_eq!(rl.check(&2, 0).remaining, 1);
        assert_eq!(rl.peek(&3, 0), Decision { allowed: true, limit: 2, remaining: 2, reset_ms: 0 });
        assert!(!rl.check(&1, 1).allowed);
    }

    #[test]
    fn invalid_configs_are_refused() {
        assert_eq!(RateLimiter::<u8>::new(0, MIN).unwrap_err(), LimiterConfigError::ZeroLimit);
        assert_eq!(RateLimiter::<u8>::new(1, 0).unwrap_err(), LimiterConfigError::EmptyPeriod);
        assert_eq!(RateLimiter::<u8>::new(1, -5).unwrap_err(), LimiterConfigError::EmptyPeriod);
        assert_eq!(limiter(1, 1).bucket_ms(), 1);
        assert_eq!(limiter(1, 61).bucket_ms(), 2);
    }

    #[test]
    fn a_clock_going_backwards_does_not_reopen_the_window() {
        let mut rl = limiter(2, MIN);
        rl.check(&1, 100_000);
        rl.check(&1, 100_000);
        assert!(!rl.check(&1, 0).allowed);
        assert!(!rl.check(&1, 159_999).allowed);
        assert!(rl.check(&1, 160_999).allowed);
    }

    #[test]
    fn idle_keys_are_evicted_and_active_ones_kept() {
        let mut rl = limiter(5, MIN);
        rl.check(&1, 0);
        rl.check(&2, 30_000);
        assert_eq!(rl.evict_idle(59_999), 0);
        // Bucket [0, 1000) leaves the period at 60_999.
        assert_eq!(rl.evict_idle(60_999), 1);
        assert_eq!(rl.len(), 1);
        assert_eq!(rl.peek(&1, 60_999).remaining, 5);
        assert_eq!(rl.peek(&2, 60_999).remaining, 4);
        assert_eq!(rl.evict_idle(1_000_000), 1);
        assert!(rl.is_empty());
    }

    // claim: owasp.api4
    #[test]
    fn the_map_stays_bounded_without_explicit_eviction() {
        let mut rl: RateLimiter<u32> = RateLimiter::new(10, 1_000).unwrap();
        for i in 0..100_000u32 {
            // Each key is seen once, a period after the previous one.
            rl.check(&i, i64::from(i) * 1_000);
            assert!(rl.len() <= MIN_SWEEP, "{} keys held", rl.len());
        }
        assert!(rl.approx_table_bytes() <= 4 * MIN_SWEEP * RateLimiter::<u32>::bytes_per_key());
    }

    #[test]
    fn bytes_per_key_is_small_and_fixed() {
        let b = RateLimiter::<KeyPrefix>::bytes_per_key();
        assert!(b >= size_of::<KeyPrefix>() + SLOTS * size_of::<u32>());
        assert!(b <= 400, "{b}");
    }

    #[test]
    fn snapshot_returns_changed_buckets_once() {
        let mut rl = limiter(100, MIN);
        rl.check(&1, 1_500);
        rl.check(&1, 1_600);
        rl.check(&2, 2_000);
        assert_eq!(rl.unsaved_admissions(), 3);
        let mut rows = rl.snapshot_dirty(2_000);
        rows.sort_by_key(|r| (r.key, r.window_start));
        assert_eq!(
            rows,
            vec![
                Checkpoint { key: 1, window_start: 1_000, count: 2 },
                Checkpoint { key: 2, window_start: 2_000, count: 1 },
            ]
        );
        assert_eq!(rl.unsaved_admissions(), 0);
        assert!(rl.snapshot_dirty(2_000).is_empty());
        rl.check(&1, 1_700);
        assert_eq!(rl.snapshot_dirty(2_000), vec![Checkpoint { key: 1, window_start: 1_000, count: 3 }]);
        // Buckets that left the period are not worth writing.
        rl.check(&3, 3_000);
        assert!(rl.snapshot_dirty(64_000).is_empty());
    }

    #[test]
    fn requeued_rows_are_sent_again() {
        let mut rl = limiter(100, MIN);
        rl.check(&1, 0);
        let rows = rl.snapshot_dirty(0);
        rl.check(&1, 1_000);
        rl.requeue(rows);
        assert_eq!(rl.unsaved_admissions(), 2);
        let mut again = rl.snapshot_dirty(1_000);
        again.sort_by_key(|r| r.window_start);
        assert_eq!(
            again,
            vec![
                Checkpoint { key: 1, window_start: 0, count: 1 },
                Checkpoint { key: 1, window_start: 1_000, count: 1 }
            ]
        );
    }

    #[test]
    fn restore_ignores_rows_outside_the_period() {
        let mut rl = limiter(10, MIN);
        rl.restore(
            [
                Checkpoint { key: 1, window_start: 0, count: 9 },
                Checkpoint { key: 1, window_start: 60_000, count: 3 },
                Checkpoint { key: 2, window_start: 1_000, count: 0 },
            ],
            61_000,
        );
        assert_eq!(rl.len(), 1);
        assert_eq!(rl.peek(&1, 61_000).remaining, 7);
        assert!(rl.snapshot_dirty(61_000).is_empty(), "restored rows are already stored");
    }

    #[test]
    fn restore_stays_conservative() {
        let mut rl = limiter(10, MIN);
        rl.check(&1, 5_000);
        rl.check(&1, 5_000);
        rl.restore(
            [
                // Summed with the live count of the same bucket, and with each other.
                Checkpoint { key: 1, window_start: 5_000, count: 3 },
                Checkpoint { key: 1, window_start: 5_000, count: 1 },
                // Unaligned: rounded up to the bucket at 6_000.
                Checkpoint { key: 1, window_start: 5_500, count: 1 },
                // From a clock ahead of ours: counted now (bucket 7_000), for a full period.
                Checkpoint { key: 1, window_start: 900_000, count: 2 },
            ],
            7_000,
        );
        assert_eq!(rl.peek(&1, 7_000).remaining, 10 - 6 - 1 - 2);
        // Bucket 5_000 leaves the period at 65_999, 6_000 at 66_999, 7_000 at 67_999.
        assert_eq!(rl.peek(&1, 65_998).remaining, 1);
        assert_eq!(rl.peek(&1, 65_999).remaining, 10 - 1 - 2);
        assert_eq!(rl.peek(&1, 66_999).remaining, 10 - 2);
        assert_eq!(rl.peek(&1, 67_999).remaining, 10);
        assert!(rl.check(&1, 7_001).allowed);
        assert!(!rl.check(&1, 7_002).allowed);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut rl = limiter(1, i64::MAX);
        assert!(rl.check(&1, i64::MIN).allowed);
        let d = rl.check(&1, i64::MIN);
        assert!(!d.allowed && d.reset_ms > 0);
        let mut rl = limiter(1, 1);
        assert!(rl.check(&1, i64::MAX).allowed);
        assert!(!rl.check(&1, i64::MAX).allowed);
        assert!(rl.check(&2, i64::MIN).allowed);
        assert_eq!(rl.snapshot_dirty(i64::MAX).len(), 1);
    }
}
