//! A small client for the three Stripe API calls we make, over reqwest (no SDK).
//!
//! Stripe's API takes form-encoded bodies with bracket notation for nested fields
//! (`line_items[0][price_data][currency]=usd`), authenticates with the secret key as a bearer
//! token, and answers JSON. The API version is pinned with `Stripe-Version` so a change of the
//! account's default version cannot change what we receive. Every POST carries an
//! `Idempotency-Key`, which is what makes retrying it safe: Stripe replays the first answer
//! instead of doing the work twice. We retry only where Stripe says to (network failures,
//! 409, 429, 5xx, or `Stripe-Should-Retry: true`; never when it says `false`).

use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::plans::Plan;
use crate::domain::ids::UserId;

/// The API version our requests and webhook parsing are written against.
pub const API_VERSION: &str = "2024-06-20";

/// Attempts after the first for a retryable failure.
const MAX_RETRIES: u32 = 2;

/// Why a Stripe call failed.
#[derive(Debug, thiserror::Error)]
pub enum StripeError {
    /// Stripe answered with its error JSON (`{"error": {"type", "code", "message"}}`).
    #[error("Stripe answered {status} ({kind}): {message}")]
    Api {
        status: u16,
        /// `card_error`, `invalid_request_error`, `api_error`, …
        kind: String,
        code: Option<String>,
        message: String,
    },
    /// No answer: connection refused, timeout, TLS.
    #[error("cannot reach Stripe: {0}")]
    Network(String),
    /// An answer we cannot read.
    #[error("unexpected answer from Stripe: {0}")]
    Decode(String),
}

impl StripeError {
    /// Whether the problem is on Stripe's side or the network's, or a conflict with a request
    /// still in flight (worth trying again), rather than in what we or the customer sent.
    pub fn is_transient(&self) -> bool {
        match self {
            StripeError::Api { status, .. } => *status >= 500 || *status == 429 || *status == 409,
            StripeError::Network(_) | StripeError::Decode(_) => true,
        }
    }
}

#[derive(Debug, Deserialize)]
pub struct Customer {
    pub id: String,
}

#[derive(Debug, Deserialize)]
pub struct CheckoutSession {
    pub id: String,
    pub url: String,
}

#[derive(Debug, Deserialize)]
pub struct PortalSession {
    pub url: String,
}

/// What a Checkout Session for one plan needs.
pub struct CheckoutRequest<'a> {
    pub customer: &'a str,
    pub user_id: &'a UserId,
    pub plan: &'a Plan,
    /// Where Stripe sends the customer after paying; should contain `{CHECKOUT_SESSION_ID}`.
    pub success_url: &'a str,
    pub cancel_url: &'a str,
}

#[derive(Clone)]
pub struct StripeClient {
    http: reqwest::Client,
    base: String,
    secret_key: String,
    retry_delay: Duration,
}

