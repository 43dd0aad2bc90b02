//! What differs between FMI 2 and FMI 3 for the simulation engine, behind one trait, so the
//! engine (`engine.rs`) and the Co-Simulation fast loop (`cs_loop.rs`) are each written once.
//!
//! Each method is a thin mapping onto fmi-rs's types and calls for one version; no algorithm
//! lives here. Static dispatch: the generic code compiles to the same calls as before.

// fmi-rs's drivers take the recorder as `Arc<Recorder>` although it holds `RefCell`s; it is
// only ever used on this one thread.
#![allow(clippy::arc_with_non_send_sync)]

use std::path::Path;
use std::sync::Arc;

use fmi_rs::model_description::ModelDescriptionError;
use fmi_rs::sim::SimulationError;
use fmi_rs::sim::solver::SolverFactory;
use fmi_rs::sim::{fmi2 as sim2, fmi3 as sim3};

use super::engine::{EngineError, InputTable};
use super::protocol::{Column, Job};

/// A Co-Simulation step's outcome: the time reached and whether the FMU asked to stop.
pub(super) struct Step {
    pub time: f64,
    pub terminate: bool,
}

/// One version of the FMI standard as the engine sees it.
pub(super) trait FmiVersion {
    /// The parsed `modelDescription.xml`.
    type Description;
    /// A value in fmi-rs's input table.
    type Value;
    /// fmi-rs's input table, which sets the inputs on an instance.
    type Input;
    /// fmi-rs's recorder for its own drivers.
    type Recorder;
    /// fmi-rs's driver settings.
    type Settings;
    /// A Co-Simulation instance, for the fast loop.
    type Instance;

    /// fmi-rs's FMI 2 driver counts an output step when the communication point is reached,
    /// its FMI 3 driver when the regular output point is; the fast loop does as the driver of
    /// its version does, so both produce the same time points.
    const STEP_COUNTED_AT_REGULAR_POINT: bool;

    // The model description.

    fn read(md_path: &Path) -> Result<Self::Description, ModelDescriptionError>;
    fn index(md: &Self::Description, name: &str) -> Option<usize>;
    fn name(md: &Self::Description, index: usize) -> &str;
    fn value_reference(md: &Self::Description, index: usize) -> u32;
    /// Whether the variable is continuous (inputs interpolate) rather than discrete (hold).
    fn continuous(md: &Self::Description, index: usize) -> bool;
    /// An input sample `u` in the variable's type; an error naming `name` for a type an input
    /// cannot have.
    fn input_value(
        md: &Self::Description,
        index: usize,
        name: &str,
        u: f64,
    ) -> Result<Self::Value, EngineError>;
    fn input(
        md: &Arc<Self::Description>,
        table: InputTable<Self::Value>,
        tolerance: f64,
    ) -> Self::Input;

    // fmi-rs's drivers.

    fn recorder(md: &Arc<Self::Description>, outputs: Vec<usize>) -> Self::Recorder;
    fn settings(
        job: &Job,
        md: &Arc<Self::Description>,
        output_interval: f64,
        log_path: &Path,
    ) -> Self::Settings;
    fn co_simulation(
        settings: &Self::Settings,
        input: Option<Arc<Self::Input>>,
        recorder: Arc<Self::Recorder>,
    ) -> Result<(), SimulationError>;
    fn model_exchange<F: SolverFactory>(
        settings: &Self::Settings,
        solver: &F,
        input: Option<Arc<Self::Input>>,
        recorder: Arc<Self::Recorder>,
    ) -> Result<(), SimulationError>;
    /// The recorded time points and columns; an error for a value that is not a number.
    fn recorded(recorder: Self::Recorder) -> Result<(Vec<f64>, Vec<Column>), EngineError>;

    // The fast loop's calls.

    /// `Some(can take variable communication steps)` for a Co-Simulation model.
    fn variable_steps(md: &Self::Description) -> Option<bool>;
    /// Whether the fast loop can run this job: every output a scalar real it reads with one
    /// call, and nothing only fmi-rs's driver handles.
    fn fast_loop_fits(md: &Self::Description, job: &Job, outputs: &[usize]) -> bool;
    fn instantiate(
        job: &Job,
        md: &Self::Description,
        log_path: &Path,
    ) -> Result<Self::Instance, EngineError>;
    fn set_start_value(
        fmu: &Self::Instance,
        md: &Self::Description,
        name: &str,
        literal: &str,
    ) -> Result<(), EngineError>;
    /// Enters initialisation mode with the job's tolerance, start and stop time.
    fn enter_initialization(fmu: &Self::Instance, job: &Job) -> Result<(), SimulationError>;
    fn exit_initialization(fmu: &Self::Instance) -> Result<(), SimulationError>;
    fn next_input_event(input: &Self::Input, time: f64) -> Option<f64>;
    /// Sets the discrete and the continuous inputs at `time`.
    fn set_inputs(
        input: &Self::Input,
        time: f64,
        fmu: &Self::Instance,
    ) -> Result<(), SimulationError>;
    fn get_reals(
        fmu: &Self::Instance,
        vrs: &[u32],
        values: &mut [f64],
    ) -> Result<(), SimulationError>;
    fn do_step(fmu: &Self::Instance, time: f64, next: f64) -> Result<Step, SimulationError>;
    fn terminate(fmu: &Self::Instance) -> Result<(), SimulationError>;
}

