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

impl Store {
    /// The deployment's secret `name` (PostgreSQL): the one stored, or `candidate`, stored
    /// now, when there is none yet. Servers starting together agree on the first one stored.
    pub async fn shared_secret(&self, name: &str, candidate: String) -> StoreResult<String> {
        let name = name.to_string();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO service_secrets (name, value) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
                params![name, candidate],
            )?;
            conn.query_row(
                "SELECT value FROM service_secrets WHERE name = ?1",
                [&name],
                |r| r.get(0),
            )
        })
        .await
    }
}
