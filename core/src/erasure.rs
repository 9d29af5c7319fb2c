//! Erasure by actor: the job's identifier, its states and view, the request
//! body, the run settings and how one alarm run is cut into bounded chunks.
//!
//! The rule a job keeps (documented in the API spec and docs/erasure.md):
//! a job deletes every interaction of its actor, a chunk at a time; after each
//! chunk, in the same D1 transaction, it is marked `done` (with `finished_at`)
//! when no interaction of that actor is left. So every interaction of the actor
//! stored before `finished_at` is gone when the job reports `done`, including
//! those ingested while the job was running; one stored after `finished_at`
//! is kept (start another erasure for it).

use crate::crockford;
use crate::error::ApiError;
use crate::ids::ID_ENTROPY_BYTES;
use crate::interaction::MAX_LABEL_LEN;
use crate::retention::bounded_setting;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::fmt;

/// An erasure job's id: `era_` and 26 Crockford symbols (48-bit ms time and
/// 80 random bits, so ids sort by creation).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ErasureId(String);

impl ErasureId {
    /// The tag every erasure id starts with.
    pub const TAG: &'static str = "era_";

    /// A new id from the current time and 10 random bytes.
    pub fn generate(now_ms: u64, entropy: &[u8; ID_ENTROPY_BYTES]) -> Self {
        let time = u128::from(now_ms & 0xFFFF_FFFF_FFFF);
        let rand = entropy.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b));
        Self(format!("{}{}", Self::TAG, crockford::encode_u128((time << 80) | rand)))
    }

    /// Parses an id (tag exact, symbols any case).
    pub fn parse(s: &str) -> Option<Self> {
        let canon = crockford::parse_symbols::<26>(s.strip_prefix(Self::TAG)?)?;
        // The first symbol carries only 3 bits (130-bit space, 128 used).
        if canon[0] > b'7' {
            return None;
        }
        Some(Self(format!("{}{}", Self::TAG, std::str::from_utf8(&canon).ok()?)))
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ErasureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ErasureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ErasureId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| serde::de::Error::custom("invalid ErasureId"))
    }
}

/// Where a job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErasureState {
    /// Chunks are still being deleted by the actor's alarm.
    Running,
    /// No interaction of the actor was left at `finished_at`.
    Done,
}

impl ErasureState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            ErasureState::Running => "running",
            ErasureState::Done => "done",
        }
    }

    /// The state of its stored text.
    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "running" => Some(ErasureState::Running),
            "done" => Some(ErasureState::Done),
            _ => None,
        }
    }
}

/// A job as the API shows it (times in RFC 3339).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErasureView {
    pub id: String,
    pub actor: String,
    pub state: ErasureState,
    /// Interactions this job has deleted so far.
    pub deleted: u64,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// Reads the body of `POST /v1/erasures`: an object with exactly `actor`, a
/// string of 1-256 characters (the same bound as an interaction's actor).
pub fn parse_request(body: &Value) -> Result<String, ApiError> {
    let bad = |field: &str, message: &str| ApiError::Validation {
        message: format!("{field}: {message}"),
        details: Some(json!([{ "field": field, "message": message }])),
    };
    let obj = body.as_object().ok_or_else(|| ApiError::validation("body must be a JSON object"))?;
    if let Some(k) = obj.keys().find(|k| k.as_str() != "actor") {
        let field: String = k.chars().take(64).collect();
        return Err(bad(&field, "unknown field"));
    }
    match obj.get("actor") {
        None => Err(bad("actor", "is required")),
        Some(Value::String(a)) if !a.is_empty() && a.chars().count() <= MAX_LABEL_LEN => Ok(a.clone()),
        Some(Value::String(_)) => Err(bad("actor", &format!("must be 1-{MAX_LABEL_LEN} characters"))),
        Some(_) => Err(bad("actor", "must be a string")),
    }
}

/// `[vars]` names of the run settings.
pub const VAR_CHUNK_ROWS: &str = "ERASURE_CHUNK_ROWS";
pub const VAR_MAX_ROWS_PER_RUN: &str = "ERASURE_MAX_ROWS_PER_RUN";
pub const VAR_INTERVAL_MS: &str = "ERASURE_INTERVAL_MS";

/// How erasure jobs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErasureConfig {
    /// Rows deleted by one statement (one transaction) at most.
    pub chunk_rows: u32,
    /// Rows deleted by one alarm run (all running jobs together) at most.
    pub max_rows_per_run: u32,
    /// How soon the alarm runs again while a job is running.
    pub interval_ms: i64,
}

impl Default for ErasureConfig {
    fn default() -> Self {
        Self { chunk_rows: 500, max_rows_per_run: 5_000, interval_ms: 250 }
    }
}

