//! The `runs` and `idempotency_keys` tables.

use super::StoreError;
use super::sql::{Connection, OptionalExtension, Row, Transaction, params};
use super::sql::{FromSql, ToSql, Value};

use super::ledger::{self, EntryKind};
use super::{Store, StoreResult, now_ms, write_tx};
use crate::domain::ids::{Credits, FmuId, KeyId, RunId, UserId};
use crate::domain::runs::RunStatus;
use crate::domain::runs::charging::FailureKind;
use crate::domain::runs::charging::RunEnd;

/// Stored by its name ([`RunStatus::as_str`]), the text the schema's queries compare with.
impl ToSql for RunStatus {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::from(self.as_str()))
    }
}

/// A name that is not a status is an error, not a guess: every row was written by [`ToSql`].
/// (The same holds for [`FailureKind`] below.)
impl FromSql for RunStatus {
    fn column_result(value: &Value) -> StoreResult<RunStatus> {
        value.as_str()?.parse().map_err(StoreError::decode)
    }
}

impl ToSql for FailureKind {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::from(self.as_str()))
    }
}

impl FromSql for FailureKind {
    fn column_result(value: &Value) -> StoreResult<FailureKind> {
        value.as_str()?.parse().map_err(StoreError::decode)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct RunRow {
    pub id: RunId,
    pub user_id: UserId,
    pub api_key_id: Option<KeyId>,
    pub fmu_id: FmuId,
    pub fmu_name: String,
    pub status: RunStatus,
    pub settings: String,
    pub credits_reserved: Credits,
    pub credits_charged: Credits,
    pub error: Option<String>,
    pub log: Option<String>,
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Why a failed run failed.
    pub failure_kind: Option<FailureKind>,
    /// Whether the caller paid for this run (the charging rule's answer; false until settled).
    pub charged: bool,
    /// When the retention clean-up removed the results of this (succeeded) run.
    pub result_removed_at: Option<i64>,
    /// The verdict of the run's reference check (`sim::reference::ReferenceCheck` as JSON),
    /// when it asked for one and succeeded.
    pub reference_check: Option<String>,
    /// The simulated time the run had reached at its worker's last heartbeat (while it runs
    /// in another process; this process's own runs report to `domain::runs::progress`).
    pub progress_time: Option<f64>,
    /// The process holding the run's lease (`AppState::node_id`), while one does.
    pub lease_node: Option<String>,
}

pub(super) const COLUMNS: &str =
    "id, user_id, api_key_id, fmu_id, fmu_name, status, settings, credits_reserved,
    credits_charged, error, log, created_at, started_at, finished_at, failure_kind, charged, result_removed_at,
    reference_check, progress_time, lease_node";

/// How many columns [`COLUMNS`] names: a query that selects more reads them from here on.
pub(super) const COLUMN_COUNT: usize = 20;

pub(super) fn from_row(r: &Row) -> StoreResult<RunRow> {
    Ok(RunRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        api_key_id: r.get(2)?,
        fmu_id: r.get(3)?,
        fmu_name: r.get(4)?,
        status: r.get(5)?,
        settings: r.get(6)?,
        credits_reserved: r.get(7)?,
        credits_charged: r.get(8)?,
        error: r.get(9)?,
        log: r.get(10)?,
        created_at: r.get(11)?,
        started_at: r.get(12)?,
        finished_at: r.get(13)?,
        failure_kind: r.get(14)?,
        charged: r.get(15)?,
        result_removed_at: r.get(16)?,
        reference_check: r.get(17)?,
        progress_time: r.get(18)?,
        lease_node: r.get(19)?,
    })
}

/// Records a queued run and its worker job (what a worker leases, `store::queue`).
pub(super) fn insert(conn: &Connection, run: &RunRow, job: &str) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO runs (id, user_id, api_key_id, fmu_id, fmu_name, status, settings, credits_reserved, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![run.id, run.user_id, run.api_key_id, run.fmu_id, run.fmu_name, run.status, run.settings, run.credits_reserved, run.created_at],
    )?;
    conn.execute(
        "INSERT INTO run_jobs (run_id, job) VALUES (?1, ?2)",
        params![run.id, job],
    )?;
    Ok(())
}

