//! The JSON API: `/api/v1` (poem-openapi, described at `/api/openapi.json`, browsable at
//! `/api/docs`) and the unversioned compatibility routes that existing clients use.
//!
//! Handlers here are thin: take the caller and the parsed request, call one domain function,
//! shape the answer. The HTML face calls the same domain functions.

pub mod auth;
pub mod choice;
pub mod compat;
pub mod error;
pub mod v1;

use poem::{Endpoint, EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;

/// The OpenAPI service for `/api/v1`.
pub fn service(
    public_url: &str,
) -> OpenApiService<
    (
        v1::account::AccountApi,
        v1::keys::KeysApi,
        v1::usage::UsageApi,
        v1::fmus::FmusApi,
        v1::runs::RunsApi,
        v1::billing::BillingApi,
    ),
    (),
> {
    OpenApiService::new(
        (
            v1::account::AccountApi,
            v1::keys::KeysApi,
            v1::usage::UsageApi,
            v1::fmus::FmusApi,
            v1::runs::RunsApi,
            v1::billing::BillingApi,
        ),
        "FMU Gateway API",
        env!("CARGO_PKG_VERSION"),
    )
    .description(
        "Run FMI 2.0 / 3.0 simulation models. Authenticate with an API key, as \
         `Authorization: Bearer fmugw_…` or `X-API-Key: fmugw_…`. Keys are biscuit tokens: \
         you can attenuate one offline (e.g. `check if operation(\"read_usage\")`) and send \
         the result as is. Errors are JSON `{code, message}`.",
    )
    .server(format!("{public_url}/api/v1"))
}

/// `/api/…`: the v1 routes, the spec and the interactive docs, with every error in our JSON
/// shape.
pub fn routes(public_url: &str) -> impl Endpoint + use<> {
    let api = service(public_url);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    Route::new()
        // Stripe posts here as well as to `/stripe/webhook`; not part of the client API.
        .at(
            "/v1/billing/webhook",
            poem::post(compat::billing::stripe_webhook)
                .catch_all_error(|e| async move { error::framework_error(e) }),
        )
        .nest(
            "/v1",
            api.into_endpoint()
                .catch_all_error(|e| async move { error::framework_error(e) }),
        )
        .at("/openapi.json", spec)
        .nest("/docs", docs)
}

/// The spec as JSON text (for the snapshot test and `fmu-gateway openapi`).
pub fn spec_json() -> String {
    service("http://localhost:8080").spec()
}

/// An RFC 3339 time for JSON answers.
pub(crate) fn time(ms: i64) -> String {
    crate::domain::rfc3339_ms(ms)
}
