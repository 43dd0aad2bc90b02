//! The `free_grants` table: how many new accounts got the free credits from one client
//! address on one day (the cap `FMU_GATEWAY_FREE_GRANTS_PER_ADDRESS_PER_DAY`).

use super::sql::{Connection, OptionalExtension, params};

use super::StoreResult;

const DAY_MS: i64 = 86_400_000;

/// Counts one grant for `address` on the UTC day of `now` if fewer than `cap` were counted
/// that day; `false` (and nothing written) when the cap is reached. Call inside the
/// registration's transaction, so the count and the grant commit together.
pub(super) fn take(conn: &Connection, address: &str, now: i64, cap: u32) -> StoreResult<bool> {
    let day = now.div_euclid(DAY_MS);
    let used: i64 = conn
        .query_row(
            "SELECT grants FROM free_grants WHERE address = ?1 AND day = ?2",
            params![address, day],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0);
    if used >= i64::from(cap) {
        return Ok(false);
    }
    conn.execute(
        "INSERT INTO free_grants (address, day, grants) VALUES (?1, ?2, 1)
         ON CONFLICT (address, day) DO UPDATE SET grants = free_grants.grants + 1",
        params![address, day],
    )?;
    // Old days are of no further use.
    conn.execute("DELETE FROM free_grants WHERE day < ?1", [day - 1])?;
    Ok(true)
}
