//! The `api_keys` table: what identifies each biscuit key, never the token itself.

use super::sql::{Connection, OptionalExtension, Row, params};

use super::{Store, StoreResult, now_ms, write_tx};
use crate::domain::ids::{KeyId, UserId};

/// A key as listed on the keys page and in the API.
#[derive(Clone, Debug)]
pub struct KeyRow {
    pub id: KeyId,
    pub user_id: UserId,
    pub label: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Billable events recorded with this key.
    pub run_count: i64,
    /// When the user last marked it as their primary key.
    pub primary_since: Option<i64>,
}

const SELECT: &str = "SELECT k.id, k.user_id, k.label, k.created_at, k.expires_at,
        k.last_used_at, k.revoked_at,
        (SELECT COUNT(*) FROM usage u WHERE u.api_key_id = k.id), k.primary_since
    FROM api_keys k";

fn from_row(r: &Row) -> StoreResult<KeyRow> {
    Ok(KeyRow {
        id: r.get(0)?,
        user_id: r.get(1)?,
        label: r.get(2)?,
        created_at: r.get(3)?,
        expires_at: r.get(4)?,
        last_used_at: r.get(5)?,
        revoked_at: r.get(6)?,
        run_count: r.get(7)?,
        primary_since: r.get(8)?,
    })
}

pub(super) fn insert(
    conn: &Connection,
    id: &KeyId,
    user_id: &UserId,
    label: &str,
    now: i64,
    expires_at: Option<i64>,
) -> StoreResult<()> {
    conn.execute(
        "INSERT INTO api_keys (id, user_id, label, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, user_id, label, now, expires_at],
    )?;
    Ok(())
}

/// All of a user's keys, active first, newest first.
pub(super) fn list_for_user(conn: &Connection, user_id: &UserId) -> StoreResult<Vec<KeyRow>> {
    let sql = format!(
        "{SELECT} WHERE k.user_id = ?1 ORDER BY k.revoked_at IS NOT NULL, k.created_at DESC, k.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([user_id], from_row)?;
    rows.collect::<Result<_, _>>()
}

/// The key with this id if it belongs to the user.
pub(super) fn get_for_user(
    conn: &Connection,
    user_id: &UserId,
    id: &KeyId,
) -> StoreResult<Option<KeyRow>> {
    let sql = format!("{SELECT} WHERE k.user_id = ?1 AND k.id = ?2");
    conn.query_row(&sql, params![user_id, id], from_row)
        .optional()
}

/// What authentication needs on every request: owner, revocation, and when it was last used.
#[derive(Clone, Debug)]
pub struct KeyStatus {
    pub user_id: UserId,
    pub revoked: bool,
    pub expires_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

pub(super) fn status(conn: &Connection, id: &KeyId) -> StoreResult<Option<KeyStatus>> {
    let mut stmt = conn.prepare_cached(
        "SELECT user_id, revoked_at IS NOT NULL, expires_at, last_used_at FROM api_keys WHERE id = ?1",
    )?;
    stmt.query_row([id], |r| {
        Ok(KeyStatus {
            user_id: r.get(0)?,
            revoked: r.get(1)?,
            expires_at: r.get(2)?,
            last_used_at: r.get(3)?,
        })
    })
    .optional()
}

pub(super) fn touch(conn: &Connection, id: &KeyId, now: i64) -> StoreResult<()> {
    conn.execute(
        "UPDATE api_keys SET last_used_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Revokes the user's key. Revoking twice keeps the first time. `false`: no such key.
pub(super) fn revoke(
    conn: &Connection,
    user_id: &UserId,
    id: &KeyId,
    now: i64,
) -> StoreResult<bool> {
    let changed = conn.execute(
        "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, ?3) WHERE user_id = ?1 AND id = ?2",
        params![user_id, id, now],
    )?;
    Ok(changed == 1)
}

/// API keys: each method is one transaction.
impl Store {
    /// Stores a new key (its token is never stored).
    pub async fn add_key(&self, key: KeyRow) -> StoreResult<()> {
        self.run(move |conn| {
            insert(
                conn,
                &key.id,
                &key.user_id,
                &key.label,
                key.created_at,
                key.expires_at,
            )
        })
        .await
    }

    /// All of a user's keys, active first, newest first.
    pub async fn user_keys(&self, user_id: &UserId) -> StoreResult<Vec<KeyRow>> {
        let user_id = user_id.clone();
        self.run(move |conn| list_for_user(conn, &user_id)).await
    }

    /// Revokes the user's key and ends the browser sessions opened with it, in one
    /// transaction; returns the key as it now is, or `None` when the user has no such key.
    pub async fn revoke_key(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
    ) -> StoreResult<Option<KeyRow>> {
        let (uid, kid) = (user_id.clone(), key_id.clone());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            if !revoke(&tx, &uid, &kid, now_ms())? {
                return Ok(None);
            }
            // Sessions opened with the key are also refused when found (see
            // `sessions::find_live`); this keeps the table clean.
            super::sessions::delete_for_key(&tx, &kid)?;
            let key = get_for_user(&tx, &uid, &kid)?;
            tx.commit()?;
            Ok(key)
        })
        .await
    }

    /// Marks the user's key as their primary one; `None` when the user has no such key that
    /// is still usable (revoked or expired), which is then left as it was.
    pub async fn mark_primary_key(
        &self,
        user_id: &UserId,
        key_id: &KeyId,
    ) -> StoreResult<Option<KeyRow>> {
        let (uid, kid) = (user_id.clone(), key_id.clone());
        self.run(move |conn| {
            let now = now_ms();
            let changed = conn.execute(
                "UPDATE api_keys SET primary_since = ?3 WHERE user_id = ?1 AND id = ?2
                   AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?3)",
                params![uid, kid, now],
            )?;
            if changed == 0 {
                return Ok(None);
            }
            get_for_user(conn, &uid, &kid)
        })
        .await
    }

    /// What authenticating a request needs to know about a key: owner, revocation, expiry,
    /// when it was last used.
    pub async fn key_status(&self, key_id: &KeyId) -> StoreResult<Option<KeyStatus>> {
        let id = key_id.clone();
        self.run(move |conn| status(conn, &id)).await
    }

    /// Records that a key was used now.
    pub async fn key_used(&self, key_id: &KeyId) -> StoreResult<()> {
        let id = key_id.clone();
        self.run(move |conn| touch(conn, &id, now_ms())).await
    }
}
