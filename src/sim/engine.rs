//! Runs one simulation in the current process with fmi-rs: the FMI 2 / FMI 3 Co-Simulation
//! and Model Exchange drivers of the Rust `fmusim`, with our Dormand–Prince solver for Model
//! Exchange. Only the worker process calls this: an FMU's code runs here, so this must never
//! run inside the server.
//!
//! The algorithm is written once over [`FmiVersion`], which maps it onto FMI 2 or FMI 3.

// fmi-rs's drivers take the recorder as `Arc<Recorder>` although it holds `RefCell`s; it is
// only ever used on this one thread.
#![allow(clippy::arc_with_non_send_sync)]

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use fmi_rs::model_description::{FMIMajorVersion, ModelDescriptionError, peek_fmi_major_version};
use fmi_rs::sim::SimulationError;
use fmi_rs::sim::solver::ForwardEulerFactory;

use super::bdf::BdfFactory;
use super::cs_loop;
use super::fmi_version::{Fmi2, Fmi3, FmiVersion};
use super::fmu_state::{STATES_NEED_FAST_LOOP, SavedState};
use super::progress::{Progress, ReportingFactory};
use super::protocol::{Batch, Case, InputSignal, Interface, Job, SimOutput, Solver};
use super::recorded::{Column, Values, element_columns};
use super::solver::{AutoFactory, DormandPrinceFactory};
use crate::fmi::archive::MODEL_DESCRIPTION;
use crate::format::Number;

/// Recorded time points and one column per recorded variable.
pub(super) type Series = (Vec<f64>, Vec<Column>);

/// Why a simulation did not produce results.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The request does not fit the model (unknown variable, a string output…).
    #[error("{0}")]
    Request(String),
    /// The model description cannot be read (fmi-rs says why).
    #[error("modelDescription.xml: {0}")]
    ModelDescription(#[from] ModelDescriptionError),
    /// The FMU or the integration failed; fmi-rs says how.
    #[error(transparent)]
    Fmi(#[from] SimulationError),
    /// The run failed around fmi-rs (the FMU's log cannot be opened, …).
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

/// Simulates `job`, telling `progress` the time reached after each step; the FMU's log goes
/// to `<scratch>/fmu.log`.
pub fn simulate(job: &Job, progress: &Progress) -> Result<SimOutput, EngineError> {
    let (md_path, log_path) = paths(job);
    let version = peek_fmi_major_version(&md_path)?;
    let (series, final_state) = match version {
        FMIMajorVersion::V3 => run::<Fmi3>(job, &md_path, &log_path, progress)?,
        FMIMajorVersion::V2 => run::<Fmi2>(job, &md_path, &log_path, progress)?,
    };
    finish(job, series, final_state)
}

/// The model description and the FMU's log of a job.
fn paths(job: &Job) -> (PathBuf, PathBuf) {
    let md_path = Path::new(&job.fmu_dir).join(MODEL_DESCRIPTION);
    let log_path = Path::new(&job.scratch_dir).join(LOG_FILE);
    (md_path, log_path)
}

/// The FMU's log, in the job's scratch directory.
pub const LOG_FILE: &str = "fmu.log";

/// A run's result from what a loop recorded: columns named and in display units, only the
/// output points unless events are recorded, time points checked, the cap enforced.
fn finish(
    job: &Job,
    (mut time, columns): Series,
    final_state: Option<SavedState>,
) -> Result<SimOutput, EngineError> {
    let mut columns = name_columns(columns, job)?;
    to_display_units(&mut columns, job);
    if !job.record_events {
        let keep = output_points(&time, job);
        let mut i = 0;
        time.retain(|_| {
            i += 1;
            keep[i - 1]
        });
        for column in &mut columns {
            column.values.retain_rows(&keep);
        }
    }
    // Values may be NaN or ±∞ (legal results); a time point may not, and the server refuses
    // one (`protocol::copy_values`): say so here, where it can be explained.
    if let Some(i) = time.iter().position(|t| !t.is_finite()) {
        let after = i
            .checked_sub(1)
            .map_or(String::new(), |p| format!(" after t = {}", Number(time[p])));
        return Err(EngineError::Simulation(format!(
            "the simulation time became {}{after}",
            Number(time[i])
        )));
    }
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
        variables: job.recorded.clone(),
        columns,
        log: String::new(),
        final_state,
    })
}

