//! The `users` table.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::StoreResult;

/// An account as the rest of the service sees it (never the password hash).
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub credits: i64,
    pub created_at: i64,
    pub has_password: bool,
}

/// What `insert` needs; the caller grants the free credits through the ledger.
pub struct NewUser<'a> {
    pub id: &'a str,
    pub email: &'a str,
    pub email_normalized: &'a str,
    pub name: Option<&'a str>,
    pub password_hash: Option<&'a str>,
    pub created_at: i64,
}

const COLUMNS: &str = "id, email, name, credits, created_at, password_hash IS NOT NULL";

fn from_row(row: &Row<'_>) -> rusqlite::Result<User> {
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
pub fn insert(conn: &Connection, user: &NewUser<'_>) -> StoreResult<bool> {
    let result = conn.execute(
        "INSERT INTO users (id, email, email_normalized, name, password_hash, credits, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6)",
        params![
            user.id,
            user.email,
            user.email_normalized,
            user.name,
            user.password_hash,
            user.created_at
        ],
    );
    match result {
        Ok(_) => Ok(true),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

pub fn get(conn: &Connection, id: &str) -> StoreResult<Option<User>> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

/// The user with this normalized email and their password hash, if they have one.
pub fn find_by_email(
    conn: &Connection,
    email_normalized: &str,
) -> StoreResult<Option<(User, Option<String>)>> {
    let sql = format!("SELECT {COLUMNS}, password_hash FROM users WHERE email_normalized = ?1");
    Ok(conn
        .query_row(&sql, [email_normalized], |row| {
            Ok((from_row(row)?, row.get(6)?))
        })
        .optional()?)
}
