//! Pages whose features grow in later work: runs, the model library, billing. Each shows what
//! exists today, with no pretend content.

use maud::html;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Response, handler};

use super::error::WebError;
use super::layout::{self, Nav, when};
use super::{CurrentSession, html, paths};
use crate::state::State;

#[handler]
pub fn runs(CurrentSession(s): CurrentSession) -> Response {
    let content = html! {
        h1 { "Runs" }
        p.muted { "You have no simulation runs yet." }
        p { "Simulation runs are not available on this server yet. Your usage and credits are on the "
            a href=(paths::USAGE) { "usage" } " page." }
    };
    html(
        StatusCode::OK,
        layout::page("Runs", Nav::Runs, Some(&s), content),
    )
}

/// Balance and the credit ledger. Purchases need Stripe, which this server has not set up.
#[handler]
pub async fn billing(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
) -> Result<Response, WebError> {
    let entries = crate::accounts::credit_history(&state, &s.user.id, 50).await?;
    let content = html! {
        h1 { "Billing" }
        section.card {
            h2 { "Credits" }
            p.big { (s.user.credits) }
            (layout::alert("info", "Billing is not configured on this server, so credits cannot be bought here. \
                                    Ask the operator to grant credits."))
        }
        section {
            h2 { "Credit history" }
            table {
                thead { tr { th scope="col" { "Date" } th scope="col" { "Change" } th scope="col" { "Balance" } th scope="col" { "Reason" } } }
                tbody {
                    @for e in &entries {
                        tr {
                            td { (when(e.created_at)) }
                            td.num { @if e.delta > 0 { "+" } (e.delta) }
                            td.num { (e.balance_after) }
                            td { (e.reason) }
                        }
                    }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page("Billing", Nav::Billing, Some(&s), content),
    ))
}