/// Names each column after its element of the job's recorded variables (`job.recorded`: the
/// names the caller asked for, so an alias names its own column; `y[1]`, `y[2]`, … for an
/// array), checking that the run recorded exactly those columns in their types.
fn name_columns(mut columns: Vec<Column>, job: &Job) -> Result<Vec<Column>, EngineError> {
    let elements = element_columns(&job.recorded);
    if elements.len() != columns.len() {
        return Err(EngineError::Simulation(format!(
            "the run recorded {} columns for {} expected",
            columns.len(),
            elements.len()
        )));
    }
    for (column, (variable, name)) in columns.iter_mut().zip(elements) {
        if column.values.storage() != job.recorded[variable].r#type.storage() {
            return Err(EngineError::Simulation(format!(
                "'{name}' was recorded in another type than {:?}",
                job.recorded[variable].r#type
            )));
        }
        column.name = name;
    }
    Ok(columns)
}

/// Columns for the job's recorded variables, one per element, empty, in their storage.
pub(super) fn empty_columns(job: &Job, capacity: usize) -> Vec<Column> {
    element_columns(&job.recorded)
        .into_iter()
        .map(|(variable, name)| Column {
            name,
            values: Values::new(job.recorded[variable].r#type.storage(), capacity),
        })
        .collect()
}

/// For each output, the range of its element columns among [`empty_columns`].
pub(super) fn column_ranges(job: &Job) -> Vec<std::ops::Range<usize>> {
    let mut start = 0;
    job.recorded
        .iter()
        .map(|v| {
            let n = v.elements().unwrap_or(0) as usize;
            start += n;
            start - n..start
        })
        .collect()
}

/// Why a value of output `name` with `found` elements was refused: a value of another size
/// than the variable's shape is an error, never cut or padded.
pub(super) fn size_mismatch(name: &str, found: usize, expected: usize) -> EngineError {
    EngineError::Simulation(format!(
        "'{name}' has {found} elements where its shape gives {expected}"
    ))
}

/// Converts the columns of variables recorded in a display unit (`Recorded::display`).
fn to_display_units(columns: &mut [Column], job: &Job) {
    for ((variable, _), column) in element_columns(&job.recorded).iter().zip(columns) {
        let recorded = &job.recorded[*variable];
        if let (Some(scale), Values::Float(values)) = (recorded.display, &mut column.values) {
            // A Float32 stays a Float32 in its display unit: the value is the nearest one.
            let float32 = recorded.r#type == crate::sim::recorded::ValueType::Float32;
            for v in values {
                let shown = scale.factor * *v + scale.offset;
                *v = if float32 {
                    f64::from(shown as f32)
                } else {
                    shown
                };
            }
        }
    }
}

/// Which recorded rows are output points (the rows kept when events are not recorded): rows
/// at `start + n · interval` or at the stop time, the last of several at one time (after an
/// event there). Rows the driver added at an event, or where an input changed, are not.
fn output_points(time: &[f64], job: &Job) -> Vec<bool> {
    let h = communication_step(job);
    let on_grid = |t: f64| {
        let n = ((t - job.start_time) / h).round();
        let point = job.start_time + n * h;
        fmi_rs::sim::relative_eq(t, point, job.tolerance)
            || fmi_rs::sim::relative_eq(t, job.stop_time, job.tolerance)
    };
    (0..time.len())
        .map(|i| on_grid(time[i]) && time.get(i + 1) != Some(&time[i]))
        .collect()
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

/// Tells the run's log that the automatic solver switched to BDF at `t`. Written after the
/// run (the FMU's logger holds the file while it runs), so it is the log's last line.
fn log_switch_to_bdf(log_path: &Path, t: f64) -> Result<(), EngineError> {
    use std::io::Write;
    let line = format!(
        "[INFO] [solver] stiffness detected at t = {}: continuing with BDF",
        Number(t)
    );
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .open(log_path)
        .and_then(|mut file| writeln!(file, "{line}"))
        .map_err(|e| EngineError::Simulation(format!("the FMU log: {e}")))
}

/// The communication step for Co-Simulation: the step size if given, else the output interval.
fn communication_step(job: &Job) -> f64 {
    match job.interface {
        Interface::Cs => job.step_size.unwrap_or(job.output_interval),
        Interface::Me => job.output_interval,
    }
}

/// Which value of a signal at a time point is meant. A signal that repeats a time steps
/// there: its left value (the first given for that time) holds just before it, its right
/// value (the last) at and after it, as FMI tools read a repeated time. At any other time
/// both are the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

/// The rows of the single input table fmi-rs reads, as (time, side): every time point of
/// any signal, sorted, once, and twice (left, then right) where some signal steps. fmi-rs
/// takes two rows with the same time as a step: an event there, before which continuous
/// inputs reach the left row's values and from which on they start from the right row's.
///
/// A step at or before the start time keeps only its right row: its left value would lie
/// before the run, so the run starts with the right one. And fmi-rs interpolates between a
/// row and the next, so a table that begins or ends with a step's two rows (or has a single
/// row) would divide by the zero time between them: a row earlier than the first and one
/// later than the last keep every step inside (the signals are constant beyond their ends,
/// so these rows change no value).
fn table_rows(signals: &[InputSignal], start_time: f64) -> Vec<(f64, Side)> {
    let mut steps: Vec<f64> = signals
        .iter()
        .flat_map(|s| s.t.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]))
        .filter(|&t| t > start_time)
        .collect();
    steps.sort_by(f64::total_cmp);
    let mut times: Vec<f64> = signals.iter().flat_map(|s| s.t.iter().copied()).collect();
    times.sort_by(f64::total_cmp);
    times.dedup();
    let mut rows = Vec::with_capacity(times.len() + steps.len() + 2);
    for t in times {
        if steps.binary_search_by(|s| s.total_cmp(&t)).is_ok() {
            rows.push((t, Side::Left));
        }
        rows.push((t, Side::Right));
    }
    // A distinct time beyond `t`, in the direction of `sign`.
    let beyond = |t: f64, sign: f64| t + sign * t.abs().max(1.0);
    if let Some(&(first, Side::Left)) = rows.first() {
        rows.insert(0, (beyond(first, -1.0), Side::Right));
    }
    let ends_with_step = rows.len() >= 2 && rows[rows.len() - 2].1 == Side::Left;
    if let Some(&(last, _)) = rows.last()
        && (rows.len() == 1 || ends_with_step)
    {
        rows.push((beyond(last, 1.0), Side::Right));
    }
    rows
}