pub(super) fn get(conn: &Connection, id: &RunId) -> StoreResult<Option<RunRow>> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE id = ?1");
    conn.query_row(&sql, [id], from_row).optional()
}

/// The user's run (another user's id is "not found").
pub(super) fn get_for_user(
    conn: &Connection,
    user_id: &UserId,
    id: &RunId,
) -> StoreResult<Option<RunRow>> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE id = ?1 AND user_id = ?2");
    conn.query_row(&sql, params![id, user_id], from_row)
        .optional()
}

/// The user's runs, newest first, optionally by status and FMU (id or name).
pub(super) fn list(
    conn: &Connection,
    user_id: &UserId,
    status: Option<RunStatus>,
    fmu: Option<&str>,
    limit: u32,
    offset: i64,
) -> StoreResult<(Vec<RunRow>, u64)> {
    let filter = "WHERE user_id = ?1 AND (CAST(?2 AS TEXT) IS NULL OR status = ?2)
        AND (CAST(?3 AS TEXT) IS NULL OR fmu_id = ?3 OR fmu_name = ?3)";
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM runs {filter}"),
        params![user_id, status, fmu],
        |r| r.get(0),
    )?;
    let sql = format!(
        "SELECT {COLUMNS} FROM runs {filter} ORDER BY created_at DESC, id DESC LIMIT ?4 OFFSET ?5"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params![user_id, status, fmu, limit, offset], from_row)?
        .collect::<Result<_, _>>()?;
    Ok((rows, total.max(0) as u64))
}

/// How many of the user's runs are queued or running (over all their keys and the
/// dashboard).
pub(super) fn count_active(conn: &Connection, user_id: &UserId) -> StoreResult<u32> {
    conn.query_row(
        "SELECT COUNT(*) FROM runs WHERE user_id = ?1 AND status IN ('queued', 'running')",
        [user_id],
        |r| r.get(0),
    )
}

/// How a run ended, as [`finish`] records it.
pub(super) struct Finish<'a> {
    pub status: RunStatus,
    pub failure_kind: Option<FailureKind>,
    pub charged: bool,
    pub credits_charged: Credits,
    pub error: Option<&'a str>,
    pub log: Option<&'a str>,
    pub reference_check: Option<&'a str>,
}

/// Ends an unfinished run. `false` when it had already ended (so nothing is settled twice).
pub(super) fn finish(
    conn: &Connection,
    id: &RunId,
    end: &Finish<'_>,
    now: i64,
) -> StoreResult<bool> {
    Ok(conn.execute(
        "UPDATE runs SET status = ?2, credits_charged = ?3, error = ?4, log = ?5, finished_at = ?6,
             failure_kind = ?7, charged = ?8, reference_check = ?9, lease_token = NULL,
             leased_until = NULL, lease_node = NULL
         WHERE id = ?1 AND status IN ('queued', 'running')",
        params![
            id,
            end.status,
            end.credits_charged,
            end.error,
            end.log,
            now,
            end.failure_kind,
            end.charged,
            end.reference_check
        ],
    )? == 1)
}

