//! The `usage` table: one row per billable event.

use super::sql::{Connection, Row, Value, params};

use super::{Store, StoreResult};
use crate::domain::ids::{Credits, KeyId, RunId, UserId};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    pub id: i64,
    pub created_at: i64,
    pub fmu_name: String,
    pub credits: Credits,
    pub api_key_id: Option<KeyId>,
    pub run_id: Option<RunId>,
}

/// The columns a usage listing can be sorted by. Whitelisted: the SQL comes from here,
/// never from the request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortColumn {
    #[default]
    Date,
    FmuName,
    Credits,
    ApiKey,
}

impl SortColumn {
    fn sql(self) -> &'static str {
        match self {
            SortColumn::Date => "created_at",
            SortColumn::FmuName => "fmu_name",
            SortColumn::Credits => "credits",
            SortColumn::ApiKey => "api_key_id",
        }
    }
}

/// Which rows and in what order.
#[derive(Clone, Debug, Default)]
pub struct Query {
    pub api_key_id: Option<KeyId>,
    pub sort: SortColumn,
    pub descending: bool,
}

pub(super) fn insert(
    conn: &Connection,
    user_id: &UserId,
    now: i64,
    fmu_name: &str,
    credits: Credits,
    api_key_id: Option<&KeyId>,
    run_id: Option<&RunId>,
) -> StoreResult<i64> {
    conn.query_row(
        "INSERT INTO usage (user_id, created_at, fmu_name, credits, api_key_id, run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
        params![user_id, now, fmu_name, credits, api_key_id, run_id],
        |r| r.get(0),
    )
}

fn from_row(r: &Row) -> StoreResult<UsageRow> {
    Ok(UsageRow {
        id: r.get(0)?,
        created_at: r.get(1)?,
        fmu_name: r.get(2)?,
        credits: r.get(3)?,
        api_key_id: r.get(4)?,
        run_id: r.get(5)?,
    })
}

/// `WHERE` and `ORDER BY` for a query; the id breaks ties so paging is stable.
fn clauses(query: &Query) -> (String, String) {
    let filter = if query.api_key_id.is_some() {
        " AND api_key_id = ?2"
    } else {
        ""
    };
    let dir = if query.descending { "DESC" } else { "ASC" };
    let order = format!("ORDER BY {} {dir}, id {dir}", query.sort.sql());
    (format!("WHERE user_id = ?1{filter}"), order)
}

fn bind(user_id: &UserId, query: &Query) -> Vec<Value> {
    let mut out = vec![Value::Text(user_id.as_str().to_owned())];
    if let Some(key) = &query.api_key_id {
        out.push(Value::Text(key.to_string()));
    }
    out
}

/// One page of rows and the number of rows in all pages.
pub(super) fn page(
    conn: &Connection,
    user_id: &UserId,
    query: &Query,
    limit: u32,
    offset: i64,
) -> StoreResult<(Vec<UsageRow>, u64)> {
    let (filter, order) = clauses(query);
    let args = bind(user_id, query);
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM usage {filter}"))?
        .query_row(args.clone(), |r| r.get(0))?;
    let sql = format!(
        "SELECT id, created_at, fmu_name, credits, api_key_id, run_id FROM usage {filter} {order}
         LIMIT {limit} OFFSET {offset}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(args.clone(), from_row)?
        .collect::<Result<_, _>>()?;
    Ok((rows, total.max(0) as u64))
}

/// Calls `each` for every matching row in order, holding one row in memory at a time.
/// Stops early (without error) when `each` returns `false`.
pub(super) fn for_each(
    conn: &Connection,
    user_id: &UserId,
    query: &Query,
    mut each: impl FnMut(UsageRow) -> bool,
) -> StoreResult<()> {
    let (filter, order) = clauses(query);
    let sql = format!(
        "SELECT id, created_at, fmu_name, credits, api_key_id, run_id FROM usage {filter} {order}"
    );
    conn.for_each_row(&sql, bind(user_id, query), |row| Ok(each(from_row(&row)?)))
}

/// Runs and credits per UTC day since `since` (ms), oldest first: (day start ms, runs, credits).
pub(super) fn per_day(
    conn: &Connection,
    user_id: &UserId,
    since: i64,
) -> StoreResult<Vec<(i64, i64, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT (created_at / 86400000) * 86400000 AS day, COUNT(*), SUM(credits) FROM usage
         WHERE user_id = ?1 AND created_at >= ?2 GROUP BY day ORDER BY day",
    )?;
    let rows = stmt.query_map(params![user_id, since], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    rows.collect::<Result<_, _>>()
}
/// A billable event to record in the usage table.
#[derive(Clone, Debug)]
pub struct UsageRecord {
    pub fmu_name: String,
    pub credits: Credits,
    pub api_key_id: Option<KeyId>,
    pub run_id: Option<RunId>,
    /// When it happened (ms).
    pub at: i64,
}

/// Rows handed from the reading thread to the stream at a time, at most.
const STREAM_BUFFER: usize = 64;

/// Usage: each method is one transaction.
impl Store {
    /// Records one billable event on its own (settling a run records its usage inside the
    /// settlement, see [`Store::settle_run`]). Returns the row's id.
    pub async fn record_usage(&self, user_id: &UserId, r: UsageRecord) -> StoreResult<i64> {
        let user_id = user_id.clone();
        self.run(move |conn| {
            let key = r.api_key_id.as_ref();
            insert(
                conn,
                &user_id,
                r.at,
                &r.fmu_name,
                r.credits,
                key,
                r.run_id.as_ref(),
            )
        })
        .await
    }

    /// One page of the user's rows and the number of rows in all pages.
    pub async fn usage_page(
        &self,
        user_id: &UserId,
        query: Query,
        limit: u32,
        offset: i64,
    ) -> StoreResult<(Vec<UsageRow>, u64)> {
        let user_id = user_id.clone();
        self.run(move |conn| page(conn, &user_id, &query, limit, offset))
            .await
    }

    /// Every matching row in order, read while the stream is consumed: one reading thread
    /// hands rows over through a small buffer, so memory stays flat however many rows there
    /// are, and dropping the stream stops the query.
    pub fn usage_rows(
        &self,
        user_id: &UserId,
        query: Query,
    ) -> impl futures_util::Stream<Item = StoreResult<UsageRow>> + Send + 'static {
        let (tx, rx) = tokio::sync::mpsc::channel(STREAM_BUFFER);
        let (store, user_id) = (self.clone(), user_id.clone());
        tokio::task::spawn_blocking(move || {
            let result = store.conn().and_then(|conn| {
                for_each(&conn, &user_id, &query, |row| {
                    tx.blocking_send(Ok(row)).is_ok()
                })
            });
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(e));
            }
        });
        futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        })
    }

    /// Runs and credits per UTC day since `since` (ms), oldest first: (day start ms, runs,
    /// credits); days without usage are left out.
    pub async fn usage_per_day(
        &self,
        user_id: &UserId,
        since: i64,
    ) -> StoreResult<Vec<(i64, i64, i64)>> {
        let user_id = user_id.clone();
        self.run(move |conn| per_day(conn, &user_id, since)).await
    }
}
