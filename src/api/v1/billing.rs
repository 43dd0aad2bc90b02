//! `/api/v1/billing`: plan, credits and history; start a Checkout; open the Billing Portal.
//! The webhook Stripe calls is a plain route (`api::webhook`): it is not for API clients.

use poem_openapi::payload::Json;
use poem_openapi::{Enum, Object, OpenApi, Tags};

use crate::api::auth::{Authed, ManageBilling, ReadBilling};
use crate::api::body::JsonBody;
use crate::api::error::{OpError, declare_errors};
use crate::api::text::Text;
use crate::domain::billing::{self, plans::Plan};
use crate::domain::error::AppError;
use crate::sim::plan::{Problem, Problems};
use crate::state::State;
use crate::store::ledger::EntryKind;

#[derive(Tags)]
enum Tag {
    /// Plans, credits and purchases (Stripe).
    Billing,
}

/// A plan: what one purchase costs and the credits it grants.
#[derive(Object)]
#[oai(example)]
pub struct PlanInfo {
    /// `free`, `pro`, `enterprise`, … (as configured).
    pub id: String,
    pub name: String,
    pub description: String,
    /// Credits one purchase grants (Free: at sign-up).
    pub credits: i64,
    /// Price in the currency's smallest unit (cents).
    pub amount_cents: i64,
    pub currency: String,
}

impl From<&Plan> for PlanInfo {
    fn from(p: &Plan) -> Self {
        PlanInfo {
            id: p.id.clone(),
            name: p.name.clone(),
            description: p.description.clone(),
            credits: p.credits.get(),
            amount_cents: p.amount_cents,
            currency: p.currency.clone(),
        }
    }
}

/// One credit purchase and what was refunded of it.
#[derive(Object)]
pub struct PurchaseInfo {
    pub id: String,
    pub plan: String,
    pub credits: i64,
    pub amount_cents: i64,
    pub currency: String,
    /// Amount refunded so far, in cents.
    pub refunded_cents: i64,
    /// Credits taken back by refunds.
    pub credits_removed: i64,
    pub checkout_session_id: String,
    pub created_at: String,
}

/// Why the balance changed: credits granted (sign-up), reserved for a run, settled when it
/// finished, refunded when the service failed it, bought, or taken back by a purchase refund.
#[derive(Enum, Clone, Copy)]
#[oai(rename_all = "snake_case")]
pub enum LedgerKind {
    Grant,
    Reserve,
    Settle,
    Refund,
    Purchase,
    PurchaseRefund,
}

impl From<EntryKind> for LedgerKind {
    fn from(kind: EntryKind) -> Self {
        match kind {
            EntryKind::Grant => LedgerKind::Grant,
            EntryKind::Reserve => LedgerKind::Reserve,
            EntryKind::Settle => LedgerKind::Settle,
            EntryKind::Refund => LedgerKind::Refund,
            EntryKind::Purchase => LedgerKind::Purchase,
            EntryKind::PurchaseRefund => LedgerKind::PurchaseRefund,
        }
    }
}

/// One change of the credit balance.
#[derive(Object)]
#[oai(example)]
pub struct LedgerEntry {
    /// Credits added (positive) or taken (negative).
    pub delta: i64,
    pub balance_after: i64,
    pub kind: LedgerKind,
    pub reason: String,
    #[oai(skip_serializing_if_is_none)]
    pub run_id: Option<String>,
    pub created_at: String,
}

/// The account's plan, credits, purchases and credit history.
#[derive(Object)]
#[oai(example)]
pub struct BillingOverview {
    /// The current plan: that of the newest purchase not refunded in full, else Free.
    pub plan: PlanInfo,
    pub credits: i64,
    /// Whether credits can be bought on this server (Stripe is configured).
    pub billing_enabled: bool,
    /// The plans that can be bought.
    pub plans: Vec<PlanInfo>,
    /// Newest first.
    pub purchases: Vec<PurchaseInfo>,
    /// The newest credit ledger rows, newest first.
    pub history: Vec<LedgerEntry>,
    /// Set when a refund took back credits that were already spent.
    #[oai(skip_serializing_if_is_none)]
    pub account_flag: Option<String>,
}

#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct CheckoutRequest {
    /// The plan to buy, e.g. `pro`.
    pub plan: Text,
}

/// A Stripe Checkout session to send the customer to.
#[derive(Object)]
#[oai(example)]
pub struct CheckoutStarted {
    /// Send the customer here to pay (Stripe Checkout).
    pub checkout_url: String,
    pub session_id: String,
}