/// The signal's value at `t` from `side`: linear between points (continuous) or the last
/// value before (left) or at or before (right) `t` (discrete); constant beyond the ends. At
/// a repeated time the left value is the first given for it and the right value the last.
fn sample(signal: &InputSignal, t: f64, continuous: bool, side: Side) -> f64 {
    let (ts, us) = (&signal.t, &signal.u);
    let (Some(&first), Some(&last)) = (us.first(), us.last()) else {
        return 0.0;
    };
    // How many points lie before `t` (left), or at or before it (right).
    let before = match side {
        Side::Left => ts.partition_point(|&ti| ti < t),
        Side::Right => ts.partition_point(|&ti| ti <= t),
    };
    match (before, side) {
        (0, _) => first,
        (n, _) if n == ts.len() => last,
        (n, _) if !continuous => us[n - 1],
        // ts[n - 1] < t <= ts[n]: at the point itself, its (first) value.
        (n, Side::Left) if ts[n] == t => us[n],
        // ts[n - 1] <= t < ts[n]: at the point itself, its (last) value.
        (n, Side::Right) if ts[n - 1] == t => us[n - 1],
        // Strictly between two points, so ts[n] > ts[n - 1].
        (n, _) => {
            let (t0, t1, u0, u1) = (ts[n - 1], ts[n], us[n - 1], us[n]);
            u0 + (u1 - u0) * (t - t0) / (t1 - t0)
        }
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

fn too_many(job: &Job) -> Result<(), EngineError> {
    let columns = element_columns(&job.recorded).len();
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

/// The input table fmi-rs reads: one row per time point of any signal (two at a step, see
/// [`table_rows`]), each signal sampled there. `variable(name)` gives a signal's variable index and whether it is continuous;
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
    let points = table_rows(&job.inputs, job.start_time);
    let mut rows = Vec::with_capacity(points.len());
    for &(t, side) in &points {
        let row = job
            .inputs
            .iter()
            .zip(&vars)
            .map(|(signal, &(i, continuous))| {
                value(i, &signal.name, sample(signal, t, continuous, side))
            })
            .collect::<Result<Vec<V>, _>>()?;
        rows.push(row);
    }
    Ok(InputTable {
        indices: vars.into_iter().map(|(i, _)| i).collect(),
        time: points.into_iter().map(|(t, _)| t).collect(),
        rows,
    })
}

/// Input signals as one table: variable indices, time points, one row of values per point.
pub(super) struct InputTable<V> {
    pub indices: Vec<usize>,
    pub time: Vec<f64>,
    pub rows: Vec<Vec<V>>,
}

/// What a run needs before either loop starts: the model, what to record, the inputs.
struct Prepared<F: FmiVersion> {
    md: Arc<F::Description>,
    outputs: Vec<usize>,
    input: Option<Arc<F::Input>>,
}

/// One run with FMI version `F`: the fast loop for the common Co-Simulation case, else
/// fmi-rs's driver. Only the fast loop can restore or save an FMU state: fmi-rs's driver
/// makes its calls where we cannot add those, so a run that needs them and does not fit the
/// fast loop is refused rather than run without them.
fn run<F: FmiVersion>(
    job: &Job,
    md_path: &Path,
    log_path: &Path,
    progress: &Progress,
) -> Result<(Series, Option<SavedState>), EngineError> {
    let prepared = prepare::<F>(job, md_path)?;
    if job.interface == Interface::Cs
        && let Some(ran) = cs_loop::run::<F>(
            job,
            &prepared.md,
            &prepared.outputs,
            prepared.input.as_deref(),
            log_path,
            progress,
        )?
    {
        return Ok(ran);
    }
    if job.initial_state.is_some() || job.save_final_state {
        return Err(EngineError::Request(STATES_NEED_FAST_LOOP.into()));
    }
    let ran = with_driver(job, prepared, log_path, progress);
    if job.log_fmi_calls {
        super::call_log::note_driver_calls(log_path);
    }
    ran.map(|series| (series, None))
}

/// Reads the model description, resolves the outputs and builds the input table.
fn prepare<F: FmiVersion>(job: &Job, md_path: &Path) -> Result<Prepared<F>, EngineError> {
    let md = Arc::new(F::read(md_path)?);
    let index = |name: &str| {
        F::index(&md, name)
            .ok_or_else(|| EngineError::Request(format!("the model has no variable '{name}'")))
    };
    let outputs = select_outputs(job, index)?;
    too_many(job)?;
    let input = if job.inputs.is_empty() {
        None
    } else {
        let variable = |name: &str| {
            let i = index(name)?;
            Ok((i, F::continuous(&md, i)))
        };
        let value = |i: usize, name: &str, u: f64| F::input_value(&md, i, name, u);
        let table = input_rows(job, variable, value)?;
        Some(Arc::new(F::input(&md, table, job.tolerance)))
    };
    Ok(Prepared { md, outputs, input })
}

/// `inner`, with each step its solvers take told to `progress`.
fn reporting<'f, S>(inner: &'f S, progress: &Progress) -> ReportingFactory<'f, S> {
    ReportingFactory {
        inner,
        progress: Rc::clone(progress),
    }
}

