//! The billing page (purchases arrive with Stripe; today it shows credits and their history).

use maud::html;
use poem::http::StatusCode;
use poem::web::Data;
use poem::{Response, handler};

use super::error::WebError;
use super::layout::{self, Nav, when};
use super::{CurrentSession, html};
use crate::state::State;

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
