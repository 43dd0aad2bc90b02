//! The JSON error shape and the one place where errors become HTTP responses for the API
//! face (`/api/v1` and the compatibility routes).
//!
//! Every error body is `{"code": "...", "message": "..."}`: `code` is stable and meant for
//! programs, `message` is for the human reading the log.
//!
//! [`ApiError`] is every error the API answers with; a `/api/v1` operation answers with an
//! [`OpError`], which declares in the spec only the statuses that operation can answer.

use std::marker::PhantomData;

use poem::http::StatusCode;
use poem_openapi::ApiResponse;
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaResponses, Registry};

use crate::auth::AuthError;
use crate::auth::rate_limit::retry_after_secs;
use crate::auth::tokens::TokenRejection;
use crate::domain::error::AppError;

pub use crate::request::{ErrorBody, ErrorCode, FieldProblem};

/// Every error the API answers with, each status documented with the shared body. The
/// compatibility routes answer with it directly; `/api/v1` operations through [`OpError`],
/// which documents only the statuses one operation can answer.
#[derive(ApiResponse, Debug)]
pub enum ApiError {
    /// The request does not match this description: malformed JSON, a wrong type, a missing
    /// or unknown field, a value outside its enum or bounds.
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
    /// None of the media types the `Accept` header allows can be sent.
    #[oai(status = 406)]
    NotAcceptable(Json<ErrorBody>),
    /// It conflicts with the current state: it already exists, the run already finished or
    /// has no results.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// It existed but has been removed for good (results past their retention period).
    #[oai(status = 410)]
    Gone(Json<ErrorBody>),
    /// An upload sent without a `Content-Length` (uploads are too large to hold in memory
    /// while measuring them).
    #[oai(status = 411)]
    LengthRequired(Json<ErrorBody>),
    /// The request body, or the upload, is larger than the limit, or than the account's
    /// storage quota.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The body is not of the content type the operation takes (JSON, or a multipart form
    /// for uploads).
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// It matches this description but cannot be done as asked: settings the model refuses,
    /// an FMU that is not valid, a label too long…
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

fn body(code: ErrorCode, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code,
        message: message.into(),
        problems: None,
    })
}

/// `invalid_fmu` listing every error of the validation report with its code and position.
fn invalid_fmu(report: &crate::fmi::validation::Report) -> Json<ErrorBody> {
    let list = report
        .errors()
        .map(|p| FieldProblem {
            field: p.subject.clone(),
            message: p.message.clone(),
            code: Some(p.code.as_str()),
            line: p.line,
            column: p.column,
        })
        .collect();
    let hint = if report.lenient_would_accept() {
        "; to accept it anyway (its errors kept in its validation report), upload it with \
         lenient=true"
    } else {
        ""
    };
    Json(ErrorBody {
        code: ErrorCode::InvalidFmu,
        message: format!("{}{hint}", report.error_summary()),
        problems: Some(list),
    })
}