/// Runs that were queued or running (after a crash none of them is).
pub(super) fn unfinished(conn: &Connection) -> StoreResult<Vec<RunRow>> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE status IN ('queued', 'running')");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params![], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The run an idempotency key made, with the hash of the request that made it.
pub(super) fn idempotent(
    conn: &Connection,
    user_id: &UserId,
    key: &str,
    since: i64,
) -> StoreResult<Option<(String, RunId)>> {
    conn
        .query_row(
            "SELECT request_hash, run_id FROM idempotency_keys WHERE user_id = ?1 AND key = ?2 AND created_at >= ?3",
            params![user_id, key, since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
}

/// Records the key (replacing an expired record of the same key).
pub(super) fn remember_idempotency(
    conn: &Connection,
    user_id: &UserId,
    key: &str,
    hash: &str,
    run_id: &RunId,
    now: i64,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, run_id, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT(user_id, key) DO UPDATE SET request_hash = excluded.request_hash, run_id = excluded.run_id,
             created_at = excluded.created_at",
        params![user_id, key, hash, run_id, now],
    )?;
    Ok(())
}

/// Succeeded runs whose results are older than `finished_before` and still kept, oldest
/// first, at most `limit`.
pub(super) fn results_to_remove(
    conn: &Connection,
    finished_before: i64,
    limit: u32,
) -> StoreResult<Vec<RunId>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM runs WHERE status = 'succeeded' AND result_removed_at IS NULL
           AND finished_at < ?1 ORDER BY finished_at LIMIT ?2",
    )?;
    let ids = stmt.query_map(params![finished_before, limit], |r| r.get(0))?;
    ids.collect::<Result<_, _>>()
}

/// Records that a run's results were removed.
pub(super) fn mark_result_removed(conn: &Connection, id: &RunId, now: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE runs SET result_removed_at = ?2 WHERE id = ?1 AND result_removed_at IS NULL",
        params![id, now],
    )?;
    Ok(())
}

/// What the domain decided about a run that ended: how (which gives its status and failure
/// kind), whether the caller pays (the rule in `domain::runs::charging`), and what to show.
#[derive(Clone, Debug)]
pub struct Settlement {
    pub end: RunEnd,
    pub charged: bool,
    pub error: Option<String>,
    pub log: Option<String>,
    /// The reference check's verdict (JSON), for a succeeded run that asked for one.
    pub reference_check: Option<String>,
}

/// An `Idempotency-Key` sent with a run request: the run it made is returned again for the
/// same request within the window, and refused for a different one.
#[derive(Clone, Debug)]
pub struct Idempotency {
    pub key: String,
    pub request_hash: String,
    /// Records older than this (ms) are forgotten.
    pub since: i64,
}

/// What [`Store::reserve_run`] did.
#[derive(Debug)]
pub enum Reservation {
    /// The credits are held and the run is recorded (queued).
    Reserved,
    /// The balance is below the run's cost; nothing changed.
    NoCredits,
    /// The user already has `max_active` runs queued or running; nothing changed.
    Busy,
    /// The key (or the user's session) started its runs-per-minute already: the next may start
    /// in `retry_after_ms`; nothing changed.
    RateLimited { retry_after_ms: i64 },
    /// The account was deleted (after the request was authenticated); nothing changed.
    AccountGone,
    /// The idempotency key was used before: the run it made, and whether the request was the
    /// same one.
    Replay {
        same_request: bool,
        run: Option<Box<RunRow>>,
    },
}

/// The caps a run's start is held to, counted in the transaction that reserves it, so that
/// concurrent starts, on one server or many sharing the database, cannot pass them.
#[derive(Debug, Clone, Copy)]
pub struct RunCaps {
    /// Runs queued or running per user.
    pub max_active: u32,
    /// Runs started in any minute per API key (or per user, for runs started in a session).
    pub per_minute: u32,
}

/// The window of [`RunCaps::per_minute`].
const MINUTE_MS: i64 = 60_000;

