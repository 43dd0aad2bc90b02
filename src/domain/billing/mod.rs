//! Billing: plans, buying credits through Stripe Checkout, the Billing Portal, and the
//! webhooks that turn payments into credits.
//!
//! Money only becomes credits in one place, [`events::apply`], on a webhook whose signature
//! we verified: the browser coming back from Checkout proves nothing. Both faces (the billing
//! page and the JSON API) call the functions here.

pub mod events;
pub mod plans;
pub mod signature;
pub mod stripe;

use crate::config::Config;
use crate::domain::error::{AppError, AppResult};
use crate::domain::ids::{Credits, UserId};
use crate::state::State;
use crate::store::Store;
use crate::store::billing::{CustomerLookup, Purchase};
use crate::store::{self, ledger};
use plans::{Plan, Plans};
use stripe::{CheckoutRequest, StripeClient, StripeError};

/// Checkout and Portal sessions one user may create per minute. Each is a call to Stripe on
/// our account's rate limit, so one user (or a leaked key) must not be able to spend it.
const STRIPE_SESSIONS_PER_MINUTE: u32 = 10;

/// Billing settings and the Stripe client, built once from the configuration.
pub struct Billing {
    pub plans: Plans,
    stripe: Option<StripeClient>,
    session_limit: crate::auth::rate_limit::KeyedLimit<UserId>,
    webhook_secrets: Vec<String>,
    public_url: String,
}

impl Billing {
    pub fn from_config(config: &Config) -> Billing {
        let plans = Plans::new(config.free_credits, config.paid_plans.clone())
            .expect("plans are checked when the configuration is read");
        Billing {
            plans,
            stripe: config
                .stripe_secret_key
                .as_deref()
                .map(|key| StripeClient::new(&config.stripe_api_base, key)),
            session_limit: crate::auth::rate_limit::KeyedLimit::per_minute(
                STRIPE_SESSIONS_PER_MINUTE,
            ),
            webhook_secrets: config
                .stripe_webhook_secrets
                .iter()
                .map(|s| s.to_string())
                .collect(),
            public_url: config.public_url.clone(),
        }
    }

    /// Drops the rate-limit state of users who have not bought anything lately.
    pub fn forget_idle(&self) {
        self.session_limit.forget_idle();
    }

    /// Whether credits can be bought here (a Stripe secret key is set).
    pub fn configured(&self) -> bool {
        self.stripe.is_some()
    }

    /// The Stripe client for a call on behalf of `user_id`, within that user's rate limit.
    fn stripe_for(&self, user_id: &UserId) -> AppResult<&StripeClient> {
        let stripe = self.stripe()?;
        self.session_limit
            .check(user_id)
            .map_err(AppError::RateLimited)?;
        Ok(stripe)
    }

    fn stripe(&self) -> AppResult<&StripeClient> {
        self.stripe.as_ref().ok_or_else(|| {
            AppError::BillingNotConfigured(
                "billing is not configured on this server (no STRIPE_SECRET_KEY), so credits \
                 cannot be bought here; ask the operator to grant credits"
                    .into(),
            )
        })
    }
}

/// A user's billing state, as the billing page and `GET /api/v1/billing` show it.
pub struct Summary {
    /// Follows from purchases: the newest one not refunded in full, else Free.
    pub plan: Plan,
    pub credits: Credits,
    pub purchases: Vec<Purchase>,
    /// Newest credit ledger rows first.
    pub history: Vec<ledger::Entry>,
    /// Set when a refund took back credits already spent.
    pub flag: Option<String>,
    /// Whether the Billing Portal can be opened (the user has a Stripe customer).
    pub has_customer: bool,
    pub configured: bool,
}

pub async fn summary(state: &State, user_id: &UserId) -> AppResult<Summary> {
    let records = state
        .store
        .billing_records(user_id)
        .await?
        .ok_or(AppError::NotFound("account"))?;
    Ok(Summary {
        plan: state
            .billing
            .plans
            .current(records.plan_id.as_deref())
            .clone(),
        credits: records.credits,
        purchases: records.purchases,
        history: records.history,
        flag: records.flag,
        has_customer: records.customer.is_some(),
        configured: state.billing.configured(),
    })
}

/// The user's current plan (the newest purchase not refunded in full, else Free).
pub async fn plan_of(state: &State, user_id: &UserId) -> AppResult<Plan> {
    let current = state.store.current_plan(user_id).await?;
    Ok(state.billing.plans.current(current.as_deref()).clone())
}

/// The user's purchase made by this Checkout Session, once its payment is confirmed.
pub async fn purchase_by_session(
    store: &Store,
    user_id: &UserId,
    session_id: &str,
) -> AppResult<Option<Purchase>> {
    Ok(store.purchase_by_session(user_id, session_id).await?)
}

/// Clears the account's billing flag (an operator has dealt with it); returns what it said.
pub async fn clear_flag(store: &Store, user_id: &UserId) -> AppResult<Option<String>> {
    Ok(store.clear_flag(user_id).await?)
}

