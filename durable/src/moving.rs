//! One step of moving the actor's org to another data shard (`POST
//! /v1/operator/move`): the state is read from the directory's `org_moves`
//! row, `interlog_core::moving` says what comes next, this module performs
//! one bounded unit (a page deleted, copied or checked, or the switch) and
//! stores the state again. The actor holds the org's write pause from
//! clearing to the switch; the switch itself is one directory transaction,
//! after which this actor's calls use the new shard.

use crate::audit::{self, Asker};
use crate::ctx::Memory;
use crate::platform::{all, directory, first, ms, now_ms, shard, storage_error};
use interlog_core::audit::{AuditAction, AuditEvent};
use interlog_core::moving::{
    lease_holds, rows_within, MoveReport, MoveState, Phase, Progress, Read, LEASE_MS, PAGE_ROWS,
};
use interlog_core::operator::MoveAction;
use interlog_core::shard::{column_name, row_for_copy, ShardId, Table};
use interlog_core::{ApiError, OrgId};
use serde::Deserialize;
use serde_json::{Map, Value};
use worker::wasm_bindgen::JsValue;
use worker::{D1Database, Delay, Env};

type Res<T> = Result<T, ApiError>;
type Row = Map<String, Value>;

/// Most bound values in one D1 statement.
const MAX_BINDS: usize = 100;
/// How long one step works before it answers, and how many units (a page
/// deleted, copied or checked) it does at most.
const STEP_BUDGET_MS: i64 = 1_500;
const STEP_UNITS: usize = 10;
/// How long taking the pause waits for the org's calls in flight to end.
const DRAIN_MS: u64 = 5_000;

/// What a step works with.
pub struct Mover<'a> {
    pub env: &'a Env,
    pub memory: &'a Memory,
    pub org: &'a OrgId,
    pub now: i64,
}

#[derive(Deserialize)]
struct StoredMove {
    from_shard: String,
    to_shard: String,
    phase: String,
    progress: String,
}

#[derive(Deserialize)]
struct Placed {
    shard: String,
}

/// One step of the move to `to` (or of its rollback).
pub async fn step(m: &Mover<'_>, to: &ShardId, action: MoveAction) -> Res<MoveReport> {
    if m.memory.stepping.replace(true) {
        return Err(ApiError::Unavailable { retry_after_s: 1, detail: "a move step is running".into() });
    }
    let result = step_once(m, to, action).await;
    m.memory.stepping.set(false);
    result
}

async fn step_once(m: &Mover<'_>, to: &ShardId, action: MoveAction) -> Res<MoveReport> {
    shard(m.env, to).map_err(|_| ApiError::validation(format!("shard {to} is not configured in this Worker")))?;
    let dir = directory(m.env)?;
    let current = placed(&dir, m.org).await?;
    let Some(mut state) = load(&dir, m.org).await? else {
        return start(m, &dir, current, to, action).await;
    };
    if &state.to != to {
        return Err(ApiError::Conflict {
            message: format!("a move of this org to {} is in progress: finish it or roll it back first", state.to),
        });
    }
    if action == MoveAction::Rollback && !state.roll_back() {
        return Err(ApiError::Conflict {
            message: format!(
                "the org already uses {}: move it back to {} instead of rolling back",
                state.to, state.from
            ),
        });
    }
    if action == MoveAction::Rollback {
        m.memory.paused_until.set(None);
    }
    advance(m, &dir, &mut state).await?;
    Ok(state.report())
}

/// No move is stored: a rollback has nothing to undo, a move to the org's
/// own shard is already done, anything else starts.
async fn start(m: &Mover<'_>, dir: &D1Database, current: ShardId, to: &ShardId, action: MoveAction) -> Res<MoveReport> {
    let mut state = MoveState::start(m.org.clone(), current.clone(), to.clone());
    if action == MoveAction::Rollback || &current == to {
        state.phase = if action == MoveAction::Rollback { Phase::RolledBack } else { Phase::Done };
        state.progress = Progress { attempt: 0, ..Progress::default() };
        return Ok(state.report());
    }
    let sql = "INSERT INTO org_moves (org_id, from_shard, to_shard, phase, progress, started_at, updated_at) \
               VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)";
    let binds = [
        m.org.as_str().into(),
        current.as_str().into(),
        to.as_str().into(),
        state.phase.as_str().into(),
        progress_json(&state.progress).into(),
        ms(m.now),
    ];
    crate::platform::run(dir, sql, &binds, "move start").await?;
    advance(m, dir, &mut state).await?;
    Ok(state.report())
}

