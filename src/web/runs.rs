//! The runs pages: the list with a "New run" form (a library or uploaded model, start values
//! and outputs picked from its variables), and a run's page with its status (polled by htmx
//! until it ends), an SVG plot of the results, the FMU log and a CSV download.

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Path, Query};
use poem::{Body, Response, handler};
use serde::Deserialize;

use super::error::WebError;
use super::layout::{self, Nav, csrf_field, when};
use super::{CurrentSession, WantsFragment, html, paths, see_other};
use crate::auth::csrf;
use crate::auth::session::Session;
use crate::domain::error::AppError;
use crate::domain::fmus::{self, FmuRecord};
use crate::domain::ids::RunId;
use crate::domain::rfc3339_ms;
use crate::domain::runs::{self, RunRequest, RunStatus, Starter};
use crate::sim::plan::{Problem, RunSettings};
use crate::sim::protocol::{Interface, Solver};
use crate::sim::reference::{Reference, ReferenceCheck};
use crate::sim::result_file::Format;
use crate::state::State;
use crate::store::runs::RunRow;

/// Rows of a result the run page plots (every k-th of a larger one; the CSV has them all).
const PLOT_ROWS: u64 = 20_000;

fn unfinished(run: &RunRow) -> bool {
    !run.status.is_finished()
}

fn status_badge(status: RunStatus) -> Markup {
    let class = match status {
        RunStatus::Succeeded => "badge badge-active",
        RunStatus::Failed | RunStatus::Cancelled => "badge badge-revoked",
        RunStatus::Queued | RunStatus::Running => "badge badge-pending",
    };
    html! { span class=(class) data-status=(status.as_str()) { (status.as_str()) } }
}

/// One row of the runs table; while the run is unfinished it asks for itself again.
pub fn run_row(run: &RunRow) -> Markup {
    let poll = unfinished(run).then(|| paths::run_row(&run.id));
    html! {
        tr #{"run-" (run.id)} hx-get=[poll.as_deref()] hx-trigger=[poll.as_ref().map(|_| "every 1s")] hx-swap="outerHTML" {
            td { a href=(paths::run(&run.id)) { code { (run.id) } } }
            td { (run.fmu_name) }
            td { (status_badge(run.status)) }
            td { (when(run.created_at)) }
            td.num { (run.credits_charged) }
        }
    }
}

/// What the user typed into the run form, kept when the form comes back with problems.
#[derive(Default)]
pub struct Entered {
    stop_time: Option<String>,
    output_interval: Option<String>,
    interface: Option<String>,
    solver: Option<String>,
    start_values: Vec<(String, String)>,
    /// `None`: the form was not sent yet (the model's outputs are checked).
    outputs: Option<Vec<String>>,
}

impl Entered {
    fn start(&self, name: &str) -> Option<&str> {
        self.start_values
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The problems the run form shows, next to the field each is about.
#[derive(Default)]
struct FormProblems<'a>(&'a [Problem]);

impl FormProblems<'_> {
    fn of(&self, field: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|p| p.field == field)
            .map(|p| p.message.as_str())
            .collect()
    }

    /// The messages next to `field` (with the id its input points at), if any.
    fn next_to(&self, field: &str) -> Markup {
        let messages = self.of(field);
        html! {
            @if !messages.is_empty() {
                span.field-error id={ "error-" (field) } role="alert" { (messages.join("; ")) }
            }
        }
    }

    fn described_by(&self, field: &str) -> Option<String> {
        (!self.of(field).is_empty()).then(|| format!("error-{field}"))
    }
}

