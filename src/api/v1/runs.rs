//! `/api/v1/runs`: start simulations, follow them, read their results, cancel them.

use std::collections::HashMap;
use std::time::Duration;

use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::registry::{MetaHeader, MetaMediaType, MetaResponse, MetaResponses, Registry};
use poem_openapi::types::Any;
use poem_openapi::types::Type;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};
use serde::Deserialize;

use crate::api::auth::{ApiKey, Authed, ReadRuns};
use crate::api::body::JsonBody;
use crate::api::choice::{Choice, Names};
use crate::api::error::{ApiError, OpError, declare_errors};
use crate::api::result_value::ResultValue;
use crate::api::text::Text;
use crate::domain::error::AppError;
use crate::domain::ids::RunId;
use crate::domain::runs::reference::{ReferenceRequest, ReferenceSource};
use crate::domain::runs::{self, RunRequest, RunStatus, Starter, StoredSettings};
use crate::format::Number;
use crate::sim::plan::{Problem, Problems, RunSettings};
use crate::sim::protocol::{CsOptions, InputSignal, Interface, Solver};
use crate::sim::result_file::{Format, ResultFile};
use crate::state::State;
use crate::store::runs::RunRow;

#[derive(Tags)]
enum Tag {
    /// Simulation runs.
    Runs,
}

#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct Signal {
    /// An input variable.
    pub name: Text,
    /// Times, non-decreasing. A time given twice is a step: the first of its values holds
    /// just before it, the second from it on.
    pub t: Vec<f64>,
    /// Values at those times (linear between them for continuous inputs, held for discrete).
    pub u: Vec<f64>,
}

/// How the FMU is simulated: `cs` (Co-Simulation: the FMU's own solver) or `me` (Model
/// Exchange: ours). Requests may also say `co_simulation` or `model_exchange`.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename = "Interface", rename_all = "snake_case", remote = "Interface")]
pub enum InterfaceName {
    Cs,
    Me,
}

impl Names for InterfaceName {
    type Domain = Interface;
}

/// The Model Exchange solver: `auto` (Dormand–Prince, switching to BDF when the model turns
/// out stiff; the default), `dormand_prince` (adaptive explicit, with event location), `bdf`
/// (variable-order implicit, for stiff models) or `euler` (fixed step). Requests may also
/// say `dopri`.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename = "Solver", rename_all = "snake_case", remote = "Solver")]
pub enum SolverName {
    Auto,
    DormandPrince,
    Bdf,
    Euler,
}

impl Names for SolverName {
    type Domain = Solver;
}

