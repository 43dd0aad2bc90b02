//! The `sweeps`, `sweep_cases` and `sweep_idempotency_keys` tables.
//!
//! Money moves as for runs, in named operations that are each one transaction: starting a
//! sweep holds the whole cost in one ledger row ([`Store::reserve_sweep`]); each batch of
//! ended cases settles in one transaction ([`Store::settle_cases`]): the charged cases in one
//! `settle` row (and a usage row), the refunded ones in one `refund` row. At every moment
//! the credits held for a sweep are its unsettled cases times the cost of one.

use super::StoreError;
use super::sql::{Connection, OptionalExtension, Row, Transaction, params};
use super::sql::{FromSql, ToSql, Value};

use super::ledger::{self, EntryKind};
use super::runs::Idempotency;
use super::{Store, StoreResult, now_ms, write_tx};
use crate::domain::ids::{Credits, FmuId, KeyId, SweepId, UserId};
use crate::domain::runs::RunStatus;
use crate::domain::runs::charging::{FailureKind, RunEnd};
use crate::domain::sweeps::status::SweepStatus;

impl ToSql for SweepStatus {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::from(self.as_str()))
    }
}

impl FromSql for SweepStatus {
    fn column_result(value: &Value) -> StoreResult<SweepStatus> {
        value.as_str()?.parse().map_err(StoreError::decode)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SweepRow {
    pub id: SweepId,
    pub user_id: UserId,
    pub api_key_id: Option<KeyId>,
    pub fmu_id: FmuId,
    pub name: String,
    pub status: SweepStatus,
    /// The base settings, design and KPIs as the sweep was made (`domain::sweeps::Stored`).
    pub request: String,
    /// The varied parameters, in order (JSON list of names).
    pub parameters: String,
    pub case_count: u32,
    pub credits_per_case: Credits,
    pub credits_reserved: Credits,
    pub error: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

const COLUMNS: &str =
    "id, user_id, api_key_id, fmu_id, name, status, request, parameters, case_count,
    credits_per_case, credits_reserved, error, created_at, started_at, finished_at";

fn from_row(r: &Row) -> StoreResult<SweepRow> {
    Ok(SweepRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        api_key_id: r.get(2)?,
        fmu_id: r.get(3)?,
        name: r.get(4)?,
        status: r.get(5)?,
        request: r.get(6)?,
        parameters: r.get(7)?,
        case_count: r.get(8)?,
        credits_per_case: r.get(9)?,
        credits_reserved: r.get(10)?,
        error: r.get(11)?,
        created_at: r.get(12)?,
        started_at: r.get(13)?,
        finished_at: r.get(14)?,
    })
}

/// One case as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct CaseRow {
    pub index: u32,
    pub start_values: Vec<(String, String)>,
    pub status: RunStatus,
    /// One value per KPI of the sweep (`None`: the KPI has no value, e.g. a level never
    /// crossed); `None` as a whole until the case succeeded.
    pub kpis: Option<Vec<Option<f64>>>,
    pub error: Option<String>,
    pub failure_kind: Option<FailureKind>,
    pub charged: bool,
    pub attempts: u32,
    pub elapsed_ms: Option<f64>,
    pub finished_at: Option<i64>,
}

fn case_from_row(r: &Row) -> StoreResult<CaseRow> {
    fn json<T: serde::de::DeserializeOwned>(
        i: usize,
        text: Option<String>,
    ) -> StoreResult<Option<T>> {
        text.map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| StoreError::Decode(format!("column {i}: {e}")))
    }
    let start_values: String = r.get(1)?;
    let kpis: Option<String> = r.get(3)?;
    Ok(CaseRow {
        index: r.get(0)?,
        start_values: json(1, Some(start_values))?.unwrap_or_default(),
        status: r.get(2)?,
        kpis: json(3, kpis)?,
        error: r.get(4)?,
        failure_kind: r.get(5)?,
        charged: r.get(6)?,
        attempts: r.get(7)?,
        elapsed_ms: r.get(8)?,
        finished_at: r.get(9)?,
    })
}

