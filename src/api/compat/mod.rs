//! Unversioned routes that existing automated clients call. Their request and response shapes
//! are frozen (see DESIGN.md); underneath they call the same domain functions as `/api/v1`.
//!
//! GET routes here also accept a browser session (the dashboard's "Export CSV" links to
//! `/usage/export`); POST routes with a session need its CSRF token, which the session
//! middleware enforces.
pub mod billing;
pub mod fmus;
pub mod runs;

use std::marker::PhantomData;

use poem::endpoint::BoxEndpoint;
use poem::http::StatusCode;
use poem::web::{Data, Json, Path, Query};
use poem::{
    Body, Endpoint, EndpointExt, FromRequest, IntoResponse, Request, RequestBody, Response, get,
    handler, post,
};
use serde::{Deserialize, Serialize};

use crate::api::auth::{ManageKeys, Operation, ReadUsage};
use crate::api::error::{ApiError, framework_error};
use crate::auth::session::Session;
use crate::auth::tokens::RequestFacts;
use crate::auth::{self, AuthError, Principal};
use crate::domain::accounts::{self, Registration};
use crate::domain::ids::KeyId;
use crate::domain::rfc3339_ms;
use crate::domain::usage::{self, UsageQuery};
use crate::request::{ClientIp, FaceRoutes};
use crate::session_guard::{Policy, Refusal};
use crate::state::State;
use crate::store::usage::UsageRow;

/// The compatibility routes: each behind the session middleware (GET accepts a browser
/// session; a POST with one needs its CSRF token) and our JSON errors, never the HTML
/// renderer. Stripe's webhooks take no session: Stripe signs them.
///
/// `/login`, `/register`, `/usage` and `/library` are also dashboard pages: what is here is
/// what API clients get there, and `http` (the one module that knows both faces) sends each
/// request on such a path to one face or the other.
pub fn routes() -> FaceRoutes {
    fn json(ep: impl Endpoint + 'static) -> BoxEndpoint<'static> {
        ep.catch_all_error(|e| async move { framework_error(e) })
            .around(crate::session_guard::sessions::<Compat, _>)
            .boxed()
    }
    fn webhook() -> BoxEndpoint<'static> {
        post(billing::stripe_webhook)
            .catch_all_error(|e| async move { framework_error(e) })
            .boxed()
    }
    vec![
        ("/login", json(post(login))),
        ("/register", json(post(register))),
        // The original SDK reads usage at the dashboard's path as well as at `/usage/`.
        ("/usage", json(get(usage_list))),
        ("/library", json(get(fmus::library))),
        ("/usage/", json(get(usage_list))),
        ("/usage/recent", json(get(usage_recent))),
        ("/usage/export", json(get(usage_export))),
        ("/api_keys/", json(get(keys_list))),
        ("/api_keys/new", json(post(keys_new))),
        ("/api_keys/revoke/:id", json(post(keys_revoke))),
        ("/fmus", json(post(fmus::upload))),
        ("/registry/fmus", json(get(fmus::registry_list))),
        ("/fmus/:id/variables", json(get(fmus::variables))),
        ("/fmus/by-hash/:sha256", json(get(fmus::by_hash))),
        ("/simulate", json(post(runs::simulate))),
        ("/simulations/:run_id", json(get(runs::simulation))),
        ("/execute_fmu", json(post(runs::execute_fmu))),
        ("/purchase", json(post(billing::purchase))),
        ("/stripe/webhook", webhook()),
        // Stripe may be set up to post here instead; it is not part of the client API.
        ("/api/v1/billing/webhook", webhook()),
    ]
}

/// The session rules for the compatibility routes: every refusal is our JSON error.
struct Compat;

impl Policy for Compat {
    fn refuse(_req: &Request, refusal: Refusal) -> Response {
        crate::request::json_error(refusal.status(), refusal.code(), refusal.message())
    }
}

/// A caller of a compatibility route, by API key or browser session, allowed operation `O`.
pub struct Caller<O> {
    pub principal: Principal,
    _op: PhantomData<O>,
}

impl<'a, O: Operation> FromRequest<'a> for Caller<O> {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let principal = principal_for(req, RequestFacts::op(O::NAME)).await?;
        Ok(Caller {
            principal,
            _op: PhantomData,
        })
    }
}