/// Where a run is: `queued` and `running` until it ends `succeeded`, `failed` or `cancelled`.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename = "RunStatus", rename_all = "snake_case", remote = "RunStatus")]
pub enum RunStatusName {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Names for RunStatusName {
    type Domain = RunStatus;
}

/// What to simulate. Everything but `fmu_id` defaults to the model's default experiment.
#[derive(Object, Clone)]
#[oai(deny_unknown_fields, example)]
pub struct RunCreate {
    /// `lib:<Model>` (FMI 3), `lib:<Model>@fmi2`, `msl:<Model>`, or your upload's id.
    pub fmu_id: Text,
    /// `cs` or `me` (default: Co-Simulation when the FMU has it).
    #[oai(skip_serializing_if_is_none)]
    pub interface: Option<Choice<InterfaceName>>,
    /// Model Exchange solver: `auto` (default: Dormand–Prince, BDF once the model proves
    /// stiff), `dormand_prince`, `bdf` or `euler` (fixed step).
    #[oai(skip_serializing_if_is_none)]
    pub solver: Option<Choice<SolverName>>,
    #[oai(skip_serializing_if_is_none)]
    pub start_time: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub stop_time: Option<f64>,
    /// Time between output points (> 0).
    #[oai(
        skip_serializing_if_is_none,
        validator(minimum(value = "0", exclusive = true))
    )]
    pub output_interval: Option<f64>,
    /// Co-Simulation communication step; Model Exchange maximum (or Euler's fixed) step (> 0).
    #[oai(
        skip_serializing_if_is_none,
        validator(minimum(value = "0", exclusive = true))
    )]
    pub step_size: Option<f64>,
    /// Relative tolerance, between 0 and 1.
    #[oai(
        skip_serializing_if_is_none,
        validator(
            minimum(value = "0", exclusive = true),
            maximum(value = "1", exclusive = true)
        )
    )]
    pub tolerance: Option<f64>,
    /// Start values by variable name, at most 1 000: a number, boolean or string (an
    /// enumeration by item name or value, a Binary as hex), or for an array variable an
    /// array of them, flat or nested as its shape.
    #[oai(skip_serializing_if_is_none, validator(max_properties = 1000))]
    pub start_values: Option<HashMap<String, Any<serde_json::Value>>>,
    /// Variables to record (default: the model's outputs), at most 1 000.
    #[oai(skip_serializing_if_is_none, validator(max_items = 1000))]
    pub outputs: Option<Vec<Text>>,
    /// Input signals, at most 100.
    #[oai(skip_serializing_if_is_none, validator(max_items = 100))]
    pub inputs: Option<Vec<Signal>>,
    /// Wall-clock limit in seconds, at least 1 (default and maximum: the server's limit,
    /// stated as this field's `maximum`).
    #[oai(skip_serializing_if_is_none, validator(minimum(value = "1")))]
    pub timeout: Option<f64>,
    /// Record each event twice, just before and just after it, at the same time (as FMPy's
    /// `record_events`; default `true`). `false`: only the output points.
    #[oai(skip_serializing_if_is_none)]
    pub record_events: Option<bool>,
    /// Give float results in their display units (a variable's `displayUnit`, or the one of
    /// the alias asked for), converted as FMI says (`factor · value + offset`); each
    /// result's `types` names the unit. Default `false`: the model's units.
    #[oai(skip_serializing_if_is_none)]
    pub display_units: Option<bool>,
    /// FMI 3 Co-Simulation: the FMU may return early from a step at an event (default
    /// `false`).
    #[oai(skip_serializing_if_is_none)]
    pub early_return_allowed: Option<bool>,
    /// FMI 3 Co-Simulation: handle the FMU's events in event mode, recording them (needs an
    /// FMU with `hasEventMode`; default `false`).
    #[oai(skip_serializing_if_is_none)]
    pub event_mode_used: Option<bool>,
    /// FMI 3 Co-Simulation: let the FMU call back at intermediate points within a step
    /// (default `false`).
    #[oai(skip_serializing_if_is_none)]
    pub intermediate_update: Option<bool>,
    // FMU states (fmusim's --initial-fmu-state-file / --final-fmu-state-file).
    /// Start from a saved FMU state instead of initialising: a run's id (the state it saved)
    /// or a state's id (`GET /states`). The run starts at the state's time (`start_time`, if
    /// given, must be it); the state must be one this FMU saved through this interface.
    /// Co-Simulation only, for an FMU that can get, set and serialise its state.
    #[oai(skip_serializing_if_is_none)]
    pub initial_state: Option<Text>,
    /// Save the FMU's state after the last step (default `false`), served by
    /// `GET /runs/{id}/state` and counted against your storage quota. Same conditions as
    /// `initial_state`.
    #[oai(skip_serializing_if_is_none)]
    pub save_final_state: Option<bool>,
    // Logging (fmusim's --log-fmi-calls and the FMU's log categories).
    /// Record every FMI call the run makes, with its arguments and status, in the run's log
    /// (default `false`); at most 1 MiB of calls, then the log says it stopped. Calls that
    /// fmi-rs's driver makes (Model Exchange, FMI 3 Co-Simulation options, structural
    /// parameters) are not recorded, and the log says so.
    #[oai(skip_serializing_if_is_none)]
    pub log_fmi_calls: Option<bool>,
    /// The FMU's log categories to enable (its `<LogCategories>`, as `GET /fmus/{id}` lists
    /// them); default: all. FMI 3 Co-Simulation only.
    #[oai(skip_serializing_if_is_none, validator(max_items = 100))]
    pub log_categories: Option<Vec<Text>>,
    /// A reference result to compare the run's result with once it succeeds; the verdict
    /// is the run's `reference_check` (it never fails the run or changes its charge).
    #[oai(skip_serializing_if_is_none)]
    pub reference: Option<ReferenceCreate>,
}

/// A reference result: exactly one of `csv` (inline) and `fmu_reference` (one the FMU carries
/// under FMI-LS-REF, whose experiment's start, stop, step and tolerance become the run's
/// defaults). Each reference variable is compared at the reference's times: floats with the
/// result interpolated linearly, passing where |result − reference| ≤ `abs_tol` +
/// `rel_tol`·|reference|; integers, Booleans, enumerations and strings exactly, the result's
/// value held. Event instants (a time given twice in either) are skipped.
#[derive(Object, Clone)]
#[oai(deny_unknown_fields, example)]
pub struct ReferenceCreate {
    /// CSV (RFC 4180) as results download: a header `time,<variable>,…` (array elements
    /// `y[1]`, …), then rows of non-decreasing times; at most 512 KiB.
    #[oai(skip_serializing_if_is_none)]
    pub csv: Option<String>,
    /// The name of a reference the FMU carries (`GET /fmus/{id}` lists them).
    #[oai(skip_serializing_if_is_none)]
    pub fmu_reference: Option<Text>,
    /// Absolute tolerance (default 1e-6).
    #[oai(skip_serializing_if_is_none, validator(minimum(value = "0")))]
    pub abs_tol: Option<f64>,
    /// Relative tolerance, of the reference value (default 1e-3).
    #[oai(skip_serializing_if_is_none, validator(minimum(value = "0")))]
    pub rel_tol: Option<f64>,
    /// Tolerances for single variables (by CSV column name), at most 1 000; what they leave
    /// out is the defaults above.
    #[oai(skip_serializing_if_is_none, validator(max_properties = 1000))]
    pub tolerances: Option<HashMap<String, ToleranceOverride>>,
}

/// One variable's tolerances.
#[derive(Object, Clone)]
#[oai(deny_unknown_fields)]
pub struct ToleranceOverride {
    #[oai(skip_serializing_if_is_none, validator(minimum(value = "0")))]
    pub abs_tol: Option<f64>,
    #[oai(skip_serializing_if_is_none, validator(minimum(value = "0")))]
    pub rel_tol: Option<f64>,
}

/// The verdict of a run's comparison with its reference.
#[derive(Object, Clone, Debug)]
#[oai(example)]
pub struct ReferenceCheck {
    /// Every variable passed, and nothing else failed the check.
    pub passed: bool,
    pub variables: Vec<VariableCheck>,
    /// What failed the check beyond single variables (reference points after the run's end).
    #[oai(skip_serializing_if_is_none)]
    pub problems: Option<Vec<String>>,
}

