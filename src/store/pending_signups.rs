//! The `pending_signups` table: sign-ups waiting for their mailed link, stored by its hash.

use super::sql::{OptionalExtension, params};

use super::{Store, StoreResult, write_tx};

/// What a sign-up left to finish it with.
#[derive(Clone, Debug)]
pub struct PendingSignup {
    pub email: String,
    pub name: Option<String>,
    pub password_hash: String,
    pub address: Option<String>,
}

impl Store {
    /// Records a sign-up waiting for its link.
    pub async fn add_pending_signup(
        &self,
        token_hash: Vec<u8>,
        signup: PendingSignup,
        now: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        self.run(move |conn| {
            conn.execute(
                "INSERT INTO pending_signups
                   (token_hash, email, name, password_hash, address, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    token_hash,
                    signup.email,
                    signup.name,
                    signup.password_hash,
                    signup.address,
                    now,
                    expires_at
                ],
            )?;
            Ok(())
        })
        .await
    }

    /// Whether the link is unused and unexpired.
    pub async fn pending_signup_valid(&self, token_hash: Vec<u8>, now: i64) -> StoreResult<bool> {
        self.run(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT 1 FROM pending_signups
                     WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                    params![token_hash, now],
                    |_| Ok(()),
                )
                .optional()?
                .is_some())
        })
        .await
    }

    /// Uses the link (once): what the sign-up left, or `None` when the link is used, expired
    /// or unknown.
    pub async fn take_pending_signup(
        &self,
        token_hash: Vec<u8>,
        now: i64,
    ) -> StoreResult<Option<PendingSignup>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let found = tx
                .query_row(
                    "SELECT email, name, password_hash, address FROM pending_signups
                     WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2",
                    params![token_hash, now],
                    |r| {
                        Ok(PendingSignup {
                            email: r.get(0)?,
                            name: r.get(1)?,
                            password_hash: r.get(2)?,
                            address: r.get(3)?,
                        })
                    },
                )
                .optional()?;
            if found.is_some() {
                tx.execute(
                    "UPDATE pending_signups SET used_at = ?2 WHERE token_hash = ?1",
                    params![token_hash, now],
                )?;
            }
            tx.commit()?;
            Ok(found)
        })
        .await
    }
}
