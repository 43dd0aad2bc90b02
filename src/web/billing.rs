//! The billing page: plan and credits, plan cards that start Stripe Checkout, the Billing
//! Portal, purchases and the credit history, and the states Checkout comes back to.
//!
//! The plan and portal forms are plain form posts answered with a 303 to Stripe: an htmx
//! request could not follow a redirect to another origin. The page's CSP therefore allows
//! forms to go to Stripe (browsers apply `form-action` to the redirect too).

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use poem::{IntoResponse, Response, handler};
use serde::Deserialize;

use super::error::WebError;
use super::layout::{self, Nav, csrf_field, when};
use super::{CurrentSession, html, paths, see_other};
use crate::auth::session::Session;
use crate::domain::billing::plans::{Plan, money};
use crate::domain::billing::{self, Summary};
use crate::domain::ids::Credits;
use crate::state::State;
use crate::store::billing::Purchase;
use crate::store::ledger;

#[derive(Deserialize)]
pub struct Landing {
    /// `success` or `cancelled`, set by the URLs we give Checkout.
    checkout: Option<String>,
    session_id: Option<String>,
}

#[handler]
pub async fn page(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Query(landing): Query<Landing>,
) -> Result<Response, WebError> {
    let summary = billing::summary(&state, &s.user.id).await?;
    let content = view(&state, &s, &summary, &landing);
    let mut resp = html(
        StatusCode::OK,
        layout::page("Billing", Nav::Billing, Some(&s), content),
    );
    resp.headers_mut().insert(
        poem::http::header::CONTENT_SECURITY_POLICY,
        csp(&state.config.stripe_api_base)
            .parse()
            .expect("the policy is a valid header value"),
    );
    Ok(resp)
}

/// Our usual policy, with Stripe's hosted pages (and, in tests, the local stand-in that
/// serves them) allowed as form targets.
fn csp(api_base: &str) -> String {
    let mut targets = String::from("https://checkout.stripe.com https://billing.stripe.com");
    if !api_base.starts_with("https://api.stripe.com") {
        targets.push(' ');
        targets.push_str(api_base);
    }
    crate::http::CSP.replace(
        "form-action 'self'",
        &format!("form-action 'self' {targets}"),
    )
}

fn view(state: &State, s: &Session, b: &Summary, landing: &Landing) -> Markup {
    html! {
        h1 { "Billing" }
        @match (landing.checkout.as_deref(), landing.session_id.as_deref()) {
            (Some("success"), Some(id)) => {
                @let bought = b.purchases.iter().find(|p| p.checkout_session_id == id);
                (checkout_status(id, bought, 0))
            }
            (Some("cancelled"), _) => div role="status" {
                (layout::alert("info", "Checkout was cancelled. Nothing was charged."))
            },
            _ => {}
        }
        (account(state, s, b, false))
    }
}

/// Everything the page shows of the account: plan, credits, plans to buy, purchases, history.
/// Swapped in whole (out of band) when a payment is confirmed while the page is open.
fn account(state: &State, s: &Session, b: &Summary, oob: bool) -> Markup {
    html! {
        div #billing-account hx-swap-oob=[oob.then_some("true")] {
            @if let Some(flag) = &b.flag {
                (layout::alert("error", &format!("This account needs attention: {flag}. Please contact support.")))
            }
            div.cards {
                section.card aria-labelledby="plan-h" {
                    h2 #plan-h { "Latest credit pack" }
                    p.big #plan-name { (b.plan.name) }
                    p.muted { (b.plan.description) }
                    @if b.configured && b.has_customer {
                        form method="post" action=(paths::BILLING_PORTAL) {
                            (csrf_field(s))
                            button type="submit" { "Manage billing" }
                        }
                        p.muted { "Payment methods and billing details, on Stripe." }
                    }
                }
                section.card aria-labelledby="credits-h" {
                    h2 #credits-h { "Credits" }
                    p.big #credits { (b.credits) }
                    p.muted { "Each simulation run costs " (state.config.run_cost.describe()) "." }
                }
            }
            section aria-labelledby="plans-h" {
                h2 #plans-h { "Buy credits" }
                p.muted { "Credit packs are paid once: no subscription, nothing renews." }
                @if !b.configured {
                    (layout::alert("info", "Billing is not configured on this server, so credits cannot be bought here. \
                                            Ask the operator to grant credits."))
                }
                div.cards {
                    @for plan in state.billing.plans.paid() {
                        (plan_card(s, plan, b))
                    }
                }
            }
            (purchases_table(state, &b.purchases))
            (history_table(&b.history))
        }
    }
}

