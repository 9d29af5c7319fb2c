//! Moving an org between data shards as a sequence of bounded steps, each a
//! pure transition of [`MoveState`] (kept in the directory's `org_moves` row
//! between calls): clearing (the target's leftovers of an earlier attempt
//! are deleted), copying, verifying (rows and checksum per table on both
//! sides), the switch, then deleting the old rows. The org's writes are paused
//! from clearing to the switch by a lease the actor holds; a step that finds
//! the lease lost (writes may have gone to the old shard since) starts the
//! copy again. Rolling back is only possible before the switch.

use crate::ids::OrgId;
use crate::shard::{ShardId, Tally, TABLES};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Rows read or deleted per table and step.
pub const PAGE_ROWS: usize = 200;
/// How long the write pause lasts without a step renewing it.
pub const LEASE_MS: i64 = 15_000;
/// How long a call of a paused org waits for the pause to end before its 503.
pub const WAIT_MS: i64 = 2_000;

/// Where a move is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Deleting the target's rows of the org (from an earlier attempt).
    Clearing,
    Copying,
    Verifying,
    /// The directory names the target; the old rows are being deleted.
    Switched,
    Done,
    /// Deleting the target's copy after a rollback was asked for.
    RollingBack,
    RolledBack,
}

impl Phase {
    /// Every phase.
    pub const ALL: [Phase; 7] = [
        Phase::Clearing,
        Phase::Copying,
        Phase::Verifying,
        Phase::Switched,
        Phase::Done,
        Phase::RollingBack,
        Phase::RolledBack,
    ];

    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Clearing => "clearing",
            Phase::Copying => "copying",
            Phase::Verifying => "verifying",
            Phase::Switched => "switched",
            Phase::Done => "done",
            Phase::RollingBack => "rolling_back",
            Phase::RolledBack => "rolled_back",
        }
    }

    /// Parses the stored text.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Whether the org's writes must be paused in this phase.
    pub fn pauses_writes(self) -> bool {
        matches!(self, Phase::Clearing | Phase::Copying | Phase::Verifying)
    }

    /// Whether the move has ended.
    pub fn finished(self) -> bool {
        matches!(self, Phase::Done | Phase::RolledBack)
    }
}

/// How far the current phase got (the `progress` column, JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// Index of the table being worked on (in the phase's table order).
    #[serde(default)]
    pub table: usize,
    /// The key of the last source row handled in this table.
    #[serde(default)]
    pub cursor: Option<Vec<Value>>,
    /// Verifying: the key of the last target row read.
    #[serde(default)]
    pub target_cursor: Option<Vec<Value>>,
    #[serde(default)]
    pub source_done: bool,
    #[serde(default)]
    pub target_done: bool,
    #[serde(default)]
    pub copied: BTreeMap<String, u64>,
    #[serde(default)]
    pub source: BTreeMap<String, Tally>,
    #[serde(default)]
    pub target: BTreeMap<String, Tally>,
    /// 1 for the first copy, one more for every restart.
    #[serde(default)]
    pub attempt: u32,
    #[serde(default)]
    pub note: Option<String>,
}

/// A move as stored between steps.
#[derive(Debug, Clone, PartialEq)]
pub struct MoveState {
    pub org_id: OrgId,
    pub from: ShardId,
    pub to: ShardId,
    pub phase: Phase,
    pub progress: Progress,
}

/// One table's figures in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verified {
    pub rows: u64,
    pub checksum: String,
}

/// What a step answers (`{"move": …}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveReport {
    pub org_id: OrgId,
    pub from: ShardId,
    pub to: ShardId,
    pub phase: Phase,
    pub table: Option<String>,
    pub copied: BTreeMap<String, u64>,
    pub verified: BTreeMap<String, Verified>,
    pub attempt: u32,
    pub done: bool,
    pub note: Option<String>,
}

/// The tables in the order a phase works on them: copies and checks go
/// `orgs` last; deletions go `orgs` first.
pub fn table_at(phase: Phase, index: usize) -> Option<&'static crate::shard::Table> {
    match phase {
        Phase::Clearing | Phase::Switched | Phase::RollingBack => {
            TABLES.len().checked_sub(index + 1).and_then(|i| TABLES.get(i))
        }
        _ => TABLES.get(index),
    }
}

impl MoveState {
    /// A new move of `org_id` from `from` to `to`.
    pub fn start(org_id: OrgId, from: ShardId, to: ShardId) -> Self {
        let progress = Progress { attempt: 1, ..Progress::default() };
        Self { org_id, from, to, phase: Phase::Clearing, progress }
    }

    /// Starts the copy again (the pause was lost, or a check failed).
    pub fn restart(&mut self, note: String) {
        let attempt = self.progress.attempt + 1;
        self.phase = Phase::Clearing;
        self.progress = Progress { attempt, note: Some(note), ..Progress::default() };
    }

    /// Turns to rolling back (only before the switch).
    pub fn roll_back(&mut self) -> bool {
        if self.phase == Phase::RollingBack {
            return true;
        }
        if !self.phase.pauses_writes() {
            return false;
        }
        let attempt = self.progress.attempt;
        self.phase = Phase::RollingBack;
        self.progress = Progress { attempt, ..Progress::default() };
        true
    }

