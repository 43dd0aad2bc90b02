//! Runs one simulation in the current process with fmi-rs: the FMI 2 / FMI 3 Co-Simulation
//! and Model Exchange drivers of the Rust `fmusim`, with our Dormand–Prince solver for Model
//! Exchange. Only the worker process calls this: an FMU's code runs here, so this must never
//! run inside the server.

// fmi-rs's drivers take the recorder as `Arc<Recorder>` although it holds `RefCell`s; it is
// only ever used on this one thread.
#![allow(clippy::arc_with_non_send_sync)]

use std::path::Path;
use std::sync::Arc;

use fmi_rs::model_description::{FMIMajorVersion, peek_fmi_major_version};
use fmi_rs::sim::solver::ForwardEulerFactory;
use fmi_rs::sim::{fmi2 as sim2, fmi3 as sim3};

use super::protocol::{Column, InputSignal, Interface, Job, SimOutput, Solver};
use super::solver::DormandPrinceFactory;

/// Why a simulation did not produce results.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request does not fit the model (unknown variable, a string output…).
    #[error("{0}")]
    Request(String),
    /// The FMU or the integration failed; fmi-rs says how.
    #[error("{0}")]
    Simulation(String),
}

/// Most values a run may record (time points × columns), so a tiny output interval cannot
/// exhaust memory.
/// The server enforces the same cap on what a worker sends back ([`result_values`] counts).
pub const MAX_VALUES: usize = 20_000_000;

/// The values a result counts against [`MAX_VALUES`]: time points × recorded variables (the
/// time column is not counted). One rule for the engine, the plan and the server.
pub fn result_values(rows: u64, columns: u64) -> u64 {
    rows.saturating_mul(columns.max(1))
}

/// Simulates `job`; the FMU's log goes to `<scratch>/fmu.log`.
pub fn simulate(job: &Job) -> Result<SimOutput, EngineError> {
    let dir = Path::new(&job.fmu_dir);
    let md_path = dir.join("modelDescription.xml");
    let log_path = Path::new(&job.scratch_dir).join("fmu.log");
    let version = peek_fmi_major_version(&md_path)
        .map_err(|e| EngineError::Request(format!("modelDescription.xml: {e}")))?;
    let (time, columns) = match version {
        FMIMajorVersion::V3 => fmi3(job, &md_path, &log_path)?,
        FMIMajorVersion::V2 => fmi2(job, &md_path, &log_path)?,
    };
    // The estimate checked before the run can be off by a point or two; the server refuses
    // more than the cap, so the worker says so itself rather than sending it.
    let values = result_values(time.len() as u64, columns.len() as u64);
    if values > MAX_VALUES as u64 {
        return Err(EngineError::Request(format!(
            "{} output points × {} variables is more than {MAX_VALUES} values: use a larger output interval or fewer outputs",
            time.len(),
            columns.len()
        )));
    }
    Ok(SimOutput {
        time,
        columns,
        log: String::new(),
    })
}

fn solver_factory_dp(job: &Job) -> DormandPrinceFactory {
    DormandPrinceFactory {
        max_step: job.step_size,
        initial_step: None,
    }
}

fn euler(job: &Job) -> Result<ForwardEulerFactory, EngineError> {
    let h = job
        .step_size
        .ok_or_else(|| EngineError::Request("the Euler solver needs a step size".into()))?;
    Ok(ForwardEulerFactory { fixed_step_size: h })
}

/// The communication step for Co-Simulation: the step size if given, else the output interval.
fn communication_step(job: &Job) -> f64 {
    match job.interface {
        Interface::Cs => job.step_size.unwrap_or(job.output_interval),
        Interface::Me => job.output_interval,
    }
}

/// The union of all signals' time points, sorted, for the single input table fmi-rs reads.
fn input_times(signals: &[InputSignal]) -> Vec<f64> {
    let mut times: Vec<f64> = signals.iter().flat_map(|s| s.t.iter().copied()).collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    times
}

