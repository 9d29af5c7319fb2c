//! Alert delivery by webhook, pure: endpoint requests and the URL policy
//! (SSRF), Standard Webhooks signing and verification, the retry schedule
//! (exponential backoff with jitter, bounded in attempts and in age), event
//! payloads and the delivery settings. The OrgActor stores and sends
//! (`durable/src/webhooks.rs`); nothing here reads a clock or the network.
//!
//! Signing follows the Standard Webhooks specification: the signed content is
//! `"{webhook-id}.{webhook-timestamp}.{body}"`, HMAC-SHA256 keyed with the
//! secret's bytes (`whsec_` + base64), sent as `webhook-signature: v1,<base64>`;
//! during a secret rotation the message carries one signature per live
//! secret, separated by spaces.

use crate::alerts::AlertView;
use crate::field_errors::FieldErrors;
use crate::ids::{RequestId, ID_ENTROPY_BYTES};
use crate::retention::bounded_setting;
use crate::timefmt::rfc3339;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use subtle::ConstantTimeEq;

/// Most webhook endpoints one org may have.
pub const MAX_WEBHOOKS_PER_ORG: usize = 10;
/// Longest accepted endpoint URL.
pub const MAX_URL_LEN: usize = 2048;
/// How long one delivery attempt may take before it is abandoned.
pub const ATTEMPT_TIMEOUT_MS: u64 = 10_000;
/// Most bytes of a receiver's response body read (kept in the delivery log).
pub const RESPONSE_READ_LIMIT: usize = 4096;
/// Most characters of a receiver's response kept in the delivery log.
pub const RESPONSE_EXCERPT_CHARS: usize = 256;
/// How long the previous secret keeps signing after a rotation.
pub const SECRET_OVERLAP_MS: i64 = 24 * 3600 * 1000;
/// Bytes of a signing secret.
pub const SECRET_BYTES: usize = 32;
/// The `whsec_` prefix of a secret's text.
pub const SECRET_PREFIX: &str = "whsec_";
/// Most attempts of one delivery (the age limit usually ends it first).
pub const MAX_ATTEMPTS: u32 = 20;
/// Longest wait between two attempts.
pub const MAX_RETRY_DELAY_MS: i64 = 6 * 3600 * 1000;
/// A receiver should refuse a message whose timestamp is further than this
/// from its own clock (replay protection, as the specification recommends).
pub const TIMESTAMP_TOLERANCE_S: i64 = 5 * 60;
/// Due deliveries one alarm run sends at most (the rest are due at once).
pub const DELIVERIES_PER_RUN: u32 = 20;
/// Delivery log rows kept per endpoint (older ones are deleted).
pub const DELIVERY_LOG_PER_WEBHOOK: u32 = 1000;
/// Body cap of `POST /v1/webhooks` (that of the other management bodies).
pub const WEBHOOK_BODY_LIMIT: u64 = crate::keys::MANAGEMENT_BODY_LIMIT;

/// Names of the delivery vars.
pub mod var {
    /// `enabled` lets endpoints be `http://` on a loopback address (tests only).
    pub const WEBHOOK_ALLOW_LOOPBACK: &str = "WEBHOOK_ALLOW_LOOPBACK";
    /// The first retry's delay; each further one doubles (with jitter).
    pub const WEBHOOK_RETRY_BASE_MS: &str = "WEBHOOK_RETRY_BASE_MS";
    /// How long a delivery is retried before its endpoint is marked failing.
    pub const WEBHOOK_MAX_AGE_MS: &str = "WEBHOOK_MAX_AGE_MS";
    /// How long a burst alert must be quiet before it resolves by itself.
    pub const ALERT_QUIET_MS: &str = "ALERT_QUIET_MS";
}

/// Delivery and alert lifecycle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryConfig {
    /// Whether `http://` loopback endpoints are accepted (tests only).
    pub allow_loopback: bool,
    /// The first retry's delay.
    pub retry_base_ms: i64,
    /// The age after which a delivery is given up.
    pub max_age_ms: i64,
    /// Quiet time after which a burst alert resolves by itself.
    pub alert_quiet_ms: i64,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self { allow_loopback: false, retry_base_ms: 30_000, max_age_ms: 24 * 3600 * 1000, alert_quiet_ms: 3600 * 1000 }
    }
}

