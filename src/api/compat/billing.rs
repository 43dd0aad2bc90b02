//! Billing routes outside `/api/v1`'s spec: the Stripe webhook receiver and the
//! compatibility route `POST /purchase` that existing clients call.

use poem::web::{Data, Json};
use poem::{Body, IntoResponse, Request, Response, handler};
use serde::{Deserialize, Serialize};

use super::principal_for;
use crate::api::error::ApiError;
use crate::auth::{self, tokens::RequestFacts};
use crate::domain::billing;
use crate::state::State;

/// Stripe events are a few kilobytes; anything far larger is not from Stripe.
const MAX_WEBHOOK_BYTES: usize = 512 * 1024;

#[derive(Serialize)]
struct Received {
    received: bool,
    event_id: String,
    duplicate: bool,
}

/// `POST /stripe/webhook` (also `/api/v1/billing/webhook`): verifies the signature over the
/// raw body, then applies the event once. Any 2xx tells Stripe to stop retrying, so errors
/// on our side answer 5xx and are retried; a bad signature or body answers 400.
#[handler]
pub async fn stripe_webhook(
    state: Data<&State>,
    req: &Request,
    body: Body,
) -> Result<Response, ApiError> {
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    let payload = body
        .into_bytes_limit(MAX_WEBHOOK_BYTES)
        .await
        .map_err(|_| {
            ApiError::from(crate::domain::error::AppError::TooLarge(format!(
                "a webhook body is at most {MAX_WEBHOOK_BYTES} bytes"
            )))
        })?;
    let receipt = billing::receive_webhook(&state, signature, &payload).await?;
    Ok(Json(Received {
        received: true,
        event_id: receipt.event_id,
        duplicate: receipt.duplicate,
    })
    .into_response())
}

#[derive(Deserialize)]
pub struct PurchaseBody {
    /// The key may come in the body (as existing clients send it) or in the headers.
    api_key: Option<String>,
    plan: String,
}

#[derive(Serialize)]
struct PurchaseStarted {
    checkout_url: String,
    session_id: String,
}

/// `POST /purchase` `{api_key, plan}` → `{checkout_url, session_id}`.
#[handler]
pub async fn purchase(
    state: Data<&State>,
    req: &Request,
    body: Json<PurchaseBody>,
) -> Result<Response, ApiError> {
    let facts = RequestFacts::op("manage_billing");
    let principal = match &body.api_key {
        Some(key) => auth::authenticate_key(&state, key.clone(), facts).await?,
        None => principal_for(req, facts).await?,
    };
    let c = billing::start_checkout(&state, &principal.user_id, &body.plan).await?;
    Ok(Json(PurchaseStarted {
        checkout_url: c.url,
        session_id: c.session_id,
    })
    .into_response())
}
