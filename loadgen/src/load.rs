//! `load`: mixed traffic (single and batch ingest, list, get, key listing,
//! MCP when the endpoint answers) from many orgs and keys for a fixed time.
//! Ingests carry idempotency keys and are retried unchanged on timeouts,
//! connection errors, 429 and 5xx until acknowledged (bounded), then the
//! stored interactions of every org are paged back and compared with what was
//! acknowledged. With `--restart-at` it also measures, across the restart the
//! calling script performs, the L2 budgets of two probe keys and whether the
//! retention alarm of an org that gets no traffic still fires.

use crate::{next_ip, Args};
use futures::future::join_all;
use hdrhistogram::Histogram;
use rand::Rng;
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Longest an ingest is retried before it is given up (and reported).
const RETRY_BUDGET: Duration = Duration::from_secs(180);
const MCP_ACCEPT: &str = "application/json, text/event-stream";
const MCP_VERSION: &str = "2025-11-25";

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Route {
    Ingest,
    Batch,
    List,
    Get,
    Keys,
    Mcp,
}

impl Route {
    fn name(self) -> &'static str {
        match self {
            Self::Ingest => "POST /v1/interactions",
            Self::Batch => "POST /v1/interactions/batch",
            Self::List => "GET /v1/interactions",
            Self::Get => "GET /v1/interactions/{id}",
            Self::Keys => "GET /v1/keys",
            Self::Mcp => "POST /mcp tools/call",
        }
    }
}

struct Org {
    id: String,
    admin: String,
    /// Keys with scopes ingest + read, created through the API.
    keys: Vec<String>,
}

#[derive(Default)]
struct Stats {
    hist: BTreeMap<Route, Histogram<u64>>,
    status: BTreeMap<(Route, u16), u64>,
    transport: BTreeMap<Route, u64>,
    retries: u64,
    /// Per org: idempotency key → id, as acknowledged.
    acked: Vec<HashMap<String, String>>,
    /// Per org: ids acknowledged, for get-by-id.
    ids: Vec<Vec<String>>,
    /// Idempotency keys given up after the retry budget.
    abandoned: Vec<HashSet<String>>,
    five_xx: Vec<String>,
    /// MCP answers with a JSON-RPC error or a tool error.
    mcp_errors: u64,
}