    /// The table the current step works on.
    pub fn table(&self) -> Option<&'static crate::shard::Table> {
        table_at(self.phase, self.progress.table)
    }

    fn next_table(&mut self) {
        self.progress.table += 1;
        self.progress.cursor = None;
        self.progress.target_cursor = None;
        self.progress.source_done = false;
        self.progress.target_done = false;
        if self.table().is_none() {
            self.phase = match self.phase {
                Phase::Clearing => Phase::Copying,
                Phase::Copying => Phase::Verifying,
                Phase::Verifying => Phase::Switched,
                Phase::Switched => Phase::Done,
                Phase::RollingBack => Phase::RolledBack,
                other => other,
            };
            self.progress.table = 0;
        }
    }

    /// A deletion page (clearing, after the switch, rolling back) removed
    /// `deleted` rows: a short page ends the table.
    pub fn deleted(&mut self, deleted: usize) {
        if deleted < PAGE_ROWS {
            self.next_table();
        }
    }

    /// A copy page wrote the rows `page` read.
    pub fn copied(&mut self, page: Read) {
        if let Some(t) = self.table() {
            *self.progress.copied.entry(t.name.to_string()).or_default() += page.rows as u64;
        }
        if page.more {
            self.progress.cursor = page.last;
        } else {
            self.next_table();
        }
    }

    /// A verify page read `source` rows (last key) and `target` rows (last
    /// key) after the tallies were updated. Returns the name of a table
    /// whose two sides differ once both are read through (the copy must
    /// start again), `None` otherwise.
    pub fn checked(&mut self, source: Read, target: Read) -> Option<String> {
        let table = self.table()?.name;
        if !self.progress.source_done {
            self.progress.source_done = !source.more;
            self.progress.cursor = source.last.or(self.progress.cursor.take());
        }
        if !self.progress.target_done {
            self.progress.target_done = !target.more;
            self.progress.target_cursor = target.last.or(self.progress.target_cursor.take());
        }
        if !(self.progress.source_done && self.progress.target_done) {
            return None;
        }
        let (a, b) = (self.progress.source.get(table), self.progress.target.get(table));
        if a.copied().unwrap_or_default() != b.copied().unwrap_or_default() {
            return Some(table.to_string());
        }
        self.next_table();
        None
    }

    /// The tally of one side of the current table (verifying).
    pub fn tally(&mut self, target: bool) -> Option<&mut Tally> {
        let name = self.table()?.name.to_string();
        let side = if target { &mut self.progress.target } else { &mut self.progress.source };
        Some(side.entry(name).or_default())
    }

    /// What a step answers.
    pub fn report(&self) -> MoveReport {
        let verified = self
            .progress
            .source
            .iter()
            .filter(|(name, t)| self.progress.target.get(*name) == Some(*t) && self.verified(name))
            .map(|(name, t)| (name.clone(), Verified { rows: t.rows, checksum: t.hex() }))
            .collect();
        MoveReport {
            org_id: self.org_id.clone(),
            from: self.from.clone(),
            to: self.to.clone(),
            phase: self.phase,
            table: if self.phase.finished() { None } else { self.table().map(|t| t.name.to_string()) },
            copied: self.progress.copied.clone(),
            verified,
            attempt: self.progress.attempt,
            done: self.phase.finished(),
            note: self.progress.note.clone(),
        }
    }

    /// Whether `name` has been checked through on both sides.
    fn verified(&self, name: &str) -> bool {
        match self.phase {
            Phase::Verifying => TABLES.iter().position(|t| t.name == name).is_some_and(|i| i < self.progress.table),
            Phase::Switched | Phase::Done => true,
            _ => false,
        }
    }
}

/// One page as read from a shard.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Read {
    pub rows: usize,
    /// The key of the page's last row.
    pub last: Option<Vec<Value>>,
    /// Whether rows may follow (a full page, or one cut by its byte budget).
    pub more: bool,
}

impl Read {
    /// A page of `rows` rows of which the first `sizes.len()` were offered:
    /// more follow when the offer was a whole page or the budget cut it.
    pub fn of(rows: usize, offered: usize, last: Option<Vec<Value>>) -> Self {
        Self { rows, last, more: offered >= PAGE_ROWS || rows < offered }
    }
}

/// Bytes of row data one page may hold (a row of up to 1 MiB is read alone).
pub const PAGE_BYTES: u64 = 2 * 1024 * 1024;

/// How many of the offered rows (their sizes, in key order) a page takes:
/// as many as fit in [`PAGE_BYTES`], at least one.
pub fn rows_within(sizes: &[u64]) -> usize {
    let mut total = 0u64;
    let fit = sizes.iter().take_while(|s| {
        total = total.saturating_add(**s);
        total <= PAGE_BYTES
    });
    fit.count().max(1).min(sizes.len())
}