/// FMI 2.0.
pub(super) struct Fmi2;

/// FMI 3.0.
pub(super) struct Fmi3;

/// fmi-rs's FMI 2 `call` is private; this one also says which status came back.
fn call2(
    status: fmi_rs::fmi2::types::fmi2Status,
) -> Result<fmi_rs::fmi2::types::fmi2Status, SimulationError> {
    use fmi_rs::fmi2::types::fmi2Status;
    match status {
        fmi2Status::Ok | fmi2Status::Warning => Ok(status),
        other => Err(SimulationError::Parameter(format!(
            "an FMI call returned {other:?}"
        ))),
    }
}

fn fmu_log(e: impl std::fmt::Display) -> EngineError {
    EngineError::Simulation(format!("the FMU log: {e}"))
}

fn start_value_error(name: &str, e: SimulationError) -> EngineError {
    EngineError::Request(format!("start value for '{name}': {e}"))
}

impl Fmi2 {
    /// Sets one value (fmi-rs's FMI 2 setter checks the status itself and returns it).
    fn set_value(
        fmu: &<Self as FmiVersion>::Instance,
        vr: u32,
        value: &sim2::VariableValue,
    ) -> Result<(), SimulationError> {
        sim2::set_variable_value(fmu, vr, value).map(drop)
    }

    /// A recorded value as a number (every FMI 2 value is a scalar).
    fn number(v: &sim2::VariableValue) -> Option<f64> {
        v.to_f64()
    }
}

impl Fmi3 {
    /// Sets one value (fmi-rs's FMI 3 setter returns the status, checked here).
    fn set_value(
        fmu: &<Self as FmiVersion>::Instance,
        vr: u32,
        value: &sim3::VariableValue,
    ) -> Result<(), SimulationError> {
        sim3::call(sim3::set_variable_value(fmu, vr, value)).map(drop)
    }

    /// A recorded value as a number: the first element (the recorder keeps arrays too).
    fn number(v: &sim3::VariableValue) -> Option<f64> {
        v.as_f64().and_then(|v| v.first().copied())
    }
}

