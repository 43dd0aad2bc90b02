//! One way to speak SQL to SQLite and to PostgreSQL, so that every named operation of the
//! store is written once.
//!
//! The surface is rusqlite's, cut down to what the store uses (`execute`, `query_row`,
//! `prepare_cached` + `query_map`, transactions, [`OptionalExtension`]), over a handful of
//! portable values ([`Value`]: null, 64-bit integer, double, text, bytes). The SQL is
//! written once in the subset both engines read the same way: `?N` placeholders (rewritten to
//! PostgreSQL's `$N`), integers for flags and times, `ON CONFLICT … DO …`, `RETURNING`. The
//! PostgreSQL schema (`schema.postgres.sql`) uses `BIGINT`, `DOUBLE PRECISION`, `TEXT` and
//! `BYTEA`, so a value binds and reads the same on both.
//!
//! PostgreSQL's client is asynchronous; the store's operations run on blocking threads (as
//! rusqlite must). The connections therefore live on a small runtime of their own, and a
//! statement is awaited with [`block_on`] on the calling thread: tokio-postgres's client
//! only exchanges messages with its connection task over channels, so it needs no reactor
//! on the caller's side, and a call from inside another runtime (a test's body, a sync
//! helper) cannot deadlock it.

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use r2d2_sqlite::SqliteConnectionManager;

use super::{StoreError, StoreResult};

/// A value as both engines store it.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Integer(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }

    /// The text, or a decoding error naming what was found instead.
    pub fn as_str(&self) -> StoreResult<&str> {
        match self {
            Value::Text(s) => Ok(s),
            other => Err(StoreError::Decode(format!(
                "expected text, found {}",
                other.kind()
            ))),
        }
    }

    /// The integer, or a decoding error naming what was found instead.
    pub fn as_i64(&self) -> StoreResult<i64> {
        match self {
            Value::Integer(i) => Ok(*i),
            other => Err(StoreError::Decode(format!(
                "expected an integer, found {}",
                other.kind()
            ))),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::Text(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Value {
        Value::Integer(i)
    }
}

/// A Rust value the store binds to a statement.
pub trait ToSql {
    fn to_sql(&self) -> StoreResult<Value>;
}

/// A Rust value the store reads from a column. A value this build cannot read (a status it
/// does not know, a negative balance) is an error, never a guess.
pub trait FromSql: Sized {
    fn column_result(value: &Value) -> StoreResult<Self>;
}

macro_rules! integer_to_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_sql(&self) -> StoreResult<Value> {
                i64::try_from(*self)
                    .map(Value::Integer)
                    .map_err(|_| StoreError::Decode(format!("{} does not fit a 64-bit integer", self)))
            }
        }
        impl FromSql for $t {
            fn column_result(value: &Value) -> StoreResult<$t> {
                let i = value.as_i64()?;
                <$t>::try_from(i).map_err(|_| {
                    StoreError::Decode(format!("{i} does not fit {}", stringify!($t)))
                })
            }
        }
    )*};
}

integer_to_sql!(i64, i32, i16, u8, u16, u32, u64, usize);

impl ToSql for bool {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::Integer(i64::from(*self)))
    }
}

impl FromSql for bool {
    fn column_result(value: &Value) -> StoreResult<bool> {
        Ok(value.as_i64()? != 0)
    }
}

impl ToSql for f64 {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::Real(*self))
    }
}

/// An integer column read as a real is exact up to 2^53, as in SQLite.
impl FromSql for f64 {
    fn column_result(value: &Value) -> StoreResult<f64> {
        match value {
            Value::Real(f) => Ok(*f),
            Value::Integer(i) => Ok(*i as f64),
            other => Err(StoreError::Decode(format!(
                "expected a real, found {}",
                other.kind()
            ))),
        }
    }
}

impl ToSql for str {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::Text(self.to_owned()))
    }
}

impl ToSql for String {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::Text(self.clone()))
    }
}

impl FromSql for String {
    fn column_result(value: &Value) -> StoreResult<String> {
        value.as_str().map(str::to_owned)
    }
}

impl ToSql for [u8] {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::Blob(self.to_vec()))
    }
}

