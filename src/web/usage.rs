//! The usage page: a sortable, paged, filterable table that htmx swaps in place, with the URL
//! following sort, page and filter so reload and back work.

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Query};
use poem::{Response, handler};
use serde::Deserialize;

use super::error::WebError;
use super::layout::{self, Nav, when};
use super::{CurrentSession, WantsFragment, html, paths};
use crate::auth::session::Session;
use crate::domain::ids::KeyId;
use crate::domain::usage::{self, UsagePage, UsageQuery, UsageSort};
use crate::state::State;
use crate::store::api_keys::KeyRow;

const PAGE_SIZE: u32 = 25;

/// The page's state, as it appears in the URL.
#[derive(Deserialize, Clone, Default)]
pub struct Params {
    sort: Option<String>,
    order: Option<String>,
    page: Option<u64>,
    key: Option<String>,
}

const COLUMNS: [(&str, &str, UsageSort); 4] = [
    ("date", "Date", UsageSort::Date),
    ("fmu", "FMU Name", UsageSort::FmuName),
    ("credits", "Credits Used", UsageSort::Credits),
    ("key", "API Key ID", UsageSort::ApiKey),
];

impl Params {
    fn sort(&self) -> (&'static str, UsageSort) {
        let wanted = self.sort.as_deref().unwrap_or("date");
        COLUMNS
            .iter()
            .find(|(k, _, _)| *k == wanted)
            .map_or(("date", UsageSort::Date), |(k, _, s)| (k, *s))
    }

    fn descending(&self) -> bool {
        self.order.as_deref() != Some("asc")
    }

    fn page(&self) -> u64 {
        self.page.unwrap_or(1).max(1)
    }

    fn key(&self) -> Option<&str> {
        self.key.as_deref().filter(|k| !k.is_empty())
    }

    /// The URL of this page with some parts changed.
    fn url(&self, sort: &str, descending: bool, page: u64) -> String {
        let page = page.to_string();
        let order = if descending { "desc" } else { "asc" };
        let mut pairs = vec![("sort", sort), ("order", order), ("page", page.as_str())];
        pairs.extend(self.key().map(|k| ("key", k)));
        super::with_query(paths::USAGE, pairs)
    }
}

/// A link that htmx follows in place (and pushes to the history), a plain link otherwise.
fn swap_link(href: &str, body: Markup) -> Markup {
    html! { a href=(href) hx-get=(href) hx-target="#usage" hx-push-url="true" { (body) } }
}

/// The table and its pager: the whole page's `#usage` and the fragment htmx swaps.
pub fn usage_table(p: &Params, page: &UsagePage) -> Markup {
    let (sort, _) = p.sort();
    let desc = p.descending();
    let pages = page.total.div_ceil(u64::from(PAGE_SIZE)).max(1);
    let current = p.page().min(pages);
    html! {
        @if page.total == 0 {
            p.muted { "No usage recorded yet. Every run you start is listed here with the credits it used." }
        } @else {
            table #usage-table {
                thead { tr {
                    @for (key, label, _) in COLUMNS {
                        @let active = key == sort;
                        @let next_desc = if active { !desc } else { key == "date" || key == "credits" };
                        th scope="col" aria-sort=[active.then_some(if desc { "descending" } else { "ascending" })] {
                            (swap_link(&p.url(key, next_desc, 1), html! {
                                (label)
                                @if active { span aria-hidden="true" { @if desc { " ▼" } @else { " ▲" } } }
                            }))
                        }
                    }
                } }
                tbody {
                    @for row in &page.rows {
                        tr {
                            td { (when(row.created_at)) }
                            td { (row.fmu_name) }
                            td.num { (row.credits) }
                            td { @if let Some(k) = &row.api_key_id { code { (k) } } @else { span.muted { "dashboard" } } }
                        }
                    }
                }
            }
            nav.pager aria-label="Usage pages" {
                @if current > 1 { (swap_link(&p.url(sort, desc, current - 1), html! { "← Previous" })) }
                span { "Page " (current) " of " (pages) " · " (page.total) " rows" }
                @if current < pages { (swap_link(&p.url(sort, desc, current + 1), html! { "Next →" })) }
            }
        }
    }
}

fn view(s: &Session, p: &Params, keys: &[KeyRow], page: &UsagePage) -> Markup {
    let (sort, _) = p.sort();
    let export = match p.key() {
        Some(k) => super::with_query(paths::USAGE_EXPORT, [("key", k)]),
        None => paths::USAGE_EXPORT.to_string(),
    };
    let content = html! {
        div.page-head {
            h1 { "Usage" }
            a.button href=(export) download { "Export CSV" }
        }
        form.filters method="get" action=(paths::USAGE) hx-get=(paths::USAGE) hx-target="#usage" hx-push-url="true" hx-trigger="change" {
            input type="hidden" name="sort" value=(sort);
            input type="hidden" name="order" value=(if p.descending() { "desc" } else { "asc" });
            label for="key" { "API key" }
            select #key name="key" {
                option value="" selected[p.key().is_none()] { "All keys" }
                @for k in keys {
                    option value=(k.id) selected[p.key() == Some(k.id.as_str())] { (k.label) " (" (k.id) ")" }
                }
            }
            noscript { button type="submit" { "Filter" } }
        }
        div #usage { (usage_table(p, page)) }
    };
    layout::page("Usage", Nav::Usage, Some(s), content)
}

#[handler]
pub async fn show(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    WantsFragment(fragment): WantsFragment,
    Query(p): Query<Params>,
) -> Result<Response, WebError> {
    let query = UsageQuery {
        api_key_id: p.key().map(KeyId::from),
        sort: p.sort().1,
        descending: p.descending(),
    };
    let offset = (p.page() - 1).saturating_mul(u64::from(PAGE_SIZE));
    let page = usage::page(&state.store, &s.user.id, query, PAGE_SIZE, offset).await?;
    if fragment {
        return Ok(html(StatusCode::OK, usage_table(&p, &page)));
    }
    let keys = crate::domain::keys::list(&state.store, &s.user.id).await?;
    Ok(html(StatusCode::OK, view(&s, &p, &keys, &page)))
}
