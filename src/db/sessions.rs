//! The `sessions` table: server-side browser sessions.

use rusqlite::{Connection, OptionalExtension, params};

use super::DbResult;

/// A live session found by its token hash.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub user_id: String,
    pub csrf_token: String,
    pub expires_at: i64,
}

pub fn insert(
    conn: &Connection,
    token_hash: &[u8],
    user_id: &str,
    csrf_token: &str,
    now: i64,
    expires_at: i64,
) -> DbResult<()> {
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![token_hash, user_id, csrf_token, now, expires_at],
    )?;
    Ok(())
}

/// The session with this token hash, if it has not expired.
pub fn find_live(conn: &Connection, token_hash: &[u8], now: i64) -> DbResult<Option<SessionRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, csrf_token, expires_at FROM sessions
         WHERE token_hash = ?1 AND expires_at > ?2",
    )?;
    Ok(stmt
        .query_row(params![token_hash, now], |r| {
            Ok(SessionRow {
                user_id: r.get(0)?,
                csrf_token: r.get(1)?,
                expires_at: r.get(2)?,
            })
        })
        .optional()?)
}

/// Moves a session's expiry forward (sliding expiry for active users).
pub fn extend(conn: &Connection, token_hash: &[u8], expires_at: i64) -> DbResult<()> {
    conn.execute(
        "UPDATE sessions SET expires_at = ?2 WHERE token_hash = ?1",
        params![token_hash, expires_at],
    )?;
    Ok(())
}

pub fn delete(conn: &Connection, token_hash: &[u8]) -> DbResult<()> {
    conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
    Ok(())
}

/// "Log out everywhere": returns how many sessions were ended.
pub fn delete_all_for_user(conn: &Connection, user_id: &str) -> DbResult<usize> {
    Ok(conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])?)
}

pub fn delete_expired(conn: &Connection, now: i64) -> DbResult<usize> {
    Ok(conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])?)
}
