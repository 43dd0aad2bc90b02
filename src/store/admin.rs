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

/// What a worker node's database role may do, `{role}` replaced by its (checked) name: read
/// the queue, the registry and what a settlement checks; lease, heartbeat and settle runs
/// (the run, its ledger rows, its usage row, its webhook deliveries, its saved state) and
/// batches of sweep cases (the cases, the sweep's end); record its own heartbeat. Nothing else: no password hash, session, API key, Stripe record,
/// webhook secret or the deployment's root key. A machine that runs strangers' FMUs holds
/// only this.
const WORKER_GRANTS: &str = "
GRANT USAGE ON SCHEMA public TO {role};
GRANT SELECT ON schema_version, runs, run_jobs, fmus, fmu_owners, fmu_states, run_states,
    credit_ledger, usage, worker_nodes, webhook_deliveries, sweeps, sweep_cases TO {role};
GRANT SELECT (id, credits, deleted_at) ON users TO {role};
GRANT SELECT (id, user_id, events, enabled) ON webhook_endpoints TO {role};
GRANT UPDATE (status, started_at, finished_at, lease_token, leased_until, lease_node,
    deliveries, progress_time, credits_charged, charged, error, log, failure_kind,
    reference_check) ON runs TO {role};
GRANT UPDATE (status, error, finished_at) ON sweeps TO {role};
GRANT UPDATE (status, attempts, lease_node, leased_until, kpis, error, failure_kind, charged,
    elapsed_ms, finished_at) ON sweep_cases TO {role};
GRANT UPDATE (credits) ON users TO {role};
GRANT UPDATE (state_id) ON run_states TO {role};
GRANT DELETE ON run_jobs TO {role};
GRANT INSERT ON credit_ledger, usage, webhook_deliveries, fmu_states, run_states TO {role};
GRANT INSERT, UPDATE, DELETE ON worker_nodes TO {role};
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role};
";

impl Store {
    /// Gives the existing PostgreSQL role `role` what a worker node needs, and only that
    /// ([`WORKER_GRANTS`]). Run again after an upgrade that adds to it.
    pub async fn grant_worker_role(&self, role: &str) -> StoreResult<()> {
        if self.engine() == Engine::Sqlite {
            return Err(StoreError::Unsupported(
                "worker nodes need PostgreSQL: with SQLite, the server runs its own workers",
            ));
        }
        let plain = role.len() <= 63
            && role.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && role
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !plain {
            return Err(StoreError::Unsupported(
                "a role name is lower-case letters, digits and _ (at most 63), starting with a letter or _",
            ));
        }
        let grants = WORKER_GRANTS.replace("{role}", &format!("\"{role}\""));
        self.run(move |conn| conn.execute_batch(&grants)).await
    }
}