/// One reference variable's verdict.
#[derive(Object, Clone, Debug)]
pub struct VariableCheck {
    pub name: String,
    pub passed: bool,
    /// Reference points compared (event instants are not).
    pub points_compared: u64,
    /// Points outside the band (unequal, for exact types).
    pub points_outside: u64,
    /// The largest finite |result − reference| (absent for text, or when nothing compared).
    #[oai(skip_serializing_if_is_none)]
    pub max_deviation: Option<f64>,
    /// The time of the largest deviation.
    #[oai(skip_serializing_if_is_none)]
    pub at_time: Option<f64>,
    /// The first time the result leaves the band.
    #[oai(skip_serializing_if_is_none)]
    pub first_outside: Option<f64>,
    pub abs_tol: f64,
    pub rel_tol: f64,
    /// Why the variable could not be compared: the run did not record it, or a reference
    /// cell is not of its type.
    #[oai(skip_serializing_if_is_none)]
    pub problem: Option<String>,
}

impl From<crate::sim::reference::ReferenceCheck> for ReferenceCheck {
    fn from(c: crate::sim::reference::ReferenceCheck) -> Self {
        ReferenceCheck {
            passed: c.passed,
            problems: (!c.problems.is_empty()).then_some(c.problems),
            variables: c
                .variables
                .into_iter()
                .map(|v| VariableCheck {
                    name: v.name,
                    passed: v.passed,
                    points_compared: v.points_compared,
                    points_outside: v.points_outside,
                    max_deviation: v.max_deviation,
                    at_time: v.at_time,
                    first_outside: v.first_outside,
                    abs_tol: v.abs_tol,
                    rel_tol: v.rel_tol,
                    problem: v.problem,
                })
                .collect(),
        }
    }
}

/// The domain's reference request, or the problem with it.
fn reference_request(body: ReferenceCreate) -> Result<ReferenceRequest, AppError> {
    use crate::sim::reference::{Tolerance, Tolerances};
    let source = match (body.csv, body.fmu_reference) {
        (Some(csv), None) => ReferenceSource::Inline(csv),
        (None, Some(name)) => ReferenceSource::Carried(name.0),
        _ => {
            return Err(AppError::Problems(Problems(vec![Problem::new(
                "reference",
                "give exactly one of `csv` and `fmu_reference`",
            )])));
        }
    };
    let default = Tolerance {
        abs_tol: body
            .abs_tol
            .unwrap_or(crate::sim::reference::DEFAULT_ABS_TOL),
        rel_tol: body
            .rel_tol
            .unwrap_or(crate::sim::reference::DEFAULT_REL_TOL),
    };
    let mut by_variable: Vec<(String, Tolerance)> = body
        .tolerances
        .unwrap_or_default()
        .into_iter()
        .map(|(name, t)| {
            let tolerance = Tolerance {
                abs_tol: t.abs_tol.unwrap_or(default.abs_tol),
                rel_tol: t.rel_tol.unwrap_or(default.rel_tol),
            };
            (name, tolerance)
        })
        .collect();
    by_variable.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(ReferenceRequest {
        source,
        tolerances: Tolerances {
            default,
            by_variable,
        },
    })
}

impl RunCreate {
    /// A request with only the model, stop time, output interval and start values set (what
    /// the compatibility routes take).
    pub fn simple(
        fmu_id: String,
        stop_time: Option<f64>,
        output_interval: Option<f64>,
        start_values: Option<HashMap<String, Any<serde_json::Value>>>,
    ) -> RunCreate {
        RunCreate {
            fmu_id: Text(fmu_id),
            interface: None,
            solver: None,
            start_time: None,
            stop_time,
            output_interval,
            step_size: None,
            tolerance: None,
            start_values,
            outputs: None,
            inputs: None,
            timeout: None,
            record_events: None,
            display_units: None,
            early_return_allowed: None,
            event_mode_used: None,
            intermediate_update: None,
            initial_state: None,
            save_final_state: None,
            log_fmi_calls: None,
            log_categories: None,
            reference: None,
        }
    }
}

/// Results as columns: `time` and one array per variable.
#[derive(Object)]
#[oai(example)]
pub struct RunResult {
    /// The output points, always finite. An event is recorded twice: just before it and
    /// just after it, at the same time.
    pub time: Vec<f64>,
    /// Variable names in the order they were asked for.
    pub variables: Vec<String>,
    /// Each variable's type, and an array's shape.
    pub types: HashMap<String, ResultType>,
    /// One value per output point for each variable, in its type: a number (for a value
    /// that is not finite, a legal simulation result, the string `NaN`, `Infinity` or
    /// `-Infinity`), an integer, a boolean, a string (Binary as lowercase hex, an enumeration
    /// by item name), or an array's values nested as its shape.
    pub columns: HashMap<String, Vec<ResultValue>>,
}

/// The type of a recorded variable, as FMI 3 names its types (FMI 2's Real is `float64`,
/// its Integer `int32`).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum ValueTypeName {
    Float64,
    Float32,
    Int8,
    UInt8,
    Int16,
    UInt16,
    Int32,
    UInt32,
    Int64,
    UInt64,
    Boolean,
    String,
    Binary,
    Enumeration,
}

