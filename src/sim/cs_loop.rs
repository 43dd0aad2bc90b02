//! A lean Co-Simulation loop for the common case: every recorded variable a scalar Float64
//! (FMI 3) or Real (FMI 2), no event mode.
//!
//! It makes the same calls in the same order as fmi-rs's `cs::simulate` without event mode
//! (start values, initialisation with inputs, then set inputs → doStep → record), but reads
//! all outputs with one `get` call into columns that were sized up front, instead of
//! allocating a row of boxed values per step. On the cheapest models that per-step
//! bookkeeping cost several times the model itself (benches/engine.rs). Anything this loop
//! does not handle goes to fmi-rs's driver, so behaviour never depends on which one ran
//! (`engine::tests::the_fast_loop_agrees_with_fmi_rs_on_every_demo_model` checks it). Written
//! once for FMI 2 and 3 over [`FmiVersion`].

use std::path::Path;

use fmi_rs::sim::{next_communication_point, next_regular_point, relative_eq, relative_lt};

use super::engine::{EngineError, Series};
use super::fmi_version::FmiVersion;
use super::protocol::{Column, Job};

/// Preallocated output columns, filled one time point at a time.
struct Columns {
    time: Vec<f64>,
    values: Vec<Vec<f64>>,
    buffer: Vec<f64>,
}

impl Columns {
    fn new(job: &Job, count: usize) -> Columns {
        let points = (((job.stop_time - job.start_time)
            / job.step_size.unwrap_or(job.output_interval))
        .ceil() as usize)
            .saturating_add(2);
        let points = points.min(super::engine::MAX_VALUES);
        Columns {
            time: Vec::with_capacity(points),
            values: (0..count).map(|_| Vec::with_capacity(points)).collect(),
            buffer: vec![0.0; count],
        }
    }

    fn push(&mut self, time: f64) {
        self.time.push(time);
        for (column, v) in self.values.iter_mut().zip(&self.buffer) {
            column.push(*v);
        }
    }

    fn finish(self, names: Vec<String>) -> Series {
        let columns = names
            .into_iter()
            .zip(self.values)
            .map(|(name, values)| Column { name, values })
            .collect();
        (self.time, columns)
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

/// Runs the job with the fast loop. `Ok(None)`: not the common case, use fmi-rs's driver.
pub(super) fn run<F: FmiVersion>(
    job: &Job,
    md: &F::Description,
    outputs: &[usize],
    input: Option<&F::Input>,
    log_path: &Path,
) -> Result<Option<Series>, EngineError> {
    let Some(variable_steps) = F::variable_steps(md) else {
        return Ok(None);
    };
    if !F::fast_loop_fits(md, job, outputs) {
        return Ok(None);
    }
    let fmu = F::instantiate(job, md, log_path)?;
    for (name, literal) in &job.start_values {
        F::set_start_value(&fmu, md, name, literal)?;
    }
    let mut time = job.start_time;
    F::enter_initialization(&fmu, job)?;
    if let Some(input) = input {
        F::set_inputs(input, time, &fmu)?;
    }
    F::exit_initialization(&fmu)?;

    let vrs: Vec<u32> = outputs.iter().map(|&i| F::value_reference(md, i)).collect();
    let mut columns = Columns::new(job, vrs.len());
    F::get_reals(&fmu, &vrs, &mut columns.buffer)?;
    columns.push(time);
    let h = job.step_size.unwrap_or(job.output_interval);
    let mut n_steps = 0i32;
    while relative_lt(time, job.stop_time, job.tolerance) {
        let input_event = input.and_then(|i| F::next_input_event(i, time));
        let (regular, next) = next_point(job, h, n_steps, input_event, variable_steps)?;
        if let Some(input) = input {
            F::set_inputs(input, time, &fmu)?;
        }
        let step = F::do_step(&fmu, time, next)?;
        time = step.time;
        let counted_at = if F::STEP_COUNTED_AT_REGULAR_POINT {
            regular
        } else {
            next
        };
        if relative_eq(time, counted_at, job.tolerance) {
            n_steps = n_steps.saturating_add(1);
        }
        F::get_reals(&fmu, &vrs, &mut columns.buffer)?;
        columns.push(time);
        if step.terminate {
            break;
        }
    }
    F::terminate(&fmu)?;
    let names = outputs
        .iter()
        .map(|&i| F::name(md, i).to_string())
        .collect();
    Ok(Some(columns.finish(names)))
}
