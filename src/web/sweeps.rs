//! The sweep pages: the list of the user's sweeps with a New sweep form (Quote shows the
//! cases and the cost, Start starts it), and a sweep's page: its settings and design, a
//! progress bar that Server-Sent Events keep current (htmx's SSE extension swaps the HTML
//! fragments this module sends), Cancel, the cases table (sortable by any column, paged,
//! with CSV and Parquet downloads), a scatter plot of a KPI against a parameter, and an
//! overlay of chosen cases' trajectories.
//!
//! Every rule is the domain's (`domain::sweeps`): this face only parses forms and draws.

use std::cmp::Ordering;
use std::time::Duration;

use futures_util::StreamExt;
use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::sse::{Event, SSE};
use poem::web::{Data, Path, Query};
use poem::{Body, IntoResponse, Request, Response, handler};
use serde::Deserialize;

use super::charts::{self, Curve, PlotOptions, ScatterOptions};
use super::error::WebError;
use super::layout::{self, Nav, csrf_field, when};
use super::sweep_form::{Action, DesignKind, SweepForm};
use super::{CurrentSession, html, paths, see_other};
use crate::auth::csrf;
use crate::auth::session::Session;
use crate::domain::error::AppError;
use crate::domain::fmus::{self, FmuRecord};
use crate::domain::ids::SweepId;
use crate::domain::runs::{RunStatus, Starter};
use crate::domain::sweeps::events::SweepEvent;
use crate::domain::sweeps::{self, Quote, SweepStatus, SweepView};
use crate::format::Number;
use crate::sim::kpi::{KpiKind, KpiSpec};
use crate::sim::plan::Problem;
use crate::state::State;
use crate::store::sweeps::{CaseCounts, CaseRow, SweepRow};

/// Sweeps a page of the list shows.
const PAGE_SIZE: u32 = 25;
/// Cases a page of the cases table shows.
const CASES_PAGE: usize = 50;
/// Cases a quote shows in its table (the rest are counted).
const QUOTE_SHOWN: usize = 20;
/// Cases one overlay draws at most.
const MAX_OVERLAY: usize = 10;
/// Rows of a kept trajectory an overlay draws (every k-th of a longer one).
const OVERLAY_ROWS: u64 = 5_000;
/// How often the event stream says it is still there, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

// ---------------------------------------------------------------------------------------
// The list and the New sweep form
// ---------------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct ListQuery {
    page: Option<u64>,
}

/// A model as the form's select shows it (the runs form's labels).
fn model_options(models: &[FmuRecord], chosen: &str) -> Markup {
    html! {
        option value="" { "Choose…" }
        @for m in models {
            @let value = m.library_id.clone().unwrap_or_else(|| m.id.to_string());
            option value=(value) selected[value == chosen] { (super::runs::model_label(m)) }
        }
    }
}

/// The problems that name `field`, next to it.
fn field_problems(problems: &[Problem], field: &str) -> Markup {
    let messages: Vec<&str> = problems
        .iter()
        .filter(|p| p.field == field)
        .map(|p| p.message.as_str())
        .collect();
    html! {
        @if !messages.is_empty() {
            span.field-error id={ "error-" (field) } role="alert" { (messages.join("; ")) }
        }
    }
}

fn described_by(problems: &[Problem], field: &str) -> Option<String> {
    problems
        .iter()
        .any(|p| p.field == field)
        .then(|| format!("error-{field}"))
}

/// A labelled text area of the form, with its problems.
fn text_area(
    field: &str,
    label: Markup,
    value: &str,
    placeholder: &str,
    problems: &[Problem],
) -> Markup {
    let id = format!("sweep-{field}");
    html! {
        div.field {
            label for=(id) { (label) }
            textarea id=(id) name=(field) rows="4" spellcheck="false" placeholder=(placeholder)
                aria-invalid=[described_by(problems, field).map(|_| "true")]
                aria-describedby=[described_by(problems, field)] { (value) }
            (field_problems(problems, field))
        }
    }
}

/// A labelled one-line input of the form, with its problems.
fn text_input(field: &str, label: &str, value: &str, kind: &str, problems: &[Problem]) -> Markup {
    let id = format!("sweep-{field}");
    html! {
        div.field {
            label for=(id) { (label) }
            input id=(id) type=(kind) step=[(kind == "number").then_some("any")] name=(field) value=(value)
                aria-invalid=[described_by(problems, field).map(|_| "true")]
                aria-describedby=[described_by(problems, field)];
            (field_problems(problems, field))
        }
    }
}

/// One design's choice: its radio button and what it asks for.
fn design_choice(form: &SweepForm, kind: DesignKind, problems: &[Problem]) -> Markup {
    let id = format!("design-{}", kind.as_str());
    html! {
        div.design-choice {
            label.check {
                input id=(id) type="radio" name="design" value=(kind.as_str()) checked[form.design == kind];
                " " strong { (kind.label()) }
            }
            @match kind {
                DesignKind::Grid => {
                    (text_area("grid", html! { "One line a parameter: " code { "e = 0.5, 0.7, 0.9" } " or a range " code { "e = 0.5 : 0.9 : 5" } }, &form.grid, "e = 0.5 : 0.9 : 5", problems))
                }
                DesignKind::LatinHypercube => {
                    div.form-grid {
                        (text_input("lhs_n", "Cases (n)", &form.lhs_n, "number", problems))
                        (text_input("lhs_seed", "Seed (empty: drawn)", &form.lhs_seed, "number", problems))
                    }
                    (text_area("lhs", html! { "One line a parameter: " code { "e uniform 0.5 0.9" } " or " code { "g normal 9.81 0.1" } }, &form.lhs, "e uniform 0.5 0.9", problems))
                }
                DesignKind::Sobol => {
                    div.form-grid {
                        (text_input("sobol_n", "Cases (n)", &form.sobol_n, "number", problems))
                        (text_input("sobol_seed", "Seed (empty: drawn)", &form.sobol_seed, "number", problems))
                    }
                    (text_area("sobol", html! { "One line a parameter: " code { "e 0.5 0.9" } " (low, high)" }, &form.sobol, "e 0.5 0.9", problems))
                }
                DesignKind::Csv => {
                    (text_area("csv", html! { "Cases as CSV: a header of parameter names, then a row a case" }, &form.csv, "e,h\n0.5,1\n0.7,1.2", problems))
                }
            }
        }
    }
}