/// The variables part of the form for one model: start values for what can be set, and the
/// outputs to record (the model's outputs checked), with what the user typed and the problems
/// found in it when the form comes back.
fn model_fields(model: Option<&FmuRecord>, entered: &Entered, problems: &[Problem]) -> Markup {
    let problems = FormProblems(problems);
    html! {
        div #run-fields {
            @if let Some(m) = model {
                @let exp = m.info.default_experiment.clone().unwrap_or_default();
                @if !problems.0.is_empty() {
                    div.alert.alert-error role="alert" {
                        p { "The run was not started (nothing was charged). Fix these and run again:" }
                        ul { @for p in problems.0 { li { code { (p.field) } ": " (p.message) } } }
                    }
                }
                input type="hidden" name="fmu" value=(m.library_id.as_deref().unwrap_or(m.id.as_str()));
                div.inline-form {
                    label for="stop_time" { "Stop time [s]" }
                    input #stop_time type="number" step="any" name="stop_time"
                        value=[entered.stop_time.clone().or(exp.stop_time.map(|v| v.to_string()))]
                        aria-describedby=[problems.described_by("stop_time")];
                    (problems.next_to("stop_time"))
                    label for="output_interval" { "Output interval [s]" }
                    input #output_interval type="number" step="any" name="output_interval"
                        value=[entered.output_interval.clone().or(exp.step_size.map(|v| v.to_string()))]
                        aria-describedby=[problems.described_by("output_interval")];
                    (problems.next_to("output_interval"))
                    label for="interface" { "Interface" }
                    @let picked = entered.interface.as_deref().and_then(|i| i.parse::<Interface>().ok());
                    select #interface name="interface" aria-describedby=[problems.described_by("interface")] {
                        @if m.info.co_simulation.is_some() { option value=(Interface::Cs.as_str()) selected[picked == Some(Interface::Cs)] { "Co-Simulation" } }
                        @if m.info.model_exchange.is_some() { option value=(Interface::Me.as_str()) selected[picked == Some(Interface::Me)] { "Model Exchange" } }
                    }
                    (problems.next_to("interface"))
                    @if m.info.model_exchange.is_some() {
                        label for="solver" { "Solver (Model Exchange)" }
                        @let solver = entered.solver.as_deref().and_then(|v| v.parse::<Solver>().ok()).unwrap_or_default();
                        select #solver name="solver" aria-describedby=[problems.described_by("solver")] {
                            @for (choice, label) in FORM_SOLVERS {
                                option value=(choice.as_str()) selected[solver == choice] { (label) }
                            }
                        }
                        (problems.next_to("solver"))
                    }
                }
                fieldset {
                    legend { "Start values" }
                    @for v in m.info.variables.iter().filter(|v| matches!(v.causality.as_str(), "parameter" | "input") || v.initial.as_deref() == Some("exact")) {
                        @let field = format!("start_values.{}", v.name);
                        label for={ "start-" (v.name) } { code { (v.name) } " " span.muted { (v.unit.as_deref().unwrap_or("")) } }
                        input id={ "start-" (v.name) } type="text" name={ "start." (v.name) }
                            placeholder=[v.start.as_deref()] value=[entered.start(&v.name)]
                            aria-invalid=[(!problems.of(&field).is_empty()).then_some("true")]
                            aria-describedby=[problems.described_by(&field)];
                        (problems.next_to(&field))
                    }
                }
                fieldset {
                    legend { "Outputs to record" }
                    @for v in m.info.variables.iter().filter(|v| v.causality != "independent") {
                        @let checked = match &entered.outputs {
                            Some(chosen) => chosen.contains(&v.name),
                            None => v.causality == "output",
                        };
                        label.check {
                            input type="checkbox" name="output" value=(v.name) checked[checked];
                            " " code { (v.name) }
                        }
                        (problems.next_to(&format!("outputs.{}", v.name)))
                    }
                }
                button.primary type="submit" { "Run" }
            } @else {
                p.muted { "Choose a model to see its variables." }
            }
        }
    }
}

