//! Billing tables: Stripe customers, purchases, and the Stripe events already handled.
//!
//! The domain (`domain::billing`) decides what a payment or refund means; the operations on
//! [`Store`] here apply that decision, each in one transaction. A webhook's effect is always
//! applied in the transaction that claims its event id, so a redelivered event changes
//! nothing, and no credit moves without its ledger row.

use super::sql::{Connection, OptionalExtension, Row, Transaction, params};

use super::ledger::{self, EntryKind};
use super::users::User;
use super::{Store, StoreResult, write_tx};
use crate::domain::ids::{Credits, PurchaseId, UserId};

/// A paid Checkout Session and what refunds took back from it.
#[derive(Clone, Debug)]
pub struct Purchase {
    pub id: PurchaseId,
    pub user_id: UserId,
    pub plan: String,
    pub credits: Credits,
    pub amount_cents: i64,
    pub currency: String,
    pub checkout_session_id: String,
    pub payment_intent_id: Option<String>,
    pub refunded_cents: i64,
    pub credits_removed: Credits,
    pub credits_unrecovered: Credits,
    pub created_at: i64,
}

const COLUMNS: &str = "id, user_id, plan, credits, amount_cents, currency, checkout_session_id,
     payment_intent_id, refunded_cents, credits_removed, credits_unrecovered, created_at";

fn from_row(r: &Row) -> StoreResult<Purchase> {
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
fn customer_of(conn: &Connection, user_id: &UserId) -> StoreResult<Option<String>> {
    conn.query_row(
        "SELECT stripe_customer_id FROM billing_customers WHERE user_id = ?1",
        [user_id],
        |r| r.get(0),
    )
    .optional()
}

/// Remembers the user's customer; when one is already stored (a concurrent first purchase),
/// that one wins. Returns the stored id.
fn save_customer(
    conn: &Connection,
    user_id: &UserId,
    customer_id: &str,
    now: i64,
) -> StoreResult<String> {
    conn.execute(
        "INSERT INTO billing_customers (user_id, stripe_customer_id, created_at)
         VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![user_id, customer_id, now],
    )?;
    Ok(customer_of(conn, user_id)?.unwrap_or_else(|| customer_id.to_string()))
}

/// The user's purchases, newest first.
fn purchases(conn: &Connection, user_id: &UserId, limit: u32) -> StoreResult<Vec<Purchase>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM purchases WHERE user_id = ?1 ORDER BY created_at DESC, id DESC
         LIMIT ?2"
    ))?;
    let rows = stmt.query_map(params![user_id, limit], from_row)?;
    rows.collect::<Result<_, _>>()
}

/// The plan of the newest purchase that refunds have not taken back entirely.
fn current_plan(conn: &Connection, user_id: &UserId) -> StoreResult<Option<String>> {
    conn.query_row(
        "SELECT plan FROM purchases
             WHERE user_id = ?1 AND credits_removed + credits_unrecovered < credits
             ORDER BY created_at DESC, id DESC LIMIT 1",
        [user_id],
        |r| r.get(0),
    )
    .optional()
}