/// The New sweep form: a plain POST (CSRF token, an attempt token so a double click starts
/// one sweep), with what was typed and the problems found in it, and the quote when asked.
fn new_sweep_form(
    s: &Session,
    models: &[FmuRecord],
    form: &SweepForm,
    problems: &[Problem],
    quote: Option<&Quote>,
) -> Markup {
    html! {
        section.card #new-sweep {
            h2 { "New sweep" }
            @if !problems.is_empty() {
                div.alert.alert-error #sweep-problems role="alert" {
                    p { "The sweep was not started (nothing was reserved). Fix these and try again:" }
                    ul { @for p in problems { li { code { (p.field) } ": " (p.message) } } }
                }
            }
            form #sweep-form method="post" action=(paths::SWEEPS) {
                (csrf_field(s))
                input type="hidden" name="attempt" value=(crate::auth::session::random_token());
                div.form-grid {
                    div.field {
                        label for="sweep-fmu" { "Model" }
                        select #sweep-fmu name="fmu" aria-describedby=[described_by(problems, "fmu")] {
                            (model_options(models, &form.fmu))
                        }
                        (field_problems(problems, "fmu"))
                    }
                    (text_input("name", "Name (optional)", &form.name, "text", problems))
                    (text_input("stop_time", "Stop time [s] (empty: the model's)", &form.stop_time, "number", problems))
                    (text_input("output_interval", "Output interval [s] (empty: the model's)", &form.output_interval, "number", problems))
                }
                (text_area("start_values", html! { "Base start values (optional), one a line: " code { "h = 1.5" } }, &form.start_values, "h = 1.5", problems))
                fieldset #sweep-design {
                    legend { "Design" }
                    @for kind in DesignKind::ALL { (design_choice(form, kind, problems)) }
                }
                (text_area("kpis", html! { "KPIs, one a line: " code { "max h" } ", " code { "first_crossing h 0.5" } " (final, min, max, mean, integral, time_of_max, time_of_min, first_crossing)" }, &form.kpis, "max h", problems))
                label.check {
                    input #sweep-trajectories type="checkbox" name="trajectories" value="on" checked[form.trajectories];
                    " Keep each case's trajectories (to overlay them)"
                }
                div.run-bar {
                    button #sweep-quote-button type="submit" name="action" value="quote" { "Quote" }
                    " "
                    button.primary #sweep-start type="submit" name="action" value="start" { "Start sweep" }
                    " " span.muted { "Quote shows the cases and the cost; nothing is reserved." }
                }
            }
            @if let Some(q) = quote { (quote_view(q)) }
        }
    }
}

/// What a quote says: the count, the cost, the balance, and the first cases.
fn quote_view(q: &Quote) -> Markup {
    html! {
        section #sweep-quote aria-live="polite" {
            h3 { "Quote" }
            p #quote-summary {
                strong #quote-cases { (q.case_count) " cases" } " · costs "
                strong #quote-cost { (q.cost.describe()) } " (" (q.credits_per_case.describe()) " a case) · you have "
                span #quote-balance { (q.balance.describe()) }
            }
            @if q.affordable() {
                p #quote-affordable.badge.badge-active { "You can afford it" }
            } @else {
                p #quote-affordable.badge.badge-revoked { "Your balance is too low: it pays for " (q.affordable_cases) " cases" }
            }
            div.table-scroll {
                table #quote-table {
                    thead { tr { th scope="col" { "Case" } @for p in &q.parameters { th scope="col" { code { (p) } } } } }
                    tbody {
                        @for (i, case) in q.cases.iter().take(QUOTE_SHOWN).enumerate() {
                            tr {
                                td.num { (i) }
                                @for p in &q.parameters {
                                    td { (case.iter().find(|(n, _)| n == p).map_or("—", |(_, v)| v.as_str())) }
                                }
                            }
                        }
                    }
                }
            }
            @if q.case_count as usize > QUOTE_SHOWN {
                p.muted { "The first " (QUOTE_SHOWN) " of " (q.case_count) " cases." }
            }
        }
    }
}

fn status_badge(status: SweepStatus) -> Markup {
    let class = match status {
        SweepStatus::Completed => "badge badge-active",
        SweepStatus::Failed | SweepStatus::Cancelled => "badge badge-revoked",
        SweepStatus::Queued | SweepStatus::Running => "badge badge-pending",
    };
    html! { span class=(class) data-status=(status.as_str()) { (status.as_str()) } }
}

/// What a sweep cost so far: held while it runs, then what its cases were charged.
fn credits_line(sweep: &SweepRow, counts: &CaseCounts) -> String {
    if sweep.finished_at.is_none() {
        format!("{} held", sweep.credits_reserved.describe())
    } else {
        let charged = sweep
            .credits_per_case
            .get()
            .saturating_mul(i64::from(counts.charged));
        crate::domain::ids::Credits::new(charged).map_or_else(
            |_| charged.to_string(),
            |c| format!("{} charged", c.describe()),
        )
    }
}

