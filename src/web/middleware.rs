//! The dashboard's side of the session middleware ([`crate::session_guard`]): what a refused
//! request looks like here, and the one form allowed to carry its CSRF token in a multipart
//! body.

use poem::http::Method;
use poem::{Request, Response};

use super::error::WebError;
use crate::session_guard::{Policy, Refusal};

pub use crate::session_guard::CsrfInBody;

/// The session rules for the dashboard's pages and forms.
pub struct Pages;

impl Policy for Pages {
    /// A refused form is a 403 page or fragment for browsers; a client that does not ask for
    /// HTML gets our JSON error. A form too large, or a failure on our side, is always a page.
    fn refuse(req: &Request, refusal: Refusal) -> Response {
        match refusal {
            Refusal::CrossSite | Refusal::StaleToken if !super::wants_html(req) => {
                crate::request::json_error(refusal.status(), refusal.code(), refusal.message())
            }
            Refusal::Internal => WebError::internal().into_response_for(req),
            _ => {
                WebError::Status(refusal.status(), refusal.message().into()).into_response_for(req)
            }
        }
    }

    /// The library's upload form (`POST /library`), the one multipart form with a session.
    fn token_in_multipart_body(req: &Request) -> bool {
        req.method() == Method::POST && req.uri().path() == super::paths::LIBRARY
    }
}

/// The session middleware with the dashboard's rules.
pub async fn sessions<E: poem::Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    crate::session_guard::sessions::<Pages, E>(next, req).await
}
