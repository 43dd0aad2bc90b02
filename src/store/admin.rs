//! Operators' tasks on the database itself: its schema version and an online backup.

use std::path::PathBuf;

use super::sql::{Engine, params};
use super::{POSTGRES_SCHEMA, SCHEMA, Store, StoreError, StoreResult, migrations};

impl Store {
    /// The newest migration applied, and the newest this build knows.
    pub async fn schema_version(&self) -> StoreResult<(u32, u32)> {
        let engine = self.engine();
        self.run(move |conn| {
            let applied: i64 = match engine {
                Engine::Sqlite => conn.query_row("PRAGMA user_version", params![], |r| r.get(0))?,
                Engine::Postgres => {
                    conn.query_row("SELECT version FROM schema_version", params![], |r| {
                        r.get(0)
                    })?
                }
            };
            let known = match engine {
                Engine::Sqlite => migrations(SCHEMA).len(),
                Engine::Postgres => migrations(POSTGRES_SCHEMA).len(),
            };
            Ok((
                u32::try_from(applied).map_err(StoreError::decode)?,
                known as u32,
            ))
        })
        .await
    }

    /// Writes a consistent copy of the SQLite database to `to` while the service runs
    /// (`VACUUM INTO`: one read transaction, so writers go on; the copy is compact and
    /// opens as a database of its own). `to` must not exist. PostgreSQL has its own tools
    /// (`pg_dump`, or the provider's snapshots), so this answers [`StoreError::Unsupported`].
    pub async fn backup_to(&self, to: PathBuf) -> StoreResult<()> {
        if self.engine() == Engine::Postgres {
            return Err(StoreError::Unsupported(
                "a PostgreSQL database is backed up with pg_dump (or the provider's snapshots), \
                 e.g. pg_dump --format=custom --file=fmu-gateway.dump \"$FMU_GATEWAY_DATABASE_URL\"",
            ));
        }
        self.run(move |conn| {
            let target = to
                .to_str()
                .ok_or_else(|| StoreError::Unsupported("the backup's path must be valid UTF-8"))?;
            conn.execute("VACUUM INTO ?1", params![target])?;
            Ok(())
        })
        .await
    }
}

/// The advisory lock the one `serve` process of a PostgreSQL database holds.
const SERVER_LOCK: i64 = 0x464d_5547_5356; // "FMUGSV"

/// Held by the `serve` process of a PostgreSQL database for as long as it runs. A server
/// recovers at start what the last one left (runs it fails and refunds, sweep cases it
/// requeues): a second server on the same database would take the first one's work for
/// interrupted. Until runs are leased from a queue, a second `serve` is refused instead.
pub struct ServerLock(Option<super::Connection>);

impl Drop for ServerLock {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take()
            && let Err(e) = conn.execute_batch(&format!("SELECT pg_advisory_unlock({SERVER_LOCK})"))
        {
            tracing::warn!(error = %e, "cannot release the server lock");
        }
    }
}

impl Store {
    /// Takes the server lock of a PostgreSQL database (one connection of the pool holds it);
    /// `None` when another server holds it. SQLite needs none: a data directory is one
    /// machine's.
    pub fn lock_as_the_server(&self) -> StoreResult<Option<ServerLock>> {
        if self.engine() == Engine::Sqlite {
            return Ok(Some(ServerLock(None)));
        }
        let conn = self.conn()?;
        let taken: bool = conn.query_row(
            "SELECT pg_try_advisory_lock(?1)",
            params![SERVER_LOCK],
            |r| r.get(0),
        )?;
        Ok(taken.then(|| ServerLock(Some(conn))))
    }
}
