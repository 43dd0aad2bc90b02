//! Turns what a user asks for into a worker [`Job`]: defaults from the model's default
//! experiment (as fmusim and FMPy do), and every value checked against the model description
//! before any FMU code runs.

use crate::format::Number;
use std::path::Path;

use crate::fmi::describe::{DescribeError, ModelInfo, Variable};

use super::literals::{self, Sizes};
use super::protocol::{CsOptions, InputSignal, Interface, Job, PROTOCOL_VERSION, Solver};
use super::recorded::{Recorded, Scale};

/// What the caller asked for; `None` means "use the model's default".
#[derive(Clone, Debug, Default)]
pub struct RunSettings {
    pub interface: Option<Interface>,
    pub solver: Option<Solver>,
    pub start_time: Option<f64>,
    pub stop_time: Option<f64>,
    pub output_interval: Option<f64>,
    pub step_size: Option<f64>,
    pub tolerance: Option<f64>,
    /// Start values by variable name, as literals (`"2.5"`, `"true"`, `"3"`).
    pub start_values: Vec<(String, String)>,
    pub outputs: Vec<String>,
    pub inputs: Vec<InputSignal>,
    /// Record events (just before and after each); default yes.
    pub record_events: Option<bool>,
    /// Give float results in their display units (default: the model's units).
    pub display_units: bool,
    /// FMI 3 Co-Simulation options.
    pub cs_options: CsOptions,
    /// FMU states (fmusim's `--initial-fmu-state-file` / `--final-fmu-state-file`).
    pub states: super::fmu_state::StateSettings,
    /// FMI call logging and the FMU's log categories.
    pub logging: super::call_log::LogSettings,
}

/// Output points a run may have at most.
pub const MAX_OUTPUT_POINTS: f64 = 1_000_000.0;

/// Start values one run may set. The bounds below keep the work a request causes (checks,
/// the job sent to the worker, the settings stored with the run) proportional to a sane
/// request; the 1 MiB body limit alone would still allow ~100 000 tiny entries.
pub const MAX_START_VALUES: usize = 1_000;
/// Outputs one run may ask for.
pub const MAX_OUTPUTS: usize = 1_000;
/// Input signals one run may give.
pub const MAX_INPUT_SIGNALS: usize = 100;
/// Samples (time points) of all input signals together.
pub const MAX_INPUT_SAMPLES: usize = 100_000;
/// Longest variable name a request may use, in bytes.
pub const MAX_NAME_BYTES: usize = 1_024;
/// Longest start value literal (a String parameter's value), in bytes.
pub const MAX_LITERAL_BYTES: usize = 64 * 1024;

/// One thing wrong with a request: the field at fault (`stop_time`, `start_values.h`,
/// `outputs.y`, `inputs.u`, …) and what to fix.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    pub field: String,
    pub message: String,
}