/// The signal's value at `t`: linear between points (continuous) or the last value at or
/// before `t` (discrete); constant beyond the ends.
fn sample(signal: &InputSignal, t: f64, continuous: bool) -> f64 {
    let (ts, us) = (&signal.t, &signal.u);
    match ts.iter().position(|&ti| ti > t) {
        None => us.last().copied().unwrap_or(0.0),
        Some(0) => us.first().copied().unwrap_or(0.0),
        Some(i) if continuous => {
            let (t0, t1, u0, u1) = (ts[i - 1], ts[i], us[i - 1], us[i]);
            if t1 > t0 {
                u0 + (u1 - u0) * (t - t0) / (t1 - t0)
            } else {
                u1
            }
        }
        Some(i) => us[i - 1],
    }
}

/// The variables to record, as the job names them. The parent resolves the default selection
/// (`sim::plan::recorded`) and checks it against the model before any credit moves, so there
/// is one rule and the engine records exactly what was checked.
fn select_outputs(
    job: &Job,
    index: impl Fn(&str) -> Result<usize, EngineError>,
) -> Result<Vec<usize>, EngineError> {
    if job.outputs.is_empty() {
        return Err(EngineError::Request(
            "the job names no variables to record".into(),
        ));
    }
    job.outputs.iter().map(|n| index(n)).collect()
}

/// Recorded rows (one value per variable) turned into columns of numbers.
fn to_columns<V>(
    names: Vec<String>,
    rows: &[Vec<V>],
    number: impl Fn(&V) -> Option<f64>,
) -> Result<Vec<Column>, EngineError> {
    let mut columns: Vec<Column> = names
        .into_iter()
        .map(|name| Column {
            name,
            values: Vec::with_capacity(rows.len()),
        })
        .collect();
    for row in rows {
        for (column, value) in columns.iter_mut().zip(row) {
            let v = number(value).ok_or_else(|| {
                EngineError::Request(format!(
                    "'{}' is not numeric and cannot be recorded",
                    column.name
                ))
            })?;
            column.values.push(v);
        }
    }
    Ok(columns)
}

fn too_many(job: &Job, columns: usize) -> Result<(), EngineError> {
    let points = ((job.stop_time - job.start_time) / communication_step(job))
        .abs()
        .ceil() as usize
        + 1;
    if points.saturating_mul(columns.max(1)) > MAX_VALUES {
        return Err(EngineError::Request(format!(
            "{points} output points × {columns} variables is more than {MAX_VALUES} values: use a larger output interval or fewer outputs"
        )));
    }
    Ok(())
}

/// The input table fmi-rs reads: one row per time point of any signal, each signal sampled
/// there. `variable(name)` gives a signal's variable index and whether it is continuous;
/// `value(index, u)` turns a sample into the model's type.
fn input_rows<V>(
    job: &Job,
    variable: impl Fn(&str) -> Result<(usize, bool), EngineError>,
    value: impl Fn(usize, &str, f64) -> Result<V, EngineError>,
) -> Result<InputTable<V>, EngineError> {
    let vars: Vec<(usize, bool)> = job
        .inputs
        .iter()
        .map(|s| variable(&s.name))
        .collect::<Result<_, _>>()?;
    let times = input_times(&job.inputs);
    let mut rows = Vec::with_capacity(times.len());
    for &t in &times {
        let row = job
            .inputs
            .iter()
            .zip(&vars)
            .map(|(signal, &(i, continuous))| value(i, &signal.name, sample(signal, t, continuous)))
            .collect::<Result<Vec<V>, _>>()?;
        rows.push(row);
    }
    Ok(InputTable {
        indices: vars.into_iter().map(|(i, _)| i).collect(),
        time: times,
        rows,
    })
}

/// Input signals as one table: variable indices, time points, one row of values per point.
struct InputTable<V> {
    indices: Vec<usize>,
    time: Vec<f64>,
    rows: Vec<Vec<V>>,
}

