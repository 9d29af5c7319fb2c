//! What every handler of one actor call works with: the org's shard and the
//! directory, who asks, the one clock reading of the call, the configuration, the actor's
//! storage and its in-memory access state.

use crate::audit::{self, Asker};
use interlog_core::access::Effect;
use interlog_core::access::Gate;
use interlog_core::audit::AuditEvent;
use interlog_core::config::Config;
use interlog_core::org::{OrgUsage, OrgView};
use interlog_core::protocol::CallMeta;
use interlog_core::shard::ShardId;
use interlog_core::{ApiError, OrgId};
use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::rc::Rc;
use worker::{D1Database, State};

/// The actor's in-memory state: its access gate (keys, origins, L2 windows,
/// alert counters) and its org's settings as `GET /v1/org` shows them, loaded
/// from D1 once. This actor is their only writer (the operator command's
/// changes reach it as described in docs/operations.md).
#[derive(Default)]
pub struct Memory {
    pub gate: RefCell<Option<Gate>>,
    pub settings: RefCell<Option<OrgView>>,
    /// The last retention run's summary (`None`: not read from storage yet).
    pub last_retention: RefCell<Option<Option<serde_json::Value>>>,
    /// Alarm duties marked due since their last run started (`crate::due`).
    pub marked: RefCell<BTreeSet<&'static str>>,
    /// The org's data shard as the directory names it (`None`: not read yet).
    pub shard: RefCell<Option<ShardId>>,
    /// Bumped when the org's data moves to another shard; a stream reading
    /// the old shard (an export) ends when it changes.
    pub epoch: Rc<Cell<u32>>,
    /// While a move copies the org's data: when its write pause ends unless
    /// renewed (`crate::moving`).
    pub paused_until: Cell<Option<i64>>,
    /// Calls and alarm runs using the shard now (a move waits for none).
    pub busy: Cell<u32>,
    /// Whether a move step is running (steps never overlap).
    pub stepping: Cell<bool>,
    /// Audit and alert effects of refused credentials that arrived while
    /// writes were paused, written once the pause ends.
    pub deferred: RefCell<Vec<Effect>>,
}

/// Counts a call or alarm run as using the org's shard while it lives.
pub struct Busy<'a>(&'a Cell<u32>);

impl<'a> Busy<'a> {
    pub fn enter(memory: &'a Memory) -> Self {
        memory.busy.set(memory.busy.get() + 1);
        Self(&memory.busy)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

/// One call's context. The gate is borrowed only inside [`Ctx::gate`], never
/// across an `.await` (calls of one actor interleave at every await).
pub struct Ctx<'a> {
    /// The org's data shard.
    pub db: D1Database,
    /// The directory (keys).
    pub dir: D1Database,
    pub meta: &'a CallMeta,
    /// The clock, read once when the call arrived.
    pub now: i64,
    pub cfg: &'a Config,
    pub state: &'a State,
    memory: &'a Memory,
}

impl<'a> Ctx<'a> {
    /// A context over the actor's loaded gate.
    pub fn new(
        (db, dir): (D1Database, D1Database),
        meta: &'a CallMeta,
        now: i64,
        cfg: &'a Config,
        state: &'a State,
        memory: &'a Memory,
    ) -> Self {
        Self { db, dir, meta, now, cfg, state, memory }
    }

    /// The org this call is for (the actor's own: it refused any other).
    pub fn org(&self) -> &OrgId {
        &self.meta.org_id
    }

    /// Runs `f` on the in-memory access state.
    pub fn gate<R>(&self, f: impl FnOnce(&mut Gate) -> R) -> Result<R, ApiError> {
        let mut guard = self.memory.gate.borrow_mut();
        let gate = guard.as_mut().ok_or_else(|| ApiError::internal("org actor state not loaded"))?;
        Ok(f(gate))
    }

    /// The cell holding the gate, for adapters that borrow it themselves.
    pub fn gate_cell(&self) -> &'a RefCell<Option<Gate>> {
        &self.memory.gate
    }

    /// The actor's in-memory state.
    pub fn memory(&self) -> &'a Memory {
        self.memory
    }

    /// The org's settings as last read (`None`: not read yet, or changed).
    pub fn settings(&self) -> Option<OrgView> {
        self.memory.settings.borrow().clone()
    }

    /// Remembers the settings just read, or forgets them (`None`) after a
    /// change made elsewhere, so the next read goes to D1.
    pub fn remember_settings(&self, view: Option<OrgView>) {
        *self.memory.settings.borrow_mut() = view;
    }

    /// The usage a write just read back in its own transaction.
    pub fn note_usage(&self, usage: OrgUsage) {
        if let Some(view) = self.memory.settings.borrow_mut().as_mut() {
            view.usage = usage;
        }
    }

    /// Writes an audit row for this call. A failure is logged and does not
    /// change the client's answer.
    pub async fn audit(&self, event: &AuditEvent) {
        let _ = audit::write(&self.db, Asker::from(self.meta), event, self.now).await;
    }
}
