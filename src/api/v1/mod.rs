//! `/api/v1`: the versioned, described API. One module per resource; each handler takes the
//! caller and the parsed request, calls one domain function and shapes the answer.

pub mod account;
pub mod billing;
mod examples;
pub mod fmus;
pub mod keys;
pub mod runs;
pub mod states;
pub mod usage;
pub mod validation;

use poem::endpoint::make_sync;
use poem::{Endpoint, EndpointExt, IntoEndpoint, IntoResponse, Route};
use poem_openapi::OpenApiService;

use crate::api::error::framework_error;

/// Every v1 resource's operations, in the order the spec lists them.
type Operations = (
    account::AccountApi,
    keys::KeysApi,
    usage::UsageApi,
    fmus::FmusApi,
    runs::RunsApi,
    states::StatesApi,
    billing::BillingApi,
);

/// The OpenAPI service for `/api/v1`.
pub fn service(public_url: &str) -> OpenApiService<Operations, ()> {
    OpenApiService::new(
        (
            account::AccountApi,
            keys::KeysApi,
            usage::UsageApi,
            fmus::FmusApi,
            runs::RunsApi,
            states::StatesApi,
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
pub fn routes(public_url: &str, config: &crate::config::Config) -> impl Endpoint + use<> {
    let api = service(public_url);
    let generated = api.spec();
    let spec = crate::api::spec::refine(&generated, config);
    let methods = crate::api::spec::PathMethods::of(&spec);
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
        .around(move |inner, req| with_allow(inner, req, methods.clone()))
}

/// A 405 from the router says which methods the path has (`Allow`, as RFC 9110 requires).
async fn with_allow<E: Endpoint>(
    inner: E,
    req: poem::Request,
    methods: crate::api::spec::PathMethods,
) -> poem::Result<poem::Response> {
    let path = req.original_uri().path().to_string();
    let mut resp = inner.call(req).await?.into_response();
    if resp.status() == poem::http::StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = path
            .strip_prefix(crate::web::paths::API_V1)
            .and_then(|p| methods.allowed(p))
            .and_then(|a| poem::http::HeaderValue::from_str(a).ok())
    {
        resp.headers_mut().insert(poem::http::header::ALLOW, allow);
    }
    Ok(resp)
}
