//! What a verified Stripe webhook event does to our data, in one transaction that also
//! records the event id: a redelivered event (Stripe retries until it gets a 2xx, and may
//! deliver the same event more than once) finds its id taken and changes nothing.

use std::collections::HashMap;

use rusqlite::{Connection, Transaction};
use serde::Deserialize;

use super::plans::Plans;
use crate::store::billing::{self as billing_store, Purchase};
use crate::store::ledger::{self, EntryKind};
use crate::store::{StoreResult, write_tx};

/// The envelope every Stripe event has.
#[derive(Debug, Deserialize)]
pub struct Event {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub data: EventData,
}

#[derive(Debug, Deserialize)]
pub struct EventData {
    pub object: serde_json::Value,
}

/// The fields of a Checkout Session we read.
#[derive(Debug, Deserialize)]
struct CheckoutSession {
    id: String,
    client_reference_id: Option<String>,
    #[serde(default)]
    metadata: HashMap<String, String>,
    payment_status: Option<String>,
    payment_intent: Option<String>,
    amount_total: Option<i64>,
    currency: Option<String>,
}

/// The fields of a Charge we read.
#[derive(Debug, Deserialize)]
struct Charge {
    id: String,
    payment_intent: Option<String>,
    amount: i64,
    amount_refunded: i64,
}

/// What handling an event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The event id was handled before; nothing changed.
    Duplicate,
    /// Handled now; the text says what happened (also stored with the event).
    Handled(String),
}

/// Applies `event` once. `now` is in milliseconds.
///
/// Our answer tells Stripe to stop retrying, so this commit must survive a power loss, not
/// only a crash: it is made with `synchronous = FULL` (the pool's connections otherwise run
/// WAL at NORMAL, which may lose the newest commits when the machine loses power).
pub fn apply(
    conn: &mut Connection,
    event: &Event,
    plans: &Plans,
    now: i64,
) -> StoreResult<Outcome> {
    conn.pragma_update(None, "synchronous", "FULL")?;
    let applied = apply_in_tx(conn, event, plans, now);
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    applied
}

fn apply_in_tx(
    conn: &mut Connection,
    event: &Event,
    plans: &Plans,
    now: i64,
) -> StoreResult<Outcome> {
    let tx = write_tx(conn)?;
    if !billing_store::claim_event(&tx, &event.id, &event.kind, now)? {
        return Ok(Outcome::Duplicate);
    }
    let outcome = match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            match serde_json::from_value::<CheckoutSession>(event.data.object.clone()) {
                Ok(session) => checkout_paid(&tx, &session, plans, now)?,
                Err(e) => unreadable(event, "Checkout Session", &e),
            }
        }
        "charge.refunded" => match serde_json::from_value::<Charge>(event.data.object.clone()) {
            Ok(charge) => charge_refunded(&tx, &charge, now)?,
            Err(e) => unreadable(event, "Charge", &e),
        },
        _ => "ignored: not an event type we act on".to_string(),
    };
    billing_store::set_event_outcome(&tx, &event.id, &outcome)?;
    tx.commit()?;
    Ok(Outcome::Handled(outcome))
}

/// A signed event whose object we cannot read: recorded (retrying cannot fix it) and logged
/// loudly, since it may be a payment we did not credit.
fn unreadable(event: &Event, what: &str, e: &serde_json::Error) -> String {
    tracing::error!(event = %event.id, kind = %event.kind, error = %e, "unreadable Stripe event");
    format!("ignored: not a {what} ({e})")
}