impl ToSql for Vec<u8> {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::Blob(self.clone()))
    }
}

impl<const N: usize> ToSql for [u8; N] {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::Blob(self.to_vec()))
    }
}

impl FromSql for Vec<u8> {
    fn column_result(value: &Value) -> StoreResult<Vec<u8>> {
        match value {
            Value::Blob(b) => Ok(b.clone()),
            other => Err(StoreError::Decode(format!(
                "expected bytes, found {}",
                other.kind()
            ))),
        }
    }
}

impl ToSql for Value {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(self.clone())
    }
}

impl FromSql for Value {
    fn column_result(value: &Value) -> StoreResult<Value> {
        Ok(value.clone())
    }
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_sql(&self) -> StoreResult<Value> {
        (**self).to_sql()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_sql(&self) -> StoreResult<Value> {
        match self {
            Some(v) => v.to_sql(),
            None => Ok(Value::Null),
        }
    }
}

impl<T: FromSql> FromSql for Option<T> {
    fn column_result(value: &Value) -> StoreResult<Option<T>> {
        match value {
            Value::Null => Ok(None),
            other => T::column_result(other).map(Some),
        }
    }
}

/// The values bound to one statement: `params![a, b]`, an array of one type, or a list of
/// [`Value`]s built at run time.
pub trait Params {
    fn values(&self) -> StoreResult<Vec<Value>>;
}

impl Params for &[&dyn ToSql] {
    fn values(&self) -> StoreResult<Vec<Value>> {
        self.iter().map(|p| p.to_sql()).collect()
    }
}

/// `[]`: no values (its own impl, so the empty array needs no element type).
impl Params for [&dyn ToSql; 0] {
    fn values(&self) -> StoreResult<Vec<Value>> {
        Ok(Vec::new())
    }
}

macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn values(&self) -> StoreResult<Vec<Value>> {
                self.iter().map(ToSql::to_sql).collect()
            }
        }
    )*};
}

array_params!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);

impl Params for Vec<Value> {
    fn values(&self) -> StoreResult<Vec<Value>> {
        Ok(self.clone())
    }
}

/// `params![a, b, …]`: the values of one statement, as with rusqlite (exported for the
/// tests, which inspect the database through [`Connection`] too).
#[macro_export]
macro_rules! sql_params {
    () => {
        &[] as &[&dyn $crate::store::sql::ToSql]
    };
    ($($p:expr),+ $(,)?) => {
        &[$(&$p as &dyn $crate::store::sql::ToSql),+] as &[&dyn $crate::store::sql::ToSql]
    };
}
pub use crate::sql_params as params;

/// One row of an answer, read in full.
#[derive(Debug)]
pub struct Row {
    values: Vec<Value>,
}

impl Row {
    /// Column `index` (from 0) as a `T`.
    pub fn get<T: FromSql>(&self, index: usize) -> StoreResult<T> {
        let value = self
            .values
            .get(index)
            .ok_or_else(|| StoreError::Decode(format!("no column {index}")))?;
        T::column_result(value).map_err(|e| match e {
            StoreError::Decode(why) => StoreError::Decode(format!("column {index}: {why}")),
            other => other,
        })
    }
}

/// `.optional()` on a single-row answer: no row is `None`, as with rusqlite.
pub trait OptionalExtension<T> {
    fn optional(self) -> StoreResult<Option<T>>;
}

