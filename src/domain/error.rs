//! The error type of the domain layer (accounts, keys, usage, runs, billing, FMUs).
//!
//! Its variants say what went wrong in the domain's words (not enough credits, removed, not
//! found), never how a face answers it: each face maps it to HTTP in exactly one place
//! (`api::error` to `{code, message}` JSON, `web::error` to an HTML page or fragment). Faults
//! on our side keep their typed cause (the last variants); the faces log it and answer a
//! generic message, never the detail.

use std::time::Duration;

use crate::auth::AuthError;
use crate::auth::password::HashError;
use crate::auth::tokens::MintError;
use crate::domain::Invalid;
use crate::domain::fmus::RegistryError;
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
    /// The request does not match the API's description (a value outside an enum), each
    /// problem with the field at fault: a client bug rather than a setting to change.
    #[error("{0}")]
    Malformed(crate::sim::plan::Problems),
    /// An upload whose validation report has errors (and that was not lenient).
    #[error("{}", .0.error_summary())]
    InvalidFmu(Box<crate::fmi::validation::Report>),
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
    InsufficientCredits(String),
    /// The upload is larger than allowed.
    #[error("{0}")]
    TooLarge(String),
    /// The upload would take the account past its storage quota.
    #[error("{0}")]
    QuotaExceeded(String),
    /// It existed but has been removed for good (a run's results after their retention).
    #[error("{0}")]
    Removed(String),
    /// The request cannot be read at all (e.g. a webhook body that is not JSON).
    #[error("{0}")]
    Unreadable(String),
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
    // Faults on our side, with their cause (for the log only).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The FMU store's files or stored descriptions are broken (not the upload's fault).
    #[error(transparent)]
    Registry(RegistryError),
    #[error("reading results: {0}")]
    Results(#[from] std::io::Error),
    #[error("encoding a run's settings: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error(transparent)]
    Hashing(#[from] HashError),
    #[error(transparent)]
    Minting(#[from] MintError),
    #[error("a background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// Anything else that broke on our side (the message is for the log).
    #[error("{0}")]
    Fault(String),
}

impl From<Invalid> for AppError {
    fn from(e: Invalid) -> Self {
        AppError::Invalid(e.0)
    }
}

pub type AppResult<T> = Result<T, AppError>;