/// An API key in the headers wins; without one, the browser session.
pub(crate) async fn principal_for(
    req: &Request,
    facts: RequestFacts,
) -> Result<Principal, ApiError> {
    let state = req
        .data::<State>()
        .expect("state is attached to every route");
    if let Some(key) = auth::key_from_headers(req.headers()) {
        return Ok(auth::authenticate_key(state, key, facts).await?);
    }
    match req.extensions().get::<Session>() {
        Some(s) => Ok(Principal {
            user_id: s.user.id.clone(),
            key_id: None,
        }),
        None => Err(AuthError::Missing.into()),
    }
}

#[derive(Deserialize)]
pub struct RegisterBody {
    email: String,
    name: Option<String>,
    password: Option<String>,
}

#[derive(Serialize)]
struct Registered {
    user_id: String,
    email: String,
    api_key: String,
    credits: i64,
    /// Set when the account started without the free credits (the per-address daily cap).
    #[serde(skip_serializing_if = "Option::is_none")]
    notice: Option<String>,
}

/// `POST /register` (JSON): an account and its first API key.
#[handler]
pub async fn register(
    state: Data<&State>,
    ClientIp(ip): ClientIp,
    body: Json<RegisterBody>,
) -> Result<Response, ApiError> {
    let state = *state;
    accounts::throttle(state, ip)?;
    let reg = Registration {
        email: &body.email,
        password: body.password.as_deref(),
        name: body.name.as_deref(),
        first_key: Some("Default key"),
        from: Some(ip),
    };
    let done = accounts::register(state, reg).await?;
    let notice = done
        .free_credits_withheld
        .then(|| accounts::withheld_notice(state));
    let api_key = done.key.map(|k| k.token).unwrap_or_default();
    let out = Registered {
        user_id: done.user.id.to_string(),
        email: done.user.email,
        api_key,
        credits: done.user.credits.get(),
        notice,
    };
    Ok(Json(out).with_status(StatusCode::CREATED).into_response())
}

#[derive(Deserialize)]
pub struct LoginBody {
    api_key: Option<String>,
    email: Option<String>,
    password: Option<String>,
}

#[derive(Serialize)]
struct LoggedIn {
    token: String,
    user_id: String,
    credits: i64,
    api_key: String,
}

/// How long a key minted by an email + password login over JSON lives.
const LOGIN_KEY_DAYS: u64 = 30;

/// `POST /login` (JSON): `{api_key}` checks the key and hands it back; `{email, password}`
/// mints a new key (labelled, expiring after 30 days, listed on the keys page) because keys
/// are never stored and so cannot be handed out again.
#[handler]
pub async fn login(
    state: Data<&State>,
    ClientIp(ip): ClientIp,
    body: Json<LoginBody>,
) -> Result<Response, ApiError> {
    let state = *state;
    accounts::throttle(state, ip)?;
    let body = body.0;
    let (user, key) = match (body.api_key, body.email, body.password) {
        (Some(key), _, _) => {
            let (user, _) = accounts::login_with_key(state, &key).await?;
            (user, key.trim().to_string())
        }
        (None, Some(email), Some(password)) => {
            let user = accounts::login_with_password(state, &email, &password).await?;
            let expires = std::time::SystemTime::now()
                + std::time::Duration::from_secs(LOGIN_KEY_DAYS * 86_400);
            let key =
                crate::domain::keys::create(state, &user.id, Some("API login"), Some(expires))
                    .await?;
            (user, key.token)
        }
        _ => {
            return Err(ApiError::bad_request(
                "send {\"api_key\": …} or {\"email\": …, \"password\": …}",
            ));
        }
    };
    Ok(Json(LoggedIn {
        token: key.clone(),
        user_id: user.id.to_string(),
        credits: user.credits.get(),
        api_key: key,
    })
    .into_response())
}

#[derive(Serialize)]
struct UsageEntry {
    id: i64,
    date: String,
    fmu_name: String,
    credits_used: i64,
    api_key_id: Option<String>,
    run_id: Option<String>,
}

impl From<UsageRow> for UsageEntry {
    fn from(r: UsageRow) -> Self {
        UsageEntry {
            id: r.id,
            date: rfc3339_ms(r.created_at),
            fmu_name: r.fmu_name,
            credits_used: r.credits.get(),
            api_key_id: r.api_key_id.map(String::from),
            run_id: r.run_id.map(String::from),
        }
    }
}

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<u32>,
    offset: Option<u64>,
}