/// The run through fmi-rs's own drivers: Co-Simulation, or Model Exchange with our solver.
fn with_driver<F: FmiVersion>(
    job: &Job,
    prepared: Prepared<F>,
    log_path: &Path,
    progress: &Progress,
) -> Result<Series, EngineError> {
    let Prepared { md, outputs, input } = prepared;
    let recorder = Arc::new(F::recorder(&md, outputs));
    if let Some(why) = F::driver_cannot_set(job, &md) {
        return Err(EngineError::Request(why));
    }
    let settings = F::settings(job, &md, communication_step(job), log_path);
    let result = match (job.interface, job.solver) {
        (Interface::Cs, _) => F::co_simulation(&settings, input, recorder.clone()),
        (Interface::Me, Solver::DormandPrince) => {
            let dp = solver_factory_dp(job);
            F::model_exchange(
                &settings,
                &reporting(&dp, progress),
                input,
                recorder.clone(),
            )
        }
        (Interface::Me, Solver::Bdf) => {
            let bdf = BdfFactory {
                max_step: job.step_size,
            };
            F::model_exchange(
                &settings,
                &reporting(&bdf, progress),
                input,
                recorder.clone(),
            )
        }
        (Interface::Me, Solver::Auto) => {
            let auto = AutoFactory {
                max_step: job.step_size,
                ..AutoFactory::default()
            };
            let result = F::model_exchange(
                &settings,
                &reporting(&auto, progress),
                input,
                recorder.clone(),
            );
            if let Some(t) = auto.switched_at.get() {
                log_switch_to_bdf(log_path, t)?;
            }
            result
        }
        (Interface::Me, Solver::Euler) => {
            let euler = euler(job)?;
            F::model_exchange(
                &settings,
                &reporting(&euler, progress),
                input,
                recorder.clone(),
            )
        }
    };
    result?;
    let recorder = Arc::try_unwrap(recorder)
        .map_err(|_| EngineError::Simulation("the recorder is still in use".into()))?;
    let (time, rows) = F::recorded(recorder);
    let mut columns = empty_columns(job, time.len());
    let ranges = column_ranges(job);
    for row in &rows {
        for ((value, range), name) in row.iter().zip(&ranges).zip(&job.outputs) {
            F::append(value, &mut columns[range.clone()])
                .map_err(|found| size_mismatch(name, found, range.len()))?;
        }
        if row.len() != ranges.len() {
            return Err(EngineError::Simulation(format!(
                "a recorded row has {} values for {} outputs",
                row.len(),
                ranges.len()
            )));
        }
    }
    Ok((time, columns))
}

