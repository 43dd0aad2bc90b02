//! The store: the only place with SQL. Its public surface is the named operations on
//! [`Store`] (one module per table group below this one: `reserve_run`, `settle_run`,
//! `create_account`, `revoke_key`, `claim_event`, `add_upload`, …), each one transaction, whose
//! signatures carry only domain types. Two engines sit behind it: SQLite (a file in the data
//! directory, the default) and PostgreSQL (`FMU_GATEWAY_DATABASE_URL`), each with its own
//! numbered migrations (`schema.sql`, `schema.postgres.sql`). Every operation is written once,
//! against [`sql::Connection`], which speaks both. Operations run on the blocking pool
//! (`Store::run`, private to this module with the table functions and `write_tx`, so the
//! compiler keeps SQL inside `store`).

mod admin;
pub mod allowances;
pub mod api_keys;
pub mod billing;
pub mod deletion;
#[cfg(test)]
mod fixtures;
pub mod fmus;
pub mod free_grants;
mod ids;
pub mod ledger;
pub mod password_resets;
pub mod pending_signups;
pub mod queue;
pub mod runs;
pub mod sessions;
pub mod sql;
pub mod states;
pub mod sweep_batches;
pub mod sweeps;
pub mod usage;
pub mod users;
pub mod webhooks;

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;

pub use sql::{Connection, Engine};
use sql::{Transaction, TxKind};

/// SQLite's schema, split into migrations by its `-- migration N:` headers.
const SCHEMA: &str = include_str!("../../schema.sql");
/// PostgreSQL's schema, numbered the same way (its own numbers: it starts from today's
/// whole schema).
const POSTGRES_SCHEMA: &str = include_str!("../../schema.postgres.sql");

/// Why a database operation failed. Never shown to users as is: the faces log it and answer
/// a generic message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database connection available: {0}")]
    Pool(String),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {}", postgres_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("a stored value cannot be read: {0}")]
    Decode(String),
    #[error("the query returned no rows")]
    NoRows,
    #[error("database task failed: {0}")]
    Task(String),
    #[error("migration {0} failed: {1}")]
    Migration(u32, Box<StoreError>),
    #[error("cannot open the database: {0}")]
    Open(String),
    #[error("{0}")]
    Unsupported(&'static str),
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> StoreError {
        StoreError::Pool(e.to_string())
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> StoreError {
        StoreError::Pool(e.to_string())
    }
}

impl StoreError {
    /// A stored value this build cannot read, and why.
    pub fn decode(why: impl std::fmt::Display) -> StoreError {
        StoreError::Decode(why.to_string())
    }

    /// Whether the error is a broken `UNIQUE` (or primary key) constraint.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            StoreError::Postgres(e) => {
                e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }

    /// Whether the database did not answer (no connection, a connection lost, a server
    /// restarting or busy), as opposed to refusing the statement: the same call may succeed
    /// in a moment.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Pool(_) => true,
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                )
            }
            StoreError::Postgres(e) => match e.code() {
                // No SQL state: the connection itself failed.
                None => true,
                // Class 08 (connection exception), 57P01–57P03 (shutdown, crash, starting).
                Some(state) => {
                    let code = state.code();
                    code.starts_with("08") || ["57P01", "57P02", "57P03"].contains(&code)
                }
            },
            _ => false,
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

impl Store {
    /// One write statement binding `param` as `?1`, in a transaction of its own (it takes the
    /// write lock); how many rows it changed. What a stopping node's "give back what I hold"
    /// writes share.
    pub(crate) async fn write_one(&self, sql: &'static str, param: &str) -> StoreResult<usize> {
        let param = param.to_string();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let n = tx.execute(sql, [&param])?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }
}

/// tokio-postgres shows a server's error as "db error"; the log needs its code and message.
fn postgres_detail(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} ({}): {}",
            db.message(),
            db.code().code(),
            db.detail().unwrap_or("")
        ),
        None => e.to_string(),
    }
}

/// Where the database is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// A SQLite file (created when missing).
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL connection URL (`postgres://user:password@host:port/db`, or
    /// `postgres:///db?host=/run/postgresql` for a local socket).
    Postgres(String),
}

