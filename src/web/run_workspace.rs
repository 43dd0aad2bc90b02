//! The run page's workspace: what a run used (beside the model's defaults it replaced), when
//! it was queued, started and finished, how far it has got while it runs, what it cost, and
//! what can be done with it next: Cancel, Run again (the same settings) and Edit and run (the
//! run form filled in with them).

use std::time::Duration;

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Response, handler};
use serde::Deserialize;

use super::error::WebError;
use super::layout::{csrf_field, when};
use super::{CurrentSession, paths, see_other};
use crate::auth::session::Session;
use crate::domain::error::AppError;
use crate::domain::fmus::{self, FmuRecord};
use crate::domain::ids::RunId;
use crate::domain::runs::charging::FailureKind;
use crate::domain::runs::progress::Progress;
use crate::domain::runs::{self, RunRequest, RunStatus, Starter, StoredSettings};
use crate::format::Number;
use crate::sim::call_log::LogSettings;
use crate::sim::plan::{self, RunSettings};
use crate::sim::protocol::{Interface, Job, Solver};
use crate::state::State;
use crate::store::runs::RunRow;

/// The settings a run was made with; `None` for settings this version cannot read.
pub fn stored_settings(run: &RunRow) -> Option<StoredSettings> {
    serde_json::from_str(&run.settings).ok()
}

/// The model a run used, if it is still there (an upload may have been deleted).
pub async fn run_model(state: &State, user: &Session, run: &RunRow) -> Option<FmuRecord> {
    fmus::resolve(state, &user.user.id, run.fmu_id.as_str())
        .await
        .ok()
}

/// What the model would have run with had the run set nothing: its own defaults, resolved
/// by the same planner a run goes through.
fn model_defaults(model: &FmuRecord) -> Option<Job> {
    // The planner reads the model description only, never the FMU's files: no need to fetch
    // and extract the archive to show a page.
    plan::plan(
        &model.info,
        std::path::Path::new(""),
        &RunSettings::default(),
    )
    .ok()
}

/// What the run cost, as one sentence: held while it runs, then charged or refunded and why.
pub fn charge_sentence(run: &RunRow) -> String {
    if !run.status.is_finished() {
        format!("{} held", run.credits_reserved.describe())
    } else if run.charged {
        format!("Charged {}", run.credits_charged.describe())
    } else {
        format!("Not charged: refunded because {}", refund_reason(run))
    }
}

/// Why a finished run was not charged, in words.
fn refund_reason(run: &RunRow) -> &'static str {
    match (run.status, run.failure_kind) {
        (RunStatus::Cancelled, _) => "it was cancelled before it started",
        (_, Some(FailureKind::ServiceError)) => "the service failed",
        (_, Some(FailureKind::Interrupted)) => "the service stopped during the run",
        (_, Some(FailureKind::ModelError)) => "the built-in model reported an error",
        (_, Some(FailureKind::ModelCrashed)) => "the built-in model crashed",
        (_, Some(FailureKind::OutOfMemory)) => "the built-in model ran out of memory",
        (_, Some(FailureKind::TimeLimit)) => "it used up its time",
        _ => "the service does not charge for it",
    }
}

/// The bar of a running run (simulation time reached / stop time), or the whole span once it
/// succeeded; nothing before a worker reports or after a failure.
pub fn progress_bar(run: &RunRow, progress: Option<Progress>, stop_time: Option<f64>) -> Markup {
    let shown = match (run.status, progress, stop_time) {
        (RunStatus::Running, Some(p), _) => Some((p.time, p.stop_time, p.fraction())),
        (RunStatus::Succeeded, _, Some(stop)) => Some((stop, stop, 1.0)),
        _ => None,
    };
    html! {
        @if let Some((time, stop, fraction)) = shown {
            @let percent = (fraction * 100.0).floor();
            div #run-progress.progress-line {
                label for="run-progress-bar" { "Simulated" }
                progress #run-progress-bar max="1" value=(fraction) { (percent) " %" }
                span #run-progress-text { "t = " (Number(time)) " s of " (Number(stop)) " s (" (percent) " %)" }
            }
        }
    }
}

/// Seconds between two instants (ms), for people: "0.42 s", "3 min 5 s".
fn duration(from_ms: i64, to_ms: i64) -> String {
    let ms = (to_ms - from_ms).max(0);
    if ms < 60_000 {
        format!("{} s", Number((ms as f64 / 10.0).round() / 100.0))
    } else {
        format!("{} min {} s", ms / 60_000, (ms % 60_000) / 1000)
    }
}

