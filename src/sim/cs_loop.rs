//! A lean Co-Simulation loop for the common case: no event mode, no structural parameters.
//!
//! It makes the same calls in the same order as fmi-rs's `cs::simulate` without event mode
//! (start values, initialisation with inputs, then set inputs → doStep → record), but records
//! straight into columns that were sized up front, instead of allocating a row of boxed values
//! per step: when every output is a scalar real, with one `get` call for all of them. On the
//! cheapest models that per-step bookkeeping cost several times the model itself
//! (benches/engine.rs). Every get is checked (fmi-rs's recorder ignores a failed one, which
//! would record a zero). Anything this loop does not handle goes to fmi-rs's driver, so
//! behaviour never depends on which one ran
//! (`engine::tests::the_fast_loop_agrees_with_fmi_rs_on_every_demo_model` checks it). Written
//! once for FMI 2 and 3 over [`FmiVersion`].

use std::ops::Range;
use std::path::Path;

use fmi_rs::sim::{next_communication_point, next_regular_point, relative_eq, relative_lt};

use super::engine::{EngineError, Series, column_ranges, empty_columns};
use super::fmi_version::FmiVersion;
use super::fmu_state::SavedState;
use super::protocol::Job;
use super::recorded::{Column, Values};

/// Preallocated output columns, filled one time point at a time.
struct Columns {
    time: Vec<f64>,
    columns: Vec<Column>,
    /// Each output's element columns.
    ranges: Vec<Range<usize>>,
    /// When every output is a scalar real: their value references and a buffer for one
    /// `get` of them all.
    reals: Option<(Vec<u32>, Vec<f64>)>,
}

impl Columns {
    fn new<F: FmiVersion>(job: &Job, md: &F::Description, outputs: &[usize]) -> Columns {
        let points = (((job.stop_time - job.start_time)
            / job.step_size.unwrap_or(job.output_interval))
        .ceil() as usize)
            .saturating_add(2);
        let points = points.min(super::engine::MAX_VALUES);
        let reals = outputs.iter().all(|&i| F::is_scalar_real(md, i)).then(|| {
            let vrs: Vec<u32> = outputs.iter().map(|&i| F::value_reference(md, i)).collect();
            let buffer = vec![0.0; vrs.len()];
            (vrs, buffer)
        });
        Columns {
            time: Vec::with_capacity(points),
            columns: empty_columns(job, points),
            ranges: column_ranges(job),
            reals,
        }
    }

    /// Records every output at `time`.
    fn record<F: FmiVersion>(
        &mut self,
        fmu: &F::Instance,
        md: &F::Description,
        outputs: &[usize],
        time: f64,
    ) -> Result<(), EngineError> {
        if let Some((vrs, buffer)) = &mut self.reals {
            F::get_reals(fmu, vrs, buffer)?;
            for (column, v) in self.columns.iter_mut().zip(buffer.iter()) {
                if let Values::Float(c) = &mut column.values {
                    c.push(*v);
                }
            }
        } else {
            for (&i, range) in outputs.iter().zip(&self.ranges) {
                F::record(fmu, md, i, &mut self.columns[range.clone()])?;
            }
        }
        self.time.push(time);
        Ok(())
    }

    fn finish(self) -> Series {
        (self.time, self.columns)
    }
}

/// The next regular output point and the next communication point (earlier when an input
/// changes before it and the FMU can take variable steps), as fmusim computes them.
fn next_point(
    job: &Job,
    h: f64,
    n_steps: i32,
    input_event: Option<f64>,
    variable_steps: bool,
) -> Result<(f64, f64), EngineError> {
    let regular = next_regular_point(false, job.start_time, h, n_steps)?;
    let next = if variable_steps {
        next_communication_point(regular, input_event, None, job.stop_time, job.tolerance)
    } else {
        regular
    };
    Ok((regular, next))
}

/// Whether the fast loop can run the job: a Co-Simulation model and nothing only fmi-rs's
/// driver handles.
pub(super) fn fits<F: FmiVersion>(md: &F::Description, job: &Job) -> bool {
    F::variable_steps(md).is_some() && F::fast_loop_fits(md, job)
}

/// Runs the job with the fast loop: the results and, when the job asks for it, the state
/// after the last step. `Ok(None)`: not the common case, use fmi-rs's driver.
pub(super) fn run<F: FmiVersion>(
    job: &Job,
    md: &F::Description,
    outputs: &[usize],
    input: Option<&F::Input>,
    log_path: &Path,
    progress: &super::progress::Progress,
) -> Result<Option<(Series, Option<SavedState>)>, EngineError> {
    if !fits::<F>(md, job) {
        return Ok(None);
    }
    let fmu = F::instantiate(job, md, log_path)?;
    let ran = simulate_on::<F>(&fmu, job, md, outputs, input, progress)?;
    // Frees the instance (fmi-rs does when the last reference goes; for FMI 3 without
    // logging it).
    drop(fmu);
    if job.log_fmi_calls && !F::LOGS_FREE {
        super::call_log::note_free(log_path, F::CALL_PREFIX);
    }
    Ok(Some(ran))
}

/// Runs the job on `fmu`, freshly instantiated or reset (a batch's next case), and terminates
/// it; the caller frees it, or resets it for another case. A job [`fits`] the fast loop.
pub(super) fn simulate_on<F: FmiVersion>(
    fmu: &F::Instance,
    job: &Job,
    md: &F::Description,
    outputs: &[usize],
    input: Option<&F::Input>,
    progress: &super::progress::Progress,
) -> Result<(Series, Option<SavedState>), EngineError> {
    let variable_steps = F::variable_steps(md)
        .ok_or_else(|| EngineError::Simulation("not a Co-Simulation model".into()))?;
    // As fmusim does with an initial state: restore it right after instantiating, apply the
    // start values to it, and skip initialisation (the state is already past it).
    if let Some(state) = &job.initial_state {
        F::restore_state(fmu, &state.bytes)?;
    }
    for (name, literal) in &job.start_values {
        F::set_start_value(fmu, md, name, literal)?;
    }
    let mut time = job.start_time;
    if job.initial_state.is_none() {
        F::enter_initialization(fmu, job)?;
        if let Some(input) = input {
            F::set_inputs(input, time, fmu)?;
        }
        F::exit_initialization(fmu)?;
    }

    let mut columns = Columns::new::<F>(job, md, outputs);
    columns.record::<F>(fmu, md, outputs, time)?;
    let h = job.step_size.unwrap_or(job.output_interval);
    let mut n_steps = 0i32;
    while relative_lt(time, job.stop_time, job.tolerance) {
        let input_event = input.and_then(|i| F::next_input_event(i, time));
        let (regular, next) = next_point(job, h, n_steps, input_event, variable_steps)?;
        if let Some(input) = input {
            F::set_inputs(input, time, fmu)?;
        }
        let step = F::do_step(fmu, time, next)?;
        time = step.time;
        let counted_at = if F::STEP_COUNTED_AT_REGULAR_POINT {
            regular
        } else {
            next
        };
        if relative_eq(time, counted_at, job.tolerance) {
            n_steps = n_steps.saturating_add(1);
        }
        columns.record::<F>(fmu, md, outputs, time)?;
        progress(time);
        if step.terminate {
            break;
        }
    }
    let final_state = if job.save_final_state {
        let bytes = F::save_state(fmu)?;
        Some(SavedState { time, bytes })
    } else {
        None
    };
    F::terminate(fmu)?;
    Ok((columns.finish(), final_state))
}