/// The part of [`FmiVersion`] whose code is the same for both versions but for the module it
/// names: fmi-rs gives each version its own modules (`fmi_rs::sim::fmi2`/`fmi3`,
/// `fmi_rs::model_description::fmi2`/`fmi3`) of same-named types with no trait over them, so
/// this text is written once and expanded in each impl with that version's modules (and the
/// driver settings only FMI 3 has).
macro_rules! same_in_both_versions {
    ($sim:ident, $md:ident, settings { $($setting:ident: $value:expr),* $(,)? }) => {
        type Description = fmi_rs::model_description::$md::ModelDescription;
        type Value = $sim::VariableValue;
        type Input = $sim::input::StaticInput;
        type Recorder = $sim::recorder::Recorder;
        type Settings = $sim::SimulationSettings;

        fn read(md_path: &Path) -> Result<Self::Description, ModelDescriptionError> {
            Self::Description::from_path(md_path)
        }

        fn index(md: &Self::Description, name: &str) -> Option<usize> {
            md.variable_index_by_name(name).ok()
        }

        fn name(md: &Self::Description, index: usize) -> &str {
            &md.modelVariables[index].name
        }

        fn value_reference(md: &Self::Description, index: usize) -> u32 {
            md.modelVariables[index].valueReference
        }

        fn continuous(md: &Self::Description, index: usize) -> bool {
            use fmi_rs::model_description::$md::Variability;
            md.modelVariables[index].variability == Variability::Continuous
        }

        fn input(
            md: &Arc<Self::Description>,
            table: InputTable<Self::Value>,
            tolerance: f64,
        ) -> Self::Input {
            let mut trajectories = $sim::Trajectories::new(md.clone(), table.indices);
            (trajectories.time, trajectories.rows) = (table.time, table.rows);
            $sim::input::StaticInput::new(trajectories, tolerance)
        }

        fn recorder(md: &Arc<Self::Description>, outputs: Vec<usize>) -> Self::Recorder {
            $sim::recorder::Recorder::new($sim::Trajectories::new(md.clone(), outputs))
        }

        fn settings(
            job: &Job,
            md: &Arc<Self::Description>,
            output_interval: f64,
            log_path: &Path,
        ) -> Self::Settings {
            $sim::SimulationSettings {
                unzipdir: job.fmu_dir.clone().into(),
                model_description: md.clone(),
                start_time: job.start_time,
                stop_time: job.stop_time,
                logging_on: true,
                set_stop_time: true,
                output_interval,
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
                $($setting: $value,)*
            }
        }

        fn recorded(recorder: Self::Recorder) -> Result<(Vec<f64>, Vec<Column>), EngineError> {
            let trajectories = recorder.into_trajectories();
            let names = trajectories.variables().map(|v| v.name.clone()).collect();
            let columns = super::engine::to_columns(names, &trajectories.rows, Self::number)?;
            Ok((trajectories.time, columns))
        }

        fn co_simulation(
            settings: &Self::Settings,
            input: Option<Arc<Self::Input>>,
            recorder: Arc<Self::Recorder>,
        ) -> Result<(), SimulationError> {
            $sim::cs::simulate(settings, input, recorder)
        }

        fn model_exchange<F: SolverFactory>(
            settings: &Self::Settings,
            solver: &F,
            input: Option<Arc<Self::Input>>,
            recorder: Arc<Self::Recorder>,
        ) -> Result<(), SimulationError> {
            $sim::me::simulate(settings, solver, input, recorder)
        }

        fn variable_steps(md: &Self::Description) -> Option<bool> {
            md.coSimulation
                .as_ref()
                .map(|cs| cs.canHandleVariableCommunicationStepSize)
        }

        fn set_start_value(
            fmu: &Self::Instance,
            md: &Self::Description,
            name: &str,
            literal: &str,
        ) -> Result<(), EngineError> {
            let var = md
                .variable_by_name(name)
                .map_err(|e| EngineError::Request(e.to_string()))?;
            let value = $sim::parse_variable_value(&var.variableType, literal)
                .map_err(|e| start_value_error(name, e))?;
            Self::set_value(fmu, var.valueReference, &value)?;
            Ok(())
        }

        fn next_input_event(input: &Self::Input, time: f64) -> Option<f64> {
            input.next_event_time(time)
        }

        fn set_inputs(
            input: &Self::Input,
            time: f64,
            fmu: &Self::Instance,
        ) -> Result<(), SimulationError> {
            input.set_discrete_inputs(time, fmu)?;
            input.set_continuous_inputs(time, true, fmu)
        }
    };
}

impl FmiVersion for Fmi2 {
    same_in_both_versions!(sim2, fmi2, settings {});

    type Instance = Arc<fmi_rs::fmi2::FMU2<fmi_rs::fmi2::CS>>;

    const STEP_COUNTED_AT_REGULAR_POINT: bool = false;

    fn input_value(
        md: &Self::Description,
        index: usize,
        name: &str,
        u: f64,
    ) -> Result<Self::Value, EngineError> {
        use fmi_rs::model_description::fmi2::VariableType;
        use sim2::VariableValue as V;
        Ok(match &md.modelVariables[index].variableType {
            VariableType::Real { .. } => V::Real(u),
            VariableType::Integer { .. } | VariableType::Enumeration { .. } => {
                V::Integer(u.round() as i32)
            }
            VariableType::Boolean { .. } => V::Boolean(i32::from(u != 0.0)),
            VariableType::String { .. } => {
                return Err(EngineError::Request(format!("input '{name}' is a string")));
            }
        })
    }

    fn fast_loop_fits(md: &Self::Description, _job: &Job, outputs: &[usize]) -> bool {
        use fmi_rs::model_description::fmi2::VariableType;
        outputs
            .iter()
            .all(|&i| matches!(md.modelVariables[i].variableType, VariableType::Real { .. }))
    }

