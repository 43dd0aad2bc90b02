//! Request plumbing both faces share (the JSON API and the dashboard): who the client is,
//! and the one JSON error body. It belongs to neither face, so neither imports the other for
//! it, and middleware of either face answers errors in the same shape.

use std::net::IpAddr;

use poem::http::StatusCode;
use poem::{FromRequest, IntoResponse, Request, RequestBody, Response};
use poem_openapi::Object;

use crate::state::State;

#[derive(Object, Debug, Clone, serde::Serialize)]
#[oai(example)]
pub struct ErrorBody {
    /// Stable machine-readable code: what went wrong, for programs.
    pub code: ErrorCode,
    /// What went wrong, for humans.
    pub message: String,
    /// For `invalid_request` on a run: every problem found, each with the field at fault, so
    /// a client can fix them all at once.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<FieldProblem>>,
}

/// One thing wrong with a request.
#[derive(Object, Debug, Clone, serde::Serialize)]
pub struct FieldProblem {
    /// The field at fault: `stop_time`, `start_values.<name>`, `outputs.<name>`,
    /// `inputs.<name>`, … For `invalid_fmu`: the element or archive entry at fault
    /// (`<Float64 name="h">`).
    pub field: String,
    pub message: String,
    /// For `invalid_fmu`: the validation code (as in `GET /fmus/{id}/validation`).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// For `invalid_fmu`: 1-based line and column in `modelDescription.xml`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

/// Our JSON error answer (`{"code", "message"}`) with `status`, for code outside the API's
/// typed responses (middleware, framework errors).
pub fn json_error(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Response {
    poem::web::Json(ErrorBody {
        code,
        message: message.into(),
        problems: None,
    })
    .with_status(status)
    .into_response()
}

/// Defines [`ErrorCode`] from one table: each code once, with the statuses it is sent with
/// and what it means.
macro_rules! error_codes {
    ($($code:ident => [$($status:literal),+], $meaning:literal;)*) => {
        // The one list: the spec's enums (one per status, see `api::spec`), the README's
        // table (tested against `ErrorCode::ALL`) and every answer are made from it, so a
        // code cannot be sent without being documented.
        /// Every `code` an error body can carry; each error status's body lists the ones that
        /// status carries, and the README says what each means.
        #[derive(poem_openapi::Enum, serde::Serialize, Debug, Clone, Copy, PartialEq, Eq)]
        #[oai(rename_all = "snake_case")]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($code,)*
        }

        impl ErrorCode {
            pub const ALL: &[ErrorCode] = &[$(ErrorCode::$code),*];

            pub fn info(self) -> CodeInfo {
                match self {
                    $(ErrorCode::$code => CodeInfo {
                        statuses: &[$($status),+],
                        meaning: $meaning,
                    },)*
                }
            }
        }
    };
}

error_codes! {
    InvalidRequest => [400, 422],
        "400: the request does not match the spec (malformed JSON, a wrong type, an unknown \
         field or query value); 422: it does, but cannot be done as asked (settings the model \
         refuses, a short password…). `problems` lists each field at fault when there are \
         several.";
    InvalidSignature => [400], "a Stripe webhook whose signature does not verify";
    MissingApiKey => [401], "no API key (or session) was sent";
    InvalidApiKey => [401], "the API key is not one of ours";
    ExpiredApiKey => [401], "the API key has expired";
    RevokedApiKey => [401], "the API key was revoked";
    BadCredentials => [401], "wrong email or password";
    InvalidFmu => [422],
        "the uploaded FMU's validation found errors: `problems` lists each with its `code`, \
         `line` and `column` (upload with `lenient=true` to accept what can still be read)";
    InsufficientCredits => [402], "the balance cannot pay for the run: buy credits";
    KeyRestricted => [403],
        "the key is valid but its restrictions (attenuation) forbid this request";
    CsrfFailed => [403], "a browser form without its security token, or cross-site";
    Forbidden => [403], "`/metrics` without the metrics token";
    NotFound => [404], "no such thing, or it belongs to someone else";
    MethodNotAllowed => [405], "the path exists, the method does not (see `Allow`)";
    NotAcceptable => [406], "`Accept` allows none of the media types served";
    Conflict => [409],
        "the request conflicts with the current state (already exists, already finished, no \
         results yet)";
    ResultExpired => [410], "the run's results were removed after retention";
    LengthRequired => [411], "an upload without `Content-Length`";
    PayloadTooLarge => [413], "the body is larger than the limit";
    StorageQuotaExceeded => [413], "the upload would exceed the account's storage";
    UriTooLong => [414], "the request line is too long";
    UnsupportedMediaType => [415], "the body is not of a content type the route takes";
    RateLimited => [429], "too many requests: retry after `Retry-After` seconds";
    TooManyActiveRuns => [429],
        "the account has as many runs in progress as it may: retry after `Retry-After`";
    HeadersTooLarge => [431], "the request's headers are too large or too many";
    Internal => [500], "something broke on our side; it has been logged";
    PaymentProviderError => [502],
        "the payment provider refused or did not answer; nothing was charged";
    ServiceUnavailable => [503],
        "simulations are unavailable for now (self-test failing, disk low)";
    BillingNotConfigured => [503], "this server has no payment provider configured";
}

/// What one [`ErrorCode`] means and the statuses it is sent with.
pub struct CodeInfo {
    pub statuses: &'static [u16],
    pub meaning: &'static str,
}

impl ErrorCode {
    /// The code's wire name (`invalid_request`, …), as serialised.
    pub fn name(self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(name)) => name,
            _ => unreachable!("a unit enum serialises as a string"),
        }
    }
}

/// The client's address: the TCP peer, or behind a trusted proxy (Fly.io) the address it
/// reports. Only used for rate limits.
pub struct ClientIp(pub IpAddr);

impl<'a> FromRequest<'a> for ClientIp {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let trust = req.data::<State>().is_some_and(|s| s.config.trust_proxy);
        let forwarded = || {
            let h = req.headers();
            let fly = h.get("fly-client-ip").and_then(|v| v.to_str().ok());
            let xff = h
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next());
            fly.or(xff).and_then(|ip| ip.trim().parse().ok())
        };
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let ip = if trust { forwarded().or(peer) } else { peer };
        Ok(ClientIp(ip.unwrap_or(IpAddr::from([0, 0, 0, 0]))))
    }
}

/// One face's share of the route table: each path with its endpoint, a method router already
/// behind the face's own middleware (the HTML error renderer, or our JSON errors). `http::app`
/// puts every face's share into one table, so neither face needs the other's routes.
pub type FaceRoutes = Vec<(&'static str, poem::endpoint::BoxEndpoint<'static>)>;