/// A recorded variable's type and shape.
#[derive(Object, Clone, Debug, Deserialize)]
pub struct ResultType {
    /// Its type. JSON results give Binary values as lowercase hex and enumeration values by
    /// item name; CSV gives enumerations by value.
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub r#type: ValueTypeName,
    /// An array's size in each dimension, outermost first (absent for a scalar). CSV
    /// results give its elements as columns `y[1]`, `y[2]`, … (`A[1,1]`, `A[1,2]`, … for two
    /// dimensions, row-major).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub shape: Option<Vec<u64>>,
    /// The unit its values are in: the model's, or with `display_units` the display unit.
    #[oai(skip_serializing_if_is_none)]
    #[serde(default)]
    pub unit: Option<String>,
}

/// Why a failed run failed (see the README's table of who pays for what).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum FailureKind {
    /// The FMU reported an error.
    ModelError,
    /// The FMU crashed the worker.
    ModelCrashed,
    /// The FMU used more memory than a run may.
    OutOfMemory,
    /// The run reached its time limit (the request's `timeout` or the plan's maximum).
    TimeLimit,
    /// The service failed (not charged).
    ServiceError,
    /// The server stopped during the run (not charged).
    Interrupted,
}

impl From<crate::domain::runs::charging::FailureKind> for FailureKind {
    fn from(k: crate::domain::runs::charging::FailureKind) -> Self {
        use crate::domain::runs::charging::FailureKind as K;
        match k {
            K::ModelError => FailureKind::ModelError,
            K::ModelCrashed => FailureKind::ModelCrashed,
            K::OutOfMemory => FailureKind::OutOfMemory,
            K::TimeLimit => FailureKind::TimeLimit,
            K::ServiceError => FailureKind::ServiceError,
            K::Interrupted => FailureKind::Interrupted,
        }
    }
}

/// A simulation run: its status, settings, charge and (when small) results.
#[derive(Object)]
#[oai(example)]
pub struct Run {
    pub id: String,
    /// `queued`, `running`, `succeeded`, `failed` or `cancelled`.
    pub status: RunStatusName,
    pub fmu_id: String,
    pub fmu_name: String,
    #[oai(skip_serializing_if_is_none)]
    pub api_key_id: Option<String>,
    pub created_at: String,
    #[oai(skip_serializing_if_is_none)]
    pub started_at: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<String>,
    pub credits_reserved: i64,
    pub credits_charged: i64,
    /// Whether the caller paid for this run (false while it is unfinished). The caller pays
    /// for what their model used; the service pays for its own failures.
    pub charged: bool,
    /// Why a failed run failed, for programs.
    #[oai(skip_serializing_if_is_none)]
    pub failure_kind: Option<FailureKind>,
    /// Why it failed, for humans.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    /// The FMU's log messages.
    #[oai(skip_serializing_if_is_none)]
    pub log: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub settings: Option<Any<serde_json::Value>>,
    pub result_url: String,
    /// When a succeeded run's results are removed (its end plus the server's retention
    /// period); after it, `result_url` answers 410 `result_expired`.
    #[oai(skip_serializing_if_is_none)]
    pub result_expires_at: Option<String>,
    /// Inline when the run finished within the request and has at most 100 000 values (time
    /// points × variables, time included); larger results are fetched from `result_url`.
    #[oai(skip_serializing_if_is_none)]
    pub result: Option<RunResult>,
    /// The comparison with the run's `reference`, once the run has succeeded.
    #[oai(skip_serializing_if_is_none)]
    pub reference_check: Option<ReferenceCheck>,
    /// How far the simulation has got, while the run is `running` (from its worker's
    /// reports, a few a second); left out otherwise.
    #[oai(skip_serializing_if_is_none)]
    pub progress: Option<RunProgress>,
}

/// How far a running simulation has got.
#[derive(Object, Clone, Debug)]
#[oai(example)]
pub struct RunProgress {
    /// The simulation time reached [s], between the run's start and stop time.
    pub time: f64,
    /// The simulation time the run ends at [s].
    pub stop_time: f64,
    /// The share of the simulated span done, from 0 to 1.
    pub fraction: f64,
}

impl From<runs::progress::Progress> for RunProgress {
    fn from(p: runs::progress::Progress) -> Self {
        RunProgress {
            time: p.time,
            stop_time: p.stop_time,
            fraction: p.fraction(),
        }
    }
}

fn run_view(state: &State, row: RunRow, result: Option<RunResult>) -> Run {
    Run {
        progress: runs::progress(state, &row).map(Into::into),
        result_expires_at: runs::result_expires_at(state, &row).map(crate::api::time),
        result_url: format!("/api/v1/runs/{}/result", row.id),
        settings: settings_view(&row.settings).map(Any),
        id: row.id.to_string(),
        status: row.status.into(),
        fmu_id: row.fmu_id.to_string(),
        fmu_name: row.fmu_name,
        api_key_id: row.api_key_id.map(String::from),
        created_at: crate::api::time(row.created_at),
        started_at: row.started_at.map(crate::api::time),
        finished_at: row.finished_at.map(crate::api::time),
        credits_reserved: row.credits_reserved.get(),
        credits_charged: row.credits_charged.get(),
        charged: row.charged,
        failure_kind: row.failure_kind.map(Into::into),
        error: row.error,
        log: row.log,
        reference_check: runs::reference::stored_check(row.reference_check.as_deref())
            .map(Into::into),
        result,
    }
}