/// Why the account needs an operator's attention, if it does.
fn flag_of(conn: &Connection, user_id: &UserId) -> StoreResult<Option<String>> {
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
fn claim_event(tx: &Transaction<'_>, id: &str, kind: &str, now: i64) -> StoreResult<bool> {
    let inserted = tx.execute(
        "INSERT INTO stripe_events (id, type, outcome, received_at)
         VALUES (?1, ?2, 'received', ?3) ON CONFLICT DO NOTHING",
        params![id, kind, now],
    )?;
    Ok(inserted == 1)
}

/// Records what handling the event did.
fn set_event_outcome(tx: &Transaction<'_>, id: &str, outcome: &str) -> StoreResult<()> {
    tx.execute(
        "UPDATE stripe_events SET outcome = ?2 WHERE id = ?1",
        params![id, outcome],
    )?;
    Ok(())
}

/// Inserts a purchase. `false` when its Checkout Session was already recorded (the session
/// granted its credits before, e.g. through the other of its two success events).
fn insert_purchase(tx: &Transaction<'_>, p: &NewPurchase) -> StoreResult<bool> {
    let inserted = tx.execute(
        "INSERT INTO purchases (id, user_id, plan, credits, amount_cents, currency,
             checkout_session_id, payment_intent_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
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
fn purchase_by_session(
    conn: &Connection,
    user_id: &UserId,
    session_id: &str,
) -> StoreResult<Option<Purchase>> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM purchases WHERE checkout_session_id = ?1 AND user_id = ?2"),
        params![session_id, user_id],
        from_row,
    )
    .optional()
}

/// The purchase paid by this PaymentIntent (how a refunded charge finds its credits).
fn purchase_by_payment_intent(
    tx: &Transaction<'_>,
    payment_intent: &str,
) -> StoreResult<Option<Purchase>> {
    tx.query_row(
        &format!("SELECT {COLUMNS} FROM purchases WHERE payment_intent_id = ?1"),
        [payment_intent],
        from_row,
    )
    .optional()
}

/// Adds a refund to a purchase: the refunded total (Stripe's cumulative figure; events can
/// arrive out of order, so it never goes down) and the credits taken back now or found
/// already spent.
fn record_refund(
    tx: &Transaction<'_>,
    purchase_id: &PurchaseId,
    refunded_cents: i64,
    removed: Credits,
    unrecovered: Credits,
) -> StoreResult<()> {
    tx.execute(
        "UPDATE purchases SET refunded_cents = CASE WHEN refunded_cents > ?2 THEN refunded_cents ELSE ?2 END, credits_removed = credits_removed + ?3,
             credits_unrecovered = credits_unrecovered + ?4
         WHERE id = ?1",
        params![purchase_id, refunded_cents, removed, unrecovered],
    )?;
    Ok(())
}

/// Clears the account's flag.
fn clear_flag(conn: &Connection, user_id: &UserId) -> StoreResult<()> {
    conn.execute(
        "UPDATE users SET billing_flag = NULL WHERE id = ?1",
        [user_id],
    )?;
    Ok(())
}

/// Flags the account for an operator, keeping the first reason and adding later ones.
fn flag_account(tx: &Transaction<'_>, user_id: &UserId, reason: &str) -> StoreResult<()> {
    tx.execute(
        "UPDATE users SET billing_flag = CASE WHEN billing_flag IS NULL THEN ?2
             ELSE billing_flag || '; ' || ?2 END
         WHERE id = ?1",
        params![user_id, reason],
    )?;
    Ok(())
}

/// A purchase to record: what the domain read from a paid Checkout Session.
#[derive(Clone, Debug)]
pub struct NewPurchase {
    pub id: PurchaseId,
    pub user_id: UserId,
    pub plan: String,
    pub credits: Credits,
    pub amount_cents: i64,
    pub currency: String,
    pub checkout_session_id: String,
    pub payment_intent_id: Option<String>,
    pub created_at: i64,
}

/// A refunded charge, as the domain read it from a `charge.refunded` event. How many credits
/// it takes back is the domain's rule (`ChargeRefund::credits_owed`, in
/// `domain::billing::events`); the store applies it to the purchase the charge paid for.
#[derive(Clone, Debug)]
pub struct ChargeRefund {
    pub payment_intent: String,
    /// What the charge was for, in cents.
    pub charged_cents: i64,
    /// What has been refunded of it so far, in cents (Stripe's cumulative figure).
    pub refunded_cents: i64,
}

/// A Stripe event to claim, by its id and type.
#[derive(Clone, Debug)]
pub struct StripeEvent {
    pub id: String,
    pub kind: String,
}

/// What applying a webhook event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventOutcome {
    /// The event id was handled before; nothing changed.
    Duplicate,
    /// Handled now; the text says what happened (also stored with the event).
    Handled(String),
}

/// A user's billing records, read together so they agree with each other.
#[derive(Clone, Debug)]
pub struct BillingRecords {
    pub credits: Credits,
    /// The plan id of the newest purchase not refunded in full.
    pub plan_id: Option<String>,
    /// Newest first.
    pub purchases: Vec<Purchase>,
    /// Newest credit ledger rows first.
    pub history: Vec<ledger::Entry>,
    pub flag: Option<String>,
    pub customer: Option<String>,
}

/// Whom a Stripe customer is for: the one already stored, or the account to create it for.
#[derive(Clone, Debug)]
pub enum CustomerLookup {
    Existing(String),
    ToCreate(User),
    NoAccount,
}

/// How many purchases and ledger rows [`Store::billing_records`] reads.
const RECORDS_SHOWN: u32 = 50;