/// How long until the key that started `run` may start another, if it has started
/// `per_minute` runs in the last minute.
fn minute_cap(tx: &Transaction<'_>, run: &RunRow, per_minute: u32) -> StoreResult<Option<i64>> {
    let (started, oldest): (u32, Option<i64>) = tx.query_row(
        "SELECT COUNT(*), MIN(created_at) FROM runs
         WHERE user_id = ?1 AND COALESCE(api_key_id, '') = COALESCE(CAST(?2 AS TEXT), '')
           AND created_at > ?3",
        params![run.user_id, run.api_key_id, run.created_at - MINUTE_MS],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    if started < per_minute {
        return Ok(None);
    }
    let oldest = oldest.unwrap_or(run.created_at);
    Ok(Some((oldest + MINUTE_MS - run.created_at).max(1)))
}

/// Runs and their credits: each method is one transaction.
impl Store {
    /// Holds the run's credits and records it (with its idempotency key), in one transaction,
    /// so a balance never goes negative, concurrent starts cannot pass the caps (`caps`), and
    /// a retried request never holds credits twice.
    pub async fn reserve_run(
        &self,
        run: RunRow,
        job: String,
        idempotency: Option<Idempotency>,
        caps: RunCaps,
    ) -> StoreResult<Reservation> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            if let Some(key) = &idempotency
                && let Some((hash, run_id)) = idempotent(&tx, &run.user_id, &key.key, key.since)?
            {
                return Ok(Reservation::Replay {
                    same_request: hash == key.request_hash,
                    run: get(&tx, &run_id)?.map(Box::new),
                });
            }
            // Deleting an account waits for its runs to end; one that slipped past the
            // request's authentication must not start on the tombstone.
            let deleted: bool = tx.query_row(
                "SELECT deleted_at IS NOT NULL FROM users WHERE id = ?1",
                [&run.user_id],
                |r| r.get(0),
            )?;
            if deleted {
                return Ok(Reservation::AccountGone);
            }
            if let Some(retry_after_ms) = minute_cap(&tx, &run, caps.per_minute)? {
                return Ok(Reservation::RateLimited { retry_after_ms });
            }
            // Fair share: counted in the same write transaction as the reservation, so
            // concurrent starts cannot overshoot the cap.
            if count_active(&tx, &run.user_id)? >= caps.max_active {
                return Ok(Reservation::Busy);
            }
            let reason = format!("Run {} ({})", run.id, run.fmu_name);
            let held = ledger::apply(
                &tx,
                &run.user_id,
                -run.credits_reserved.get(),
                EntryKind::Reserve,
                &reason,
                Some(&run.id),
                run.created_at,
            )?;
            if held.is_none() {
                return Ok(Reservation::NoCredits);
            }
            insert(&tx, &run, &job)?;
            if let Some(key) = &idempotency {
                remember_idempotency(
                    &tx,
                    &run.user_id,
                    &key.key,
                    &key.request_hash,
                    &run.id,
                    run.created_at,
                )?;
            }
            tx.commit()?;
            Ok(Reservation::Reserved)
        })
        .await
    }

    /// Ends a run and settles its credits in one transaction: `decide` is given the run as it
    /// is inside the transaction (e.g. queued or running, for a cancel) and says how it
    /// ended. The reservation becomes a charge (with its usage row) or is refunded. With a
    /// `lease` token, only the holder of the run's current lease settles it (`store::queue`).
    /// Returns how it ended, or `None` when there is no such run, it was settled already, or
    /// the lease is no longer that token's.
    pub async fn settle_run<F>(
        &self,
        id: &RunId,
        lease: Option<&str>,
        decide: F,
    ) -> StoreResult<Option<RunEnd>>
    where
        F: FnOnce(&RunRow) -> Settlement + Send + 'static,
    {
        let (id, lease) = (id.clone(), lease.map(str::to_string));
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            if let Some(token) = &lease {
                let held: Option<Option<String>> = tx
                    .query_row("SELECT lease_token FROM runs WHERE id = ?1", [&id], |r| {
                        r.get(0)
                    })
                    .optional()?;
                if held.flatten().as_deref() != Some(token.as_str()) {
                    return Ok(None);
                }
            }
            let Some(run) = get(&tx, &id)? else {
                return Ok(None);
            };
            let settlement = decide(&run);
            let settled = settle_in(&tx, &run, &settlement)?;
            tx.commit()?;
            Ok(settled.then_some(settlement.end))
        })
        .await
    }

    /// Settles every run left queued or running (after a stop, none of them still is), in
    /// one transaction; `decide` says how each ended. Returns how many there were.
    pub async fn settle_unfinished<F>(&self, decide: F) -> StoreResult<usize>
    where
        F: Fn(&RunRow) -> Settlement + Send + 'static,
    {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let runs = unfinished(&tx)?;
            for run in &runs {
                settle_in(&tx, run, &decide(run))?;
            }
            tx.commit()?;
            Ok(runs.len())
        })
        .await
    }

    /// A run by id, whoever's it is (for the engine; faces use [`Store::user_run`]).
    pub async fn get_run(&self, id: &RunId) -> StoreResult<Option<RunRow>> {
        let id = id.clone();
        self.run(move |conn| get(conn, &id)).await
    }

    /// The user's run (another user's id is "not found").
    pub async fn user_run(&self, user_id: &UserId, id: &RunId) -> StoreResult<Option<RunRow>> {
        let (uid, id) = (user_id.clone(), id.clone());
        self.run(move |conn| get_for_user(conn, &uid, &id)).await
    }

    /// The user's runs, newest first, optionally by status and FMU (id or name), and how many
    /// match in all.
    pub async fn list_runs(
        &self,
        user_id: &UserId,
        status: Option<RunStatus>,
        fmu: Option<String>,
        limit: u32,
        offset: i64,
    ) -> StoreResult<(Vec<RunRow>, u64)> {
        let uid = user_id.clone();
        self.run(move |conn| list(conn, &uid, status, fmu.as_deref(), limit, offset))
            .await
    }

    /// Succeeded runs whose results ended before `finished_before` and are still kept,
    /// oldest first, at most `limit`.
    pub async fn expired_results(
        &self,
        finished_before: i64,
        limit: u32,
    ) -> StoreResult<Vec<RunId>> {
        self.run(move |conn| results_to_remove(conn, finished_before, limit))
            .await
    }

    /// Records that these runs' results were removed, in one transaction.
    pub async fn results_removed(&self, ids: Vec<RunId>) -> StoreResult<()> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            for id in &ids {
                mark_result_removed(&tx, id, now)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }
}

