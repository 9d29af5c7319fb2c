//! `timing`: are the auth failures and the L1 rate-limited answer
//! indistinguishable by latency? Sequential (concurrency 1), outcomes
//! interleaved in a freshly shuffled order every round so drift hits all
//! alike.

use crate::stats::{ks_p_value, ks_statistic, percentile, sorted};
use crate::{next_ip, Args};
use rand::seq::SliceRandom;
use rand::Rng;
use reqwest::{Client, StatusCode};
use std::time::{Duration, Instant};

const CROCKFORD: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Requests that exhaust one IP's L1 budget (60 per 60 s) with margin.
const L1_EXHAUST: usize = 70;
const WARMUP_ROUNDS: usize = 15;
/// Goal: every p50 within this of every other.
const P50_SPREAD_GOAL_MS: f64 = 1.0;
/// Goal: no pair distinguishable at this level.
const KS_ALPHA: f64 = 0.01;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Missing,
    Malformed,
    UnknownPrefix,
    WrongHash,
    Revoked,
    Expired,
    RateLimited,
}

const OUTCOMES: [Outcome; 7] = [
    Outcome::Missing,
    Outcome::Malformed,
    Outcome::UnknownPrefix,
    Outcome::WrongHash,
    Outcome::Revoked,
    Outcome::Expired,
    Outcome::RateLimited,
];

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::UnknownPrefix => "unknown_prefix",
            Self::WrongHash => "wrong_hash",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::RateLimited => "rate_limited",
        }
    }

    fn status(self) -> StatusCode {
        if self == Self::RateLimited {
            StatusCode::TOO_MANY_REQUESTS
        } else {
            StatusCode::UNAUTHORIZED
        }
    }
}

fn random_key() -> String {
    let mut rng = rand::thread_rng();
    let body: String = (0..26).map(|_| CROCKFORD[rng.gen_range(0..32)] as char).collect();
    format!("ck_live_{body}")
}

/// The admin key with one character after the prefix changed.
fn wrong_hash(key: &str) -> String {
    let mut chars: Vec<char> = key.chars().collect();
    let i = "ck_live_".len() + 8;
    chars[i] = if chars[i] == '0' { '1' } else { '0' };
    chars.into_iter().collect()
}

struct Setup {
    client: Client,
    url: String,
    path: String,
    admin: String,
    revoked: String,
    expired: String,
    /// The IP whose L1 budget is exhausted, and how many were used so far.
    limited_ip: String,
    limited_ips_used: u32,
    re_exhausts: u32,
    /// The key shown for the malformed/unknown-prefix outcomes (varied).
    malformed: [&'static str; 4],
}

impl Setup {
    fn credential(&self, o: Outcome, i: usize) -> Option<String> {
        match o {
            Outcome::Missing => None,
            Outcome::Malformed => Some(self.malformed[i % self.malformed.len()].to_string()),
            Outcome::UnknownPrefix => Some(random_key()),
            Outcome::WrongHash => Some(wrong_hash(&self.admin)),
            Outcome::Revoked => Some(self.revoked.clone()),
            Outcome::Expired => Some(self.expired.clone()),
            // L1 answers before auth; a valid key shows nothing is checked after it.
            Outcome::RateLimited => Some(self.admin.clone()),
        }
    }

    /// One timed request: (status, milliseconds to the full body).
    async fn send(&self, cred: Option<&str>, ip: &str) -> Result<(StatusCode, f64), String> {
        let mut req = self.client.get(format!("{}{}", self.url, self.path)).header("CF-Connecting-IP", ip);
        if let Some(c) = cred {
            req = req.header("Authorization", format!("Bearer {c}"));
        }
        let t0 = Instant::now();
        let resp = req.send().await.map_err(|e| format!("request: {e}"))?;
        let status = resp.status();
        let _ = resp.bytes().await.map_err(|e| format!("body: {e}"))?;
        Ok((status, t0.elapsed().as_secs_f64() * 1000.0))
    }

    /// Spends a fresh IP's whole L1 budget (concurrently, not timed).
    async fn exhaust_new_ip(&mut self) -> Result<(), String> {
        self.limited_ips_used += 1;
        self.limited_ip = format!("198.51.100.{}", self.limited_ips_used % 250 + 1);
        let ip = self.limited_ip.clone();
        let calls = (0..L1_EXHAUST).map(|_| self.send(None, &ip));
        let results = futures::future::join_all(calls).await;
        if results.iter().any(|r| matches!(r, Ok((s, _)) if *s == StatusCode::TOO_MANY_REQUESTS)) {
            Ok(())
        } else {
            Err(format!("could not exhaust L1 for {ip}: no 429 in {L1_EXHAUST} requests"))
        }
    }

