//! Billing tables: Stripe customers, purchases, and the Stripe events already handled.

use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};

use super::StoreResult;

/// A paid Checkout Session and what refunds took back from it.
#[derive(Clone, Debug)]
pub struct Purchase {
    pub id: String,
    pub user_id: String,
    pub plan: String,
    pub credits: i64,
    pub amount_cents: i64,
    pub currency: String,
    pub checkout_session_id: String,
    pub payment_intent_id: Option<String>,
    pub refunded_cents: i64,
    pub credits_removed: i64,
    pub credits_unrecovered: i64,
    pub created_at: i64,
}

const COLUMNS: &str = "id, user_id, plan, credits, amount_cents, currency, checkout_session_id,
     payment_intent_id, refunded_cents, credits_removed, credits_unrecovered, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Purchase> {
    Ok(Purchase {
        id: r.get(0)?,
        user_id: r.get(1)?,
        plan: r.get(2)?,
        credits: r.get(3)?,
        amount_cents: r.get(4)?,
        currency: r.get(5)?,
        checkout_session_id: r.get(6)?,
        payment_intent_id: r.get(7)?,
        refunded_cents: r.get(8)?,
        credits_removed: r.get(9)?,
        credits_unrecovered: r.get(10)?,
        created_at: r.get(11)?,
    })
}

/// The user's Stripe customer id, if they have bought anything (or started to).
pub fn customer_of(conn: &Connection, user_id: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT stripe_customer_id FROM billing_customers WHERE user_id = ?1",
            [user_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Remembers the user's customer; when one is already stored (a concurrent first purchase),
/// that one wins. Returns the stored id.
pub fn save_customer(
    conn: &Connection,
    user_id: &str,
    customer_id: &str,
    now: i64,
) -> StoreResult<String> {
    conn.execute(
        "INSERT OR IGNORE INTO billing_customers (user_id, stripe_customer_id, created_at)
         VALUES (?1, ?2, ?3)",
        params![user_id, customer_id, now],
    )?;
    Ok(customer_of(conn, user_id)?.unwrap_or_else(|| customer_id.to_string()))
}

/// The user's purchases, newest first.
pub fn purchases(conn: &Connection, user_id: &str, limit: u32) -> StoreResult<Vec<Purchase>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM purchases WHERE user_id = ?1 ORDER BY created_at DESC, id DESC
         LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![user_id, limit], from_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The plan of the newest purchase that refunds have not taken back entirely.
pub fn current_plan(conn: &Connection, user_id: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT plan FROM purchases
             WHERE user_id = ?1 AND credits_removed + credits_unrecovered < credits
             ORDER BY created_at DESC, id DESC LIMIT 1",
            [user_id],
            |r| r.get(0),
        )
        .optional()?)
}

/// Why the account needs an operator's attention, if it does.
pub fn flag_of(conn: &Connection, user_id: &str) -> StoreResult<Option<String>> {
    Ok(conn
        .query_row(
            "SELECT billing_flag FROM users WHERE id = ?1",
            [user_id],
            |r| r.get(0),
        )
        .optional()?
        .flatten())
}

/// Claims a Stripe event id for this transaction. `false`: it was handled before, and the
/// caller must change nothing.
pub fn claim_event(tx: &Transaction<'_>, id: &str, kind: &str, now: i64) -> StoreResult<bool> {
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO stripe_events (id, type, outcome, received_at)
         VALUES (?1, ?2, 'received', ?3)",
        params![id, kind, now],
    )?;
    Ok(inserted == 1)
}

/// Records what handling the event did.
pub fn set_event_outcome(tx: &Transaction<'_>, id: &str, outcome: &str) -> StoreResult<()> {
    tx.execute(
        "UPDATE stripe_events SET outcome = ?2 WHERE id = ?1",
        params![id, outcome],
    )?;
    Ok(())
}

/// Inserts a purchase. `false` when its Checkout Session was already recorded (the session
/// granted its credits before, e.g. through the other of its two success events).
pub fn insert_purchase(tx: &Transaction<'_>, p: &Purchase) -> StoreResult<bool> {
    let inserted = tx.execute(
        "INSERT OR IGNORE INTO purchases (id, user_id, plan, credits, amount_cents, currency,
             checkout_session_id, payment_intent_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            p.id,
            p.user_id,
            p.plan,
            p.credits,
            p.amount_cents,
            p.currency,
            p.checkout_session_id,
            p.payment_intent_id,
            p.created_at
        ],
    )?;
    Ok(inserted == 1)
}

/// The user's purchase made by this Checkout Session.
pub fn purchase_by_session(
    conn: &Connection,
    user_id: &str,
    session_id: &str,
) -> StoreResult<Option<Purchase>> {
    Ok(conn
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM purchases WHERE checkout_session_id = ?1 AND user_id = ?2"
            ),
            params![session_id, user_id],
            from_row,
        )
        .optional()?)
}

/// The purchase paid by this PaymentIntent (how a refunded charge finds its credits).
pub fn purchase_by_payment_intent(
    tx: &Transaction<'_>,
    payment_intent: &str,
) -> StoreResult<Option<Purchase>> {
    Ok(tx
        .query_row(
            &format!("SELECT {COLUMNS} FROM purchases WHERE payment_intent_id = ?1"),
            [payment_intent],
            from_row,
        )
        .optional()?)
}

/// Adds a refund to a purchase: the refunded total (Stripe's cumulative figure; events can
/// arrive out of order, so it never goes down) and the credits taken back now or found
/// already spent.
pub fn record_refund(
    tx: &Transaction<'_>,
    purchase_id: &str,
    refunded_cents: i64,
    removed: i64,
    unrecovered: i64,
) -> StoreResult<()> {
    tx.execute(
        "UPDATE purchases SET refunded_cents = MAX(refunded_cents, ?2), credits_removed = credits_removed + ?3,
             credits_unrecovered = credits_unrecovered + ?4
         WHERE id = ?1",
        params![purchase_id, refunded_cents, removed, unrecovered],
    )?;
    Ok(())
}

/// Clears the account's flag.
pub fn clear_flag(conn: &Connection, user_id: &str) -> StoreResult<()> {
    conn.execute(
        "UPDATE users SET billing_flag = NULL WHERE id = ?1",
        [user_id],
    )?;
    Ok(())
}

/// Flags the account for an operator, keeping the first reason and adding later ones.
pub fn flag_account(tx: &Transaction<'_>, user_id: &str, reason: &str) -> StoreResult<()> {
    tx.execute(
        "UPDATE users SET billing_flag = CASE WHEN billing_flag IS NULL THEN ?2
             ELSE billing_flag || '; ' || ?2 END
         WHERE id = ?1",
        params![user_id, reason],
    )?;
    Ok(())
}
