//! The session middleware in front of every route that accepts a browser session, in either
//! face (the dashboard's pages and forms; the compatibility JSON routes): finds the session
//! behind the cookie and enforces CSRF on state-changing requests before any handler runs.
//!
//! The rules are one piece of code for both faces; only what a refusal looks like (an HTML
//! page or our JSON error) is the face's, given as a [`Policy`]. This module renders nothing
//! itself, so it never imports a face.

use poem::http::{Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};

use crate::auth::session::Session;
use crate::auth::{self, csrf, session};
use crate::state::State;

/// Largest form body this layer reads to find the token; forms here are tiny.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Why a request is refused before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A state-changing request from another site.
    CrossSite,
    /// A state-changing request with a session but without its CSRF token.
    StaleToken,
    /// A form too large to look for the token in.
    FormTooLarge,
    /// The session could not be looked up (logged here).
    Internal,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::CrossSite | Refusal::StaleToken => StatusCode::FORBIDDEN,
            Refusal::FormTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code of our JSON error body.
    pub fn code(self) -> crate::request::ErrorCode {
        use crate::request::ErrorCode;
        match self {
            Refusal::CrossSite | Refusal::StaleToken => ErrorCode::CsrfFailed,
            Refusal::FormTooLarge => ErrorCode::PayloadTooLarge,
            Refusal::Internal => ErrorCode::Internal,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::CrossSite => "cross-site requests are not accepted",
            Refusal::StaleToken => {
                "the form's security token is missing or out of date: reload the page and try again"
            }
            Refusal::FormTooLarge => "the form is too large",
            Refusal::Internal => "something went wrong on our side; it has been logged",
        }
    }
}

/// What differs between the faces that put sessions in front of their routes.
pub trait Policy: Send + Sync + 'static {
    /// The answer to a refused request, in the face's own shape.
    fn refuse(req: &Request, refusal: Refusal) -> Response;

    /// Whether `req` may carry its CSRF token in a multipart body this layer does not read
    /// (only the dashboard's upload form): its handler then gets a [`CsrfInBody`] instead of
    /// a session, and checks the token field that comes before the file.
    fn token_in_multipart_body(_req: &Request) -> bool {
        false
    }
}

/// A session whose CSRF token is in a multipart body this layer does not read (the library's
/// upload form, which cannot set a header without JavaScript and must not put the token in
/// its URL, where logs would keep it). Only the handler its [`Policy`] names accepts it;
/// every other handler sees no session at all.
#[derive(Clone)]
pub struct CsrfInBody(pub Session);

/// The middleware: attaches the [`Session`] behind the cookie to the request, after checking
/// CSRF on state-changing requests; refuses the request, as `P` says, when that fails.
pub async fn sessions<P: Policy, E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let state = req
        .data::<State>()
        .expect("state is attached to every route")
        .clone();
    let name = session::cookie_name(&state.config);
    // A request that carries an API key is the key's: its cookie is ignored, so no session
    // is attached and a forged cross-site request cannot ride on one. (Refusing such
    // requests instead would break API clients that share a cookie jar with a browser.)
    let has_key = auth::key_from_headers(req.headers()).is_some();
    let cookie = req
        .cookie()
        .get(name)
        .map(|c| c.value_str().to_string())
        .filter(|_| !has_key);
    let mut found = match cookie {
        Some(token) => match session::find(&state, &token).await {
            Ok(found) => found,
            Err(e) => {
                tracing::error!(error = %e, "internal error: finding a session");
                return Ok(P::refuse(&req, Refusal::Internal));
            }
        },
        None => None,
    };

    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // A request that carries an API key is authenticated by that key alone (see above), so
    // there is no ambient credential to forge.
    if unsafe_method && !has_key {
        if csrf::is_cross_site(req.headers()) {
            return Ok(P::refuse(&req, Refusal::CrossSite));
        }
        let header_token = req.headers().contains_key(csrf::HEADER);
        if let Some(s) = found
            .take_if(|_| !header_token && is_multipart(&req) && P::token_in_multipart_body(&req))
        {
            req.extensions_mut().insert(CsrfInBody(s));
        }
        if let Some(s) = &found {
            let presented = match req
                .headers()
                .get(csrf::HEADER)
                .and_then(|v| v.to_str().ok())
            {
                Some(t) => Some(t.to_string()),
                None if is_form(&req) => {
                    let bytes = req.take_body().into_bytes_limit(MAX_FORM_BYTES).await;
                    let Ok(bytes) = bytes else {
                        return Ok(P::refuse(&req, Refusal::FormTooLarge));
                    };
                    let token = csrf::token_in_form(&bytes);
                    req.set_body(Body::from(bytes));
                    token
                }
                None => None,
            };
            if !presented.is_some_and(|t| csrf::token_matches(&t, &s.csrf_token)) {
                return Ok(P::refuse(&req, Refusal::StaleToken));
            }
        }
    }
    if let Some(s) = found {
        req.extensions_mut().insert(s);
    }
    Ok(next.call(req).await?.into_response())
}

fn is_multipart(req: &Request) -> bool {
    content_type_is(req, "multipart/form-data")
}

fn is_form(req: &Request) -> bool {
    content_type_is(req, "application/x-www-form-urlencoded")
}

fn content_type_is(req: &Request, wanted: &str) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with(wanted))
}