    fn instantiate(
        job: &Job,
        md: &Self::Description,
        log_path: &Path,
    ) -> Result<Self::Instance, EngineError> {
        use fmi_rs::fmi2::log::DefaultLogger;
        let Some(cs) = md.coSimulation.as_ref() else {
            return Err(SimulationError::InterfaceType.into());
        };
        let logger = Arc::new(DefaultLogger::from_path(log_path).map_err(fmu_log)?);
        fmi_rs::fmi2::FMU2::<fmi_rs::fmi2::CS>::new(
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
        .map_err(EngineError::from)
    }

    fn enter_initialization(fmu: &Self::Instance, job: &Job) -> Result<(), SimulationError> {
        call2(fmu.setupExperiment(Some(job.tolerance), job.start_time, Some(job.stop_time)))?;
        call2(fmu.enterInitializationMode())?;
        Ok(())
    }

    fn exit_initialization(fmu: &Self::Instance) -> Result<(), SimulationError> {
        call2(fmu.exitInitializationMode()).map(drop)
    }

    fn get_reals(
        fmu: &Self::Instance,
        vrs: &[u32],
        values: &mut [f64],
    ) -> Result<(), SimulationError> {
        call2(fmu.getReal(vrs, values)).map(drop)
    }

    /// A `Discard` is not an error: the FMU says how far it got and whether to stop.
    fn do_step(fmu: &Self::Instance, time: f64, next: f64) -> Result<Step, SimulationError> {
        use fmi_rs::fmi2::types::{fmi2Status, fmi2StatusKind};
        let status = fmu.doStep(time, next - time, 0);
        if status != fmi2Status::Discard {
            call2(status)?;
            return Ok(Step {
                time: next,
                terminate: false,
            });
        }
        let (mut reached, mut terminated) = (time, 0);
        call2(fmu.getRealStatus(&fmi2StatusKind::LastSuccessfulTime, &mut reached))?;
        call2(fmu.getBooleanStatus(&fmi2StatusKind::Terminated, &mut terminated))?;
        Ok(Step {
            time: reached,
            terminate: terminated != 0,
        })
    }

    fn terminate(fmu: &Self::Instance) -> Result<(), SimulationError> {
        call2(fmu.terminate()).map(drop)
    }
}

impl FmiVersion for Fmi3 {
    same_in_both_versions!(
        sim3,
        fmi3,
        settings {
            library_kind: fmi_rs::fmi3::LibraryKind::Native,
            enable_dae: false,
            visible: false,
            intermediate_update: false,
        }
    );

    type Instance = Arc<fmi_rs::fmi3::FMU3>;

    const STEP_COUNTED_AT_REGULAR_POINT: bool = true;

    fn input_value(
        md: &Self::Description,
        index: usize,
        name: &str,
        u: f64,
    ) -> Result<Self::Value, EngineError> {
        use fmi_rs::model_description::fmi3::VariableType;
        use sim3::VariableValue as V;
        Ok(match &md.modelVariables[index].variableType {
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
    }

    /// Structural parameters can change array sizes, which only fmi-rs's recorder follows.
    fn fast_loop_fits(md: &Self::Description, job: &Job, outputs: &[usize]) -> bool {
        use fmi_rs::model_description::fmi3::{Causality, VariableType};
        let scalar_float = |&i: &usize| {
            matches!(
                md.modelVariables[i].variableType,
                VariableType::Float64 { .. }
            ) && md.modelVariables[i].dimensions.is_empty()
        };
        let structural = job.start_values.iter().any(|(n, _)| {
            md.variable_by_name(n)
                .is_ok_and(|v| v.causality == Causality::StructuralParameter)
        });
        outputs.iter().all(scalar_float) && !structural
    }

    fn instantiate(
        job: &Job,
        md: &Self::Description,
        log_path: &Path,
    ) -> Result<Self::Instance, EngineError> {
        use fmi_rs::fmi3::log::DefaultLogger;
        use fmi_rs::fmi3::native::{NativeLibrary, PLATFORM_TUPLE};
        let Some(cs) = md.coSimulation.as_ref() else {
            return Err(SimulationError::InterfaceType.into());
        };
        let dir = Path::new(&job.fmu_dir);
        let library = NativeLibrary::load(
            dir.join("binaries")
                .join(PLATFORM_TUPLE)
                .join(format!("{}.so", cs.modelIdentifier)),
        )?;
        let resources = dir.join("resources");
        let logger = Arc::new(DefaultLogger::from_path(log_path).map_err(fmu_log)?);
        fmi_rs::fmi3::FMU3::instantiateCoSimulation(
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
        .map_err(EngineError::from)
    }

    fn enter_initialization(fmu: &Self::Instance, job: &Job) -> Result<(), SimulationError> {
        sim3::call(fmu.enterInitializationMode(
            Some(job.tolerance),
            job.start_time,
            Some(job.stop_time),
        ))
        .map(drop)
    }

    fn exit_initialization(fmu: &Self::Instance) -> Result<(), SimulationError> {
        sim3::call(fmu.exitInitializationMode()).map(drop)
    }

    fn get_reals(
        fmu: &Self::Instance,
        vrs: &[u32],
        values: &mut [f64],
    ) -> Result<(), SimulationError> {
        sim3::call(fmu.getFloat64(vrs, values)).map(drop)
    }

    fn do_step(fmu: &Self::Instance, time: f64, next: f64) -> Result<Step, SimulationError> {
        let (mut event, mut terminate, mut early, mut last) = (false, false, false, 0.0);
        sim3::call(fmu.doStep(
            time,
            next - time,
            true,
            &mut event,
            &mut terminate,
            &mut early,
            &mut last,
        ))?;
        Ok(Step {
            time: next,
            terminate,
        })
    }

    fn terminate(fmu: &Self::Instance) -> Result<(), SimulationError> {
        sim3::call(fmu.terminate()).map(drop)
    }
}
