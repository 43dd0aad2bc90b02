//! FMU states as fmusim's `--initial-fmu-state-file` / `--final-fmu-state-file` use them: the
//! bytes an FMU serialises its state into (FMI 2 `fmi2SerializeFMUstate`, FMI 3
//! `fmi3SerializeFMUState`), and the simulation time they were saved at. The worker restores
//! one instead of initialising and saves one after the last step; both travel through the
//! worker protocol bounded by [`MAX_STATE_BYTES`].

use serde::{Deserialize, Serialize};

use super::protocol::Interface;
use crate::fmi::describe::ModelInfo;
use crate::format::Number;

/// Most bytes one serialised FMU state may have, in the job, from the worker and uploaded: a
/// state is a model's variables, not its results, so this is generous; it also keeps a
/// hostile FMU or file from making the server hold more.
pub const MAX_STATE_BYTES: u64 = 16 << 20;

/// Why a run that restores or saves a state cannot run as asked: only our Co-Simulation loop
/// makes those calls; Model Exchange, FMI 3 Co-Simulation options and structural parameters
/// run in fmi-rs's driver, which cannot.
pub const STATES_NEED_FAST_LOOP: &str = "saving or restoring an FMU state works in Co-Simulation runs without FMI 3 Co-Simulation options or structural parameters only: those run in a driver that cannot restore or save a state";

/// A serialised FMU state and the simulation time it holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    /// The simulation time the state was saved at (the run's end time): a run started from it
    /// starts there.
    pub time: f64,
    /// The FMU's bytes, opaque to us; hex in the job's JSON line.
    #[serde(with = "hex_bytes")]
    pub bytes: Vec<u8>,
}

/// What a run asks of FMU states.
#[derive(Clone, Debug, Default)]
pub struct StateSettings {
    /// Start from this state (its identity already checked against the FMU by the caller).
    pub initial: Option<SavedState>,
    /// Save the state after the last step.
    pub save_final: bool,
}

impl StateSettings {
    pub fn is_used(&self) -> bool {
        self.initial.is_some() || self.save_final
    }

    /// What is wrong with using states in this run, as (field, message): the interface must
    /// be Co-Simulation run by our own loop, the FMU must be able to get, set and serialise
    /// its state, and an explicit start time must be the state's.
    /// `fast_loop`: whether the engine's own Co-Simulation loop runs the request
    /// ([`super::call_log::fast_loop`]).
    pub fn problems(
        &self,
        info: &ModelInfo,
        interface: Interface,
        fast_loop: bool,
        start_time: f64,
    ) -> Vec<(&'static str, String)> {
        let field = if self.initial.is_some() {
            "initial_state"
        } else {
            "save_final_state"
        };
        let mut problems = Vec::new();
        if !self.is_used() {
            return problems;
        }
        if !fast_loop {
            problems.push((field, STATES_NEED_FAST_LOOP.to_owned()));
        }
        if interface == Interface::Cs
            && let Some(why) = cannot_serialise(info)
        {
            problems.push((field, why));
        }
        if let Some(state) = &self.initial
            && state.time != start_time
        {
            problems.push((
                "start_time",
                format!(
                    "the initial state was saved at t = {}; a run from it starts there, not at {}",
                    Number(state.time),
                    Number(start_time)
                ),
            ));
        }
        problems
    }
}

/// Why this FMU cannot save or restore its state in Co-Simulation, naming the capability
/// its model description lacks (as its FMI version spells it), if it cannot.
pub fn cannot_serialise(info: &ModelInfo) -> Option<String> {
    let capable = info
        .co_simulation
        .as_ref()
        .is_some_and(|cs| cs.can_get_and_set_fmu_state && cs.can_serialize_fmu_state);
    let (get_set, serialize) = if info.is_fmi3() {
        ("canGetAndSetFMUState", "canSerializeFMUState")
    } else {
        ("canGetAndSetFMUstate", "canSerializeFMUstate")
    };
    (!capable).then(|| {
        format!(
            "this FMU cannot save or restore its state: its Co-Simulation interface does not declare both {get_set} and {serialize}"
        )
    })
}

/// Bytes as a hex string in JSON (the job is one JSON line).
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        hex::decode(text).map_err(D::Error::custom)
    }
}

/// What a worker's `Done` announces of the final state whose bytes follow the results.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateHeader {
    pub time: f64,
    pub bytes: u64,
}

/// Why a state the FMU reports cannot be used: larger than [`MAX_STATE_BYTES`].
pub fn check_size(bytes: u64) -> Result<(), String> {
    if bytes > MAX_STATE_BYTES {
        return Err(format!(
            "the FMU state has {bytes} bytes; at most {MAX_STATE_BYTES} are accepted"
        ));
    }
    Ok(())
}

