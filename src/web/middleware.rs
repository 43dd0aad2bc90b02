//! The session middleware for every cookie-authenticated route (the dashboard and the
//! compatibility routes): finds the session behind the cookie and enforces CSRF on
//! state-changing requests before any handler runs.

use poem::http::{Method, StatusCode, header};
use poem::{Body, Endpoint, IntoResponse, Request, Response};

use super::error::WebError;
use crate::auth::{self, csrf, session};
use crate::state::State;

/// Largest form body this layer reads to find the token; forms here are tiny.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// A session whose CSRF token is in a multipart body this layer does not read (the library's
/// upload form, which cannot set a header without JavaScript and must not put the token in
/// its URL, where logs would keep it). Only the upload handler accepts it, after checking the
/// token field that comes before the file ([`crate::web::library::upload`]); every other
/// handler sees no session at all.
#[derive(Clone)]
pub struct CsrfInBody(pub crate::auth::session::Session);

pub async fn sessions<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
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
        Some(token) => session::find(&state, &token)
            .await
            .map_err(|e| WebError::from(crate::domain::error::AppError::from(e)))?,
        None => None,
    };

    let unsafe_method = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    // A request that carries an API key is authenticated by that key alone (see above), so
    // there is no ambient credential to forge.
    if unsafe_method && !has_key {
        if csrf::is_cross_site(req.headers()) {
            return Ok(forbidden(&req, "cross-site requests are not accepted"));
        }
        let header_token = req.headers().contains_key(csrf::HEADER);
        if let Some(s) =
            found.take_if(|_| !header_token && is_multipart(&req) && is_upload_form(&req))
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
                        return Ok(WebError::Status(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "the form is too large".into(),
                        )
                        .into_response_for(&req));
                    };
                    let token = csrf::token_in_form(&bytes);
                    req.set_body(Body::from(bytes));
                    token
                }
                None => None,
            };
            if !presented.is_some_and(|t| csrf::token_matches(&t, &s.csrf_token)) {
                return Ok(forbidden(
                    &req,
                    "the form's security token is missing or out of date: reload the page and try again",
                ));
            }
        }
    }
    if let Some(s) = found {
        req.extensions_mut().insert(s);
    }
    Ok(next.call(req).await?.into_response())
}

fn is_multipart(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("multipart/form-data"))
}

/// The library's upload form (`POST /library`), the one multipart form with a session.
fn is_upload_form(req: &Request) -> bool {
    req.method() == Method::POST && req.uri().path() == super::paths::LIBRARY
}

fn is_form(req: &Request) -> bool {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
}

/// 403 as an HTML page or fragment for browsers, as our JSON error for API clients.
fn forbidden(req: &Request, message: &str) -> Response {
    if super::wants_html(req) {
        WebError::Status(StatusCode::FORBIDDEN, message.into()).into_response_for(req)
    } else {
        crate::request::json_error(StatusCode::FORBIDDEN, "csrf_failed", message)
    }
}
