//! The error type of the domain layer (accounts, keys, usage, …).
//!
//! Each face maps it to HTTP in exactly one place: `api::error` to `{code, message}` JSON,
//! `web::error` to an HTML page or fragment. Internal details are logged there, never sent.

use std::time::Duration;

use crate::auth::AuthError;
use crate::domain::Invalid;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request's content is wrong; the message says what to fix.
    #[error("{0}")]
    Invalid(String),
    /// Everything wrong with a request (a run's settings against its model), each problem
    /// with the field at fault.
    #[error("{0}")]
    Problems(crate::sim::plan::Problems),
    /// The service cannot do this right now (e.g. simulations, while its self-test fails).
    #[error("{0}")]
    Unavailable(String),
    /// The thing already exists (e.g. an email).
    #[error("{0}")]
    Conflict(String),
    #[error("wrong email or password")]
    BadCredentials,
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Not enough credits; the message says where to buy more.
    #[error("{0}")]
    PaymentRequired(String),
    /// The upload is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The upload would take the account past its storage quota.
    #[error("{0}")]
    QuotaExceeded(String),
    /// It existed but has been removed for good (a run's results after their retention).
    #[error("{0}")]
    Gone(String),
    /// The request cannot be read at all (e.g. a webhook body that is not JSON).
    #[error("{0}")]
    BadRequest(String),
    /// A webhook whose signature does not verify.
    #[error("{0}")]
    BadSignature(String),
    /// Billing (or its webhooks) without the Stripe settings it needs.
    #[error("{0}")]
    BillingNotConfigured(String),
    /// The payment provider refused or failed; the message is for the user.
    #[error("{0}")]
    PaymentProvider(String),
    #[error("too many attempts: try again in {} s", .0.as_secs().max(1))]
    RateLimited(Duration),
    /// The user already has as many runs queued or running as one account may; the message
    /// says so, the duration is when to try again.
    #[error("{0}")]
    Busy(String, Duration),
    /// Something broke on our side; the text is for the log only.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<Invalid> for AppError {
    fn from(e: Invalid) -> Self {
        AppError::Invalid(e.0)
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        AppError::Internal(e.to_string())
    }
}

pub type AppResult<T> = Result<T, AppError>;
