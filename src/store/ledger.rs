//! The credit ledger and the cached balance in `users.credits`.
//!
//! A balance only ever changes through `apply` (called by the named operations that move credits), which writes the new balance and its ledger
//! row in the caller's transaction, and refuses a change that would make it negative. The
//! `CHECK (credits >= 0)` constraints back this up in the schema.

use super::sql::{OptionalExtension, Transaction, params};

use super::StoreResult;
use crate::domain::ids::{Credits, RunId, SweepId, UserId};

/// Why the balance changed; stored as text in `credit_ledger.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    Grant,
    Reserve,
    Settle,
    Refund,
    Purchase,
    PurchaseRefund,
}

impl EntryKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Grant => "grant",
            EntryKind::Reserve => "reserve",
            EntryKind::Settle => "settle",
            EntryKind::Refund => "refund",
            EntryKind::Purchase => "purchase",
            EntryKind::PurchaseRefund => "purchase_refund",
        }
    }

    const ALL: [EntryKind; 6] = [
        EntryKind::Grant,
        EntryKind::Reserve,
        EntryKind::Settle,
        EntryKind::Refund,
        EntryKind::Purchase,
        EntryKind::PurchaseRefund,
    ];
}

/// A kind this build does not know is a read error, never a guess.
impl super::sql::FromSql for EntryKind {
    fn column_result(value: &super::sql::Value) -> StoreResult<Self> {
        let text = value.as_str()?;
        EntryKind::ALL
            .into_iter()
            .find(|k| k.as_str() == text)
            .ok_or_else(|| super::StoreError::Decode(format!("ledger kind {text:?}")))
    }
}

/// One ledger row, as shown on the billing page and in the API.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: i64,
    pub delta: i64,
    pub balance_after: Credits,
    pub kind: EntryKind,
    pub reason: String,
    pub run_id: Option<RunId>,
    pub created_at: i64,
}

/// Adds `delta` (may be negative) to the user's balance and records it. Returns the new
/// balance, or `None` (and changes nothing) when the user does not exist or the balance would
/// go below zero.
pub(super) fn apply(
    tx: &Transaction<'_>,
    user_id: &UserId,
    delta: i64,
    kind: EntryKind,
    reason: &str,
    run_id: Option<&RunId>,
    now: i64,
) -> StoreResult<Option<Credits>> {
    record(tx, user_id, delta, kind, reason, (run_id, None), now)
}

/// As [`apply`], for a sweep's reservation and settlements (the row names the sweep).
pub(super) fn apply_for_sweep(
    tx: &Transaction<'_>,
    user_id: &UserId,
    delta: i64,
    kind: EntryKind,
    reason: &str,
    sweep_id: &SweepId,
    now: i64,
) -> StoreResult<Option<Credits>> {
    record(
        tx,
        user_id,
        delta,
        kind,
        reason,
        (None, Some(sweep_id)),
        now,
    )
}

fn record(
    tx: &Transaction<'_>,
    user_id: &UserId,
    delta: i64,
    kind: EntryKind,
    reason: &str,
    (run_id, sweep_id): (Option<&RunId>, Option<&SweepId>),
    now: i64,
) -> StoreResult<Option<Credits>> {
    let balance: Option<Credits> = tx
        .query_row(
            "UPDATE users SET credits = credits + ?2 WHERE id = ?1 AND credits + ?2 >= 0
             RETURNING credits",
            params![user_id, delta],
            |r| r.get(0),
        )
        .optional()?;
    let Some(balance) = balance else {
        return Ok(None);
    };
    tx.execute(
        "INSERT INTO credit_ledger (user_id, delta, balance_after, kind, reason, run_id, sweep_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![user_id, delta, balance, kind.as_str(), reason, run_id, sweep_id, now],
    )?;
    Ok(Some(balance))
}

/// The user's newest ledger rows, newest first.
pub(super) fn recent(
    conn: &super::sql::Connection,
    user_id: &UserId,
    limit: u32,
) -> StoreResult<Vec<Entry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, delta, balance_after, kind, reason, run_id, created_at FROM credit_ledger
         WHERE user_id = ?1 ORDER BY id DESC LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![user_id, limit], |r| {
        Ok(Entry {
            id: r.get(0)?,
            delta: r.get(1)?,
            balance_after: r.get(2)?,
            kind: r.get(3)?,
            reason: r.get(4)?,
            run_id: r.get(5)?,
            created_at: r.get(6)?,
        })
    })?;
    rows.collect::<Result<_, _>>()
}