/// The inline result: the result file's own JSON (what `GET …/result` streams) read back,
/// so the two answers cannot differ.
fn result_view(file: &ResultFile) -> std::io::Result<RunResult> {
    #[derive(Deserialize)]
    struct Streamed {
        time: Vec<f64>,
        variables: Vec<String>,
        types: HashMap<String, ResultType>,
        columns: HashMap<String, Vec<serde_json::Value>>,
    }
    let mut json = Vec::new();
    file.write_to(crate::sim::result_file::Format::Json, &mut json)?;
    let streamed: Streamed = serde_json::from_slice(&json).map_err(std::io::Error::other)?;
    Ok(RunResult {
        time: streamed.time,
        variables: streamed.variables,
        types: streamed.types,
        columns: streamed
            .columns
            .into_iter()
            .map(|(name, values)| (name, values.into_iter().map(ResultValue).collect()))
            .collect(),
    })
}

/// The value of an optional enum field, or `None` with its problem noted.
fn chosen<E: Names>(
    choice: Option<&Choice<E>>,
    field: &str,
    problems: &mut Vec<Problem>,
) -> Option<E::Domain> {
    match choice?.value(field) {
        Ok(value) => Some(value),
        Err(problem) => {
            problems.push(problem);
            None
        }
    }
}

/// A run's stored settings as shown: what was set, with the settings left to the model
/// (`null` in the stored form) left out, since the spec declares nothing nullable.
fn settings_view(stored: &str) -> Option<serde_json::Value> {
    let settings: StoredSettings = serde_json::from_str(stored)
        .inspect_err(|e| tracing::error!(error = %e, "a run's stored settings do not parse"))
        .ok()?;
    let mut view = serde_json::to_value(settings).ok()?;
    if let Some(fields) = view.as_object_mut() {
        fields.retain(|_, v| !v.is_null());
    }
    Some(view)
}

/// Turns the JSON request into the engine's settings.
pub fn new_run(body: RunCreate, name: Option<String>) -> Result<RunRequest, AppError> {
    let mut problems = Vec::new();
    let interface = chosen(body.interface.as_ref(), "interface", &mut problems);
    let solver = chosen(body.solver.as_ref(), "solver", &mut problems);
    if !problems.is_empty() {
        return Err(AppError::Malformed(Problems(problems)));
    }
    let mut start_values = Vec::new();
    for (name, value) in body.start_values.unwrap_or_default() {
        let literal = match value.0 {
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::String(s) => s,
            // An array variable's elements, checked against its shape by the plan.
            array @ serde_json::Value::Array(_) => array.to_string(),
            // The spec says so: a request that sends anything else does not match it.
            other => {
                let message = format!(
                    "start value for '{name}' must be a number, boolean, string or array, not {other}"
                );
                return Err(AppError::Malformed(Problems(vec![Problem::new(
                    format!("start_values.{name}"),
                    message,
                )])));
            }
        };
        start_values.push((name, literal));
    }
    start_values.sort();
    // A number too large for a Duration (e.g. 1e30) is refused, never a panic: the limit
    // check then names the plan's maximum.
    let timeout = match body.timeout {
        Some(t) if t.is_finite() && t > 0.0 => Some(
            Duration::try_from_secs_f64(t)
                .map_err(|_| AppError::Invalid(format!("timeout {} s is too long", Number(t))))?,
        ),
        Some(t) => {
            return Err(AppError::Invalid(format!(
                "timeout must be a positive number of seconds, not {}",
                Number(t)
            )));
        }
        None => None,
    };
    let states = crate::domain::states::StateRequest {
        initial: body.initial_state.map(|s| s.0),
        save_final: body.save_final_state.unwrap_or(false),
    };
    let reference = body.reference.map(reference_request).transpose()?;
    Ok(RunRequest {
        reference,
        fmu: body.fmu_id.0,
        settings: RunSettings {
            interface,
            solver,
            start_time: body.start_time,
            stop_time: body.stop_time,
            output_interval: body.output_interval,
            step_size: body.step_size,
            tolerance: body.tolerance,
            start_values,
            outputs: body
                .outputs
                .unwrap_or_default()
                .into_iter()
                .map(|o| o.0)
                .collect(),
            inputs: body
                .inputs
                .unwrap_or_default()
                .into_iter()
                .map(|s| InputSignal {
                    name: s.name.0,
                    t: s.t,
                    u: s.u,
                })
                .collect(),
            record_events: body.record_events,
            display_units: body.display_units.unwrap_or(false),
            cs_options: CsOptions {
                early_return_allowed: body.early_return_allowed.unwrap_or(false),
                event_mode_used: body.event_mode_used.unwrap_or(false),
                intermediate_update: body.intermediate_update.unwrap_or(false),
            },
            states: Default::default(),
            logging: crate::sim::call_log::LogSettings {
                fmi_calls: body.log_fmi_calls.unwrap_or(false),
                categories: body
                    .log_categories
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| c.0)
                    .collect(),
            },
        },
        timeout,
        name,
        states,
    })
}