impl ErasureConfig {
    /// Reads the settings; an invalid one takes its default plus a warning.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let d = Self::default();
        let mut warnings = Vec::new();
        let mut setting = |name: &str, default: i64, min: i64, max: i64| {
            let (v, w) = bounded_setting(name, var(name).as_deref(), default, min, max);
            warnings.extend(w);
            v
        };
        let chunk_rows = setting(VAR_CHUNK_ROWS, i64::from(d.chunk_rows), 1, 5_000);
        let max_rows_per_run = setting(VAR_MAX_ROWS_PER_RUN, i64::from(d.max_rows_per_run), 1, 100_000);
        let interval_ms = setting(VAR_INTERVAL_MS, d.interval_ms, 50, 60_000);
        let cfg = Self {
            chunk_rows: u32::try_from(chunk_rows).unwrap_or(d.chunk_rows),
            max_rows_per_run: u32::try_from(max_rows_per_run).unwrap_or(d.max_rows_per_run),
            interval_ms,
        };
        (cfg, warnings)
    }
}

/// The row budget of one alarm run, spent chunk by chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunBudget {
    left: u32,
    chunk: u32,
}

impl RunBudget {
    /// A fresh budget for one run.
    pub fn new(cfg: &ErasureConfig) -> Self {
        Self { left: cfg.max_rows_per_run.max(1), chunk: cfg.chunk_rows.max(1) }
    }

    /// The size of the next chunk, or `None` when the run's budget is spent.
    pub fn next_chunk(&self) -> Option<u32> {
        (self.left > 0).then(|| self.chunk.min(self.left))
    }

    /// Records a chunk of `limit` rows that deleted `deleted` (the database
    /// answers for what it deleted; never trusted past the limit). Returns
    /// whether that chunk was full (more rows may be left).
    pub fn spend(&mut self, limit: u32, deleted: u64) -> bool {
        let n = u32::try_from(deleted).unwrap_or(u32::MAX).min(limit);
        self.left = self.left.saturating_sub(n.max(1));
        n == limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ids_roundtrip_and_refuse_others() {
        let id = ErasureId::generate(1_700_000_000_000, &[7; 10]);
        assert!(id.as_str().starts_with("era_"));
        assert_eq!(ErasureId::parse(&id.as_str().to_lowercase()), Some(id.clone()));
        for bad in [
            "",
            "era_",
            "int_01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "era_01ARZ3NDEKTSV4RRFFQ69G5FA",
            "era_Z1ARZ3NDEKTSV4RRFFQ69G5FAV",
        ] {
            assert_eq!(ErasureId::parse(bad), None, "{bad}");
        }
        let back: ErasureId = serde_json::from_value(json!(id.as_str())).unwrap();
        assert_eq!(back, id);
    }

    #[test]
    fn request_body_needs_exactly_an_actor() {
        assert_eq!(parse_request(&json!({ "actor": "user-42" })).unwrap(), "user-42");
        for bad in [
            json!({}),
            json!({ "actor": "" }),
            json!({ "actor": 5 }),
            json!({ "actor": "x".repeat(257) }),
            json!({ "actor": "a", "org_id": "x" }),
            json!(["actor"]),
        ] {
            assert!(matches!(parse_request(&bad), Err(ApiError::Validation { .. })), "{bad}");
        }
        assert_eq!(parse_request(&json!({ "actor": "é".repeat(256) })).unwrap().chars().count(), 256);
    }

    #[test]
    fn settings_default_and_bounded() {
        let (c, w) = ErasureConfig::from_vars(|_| None);
        assert_eq!((c, w.len()), (ErasureConfig::default(), 0));
        let (c, w) = ErasureConfig::from_vars(|n| (n == VAR_CHUNK_ROWS).then(|| "0".to_string()));
        assert_eq!(c.chunk_rows, 500);
        assert_eq!(w.len(), 1);
        let (c, _) = ErasureConfig::from_vars(|n| (n == VAR_MAX_ROWS_PER_RUN).then(|| "1200".to_string()));
        assert_eq!(c.max_rows_per_run, 1200);
    }

    #[test]
    fn a_run_is_cut_into_chunks_within_its_budget() {
        let cfg = ErasureConfig { chunk_rows: 500, max_rows_per_run: 1200, interval_ms: 250 };
        let mut b = RunBudget::new(&cfg);
        assert_eq!(b.next_chunk(), Some(500));
        assert!(b.spend(500, 500));
        assert!(b.spend(500, 500));
        assert_eq!(b.next_chunk(), Some(200));
        assert!(!b.spend(200, 10));
        assert_eq!(b.next_chunk(), Some(190));
        // A database that claims more than the limit is held to it.
        assert!(b.spend(190, 1_000_000));
        assert_eq!(b.next_chunk(), None);
    }

    proptest! {
        // claim: threat.erasure-bounded
        #[test]
        fn a_run_never_deletes_more_than_its_budget(
            chunk in 1u32..=5_000,
            max in 1u32..=100_000,
            answers in proptest::collection::vec(0u64..10_000, 0..400),
        ) {
            let cfg = ErasureConfig { chunk_rows: chunk, max_rows_per_run: max, interval_ms: 250 };
            let mut b = RunBudget::new(&cfg);
            let (mut total, mut statements) = (0u64, 0u32);
            for a in answers {
                let Some(limit) = b.next_chunk() else { break };
                prop_assert!(limit <= chunk);
                total += a.min(u64::from(limit));
                statements += 1;
                b.spend(limit, a);
            }
            prop_assert!(total <= u64::from(max));
            // Every statement spends at least one row of budget: a run ends.
            prop_assert!(statements <= max);
        }
    }
}
