//! The `sessions` table: server-side browser sessions.

use super::sql::{Connection, OptionalExtension, params};

use super::users::User;
use super::{Store, StoreResult, now_ms};
use crate::domain::ids::{KeyId, UserId};

/// A live session found by its token hash.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub user_id: UserId,
    pub csrf_token: String,
    pub expires_at: i64,
    pub last_seen_at: Option<i64>,
}

/// How often at most a session's `last_seen_at` is written: often enough to tell which
/// session is in use, rarely enough that browsing is not a write per request.
pub const LAST_SEEN_EVERY_MS: i64 = 60_000;

/// One of a user's live sessions, as the account page lists them.
#[derive(Clone, Debug)]
pub struct SessionInfo {
    pub token_hash: Vec<u8>,
    /// "Browser on OS"; `None` for sessions opened before this was recorded.
    pub device: Option<String>,
    pub ip: Option<String>,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
    /// Opened by logging in with an API key.
    pub with_key: bool,
}

/// A new session; `api_key_id` is the key it was opened with, if any.
pub(super) struct NewSession<'a> {
    pub token_hash: &'a [u8],
    pub user_id: &'a UserId,
    pub csrf_token: &'a str,
    pub api_key_id: Option<&'a KeyId>,
    pub created_at: i64,
    pub expires_at: i64,
    pub device: &'a str,
    pub ip: &'a str,
}

pub(super) fn insert(conn: &Connection, s: &NewSession<'_>) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, api_key_id, created_at, expires_at,
                               device, ip, last_seen_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?5)",
        params![
            s.token_hash,
            s.user_id,
            s.csrf_token,
            s.api_key_id,
            s.created_at,
            s.expires_at,
            s.device,
            s.ip
        ],
    )?;
    Ok(())
}

/// The session with this token hash, if it has not expired and, when it was opened with an
/// API key, that key is neither revoked nor expired (a session never outlives its key).
pub(super) fn find_live(
    conn: &Connection,
    token_hash: &[u8],
    now: i64,
) -> StoreResult<Option<SessionRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT s.user_id, s.csrf_token, s.expires_at, s.last_seen_at FROM sessions s
         LEFT JOIN api_keys k ON k.id = s.api_key_id
         WHERE s.token_hash = ?1 AND s.expires_at > ?2
           AND (s.api_key_id IS NULL
                OR (k.id IS NOT NULL AND k.revoked_at IS NULL
                    AND (k.expires_at IS NULL OR k.expires_at > ?2)))",
    )?;
    stmt.query_row(params![token_hash, now], |r| {
        Ok(SessionRow {
            user_id: r.get(0)?,
            csrf_token: r.get(1)?,
            expires_at: r.get(2)?,
            last_seen_at: r.get(3)?,
        })
    })
    .optional()
}

/// Moves a session's expiry forward (sliding expiry for active users).
pub(super) fn extend(conn: &Connection, token_hash: &[u8], expires_at: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE sessions SET expires_at = ?2 WHERE token_hash = ?1",
        params![token_hash, expires_at],
    )?;
    Ok(())
}

/// Records that the session was used now.
fn touch(conn: &Connection, token_hash: &[u8], now: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE sessions SET last_seen_at = ?2 WHERE token_hash = ?1",
        params![token_hash, now],
    )?;
    Ok(())
}

