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
use super::{CurrentSession, WantsFragment, html, paths, run_form, run_workspace, see_other};
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

/// One row of the runs table, with its box to pick it for comparison; while the run is
/// unfinished it asks for itself again.
pub fn run_row(run: &RunRow) -> Markup {
    let poll = unfinished(run).then(|| paths::run_row(&run.id));
    html! {
        tr #{"run-" (run.id)} hx-get=[poll.as_deref()] hx-trigger=[poll.as_ref().map(|_| "every 1s")] hx-swap="outerHTML" {
            td.pick {
                input #{"pick-" (run.id)} type="checkbox" name="run" value=(run.id) form="compare-form"
                    aria-label={ "Pick run " (run.id) " to compare" };
            }
            td { a href=(paths::run(&run.id)) { code { (run.id) } } }
            td { (run.fmu_name) }
            td { (status_badge(run.status)) }
            td { (when(run.created_at)) }
            td.num { (run.credits_charged) }
        }
    }
}

/// Runs a page of the list shows.
const PAGE_SIZE: u32 = 25;

/// The runs list's filters and page, from its query string.
#[derive(Clone)]
struct ListFilter {
    status: Option<RunStatus>,
    /// A model's id or library id (matched as the API's `fmu` filter does).
    model: Option<String>,
    /// 1-based.
    page: u64,
}

/// Every run, first page.
impl Default for ListFilter {
    fn default() -> ListFilter {
        ListFilter {
            status: None,
            model: None,
            page: 1,
        }
    }
}

impl ListFilter {
    fn from_query(q: &RunsQuery) -> ListFilter {
        ListFilter {
            status: q.status.as_deref().and_then(|s| s.parse().ok()),
            model: q.model.clone().filter(|m| !m.trim().is_empty()),
            page: q.page.unwrap_or(1).max(1),
        }
    }

    /// The list's URL for `page`, keeping the filters.
    fn url(&self, page: u64) -> String {
        let page = page.to_string();
        let mut pairs = Vec::new();
        if let Some(status) = self.status {
            pairs.push(("status", status.as_str()));
        }
        if let Some(model) = &self.model {
            pairs.push(("model", model.as_str()));
        }
        pairs.push(("page", page.as_str()));
        super::with_query(paths::RUNS, pairs)
    }
}

/// A model as people tell it apart: "BouncingBall (library)", "BouncingBall (library, FMI
/// 2)", or an upload's name and the start of its hash, "BouncingBall · 3f2a9c1b".
pub fn model_label(m: &FmuRecord) -> String {
    match &m.library_id {
        Some(id) if id.ends_with("@fmi2") => format!("{} (library, FMI 2)", m.model_name),
        Some(_) => format!("{} (library)", m.model_name),
        None => format!(
            "{} · {}",
            m.model_name,
            m.id.as_str().get(..8).unwrap_or(m.id.as_str())
        ),
    }
}

/// What a form names a model by: its library id, or an upload's id.
fn model_value(m: &FmuRecord) -> String {
    m.library_id.clone().unwrap_or_else(|| m.id.to_string())
}