const CASE_COLUMNS: &str = "idx, start_values, status, kpis, error, failure_kind, charged, attempts, elapsed_ms, finished_at";

/// How starting a sweep went.
#[derive(Debug)]
pub enum SweepReservation {
    Reserved,
    /// The `Idempotency-Key` was used before: with the same request (its sweep) or another.
    Replay {
        same_request: bool,
        sweep: Option<Box<SweepRow>>,
    },
    NoCredits,
    /// The user has as many sweeps queued or running as one may.
    Busy,
    AccountGone,
}

/// How one case ended, as the engine reports it; the charging rule has decided `charged`.
#[derive(Clone, Debug)]
pub struct CaseSettlement {
    pub index: u32,
    pub end: RunEnd,
    pub charged: bool,
    pub kpis: Option<Vec<Option<f64>>>,
    pub error: Option<String>,
    pub elapsed_ms: Option<f64>,
}

/// What a settlement did: cases settled (cases no longer running are skipped), charged and
/// refunded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settled {
    pub settled: u32,
    pub charged: u32,
    pub refunded: u32,
}

/// How many cases of a sweep are in each status, and how many were charged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaseCounts {
    pub queued: u32,
    pub running: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub cancelled: u32,
    pub charged: u32,
    /// Failed by the service or by a stop (refunded, not the model's answer).
    pub service_failures: u32,
}

impl CaseCounts {
    pub fn ended(&self) -> u32 {
        self.succeeded + self.failed + self.cancelled
    }

    pub fn total(&self) -> u32 {
        self.ended() + self.queued + self.running
    }
}

fn get(conn: &Connection, id: &SweepId) -> StoreResult<Option<SweepRow>> {
    let sql = format!("SELECT {COLUMNS} FROM sweeps WHERE id = ?1");
    conn.query_row(&sql, [id], from_row).optional()
}

pub(super) fn count_active(conn: &Connection, user_id: &UserId) -> StoreResult<u32> {
    conn.query_row(
        "SELECT COUNT(*) FROM sweeps WHERE user_id = ?1 AND status IN ('queued', 'running')",
        [user_id],
        |r| r.get(0),
    )
}

fn counts(conn: &Connection, id: &SweepId) -> StoreResult<CaseCounts> {
    let mut stmt = conn.prepare_cached(
        "SELECT status, COUNT(*), SUM(charged),
                SUM(CASE WHEN failure_kind IN ('service_error', 'interrupted') THEN 1 ELSE 0 END)
         FROM sweep_cases WHERE sweep_id = ?1 GROUP BY status",
    )?;
    let mut c = CaseCounts::default();
    let rows = stmt.query_map([id], |r| {
        Ok((
            r.get::<RunStatus>(0)?,
            r.get::<u32>(1)?,
            r.get::<Option<u32>>(2)?,
            r.get::<Option<u32>>(3)?,
        ))
    })?;
    for row in rows {
        let (status, n, charged, service) = row?;
        c.charged += charged.unwrap_or(0);
        c.service_failures += service.unwrap_or(0);
        match status {
            RunStatus::Queued => c.queued = n,
            RunStatus::Running => c.running = n,
            RunStatus::Succeeded => c.succeeded = n,
            RunStatus::Failed => c.failed = n,
            RunStatus::Cancelled => c.cancelled = n,
        }
    }
    Ok(c)
}

/// JSON this module wrote that cannot be written: a bug, reported as a conversion error.
fn encoding(e: serde_json::Error) -> StoreError {
    StoreError::Decode(e.to_string())
}

