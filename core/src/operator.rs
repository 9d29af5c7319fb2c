//! The operator's signed call to the front Worker: `POST /v1/operator/reconcile`
//! asks an org's actor to read its keys again from D1 (after the operator
//! command revoked one behind its back).
//!
//! No new secret: the signing key is derived from the pepper, which the
//! operator command already holds, `k_op = HMAC-SHA-256(pepper,
//! "interlog/derive/operator/v1")` ([`Pepper::derive`] with [`KEY_LABEL`]).
//! The header is `x-interlog-operator: t=<unix ms>,v1=<hex HMAC-SHA-256(k_op,
//! "<t>.<body>")>`, accepted for [`WINDOW_MS`] either side of the receiver's
//! clock and compared in constant time. A replay inside the window can only
//! repeat an idempotent reconcile.

use crate::hash::Pepper;
use crate::ids::OrgId;
use crate::shard::ShardId;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The request header carrying the signature.
pub const HEADER: &str = "x-interlog-operator";
/// The label the signing key is derived from the pepper with.
pub const KEY_LABEL: &str = "operator/v1";
/// How far a signature's time may be from the receiver's clock, either way.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;
/// Largest body accepted (`{"org_id":"org_…"}` is about 45 bytes).
pub const BODY_LIMIT: u64 = 1024;
/// Who an audit row written by the operator command names as its actor
/// (`detail.actor`; the row has no request id or client address).
pub const ACTOR: &str = "operator";
/// The path of the reconcile call.
pub const RECONCILE_PATH: &str = "/v1/operator/reconcile";
/// The path of one step of an org's move between shards.
pub const MOVE_PATH: &str = "/v1/operator/move";

/// Longest `t=` value read (a Unix ms time has 13 digits until the year 2286).
const MAX_TIME_DIGITS: usize = 15;

/// Why a signature was refused. Every reason answers the same 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No header, or not `t=<digits>,v1=<64 hex>`.
    Malformed,
    /// Signed more than [`WINDOW_MS`] away from now.
    Stale,
    /// The signature does not match the body and time.
    BadSignature,
}

impl Reason {
    /// The audit reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "operator_malformed",
            Reason::Stale => "operator_stale",
            Reason::BadSignature => "operator_signature",
        }
    }
}

/// The body of `POST /v1/operator/reconcile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileRequest {
    pub org_id: OrgId,
}

impl ReconcileRequest {
    /// The body as the operator command sends it (and signs it).
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a body; `None` for anything but `{"org_id":"org_…"}`.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }
}

/// What one call of `POST /v1/operator/move` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MoveAction {
    /// Start the move, or take its next step.
    Step,
    /// Undo a move that has not switched yet (the copy is deleted).
    Rollback,
}

/// The body of `POST /v1/operator/move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub org_id: OrgId,
    pub to: ShardId,
    pub action: MoveAction,
}

impl MoveRequest {
    /// The body as the operator command sends it (and signs it).
    pub fn to_body(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Reads a body; `None` for anything but the three fields.
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }
}

fn mac(pepper: &Pepper, t: i64, body: &[u8]) -> [u8; 32] {
    let key = pepper.derive(KEY_LABEL);
    // HMAC accepts keys of any length; this cannot fail.
    let mut m =
        <Hmac<Sha256> as Mac>::new_from_slice(&key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    m.update(t.to_string().as_bytes());
    m.update(b".");
    m.update(body);
    m.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *o = (hi * 16 + lo) as u8;
    }
    Some(out)
}

/// The header value signing `body` at `now_ms`.
pub fn sign(pepper: &Pepper, now_ms: i64, body: &[u8]) -> String {
    format!("t={now_ms},v1={}", hex(&mac(pepper, now_ms, body)))
}

/// Reads `t=<digits>,v1=<64 hex>` (exactly that, nothing around it).
fn parse_header(header: &str) -> Option<(i64, [u8; 32])> {
    let (t, v1) = header.split_once(',')?;
    let t = t.strip_prefix("t=")?;
    if t.is_empty() || t.len() > MAX_TIME_DIGITS || !t.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((t.parse().ok()?, unhex32(v1.strip_prefix("v1=")?)?))
}