impl DeliveryConfig {
    /// Reads the vars; out-of-bounds values take the default (with a warning).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let d = Self::default();
        let mut warnings = Vec::new();
        let allow_loopback = match get(var::WEBHOOK_ALLOW_LOOPBACK).as_deref() {
            Some("enabled") => true,
            None | Some("" | "disabled") => false,
            Some(other) => {
                warnings.push(format!("WEBHOOK_ALLOW_LOOPBACK={other:?} is neither \"enabled\" nor \"disabled\""));
                false
            }
        };
        let mut setting = |name: &str, default: i64, min: i64, max: i64| {
            let (v, w) = bounded_setting(name, get(name).as_deref(), default, min, max);
            warnings.extend(w);
            v
        };
        let retry_base_ms = setting(var::WEBHOOK_RETRY_BASE_MS, d.retry_base_ms, 100, 3_600_000);
        let max_age_ms = setting(var::WEBHOOK_MAX_AGE_MS, d.max_age_ms, 1_000, d.max_age_ms);
        let alert_quiet_ms = setting(var::ALERT_QUIET_MS, d.alert_quiet_ms, 1_000, 30 * 24 * 3600 * 1000);
        (Self { allow_loopback, retry_base_ms, max_age_ms, alert_quiet_ms }, warnings)
    }
}

/// What an endpoint can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub enum EventType {
    #[serde(rename = "alert.opened")]
    AlertOpened,
    #[serde(rename = "alert.resolved")]
    AlertResolved,
}

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 2] = [EventType::AlertOpened, EventType::AlertResolved];

    /// The wire and storage name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AlertOpened => "alert.opened",
            EventType::AlertResolved => "alert.resolved",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// Event types as stored: comma-separated, sorted, no duplicates.
pub fn events_to_db(events: &[EventType]) -> String {
    let mut v: Vec<EventType> = events.to_vec();
    v.sort();
    v.dedup();
    v.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(",")
}

/// Event types from storage (unknown names are skipped).
pub fn events_from_db(s: &str) -> Vec<EventType> {
    s.split(',').filter_map(EventType::parse).collect()
}

/// A checked `POST /v1/webhooks` body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookRequest {
    pub url: String,
    pub events: Vec<EventType>,
}

/// Checks a `POST /v1/webhooks` body: `url` (required, see [`check_url`]) and
/// `events` (optional, default every type); unknown fields are refused.
pub fn parse_webhook_request(body: &Value, allow_loopback: bool) -> Result<WebhookRequest, FieldErrors> {
    let mut errs = FieldErrors::new();
    let Some(obj) = body.as_object() else {
        errs.push("body", "must be a JSON object");
        return Err(errs);
    };
    for k in obj.keys().filter(|k| !["url", "events"].contains(&k.as_str())) {
        errs.push(k, "unknown field");
    }
    let url = match obj.get("url") {
        Some(Value::String(u)) => check_url(u, allow_loopback).map_err(|m| errs.push("url", m)).ok(),
        Some(_) => {
            errs.push("url", "must be a string");
            None
        }
        None => {
            errs.push("url", "is required");
            None
        }
    };
    let events = match obj.get("events") {
        None => EventType::ALL.to_vec(),
        Some(Value::Array(list)) if !list.is_empty() && list.len() <= 16 => {
            let parsed: Vec<Option<EventType>> = list.iter().map(|v| v.as_str().and_then(EventType::parse)).collect();
            for (i, p) in parsed.iter().enumerate() {
                if p.is_none() {
                    errs.push(&format!("events[{i}]"), "must be alert.opened or alert.resolved");
                }
            }
            let mut events: Vec<EventType> = parsed.into_iter().flatten().collect();
            events.sort();
            events.dedup();
            events
        }
        Some(_) => {
            errs.push("events", "must be a non-empty array of event types");
            Vec::new()
        }
    };
    match url {
        Some(url) if errs.is_empty() => Ok(WebhookRequest { url, events }),
        _ => Err(errs),
    }
}

