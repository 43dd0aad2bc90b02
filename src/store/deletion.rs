//! Deleting an account: what goes, and the tombstone that stays.
//!
//! The `users` row is kept, cleared: the credit ledger is append-only and names the user (a
//! foreign key), and usage and purchases are accounting that must still add up. Deleting the
//! row would either be refused (ledger) or cascade into usage. So the row keeps its id and
//! balance, loses its email, name and password, and its `email_normalized` becomes
//! `deleted:<id>` (unique, and never a parseable email), which frees the address.

use super::sql::{Connection, params};

use super::{Store, StoreResult, write_tx};
use crate::domain::ids::{FmuId, RunId, SweepId, UserId};

/// What the transaction removed from the database, whose files the caller removes next.
#[derive(Clone, Debug, Default)]
pub struct Removed {
    /// Runs whose result files go.
    pub runs: Vec<RunId>,
    /// Uploads nobody else owns (never library models): their stored file and directory go.
    pub fmus: Vec<FmuId>,
    /// State files (SHA-256) no other account has a state with.
    pub state_files: Vec<String>,
    /// Sweeps whose kept trajectories go.
    pub sweeps: Vec<SweepId>,
}

/// Why an account was not deleted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Runs are queued or running: their workers would write results for a deleted account.
    RunsInProgress(u32),
    /// No such account, or it is already deleted.
    NoAccount,
}

fn strings(conn: &Connection, sql: &str, user_id: &UserId) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt
        .query_map([user_id], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Uploads only this user owns, that are not library models.
fn sole_uploads(conn: &Connection, user_id: &UserId) -> StoreResult<Vec<String>> {
    strings(
        conn,
        "SELECT o.fmu_id FROM fmu_owners o JOIN fmus f ON f.id = o.fmu_id
         WHERE o.user_id = ?1 AND f.library_id IS NULL
           AND NOT EXISTS(SELECT 1 FROM fmu_owners x WHERE x.fmu_id = o.fmu_id AND x.user_id <> ?1)",
        user_id,
    )
}

/// State files only this user has states with.
fn sole_state_files(conn: &Connection, user_id: &UserId) -> StoreResult<Vec<String>> {
    strings(
        conn,
        "SELECT DISTINCT s.sha256 FROM fmu_states s WHERE s.user_id = ?1
           AND NOT EXISTS(SELECT 1 FROM fmu_states x WHERE x.sha256 = s.sha256 AND x.user_id <> ?1)",
        user_id,
    )
}

fn delete_account(
    conn: &mut Connection,
    user_id: &UserId,
    now: i64,
) -> StoreResult<Result<Removed, Refused>> {
    let tx = write_tx(conn)?;
    let live: bool = tx.query_row(
        "SELECT EXISTS(SELECT 1 FROM users WHERE id = ?1 AND deleted_at IS NULL)",
        [user_id],
        |r| r.get(0),
    )?;
    if !live {
        return Ok(Err(Refused::NoAccount));
    }
    let active =
        super::runs::count_active(&tx, user_id)? + super::sweeps::count_active(&tx, user_id)?;
    if active > 0 {
        return Ok(Err(Refused::RunsInProgress(active)));
    }
    let runs = strings(&tx, "SELECT id FROM runs WHERE user_id = ?1", user_id)?;
    let sweeps = strings(&tx, "SELECT id FROM sweeps WHERE user_id = ?1", user_id)?;
    let fmus = sole_uploads(&tx, user_id)?;
    let state_files = sole_state_files(&tx, user_id)?;
    // Sessions first: some name a key (and would go with it anyway).
    for sql in [
        "DELETE FROM sessions WHERE user_id = ?1",
        "DELETE FROM api_keys WHERE user_id = ?1",
        "DELETE FROM webhook_endpoints WHERE user_id = ?1",
        "DELETE FROM password_resets WHERE user_id = ?1",
        "DELETE FROM idempotency_keys WHERE user_id = ?1",
        "DELETE FROM runs WHERE user_id = ?1",
        "DELETE FROM sweep_idempotency_keys WHERE user_id = ?1",
        "DELETE FROM sweep_cases WHERE sweep_id IN (SELECT id FROM sweeps WHERE user_id = ?1)",
        "DELETE FROM sweeps WHERE user_id = ?1",
        "DELETE FROM fmu_states WHERE user_id = ?1",
        "DELETE FROM fmu_owners WHERE user_id = ?1",
    ] {
        tx.execute(sql, [user_id])?;
    }
    for id in &fmus {
        tx.execute(
            "DELETE FROM fmus WHERE id = ?1 AND library_id IS NULL
               AND NOT EXISTS(SELECT 1 FROM fmu_owners WHERE fmu_id = ?1)",
            [id],
        )?;
    }
    tx.execute(
        "UPDATE users SET email = '', email_normalized = 'deleted:' || id, name = NULL,
                          password_hash = NULL, deleted_at = ?2
         WHERE id = ?1",
        params![user_id, now],
    )?;
    tx.commit()?;
    Ok(Ok(Removed {
        runs: runs.into_iter().map(RunId::from).collect(),
        fmus: fmus.into_iter().map(FmuId::from).collect(),
        state_files,
        sweeps: sweeps.into_iter().map(SweepId::from).collect(),
    }))
}

impl Store {
    /// Deletes the account in one transaction (see the module): its sessions, keys, runs,
    /// saved states and uploads go, the user row becomes a tombstone. Refused while runs are
    /// in progress. Returns what the caller must remove from disk.
    pub async fn delete_account(
        &self,
        user_id: &UserId,
        now: i64,
    ) -> StoreResult<Result<Removed, Refused>> {
        let user_id = user_id.clone();
        self.run(move |conn| delete_account(conn, &user_id, now))
            .await
    }
}