/// The user's sweeps, newest first, with links to the pages around.
fn sweeps_list(rows: &[SweepView], total: u64, page: u64, models: &[FmuRecord]) -> Markup {
    let first = (page - 1) * u64::from(PAGE_SIZE);
    let page_url = |p: u64| super::with_query(paths::SWEEPS, [("page", p.to_string().as_str())]);
    html! {
        section #sweeps-list {
            h2 { "Your sweeps" }
            @if rows.is_empty() {
                p.muted #no-sweeps { "No sweeps yet." }
            } @else {
                div.table-scroll {
                    table #sweeps-table {
                        thead { tr {
                            th scope="col" { "Name" } th scope="col" { "Model" } th scope="col" { "Status" }
                            th scope="col" { "Progress" } th scope="col" { "Cases" } th scope="col" { "Credits" } th scope="col" { "Created" }
                        } }
                        tbody {
                            @for v in rows {
                                @let model = models.iter().find(|m| m.id == v.sweep.fmu_id);
                                tr #{"sweep-" (v.sweep.id)} {
                                    td { a href=(paths::sweep(&v.sweep.id)) { (v.sweep.name) } }
                                    td { (model.map_or_else(|| v.sweep.fmu_id.to_string(), super::runs::model_label)) }
                                    td { (status_badge(v.sweep.status)) }
                                    td { progress max=(v.sweep.case_count.max(1)) value=(v.counts.ended()) aria-label={ "Cases done of " (v.sweep.name) } { (v.counts.ended()) " of " (v.sweep.case_count) } }
                                    td.num { (v.counts.ended()) " / " (v.sweep.case_count) }
                                    td { (credits_line(&v.sweep, &v.counts)) }
                                    td { (when(v.sweep.created_at)) }
                                }
                            }
                        }
                    }
                }
                nav.pager aria-label="Pages of sweeps" {
                    span #sweeps-shown { "Sweeps " (first + 1) "–" (first + rows.len() as u64) " of " (total) }
                    @if page > 1 { " " a #sweeps-previous href=(page_url(page - 1)) { "← Previous" } }
                    @if first + (rows.len() as u64) < total { " " a #sweeps-next href=(page_url(page + 1)) { "Next →" } }
                }
            }
        }
    }
}

/// The list page with the form as given (problems, a quote).
async fn list_page(
    state: &State,
    s: &Session,
    page: u64,
    form: &SweepForm,
    problems: &[Problem],
    quote: Option<&Quote>,
) -> Result<Markup, WebError> {
    let models = fmus::list(state, &s.user.id, None).await?;
    let offset = (page - 1).saturating_mul(u64::from(PAGE_SIZE));
    let (rows, total) = sweeps::list(state, &s.user.id, PAGE_SIZE, offset).await?;
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        let counts = state
            .store
            .sweep_counts(&row.id)
            .await
            .map_err(AppError::from)?;
        views.push(SweepView { sweep: row, counts });
    }
    let content = html! {
        h1 { "Sweeps" }
        p.muted { "Run one model many times over a design of its parameters, and compare the cases by their KPIs." }
        (new_sweep_form(s, &models, form, problems, quote))
        (sweeps_list(&views, total, page, &models))
    };
    Ok(layout::page("Sweeps", Nav::Sweeps, Some(s), content))
}

#[handler]
pub async fn index(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Query(q): Query<ListQuery>,
) -> Result<Response, WebError> {
    let page = q.page.unwrap_or(1).max(1);
    Ok(html(
        StatusCode::OK,
        list_page(&state, &s, page, &SweepForm::default(), &[], None).await?,
    ))
}

/// Quote or Start from the form. A form the domain refuses comes back (422) with everything
/// typed and each problem; a quote comes back (200) under the form; a start goes to the
/// sweep's page.
#[handler]
pub async fn create(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    body: Body,
) -> Result<Response, WebError> {
    let bytes = body
        .into_bytes_limit(2 * 1024 * 1024)
        .await
        .map_err(|_| AppError::Invalid("the form is too large".into()))?;
    let form = SweepForm::from_pairs(csrf::form_pairs(&bytes));
    let (status, problems, quote) = match answer(&state, &s, &form).await? {
        Answer::Started(sweep) => return Ok(see_other(&paths::sweep(&sweep.id))),
        Answer::Quoted(quote) => (StatusCode::OK, Vec::new(), Some(quote)),
        Answer::Refused(status, problems) => (status, problems, None),
    };
    Ok(html(
        status,
        list_page(&state, &s, 1, &form, &problems, quote.as_ref()).await?,
    ))
}

/// What the New sweep form's answer is.
enum Answer {
    Quoted(Quote),
    Started(SweepRow),
    /// The form comes back with these problems, with this status.
    Refused(StatusCode, Vec<Problem>),
}

/// Quotes or starts the sweep the form asks for, by the domain's calls.
async fn answer(state: &State, s: &Session, form: &SweepForm) -> Result<Answer, WebError> {
    let request = match form.request(u64::from(state.config.max_sweep_cases)) {
        Ok(request) => request,
        Err(problems) => return Ok(Answer::Refused(StatusCode::UNPROCESSABLE_ENTITY, problems)),
    };
    let starter = Starter::Session(s.user.id.clone());
    let outcome = match form.action {
        Action::Quote => sweeps::quote(state, starter, request)
            .await
            .map(Answer::Quoted),
        Action::Start => {
            // One sweep per rendered form: sent twice (a double click, a reload), it answers
            // with the sweep it started.
            let key = (!form.attempt.is_empty()).then(|| format!("sweep-form:{}", form.attempt));
            sweeps::start(state, starter, request, key)
                .await
                .map(Answer::Started)
        }
    };
    let refused = |status, e: AppError| {
        Ok(Answer::Refused(
            status,
            vec![Problem::new("form", e.to_string())],
        ))
    };
    match outcome {
        Ok(answer) => Ok(answer),
        Err(AppError::Problems(found)) => {
            Ok(Answer::Refused(StatusCode::UNPROCESSABLE_ENTITY, found.0))
        }
        // What else the request cannot be is said on the form, which keeps what was typed.
        Err(e @ (AppError::Invalid(_) | AppError::NotFound(_))) => {
            refused(StatusCode::UNPROCESSABLE_ENTITY, e)
        }
        Err(e @ AppError::InsufficientCredits(_)) => refused(StatusCode::PAYMENT_REQUIRED, e),
        Err(e) => Err(e.into()),
    }
}

// ---------------------------------------------------------------------------------------
// A sweep's page
// ---------------------------------------------------------------------------------------

/// The sweep's status as its counts tell it while it runs (the row says `queued` until the
/// executor's first batch).
fn live_status(sweep: &SweepRow, counts: &CaseCounts) -> SweepStatus {
    if sweep.status.is_finished() || counts.running + counts.ended() == 0 {
        sweep.status
    } else {
        SweepStatus::Running
    }
}

