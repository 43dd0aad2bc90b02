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

use super::call_log::BoundedLogger;
use super::engine::{EngineError, InputTable};
use super::protocol::Job;
use super::recorded::{Column, Values};

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
    /// The prefix of the version's function names in the call log (`fmi2`, `fmi3`).
    const CALL_PREFIX: &'static str;
    /// Whether fmi-rs logs the freeing of an instance itself (FMI 2 does, FMI 3 does not).
    const LOGS_FREE: bool;

    // The model description.

    fn read(md_path: &Path) -> Result<Self::Description, ModelDescriptionError>;
    fn index(md: &Self::Description, name: &str) -> Option<usize>;
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
    /// The recorded time points and rows (one value per output).
    fn recorded(recorder: Self::Recorder) -> (Vec<f64>, Vec<Vec<Self::Value>>);
    /// Appends each element of `value` to its column (`columns`, one per element, in the
    /// storage of the output's type); `Err(elements found)` if it has another number of
    /// elements, or a type the columns do not hold.
    fn append(value: &Self::Value, columns: &mut [Column]) -> Result<(), usize>;
    /// Why fmi-rs's driver cannot set the job's start values as asked, if it cannot: its FMI 3
    /// start values are split at spaces, so a String with a space would arrive as another
    /// value.
    fn driver_cannot_set(job: &Job, md: &Self::Description) -> Option<String>;

    // The fast loop's calls.

    /// `Some(can take variable communication steps)` for a Co-Simulation model.
    fn variable_steps(md: &Self::Description) -> Option<bool>;
    /// Whether the fast loop can run this job: nothing only fmi-rs's driver handles.
    fn fast_loop_fits(md: &Self::Description, job: &Job) -> bool;
    /// Whether the variable is a scalar real, which the fast loop reads with one call for all.
    fn is_scalar_real(md: &Self::Description, index: usize) -> bool;
    /// Reads the variable's value (every element) and appends it to its columns.
    fn record(
        fmu: &Self::Instance,
        md: &Self::Description,
        index: usize,
        columns: &mut [Column],
    ) -> Result<(), EngineError>;
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
    /// Returns a terminated instance to the state it had just after instantiation
    /// (`fmi2Reset` / `fmi3Reset`), for the next case of a batch.
    fn reset(fmu: &Self::Instance) -> Result<(), SimulationError>;
    /// Gets and serialises the instance's state (fmusim's `--final-fmu-state-file`).
    fn save_state(fmu: &Self::Instance) -> Result<Vec<u8>, SimulationError>;
    /// Deserialises a state and sets the instance to it, instead of initialising it
    /// (fmusim's `--initial-fmu-state-file`).
    fn restore_state(fmu: &Self::Instance, bytes: &[u8]) -> Result<(), SimulationError>;
}

/// Why an FMI 3 String start value with a space cannot be set on a run that fmi-rs's driver
/// runs (Model Exchange, or structural parameters set): its parser splits literals at spaces.
pub const DRIVER_STRINGS: &str = "a String start value with spaces can only be set in a Co-Simulation run that sets no structural parameter (FMI 3)";