/// A cheaply cloneable handle to the pool.
#[derive(Clone)]
pub struct Store {
    pool: Pool,
    checkouts: std::sync::Arc<Checkouts>,
}

#[derive(Clone)]
enum Pool {
    Sqlite(r2d2::Pool<SqliteConnectionManager>),
    Postgres {
        pool: deadpool_postgres::Pool,
        runtime: std::sync::Arc<PostgresRuntime>,
    },
}

/// The runtime PostgreSQL's connections live on (see `sql`'s documentation). Shut down in
/// the background when the last handle goes, which is allowed inside another runtime.
struct PostgresRuntime(Option<tokio::runtime::Runtime>);

impl PostgresRuntime {
    fn handle(&self) -> &tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("the runtime lives as long as the store")
            .handle()
    }
}

impl Drop for PostgresRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// How long callers waited for a pooled connection, for `/metrics` (a pool too small for the
/// load shows as waiting, long before it shows as timeouts).
#[derive(Debug, Default)]
struct Checkouts {
    count: std::sync::atomic::AtomicU64,
    waited_micros: std::sync::atomic::AtomicU64,
}

impl Checkouts {
    fn record(&self, waited: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        self.count.fetch_add(1, Relaxed);
        let micros = u64::try_from(waited.as_micros()).unwrap_or(u64::MAX);
        self.waited_micros.fetch_add(micros, Relaxed);
    }
}

/// The pool's state for `/metrics`.
#[derive(Clone, Copy, Debug)]
pub struct PoolStats {
    pub connections: u32,
    pub idle: u32,
    pub checkouts: u64,
    pub waited: Duration,
}

impl Store {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    pub fn open(path: &Path, pool_size: u32) -> StoreResult<Store> {
        // WAL is a property of the file: switch once, before the pool opens connections in
        // parallel (concurrent switches fail with "database is locked").
        let mut first = rusqlite::Connection::open(path)?;
        configure(&mut first)?;
        first.pragma_update(None, "journal_mode", "WAL")?;
        migrate_sqlite(&mut first)?;
        drop(first);
        let manager = SqliteConnectionManager::file(path).with_init(configure);
        let checkouts = std::sync::Arc::new(Checkouts::default());
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(Duration::from_secs(10))
            .event_handler(Box::new(ArcEvents(checkouts.clone())))
            .build(manager)?;
        Ok(Store {
            pool: Pool::Sqlite(pool),
            checkouts,
        })
    }

    /// Connects to the database at `location` and brings its schema up to date.
    pub fn connect(location: &Location, pool_size: u32) -> StoreResult<Store> {
        match location {
            Location::Sqlite(path) => Store::open(path, pool_size),
            Location::Postgres(url) => Store::open_postgres(url, pool_size),
        }
    }

    /// Connects a pool of `pool_size` to PostgreSQL and applies its migrations (one server at
    /// a time: they hold an advisory lock while they look and apply).
    pub fn open_postgres(url: &str, pool_size: u32) -> StoreResult<Store> {
        let store = Store::postgres_pool(url, pool_size)?;
        migrate_postgres(&store.conn()?)?;
        Ok(store)
    }

    /// Connects a pool to a PostgreSQL database that a server has migrated, without
    /// migrating it: what a worker node does, whose role may only lease, heartbeat and
    /// settle. Refused, saying what to do, when the schema is not the one this build knows.
    pub fn attach_postgres(url: &str, pool_size: u32) -> StoreResult<Store> {
        let store = Store::postgres_pool(url, pool_size)?;
        let applied: i64 = store
            .conn()?
            .query_row("SELECT version FROM schema_version", sql::params![], |r| {
                r.get(0)
            })
            .map_err(|e| StoreError::Open(format!("cannot read the schema's version: {e}")))?;
        let known = migrations(POSTGRES_SCHEMA).len() as i64;
        if applied != known {
            return Err(StoreError::Open(format!(
                "the database's schema is at version {applied} and this build's at {known}: \
                 run servers and worker nodes of one version, and start a server (or run \
                 `fmu-gateway admin migrate`) before the worker nodes"
            )));
        }
        Ok(store)
    }

