//! `/api/v1`: the versioned, described API. One module per resource; each handler takes the
//! caller and the parsed request, calls one domain function and shapes the answer.

pub mod account;
pub mod billing;
pub mod fmus;
pub mod keys;
pub mod runs;
pub mod usage;

use poem::endpoint::make_sync;
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
    let generated = api.spec();
    let spec = crate::api::spec::refine(&generated);
    // Swagger UI embeds the document it is given: give it the refined one.
    let docs = api
        .swagger_ui_html()
        .replacen(&generated, &spec, 1)
        .replacen(
            "<head>",
            r#"<head><meta name="viewport" content="width=device-width, initial-scale=1">"#,
            1,
        );
    let spec_json = move |_| {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(spec.clone())
    };
    let docs_html = move |_| poem::web::Html(docs.clone());
    Route::new()
        .nest("/v1", api.into_endpoint())
        .at("/openapi.json", poem::get(make_sync(spec_json)))
        .at("/docs", poem::get(make_sync(docs_html.clone())))
        .at("/docs/", poem::get(make_sync(docs_html)))
        .catch_all_error(|e| async move { framework_error(e) })
}