/// "about 4 s left", "about 3 min left".
fn eta_words(seconds: f64) -> String {
    if seconds < 90.0 {
        format!("about {} s left", seconds.ceil().max(1.0))
    } else {
        format!("about {} min left", (seconds / 60.0).round())
    }
}

/// The live part of a sweep's page, and what each event swaps in: its status, the progress
/// bar with its counts, and Cancel while it runs.
fn progress_fragment(
    id: &SweepId,
    status: SweepStatus,
    counts: &CaseCounts,
    total: u32,
    eta_seconds: Option<f64>,
    csrf_token: &str,
) -> Markup {
    let done = counts.ended();
    let percent = if total == 0 {
        100.0
    } else {
        (f64::from(done) * 100.0 / f64::from(total)).floor()
    };
    html! {
        p #sweep-status { "Status: " (status_badge(status)) }
        div.progress-line #sweep-progress-line {
            label for="sweep-progress-bar" { "Cases done" }
            progress #sweep-progress-bar max=(total.max(1)) value=(if total == 0 { 1 } else { done }) { (percent) " %" }
            span #sweep-progress-text {
                (done) " of " (total) " cases done"
                @if counts.failed > 0 { " · " (counts.failed) " failed" }
                @if counts.cancelled > 0 { " · " (counts.cancelled) " cancelled" }
                @if counts.running > 0 { " · " (counts.running) " running" }
                @if let Some(eta) = eta_seconds.filter(|_| !status.is_finished()) { " · " (eta_words(eta)) }
            }
        }
        @if !status.is_finished() {
            details.confirm #cancel-sweep {
                summary { "Cancel sweep…" }
                form method="post" action=(paths::sweep_path(paths::SWEEP_CANCEL, id)) {
                    input type="hidden" name=(csrf::FIELD) value=(csrf_token);
                    p { "Cancel this sweep? The cases running now are charged (they used a worker); the cases not started are refunded." }
                    button.danger type="submit" { "Cancel sweep" }
                }
            }
        }
    }
}

/// The design as the form writes it: `e = 0.5 : 0.9 : 5`, `e uniform 0.5 0.9`, …
fn design_lines(shown: &serde_json::Value) -> (String, Vec<String>) {
    use serde_json::Value;
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if let Some(grid) = shown.get("grid").and_then(Value::as_array) {
        let lines = grid
            .iter()
            .map(|a| {
                let name = text(&a["name"]);
                match (a.get("values").and_then(Value::as_array), a.get("range")) {
                    (Some(values), _) => format!(
                        "{name} = {}",
                        values.iter().map(text).collect::<Vec<_>>().join(", ")
                    ),
                    (None, Some(r)) => format!(
                        "{name} = {} : {} : {}",
                        text(&r["start"]),
                        text(&r["stop"]),
                        text(&r["num"])
                    ),
                    _ => name,
                }
            })
            .collect();
        return ("Grid".into(), lines);
    }
    if let Some(lhs) = shown.get("latin_hypercube") {
        let mut lines = vec![format!(
            "n = {}, seed = {}",
            text(&lhs["n"]),
            text(&lhs["seed"])
        )];
        for p in lhs["parameters"].as_array().into_iter().flatten() {
            let name = text(&p["name"]);
            if let Some(u) = p.get("uniform") {
                lines.push(format!(
                    "{name} uniform {} {}",
                    text(&u["low"]),
                    text(&u["high"])
                ));
            } else if let Some(n) = p.get("normal") {
                lines.push(format!(
                    "{name} normal {} {}",
                    text(&n["mean"]),
                    text(&n["sd"])
                ));
            }
        }
        return ("Latin hypercube".into(), lines);
    }
    if let Some(sobol) = shown.get("sobol") {
        let mut lines = vec![format!(
            "n = {}, seed = {}",
            text(&sobol["n"]),
            text(&sobol["seed"])
        )];
        for p in sobol["parameters"].as_array().into_iter().flatten() {
            lines.push(format!(
                "{} {} {}",
                text(&p["name"]),
                text(&p["low"]),
                text(&p["high"])
            ));
        }
        return ("Sobol".into(), lines);
    }
    let n = shown.get("cases").map(text).unwrap_or_default();
    ("Explicit cases".into(), vec![format!("{n} cases")])
}

/// The sweep's settings: model, times, base start values, design, KPIs, what it holds.
fn settings_section(
    sweep: &SweepRow,
    stored: Option<&sweeps::Stored>,
    model: Option<&FmuRecord>,
) -> Markup {
    html! {
        section.card #sweep-settings {
            h2 { "Settings" }
            dl.facts {
                dt { "Model" } dd { (model.map_or_else(|| sweep.fmu_id.to_string(), super::runs::model_label)) }
                @if let Some(st) = stored {
                    dt { "Stop time" } dd { (Number(st.settings.stop_time)) " s" }
                    dt { "Output interval" } dd { (Number(st.settings.output_interval)) " s" }
                    dt { "Base start values" } dd {
                        @if st.settings.start_values.is_empty() { "the model's" }
                        @else { code { (st.settings.start_values.iter().map(|(n, v)| format!("{n} = {v}")).collect::<Vec<_>>().join(", ")) } }
                    }
                    @let (kind, lines) = design_lines(&st.design);
                    dt { "Design" } dd #sweep-design-shown { (kind) ul { @for l in &lines { li { code { (l) } } } } }
                    dt { "KPIs" } dd { @if st.kpis.is_empty() { "none" } @else { code { (st.kpis.iter().map(KpiSpec::name).collect::<Vec<_>>().join(", ")) } } }
                    dt { "Trajectories" } dd #sweep-trajectories-kept { @if st.trajectories { "kept" } @else { "not kept" } }
                }
                dt { "Cases" } dd { (sweep.case_count) " at " (sweep.credits_per_case.describe()) " each" }
                dt { "Created" } dd { (when(sweep.created_at)) }
                @if let Some(t) = sweep.finished_at { dt { "Finished" } dd { (when(t)) } }
            }
            @if let Some(error) = &sweep.error { (layout::alert("error", error)) }
        }
    }
}

/// A column of the cases table to sort by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SortKey {
    Index,
    Parameter(usize),
    Kpi(usize),
    Status,
}

