//! Usage: one row per billable event, listed, paged and exported.
//!
//! Rows are written by the store: settling a run records its usage in the same transaction
//! (`Store::settle_run`).

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use crate::domain::error::{AppError, AppResult};
use crate::domain::ids::UserId;
use crate::domain::rfc3339_ms;
use crate::store::Store;
use crate::store::usage::{Query, SortColumn, UsageRow};

pub use crate::store::usage::{Query as UsageQuery, SortColumn as UsageSort};

/// The CSV header existing clients parse.
pub const CSV_HEADER: [&str; 4] = ["Date", "FMU Name", "Credits Used", "API Key ID"];

/// Largest page a listing returns.
pub const MAX_PAGE: u32 = 500;

/// The largest `?offset=` a listing takes: 10¹⁵, far beyond any list's length and below
/// 2⁵³, so every JSON client (JavaScript's numbers, a spec's `maximum` read as a double)
/// holds it exactly. The API's spec states it (a test keeps the two equal).
pub const MAX_OFFSET: u64 = 1_000_000_000_000_000;

/// Checks a client's `?offset=` against [`MAX_OFFSET`]. A larger one is refused (400 naming
/// `offset`) rather than answered with an empty page, because such a number only comes from
/// a client's arithmetic going wrong (`-1` sent as unsigned is `u64::MAX`), and an empty page
/// would hide that. Offsets past the end but within range get the correct, empty page.
pub fn page_offset(offset: u64) -> AppResult<i64> {
    if offset > MAX_OFFSET {
        return Err(AppError::Malformed(crate::sim::plan::Problems(vec![
            crate::sim::plan::Problem::new(
                "offset",
                format!("offset must be at most {MAX_OFFSET}"),
            ),
        ])));
    }
    Ok(offset as i64)
}

/// One page of a user's usage and the total number of rows.
pub struct UsagePage {
    pub rows: Vec<UsageRow>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

pub async fn page(
    store: &Store,
    user_id: &UserId,
    query: Query,
    limit: u32,
    offset: u64,
) -> AppResult<UsagePage> {
    let limit = limit.clamp(1, MAX_PAGE);
    let skip = page_offset(offset)?;
    let (rows, total) = store.usage_page(user_id, query, limit, skip).await?;
    Ok(UsagePage {
        rows,
        total,
        limit,
        offset,
    })
}

/// The newest `n` rows.
pub async fn recent(store: &Store, user_id: &UserId, n: u32) -> AppResult<Vec<UsageRow>> {
    let query = Query {
        api_key_id: None,
        sort: SortColumn::Date,
        descending: true,
    };
    Ok(page(store, user_id, query, n, 0).await?.rows)
}

/// All of the user's rows as CSV, produced while it is sent: rows arrive from the store's
/// stream and leave in chunks of whatever is ready (at most `ROWS_PER_CHUNK` rows), so
/// memory stays flat however many rows there are, and a client that stops reading stops the
/// query.
pub fn export_csv(
    store: &Store,
    user_id: &UserId,
    query: Query,
) -> impl Stream<Item = std::io::Result<Bytes>> + Send + 'static {
    let header = futures_util::stream::once(async { csv_chunk(&[CSV_HEADER.map(String::from)]) });
    let rows = store
        .usage_rows(user_id, query)
        .ready_chunks(ROWS_PER_CHUNK)
        .map(|batch| {
            let records = batch
                .into_iter()
                .map(|row| row.map(csv_record))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    tracing::error!(error = %e, "usage export failed");
                    std::io::Error::other("usage export failed")
                })?;
            csv_chunk(&records)
        });
    header.chain(rows)
}

/// Rows encoded into one chunk of the export, at most.
const ROWS_PER_CHUNK: usize = 256;

/// A usage row as the export's columns ([`CSV_HEADER`]).
fn csv_record(row: UsageRow) -> [String; 4] {
    [
        rfc3339_ms(row.created_at),
        // The run's name is the user's text: never a formula in a spreadsheet.
        crate::format::csv_cell(&row.fmu_name).into_owned(),
        row.credits.to_string(),
        row.api_key_id.map(String::from).unwrap_or_default(),
    ]
}

fn csv_chunk(records: &[[String; 4]]) -> std::io::Result<Bytes> {
    let mut writer = csv::Writer::from_writer(Vec::with_capacity(records.len() * 64));
    for record in records {
        writer.write_record(record)?;
    }
    writer
        .into_inner()
        .map(Bytes::from)
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// The last `days` UTC days (today included), oldest first, with the runs and credits of
/// each (zero for quiet days): what the dashboard chart shows.
pub async fn per_day(
    store: &Store,
    user_id: &UserId,
    days: u32,
) -> AppResult<Vec<(i64, i64, i64)>> {
    const DAY: i64 = 86_400_000;
    let today = crate::store::now_ms() / DAY * DAY;
    let since = today - i64::from(days.saturating_sub(1)) * DAY;
    let rows = store.usage_per_day(user_id, since).await?;
    Ok((0..i64::from(days))
        .map(|i| {
            let day = since + i * DAY;
            rows.iter()
                .find(|(d, _, _)| *d == day)
                .map_or((day, 0, 0), |&(d, n, c)| (d, n, c))
        })
        .collect())
}