/// The list of the user's runs: filters (a GET form htmx submits on change, swapping just
/// this section), a page of runs newest first with boxes to pick runs to compare, and links
/// to the pages around it.
fn runs_list(rows: &[RunRow], total: u64, filter: &ListFilter, models: &[FmuRecord]) -> Markup {
    let first = (filter.page - 1) * u64::from(PAGE_SIZE);
    html! {
        section #runs-list {
            h2 { "Your runs" }
            form.run-filters method="get" action=(paths::RUNS) hx-get=(paths::RUNS) hx-target="#runs-list" hx-select="#runs-list" hx-swap="outerHTML" hx-trigger="change, submit" hx-push-url="true" {
                div.filter {
                    label for="filter-status" { "Status" }
                    select #filter-status name="status" {
                        option value="" { "Any" }
                        @for st in RunStatus::ALL {
                            option value=(st.as_str()) selected[filter.status == Some(st)] { (st.as_str()) }
                        }
                    }
                }
                div.filter {
                    label for="filter-model" { "Model" }
                    select #filter-model name="model" {
                        option value="" { "Any" }
                        @for m in models {
                            @let value = model_value(m);
                            option value=(value) selected[filter.model.as_deref() == Some(value.as_str())] { (model_label(m)) }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
            @if rows.is_empty() {
                p.muted #no-runs { @if filter.status.is_some() || filter.model.is_some() { "No runs match these filters." } @else { "No runs yet." } }
            } @else {
                form #compare-form method="get" action=(paths::RUNS_COMPARE) {
                    div.table-scroll {
                        table #runs-table {
                            thead { tr { th scope="col" { "Pick" } th scope="col" { "Run" } th scope="col" { "Model" } th scope="col" { "Status" } th scope="col" { "Started" } th scope="col" { "Credits" } } }
                            tbody { @for r in rows { (run_row(r)) } }
                        }
                    }
                    p.compare-bar {
                        button #compare type="submit" { "Compare" }
                        " " span.muted { "Pick 2 to 5 runs to see them side by side." }
                    }
                }
                nav.pager aria-label="Pages of runs" {
                    span #runs-shown { "Runs " (first + 1) "–" (first + rows.len() as u64) " of " (total) }
                    @if filter.page > 1 {
                        @let url = filter.url(filter.page - 1);
                        " " a #runs-previous href=(url) hx-get=(url) hx-target="#runs-list" hx-select="#runs-list" hx-swap="outerHTML" hx-push-url="true" { "← Previous" }
                    }
                    @if first + (rows.len() as u64) < total {
                        @let url = filter.url(filter.page + 1);
                        " " a #runs-next href=(url) hx-get=(url) hx-target="#runs-list" hx-select="#runs-list" hx-swap="outerHTML" hx-push-url="true" { "Next →" }
                    }
                }
            }
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
    /// Input signals as pasted (CSV).
    inputs_csv: Option<String>,
}

impl Entered {
    /// The form filled in with a run's settings (Edit and run).
    pub fn from_stored(st: &runs::StoredSettings) -> Entered {
        let number = |v: f64| Some(crate::format::Number(v).to_string());
        Entered {
            stop_time: number(st.stop_time),
            output_interval: number(st.output_interval),
            interface: Some(st.interface.as_str().to_string()),
            solver: Some(st.solver.as_str().to_string()),
            start_values: st.start_values.clone(),
            outputs: Some(st.outputs.clone()),
            // The signals are not kept with a run, only their names.
            inputs_csv: None,
        }
    }

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

    /// The messages about `prefix` and its parts (`inputs`, `inputs.u`, `inputs_csv`).
    fn starting(&self, prefix: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|p| p.field.starts_with(prefix))
            .map(|p| p.message.as_str())
            .collect()
    }

    fn described_by(&self, field: &str) -> Option<String> {
        (!self.of(field).is_empty()).then(|| format!("error-{field}"))
    }
}

/// The variables the form offers a start value for: parameters, inputs, and what starts
/// exactly where its `start` says.
fn settable(m: &FmuRecord) -> impl Iterator<Item = &crate::fmi::describe::Variable> {
    m.info.variables.iter().filter(|v| {
        matches!(v.causality.as_str(), "parameter" | "input")
            || v.initial.as_deref() == Some("exact")
    })
}

/// One labelled control of the form's first block: the label sits with its control.
fn setting_field(id: &str, label: &str, control: Markup, problems: &FormProblems<'_>) -> Markup {
    html! {
        div.field {
            label for=(id) { (label) }
            (control)
            (problems.next_to(id))
        }
    }
}

/// The start value field of one variable: its default as the value (what the user typed when
/// the form comes back), a Reset button (shown by app.js), and an array's shape.
fn start_field(
    v: &crate::fmi::describe::Variable,
    entered: &Entered,
    problems: &FormProblems<'_>,
) -> Markup {
    let field = format!("start_values.{}", v.name);
    let id = format!("start-{}", v.name);
    let value = entered.start(&v.name).or(v.start.as_deref());
    let shape = run_form::shape(v);
    let hint_id = format!("hint-{}", v.name);
    let described: Vec<String> = problems
        .described_by(&field)
        .into_iter()
        .chain(shape.as_ref().map(|_| hint_id.clone()))
        .collect();
    html! {
        div.field.start-field {
            label for=(id) {
                code { (v.name) }
                @if let Some(shape) = &shape { " " span.shape { (shape) } }
                " " span.muted { (v.unit.as_deref().unwrap_or("")) }
            }
            div.with-reset {
                input id=(id) type="text" name={ "start." (v.name) } value=[value]
                    aria-invalid=[(!problems.of(&field).is_empty()).then_some("true")]
                    aria-describedby=[(!described.is_empty()).then(|| described.join(" "))];
                @if let Some(default) = v.start.as_deref() {
                    button.reset type="button" hidden data-reset=(id) data-default=(default)
                        aria-label={ "Reset " (v.name) " to its default " (default) } { "Reset" }
                }
            }
            @if shape.is_some() {
                span.hint.muted id=(hint_id) { "A JSON array, e.g. [1, 2, 3] (nested as its shape), or the elements separated by spaces." }
            }
            (problems.next_to(&field))
        }
    }
}

