//! The runs pages: the list with a "New run" form (a library or uploaded model, start values
//! and outputs picked from its variables), and a run's page with its status (polled by htmx
//! until it ends), an SVG plot of the results, the FMU log and a CSV download.

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{Body, Response, handler};
use serde::Deserialize;

use super::charts::{self, PlotOptions};
use super::error::WebError;
use super::layout::{self, Nav, csrf_field, when};
use super::{CurrentSession, WantsFragment, html, paths, see_other};
use crate::auth::csrf;
use crate::auth::session::Session;
use crate::db::runs::RunRow;
use crate::error::AppError;
use crate::fmi::registry::{self, FmuRecord};
use crate::runs::{self, NewRun, Starter};
use crate::sim::plan::RunSettings;
use crate::state::State;

fn unfinished(run: &RunRow) -> bool {
    matches!(run.status.as_str(), "queued" | "running")
}

fn status_badge(status: &str) -> Markup {
    let class = match status {
        "succeeded" => "badge badge-active",
        "failed" | "cancelled" => "badge badge-revoked",
        _ => "badge badge-pending",
    };
    html! { span class=(class) data-status=(status) { (status) } }
}

/// One row of the runs table; while the run is unfinished it asks for itself again.
pub fn run_row(run: &RunRow) -> Markup {
    let poll = unfinished(run).then(|| paths::run_row(&run.id));
    html! {
        tr #{"run-" (run.id)} hx-get=[poll.as_deref()] hx-trigger=[poll.as_ref().map(|_| "every 1s")] hx-swap="outerHTML" {
            td { a href=(paths::run(&run.id)) { code { (run.id) } } }
            td { (run.fmu_name) }
            td { (status_badge(&run.status)) }
            td { (when(run.created_at)) }
            td.num { (run.credits_charged) }
        }
    }
}

/// The variables part of the form for one model: start values for what can be set, and the
/// outputs to record (the model's outputs checked).
fn model_fields(model: Option<&FmuRecord>) -> Markup {
    html! {
        div #run-fields {
            @if let Some(m) = model {
                @let exp = m.info.default_experiment.clone().unwrap_or_default();
                input type="hidden" name="fmu" value=(m.library_id.as_deref().unwrap_or(&m.id));
                div.inline-form {
                    label for="stop_time" { "Stop time [s]" }
                    input #stop_time type="number" step="any" name="stop_time" value=[exp.stop_time];
                    label for="output_interval" { "Output interval [s]" }
                    input #output_interval type="number" step="any" name="output_interval" value=[exp.step_size];
                    label for="interface" { "Interface" }
                    select #interface name="interface" {
                        @if m.info.co_simulation.is_some() { option value="cs" { "Co-Simulation" } }
                        @if m.info.model_exchange.is_some() { option value="me" { "Model Exchange" } }
                    }
                }
                fieldset {
                    legend { "Start values" }
                    @for v in m.info.variables.iter().filter(|v| matches!(v.causality.as_str(), "parameter" | "input") || v.initial.as_deref() == Some("exact")) {
                        label for={ "start-" (v.name) } { code { (v.name) } " " span.muted { (v.unit.as_deref().unwrap_or("")) } }
                        input id={ "start-" (v.name) } type="text" name={ "start." (v.name) } placeholder=[v.start.as_deref()];
                    }
                }
                fieldset {
                    legend { "Outputs to record" }
                    @for v in m.info.variables.iter().filter(|v| v.causality != "independent") {
                        label.check {
                            input type="checkbox" name="output" value=(v.name) checked[v.causality == "output"];
                            " " code { (v.name) }
                        }
                    }
                }
                button.primary type="submit" { "Run" }
            } @else {
                p.muted { "Choose a model to see its variables." }
            }
        }
    }
}

fn view(s: &Session, models: &[FmuRecord], chosen: Option<&FmuRecord>, rows: &[RunRow]) -> Markup {
    let content = html! {
        h1 { "Runs" }
        section.card {
            h2 { "New run" }
            form method="get" action=(paths::RUNS) {
                label for="fmu-choice" { "Model" }
                select #fmu-choice name="fmu" hx-get=(paths::RUN_FIELDS) hx-target="#run-fields" hx-swap="outerHTML" hx-trigger="change" {
                    option value="" { "Choose…" }
                    @for m in models {
                        @let id = m.library_id.clone().unwrap_or_else(|| m.id.clone());
                        option value=(id) selected[chosen.is_some_and(|c| c.id == m.id)] { (m.model_name) " — " (id) }
                    }
                }
                noscript { button type="submit" { "Choose" } }
            }
            form method="post" action=(paths::RUNS) {
                (csrf_field(s))
                (model_fields(chosen))
            }
        }
        h2 { "Your runs" }
        @if rows.is_empty() {
            p.muted { "No runs yet." }
        } @else {
            table #runs-table {
                thead { tr { th scope="col" { "Run" } th scope="col" { "Model" } th scope="col" { "Status" } th scope="col" { "Started" } th scope="col" { "Credits" } } }
                tbody { @for r in rows { (run_row(r)) } }
            }
        }
    };
    layout::page("Runs", Nav::Runs, Some(s), content)
}

#[derive(Deserialize)]
pub struct ChooseModel {
    fmu: Option<String>,
}

