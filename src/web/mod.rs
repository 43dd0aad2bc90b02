//! The dashboard: server-rendered pages (maud) whose parts htmx swaps in place.
//!
//! One module per page. Each table or card is one function that renders both inside the full
//! page and as the fragment an htmx request gets back, so the two cannot drift. Every action
//! is also a plain form post, so the dashboard works without JavaScript.

pub mod account;
pub mod assets;
pub mod auth_pages;
pub mod billing;
pub mod charts;
pub mod dashboard;
pub mod error;
pub mod keys;
pub mod landing;
pub mod layout;
pub mod library;
pub mod middleware;
pub mod password_reset;
pub mod paths;
pub mod plots;
pub mod run_form;
pub mod run_workspace;
pub mod runs;
pub mod sweep_form;
pub mod sweeps;
pub mod usage;
pub mod webhooks;

use maud::Markup;
use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::{Endpoint, EndpointExt, FromRequest, Request, RequestBody, Response, get, post};

use crate::auth::session::Session;
use crate::request::FaceRoutes;
use error::WebError;

/// The HTML face: pages, fragments and forms, each behind the session middleware and the
/// HTML error renderer. The home page and the 404 page are [`fallback`].
///
/// `/login`, `/register`, `/usage` and `/library` are also compatibility JSON routes: what is
/// here is what browsers get there, and `http` (the one module that knows both faces) sends
/// each request on such a path to one face or the other.
pub fn routes() -> FaceRoutes {
    vec![
        (
            paths::LOGIN,
            page(get(auth_pages::login_page).post(auth_pages::login_form)),
        ),
        (
            paths::REGISTER,
            page(get(auth_pages::register_page).post(auth_pages::register_form)),
        ),
        (
            paths::CONFIRM_SIGNUP,
            page(get(auth_pages::confirm_page).post(auth_pages::confirm)),
        ),
        (
            paths::LOGOUT,
            page(get(auth_pages::logout_page).post(auth_pages::logout)),
        ),
        (paths::DASHBOARD, page(get(dashboard::page))),
        (paths::KEYS, page(get(keys::page).post(keys::create))),
        (paths::KEY_REVOKE, page(post(keys::revoke))),
        (paths::KEY_PRIMARY, page(post(keys::make_primary))),
        (paths::USAGE, page(get(usage::show))),
        (paths::RUNS, page(get(runs::index).post(runs::create))),
        (paths::RUN_FIELDS, page(get(runs::fields))),
        (paths::RUN, page(get(runs::show))),
        (paths::RUN_ROW, page(get(runs::row))),
        (paths::RUN_CSV, page(get(runs::csv))),
        (paths::RUN_JSON, page(get(runs::json))),
        (paths::RUN_MAT, page(get(runs::mat))),
        (paths::RUN_PARQUET, page(get(runs::parquet))),
        (paths::RUN_CANCEL, page(post(run_workspace::cancel))),
        (paths::RUN_AGAIN, page(post(run_workspace::again))),
        (
            paths::LIBRARY,
            page(get(library::index).post(library::upload)),
        ),
        (paths::LIBRARY_MODEL, page(get(library::model))),
        (paths::LIBRARY_DELETE, page(post(library::delete))),
        (paths::BILLING, page(get(billing::page))),
        (paths::BILLING_CHECKOUT, page(post(billing::checkout))),
        (paths::BILLING_PORTAL, page(post(billing::portal))),
        (paths::BILLING_STATUS, page(get(billing::status))),
        (paths::RUN_PLOT_JSON, page(get(plots::json))),
        (paths::RUN_PLOT_SVG, page(get(plots::svg))),
        (paths::RUNS_COMPARE, page(get(plots::compare))),
        (paths::RUNS_COMPARE_SVG, page(get(plots::compare_svg))),
        (paths::ACCOUNT, page(get(account::page))),
        (paths::ACCOUNT_NAME, page(post(account::rename))),
        (
            paths::ACCOUNT_PASSWORD,
            page(post(account::change_password)),
        ),
        (paths::ACCOUNT_SESSION_END, page(post(account::end_session))),
        (paths::ACCOUNT_DELETE, page(post(account::delete))),
        (
            paths::WEBHOOKS,
            page(get(webhooks::page).post(webhooks::create)),
        ),
        (paths::WEBHOOK_ENABLED, page(post(webhooks::set_enabled))),
        (paths::WEBHOOK_ROTATE, page(post(webhooks::rotate))),
        (paths::WEBHOOK_DELETE, page(post(webhooks::delete))),
        (paths::WEBHOOK_RESEND, page(post(webhooks::resend))),
        (
            paths::FORGOT_PASSWORD,
            page(get(password_reset::forgot_page).post(password_reset::forgot)),
        ),
        (
            paths::RESET_PASSWORD,
            page(get(password_reset::reset_page).post(password_reset::reset)),
        ),
        (paths::SWEEPS, page(get(sweeps::index).post(sweeps::create))),
        (paths::SWEEP, page(get(sweeps::show))),
        (paths::SWEEP_EVENTS, page(get(sweeps::events))),
        (paths::SWEEP_CANCEL, page(post(sweeps::cancel))),
        (paths::SWEEP_CASES_CSV, page(get(sweeps::cases_csv))),
        (paths::SWEEP_CASES_PARQUET, page(get(sweeps::cases_parquet))),
        (paths::SWEEP_SCATTER_SVG, page(get(sweeps::scatter_svg))),
        (paths::SWEEP_OVERLAY, page(get(sweeps::overlay))),
    ]
}

/// What `http` nests at `/`, behind every other route: the home page, and the 404 page for
/// any path no face serves. (A catch-all route would not do: it would win over `/` itself.)
pub fn fallback() -> BoxEndpoint<'static> {
    page(poem::Route::new().at(paths::HOME, get(landing::home)))
}

/// A page's endpoint behind the dashboard's middleware.
fn page(ep: impl Endpoint + 'static) -> BoxEndpoint<'static> {
    ep.around(error::render_errors)
        .around(middleware::sessions)
        .boxed()
}

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