/// The variables part of the form for one model: start values for what can be set (each
/// showing its default), input signals as pasted CSV when the model has inputs, and the
/// outputs to record (the model's outputs checked), with what the user typed and the problems
/// found in it when the form comes back; the cost and the balance beside Run.
fn model_fields(
    model: Option<&FmuRecord>,
    entered: &Entered,
    problems: &[Problem],
    wallet: &run_form::Wallet,
) -> Markup {
    let problems = FormProblems(problems);
    html! {
        div #run-fields {
            @if !problems.0.is_empty() {
                div.alert.alert-error role="alert" {
                    p { "The run was not started (nothing was charged). Fix these and run again:" }
                    ul { @for p in problems.0 { li { code { (p.field) } ": " (p.message) } } }
                }
            }
            @if let Some(m) = model {
                @let exp = m.info.default_experiment.clone().unwrap_or_default();
                input type="hidden" name="fmu" value=(m.library_id.as_deref().unwrap_or(m.id.as_str()));
                div.form-grid {
                    (setting_field("stop_time", "Stop time [s]", html! {
                        input #stop_time type="number" step="any" name="stop_time"
                            value=[entered.stop_time.clone().or(exp.stop_time.map(|v| v.to_string()))]
                            aria-describedby=[problems.described_by("stop_time")];
                    }, &problems))
                    (setting_field("output_interval", "Output interval [s]", html! {
                        input #output_interval type="number" step="any" name="output_interval"
                            value=[entered.output_interval.clone().or(exp.step_size.map(|v| v.to_string()))]
                            aria-describedby=[problems.described_by("output_interval")];
                    }, &problems))
                    @let picked = entered.interface.as_deref().and_then(|i| i.parse::<Interface>().ok());
                    (setting_field("interface", "Interface", html! {
                        select #interface name="interface" aria-describedby=[problems.described_by("interface")] {
                            @if m.info.co_simulation.is_some() { option value=(Interface::Cs.as_str()) selected[picked == Some(Interface::Cs)] { "Co-Simulation" } }
                            @if m.info.model_exchange.is_some() { option value=(Interface::Me.as_str()) selected[picked == Some(Interface::Me)] { "Model Exchange" } }
                        }
                    }, &problems))
                    @if m.info.model_exchange.is_some() {
                        @let solver = entered.solver.as_deref().and_then(|v| v.parse::<Solver>().ok()).unwrap_or_default();
                        (setting_field("solver", "Solver (Model Exchange)", html! {
                            select #solver name="solver" aria-describedby=[problems.described_by("solver")] {
                                @for (choice, label) in FORM_SOLVERS {
                                    option value=(choice.as_str()) selected[solver == choice] { (label) }
                                }
                            }
                        }, &problems))
                    }
                }
                fieldset {
                    legend { "Start values" }
                    p.muted.hint { "Each field starts at the model's default; change what you need." }
                    div.form-grid {
                        @for v in settable(m) { (start_field(v, entered, &problems)) }
                    }
                }
                @let inputs: Vec<&str> = m.info.variables.iter().filter(|v| v.causality == "input").map(|v| v.name.as_str()).collect();
                @if !inputs.is_empty() {
                    fieldset #input-signals {
                        legend { "Input signals" }
                        label for=(run_form::INPUTS_CSV) { "Paste CSV (optional): a header " code { "time," (inputs.join(",")) } ", then a row per time" }
                        textarea id=(run_form::INPUTS_CSV) name=(run_form::INPUTS_CSV) rows="5" spellcheck="false"
                            placeholder={ "time," (inputs.join(",")) "\n0," (inputs.iter().map(|_| "0").collect::<Vec<_>>().join(",")) }
                            aria-invalid=[(!problems.starting("inputs").is_empty()).then_some("true")]
                            aria-describedby=[(!problems.starting("inputs").is_empty()).then_some("error-inputs")] {
                            (entered.inputs_csv.as_deref().unwrap_or(""))
                        }
                        @let messages = problems.starting("inputs");
                        @if !messages.is_empty() {
                            span.field-error #error-inputs role="alert" { (messages.join("; ")) }
                        }
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
                div.run-bar {
                    button.primary type="submit" { "Run" }
                    " " (wallet.line())
                }
            } @else {
                p.muted { "Choose a model to see its variables." }
            }
        }
    }
}