async fn chosen_model(
    state: &State,
    s: &Session,
    fmu: Option<&str>,
) -> Result<Option<FmuRecord>, WebError> {
    match fmu.filter(|f| !f.is_empty()) {
        Some(f) => Ok(Some(registry::resolve(state, &s.user.id, f).await?)),
        None => Ok(None),
    }
}

#[handler]
pub async fn index(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Query(q): Query<ChooseModel>,
) -> Result<Response, WebError> {
    let models = registry::list(&state, &s.user.id, None).await?;
    let chosen = chosen_model(&state, &s, q.fmu.as_deref()).await?;
    let (rows, _) = runs::list(&state, &s.user.id, None, None, 50, 0).await?;
    Ok(html(
        StatusCode::OK,
        view(&s, &models, chosen.as_ref(), &rows),
    ))
}

/// The variables part of the form, for htmx when the model changes.
#[handler]
pub async fn fields(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Query(q): Query<ChooseModel>,
) -> Result<Response, WebError> {
    let chosen = chosen_model(&state, &s, q.fmu.as_deref()).await?;
    Ok(html(StatusCode::OK, model_fields(chosen.as_ref())))
}

/// Starts a run from the form and goes to its page.
#[handler]
pub async fn create(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    body: Body,
) -> Result<Response, WebError> {
    let bytes = body
        .into_bytes_limit(256 * 1024)
        .await
        .map_err(|_| AppError::Invalid("the form is too large".into()))?;
    let mut fmu = None;
    let mut settings = RunSettings::default();
    let number = |name: &str, v: &str| -> Result<Option<f64>, AppError> {
        if v.trim().is_empty() {
            return Ok(None);
        }
        v.trim()
            .parse()
            .map(Some)
            .map_err(|_| AppError::Invalid(format!("{name} must be a number")))
    };
    for (key, value) in csrf::form_pairs(&bytes) {
        match key.as_str() {
            "fmu" => fmu = Some(value),
            "stop_time" => settings.stop_time = number("the stop time", &value)?,
            "output_interval" => settings.output_interval = number("the output interval", &value)?,
            "interface" => {
                settings.interface = match value.as_str() {
                    "me" => Some(crate::sim::protocol::Interface::Me),
                    _ => Some(crate::sim::protocol::Interface::Cs),
                }
            }
            "output" => settings.outputs.push(value),
            k if k.starts_with("start.") && !value.trim().is_empty() => {
                settings
                    .start_values
                    .push((k["start.".len()..].to_string(), value.trim().to_string()));
            }
            _ => {}
        }
    }
    let fmu = fmu.ok_or_else(|| AppError::Invalid("choose a model".into()))?;
    let new = NewRun {
        fmu,
        settings,
        timeout: None,
        name: None,
    };
    let started = runs::start(&state, Starter::Session(s.user.id.clone()), new, None).await?;
    Ok(see_other(&paths::run(&started.run.id)))
}

/// The run's status, plot, log and download: the run page's body and the fragment htmx polls
/// while the run is unfinished.
fn run_details(run: &RunRow, output: Option<&crate::sim::protocol::SimOutput>) -> Markup {
    let poll = unfinished(run).then(|| paths::run(&run.id));
    html! {
        div #run-details hx-get=[poll.as_deref()] hx-trigger=[poll.as_ref().map(|_| "every 1s")] hx-swap="outerHTML" {
            p { "Status: " (status_badge(&run.status)) " · " (run.fmu_name) " · " (run.credits_charged) " credit(s) charged" }
            @if let Some(error) = &run.error { (layout::alert("error", error)) }
            @if let Some(out) = output {
                @let series: Vec<(&str, &[f64])> = out.columns.iter().map(|c| (c.name.as_str(), c.values.as_slice())).collect();
                figure { (charts::line_plot(&out.time, &series, &PlotOptions { title: Some(run.fmu_name.clone()), ..PlotOptions::default() })) }
                p { a.button href=(paths::run_csv(&run.id)) download { "Download CSV" } }
            }
            @if let Some(log) = run.log.as_deref().filter(|l| !l.is_empty()) {
                details { summary { "FMU log" } pre { (log) } }
            }
        }
    }
}

#[handler]
pub async fn show(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    WantsFragment(fragment): WantsFragment,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let run = runs::get(&state, &s.user.id, &id).await?;
    let output = if run.status == "succeeded" {
        Some(runs::result(&state, &run)?)
    } else {
        None
    };
    if fragment {
        return Ok(html(StatusCode::OK, run_details(&run, output.as_ref())));
    }
    let content = html! {
        h1 { "Run " code { (run.id) } }
        (run_details(&run, output.as_ref()))
        p { a href=(paths::RUNS) { "← All runs" } }
    };
    Ok(html(
        StatusCode::OK,
        layout::page("Run", Nav::Runs, Some(&s), content),
    ))
}

/// One row, for the runs table's polling.
#[handler]
pub async fn row(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let run = runs::get(&state, &s.user.id, &id).await?;
    Ok(html(StatusCode::OK, run_row(&run)))
}

/// The results as CSV, for the dashboard's download link.
#[handler]
pub async fn csv(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let run = runs::get(&state, &s.user.id, &id).await?;
    let output = runs::result(&state, &run)?;
    let csv = output.to_csv().map_err(AppError::Internal)?;
    Ok(Response::builder()
        .content_type("text/csv; charset=utf-8")
        .header(
            "Content-Disposition",
            format!("attachment; filename=\"{}.csv\"", run.id),
        )
        .body(csv))
}