    /// One sample of `o` (the rate-limited one re-exhausts a new IP when its
    /// window rolled over and the request was admitted).
    async fn sample(&mut self, o: Outcome, i: usize) -> Result<f64, String> {
        let cred = self.credential(o, i);
        for _ in 0..3 {
            let ip = if o == Outcome::RateLimited { self.limited_ip.clone() } else { next_ip() };
            let (status, ms) = self.send(cred.as_deref(), &ip).await?;
            if status == o.status() {
                return Ok(ms);
            }
            if o == Outcome::RateLimited {
                self.re_exhausts += 1;
                self.exhaust_new_ip().await?;
                continue;
            }
            return Err(format!("{}: expected {}, got {status}", o.name(), o.status()));
        }
        Err(format!("{}: could not get a {} sample", o.name(), o.status()))
    }
}

async fn revoke(client: &Client, url: &str, admin: &str, key: &str) -> Result<(), String> {
    let prefix = &key["ck_live_".len()..][..8];
    let resp = client
        .post(format!("{url}/v1/keys/{prefix}/revoke"))
        .header("CF-Connecting-IP", next_ip())
        .header("Authorization", format!("Bearer {admin}"))
        .send()
        .await
        .map_err(|e| format!("revoke: {e}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status.is_success() || body.contains("revoked") {
        Ok(())
    } else {
        Err(format!("revoke {prefix}: {status} {body}"))
    }
}

/// Runs the timing benchmark; `Ok(false)` when a goal is missed.
pub async fn run(args: &Args) -> Result<bool, String> {
    let samples: usize = args.num("samples", 300)?;
    let floor_ms: f64 = args.num("floor-ms", 80.0)?;
    let over_ms: f64 = args.num("over-ms", floor_ms + 10.0)?;
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(L1_EXHAUST)
        .build()
        .map_err(|e| e.to_string())?;
    let url = args.req("url")?.trim_end_matches('/').to_string();
    let admin = args.req("admin-key")?;
    let revoked = args.req("revoked-key")?;
    revoke(&client, &url, &admin, &revoked).await?;
    let mut s = Setup {
        client,
        url,
        path: args.opt("path").unwrap_or_else(|| "/v1/org".into()),
        admin,
        revoked,
        expired: args.req("expired-key")?,
        limited_ip: String::new(),
        limited_ips_used: 0,
        re_exhausts: 0,
        malformed: [
            "ck_live_short",
            "ck_live_ILOU0000000000000000000000",
            "Basic abc",
            "ck_test_0123456789ABCDEFGHJKMNPQRS",
        ],
    };
    s.exhaust_new_ip().await?;

    let mut order = OUTCOMES.to_vec();
    for i in 0..WARMUP_ROUNDS {
        for &o in &order {
            s.sample(o, i).await?;
        }
    }
    s.re_exhausts = 0;
    let mut lat: Vec<Vec<f64>> = vec![Vec::with_capacity(samples); OUTCOMES.len()];
    let started = Instant::now();
    for i in 0..samples {
        order.shuffle(&mut rand::thread_rng());
        for &o in &order {
            let ms = s.sample(o, i).await?;
            lat[OUTCOMES.iter().position(|x| *x == o).unwrap_or(0)].push(ms);
        }
    }
    let wall = started.elapsed().as_secs_f64();

    println!(
        "auth timing: {samples} sequential samples per outcome, GET {}, round-robin in shuffled order ({wall:.0} s; \
         L1 re-exhausted {} times)",
        s.path, s.re_exhausts
    );
    println!(
        "{:<15}{:>8}{:>8}{:>8}{:>8}{:>8}{:>8}{:>10}{:>10}",
        "outcome", "n", "min", "p50", "p90", "p99", "max", "<floor", ">over"
    );
    let sorted_lat: Vec<Vec<f64>> = lat.iter().map(|x| sorted(x)).collect();
    let mut p50s = Vec::new();
    let (mut total, mut total_over, mut total_under, mut worst) = (0usize, 0usize, 0usize, 0.0f64);
    for (o, xs) in OUTCOMES.iter().zip(&sorted_lat) {
        let over = xs.iter().filter(|&&x| x > over_ms).count();
        let under = xs.iter().filter(|&&x| x < floor_ms).count();
        let max = xs.last().copied().unwrap_or(f64::NAN);
        total += xs.len();
        total_over += over;
        total_under += under;
        worst = worst.max(max);
        p50s.push(percentile(xs, 50.0));
        println!(
            "{:<15}{:>8}{:>8.2}{:>8.2}{:>8.2}{:>8.2}{:>8.2}{:>10}{:>10}",
            o.name(),
            xs.len(),
            xs.first().copied().unwrap_or(f64::NAN),
            percentile(xs, 50.0),
            percentile(xs, 90.0),
            percentile(xs, 99.0),
            max,
            under,
            over
        );
    }
    let spread = p50s.iter().copied().fold(f64::MIN, f64::max) - p50s.iter().copied().fold(f64::MAX, f64::min);
    println!(
        "floor: {total_under} of {total} under {floor_ms} ms; {total_over} of {total} ({:.2} %) over {over_ms} ms; \
         max {worst:.2} ms",
        100.0 * total_over as f64 / total as f64
    );
    println!("p50 spread: {spread:.2} ms (goal ≤ {P50_SPREAD_GOAL_MS} ms)");
    println!("two-sample Kolmogorov–Smirnov (goal: p > {KS_ALPHA} for every pair)");
    println!("{:<15}{:<15}{:>8}{:>10}", "a", "b", "D", "p");
    let mut distinguishable = 0;
    for i in 0..OUTCOMES.len() {
        for j in i + 1..OUTCOMES.len() {
            let (a, b) = (&sorted_lat[i], &sorted_lat[j]);
            let d = ks_statistic(a, b);
            let p = ks_p_value(d, a.len(), b.len());
            let flag = if p <= KS_ALPHA { "  distinguishable" } else { "" };
            if p <= KS_ALPHA {
                distinguishable += 1;
            }
            println!("{:<15}{:<15}{:>8.3}{:>10.4}{flag}", OUTCOMES[i].name(), OUTCOMES[j].name(), d, p);
        }
    }
    let met = spread <= P50_SPREAD_GOAL_MS && distinguishable == 0 && total_under == 0;
    println!(
        "goal {}: p50 spread {spread:.2} ms, {distinguishable} of 21 pairs distinguishable at p ≤ {KS_ALPHA}, \
         {total_under} answers under the floor",
        if met { "MET" } else { "NOT MET" }
    );
    Ok(met)
}
