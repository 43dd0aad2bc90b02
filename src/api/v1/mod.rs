//! `/api/v1`: the versioned, described API. One module per resource; each handler takes the
//! caller and the parsed request, calls one domain function and shapes the answer.

pub mod account;
pub mod billing;
pub mod fmus;
pub mod keys;
pub mod runs;
pub mod usage;

use poem::{Endpoint, EndpointExt, IntoEndpoint, Route};
use poem_openapi::OpenApiService;

use crate::api::error::framework_error;

/// The OpenAPI service for `/api/v1`.
pub fn service(
    public_url: &str,
) -> OpenApiService<
    (
        account::AccountApi,
        keys::KeysApi,
        usage::UsageApi,
        fmus::FmusApi,
        runs::RunsApi,
        billing::BillingApi,
    ),
    (),
> {
    OpenApiService::new(
        (
            account::AccountApi,
            keys::KeysApi,
            usage::UsageApi,
            fmus::FmusApi,
            runs::RunsApi,
            billing::BillingApi,
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

/// What `http` nests at `/api`: the v1 operations, the spec and the interactive docs, with
/// every error (an unknown path under `/api` too) in our JSON shape.
pub fn routes(public_url: &str) -> impl Endpoint + use<> {
    let api = service(public_url);
    let spec = api.spec_endpoint();
    let docs = api.swagger_ui();
    Route::new()
        .nest("/v1", api.into_endpoint())
        .at("/openapi.json", spec)
        .nest("/docs", docs)
        .catch_all_error(|e| async move { framework_error(e) })
}