/// What can be refused without the pepper: a missing or malformed header,
/// or a time outside the window. Returns the signed time and the MAC.
fn well_formed_and_fresh(header: Option<&str>, now_ms: i64) -> Result<(i64, [u8; 32]), Reason> {
    let (t, given) = header.and_then(parse_header).ok_or(Reason::Malformed)?;
    if now_ms.abs_diff(t) > WINDOW_MS.unsigned_abs() {
        return Err(Reason::Stale);
    }
    Ok((t, given))
}

/// The checks [`verify`] makes before it needs the pepper, so a caller can
/// refuse a malformed or stale header without reading the secret.
pub fn precheck(header: Option<&str>, now_ms: i64) -> Result<(), Reason> {
    well_formed_and_fresh(header, now_ms).map(|_| ())
}

/// Checks the header of `body` at `now_ms` under `pepper`.
pub fn verify(pepper: &Pepper, header: Option<&str>, body: &[u8], now_ms: i64) -> Result<(), Reason> {
    let (t, given) = well_formed_and_fresh(header, now_ms)?;
    if bool::from(mac(pepper, t, body).ct_eq(&given)) {
        Ok(())
    } else {
        Err(Reason::BadSignature)
    }
}

/// [`verify`] under the current pepper, then (during a rotation) the previous
/// one: an operator command holding either is accepted.
pub fn verify_any(
    current: &Pepper,
    previous: Option<&Pepper>,
    header: Option<&str>,
    body: &[u8],
    now_ms: i64,
) -> Result<(), Reason> {
    match (verify(current, header, body, now_ms), previous) {
        (Err(Reason::BadSignature), Some(p)) => verify(p, header, body, now_ms),
        (result, _) => result,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NOW: i64 = 1_800_000_000_000;

    fn pepper(b: u8) -> Pepper {
        Pepper::new(1, vec![b; 32]).unwrap()
    }

    fn org() -> OrgId {
        OrgId::generate(1, &[7; crate::ids::ID_ENTROPY_BYTES])
    }

    #[test]
    fn a_fresh_signature_verifies() {
        let body = ReconcileRequest { org_id: org() }.to_body();
        let h = sign(&pepper(1), NOW, body.as_bytes());
        assert!(h.starts_with(&format!("t={NOW},v1=")));
        assert_eq!(h.len(), format!("t={NOW},v1=").len() + 64);
        assert_eq!(verify(&pepper(1), Some(&h), body.as_bytes(), NOW + 1000), Ok(()));
        assert_eq!(verify(&pepper(1), Some(&h), body.as_bytes(), NOW - WINDOW_MS), Ok(()));
        assert_eq!(
            verify(&pepper(1), Some(&h.to_uppercase().replace("T=", "t=").replace("V1=", "v1=")), body.as_bytes(), NOW),
            Ok(())
        );
    }

    #[test]
    fn old_future_wrong_and_malformed_signatures_are_refused() {
        let body = b"{\"org_id\":\"x\"}";
        let h = sign(&pepper(1), NOW, body);
        assert_eq!(verify(&pepper(1), Some(&h), body, NOW + WINDOW_MS + 1), Err(Reason::Stale));
        assert_eq!(verify(&pepper(1), Some(&h), body, NOW - WINDOW_MS - 1), Err(Reason::Stale));
        assert_eq!(verify(&pepper(2), Some(&h), body, NOW), Err(Reason::BadSignature));
        assert_eq!(verify(&pepper(1), Some(&h), b"{\"org_id\":\"y\"}", NOW), Err(Reason::BadSignature));
        let other_time = h.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert_eq!(verify(&pepper(1), Some(&other_time), body, NOW), Err(Reason::BadSignature));
        for bad in [
            "",
            "t=,v1=00",
            "v1=00,t=1",
            &format!("t=-{NOW},v1={}", "0".repeat(64)),
            &format!("t={NOW},v1={}", "0".repeat(63)),
            &format!("t={NOW},v1={}", "g".repeat(64)),
            &format!(" t={NOW},v1={}", "0".repeat(64)),
            &format!("t={NOW},v1={},", "0".repeat(64)),
            &format!("t={},v1={}", "9".repeat(40), "0".repeat(64)),
            &format!("t={NOW},v1={}", "é".repeat(32)),
        ] {
            assert_eq!(verify(&pepper(1), Some(bad), body, NOW), Err(Reason::Malformed), "{bad}");
        }
        assert_eq!(verify(&pepper(1), None, body, NOW), Err(Reason::Malformed));
    }

    #[test]
    fn the_precheck_refuses_what_verify_refuses_without_the_pepper() {
        let h = sign(&pepper(1), NOW, b"{}");
        assert_eq!(precheck(Some(&h), NOW), Ok(()));
        assert_eq!(precheck(Some(&h), NOW + WINDOW_MS + 1), Err(Reason::Stale));
        assert_eq!(precheck(Some("t=1"), NOW), Err(Reason::Malformed));
        assert_eq!(precheck(None, NOW), Err(Reason::Malformed));
    }

    #[test]
    fn the_previous_pepper_is_accepted_during_a_rotation() {
        let body = b"{}";
        let h = sign(&pepper(1), NOW, body);
        assert_eq!(verify_any(&pepper(2), Some(&pepper(1)), Some(&h), body, NOW), Ok(()));
        assert_eq!(verify_any(&pepper(2), None, Some(&h), body, NOW), Err(Reason::BadSignature));
        assert_eq!(verify_any(&pepper(2), Some(&pepper(3)), Some(&h), body, NOW), Err(Reason::BadSignature));
    }

    #[test]
    fn the_signing_key_is_not_the_pepper_nor_another_derivation() {
        let p = pepper(1);
        assert_ne!(p.derive(KEY_LABEL), [1; 32]);
        assert_ne!(p.derive(KEY_LABEL), p.derive("cursor/v1"));
    }

    #[test]
    fn the_body_is_one_org_id_and_nothing_else() {
        let body = ReconcileRequest { org_id: org() }.to_body();
        assert_eq!(body, format!("{{\"org_id\":\"{}\"}}", org()));
        assert_eq!(ReconcileRequest::parse(body.as_bytes()), Some(ReconcileRequest { org_id: org() }));
        for bad in ["{}", "{\"org_id\":\"nope\"}", "{\"org_id\":\"x\",\"more\":1}", "[]", "", "\u{ff}"] {
            assert_eq!(ReconcileRequest::parse(bad.as_bytes()), None, "{bad}");
        }
    }

    proptest! {
        // claim: threat.operator-endpoint
        /// Whatever the body, time and pepper: a signature verifies only for
        /// the same pepper, body and a time within the window; any other
        /// header text never verifies.
        #[test]
        fn only_the_signed_body_time_and_pepper_verify(
            body in proptest::collection::vec(any::<u8>(), 0..200),
            other in proptest::collection::vec(any::<u8>(), 0..200),
            t in 0i64..4_000_000_000_000,
            skew in -2 * WINDOW_MS..2 * WINDOW_MS,
            a in any::<u8>(),
            b in any::<u8>(),
            garbage in ".{0,120}",
        ) {
            let h = sign(&pepper(a), t, &body);
            let now = t + skew;
            let expected = if skew.abs() > WINDOW_MS { Err(Reason::Stale) } else { Ok(()) };
            prop_assert_eq!(verify(&pepper(a), Some(&h), &body, now), expected);
            if skew.abs() <= WINDOW_MS {
                let wrong_pepper = if a == b { Ok(()) } else { Err(Reason::BadSignature) };
                prop_assert_eq!(verify(&pepper(b), Some(&h), &body, now), wrong_pepper);
                let wrong_body = if body == other { Ok(()) } else { Err(Reason::BadSignature) };
                prop_assert_eq!(verify(&pepper(a), Some(&h), &other, now), wrong_body);
            }
            prop_assert!(verify(&pepper(a), Some(&garbage), &body, t).is_err());
        }
    }
}