/// A run's cost and the user's balance as the request found it.
fn wallet(state: &State, s: &Session) -> run_form::Wallet {
    run_form::Wallet {
        cost: state.config.run_cost,
        balance: s.user.credits,
    }
}

/// A page of the user's runs, by `filter`, with how many match in all.
async fn runs_page(
    state: &State,
    s: &Session,
    filter: &ListFilter,
) -> Result<(Vec<RunRow>, u64), WebError> {
    let offset = (filter.page - 1).saturating_mul(u64::from(PAGE_SIZE));
    Ok(runs::list(
        &state.store,
        &s.user.id,
        filter.status,
        filter.model.clone(),
        PAGE_SIZE,
        offset,
    )
    .await?)
}

/// The list part of the page: the runs that match and the filters that chose them.
struct Listed<'a> {
    rows: &'a [RunRow],
    total: u64,
    filter: &'a ListFilter,
}

fn view(
    state: &State,
    s: &Session,
    models: &[FmuRecord],
    chosen: Option<&FmuRecord>,
    listed: &Listed<'_>,
    entered: &Entered,
    problems: &[Problem],
) -> Markup {
    let wallet = wallet(state, s);
    let content = html! {
        h1 { "Runs" }
        section.card #new-run {
            h2 { "New run" }
            form method="get" action=(paths::RUNS) {
                label for="fmu-choice" { "Model" }
                select #fmu-choice name="fmu" hx-get=(paths::RUN_FIELDS) hx-target="#run-fields" hx-swap="outerHTML" hx-trigger="change" {
                    option value="" { "Choose…" }
                    @for m in models {
                        option value=(model_value(m)) selected[chosen.is_some_and(|c| c.id == m.id)] { (model_label(m)) }
                    }
                }
                noscript { button type="submit" { "Choose" } }
            }
            form method="post" action=(paths::RUNS) {
                (csrf_field(s))
                (model_fields(chosen, entered, problems, &wallet))
            }
        }
        (runs_list(listed.rows, listed.total, listed.filter, models))
    };
    layout::page("Runs", Nav::Runs, Some(s), content)
}

#[derive(Deserialize)]
pub struct ChooseModel {
    fmu: Option<String>,
}

/// The runs page's query: the model the New run form is for (or the run whose settings fill
/// it in), and the list's filters and page.
#[derive(Deserialize)]
pub struct RunsQuery {
    fmu: Option<String>,
    from: Option<RunId>,
    status: Option<String>,
    model: Option<String>,
    page: Option<u64>,
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
    Query(q): Query<RunsQuery>,
) -> Result<Response, WebError> {
    let models = fmus::list(&state, &s.user.id, None).await?;
    let (chosen, entered) = match &q.from {
        Some(run_id) => {
            let run = runs::get(&state.store, &s.user.id, run_id).await?;
            let model = run_workspace::run_model(&state, &s, &run).await;
            let entered = run_workspace::stored_settings(&run)
                .map(|st| Entered::from_stored(&st))
                .unwrap_or_default();
            (model, entered)
        }
        None => (
            chosen_model(&state, &s, q.fmu.as_deref()).await?,
            Entered::default(),
        ),
    };
    let filter = ListFilter::from_query(&q);
    let (rows, total) = runs_page(&state, &s, &filter).await?;
    let listed = Listed {
        rows: &rows,
        total,
        filter: &filter,
    };
    Ok(html(
        StatusCode::OK,
        view(&state, &s, &models, chosen.as_ref(), &listed, &entered, &[]),
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
        model_fields(
            chosen.as_ref(),
            &Entered::default(),
            &[],
            &wallet(&state, &s),
        ),
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
            run_form::INPUTS_CSV => entered.inputs_csv = Some(value),
            k if k.starts_with("start.") && !value.trim().is_empty() => {
                let name = k["start.".len()..].to_string();
                entered.start_values.push((name, value.trim().to_string()));
            }
            _ => {}
        }
    }
    let fmu = fmu.filter(|f| !f.is_empty());
    // A model that is not there (or none chosen) comes back as the form with the problem.
    let chosen = match &fmu {
        Some(f) => fmus::resolve(&state, &s.user.id, f)
            .await
            .map_err(|e| Problem::new("fmu", e.to_string())),
        None => Err(Problem::new("fmu", "choose a model".to_string())),
    };
    let (settings, mut problems) = settings_from(&entered);
    if let Err(problem) = &chosen {
        problems.push(problem.clone());
    }
    if let (Ok(model), true) = (&chosen, problems.is_empty()) {
        let settings = without_defaults(settings, model);
        let new = RunRequest {
            fmu: fmu.clone().unwrap_or_default(),
            settings,
            timeout: None,
            name: None,
            states: Default::default(),
            reference: None,
        };
        match runs::start(&state, Starter::Session(s.user.id.clone()), new, None).await {
            Ok(started) => return Ok(see_other(&paths::run(&started.run.id))),
            Err(AppError::Problems(found)) => problems = found.0,
            // Whatever else the request cannot be is said on the form, which keeps what was
            // typed, never on a bare error page.
            Err(e @ AppError::Invalid(_)) => problems.push(Problem::new("form", e.to_string())),
            Err(e) => return Err(e.into()),
        }
    }
    let models = fmus::list(&state, &s.user.id, None).await?;
    let chosen = chosen.ok();
    let filter = ListFilter::default();
    let (rows, total) = runs_page(&state, &s, &filter).await?;
    let listed = Listed {
        rows: &rows,
        total,
        filter: &filter,
    };
    Ok(html(
        StatusCode::UNPROCESSABLE_ENTITY,
        view(
            &state,
            &s,
            &models,
            chosen.as_ref(),
            &listed,
            &entered,
            &problems,
        ),
    ))
}