/// Settles the given cases (each only if still running) and moves their credits, in the
/// caller's transaction.
fn settle_in(
    tx: &Transaction<'_>,
    sweep: &SweepRow,
    cases: &[CaseSettlement],
) -> StoreResult<Settled> {
    let now = now_ms();
    let mut done = Settled::default();
    {
        let mut update = tx.prepare_cached(
            "UPDATE sweep_cases SET status = ?3, kpis = ?4, error = ?5, failure_kind = ?6,
                 charged = ?7, elapsed_ms = ?8, finished_at = ?9
             WHERE sweep_id = ?1 AND idx = ?2 AND status IN ('queued', 'running')",
        )?;
        for case in cases {
            let failure_kind = match case.end {
                RunEnd::Failed(kind) => Some(kind),
                _ => None,
            };
            let kpis = case
                .kpis
                .as_ref()
                .map(serde_json::to_string)
                .transpose()
                .map_err(encoding)?;
            let changed = update.execute(params![
                sweep.id,
                case.index,
                RunStatus::from(case.end),
                kpis,
                case.error,
                failure_kind,
                case.charged,
                case.elapsed_ms,
                now
            ])?;
            if changed == 1 {
                done.settled += 1;
                if case.charged {
                    done.charged += 1;
                } else {
                    done.refunded += 1;
                }
            }
        }
    }
    move_credits(tx, sweep, done, now)?;
    Ok(done)
}

/// The ledger (and usage) rows of settled cases: one `settle` row for the charged ones, one
/// `refund` row for the others.
fn move_credits(
    tx: &Transaction<'_>,
    sweep: &SweepRow,
    done: Settled,
    now: i64,
) -> StoreResult<()> {
    let per_case = sweep.credits_per_case.get();
    let plural = |n: u32| if n == 1 { "case" } else { "cases" };
    if done.charged > 0 {
        let credits = Credits::new(per_case * i64::from(done.charged)).unwrap_or_default();
        let reason = format!(
            "Sweep {} charged {} for {} {}",
            sweep.id,
            credits.describe(),
            done.charged,
            plural(done.charged)
        );
        ledger::apply_for_sweep(
            tx,
            &sweep.user_id,
            0,
            EntryKind::Settle,
            &reason,
            &sweep.id,
            now,
        )?;
        let name = format!(
            "{} (sweep, {} {})",
            sweep.name,
            done.charged,
            plural(done.charged)
        );
        super::usage::insert(
            tx,
            &sweep.user_id,
            now,
            &name,
            credits,
            sweep.api_key_id.as_ref(),
            None,
        )?;
    }
    if done.refunded > 0 && per_case > 0 {
        let refund = per_case * i64::from(done.refunded);
        let reason = format!(
            "Sweep {}: {} {} refunded",
            sweep.id,
            done.refunded,
            plural(done.refunded)
        );
        ledger::apply_for_sweep(
            tx,
            &sweep.user_id,
            refund,
            EntryKind::Refund,
            &reason,
            &sweep.id,
            now,
        )?;
    }
    Ok(())
}

/// Ends the sweep if none of its cases is left to run. Returns the row if this call ended it.
fn finish_if_done(tx: &Transaction<'_>, id: &SweepId, now: i64) -> StoreResult<Option<SweepRow>> {
    let Some(sweep) = get(tx, id)? else {
        return Ok(None);
    };
    if sweep.status.is_finished() && sweep.status != SweepStatus::Cancelled {
        return Ok(None);
    }
    let c = counts(tx, id)?;
    if c.queued + c.running > 0 {
        return Ok(None);
    }
    if sweep.finished_at.is_some() {
        return Ok(None);
    }
    let status = match sweep.status {
        SweepStatus::Cancelled => SweepStatus::Cancelled,
        _ if c.service_failures > 0 || c.succeeded == 0 => SweepStatus::Failed,
        _ => SweepStatus::Completed,
    };
    let error = match status {
        SweepStatus::Failed if c.service_failures > 0 => Some(format!(
            "the service could not run {} of the cases; they were refunded",
            c.service_failures
        )),
        SweepStatus::Failed => Some("every case failed".to_string()),
        _ => None,
    };
    tx.execute(
        "UPDATE sweeps SET status = ?2, error = COALESCE(error, ?3), finished_at = ?4 WHERE id = ?1",
        params![id, status, error, now],
    )?;
    get(tx, id)
}

