//! The store: the only place with SQL. Its public surface is the named operations on
//! [`Store`] (one module per table group below this one: `reserve_run`, `settle_run`,
//! `create_account`, `revoke_key`, `claim_event`, `add_upload`, …), each one transaction, whose
//! signatures carry only domain types, so a second backend (PostgreSQL) can implement the same
//! set. Today it is SQLite: the connection pool, the pragmas every connection gets, and the
//! migrations are here. rusqlite is blocking, so each operation makes one hop onto the
//! blocking pool (`Store::run`, private to this module with the table functions and
//! `write_tx`, so the compiler keeps SQL inside `store`).

pub mod api_keys;
pub mod billing;
pub mod deletion;
pub mod fmus;
pub mod free_grants;
mod ids;
pub mod ledger;
pub mod password_resets;
pub mod pending_signups;
pub mod runs;
pub mod sessions;
pub mod states;
pub mod sweeps;
pub mod usage;
pub mod users;
pub mod webhooks;

use std::path::Path;
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::Connection;

/// The schema, split into migrations by its `-- migration N:` headers.
const SCHEMA: &str = include_str!("../../schema.sql");

/// Why a database operation failed. Never shown to users as is: the faces log it and answer
/// a generic message.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no database connection available: {0}")]
    Pool(#[from] r2d2::Error),
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database task failed: {0}")]
    Task(String),
    #[error("migration {0} failed: {1}")]
    Migration(u32, rusqlite::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A cheaply cloneable handle to the pool.
#[derive(Clone)]
pub struct Store {
    pool: r2d2::Pool<SqliteConnectionManager>,
    checkouts: std::sync::Arc<Checkouts>,
}

/// How long callers waited for a pooled connection, for `/metrics` (a pool too small for the
/// load shows as waiting, long before it shows as timeouts).
#[derive(Debug, Default)]
struct Checkouts {
    count: std::sync::atomic::AtomicU64,
    waited_micros: std::sync::atomic::AtomicU64,
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
        let mut first = Connection::open(path)?;
        configure(&mut first)?;
        first.pragma_update(None, "journal_mode", "WAL")?;
        migrate(&mut first)?;
        drop(first);
        let manager = SqliteConnectionManager::file(path).with_init(configure);
        let checkouts = std::sync::Arc::new(Checkouts::default());
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .connection_timeout(Duration::from_secs(10))
            .event_handler(Box::new(ArcEvents(checkouts.clone())))
            .build(manager)?;
        Ok(Store { pool, checkouts })
    }

    /// Connections open and idle, and the checkouts so far with the time spent waiting.
    pub fn stats(&self) -> PoolStats {
        use std::sync::atomic::Ordering::Relaxed;
        let state = self.pool.state();
        PoolStats {
            connections: state.connections,
            idle: state.idle_connections,
            checkouts: self.checkouts.count.load(Relaxed),
            waited: Duration::from_micros(self.checkouts.waited_micros.load(Relaxed)),
        }
    }

    /// Whether the database answers a query (for `/ready`).
    pub async fn ping(&self) -> StoreResult<()> {
        self.run(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    /// A connection, for code already on a blocking thread inside `store`, and for tests
    /// that inspect the database file. The rest of the service uses the named operations.
    pub fn conn(&self) -> StoreResult<r2d2::PooledConnection<SqliteConnectionManager>> {
        Ok(self.pool.get()?)
    }

    /// Runs `f` with a connection on tokio's blocking pool: the one hop each named operation
    /// makes. Private to `store`, so no SQL is written anywhere else.
    async fn run<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> StoreResult<T> + Send + 'static,
    {
        let pool = self.pool.clone();
        tokio::task::spawn_blocking(move || f(&mut *pool.get()?))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }
}

/// The pool owns its event handler; the counts are shared with [`Store::stats`].
#[derive(Debug)]
struct ArcEvents(std::sync::Arc<Checkouts>);

impl r2d2::HandleEvent for ArcEvents {
    fn handle_checkout(&self, event: r2d2::event::CheckoutEvent) {
        use std::sync::atomic::Ordering::Relaxed;
        self.0.count.fetch_add(1, Relaxed);
        let micros = u64::try_from(event.duration().as_micros()).unwrap_or(u64::MAX);
        self.0.waited_micros.fetch_add(micros, Relaxed);
    }
}

/// Pragmas for every connection (WAL, set once in `open`, lets readers never wait for the
/// writer; `synchronous = NORMAL` is durable in WAL mode except for the last commits on power
/// loss): foreign keys on, and a busy handler so concurrent writers queue instead of failing.
fn configure(conn: &mut Connection) -> rusqlite::Result<()> {
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

/// The migrations in `schema.sql`, numbered 1.. in order: each starts at a line that
/// begins with `-- migration N:`.
fn migrations() -> Vec<(u32, String)> {
    let mut out: Vec<(u32, String)> = Vec::new();
    for line in SCHEMA.lines() {
        if let Some(rest) = line.strip_prefix("-- migration ") {
            let number = rest
                .split(':')
                .next()
                .and_then(|n| n.trim().parse().ok())
                .expect("schema.sql: a '-- migration N:' header has no number");
            out.push((number, String::new()));
        } else if let Some((_, sql)) = out.last_mut() {
            sql.push_str(line);
            sql.push('\n');
        }
    }
    out
}

/// Applies every migration newer than `PRAGMA user_version`, each in its own transaction.
fn migrate(conn: &mut Connection) -> StoreResult<()> {
    let current: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (number, sql) in migrations() {
        if number <= current {
            continue;
        }
        let tx = conn.transaction()?;
        tx.execute_batch(&sql)
            .map_err(|e| StoreError::Migration(number, e))?;
        tx.pragma_update(None, "user_version", number)?;
        tx.commit()?;
        tracing::info!(migration = number, "applied database migration");
    }
    Ok(())
}

/// Starts a transaction that writes. `IMMEDIATE` takes the write lock at once, so a
/// concurrent writer makes it wait (busy timeout) instead of failing it halfway: a deferred
/// transaction that reads first cannot be upgraded once another connection has written, and
/// SQLite answers "database is locked" at once (found by the 40-concurrent-runs test).
fn write_tx(conn: &mut Connection) -> rusqlite::Result<rusqlite::Transaction<'_>> {
    conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
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
        let numbers: Vec<u32> = migrations().iter().map(|(n, _)| *n).collect();
        let expected: Vec<u32> = (1..=numbers.len() as u32).collect();
        assert_eq!(numbers, expected);
    }

    #[test]
    fn migrating_twice_is_a_no_op_and_sets_user_version() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
        migrate(&mut conn).unwrap();
        let version: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version as usize, migrations().len());
    }

    #[test]
    fn the_ledger_refuses_updates_and_deletes() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn).unwrap();
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