/// Told each case of a batch as it ends: the case, the length of the FMU's log when it
/// began, and its result; answers whether to go on.
pub type ReportCase<'a> = dyn FnMut(&Case, u64, Result<SimOutput, EngineError>) -> bool + 'a;

/// Runs every case of `batch` (each is `job` with the case's start values) in this process,
/// handing each result to `report` as the case ends, with the length the FMU's log had when
/// the case began (its log is what follows). `report` returns `false` to stop (nobody is
/// listening). Returns whether the cases reused one instance (reset between cases): the fast
/// Co-Simulation loop, without states or the call log; otherwise each case instantiates its
/// own (Model Exchange, fmi-rs's driver). `Err` when no case can run (the model description
/// or the outputs are wrong for every case alike); nothing has been reported then.
pub fn simulate_batch(
    job: &Job,
    batch: &Batch,
    report: &mut ReportCase<'_>,
) -> Result<bool, EngineError> {
    let (md_path, log_path) = paths(job);
    match peek_fmi_major_version(&md_path)? {
        FMIMajorVersion::V3 => run_batch::<Fmi3>(job, batch, &md_path, &log_path, report),
        FMIMajorVersion::V2 => run_batch::<Fmi2>(job, batch, &md_path, &log_path, report),
    }
}

fn run_batch<F: FmiVersion>(
    job: &Job,
    batch: &Batch,
    md_path: &Path,
    log_path: &Path,
    report: &mut ReportCase<'_>,
) -> Result<bool, EngineError> {
    let prepared = prepare::<F>(job, md_path)?;
    let mut case_job = job.clone();
    let warm = reuses_instances::<F>(job, batch, &prepared.md);
    let mut fmu: Option<F::Instance> = None;
    let ignored = super::progress::ignored();
    for case in &batch.cases {
        case_job.start_values = case.start_values(&job.start_values);
        let (log_start, result) = if warm {
            // A fresh instance starts a fresh log.
            let log_start = match fmu {
                Some(_) => std::fs::metadata(log_path).map_or(0, |m| m.len()),
                None => 0,
            };
            let result = warm_case::<F>(&mut fmu, &case_job, &prepared, log_path);
            (
                log_start,
                result.and_then(|series| finish(&case_job, series, None)),
            )
        } else {
            let result = run::<F>(&case_job, md_path, log_path, &ignored)
                .and_then(|(series, state)| finish(&case_job, series, state));
            (0, result)
        };
        if !report(case, log_start, result) {
            break;
        }
    }
    Ok(warm)
}