#[derive(ApiResponse)]
enum CreateResponse {
    /// The run finished within the request (it may have failed: see `status`); `Location`
    /// is where it stays.
    #[oai(status = 201)]
    Finished(Json<Run>, #[oai(header = "Location")] String),
    /// Still queued or running: poll `Location`.
    #[oai(status = 202)]
    Accepted(Json<Run>, #[oai(header = "Location")] String),
}

/// Most values (time included) a run's answer carries inline; larger results are only
/// served from `result_url`, streamed from the stored file.
pub const INLINE_RESULT_VALUES: u64 = 100_000;

/// A stored result streamed as the body, in the format negotiated, so a large one is never
/// held in memory. Documented by hand: poem-openapi's derive keeps one media type per status,
/// and this one answer has four.
pub struct ResultStream {
    body: poem::Body,
    format: Format,
    /// The run's id, which names a downloaded file.
    run_id: String,
}

/// `Content-Disposition` of a result: the file name a download is saved under; the binary
/// formats as an attachment, JSON and CSV inline (a browser, or the API docs' "try it out",
/// shows them).
fn content_disposition(run_id: &str, format: Format) -> String {
    let disposition = match format {
        Format::Json | Format::Csv => "inline",
        Format::Mat | Format::Parquet => "attachment",
    };
    format!(
        "{disposition}; filename=\"{run_id}.{}\"",
        format.extension()
    )
}

impl ResultStream {
    fn new(result: ResultFile, format: Format, run_id: &RunId) -> Self {
        Self::named(result, format, run_id.as_str().to_string())
    }

    /// A result downloaded as `<name>.<extension>`.
    pub fn named(result: ResultFile, format: Format, name: String) -> Self {
        ResultStream {
            body: poem::Body::from_bytes_stream(result.into_stream(format)),
            format,
            run_id: name,
        }
    }
}

/// The format `?format` names, else the one `Accept` prefers; 406 when it allows none.
pub fn chosen_format(
    asked: Option<ResultFormat>,
    accept: Option<&str>,
) -> Result<Format, ApiError> {
    match asked {
        Some(format) => Ok(format.into()),
        None => negotiate(accept).ok_or_else(|| {
            ApiError::not_acceptable(
                "results are sent as application/json, text/csv, \
                 application/vnd.apache.parquet or application/x-matlab-data; the Accept \
                 header allows none of them",
            )
        }),
    }
}

impl ApiResponse for ResultStream {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "The run's results: JSON columns; CSV with a header \
                              `time,<variable>,…` and one row per output point; a MATLAB v4 \
                              file in Dymola's result layout (numbers only); or an Apache \
                              Parquet file with a typed column per variable element.",
                status: Some(200),
                status_range: None,
                content: vec![
                    MetaMediaType {
                        content_type: Format::Json.media_type(),
                        schema: RunResult::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: Format::Csv.media_type(),
                        schema: String::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: Format::Mat.media_type(),
                        schema: poem_openapi::types::Binary::<Vec<u8>>::schema_ref(),
                    },
                    MetaMediaType {
                        content_type: Format::Parquet.media_type(),
                        schema: poem_openapi::types::Binary::<Vec<u8>>::schema_ref(),
                    },
                ],
                headers: vec![MetaHeader {
                    name: "Content-Disposition".into(),
                    description: Some(
                        "`attachment; filename=\"<run id>.mat\"` (or `.parquet`); `inline; \
                         filename=\"<run id>.json\"` (or `.csv`): the file name a download is \
                         saved under."
                            .into(),
                    ),
                    required: true,
                    deprecated: false,
                    schema: String::schema_ref(),
                }],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        RunResult::register(registry);
    }
}

impl poem::IntoResponse for ResultStream {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type(self.format.media_type())
            .header(
                "Content-Disposition",
                content_disposition(&self.run_id, self.format),
            )
            .body(self.body)
    }
}

/// One page of runs, newest first.
#[derive(Object)]
#[oai(example)]
pub struct RunList {
    pub items: Vec<Run>,
    pub total: u64,
    pub limit: u32,
    pub offset: u64,
}

/// The inline result of a run's answer: small results only ([`INLINE_RESULT_VALUES`]).
fn inline_result(result: Option<ResultFile>) -> Result<Option<RunResult>, AppError> {
    match result {
        Some(file) if file.values() <= INLINE_RESULT_VALUES => {
            result_view(&file).map(Some).map_err(AppError::from)
        }
        _ => Ok(None),
    }
}

declare_errors! {
    /// `POST /runs`: settings the model refuses are 422, a balance too low 402, an unknown
    /// FMU 404, too many runs 429, simulations unavailable (self-test failing, data volume
    /// low) 503.
    CreateRunErrors: [
        BAD_REQUEST,
        UNAUTHORIZED,
        PAYMENT_REQUIRED,
        FORBIDDEN,
        NOT_FOUND,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        UNPROCESSABLE_ENTITY,
        TOO_MANY_REQUESTS,
        SERVICE_UNAVAILABLE,
    ];
    /// `GET /runs/{id}`.
    GetRunErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND];
    /// `GET /runs/{id}/result`: a run without results (not succeeded) is 409, one whose
    /// results were removed after the retention period 410.
    GetRunResultErrors: [
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        NOT_ACCEPTABLE,
        CONFLICT,
        GONE,
    ];
    /// `GET /runs`: an unknown `status`, a `limit` or `offset` out of range is 400.
    ListRunsErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN];
    /// `POST /runs/{id}/cancel`: a run that has already ended is 409.
    CancelRunErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND, CONFLICT];
}

/// `?format=` of a run's results.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum ResultFormat {
    Json,
    Csv,
    Mat,
    Parquet,
}

impl From<ResultFormat> for Format {
    fn from(format: ResultFormat) -> Format {
        match format {
            ResultFormat::Json => Format::Json,
            ResultFormat::Csv => Format::Csv,
            ResultFormat::Mat => Format::Mat,
            ResultFormat::Parquet => Format::Parquet,
        }
    }
}

