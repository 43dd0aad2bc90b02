//! The JSON API: `/api/v1` (poem-openapi, described at `/api/openapi.json`, browsable at
//! `/api/docs`) and the unversioned compatibility routes that existing clients use.
//!
//! Handlers here are thin: take the caller and the parsed request, call one domain function,
//! shape the answer. The HTML face calls the same domain functions.

pub mod auth;
pub mod body;
pub mod choice;
pub mod compat;
pub mod error;
pub mod result_value;
pub mod spec;
pub mod text;
pub mod v1;

/// The spec as JSON text (for the snapshot test and `fmu-gateway openapi`).
/// With the default configuration: a server's own settings are in what it serves.
pub fn spec_json() -> String {
    let config = crate::config::Config::local(".".into());
    spec::refine(&v1::service("http://localhost:8080").spec(), &config)
}

/// An RFC 3339 time for JSON answers.
pub(crate) fn time(ms: i64) -> String {
    crate::domain::rfc3339_ms(ms)
}