impl SortKey {
    fn parse(text: &str) -> SortKey {
        let number = |rest: &str| rest.parse::<usize>().ok();
        match text {
            "status" => SortKey::Status,
            t if t.starts_with('p') => number(&t[1..]).map_or(SortKey::Index, SortKey::Parameter),
            t if t.starts_with('k') => number(&t[1..]).map_or(SortKey::Index, SortKey::Kpi),
            _ => SortKey::Index,
        }
    }

    fn as_param(self) -> String {
        match self {
            SortKey::Index => "index".into(),
            SortKey::Parameter(i) => format!("p{i}"),
            SortKey::Kpi(i) => format!("k{i}"),
            SortKey::Status => "status".into(),
        }
    }
}

/// A value of a sweep column: numbers before text, a missing one last.
fn compare_literals(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(a), Some(b)) => match (a.parse::<f64>(), b.parse::<f64>()) {
            (Ok(x), Ok(y)) => x.total_cmp(&y),
            (Ok(_), Err(_)) => Ordering::Less,
            (Err(_), Ok(_)) => Ordering::Greater,
            (Err(_), Err(_)) => a.cmp(b),
        },
    }
}

fn parameter_of<'a>(case: &'a CaseRow, name: &str) -> Option<&'a str> {
    case.start_values
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

fn kpi_of(case: &CaseRow, i: usize) -> Option<f64> {
    case.kpis.as_ref().and_then(|k| k.get(i).copied().flatten())
}

/// The cases sorted by `key`, ties by index; cases without a value stay last either way.
fn sort_cases(cases: &mut [CaseRow], key: SortKey, descending: bool, parameters: &[String]) {
    cases.sort_by(|a, b| {
        let missing_last =
            |o: Ordering, a_missing: bool, b_missing: bool| match (a_missing, b_missing) {
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                _ if descending => o.reverse(),
                _ => o,
            };
        let by = match key {
            SortKey::Index => missing_last(a.index.cmp(&b.index), false, false),
            SortKey::Status => missing_last(a.status.as_str().cmp(b.status.as_str()), false, false),
            SortKey::Parameter(i) => {
                let name = parameters.get(i).map_or("", String::as_str);
                let (x, y) = (parameter_of(a, name), parameter_of(b, name));
                missing_last(compare_literals(x, y), x.is_none(), y.is_none())
            }
            SortKey::Kpi(i) => {
                let (x, y) = (kpi_of(a, i), kpi_of(b, i));
                let o = match (x, y) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    _ => Ordering::Equal,
                };
                missing_last(o, x.is_none(), y.is_none())
            }
        };
        by.then(a.index.cmp(&b.index))
    });
}

/// What the sweep page's query asks: the table's order and page, the scatter's axes.
#[derive(Deserialize, Default, Clone)]
pub struct SweepQuery {
    sort: Option<String>,
    dir: Option<String>,
    page: Option<usize>,
    /// The scatter's parameter (a name) and KPI (an index).
    x: Option<String>,
    y: Option<usize>,
}

impl SweepQuery {
    fn sort_key(&self) -> SortKey {
        self.sort.as_deref().map_or(SortKey::Index, SortKey::parse)
    }

    fn descending(&self) -> bool {
        self.dir.as_deref() == Some("desc")
    }

    /// The page's URL with some of its query changed.
    fn url(&self, id: &SweepId, sort: SortKey, descending: bool, page: usize) -> String {
        let (sort, page) = (sort.as_param(), page.to_string());
        let y = self.y.map(|y| y.to_string());
        let mut pairs = vec![
            ("sort", sort.as_str()),
            ("dir", if descending { "desc" } else { "asc" }),
            ("page", page.as_str()),
        ];
        if let Some(x) = &self.x {
            pairs.push(("x", x.as_str()));
        }
        if let Some(y) = &y {
            pairs.push(("y", y.as_str()));
        }
        super::with_query(&paths::sweep(id), pairs)
    }
}

/// Every case of the sweep, by index.
async fn all_cases(state: &State, s: &Session, id: &SweepId) -> Result<Vec<CaseRow>, WebError> {
    let mut cases: Vec<CaseRow> = Vec::new();
    loop {
        let from = cases.last().map_or(0, |c| c.index + 1);
        let (_, page) = sweeps::cases(state, &s.user.id, id, from, 5_000).await?;
        if page.is_empty() {
            return Ok(cases);
        }
        cases.extend(page);
    }
}

/// A header of the cases table: a link that sorts by it (again: the other way).
fn sort_header(q: &SweepQuery, id: &SweepId, key: SortKey, label: Markup) -> Markup {
    let current = q.sort_key() == key;
    let descending = current && !q.descending();
    let aria = current.then(|| {
        if q.descending() {
            "descending"
        } else {
            "ascending"
        }
    });
    html! {
        th scope="col" aria-sort=[aria] {
            a.sort href=(q.url(id, key, descending, 1)) { (label) @if current { @if q.descending() { " ↓" } @else { " ↑" } } }
        }
    }
}

/// A KPI's unit: its variable's, seconds for a time, the variable's times seconds for an
/// integral.
fn kpi_unit(spec: &KpiSpec, model: Option<&FmuRecord>) -> Option<String> {
    let unit = || variable_unit(model, &spec.variable);
    match spec.kind {
        KpiKind::TimeOfMax | KpiKind::TimeOfMin | KpiKind::FirstCrossing { .. } => Some("s".into()),
        KpiKind::Integral => Some(unit().map_or_else(|| "s".into(), |u| format!("{u}·s"))),
        _ => unit(),
    }
}

fn variable_unit(model: Option<&FmuRecord>, name: &str) -> Option<String> {
    model?
        .info
        .variables
        .iter()
        .find(|v| v.name == name)?
        .unit
        .clone()
}

fn with_unit(name: &str, unit: Option<String>) -> String {
    match unit {
        Some(u) if !u.is_empty() => format!("{name} [{u}]"),
        _ => name.to_string(),
    }
}