    fn postgres_pool(url: &str, pool_size: u32) -> StoreResult<Store> {
        let config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Open(format!("{e}")))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postgres")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let manager = deadpool_postgres::Manager::from_config(
            config,
            tokio_postgres::NoTls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(pool_size as usize)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Open(e.to_string()))?;
        let store = Store {
            pool: Pool::Postgres {
                pool,
                runtime: std::sync::Arc::new(PostgresRuntime(Some(runtime))),
            },
            checkouts: std::sync::Arc::new(Checkouts::default()),
        };
        Ok(store)
    }

    /// Which engine this store speaks to.
    pub fn engine(&self) -> Engine {
        match self.pool {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::Postgres { .. } => Engine::Postgres,
        }
    }

    /// Connections open and idle, and the checkouts so far with the time spent waiting.
    pub fn stats(&self) -> PoolStats {
        use std::sync::atomic::Ordering::Relaxed;
        let (connections, idle) = match &self.pool {
            Pool::Sqlite(pool) => {
                let state = pool.state();
                (state.connections, state.idle_connections)
            }
            Pool::Postgres { pool, .. } => {
                let status = pool.status();
                (status.size as u32, status.available as u32)
            }
        };
        PoolStats {
            connections,
            idle,
            checkouts: self.checkouts.count.load(Relaxed),
            waited: Duration::from_micros(self.checkouts.waited_micros.load(Relaxed)),
        }
    }

    /// Whether the database answers a query (for `/ready`).
    pub async fn ping(&self) -> StoreResult<()> {
        self.run(|conn| conn.query_row("SELECT 1", sql::params![], |_| Ok(())))
            .await
    }

    /// A connection, for code already on a blocking thread inside `store`, and for tests
    /// that inspect the database. The rest of the service uses the named operations.
    pub fn conn(&self) -> StoreResult<Connection> {
        match &self.pool {
            Pool::Sqlite(pool) => Ok(Connection::sqlite(pool.get()?)),
            Pool::Postgres { pool, runtime } => {
                let started = std::time::Instant::now();
                let pool = pool.clone();
                let client = sql::block_on(runtime.handle().spawn(async move { pool.get().await }))
                    .map_err(|e| StoreError::Task(e.to_string()))??;
                self.checkouts.record(started.elapsed());
                Ok(Connection::postgres(client, runtime.clone()))
            }
        }
    }

    /// Runs `f` with a connection on tokio's blocking pool: the one hop each named operation
    /// makes. Private to `store`, so no SQL is written anywhere else.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || f(&mut store.conn()?))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// The pool owns its event handler; the counts are shared with [`Store::stats`].
#[derive(Debug)]
struct ArcEvents(std::sync::Arc<Checkouts>);

impl r2d2::HandleEvent for ArcEvents {
    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        self.0.record(event.duration());
    }
}

/// Pragmas for every connection (WAL, set once in `open`, lets readers never wait for the
/// writer; `synchronous = NORMAL` is durable in WAL mode except for the last commits on power
/// loss): foreign keys on, and a busy handler so concurrent writers queue instead of failing.
fn configure(conn: &mut rusqlite::Connection) -> rusqlite::Result<()> {
    conn.busy_handler(Some(wait_for_write_lock))?;
    conn.execute_batch(
        "PRAGMA synchronous = NORMAL;
         PRAGMA foreign_keys = ON;",
    )
}

/// How long a writer waits for the write lock before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(5);
const LOCK_POLL: Duration = Duration::from_millis(1);

/// Waits for SQLite's write lock in short, even steps. SQLite's own busy timeout backs off to
/// 100 ms sleeps, so with many writers an unlucky one kept missing its turn: the webhook
/// benchmark saw single waits of 4–5 s (and one "database is locked") while the lock was never
/// held for more than a few milliseconds.
fn wait_for_write_lock(attempts: i32) -> bool {
    if attempts as u128 * LOCK_POLL.as_millis() >= LOCK_WAIT.as_millis() {
        return false;
    }
    std::thread::sleep(LOCK_POLL);
    true
}