/// `GET /usage/`: newest first, `?limit=` (default 100, at most 500) and `?offset=`.
#[handler]
pub async fn usage_list(
    state: Data<&State>,
    caller: Caller<ReadUsage>,
    Query(p): Query<ListParams>,
) -> Result<Json<Vec<UsageEntry>>, ApiError> {
    let query = UsageQuery {
        descending: true,
        ..UsageQuery::default()
    };
    let page = usage::page(
        &state.store,
        &caller.principal.user_id,
        query,
        p.limit.unwrap_or(100),
        p.offset.unwrap_or(0),
    )
    .await?;
    Ok(Json(page.rows.into_iter().map(Into::into).collect()))
}

/// `GET /usage/recent`: the ten newest rows.
#[handler]
pub async fn usage_recent(
    state: Data<&State>,
    caller: Caller<ReadUsage>,
) -> Result<Json<Vec<UsageEntry>>, ApiError> {
    let rows = usage::recent(&state.store, &caller.principal.user_id, 10).await?;
    Ok(Json(rows.into_iter().map(Into::into).collect()))
}

#[derive(Deserialize)]
pub struct ExportParams {
    key: Option<String>,
}

/// `GET /usage/export`: every row as CSV, streamed.
#[handler]
pub async fn usage_export(
    state: Data<&State>,
    caller: Caller<ReadUsage>,
    Query(p): Query<ExportParams>,
) -> Response {
    let query = UsageQuery {
        api_key_id: p.key.filter(|k| !k.is_empty()).map(KeyId::from),
        descending: true,
        ..UsageQuery::default()
    };
    let stream = usage::export_csv(&state.store, &caller.principal.user_id, query);
    Response::builder()
        .content_type("text/csv; charset=utf-8")
        .header(
            "Content-Disposition",
            "attachment; filename=\"fmu-gateway-usage.csv\"",
        )
        .body(Body::from_bytes_stream(stream))
}

#[derive(Serialize)]
struct KeyEntry {
    id: String,
    label: String,
    created_at: String,
    last_used_at: Option<String>,
    revoked: bool,
    run_count: i64,
}

/// `GET /api_keys/`.
#[handler]
pub async fn keys_list(
    state: Data<&State>,
    caller: Caller<ManageKeys>,
) -> Result<Json<Vec<KeyEntry>>, ApiError> {
    let keys = crate::domain::keys::list(&state.store, &caller.principal.user_id).await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| KeyEntry {
                id: k.id.to_string(),
                label: k.label,
                created_at: rfc3339_ms(k.created_at),
                last_used_at: k.last_used_at.map(rfc3339_ms),
                revoked: k.revoked_at.is_some(),
                run_count: k.run_count,
            })
            .collect(),
    ))
}

#[derive(Deserialize, Default)]
pub struct NewKeyBody {
    label: Option<String>,
}

#[derive(Serialize)]
struct NewKeyOut {
    id: String,
    label: String,
    api_key: String,
    created_at: String,
}

/// `POST /api_keys/new` `{label?}` → 201 with the secret, once. An empty body is allowed.
#[handler]
pub async fn keys_new(
    state: Data<&State>,
    caller: Caller<ManageKeys>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = body
        .into_bytes()
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let parsed: NewKeyBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        NewKeyBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?
    };
    let key = crate::domain::keys::create(
        &state,
        &caller.principal.user_id,
        parsed.label.as_deref(),
        None,
    )
    .await?;
    let out = NewKeyOut {
        id: key.row.id.to_string(),
        label: key.row.label,
        api_key: key.token,
        created_at: rfc3339_ms(key.row.created_at),
    };
    Ok(Json(out).with_status(StatusCode::CREATED).into_response())
}

#[derive(Serialize)]
struct Revoked {
    id: String,
    revoked: bool,
    revoked_at: Option<String>,
}

/// `POST /api_keys/revoke/{id}`.
#[handler]
pub async fn keys_revoke(
    state: Data<&State>,
    caller: Caller<ManageKeys>,
    Path(id): Path<String>,
) -> Result<Json<Revoked>, ApiError> {
    let row =
        crate::domain::keys::revoke(&state.store, &caller.principal.user_id, &KeyId::from(id))
            .await?;
    Ok(Json(Revoked {
        id: row.id.to_string(),
        revoked: true,
        revoked_at: row.revoked_at.map(rfc3339_ms),
    }))
}