/// Records how `run` ended and moves its credits, inside the caller's transaction. `false`
/// (and nothing changed) when the run was already settled.
pub(super) fn settle_in(tx: &Transaction<'_>, run: &RunRow, s: &Settlement) -> StoreResult<bool> {
    let now = now_ms();
    let credits = if s.charged {
        run.credits_reserved
    } else {
        Credits::ZERO
    };
    let status = RunStatus::from(s.end);
    let failure_kind = match s.end {
        RunEnd::Failed(kind) => Some(kind),
        _ => None,
    };
    let finish_as = Finish {
        status,
        failure_kind,
        charged: s.charged,
        credits_charged: credits,
        error: s.error.as_deref(),
        log: s.log.as_deref(),
        reference_check: s.reference_check.as_deref(),
    };
    if !finish(tx, &run.id, &finish_as, now)? {
        return Ok(false);
    }
    // The job is only needed while the run can still be leased.
    tx.execute("DELETE FROM run_jobs WHERE run_id = ?1", [&run.id])?;
    let id = &run.id;
    if s.charged {
        let reason = format!("Run {id} charged {}", credits.describe());
        ledger::apply(
            tx,
            &run.user_id,
            0,
            EntryKind::Settle,
            &reason,
            Some(id),
            now,
        )?;
        let name = if run.fmu_name.trim().is_empty() {
            "(unnamed)"
        } else {
            &run.fmu_name
        };
        let key = run.api_key_id.as_ref();
        super::usage::insert(tx, &run.user_id, now, name, credits, key, Some(id))?;
    } else if run.credits_reserved > Credits::ZERO {
        let why = failure_kind.map_or(status.as_str(), FailureKind::as_str);
        let reason = format!("Run {id} {why}: refunded");
        let refund = run.credits_reserved;
        ledger::apply(
            tx,
            &run.user_id,
            refund.get(),
            EntryKind::Refund,
            &reason,
            Some(id),
            now,
        )?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_count_counts_the_columns() {
        assert_eq!(COLUMNS.split(',').count(), COLUMN_COUNT);
    }

    #[test]
    fn a_failure_kind_is_stored_by_its_name_and_read_back_or_refused() {
        let conn = Connection::open_in_memory().unwrap();
        for kind in FailureKind::ALL {
            let read: FailureKind = conn.query_row("SELECT ?1", [kind], |r| r.get(0)).unwrap();
            assert_eq!(read, kind);
        }
        let none: Option<FailureKind> = conn
            .query_row("SELECT NULL", params![], |r| r.get(0))
            .unwrap();
        assert_eq!(none, None);
        assert!(
            conn.query_row("SELECT 'exploded'", params![], |r| r.get::<FailureKind>(0))
                .is_err()
        );
    }

    #[test]
    fn a_status_is_stored_by_its_name_and_read_back_or_refused() {
        let conn = Connection::open_in_memory().unwrap();
        for status in RunStatus::ALL {
            let stored: String = conn.query_row("SELECT ?1", [status], |r| r.get(0)).unwrap();
            assert_eq!(stored, status.as_str());
            let read: RunStatus = conn
                .query_row("SELECT ?1", [status.as_str()], |r| r.get(0))
                .unwrap();
            assert_eq!(read, status);
        }
        for bad in ["done", "Succeeded"] {
            let err = conn
                .query_row("SELECT ?1", [bad], |r| r.get::<RunStatus>(0))
                .unwrap_err();
            assert!(err.to_string().contains("is not a run status"), "{err}");
        }
        let err = conn
            .query_row("SELECT 3", params![], |r| r.get::<RunStatus>(0))
            .unwrap_err();
        assert!(matches!(err, crate::store::StoreError::Decode(_)), "{err}");
    }
}

#[cfg(test)]
mod caps_tests {
    use super::*;
    use crate::store::fixtures::{queued_run as run, store_with_user};

    const CAPS: RunCaps = RunCaps {
        max_active: 100,
        per_minute: 2,
    };

    #[tokio::test]
    async fn a_key_starts_at_most_its_runs_per_minute_counted_in_the_reservation() {
        let (_dir, store) = store_with_user(10).await;
        let t = 1_000_000;
        let reserve = |row: RunRow| {
            let store = store.clone();
            async move {
                store
                    .reserve_run(row, "{}".into(), None, CAPS)
                    .await
                    .unwrap()
            }
        };
        assert!(matches!(
            reserve(run("r1", Some("k1"), t)).await,
            Reservation::Reserved
        ));
        assert!(matches!(
            reserve(run("r2", Some("k1"), t + 10_000)).await,
            Reservation::Reserved
        ));
        // The third in the minute waits until the first is a minute old; nothing is held.
        match reserve(run("r3", Some("k1"), t + 20_000)).await {
            Reservation::RateLimited { retry_after_ms } => assert_eq!(retry_after_ms, 40_000),
            other => panic!("{other:?}"),
        }
        let credits: i64 = store
            .run(|c| c.query_row("SELECT credits FROM users WHERE id = 'u'", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(credits, 8);
        // Another key and the user's session have their own; a minute on, k1 has one again.
        assert!(matches!(
            reserve(run("r4", Some("k2"), t + 20_000)).await,
            Reservation::Reserved
        ));
        assert!(matches!(
            reserve(run("r5", None, t + 20_000)).await,
            Reservation::Reserved
        ));
        assert!(matches!(
            reserve(run("r6", Some("k1"), t + 60_001)).await,
            Reservation::Reserved
        ));
    }
}