fn purchases_table(state: &State, purchases: &[Purchase]) -> Markup {
    let plan_name = |id: &str| {
        state
            .billing
            .plans
            .get(id)
            .map_or(id.to_string(), |p| p.name.clone())
    };
    html! {
        @if !purchases.is_empty() {
            section aria-labelledby="purchases-h" {
                h2 #purchases-h { "Purchases" }
                table {
                    thead { tr {
                        th scope="col" { "Date" } th scope="col" { "Plan" } th scope="col" { "Credits" }
                        th scope="col" { "Paid" } th scope="col" { "Refunded" }
                    } }
                    tbody {
                        @for p in purchases {
                            tr {
                                td { (when(p.created_at)) }
                                td { (plan_name(&p.plan)) }
                                td.num { (p.credits) }
                                td.num { (money(p.amount_cents, &p.currency)) }
                                td.num { @if p.refunded_cents > 0 { (money(p.refunded_cents, &p.currency)) } @else { "—" } }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// One line of the credit history: a run's reservation and its settlement read as one line
/// (what was held, then charged or refunded), every other ledger entry as itself.
#[derive(Debug, PartialEq)]
struct HistoryLine {
    /// When it began (a run's reservation).
    created_at: i64,
    /// The net change of the balance.
    delta: i64,
    /// The balance after the line's last entry.
    balance_after: i64,
    what: String,
    run_id: Option<crate::domain::ids::RunId>,
}

/// Folds the ledger's entries (newest first, as the store lists them) into history lines:
/// a run's entries (reserve, then settle or refund) become one line; a run still holding its
/// credit says so. Entries are only ever read together, never dropped: the sum of the lines'
/// deltas is the sum of the entries'.
fn history_lines(history: &[ledger::Entry]) -> Vec<HistoryLine> {
    use crate::store::ledger::EntryKind;
    let mut lines: Vec<HistoryLine> = Vec::new();
    // Oldest first, so a run's reservation opens its line and its settlement closes it.
    for e in history.iter().rev() {
        let run = e.run_id.clone();
        let open = run.as_ref().and_then(|id| {
            lines
                .iter_mut()
                .rev()
                .find(|l| l.run_id.as_ref() == Some(id))
        });
        let held = |delta: i64| Credits::new(-delta).map_or(delta.to_string(), |c| c.describe());
        match (e.kind, open) {
            (EntryKind::Settle | EntryKind::Refund, Some(line)) => {
                line.delta += e.delta;
                line.balance_after = e.balance_after.get();
                let held = held(line.delta - e.delta);
                line.what = match e.kind {
                    EntryKind::Refund => {
                        format!("{held} held, then refunded ({})", why_refunded(e))
                    }
                    _ => format!("{held} held, then charged"),
                };
            }
            (kind, _) => lines.push(HistoryLine {
                created_at: e.created_at,
                delta: e.delta,
                balance_after: e.balance_after.get(),
                what: match kind {
                    EntryKind::Reserve => format!("{} held while it runs", held(e.delta)),
                    EntryKind::Refund => format!("refunded ({})", why_refunded(e)),
                    _ => e.reason.clone(),
                },
                run_id: run,
            }),
        }
    }
    lines.reverse();
    lines
}

/// Why a run's credits were refunded, from the entry's reason (`Run <id> <why>: refunded`, as
/// `store::runs` writes it), in words; the reason whole when it is not in that form.
fn why_refunded(e: &ledger::Entry) -> String {
    e.run_id
        .as_ref()
        .and_then(|id| e.reason.strip_prefix(&format!("Run {id} ")))
        .and_then(|r| r.strip_suffix(": refunded"))
        .map_or(e.reason.clone(), |why| why.replace('_', " "))
}

fn history_table(history: &[ledger::Entry]) -> Markup {
    html! {
        section aria-labelledby="history-h" {
            h2 #history-h { "Credit history" }
            table #credit-history {
                thead { tr { th scope="col" { "Date" } th scope="col" { "Change" } th scope="col" { "Balance" } th scope="col" { "What" } } }
                tbody {
                    @for l in history_lines(history) {
                        tr {
                            td { (when(l.created_at)) }
                            td.num { @if l.delta > 0 { "+" } (l.delta) }
                            td.num { (l.balance_after) }
                            td {
                                @if let Some(id) = &l.run_id {
                                    a href=(paths::run(id)) { "Run " code { (id) } } " · "
                                }
                                (l.what)
                            }
                        }
                    }
                }
            }
        }
    }
}

fn plan_card(s: &Session, plan: &Plan, b: &Summary) -> Markup {
    let current = plan.id == b.plan.id;
    let per_credit = plan.amount_cents as f64 / plan.credits.get() as f64 / 100.0;
    html! {
        section.card.plan aria-labelledby={ "plan-" (plan.id) } {
            h3 #{ "plan-" (plan.id) } { (plan.name) " credit pack" @if current { " " span.badge.badge-active { "Latest" } } }
            p.big { (plan.price()) }
            p { strong { (plan.credits) " credits" } span.muted { " · " (format!("{per_credit:.2}")) " " (plan.currency.to_uppercase()) " per credit" } }
            p.muted { (plan.description) }
            form method="post" action=(paths::BILLING_CHECKOUT) {
                (csrf_field(s))
                input type="hidden" name="plan" value=(plan.id);
                button.primary type="submit" disabled[!b.configured] {
                    "Buy the " (plan.name) " pack"
                }
                @if !b.configured { p.muted { "Not on sale on this server." } }
            }
        }
    }
}

/// How many times the success page asks whether the payment has been confirmed (every 2 s)
/// before it stops and says the credits will come.
const STATUS_POLLS: u32 = 60;

/// What the page Checkout returns to says. Credits come from Stripe's webhook, usually a
/// moment after the customer is back here, so until it has arrived the message polls (htmx)
/// and then swaps in the confirmation, the new balance and plan.
fn checkout_status(session_id: &str, bought: Option<&Purchase>, polls: u32) -> Markup {
    match bought {
        Some(p) => html! {
            div #billing-status role="status" {
                (layout::alert("success", &format!("Payment received: {} credits were added to your account. Thank you!", p.credits)))
            }
        },
        None if polls >= STATUS_POLLS => html! {
            div #billing-status role="status" {
                (layout::alert("info", "Stripe has not confirmed the payment yet. The credits will appear \
                                        as soon as it does; you can leave this page."))
            }
        },
        None => {
            let polls = (polls + 1).to_string();
            let next = super::with_query(
                paths::BILLING_STATUS,
                [("session_id", session_id), ("polls", polls.as_str())],
            );
            html! {
                div #billing-status role="status" hx-get=(next) hx-trigger="every 2s" hx-swap="outerHTML" {
                    (layout::alert("success", "Thank you! Stripe is confirming your payment; the credits appear here within a few seconds."))
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct StatusQuery {
    session_id: String,
    #[serde(default)]
    polls: u32,
}

/// `GET /billing/status`: the success message again (htmx polls it); once the purchase is in,
/// the rest of the page (balance, plan, purchases) is replaced out of band.
#[handler]
pub async fn status(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Query(q): Query<StatusQuery>,
) -> Result<Response, WebError> {
    let bought = billing::purchase_by_session(&state.store, &s.user.id, &q.session_id).await?;
    let message = checkout_status(&q.session_id, bought.as_ref(), q.polls);
    let markup = match &bought {
        Some(_) => {
            let summary = billing::summary(&state, &s.user.id).await?;
            html! { (message) (account(&state, &s, &summary, true)) }
        }
        None => message,
    };
    Ok(html(StatusCode::OK, markup))
}

#[derive(Deserialize)]
pub struct CheckoutForm {
    plan: String,
}

/// `POST /billing/checkout`: 303 to Stripe Checkout for the chosen plan.
#[handler]
pub async fn checkout(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Form(form): Form<CheckoutForm>,
) -> Result<Response, WebError> {
    let c = billing::start_checkout(&state, &s.user.id, &form.plan).await?;
    Ok(see_other(&c.url).into_response())
}

/// `POST /billing/portal`: 303 to the Stripe Billing Portal.
#[handler]
pub async fn portal(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
) -> Result<Response, WebError> {
    let url = billing::open_portal(&state, &s.user.id).await?;
    Ok(see_other(&url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::RunId;
    use crate::store::ledger::{Entry, EntryKind};

    fn entry(id: i64, kind: EntryKind, delta: i64, balance: i64, run: Option<&str>) -> Entry {
        let reason = match (kind, run) {
            (EntryKind::Refund, Some(r)) => format!("Run {r} service_error: refunded"),
            (_, Some(r)) => format!("Run {r}"),
            _ => "Free credits".into(),
        };
        Entry {
            id,
            delta,
            balance_after: Credits::new(balance).unwrap(),
            kind,
            reason,
            run_id: run.map(|r| RunId::from(r.to_string())),
            created_at: id * 1000,
        }
    }

    #[test]
    fn a_run_reads_as_one_line_and_every_credit_is_accounted_for() {
        // Newest first, as the store lists them; run_b is still running.
        let history = [
            entry(6, EntryKind::Reserve, -1, 22, Some("run_b")),
            entry(5, EntryKind::Refund, 1, 23, Some("run_r")),
            entry(4, EntryKind::Reserve, -1, 22, Some("run_r")),
            entry(3, EntryKind::Settle, 0, 23, Some("run_a")),
            entry(2, EntryKind::Reserve, -1, 23, Some("run_a")),
            entry(1, EntryKind::Grant, 24, 24, None),
        ];
        let lines = history_lines(&history);
        let read: Vec<(i64, i64, &str)> = lines
            .iter()
            .map(|l| (l.delta, l.balance_after, l.what.as_str()))
            .collect();
        assert_eq!(
            read,
            [
                (-1, 22, "1 credit held while it runs"),
                (0, 23, "1 credit held, then refunded (service error)"),
                (-1, 23, "1 credit held, then charged"),
                (24, 24, "Free credits"),
            ]
        );
        assert_eq!(
            lines.iter().map(|l| l.delta).sum::<i64>(),
            history.iter().map(|e| e.delta).sum::<i64>()
        );
        assert_eq!(
            lines[2].created_at, 2000,
            "a run's line is dated by its start"
        );
    }

    #[test]
    fn a_settlement_whose_reservation_is_off_the_page_stands_alone() {
        let history = [entry(9, EntryKind::Refund, 1, 10, Some("run_x"))];
        let lines = history_lines(&history);
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0].what, "refunded (service error)");
        assert_eq!(lines[0].delta, 1);
    }
}
