//! The versioned protocol between the server and a worker process.
//!
//! The parent writes one [`Job`] as a JSON line to the worker's stdin; the worker answers
//! with JSON lines of [`Message`] on its result channel and exits. The parent trusts nothing
//! else about the child: it enforces every limit itself and treats anything that does not
//! parse as a failed run.

use serde::{Deserialize, Serialize};

/// Bumped on any incompatible change; a worker refuses a job of another version.
pub const PROTOCOL_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interface {
    /// Co-Simulation: the FMU brings its own solver; we call doStep.
    Cs,
    /// Model Exchange: we integrate the FMU's derivatives.
    Me,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// Adaptive Dormand–Prince 5(4) with event location (Model Exchange).
    #[default]
    DormandPrince,
    /// Fixed-step forward Euler with the step size given.
    Euler,
}

/// A signal for one input variable: values at times, interpolated per FMI rules (linear for
/// continuous inputs, held for discrete ones).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSignal {
    pub name: String,
    pub t: Vec<f64>,
    pub u: Vec<f64>,
}

/// Everything a worker needs to run one simulation. All defaults are resolved by the parent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Job {
    pub version: u32,
    /// The extracted FMU (read-only for the worker).
    pub fmu_dir: String,
    /// The only directory the worker may write to.
    pub scratch_dir: String,
    pub interface: Interface,
    pub solver: Solver,
    pub start_time: f64,
    pub stop_time: f64,
    pub output_interval: f64,
    /// Co-Simulation communication step / Model Exchange maximum (adaptive) or fixed (Euler)
    /// step.
    pub step_size: Option<f64>,
    pub tolerance: f64,
    /// Start values by variable name, as literals (type-checked by the parent).
    pub start_values: Vec<(String, String)>,
    /// Variables to record, in order.
    pub outputs: Vec<String>,
    pub inputs: Vec<InputSignal>,
    /// Most bytes of the FMU's log to send back.
    pub log_limit: usize,
    /// Resource limits the worker applies to itself before loading the FMU.
    pub limits: super::sandbox::Limits,
}

/// One recorded variable.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    pub values: Vec<f64>,
}

/// A finished simulation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimOutput {
    pub time: Vec<f64>,
    pub columns: Vec<Column>,
    /// The FMU's log messages (truncated to the job's limit).
    pub log: String,
}

/// What the worker sends back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// The sandbox is in place and the FMU is about to load; lists the active layers.
    Started {
        sandbox: Vec<String>,
    },
    Done(SimOutput),
    /// The simulation failed in a way the FMU or the request explains.
    Failed {
        reason: String,
        log: String,
    },
}