/// An account's billing state as plain text, for operators (`admin account`).
pub fn describe(user: &store::users::User, s: &Summary) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{} ({})\nplan: {} · credits: {}\n",
        user.email, user.id, s.plan.name, s.credits
    );
    if let Some(flag) = &s.flag {
        let _ = writeln!(out, "flag: {flag}");
    }
    if s.purchases.is_empty() {
        out.push_str("no purchases\n");
    }
    for p in &s.purchases {
        let _ = write!(
            out,
            "purchase {} {}: {} {} credits, paid {}",
            p.id,
            crate::domain::rfc3339_ms(p.created_at),
            p.plan,
            p.credits,
            plans::money(p.amount_cents, &p.currency)
        );
        if p.refunded_cents > 0 {
            let _ = write!(
                out,
                ", refunded {} (taken back {}, already spent {})",
                plans::money(p.refunded_cents, &p.currency),
                p.credits_removed,
                p.credits_unrecovered
            );
        }
        out.push('\n');
    }
    out
}

/// A Checkout Session to pay for a plan.
pub struct Checkout {
    pub url: String,
    pub session_id: String,
}

/// Starts buying `plan_id`: the user's Stripe customer (created on the first purchase), then
/// a Checkout Session whose success URL comes back to the billing page.
pub async fn start_checkout(state: &State, user_id: &UserId, plan_id: &str) -> AppResult<Checkout> {
    let billing = &state.billing;
    let plan = billing
        .plans
        .purchasable(plan_id.trim())
        .map_err(AppError::Invalid)?
        .clone();
    let stripe = billing.stripe_for(user_id)?;
    let customer = customer_for(state, stripe, user_id).await?;
    let page = crate::links::billing(&billing.public_url);
    let success_url = format!("{page}?checkout=success&session_id={{CHECKOUT_SESSION_ID}}");
    let cancel_url = format!("{page}?checkout=cancelled");
    let session = stripe
        .create_checkout_session(&CheckoutRequest {
            customer: &customer,
            user_id,
            plan: &plan,
            success_url: &success_url,
            cancel_url: &cancel_url,
        })
        .await
        .map_err(provider_error)?;
    tracing::info!(user = %user_id, plan = %plan.id, session = %session.id, "checkout started");
    Ok(Checkout {
        url: session.url,
        session_id: session.id,
    })
}

/// A Billing Portal link for the user's invoices and payment methods.
pub async fn open_portal(state: &State, user_id: &UserId) -> AppResult<String> {
    let stripe = state.billing.stripe_for(user_id)?;
    let customer = state.store.stripe_customer(user_id).await?.ok_or_else(|| {
        AppError::Conflict(
            "there is nothing to manage yet: the billing portal opens after your first \
                 purchase"
                .into(),
        )
    })?;
    let return_url = crate::links::billing(&state.billing.public_url);
    let session = stripe
        .create_portal_session(&customer, &return_url)
        .await
        .map_err(provider_error)?;
    Ok(session.url)
}

/// The user's Stripe customer, created on first use.
async fn customer_for(state: &State, stripe: &StripeClient, user_id: &UserId) -> AppResult<String> {
    let user = match state.store.find_customer(user_id).await? {
        CustomerLookup::Existing(customer) => return Ok(customer),
        CustomerLookup::ToCreate(user) => user,
        CustomerLookup::NoAccount => return Err(AppError::NotFound("account")),
    };
    let created = stripe
        .create_customer(&user.id, &user.email, user.name.as_deref())
        .await
        .map_err(provider_error)?;
    Ok(state
        .store
        .save_customer(&user.id, &created.id, store::now_ms())
        .await?)
}

/// What a delivered webhook did.
pub struct Receipt {
    pub event_id: String,
    pub duplicate: bool,
    pub outcome: String,
}

/// Verifies and applies one webhook delivery. A bad signature or body changes nothing.
pub async fn receive_webhook(
    state: &State,
    signature_header: Option<&str>,
    payload: &[u8],
) -> AppResult<Receipt> {
    let billing = &state.billing;
    if billing.webhook_secrets.is_empty() {
        return Err(AppError::BillingNotConfigured(
            "webhooks are not configured on this server (no STRIPE_WEBHOOK_SECRET)".into(),
        ));
    }
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    signature::verify(signature_header, payload, &billing.webhook_secrets, now)
        .map_err(|e| AppError::BadSignature(e.to_string()))?;
    let event: events::Event = serde_json::from_slice(payload)
        .map_err(|e| AppError::Unreadable(format!("the body is not a Stripe event: {e}")))?;
    let event_id = event.id.clone();
    let outcome = events::apply(&state.store, event, &billing.plans, store::now_ms()).await?;
    let receipt = match outcome {
        events::Outcome::Duplicate => Receipt {
            event_id,
            duplicate: true,
            outcome: "already handled".into(),
        },
        events::Outcome::Handled(outcome) => Receipt {
            event_id,
            duplicate: false,
            outcome,
        },
    };
    tracing::info!(event = %receipt.event_id, duplicate = receipt.duplicate, outcome = %receipt.outcome, "Stripe webhook");
    Ok(receipt)
}

/// A failed Stripe call, as the user should read it.
fn provider_error(e: StripeError) -> AppError {
    match &e {
        StripeError::Api {
            status, message, ..
        } if !e.is_transient() && *status != 401 && *status != 403 => {
            AppError::PaymentProvider(format!("Stripe refused the request: {message}"))
        }
        StripeError::Api {
            status: 401 | 403, ..
        } => {
            tracing::error!(error = %e, "Stripe refused our secret key");
            AppError::PaymentProvider(
                "payments are misconfigured on our side; nothing was charged, and we have been \
                 alerted"
                    .into(),
            )
        }
        _ => {
            tracing::warn!(error = %e, "Stripe is unavailable");
            AppError::PaymentProvider(
                "Stripe is not answering right now; nothing was charged. Please try again in a \
                 minute"
                    .into(),
            )
        }
    }
}
