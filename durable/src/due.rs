//! When an alarm duty that reads D1 (webhook deliveries and quiet alerts,
//! erasure jobs) is due next, kept in the actor's storage so that an alarm
//! run of an org with nothing to do reads no D1 for it. Work that creates
//! such a duty marks it due; the duty's run stores its own next time.

use crate::ctx::Memory;
use worker::{console_error, State};

/// Storage key of the webhook step (deliveries, quiet alerts).
pub const WEBHOOKS: &str = "webhooks_due_at";
/// Storage key of the erasure step.
pub const ERASURES: &str = "erasures_due_at";
/// Stored when a duty has nothing pending (the largest integer storage
/// keeps exactly as a number; later times are stored as this).
pub const NEVER: i64 = (1 << 53) - 1;
/// How soon a run re-checks work marked due while it ran.
const RECHECK_MS: i64 = 1_000;

/// When `duty` is due, if later than `now`; `None` when it must run now (due,
/// never recorded, e.g. on an actor that predates this record, or
/// unreadable). The record itself is left as it is until [`finish`], so a
/// run cut short (a restart) runs again.
pub async fn claim(state: &State, memory: &Memory, duty: &'static str, now: i64) -> Option<i64> {
    match state.storage().get::<i64>(duty).await {
        Ok(Some(at)) if at > now => return Some(at),
        Ok(_) => {}
        Err(e) => console_error!("due time of {duty} unreadable: {e}"),
    }
    memory.marked.borrow_mut().remove(duty);
    None
}

/// Records the run's next time and returns it; a second from `now` at the
/// latest when work was marked due while the run read D1 (the run may have
/// missed it).
pub async fn finish(state: &State, memory: &Memory, duty: &'static str, next: i64, now: i64) -> i64 {
    let marked = memory.marked.borrow_mut().remove(duty);
    let next = if marked { next.min(now + RECHECK_MS) } else { next.min(NEVER) };
    if let Err(e) = state.storage().put(duty, next).await {
        console_error!("due time of {duty} not stored: {e}");
    }
    next
}

/// Marks `duty` due at `at` (an earlier recorded time is kept). When that
/// cannot be stored the record is removed, which also means "due now".
pub async fn mark(state: &State, memory: &Memory, duty: &'static str, at: i64) {
    memory.marked.borrow_mut().insert(duty);
    let storage = state.storage();
    let recorded = storage.get::<i64>(duty).await.ok().flatten();
    if recorded.is_some_and(|t| t <= at) {
        return;
    }
    if let Err(e) = storage.put(duty, at).await {
        console_error!("due time of {duty} not marked: {e}");
        let _ = storage.delete(duty).await;
    }
}