/// Performs units of the current phase for up to [`STEP_BUDGET_MS`] (a step's
/// own cost, the signed call and the floor, is paid once for many pages),
/// then stores the state. A unit repeated after a failed step is harmless:
/// deletions and keyed inserts are idempotent, and a renumbered row copied
/// twice is found by the check, which starts the copy again.
async fn advance(m: &Mover<'_>, dir: &D1Database, state: &mut MoveState) -> Res<()> {
    if state.phase.pauses_writes() {
        hold_pause(m, state).await?;
    }
    let (source, target) = (shard(m.env, &state.from)?, shard(m.env, &state.to)?);
    let (started, attempt) = (now_ms(), state.progress.attempt);
    for _ in 0..STEP_UNITS {
        let before = state.phase;
        match state.phase {
            Phase::Clearing | Phase::RollingBack => delete_page(&target, m.org, state).await?,
            Phase::Switched => delete_page(&source, m.org, state).await?,
            Phase::Copying => copy_page(&source, &target, m.org, state).await?,
            Phase::Verifying => check_page(&source, &target, m.org, state).await?,
            Phase::Done | Phase::RolledBack => {}
        }
        if before == Phase::Verifying && state.phase == Phase::Switched {
            return switch(m, dir, state).await;
        }
        if state.phase.finished() {
            if state.phase == Phase::RolledBack {
                m.memory.paused_until.set(None);
            }
            let sql = "DELETE FROM org_moves WHERE org_id = ?1";
            return crate::platform::run(dir, sql, &[m.org.as_str().into()], "move end").await.map(|_| ());
        }
        let now = now_ms();
        if state.phase.pauses_writes() {
            m.memory.paused_until.set(Some(now + LEASE_MS));
        }
        // A restart ends the step, so the command reports it.
        if now - started >= STEP_BUDGET_MS || state.progress.attempt != attempt {
            break;
        }
    }
    save(dir, m.org, state, now_ms()).await
}

/// Renews the write pause; takes it (waiting for the calls in flight) when
/// the copy starts, and starts the copy again when it was lost meanwhile.
async fn hold_pause(m: &Mover<'_>, state: &mut MoveState) -> Res<()> {
    if !lease_holds(m.memory.paused_until.get(), m.now) {
        let fresh = state.phase == Phase::Clearing && state.progress.table == 0 && state.progress.copied.is_empty();
        if !fresh {
            state.restart(
                "the write pause lapsed (a step came too late or the actor restarted): the copy starts again".into(),
            );
        }
        m.memory.paused_until.set(Some(m.now + LEASE_MS));
        let mut waited = 0;
        while m.memory.busy.get() > 0 {
            if waited >= DRAIN_MS {
                m.memory.paused_until.set(None);
                return Err(ApiError::Unavailable { retry_after_s: 1, detail: "the org's calls did not drain".into() });
            }
            Delay::from(std::time::Duration::from_millis(20)).await;
            waited += 20;
        }
    }
    m.memory.paused_until.set(Some(m.now + LEASE_MS));
    Ok(())
}

/// After the last table checked equal: the directory names the target (and
/// the move row says so) in one transaction, then this actor uses it.
async fn switch(m: &Mover<'_>, dir: &D1Database, state: &MoveState) -> Res<()> {
    let stmts = vec![
        dir.prepare("UPDATE orgs SET shard = ?1 WHERE id = ?2")
            .bind(&[state.to.as_str().into(), m.org.as_str().into()])
            .map_err(|e| storage_error("move switch", e))?,
        dir.prepare("UPDATE org_moves SET phase = ?1, progress = ?2, updated_at = ?3 WHERE org_id = ?4")
            .bind(&[
                state.phase.as_str().into(),
                progress_json(&state.progress).into(),
                ms(m.now),
                m.org.as_str().into(),
            ])
            .map_err(|e| storage_error("move switch", e))?,
    ];
    dir.batch(stmts).await.map_err(|e| storage_error("move switch", e))?;
    *m.memory.shard.borrow_mut() = Some(state.to.clone());
    m.memory.epoch.set(m.memory.epoch.get().wrapping_add(1));
    m.memory.paused_until.set(None);
    let rows: u64 = state.progress.copied.values().sum();
    let detail =
        serde_json::json!({ "from": state.from.as_str(), "to": state.to.as_str(), "rows": rows, "actor": "operator" });
    let event = AuditEvent::new(AuditAction::OrgMoved, None).with_detail(detail);
    let who = Asker { org: Some(m.org), request_id: "", ip: None };
    let _ = audit::write(&shard(m.env, &state.to)?, who, &event, m.now).await;
    Ok(())
}

