//! The `usage` table: one row per billable event.

use rusqlite::types::Value;
use rusqlite::{Connection, Row, params, params_from_iter};

use super::StoreResult;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    pub id: i64,
    pub created_at: i64,
    pub fmu_name: String,
    pub credits: i64,
    pub api_key_id: Option<String>,
    pub run_id: Option<String>,
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
    pub api_key_id: Option<String>,
    pub sort: SortColumn,
    pub descending: bool,
}

pub fn insert(
    conn: &Connection,
    user_id: &str,
    now: i64,
    fmu_name: &str,
    credits: i64,
    api_key_id: Option<&str>,
    run_id: Option<&str>,
) -> StoreResult<i64> {
    conn.execute(
        "INSERT INTO usage (user_id, created_at, fmu_name, credits, api_key_id, run_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![user_id, now, fmu_name, credits, api_key_id, run_id],
    )?;
    Ok(conn.last_insert_rowid())
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<UsageRow> {
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

fn bind(user_id: &str, query: &Query) -> Vec<Value> {
    let mut out = vec![Value::Text(user_id.to_string())];
    if let Some(key) = &query.api_key_id {
        out.push(Value::Text(key.clone()));
    }
    out
}

/// One page of rows and the number of rows in all pages.
pub fn page(
    conn: &Connection,
    user_id: &str,
    query: &Query,
    limit: u32,
    offset: i64,
) -> StoreResult<(Vec<UsageRow>, u64)> {
    let (filter, order) = clauses(query);
    let args = bind(user_id, query);
    let total: i64 = conn
        .prepare_cached(&format!("SELECT COUNT(*) FROM usage {filter}"))?
        .query_row(params_from_iter(args.iter()), |r| r.get(0))?;
    let sql = format!(
        "SELECT id, created_at, fmu_name, credits, api_key_id, run_id FROM usage {filter} {order}
         LIMIT {limit} OFFSET {offset}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(args.iter()), from_row)?
        .collect::<Result<_, _>>()?;
    Ok((rows, total.max(0) as u64))
}

/// Calls `each` for every matching row in order, holding one row in memory at a time.
/// Stops early (without error) when `each` returns `false`.
pub fn for_each(
    conn: &Connection,
    user_id: &str,
    query: &Query,
    mut each: impl FnMut(UsageRow) -> bool,
) -> StoreResult<()> {
    let (filter, order) = clauses(query);
    let sql = format!(
        "SELECT id, created_at, fmu_name, credits, api_key_id, run_id FROM usage {filter} {order}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(bind(user_id, query)))?;
    while let Some(row) = rows.next()? {
        if !each(from_row(row)?) {
            break;
        }
    }
    Ok(())
}

/// Runs and credits per UTC day since `since` (ms), oldest first: (day start ms, runs, credits).
pub fn per_day(conn: &Connection, user_id: &str, since: i64) -> StoreResult<Vec<(i64, i64, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT (created_at / 86400000) * 86400000 AS day, COUNT(*), SUM(credits) FROM usage
         WHERE user_id = ?1 AND created_at >= ?2 GROUP BY day ORDER BY day",
    )?;
    let rows = stmt.query_map(params![user_id, since], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
