//! The `runs` and `idempotency_keys` tables.

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::DbResult;
use crate::domain::runs::RunStatus;
use crate::domain::runs::charging::FailureKind;

/// Stored by its name ([`RunStatus::as_str`]), the text the schema's queries compare with.
impl ToSql for RunStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

/// A name that is not a status is an error, not a guess: every row was written by [`ToSql`].
impl FromSql for RunStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<RunStatus> {
        value
            .as_str()?
            .parse()
            .map_err(|e| FromSqlError::Other(Box::new(e)))
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunRow {
    pub id: String,
    pub user_id: String,
    pub api_key_id: Option<String>,
    pub fmu_id: String,
    pub fmu_name: String,
    pub status: RunStatus,
    pub settings: String,
    pub credits_reserved: i64,
    pub credits_charged: i64,
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
}

const COLUMNS: &str =
    "id, user_id, api_key_id, fmu_id, fmu_name, status, settings, credits_reserved,
    credits_charged, error, log, created_at, started_at, finished_at, failure_kind, charged, result_removed_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
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
        failure_kind: r
            .get::<_, Option<String>>(14)?
            .as_deref()
            .and_then(|kind| kind.parse().ok()),
        charged: r.get(15)?,
        result_removed_at: r.get(16)?,
    })
}

pub fn insert(conn: &Connection, run: &RunRow) -> DbResult<()> {
    conn.execute(
        "INSERT INTO runs (id, user_id, api_key_id, fmu_id, fmu_name, status, settings, credits_reserved, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![run.id, run.user_id, run.api_key_id, run.fmu_id, run.fmu_name, run.status, run.settings, run.credits_reserved, run.created_at],
    )?;
    Ok(())
}

pub fn get(conn: &Connection, id: &str) -> DbResult<Option<RunRow>> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

/// The user's run (another user's id is "not found").
pub fn get_for_user(conn: &Connection, user_id: &str, id: &str) -> DbResult<Option<RunRow>> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE id = ?1 AND user_id = ?2");
    Ok(conn
        .query_row(&sql, params![id, user_id], from_row)
        .optional()?)
}

/// The user's runs, newest first, optionally by status and FMU (id or name).
pub fn list(
    conn: &Connection,
    user_id: &str,
    status: Option<RunStatus>,
    fmu: Option<&str>,
    limit: u32,
    offset: i64,
) -> DbResult<(Vec<RunRow>, u64)> {
    let filter = "WHERE user_id = ?1 AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR fmu_id = ?3 OR fmu_name = ?3)";
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
pub fn count_active(conn: &Connection, user_id: &str) -> DbResult<u32> {
    Ok(conn.query_row(
        "SELECT COUNT(*) FROM runs WHERE user_id = ?1 AND status IN ('queued', 'running')",
        [user_id],
        |r| r.get(0),
    )?)
}

/// queued → running. `false` when the run is no longer queued (cancelled meanwhile).
pub fn mark_running(conn: &Connection, id: &str, now: i64) -> DbResult<bool> {
    Ok(conn.execute(
        "UPDATE runs SET status = 'running', started_at = ?2 WHERE id = ?1 AND status = 'queued'",
        params![id, now],
    )? == 1)
}

/// How a run ended, as [`finish`] records it.
pub struct Finish<'a> {
    pub status: RunStatus,
    pub failure_kind: Option<FailureKind>,
    pub charged: bool,
    pub credits_charged: i64,
    pub error: Option<&'a str>,
    pub log: Option<&'a str>,
}

/// Ends an unfinished run. `false` when it had already ended (so nothing is settled twice).
pub fn finish(conn: &Connection, id: &str, end: &Finish<'_>, now: i64) -> DbResult<bool> {
    Ok(conn.execute(
        "UPDATE runs SET status = ?2, credits_charged = ?3, error = ?4, log = ?5, finished_at = ?6,
             failure_kind = ?7, charged = ?8
         WHERE id = ?1 AND status IN ('queued', 'running')",
        params![
            id,
            end.status,
            end.credits_charged,
            end.error,
            end.log,
            now,
            end.failure_kind.map(FailureKind::as_str),
            end.charged
        ],
    )? == 1)
}

/// Runs that were queued or running (after a crash none of them is).
pub fn unfinished(conn: &Connection) -> DbResult<Vec<RunRow>> {
    let sql = format!("SELECT {COLUMNS} FROM runs WHERE status IN ('queued', 'running')");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt.query_map([], from_row)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

/// The run an idempotency key made, with the hash of the request that made it.
pub fn idempotent(
    conn: &Connection,
    user_id: &str,
    key: &str,
    since: i64,
) -> DbResult<Option<(String, String)>> {
    Ok(conn
        .query_row(
            "SELECT request_hash, run_id FROM idempotency_keys WHERE user_id = ?1 AND key = ?2 AND created_at >= ?3",
            params![user_id, key, since],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// Records the key (replacing an expired record of the same key).
pub fn remember_idempotency(
    conn: &Connection,
    user_id: &str,
    key: &str,
    hash: &str,
    run_id: &str,
    now: i64,
) -> DbResult<()> {
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
pub fn results_to_remove(
    conn: &Connection,
    finished_before: i64,
    limit: u32,
) -> DbResult<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id FROM runs WHERE status = 'succeeded' AND result_removed_at IS NULL
           AND finished_at < ?1 ORDER BY finished_at LIMIT ?2",
    )?;
    let ids = stmt.query_map(params![finished_before, limit], |r| r.get(0))?;
    Ok(ids.collect::<Result<_, _>>()?)
}

/// Records that a run's results were removed.
pub fn mark_result_removed(conn: &Connection, id: &str, now: i64) -> DbResult<()> {
    conn.execute(
        "UPDATE runs SET result_removed_at = ?2 WHERE id = ?1 AND result_removed_at IS NULL",
        params![id, now],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
                .query_row("SELECT ?1", [bad], |r| r.get::<_, RunStatus>(0))
                .unwrap_err();
            assert!(err.to_string().contains("is not a run status"), "{err}");
        }
        let err = conn
            .query_row("SELECT 3", [], |r| r.get::<_, RunStatus>(0))
            .unwrap_err();
        assert!(
            matches!(err, rusqlite::Error::InvalidColumnType(..)),
            "{err}"
        );
    }
}
