//! `/api/v1`: the versioned, described API. One module per resource; each handler takes the
//! caller and the parsed request, calls one domain function and shapes the answer.

pub mod account;
pub mod billing;
mod examples;
pub mod fmus;
pub mod keys;
pub mod runs;
pub mod states;
pub mod sweeps;
pub mod usage;
pub mod validation;
pub mod webhooks;

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
    sweeps::SweepsApi,
    billing::BillingApi,
    webhooks::WebhooksApi,
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
            sweeps::SweepsApi,
            billing::BillingApi,
            webhooks::WebhooksApi,
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
    let docs = docs_page(&api.swagger_ui_html().replacen(&generated, &spec, 1));
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

/// Swagger UI's page as poem-openapi makes it, made one of ours: standards mode, a viewport
/// for phones, a title, the dashboard's dark theme (`docs.css`, after Swagger's own styles) and
/// a way back to the dashboard. The additions go just before Swagger's mount point, found
/// after its bundled script, so nothing inside that script can be matched instead.
fn docs_page(swagger: &str) -> String {
    const MOUNT: &str = r#"<div id="ui"></div>"#;
    const HEAD: &str = r#"<!DOCTYPE html><html lang="en"><head><meta name="viewport" content="width=device-width, initial-scale=1"><title>API docs · FMU Gateway</title>"#;
    let top = format!(
        r#"<link rel="stylesheet" href="{css}"><header class="docs-bar"><a class="docs-back" href="{dashboard}">← Dashboard</a><span>FMU Gateway API</span><a href="{spec}">openapi.json</a></header>"#,
        css = crate::web::assets::url("docs.css"),
        dashboard = crate::web::paths::DASHBOARD,
        spec = crate::web::paths::OPENAPI_JSON,
    );
    let swagger = swagger
        .trim_start()
        .replacen(r#"<html charset="UTF-8">"#, "", 1)
        .replacen("<head>", HEAD, 1)
        .replacen("<title>Swagger UI</title>", "", 1);
    match swagger.find(MOUNT) {
        Some(at) => format!("{}{top}{}", &swagger[..at], &swagger[at..]),
        None => swagger,
    }
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