/// Whether `name` is an FMI 3 structural parameter.
fn structural(md: &fmi_rs::model_description::fmi3::ModelDescription, name: &str) -> bool {
    use fmi_rs::model_description::fmi3::Causality;
    md.variable_by_name(name)
        .is_ok_and(|v| v.causality == Causality::StructuralParameter)
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

/// `fmi3SetDebugLogging(true, categories)`.
fn enable_log_categories(
    fmu: &fmi_rs::fmi3::FMU3,
    categories: &[String],
) -> Result<(), EngineError> {
    let names: Vec<std::ffi::CString> = categories
        .iter()
        .map(|c| std::ffi::CString::new(c.as_str()))
        .collect::<Result<_, _>>()
        .map_err(|_| EngineError::Request("a log category contains a NUL byte".into()))?;
    let pointers: Vec<fmi_rs::fmi3::types::fmi3String> = names.iter().map(|n| n.as_ptr()).collect();
    sim3::call(fmu.setDebugLogging(true, &pointers))?;
    Ok(())
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

    /// A String start value is the whole literal, spaces and all.
    fn whole_string(
        var: &fmi_rs::model_description::fmi2::ScalarVariable,
        literal: &str,
    ) -> Option<sim2::VariableValue> {
        use fmi_rs::model_description::fmi2::VariableType;
        matches!(var.variableType, VariableType::String { .. })
            .then(|| sim2::VariableValue::String(literal.to_owned()))
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

    /// A scalar String start value is the whole literal, spaces and all (fmi-rs's parser
    /// splits every literal at spaces, for arrays).
    fn whole_string(
        var: &fmi_rs::model_description::fmi3::ModelVariable,
        literal: &str,
    ) -> Option<sim3::VariableValue> {
        use fmi_rs::model_description::fmi3::VariableType;
        (matches!(var.variableType, VariableType::String { .. }) && var.dimensions.is_empty())
            .then(|| sim3::VariableValue::String(vec![literal.to_owned()]))
    }
}

/// The part of [`FmiVersion`] whose code is the same for both versions but for the module it
/// names: fmi-rs gives each version its own modules (`fmi_rs::sim::fmi2`/`fmi3`,
/// `fmi_rs::model_description::fmi2`/`fmi3`) of same-named types with no trait over them, so
/// this text is written once and expanded in each impl with that version's modules (and the
/// driver settings only FMI 3 has).
macro_rules! same_in_both_versions {
    ($sim:ident, $md:ident, settings($job:ident) { $($setting:ident: $value:expr),* $(,)? }) => {
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
            $job: &Job,
            md: &Arc<Self::Description>,
            output_interval: f64,
            log_path: &Path,
        ) -> Self::Settings {
            let job = $job;
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
                early_return_allowed: job.cs_options.early_return_allowed,
                event_mode_used: job.cs_options.event_mode_used,
                log_file: Some(log_path.to_path_buf()),
                initial_fmu_state_file: None,
                final_fmu_state_file: None,
                $($setting: $value,)*
            }
        }

        fn recorded(recorder: Self::Recorder) -> (Vec<f64>, Vec<Vec<Self::Value>>) {
            let trajectories = recorder.into_trajectories();
            (trajectories.time, trajectories.rows)
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
            let value = match Self::whole_string(var, literal) {
                Some(value) => value,
                None => $sim::parse_variable_value(&var.variableType, literal)
                    .map_err(|e| start_value_error(name, e))?,
            };
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
    same_in_both_versions!(sim2, fmi2, settings(job) {});

    type Instance = Arc<fmi_rs::fmi2::FMU2<fmi_rs::fmi2::CS>>;

    const STEP_COUNTED_AT_REGULAR_POINT: bool = false;
    const CALL_PREFIX: &'static str = "fmi2";
    const LOGS_FREE: bool = true;

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

    fn fast_loop_fits(_md: &Self::Description, _job: &Job) -> bool {
        true
    }

    fn is_scalar_real(md: &Self::Description, index: usize) -> bool {
        use fmi_rs::model_description::fmi2::VariableType;
        matches!(
            md.modelVariables[index].variableType,
            VariableType::Real { .. }
        )
    }

    fn record(
        fmu: &Self::Instance,
        md: &Self::Description,
        index: usize,
        columns: &mut [Column],
    ) -> Result<(), EngineError> {
        use fmi_rs::model_description::fmi2::VariableType;
        use sim2::VariableValue as V;
        let var = &md.modelVariables[index];
        let vr = [var.valueReference];
        let value = match var.variableType {
            VariableType::Real { .. } => {
                let mut v = [0.0];
                call2(fmu.getReal(&vr, &mut v))?;
                V::Real(v[0])
            }
            VariableType::Integer { .. } | VariableType::Enumeration { .. } => {
                let mut v = [0];
                call2(fmu.getInteger(&vr, &mut v))?;
                V::Integer(v[0])
            }
            VariableType::Boolean { .. } => {
                let mut v = [0];
                call2(fmu.getBoolean(&vr, &mut v))?;
                V::Boolean(v[0])
            }
            VariableType::String { .. } => {
                let mut v = [String::new()];
                call2(fmu.getString(&vr, &mut v))?;
                V::String(std::mem::take(&mut v[0]))
            }
        };
        Self::append(&value, columns)
            .map_err(|found| super::engine::size_mismatch(&var.name, found, columns.len()))
    }

    fn append(value: &Self::Value, columns: &mut [Column]) -> Result<(), usize> {
        use sim2::VariableValue as V;
        let [column] = columns else {
            return Err(1);
        };
        match (value.clone(), &mut column.values) {
            (V::Real(x), Values::Float(c)) => c.push(x),
            (V::Integer(x), Values::Int(c)) => c.push(i64::from(x)),
            (V::Boolean(x), Values::Bool(c)) => c.push(x != 0),
            (V::String(x), Values::Text(c)) => c.push(x),
            _ => return Err(1),
        }
        Ok(())
    }

    /// fmi-rs's FMI 2 driver sets a String start value whole.
    fn driver_cannot_set(_job: &Job, _md: &Self::Description) -> Option<String> {
        None
    }

    fn instantiate(
        job: &Job,
        md: &Self::Description,
        log_path: &Path,
    ) -> Result<Self::Instance, EngineError> {
        let Some(cs) = md.coSimulation.as_ref() else {
            return Err(SimulationError::InterfaceType.into());
        };
        let logger = Arc::new(BoundedLogger::create(log_path).map_err(fmu_log)?);
        fmi_rs::fmi2::FMU2::<fmi_rs::fmi2::CS>::new(
            Path::new(&job.fmu_dir),
            &cs.modelIdentifier,
            &md.modelName,
            &md.guid,
            false,
            true,
            job.log_fmi_calls,
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

    fn reset(fmu: &Self::Instance) -> Result<(), SimulationError> {
        call2(fmu.reset()).map(drop)
    }

    fn save_state(fmu: &Self::Instance) -> Result<Vec<u8>, SimulationError> {
        super::fmu_state::fmi2::save(fmu)
    }

    fn restore_state(fmu: &Self::Instance, bytes: &[u8]) -> Result<(), SimulationError> {
        super::fmu_state::fmi2::restore(fmu, bytes)
    }
}

impl FmiVersion for Fmi3 {
    same_in_both_versions!(
        sim3,
        fmi3,
        settings(job) {
            library_kind: fmi_rs::fmi3::LibraryKind::Native,
            enable_dae: false,
            visible: false,
            intermediate_update: job.cs_options.intermediate_update,
        }
    );

    type Instance = Arc<fmi_rs::fmi3::FMU3>;

    const STEP_COUNTED_AT_REGULAR_POINT: bool = true;
    const CALL_PREFIX: &'static str = "fmi3";
    const LOGS_FREE: bool = false;

    fn input_value(
        md: &Self::Description,
        index: usize,
        name: &str,
        u: f64,
    ) -> Result<Self::Value, EngineError> {
        use fmi_rs::model_description::fmi3::VariableType;
        use sim3::VariableValue as V;
        // The plan has checked that a sample of an integer type is a whole number in the
        // type's range, so these conversions are exact.
        Ok(match &md.modelVariables[index].variableType {
            VariableType::Float64 { .. } => V::Float64(vec![u]),
            VariableType::Float32 { .. } => V::Float32(vec![u as f32]),
            VariableType::Int8 { .. } => V::Int8(vec![u as i8]),
            VariableType::UInt8 { .. } => V::UInt8(vec![u as u8]),
            VariableType::Int16 { .. } => V::Int16(vec![u as i16]),
            VariableType::UInt16 { .. } => V::UInt16(vec![u as u16]),
            VariableType::Int32 { .. } => V::Int32(vec![u as i32]),
            VariableType::UInt32 { .. } => V::UInt32(vec![u as u32]),
            VariableType::Int64 { .. } | VariableType::Enumeration { .. } => {
                V::Int64(vec![u as i64])
            }
            VariableType::UInt64 { .. } => V::UInt64(vec![u as u64]),
            VariableType::Boolean { .. } => V::Boolean(vec![u != 0.0]),
            _ => {
                return Err(EngineError::Request(format!(
                    "input '{name}' is not a number or Boolean"
                )));
            }
        })
    }

    /// Structural parameters are set in configuration mode, which only fmi-rs's driver
    /// enters.
    fn fast_loop_fits(md: &Self::Description, job: &Job) -> bool {
        !job.start_values.iter().any(|(n, _)| structural(md, n)) && job.cs_options.is_default()
    }

    fn is_scalar_real(md: &Self::Description, index: usize) -> bool {
        use fmi_rs::model_description::fmi3::VariableType;
        let var = &md.modelVariables[index];
        matches!(var.variableType, VariableType::Float64 { .. }) && var.dimensions.is_empty()
    }

    fn record(
        fmu: &Self::Instance,
        md: &Self::Description,
        index: usize,
        columns: &mut [Column],
    ) -> Result<(), EngineError> {
        use fmi_rs::model_description::fmi3::VariableType as T;
        use sim3::VariableValue as V;
        let var = &md.modelVariables[index];
        let vr = [var.valueReference];
        let n = columns.len();
        macro_rules! get {
            ($get:ident, $variant:ident, $zero:expr) => {{
                let mut v = vec![$zero; n];
                sim3::call(fmu.$get(&vr, &mut v))?;
                V::$variant(v)
            }};
        }
        let value = match var.variableType {
            T::Float64 { .. } => get!(getFloat64, Float64, 0.0),
            T::Float32 { .. } => get!(getFloat32, Float32, 0.0),
            T::Int8 { .. } => get!(getInt8, Int8, 0),
            T::UInt8 { .. } => get!(getUInt8, UInt8, 0),
            T::Int16 { .. } => get!(getInt16, Int16, 0),
            T::UInt16 { .. } => get!(getUInt16, UInt16, 0),
            T::Int32 { .. } => get!(getInt32, Int32, 0),
            T::UInt32 { .. } => get!(getUInt32, UInt32, 0),
            T::Int64 { .. } | T::Enumeration { .. } => get!(getInt64, Int64, 0),
            T::UInt64 { .. } => get!(getUInt64, UInt64, 0),
            T::Boolean { .. } => get!(getBoolean, Boolean, false),
            T::String { .. } => get!(getString, String, String::new()),
            T::Binary { .. } => get!(getBinary, Binary, Vec::new()),
            T::Clock { .. } => {
                return Err(EngineError::Request(format!(
                    "'{}' is a clock, which has no value to record",
                    var.name
                )));
            }
        };
        Self::append(&value, columns)
            .map_err(|found| super::engine::size_mismatch(&var.name, found, n))
    }

    fn append(value: &Self::Value, columns: &mut [Column]) -> Result<(), usize> {
        use sim3::VariableValue as V;
        if value.len() != columns.len() {
            return Err(value.len());
        }
        /// Pushes each element into its column, converted by `$f`, if the column holds `$to`.
        macro_rules! push {
            ($values:expr, $to:ident, $f:expr) => {{
                for (x, column) in $values.iter().zip(columns.iter_mut()) {
                    let Values::$to(c) = &mut column.values else {
                        return Err(value.len());
                    };
                    c.push($f(x));
                }
            }};
        }
        match value {
            V::Float64(v) => push!(v, Float, |x: &f64| *x),
            V::Float32(v) => push!(v, Float, |x: &f32| f64::from(*x)),
            V::Int8(v) => push!(v, Int, |x: &i8| i64::from(*x)),
            V::UInt8(v) => push!(v, Int, |x: &u8| i64::from(*x)),
            V::Int16(v) => push!(v, Int, |x: &i16| i64::from(*x)),
            V::UInt16(v) => push!(v, Int, |x: &u16| i64::from(*x)),
            V::Int32(v) => push!(v, Int, |x: &i32| i64::from(*x)),
            V::UInt32(v) => push!(v, Int, |x: &u32| i64::from(*x)),
            V::Int64(v) => push!(v, Int, |x: &i64| *x),
            V::UInt64(v) => push!(v, UInt, |x: &u64| *x),
            V::Boolean(v) => push!(v, Bool, |x: &bool| *x),
            V::String(v) => push!(v, Text, |x: &String| x.clone()),
            V::Binary(v) => push!(v, Bytes, |x: &Vec<u8>| x.clone()),
        }
        Ok(())
    }

    fn driver_cannot_set(job: &Job, md: &Self::Description) -> Option<String> {
        use fmi_rs::model_description::fmi3::VariableType;
        job.start_values.iter().find_map(|(name, literal)| {
            let var = md.variable_by_name(name).ok()?;
            (matches!(var.variableType, VariableType::String { .. })
                && var.dimensions.is_empty()
                && literal.contains(char::is_whitespace))
            .then(|| format!("{}: {name}", DRIVER_STRINGS))
        })
    }

    fn instantiate(
        job: &Job,
        md: &Self::Description,
        log_path: &Path,
    ) -> Result<Self::Instance, EngineError> {
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
        let logger = Arc::new(BoundedLogger::create(log_path).map_err(fmu_log)?);
        // With categories chosen, logging starts off and only those go on.
        let fmu = fmi_rs::fmi3::FMU3::instantiateCoSimulation(
            Box::new(library),
            resources.is_dir().then_some(resources.as_path()),
            &md.modelName,
            &md.instantiationToken,
            false,
            job.log_categories.is_empty(),
            false,
            false,
            logger,
            job.log_fmi_calls,
            None,
        )?;
        if !job.log_categories.is_empty() {
            enable_log_categories(&fmu, &job.log_categories)?;
        }
        Ok(fmu)
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

    fn reset(fmu: &Self::Instance) -> Result<(), SimulationError> {
        sim3::call(fmu.reset()).map(drop)
    }

    fn save_state(fmu: &Self::Instance) -> Result<Vec<u8>, SimulationError> {
        super::fmu_state::fmi3::save(fmu)
    }

    fn restore_state(fmu: &Self::Instance, bytes: &[u8]) -> Result<(), SimulationError> {
        super::fmu_state::fmi3::restore(fmu, bytes)
    }
}
