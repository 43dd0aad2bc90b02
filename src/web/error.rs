//! The one place where errors become HTML for the dashboard: a full error page for a normal
//! request, or a small alert that htmx puts in the page's `#flash` region.

use poem::http::StatusCode;
use poem::{IntoResponse, Request, Response};

use super::layout::{self, Nav};
use crate::auth::AuthError;
use crate::auth::session::Session;
use crate::domain::error::AppError;

#[derive(Debug)]
pub enum WebError {
    /// Not logged in: go to the login page.
    LoginRequired,
    /// An error to show with its status.
    Status(StatusCode, String),
}

impl From<crate::domain::fmus::RegistryError> for WebError {
    fn from(err: crate::domain::fmus::RegistryError) -> Self {
        AppError::from(err).into()
    }
}

impl From<AppError> for WebError {
    fn from(err: AppError) -> Self {
        let status = match &err {
            AppError::Invalid(_) | AppError::Problems(_) | AppError::InvalidFmu(_) => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::BadCredentials | AppError::Auth(_) => StatusCode::UNAUTHORIZED,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::TooLarge(_) | AppError::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::Removed(_) => StatusCode::GONE,
            AppError::InsufficientCredits(_) => StatusCode::PAYMENT_REQUIRED,
            AppError::Unreadable(_) | AppError::BadSignature(_) | AppError::Malformed(_) => {
                StatusCode::BAD_REQUEST
            }
            AppError::BillingNotConfigured(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::PaymentProvider(_) => StatusCode::BAD_GATEWAY,
            AppError::RateLimited(_) | AppError::Busy(..) => StatusCode::TOO_MANY_REQUESTS,
            AppError::Store(_)
            | AppError::Registry(_)
            | AppError::Results(_)
            | AppError::Encoding(_)
            | AppError::Hashing(_)
            | AppError::Minting(_)
            | AppError::Task(_)
            | AppError::Fault(_) => {
                tracing::error!(error = %err, "internal error");
                return WebError::internal();
            }
        };
        if let AppError::Auth(AuthError::Store(e)) = &err {
            tracing::error!(error = %e, "internal error");
        }
        if let AppError::InvalidFmu(report) = &err
            && report.lenient_would_accept()
        {
            return WebError::Status(
                status,
                format!(
                    "{err}. To accept it anyway (its errors kept in its validation report), tick \
                     \"Accept it despite errors\" and upload it again."
                ),
            );
        }
        WebError::Status(status, err.to_string())
    }
}

impl WebError {
    /// Something broke on our side (already logged).
    pub fn internal() -> Self {
        WebError::Status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Something went wrong on our side. It has been logged; please try again.".into(),
        )
    }

    /// Renders for this request: htmx requests get a fragment retargeted to `#flash` (or a
    /// client-side redirect to the login page), others a full page or a 303.
    pub fn into_response_for(self, req: &Request) -> Response {
        let htmx = req.headers().contains_key("hx-request");
        self.render(htmx, req.extensions().get::<Session>())
    }

    /// Renders with what was saved of the request (the middleware that calls this no longer
    /// has it).
    pub fn render(self, htmx: bool, session: Option<&Session>) -> Response {
        match self {
            WebError::LoginRequired if htmx => Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header("HX-Redirect", super::paths::LOGIN)
                .finish(),
            WebError::LoginRequired => super::see_other(super::paths::LOGIN),
            WebError::Status(status, message) if htmx => {
                let body = layout::alert("error", &message).into_string();
                Response::builder()
                    .status(status)
                    .content_type("text/html; charset=utf-8")
                    .header("HX-Retarget", "#flash")
                    .header("HX-Reswap", "innerHTML")
                    .body(body)
            }
            WebError::Status(status, message) => {
                let title = status.canonical_reason().unwrap_or("Error");
                let content = maud::html! {
                    h1 { (title) }
                    (layout::alert("error", &message))
                    p { a href=(super::paths::HOME) { "Back to the dashboard" } }
                };
                let body = layout::page(title, Nav::None, session, content).into_string();
                Response::builder()
                    .status(status)
                    .content_type("text/html; charset=utf-8")
                    .body(body)
            }
        }
    }
}

impl std::fmt::Display for WebError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WebError::LoginRequired => f.write_str("login required"),
            WebError::Status(s, m) => write!(f, "{s}: {m}"),
        }
    }
}

impl std::error::Error for WebError {}

impl poem::error::ResponseError for WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::LoginRequired => StatusCode::SEE_OTHER,
            WebError::Status(s, _) => *s,
        }
    }
}

/// Renders every error of the wrapped routes as HTML: ours ([`WebError`]) and the
/// framework's (an unparsable form, an unknown route).
pub async fn render_errors<E: poem::Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let htmx = req.headers().contains_key("hx-request");
    let session = req.extensions().get::<Session>().cloned();
    match next.call(req).await {
        Ok(resp) => Ok(resp.into_response()),
        Err(err) if err.is_from_response() => Ok(err.into_response()),
        Err(err) => {
            // The matched route stays with the answer (for /metrics).
            let pattern = err.data::<poem::PathPattern>().cloned();
            let web = match err.downcast::<WebError>() {
                Ok(web) => web,
                Err(other) => WebError::Status(other.status(), other.to_string()),
            };
            let mut resp = web.render(htmx, session.as_ref());
            if let Some(pattern) = pattern {
                resp.set_data(pattern);
            }
            Ok(resp)
        }
    }
}