impl Stats {
    fn record(&mut self, route: Route, status: Option<StatusCode>, elapsed: Duration) {
        match status {
            Some(s) => {
                *self.status.entry((route, s.as_u16())).or_default() += 1;
                let h = self
                    .hist
                    .entry(route)
                    .or_insert_with(|| Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"));
                h.saturating_record(elapsed.as_micros().max(1) as u64);
            }
            None => *self.transport.entry(route).or_default() += 1,
        }
    }
}

struct Ctx {
    client: Client,
    url: String,
    run: String,
    orgs: Vec<Org>,
    /// Orgs that get load (the last one is the quiet alarm probe in restart mode).
    active: usize,
    batch_size: usize,
    mcp: bool,
    stats: RefCell<Stats>,
    counter: std::cell::Cell<u64>,
    start: Instant,
}

/// One HTTP answer: status, headers, body JSON (Null if none).
struct Answer {
    status: StatusCode,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Ctx {
    fn next(&self) -> u64 {
        let c = self.counter.get();
        self.counter.set(c + 1);
        c
    }

    async fn call(
        &self,
        route: Option<Route>,
        method: Method,
        path: &str,
        key: &str,
        body: Option<&Value>,
        extra: &[(&str, &str)],
    ) -> Result<Answer, String> {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.url))
            .header("CF-Connecting-IP", next_ip())
            .header("Authorization", format!("Bearer {key}"));
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.header("Content-Type", "application/json").body(b.to_string());
        }
        let t0 = Instant::now();
        let result = async {
            let resp = req.send().await?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let bytes = resp.bytes().await?;
            Ok::<_, reqwest::Error>((status, headers, bytes))
        }
        .await;
        let elapsed = t0.elapsed();
        match result {
            Ok((status, headers, bytes)) => {
                if let Some(r) = route {
                    let mut st = self.stats.borrow_mut();
                    st.record(r, Some(status), elapsed);
                    if status.is_server_error() && st.five_xx.len() < 20 {
                        let at = self.start.elapsed().as_secs_f64();
                        st.five_xx.push(format!(
                            "t={at:.1}s {} {status} {}",
                            r.name(),
                            String::from_utf8_lossy(&bytes)
                        ));
                    }
                }
                let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                Ok(Answer { status, headers, body })
            }
            Err(e) => {
                if let Some(r) = route {
                    self.stats.borrow_mut().record(r, None, elapsed);
                }
                Err(e.to_string())
            }
        }
    }

    fn item(&self, n: u64) -> Value {
        json!({
            "type": "chat.turn",
            "actor": format!("user-{}", n % 97),
            "session": format!("{}-{}", self.run, n / 10),
            "content": format!("The quick brown fox asks about order #{n} and gets a polite answer."),
            "metadata": { "channel": "web", "n": n },
        })
    }

    /// Sends until acknowledged (2xx) or the budget runs out; retries the
    /// identical request on transport errors, 429 and 5xx.
    async fn until_acked(
        &self,
        route: Route,
        path: &str,
        key: &str,
        body: &Value,
        idem: Option<&str>,
    ) -> Option<Value> {
        let t0 = Instant::now();
        let mut attempt = 0u32;
        loop {
            let extra: Vec<(&str, &str)> = idem.map(|k| vec![("Idempotency-Key", k)]).unwrap_or_default();
            match self.call(Some(route), Method::POST, path, key, Some(body), &extra).await {
                Ok(a) if a.status.is_success() => return Some(a.body),
                Ok(a) if a.status == StatusCode::TOO_MANY_REQUESTS || a.status.is_server_error() => {}
                Ok(a) => {
                    eprintln!("{}: {} {}", route.name(), a.status, a.body);
                    return None;
                }
                Err(_) => {}
            }
            if t0.elapsed() > RETRY_BUDGET {
                return None;
            }
            attempt += 1;
            self.stats.borrow_mut().retries += 1;
            tokio::time::sleep(Duration::from_millis((100u64 << attempt.min(4)).min(2000))).await;
        }
    }

    async fn ingest(&self, org: usize, key: &str) {
        let n = self.next();
        let idem = format!("{}-s{n}", self.run);
        match self.until_acked(Route::Ingest, "/v1/interactions", key, &self.item(n), Some(&idem)).await {
            Some(b) => {
                let id = b["id"].as_str().unwrap_or_default().to_string();
                let mut st = self.stats.borrow_mut();
                st.ids[org].push(id.clone());
                st.acked[org].insert(idem, id);
            }
            None => {
                self.stats.borrow_mut().abandoned[org].insert(idem);
            }
        }
    }

    async fn batch(&self, org: usize, key: &str) {
        let n = self.next();
        let keys: Vec<String> = (0..self.batch_size).map(|i| format!("{}-b{n}-{i}", self.run)).collect();
        let items: Vec<Value> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| {
                let mut it = self.item(n * 1000 + i as u64);
                it["idempotency_key"] = json!(k);
                it
            })
            .collect();
        let body = json!({ "interactions": items });
        match self.until_acked(Route::Batch, "/v1/interactions/batch", key, &body, None).await {
            Some(b) => {
                let mut st = self.stats.borrow_mut();
                for rec in b["interactions"].as_array().map_or(&[][..], Vec::as_slice) {
                    let id = rec["id"].as_str().unwrap_or_default().to_string();
                    let k = rec["idempotency_key"].as_str().unwrap_or_default().to_string();
                    st.ids[org].push(id.clone());
                    st.acked[org].insert(k, id);
                }
            }
            None => {
                self.stats.borrow_mut().abandoned[org].extend(keys);
            }
        }
    }

    async fn one(&self) {
        let (org, key_i, pick) = {
            let mut rng = rand::thread_rng();
            let org = rng.gen_range(0..self.active);
            (org, rng.gen_range(0..self.orgs[org].keys.len()), rng.gen_range(0..100u32))
        };
        let key = self.orgs[org].keys[key_i].clone();
        // 30 % single ingest, 15 % batch, 20 % list, 20 % get, 10 % keys, 5 % MCP.
        let r = match pick {
            0..=29 => {
                self.ingest(org, &key).await;
                return;
            }
            30..=44 => {
                self.batch(org, &key).await;
                return;
            }
            45..=64 => self.call(Some(Route::List), Method::GET, "/v1/interactions?limit=20", &key, None, &[]).await,
            65..=84 => {
                let id = {
                    let st = self.stats.borrow();
                    let ids = &st.ids[org];
                    (!ids.is_empty()).then(|| ids[rand::thread_rng().gen_range(0..ids.len())].clone())
                };
                match id {
                    Some(id) => {
                        self.call(Some(Route::Get), Method::GET, &format!("/v1/interactions/{id}"), &key, None, &[])
                            .await
                    }
                    None => self.call(Some(Route::List), Method::GET, "/v1/interactions", &key, None, &[]).await,
                }
            }
            _ if pick < 95 || !self.mcp => {
                let admin = self.orgs[org].admin.clone();
                self.call(Some(Route::Keys), Method::GET, "/v1/keys", &admin, None, &[]).await
            }
            _ => {
                let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": "list_interactions", "arguments": {"limit": 5}}});
                let r = self
                    .call(
                        Some(Route::Mcp),
                        Method::POST,
                        "/mcp",
                        &key,
                        Some(&body),
                        &[("Accept", MCP_ACCEPT), ("MCP-Protocol-Version", MCP_VERSION)],
                    )
                    .await;
                if let Ok(a) = &r {
                    if a.status.is_success()
                        && (a.body.get("error").is_some() || a.body["result"]["isError"] == json!(true))
                    {
                        let mut st = self.stats.borrow_mut();
                        st.mcp_errors += 1;
                        if st.mcp_errors == 1 {
                            eprintln!("MCP tools/call answered an error: {}", a.body);
                        }
                    }
                }
                r
            }
        };
        if r.is_err() {
            // The server is away (restart): do not spin.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    async fn worker(&self, until: Instant) {
        while Instant::now() < until {
            self.one().await;
        }
    }

    /// Every stored interaction of an org: (id, idempotency key).
    async fn stored(&self, org: usize) -> Result<Vec<(String, String)>, String> {
        let key = self.orgs[org].keys[0].clone();
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                None => "/v1/interactions?limit=200".to_string(),
                Some(c) => format!("/v1/interactions?limit=200&cursor={c}"),
            };
            let mut tries = 0;
            let a = loop {
                match self.call(None, Method::GET, &path, &key, None, &[]).await {
                    Ok(a) if a.status.is_success() => break a,
                    other if tries < 10 => {
                        tries += 1;
                        if let Ok(a) = other {
                            eprintln!("page: {} {}", a.status, a.body);
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    Ok(a) => return Err(format!("listing org {}: {} {}", self.orgs[org].id, a.status, a.body)),
                    Err(e) => return Err(format!("listing org {}: {e}", self.orgs[org].id)),
                }
            };
            for rec in a.body["interactions"].as_array().map_or(&[][..], Vec::as_slice) {
                out.push((
                    rec["id"].as_str().unwrap_or_default().to_string(),
                    rec["idempotency_key"].as_str().unwrap_or_default().to_string(),
                ));
            }
            match a.body["next_cursor"].as_str() {
                Some(c) if !c.is_empty() => cursor = Some(c.to_string()),
                _ => return Ok(out),
            }
        }
    }
}