/// A paid session grants its plan's credits, once per session whichever of its success
/// events (`completed` for cards, `async_payment_succeeded` for bank debits) says so.
fn checkout_paid(
    tx: &Transaction<'_>,
    session: &CheckoutSession,
    plans: &Plans,
    now: i64,
) -> StoreResult<String> {
    if session.payment_status.as_deref() != Some("paid") {
        return Ok(format!(
            "waiting: payment status is {:?}; credits follow when the payment succeeds",
            session.payment_status.as_deref().unwrap_or("unknown")
        ));
    }
    let Some(user_id) = session
        .metadata
        .get("user_id")
        .or(session.client_reference_id.as_ref())
    else {
        tracing::error!(session = %session.id, "paid Checkout Session names no user");
        return Ok("ignored: the session names no user".into());
    };
    if crate::store::users::get(tx, user_id)?.is_none() {
        tracing::error!(session = %session.id, user = %user_id, "paid Checkout Session for an unknown user");
        return Ok(format!("ignored: no account {user_id}"));
    }
    let plan_id = session.metadata.get("plan").map_or("", String::as_str);
    // The credits promised at checkout (we put them in the metadata) win over the plan's
    // current configuration, which may have changed since.
    let credits = session
        .metadata
        .get("credits")
        .and_then(|c| c.parse::<i64>().ok())
        .filter(|c| *c > 0)
        .or_else(|| plans.get(plan_id).map(|p| p.credits).filter(|c| *c > 0));
    let Some(credits) = credits else {
        let reason = format!(
            "paid Checkout Session {} for unknown plan {plan_id:?}: grant the credits by hand",
            session.id
        );
        tracing::error!(user = %user_id, %reason);
        billing_store::flag_account(tx, user_id, &reason)?;
        return Ok(format!("flagged: {reason}"));
    };
    let plan_name = match plans.get(plan_id) {
        Some(p) => p.name.as_str(),
        None if plan_id.is_empty() => "credits",
        None => plan_id,
    };
    let purchase = Purchase {
        id: crate::domain::new_id("pur"),
        user_id: user_id.clone(),
        plan: plan_id.to_string(),
        credits,
        amount_cents: session.amount_total.unwrap_or(0),
        currency: session.currency.clone().unwrap_or_else(|| "usd".into()),
        checkout_session_id: session.id.clone(),
        payment_intent_id: session.payment_intent.clone(),
        refunded_cents: 0,
        credits_removed: 0,
        credits_unrecovered: 0,
        created_at: now,
    };
    if !billing_store::insert_purchase(tx, &purchase)? {
        return Ok(format!(
            "already granted: session {} was credited before",
            session.id
        ));
    }
    let reason = format!("Bought {plan_name}: {credits} credits");
    let balance = ledger::apply(
        tx,
        user_id,
        credits,
        EntryKind::Purchase,
        &reason,
        None,
        now,
    )?;
    Ok(format!(
        "granted {credits} credits to {user_id} (balance {})",
        balance.unwrap_or_default()
    ))
}

/// A refund takes back the refunded share of the purchase's credits, as far as the balance
/// allows; what was already spent is recorded and the account flagged for an operator.
/// `amount_refunded` is cumulative, so partial refunds (one event each) add up correctly.
fn charge_refunded(tx: &Transaction<'_>, charge: &Charge, now: i64) -> StoreResult<String> {
    let Some(pi) = &charge.payment_intent else {
        return Ok(format!(
            "ignored: charge {} has no payment intent",
            charge.id
        ));
    };
    let Some(purchase) = billing_store::purchase_by_payment_intent(tx, pi)? else {
        return Ok(format!("ignored: no purchase was paid by {pi}"));
    };
    let share = if charge.amount <= 0 {
        0
    } else {
        let r = i128::from(purchase.credits) * i128::from(charge.amount_refunded.max(0))
            / i128::from(charge.amount);
        r.min(i128::from(purchase.credits)) as i64
    };
    let owed = share - purchase.credits_removed - purchase.credits_unrecovered;
    if owed <= 0 {
        billing_store::record_refund(tx, &purchase.id, charge.amount_refunded, 0, 0)?;
        return Ok("refund recorded; no more credits to take back".into());
    }
    let balance = crate::store::users::get(tx, &purchase.user_id)?.map_or(0, |u| u.credits);
    let taken = owed.min(balance);
    let unrecovered = owed - taken;
    if taken > 0 {
        let reason = format!("Refund of {} purchase: {taken} credits", purchase.plan);
        ledger::apply(
            tx,
            &purchase.user_id,
            -taken,
            EntryKind::PurchaseRefund,
            &reason,
            None,
            now,
        )?;
    }
    billing_store::record_refund(tx, &purchase.id, charge.amount_refunded, taken, unrecovered)?;
    if unrecovered > 0 {
        let reason = format!(
            "refund of purchase {} took back {owed} credits but {unrecovered} had already been spent",
            purchase.id
        );
        tracing::warn!(user = %purchase.user_id, %reason);
        billing_store::flag_account(tx, &purchase.user_id, &reason)?;
        return Ok(format!(
            "took back {taken} credits; {unrecovered} already spent, account flagged"
        ));
    }
    Ok(format!("took back {taken} credits"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_applied_once_and_the_connection_is_left_as_the_pool_set_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Store::open(&dir.path().join("t.db"), 1).unwrap();
        let mut conn = db.conn().unwrap();
        let event: Event = serde_json::from_value(serde_json::json!({
            "id": "evt_1", "type": "invoice.paid", "data": { "object": {} }
        }))
        .unwrap();
        let plans = Plans::defaults(25);
        let first = apply(&mut conn, &event, &plans, 1).unwrap();
        assert!(matches!(first, Outcome::Handled(ref o) if o.starts_with("ignored")));
        assert_eq!(
            apply(&mut conn, &event, &plans, 2).unwrap(),
            Outcome::Duplicate
        );
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 1, "NORMAL again after the FULL commit");
    }
}
