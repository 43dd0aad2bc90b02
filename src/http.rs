//! The HTTP application: the faces' routes merged in one table, and the middleware that
//! applies to all of them (security headers, body limits, metrics, the access log, panics).
//!
//! Each face builds its own routes behind its own middleware: the dashboard
//! ([`web::routes`]: sessions, HTML errors), the compatibility JSON routes
//! ([`compat::routes`]: sessions, JSON errors) and `/api` ([`api::v1::routes`]: keys, JSON
//! errors). This is the only module that knows them all.

use std::collections::BTreeMap;

use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderValue, Method, header};
use poem::middleware::{CatchPanic, CookieJarManager};
use poem::web::Data;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler};

use crate::api::{self, compat, error::framework_error};
use crate::request::{ErrorCode, FaceRoutes};
use crate::state::State;
use crate::web::{self, paths};

/// Builds the whole application around the shared state.
pub fn app(state: State) -> impl Endpoint {
    let public_url = state.config.public_url.clone();
    let access_log = crate::telemetry::AccessLogger::new(&state.config.logging);
    merge(web::routes(), compat::routes())
        .nest("/api", api::v1::routes(&public_url, &state.config))
        .nest("/", web::fallback())
        .at("/assets/:name", get(web::assets::serve))
        .at("/health", get(health))
        .at("/ready", get(ready))
        .at("/metrics", get(crate::metrics::serve))
        // A nest (`/api`) refuses a path whose rest is not UTF-8 once decoded before the face
        // inside it sees the request; answer that in the API's JSON like any other 400.
        .catch_error(|e: poem::error::ParsePathError| async move { framework_error(e.into()) })
        .with(CookieJarManager::new())
        .with(CatchPanic::new())
        .around(security_headers)
        .around(limit_body)
        .around(crate::metrics::count_requests)
        .data(state)
        .with(access_log)
}

/// The dashboard's and the compatibility routes in one table. A path both serve answers
/// through [`Shared`], which sends each request to one face.
fn merge(web: FaceRoutes, compat: FaceRoutes) -> Route {
    let mut compat: BTreeMap<&str, BoxEndpoint<'static>> = compat.into_iter().collect();
    let mut route = Route::new();
    for (path, page) in web {
        route = match compat.remove(path) {
            Some(api) => route.at(
                path,
                Shared {
                    rule: Rule::of(path),
                    page,
                    api,
                },
            ),
            None => route.at(path, page),
        };
    }
    for (path, api) in compat {
        route = route.at(path, api);
    }
    route
}

/// How a request on a path both faces serve finds its face. The rules live here rather than
/// in either face because choosing needs both: each face only says what it serves at the path.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// `POST /login`, `POST /register`: JSON from existing clients, forms from the dashboard.
    JsonPost,
    /// `GET /usage`: the dashboard page, and the JSON list the original SDK reads. An API
    /// client is a request that does not ask for HTML and either carries an API key or has no
    /// cookies at all (so a client whose key is missing gets a JSON 401, not the login page).
    ApiCallerGet,
    /// `GET /library`: the page for browsers (HTML wanted), the JSON list for API clients.
    NotHtmlGet,
}

impl Rule {
    fn of(path: &str) -> Rule {
        match path {
            paths::LOGIN | paths::REGISTER => Rule::JsonPost,
            paths::USAGE => Rule::ApiCallerGet,
            paths::LIBRARY => Rule::NotHtmlGet,
            _ => panic!("both faces serve {path}: say in http::Rule which face a request gets"),
        }
    }

    /// Whether `req` goes to the compatibility routes (else to the dashboard).
    fn wants_api(self, req: &Request) -> bool {
        match self {
            Rule::JsonPost => {
                req.method() == Method::POST
                    && req
                        .headers()
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|ct| ct.starts_with("application/json"))
            }
            Rule::ApiCallerGet => {
                let has_key = crate::auth::key_from_headers(req.headers()).is_some();
                let has_cookie = req.headers().contains_key(header::COOKIE);
                is_get(req) && !web::wants_html(req) && (has_key || !has_cookie)
            }
            Rule::NotHtmlGet => is_get(req) && !web::wants_html(req),
        }
    }
}

fn is_get(req: &Request) -> bool {
    matches!(*req.method(), Method::GET | Method::HEAD)
}

/// A path both faces serve: each request goes to the face its [`Rule`] picks.
struct Shared {
    rule: Rule,
    page: BoxEndpoint<'static>,
    api: BoxEndpoint<'static>,
}

impl Endpoint for Shared {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if self.rule.wants_api(&req) {
            self.api.call(req).await
        } else {
            self.page.call(req).await
        }
    }
}

/// `GET /health`: the process is up.
#[handler]
fn health() -> poem::web::Json<serde_json::Value> {
    poem::web::Json(serde_json::json!({ "status": "ok", "version": env!("CARGO_PKG_VERSION") }))
}