fn view(
    s: &Session,
    models: &[FmuRecord],
    chosen: Option<&FmuRecord>,
    rows: &[RunRow],
    entered: &Entered,
    problems: &[Problem],
) -> Markup {
    let content = html! {
        h1 { "Runs" }
        section.card {
            h2 { "New run" }
            form method="get" action=(paths::RUNS) {
                label for="fmu-choice" { "Model" }
                select #fmu-choice name="fmu" hx-get=(paths::RUN_FIELDS) hx-target="#run-fields" hx-swap="outerHTML" hx-trigger="change" {
                    option value="" { "Choose…" }
                    @for m in models {
                        @let id = m.library_id.clone().unwrap_or_else(|| m.id.to_string());
                        option value=(id) selected[chosen.is_some_and(|c| c.id == m.id)] { (m.model_name) " — " (id) }
                    }
                }
                noscript { button type="submit" { "Choose" } }
            }
            form method="post" action=(paths::RUNS) {
                (csrf_field(s))
                (model_fields(chosen, entered, problems))
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
        Some(f) => Ok(Some(fmus::resolve(state, &s.user.id, f).await?)),
        None => Ok(None),
    }
}

#[handler]
pub async fn index(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Query(q): Query<ChooseModel>,
) -> Result<Response, WebError> {
    let models = fmus::list(&state, &s.user.id, None).await?;
    let chosen = chosen_model(&state, &s, q.fmu.as_deref()).await?;
    let (rows, _) = runs::list(&state.store, &s.user.id, None, None, 50, 0).await?;
    Ok(html(
        StatusCode::OK,
        view(
            &s,
            &models,
            chosen.as_ref(),
            &rows,
            &Entered::default(),
            &[],
        ),
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
    Ok(html(
        StatusCode::OK,
        model_fields(chosen.as_ref(), &Entered::default(), &[]),
    ))
}

/// Starts a run from the form and goes to its page. A request the model cannot take comes
/// back as the form (422), with what the user typed and every problem next to its field.
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
    let mut entered = Entered {
        outputs: Some(Vec::new()),
        ..Entered::default()
    };
    for (key, value) in csrf::form_pairs(&bytes) {
        match key.as_str() {
            "fmu" => fmu = Some(value),
            "stop_time" => entered.stop_time = Some(value),
            "output_interval" => entered.output_interval = Some(value),
            "interface" => entered.interface = Some(value),
            "solver" => entered.solver = Some(value),
            "output" => entered.outputs.get_or_insert_with(Vec::new).push(value),
            k if k.starts_with("start.") && !value.trim().is_empty() => {
                let name = k["start.".len()..].to_string();
                entered.start_values.push((name, value.trim().to_string()));
            }
            _ => {}
        }
    }
    let fmu = fmu
        .filter(|f| !f.is_empty())
        .ok_or_else(|| AppError::Invalid("choose a model".into()))?;
    let (settings, mut problems) = settings_from(&entered);
    let new = RunRequest {
        fmu: fmu.clone(),
        settings,
        timeout: None,
        name: None,
        states: Default::default(),
        reference: None,
    };
    if problems.is_empty() {
        match runs::start(&state, Starter::Session(s.user.id.clone()), new, None).await {
            Ok(started) => return Ok(see_other(&paths::run(&started.run.id))),
            Err(AppError::Problems(found)) => problems = found.0,
            Err(e) => return Err(e.into()),
        }
    }
    let models = fmus::list(&state, &s.user.id, None).await?;
    let chosen = chosen_model(&state, &s, Some(&fmu)).await?;
    let (rows, _) = runs::list(&state.store, &s.user.id, None, None, 50, 0).await?;
    Ok(html(
        StatusCode::UNPROCESSABLE_ENTITY,
        view(&s, &models, chosen.as_ref(), &rows, &entered, &problems),
    ))
}

/// The solvers the run form offers, with their labels. Euler is left out: it needs a step
/// size, which the form does not ask for (the API and the CLI offer it).
const FORM_SOLVERS: [(Solver, &str); 3] = [
    (Solver::Auto, "Automatic (Dormand–Prince, BDF once stiff)"),
    (Solver::DormandPrince, "Dormand–Prince (explicit)"),
    (Solver::Bdf, "BDF (implicit, for stiff models)"),
];

/// The run settings the form asks for, and the fields that are not even numbers.
fn settings_from(entered: &Entered) -> (RunSettings, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut number = |field: &str, v: &Option<String>| -> Option<f64> {
        let v = v.as_deref().map(str::trim).filter(|v| !v.is_empty())?;
        let parsed = v.parse().ok();
        if parsed.is_none() {
            problems.push(Problem::new(
                field,
                format!("{field} must be a number, not '{v}'"),
            ));
        }
        parsed
    };
    let settings = RunSettings {
        stop_time: number("stop_time", &entered.stop_time),
        output_interval: number("output_interval", &entered.output_interval),
        // Not sent (or empty): the model's default. Anything else is parsed as every face
        // parses it; an unknown value is a problem, never a silent Co-Simulation.
        interface: match entered.interface.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => match v.parse::<Interface>() {
                Ok(interface) => Some(interface),
                Err(invalid) => {
                    problems.push(Problem::new("interface", invalid.0));
                    None
                }
            },
        },
        solver: match entered.solver.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(v) => match v.parse::<Solver>() {
                Ok(solver) => Some(solver),
                Err(invalid) => {
                    problems.push(Problem::new("solver", invalid.0));
                    None
                }
            },
        },
        start_values: entered.start_values.clone(),
        outputs: entered.outputs.clone().unwrap_or_default(),
        ..RunSettings::default()
    };
    (settings, problems)
}

