//! The `users` table.

use super::sql::{Connection, OptionalExtension, Row, params};

use super::api_keys::KeyRow;
use super::ledger::{self, EntryKind};
use super::{Store, StoreResult, now_ms, write_tx};
use crate::domain::ids::{Credits, UserId};

/// An account as the rest of the service sees it (never the password hash).
#[derive(Clone, Debug)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: Option<String>,
    pub credits: Credits,
    pub created_at: i64,
    pub has_password: bool,
}

/// What `insert` needs; the free credits go through the ledger.
pub(super) struct NewUser<'a> {
    pub id: &'a UserId,
    pub email: &'a str,
    pub email_normalized: &'a str,
    pub name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub created_at: i64,
}

const COLUMNS: &str = "id, email, name, credits, created_at, password_hash IS NOT NULL";

fn from_row(row: &Row) -> StoreResult<User> {
    Ok(User {
        id: row.get(0)?,
        email: row.get(1)?,
        name: row.get(2)?,
        credits: row.get(3)?,
        created_at: row.get(4)?,
        has_password: row.get(5)?,
    })
}

/// Inserts a user with zero credits. `Ok(false)` when the normalized email is taken.
pub(super) fn insert(conn: &Connection, user: &NewUser<'_>) -> StoreResult<bool> {
    let result = conn.execute(
        "INSERT INTO users (id, email, email_normalized, name, password_hash, credits, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)
         ON CONFLICT DO NOTHING",
        params![
            user.id,
            user.email,
            user.email_normalized,
            user.name,
            user.password_hash,
            user.created_at
        ],
    );
    // ON CONFLICT rather than catching the error: on PostgreSQL a failed statement ends
    // the transaction it is in.
    Ok(result? == 1)
}

pub(super) fn get(conn: &Connection, id: &UserId) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = ?1");
    conn.query_row(&sql, [id], from_row).optional()
}

/// The user with this normalized email and their password hash, if they have one.
pub(super) fn find_by_email(
    conn: &Connection,
    email_normalized: &str,
) -> StoreResult<Option<(User, Option<String>)>> {
    let sql = format!("SELECT {COLUMNS}, password_hash FROM users WHERE email_normalized = ?1");
    conn.query_row(&sql, [email_normalized], |row| {
        Ok((from_row(row)?, row.get(6)?))
    })
    .optional()
}

/// A new account, as the domain decided it: the store writes all of it or none.
#[derive(Clone, Debug)]
pub struct NewAccount {
    pub id: UserId,
    pub email: String,
    pub email_normalized: String,
    pub name: Option<String>,
    pub password_hash: Option<String>,
    pub created_at: i64,
    /// Credits granted on sign-up, unless `grant_address` has had `grant_cap` grants today.
    pub free_credits: Credits,
    /// The client's address (IPv4, or IPv6 /64) for the cap; `None`: no cap.
    pub grant_address: Option<String>,
    pub grant_cap: u32,
    /// An API key created with the account.
    pub first_key: Option<KeyRow>,
}

/// An account just created, and whether its free credits were withheld by the cap.
#[derive(Clone, Debug)]
pub struct CreatedAccount {
    pub user: User,
    pub free_credits_withheld: bool,
}

/// Accounts: each method is one transaction.
impl Store {
    /// Creates the account, grants the free credits (a ledger row, counted against the
    /// address's daily cap) and stores its first key, in one transaction: either the whole
    /// account exists or none of it. `None` when the email is taken.
    pub async fn create_account(&self, new: NewAccount) -> StoreResult<Option<CreatedAccount>> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let row = NewUser {
                id: &new.id,
                email: &new.email,
                email_normalized: &new.email_normalized,
                name: new.name.as_deref(),
                password_hash: new.password_hash.as_deref(),
                created_at: new.created_at,
            };
            if !insert(&tx, &row)? {
                return Ok(None);
            }
            let now = new.created_at;
            let granted = new.free_credits > Credits::ZERO
                && match &new.grant_address {
                    Some(a) => super::free_grants::take(&tx, a, now, new.grant_cap)?,
                    None => true,
                };
            if granted {
                let reason = "Free credits on sign-up";
                ledger::apply(
                    &tx,
                    &new.id,
                    new.free_credits.get(),
                    EntryKind::Grant,
                    reason,
                    None,
                    now,
                )?;
            }
            if let Some(k) = &new.first_key {
                super::api_keys::insert(&tx, &k.id, &new.id, &k.label, now, k.expires_at)?;
            }
            let user = get(&tx, &new.id)?;
            tx.commit()?;
            Ok(user.map(|user| CreatedAccount {
                user,
                free_credits_withheld: new.free_credits > Credits::ZERO && !granted,
            }))
        })
        .await
    }

    /// The account by id.
    pub async fn user(&self, id: &UserId) -> StoreResult<Option<User>> {
        let id = id.clone();
        self.run(move |conn| get(conn, &id)).await
    }

    /// The account with this (normalized) email, and its password hash if it has one.
    pub async fn user_by_email(
        &self,
        normalized: &str,
    ) -> StoreResult<Option<(User, Option<String>)>> {
        let normalized = normalized.to_string();
        self.run(move |conn| find_by_email(conn, &normalized)).await
    }

    /// The account's password hash, if it has one (to check the current password).
    pub async fn password_hash(&self, id: &UserId) -> StoreResult<Option<String>> {
        let id = id.clone();
        self.run(move |conn| {
            Ok(conn
                .query_row("SELECT password_hash FROM users WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?
                .flatten())
        })
        .await
    }

    /// Sets (or with `None` clears) the account's display name.
    pub async fn set_name(&self, id: &UserId, name: Option<String>) -> StoreResult<()> {
        let id = id.clone();
        self.run(move |conn| {
            conn.execute(
                "UPDATE users SET name = ?2 WHERE id = ?1",
                params![id, name],
            )?;
            Ok(())
        })
        .await
    }

    /// Replaces the password hash and ends every session of the user but `keep` (the one that
    /// changed it), in one transaction: a stolen session cannot outlive the change. Returns
    /// how many sessions were ended.
    pub async fn change_password(
        &self,
        id: &UserId,
        password_hash: String,
        keep: Vec<u8>,
    ) -> StoreResult<usize> {
        let id = id.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                params![id, password_hash],
            )?;
            let ended = super::sessions::delete_others(&tx, &id, &keep)?;
            tx.commit()?;
            Ok(ended)
        })
        .await
    }

    /// Adds credits to an account (a grant: one ledger row); returns the new balance, or
    /// `None` when there is no such account.
    pub async fn grant_credits(
        &self,
        user_id: &UserId,
        credits: Credits,
        reason: &str,
    ) -> StoreResult<Option<Credits>> {
        let (id, reason) = (user_id.clone(), reason.to_string());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let balance = ledger::apply(
                &tx,
                &id,
                credits.get(),
                EntryKind::Grant,
                &reason,
                None,
                now_ms(),
            )?;
            tx.commit()?;
            Ok(balance)
        })
        .await
    }
}