/// When the run was queued, started and finished, and how long it ran.
pub fn times(run: &RunRow) -> Markup {
    html! {
        dl #run-times.facts {
            dt { "Queued" } dd { (when(run.created_at)) }
            dt { "Started" } dd {
                @if let Some(t) = run.started_at { (when(t)) " (waited " (duration(run.created_at, t)) ")" }
                @else { "not yet" }
            }
            dt { "Finished" } dd {
                @if let Some(t) = run.finished_at { (when(t)) } @else { "not yet" }
            }
            @if let (Some(start), Some(end)) = (run.started_at, run.finished_at) {
                dt { "Duration" } dd #run-duration { (duration(start, end)) }
            }
        }
    }
}

/// The Cancel form of an unfinished run (a plain form; htmx swaps the details in place).
pub fn cancel_form(run: &RunRow, s: &Session) -> Markup {
    html! {
        @if !run.status.is_finished() {
            form #cancel-run method="post" action=(paths::run_cancel(&run.id)) {
                (csrf_field(s))
                button.danger type="submit" { "Cancel run" }
                " "
                span.muted {
                    @if run.status == RunStatus::Queued { "Not charged if cancelled before it starts." }
                    @else { "A run cancelled while it runs is charged: its model used a worker." }
                }
            }
            noscript {
                p #no-autoupdate.muted { "This page does not update by itself without JavaScript: "
                    a href=(paths::run(&run.id)) { "Reload" } " to see how far the run has got." }
            }
        }
    }
}

/// Run again (same settings, one run per click) and Edit and run (the form filled in).
pub fn next_actions(run: &RunRow, stored: Option<&StoredSettings>, s: &Session) -> Markup {
    let repeat = stored.map(|st| repeatable(run, st));
    html! {
        section #run-actions.actions {
            @match repeat {
                Some(Ok(_)) => {
                    form method="post" action=(paths::run_again(&run.id)) {
                        (csrf_field(s))
                        // One run per click: a form sent twice (a double click, a reload) is
                        // the same attempt and answers with the run it started.
                        input type="hidden" name="attempt" value=(crate::auth::session::random_token());
                        button.primary type="submit" { "Run again" }
                    }
                }
                Some(Err(why)) => { p.muted #no-run-again { "Run again is not offered: " (why) "." } }
                None => {}
            }
            a.button #edit-and-run href=(paths::edit_run(&run.id)) { "Edit and run" }
        }
    }
}

/// One row of the settings table: what the run used, what the model would have used.
fn setting_row(name: Markup, used: &str, default: Option<&str>) -> Markup {
    let changed = default.is_some_and(|d| d != used);
    html! {
        tr.changed[changed] {
            th scope="row" { (name) }
            td { (used) @if changed { " " span.badge { "changed" } } }
            td.muted { (default.unwrap_or("—")) }
        }
    }
}

fn interface_name(i: Interface) -> &'static str {
    match i {
        Interface::Cs => "Co-Simulation",
        Interface::Me => "Model Exchange",
    }
}

