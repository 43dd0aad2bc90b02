//! Turns what a user asks for into a worker [`Job`]: defaults from the model's default
//! experiment (as fmusim and FMPy do), and every value checked against the model description
//! before any FMU code runs.

use std::path::Path;

use crate::fmi::describe::{ModelInfo, Variable};

use super::protocol::{InputSignal, Interface, Job, PROTOCOL_VERSION, Solver};

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
}

/// Output points a run may have at most.
pub const MAX_OUTPUT_POINTS: f64 = 1_000_000.0;

/// A job for `fmu_dir`, or a message that says what is wrong with the request.
pub fn plan(info: &ModelInfo, fmu_dir: &Path, s: &RunSettings) -> Result<Job, String> {
    let interface = match s.interface {
        Some(Interface::Cs) if info.co_simulation.is_none() => {
            return Err("this FMU does not support Co-Simulation".into());
        }
        Some(Interface::Me) if info.model_exchange.is_none() => {
            return Err("this FMU does not support Model Exchange".into());
        }
        Some(i) => i,
        None if info.co_simulation.is_some() => Interface::Cs,
        None if info.model_exchange.is_some() => Interface::Me,
        None => return Err("the FMU declares neither Co-Simulation nor Model Exchange".into()),
    };
    let experiment = info.default_experiment.clone().unwrap_or_default();
    let start_time = s.start_time.or(experiment.start_time).unwrap_or(0.0);
    let stop_time = s
        .stop_time
        .or(experiment.stop_time)
        .unwrap_or(start_time + 1.0);
    finite("start_time", start_time)?;
    finite("stop_time", stop_time)?;
    if stop_time <= start_time {
        return Err(format!(
            "stop_time ({stop_time}) must be after start_time ({start_time})"
        ));
    }
    let span = stop_time - start_time;
    let output_interval = s
        .output_interval
        .or(experiment.step_size)
        .unwrap_or(span / 500.0);
    positive("output_interval", output_interval)?;
    if span / output_interval > MAX_OUTPUT_POINTS {
        return Err(format!(
            "output_interval {output_interval} gives more than {MAX_OUTPUT_POINTS} output points over {span} s: use a larger interval"
        ));
    }
    // Co-Simulation records every communication point, which the step size sets.
    if interface == Interface::Cs
        && let Some(h) = s.step_size
        && h > 0.0
        && span / h > MAX_OUTPUT_POINTS
    {
        return Err(format!(
            "step_size {h} gives more than {MAX_OUTPUT_POINTS} communication points over {span} s: use a larger step"
        ));
    }
    if let Some(h) = s.step_size {
        positive("step_size", h)?;
        if span / h > 100.0 * MAX_OUTPUT_POINTS {
            return Err(format!("step_size {h} is too small for a run of {span} s"));
        }
    }
    let solver = s.solver.unwrap_or_default();
    if interface == Interface::Me && solver == Solver::Euler && s.step_size.is_none() {
        return Err("the euler solver needs a step_size".into());
    }
    let tolerance = s.tolerance.or(experiment.tolerance).unwrap_or(1e-6);
    if !(tolerance > 0.0 && tolerance < 1.0) {
        return Err(format!(
            "tolerance must be between 0 and 1, not {tolerance}"
        ));
    }
    for (name, literal) in &s.start_values {
        check_start_value(info, name, literal)?;
    }
    for name in &s.outputs {
        if info.variable(name).is_none() {
            return Err(format!("the model has no variable '{name}' to record"));
        }
    }
    for signal in &s.inputs {
        check_input(info, signal)?;
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
        start_values: s.start_values.clone(),
        outputs: s.outputs.clone(),
        inputs: s.inputs.clone(),
        log_limit: 64 * 1024,
        limits: Default::default(),
    })
}

fn finite(name: &str, v: f64) -> Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(format!("{name} must be a finite number"))
    }
}

fn positive(name: &str, v: f64) -> Result<(), String> {
    if v.is_finite() && v > 0.0 {
        Ok(())
    } else {
        Err(format!("{name} must be a positive number, not {v}"))
    }
}

/// A start value must name a variable the FMI standard lets an importer set before
/// initialisation, with a literal of the variable's type.
fn check_start_value(info: &ModelInfo, name: &str, literal: &str) -> Result<(), String> {
    let var = info
        .variable(name)
        .ok_or_else(|| format!("the model has no variable '{name}'"))?;
    let settable = matches!(
        var.causality.as_str(),
        "parameter" | "input" | "structuralParameter"
    ) || matches!(var.initial.as_deref(), Some("exact") | Some("approx"))
        || (var.causality == "local" && var.start.is_some() && var.variability != "constant");
    if !settable || var.variability == "constant" {
        return Err(format!(
            "'{name}' ({} {}) cannot be given a start value",
            var.variability, var.causality
        ));
    }
    check_literal(var, literal)
        .map_err(|expected| format!("start value '{literal}' for '{name}' is not {expected}"))
}

fn check_literal(var: &Variable, literal: &str) -> Result<(), &'static str> {
    let t = literal.trim();
    match var.r#type.as_str() {
        "Real" | "Float64" | "Float32" => t
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|_| ())
            .ok_or("a number"),
        "Integer" | "Enumeration" | "Int8" | "Int16" | "Int32" | "Int64" | "UInt8" | "UInt16"
        | "UInt32" | "UInt64" => t.parse::<i64>().map(|_| ()).map_err(|_| "a whole number"),
        "Boolean" => matches!(t, "true" | "false" | "1" | "0")
            .then_some(())
            .ok_or("true or false"),
        "String" => Ok(()),
        _ => Err("a supported type"),
    }
}

fn check_input(info: &ModelInfo, s: &InputSignal) -> Result<(), String> {
    let var = info
        .variable(&s.name)
        .ok_or_else(|| format!("the model has no input '{}'", s.name))?;
    if var.causality != "input" {
        return Err(format!("'{}' is not an input ({})", s.name, var.causality));
    }
    if s.t.is_empty() || s.t.len() != s.u.len() {
        return Err(format!(
            "input '{}' needs as many times as values, and at least one",
            s.name
        ));
    }
    if s.t.iter().chain(&s.u).any(|v| !v.is_finite()) {
        return Err(format!(
            "input '{}' has a value that is not a finite number",
            s.name
        ));
    }
    if s.t.windows(2).any(|w| w[1] < w[0]) {
        return Err(format!("the times of input '{}' must not decrease", s.name));
    }
    Ok(())
}
