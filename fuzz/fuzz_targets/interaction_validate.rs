//! The interaction validator: JSON bytes → `serde_json::Value` →
//! `interaction::validate` and `validate_batch` (the same steps as the
//! Worker's `POST /v1/interactions[/batch]` after the body cap).
//!
//! Properties beyond "never panics": a refusal always names at least one
//! problem; an accepted interaction obeys every documented rule (type
//! `[a-z0-9_.:-]{1,64}`, labels ≤ 256 characters, idempotency key 1–128
//! characters without controls, `occurred_at` in [0, now + 5 min]); a batch is
//! all-or-nothing (1–100 items, each valid on its own); and the value is tried
//! both as one interaction and wrapped as a one-item batch.
#![no_main]

use interlog_core::interaction::{
    summary, validate, validate_batch, NewInteraction, MAX_BATCH_ITEMS, MAX_FUTURE_SKEW_MS, MAX_IDEMPOTENCY_KEY_LEN,
    MAX_LABEL_LEN, MAX_TYPE_LEN,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};

/// A fixed "now" (2026-11-29T00:00:00Z): the target must be deterministic.
const NOW_MS: i64 = 1_795_910_400_000;

fn check_accepted(v: &NewInteraction) {
    assert!(!v.kind.is_empty() && v.kind.len() <= MAX_TYPE_LEN, "type {:?}", v.kind);
    assert!(v.kind.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b':' | b'-')));
    assert!(v.occurred_at >= 0 && v.occurred_at <= NOW_MS + MAX_FUTURE_SKEW_MS, "occurred_at {}", v.occurred_at);
    for label in [&v.actor, &v.session].into_iter().flatten() {
        assert!(label.chars().count() <= MAX_LABEL_LEN);
    }
    if let Some(k) = &v.idempotency_key {
        let n = k.chars().count();
        assert!((1..=MAX_IDEMPOTENCY_KEY_LEN).contains(&n) && !k.chars().any(char::is_control));
    }
}

/// Floats this close count as equal (see the round-trip check below): at most
/// this many ULPs apart, or this relative difference (both far below any
/// real corruption: a lost digit, a sign, a truncation).
const FLOAT_ULPS: u64 = 0;
const FLOAT_REL: f64 = 0.0;

/// Equal JSON, except that floats within [`FLOAT_ULPS`] / [`FLOAT_REL`] count as equal.
fn same_json(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() && y.is_f64() => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x == y
                || (x.is_sign_negative() == y.is_sign_negative()
                    && (x.to_bits().abs_diff(y.to_bits()) <= FLOAT_ULPS
                        || (x - y).abs() <= FLOAT_REL * x.abs().max(y.abs())))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };

    match validate(&value, NOW_MS) {
        Ok(v) => {
            check_accepted(&v);
            // What is stored serialises and reads back unchanged, floats of
            // `metadata` included (exact since serde_json's `float_roundtrip`
            // was enabled; this target found them 1 and 2 ULP off before:
            // fuzz/regressions/interaction_validate/float-roundtrip-*.json).
            let text = serde_json::to_string(&v).expect("serialise");
            let back: NewInteraction = serde_json::from_str(&text).expect("read back");
            assert_eq!(
                NewInteraction { metadata: None, ..back.clone() },
                NewInteraction { metadata: None, ..v.clone() }
            );
            match (&back.metadata, &v.metadata) {
                (Some(a), Some(b)) => {
                    assert!(same_json(&Value::Object(a.clone()), &Value::Object(b.clone())), "{a:?} != {b:?}")
                }
                (a, b) => assert_eq!(a, b),
            }
        }
        Err(errs) => {
            assert!(!errs.is_empty());
            assert!(errs.iter().all(|e| e.index.is_none()));
            let _ = summary(&errs);
        }
    }

    for batch in [value.clone(), json!({ "interactions": [value] })] {
        match validate_batch(&batch, NOW_MS) {
            Ok(items) => {
                assert!((1..=MAX_BATCH_ITEMS).contains(&items.len()));
                let raw = batch["interactions"].as_array().expect("accepted batch has an array");
                assert_eq!(raw.len(), items.len());
                for (item, v) in raw.iter().zip(&items) {
                    check_accepted(v);
                    assert_eq!(validate(item, NOW_MS).as_ref(), Ok(v));
                }
            }
            Err(errs) => {
                assert!(!errs.is_empty());
                let _ = summary(&errs);
            }
        }
    }
});
