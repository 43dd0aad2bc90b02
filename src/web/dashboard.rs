//! The dashboard: greeting, credits, the primary key, recent activity, quick actions, docs.

use maud::html;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Response, handler};

use super::error::WebError;
use super::layout::{self, Nav, when};
use super::{CurrentSession, html, paths};
use crate::state::State;

#[handler]
pub async fn page(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
) -> Result<Response, WebError> {
    let keys = crate::domain::keys::list(&state.store, &s.user.id).await?;
    let primary = crate::domain::keys::primary(&keys);
    let recent = crate::domain::usage::recent(&state.store, &s.user.id, 5).await?;
    let days = crate::domain::usage::per_day(&state.store, &s.user.id, 14).await?;
    let bars: Vec<(String, f64)> = days
        .iter()
        .map(|(day, _, credits)| {
            (
                crate::domain::rfc3339_ms(*day)[5..10].to_string(),
                *credits as f64,
            )
        })
        .collect();
    let runs_in_period: i64 = days.iter().map(|(_, n, _)| n).sum();
    let plan = crate::domain::billing::plan_of(&state, &s.user.id).await?;
    let who = s.user.name.as_deref().unwrap_or(&s.user.email);
    let content = html! {
        h1 { "Hello, " (who) }
        div.cards {
            section.card aria-labelledby="credits-h" {
                h2 #credits-h { "Credits" }
                p.big #credits { (s.user.credits) }
                p.muted {
                    @if plan.id != crate::domain::billing::plans::FREE { "Latest credit pack: " (plan.name) ". " }
                    "Each simulation run costs " (state.config.run_cost.describe()) "."
                }
                a href=(paths::BILLING) { "Buy credits" }
            }
            section.card aria-labelledby="key-h" {
                h2 #key-h { "Primary API key" }
                @if let Some(k) = primary {
                    p { strong { (k.label) } " " code { (k.id) } }
                    p.muted { "Last used: " @if let Some(t) = k.last_used_at { (when(t)) } @else { "never" } }
                    p.muted { "The secret was shown once, when the key was created. Mark another key as primary on the keys page." }
                } @else {
                    p { "You have no active API key." }
                }
                a href=(paths::KEYS) { "Manage keys" }
            }
            section.card aria-labelledby="actions-h" {
                h2 #actions-h { "Quick actions" }
                ul.plain {
                    li { a href=(paths::RUNS) { "Start a run" } }
                    li { a href=(paths::KEYS) { "Create an API key" } }
                    li { a href=(paths::USAGE) { "See usage" } }
                    li { a href=(paths::USAGE_EXPORT) download { "Export usage as CSV" } }
                    li { a href=(paths::BILLING) { "Credits and billing" } }
                }
            }
            section.card aria-labelledby="docs-h" {
                h2 #docs-h { "Documentation" }
                ul.plain {
                    li { a href=(paths::API_DOCS) { "Interactive API docs" } }
                    li { a href=(paths::OPENAPI_JSON) { "OpenAPI spec (JSON)" } " — generate a client" }
                    li { a href="/api/v1/keys/public-key" { "Root public key" } " — verify keys offline" }
                }
            }
        }
        section aria-labelledby="first-run-h" {
            h2 #first-run-h { "Run from your terminal" }
            p.muted {
                "Create a key on the " a href=(paths::KEYS) { "API Keys" } " page, put it in $"
                (super::landing::KEY_VARIABLE) ", and run:"
            }
            (super::landing::curl_block(&state.config.public_url))
        }
        section aria-labelledby="chart-h" {
            h2 #chart-h { "Credits spent per day" }
            p.muted { (runs_in_period) @if runs_in_period == 1 { " run" } @else { " runs" } " in the last 14 days." }
            figure { (super::charts::bar_chart(&bars, &super::charts::BarOptions { y_label: Some("credits".into()), title: None, whole: true })) }
        }
        section aria-labelledby="recent-h" {
            h2 #recent-h { "Recent activity" }
            @if recent.is_empty() {
                p.muted { "Nothing yet. Runs you start appear here." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Date" } th scope="col" { "FMU" } th scope="col" { "Credits" } } }
                    tbody { @for r in &recent { tr { td { (when(r.created_at)) } td { (r.fmu_name) } td.num { (r.credits) } } } }
                }
                p { a href=(paths::USAGE) { "All usage →" } }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page("Dashboard", Nav::Dashboard, Some(&s), content),
    ))
}