impl<T> OptionalExtension<T> for StoreResult<T> {
    fn optional(self) -> StoreResult<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(StoreError::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A connection of either engine, taken from the store's pool.
pub struct Connection {
    backend: Backend,
}

enum Backend {
    Sqlite(SqliteConnection),
    /// The client, and the runtime its connection task runs on (kept alive as long as the
    /// connection, even when the store that lent it is gone).
    Postgres {
        client: deadpool_postgres::Object,
        _runtime: Arc<super::PostgresRuntime>,
    },
}

enum SqliteConnection {
    Pooled(r2d2::PooledConnection<SqliteConnectionManager>),
    Owned(rusqlite::Connection),
}

impl std::ops::Deref for SqliteConnection {
    type Target = rusqlite::Connection;
    fn deref(&self) -> &rusqlite::Connection {
        match self {
            SqliteConnection::Pooled(c) => c,
            SqliteConnection::Owned(c) => c,
        }
    }
}

/// Which engine a connection speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Which kind of transaction to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TxKind {
    /// Reads that must agree with each other (one snapshot).
    Read,
    /// A change: it waits for the other writers, so it never fails halfway on a conflict.
    Write,
}

/// The key of the one advisory lock a PostgreSQL write transaction takes (see
/// [`Connection::begin`]); any constant unique to this service.
const WRITE_LOCK: i64 = 0x464d_5547_5752; // "FMUGWR"

impl Connection {
    pub(super) fn sqlite(conn: r2d2::PooledConnection<SqliteConnectionManager>) -> Connection {
        Connection {
            backend: Backend::Sqlite(SqliteConnection::Pooled(conn)),
        }
    }

    pub(super) fn postgres(
        client: deadpool_postgres::Object,
        runtime: Arc<super::PostgresRuntime>,
    ) -> Connection {
        Connection {
            backend: Backend::Postgres {
                client,
                _runtime: runtime,
            },
        }
    }

    /// A private in-memory SQLite database with the whole schema, for unit tests.
    pub fn open_in_memory() -> StoreResult<Connection> {
        let mut conn = rusqlite::Connection::open_in_memory()?;
        super::migrate_sqlite(&mut conn)?;
        Ok(Connection {
            backend: Backend::Sqlite(SqliteConnection::Owned(conn)),
        })
    }

    pub fn engine(&self) -> Engine {
        match self.backend {
            Backend::Sqlite(_) => Engine::Sqlite,
            Backend::Postgres { .. } => Engine::Postgres,
        }
    }

