//! A lean Co-Simulation loop for the common case: every recorded variable a scalar Float64
//! (FMI 3) or Real (FMI 2), no event mode.
//!
//! It makes the same calls in the same order as fmi-rs's `cs::simulate` without event mode
//! (start values, initialisation with inputs, then set inputs → doStep → record), but reads
//! all outputs with one `get` call into columns that were sized up front, instead of
//! allocating a row of boxed values per step. On the cheapest models that per-step
//! bookkeeping cost several times the model itself (benches/engine.rs). Anything this loop
//! does not handle goes to fmi-rs's driver, so behaviour never depends on which one ran.

use std::path::Path;
use std::sync::Arc;

use fmi_rs::sim::{
    SimulationError, next_communication_point, next_regular_point, relative_eq, relative_lt,
};

use super::engine::EngineError;
use super::protocol::{Column, Job};

type Series = (Vec<f64>, Vec<Column>);

fn failed(e: SimulationError) -> EngineError {
    EngineError::Simulation(e.to_string())
}

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
    let regular = next_regular_point(false, job.start_time, h, n_steps).map_err(failed)?;
    let next = if variable_steps {
        next_communication_point(regular, input_event, None, job.stop_time, job.tolerance)
    } else {
        regular
    };
    Ok((regular, next))
}

/// FMI 3. `Ok(None)`: not the common case, use fmi-rs's driver.
pub fn fmi3(
    job: &Job,
    md: &Arc<fmi_rs::model_description::fmi3::ModelDescription>,
    outputs: &[usize],
    input: Option<&fmi_rs::sim::fmi3::input::StaticInput>,
    log_path: &Path,
) -> Result<Option<Series>, EngineError> {
    use fmi_rs::fmi3::FMU3;
    use fmi_rs::fmi3::log::DefaultLogger;
    use fmi_rs::fmi3::native::{NativeLibrary, PLATFORM_TUPLE};
    use fmi_rs::model_description::fmi3::{Causality, VariableType};
    use fmi_rs::sim::fmi3::{call, parse_variable_value, set_variable_value};

    let Some(cs) = md.coSimulation.as_ref() else {
        return Ok(None);
    };
    let scalar_float = |i: &usize| {
        matches!(
            md.modelVariables[*i].variableType,
            VariableType::Float64 { .. }
        ) && md.modelVariables[*i].dimensions.is_empty()
    };
    let structural = job.start_values.iter().any(|(n, _)| {
        md.variable_by_name(n)
            .is_ok_and(|v| v.causality == Causality::StructuralParameter)
    });
    if !outputs.iter().all(scalar_float) || structural {
        return Ok(None);
    }
    let dir = Path::new(&job.fmu_dir);
    let library = NativeLibrary::load(
        dir.join("binaries")
            .join(PLATFORM_TUPLE)
            .join(format!("{}.so", cs.modelIdentifier)),
    )
    .map_err(failed)?;
    let resources = dir.join("resources");
    let logger = Arc::new(
        DefaultLogger::from_path(log_path)
            .map_err(|e| EngineError::Simulation(format!("the FMU log: {e}")))?,
    );
    let fmu = FMU3::instantiateCoSimulation(
        Box::new(library),
        resources.is_dir().then_some(resources.as_path()),
        &md.modelName,
        &md.instantiationToken,
        false,
        true,
        false,
        false,
        logger,
        false,
        None,
    )
    .map_err(failed)?;
    for (name, literal) in &job.start_values {
        let var = md
            .variable_by_name(name)
            .map_err(|e| EngineError::Request(e.to_string()))?;
        let value = parse_variable_value(&var.variableType, literal)
            .map_err(|e| EngineError::Request(format!("start value for '{name}': {e}")))?;
        call(set_variable_value(&fmu, var.valueReference, &value)).map_err(failed)?;
    }
    let mut time = job.start_time;
    call(fmu.enterInitializationMode(Some(job.tolerance), time, Some(job.stop_time)))
        .map_err(failed)?;
    if let Some(input) = input {
        input.set_discrete_inputs(time, &fmu).map_err(failed)?;
        input
            .set_continuous_inputs(time, true, &fmu)
            .map_err(failed)?;
    }
    call(fmu.exitInitializationMode()).map_err(failed)?;

    let vrs: Vec<u32> = outputs
        .iter()
        .map(|&i| md.modelVariables[i].valueReference)
        .collect();
    let mut columns = Columns::new(job, vrs.len());
    call(fmu.getFloat64(&vrs, &mut columns.buffer)).map_err(failed)?;
    columns.push(time);
    let h = job.step_size.unwrap_or(job.output_interval);
    let mut n_steps = 0i32;
    while relative_lt(time, job.stop_time, job.tolerance) {
        let input_event = input.and_then(|i| i.next_event_time(time));
        let (regular, next) = next_point(
            job,
            h,
            n_steps,
            input_event,
            cs.canHandleVariableCommunicationStepSize,
        )?;
        if let Some(input) = input {
            input.set_discrete_inputs(time, &fmu).map_err(failed)?;
            input
                .set_continuous_inputs(time, true, &fmu)
                .map_err(failed)?;
        }
        let (mut event, mut terminate, mut early, mut last) = (false, false, false, 0.0);
        call(fmu.doStep(
            time,
            next - time,
            true,
            &mut event,
            &mut terminate,
            &mut early,
            &mut last,
        ))
        .map_err(failed)?;
        time = next;
        if relative_eq(time, regular, job.tolerance) {
            n_steps = n_steps.saturating_add(1);
        }
        call(fmu.getFloat64(&vrs, &mut columns.buffer)).map_err(failed)?;
        columns.push(time);
        if terminate {
            break;
        }
    }
    call(fmu.terminate()).map_err(failed)?;
    let names = outputs
        .iter()
        .map(|&i| md.modelVariables[i].name.clone())
        .collect();
    Ok(Some(columns.finish(names)))
}

