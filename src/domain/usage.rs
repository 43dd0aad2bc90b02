//! Usage: one row per billable event, listed, paged and exported.
//!
//! [`record`] is the one way rows are written: settling a run calls it inside its own
//! transaction, which is why it takes a connection rather than the state.

use bytes::Bytes;
use futures_util::Stream;
use rusqlite::Connection;

use crate::domain::error::{AppError, AppResult};
use crate::domain::rfc3339_ms;
use crate::state::State;
use crate::store::{
    self,
    usage::{Query, SortColumn, UsageRow},
};

pub use crate::store::usage::{Query as UsageQuery, SortColumn as UsageSort};

/// The CSV header existing clients parse.
pub const CSV_HEADER: [&str; 4] = ["Date", "FMU Name", "Credits Used", "API Key ID"];

/// Largest page a listing returns.
pub const MAX_PAGE: u32 = 500;

/// A billable event to record.
#[derive(Clone, Debug)]
pub struct UsageEvent<'a> {
    pub fmu_name: &'a str,
    pub credits: i64,
    pub api_key_id: Option<&'a str>,
    pub run_id: Option<&'a str>,
}

/// Writes one usage row at time `now`. Returns its id.
pub fn record(
    conn: &Connection,
    user_id: &str,
    event: &UsageEvent<'_>,
    now: i64,
) -> AppResult<i64> {
    if event.credits < 0 {
        return Err(AppError::Internal("usage with negative credits".into()));
    }
    let name = if event.fmu_name.trim().is_empty() {
        "(unnamed)"
    } else {
        event.fmu_name
    };
    Ok(store::usage::insert(
        conn,
        user_id,
        now,
        name,
        event.credits,
        event.api_key_id,
        event.run_id,
    )?)
}

/// Checks a client's `?offset=`: SQLite counts rows in an `i64`, so a larger offset cannot be
/// a place in any list. It is refused (422 naming `offset`) rather than answered with an
/// empty page, because such a number only comes from a client's arithmetic going wrong
/// (`-1` sent as unsigned is `u64::MAX`), and an empty page would hide that. Offsets past the
/// end but within range get the correct, empty page.
pub fn page_offset(offset: u64) -> AppResult<i64> {
    i64::try_from(offset).map_err(|_| {
        AppError::Problems(crate::sim::plan::Problems(vec![
            crate::sim::plan::Problem::new(
                "offset",
                format!("offset must be at most {}", i64::MAX),
            ),
        ]))
    })
}

/// One page of a user's usage and the total number of rows.
pub struct UsagePage {
    pub rows: Vec<UsageRow>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

pub async fn page(
    state: &State,
    user_id: &str,
    query: Query,
    limit: u32,
    offset: u64,
) -> AppResult<UsagePage> {
    let limit = limit.clamp(1, MAX_PAGE);
    let skip = page_offset(offset)?;
    let uid = user_id.to_string();
    let (rows, total) = state
        .store
        .run(move |conn| store::usage::page(conn, &uid, &query, limit, skip))
        .await?;
    Ok(UsagePage {
        rows,
        total,
        limit,
        offset,
    })
}

/// The newest `n` rows.
pub async fn recent(state: &State, user_id: &str, n: u32) -> AppResult<Vec<UsageRow>> {
    let query = Query {
        api_key_id: None,
        sort: SortColumn::Date,
        descending: true,
    };
    Ok(page(state, user_id, query, n, 0).await?.rows)
}

/// All of the user's rows as CSV, produced while it is sent: rows are read one at a time on a
/// blocking thread and handed over in chunks of about 32 KiB through a small channel, so
/// memory stays flat however many rows there are, and a client that stops reading stops the
/// query.
pub fn export_csv(
    state: &State,
    user_id: &str,
    query: Query,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    let db = state.store.clone();
    let user_id = user_id.to_string();
    tokio::task::spawn_blocking(move || {
        let mut writer = csv::Writer::from_writer(ChunkSender {
            buf: Vec::with_capacity(CHUNK),
            tx: tx.clone(),
        });
        let mut ok = writer.write_record(CSV_HEADER).is_ok();
        let result = db.conn().and_then(|conn| {
            store::usage::for_each(&conn, &user_id, &query, |row| {
                let record = [
                    rfc3339_ms(row.created_at),
                    // The run's name is the user's text: never a formula in a spreadsheet.
                    crate::format::csv_cell(&row.fmu_name).into_owned(),
                    row.credits.to_string(),
                    row.api_key_id.unwrap_or_default(),
                ];
                ok = writer.write_record(&record).is_ok();
                ok
            })
        });
        match result {
            Err(e) => {
                tracing::error!(error = %e, "usage export failed");
                let _ = tx.blocking_send(Err(std::io::Error::other("usage export failed")));
            }
            Ok(()) if ok => {
                let _ = writer.flush();
            }
            Ok(()) => {} // the client went away
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
}

const CHUNK: usize = 32 * 1024;

/// An `io::Write` that sends what it collects to the response in chunks; writing fails once
/// the client has gone, which ends the export.
struct ChunkSender {
    buf: Vec<u8>,
    tx: tokio::sync::mpsc::Sender<std::io::Result<Bytes>>,
}

impl std::io::Write for ChunkSender {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
    }
}

/// The last `days` UTC days (today included), oldest first, with the runs and credits of
/// each (zero for quiet days): what the dashboard chart shows.
pub async fn per_day(state: &State, user_id: &str, days: u32) -> AppResult<Vec<(i64, i64, i64)>> {
    const DAY: i64 = 86_400_000;
    let today = crate::store::now_ms() / DAY * DAY;
    let since = today - i64::from(days.saturating_sub(1)) * DAY;
    let uid = user_id.to_string();
    let rows = state
        .store
        .run(move |conn| store::usage::per_day(conn, &uid, since))
        .await?;
    Ok((0..i64::from(days))
        .map(|i| {
            let day = since + i * DAY;
            rows.iter()
                .find(|(d, _, _)| *d == day)
                .map_or((day, 0, 0), |&(d, n, c)| (d, n, c))
        })
        .collect())
}