    /// Runs one statement; the number of rows it changed.
    pub fn execute(&self, sql: &str, params: impl Params) -> StoreResult<usize> {
        let values = params.values()?;
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(values.iter()))?)
            }
            Backend::Postgres { client, .. } => {
                let sql = placeholders(sql);
                let refs = pg_params(&values);
                let n = block_on(async {
                    let stmt = prepare(client, &sql).await?;
                    client.execute(&stmt, &refs).await
                })?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            }
        }
    }

    /// Runs statements separated by `;` with no parameters (migrations).
    pub fn execute_batch(&self, sql: &str) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Backend::Postgres { client, .. } => Ok(block_on(client.batch_execute(sql))?),
        }
    }

    /// Every row of the answer.
    pub fn rows(&self, sql: &str, params: impl Params) -> StoreResult<Vec<Row>> {
        let mut out = Vec::new();
        self.for_each_row(sql, params, |row| {
            out.push(row);
            Ok(true)
        })?;
        Ok(out)
    }

    /// Calls `each` with every row in order, holding one row in memory at a time (PostgreSQL
    /// streams them as SQLite steps); stops early when `each` answers `false`.
    pub fn for_each_row(
        &self,
        sql: &str,
        params: impl Params,
        mut each: impl FnMut(Row) -> StoreResult<bool>,
    ) -> StoreResult<()> {
        let values = params.values()?;
        match &self.backend {
            Backend::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let columns = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                while let Some(row) = rows.next()? {
                    let values = (0..columns)
                        .map(|i| Ok(sqlite_value(row.get_ref(i)?)))
                        .collect::<StoreResult<Vec<_>>>()?;
                    if !each(Row { values })? {
                        break;
                    }
                }
                Ok(())
            }
            Backend::Postgres { client, .. } => {
                use futures_util::StreamExt;
                let sql = placeholders(sql);
                let refs = pg_params(&values);
                block_on(async {
                    let stmt = prepare(client, &sql).await?;
                    let rows = client.query_raw(&stmt, refs.iter().copied()).await?;
                    futures_util::pin_mut!(rows);
                    while let Some(row) = rows.next().await {
                        if !each(pg_row(&row?)?)? {
                            break;
                        }
                    }
                    Ok(())
                })
            }
        }
    }

    /// The first row of the answer through `f`; [`StoreError::NoRows`] when there is none
    /// (see [`OptionalExtension`]).
    pub fn query_row<T>(
        &self,
        sql: &str,
        params: impl Params,
        f: impl FnOnce(&Row) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut first = None;
        self.for_each_row(sql, params, |row| {
            first = Some(row);
            Ok(false)
        })?;
        f(&first.ok_or(StoreError::NoRows)?)
    }

    /// A statement to run several times (rusqlite's shape; both engines cache the prepared
    /// statement per connection).
    pub fn prepare_cached(&self, sql: &str) -> StoreResult<Statement<'_>> {
        Ok(Statement {
            conn: self,
            sql: sql.to_owned(),
        })
    }

    /// As [`Connection::prepare_cached`].
    pub fn prepare(&self, sql: &str) -> StoreResult<Statement<'_>> {
        self.prepare_cached(sql)
    }

    /// Opens a transaction of `kind`; it rolls back when dropped without
    /// [`Transaction::commit`].
    ///
    /// On SQLite a write takes the database's write lock at once (`BEGIN IMMEDIATE`), so a
    /// concurrent writer waits instead of failing halfway. On PostgreSQL a write takes one
    /// advisory lock for the length of the transaction: writes are applied one at a time,
    /// exactly as on SQLite, so every operation's read-then-write reasoning holds unchanged
    /// on both engines (each lasts about a millisecond; reads never wait). Reads use one
    /// snapshot (`REPEATABLE READ`), as a SQLite read transaction does.
    pub(super) fn begin(&mut self, kind: TxKind) -> StoreResult<Transaction<'_>> {
        let sql = match (self.engine(), kind) {
            (Engine::Sqlite, TxKind::Read) => "BEGIN DEFERRED".to_owned(),
            (Engine::Sqlite, TxKind::Write) => "BEGIN IMMEDIATE".to_owned(),
            (Engine::Postgres, TxKind::Read) => "BEGIN ISOLATION LEVEL REPEATABLE READ".to_owned(),
            (Engine::Postgres, TxKind::Write) => {
                format!("BEGIN; SELECT pg_advisory_xact_lock({WRITE_LOCK})")
            }
        };
        self.execute_batch(&sql)?;
        Ok(Transaction {
            conn: self,
            open: true,
        })
    }

    /// A transaction for reads that must agree (one snapshot).
    pub fn transaction(&mut self) -> StoreResult<Transaction<'_>> {
        self.begin(TxKind::Read)
    }

    /// SQLite's `synchronous = FULL` (every commit reaches the disk before it returns) around
    /// a commit that must survive a power cut; PostgreSQL commits are durable already.
    pub(super) fn set_full_sync(&self, full: bool) -> StoreResult<()> {
        match &self.backend {
            Backend::Sqlite(conn) => {
                conn.pragma_update(None, "synchronous", if full { "FULL" } else { "NORMAL" })?;
                Ok(())
            }
            Backend::Postgres { .. } => Ok(()),
        }
    }
}

/// A statement bound to its connection.
pub struct Statement<'c> {
    conn: &'c Connection,
    sql: String,
}

impl Statement<'_> {
    pub fn execute(&mut self, params: impl Params) -> StoreResult<usize> {
        self.conn.execute(&self.sql, params)
    }

    pub fn query_row<T>(
        &mut self,
        params: impl Params,
        f: impl FnOnce(&Row) -> StoreResult<T>,
    ) -> StoreResult<T> {
        self.conn.query_row(&self.sql, params, f)
    }

    /// Every row through `f`, as an iterator of results (rusqlite's shape, so callers
    /// `collect::<Result<_, _>>()`).
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> StoreResult<T>,
    ) -> StoreResult<std::vec::IntoIter<StoreResult<T>>> {
        let rows = self.conn.rows(&self.sql, params)?;
        Ok(rows.iter().map(&mut f).collect::<Vec<_>>().into_iter())
    }
}

/// An open transaction; derefs to its connection.
pub struct Transaction<'c> {
    conn: &'c mut Connection,
    open: bool,
}

impl Transaction<'_> {
    pub fn commit(mut self) -> StoreResult<()> {
        self.open = false;
        self.conn.execute_batch("COMMIT")
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.open
            && let Err(e) = self.conn.execute_batch("ROLLBACK")
        {
            tracing::warn!(error = %e, "rollback failed");
        }
    }
}

