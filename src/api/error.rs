//! The JSON error shape and the one place where errors become HTTP responses for the API
//! face (`/api/v1` and the compatibility routes).
//!
//! Every error body is `{"code": "...", "message": "..."}`: `code` is stable and meant for
//! programs, `message` is for the human reading the log.

use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;

use crate::auth::AuthError;
use crate::auth::rate_limit::retry_after_secs;
use crate::auth::tokens::TokenRejection;
use crate::domain::error::AppError;

pub use crate::request::{ErrorBody, FieldProblem};

/// Every error the API answers with. Operations list it as their error type, so the spec
/// documents each status with the shared body.
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request is malformed (bad JSON, wrong types, a missing field).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No API key, or one that is invalid, expired or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The key is valid but its restrictions do not allow this request.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// Not enough credits: the message links to billing.
    #[oai(status = 402)]
    PaymentRequired(Json<ErrorBody>),
    /// No such thing, or it belongs to someone else.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// It already exists.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// It existed but has been removed for good (results past their retention period).
    #[oai(status = 410)]
    Gone(Json<ErrorBody>),
    /// The upload is larger than the limit, or than the account's storage quota.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// Well-formed but not acceptable (a short password, an over-long label…).
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Too many requests; retry after the given number of seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] String),
    /// Something broke on our side; it has been logged.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The payment provider (Stripe) refused or did not answer; nothing was charged.
    #[oai(status = 502)]
    BadGateway(Json<ErrorBody>),
    /// This server is not configured for the request (e.g. billing without Stripe keys).
    #[oai(status = 503)]
    ServiceUnavailable(Json<ErrorBody>),
}

fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.into(),
        message: message.into(),
        problems: None,
    })
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(body("invalid_request", message))
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(body("not_found", format!("{what} not found")))
    }
}

impl From<crate::domain::fmus::RegistryError> for ApiError {
    fn from(err: crate::domain::fmus::RegistryError) -> Self {
        AppError::from(err).into()
    }
}

impl From<AppError> for ApiError {
    fn from(err: AppError) -> Self {
        match err {
            AppError::Invalid(m) => ApiError::Unprocessable(body("invalid_request", m)),
            AppError::Problems(problems) => {
                let message = problems.to_string();
                let list = problems
                    .0
                    .into_iter()
                    .map(|p| FieldProblem {
                        field: p.field,
                        message: p.message,
                    })
                    .collect();
                ApiError::Unprocessable(Json(ErrorBody {
                    code: "invalid_request".into(),
                    message,
                    problems: Some(list),
                }))
            }
            AppError::Unavailable(m) => {
                ApiError::ServiceUnavailable(body("service_unavailable", m))
            }
            AppError::Conflict(m) => ApiError::Conflict(body("conflict", m)),
            AppError::BadCredentials => {
                ApiError::Unauthorized(body("bad_credentials", err.to_string()))
            }
            AppError::Auth(a) => a.into(),
            AppError::NotFound(_) => ApiError::NotFound(body("not_found", err.to_string())),
            AppError::PaymentRequired(m) => {
                ApiError::PaymentRequired(body("insufficient_credits", m))
            }
            AppError::TooLarge(m) => ApiError::PayloadTooLarge(body("payload_too_large", m)),
            AppError::QuotaExceeded(m) => {
                ApiError::PayloadTooLarge(body("storage_quota_exceeded", m))
            }
            AppError::Gone(m) => ApiError::Gone(body("result_expired", m)),
            AppError::BadRequest(m) => ApiError::BadRequest(body("invalid_request", m)),
            AppError::BadSignature(m) => ApiError::BadRequest(body("invalid_signature", m)),
            AppError::BillingNotConfigured(m) => {
                ApiError::ServiceUnavailable(body("billing_not_configured", m))
            }
            AppError::PaymentProvider(m) => ApiError::BadGateway(body("payment_provider_error", m)),
            AppError::RateLimited(wait) => ApiError::TooManyRequests(
                body("rate_limited", err.to_string()),
                retry_after_secs(wait).to_string(),
            ),
            AppError::Busy(m, wait) => ApiError::TooManyRequests(
                body("too_many_active_runs", m),
                retry_after_secs(wait).to_string(),
            ),
            AppError::Internal(detail) => {
                tracing::error!(error = %detail, "internal error");
                ApiError::Internal(body(
                    "internal",
                    "something went wrong on our side; it has been logged",
                ))
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let message = err.to_string();
        match err {
            AuthError::Missing => ApiError::Unauthorized(body("missing_api_key", message)),
            AuthError::Rejected(TokenRejection::Invalid) => {
                ApiError::Unauthorized(body("invalid_api_key", message))
            }
            AuthError::Rejected(TokenRejection::Expired) => {
                ApiError::Unauthorized(body("expired_api_key", message))
            }
            AuthError::Rejected(TokenRejection::Restricted(_)) => {
                ApiError::Forbidden(body("key_restricted", message))
            }
            AuthError::Revoked => ApiError::Unauthorized(body("revoked_api_key", message)),
            AuthError::Store(e) => AppError::from(e).into(),
        }
    }
}

/// Turns errors raised by the framework (unparsable JSON, a wrong content type, an unknown
/// route) into the same JSON shape. Errors we raised ourselves already are that shape.
pub fn framework_error(err: poem::Error) -> poem::Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let code = match status.as_u16() {
        400 => "invalid_request",
        401 => "unauthorized",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        s if s >= 500 => "internal",
        _ => "invalid_request",
    };
    let message = if status.is_server_error() {
        tracing::error!(error = %err, "internal error");
        "something went wrong on our side; it has been logged".to_string()
    } else {
        err.to_string()
    };
    crate::request::json_error(status, code, message)
}