/// `"per-key";r=N;t=S` → N; `"per-key";q=N;w=S` → N for the policy.
fn header_param(headers: &reqwest::header::HeaderMap, name: &str, param: &str) -> Option<u64> {
    let v = headers.get(name)?.to_str().ok()?;
    v.split(';').find_map(|p| p.trim().strip_prefix(param)?.strip_prefix('=')?.parse().ok())
}

/// RFC 3339 UTC (`YYYY-MM-DDTHH:MM:SS[.fff]Z`) → Unix ms.
fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let frac = match s.get(19..20) {
        Some(".") => {
            let digits: String = s[20..].chars().take_while(char::is_ascii_digit).take(3).collect();
            format!("{digits:0<3}").parse::<i64>().ok()?
        }
        _ => 0,
    };
    // Days from civil (Howard Hinnant).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 24 + hh) * 60 + mm) * 60_000 + ss * 1000 + frac)
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// Result of one L2 probe key.
#[derive(Default)]
struct Probe {
    admitted: u64,
    min_remaining: Option<u64>,
    last_admit_ms: i64,
}

/// Sends `n` (or, with `n == 0`, until the first transport error) reads with
/// `key` at concurrency `c`; counts admissions and the lowest `r` seen.
async fn probe_burst(ctx: &Ctx, key: &str, n: u64, c: usize) -> Probe {
    let p = RefCell::new(Probe::default());
    let sent = std::cell::Cell::new(0u64);
    let stop = std::cell::Cell::new(false);
    let lane = || async {
        while !stop.get() && (n == 0 || sent.get() < n) {
            sent.set(sent.get() + 1);
            match ctx.call(None, Method::GET, "/v1/interactions?limit=1", key, None, &[]).await {
                Ok(a) if a.status.is_success() => {
                    let mut p = p.borrow_mut();
                    p.admitted += 1;
                    p.last_admit_ms = now_ms();
                    if let Some(r) = header_param(&a.headers, "ratelimit", "r") {
                        p.min_remaining = Some(p.min_remaining.map_or(r, |m| m.min(r)));
                    }
                }
                Ok(_) => {}
                Err(_) => stop.set(true),
            }
        }
    };
    join_all((0..c).map(|_| lane())).await;
    p.into_inner()
}