/// The shard the directory names for `org`.
pub async fn placed(dir: &D1Database, org: &OrgId) -> Res<ShardId> {
    let row: Option<Placed> =
        first(dir, "SELECT shard FROM orgs WHERE id = ?1", &[org.as_str().into()], "org shard").await?;
    let row = row.ok_or_else(|| ApiError::internal(format!("org {org} has no directory row")))?;
    ShardId::parse(&row.shard)
        .ok_or_else(|| ApiError::internal(format!("org {org} names an unknown shard {:?}", row.shard)))
}

async fn load(dir: &D1Database, org: &OrgId) -> Res<Option<MoveState>> {
    let sql = "SELECT from_shard, to_shard, phase, progress FROM org_moves WHERE org_id = ?1";
    let Some(row): Option<StoredMove> = first(dir, sql, &[org.as_str().into()], "move read").await? else {
        return Ok(None);
    };
    let bad = || ApiError::internal(format!("unreadable org_moves row of {org}"));
    Ok(Some(MoveState {
        org_id: org.clone(),
        from: ShardId::parse(&row.from_shard).ok_or_else(bad)?,
        to: ShardId::parse(&row.to_shard).ok_or_else(bad)?,
        phase: Phase::parse(&row.phase).ok_or_else(bad)?,
        progress: serde_json::from_str(&row.progress).map_err(|_| bad())?,
    }))
}

async fn save(dir: &D1Database, org: &OrgId, state: &MoveState, now: i64) -> Res<()> {
    let sql = "UPDATE org_moves SET phase = ?1, progress = ?2, updated_at = ?3 WHERE org_id = ?4";
    let binds = [state.phase.as_str().into(), progress_json(&state.progress).into(), ms(now), org.as_str().into()];
    crate::platform::run(dir, sql, &binds, "move save").await.map(|_| ())
}

fn progress_json(p: &Progress) -> String {
    serde_json::to_string(p).unwrap_or_else(|_| "{}".into())
}

fn keys(t: &Table) -> String {
    t.key.join(", ")
}

/// `WHERE` text and binds of the org's rows of `t` after `cursor`.
fn after_cursor(org: &OrgId, t: &Table, cursor: Option<&Vec<Value>>) -> (String, Vec<JsValue>) {
    let mut binds: Vec<JsValue> = vec![org.as_str().into()];
    let mut sql = format!("{} = ?1", t.org_column);
    if let Some(c) = cursor.filter(|c| c.len() == t.key.len()) {
        let marks: Vec<String> = (0..c.len()).map(|i| format!("?{}", i + 2)).collect();
        binds.extend(c.iter().map(js));
        sql += &format!(" AND ({}) > ({})", keys(t), marks.join(", "));
    }
    (sql, binds)
}

/// One page of the org's rows in key order after `cursor`: at most
/// [`PAGE_ROWS`] rows, and for tables with large rows at most what fits in
/// `moving::PAGE_BYTES` (their sizes are read first).
async fn read_page(db: &D1Database, org: &OrgId, t: &Table, cursor: Option<&Vec<Value>>) -> Res<(Vec<Row>, Read)> {
    let (filter, binds) = after_cursor(org, t, cursor);
    let (name, order) = (t.name, keys(t));
    let (limit, offered) = match t.size {
        None => (PAGE_ROWS, None),
        Some(size) => {
            #[derive(Deserialize)]
            struct Size {
                bytes: f64,
            }
            let sql = format!("SELECT ({size}) AS bytes FROM {name} WHERE {filter} ORDER BY {order} LIMIT {PAGE_ROWS}");
            let sizes: Vec<Size> = all(db, sql, &binds, "move page sizes").await?;
            let sizes: Vec<u64> = sizes.iter().map(|s| s.bytes.max(0.0) as u64).collect();
            (rows_within(&sizes), Some(sizes.len()))
        }
    };
    if limit == 0 {
        return Ok((Vec::new(), Read::default()));
    }
    let sql = format!("SELECT * FROM {name} WHERE {filter} ORDER BY {order} LIMIT {limit}");
    let rows: Vec<Row> = all(db, sql, &binds, "move read page").await?;
    let read = Read::of(rows.len(), offered.unwrap_or(rows.len()), last_key(t, &rows));
    Ok((rows, read))
}

fn last_key(t: &Table, rows: &[Row]) -> Option<Vec<Value>> {
    rows.last().map(|r| t.key.iter().map(|k| r.get(*k).cloned().unwrap_or(Value::Null)).collect())
}