impl Store {
    /// The user's balance, plan, purchases, ledger history, flag and customer, in one read
    /// transaction. `None`: no such account.
    pub async fn billing_records(&self, user_id: &UserId) -> StoreResult<Option<BillingRecords>> {
        let id = user_id.clone();
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let Some(user) = super::users::get(&tx, &id)? else {
                return Ok(None);
            };
            Ok(Some(BillingRecords {
                credits: user.credits,
                plan_id: current_plan(&tx, &id)?,
                purchases: purchases(&tx, &id, RECORDS_SHOWN)?,
                history: ledger::recent(&tx, &id, RECORDS_SHOWN)?,
                flag: flag_of(&tx, &id)?,
                customer: customer_of(&tx, &id)?,
            }))
        })
        .await
    }

    /// The plan id of the user's newest purchase not refunded in full.
    pub async fn current_plan(&self, user_id: &UserId) -> StoreResult<Option<String>> {
        let id = user_id.clone();
        self.run(move |conn| current_plan(conn, &id)).await
    }

    /// The user's purchase made by this Checkout Session.
    pub async fn purchase_by_session(
        &self,
        user_id: &UserId,
        session_id: &str,
    ) -> StoreResult<Option<Purchase>> {
        let (user, session) = (user_id.clone(), session_id.to_string());
        self.run(move |conn| purchase_by_session(conn, &user, &session))
            .await
    }

    /// Clears the account's billing flag; returns what it said.
    pub async fn clear_flag(&self, user_id: &UserId) -> StoreResult<Option<String>> {
        let id = user_id.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let flag = flag_of(&tx, &id)?;
            clear_flag(&tx, &id)?;
            tx.commit()?;
            Ok(flag)
        })
        .await
    }

    /// The user's Stripe customer id, if one was created.
    pub async fn stripe_customer(&self, user_id: &UserId) -> StoreResult<Option<String>> {
        let id = user_id.clone();
        self.run(move |conn| customer_of(conn, &id)).await
    }

    /// The user's Stripe customer, or the account to create one for.
    pub async fn find_customer(&self, user_id: &UserId) -> StoreResult<CustomerLookup> {
        let id = user_id.clone();
        self.run(move |conn| {
            if let Some(customer) = customer_of(conn, &id)? {
                return Ok(CustomerLookup::Existing(customer));
            }
            Ok(match super::users::get(conn, &id)? {
                Some(user) => CustomerLookup::ToCreate(user),
                None => CustomerLookup::NoAccount,
            })
        })
        .await
    }

    /// Remembers the user's Stripe customer; when one is already stored (a concurrent first
    /// purchase), that one wins. Returns the stored id.
    pub async fn save_customer(
        &self,
        user_id: &UserId,
        customer_id: &str,
        now: i64,
    ) -> StoreResult<String> {
        let (id, customer) = (user_id.clone(), customer_id.to_string());
        self.run(move |conn| save_customer(conn, &id, &customer, now))
            .await
    }

    /// Claims an event that changes nothing, recording `note` as its outcome.
    pub async fn claim_event(
        &self,
        event: StripeEvent,
        note: String,
        now: i64,
    ) -> StoreResult<EventOutcome> {
        self.run(move |conn| handle_event(conn, &event, now, |_| Ok(note)))
            .await
    }

    /// Claims the event and flags the account for an operator (a paid session we cannot
    /// price).
    pub async fn flag_account(
        &self,
        event: StripeEvent,
        user_id: UserId,
        reason: String,
        now: i64,
    ) -> StoreResult<EventOutcome> {
        self.run(move |conn| {
            handle_event(conn, &event, now, |tx| {
                if !account_exists(tx, &user_id)? {
                    return Ok(no_account(&user_id));
                }
                flag_account(tx, &user_id, &reason)?;
                Ok(format!("flagged: {reason}"))
            })
        })
        .await
    }

    /// Claims the event, records the purchase and grants its credits through the ledger,
    /// once per Checkout Session (a session has two success events).
    pub async fn credit_purchase(
        &self,
        event: StripeEvent,
        purchase: NewPurchase,
        ledger_reason: String,
        now: i64,
    ) -> StoreResult<EventOutcome> {
        self.run(move |conn| {
            handle_event(conn, &event, now, |tx| {
                if !account_exists(tx, &purchase.user_id)? {
                    return Ok(no_account(&purchase.user_id));
                }
                if !insert_purchase(tx, &purchase)? {
                    return Ok(format!(
                        "already granted: session {} was credited before",
                        purchase.checkout_session_id
                    ));
                }
                let balance = ledger::apply(
                    tx,
                    &purchase.user_id,
                    purchase.credits.get(),
                    EntryKind::Purchase,
                    &ledger_reason,
                    None,
                    now,
                )?;
                Ok(format!(
                    "granted {} credits to {} (balance {})",
                    purchase.credits,
                    purchase.user_id,
                    balance.unwrap_or_default()
                ))
            })
        })
        .await
    }

    /// Claims the event and takes back the refunded share of the purchase the charge paid
    /// for, as far as the balance allows; credits already spent are recorded on the purchase
    /// and the account is flagged for an operator.
    pub async fn refund_purchase(
        &self,
        event: StripeEvent,
        refund: ChargeRefund,
        now: i64,
    ) -> StoreResult<EventOutcome> {
        self.run(move |conn| handle_event(conn, &event, now, |tx| take_back(tx, &refund, now)))
            .await
    }
}

