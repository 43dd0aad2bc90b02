//! What a verified Stripe webhook event means for our data. The decision (which event grants
//! what, which plan, how much a refund takes back) is made here; the store applies it in one
//! transaction that also claims the event id: a redelivered event (Stripe retries until it
//! gets a 2xx, and may deliver the same event more than once) finds its id taken and changes
//! nothing.

use std::collections::HashMap;

use serde::Deserialize;

use super::plans::Plans;
use crate::domain::ids::{Credits, PurchaseId, UserId};
use crate::store::billing::{ChargeRefund, NewPurchase, Purchase, StripeEvent};
use crate::store::{Store, StoreResult};

pub use crate::store::billing::EventOutcome as Outcome;

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

/// Applies `event` once. `now` is in milliseconds.
pub async fn apply(store: &Store, event: Event, plans: &Plans, now: i64) -> StoreResult<Outcome> {
    let claim = StripeEvent {
        id: event.id.clone(),
        kind: event.kind.clone(),
    };
    match decide(&event, plans, now) {
        Effect::Nothing(note) => store.claim_event(claim, note, now).await,
        Effect::Flag { user_id, reason } => store.flag_account(claim, user_id, reason, now).await,
        Effect::Credit { purchase, reason } => {
            store.credit_purchase(claim, purchase, reason, now).await
        }
        Effect::Refund(refund) => store.refund_purchase(claim, refund, now).await,
    }
}

/// What an event asks of our data, read from the event alone.
#[derive(Debug)]
enum Effect {
    /// Nothing changes; the text says why (stored with the event).
    Nothing(String),
    /// A paid session we cannot price: an operator grants the credits by hand.
    Flag { user_id: UserId, reason: String },
    /// A paid session: record the purchase and grant its credits.
    Credit {
        purchase: NewPurchase,
        /// The ledger row's reason.
        reason: String,
    },
    /// A refunded charge: take back the refunded share of the purchase it paid for.
    Refund(ChargeRefund),
}

fn decide(event: &Event, plans: &Plans, now: i64) -> Effect {
    match event.kind.as_str() {
        "checkout.session.completed" | "checkout.session.async_payment_succeeded" => {
            match serde_json::from_value::<CheckoutSession>(event.data.object.clone()) {
                Ok(session) => checkout_paid(&session, plans, now),
                Err(e) => Effect::Nothing(unreadable(event, "Checkout Session", &e)),
            }
        }
        "charge.refunded" => match serde_json::from_value::<Charge>(event.data.object.clone()) {
            Ok(charge) => charge_refunded(charge),
            Err(e) => Effect::Nothing(unreadable(event, "Charge", &e)),
        },
        _ => Effect::Nothing("ignored: not an event type we act on".to_string()),
    }
}

/// A signed event whose object we cannot read: recorded (retrying cannot fix it) and logged
/// loudly, since it may be a payment we did not credit.
fn unreadable(event: &Event, what: &str, e: &serde_json::Error) -> String {
    tracing::error!(event = %event.id, kind = %event.kind, error = %e, "unreadable Stripe event");
    format!("ignored: not a {what} ({e})")
}