fn js(v: &Value) -> JsValue {
    match v {
        Value::Null => JsValue::NULL,
        Value::Bool(b) => JsValue::from_bool(*b),
        Value::Number(n) => JsValue::from_f64(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => JsValue::from_str(s),
        other => JsValue::from_str(&other.to_string()),
    }
}

/// Copies one page of the current table from `source` to `target`.
async fn copy_page(source: &D1Database, target: &D1Database, org: &OrgId, state: &mut MoveState) -> Res<()> {
    let Some(t) = state.table() else { return Ok(()) };
    let (rows, read) = read_page(source, org, t, state.progress.cursor.as_ref()).await?;
    let copies: Vec<Row> = rows.iter().map(|r| row_for_copy(t, r)).collect();
    if let Some(first_row) = copies.first() {
        let cols: Vec<&str> = first_row
            .keys()
            .map(|c| column_name(c))
            .collect::<Option<_>>()
            .ok_or_else(|| ApiError::internal(format!("unexpected column name in {}", t.name)))?;
        let per_stmt = (MAX_BINDS / cols.len().max(1)).max(1);
        let mut stmts = Vec::new();
        for chunk in copies.chunks(per_stmt) {
            let mut binds = Vec::new();
            let mut tuples = Vec::new();
            for row in chunk {
                let start = binds.len();
                binds.extend(cols.iter().map(|c| js(row.get(*c).unwrap_or(&Value::Null))));
                tuples.push(format!(
                    "({})",
                    (start..binds.len()).map(|i| format!("?{}", i + 1)).collect::<Vec<_>>().join(", ")
                ));
            }
            let sql = format!("INSERT OR REPLACE INTO {} ({}) VALUES {}", t.name, cols.join(", "), tuples.join(", "));
            stmts.push(target.prepare(sql).bind(&binds).map_err(|e| storage_error("move copy", e))?);
        }
        target.batch(stmts).await.map_err(|e| storage_error("move copy", e))?;
    }
    state.copied(read);
    Ok(())
}

/// Reads one page of each side not yet read through and adds it to the
/// tallies; a table whose sides differ starts the copy again.
async fn check_page(source: &D1Database, target: &D1Database, org: &OrgId, state: &mut MoveState) -> Res<()> {
    let Some(t) = state.table() else { return Ok(()) };
    let mut sides = [Read::default(), Read::default()];
    for (i, (db, done, cursor)) in [
        (source, state.progress.source_done, state.progress.cursor.clone()),
        (target, state.progress.target_done, state.progress.target_cursor.clone()),
    ]
    .into_iter()
    .enumerate()
    {
        if done {
            continue;
        }
        let (rows, read) = read_page(db, org, t, cursor.as_ref()).await?;
        if let Some(tally) = state.tally(i == 1) {
            for r in &rows {
                tally.add(t, r);
            }
        }
        sides[i] = read;
    }
    let [a, b] = sides;
    if let Some(table) = state.checked(a, b) {
        state.restart(format!("{table} differs between the shards after the copy: the copy starts again"));
    }
    Ok(())
}

/// Deletes one page of the org's rows of the current table on `db`.
async fn delete_page(db: &D1Database, org: &OrgId, state: &mut MoveState) -> Res<()> {
    let Some(t) = state.table() else { return Ok(()) };
    let k = keys(t);
    let delete = format!(
        "DELETE FROM {name} WHERE ({k}) IN (SELECT {k} FROM {name} WHERE {col} = ?1 LIMIT {PAGE_ROWS})",
        name = t.name,
        col = t.org_column
    );
    let left = format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM {} WHERE {} = ?1 LIMIT 1)", t.name, t.org_column);
    let bind = [JsValue::from_str(org.as_str())];
    let stmts = vec![
        db.prepare(delete).bind(&bind).map_err(|e| storage_error("move delete", e))?,
        db.prepare(left).bind(&bind).map_err(|e| storage_error("move delete", e))?,
    ];
    let results = db.batch(stmts).await.map_err(|e| storage_error("move delete", e))?;
    #[derive(Deserialize)]
    struct Left {
        n: f64,
    }
    let left: Vec<Left> = results
        .get(1)
        .ok_or_else(|| ApiError::internal("move delete: missing result"))?
        .results()
        .map_err(|e| storage_error("move delete", e))?;
    let remaining = left.first().map_or(0.0, |l| l.n);
    state.deleted(if remaining > 0.0 { PAGE_ROWS } else { 0 });
    Ok(())
}

/// Waits (bounded) while a move pauses the org's writes; `true` when the
/// pause still holds after [`interlog_core::moving::WAIT_MS`].
pub async fn wait_for_pause(memory: &Memory) -> bool {
    let mut waited = 0;
    while lease_holds(memory.paused_until.get(), crate::platform::now_ms()) {
        if waited >= interlog_core::moving::WAIT_MS {
            return true;
        }
        Delay::from(std::time::Duration::from_millis(25)).await;
        waited += 25;
    }
    false
}