/// The user's live sessions, most recently used first.
fn list_live(conn: &Connection, user_id: &UserId, now: i64) -> StoreResult<Vec<SessionInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT token_hash, device, ip, created_at, last_seen_at, api_key_id IS NOT NULL
         FROM sessions WHERE user_id = ?1 AND expires_at > ?2
         ORDER BY COALESCE(last_seen_at, created_at) DESC, created_at DESC",
    )?;
    let rows = stmt
        .query_map(params![user_id, now], |r| {
            Ok(SessionInfo {
                token_hash: r.get(0)?,
                device: r.get(1)?,
                ip: r.get(2)?,
                created_at: r.get(3)?,
                last_seen_at: r.get(4)?,
                with_key: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Ends every session of the user but `keep` (after a password change).
pub(super) fn delete_others(
    conn: &Connection,
    user_id: &UserId,
    keep: &[u8],
) -> StoreResult<usize> {
    conn.execute(
        "DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2",
        params![user_id, keep],
    )
}

pub(super) fn delete(conn: &Connection, token_hash: &[u8]) -> StoreResult<()> {
    conn.execute("DELETE FROM sessions WHERE token_hash = ?1", [token_hash])?;
    Ok(())
}

/// "Log out everywhere": returns how many sessions were ended.
pub(super) fn delete_all_for_user(conn: &Connection, user_id: &UserId) -> StoreResult<usize> {
    conn.execute("DELETE FROM sessions WHERE user_id = ?1", [user_id])
}

pub(super) fn delete_expired(conn: &Connection, now: i64) -> StoreResult<usize> {
    conn.execute("DELETE FROM sessions WHERE expires_at <= ?1", [now])
}

/// Live sessions opened with each of the user's keys: `(key id, sessions)`.
pub(super) fn live_by_key(
    conn: &Connection,
    user_id: &UserId,
    now: i64,
) -> StoreResult<Vec<(KeyId, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT api_key_id, COUNT(*) FROM sessions
         WHERE user_id = ?1 AND api_key_id IS NOT NULL AND expires_at > ?2
         GROUP BY api_key_id",
    )?;
    let rows = stmt
        .query_map(params![user_id, now], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Ends the sessions opened with a key (when it is revoked).
pub(super) fn delete_for_key(conn: &Connection, api_key_id: &KeyId) -> StoreResult<usize> {
    conn.execute("DELETE FROM sessions WHERE api_key_id = ?1", [api_key_id])
}

/// A browser session to open: the hash of its cookie's token, never the token.
#[derive(Clone, Debug)]
pub struct OpenSession {
    pub token_hash: Vec<u8>,
    pub user_id: UserId,
    pub csrf_token: String,
    pub api_key_id: Option<KeyId>,
    pub created_at: i64,
    pub expires_at: i64,
    /// "Browser on OS", from the User-Agent.
    pub device: String,
    /// The client's address.
    pub ip: String,
}

/// Browser sessions: each method is one transaction.
impl Store {
    /// Records a new session, and drops expired ones (an opportunistic clean-up that keeps
    /// the table small without a background job).
    pub async fn open_session(&self, s: OpenSession) -> StoreResult<()> {
        self.run(move |conn| {
            let new = NewSession {
                token_hash: &s.token_hash,
                user_id: &s.user_id,
                csrf_token: &s.csrf_token,
                api_key_id: s.api_key_id.as_ref(),
                created_at: s.created_at,
                expires_at: s.expires_at,
                device: &s.device,
                ip: &s.ip,
            };
            insert(conn, &new)?;
            delete_expired(conn, s.created_at)?;
            Ok(())
        })
        .await
    }

    /// The live session with this token hash, with its user and CSRF token; its expiry is
    /// moved to `now + ttl` when less than half of `ttl` is left.
    pub async fn live_session(
        &self,
        token_hash: Vec<u8>,
        ttl_ms: i64,
    ) -> StoreResult<Option<(User, String)>> {
        self.run(move |conn| {
            let now = now_ms();
            let Some(row) = find_live(conn, &token_hash, now)? else {
                return Ok(None);
            };
            let Some(user) = super::users::get(conn, &row.user_id)? else {
                return Ok(None);
            };
            if row.expires_at - now < ttl_ms / 2 {
                extend(conn, &token_hash, now + ttl_ms)?;
            }
            if row
                .last_seen_at
                .is_none_or(|seen| now - seen >= LAST_SEEN_EVERY_MS)
            {
                touch(conn, &token_hash, now)?;
            }
            Ok(Some((user, row.csrf_token)))
        })
        .await
    }

    /// Ends one session (logout).
    pub async fn end_session(&self, token_hash: Vec<u8>) -> StoreResult<()> {
        self.run(move |conn| delete(conn, &token_hash)).await
    }

    /// Ends every session of the user; returns how many there were.
    pub async fn end_user_sessions(&self, user_id: &UserId) -> StoreResult<usize> {
        let user_id = user_id.clone();
        self.run(move |conn| delete_all_for_user(conn, &user_id))
            .await
    }

    /// The user's live sessions, most recently used first.
    pub async fn user_sessions(&self, user_id: &UserId) -> StoreResult<Vec<SessionInfo>> {
        let user_id = user_id.clone();
        self.run(move |conn| list_live(conn, &user_id, now_ms()))
            .await
    }

    /// Ends one of the user's sessions; whether it was theirs and live.
    pub async fn end_user_session(
        &self,
        user_id: &UserId,
        token_hash: Vec<u8>,
    ) -> StoreResult<bool> {
        let user_id = user_id.clone();
        self.run(move |conn| {
            Ok(conn.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND token_hash = ?2",
                params![user_id, token_hash],
            )? == 1)
        })
        .await
    }

    /// How many live sessions were opened with each of the user's keys.
    pub async fn sessions_by_key(&self, user_id: &UserId) -> StoreResult<Vec<(KeyId, i64)>> {
        let user_id = user_id.clone();
        self.run(move |conn| live_by_key(conn, &user_id, now_ms()))
            .await
    }
}