impl Store {
    /// Starts a sweep: checks the idempotency key, the account and the cap on active sweeps,
    /// holds the whole cost, and records the sweep and its cases, in one transaction.
    pub async fn reserve_sweep(
        &self,
        sweep: SweepRow,
        cases: Vec<Vec<(String, String)>>,
        idempotency: Option<Idempotency>,
        max_active: u32,
    ) -> StoreResult<SweepReservation> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            if let Some(key) = &idempotency {
                let earlier: Option<(String, SweepId)> = tx
                    .query_row(
                        "SELECT request_hash, sweep_id FROM sweep_idempotency_keys
                         WHERE user_id = ?1 AND key = ?2 AND created_at >= ?3",
                        params![sweep.user_id, key.key, key.since],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()?;
                if let Some((hash, id)) = earlier {
                    return Ok(SweepReservation::Replay {
                        same_request: hash == key.request_hash,
                        sweep: get(&tx, &id)?.map(Box::new),
                    });
                }
            }
            let deleted: bool = tx.query_row(
                "SELECT deleted_at IS NOT NULL FROM users WHERE id = ?1",
                [&sweep.user_id],
                |r| r.get(0),
            )?;
            if deleted {
                return Ok(SweepReservation::AccountGone);
            }
            if count_active(&tx, &sweep.user_id)? >= max_active {
                return Ok(SweepReservation::Busy);
            }
            let reason = format!(
                "Sweep {} ({}, {} cases)",
                sweep.id, sweep.name, sweep.case_count
            );
            let held = ledger::apply_for_sweep(
                &tx,
                &sweep.user_id,
                -sweep.credits_reserved.get(),
                EntryKind::Reserve,
                &reason,
                &sweep.id,
                sweep.created_at,
            )?;
            if held.is_none() {
                return Ok(SweepReservation::NoCredits);
            }
            tx.execute(
                "INSERT INTO sweeps (id, user_id, api_key_id, fmu_id, name, status, request, parameters,
                     case_count, credits_per_case, credits_reserved, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    sweep.id,
                    sweep.user_id,
                    sweep.api_key_id,
                    sweep.fmu_id,
                    sweep.name,
                    sweep.status,
                    sweep.request,
                    sweep.parameters,
                    sweep.case_count,
                    sweep.credits_per_case,
                    sweep.credits_reserved,
                    sweep.created_at
                ],
            )?;
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO sweep_cases (sweep_id, idx, start_values, status)
                     VALUES (?1, ?2, ?3, 'queued')",
                )?;
                for (i, values) in cases.iter().enumerate() {
                    let values = serde_json::to_string(values).map_err(encoding)?;
                    insert.execute(params![sweep.id, i as u32, values])?;
                }
            }
            if let Some(key) = &idempotency {
                tx.execute(
                    "INSERT INTO sweep_idempotency_keys (user_id, key, request_hash, sweep_id, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT(user_id, key) DO UPDATE SET request_hash = excluded.request_hash,
                         sweep_id = excluded.sweep_id, created_at = excluded.created_at",
                    params![sweep.user_id, key.key, key.request_hash, sweep.id, sweep.created_at],
                )?;
            }
            tx.commit()?;
            Ok(SweepReservation::Reserved)
        })
        .await
    }

    /// Gives up to `limit` queued cases (lowest index first) to a worker: they become
    /// `running` and count one more attempt; the sweep becomes `running`. Nothing for a sweep
    /// that has ended (cancelled meanwhile).
    pub async fn claim_cases(&self, id: &SweepId, limit: u32) -> StoreResult<Vec<CaseRow>> {
        let id = id.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            let active = tx.execute(
                "UPDATE sweeps SET status = 'running', started_at = COALESCE(started_at, ?2)
                 WHERE id = ?1 AND status IN ('queued', 'running')",
                params![id, now],
            )? == 1;
            if !active {
                return Ok(vec![]);
            }
            let sql = format!(
                "UPDATE sweep_cases SET status = 'running', attempts = attempts + 1
                 WHERE sweep_id = ?1 AND idx IN (
                     SELECT idx FROM sweep_cases WHERE sweep_id = ?1 AND status = 'queued'
                     ORDER BY idx LIMIT ?2)
                 RETURNING {CASE_COLUMNS}"
            );
            let mut cases = {
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![id, limit], case_from_row)?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            tx.commit()?;
            cases.sort_by_key(|c| c.index);
            Ok(cases)
        })
        .await
    }

    /// Settles ended cases in one transaction (see the module); returns what it did and the
    /// sweep's row if this ended the sweep.
    pub async fn settle_cases(
        &self,
        id: &SweepId,
        cases: Vec<CaseSettlement>,
    ) -> StoreResult<(Settled, Option<SweepRow>)> {
        let id = id.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(sweep) = get(&tx, &id)? else {
                return Ok((Settled::default(), None));
            };
            let done = settle_in(&tx, &sweep, &cases)?;
            let ended = finish_if_done(&tx, &id, now_ms())?;
            tx.commit()?;
            Ok((done, ended))
        })
        .await
    }

    /// Gives cases a worker took but did not run back to the queue (its worker ended early).
    /// A case given to `max_attempts` workers already is not requeued: it fails as the
    /// service's fault (`failure`), refunded. Returns the sweep's row if this ended it.
    pub async fn requeue_cases(
        &self,
        id: &SweepId,
        indices: Vec<u32>,
        max_attempts: u32,
        failure: (FailureKind, String),
    ) -> StoreResult<Option<SweepRow>> {
        let id = id.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(sweep) = get(&tx, &id)? else {
                return Ok(None);
            };
            let mut given_up = Vec::new();
            {
                let mut attempts = tx.prepare_cached(
                    "SELECT attempts FROM sweep_cases WHERE sweep_id = ?1 AND idx = ?2 AND status = 'running'",
                )?;
                let mut requeue = tx.prepare_cached(
                    "UPDATE sweep_cases SET status = 'queued' WHERE sweep_id = ?1 AND idx = ?2",
                )?;
                for index in indices {
                    let Some(n): Option<u32> = attempts
                        .query_row(params![id, index], |r| r.get(0))
                        .optional()?
                    else {
                        continue;
                    };
                    if n >= max_attempts {
                        given_up.push(CaseSettlement {
                            index,
                            end: RunEnd::Failed(failure.0),
                            charged: false,
                            kpis: None,
                            error: Some(failure.1.clone()),
                            elapsed_ms: None,
                        });
                    } else {
                        requeue.execute(params![id, index])?;
                    }
                }
            }
            settle_in(&tx, &sweep, &given_up)?;
            // A sweep cancelled meanwhile: its requeued cases will never be claimed.
            if sweep.status == SweepStatus::Cancelled {
                cancel_queued(&tx, &sweep)?;
            }
            let ended = finish_if_done(&tx, &id, now_ms())?;
            tx.commit()?;
            Ok(ended)
        })
        .await
    }

    /// Cancels a sweep: its queued cases are cancelled and refunded now; cases a worker is
    /// running settle when their worker stops. Returns the sweep as it then is, or `None`
    /// when it had already ended.
    pub async fn cancel_sweep(&self, id: &SweepId) -> StoreResult<Option<SweepRow>> {
        let id = id.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let cancelled = tx.execute(
                "UPDATE sweeps SET status = 'cancelled' WHERE id = ?1 AND status IN ('queued', 'running')",
                [&id],
            )? == 1;
            let Some(sweep) = get(&tx, &id)? else {
                return Ok(None);
            };
            if !cancelled {
                return Ok(None);
            }
            cancel_queued(&tx, &sweep)?;
            finish_if_done(&tx, &id, now_ms())?;
            let sweep = get(&tx, &id)?;
            tx.commit()?;
            Ok(sweep)
        })
        .await
    }

    /// After a stop: every case left running was interrupted and goes back to the queue
    /// (one attempt spent), or fails refunded once it has had `max_attempts`. Returns the
    /// sweeps left to run (to resume) and those this ended.
    pub async fn recover_sweeps(
        &self,
        max_attempts: u32,
    ) -> StoreResult<(Vec<SweepId>, Vec<SweepRow>)> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let ids: Vec<SweepId> = {
                let mut stmt = tx.prepare(
                    "SELECT id FROM sweeps WHERE status IN ('queued', 'running') OR
                     (status = 'cancelled' AND finished_at IS NULL) ORDER BY created_at",
                )?;
                let rows = stmt.query_map(params![], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let message = "the service stopped during this case too often; it was refunded";
            let (mut resume, mut ended) = (Vec::new(), Vec::new());
            for id in ids {
                let Some(sweep) = get(&tx, &id)? else { continue };
                let interrupted: Vec<(u32, u32)> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT idx, attempts FROM sweep_cases WHERE sweep_id = ?1 AND status = 'running'",
                    )?;
                    let rows = stmt.query_map([&id], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    rows.collect::<Result<_, _>>()?
                };
                let mut given_up = Vec::new();
                for (index, attempts) in interrupted {
                    if attempts >= max_attempts || sweep.status == SweepStatus::Cancelled {
                        given_up.push(CaseSettlement {
                            index,
                            end: RunEnd::Failed(FailureKind::Interrupted),
                            charged: false,
                            kpis: None,
                            error: Some(message.to_string()),
                            elapsed_ms: None,
                        });
                    } else {
                        tx.execute(
                            "UPDATE sweep_cases SET status = 'queued' WHERE sweep_id = ?1 AND idx = ?2",
                            params![id, index],
                        )?;
                    }
                }
                settle_in(&tx, &sweep, &given_up)?;
                if sweep.status == SweepStatus::Cancelled {
                    cancel_queued(&tx, &sweep)?;
                }
                match finish_if_done(&tx, &id, now_ms())? {
                    Some(row) => ended.push(row),
                    None => resume.push(id),
                }
            }
            tx.commit()?;
            Ok((resume, ended))
        })
        .await
    }

    /// Ends a sweep that cannot run (its model is gone, its request unreadable): every case
    /// not ended fails as `failure` says, refunded. Returns the sweep if this ended it.
    pub async fn abandon_sweep(
        &self,
        id: &SweepId,
        failure: (FailureKind, String),
    ) -> StoreResult<Option<SweepRow>> {
        let id = id.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(sweep) = get(&tx, &id)? else {
                return Ok(None);
            };
            let open: Vec<u32> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT idx FROM sweep_cases WHERE sweep_id = ?1 AND status IN ('queued', 'running')",
                )?;
                let rows = stmt.query_map([&id], |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let cases: Vec<CaseSettlement> = open
                .into_iter()
                .map(|index| CaseSettlement {
                    index,
                    end: RunEnd::Failed(failure.0),
                    charged: false,
                    kpis: None,
                    error: Some(failure.1.clone()),
                    elapsed_ms: None,
                })
                .collect();
            settle_in(&tx, &sweep, &cases)?;
            let ended = finish_if_done(&tx, &id, now_ms())?;
            tx.commit()?;
            Ok(ended)
        })
        .await
    }

    pub async fn get_sweep(&self, id: &SweepId) -> StoreResult<Option<SweepRow>> {
        let id = id.clone();
        self.run(move |conn| get(conn, &id)).await
    }

    /// The user's sweep (another user's id is "not found").
    pub async fn user_sweep(
        &self,
        user_id: &UserId,
        id: &SweepId,
    ) -> StoreResult<Option<SweepRow>> {
        let (uid, id) = (user_id.clone(), id.clone());
        self.run(move |conn| {
            let sql = format!("SELECT {COLUMNS} FROM sweeps WHERE id = ?1 AND user_id = ?2");
            conn.query_row(&sql, params![id, uid], from_row).optional()
        })
        .await
    }

    /// The user's sweeps, newest first, and how many there are.
    pub async fn list_sweeps(
        &self,
        user_id: &UserId,
        limit: u32,
        offset: i64,
    ) -> StoreResult<(Vec<SweepRow>, u64)> {
        let uid = user_id.clone();
        self.run(move |conn| {
            let total: i64 = conn.query_row(
                "SELECT COUNT(*) FROM sweeps WHERE user_id = ?1",
                [&uid],
                |r| r.get(0),
            )?;
            let sql = format!(
                "SELECT {COLUMNS} FROM sweeps WHERE user_id = ?1
                 ORDER BY created_at DESC, id DESC LIMIT ?2 OFFSET ?3"
            );
            let mut stmt = conn.prepare(&sql)?;
            let rows = stmt.query_map(params![uid, limit, offset], from_row)?;
            Ok((rows.collect::<Result<_, _>>()?, total.max(0) as u64))
        })
        .await
    }

    pub async fn sweep_counts(&self, id: &SweepId) -> StoreResult<CaseCounts> {
        let id = id.clone();
        self.run(move |conn| counts(conn, &id)).await
    }

    /// A page of a sweep's cases by index.
    pub async fn sweep_cases(
        &self,
        id: &SweepId,
        offset: u32,
        limit: u32,
    ) -> StoreResult<Vec<CaseRow>> {
        let id = id.clone();
        self.run(move |conn| {
            let sql = format!(
                "SELECT {CASE_COLUMNS} FROM sweep_cases WHERE sweep_id = ?1
                 AND idx >= ?2 ORDER BY idx LIMIT ?3"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![id, offset, limit], case_from_row)?;
            rows.collect::<Result<_, _>>()
        })
        .await
    }

    /// Cases given by index (those that exist), in index order.
    pub async fn sweep_cases_by_index(
        &self,
        id: &SweepId,
        indices: Vec<u32>,
    ) -> StoreResult<Vec<CaseRow>> {
        let id = id.clone();
        self.run(move |conn| {
            let sql =
                format!("SELECT {CASE_COLUMNS} FROM sweep_cases WHERE sweep_id = ?1 AND idx = ?2");
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut out = Vec::new();
            for index in indices {
                if let Some(case) = stmt
                    .query_row(params![id, index], case_from_row)
                    .optional()?
                {
                    out.push(case);
                }
            }
            out.sort_by_key(|c| c.index);
            Ok(out)
        })
        .await
    }
}

/// Cancels and refunds a cancelled sweep's queued cases.
fn cancel_queued(tx: &Transaction<'_>, sweep: &SweepRow) -> StoreResult<Settled> {
    let queued: Vec<u32> = {
        let mut stmt = tx.prepare_cached(
            "SELECT idx FROM sweep_cases WHERE sweep_id = ?1 AND status = 'queued'",
        )?;
        let rows = stmt.query_map([&sweep.id], |r| r.get(0))?;
        rows.collect::<Result<_, _>>()?
    };
    let cases: Vec<CaseSettlement> = queued
        .into_iter()
        .map(|index| CaseSettlement {
            index,
            end: RunEnd::CancelledQueued,
            charged: false,
            kpis: None,
            error: Some("the sweep was cancelled before this case started".into()),
            elapsed_ms: None,
        })
        .collect();
    settle_in(tx, sweep, &cases)
}