/// The solvers the run form offers, with their labels. Euler is left out: it needs a step
/// size, which the form does not ask for (the API and the CLI offer it).
const FORM_SOLVERS: [(Solver, &str); 3] = [
    (Solver::Auto, "Automatic (Dormand–Prince, BDF once stiff)"),
    (Solver::DormandPrince, "Dormand–Prince (explicit)"),
    (Solver::Bdf, "BDF (implicit, for stiff models)"),
];

/// The settings without the start values the form sent as it showed them: each field shows
/// the model's default, and a field left alone is not a start value.
fn without_defaults(mut settings: RunSettings, model: &FmuRecord) -> RunSettings {
    settings.start_values.retain(|(name, value)| {
        !model
            .info
            .variables
            .iter()
            .any(|v| v.name == *name && run_form::is_default(v, value))
    });
    settings
}

/// The run settings the form asks for, and the fields that are not even numbers (or input
/// signals that are not CSV).
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
        inputs: match entered.inputs_csv.as_deref().map(str::trim) {
            None | Some("") => vec![],
            Some(pasted) => run_form::inputs_from_csv(pasted).unwrap_or_else(|problem| {
                problems.push(problem);
                vec![]
            }),
        },
        ..RunSettings::default()
    };
    (settings, problems)
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

/// What the run page shows besides the results: how far it has got, and who is looking (for
/// the Cancel form's CSRF token).
struct Live<'a> {
    progress: Option<runs::progress::Progress>,
    stop_time: Option<f64>,
    session: &'a Session,
}

fn run_details(
    run: &RunRow,
    output: Option<&crate::sim::result_file::PlotSample>,
    reference: Option<&Reference>,
    expires: Option<i64>,
    live: &Live<'_>,
) -> Markup {
    let check = runs::reference::stored_check(run.reference_check.as_deref());
    let poll = unfinished(run).then(|| paths::run(&run.id));
    html! {
        div #run-details hx-get=[poll.as_deref()] hx-trigger=[poll.as_ref().map(|_| "every 1s")] hx-swap="outerHTML" {
            p { "Status: " (status_badge(run.status)) " · " (run.fmu_name) }
            p #run-charge { (run_workspace::charge_sentence(run)) "." }
            (run_workspace::progress_bar(run, live.progress, live.stop_time))
            (run_workspace::times(run))
            (run_workspace::cancel_form(run, live.session))
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
    let stored = run_workspace::stored_settings(&run);
    let live = Live {
        progress: runs::progress(&state, &run),
        stop_time: stored.as_ref().map(|st| st.stop_time),
        session: &s,
    };
    let details = run_details(
        &run,
        output.as_ref(),
        reference.as_ref(),
        runs::result_expires_at(&state, &run),
        &live,
    );
    if fragment {
        return Ok(html(StatusCode::OK, details));
    }
    let model = run_workspace::run_model(&state, &s, &run).await;
    let content = html! {
        h1 { "Run " code { (run.id) } }
        (details)
        (run_workspace::next_actions(&run, stored.as_ref(), &s))
        (run_workspace::settings_table(stored.as_ref(), model.as_ref()))
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