fn sqlite_value(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(f) => Value::Real(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Blob(b.to_vec()),
    }
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

/// Rewrites SQLite's `?N` (and bare `?`) placeholders to PostgreSQL's `$N`, leaving quoted
/// text alone.
pub(super) fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let (mut quoted, mut next) = (false, 1u32);
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                out.push('$');
                if digits.is_empty() {
                    out.push_str(&next.to_string());
                    next += 1;
                } else {
                    out.push_str(&digits);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Statements one PostgreSQL connection keeps prepared. Past this the cache starts over: a
/// few queries carry their page in their text, so the set of texts is not bounded, and
/// deadpool's cache (unlike rusqlite's) keeps every one.
const STATEMENT_CACHE: usize = 256;

async fn prepare(
    client: &deadpool_postgres::Object,
    sql: &str,
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    if client.statement_cache.size() >= STATEMENT_CACHE {
        client.statement_cache.clear();
    }
    client.prepare_cached(sql).await
}

fn pg_params(values: &[Value]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    values
        .iter()
        .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

/// A value bound to a PostgreSQL parameter of the type the server inferred for it.
impl tokio_postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use tokio_postgres::types::{IsNull, ToSql as Pg, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT8 => Pg::to_sql(i, ty, out),
                Type::INT4 => Pg::to_sql(&i32::try_from(*i)?, ty, out),
                Type::INT2 => Pg::to_sql(&i16::try_from(*i)?, ty, out),
                Type::FLOAT8 => Pg::to_sql(&(*i as f64), ty, out),
                Type::BOOL => Pg::to_sql(&(*i != 0), ty, out),
                Type::TEXT | Type::VARCHAR => Pg::to_sql(&i.to_string(), ty, out),
                _ => Err(format!("an integer cannot be bound as {ty}").into()),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => Pg::to_sql(f, ty, out),
                Type::FLOAT4 => Pg::to_sql(&(*f as f32), ty, out),
                _ => Err(format!("a real cannot be bound as {ty}").into()),
            },
            Value::Text(s) => Pg::to_sql(&s.as_str(), ty, out),
            Value::Blob(b) => Pg::to_sql(&b.as_slice(), ty, out),
        }
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

fn pg_row(row: &tokio_postgres::Row) -> StoreResult<Row> {
    use tokio_postgres::types::Type;
    let values = row
        .columns()
        .iter()
        .enumerate()
        .map(|(i, column)| {
            let value = match *column.type_() {
                Type::INT8 => row.try_get::<_, Option<i64>>(i)?.map(Value::Integer),
                Type::INT4 => row
                    .try_get::<_, Option<i32>>(i)?
                    .map(|v| Value::Integer(v.into())),
                Type::INT2 => row
                    .try_get::<_, Option<i16>>(i)?
                    .map(|v| Value::Integer(v.into())),
                Type::BOOL => row
                    .try_get::<_, Option<bool>>(i)?
                    .map(|v| Value::Integer(v.into())),
                Type::FLOAT8 => row.try_get::<_, Option<f64>>(i)?.map(Value::Real),
                Type::FLOAT4 => row
                    .try_get::<_, Option<f32>>(i)?
                    .map(|v| Value::Real(v.into())),
                Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => {
                    row.try_get::<_, Option<String>>(i)?.map(Value::Text)
                }
                Type::BYTEA => row.try_get::<_, Option<Vec<u8>>>(i)?.map(Value::Blob),
                Type::NUMERIC => row.try_get::<_, Option<Numeric>>(i)?.map(|n| n.0),
                Type::VOID => None,
                ref other => {
                    return Err(StoreError::Decode(format!(
                        "column {} has type {other}, which the store does not read",
                        column.name()
                    )));
                }
            };
            Ok(value.unwrap_or(Value::Null))
        })
        .collect::<StoreResult<Vec<_>>>()?;
    Ok(Row { values })
}

/// PostgreSQL's `NUMERIC` (what `SUM` of a `BIGINT` gives): an integer when it has no
/// fraction and fits 64 bits, as SQLite's `SUM` gives; a real otherwise.
struct Numeric(Value);

impl<'a> tokio_postgres::types::FromSql<'a> for Numeric {
    fn from_sql(
        _: &tokio_postgres::types::Type,
        raw: &'a [u8],
    ) -> Result<Numeric, Box<dyn std::error::Error + Sync + Send>> {
        let word = |i: usize| -> Result<u16, Box<dyn std::error::Error + Sync + Send>> {
            raw.get(2 * i..2 * i + 2)
                .map(|b| u16::from_be_bytes([b[0], b[1]]))
                .ok_or_else(|| "a NUMERIC value is cut short".into())
        };
        let digits = usize::from(word(0)?);
        let weight = i32::from(word(1)? as i16);
        let sign = word(2)?;
        if sign == 0xC000 {
            return Ok(Numeric(Value::Real(f64::NAN)));
        }
        let (mut integer, mut exact, mut real) = (0i128, true, 0f64);
        for i in 0..digits {
            let digit = i128::from(word(4 + i)?);
            let power = weight - i as i32;
            real += digit as f64 * 10_000f64.powi(power);
            if power < 0 {
                exact &= digit == 0;
            } else {
                integer = 10_000i128
                    .checked_pow(power as u32)
                    .and_then(|p| digit.checked_mul(p))
                    .and_then(|d| integer.checked_add(d))
                    .unwrap_or_else(|| {
                        exact = false;
                        0
                    });
            }
        }
        let negative = sign == 0x4000;
        if exact && let Ok(i) = i64::try_from(if negative { -integer } else { integer }) {
            return Ok(Numeric(Value::Integer(i)));
        }
        Ok(Numeric(Value::Real(if negative { -real } else { real })))
    }

    fn accepts(ty: &tokio_postgres::types::Type) -> bool {
        *ty == tokio_postgres::types::Type::NUMERIC
    }
}

/// Polls `future` to completion on this thread, parking between wake-ups (see the module
/// documentation for why this is safe for tokio-postgres's client futures).
pub(super) fn block_on<F: Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_numbered_dollars_outside_quotes() {
        assert_eq!(
            placeholders("SELECT ?1, ?12, '?3 is text', ? FROM t WHERE a = ?"),
            "SELECT $1, $12, '?3 is text', $1 FROM t WHERE a = $2"
        );
    }

    #[test]
    fn values_round_trip_through_sqlite() {
        let conn = Connection::open_in_memory().unwrap();
        let row: (i64, f64, String, Vec<u8>, Option<i64>, bool) = conn
            .query_row(
                "SELECT ?1, ?2, ?3, ?4, ?5, ?6",
                params![-7i64, 0.5f64, "é", vec![0u8, 255], None::<i64>, true],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                },
            )
            .unwrap();
        assert_eq!(row, (-7, 0.5, "é".to_owned(), vec![0, 255], None, true));
        let none = conn
            .query_row("SELECT 1 WHERE 0", params![], |r| r.get::<i64>(0))
            .optional()
            .unwrap();
        assert_eq!(none, None);
    }

    #[test]
    fn a_dropped_transaction_rolls_back() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
        {
            let tx = conn.begin(TxKind::Write).unwrap();
            tx.execute("INSERT INTO t VALUES (1)", params![]).unwrap();
        }
        let n: i64 = conn
            .query_row("SELECT COUNT(*) FROM t", params![], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }

    #[test]
    fn numerics_read_as_integers_when_whole() {
        use tokio_postgres::types::{FromSql, Type};
        // 123456789 = weight 2, digits [1, 2345, 6789], scale 0
        let raw: Vec<u8> = [3u16, 2, 0, 0, 1, 2345, 6789]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        let n = Numeric::from_sql(&Type::NUMERIC, &raw).unwrap();
        assert_eq!(n.0, Value::Integer(123_456_789));
        // -2.5 = weight 0, digits [2, 5000], negative, scale 1
        let raw: Vec<u8> = [2u16, 0, 0x4000, 1, 2, 5000]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        let n = Numeric::from_sql(&Type::NUMERIC, &raw).unwrap();
        assert_eq!(n.0, Value::Real(-2.5));
    }
}
