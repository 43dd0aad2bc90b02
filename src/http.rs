//! The HTTP application: every route, and the middleware that applies to all of them
//! (security headers, the access log, shared state).

use poem::endpoint::BoxEndpoint;
use poem::http::{HeaderValue, header};
use poem::middleware::{CatchPanic, CookieJarManager};
use poem::web::Data;
use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, get, handler, post};

use crate::api::{self, compat, error::framework_error};
use crate::state::State;
use crate::web::{self, paths};

/// Builds the whole application around the shared state.
pub fn app(state: State) -> impl Endpoint {
    let json = |ep: BoxEndpoint<'static, Response>| {
        ep.catch_all_error(|e| async move { framework_error(e) })
    };
    let cookie_routes = Route::new()
        .at(paths::HOME, get(web::home))
        .at(
            paths::LOGIN,
            get(web::auth_pages::login_page).post(ByContentType {
                json: json(compat::login.boxed()).boxed(),
                form: web::auth_pages::login_form.boxed(),
            }),
        )
        .at(
            paths::REGISTER,
            get(web::auth_pages::register_page).post(ByContentType {
                json: json(compat::register.boxed()).boxed(),
                form: web::auth_pages::register_form.boxed(),
            }),
        )
        .at(
            paths::LOGOUT,
            get(web::auth_pages::logout_page).post(web::auth_pages::logout),
        )
        .at(paths::DASHBOARD, get(web::dashboard::page))
        .at(paths::KEYS, get(web::keys::page).post(web::keys::create))
        .at(paths::KEY_REVOKE, post(web::keys::revoke))
        // The dashboard page, and the JSON list the original SDK reads at the same path.
        .at(
            paths::USAGE,
            get(ByCaller {
                page: web::usage::show.boxed(),
                api: json(compat::usage_list.boxed()).boxed(),
            }),
        )
        .at(paths::RUNS, get(web::runs::index).post(web::runs::create))
        .at(paths::RUN_FIELDS, get(web::runs::fields))
        .at(paths::RUN, get(web::runs::show))
        .at(paths::RUN_ROW, get(web::runs::row))
        .at(paths::RUN_CSV, get(web::runs::csv))
        .at(
            paths::LIBRARY,
            get(ByAccept {
                html: web::library::index.boxed(),
                json: json(compat::fmus::library.boxed()).boxed(),
            })
            .post(web::library::upload),
        )
        .at(paths::LIBRARY_MODEL, get(web::library::model))
        .at("/fmus", post(json(compat::fmus::upload.boxed())))
        .at(
            "/registry/fmus",
            get(json(compat::fmus::registry_list.boxed())),
        )
        .at("/simulate", post(json(compat::runs::simulate.boxed())))
        .at(
            "/simulations/:run_id",
            get(json(compat::runs::simulation.boxed())),
        )
        .at(
            "/execute_fmu",
            post(json(compat::runs::execute_fmu.boxed())),
        )
        .at(
            "/fmus/:id/variables",
            get(json(compat::fmus::variables.boxed())),
        )
        .at(
            "/fmus/by-hash/:sha256",
            get(json(compat::fmus::by_hash.boxed())),
        )
        .at(paths::BILLING, get(web::billing::page))
        .at(paths::BILLING_CHECKOUT, post(web::billing::checkout))
        .at(paths::BILLING_PORTAL, post(web::billing::portal))
        .at(paths::BILLING_STATUS, get(web::billing::status))
        .at(
            "/purchase",
            post(json(api::compat::billing::purchase.boxed())),
        )
        // Compatibility routes (JSON errors; cookie or API key).
        .at("/usage/", get(json(compat::usage_list.boxed())))
        .at("/usage/recent", get(json(compat::usage_recent.boxed())))
        .at(paths::USAGE_EXPORT, get(json(compat::usage_export.boxed())))
        .at("/api_keys/", get(json(compat::keys_list.boxed())))
        .at("/api_keys/new", post(json(compat::keys_new.boxed())))
        .at(
            "/api_keys/revoke/:id",
            post(json(compat::keys_revoke.boxed())),
        )
        .around(web::error::render_errors)
        .around(web::middleware::sessions);

    let public_url = state.config.public_url.clone();
    let access_log = crate::telemetry::AccessLogger::new(&state.config.logging);
    Route::new()
        .nest("/", cookie_routes)
        .nest("/api", api::routes(&public_url))
        .at(
            paths::STRIPE_WEBHOOK,
            post(json(api::compat::billing::stripe_webhook.boxed())),
        )
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

/// Sends JSON requests to one endpoint and forms to another: `POST /login` and
/// `POST /register` serve both the dashboard's forms and existing JSON clients.
struct ByContentType {
    json: BoxEndpoint<'static, Response>,
    form: BoxEndpoint<'static, Response>,
}

impl Endpoint for ByContentType {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        if is_json {
            self.json.call(req).await
        } else {
            self.form.call(req).await
        }
    }
}

/// Sends browsers (HTML wanted) to one endpoint and API clients to another: `GET /library`
/// is both the dashboard page and the JSON list existing clients read.
struct ByAccept {
    html: BoxEndpoint<'static, Response>,
    json: BoxEndpoint<'static, Response>,
}

impl Endpoint for ByAccept {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if web::wants_html(&req) {
            self.html.call(req).await
        } else {
            self.json.call(req).await
        }
    }
}

/// Sends API clients to one endpoint and browsers to another where a dashboard page shares its
/// path with a JSON route of the original service (`GET /usage`). An API client is a request
/// that does not ask for HTML and either carries an API key or has no cookies at all (so a
/// client whose key is missing gets a JSON 401, not the login page).
struct ByCaller {
    page: BoxEndpoint<'static, Response>,
    api: BoxEndpoint<'static, Response>,
}

impl Endpoint for ByCaller {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        let has_key = crate::auth::key_from_headers(req.headers()).is_some();
        let has_cookie = req.headers().contains_key(header::COOKIE);
        if !web::wants_html(&req) && (has_key || !has_cookie) {
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
    let database_ok = state
        .db
        .run(|conn| Ok(conn.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
        .await
        .is_ok();
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

/// The largest body a request may carry: uploads up to the configured upload size (plus room
/// for the multipart framing), everything else — JSON, forms, `/register`, `/login`,
/// `/simulate` — `max_json_bytes`.
fn body_limit(config: &crate::config::Config, req: &Request) -> (u64, bool) {
    let upload = req.method() == poem::http::Method::POST
        && UPLOAD_ROUTES.contains(&req.uri().path().trim_end_matches('/'));
    if upload {
        (config.max_upload_bytes.saturating_add(1 << 20), true)
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
    let refuse = |status: poem::http::StatusCode, message: String| {
        Ok(crate::request::json_error(
            status,
            "payload_too_large",
            message,
        ))
    };
    let too_large = |n: Option<u64>| {
        let what = if upload { "upload" } else { "request body" };
        let size = n.map_or("larger than that".into(), |n| format!("{n} bytes"));
        refuse(
            poem::http::StatusCode::PAYLOAD_TOO_LARGE,
            format!("the {what} is {size}; the limit here is {max} bytes"),
        )
    };
    match length {
        Some(n) if n > max => too_large(Some(n)),
        Some(_) => Ok(next.call(req).await?.into_response()),
        None if upload => refuse(
            poem::http::StatusCode::LENGTH_REQUIRED,
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