/// What a sweep's page draws its cases part from.
struct CasesView<'a> {
    sweep: &'a SweepRow,
    parameters: Vec<String>,
    kpis: Vec<KpiSpec>,
    trajectories: bool,
    model: Option<&'a FmuRecord>,
}

/// The scatter of KPI `y` against parameter `x`, and its caption: the cases plotted, and
/// those left out (failed, or without a value).
fn scatter(view: &CasesView<'_>, cases: &[CaseRow], x: &str, y: usize) -> (Markup, String) {
    let mut points = Vec::new();
    let (mut failed, mut without) = (0, 0);
    for case in cases {
        if case.status != RunStatus::Succeeded {
            if case.status.is_finished() {
                failed += 1;
            }
            continue;
        }
        let px = parameter_of(case, x).and_then(|v| v.parse::<f64>().ok());
        match (px, kpi_of(case, y)) {
            (Some(px), Some(py)) if px.is_finite() && py.is_finite() => points.push((px, py)),
            _ => without += 1,
        }
    }
    let spec = &view.kpis[y];
    let opts = ScatterOptions {
        x_label: with_unit(x, variable_unit(view.model, x)),
        y_label: with_unit(&spec.name(), kpi_unit(spec, view.model)),
        title: Some(format!("{} against {x}", spec.name())),
    };
    let mut caption = format!("{} cases plotted", points.len());
    if failed > 0 {
        caption.push_str(&format!("; {failed} failed cases left out"));
    }
    if without > 0 {
        caption.push_str(&format!("; {without} without a numeric value left out"));
    }
    (charts::scatter_plot(&points, &opts), caption)
}

/// The scatter's axes as asked, or the first parameter and KPI.
fn scatter_axes<'a>(view: &'a CasesView<'_>, q: &SweepQuery) -> Option<(&'a str, usize)> {
    if view.kpis.is_empty() || view.parameters.is_empty() {
        return None;
    }
    let x =
        q.x.as_deref()
            .and_then(|x| view.parameters.iter().find(|p| *p == x))
            .unwrap_or(&view.parameters[0]);
    let y = q.y.filter(|y| *y < view.kpis.len()).unwrap_or(0);
    Some((x.as_str(), y))
}

/// The cases part of a sweep's page: downloads, the scatter, the table (sortable, paged,
/// with boxes to pick cases to overlay). Refreshed by htmx when the sweep ends.
fn cases_section(view: &CasesView<'_>, cases: &[CaseRow], q: &SweepQuery, live: bool) -> Markup {
    let id = &view.sweep.id;
    let mut sorted = cases.to_vec();
    let key = q.sort_key();
    sort_cases(&mut sorted, key, q.descending(), &view.parameters);
    let pages = sorted.len().div_ceil(CASES_PAGE).max(1);
    let page = q.page.unwrap_or(1).clamp(1, pages);
    let shown = &sorted[(page - 1) * CASES_PAGE..(page * CASES_PAGE).min(sorted.len())];
    // At the end the table comes back as it is shown now (its order and page).
    let refresh = live.then(|| q.url(id, key, q.descending(), page));
    let axes = scatter_axes(view, q);
    html! {
        section #sweep-cases hx-get=[refresh.as_deref()] hx-trigger=[live.then_some("sse:end")] hx-select="#sweep-cases" hx-swap="outerHTML" {
            h2 { "Cases" }
            p #sweep-downloads {
                a.button #download-csv href=(paths::sweep_path(paths::SWEEP_CASES_CSV, id)) download { "Download CSV" } " "
                a.button #download-parquet href=(paths::sweep_path(paths::SWEEP_CASES_PARQUET, id)) download { "Parquet" }
            }
            @if let Some((x, y)) = axes {
                @let (chart, caption) = scatter(view, cases, x, y);
                figure #sweep-scatter {
                    form.inline-form #scatter-form method="get" action=(paths::sweep(id)) {
                        input type="hidden" name="sort" value=(key.as_param());
                        input type="hidden" name="dir" value=(if q.descending() { "desc" } else { "asc" });
                        label for="scatter-y" { "KPI" }
                        select #scatter-y name="y" {
                            @for (i, k) in view.kpis.iter().enumerate() { option value=(i) selected[i == y] { (k.name()) } }
                        }
                        label for="scatter-x" { "against" }
                        select #scatter-x name="x" {
                            @for p in &view.parameters { option value=(p) selected[p == x] { (p) } }
                        }
                        button type="submit" { "Plot" }
                        " " a href=(super::with_query(&paths::sweep_path(paths::SWEEP_SCATTER_SVG, id), [("x", x), ("y", y.to_string().as_str())])) download { "SVG" }
                    }
                    (chart)
                    figcaption #scatter-caption.muted { (caption) }
                }
            }
            @if view.trajectories {
                form.inline-form #overlay-form method="get" action=(paths::sweep_path(paths::SWEEP_OVERLAY, id)) {
                    button #overlay type="submit" { "Overlay" }
                    " " span.muted { "Pick up to " (MAX_OVERLAY) " cases in the table to overlay their trajectories." }
                }
            }
            div.table-scroll {
                table #cases-table {
                    thead { tr {
                        @if view.trajectories { th scope="col" { "Pick" } }
                        (sort_header(q, id, SortKey::Index, html! { "Case" }))
                        @for (i, p) in view.parameters.iter().enumerate() {
                            (sort_header(q, id, SortKey::Parameter(i), html! { code { (p) } }))
                        }
                        @for (i, k) in view.kpis.iter().enumerate() {
                            (sort_header(q, id, SortKey::Kpi(i), html! { code { (k.name()) } }))
                        }
                        (sort_header(q, id, SortKey::Status, html! { "Status" }))
                    } }
                    tbody {
                        @for c in shown {
                            tr.case-row data-index=(c.index) {
                                @if view.trajectories {
                                    td.pick {
                                        input type="checkbox" name="case" value=(c.index) form="overlay-form"
                                            disabled[c.status != RunStatus::Succeeded] aria-label={ "Pick case " (c.index) " to overlay" };
                                    }
                                }
                                td.num { (c.index) }
                                @for p in &view.parameters { td.num { (parameter_of(c, p).unwrap_or("—")) } }
                                @for i in 0..view.kpis.len() {
                                    td.num { (kpi_of(c, i).map_or_else(|| "—".to_string(), |v| Number(v).to_string())) }
                                }
                                td {
                                    span.badge data-status=(c.status.as_str()) { (c.status.as_str()) }
                                    @if let Some(e) = &c.error { " " span.muted.case-error { (e) } }
                                }
                            }
                        }
                    }
                }
            }
            nav.pager aria-label="Pages of cases" {
                span #cases-shown { "Cases " ((page - 1) * CASES_PAGE + usize::from(!shown.is_empty())) "–" ((page - 1) * CASES_PAGE + shown.len()) " of " (sorted.len()) }
                @if page > 1 { " " a #cases-previous href=(q.url(id, key, q.descending(), page - 1)) { "← Previous" } }
                @if page < pages { " " a #cases-next href=(q.url(id, key, q.descending(), page + 1)) { "Next →" } }
            }
        }
    }
}