/// The media types `Accept` can name each format by, the first the one it is sent as.
fn media_types(format: Format) -> &'static [&'static str] {
    match format {
        Format::Json => &["application/json"],
        Format::Csv => &["text/csv"],
        Format::Mat => &["application/x-matlab-data"],
        Format::Parquet => &["application/vnd.apache.parquet", "application/x-parquet"],
    }
}

/// The format an `Accept` header prefers among those results are sent in: the highest
/// q-value wins, a more specific range (`text/csv`) overrides a wider one (`text/*`, `*/*`)
/// for its type, `q=0` refuses, and a tie goes to the earlier of JSON, CSV, Parquet, MAT
/// (the text formats first, so `*/*` and `application/*` stay JSON). No header is JSON;
/// `None` is a 406.
fn negotiate(accept: Option<&str>) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Format::Json);
    };
    let ranges: Vec<(&str, f32)> = accept
        .split(',')
        .filter_map(|range| {
            let mut parts = range.split(';');
            let media = parts.next()?.trim();
            let q = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            (!media.is_empty()).then_some((media, q.clamp(0.0, 1.0)))
        })
        .collect();
    let quality = |media: &str| -> f32 {
        let (kind, _) = media.split_once('/').unwrap_or((media, ""));
        let wide = format!("{kind}/*");
        [media, wide.as_str(), "*/*"]
            .iter()
            .find_map(|candidate| {
                ranges
                    .iter()
                    .find(|(m, _)| m.eq_ignore_ascii_case(candidate))
                    .map(|&(_, q)| q)
            })
            .unwrap_or(0.0)
    };
    let format_quality = |format: Format| -> f32 {
        media_types(format)
            .iter()
            .map(|m| quality(m))
            .fold(0.0, f32::max)
    };
    [Format::Json, Format::Csv, Format::Parquet, Format::Mat]
        .into_iter()
        .map(|f| (f, format_quality(f)))
        .filter(|&(_, q)| q > 0.0)
        // max_by keeps the last of equals: reversed, so the first in the list wins a tie.
        .rev()
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(f, _)| f)
}

pub struct RunsApi;

#[OpenApi(tag = "Tag::Runs")]
impl RunsApi {
    /// Starts a simulation.
    ///
    /// Answers 201 with the run (and its results inline when small) when it finishes within a
    /// few seconds, else 202 with `Location` to poll. A run costs credits: they are held when
    /// it starts (402 when the balance is too low) and refunded if the service fails it. A
    /// retry with the same `Idempotency-Key` and body returns the original run and never
    /// charges twice.
    #[oai(path = "/runs", method = "post", operation_id = "createRun")]
    async fn create(
        &self,
        state: poem::web::Data<&State>,
        key: ApiKey,
        #[oai(name = "Idempotency-Key")] idempotency_key: Header<Option<String>>,
        body: JsonBody<RunCreate>,
    ) -> Result<CreateResponse, OpError<CreateRunErrors>> {
        let longest = state.config.max_run_time.as_secs_f64();
        if let Some(timeout) = body.0.timeout.filter(|t| *t > longest) {
            // The spec states this server's limit as the field's maximum.
            let message = format!(
                "timeout must be at most {} s, not {}",
                Number(longest),
                Number(timeout)
            );
            return Err(
                AppError::Malformed(Problems(vec![Problem::new("timeout", message)])).into(),
            );
        }
        let new = new_run(body.0, None)?;
        let idempotency = idempotency_key
            .0
            .filter(|k| !k.trim().is_empty())
            .map(|k| k.chars().take(255).collect());
        let (run, output) =
            runs::start_and_wait(&state, Starter::Key(key.0), new, idempotency).await?;
        if !run.status.is_finished() {
            let location = format!("/api/v1/runs/{}", run.id);
            return Ok(CreateResponse::Accepted(
                Json(run_view(&state, run, None)),
                location,
            ));
        }
        let inline = inline_result(output)?;
        let location = format!("/api/v1/runs/{}", run.id);
        Ok(CreateResponse::Finished(
            Json(run_view(&state, run, inline)),
            location,
        ))
    }

    /// One of your runs.
    ///
    /// Poll it until `status` is `succeeded`, `failed` or `cancelled`; `result_url` serves the
    /// results.
    #[oai(path = "/runs/:id", method = "get", operation_id = "getRun")]
    async fn get(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        id: Path<String>,
    ) -> Result<Json<Run>, OpError<GetRunErrors>> {
        Ok(Json(run_view(
            &state,
            runs::get(&state.store, &auth.principal.user_id, &RunId::from(id.0)).await?,
            None,
        )))
    }