/// Host names that name internal services (metadata endpoints, local names).
const BLOCKED_NAMES: [&str; 4] = ["localhost", "metadata.google.internal", "metadata", "instance-data"];
/// Name suffixes that are never public.
const BLOCKED_SUFFIXES: [&str; 6] = [".localhost", ".local", ".internal", ".lan", ".home.arpa", ".intranet"];

/// Checks an endpoint URL against the SSRF policy and returns it as stored.
///
/// `https://` only, with a host name or a public IP literal; no user info,
/// no fragment. Refused: loopback, private (RFC 1918), link-local (incl. the
/// 169.254.169.254 metadata address), CGNAT (100.64/10), unspecified,
/// multicast, broadcast and reserved IPv4; loopback, unspecified,
/// unique-local (fc00::/7), link-local (fe80::/10), multicast and
/// IPv4-mapped/compatible forms of the above in IPv6; `localhost`,
/// `*.localhost`, `*.local`, `*.internal` and metadata host names; and
/// numeric host forms other than a dotted quad (`2130706433`, `0x7f.1`,
/// `127.1`). With `allow_loopback` (tests), `http://` or `https://` to a
/// loopback literal or `localhost` is accepted as well.
pub fn check_url(raw: &str, allow_loopback: bool) -> Result<String, String> {
    if raw.len() > MAX_URL_LEN {
        return Err(format!("must be at most {MAX_URL_LEN} characters"));
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain whitespace or control characters".into());
    }
    let (scheme, rest) = raw.split_once("://").ok_or("must be an absolute https:// URL")?;
    if scheme != "https" && !(allow_loopback && scheme == "http") {
        return Err("must use https".into());
    }
    if rest.contains('#') {
        return Err("must not have a fragment".into());
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.contains('@') {
        return Err("must not contain user info".into());
    }
    let (host, port) = split_host_port(authority)?;
    let host = host.to_ascii_lowercase();
    let loopback = is_loopback_host(&host);
    if loopback && allow_loopback {
        return Ok(format!("{scheme}://{}{}{path}", host_text(&host), port_text(port)));
    }
    if scheme != "https" {
        return Err("must use https".into());
    }
    check_host(&host)?;
    Ok(format!("{scheme}://{}{}{path}", host_text(&host), port_text(port)))
}

fn host_text(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

fn port_text(port: Option<u16>) -> String {
    port.map(|p| format!(":{p}")).unwrap_or_default()
}

/// Splits `host[:port]` or `[v6][:port]`.
fn split_host_port(authority: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("has an unclosed IPv6 bracket")?;
        match after {
            "" => (h, None),
            p => (h, Some(p.strip_prefix(':').ok_or("has a malformed port")?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("must name a host".into());
    }
    let port = match port {
        None => None,
        Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p > 0).ok_or("has an invalid port")?),
    };
    Ok((host, port))
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || match host.parse::<IpAddr>() {
            Ok(ip) => ip.is_loopback(),
            Err(_) => false,
        }
}

/// Refuses hosts that are not public.
fn check_host(host: &str) -> Result<(), String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return if is_public_ip(ip) { Ok(()) } else { Err("must not target a private or reserved address".into()) };
    }
    let name = host.trim_end_matches('.');
    let valid = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if !valid {
        return Err("must name a valid host".into());
    }
    // A last label that starts with a digit is a numeric form of an address
    // (`2130706433`, `127.1`, `0x7f.1`), not a public name.
    let last = name.rsplit('.').next().unwrap_or_default();
    if last.starts_with(|c: char| c.is_ascii_digit()) {
        return Err("must be a dotted-quad IPv4 address or a host name".into());
    }
    if !name.contains('.')
        || BLOCKED_NAMES.contains(&name)
        || BLOCKED_SUFFIXES.iter().any(|s| name.ends_with(s) || name == &s[1..])
    {
        return Err("must not target an internal host name".into());
    }
    Ok(())
}