/// A link to the Stripe Billing Portal.
#[derive(Object)]
#[oai(example)]
pub struct PortalLink {
    /// The Stripe Billing Portal for this account; valid for a short time.
    pub url: String,
}

declare_errors! {
    /// `GET /billing`.
    GetBillingErrors: [UNAUTHORIZED, FORBIDDEN];
    /// `POST /billing/checkout`: a plan the spec does not list is 400; too many checkouts
    /// 429; Stripe failing 502; billing not configured on this server 503.
    StartCheckoutErrors: [
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        TOO_MANY_REQUESTS,
        BAD_GATEWAY,
        SERVICE_UNAVAILABLE,
    ];
    /// `POST /billing/portal`: before the first purchase 409; otherwise as a checkout.
    OpenPortalErrors: [
        UNAUTHORIZED,
        FORBIDDEN,
        CONFLICT,
        TOO_MANY_REQUESTS,
        BAD_GATEWAY,
        SERVICE_UNAVAILABLE,
    ];
}

pub struct BillingApi;

#[OpenApi(tag = "Tag::Billing")]
impl BillingApi {
    /// Your plan, credits, purchases and credit history.
    ///
    /// `history` is the credit ledger, newest first: each reserve, settle, refund, grant and
    /// purchase, with the balance after it.
    #[oai(path = "/billing", method = "get", operation_id = "getBilling")]
    async fn overview(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadBilling>,
    ) -> Result<Json<BillingOverview>, OpError<GetBillingErrors>> {
        let s = billing::summary(&state, &auth.principal.user_id).await?;
        Ok(Json(BillingOverview {
            plan: (&s.plan).into(),
            credits: s.credits.get(),
            billing_enabled: s.configured,
            plans: state.billing.plans.paid().iter().map(Into::into).collect(),
            purchases: s
                .purchases
                .into_iter()
                .map(|p| PurchaseInfo {
                    id: p.id.to_string(),
                    plan: p.plan,
                    credits: p.credits.get(),
                    amount_cents: p.amount_cents,
                    currency: p.currency,
                    refunded_cents: p.refunded_cents,
                    credits_removed: p.credits_removed.get(),
                    checkout_session_id: p.checkout_session_id,
                    created_at: crate::api::time(p.created_at),
                })
                .collect(),
            history: s
                .history
                .into_iter()
                .map(|e| LedgerEntry {
                    delta: e.delta,
                    balance_after: e.balance_after.get(),
                    kind: e.kind.into(),
                    reason: e.reason,
                    run_id: e.run_id.map(String::from),
                    created_at: crate::api::time(e.created_at),
                })
                .collect(),
            account_flag: s.flag,
        }))
    }

    /// Starts buying a credit pack: answers a Stripe Checkout link.
    ///
    /// Send the customer to `checkout_url`; the credits arrive when Stripe confirms the payment
    /// (by webhook). `plan` is one of the `plans[].id` of `GET /billing`. 503 when this server
    /// has no payment provider.
    #[oai(
        path = "/billing/checkout",
        method = "post",
        operation_id = "startCheckout"
    )]
    async fn checkout(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageBilling>,
        body: JsonBody<CheckoutRequest>,
    ) -> Result<Json<CheckoutStarted>, OpError<StartCheckoutErrors>> {
        // The spec lists the plans: any other value (even one the dashboard would trim into
        // a plan) does not match it.
        let plan = &body.0.plan.0;
        state.billing.plans.purchasable(plan).map_err(|message| {
            AppError::Malformed(Problems(vec![Problem::new("plan", message)]))
        })?;
        let c = billing::start_checkout(&state, &auth.principal.user_id, plan).await?;
        Ok(Json(CheckoutStarted {
            checkout_url: c.url,
            session_id: c.session_id,
        }))
    }

    /// A link to the Stripe Billing Portal for your account.
    ///
    /// Invoices and payment methods live there. 409 until the account has bought something; 503
    /// when this server has no payment provider.
    #[oai(
        path = "/billing/portal",
        method = "post",
        operation_id = "openBillingPortal"
    )]
    async fn portal(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageBilling>,
    ) -> Result<Json<PortalLink>, OpError<OpenPortalErrors>> {
        let url = billing::open_portal(&state, &auth.principal.user_id).await?;
        Ok(Json(PortalLink { url }))
    }
}