/// Claims `event` and applies `effect` in one write transaction, recording the effect's
/// description as the event's outcome; a claimed id changes nothing.
///
/// Our answer tells Stripe to stop retrying, so this commit must survive a power loss, not
/// only a crash: it is made with `synchronous = FULL` (the pool's connections otherwise run
/// WAL at NORMAL, which may lose the newest commits when the machine loses power).
fn handle_event(
    conn: &mut Connection,
    event: &StripeEvent,
    now: i64,
    effect: impl FnOnce(&Transaction<'_>) -> StoreResult<String>,
) -> StoreResult<EventOutcome> {
    conn.set_full_sync(true)?;
    let handled = (|| {
        let tx = write_tx(conn)?;
        if !claim_event(&tx, &event.id, &event.kind, now)? {
            return Ok(EventOutcome::Duplicate);
        }
        let outcome = effect(&tx)?;
        set_event_outcome(&tx, &event.id, &outcome)?;
        tx.commit()?;
        Ok(EventOutcome::Handled(outcome))
    })();
    conn.set_full_sync(false)?;
    handled
}

fn account_exists(tx: &Transaction<'_>, user_id: &UserId) -> StoreResult<bool> {
    Ok(super::users::get(tx, user_id)?.is_some())
}

/// The outcome of a paid session for an account we do not have.
fn no_account(user_id: &UserId) -> String {
    tracing::error!(user = %user_id, "paid Checkout Session for an unknown user");
    format!("ignored: no account {user_id}")
}

/// The refund part of [`Store::refund_purchase`], inside its transaction.
fn take_back(tx: &Transaction<'_>, refund: &ChargeRefund, now: i64) -> StoreResult<String> {
    let pi = &refund.payment_intent;
    let Some(purchase) = purchase_by_payment_intent(tx, pi)? else {
        return Ok(format!("ignored: no purchase was paid by {pi}"));
    };
    let owed = refund.credits_owed(&purchase);
    if owed == Credits::ZERO {
        let none = Credits::ZERO;
        record_refund(tx, &purchase.id, refund.refunded_cents, none, none)?;
        return Ok("refund recorded; no more credits to take back".into());
    }
    let balance = super::users::get(tx, &purchase.user_id)?.map_or(Credits::ZERO, |u| u.credits);
    let taken = owed.min(balance);
    // `taken` is at most `owed`.
    let unrecovered = owed.checked_sub(taken).unwrap_or(Credits::ZERO);
    if taken > Credits::ZERO {
        let reason = format!("Refund of {} purchase: {taken} credits", purchase.plan);
        ledger::apply(
            tx,
            &purchase.user_id,
            -taken.get(),
            EntryKind::PurchaseRefund,
            &reason,
            None,
            now,
        )?;
    }
    record_refund(tx, &purchase.id, refund.refunded_cents, taken, unrecovered)?;
    if unrecovered > Credits::ZERO {
        let reason = format!(
            "refund of purchase {} took back {owed} credits but {unrecovered} had already been spent",
            purchase.id
        );
        tracing::warn!(user = %purchase.user_id, %reason);
        flag_account(tx, &purchase.user_id, &reason)?;
        return Ok(format!(
            "took back {taken} credits; {unrecovered} already spent, account flagged"
        ));
    }
    Ok(format!("took back {taken} credits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_is_claimed_once_and_the_connection_is_left_as_the_pool_set_it() {
        let dir = tempfile::tempdir().unwrap();
        // One connection, so the check below reads the one the event was applied on.
        let store = Store::open(&dir.path().join("t.db"), 1).unwrap();
        let event = StripeEvent {
            id: "evt_1".into(),
            kind: "invoice.paid".into(),
        };
        let first = store
            .claim_event(event.clone(), "ignored".into(), 1)
            .await
            .unwrap();
        assert_eq!(first, EventOutcome::Handled("ignored".into()));
        let again = store
            .claim_event(event, "ignored again".into(), 2)
            .await
            .unwrap();
        assert_eq!(again, EventOutcome::Duplicate);
        let sync: i64 = store
            .run(|conn| conn.query_row("PRAGMA synchronous", params![], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(sync, 1, "NORMAL again after the FULL commit");
    }

    fn event(id: &str, kind: &str) -> StripeEvent {
        StripeEvent {
            id: id.into(),
            kind: kind.into(),
        }
    }

    /// The user's balance, flag, ledger rows, and the purchase's refund columns.
    async fn state_of(store: &Store) -> (i64, Option<String>, i64, (i64, i64, i64)) {
        store
            .run(|conn| {
                let (credits, flag) = conn.query_row(
                    "SELECT credits, billing_flag FROM users WHERE id = 'u'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )?;
                let rows =
                    conn.query_row("SELECT COUNT(*) FROM credit_ledger", params![], |r| {
                        r.get(0)
                    })?;
                let refund = conn.query_row(
                    "SELECT refunded_cents, credits_removed, credits_unrecovered FROM purchases",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )?;
                Ok((credits, flag, rows, refund))
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_session_credits_once_and_its_refund_takes_back_what_is_left_and_flags_the_rest() {
        let (_dir, store) = crate::store::fixtures::store_with_user(0).await;
        let purchase = |id: &str| NewPurchase {
            id: id.into(),
            user_id: "u".into(),
            plan: "starter".into(),
            credits: Credits::new(100).unwrap(),
            amount_cents: 1000,
            currency: "usd".into(),
            checkout_session_id: "cs_1".into(),
            payment_intent_id: Some("pi_1".into()),
            created_at: 1,
        };
        let completed = event("evt_a", "checkout.session.completed");
        let granted = store
            .credit_purchase(completed.clone(), purchase("pur_a"), "Bought".into(), 1)
            .await
            .unwrap();
        assert_eq!(
            granted,
            EventOutcome::Handled("granted 100 credits to u (balance 100)".into())
        );
        assert_eq!(
            store
                .credit_purchase(completed, purchase("pur_x"), "Bought".into(), 2)
                .await
                .unwrap(),
            EventOutcome::Duplicate
        );
        // The session's other success event finds it credited.
        let other = store
            .credit_purchase(
                event("evt_b", "checkout.session.async_payment_succeeded"),
                purchase("pur_b"),
                "Bought".into(),
                3,
            )
            .await
            .unwrap();
        assert_eq!(
            other,
            EventOutcome::Handled("already granted: session cs_1 was credited before".into())
        );
        assert_eq!(state_of(&store).await, (100, None, 1, (0, 0, 0)));

        // 70 credits are spent; then the whole charge is refunded.
        store
            .run(|conn| {
                conn.execute("UPDATE users SET credits = 30 WHERE id = 'u'", [])?;
                Ok(())
            })
            .await
            .unwrap();
        let refund = ChargeRefund {
            payment_intent: "pi_1".into(),
            charged_cents: 1000,
            refunded_cents: 1000,
        };
        let refunded = event("evt_c", "charge.refunded");
        assert_eq!(
            store
                .refund_purchase(refunded.clone(), refund.clone(), 4)
                .await
                .unwrap(),
            EventOutcome::Handled("took back 30 credits; 70 already spent, account flagged".into())
        );
        let after = state_of(&store).await;
        assert_eq!((after.0, after.2, after.3), (0, 2, (1000, 30, 70)));
        assert!(
            after
                .1
                .as_deref()
                .unwrap()
                .contains("70 had already been spent")
        );
        assert_eq!(
            store.refund_purchase(refunded, refund, 5).await.unwrap(),
            EventOutcome::Duplicate
        );
        assert_eq!(state_of(&store).await, after, "a replay changes nothing");
    }
}