fn fmi3(
    job: &Job,
    md_path: &Path,
    log_path: &Path,
) -> Result<(Vec<f64>, Vec<Column>), EngineError> {
    use fmi_rs::model_description::fmi3::{ModelDescription, Variability, VariableType};
    use sim3::VariableValue as V;

    let md = Arc::new(
        ModelDescription::from_path(md_path)
            .map_err(|e| EngineError::Request(format!("modelDescription.xml: {e}")))?,
    );
    let index = |name: &str| {
        md.variable_index_by_name(name)
            .map_err(|_| EngineError::Request(format!("the model has no variable '{name}'")))
    };
    let outputs = select_outputs(job, index)?;
    too_many(job, outputs.len())?;

    let input = if job.inputs.is_empty() {
        None
    } else {
        let variable = |name: &str| {
            let i = index(name)?;
            Ok((
                i,
                md.modelVariables[i].variability == Variability::Continuous,
            ))
        };
        let value = |i: usize, name: &str, u: f64| {
            Ok(match &md.modelVariables[i].variableType {
                VariableType::Float64 { .. } => V::Float64(vec![u]),
                VariableType::Float32 { .. } => V::Float32(vec![u as f32]),
                VariableType::Int32 { .. } => V::Int32(vec![u.round() as i32]),
                VariableType::Int64 { .. } => V::Int64(vec![u.round() as i64]),
                VariableType::Boolean { .. } => V::Boolean(vec![u != 0.0]),
                _ => {
                    return Err(EngineError::Request(format!(
                        "input '{name}' is not a number or Boolean"
                    )));
                }
            })
        };
        let inputs = input_rows(job, variable, value)?;
        let mut table = sim3::Trajectories::new(md.clone(), inputs.indices);
        (table.time, table.rows) = (inputs.time, inputs.rows);
        Some(Arc::new(sim3::input::StaticInput::new(
            table,
            job.tolerance,
        )))
    };

    if job.interface == Interface::Cs
        && let Some(series) = super::cs_loop::fmi3(job, &md, &outputs, input.as_deref(), log_path)?
    {
        return Ok(series);
    }
    let recorder = Arc::new(sim3::recorder::Recorder::new(sim3::Trajectories::new(
        md.clone(),
        outputs,
    )));
    let settings = sim3::SimulationSettings {
        unzipdir: job.fmu_dir.clone().into(),
        model_description: md.clone(),
        library_kind: fmi_rs::fmi3::LibraryKind::Native,
        enable_dae: false,
        start_time: job.start_time,
        stop_time: job.stop_time,
        visible: false,
        logging_on: true,
        set_stop_time: true,
        output_interval: communication_step(job),
        log_time_scale: false,
        tolerance: job.tolerance,
        set_tolerance: true,
        start_values: job.start_values.clone(),
        log_fmi_calls: false,
        intermediate_update: false,
        input_file: None,
        early_return_allowed: false,
        event_mode_used: false,
        log_file: Some(log_path.to_path_buf()),
        initial_fmu_state_file: None,
        final_fmu_state_file: None,
    };
    let result = match (job.interface, job.solver) {
        (Interface::Cs, _) => sim3::cs::simulate(&settings, input, recorder.clone()),
        (Interface::Me, Solver::DormandPrince) => {
            sim3::me::simulate(&settings, &solver_factory_dp(job), input, recorder.clone())
        }
        (Interface::Me, Solver::Euler) => {
            sim3::me::simulate(&settings, &euler(job)?, input, recorder.clone())
        }
    };
    result.map_err(|e| EngineError::Simulation(e.to_string()))?;
    let trajectories = Arc::try_unwrap(recorder)
        .map_err(|_| EngineError::Simulation("the recorder is still in use".into()))?
        .into_trajectories();
    let names: Vec<String> = trajectories.variables().map(|v| v.name.clone()).collect();
    let columns = to_columns(names, &trajectories.rows, |v| {
        v.as_f64().and_then(|v| v.first().copied())
    })?;
    Ok((trajectories.time, columns))
}