/// `invalid_request` listing every problem, each with its field.
fn with_problems(problems: crate::sim::plan::Problems) -> Json<ErrorBody> {
    let message = problems.to_string();
    let list = problems
        .0
        .into_iter()
        .map(|p| FieldProblem {
            field: p.field,
            message: p.message,
            code: None,
            line: None,
            column: None,
        })
        .collect();
    Json(ErrorBody {
        code: ErrorCode::InvalidRequest,
        message,
        problems: Some(list),
    })
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(body(ErrorCode::InvalidRequest, message))
    }

    pub fn not_acceptable(message: impl Into<String>) -> Self {
        ApiError::NotAcceptable(body(ErrorCode::NotAcceptable, message))
    }

    pub fn not_found(what: &str) -> Self {
        ApiError::NotFound(body(ErrorCode::NotFound, format!("{what} not found")))
    }

    pub(crate) fn internal() -> Self {
        ApiError::Internal(body(
            ErrorCode::Internal,
            "something went wrong on our side; it has been logged",
        ))
    }

    /// The status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::PaymentRequired(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::NotAcceptable(_) => StatusCode::NOT_ACCEPTABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::LengthRequired(_) => StatusCode::LENGTH_REQUIRED,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::BadGateway(_) => StatusCode::BAD_GATEWAY,
            ApiError::ServiceUnavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
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
            AppError::Invalid(m) => ApiError::Unprocessable(body(ErrorCode::InvalidRequest, m)),
            AppError::InvalidFmu(report) => ApiError::Unprocessable(invalid_fmu(&report)),
            AppError::Problems(problems) => ApiError::Unprocessable(with_problems(problems)),
            AppError::Malformed(problems) => ApiError::BadRequest(with_problems(problems)),
            AppError::Unavailable(m) => {
                ApiError::ServiceUnavailable(body(ErrorCode::ServiceUnavailable, m))
            }
            AppError::Conflict(m) => ApiError::Conflict(body(ErrorCode::Conflict, m)),
            AppError::BadCredentials => {
                ApiError::Unauthorized(body(ErrorCode::BadCredentials, err.to_string()))
            }
            AppError::Auth(a) => a.into(),
            AppError::NotFound(_) => ApiError::NotFound(body(ErrorCode::NotFound, err.to_string())),
            AppError::InsufficientCredits(m) => {
                ApiError::PaymentRequired(body(ErrorCode::InsufficientCredits, m))
            }
            AppError::TooLarge(m) => ApiError::PayloadTooLarge(body(ErrorCode::PayloadTooLarge, m)),
            AppError::QuotaExceeded(m) => {
                ApiError::PayloadTooLarge(body(ErrorCode::StorageQuotaExceeded, m))
            }
            AppError::Removed(m) => ApiError::Gone(body(ErrorCode::ResultExpired, m)),
            AppError::Unreadable(m) => ApiError::BadRequest(body(ErrorCode::InvalidRequest, m)),
            AppError::BadSignature(m) => ApiError::BadRequest(body(ErrorCode::InvalidSignature, m)),
            AppError::BillingNotConfigured(m) => {
                ApiError::ServiceUnavailable(body(ErrorCode::BillingNotConfigured, m))
            }
            AppError::PaymentProvider(m) => {
                ApiError::BadGateway(body(ErrorCode::PaymentProviderError, m))
            }
            AppError::RateLimited(wait) => ApiError::TooManyRequests(
                body(ErrorCode::RateLimited, err.to_string()),
                retry_after_secs(wait).to_string(),
            ),
            AppError::Busy(m, wait) => ApiError::TooManyRequests(
                body(ErrorCode::TooManyActiveRuns, m),
                retry_after_secs(wait).to_string(),
            ),
            AppError::Store(_)
            | AppError::Registry(_)
            | AppError::Results(_)
            | AppError::Encoding(_)
            | AppError::Hashing(_)
            | AppError::Minting(_)
            | AppError::Task(_)
            | AppError::Fault(_) => {
                tracing::error!(error = %err, "internal error");
                ApiError::internal()
            }
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(err: AuthError) -> Self {
        let message = err.to_string();
        match err {
            AuthError::Missing => ApiError::Unauthorized(body(ErrorCode::MissingApiKey, message)),
            AuthError::Rejected(TokenRejection::Invalid) => {
                ApiError::Unauthorized(body(ErrorCode::InvalidApiKey, message))
            }
            AuthError::Rejected(TokenRejection::Expired) => {
                ApiError::Unauthorized(body(ErrorCode::ExpiredApiKey, message))
            }
            AuthError::Rejected(TokenRejection::Restricted(_)) => {
                ApiError::Forbidden(body(ErrorCode::KeyRestricted, message))
            }
            AuthError::Revoked => ApiError::Unauthorized(body(ErrorCode::RevokedApiKey, message)),
            AuthError::Store(e) => AppError::from(e).into(),
        }
    }
}

/// The error statuses one `/api/v1` operation answers with, besides 500 (which any operation
/// may answer when something breaks on our side). Made by [`declare_errors!`].
///
/// Statuses answered before the operation runs belong here too: 400 for a body, query or path
/// parameter the framework cannot parse (a path parameter that is not UTF-8 once decoded),
/// 401/403 from the key's check, and on operations that take a body, 413/411 from the body
/// limit in front of every route and 415 for a body of another content type.
pub trait Declared: Send + Sync + 'static {
    /// The operation, for the log.
    const OPERATION: &'static str;
    const STATUSES: &'static [StatusCode];
}

/// Declares the error statuses of operations: `Name: [UNAUTHORIZED, …];` makes a type
/// `Name` for [`OpError<Name>`], the error response of the operation(s) that answer exactly
/// those statuses.
macro_rules! declare_errors {
    ($($(#[$doc:meta])* $name:ident: [$($status:ident),* $(,)?];)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl $crate::api::error::Declared for $name {
            const OPERATION: &'static str = stringify!($name);
            const STATUSES: &'static [poem::http::StatusCode] =
                &[$(poem::http::StatusCode::$status),*];
        }
    )*};
}
pub(crate) use declare_errors;

/// An error of one `/api/v1` operation, whose statuses `D` declares: the spec lists those
/// (with 500) and no others, so a client generated from it handles exactly what can happen.
///
/// Answering a status the operation does not declare would break that promise, so it is a
/// bug: it is logged at error level and answered as 500 in the shared body. The contract test
/// (`tests/api/contract.rs`) drives every operation into each error it can produce against the
/// served spec, so the path stays unreachable.
pub struct OpError<D> {
    error: ApiError,
    declared: PhantomData<D>,
}

impl<D: Declared> OpError<D> {
    fn is_declared(status: StatusCode) -> bool {
        status == StatusCode::INTERNAL_SERVER_ERROR || D::STATUSES.contains(&status)
    }
}