fn kpis_and_parameters(sweep: &SweepRow) -> (Option<sweeps::Stored>, Vec<String>, Vec<KpiSpec>) {
    let stored = sweep.stored();
    let kpis = stored.as_ref().map(|s| s.kpis.clone()).unwrap_or_default();
    (stored, sweep.parameter_names(), kpis)
}

#[handler]
pub async fn show(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<SweepId>,
    Query(q): Query<SweepQuery>,
) -> Result<Response, WebError> {
    let view = sweeps::get(&state, &s.user.id, &id).await?;
    let cases = all_cases(&state, &s, &id).await?;
    let model = fmus::resolve(&state, &s.user.id, view.sweep.fmu_id.as_str())
        .await
        .ok();
    let (stored, parameters, kpis) = kpis_and_parameters(&view.sweep);
    let live = view.sweep.finished_at.is_none();
    let cases_view = CasesView {
        sweep: &view.sweep,
        parameters,
        kpis,
        trajectories: stored.as_ref().is_some_and(|s| s.trajectories),
        model: model.as_ref(),
    };
    let status = live_status(&view.sweep, &view.counts);
    let stream_url = live.then(|| paths::sweep_path(paths::SWEEP_EVENTS, &id));
    let content = html! {
        h1 { "Sweep " (view.sweep.name) }
        p.muted { code { (id) } }
        div #sweep-live hx-ext=[live.then_some("sse")] sse-connect=[stream_url.as_deref()] sse-close=[live.then_some("end")] {
            section.card #sweep-progress sse-swap=[live.then_some("progress,end")] {
                (progress_fragment(&id, status, &view.counts, view.sweep.case_count, None, &s.csrf_token))
            }
            @if live {
                noscript {
                    p #no-autoupdate.muted { "This page does not update by itself without JavaScript: "
                        a href=(paths::sweep(&id)) { "Reload" } " to see how far the sweep has got." }
                }
            }
            (settings_section(&view.sweep, stored.as_ref(), model.as_ref()))
            (cases_section(&cases_view, &cases, &q, live))
        }
        p { a href=(paths::SWEEPS) { "← All sweeps" } }
    };
    let head = html! { script src=(super::assets::url("sse.js")) defer {} };
    Ok(html(
        StatusCode::OK,
        layout::page_with_head("Sweep", Nav::Sweeps, Some(&s), head, content),
    ))
}

/// The sweep's progress as Server-Sent Events whose data is the HTML htmx swaps in:
/// `progress` as cases end, then `end`, after which the page refreshes its cases table and
/// closes the stream (`sse-close`). The events come from the domain's watch, as the API's do.
#[handler]
pub async fn events(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<SweepId>,
) -> Result<Response, WebError> {
    let (view, stream) = sweeps::watch::watch(&state, &s.user.id, &id).await?;
    let (state, user, token) = (state.clone(), s.user.id.clone(), s.csrf_token.clone());
    let sweep = view.sweep;
    let events = stream.filter_map(move |event| {
        let (state, user, token, sweep) =
            (state.clone(), user.clone(), token.clone(), sweep.clone());
        async move {
            match event {
                SweepEvent::Progress {
                    counts,
                    eta_seconds,
                } => {
                    let status = live_status(&sweep, &counts);
                    let html = progress_fragment(
                        &sweep.id,
                        status,
                        &counts,
                        sweep.case_count,
                        eta_seconds,
                        &token,
                    );
                    Some(Event::message(html.into_string()).event_type("progress"))
                }
                SweepEvent::End { status, .. } => {
                    let counts = sweeps::get(&state, &user, &sweep.id)
                        .await
                        .map(|v| v.counts)
                        .unwrap_or_default();
                    let html = progress_fragment(
                        &sweep.id,
                        status,
                        &counts,
                        sweep.case_count,
                        None,
                        &token,
                    );
                    Some(Event::message(html.into_string()).event_type("end"))
                }
                SweepEvent::Cases(_) => None,
            }
        }
    });
    Ok(SSE::new(events).keep_alive(KEEP_ALIVE).into_response())
}

/// Cancels the sweep by the domain's call (running cases charged, the rest refunded) and goes
/// back to its page.
#[handler]
pub async fn cancel(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<SweepId>,
) -> Result<Response, WebError> {
    sweeps::cancel(&state, &s.user.id, &id).await?;
    Ok(see_other(&paths::sweep(&id)))
}

fn attachment(content_type: &str, name: String, body: impl Into<Body>) -> Response {
    Response::builder()
        .content_type(content_type)
        .header(
            "Content-Disposition",
            format!("attachment; filename=\"{name}\""),
        )
        .body(body)
}

/// Every case as CSV (the API's file).
#[handler]
pub async fn cases_csv(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<SweepId>,
) -> Result<Response, WebError> {
    let text = sweeps::cases_csv(&state, &s.user.id, &id).await?;
    Ok(attachment(
        "text/csv; charset=utf-8",
        format!("{id}-cases.csv"),
        text,
    ))
}