/// Whether `ip` is a public unicast address.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (o[1] & 0xC0) == 64) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xFE) == 18) // benchmarking 198.18/15
        || o[0] >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 (64:ff9b::/96) embed an IPv4 address.
    if s[..6] == [0, 0, 0, 0, 0, 0] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return !ip.is_unspecified() && !ip.is_loopback() && is_public_v4(v4);
    }
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || (s[0] & 0xFE00) == 0xFC00 // unique local fc00::/7
        || (s[0] & 0xFFC0) == 0xFE80 // link-local fe80::/10
        || (s[0] & 0xFFC0) == 0xFEC0 // site-local (deprecated) fec0::/10
        || s[0] == 0x2001 && s[1] == 0x0db8) // documentation
}

/// A signing secret's text (`whsec_` + base64 of [`SECRET_BYTES`] bytes).
pub fn secret_text(entropy: &[u8; SECRET_BYTES]) -> String {
    format!("{SECRET_PREFIX}{}", B64.encode(entropy))
}

/// The key bytes of a secret's text (`None` when it is not one).
pub fn secret_key(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.strip_prefix(SECRET_PREFIX)?).ok().filter(|k| !k.is_empty())
}

/// One `v1,<base64>` signature of `body` sent as message `msg_id` at `ts_s`.
pub fn sign(key: &[u8], msg_id: &str, ts_s: i64, body: &[u8]) -> String {
    format!("v1,{}", B64.encode(mac(key, msg_id, ts_s, body)))
}

fn mac(key: &[u8], msg_id: &str, ts_s: i64, body: &[u8]) -> Vec<u8> {
    // HMAC accepts keys of any length; the error arm cannot happen.
    let Ok(mut m) = Hmac::<Sha256>::new_from_slice(key) else { return Vec::new() };
    m.update(msg_id.as_bytes());
    m.update(b".");
    m.update(ts_s.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().to_vec()
}

/// The `webhook-signature` header value: one signature per secret text
/// (unreadable secrets are skipped), space-separated.
pub fn signature_header(secrets: &[&str], msg_id: &str, ts_s: i64, body: &[u8]) -> String {
    secrets.iter().filter_map(|s| secret_key(s)).map(|k| sign(&k, msg_id, ts_s, body)).collect::<Vec<_>>().join(" ")
}

/// How a receiver checks a message: the timestamp within
/// [`TIMESTAMP_TOLERANCE_S`] of `now_s`, and one `v1` signature of the header
/// matching (constant-time compare).
pub fn verify(secret: &str, msg_id: &str, ts_s: i64, body: &[u8], header: &str, now_s: i64) -> bool {
    let Some(key) = secret_key(secret) else { return false };
    if (now_s - ts_s).abs() > TIMESTAMP_TOLERANCE_S {
        return false;
    }
    let expected = mac(&key, msg_id, ts_s, body);
    header
        .split(' ')
        .filter_map(|sig| sig.strip_prefix("v1,"))
        .filter_map(|b| B64.decode(b).ok())
        .any(|got| got.len() == expected.len() && bool::from(got.ct_eq(&expected)))
}

/// The wait before attempt `attempt + 1` after attempt `attempt` (1-based)
/// failed: `base · 2^(attempt-1)`, capped at [`MAX_RETRY_DELAY_MS`], with
/// "equal jitter": half fixed, half scaled by `random` (0..=u16::MAX).
pub fn retry_delay_ms(attempt: u32, base_ms: i64, random: u16) -> i64 {
    let exp = attempt.saturating_sub(1).min(40);
    let full = base_ms.max(1).saturating_mul(1i64 << exp).min(MAX_RETRY_DELAY_MS);
    let half = full / 2;
    half + (half as i128 * i128::from(random) / i128::from(u16::MAX)) as i64
}

/// When to try again after attempt `attempt` failed at `now_ms`, for a
/// delivery first queued at `created_ms`; `None` when it is given up (the
/// attempts are used up, or the next one would fall past `max_age_ms`).
pub fn next_attempt_at(created_ms: i64, attempt: u32, now_ms: i64, cfg: &DeliveryConfig, random: u16) -> Option<i64> {
    if attempt >= MAX_ATTEMPTS {
        return None;
    }
    let at = now_ms.saturating_add(retry_delay_ms(attempt, cfg.retry_base_ms, random));
    (at <= created_ms.saturating_add(cfg.max_age_ms)).then_some(at)
}

/// Whether a receiver's status acknowledges the message.
pub fn acknowledged(status: u16) -> bool {
    (200..300).contains(&status)
}

/// A new endpoint id (`whk_` + a sortable id).
pub fn new_webhook_id(now_ms: i64, entropy: &[u8; ID_ENTROPY_BYTES]) -> String {
    retag(RequestId::generate(now_ms.max(0) as u64, entropy).as_str(), "whk_")
}

/// A new message id (`msg_` + a sortable id): the `webhook-id` of one event,
/// the same on every retry.
pub fn new_message_id(now_ms: i64, entropy: &[u8; ID_ENTROPY_BYTES]) -> String {
    retag(RequestId::generate(now_ms.max(0) as u64, entropy).as_str(), "msg_")
}

fn retag(id: &str, tag: &str) -> String {
    format!("{tag}{}", id.strip_prefix(RequestId::TAG).unwrap_or(id))
}

/// Checks a path's endpoint id; its canonical text, or `None` (a 404).
pub fn parse_webhook_id(raw: &str) -> Option<String> {
    let body = raw.strip_prefix("whk_")?;
    RequestId::parse(&format!("{}{body}", RequestId::TAG)).map(|r| retag(r.as_str(), "whk_"))
}

/// The body of an alert event (Standard Webhooks payload shape: `type`,
/// `timestamp`, `data`).
pub fn alert_payload(event: EventType, alert: &AlertView, at_ms: i64) -> String {
    json!({ "type": event.as_str(), "timestamp": rfc3339(at_ms), "data": alert }).to_string()
}

/// An endpoint's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookState {
    /// Deliveries are made.
    Active,
    /// A delivery was given up after its retries; new events are still
    /// queued and delivered, and the next acknowledged one makes it active.
    Failing,
}