fn solver_name(s: Solver) -> &'static str {
    match s {
        Solver::Auto => "automatic",
        Solver::DormandPrince => "Dormand–Prince",
        Solver::Bdf => "BDF",
        Solver::Euler => "Euler",
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

/// The settings the run used, each beside the model's default it replaced.
pub fn settings_table(stored: Option<&StoredSettings>, model: Option<&FmuRecord>) -> Markup {
    let Some(st) = stored else {
        return html! { p.muted { "This run's settings cannot be shown." } };
    };
    let job = model.and_then(model_defaults);
    let d = job.as_ref();
    let number = |v: f64| Number(v).to_string();
    let start_default = |name: &str| {
        model
            .and_then(|m| m.info.variables.iter().find(|v| v.name == name))
            .and_then(|v| v.start.clone())
    };
    html! {
        section #run-settings {
            h2 { "Settings" }
            div.table-scroll {
                table.settings {
                    thead { tr { th scope="col" { "Setting" } th scope="col" { "This run" } th scope="col" { "Model default" } } }
                    tbody {
                        (setting_row(html!{"Interface"}, interface_name(st.interface), d.map(|j| interface_name(j.interface))))
                        @if st.interface == Interface::Me {
                            (setting_row(html!{"Solver"}, solver_name(st.solver), Some(solver_name(Solver::default()))))
                        }
                        (setting_row(html!{"Start time [s]"}, &number(st.start_time), d.map(|j| number(j.start_time)).as_deref()))
                        (setting_row(html!{"Stop time [s]"}, &number(st.stop_time), d.map(|j| number(j.stop_time)).as_deref()))
                        (setting_row(html!{"Output interval [s]"}, &number(st.output_interval), d.map(|j| number(j.output_interval)).as_deref()))
                        (setting_row(html!{"Step size [s]"}, &st.step_size.map_or("automatic".into(), number), d.map(|j| j.step_size.map_or("automatic".into(), number)).as_deref()))
                        (setting_row(html!{"Tolerance"}, &number(st.tolerance), d.map(|j| number(j.tolerance)).as_deref()))
                        @for (name, value) in &st.start_values {
                            (setting_row(html!{ "Start value " code { (name) } }, value, start_default(name).as_deref()))
                        }
                        (setting_row(html!{"Inputs"}, &list(&st.inputs), d.map(|_| "none")))
                        (setting_row(html!{"Outputs"}, &list(&st.outputs), d.map(|j| j.recorded.iter().map(|v| v.name.clone()).collect::<Vec<_>>()).map(|o| list(&o)).as_deref()))
                        (setting_row(html!{"Time limit [s]"}, &number(st.timeout_seconds), None))
                    }
                }
            }
        }
    }
}

/// Whether the stored settings start the same run again: the request they make, or why not
/// (what a run keeps is not all it was given).
fn repeatable(run: &RunRow, st: &StoredSettings) -> Result<RunRequest, &'static str> {
    if !st.inputs.is_empty() {
        return Err(
            "its input signals are not kept with the run (use Edit and run to give them again)",
        );
    }
    if st.reference.is_some() {
        return Err("its reference is not kept with the run");
    }
    let settings = RunSettings {
        interface: Some(st.interface),
        solver: Some(st.solver),
        start_time: Some(st.start_time),
        stop_time: Some(st.stop_time),
        output_interval: Some(st.output_interval),
        step_size: st.step_size,
        tolerance: Some(st.tolerance),
        start_values: st.start_values.clone(),
        outputs: st.outputs.clone(),
        inputs: vec![],
        record_events: Some(st.record_events),
        display_units: st.display_units,
        cs_options: st.cs_options,
        states: Default::default(),
        logging: LogSettings {
            fmi_calls: st.log_fmi_calls,
            categories: st.log_categories.clone(),
        },
    };
    Ok(RunRequest {
        fmu: run.fmu_id.to_string(),
        settings,
        timeout: Some(Duration::from_secs_f64(st.timeout_seconds)),
        name: Some(run.fmu_name.clone()),
        states: crate::domain::states::StateRequest {
            initial: st.initial_state.clone(),
            save_final: st.save_final_state,
        },
        reference: None,
    })
}

/// Cancels a run from its page, by the API's own call (so charged or refunded by the same
/// rule), and goes back to the page.
#[handler]
pub async fn cancel(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<RunId>,
) -> Result<Response, WebError> {
    runs::cancel(&state, &s.user.id, &id).await?;
    Ok(see_other(&paths::run(&id)))
}

#[derive(Deserialize)]
pub struct AgainForm {
    attempt: String,
}

/// Starts a run with the settings of this one; one run per rendered form (its `attempt`).
#[handler]
pub async fn again(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<RunId>,
    Form(form): Form<AgainForm>,
) -> Result<Response, WebError> {
    let run = runs::get(&state.store, &s.user.id, &id).await?;
    let stored = stored_settings(&run)
        .ok_or_else(|| AppError::Invalid("this run's settings cannot be read".into()))?;
    let mut request = repeatable(&run, &stored).map_err(|why| {
        WebError::Status(
            StatusCode::CONFLICT,
            format!("this run cannot be run again: {why}"),
        )
    })?;
    // A library model is named by its library id, so the current build of it runs.
    if let Some(model) = run_model(&state, &s, &run).await {
        request.fmu = model.library_id.unwrap_or_else(|| model.id.to_string());
    }
    let attempt: String = form.attempt.chars().take(128).collect();
    let key = format!("run-again:{id}:{attempt}");
    let started = runs::start(
        &state,
        Starter::Session(s.user.id.clone()),
        request,
        Some(key),
    )
    .await?;
    Ok(see_other(&paths::run(&started.run.id)))
}