/// The migrations in a schema file, numbered 1.. in order: each starts at a line that
/// begins with `-- migration N:`.
fn migrations(schema: &str) -> Vec<(u32, String)> {
    let mut out: Vec<(u32, String)> = Vec::new();
    for line in schema.lines() {
        if let Some(rest) = line.strip_prefix("-- migration ") {
            let number = rest
                .split(':')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .expect("schema: a '-- migration N:' header has no number");
            out.push((number, String::new()));
        } else if let Some((_, sql)) = out.last_mut() {
            sql.push_str(line);
            sql.push('\n');
        }
    }
    out
}

/// Applies every migration newer than `PRAGMA user_version`, each in its own transaction.
fn migrate_sqlite(conn: &mut rusqlite::Connection) -> StoreResult<()> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (number, sql) in migrations(SCHEMA) {
        if number <= current {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(&sql)
            .map_err(|e| StoreError::Migration(number, Box::new(e.into())))?;
        tx.pragma_update(None, "user_version", number)?;
        tx.commit()?;
        tracing::info!(migration = number, "applied database migration");
    }
    Ok(())
}

/// The advisory lock that keeps two servers from migrating at once.
const MIGRATION_LOCK: i64 = 0x464d_5547_4d49; // "FMUGMI"

/// Applies every migration newer than the version in `schema_version`, each in its own
/// transaction, holding an advisory lock so servers starting together take turns.
fn migrate_postgres(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    let result = (|| {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL);
             INSERT INTO schema_version (version)
                 SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM schema_version)",
        )?;
        let current: i64 =
            conn.query_row("SELECT version FROM schema_version", sql::params![], |r| {
                r.get(0)
            })?;
        for (number, sql) in migrations(POSTGRES_SCHEMA) {
            if i64::from(number) <= current {
                continue;
            }
            conn.execute_batch(&format!(
                "BEGIN;\n{sql}\nUPDATE schema_version SET version = {number};\nCOMMIT;"
            ))
            .map_err(|e| {
                let _ = conn.execute_batch("ROLLBACK");
                StoreError::Migration(number, Box::new(e))
            })?;
            tracing::info!(migration = number, "applied database migration (postgres)");
        }
        Ok(())
    })();
    conn.execute_batch(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
    result
}

/// Starts a transaction that writes: see [`Connection::begin`] (SQLite's write lock at once,
/// or PostgreSQL's one write lock), so a concurrent writer makes it wait instead of failing
/// it halfway (found by the 40-concurrent-runs test on SQLite).
fn write_tx(conn: &mut Connection) -> StoreResult<Transaction<'_>> {
    conn.begin(TxKind::Write)
}

/// Milliseconds since the Unix epoch: the unit of every time column.
pub fn now_ms() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64 / 1_000_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_numbered_one_up_without_gaps() {
        for schema in [SCHEMA, POSTGRES_SCHEMA] {
            let numbers: Vec<u32> = migrations(schema).iter().map(|(n, _)| *n).collect();
            let expected: Vec<u32> = (1..=numbers.len() as u32).collect();
            assert_eq!(numbers, expected);
        }
    }

    #[test]
    fn migrating_twice_is_a_no_op_and_sets_user_version() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        migrate_sqlite(&mut conn).unwrap();
        migrate_sqlite(&mut conn).unwrap();
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, migrations(SCHEMA).len());
    }

    #[test]
    fn the_ledger_refuses_updates_and_deletes() {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        migrate_sqlite(&mut conn).unwrap();
        conn.execute(
            "INSERT INTO users (id, email, email_normalized, credits, created_at)
             VALUES ('u', 'a@b.c', 'a@b.c', 1, 0)",
            [],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO credit_ledger (user_id, delta, balance_after, kind, reason, created_at)
             VALUES ('u', 1, 1, 'grant', 'test', 0)",
            [],
        )
        .unwrap();
        assert!(
            conn.execute("UPDATE credit_ledger SET delta = 5", [])
                .is_err()
        );
        assert!(conn.execute("DELETE FROM credit_ledger", []).is_err());
    }
}