fn fmi2(
    job: &Job,
    md_path: &Path,
    log_path: &Path,
) -> Result<(Vec<f64>, Vec<Column>), EngineError> {
    use fmi_rs::model_description::fmi2::{ModelDescription, Variability, VariableType};
    use sim2::VariableValue as V;

    let md = Arc::new(
        ModelDescription::from_path(md_path)
            .map_err(|e| EngineError::Request(format!("modelDescription.xml: {e}")))?,
    );
    let index = |name: &str| {
        md.variable_index_by_name(name)
            .map_err(|_| EngineError::Request(format!("the model has no variable '{name}'")))
    };
    let outputs = select_outputs(job, index)?;
    too_many(job, outputs.len())?;

    let input = if job.inputs.is_empty() {
        None
    } else {
        let variable = |name: &str| {
            let i = index(name)?;
            Ok((
                i,
                md.modelVariables[i].variability == Variability::Continuous,
            ))
        };
        let value = |i: usize, name: &str, u: f64| {
            Ok(match &md.modelVariables[i].variableType {
                VariableType::Real { .. } => V::Real(u),
                VariableType::Integer { .. } | VariableType::Enumeration { .. } => {
                    V::Integer(u.round() as i32)
                }
                VariableType::Boolean { .. } => V::Boolean(i32::from(u != 0.0)),
                VariableType::String { .. } => {
                    return Err(EngineError::Request(format!("input '{name}' is a string")));
                }
            })
        };
        let inputs = input_rows(job, variable, value)?;
        let mut table = sim2::Trajectories::new(md.clone(), inputs.indices);
        (table.time, table.rows) = (inputs.time, inputs.rows);
        Some(Arc::new(sim2::input::StaticInput::new(
            table,
            job.tolerance,
        )))
    };

    if job.interface == Interface::Cs
        && let Some(series) = super::cs_loop::fmi2(job, &md, &outputs, input.as_deref(), log_path)?
    {
        return Ok(series);
    }
    let recorder = Arc::new(sim2::recorder::Recorder::new(sim2::Trajectories::new(
        md.clone(),
        outputs,
    )));
    let settings = sim2::SimulationSettings {
        unzipdir: job.fmu_dir.clone().into(),
        model_description: md.clone(),
        start_time: job.start_time,
        stop_time: job.stop_time,
        logging_on: true,
        set_stop_time: true,
        output_interval: communication_step(job),
        log_time_scale: false,
        tolerance: job.tolerance,
        set_tolerance: true,
        start_values: job.start_values.clone(),
        log_fmi_calls: false,
        input_file: None,
        early_return_allowed: false,
        event_mode_used: false,
        log_file: Some(log_path.to_path_buf()),
        initial_fmu_state_file: None,
        final_fmu_state_file: None,
    };
    let result = match (job.interface, job.solver) {
        (Interface::Cs, _) => sim2::cs::simulate(&settings, input, recorder.clone()),
        (Interface::Me, Solver::DormandPrince) => {
            sim2::me::simulate(&settings, &solver_factory_dp(job), input, recorder.clone())
        }
        (Interface::Me, Solver::Euler) => {
            sim2::me::simulate(&settings, &euler(job)?, input, recorder.clone())
        }
    };
    result.map_err(|e| EngineError::Simulation(e.to_string()))?;
    let trajectories = Arc::try_unwrap(recorder)
        .map_err(|_| EngineError::Simulation("the recorder is still in use".into()))?
        .into_trajectories();
    let names: Vec<String> = trajectories.variables().map(|v| v.name.clone()).collect();
    let columns = to_columns(names, &trajectories.rows, |v| v.to_f64())?;
    Ok((trajectories.time, columns))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signal(t: &[f64], u: &[f64]) -> InputSignal {
        InputSignal {
            name: "u".into(),
            t: t.to_vec(),
            u: u.to_vec(),
        }
    }

    #[test]
    fn continuous_inputs_interpolate_and_discrete_ones_hold() {
        let s = signal(&[0.0, 1.0, 3.0], &[0.0, 2.0, 0.0]);
        assert_eq!(sample(&s, 0.5, true), 1.0);
        assert_eq!(sample(&s, 2.0, true), 1.0);
        assert_eq!(sample(&s, 0.5, false), 0.0);
        assert_eq!(sample(&s, 2.0, false), 2.0);
        assert_eq!(sample(&s, -1.0, true), 0.0);
        assert_eq!(sample(&s, 9.0, true), 0.0);
    }

    #[test]
    fn input_times_are_the_sorted_union() {
        let a = signal(&[0.0, 2.0], &[0.0, 0.0]);
        let b = signal(&[1.0, 2.0], &[0.0, 0.0]);
        assert_eq!(input_times(&[a, b]), vec![0.0, 1.0, 2.0]);
    }
}