/// A paid session grants its plan's credits, once per session whichever of its success
/// events (`completed` for cards, `async_payment_succeeded` for bank debits) says so.
fn checkout_paid(session: &CheckoutSession, plans: &Plans, now: i64) -> Effect {
    if session.payment_status.as_deref() != Some("paid") {
        return Effect::Nothing(format!(
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
        return Effect::Nothing("ignored: the session names no user".into());
    };
    let plan_id = session.metadata.get("plan").map_or("", String::as_str);
    // The credits promised at checkout (we put them in the metadata) win over the plan's
    // current configuration, which may have changed since.
    let credits = session
        .metadata
        .get("credits")
        .and_then(|c| c.parse::<i64>().ok())
        .and_then(|c| Credits::new(c).ok())
        .filter(|c| *c > Credits::ZERO)
        .or_else(|| {
            plans
                .get(plan_id)
                .map(|p| p.credits)
                .filter(|c| *c > Credits::ZERO)
        });
    let Some(credits) = credits else {
        let reason = format!(
            "paid Checkout Session {} for unknown plan {plan_id:?}: grant the credits by hand",
            session.id
        );
        tracing::error!(user = %user_id, %reason);
        return Effect::Flag {
            user_id: UserId::from(user_id.clone()),
            reason,
        };
    };
    let plan_name = match plans.get(plan_id) {
        Some(p) => p.name.as_str(),
        None if plan_id.is_empty() => "credits",
        None => plan_id,
    };
    Effect::Credit {
        reason: format!("Bought {plan_name}: {credits} credits"),
        purchase: NewPurchase {
            id: PurchaseId::generate(),
            user_id: UserId::from(user_id.clone()),
            plan: plan_id.to_string(),
            credits,
            amount_cents: session.amount_total.unwrap_or(0),
            currency: session.currency.clone().unwrap_or_else(|| "usd".into()),
            checkout_session_id: session.id.clone(),
            payment_intent_id: session.payment_intent.clone(),
            created_at: now,
        },
    }
}

/// A refund takes back the refunded share of the purchase's credits (the store applies it
/// as far as the balance allows, and flags what was already spent).
fn charge_refunded(charge: Charge) -> Effect {
    let Some(payment_intent) = charge.payment_intent else {
        return Effect::Nothing(format!(
            "ignored: charge {} has no payment intent",
            charge.id
        ));
    };
    Effect::Refund(ChargeRefund {
        payment_intent,
        charged_cents: charge.amount,
        refunded_cents: charge.amount_refunded,
    })
}

impl ChargeRefund {
    /// Credits this refund still has to take back from `purchase`: the refunded share of its
    /// credits less what earlier refunds took back or found spent. `refunded_cents` is
    /// cumulative, so partial refunds (one event each) add up correctly.
    pub fn credits_owed(&self, purchase: &Purchase) -> Credits {
        let bought = purchase.credits.get();
        let share = if self.charged_cents <= 0 {
            0
        } else {
            let r = i128::from(bought) * i128::from(self.refunded_cents.max(0))
                / i128::from(self.charged_cents);
            r.min(i128::from(bought)) as i64
        };
        let settled = purchase.credits_removed.get() + purchase.credits_unrecovered.get();
        // Nothing is owed once earlier refunds settled as much as this share or more.
        Credits::new(share - settled).unwrap_or(Credits::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(value: serde_json::Value) -> Event {
        serde_json::from_value(value).unwrap()
    }

    #[tokio::test]
    async fn an_event_is_applied_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), 1).unwrap();
        let plans = Plans::defaults(Credits::from(25u32));
        let ignored = || {
            event(serde_json::json!({
                "id": "evt_1", "type": "invoice.paid", "data": { "object": {} }
            }))
        };
        let first = apply(&store, ignored(), &plans, 1).await.unwrap();
        assert!(matches!(first, Outcome::Handled(ref o) if o.starts_with("ignored")));
        assert_eq!(
            apply(&store, ignored(), &plans, 2).await.unwrap(),
            Outcome::Duplicate
        );
        let paid = || {
            event(serde_json::json!({
                "id": "evt_2", "type": "checkout.session.completed", "data": { "object": {
                    "id": "cs_1", "payment_status": "paid", "client_reference_id": "usr_nobody",
                    "metadata": { "credits": "100" }
                } }
            }))
        };
        assert_eq!(
            apply(&store, paid(), &plans, 3).await.unwrap(),
            Outcome::Handled("ignored: no account usr_nobody".into())
        );
        assert_eq!(
            apply(&store, paid(), &plans, 4).await.unwrap(),
            Outcome::Duplicate
        );
    }

    #[test]
    fn a_refund_owes_its_share_of_the_credits_less_what_earlier_refunds_settled() {
        let purchase = |removed, unrecovered| Purchase {
            id: "pur_1".into(),
            user_id: "u".into(),
            plan: "p".into(),
            credits: Credits::new(1000).unwrap(),
            amount_cents: 2000,
            currency: "usd".into(),
            checkout_session_id: "cs".into(),
            payment_intent_id: Some("pi".into()),
            refunded_cents: 0,
            credits_removed: Credits::new(removed).unwrap(),
            credits_unrecovered: Credits::new(unrecovered).unwrap(),
            created_at: 0,
        };
        let refund = |refunded_cents| ChargeRefund {
            payment_intent: "pi".into(),
            charged_cents: 2000,
            refunded_cents,
        };
        assert_eq!(refund(500).credits_owed(&purchase(0, 0)).get(), 250);
        assert_eq!(refund(1000).credits_owed(&purchase(200, 50)).get(), 250);
        assert_eq!(
            refund(5000).credits_owed(&purchase(0, 0)).get(),
            1000,
            "never more than bought"
        );
        assert_eq!(refund(500).credits_owed(&purchase(250, 0)).get(), 0);
        let free = ChargeRefund {
            charged_cents: 0,
            ..refund(0)
        };
        assert_eq!(free.credits_owed(&purchase(0, 0)).get(), 0);
    }
}