/// Every case as a Parquet file with typed columns.
#[handler]
pub async fn cases_parquet(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<SweepId>,
) -> Result<Response, WebError> {
    let bytes = sweeps::cases_parquet::cases_parquet(&state, &s.user.id, &id).await?;
    Ok(attachment(
        crate::sim::result_file::Format::Parquet.media_type(),
        format!("{id}-cases.parquet"),
        bytes,
    ))
}

/// The scatter plot as a standalone SVG file.
#[handler]
pub async fn scatter_svg(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<SweepId>,
    Query(q): Query<SweepQuery>,
) -> Result<Response, WebError> {
    let view = sweeps::get(&state, &s.user.id, &id).await?;
    let cases = all_cases(&state, &s, &id).await?;
    let model = fmus::resolve(&state, &s.user.id, view.sweep.fmu_id.as_str())
        .await
        .ok();
    let (_, parameters, kpis) = kpis_and_parameters(&view.sweep);
    let cases_view = CasesView {
        sweep: &view.sweep,
        parameters,
        kpis,
        trajectories: false,
        model: model.as_ref(),
    };
    let Some((x, y)) = scatter_axes(&cases_view, &q) else {
        return Err(WebError::Status(
            StatusCode::CONFLICT,
            "this sweep has no KPI or no parameter to plot".into(),
        ));
    };
    let (chart, _) = scatter(&cases_view, &cases, x, y);
    Ok(Response::builder()
        .content_type("image/svg+xml")
        .header(
            "Content-Disposition",
            format!("attachment; filename=\"{id}-scatter.svg\""),
        )
        .body(charts::stacked_document(&[chart])))
}

/// `/sweeps/{id}/overlay?case=…&case=…[&variable=h]`: the chosen cases' kept trajectories of
/// one variable, overlaid (at most [`MAX_OVERLAY`]).
#[handler]
pub async fn overlay(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<SweepId>,
    req: &Request,
) -> Result<Response, WebError> {
    let view = sweeps::get(&state, &s.user.id, &id).await?;
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let mut picked: Vec<u32> = Vec::new();
    for (k, v) in &pairs {
        if k == "case" {
            let case_index = v.parse::<u32>().map_err(|_| {
                WebError::Status(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    format!("'{v}' is not a case number"),
                )
            })?;
            if !picked.contains(&case_index) {
                picked.push(case_index);
            }
        }
    }
    let variable = pairs
        .iter()
        .find(|(k, _)| k == "variable")
        .map(|(_, v)| v.clone());
    let back = paths::sweep(&id);
    let kept = view.sweep.stored().is_some_and(|s| s.trajectories);
    let (status, body) = if !kept {
        (
            StatusCode::CONFLICT,
            layout::alert(
                "error",
                "This sweep kept no trajectories, so there is nothing to overlay: start a sweep with \"Keep each case's trajectories\" ticked to overlay its cases.",
            ),
        )
    } else if picked.is_empty() || picked.len() > MAX_OVERLAY {
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            layout::alert(
                "error",
                &format!(
                    "Pick 1 to {MAX_OVERLAY} cases to overlay (this asked for {}): tick them in the cases table.",
                    picked.len()
                ),
            ),
        )
    } else {
        (
            StatusCode::OK,
            overlay_body(&state, &s, &id, &picked, variable.as_deref()).await?,
        )
    };
    let content = html! {
        h1 { "Overlay of sweep " (view.sweep.name) }
        (body)
        p { a href=(back) { "← The sweep" } }
    };
    Ok(html(
        status,
        layout::page("Overlay", Nav::Sweeps, Some(&s), content),
    ))
}

/// The overlay's chart: each picked case's trajectory of `variable` (or of the first numeric
/// variable), with a select to choose another; cases without a trajectory are named.
async fn overlay_body(
    state: &State,
    s: &Session,
    id: &SweepId,
    picked: &[u32],
    variable: Option<&str>,
) -> Result<Markup, WebError> {
    let mut samples = Vec::new();
    let mut missing = Vec::new();
    for &case_index in picked {
        match sweeps::case_result(state, &s.user.id, id, case_index).await {
            Ok(file) => {
                let sample = tokio::task::spawn_blocking(move || file.plot_sample(OVERLAY_ROWS))
                    .await
                    .map_err(AppError::from)?
                    .map_err(AppError::from)?;
                samples.push((case_index, sample));
            }
            Err(e @ (AppError::Conflict(_) | AppError::NotFound(_))) => missing.push(e.to_string()),
            Err(e) => return Err(e.into()),
        }
    }
    let names: Vec<String> = samples
        .first()
        .map(|(_, p)| p.series.iter().map(|(n, _)| n.clone()).collect())
        .unwrap_or_default();
    let chosen = variable
        .filter(|v| names.iter().any(|n| n == v))
        .or(names.first().map(String::as_str))
        .unwrap_or("");
    let labels: Vec<String> = samples
        .iter()
        .map(|(case_index, _)| format!("case {case_index}"))
        .collect();
    let curves: Vec<Curve<'_>> = samples
        .iter()
        .zip(&labels)
        .filter_map(|((_, p), label)| {
            let (_, values) = p.series.iter().find(|(n, _)| n == chosen)?;
            Some(Curve {
                name: label,
                time: &p.time,
                values,
            })
        })
        .collect();
    let unit = samples.first().and_then(|(_, p)| {
        let i = p.series.iter().position(|(n, _)| n == chosen)?;
        p.units.get(i).cloned().flatten()
    });
    let opts = PlotOptions {
        y_label: Some(with_unit(chosen, unit)),
        title: Some(format!("{chosen} of {} cases", curves.len())),
        ..PlotOptions::default()
    };
    let url = paths::sweep_path(paths::SWEEP_OVERLAY, id);
    Ok(html! {
        @for m in &missing { (layout::alert("error", m)) }
        form.inline-form #overlay-variable method="get" action=(url) {
            @for i in picked { input type="hidden" name="case" value=(i); }
            label for="overlay-var" { "Variable" }
            select #overlay-var name="variable" {
                @for n in &names { option value=(n) selected[n == chosen] { (n) } }
            }
            button type="submit" { "Show" }
        }
        figure #overlay-plot { (charts::curves_plot(&curves, &[], &opts)) }
    })
}