/// Whether a pause that ends at `until` still holds at `now`.
pub fn lease_holds(until: Option<i64>, now: i64) -> bool {
    until.is_some_and(|u| now < u)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> MoveState {
        MoveState::start(
            OrgId::parse(&format!("org_{}", "0".repeat(26))).unwrap(),
            ShardId::parse("DATA_1").unwrap(),
            ShardId::parse("DATA_2").unwrap(),
        )
    }

    fn run_deletions(s: &mut MoveState) {
        for _ in 0..TABLES.len() {
            s.deleted(0);
        }
    }

    #[test]
    fn a_move_goes_through_every_phase_in_order() {
        let mut s = state();
        assert_eq!(s.table().unwrap().name, "orgs", "deletions take orgs first");
        run_deletions(&mut s);
        assert_eq!(s.phase, Phase::Copying);
        assert_eq!(s.table().unwrap().name, "interactions");
        s.copied(Read::of(PAGE_ROWS, PAGE_ROWS, Some(vec![Value::from("a")])));
        assert_eq!(s.progress.cursor, Some(vec![Value::from("a")]));
        assert_eq!(s.phase, Phase::Copying, "a full page asks for another");
        s.copied(Read::of(2, 5, Some(vec![Value::from("b")])));
        assert_eq!(s.phase, Phase::Copying, "a page cut by its byte budget asks for another");
        for _ in 0..TABLES.len() {
            s.copied(Read::of(1, 1, None));
        }
        assert_eq!(s.phase, Phase::Verifying);
        for _ in 0..TABLES.len() {
            assert_eq!(s.checked(Read::default(), Read::default()), None);
        }
        assert_eq!(s.phase, Phase::Switched);
        run_deletions(&mut s);
        assert_eq!(s.phase, Phase::Done);
        assert!(s.report().done);
        assert_eq!(s.report().copied["interactions"], PAGE_ROWS as u64 + 3);
    }

    #[test]
    fn a_difference_found_in_verifying_is_reported_and_a_restart_counts() {
        let mut s = state();
        run_deletions(&mut s);
        for _ in 0..TABLES.len() {
            s.copied(Read::default());
        }
        s.tally(false).unwrap().checksum = 5;
        assert_eq!(s.checked(Read::of(1, 1, None), Read::of(1, 1, None)), Some("interactions".to_string()));
        s.restart("interactions differs".into());
        assert_eq!((s.phase, s.progress.attempt, s.progress.table), (Phase::Clearing, 2, 0));
        assert!(s.progress.copied.is_empty());
    }

    #[test]
    fn one_side_may_need_more_pages_than_the_other() {
        let mut s = state();
        run_deletions(&mut s);
        for _ in 0..TABLES.len() {
            s.copied(Read::default());
        }
        assert_eq!(
            s.checked(Read::of(PAGE_ROWS, PAGE_ROWS, Some(vec![1.into()])), Read::of(5, 5, Some(vec![9.into()]))),
            None
        );
        assert!(!s.progress.source_done && s.progress.target_done);
        assert_eq!(s.progress.target_cursor, Some(vec![9.into()]));
        assert_eq!(s.phase, Phase::Verifying);
        assert_eq!(s.checked(Read::default(), Read::default()), None);
        assert_eq!(s.table().unwrap().name, "rate_limits");
        assert_eq!(s.progress.cursor, None);
    }

    #[test]
    fn rollback_is_only_possible_before_the_switch() {
        let mut s = state();
        assert!(s.roll_back());
        assert_eq!(s.phase, Phase::RollingBack);
        s.deleted(0);
        assert!(s.roll_back(), "asking again continues the rollback");
        assert_eq!(s.progress.table, 1, "without starting it over");
        for _ in 1..TABLES.len() {
            s.deleted(0);
        }
        assert_eq!(s.phase, Phase::RolledBack);
        assert!(s.report().done);
        assert_eq!(s.report().table, None);
        let mut t = state();
        run_deletions(&mut t);
        for _ in 0..TABLES.len() {
            t.copied(Read::default());
        }
        for _ in 0..TABLES.len() {
            t.checked(Read::default(), Read::default());
        }
        assert_eq!(t.phase, Phase::Switched);
        assert!(!t.roll_back());
    }

    #[test]
    fn pages_hold_what_fits_in_their_byte_budget_and_never_nothing() {
        assert_eq!(rows_within(&[10, 10, 10]), 3);
        assert_eq!(rows_within(&[PAGE_BYTES, 1]), 1);
        assert_eq!(rows_within(&[PAGE_BYTES + 5, 1]), 1, "one large row is read alone");
        assert_eq!(rows_within(&[PAGE_BYTES / 2, PAGE_BYTES / 2, 1]), 2);
        assert_eq!(rows_within(&[]), 0);
        assert!(Read::of(1, 2, None).more && !Read::of(2, 2, None).more && Read::of(PAGE_ROWS, PAGE_ROWS, None).more);
    }

    #[test]
    fn phases_round_trip_and_leases_end() {
        for p in Phase::ALL {
            assert_eq!(Phase::parse(p.as_str()), Some(p));
        }
        assert!(lease_holds(Some(10), 9));
        assert!(!lease_holds(Some(10), 10));
        assert!(!lease_holds(None, 0));
    }
}