impl Problem {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Problem {
        Problem {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Everything wrong with a request, so the caller can fix it all at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problems(pub Vec<Problem>);

impl std::fmt::Display for Problems {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let messages: Vec<&str> = self.0.iter().map(|p| p.message.as_str()).collect();
        f.write_str(&messages.join("; "))
    }
}

impl std::error::Error for Problems {}

/// A job for `fmu_dir`, or every problem with the request (checked against the model
/// description before any FMU code runs, and before any credit is reserved).
pub fn plan(info: &ModelInfo, fmu_dir: &Path, s: &RunSettings) -> Result<Job, Problems> {
    let oversized = check_counts(s);
    if !oversized.is_empty() {
        // Nothing else is checked: one problem per field, not one per entry.
        return Err(Problems(oversized));
    }
    let mut problems = Vec::new();
    let mut problem = |field: &str, message: String| problems.push(Problem::new(field, message));
    let interface = match s.interface {
        Some(Interface::Cs) if info.co_simulation.is_none() => {
            problem(
                "interface",
                "this FMU does not support Co-Simulation".into(),
            );
            Interface::Me
        }
        Some(Interface::Me) if info.model_exchange.is_none() => {
            problem(
                "interface",
                "this FMU does not support Model Exchange".into(),
            );
            Interface::Cs
        }
        Some(i) => i,
        None if info.co_simulation.is_some() => Interface::Cs,
        None if info.model_exchange.is_some() => Interface::Me,
        None => {
            let why = info.unrunnable().unwrap_or(DescribeError::NoInterface);
            problem("interface", why.to_string());
            Interface::Cs
        }
    };
    let experiment = info.default_experiment.clone().unwrap_or_default();
    // A run from a saved state starts at the state's time.
    let start_time = s
        .start_time
        .or(s.states.initial.as_ref().map(|state| state.time))
        .or(experiment.start_time)
        .unwrap_or(0.0);
    let stop_time = s
        .stop_time
        .or(experiment.stop_time)
        .unwrap_or(start_time + 1.0);
    let times_ok = finite("start_time", start_time, &mut problem)
        & finite("stop_time", stop_time, &mut problem);
    let span = stop_time - start_time;
    if times_ok && span <= 0.0 {
        problem(
            "stop_time",
            format!(
                "stop_time ({}) must be after start_time ({})",
                Number(stop_time),
                Number(start_time)
            ),
        );
    }
    let span_ok = times_ok && span > 0.0 && span.is_finite();
    let output_interval = s
        .output_interval
        .or(experiment.step_size)
        .unwrap_or(if span_ok { span / 500.0 } else { 1.0 });
    if positive("output_interval", output_interval, &mut problem)
        && span_ok
        && span / output_interval > MAX_OUTPUT_POINTS
    {
        problem(
            "output_interval",
            format!(
                "output_interval {} gives more than {MAX_OUTPUT_POINTS} output points over {} s: use a larger interval",
                Number(output_interval),
                Number(span)
            ),
        );
    }
    if let Some(h) = s.step_size
        && positive("step_size", h, &mut problem)
        && span_ok
    {
        // Co-Simulation records every communication point, which the step size sets.
        if interface == Interface::Cs && span / h > MAX_OUTPUT_POINTS {
            problem(
                "step_size",
                format!(
                    "step_size {} gives more than {MAX_OUTPUT_POINTS} communication points over {} s: use a larger step",
                    Number(h),
                    Number(span)
                ),
            );
        } else if span / h > 100.0 * MAX_OUTPUT_POINTS {
            problem(
                "step_size",
                format!(
                    "step_size {} is too small for a run of {} s",
                    Number(h),
                    Number(span)
                ),
            );
        }
    }
    let solver = s.solver.unwrap_or_default();
    if interface == Interface::Me && solver == Solver::Euler && s.step_size.is_none() {
        problem("solver", "the euler solver needs a step_size".into());
    }
    let tolerance = s.tolerance.or(experiment.tolerance).unwrap_or(1e-6);
    if !(tolerance > 0.0 && tolerance < 1.0) {
        problem(
            "tolerance",
            format!(
                "tolerance must be between 0 and 1, not {}",
                Number(tolerance)
            ),
        );
    }
    let sizes = Sizes::new(info, &s.start_values);
    let mut seen = std::collections::HashSet::new();
    let mut set = SetNames::default();
    let mut start_values = Vec::with_capacity(s.start_values.len());
    for (name, literal) in &s.start_values {
        let field = format!("start_values.{name}");
        if !seen.insert(name.as_str()) {
            problem(
                &field,
                format!("'{name}' is given more than one start value"),
            );
        } else {
            match check_start_value(info, &sizes, name, literal) {
                Err(e) => problem(&field, e.to_string()),
                Ok(_)
                    if interface == Interface::Me
                        && info.is_fmi3()
                        && literal.contains(char::is_whitespace)
                        && info.resolve(name).is_some_and(scalar_string) =>
                {
                    problem(&field, super::fmi_version::DRIVER_STRINGS.to_owned())
                }
                Ok(worker_literal) => {
                    if let Err(message) = set.claim(info, "start_values", name) {
                        problem(&field, message);
                    }
                    start_values.push((variable_name(info, name), worker_literal));
                }
            }
        }
    }
    if info.is_fmi3()
        && interface == Interface::Cs
        && s.start_values.iter().any(|(n, _)| {
            info.resolve(n)
                .is_some_and(|v| v.causality == "structuralParameter")
        })
        && let Some((name, _)) = s.start_values.iter().find(|(n, l)| {
            l.contains(char::is_whitespace) && info.resolve(n).is_some_and(scalar_string)
        })
    {
        problem(
            &format!("start_values.{name}"),
            super::fmi_version::DRIVER_STRINGS.to_owned(),
        );
    }
    let outputs = recorded(info, &s.outputs);
    let mut seen = std::collections::HashSet::new();
    let mut recorded_variables = Vec::with_capacity(outputs.len());
    for name in &outputs {
        let field = format!("outputs.{name}");
        match info.resolve(name) {
            None => problem(
                &field,
                format!("the model has no variable '{name}' to record"),
            ),
            Some(_) if !seen.insert(name.as_str()) => {
                problem(&field, format!("'{name}' is asked for more than once"))
            }
            Some(v) => match recorded_as(info, &sizes, v, name, s.display_units) {
                Ok(r) => recorded_variables.push(r),
                Err(message) => problem(&field, format!("{message}; choose the outputs to record")),
            },
        }
    }
    let columns: u64 = recorded_variables
        .iter()
        .map(|v| v.elements().unwrap_or(u64::MAX))
        .fold(0u64, u64::saturating_add);
    if span_ok && output_interval > 0.0 && output_interval.is_finite() {
        let step = match (interface, s.step_size) {
            (Interface::Cs, Some(h)) if h > 0.0 => h,
            _ => output_interval,
        };
        let points = (span / step).ceil() + 1.0;
        let values = points * columns.max(1) as f64;
        if values > super::engine::MAX_VALUES as f64 {
            problem(
                "outputs",
                format!(
                    "{} output points × {columns} columns is more than {} values: use a larger output interval or fewer outputs",
                    Number(points),
                    super::engine::MAX_VALUES
                ),
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    let mut set = SetNames::default();
    for signal in &s.inputs {
        let field = format!("inputs.{}", signal.name);
        if !seen.insert(signal.name.as_str()) {
            problem(
                &field,
                format!("input '{}' is given more than once", signal.name),
            );
        } else if let Err(e) = check_input(info, signal) {
            problem(&field, e.to_string());
        } else if let Err(message) = set.claim(info, "inputs", &signal.name) {
            problem(&field, message);
        }
    }
    for (field, why) in cs_option_problems(info, interface, s.cs_options) {
        problem(field, why);
    }
    let fast_loop = super::call_log::fast_loop(info, interface, s);
    for (field, why) in s.states.problems(info, interface, fast_loop, start_time) {
        problem(field, why);
    }
    for (field, why) in s.logging.problems(info, fast_loop) {
        problem(&field, why);
    }
    if !problems.is_empty() {
        return Err(Problems(problems));
    }
    Ok(Job {
        version: PROTOCOL_VERSION,
        fmu_dir: fmu_dir.display().to_string(),
        scratch_dir: String::new(),
        interface,
        solver,
        start_time,
        stop_time,
        output_interval,
        step_size: s.step_size,
        tolerance,
        start_values,
        outputs: outputs
            .iter()
            .map(|name| variable_name(info, name))
            .collect(),
        recorded: recorded_variables,
        inputs: s
            .inputs
            .iter()
            .map(|signal| InputSignal {
                name: variable_name(info, &signal.name),
                ..signal.clone()
            })
            .collect(),
        record_events: s.record_events.unwrap_or(true),
        cs_options: s.cs_options,
        initial_state: s.states.initial.clone(),
        save_final_state: s.states.save_final,
        log_fmi_calls: s.logging.fmi_calls,
        log_categories: s.logging.categories.clone(),
        log_limit: 64 * 1024,
        limits: Default::default(),
        batch: None,
    })
}

/// The FMI 3 Co-Simulation options are for FMI 3 Co-Simulation runs, and event mode for an
/// FMU that has it.
fn cs_option_problems(
    info: &ModelInfo,
    interface: Interface,
    options: CsOptions,
) -> Vec<(&'static str, String)> {
    let asked = [
        ("early_return_allowed", options.early_return_allowed),
        ("event_mode_used", options.event_mode_used),
        ("intermediate_update", options.intermediate_update),
    ];
    let mut problems = Vec::new();
    for (field, on) in asked {
        if on && (interface != Interface::Cs || !info.is_fmi3()) {
            problems.push((
                field,
                format!("{field} is an option of FMI 3 Co-Simulation runs"),
            ));
        }
    }
    if options.event_mode_used
        && interface == Interface::Cs
        && info.is_fmi3()
        && !info
            .co_simulation
            .as_ref()
            .is_some_and(|cs| cs.has_event_mode)
    {
        problems.push((
            "event_mode_used",
            "this FMU does not have an event mode in Co-Simulation (hasEventMode)".into(),
        ));
    }
    problems
}

/// The name the worker knows a checked name by: an FMI 3 alias becomes its variable's name
/// (the model description the worker reads has no aliases); any other name stays as it is.
fn variable_name(info: &ModelInfo, name: &str) -> String {
    info.resolve(name)
        .map_or(name, |v| v.name.as_str())
        .to_owned()
}

/// The names a request sets values by (start values, inputs), by the value each stands for:
/// a variable and its alias name one value, and setting it twice in one request is refused,
/// naming both fields, rather than letting one silently win.
#[derive(Default)]
struct SetNames<'a> {
    /// (value reference, type) → the first name given for it.
    first: std::collections::HashMap<(u32, &'a str), &'a str>,
}

impl<'a> SetNames<'a> {
    fn claim(&mut self, info: &'a ModelInfo, part: &str, name: &'a str) -> Result<(), String> {
        let Some(var) = info.resolve(name) else {
            return Ok(());
        };
        match self.first.entry((var.value_reference, var.r#type.as_str())) {
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(name);
                Ok(())
            }
            std::collections::hash_map::Entry::Occupied(e) => Err(format!(
                "{part}.{} and {part}.{name} set the same variable ('{}'; one is an alias of the other): give only one",
                e.get(),
                var.name
            )),
        }
    }
}

/// Whether the variable is a scalar String: an array's elements cannot hold spaces at all
/// (`sim::literals`), so only a scalar's spaces matter to fmi-rs's drivers.
fn scalar_string(v: &Variable) -> bool {
    v.r#type == "String" && v.dimensions == 0
}

/// The variables a run records: those asked for, else the model's outputs, else every
/// variable but the independent one that has a value to record (the engine's rule, so it
/// can be checked here).
pub fn recorded<'a>(info: &'a ModelInfo, asked: &'a [String]) -> Vec<&'a String> {
    if !asked.is_empty() {
        return asked.iter().collect();
    }
    let outputs: Vec<&String> = info.outputs().map(|v| &v.name).collect();
    if !outputs.is_empty() {
        return outputs;
    }
    info.variables
        .iter()
        .filter(|v| v.causality != "independent" && v.is_recordable())
        .map(|v| &v.name)
        .collect()
}

/// What variable `var`, asked for as `name`, is recorded as: its type, its shape (with the
/// sizes this request gives structural parameters), an enumeration's items, and its unit —
/// with `display_units`, the display unit of the name asked for (an alias's own, else the
/// variable's) and the conversion to it.
fn recorded_as(
    info: &ModelInfo,
    sizes: &Sizes<'_>,
    var: &Variable,
    name: &str,
    display_units: bool,
) -> Result<Recorded, String> {
    let r#type = literals::value_type(var)?;
    let mut recorded = Recorded {
        name: name.to_owned(),
        r#type,
        shape: sizes.shape(var)?,
        items: var.items.clone(),
        unit: var.unit.clone(),
        display: None,
    };
    let display_name = var
        .aliases
        .iter()
        .find(|a| a.name == name)
        .and_then(|a| a.display_unit.as_deref())
        .or(var.display_unit.as_deref());
    if let (true, Some(unit), Some(display_name)) = (display_units, &var.unit, display_name) {
        let display = info.display_unit(unit, display_name).ok_or_else(|| {
            format!("'{name}' has the display unit '{display_name}', which the unit '{unit}' does not define")
        })?;
        if display.inverse {
            return Err(format!(
                "'{name}' has an inverse display unit ('{display_name}'), which this server does not convert to: ask for the model's units"
            ));
        }
        recorded.unit = Some(display.name.clone());
        recorded.display = Some(Scale {
            factor: display.factor,
            offset: display.offset,
        });
    }
    Ok(recorded)
}

/// The request's counts and sizes against their maximums (the `MAX_…` constants above).
fn check_counts(s: &RunSettings) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut count = |field: &str, what: &str, n: usize, max: usize| {
        if n > max {
            problems.push(Problem::new(
                field,
                format!("{n} {what} is more than the {max} a run may have"),
            ));
        }
    };
    count(
        "start_values",
        "start values",
        s.start_values.len(),
        MAX_START_VALUES,
    );
    count("outputs", "outputs", s.outputs.len(), MAX_OUTPUTS);
    count("inputs", "input signals", s.inputs.len(), MAX_INPUT_SIGNALS);
    let samples = s
        .inputs
        .iter()
        .fold(0usize, |n, i| n.saturating_add(i.t.len().max(i.u.len())));
    count("inputs", "input samples", samples, MAX_INPUT_SAMPLES);
    let longest = |names: Vec<&String>| names.into_iter().map(String::len).max().unwrap_or(0);
    for (field, bytes) in [
        (
            "start_values",
            longest(s.start_values.iter().map(|(n, _)| n).collect()),
        ),
        ("outputs", longest(s.outputs.iter().collect())),
        (
            "inputs",
            longest(s.inputs.iter().map(|i| &i.name).collect()),
        ),
    ] {
        if bytes > MAX_NAME_BYTES {
            problems.push(Problem::new(
                field,
                format!(
                    "a variable name of {bytes} bytes is longer than the {MAX_NAME_BYTES} allowed"
                ),
            ));
        }
    }
    if let Some((name, literal)) = s
        .start_values
        .iter()
        .find(|(n, l)| n.len() <= MAX_NAME_BYTES && l.len() > MAX_LITERAL_BYTES)
    {
        problems.push(Problem::new(
            format!("start_values.{name}"),
            format!(
                "a start value of {} bytes is longer than the {MAX_LITERAL_BYTES} allowed",
                literal.len()
            ),
        ));
    }
    problems
}

fn finite(name: &str, v: f64, problem: &mut impl FnMut(&str, String)) -> bool {
    if !v.is_finite() {
        problem(name, format!("{name} must be a finite number"));
    }
    v.is_finite()
}

fn positive(name: &str, v: f64, problem: &mut impl FnMut(&str, String)) -> bool {
    let ok = v.is_finite() && v > 0.0;
    if !ok {
        problem(
            name,
            format!("{name} must be a positive number, not {}", Number(v)),
        );
    }
    ok
}

/// Why a start value is refused: the message of its [`Problem`].
#[derive(Debug, thiserror::Error)]
enum StartValueError<'a> {
    #[error("the model has no variable '{name}'")]
    NoVariable { name: &'a str },
    #[error("'{name}' ({variability} {causality}) cannot be given a start value")]
    NotSettable {
        name: &'a str,
        variability: &'a str,
        causality: &'a str,
    },
    /// Its type, range or shape (see `sim::literals`).
    #[error("{0}")]
    Value(String),
}

/// A start value must name a variable the FMI standard lets an importer set before
/// initialisation, with a literal of the variable's type within its `min` and `max` (and for
/// an array, its shape). Returns the literal the worker sets.
fn check_start_value<'a>(
    info: &'a ModelInfo,
    sizes: &Sizes<'_>,
    name: &'a str,
    literal: &'a str,
) -> Result<String, StartValueError<'a>> {
    let var = info
        .resolve(name)
        .ok_or(StartValueError::NoVariable { name })?;
    let settable = matches!(
        var.causality.as_str(),
        "parameter" | "input" | "structuralParameter"
    ) || matches!(var.initial.as_deref(), Some("exact") | Some("approx"))
        || (var.causality == "local" && var.start.is_some() && var.variability != "constant");
    if !settable || var.variability == "constant" {
        return Err(StartValueError::NotSettable {
            name,
            variability: &var.variability,
            causality: &var.causality,
        });
    }
    let shape = sizes.shape(var).map_err(StartValueError::Value)?;
    literals::start_literal(var, &shape, literal).map_err(StartValueError::Value)
}

/// Why an input signal is refused: the message of its [`Problem`].
#[derive(Debug, thiserror::Error)]
enum InputError<'a> {
    #[error("the model has no input '{name}'")]
    NoVariable { name: &'a str },
    #[error("'{name}' is not an input (it is a {causality}): only inputs take signals")]
    NotAnInput { name: &'a str, causality: &'a str },
    #[error("input '{name}' needs as many times as values, and at least one")]
    Lengths { name: &'a str },
    #[error("input '{name}' has a value that is not a finite number")]
    NotFinite { name: &'a str },
    #[error("the times of input '{name}' must not decrease")]
    Decreasing { name: &'a str },
    /// A step gives its time twice: the value just before it, then the value from it on. A
    /// third value would hold for no time at all.
    #[error(
        "input '{name}' gives the time {} more than twice: a step repeats its time once (the value just before it, then the value from it on)",
        Number(*time)
    )]
    ThreeTimes { name: &'a str, time: f64 },
    /// A value the input's type cannot hold (see `sim::literals::input_sample`).
    #[error("{0}")]
    Value(String),
}

fn check_input<'a>(info: &'a ModelInfo, s: &'a InputSignal) -> Result<(), InputError<'a>> {
    let name = s.name.as_str();
    let var = info.resolve(name).ok_or(InputError::NoVariable { name })?;
    if var.causality != "input" {
        return Err(InputError::NotAnInput {
            name,
            causality: &var.causality,
        });
    }
    if s.t.is_empty() || s.t.len() != s.u.len() {
        return Err(InputError::Lengths { name });
    }
    if s.t.iter().chain(&s.u).any(|v| !v.is_finite()) {
        return Err(InputError::NotFinite { name });
    }
    if s.t.windows(2).any(|w| w[1] < w[0]) {
        return Err(InputError::Decreasing { name });
    }
    if let Some(w) = s.t.windows(3).find(|w| w[0] == w[2]) {
        return Err(InputError::ThreeTimes { name, time: w[0] });
    }
    if let Some(Err(message)) =
        s.u.iter()
            .map(|&u| literals::input_sample(var, u))
            .find(Result::is_err)
    {
        return Err(InputError::Value(message));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(s: &RunSettings) -> Vec<String> {
        check_counts(s).into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn counts_at_their_maximum_pass_and_one_more_is_named() {
        let names = |n: usize| (0..n).map(|i| format!("v{i}")).collect::<Vec<_>>();
        let at_max = RunSettings {
            start_values: names(MAX_START_VALUES)
                .into_iter()
                .map(|n| (n, "1".into()))
                .collect(),
            outputs: names(MAX_OUTPUTS),
            inputs: vec![InputSignal {
                name: "u".into(),
                t: vec![0.0; MAX_INPUT_SAMPLES],
                u: vec![0.0; MAX_INPUT_SAMPLES],
            }],
            ..RunSettings::default()
        };
        assert!(fields(&at_max).is_empty());

        let mut over = at_max.clone();
        over.start_values.push(("extra".into(), "1".into()));
        over.outputs.push("extra".into());
        over.inputs[0].u.push(1.0);
        assert_eq!(fields(&over), ["start_values", "outputs", "inputs"]);

        let many_signals = RunSettings {
            inputs: (0..=MAX_INPUT_SIGNALS)
                .map(|i| InputSignal {
                    name: format!("u{i}"),
                    t: vec![0.0],
                    u: vec![0.0],
                })
                .collect(),
            ..RunSettings::default()
        };
        assert_eq!(fields(&many_signals), ["inputs"]);
    }

    #[test]
    fn over_long_names_and_literals_are_named() {
        let long = "x".repeat(MAX_NAME_BYTES + 1);
        let s = RunSettings {
            start_values: vec![
                (long.clone(), "1".into()),
                ("p".into(), "y".repeat(MAX_LITERAL_BYTES + 1)),
            ],
            outputs: vec![long],
            ..RunSettings::default()
        };
        assert_eq!(fields(&s), ["start_values", "outputs", "start_values.p"]);
    }
}