/// An endpoint as `GET /v1/webhooks` lists it (never its secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookView {
    pub id: String,
    pub url: String,
    pub events: Vec<EventType>,
    pub state: WebhookState,
    pub created_at: String,
    /// When the previous secret stops signing, during a rotation's overlap.
    pub previous_secret_expires_at: Option<String>,
}

/// One attempt of a delivery, as `GET /v1/webhooks/{id}/deliveries` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryView {
    /// The message's `webhook-id`.
    pub message_id: String,
    pub event: String,
    pub attempt: u32,
    /// The receiver's status, `None` when no response came.
    pub status: Option<u16>,
    pub duration_ms: i64,
    pub outcome: String,
    pub error: Option<String>,
    pub at: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secret() -> String {
        secret_text(&[7; SECRET_BYTES])
    }

    // claim: threat.webhook-replay
    #[test]
    fn standard_webhooks_reference_vector() {
        // The specification's example: secret, id, timestamp, body, signature.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let sig = signature_header(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    // claim: threat.webhook-replay
    #[test]
    fn verify_accepts_own_signatures_and_refuses_tampering() {
        let s = secret();
        let h = signature_header(&[&s], "msg_1", 1000, b"{}");
        assert!(verify(&s, "msg_1", 1000, b"{}", &h, 1000));
        assert!(!verify(&s, "msg_1", 1000, b"{ }", &h, 1000), "body changed");
        assert!(!verify(&s, "msg_2", 1000, b"{}", &h, 1000), "id changed");
        assert!(!verify(&s, "msg_1", 1001, b"{}", &h, 1001), "timestamp changed");
        assert!(!verify(&s, "msg_1", 1000, b"{}", &h, 1000 + TIMESTAMP_TOLERANCE_S + 1), "too old");
        let mut tampered = h.clone().into_bytes();
        let i = tampered.len() - 3;
        tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
        assert!(!verify(&s, "msg_1", 1000, b"{}", std::str::from_utf8(&tampered).unwrap(), 1000));
        assert!(!verify(&secret_text(&[8; SECRET_BYTES]), "msg_1", 1000, b"{}", &h, 1000), "other secret");
    }

    // claim: threat.webhook-secrets
    #[test]
    fn rotation_signs_with_both_secrets() {
        let (old, new) = (secret(), secret_text(&[9; SECRET_BYTES]));
        let h = signature_header(&[&new, &old], "msg_1", 5, b"x");
        assert_eq!(h.split(' ').count(), 2);
        assert!(verify(&old, "msg_1", 5, b"x", &h, 5));
        assert!(verify(&new, "msg_1", 5, b"x", &h, 5));
    }

    // claim: threat.webhook-ssrf, owasp.api7
    #[test]
    fn url_policy_examples() {
        for ok in [
            "https://hooks.example.com/in",
            "https://example.com:8443/x?y=1",
            "https://8.8.8.8/",
            "https://[2606:4700::1]/",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://hooks.example.com/",
            "ftp://example.com/",
            "https://localhost/",
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://172.16.0.1/",
            "https://192.168.1.1/",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://[::ffff:169.254.169.254]/",
            "https://2130706433/",
            "https://0x7f000001/",
            "https://127.1/",
            "https://metadata.google.internal/",
            "https://printer.local/",
            "https://api.localhost/",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
            "https://intranet/",
            "https:///path",
            "https://example.com:0/",
            "https://example.com:99999/",
            "HTTPS://example.com/",
        ] {
            assert!(check_url(bad, false).is_err(), "{bad}");
        }
        assert!(check_url("http://127.0.0.1:9000/hook", true).is_ok());
        assert!(check_url("http://localhost:9000/hook", true).is_ok());
        assert!(check_url("http://10.0.0.1/hook", true).is_err(), "only loopback is opened by the test switch");
        assert!(check_url("http://example.com/hook", true).is_err());
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = 30_000;
        assert_eq!(retry_delay_ms(1, base, 0), 15_000);
        assert_eq!(retry_delay_ms(1, base, u16::MAX), 30_000);
        assert_eq!(retry_delay_ms(2, base, u16::MAX), 60_000);
        assert_eq!(retry_delay_ms(30, base, u16::MAX), MAX_RETRY_DELAY_MS);
    }

    // claim: threat.webhook-delivery
    #[test]
    fn a_delivery_is_given_up_within_a_day() {
        let cfg = DeliveryConfig::default();
        let (mut now, mut attempt) = (0i64, 1u32);
        while let Some(next) = next_attempt_at(0, attempt, now, &cfg, u16::MAX) {
            now = next;
            attempt += 1;
        }
        assert!(now <= 24 * 3600 * 1000, "last attempt at {now}");
        assert!(attempt >= 10, "only {attempt} attempts");
    }

    #[test]
    fn request_parsing() {
        let r = parse_webhook_request(&json!({ "url": "https://h.example.com/x" }), false).unwrap();
        assert_eq!(r.events, EventType::ALL.to_vec());
        let r =
            parse_webhook_request(&json!({ "url": "https://h.example.com/x", "events": ["alert.resolved"] }), false)
                .unwrap();
        assert_eq!(r.events, vec![EventType::AlertResolved]);
        for bad in [
            json!({}),
            json!({ "url": 5 }),
            json!({ "url": "https://h.example.com", "events": [] }),
            json!({ "url": "https://h.example.com", "events": ["nope"] }),
            json!({ "url": "https://h.example.com", "other": 1 }),
            json!([1]),
        ] {
            assert!(parse_webhook_request(&bad, false).is_err(), "{bad}");
        }
        assert_eq!(events_from_db(&events_to_db(&[EventType::AlertResolved, EventType::AlertOpened])), EventType::ALL);
    }

    #[test]
    fn ids_roundtrip() {
        let id = new_webhook_id(1_700_000_000_000, &[3; ID_ENTROPY_BYTES]);
        assert!(id.starts_with("whk_"));
        assert_eq!(parse_webhook_id(&id.to_lowercase()), Some(id.clone()));
        assert_eq!(parse_webhook_id("whk_nope"), None);
        assert!(new_message_id(1, &[1; ID_ENTROPY_BYTES]).starts_with("msg_"));
    }

    #[test]
    fn config_bounds() {
        let (c, w) = DeliveryConfig::from_vars(|_| None);
        assert_eq!((c, w.len()), (DeliveryConfig::default(), 0));
        let (c, w) = DeliveryConfig::from_vars(|n| match n {
            var::WEBHOOK_ALLOW_LOOPBACK => Some("enabled".into()),
            var::WEBHOOK_RETRY_BASE_MS => Some("200".into()),
            var::WEBHOOK_MAX_AGE_MS => Some("999999999999".into()),
            _ => None,
        });
        assert!(c.allow_loopback);
        assert_eq!(c.retry_base_ms, 200);
        assert_eq!(c.max_age_ms, 24 * 3600 * 1000, "never more than a day");
        assert_eq!(w.len(), 1);
    }

    proptest! {
        #[test]
        fn signatures_verify_and_any_byte_flip_fails(
            key in proptest::array::uniform32(any::<u8>()),
            body in proptest::collection::vec(any::<u8>(), 0..200),
            ts in 0i64..4_000_000_000,
            flip in any::<usize>(),
        ) {
            let s = secret_text(&key);
            let h = signature_header(&[&s], "msg_x", ts, &body);
            prop_assert!(verify(&s, "msg_x", ts, &body, &h, ts));
            if !body.is_empty() {
                let mut b = body.clone();
                let i = flip % b.len();
                b[i] ^= 1;
                prop_assert!(!verify(&s, "msg_x", ts, &b, &h, ts));
            }
        }

        #[test]
        fn jittered_delay_is_within_half_and_full(attempt in 1u32..60, base in 1i64..3_600_000, r in any::<u16>()) {
            let d = retry_delay_ms(attempt, base, r);
            let full = retry_delay_ms(attempt, base, u16::MAX);
            prop_assert!(d >= full / 2 && d <= full && full <= MAX_RETRY_DELAY_MS);
            prop_assert!(retry_delay_ms(attempt + 1, base, u16::MAX) >= full);
        }

        #[test]
        fn schedule_never_passes_the_age_limit(created in 0i64..1_000_000, attempt in 1u32..40, elapsed in 0i64..100_000_000, r in any::<u16>()) {
            let cfg = DeliveryConfig::default();
            if let Some(at) = next_attempt_at(created, attempt, created + elapsed, &cfg, r) {
                prop_assert!(at <= created + cfg.max_age_ms && at > created + elapsed);
            }
        }

        // claim: threat.webhook-ssrf
        #[test]
        fn private_v4_never_passes(a in any::<u8>(), b in any::<u8>(), c in any::<u8>()) {
            for prefix in [[10, a, b], [127, a, b], [192, 168, a], [169, 254, a], [100, 64 | (a & 63), b], [172, 16 | (a & 15), b]] {
                let url = format!("https://{}.{}.{}.{c}/", prefix[0], prefix[1], prefix[2]);
                prop_assert!(check_url(&url, false).is_err(), "{}", url);
                let mapped = format!("https://[::ffff:{}.{}.{}.{c}]/", prefix[0], prefix[1], prefix[2]);
                prop_assert!(check_url(&mapped, false).is_err(), "{}", mapped);
            }
        }

        // claim: threat.webhook-ssrf
        #[test]
        fn private_v6_never_passes(segs in proptest::array::uniform7(any::<u16>()), kind in 0usize..3) {
            let first = [0xfc00 | (segs[0] & 0x1ff), 0xfe80 | (segs[0] & 0x3f), 0xff00 | (segs[0] & 0xff)][kind];
            let ip = Ipv6Addr::new(first, segs[1], segs[2], segs[3], segs[4], segs[5], segs[6], segs[0]);
            let url = format!("https://[{ip}]/");
            prop_assert!(check_url(&url, false).is_err(), "{}", url);
        }
    }
}