/// Polls health until it fails (returns when) and then until it answers again.
async fn watch_restart(ctx: &Ctx, limit: Duration) -> Option<(Instant, Instant, i64)> {
    let t0 = Instant::now();
    let health = || async {
        ctx.client
            .get(format!("{}/v1/health", ctx.url))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    };
    let down = loop {
        if !health().await {
            break Instant::now();
        }
        if t0.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    loop {
        if health().await {
            return Some((down, Instant::now(), now_ms()));
        }
        if t0.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn org_last_run(ctx: &Ctx, org: usize) -> Option<i64> {
    let a = ctx.call(None, Method::GET, "/v1/org", &ctx.orgs[org].admin, None, &[]).await.ok()?;
    a.body["last_retention_run"]["at"].as_str().and_then(parse_rfc3339_ms)
}

/// What the server restored of `key`'s L2 count after the restart, from 7
/// sequential reads: read `i` (1-based) with `r` implies `limit − r − i`
/// admissions before the reads. The most frequent value wins, because a
/// `RateLimit` header can carry another key's standing when the org's actor
/// serves requests concurrently; returns (restored, limit, foreign headers).
async fn restored_count(ctx: &Ctx, key: &str) -> Option<(u64, u64, usize)> {
    let mut votes: BTreeMap<u64, usize> = BTreeMap::new();
    let (mut i, mut limit, mut tries) = (0u64, 0u64, 0);
    while i < 7 && tries < 40 {
        tries += 1;
        match ctx.call(None, Method::GET, "/v1/interactions?limit=1", key, None, &[]).await {
            Ok(a) if a.status.is_success() => {
                i += 1;
                let r = header_param(&a.headers, "ratelimit", "r")?;
                limit = header_param(&a.headers, "ratelimit-policy", "q")?;
                *votes.entry(limit.saturating_sub(r + i)).or_default() += 1;
            }
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    let (restored, n) = votes.iter().max_by_key(|(_, n)| **n).map(|(v, n)| (*v, *n))?;
    Some((restored, limit, i as usize - n))
}

/// Restart-mode probes, run beside the load. Returns whether they passed.
async fn restart_probes(ctx: &Ctx, restart_at: Duration, probe_a: &str, probe_b: &str, quiet: usize) -> bool {
    let last0 = org_last_run(ctx, quiet).await;
    // Probe A: 250 admissions ending well before the stop (≥ 5 s: all should be checkpointed).
    tokio::time::sleep_until((ctx.start + restart_at.saturating_sub(Duration::from_secs(14))).into()).await;
    let a = probe_burst(ctx, probe_a, 250, 5).await;
    let last_before = org_last_run(ctx, quiet).await;
    // Probe B: admissions up to the moment the server goes away.
    tokio::time::sleep_until((ctx.start + restart_at.saturating_sub(Duration::from_secs(3))).into()).await;
    let watch = watch_restart(ctx, Duration::from_secs(240));
    let (b, watch) = futures::join!(probe_burst(ctx, probe_b, 0, 3), watch);
    let Some((down, back, back_ms)) = watch else {
        println!("restart: the server did not go away and come back within 240 s");
        return false;
    };
    let since_b = (now_ms() - b.last_admit_ms) as f64 / 1000.0;
    println!(
        "restart: server down at t={:.1}s, answering again at t={:.1}s ({:.1} s away)",
        (down - ctx.start).as_secs_f64(),
        (back - ctx.start).as_secs_f64(),
        (back - down).as_secs_f64()
    );
    let mut ok = true;
    for (name, key, p, note) in [
        ("A", probe_a, &a, "burst of 250 ended ≥ 5 s before the stop: expect 0 lost"),
        ("B", probe_b, &b, "admitted up to the stop: up to 200 / the last 5 s may be lost"),
    ] {
        match restored_count(ctx, key).await {
            Some((restored, limit, foreign)) => {
                let lost = p.admitted as i64 - restored as i64;
                let within = if name == "A" { lost == 0 } else { (0..=200).contains(&lost) };
                ok &= within;
                println!(
                    "L2 probe {name}: {} admitted before the stop (lowest r seen {:?}), {restored} restored after \
                     (limit {limit}; {foreign} of 7 reads after carried another standing) → {lost} lost [{}] — {note}",
                    p.admitted,
                    p.min_remaining,
                    if within { "ok" } else { "OUT OF SLACK" }
                );
            }
            None => {
                ok = false;
                println!("L2 probe {name}: no RateLimit header after the restart");
            }
        }
    }
    println!("L2 probe B: its last admission was {since_b:.1} s before the read after the restart");
    // Alarm: the quiet org gets no request after the restart for 10 s.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let after1 = org_last_run(ctx, quiet).await;
    tokio::time::sleep(Duration::from_secs(6)).await;
    let after2 = org_last_run(ctx, quiet).await;
    let fired_unprompted = after1.is_some_and(|t| t > back_ms);
    let advancing = matches!((after1, after2), (Some(x), Some(y)) if y > x);
    let show = |t: Option<i64>| t.map_or("none".into(), |t| format!("{:+.1}s", (t - back_ms) as f64 / 1000.0));
    println!(
        "alarm (quiet org, times relative to the server answering again): last run at start {}, before stop {}, \
         first read 10 s after restart {} → {}; 6 s later {} → {}",
        show(last0),
        show(last_before),
        show(after1),
        if fired_unprompted { "fired with no request after the restart" } else { "had NOT fired until this request" },
        show(after2),
        if advancing { "advancing (armed)" } else { "NOT advancing" }
    );
    ok && advancing
}

async fn create_key(client_ctx: &Ctx, admin: &str, name: &str) -> Result<String, String> {
    let body = json!({ "name": name, "scopes": ["ingest", "read"] });
    for _ in 0..5 {
        match client_ctx.call(None, Method::POST, "/v1/keys", admin, Some(&body), &[]).await {
            Ok(a) if a.status.is_success() => {
                return a.body["key"].as_str().map(str::to_string).ok_or_else(|| format!("no key in {}", a.body));
            }
            Ok(a) => eprintln!("create key: {} {}", a.status, a.body),
            Err(e) => eprintln!("create key: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err("could not create a key".into())
}

/// Runs the load benchmark; `Ok(false)` when a check fails.
pub async fn run(args: &Args) -> Result<bool, String> {
    let duration = Duration::from_secs(args.num("duration", 300)?);
    let concurrency: usize = args.num("concurrency", 12)?;
    let keys_per_org: usize = args.num("keys-per-org", 3)?;
    let timeout = Duration::from_millis(args.num("timeout-ms", 10_000)?);
    let restart_at = args.opt("restart-at").map(|s| s.parse::<u64>().map(Duration::from_secs));
    let restart_at = restart_at.transpose().map_err(|_| "--restart-at must be a number".to_string())?;
    let file = std::fs::read_to_string(args.req("orgs-file")?).map_err(|e| format!("orgs file: {e}"))?;
    let mut orgs = Vec::new();
    for line in file.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line).map_err(|e| format!("orgs file: {e}"))?;
        let s = |k: &str| v[k].as_str().map(str::to_string).ok_or_else(|| format!("orgs file: no {k}"));
        orgs.push(Org { id: s("org_id")?, admin: s("key")?, keys: Vec::new() });
    }
    let active = orgs.len() - usize::from(restart_at.is_some());
    if active == 0 {
        return Err("need at least one org (two with --restart-at)".into());
    }
    let client = Client::builder()
        .timeout(timeout)
        .pool_max_idle_per_host(concurrency + 8)
        .build()
        .map_err(|e| e.to_string())?;
    let run = format!("run{}", now_ms());
    let n = orgs.len();
    let mut ctx = Ctx {
        client,
        url: args.req("url")?.trim_end_matches('/').to_string(),
        run,
        orgs,
        active,
        batch_size: args.num("batch-size", 10)?,
        mcp: false,
        stats: RefCell::new(Stats {
            acked: vec![HashMap::new(); n],
            ids: vec![Vec::new(); n],
            abandoned: vec![HashSet::new(); n],
            ..Stats::default()
        }),
        counter: std::cell::Cell::new(0),
        start: Instant::now(),
    };
    // Keys through the API (ingest + read), plus two L2 probe keys in org 0.
    let mut probes = Vec::new();
    for i in 0..n {
        let admin = ctx.orgs[i].admin.clone();
        for k in 0..keys_per_org.max(1) {
            let key = create_key(&ctx, &admin, &format!("load key {k}")).await?;
            ctx.orgs[i].keys.push(key);
        }
    }
    if restart_at.is_some() {
        let admin = ctx.orgs[0].admin.clone();
        probes.push(create_key(&ctx, &admin, "l2 probe A").await?);
        probes.push(create_key(&ctx, &admin, "l2 probe B").await?);
    }
    let probe = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let k0 = ctx.orgs[0].keys[0].clone();
    let mcp = ctx
        .call(
            None,
            Method::POST,
            "/mcp",
            &k0,
            Some(&probe),
            &[("Accept", MCP_ACCEPT), ("MCP-Protocol-Version", MCP_VERSION)],
        )
        .await
        .map(|a| a.status);
    ctx.mcp = matches!(mcp, Ok(StatusCode::OK));
    println!(
        "load: {} orgs × {} keys, concurrency {concurrency}, {} s, batch {} items, MCP {}",
        active,
        keys_per_org,
        duration.as_secs(),
        ctx.batch_size,
        if ctx.mcp { "included".to_string() } else { format!("left out (tools/list answered {mcp:?})") }
    );
    if let Some(f) = args.opt("ready-file") {
        std::fs::write(&f, "ready\n").map_err(|e| format!("ready file: {e}"))?;
    }
    let start = Instant::now();
    ctx.start = start;
    let ctx = &ctx;
    let until = start + duration;
    let workers = join_all((0..concurrency).map(|_| ctx.worker(until)));
    let probes_ok = async {
        match restart_at {
            Some(at) => restart_probes(ctx, at, &probes[0], &probes[1], n - 1).await,
            None => true,
        }
    };
    let (_, probes_ok) = futures::join!(workers, probes_ok);
    let wall = start.elapsed().as_secs_f64();

    let (acked, five_xx) = {
        let st = ctx.stats.borrow();
        let requests: u64 = st.status.values().sum();
        let acked: usize = st.acked.iter().map(HashMap::len).sum();
        println!(
            "{requests} responses in {wall:.0} s = {:.1} req/s; {acked} interactions acknowledged = {:.1}/s; \
             {} retries; transport errors {:?}",
            requests as f64 / wall,
            acked as f64 / wall,
            st.retries,
            st.transport.iter().map(|(r, c)| (r.name(), *c)).collect::<Vec<_>>()
        );
        println!("{:<28}{:>9}{:>9}{:>9}{:>9}{:>9}  statuses", "route", "n", "p50 ms", "p90 ms", "p99 ms", "max ms");
        for (route, h) in &st.hist {
            let statuses: Vec<String> =
                st.status.iter().filter(|((r, _), _)| r == route).map(|((_, s), c)| format!("{s}×{c}")).collect();
            let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
            println!(
                "{:<28}{:>9}{:>9.1}{:>9.1}{:>9.1}{:>9.1}  {}",
                route.name(),
                h.len(),
                ms(0.5),
                ms(0.9),
                ms(0.99),
                h.max() as f64 / 1000.0,
                statuses.join(" ")
            );
        }
        let five_xx: u64 = st.status.iter().filter(|((_, s), _)| *s >= 500).map(|(_, c)| *c).sum();
        let other_4xx: u64 = st.status.iter().filter(|((_, s), _)| (400..500).contains(s)).map(|(_, c)| *c).sum();
        println!("5xx: {five_xx}; 4xx: {other_4xx}; MCP JSON-RPC/tool errors in 200s: {}", st.mcp_errors);
        for line in &st.five_xx {
            println!("  {line}");
        }
        (acked, five_xx)
    };

    // Verification: every org's stored interactions against what was acknowledged.
    let (mut stored_total, mut missing, mut dupes, mut unacked, mut mismatched) =
        (0usize, 0usize, 0usize, 0usize, 0usize);
    let mut abandoned_total = 0usize;
    for org in 0..active {
        let stored = ctx.stored(org).await?;
        let st = ctx.stats.borrow();
        let acked = &st.acked[org];
        abandoned_total += st.abandoned[org].len();
        stored_total += stored.len();
        let mut seen: HashMap<&str, &str> = HashMap::new();
        for (id, k) in &stored {
            if seen.insert(k.as_str(), id.as_str()).is_some() {
                dupes += 1;
            }
            match acked.get(k) {
                None if !st.abandoned[org].contains(k) => unacked += 1,
                Some(a) if a != id => mismatched += 1,
                _ => {}
            }
        }
        missing += acked.iter().filter(|(k, id)| seen.get(k.as_str()) != Some(&id.as_str())).count();
        println!("  {}: acknowledged {}, stored {}", ctx.orgs[org].id, acked.len(), stored.len());
    }
    println!(
        "verify: acknowledged {acked}, stored {stored_total}; acknowledged but missing {missing}; duplicate \
         idempotency keys {dupes}; stored but never acknowledged {unacked}; id differs from the acknowledged one \
         {mismatched}; given up after retries {abandoned_total}"
    );
    let ok = five_xx == 0
        && acked == stored_total
        && missing == 0
        && dupes == 0
        && unacked == 0
        && mismatched == 0
        && abandoned_total == 0;
    println!("checks {}", if ok && probes_ok { "PASSED" } else { "FAILED" });
    Ok(ok && probes_ok)
}
