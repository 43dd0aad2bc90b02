//! The `fmu_states` and `run_states` tables: saved FMU states' metadata. The files are the
//! domain's (`domain::states`); these operations record them, each in one transaction.

use super::sql::{Connection, OptionalExtension, Row, params};

use super::{Store, StoreResult, write_tx};
use crate::domain::ids::{RunId, UserId};

/// A saved state as its owner sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct StateRow {
    pub id: String,
    pub user_id: UserId,
    /// SHA-256 of the bytes: where the file is kept.
    pub sha256: String,
    /// The FMU it belongs to: its id, instantiation token (FMI 2 guid), FMI major version
    /// ("2" or "3") and interface ("cs" or "me").
    pub fmu_id: String,
    pub instantiation_token: String,
    pub fmi_version: String,
    pub interface: String,
    pub time: f64,
    pub size_bytes: i64,
    pub source_run: Option<RunId>,
    pub created_at: i64,
}

const COLUMNS: &str = "id, user_id, sha256, fmu_id, instantiation_token, fmi_version, interface, \
                       time, size_bytes, source_run, created_at";

fn from_row(r: &Row) -> StoreResult<StateRow> {
    Ok(StateRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        sha256: r.get(2)?,
        fmu_id: r.get(3)?,
        instantiation_token: r.get(4)?,
        fmi_version: r.get(5)?,
        interface: r.get(6)?,
        time: r.get(7)?,
        size_bytes: r.get(8)?,
        source_run: r.get(9)?,
        created_at: r.get(10)?,
    })
}

/// What recording a state did.
#[derive(Clone, Debug, PartialEq)]
pub enum StateAdded {
    /// Recorded (or the user already had it: same FMU, same bytes); the row as it now is.
    Added(Box<StateRow>),
    /// It would take the user's storage past the quota: nothing was recorded.
    OverQuota { used: i64 },
}

fn get(conn: &Connection, user_id: &UserId, id: &str) -> StoreResult<Option<StateRow>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM fmu_states WHERE user_id = ?1 AND id = ?2"),
        params![user_id, id],
        from_row,
    )
    .optional()
}

/// Records the state for its user if it fits in `quota` bytes with their uploads and other
/// states, and links it to the run that saved it. One write transaction.
fn add(conn: &mut Connection, row: &StateRow, quota: i64) -> StoreResult<StateAdded> {
    let tx = write_tx(conn)?;
    if get(&tx, &row.user_id, &row.id)?.is_none() {
        let used = super::fmus::storage_used_tx(&tx, &row.user_id)?;
        if used.saturating_add(row.size_bytes) > quota {
            return Ok(StateAdded::OverQuota { used });
        }
        tx.execute(
            &format!(
                "INSERT INTO fmu_states ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"
            ),
            params![
                row.id,
                row.user_id,
                row.sha256,
                row.fmu_id,
                row.instantiation_token,
                row.fmi_version,
                row.interface,
                row.time,
                row.size_bytes,
                row.source_run,
                row.created_at
            ],
        )?;
    }
    if let Some(run) = &row.source_run {
        tx.execute(
            "INSERT INTO run_states (run_id, state_id) VALUES (?1, ?2)
             ON CONFLICT (run_id) DO UPDATE SET state_id = excluded.state_id",
            params![run, row.id],
        )?;
    }
    let stored = get(&tx, &row.user_id, &row.id)?;
    tx.commit()?;
    Ok(StateAdded::Added(Box::new(stored.expect("just recorded"))))
}

/// Bytes the user's saved states take (each counts in full, as each upload does).
pub(super) fn states_used(conn: &Connection, user_id: &UserId) -> StoreResult<i64> {
    conn.query_row(
        "SELECT COALESCE(SUM(size_bytes), 0) FROM fmu_states WHERE user_id = ?1",
        [user_id],
        |r| r.get(0),
    )
}

impl Store {
    /// Records a saved state (see [`StateAdded`]).
    pub async fn add_state(&self, row: StateRow, quota: i64) -> StoreResult<StateAdded> {
        self.run(move |conn| add(conn, &row, quota)).await
    }

    /// The user's state with this id.
    pub async fn user_state(&self, user_id: &UserId, id: &str) -> StoreResult<Option<StateRow>> {
        let (user, id) = (user_id.clone(), id.to_string());
        self.run(move |conn| get(conn, &user, &id)).await
    }

    /// The state the user's run saved, if it saved one and it was not deleted since.
    pub async fn run_state(
        &self,
        user_id: &UserId,
        run_id: &RunId,
    ) -> StoreResult<Option<StateRow>> {
        let (user, run) = (user_id.clone(), run_id.clone());
        self.run(move |conn| {
            let id: Option<String> = conn
                .query_row(
                    "SELECT s.state_id FROM run_states s JOIN runs r ON r.id = s.run_id
                     WHERE s.run_id = ?1 AND r.user_id = ?2",
                    params![run, user],
                    |r| r.get(0),
                )
                .optional()?;
            match id {
                Some(id) => get(conn, &user, &id),
                None => Ok(None),
            }
        })
        .await
    }

    /// Whether any user has a state with these bytes (so its file must stay).
    pub async fn state_bytes_used(&self, sha256: &str) -> StoreResult<bool> {
        let sha = sha256.to_string();
        self.run(move |conn| {
            conn.query_row(
                "SELECT EXISTS(SELECT 1 FROM fmu_states WHERE sha256 = ?1)",
                [&sha],
                |r| r.get(0),
            )
        })
        .await
    }

    /// The user's states, newest first.
    pub async fn user_states(&self, user_id: &UserId) -> StoreResult<Vec<StateRow>> {
        let user = user_id.clone();
        self.run(move |conn| {
            let mut stmt = conn.prepare(&format!(
                "SELECT {COLUMNS} FROM fmu_states WHERE user_id = ?1 ORDER BY created_at DESC, id"
            ))?;
            let rows = stmt
                .query_map([&user], from_row)?
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(rows)
        })
        .await
    }

    /// Removes the user's state. `None`: they had none with this id; else whether any user
    /// still has a state with the same bytes (whose file must then stay).
    pub async fn remove_state(
        &self,
        user_id: &UserId,
        id: &str,
    ) -> StoreResult<Option<(String, bool)>> {
        let (user, id) = (user_id.clone(), id.to_string());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(row) = get(&tx, &user, &id)? else {
                return Ok(None);
            };
            tx.execute(
                "DELETE FROM fmu_states WHERE user_id = ?1 AND id = ?2",
                params![user, id],
            )?;
            let still_used: bool = tx.query_row(
                "SELECT EXISTS(SELECT 1 FROM fmu_states WHERE sha256 = ?1)",
                [&row.sha256],
                |r| r.get(0),
            )?;
            tx.commit()?;
            Ok(Some((row.sha256, still_used)))
        })
        .await
    }
}
