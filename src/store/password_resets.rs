//! The `password_resets` table: single-use, expiring reset links, stored by their hash.

use super::sql::{Connection, OptionalExtension, params};

use super::{Store, StoreResult, write_tx};
use crate::domain::ids::UserId;

/// The user a link is for, if it is unused and unexpired at `now`.
fn valid_user(conn: &Connection, token_hash: &[u8], now: i64) -> StoreResult<Option<UserId>> {
    conn.query_row(
        "SELECT r.user_id FROM password_resets r JOIN users u ON u.id = r.user_id
             WHERE r.token_hash = ?1 AND r.used_at IS NULL AND r.expires_at > ?2
               AND u.deleted_at IS NULL",
        params![token_hash, now],
        |r| r.get(0),
    )
    .optional()
}

impl Store {
    /// Records a reset link for the user.
    pub async fn add_password_reset(
        &self,
        user_id: &UserId,
        token_hash: Vec<u8>,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        let user_id = user_id.clone();
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
                params![token_hash, user_id, now, expires_at],
            )?;
            Ok(())
        })
        .await
    }

    /// Whether the link can still be used.
    pub async fn password_reset_valid(&self, token_hash: Vec<u8>, now: i64) -> StoreResult<bool> {
        self.run(move |conn| Ok(valid_user(conn, &token_hash, now)?.is_some()))
            .await
    }

    /// Uses the link: sets the password and ends every session of its user, in one
    /// transaction. `None` when the link is used, expired or unknown.
    pub async fn use_password_reset(
        &self,
        token_hash: Vec<u8>,
        now: i64,
        password_hash: String,
    ) -> StoreResult<Option<UserId>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(user_id) = valid_user(&tx, &token_hash, now)? else {
                return Ok(None);
            };
            tx.execute(
                "UPDATE password_resets SET used_at = ?2 WHERE token_hash = ?1",
                params![token_hash, now],
            )?;
            tx.execute(
                "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                params![user_id, password_hash],
            )?;
            super::sessions::delete_all_for_user(&tx, &user_id)?;
            tx.commit()?;
            Ok(Some(user_id))
        })
        .await
    }
}
