//! The `sweeps`, `sweep_cases` and `sweep_idempotency_keys` tables.
//!
//! Money moves as for runs, in named operations that are each one transaction: starting a
//! sweep holds the whole cost in one ledger row ([`Store::reserve_sweep`]); each batch of
//! ended cases settles in one transaction ([`Store::settle_cases`]): the charged cases in one
//! `settle` row (and a usage row), the refunded ones in one `refund` row. At every moment
//! the credits held for a sweep are its unsettled cases times the cost of one.
//!
//! Any number of servers may share one PostgreSQL database, so a sweep is driven by one
//! process at a time, the holder of its lease (`runner`, `runner_until`: [`Runner`]): set when
//! the sweep is reserved or taken over ([`Store::recover_sweeps`]), renewed while it runs
//! ([`Store::renew_sweep_lease`]). A driver whose lease another process took claims nothing
//! more, and what it still settles is skipped: a case settles (or goes back to the queue)
//! only while it is `running` with the attempt its driver claimed it with.

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

pub(super) fn case_from_row(r: &Row) -> StoreResult<CaseRow> {
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

pub(super) const CASE_COLUMNS: &str = "idx, start_values, status, kpis, error, failure_kind, charged, attempts, elapsed_ms, finished_at";

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
    /// The attempt the settling driver claimed the case with ([`CaseRow::attempts`]): the
    /// settlement applies only while the case is still `running` with it (another driver
    /// has not taken it since). `None`: the case settles whatever claimed it, if it has not
    /// ended (what a cancel, a recovery or an abandoned sweep settles).
    pub attempt: Option<u32>,
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

/// What [`Store::settle_cases`] did: its counts, the cases it settled (by index), and the
/// sweep's row if this ended it.
#[derive(Clone, Debug, Default)]
pub struct CasesSettled {
    pub done: Settled,
    pub indices: Vec<u32>,
    pub ended: Option<SweepRow>,
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

/// The process driving a sweep (its node id) and how long its lease holds unrenewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Runner {
    pub node: String,
    pub lease_ms: i64,
}

impl Runner {
    fn until(&self, now: i64) -> i64 {
        now.saturating_add(self.lease_ms)
    }
}

/// Which unfinished sweeps [`Store::recover_sweeps`] takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Orphans {
    /// Every one: the only server on its database has just started (SQLite).
    All,
    /// Those whose driver stopped renewing its lease (or that never had one), except the
    /// ones this process is driving itself (servers sharing PostgreSQL).
    LeaseExpired { driving: Vec<SweepId> },
}

/// The sweeps a recovery took over (to drive now) and those it ended.
#[derive(Debug, Default)]
pub struct Recovered {
    pub resume: Vec<SweepId>,
    pub ended: Vec<SweepRow>,
}