/// What the run cost, in words: held while it runs, then charged or not by the one rule.
fn charge_text(run: &RunRow) -> String {
    if unfinished(run) {
        format!("{} held until it ends", run.credits_reserved.describe())
    } else if run.charged {
        format!("charged {}", run.credits_charged.describe())
    } else {
        "not charged (the credits held were refunded)".to_string()
    }
}

/// A date for people, with the exact time for machines: `<time datetime="…Z">2026-12-26</time>`.
fn day(ms: i64) -> Markup {
    let exact = rfc3339_ms(ms);
    html! { time datetime=(exact) { (exact.get(..10).unwrap_or(&exact)) } }
}

/// The run's status, plot, log and download: the run page's body and the fragment htmx polls
/// while the run is unfinished.
/// The reference check's verdict: overall, then a row per variable.
fn verdict_table(check: &ReferenceCheck) -> Markup {
    use crate::format::Number;
    let optional = |v: Option<f64>| v.map_or("—".to_string(), |v| Number(v).to_string());
    html! {
        section #reference-check {
            h2 { "Reference check: "
                @if check.passed { span.badge.badge-active { "passed" } }
                @else { span.badge.badge-revoked { "failed" } }
            }
            @for problem in &check.problems { (layout::alert("error", problem)) }
            div.table-scroll {
                table {
                    thead { tr {
                        th { "Variable" } th { "Verdict" } th { "Max deviation" } th { "at t" }
                        th { "Points outside" } th { "First outside" } th { "abs / rel tolerance" }
                    } }
                    tbody {
                        @for v in &check.variables {
                            tr.reference-variable {
                                td { code { (v.name) } }
                                td {
                                    @if v.passed { span.badge.badge-active { "pass" } }
                                    @else { span.badge.badge-revoked { "fail" } }
                                    @if let Some(problem) = &v.problem { " " span.muted { (problem) } }
                                }
                                td { (optional(v.max_deviation)) }
                                td { (optional(v.at_time)) }
                                td { (v.points_outside) " of " (v.points_compared) }
                                td { (optional(v.first_outside)) }
                                td { (Number(v.abs_tol)) " / " (Number(v.rel_tol)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn run_details(
    run: &RunRow,
    output: Option<&crate::sim::result_file::PlotSample>,
    reference: Option<&Reference>,
    expires: Option<i64>,
) -> Markup {
    let check = runs::reference::stored_check(run.reference_check.as_deref());
    let poll = unfinished(run).then(|| paths::run(&run.id));
    html! {
        div #run-details hx-get=[poll.as_deref()] hx-trigger=[poll.as_ref().map(|_| "every 1s")] hx-swap="outerHTML" {
            p { "Status: " (status_badge(run.status)) " · " (run.fmu_name) " · " span #run-charge { (charge_text(run)) } }
            @if let Some(kind) = run.failure_kind {
                p { "Failure: " code #failure-kind { (kind.as_str()) } }
            }
            @if let Some(error) = &run.error { (layout::alert("error", error)) }
            @if let Some(out) = output {
                @if !out.series.is_empty() {
                    (super::plots::run_figure(run, out, reference, check.as_ref()))
                }
                @if !out.text.is_empty() {
                    p #not-plotted.muted { "Text values are not plotted (they are in the CSV): " (out.text.join(", ")) }
                }
                p #downloads {
                    a.button href=(paths::run_result(&run.id, Format::Csv)) download { "Download CSV" } " "
                    a.button href=(paths::run_result(&run.id, Format::Json)) download { "JSON" } " "
                    a.button href=(paths::run_result(&run.id, Format::Parquet)) download { "Parquet" } " "
                    @if out.text.is_empty() {
                        a.button href=(paths::run_result(&run.id, Format::Mat)) download { "MATLAB" }
                    } @else {
                        span.muted { "(MATLAB files hold only numbers: this result has text)" }
                    }
                }
            }
            @if let Some(check) = &check { (verdict_table(check)) }
            @if let Some(removed) = run.result_removed_at {
                p #result-retention { "The results were removed on " (day(removed)) ", at the end of their retention period. The run's settings are kept: run it again to get them back." }
            } @else if let Some(until) = expires {
                p #result-retention.muted { "Results are kept until " (day(until)) "." }
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
    Path(id): Path<RunId>,
) -> Result<Response, WebError> {
    let run = runs::get(&state.store, &s.user.id, &id).await?;
    let output = if let Some(result) = runs::kept_result(&state, &run).await? {
        // A plot needs a few thousand points, not every one of a large result.
        let sample = tokio::task::spawn_blocking(move || result.plot_sample(PLOT_ROWS))
            .await
            .map_err(AppError::from)?
            .map_err(AppError::from)?;
        Some(sample)
    } else {
        None
    };
    let reference = runs::kept_reference(&state, &run).await?;
    let details = run_details(
        &run,
        output.as_ref(),
        reference.as_ref(),
        runs::result_expires_at(&state, &run),
    );
    if fragment {
        return Ok(html(StatusCode::OK, details));
    }
    let content = html! {
        h1 { "Run " code { (run.id) } }
        (details)
        p { a href=(paths::RUNS) { "← All runs" } }
    };
    Ok(html(
        StatusCode::OK,
        layout::page_with_head("Run", Nav::Runs, Some(&s), super::plots::head(), content),
    ))
}

/// One row, for the runs table's polling.
#[handler]
pub async fn row(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<RunId>,
) -> Result<Response, WebError> {
    let run = runs::get(&state.store, &s.user.id, &id).await?;
    Ok(html(StatusCode::OK, run_row(&run)))
}

/// The results as CSV, for the dashboard's download link.
#[handler]
pub async fn csv(
    state: Data<&State>,
    session: CurrentSession,
    id: Path<RunId>,
) -> Result<Response, WebError> {
    download(&state, session, id, Format::Csv).await
}

/// The results as JSON (the API's `RunResult`), for the dashboard's download link.
#[handler]
pub async fn json(
    state: Data<&State>,
    session: CurrentSession,
    id: Path<RunId>,
) -> Result<Response, WebError> {
    download(&state, session, id, Format::Json).await
}

/// The results as a MATLAB file in Dymola's layout, for the dashboard's download link.
#[handler]
pub async fn mat(
    state: Data<&State>,
    session: CurrentSession,
    id: Path<RunId>,
) -> Result<Response, WebError> {
    download(&state, session, id, Format::Mat).await
}

/// The results as an Apache Parquet file, for the dashboard's download link.
#[handler]
pub async fn parquet(
    state: Data<&State>,
    session: CurrentSession,
    id: Path<RunId>,
) -> Result<Response, WebError> {
    download(&state, session, id, Format::Parquet).await
}

/// A run's results in `format`, streamed as an attachment named `<run id>.<extension>`; a
/// MAT file of a result it cannot hold is a 406 page that names the column.
async fn download(
    state: &State,
    CurrentSession(s): CurrentSession,
    Path(id): Path<RunId>,
    format: Format,
) -> Result<Response, WebError> {
    let run = runs::get(&state.store, &s.user.id, &id).await?;
    let result = runs::result(state, &run).await?;
    let result = result
        .checked_for(format)
        .await
        .map_err(AppError::from)?
        .map_err(|refusal| WebError::Status(StatusCode::NOT_ACCEPTABLE, refusal.to_string()))?;
    Ok(Response::builder()
        .content_type(format.media_type())
        .header(
            "Content-Disposition",
            format!("attachment; filename=\"{}.{}\"", run.id, format.extension()),
        )
        .body(poem::Body::from_bytes_stream(result.into_stream(format))))
}