impl<D> std::fmt::Debug for OpError<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<D: Declared> ApiResponse for OpError<D> {
    fn meta() -> MetaResponses {
        let mut meta = ApiError::meta();
        meta.responses.retain(|r| {
            r.status
                .is_some_and(|s| Self::is_declared(StatusCode::from_u16(s).unwrap_or_default()))
        });
        assert_eq!(
            meta.responses.len(),
            D::STATUSES.len() + 1,
            "{} declares a status ApiError does not document",
            D::OPERATION
        );
        meta
    }

    fn register(registry: &mut Registry) {
        ApiError::register(registry);
    }
}

impl<D: Declared> poem::IntoResponse for OpError<D> {
    fn into_response(self) -> poem::Response {
        let status = self.error.status();
        if Self::is_declared(status) {
            return self.error.into_response();
        }
        tracing::error!(
            operation = D::OPERATION,
            status = status.as_u16(),
            error = ?self.error,
            "an operation answered a status it does not declare"
        );
        ApiError::internal().into_response()
    }
}

impl<D: Declared> From<OpError<D>> for poem::Error {
    fn from(err: OpError<D>) -> Self {
        poem::Error::from_response(poem::IntoResponse::into_response(err))
    }
}

impl<D> From<ApiError> for OpError<D> {
    fn from(error: ApiError) -> Self {
        OpError {
            error,
            declared: PhantomData,
        }
    }
}

impl<D> From<AppError> for OpError<D> {
    fn from(err: AppError) -> Self {
        ApiError::from(err).into()
    }
}

impl<D> From<AuthError> for OpError<D> {
    fn from(err: AuthError) -> Self {
        ApiError::from(err).into()
    }
}

impl<D> From<crate::domain::fmus::RegistryError> for OpError<D> {
    fn from(err: crate::domain::fmus::RegistryError) -> Self {
        ApiError::from(err).into()
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
        401 => ErrorCode::MissingApiKey,
        404 => ErrorCode::NotFound,
        405 => ErrorCode::MethodNotAllowed,
        406 => ErrorCode::NotAcceptable,
        411 => ErrorCode::LengthRequired,
        413 => ErrorCode::PayloadTooLarge,
        414 => ErrorCode::UriTooLong,
        415 => ErrorCode::UnsupportedMediaType,
        431 => ErrorCode::HeadersTooLarge,
        s if s >= 500 => ErrorCode::Internal,
        _ => ErrorCode::InvalidRequest,
    };
    // Name the parameter or body field at fault the way every other request problem is
    // named (poem-openapi names a body field in its message for an unknown field or a bound
    // broken, though not for a wrong type).
    let field = if let Some(param) = err.downcast_ref::<poem_openapi::error::ParseParamError>() {
        Some(param.name.to_string())
    } else if let Some(body) = err.downcast_ref::<poem_openapi::error::ParseRequestPayloadError>() {
        body.reason
            .split_once("field `")
            .and_then(|(_, rest)| rest.split_once('`'))
            .map(|(name, _)| name.to_string())
    } else {
        None
    };
    if let Some(field) = field {
        let message = err.to_string();
        let body = ErrorBody {
            code,
            problems: Some(vec![FieldProblem {
                field,
                message: message.clone(),
                code: None,
                line: None,
                column: None,
            }]),
            message,
        };
        return poem::IntoResponse::into_response(poem::IntoResponse::with_status(
            poem::web::Json(body),
            status,
        ));
    }
    let message = if status.is_server_error() {
        tracing::error!(error = %err, "internal error");
        "something went wrong on our side; it has been logged".to_string()
    } else {
        err.to_string()
    };
    crate::request::json_error(status, code, message)
}

#[cfg(test)]
mod tests {
    use poem::IntoResponse;
    use poem_openapi::ApiResponse;

    use super::{ApiError, OpError};

    declare_errors! {
        OnlyNotFound: [NOT_FOUND];
    }

    #[test]
    fn the_spec_lists_only_the_declared_statuses_and_500() {
        let statuses: Vec<_> = OpError::<OnlyNotFound>::meta()
            .responses
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses, [Some(404), Some(500)]);
    }

    #[tokio::test]
    async fn a_status_the_operation_does_not_declare_is_answered_as_500() {
        let declared: OpError<OnlyNotFound> = ApiError::not_found("run").into();
        assert_eq!(declared.into_response().status(), 404);

        let undeclared: OpError<OnlyNotFound> = ApiError::bad_request("no").into();
        let resp = undeclared.into_response();
        assert_eq!(resp.status(), 500);
        let body: serde_json::Value =
            serde_json::from_str(&resp.into_body().into_string().await.unwrap()).unwrap();
        assert_eq!(body["code"], "internal");
        assert!(body["message"].is_string());
    }
}