/// Whether `runner` holds the sweep's lease (nobody does once the sweep is gone).
fn holds(conn: &Connection, id: &SweepId, runner: &Runner) -> StoreResult<bool> {
    let node: Option<Option<String>> = conn
        .query_row("SELECT runner FROM sweeps WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(node.flatten().as_deref() == Some(runner.node.as_str()))
}

pub(super) fn get(conn: &Connection, id: &SweepId) -> StoreResult<Option<SweepRow>> {
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

/// Settles the given cases and moves their credits, in the caller's transaction: each only
/// if it has not ended, and, when it names the attempt it was claimed with, only while it is
/// still running with that attempt. Returns what it did and the indices it settled.
pub(super) fn settle_in(
    tx: &Transaction<'_>,
    sweep: &SweepRow,
    cases: &[CaseSettlement],
) -> StoreResult<(Settled, Vec<u32>)> {
    let now = now_ms();
    let mut done = Settled::default();
    let mut settled = Vec::new();
    {
        // Without an attempt (`?10` NULL): any case not ended; with one: only while it is
        // running as that attempt.
        let mut update = tx.prepare_cached(
            "UPDATE sweep_cases SET status = ?3, kpis = ?4, error = ?5, failure_kind = ?6,
                charged = ?7, elapsed_ms = ?8, finished_at = ?9
             WHERE sweep_id = ?1 AND idx = ?2 AND (
                (CAST(?10 AS BIGINT) IS NULL AND status IN ('queued', 'running'))
                OR (status = 'running' AND attempts = CAST(?10 AS BIGINT)))",
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
                now,
                case.attempt
            ])?;
            if changed == 1 {
                settled.push(case.index);
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
    Ok((done, settled))
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
pub(super) fn finish_if_done(
    tx: &Transaction<'_>,
    id: &SweepId,
    now: i64,
) -> StoreResult<Option<SweepRow>> {
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
    /// holds the whole cost, and records the sweep and its cases with `runner` (the process
    /// that will drive it) holding its lease, in one transaction.
    pub async fn reserve_sweep(
        &self,
        sweep: SweepRow,
        cases: Vec<Vec<(String, String)>>,
        idempotency: Option<Idempotency>,
        max_active: u32,
        runner: &Runner,
    ) -> StoreResult<SweepReservation> {
        let runner = runner.clone();
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
                     case_count, credits_per_case, credits_reserved, created_at, runner, runner_until)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
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
                    sweep.created_at,
                    runner.node,
                    runner.until(now_ms())
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

    /// Gives up to `limit` queued cases (lowest index first) to a worker of `runner`: they
    /// become `running` and count one more attempt; the sweep becomes `running`. Nothing for a
    /// sweep that has ended (cancelled meanwhile); `None` when `runner` no longer holds the
    /// sweep's lease (another process took it over).
    pub async fn claim_cases(
        &self,
        id: &SweepId,
        limit: u32,
        runner: &Runner,
    ) -> StoreResult<Option<Vec<CaseRow>>> {
        let (id, runner) = (id.clone(), runner.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            let active = tx.execute(
                "UPDATE sweeps SET status = 'running', started_at = COALESCE(started_at, ?2)
                 WHERE id = ?1 AND status IN ('queued', 'running') AND runner = ?3",
                params![id, now, runner.node],
            )? == 1;
            if !active {
                return Ok(holds(&tx, &id, &runner)?.then(Vec::new));
            }
            let sql = format!(
                "UPDATE sweep_cases SET status = 'running', attempts = attempts + 1,
                     lease_node = NULL, leased_until = NULL
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
            Ok(Some(cases))
        })
        .await
    }

    /// Gives up the leases of every sweep `node` drives (a server stopping on purpose), so
    /// that another server takes them over at once; the driver's next renewal finds its lease
    /// gone and stops. Returns how many.
    pub async fn release_sweeps(&self, node: &str) -> StoreResult<usize> {
        self.write_one(
            "UPDATE sweeps SET runner = NULL, runner_until = NULL
                 WHERE runner = ?1 AND finished_at IS NULL",
            node,
        )
        .await
    }

    /// Renews `runner`'s lease on driving the sweep; the sweep's status, or `None` when
    /// another process holds the lease now (or the sweep is gone).
    pub async fn renew_sweep_lease(
        &self,
        id: &SweepId,
        runner: &Runner,
    ) -> StoreResult<Option<SweepStatus>> {
        let (id, runner) = (id.clone(), runner.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let status = tx
                .query_row(
                    "UPDATE sweeps SET runner_until = ?3 WHERE id = ?1 AND runner = ?2
                     RETURNING status",
                    params![id, runner.node, runner.until(now_ms())],
                    |r| r.get(0),
                )
                .optional()?;
            tx.commit()?;
            Ok(status)
        })
        .await
    }

    /// Settles ended cases in one transaction (see the module and [`CaseSettlement`]).
    pub async fn settle_cases(
        &self,
        id: &SweepId,
        cases: Vec<CaseSettlement>,
    ) -> StoreResult<CasesSettled> {
        let id = id.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(sweep) = get(&tx, &id)? else {
                return Ok(CasesSettled::default());
            };
            let (done, indices) = settle_in(&tx, &sweep, &cases)?;
            let ended = finish_if_done(&tx, &id, now_ms())?;
            tx.commit()?;
            Ok(CasesSettled {
                done,
                indices,
                ended,
            })
        })
        .await
    }

    /// Gives cases a worker took but did not run back to the queue (its worker ended early),
    /// each given with the attempt it was claimed with: one no longer running with it (another
    /// driver took it since) is left alone. A case given to `max_attempts` workers already is
    /// not requeued: it fails as the service's fault (`failure`), refunded. Returns the
    /// sweep's row if this ended it.
    pub async fn requeue_cases(
        &self,
        id: &SweepId,
        claimed: Vec<(u32, u32)>,
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
                let mut requeue = tx.prepare_cached(
                    "UPDATE sweep_cases SET status = 'queued', lease_node = NULL, leased_until = NULL
                     WHERE sweep_id = ?1 AND idx = ?2 AND status = 'running' AND attempts = ?3",
                )?;
                for (index, attempt) in claimed {
                    if attempt >= max_attempts {
                        given_up.push(CaseSettlement {
                            index,
                            attempt: Some(attempt),
                            end: RunEnd::Failed(failure.0),
                            charged: false,
                            kpis: None,
                            error: Some(failure.1.clone()),
                            elapsed_ms: None,
                        });
                    } else {
                        requeue.execute(params![id, index, attempt])?;
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

    /// Takes over the unfinished sweeps `which` says (their driver stopped): every case left
    /// running was interrupted and goes back to the queue (one attempt spent), or fails
    /// refunded once it has had `max_attempts`; the sweeps left to run are `runner`'s to drive
    /// from now on, in the same transaction, so two servers never take over the same sweep.
    pub async fn recover_sweeps(
        &self,
        max_attempts: u32,
        which: Orphans,
        runner: &Runner,
    ) -> StoreResult<Recovered> {
        let runner = runner.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            const UNFINISHED: &str = "(status IN ('queued', 'running') OR
                (status = 'cancelled' AND finished_at IS NULL))";
            let ids: Vec<SweepId> = {
                let (sql, bound): (String, Vec<Value>) = match &which {
                    Orphans::All => (
                        format!("SELECT id FROM sweeps WHERE {UNFINISHED} ORDER BY created_at"),
                        vec![],
                    ),
                    Orphans::LeaseExpired { .. } => (
                        format!(
                            "SELECT id FROM sweeps WHERE {UNFINISHED}
                             AND (runner_until IS NULL OR runner_until < ?1) ORDER BY created_at"
                        ),
                        vec![now.to_sql()?],
                    ),
                };
                let mut stmt = tx.prepare(&sql)?;
                let rows = stmt.query_map(bound, |r| r.get(0))?;
                rows.collect::<Result<_, _>>()?
            };
            let mut recovered = Recovered::default();
            for id in ids {
                if let Orphans::LeaseExpired { driving } = &which
                    && driving.contains(&id)
                {
                    continue;
                }
                let Some(sweep) = get(&tx, &id)? else { continue };
                // Cases a worker node holds under a lease still running are its own.
                let interrupted: Vec<(u32, u32)> = {
                    let mut stmt = tx.prepare_cached(
                        "SELECT idx, attempts FROM sweep_cases WHERE sweep_id = ?1 AND status = 'running'
                         AND (leased_until IS NULL OR leased_until < ?2)",
                    )?;
                    let rows = stmt.query_map(params![id, now], |r| Ok((r.get(0)?, r.get(1)?)))?;
                    rows.collect::<Result<_, _>>()?
                };
                requeue_interrupted(&tx, &sweep, interrupted, max_attempts)?;
                tx.execute(
                    "UPDATE sweeps SET runner = ?2, runner_until = ?3 WHERE id = ?1",
                    params![id, runner.node, runner.until(now)],
                )?;
                match finish_if_done(&tx, &id, now_ms())? {
                    Some(row) => recovered.ended.push(row),
                    None => recovered.resume.push(id),
                }
            }
            tx.commit()?;
            Ok(recovered)
        })
        .await
    }

    /// Ends a sweep that cannot run (its model is gone, its request unreadable): every case
    /// not ended fails as `failure` says, refunded. Only while `runner` drives it (another
    /// process that took it over decides for itself). Returns the sweep if this ended it.
    pub async fn abandon_sweep(
        &self,
        id: &SweepId,
        failure: (FailureKind, String),
        runner: &Runner,
    ) -> StoreResult<Option<SweepRow>> {
        let (id, runner) = (id.clone(), runner.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            if !holds(&tx, &id, &runner)? {
                return Ok(None);
            }
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
                    attempt: None,
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

/// Cases whose worker stopped while running them (given with the attempt it claimed): each
/// goes back to the queue, or fails refunded once it has had `max_attempts` workers; all of
/// a cancelled sweep's end cancelled-refunded, as do its queued ones.
pub(super) fn requeue_interrupted(
    tx: &Transaction<'_>,
    sweep: &SweepRow,
    interrupted: Vec<(u32, u32)>,
    max_attempts: u32,
) -> StoreResult<()> {
    let message = "the service stopped during this case too often; it was refunded";
    let mut given_up = Vec::new();
    for (index, attempts) in interrupted {
        if attempts >= max_attempts || sweep.status == SweepStatus::Cancelled {
            given_up.push(CaseSettlement {
                index,
                attempt: Some(attempts),
                end: RunEnd::Failed(FailureKind::Interrupted),
                charged: false,
                kpis: None,
                error: Some(message.to_string()),
                elapsed_ms: None,
            });
        } else {
            tx.execute(
                "UPDATE sweep_cases SET status = 'queued', lease_node = NULL, leased_until = NULL
                 WHERE sweep_id = ?1 AND idx = ?2 AND status = 'running' AND attempts = ?3",
                params![sweep.id, index, attempts],
            )?;
        }
    }
    settle_in(tx, sweep, &given_up)?;
    if sweep.status == SweepStatus::Cancelled {
        cancel_queued(tx, sweep)?;
    }
    Ok(())
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
            attempt: None,
            end: RunEnd::CancelledQueued,
            charged: false,
            kpis: None,
            error: Some("the sweep was cancelled before this case started".into()),
            elapsed_ms: None,
        })
        .collect();
    Ok(settle_in(tx, sweep, &cases)?.0)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(in crate::store) fn runner(node: &str, lease_ms: i64) -> Runner {
        Runner {
            node: node.into(),
            lease_ms,
        }
    }

    /// A store with one user of 10 credits and a sweep of `cases` cases (one credit each)
    /// reserved by `by`.
    pub(in crate::store) async fn store_with_sweep(
        cases: u32,
        by: &Runner,
    ) -> (tempfile::TempDir, Store, SweepId) {
        let (dir, store) = crate::store::fixtures::store_with_user(10).await;
        let id = SweepId::from("swp_1".to_string());
        let row = SweepRow {
            id: id.clone(),
            user_id: UserId::from("u".to_string()),
            api_key_id: None,
            fmu_id: FmuId::from("f".to_string()),
            name: "s".into(),
            status: SweepStatus::Queued,
            request: "{}".into(),
            parameters: "[]".into(),
            case_count: cases,
            credits_per_case: Credits::from(1u32),
            credits_reserved: Credits::from(cases),
            error: None,
            created_at: now_ms(),
            started_at: None,
            finished_at: None,
        };
        let values = (0..cases).map(|_| vec![]).collect();
        let reserved = store.reserve_sweep(row, values, None, 3, by).await.unwrap();
        assert!(matches!(reserved, SweepReservation::Reserved));
        (dir, store, id)
    }

    pub(in crate::store) fn success(case: &CaseRow) -> CaseSettlement {
        CaseSettlement {
            index: case.index,
            attempt: Some(case.attempts),
            end: RunEnd::Succeeded,
            charged: true,
            kpis: Some(vec![Some(1.0)]),
            error: None,
            elapsed_ms: Some(1.0),
        }
    }

    #[tokio::test]
    async fn a_driver_whose_lease_was_taken_over_claims_settles_and_requeues_nothing() {
        // A's lease has run out as soon as it is taken.
        let (a, b) = (runner("node_a", -1), runner("node_b", 60_000));
        let (_dir, store, id) = store_with_sweep(3, &a).await;
        let claimed_by_a = store.claim_cases(&id, 2, &a).await.unwrap().unwrap();
        assert_eq!(claimed_by_a.len(), 2);

        let taken = store
            .recover_sweeps(3, Orphans::LeaseExpired { driving: vec![] }, &b)
            .await
            .unwrap();
        assert_eq!(taken.resume, vec![id.clone()]);
        assert_eq!(store.renew_sweep_lease(&id, &a).await.unwrap(), None);
        assert_eq!(
            store.renew_sweep_lease(&id, &b).await.unwrap(),
            Some(SweepStatus::Running)
        );
        assert_eq!(store.claim_cases(&id, 2, &a).await.unwrap(), None);
        // A's batch ends after the takeover: its cases went back to the queue, so nothing
        // of it settles.
        let late = store
            .settle_cases(&id, vec![success(&claimed_by_a[0])])
            .await
            .unwrap();
        assert_eq!((late.done, late.indices), (Settled::default(), vec![]));
        assert_eq!(store.sweep_counts(&id).await.unwrap().queued, 3);

        let claimed_by_b = store.claim_cases(&id, 3, &b).await.unwrap().unwrap();
        let attempts: Vec<u32> = claimed_by_b.iter().map(|c| c.attempts).collect();
        assert_eq!(attempts, vec![2, 2, 1]);
        // Still nothing of A's: B runs those cases now, as a later attempt.
        let late = store
            .settle_cases(&id, vec![success(&claimed_by_a[1])])
            .await
            .unwrap();
        assert!(late.indices.is_empty());
        let requeue = (FailureKind::ServiceError, "x".to_string());
        store
            .requeue_cases(&id, vec![(0, 1), (1, 1)], 3, requeue)
            .await
            .unwrap();
        assert_eq!(store.sweep_counts(&id).await.unwrap().running, 3);
        let abandon = (FailureKind::ServiceError, "x".to_string());
        assert!(
            store
                .abandon_sweep(&id, abandon, &a)
                .await
                .unwrap()
                .is_none()
        );

        let settled = store
            .settle_cases(&id, claimed_by_b.iter().map(success).collect())
            .await
            .unwrap();
        assert_eq!(settled.indices, vec![0, 1, 2]);
        assert_eq!(settled.done.charged, 3);
        let ended = settled.ended.expect("B's settlement ended the sweep");
        assert_eq!(ended.status, SweepStatus::Completed);
        let counts = store.sweep_counts(&id).await.unwrap();
        assert_eq!((counts.succeeded, counts.charged), (3, 3));
        let credits: i64 = store
            .run(|conn| {
                conn.query_row("SELECT credits FROM users WHERE id = 'u'", params![], |r| {
                    r.get(0)
                })
            })
            .await
            .unwrap();
        assert_eq!(credits, 7, "three cases charged once each");
    }

    #[tokio::test]
    async fn only_a_lapsed_lease_is_taken_over_on_a_shared_database_and_every_sweep_on_sqlite() {
        let a = runner("node_a", 60_000);
        let (_dir, store, id) = store_with_sweep(2, &a).await;
        let b = runner("node_b", 60_000);
        let expired = || Orphans::LeaseExpired { driving: vec![] };
        let taken = store.recover_sweeps(3, expired(), &b).await.unwrap();
        assert!(taken.resume.is_empty(), "A's lease holds");
        assert_eq!(
            store.renew_sweep_lease(&id, &a).await.unwrap(),
            Some(SweepStatus::Queued)
        );

        // A stops renewing; its own takeover leaves alone what it still drives.
        let lapsed = runner("node_a", -1);
        assert!(
            store
                .renew_sweep_lease(&id, &lapsed)
                .await
                .unwrap()
                .is_some()
        );
        let own = Orphans::LeaseExpired {
            driving: vec![id.clone()],
        };
        assert!(
            store
                .recover_sweeps(3, own, &a)
                .await
                .unwrap()
                .resume
                .is_empty()
        );
        let taken = store.recover_sweeps(3, expired(), &b).await.unwrap();
        assert_eq!(taken.resume, vec![id.clone()]);
        assert_eq!(store.claim_cases(&id, 1, &a).await.unwrap(), None);

        // The one server of a SQLite database takes every unfinished sweep at its start.
        let c = runner("node_c", 60_000);
        let all = store.recover_sweeps(3, Orphans::All, &c).await.unwrap();
        assert_eq!(all.resume, vec![id.clone()]);
        assert_eq!(
            store
                .claim_cases(&id, 1, &c)
                .await
                .unwrap()
                .map(|v| v.len()),
            Some(1)
        );
    }
}