impl StripeClient {
    /// `base` is `https://api.stripe.com` in production, a local stand-in in tests.
    pub fn new(base: &str, secret_key: &str) -> StripeClient {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("fmu-gateway/", env!("CARGO_PKG_VERSION")))
            .build()
            .expect("the HTTP client builds");
        StripeClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            secret_key: secret_key.to_string(),
            retry_delay: Duration::from_millis(250),
        }
    }

    /// `POST /v1/customers`. The idempotency key is derived from the user, so two purchases
    /// started at once create one customer, not two.
    pub async fn create_customer(
        &self,
        user_id: &UserId,
        email: &str,
        name: Option<&str>,
    ) -> Result<Customer, StripeError> {
        let mut form = vec![
            field("email", email),
            field("metadata[user_id]", user_id.as_str()),
        ];
        if let Some(name) = name {
            form.push(field("name", name));
        }
        self.post("/v1/customers", &form, &format!("customer-{user_id}"))
            .await
    }

    /// `POST /v1/checkout/sessions`: a one-time payment for `plan`, priced inline, with the
    /// user and plan in the metadata that the `checkout.session.completed` webhook reads.
    pub async fn create_checkout_session(
        &self,
        req: &CheckoutRequest<'_>,
    ) -> Result<CheckoutSession, StripeError> {
        let plan = req.plan;
        let credits = plan.credits.to_string();
        let mut form = vec![
            field("mode", "payment"),
            field("customer", req.customer),
            field("client_reference_id", req.user_id.as_str()),
            field("success_url", req.success_url),
            field("cancel_url", req.cancel_url),
            field("line_items[0][quantity]", "1"),
            field("line_items[0][price_data][currency]", &plan.currency),
            field(
                "line_items[0][price_data][unit_amount]",
                &plan.amount_cents.to_string(),
            ),
            field(
                "line_items[0][price_data][product_data][name]",
                &format!("FMU Gateway {} — {} credits", plan.name, plan.credits),
            ),
        ];
        if !plan.description.is_empty() {
            form.push(field(
                "line_items[0][price_data][product_data][description]",
                &plan.description,
            ));
        }
        form.extend([
            field("metadata[user_id]", req.user_id.as_str()),
            field("metadata[plan]", &plan.id),
            field("metadata[credits]", &credits),
            // Also on the payment, so it is visible where refunds are made.
            field(
                "payment_intent_data[metadata][user_id]",
                req.user_id.as_str(),
            ),
            field("payment_intent_data[metadata][plan]", &plan.id),
        ]);
        self.post("/v1/checkout/sessions", &form, &new_idempotency_key())
            .await
    }

    /// `POST /v1/billing_portal/sessions`: a link where the customer manages their payment
    /// methods and billing details.
    pub async fn create_portal_session(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<PortalSession, StripeError> {
        let form = [field("customer", customer), field("return_url", return_url)];
        self.post("/v1/billing_portal/sessions", &form, &new_idempotency_key())
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        form: &[(String, String)],
        idempotency_key: &str,
    ) -> Result<T, StripeError> {
        let url = format!("{}{path}", self.base);
        let mut attempt = 0;
        loop {
            let sent = self
                .http
                .post(&url)
                .bearer_auth(&self.secret_key)
                .header("Stripe-Version", API_VERSION)
                .header("Idempotency-Key", idempotency_key)
                .form(form)
                .send()
                .await;
            let (error, should_retry) = match sent {
                Err(e) => (StripeError::Network(e.to_string()), true),
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let should_retry = resp
                        .headers()
                        .get("stripe-should-retry")
                        .and_then(|v| v.to_str().ok())
                        .map(|v| v == "true");
                    let body = resp
                        .bytes()
                        .await
                        .map_err(|e| StripeError::Network(e.to_string()));
                    match body {
                        Ok(body) if (200..300).contains(&status) => {
                            return serde_json::from_slice(&body)
                                .map_err(|e| StripeError::Decode(e.to_string()));
                        }
                        Ok(body) => {
                            let error = api_error(status, &body);
                            let retry = should_retry.unwrap_or_else(|| error.is_transient());
                            (error, retry)
                        }
                        Err(e) => (e, should_retry.unwrap_or(true)),
                    }
                }
            };
            if !should_retry || attempt >= MAX_RETRIES {
                tracing::warn!(path, attempt, error = %error, "Stripe call failed");
                return Err(error);
            }
            tracing::info!(path, attempt, error = %error, "retrying a Stripe call");
            tokio::time::sleep(self.retry_delay * 2u32.pow(attempt)).await;
            attempt += 1;
        }
    }
}

fn field(key: &str, value: &str) -> (String, String) {
    (key.to_string(), value.to_string())
}

/// A fresh key for one logical call, reused by its retries.
fn new_idempotency_key() -> String {
    crate::domain::new_id("fmugw")
}

/// Reads Stripe's error JSON; anything else becomes a message with the status.
fn api_error(status: u16, body: &[u8]) -> StripeError {
    #[derive(Deserialize)]
    struct Envelope {
        error: Detail,
    }
    #[derive(Deserialize)]
    struct Detail {
        #[serde(rename = "type")]
        kind: Option<String>,
        code: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_slice::<Envelope>(body) {
        Ok(Envelope { error }) => StripeError::Api {
            status,
            kind: error.kind.unwrap_or_else(|| "api_error".into()),
            code: error.code,
            message: error
                .message
                .unwrap_or_else(|| format!("HTTP {status} without a message")),
        },
        Err(_) => StripeError::Api {
            status,
            kind: "api_error".into(),
            code: None,
            message: format!("HTTP {status} without Stripe's error body"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripe_error_bodies_are_read() {
        let body = br#"{"error":{"type":"card_error","code":"card_declined","message":"Your card was declined."}}"#;
        match api_error(402, body) {
            StripeError::Api {
                status,
                kind,
                code,
                message,
            } => {
                assert_eq!(status, 402);
                assert_eq!(kind, "card_error");
                assert_eq!(code.as_deref(), Some("card_declined"));
                assert_eq!(message, "Your card was declined.");
            }
            other => panic!("{other:?}"),
        }
        let e = api_error(502, b"<html>bad gateway</html>");
        assert!(e.to_string().contains("502"), "{e}");
        assert!(e.is_transient());
        assert!(!api_error(400, b"{}").is_transient());
    }
}
