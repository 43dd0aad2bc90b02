//! The dashboard: server-rendered pages (maud) whose parts htmx swaps in place.
//!
//! One module per page. Each table or card is one function that renders both inside the full
//! page and as the fragment an htmx request gets back, so the two cannot drift. Every action
//! is also a plain form post, so the dashboard works without JavaScript.

pub mod assets;
pub mod auth_pages;
pub mod billing;
pub mod charts;
pub mod dashboard;
pub mod error;
pub mod keys;
pub mod layout;
pub mod library;
pub mod middleware;
pub mod paths;
pub mod runs;
pub mod usage;

use maud::Markup;
use poem::http::StatusCode;
use poem::{FromRequest, Request, RequestBody, Response, handler};

use crate::auth::session::Session;
use error::WebError;

/// The logged-in user's session; without one the request goes to the login page.
pub struct CurrentSession(pub Session);

impl<'a> FromRequest<'a> for CurrentSession {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        match req.extensions().get::<Session>() {
            Some(s) => Ok(CurrentSession(s.clone())),
            None => Err(WebError::LoginRequired.into()),
        }
    }
}

/// Whether to answer with just the fragment: an htmx request, except when htmx restores
/// history and needs the whole page.
pub struct WantsFragment(pub bool);

impl<'a> FromRequest<'a> for WantsFragment {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let h = req.headers();
        Ok(WantsFragment(
            h.contains_key("hx-request") && !h.contains_key("hx-history-restore-request"),
        ))
    }
}

/// `/`: the dashboard for a logged-in user, the login page otherwise.
#[handler]
pub fn home(req: &Request) -> Response {
    let to = if req.extensions().get::<Session>().is_some() {
        paths::DASHBOARD
    } else {
        paths::LOGIN
    };
    see_other(to)
}

/// `path?query` with the pairs form-encoded, as the page's own `Query` extractor decodes them.
pub fn with_query<'a>(path: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{path}?{query}")
}

/// A 303 redirect (after a form post, or to the login page).
pub fn see_other(to: &str) -> Response {
    Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header("Location", to)
        .finish()
}

/// An HTML answer. `Vary: HX-Request` because one URL answers a page or a fragment.
pub fn html(status: StatusCode, markup: Markup) -> Response {
    Response::builder()
        .status(status)
        .content_type("text/html; charset=utf-8")
        .header("Vary", "HX-Request")
        .header("Cache-Control", "no-store")
        .body(markup.into_string())
}

/// Whether the client is a browser (wants HTML) rather than an API client.
pub fn wants_html(req: &Request) -> bool {
    req.headers().contains_key("hx-request")
        || req
            .headers()
            .get("accept")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"))
}

#[cfg(test)]
mod tests {
    use super::with_query;

    #[test]
    fn query_values_come_back_as_they_went_in() {
        let awkward = "a b&c=d+e%f/ü~*#";
        let url = with_query("/usage", [("key", awkward), ("page", "2")]);
        let (path, query) = url.split_once('?').unwrap();
        assert_eq!(path, "/usage");
        assert!(!query.contains(' ') && !query.contains('#'), "{query}");
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            pairs,
            [("key", awkward), ("page", "2")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
        // Plain values are written as they are, as before.
        assert_eq!(
            with_query(
                "/billing/status",
                [("session_id", "cs_test_1"), ("polls", "3")]
            ),
            "/billing/status?session_id=cs_test_1&polls=3"
        );
    }
}