/// Whether every case of the batch can run on one instance, reset between cases: the fast
/// Co-Simulation loop runs each of them, and none needs what a reset would not repeat
/// (restoring a state, saving one, the call log of each case's calls).
fn reuses_instances<F: FmiVersion>(job: &Job, batch: &Batch, md: &F::Description) -> bool {
    if job.interface != Interface::Cs
        || job.initial_state.is_some()
        || job.save_final_state
        || job.log_fmi_calls
    {
        return false;
    }
    let mut case_job = job.clone();
    batch.cases.iter().all(|case| {
        case_job.start_values = case.start_values(&job.start_values);
        cs_loop::fits::<F>(md, &case_job)
    })
}

/// One case on the batch's instance: reset after the case before it, or instantiated when
/// there is none (the first case, or the one before failed: an instance is never used again
/// after an error, whatever state it was left in).
fn warm_case<F: FmiVersion>(
    fmu: &mut Option<F::Instance>,
    job: &Job,
    prepared: &Prepared<F>,
    log_path: &Path,
) -> Result<Series, EngineError> {
    let instance = match fmu.take() {
        Some(instance) if F::reset(&instance).is_ok() => instance,
        // A failed reset frees that instance; the case gets a new one.
        _ => F::instantiate(job, &prepared.md, log_path)?,
    };
    let ran = cs_loop::simulate_on::<F>(
        &instance,
        job,
        &prepared.md,
        &prepared.outputs,
        prepared.input.as_deref(),
        &super::progress::ignored(),
    )?;
    *fmu = Some(instance);
    Ok(ran.0)
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
        for side in [Side::Left, Side::Right] {
            assert_eq!(sample(&s, 0.5, true, side), 1.0);
            assert_eq!(sample(&s, 2.0, true, side), 1.0);
            assert_eq!(sample(&s, 1.0, true, side), 2.0);
            assert_eq!(sample(&s, 0.5, false, side), 0.0);
            assert_eq!(sample(&s, 2.0, false, side), 2.0);
            assert_eq!(sample(&s, -1.0, true, side), 0.0);
            assert_eq!(sample(&s, 9.0, true, side), 0.0);
        }
        // A discrete input changes at its point: the old value just before it.
        assert_eq!(sample(&s, 1.0, false, Side::Left), 0.0);
        assert_eq!(sample(&s, 1.0, false, Side::Right), 2.0);
    }

    /// A repeated time is a step: the first value just before it, the last from it on; on
    /// either side of it the signal interpolates towards (or from) the value on that side.
    #[test]
    fn a_repeated_time_is_a_step_from_the_left_value_to_the_right_one() {
        let s = signal(&[0.0, 1.0, 1.0, 2.0], &[0.0, 0.0, 1.0, 3.0]);
        for continuous in [true, false] {
            assert_eq!(sample(&s, 1.0, continuous, Side::Left), 0.0);
            assert_eq!(sample(&s, 1.0, continuous, Side::Right), 1.0);
            assert_eq!(sample(&s, 0.5, continuous, Side::Right), 0.0);
        }
        assert_eq!(sample(&s, 1.5, true, Side::Left), 2.0);
        assert_eq!(sample(&s, 1.5, false, Side::Left), 1.0);
        // A step at the first or the last point.
        let s = signal(&[0.0, 0.0], &[1.0, 2.0]);
        assert_eq!(sample(&s, 0.0, true, Side::Left), 1.0);
        assert_eq!(sample(&s, 0.0, true, Side::Right), 2.0);
        assert_eq!(sample(&s, 5.0, true, Side::Left), 2.0);
    }

    #[test]
    fn the_table_holds_a_step_twice_and_never_begins_or_ends_with_one() {
        use Side::{Left, Right};
        let step = signal(&[0.0, 1.0, 1.0, 2.0], &[0.0, 0.0, 1.0, 1.0]);
        assert_eq!(
            table_rows(std::slice::from_ref(&step), 0.0),
            [(0.0, Right), (1.0, Left), (1.0, Right), (2.0, Right)]
        );
        // At the start time the run starts with the right value: no left row.
        assert_eq!(
            table_rows(std::slice::from_ref(&step), 1.0),
            [(0.0, Right), (1.0, Right), (2.0, Right)]
        );
        // A step at either end, or a single point, gets a row beyond it.
        let ends = signal(&[1.0, 1.0], &[0.0, 1.0]);
        assert_eq!(
            table_rows(&[ends], 0.0),
            [(0.0, Right), (1.0, Left), (1.0, Right), (2.0, Right)]
        );
        assert_eq!(
            table_rows(&[signal(&[-4.0], &[1.0])], 0.0),
            [(-4.0, Right), (0.0, Right)]
        );
        // Steps of two signals at one time share their rows.
        let other = InputSignal {
            name: "k".into(),
            ..signal(&[0.5, 1.0, 1.0], &[2.0, 2.0, 3.0])
        };
        assert_eq!(
            table_rows(&[step, other], 0.0),
            [
                (0.0, Right),
                (0.5, Right),
                (1.0, Left),
                (1.0, Right),
                (2.0, Right)
            ]
        );
    }

    /// The fast loop and fmi-rs's own driver run every demo model (FMI 2 and 3; Integrator
    /// with a continuous and a discrete input whose changes and steps fall between output
    /// points, so variable communication steps and the step counting are exercised) and must
    /// give the same time points and values to the bit. Tolerance zero: both make the same
    /// FMU calls with the same arguments in the same order on a deterministic model, so any
    /// difference at all means the fast loop has drifted from fmi-rs.
    #[test]
    fn the_fast_loop_agrees_with_fmi_rs_on_every_demo_model() {
        use crate::fmi::archive::{self, MODEL_DESCRIPTION};
        use crate::fmi::{describe, library::DEMO_FMUS};
        use crate::sim::plan::{RunSettings, plan};

        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("fmu.log");
        let mut compared = Vec::new();
        for (model, version, bytes) in DEMO_FMUS {
            let dir = tmp.path().join(format!("{model}-{version}"));
            let file = dir.with_extension("fmu");
            std::fs::write(&file, bytes).unwrap();
            archive::extract(&file, &dir, &archive::Limits::default()).unwrap();
            let info = describe::describe(&dir).unwrap();
            let inputs = if *model == "Integrator" {
                vec![
                    // Steps (a repeated time) in both, between output points.
                    InputSignal {
                        name: "u".into(),
                        t: vec![0.0, 0.35, 0.35, 1.25],
                        u: vec![0.0, 1.0, 0.5, -2.0],
                    },
                    InputSignal {
                        name: "k".into(),
                        t: vec![0.0, 0.55, 0.55, 1.45],
                        u: vec![1.0, 1.0, 3.0, 2.0],
                    },
                ]
            } else {
                Vec::new()
            };
            let settings = RunSettings {
                interface: Some(Interface::Cs),
                stop_time: Some(2.0),
                output_interval: Some(0.1),
                inputs,
                ..Default::default()
            };
            let job = plan(&info, &dir, &settings).unwrap();
            let md_path = dir.join(MODEL_DESCRIPTION);
            let (fast, driver) = if version.starts_with('3') {
                both_loops::<Fmi3>(&job, &md_path, &log)
            } else {
                both_loops::<Fmi2>(&job, &md_path, &log)
            };
            let case = format!("{model} FMI {version}");
            assert!(driver.0.len() > 20, "{case}: {} points", driver.0.len());
            assert!(
                same(&fast.0, &driver.0),
                "{case}: time points\nfast:   {:?}\ndriver: {:?}",
                fast.0,
                driver.0
            );
            assert_eq!(fast.1.len(), driver.1.len(), "{case}: columns");
            for (f, d) in fast.1.iter().zip(&driver.1) {
                assert_eq!(f.name, d.name, "{case}");
                assert!(
                    same_values(&f.values, &d.values),
                    "{case}: {}\nfast:   {:?}\ndriver: {:?}",
                    f.name,
                    f.values,
                    d.values
                );
            }
            compared.push(case);
        }
        // Every library model, in both versions (Feedthrough with every type, StateSpace
        // with arrays).
        assert_eq!(compared.len(), DEMO_FMUS.len(), "{compared:?}");
    }

    /// Equal columns: floats to the bit, other values exactly.
    fn same_values(a: &Values, b: &Values) -> bool {
        match (a, b) {
            (Values::Float(a), Values::Float(b)) => same(a, b),
            _ => a == b,
        }
    }

    /// The job run by the fast loop and by fmi-rs's driver.
    fn both_loops<F: FmiVersion>(job: &Job, md_path: &Path, log: &Path) -> (Series, Series) {
        let p = prepare::<F>(job, md_path).unwrap();
        let ignored = super::super::progress::ignored();
        let (fast, _) =
            cs_loop::run::<F>(job, &p.md, &p.outputs, p.input.as_deref(), log, &ignored)
                .unwrap()
                .expect("the fast loop takes every demo model");
        let driver = with_driver(job, prepare::<F>(job, md_path).unwrap(), log, &ignored).unwrap();
        (fast, driver)
    }

    /// Equal to the bit (so NaN equals NaN and 0.0 differs from -0.0).
    fn same(a: &[f64], b: &[f64]) -> bool {
        a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
    }

    #[test]
    fn input_times_are_the_sorted_union() {
        let a = signal(&[0.0, 2.0], &[0.0, 0.0]);
        let b = signal(&[1.0, 2.0], &[0.0, 0.0]);
        let times: Vec<f64> = table_rows(&[a, b], 0.0).iter().map(|r| r.0).collect();
        assert_eq!(times, vec![0.0, 1.0, 2.0]);
    }
}