/// FMI 2. `Ok(None)`: not the common case, use fmi-rs's driver.
pub fn fmi2(
    job: &Job,
    md: &Arc<fmi_rs::model_description::fmi2::ModelDescription>,
    outputs: &[usize],
    input: Option<&fmi_rs::sim::fmi2::input::StaticInput>,
    log_path: &Path,
) -> Result<Option<Series>, EngineError> {
    use fmi_rs::fmi2::log::DefaultLogger;
    use fmi_rs::fmi2::types::{fmi2Status, fmi2StatusKind};
    use fmi_rs::fmi2::{CS, FMU2};
    use fmi_rs::model_description::fmi2::VariableType;
    use fmi_rs::sim::fmi2::{parse_variable_value, set_variable_value};
    let call = |status: fmi2Status| match status {
        fmi2Status::Ok | fmi2Status::Warning => Ok(status),
        other => Err(SimulationError::Parameter(format!(
            "an FMI call returned {other:?}"
        ))),
    };

    let Some(cs) = md.coSimulation.as_ref() else {
        return Ok(None);
    };
    if !outputs
        .iter()
        .all(|&i| matches!(md.modelVariables[i].variableType, VariableType::Real { .. }))
    {
        return Ok(None);
    }
    let logger = Arc::new(
        DefaultLogger::from_path(log_path)
            .map_err(|e| EngineError::Simulation(format!("the FMU log: {e}")))?,
    );
    let fmu = FMU2::<CS>::new(
        Path::new(&job.fmu_dir),
        &cs.modelIdentifier,
        &md.modelName,
        &md.guid,
        false,
        true,
        false,
        logger,
        !cs.canNotUseMemoryManagementFunctions,
    )
    .map_err(failed)?;
    for (name, literal) in &job.start_values {
        let var = md
            .variable_by_name(name)
            .map_err(|e| EngineError::Request(e.to_string()))?;
        let value = parse_variable_value(&var.variableType, literal)
            .map_err(|e| EngineError::Request(format!("start value for '{name}': {e}")))?;
        set_variable_value(&fmu, var.valueReference, &value).map_err(failed)?;
    }
    let mut time = job.start_time;
    call(fmu.setupExperiment(Some(job.tolerance), time, Some(job.stop_time))).map_err(failed)?;
    call(fmu.enterInitializationMode()).map_err(failed)?;
    if let Some(input) = input {
        input.set_discrete_inputs(time, &fmu).map_err(failed)?;
        input
            .set_continuous_inputs(time, true, &fmu)
            .map_err(failed)?;
    }
    call(fmu.exitInitializationMode()).map_err(failed)?;

    let vrs: Vec<u32> = outputs
        .iter()
        .map(|&i| md.modelVariables[i].valueReference)
        .collect();
    let mut columns = Columns::new(job, vrs.len());
    call(fmu.getReal(&vrs, &mut columns.buffer)).map_err(failed)?;
    columns.push(time);
    let h = job.step_size.unwrap_or(job.output_interval);
    let mut n_steps = 0i32;
    while relative_lt(time, job.stop_time, job.tolerance) {
        let input_event = input.and_then(|i| i.next_event_time(time));
        let (_, next) = next_point(
            job,
            h,
            n_steps,
            input_event,
            cs.canHandleVariableCommunicationStepSize,
        )?;
        if let Some(input) = input {
            input.set_discrete_inputs(time, &fmu).map_err(failed)?;
            input
                .set_continuous_inputs(time, true, &fmu)
                .map_err(failed)?;
        }
        let status = fmu.doStep(time, next - time, 0);
        let mut terminated = 0;
        if status == fmi2Status::Discard {
            call(fmu.getRealStatus(&fmi2StatusKind::LastSuccessfulTime, &mut time))
                .map_err(failed)?;
            call(fmu.getBooleanStatus(&fmi2StatusKind::Terminated, &mut terminated))
                .map_err(failed)?;
        } else {
            call(status).map_err(failed)?;
            time = next;
        }
        if relative_eq(time, next, job.tolerance) {
            n_steps = n_steps.saturating_add(1);
        }
        call(fmu.getReal(&vrs, &mut columns.buffer)).map_err(failed)?;
        columns.push(time);
        if terminated != 0 {
            break;
        }
    }
    call(fmu.terminate()).map_err(failed)?;
    let names = outputs
        .iter()
        .map(|&i| md.modelVariables[i].name.clone())
        .collect();
    Ok(Some(columns.finish(names)))
}