    /// A run's results, as JSON columns, CSV, MATLAB or Parquet.
    ///
    /// `?format=csv` or `Accept: text/csv` gives CSV with a header `time,<variable>,…`, an
    /// array's elements `y[1]`, `A[1,2]`. `?format=parquet` or `Accept:
    /// application/vnd.apache.parquet` (or `application/x-parquet`) gives an Apache Parquet
    /// file with a typed column per element: `time` and floats DOUBLE (Float32 FLOAT),
    /// integers INT32/INT64 with their signed or unsigned INTEGER type and width, Booleans
    /// BOOLEAN, Strings BYTE_ARRAY STRING, Binary BYTE_ARRAY, enumerations INT64 (the value).
    /// `?format=mat` or `Accept: application/x-matlab-data` gives a MATLAB v4 file in Dymola's
    /// result layout (`Aclass`, `name`, `description`, `dataInfo`, `data_1`, `data_2`), which
    /// holds only numbers: a result with a String or Binary variable, or an integer no double
    /// equals (beyond ±2^53), is a 406 naming the column. `?format` wins over `Accept`;
    /// `Accept` is negotiated by its q-values (JSON, then CSV, Parquet, MAT when equally
    /// welcome), and 406 when it allows none. Downloads are named by `Content-Disposition`
    /// (`<run id>.mat`). 409 while the run has no results; 410 once they were removed after
    /// the retention period.
    #[oai(
        path = "/runs/:id/result",
        method = "get",
        operation_id = "getRunResult"
    )]
    async fn result(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        id: Path<String>,
        format: Query<Option<ResultFormat>>,
        // Read from the request, not declared as a parameter: OpenAPI ignores an `Accept`
        // parameter (the answer's media types say what can be asked for).
        req: &poem::Request,
    ) -> Result<ResultStream, OpError<GetRunResultErrors>> {
        let accept = req
            .headers()
            .get(poem::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok());
        let format = chosen_format(format.0, accept)?;
        let run = runs::get(&state.store, &auth.principal.user_id, &RunId::from(id.0)).await?;
        let result = runs::result(&state, &run).await?;
        // A MAT file of a result it cannot hold is a 406 naming the column.
        let result = result
            .checked_for(format)
            .await
            .map_err(AppError::from)?
            .map_err(|refusal| ApiError::not_acceptable(refusal.to_string()))?;
        Ok(ResultStream::new(result, format, &run.id))
    }

    /// Your runs, newest first.
    ///
    /// Filter by `status` and by `fmu` (an id or a name); paged with `limit` and `offset`.
    /// Results are not inlined: fetch them from each run's `result_url`.
    #[oai(path = "/runs", method = "get", operation_id = "listRuns")]
    async fn list(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        status: Query<Option<Choice<RunStatusName>>>,
        fmu: Query<Option<String>>,
        #[oai(
            default = "default_limit",
            validator(minimum(value = "1"), maximum(value = "500"))
        )]
        limit: Query<u32>,
        /// Runs to skip (at most 10¹⁵).
        #[oai(default, validator(maximum(value = "1000000000000000")))]
        offset: Query<u64>,
    ) -> Result<Json<RunList>, OpError<ListRunsErrors>> {
        let status = status
            .0
            .map(|s| s.value("status"))
            .transpose()
            .map_err(|problem| AppError::Malformed(Problems(vec![problem])))?;
        let (rows, total) = runs::list(
            &state.store,
            &auth.principal.user_id,
            status,
            fmu.0,
            limit.0,
            offset.0,
        )
        .await?;
        Ok(Json(RunList {
            items: rows
                .into_iter()
                .map(|r| run_view(&state, r, None))
                .collect(),
            total,
            limit: limit.0,
            offset: offset.0,
        }))
    }

    /// Cancels a queued or running run.
    ///
    /// A run cancelled while queued is not charged; one cancelled while running is (its model
    /// used the worker). A run already finished answers 409.
    #[oai(path = "/runs/:id/cancel", method = "post", operation_id = "cancelRun")]
    async fn cancel(
        &self,
        state: poem::web::Data<&State>,
        key: ApiKey,
        id: Path<String>,
    ) -> Result<Json<Run>, OpError<CancelRunErrors>> {
        let principal = crate::auth::authenticate_key(
            &state,
            key.0,
            crate::auth::tokens::RequestFacts::op("simulate"),
        )
        .await?;
        Ok(Json(run_view(
            &state,
            runs::cancel(&state, &principal.user_id, &RunId::from(id.0)).await?,
            None,
        )))
    }
}

fn default_limit() -> u32 {
    50
}

#[cfg(test)]
mod tests {
    use super::{Format, negotiate};

    #[test]
    fn accept_is_negotiated_by_q_values() {
        for (accept, expected) in [
            (None, Some(Format::Json)),
            (Some(""), Some(Format::Json)),
            (Some("*/*"), Some(Format::Json)),
            (Some("application/json"), Some(Format::Json)),
            (Some("text/csv"), Some(Format::Csv)),
            (Some("text/*"), Some(Format::Csv)),
            (Some("text/csv;q=0.1, application/json"), Some(Format::Json)),
            (
                Some("application/json;q=0.2, text/csv;q=0.9"),
                Some(Format::Csv),
            ),
            (Some("text/csv, application/json"), Some(Format::Json)),
            (Some("*/*;q=0.5, text/csv"), Some(Format::Csv)),
            (Some("text/csv;q=0, */*"), Some(Format::Json)),
            (Some("image/png"), None),
            (Some("application/json;q=0, text/csv;q=0"), None),
            (Some("application/x-matlab-data"), Some(Format::Mat)),
            (
                Some("application/vnd.apache.parquet"),
                Some(Format::Parquet),
            ),
            (Some("application/x-parquet"), Some(Format::Parquet)),
            (Some("application/*"), Some(Format::Json)),
            (
                Some("application/json;q=0.5, application/x-matlab-data"),
                Some(Format::Mat),
            ),
            (
                Some("application/x-matlab-data;q=0.8, application/vnd.apache.parquet;q=0.9"),
                Some(Format::Parquet),
            ),
            (
                Some("application/x-matlab-data, application/x-parquet"),
                Some(Format::Parquet),
            ),
            (
                Some("application/*, application/json;q=0"),
                Some(Format::Parquet),
            ),
            (Some("text/html, application/xhtml+xml"), None),
        ] {
            assert_eq!(negotiate(accept), expected, "{accept:?}");
        }
    }
}