/// `GET /ready`: the database answers and the start-up self-test simulated (503 with the
/// reason otherwise).
#[handler]
async fn ready(state: Data<&State>) -> Response {
    let database_ok = state.store.ping().await.is_ok();
    // One measurement for both the verdict and the figure.
    let free = crate::machine::free_disk_bytes(&state.config.data_dir);
    let report = state.readiness.report(
        database_ok,
        crate::machine::reserve_problem(&free, state.config.disk_reserve_bytes),
        free.as_ref().ok().copied(),
    );
    let status = if report.ready {
        poem::http::StatusCode::OK
    } else {
        poem::http::StatusCode::SERVICE_UNAVAILABLE
    };
    poem::web::Json(report).with_status(status).into_response()
}

/// The policy for our own pages: everything from our origin, no inline script or style, no
/// framing. The API docs page (Swagger UI, bundled by poem-openapi) needs inline script and
/// style, so it alone gets those. A page that sets its own policy keeps it (billing widens
/// `form-action` to Stripe).
pub const CSP: &str = "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
const CSP_DOCS: &str = "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; base-uri 'self'; frame-ancestors 'none'";

async fn security_headers<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let docs = req.uri().path().starts_with(paths::API_DOCS);
    let mut resp = next.call(req).await?.into_response();
    let h = resp.headers_mut();
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(if docs { CSP_DOCS } else { CSP }));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("strict-origin-when-cross-origin"),
    );
    h.insert(
        "Cross-Origin-Opener-Policy",
        HeaderValue::from_static("same-origin"),
    );
    Ok(resp)
}

/// The routes that take an FMU upload (multipart); every other route gets the small limit.
const UPLOAD_ROUTES: &[&str] = &[paths::LIBRARY, "/fmus", "/execute_fmu", "/api/v1/fmus"];

/// The route that takes an FMU state file (raw bytes, at most `MAX_STATE_BYTES`).
const STATE_UPLOAD_ROUTE: &str = "/api/v1/states";

/// The largest body a request may carry: uploads up to the configured upload size (plus room
/// for the multipart framing), everything else — JSON, forms, `/register`, `/login`,
/// `/simulate` — `max_json_bytes`.
fn body_limit(config: &crate::config::Config, req: &Request) -> (u64, bool) {
    let upload = req.method() == poem::http::Method::POST
        && UPLOAD_ROUTES.contains(&req.uri().path().trim_end_matches('/'));
    if upload {
        (config.max_upload_bytes.saturating_add(1 << 20), true)
    } else if req.method() == poem::http::Method::POST
        && req.uri().path().trim_end_matches('/') == STATE_UPLOAD_ROUTE
    {
        (crate::sim::fmu_state::MAX_STATE_BYTES, true)
    } else {
        (config.max_json_bytes, false)
    }
}

/// Guards every request body before anything reads it:
/// 1. a request that carries an API key must carry a live one of ours (signature and
///    revocation checked; 401 otherwise), so a made-up key cannot make us read a body;
/// 2. a body above its route's limit (see [`body_limit`]) is refused with 413 by its
///    `Content-Length`, which hyper enforces, unread;
/// 3. a body without a length is read here up to the limit and refused with 413 beyond it;
///    on upload routes, which are too large to hold in memory, it is refused with 411.
async fn limit_body<E: Endpoint>(next: E, mut req: Request) -> poem::Result<Response> {
    let length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    if !chunked && length.unwrap_or(0) == 0 {
        return Ok(next.call(req).await?.into_response());
    }
    let state = req
        .data::<State>()
        .expect("state is attached to every route")
        .clone();
    if let Some(key) = crate::auth::key_from_headers(req.headers())
        && let Err(e) = crate::auth::identify_key(&state, key).await
    {
        return Ok(poem::Error::from(crate::api::error::ApiError::from(e)).into_response());
    }
    let (max, upload) = body_limit(&state.config, &req);
    let refuse = |status: poem::http::StatusCode, code: ErrorCode, message: String| {
        Ok(crate::request::json_error(status, code, message))
    };
    let too_large = |n: Option<u64>| {
        let what = if upload { "upload" } else { "request body" };
        let size = n.map_or("larger than that".into(), |n| format!("{n} bytes"));
        refuse(
            poem::http::StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::PayloadTooLarge,
            format!("the {what} is {size}; the limit here is {max} bytes"),
        )
    };
    match length {
        Some(n) if n > max => too_large(Some(n)),
        Some(_) => Ok(next.call(req).await?.into_response()),
        None if upload => refuse(
            poem::http::StatusCode::LENGTH_REQUIRED,
            ErrorCode::LengthRequired,
            "send a Content-Length with the upload".into(),
        ),
        None => {
            let limit = usize::try_from(max).unwrap_or(usize::MAX);
            match req.take_body().into_bytes_limit(limit).await {
                Ok(bytes) => {
                    req.set_body(bytes);
                    Ok(next.call(req).await?.into_response())
                }
                Err(poem::error::ReadBodyError::PayloadTooLarge) => too_large(None),
                Err(e) => Err(e.into()),
            }
        }
    }
}