/// FMI 2's state calls on a Co-Simulation instance.
pub(super) mod fmi2 {
    use fmi_rs::fmi2::types::fmi2Status;
    use fmi_rs::sim::SimulationError;

    type Instance = fmi_rs::fmi2::FMU2<fmi_rs::fmi2::CS>;

    fn call(what: &str, status: fmi2Status) -> Result<(), SimulationError> {
        match status {
            fmi2Status::Ok | fmi2Status::Warning => Ok(()),
            other => Err(SimulationError::Parameter(format!(
                "{what} returned {other:?}"
            ))),
        }
    }

    /// Gets the instance's state and serialises it (`fmi2GetFMUstate`,
    /// `fmi2SerializedFMUstateSize`, `fmi2SerializeFMUstate`), freeing the state either way.
    pub fn save(fmu: &Instance) -> Result<Vec<u8>, SimulationError> {
        let mut state = std::ptr::null_mut();
        call("fmi2GetFMUstate", fmu.getFMUstate(&mut state))?;
        let serialised: Result<Vec<u8>, SimulationError> = (|| {
            let mut size = 0;
            call(
                "fmi2SerializedFMUstateSize",
                fmu.serializedFMUstateSize(state, &mut size),
            )?;
            super::check_size(size as u64).map_err(SimulationError::Parameter)?;
            let mut bytes = vec![0u8; size];
            call(
                "fmi2SerializeFMUstate",
                fmu.serializeFMUstate(state, &mut bytes),
            )?;
            Ok(bytes)
        })();
        let freed = call("fmi2FreeFMUstate", fmu.freeFMUstate(&mut state));
        let bytes = serialised?;
        freed.map(|()| bytes)
    }

    /// Deserialises `bytes` and sets the instance to that state (`fmi2DeSerializeFMUstate`,
    /// `fmi2SetFMUstate`), freeing it after.
    pub fn restore(fmu: &Instance, bytes: &[u8]) -> Result<(), SimulationError> {
        let mut state = std::ptr::null_mut();
        call(
            "fmi2DeSerializeFMUstate",
            fmu.deSerializeFMUstate(bytes, &mut state),
        )?;
        let set = call("fmi2SetFMUstate", fmu.setFMUstate(state));
        let freed = call("fmi2FreeFMUstate", fmu.freeFMUstate(&mut state));
        set.and(freed)
    }
}

/// FMI 3's state calls on an instance.
pub(super) mod fmi3 {
    use fmi_rs::fmi3::types::fmi3Status;
    use fmi_rs::sim::SimulationError;

    type Instance = fmi_rs::fmi3::FMU3;

    fn call(what: &str, status: fmi3Status) -> Result<(), SimulationError> {
        match status {
            fmi3Status::Ok | fmi3Status::Warning => Ok(()),
            other => Err(SimulationError::Parameter(format!(
                "{what} returned {other:?}"
            ))),
        }
    }

    /// Gets the instance's state and serialises it (`fmi3GetFMUState`,
    /// `fmi3SerializedFMUStateSize`, `fmi3SerializeFMUState`), freeing the state either way.
    pub fn save(fmu: &Instance) -> Result<Vec<u8>, SimulationError> {
        let mut state = std::ptr::null_mut();
        call("fmi3GetFMUState", fmu.getFMUState(&mut state))?;
        let serialised: Result<Vec<u8>, SimulationError> = (|| {
            let mut size = 0;
            call(
                "fmi3SerializedFMUStateSize",
                fmu.serializedFMUStateSize(state, &mut size),
            )?;
            super::check_size(size as u64).map_err(SimulationError::Parameter)?;
            let mut bytes = vec![0u8; size];
            call(
                "fmi3SerializeFMUState",
                fmu.serializeFMUState(state, &mut bytes),
            )?;
            Ok(bytes)
        })();
        let freed = call("fmi3FreeFMUState", fmu.freeFMUState(&mut state));
        let bytes = serialised?;
        freed.map(|()| bytes)
    }

    /// Deserialises `bytes` and sets the instance to that state (`fmi3DeserializeFMUState`,
    /// `fmi3SetFMUState`), freeing it after.
    pub fn restore(fmu: &Instance, bytes: &[u8]) -> Result<(), SimulationError> {
        let mut state = std::ptr::null_mut();
        call(
            "fmi3DeserializeFMUState",
            fmu.deserializeFMUState(bytes, &mut state),
        )?;
        let set = call("fmi3SetFMUState", fmu.setFMUState(state));
        let freed = call("fmi3FreeFMUState", fmu.freeFMUState(&mut state));
        set.and(freed)
    }
}
