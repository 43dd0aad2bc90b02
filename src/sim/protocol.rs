//! The versioned protocol between the server and a worker process.
//!
//! The parent writes one [`Job`] as a JSON line to the worker's stdin; the worker answers
//! with JSON lines of [`Message`] on its result channel (results as binary after `Done`) and
//! exits. The parent trusts nothing
//! else about the child: it enforces every limit itself and treats anything that does not
//! parse as a failed run.

use std::io::{BufRead, Read, Write};

use serde::{Deserialize, Serialize};

use super::fmu_state::{SavedState, StateHeader, check_size};
use super::kpi::KpiSpec;
use super::recorded::{Column, Recorded, blob_bytes, element_columns, write_cells};

/// Bumped on any incompatible change; a worker refuses a job of another version.
/// Version 3 added batches of cases ([`Batch`]).
pub const PROTOCOL_VERSION: u32 = 3;

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
    /// Dormand–Prince while the model is not stiff, BDF from the point where Hairer's
    /// stiffness test fires (logged in the run's FMU log): the default, because a caller
    /// rarely knows in advance whether a model is stiff.
    #[default]
    Auto,
    /// Adaptive Dormand–Prince 5(4) with event location (Model Exchange).
    DormandPrince,
    /// Variable-order (1–5) BDF/NDF with a finite-difference Jacobian, for stiff models.
    Bdf,
    /// Fixed-step forward Euler with the step size given.
    Euler,
}

/// The canonical name, then every other spelling a face accepts, all compared without regard
/// to case and with `-` taken as `_`. The canonical names are the serde names (the worker
/// protocol, stored settings, the API's JSON); the others are kept because a face accepted
/// them before the faces shared this parser, so no client or script breaks.
const INTERFACE_SPELLINGS: [(Interface, &[&str]); 2] = [
    // `cosimulation`, `co-simulation`: the CLI's.
    (Interface::Cs, &["cs", "co_simulation", "cosimulation"]),
    // `modelexchange`, `model-exchange`: the CLI's.
    (Interface::Me, &["me", "model_exchange", "modelexchange"]),
];

/// As [`INTERFACE_SPELLINGS`]: `dormand-prince` was the API's, `dopri` and `dopri5` the CLI's.
const SOLVER_SPELLINGS: [(Solver, &[&str]); 4] = [
    (Solver::Auto, &["auto"]),
    (
        Solver::DormandPrince,
        &["dormand_prince", "dopri", "dopri5"],
    ),
    (Solver::Bdf, &["bdf"]),
    (Solver::Euler, &["euler"]),
];

/// The item `s` spells, compared without regard to case and with `-` taken as `_`.
fn spelled<T: Copy>(table: &[(T, &[&str])], s: &str) -> Option<T> {
    let s = s.to_ascii_lowercase().replace('-', "_");
    table
        .iter()
        .find(|(_, names)| names.contains(&s.as_str()))
        .map(|(item, _)| *item)
}

impl Interface {
    /// The canonical (serde) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Interface::Cs => "cs",
            Interface::Me => "me",
        }
    }
}

/// The one parser of an interface for every face (API, compatibility routes, dashboard form,
/// CLI): `cs` (also `co_simulation`, `cosimulation`) or `me` (also `model_exchange`,
/// `modelexchange`), in any case, with `-` or `_`.
impl std::str::FromStr for Interface {
    type Err = crate::domain::Invalid;

    fn from_str(s: &str) -> Result<Interface, Self::Err> {
        spelled(&INTERFACE_SPELLINGS, s).ok_or_else(|| {
            crate::domain::Invalid(format!(
                "interface must be cs or me (or co_simulation, model_exchange), not '{s}'"
            ))
        })
    }
}

impl Solver {
    /// The canonical (serde) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Solver::Auto => "auto",
            Solver::DormandPrince => "dormand_prince",
            Solver::Bdf => "bdf",
            Solver::Euler => "euler",
        }
    }
}

/// The one parser of a solver for every face: `auto`, `dormand_prince` (also `dopri`,
/// `dopri5`), `bdf` or `euler`, in any case, with `-` or `_`.
impl std::str::FromStr for Solver {
    type Err = crate::domain::Invalid;

    fn from_str(s: &str) -> Result<Solver, Self::Err> {
        spelled(&SOLVER_SPELLINGS, s).ok_or_else(|| {
            crate::domain::Invalid(format!(
                "solver must be auto, dormand_prince (or dopri), bdf or euler, not '{s}'"
            ))
        })
    }
}

/// A signal for one input variable: values at times, interpolated per FMI rules (linear for
/// continuous inputs, held for discrete ones).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputSignal {
    pub name: String,
    pub t: Vec<f64>,
    pub u: Vec<f64>,
}

/// FMI 3 Co-Simulation options, as fmusim 0.8 offers them (`--early-return-allowed`,
/// `--event-mode-used`, `--intermediate-update`). All off by default: the FMU then handles
/// its events inside `fmi3DoStep`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsOptions {
    /// The FMU may return from `fmi3DoStep` before the communication point (at an event).
    #[serde(default)]
    pub early_return_allowed: bool,
    /// The importer enters event mode for the FMU's events (needs `hasEventMode`), so they
    /// are recorded just before and just after.
    #[serde(default)]
    pub event_mode_used: bool,
    /// The FMU calls back at intermediate points within a step, where inputs are set and
    /// outputs recorded.
    #[serde(default)]
    pub intermediate_update: bool,
}

impl CsOptions {
    pub fn is_default(&self) -> bool {
        *self == CsOptions::default()
    }
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
    /// Variables to record, in order, as the model description names them.
    pub outputs: Vec<String>,
    /// What each output is recorded as, in the same order: the name the caller asked for (so
    /// an alias names its own column), its type and its shape (sizes that structural
    /// parameters set are resolved by the parent). The engine refuses a value that does not
    /// fit it rather than record it altered.
    pub recorded: Vec<Recorded>,
    pub inputs: Vec<InputSignal>,
    /// Record each event twice, just before and just after it (same time), as FMPy's
    /// `record_events` does; otherwise only the output points.
    pub record_events: bool,
    /// FMI 3 Co-Simulation options.
    #[serde(default)]
    pub cs_options: CsOptions,
    /// Start from this saved state instead of initialising (fmusim's
    /// `--initial-fmu-state-file`); the parent has checked it belongs to this FMU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_state: Option<SavedState>,
    /// Save the state after the last step, before terminating (fmusim's
    /// `--final-fmu-state-file`), and send it after the results.
    #[serde(default)]
    pub save_final_state: bool,
    /// Record every FMI call with its arguments and status (fmusim's `--log-fmi-calls`).
    #[serde(default)]
    pub log_fmi_calls: bool,
    /// The FMU's log categories to enable (all when empty); checked by the parent.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_categories: Vec<String>,
    /// Most bytes of the FMU's log to send back.
    pub log_limit: usize,
    /// Resource limits the worker applies to itself before loading the FMU.
    pub limits: super::sandbox::Limits,
    /// Run these cases instead of one simulation (a sweep's warm starts): each is this job
    /// with its own start values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<Batch>,
}

/// Cases of one sweep that one worker runs one after the other, loading the FMU once and,
/// where it can, instantiating it once and resetting it between cases.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Batch {
    pub cases: Vec<Case>,
    /// The KPIs computed for every case, in order.
    pub kpis: Vec<KpiSpec>,
    /// Whether each case's results (the job's outputs) are sent too, not only its KPIs.
    pub trajectories: bool,
}

/// One case of a batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Case {
    /// The caller's number for the case (unique in the batch).
    pub index: u32,
    /// Start values as literals, already checked by the parent; they override the job's
    /// start values of the same name and extend them with others.
    pub start_values: Vec<(String, String)>,
}

impl Case {
    /// The job's start values with this case's applied: a name the job sets keeps its place
    /// with the case's value; new names follow in the case's order.
    pub fn start_values(&self, base: &[(String, String)]) -> Vec<(String, String)> {
        let mut merged = base.to_vec();
        for (name, literal) in &self.start_values {
            match merged.iter_mut().find(|(n, _)| n == name) {
                Some(entry) => entry.1.clone_from(literal),
                None => merged.push((name.clone(), literal.clone())),
            }
        }
        merged
    }
}

/// What a case's results announce; the values follow in binary exactly as after
/// [`Message::Done`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trajectory {
    pub variables: Vec<Recorded>,
    pub rows: u64,
    #[serde(default)]
    pub blob_bytes: u64,
}

/// A finished simulation.
#[derive(Clone, Debug, PartialEq)]
pub struct SimOutput {
    pub time: Vec<f64>,
    /// The recorded variables, in order.
    pub variables: Vec<Recorded>,
    /// Their columns, one per element ([`super::recorded::element_columns`]).
    pub columns: Vec<Column>,
    /// The FMU's log messages (truncated to the job's limit).
    pub log: String,
    /// The state saved after the last step, when the job asked for it.
    pub final_state: Option<SavedState>,
}

/// What the worker sends back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// The sandbox is in place and the FMU is about to load; lists the active layers.
    Started { sandbox: Vec<String> },
    /// The results follow this line in binary, exactly as a result file stores them after
    /// its header (`sim::result_file`): `rows` time values (little-endian `f64`), then `rows`
    /// cells of each column in order, then `blob_bytes` of String and Binary values. Binary
    /// because formatting and parsing millions of numbers as JSON text cost more than
    /// simulating them (benches/engine.rs).
    Done {
        variables: Vec<Recorded>,
        rows: u64,
        #[serde(default)]
        blob_bytes: u64,
        log: String,
        /// The final state, whose bytes follow the values (the job asked for it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        state: Option<StateHeader>,
    },
    /// The simulation failed in a way the FMU or the request explains.
    Failed { reason: String, log: String },
    /// How far the simulation has got (the simulation time reached), sent between `Started`
    /// and the end, at most a few times a second ([`super::progress`]). Display only: the
    /// FMU's code shares the channel, so the parent ignores a time that is not a number
    /// (`null`, which is how JSON writes NaN) and clamps the others to the run's span.
    Progress {
        #[serde(default)]
        time: Option<f64>,
    },
    /// A case of a batch succeeded: its KPIs (one per `Batch::kpis`), and its results when
    /// the batch asks for them (announced here, the values following this line in binary as
    /// after `Done`). Cases are reported in the batch's order.
    CaseDone {
        index: u32,
        #[serde(with = "super::kpi::wire")]
        kpis: Vec<Option<f64>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trajectory: Option<Trajectory>,
    },
    /// A case of a batch failed in a way the FMU or the request explains; the worker goes on
    /// with the next case.
    CaseFailed {
        index: u32,
        reason: String,
        log: String,
    },
    /// Every case of the batch was reported. `warm`: the cases reused one instance (reset
    /// between cases) rather than each instantiating its own.
    BatchDone { warm: bool },
}

/// Writes one message line.
pub fn send(out: &mut impl Write, message: &Message) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, message)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes the results: the `Done` line, then the values. Refuses an output whose columns do
/// not match its variables (count, length, storage): the parent would refuse it anyway.
pub fn send_output(out: &mut impl Write, output: SimOutput) -> std::io::Result<()> {
    check_output(&output)?;
    let state = output.final_state.as_ref().map(|s| StateHeader {
        time: s.time,
        bytes: s.bytes.len() as u64,
    });
    serde_json::to_writer(
        &mut *out,
        &Message::Done {
            blob_bytes: blob_bytes(&output.columns),
            variables: output.variables,
            rows: output.time.len() as u64,
            log: output.log,
            state,
        },
    )?;
    out.write_all(b"\n")?;
    write_values(out, &output.time, &output.columns)?;
    if let Some(state) = &output.final_state {
        out.write_all(&state.bytes)?;
    }
    out.flush()
}

/// Writes one case's report: `CaseDone` with its KPIs, then its results if it has them
/// (checked as [`send_output`] checks them).
pub fn send_case(
    out: &mut impl Write,
    index: u32,
    kpis: Vec<Option<f64>>,
    output: Option<&SimOutput>,
) -> std::io::Result<()> {
    if let Some(output) = output {
        check_output(output)?;
    }
    let trajectory = output.map(|o| Trajectory {
        variables: o.variables.clone(),
        rows: o.time.len() as u64,
        blob_bytes: blob_bytes(&o.columns),
    });
    serde_json::to_writer(
        &mut *out,
        &Message::CaseDone {
            index,
            kpis,
            trajectory,
        },
    )?;
    out.write_all(b"\n")?;
    if let Some(output) = output {
        write_values(out, &output.time, &output.columns)?;
    }
    out.flush()
}

/// The time points, then every column's cells.
fn write_values(out: &mut impl Write, time: &[f64], columns: &[Column]) -> std::io::Result<()> {
    for t in time {
        out.write_all(&t.to_le_bytes())?;
    }
    write_cells(columns, out)
}

/// Refuses an output whose columns do not match its variables (count, length, storage).
fn check_output(output: &SimOutput) -> std::io::Result<()> {
    let rows = output.time.len();
    let elements = element_columns(&output.variables);
    if elements.len() != output.columns.len() {
        return Err(std::io::Error::other(format!(
            "{} columns for variables of {} elements",
            output.columns.len(),
            elements.len()
        )));
    }
    for ((variable, _), column) in elements.iter().zip(&output.columns) {
        let storage = output.variables[*variable].r#type.storage();
        if column.values.len() != rows || column.values.storage() != storage {
            return Err(std::io::Error::other(format!(
                "column '{}' does not fit its variable",
                column.name
            )));
        }
    }
    Ok(())
}

/// Longest message line a worker may send (the FMU's log, cut to the job's `log_limit`, and
/// the output names travel in it). Longer is a broken worker, not a bigger buffer.
pub const MAX_FRAME_BYTES: usize = 4 << 20;

/// How a worker broke the protocol.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The stream ended inside a message or the results: the worker died while writing, and
    /// its exit status says why.
    #[error("the worker's reply ended early: {0}")]
    Truncated(String),
    /// What the worker sent is not what the protocol allows (too long, not JSON, results too
    /// large, duplicate names, a message out of order).
    #[error("{0}")]
    Malformed(String),
    /// Writing the results to the server's disk failed: the service's fault.
    #[error("storing the results: {0}")]
    Storage(String),
}

/// Reads the next message line; `None` at the end of the stream. A line longer than
/// [`MAX_FRAME_BYTES`] is refused after reading at most that many bytes of it.
pub fn read_message(reader: &mut impl BufRead) -> Result<Option<Message>, ProtocolError> {
    let mut line = Vec::new();
    let read = reader
        .take(MAX_FRAME_BYTES as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| ProtocolError::Truncated(e.to_string()))?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.len() > MAX_FRAME_BYTES {
            ProtocolError::Malformed(format!("a message is longer than {MAX_FRAME_BYTES} bytes"))
        } else {
            ProtocolError::Truncated("the stream ended inside a message".into())
        });
    }
    serde_json::from_slice(&line)
        .map(Some)
        .map_err(|e| ProtocolError::Malformed(format!("unreadable worker message: {e}")))
}

/// Most bytes of String and Binary values one result may hold (its blob).
pub const MAX_BLOB_BYTES: u64 = 256 << 20;

/// Most elements one array variable may have (a shape larger than this is refused before
/// its element names are made).
pub const MAX_ELEMENTS: u64 = super::engine::MAX_VALUES as u64;

/// Checks what a `Done` announces before any value is read: at most `max_values` values (the
/// engine's own rule, [`super::engine::result_values`]), at most [`MAX_BLOB_BYTES`] of text,
/// and no column name twice. Returns the bytes of values that follow.
pub fn check_done(
    variables: &[Recorded],
    rows: u64,
    blob_bytes: u64,
    max_values: u64,
) -> Result<u64, ProtocolError> {
    let mut columns = 0u64;
    let mut cell_bytes = 8u64; // time
    for v in variables {
        let n = v.elements().filter(|&n| n <= MAX_ELEMENTS).ok_or_else(|| {
            ProtocolError::Malformed(format!("'{}' has an impossible shape", v.name))
        })?;
        columns += n;
        cell_bytes += n * v.r#type.cell_bytes();
    }
    let values = super::engine::result_values(rows, columns);
    if values > max_values {
        return Err(ProtocolError::Malformed(format!(
            "the worker announced {rows} rows × {columns} columns = {values} values; at most {max_values} are accepted"
        )));
    }
    if blob_bytes > MAX_BLOB_BYTES {
        return Err(ProtocolError::Malformed(format!(
            "the worker announced {blob_bytes} bytes of text; at most {MAX_BLOB_BYTES} are accepted"
        )));
    }
    let names = element_columns(variables);
    let mut seen = std::collections::HashSet::with_capacity(names.len());
    if let Some((_, twice)) = names.iter().find(|(_, c)| !seen.insert(c.as_str())) {
        return Err(ProtocolError::Malformed(format!(
            "the worker named the output '{twice}' twice"
        )));
    }
    rows.checked_mul(cell_bytes)
        .and_then(|b| b.checked_add(blob_bytes))
        .ok_or_else(|| ProtocolError::Malformed("the announced result size overflows".into()))
}

/// Checks the time column (the first `rows` values) as its bytes pass: every time point a
/// finite number. A result's values may be NaN or ±∞ (legal simulation results, written by
/// name), its times may not: they are plain numbers in every format, and the worker's own
/// engine never sends others ([`super::engine::simulate`]).
struct TimeCheck {
    /// Bytes of the time column still to come.
    left: u64,
    /// The start of a value split across reads.
    carry: [u8; 8],
    carried: usize,
    row: u64,
}

impl TimeCheck {
    fn new(rows: u64) -> TimeCheck {
        TimeCheck {
            left: rows.saturating_mul(8),
            carry: [0; 8],
            carried: 0,
            row: 0,
        }
    }

    /// Checks the time values among the next `bytes` of the stream.
    fn feed(&mut self, bytes: &[u8]) -> Result<(), ProtocolError> {
        let take = bytes
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        self.left -= take as u64;
        let mut bytes = &bytes[..take];
        if self.carried > 0 {
            let n = (8 - self.carried).min(bytes.len());
            self.carry[self.carried..self.carried + n].copy_from_slice(&bytes[..n]);
            self.carried += n;
            bytes = &bytes[n..];
            if self.carried < 8 {
                return Ok(());
            }
            self.carried = 0;
            self.check(self.carry)?;
        }
        let mut values = bytes.chunks_exact(8);
        for value in &mut values {
            self.check(value.try_into().expect("chunks of 8"))?;
        }
        let rest = values.remainder();
        self.carry[..rest.len()].copy_from_slice(rest);
        self.carried = rest.len();
        Ok(())
    }

    fn check(&mut self, bytes: [u8; 8]) -> Result<(), ProtocolError> {
        let t = f64::from_le_bytes(bytes);
        if !t.is_finite() {
            return Err(ProtocolError::Malformed(format!(
                "time point {} is {}, not a finite number",
                self.row,
                crate::format::Number(t)
            )));
        }
        self.row += 1;
        Ok(())
    }
}

/// Copies the `total` bytes of values that follow a checked `Done` ([`check_done`]) from
/// `reader` to `out` as they arrive, never holding more than one buffer of them; a time point
/// (the first `rows` values) that is not a finite number is refused ([`TimeCheck`]).
pub fn copy_values(
    reader: &mut impl BufRead,
    rows: u64,
    total: u64,
    out: &mut impl Write,
) -> Result<(), ProtocolError> {
    let mut left = total;
    let mut times = TimeCheck::new(rows);
    while left > 0 {
        let chunk = reader
            .fill_buf()
            .map_err(|e| ProtocolError::Truncated(format!("reading the results: {e}")))?;
        if chunk.is_empty() {
            return Err(ProtocolError::Truncated(format!(
                "{} of {total} bytes of results arrived",
                total - left
            )));
        }
        let n = chunk.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        times.feed(&chunk[..n])?;
        out.write_all(&chunk[..n])
            .map_err(|e| ProtocolError::Storage(e.to_string()))?;
        reader.consume(n);
        left -= n as u64;
    }
    Ok(())
}

/// Reads the final state's bytes that follow the values, after checking what the header
/// announces: at most [`MAX_STATE_BYTES`], at a finite time.
fn read_state(reader: &mut impl BufRead, header: StateHeader) -> Result<SavedState, ProtocolError> {
    check_size(header.bytes).map_err(ProtocolError::Malformed)?;
    if !header.time.is_finite() {
        return Err(ProtocolError::Malformed(
            "the FMU state's time is not a finite number".into(),
        ));
    }
    let mut bytes = Vec::with_capacity(header.bytes as usize);
    let read = reader
        .take(header.bytes)
        .read_to_end(&mut bytes)
        .map_err(|e| ProtocolError::Truncated(format!("reading the FMU state: {e}")))?;
    if read as u64 != header.bytes {
        return Err(ProtocolError::Truncated(format!(
            "{read} of {} bytes of the FMU state arrived",
            header.bytes
        )));
    }
    Ok(SavedState {
        time: header.time,
        bytes,
    })
}

/// How a worker's answer ended.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    /// The results (already copied to the parent's result file).
    Done {
        variables: Vec<Recorded>,
        rows: u64,
        log: String,
        /// The final state the worker sent after the results, if it sent one.
        state: Option<SavedState>,
    },
    Failed {
        reason: String,
        log: String,
    },
}

/// Everything the parent heard from one worker.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Conversation {
    /// The sandbox layers, once the worker said `Started`.
    pub sandbox: Option<Vec<String>>,
    /// `Done` or `Failed`, after which nothing more is read.
    pub end: Option<End>,
    /// Why the conversation stopped early, if it did.
    pub broken: Option<ProtocolError>,
}

/// Where the `Progress` reports of one run go: each finite time, clamped to the run's
/// `start..=stop`, is handed to `report` as it arrives and not kept, so any number of them
/// costs no memory.
pub struct ProgressSink<'a> {
    pub start: f64,
    pub stop: f64,
    pub report: &'a mut dyn FnMut(f64),
}

impl ProgressSink<'_> {
    /// Hands on a reported time: ignored unless finite, clamped to the span.
    fn hear(&mut self, time: Option<f64>) {
        if let Some(t) = time.filter(|t| t.is_finite()) {
            (self.report)(t.max(self.start).min(self.stop));
        }
    }
}

/// Reads a worker's whole answer: at most one `Started`, then any number of `Progress`
/// reports (handed to `progress`, if any), then one `Done` (whose values are written to
/// `results` behind a [`super::result_file`] header, as they arrive) or `Failed`. Memory
/// stays bounded whatever the worker sends: every line is bounded, progress and the values
/// are never held, and nothing is read after the answer ends. `None` for `results` means
/// none are expected (the sandbox probe).
pub fn read_conversation(
    reader: &mut impl BufRead,
    mut results: Option<&mut dyn Write>,
    max_values: u64,
    mut progress: Option<ProgressSink<'_>>,
) -> Conversation {
    let mut heard = Conversation::default();
    let broken = loop {
        let message = match read_message(reader) {
            Ok(Some(message)) => message,
            Ok(None) => return heard,
            Err(e) => break e,
        };
        match message {
            Message::Started { .. } if heard.sandbox.is_some() => {
                break ProtocolError::Malformed("the worker said Started twice".into());
            }
            Message::Started { sandbox } => heard.sandbox = Some(sandbox),
            Message::Progress { .. } if heard.sandbox.is_none() => {
                break ProtocolError::Malformed(
                    "the worker sent progress before it started".into(),
                );
            }
            Message::Progress { time } => {
                if let Some(sink) = progress.as_mut() {
                    sink.hear(time);
                }
            }
            Message::Failed { reason, log } => {
                heard.end = Some(End::Failed { reason, log });
                return heard;
            }
            Message::CaseDone { .. } | Message::CaseFailed { .. } | Message::BatchDone { .. } => {
                break ProtocolError::Malformed("the worker reported cases of no batch".into());
            }
            Message::Done { .. } if heard.sandbox.is_none() => {
                break ProtocolError::Malformed("the worker sent results before it started".into());
            }
            Message::Done {
                variables,
                rows,
                blob_bytes,
                log,
                state,
            } => {
                let total = match check_done(&variables, rows, blob_bytes, max_values) {
                    Ok(total) => total,
                    Err(e) => break e,
                };
                let Some(out) = results.as_mut() else {
                    break ProtocolError::Malformed(
                        "the worker sent results nobody asked for".into(),
                    );
                };
                let header = super::result_file::Header {
                    rows,
                    variables: variables.clone(),
                    blob_bytes,
                };
                if let Err(e) = header.write(out) {
                    break ProtocolError::Storage(e.to_string());
                }
                if let Err(e) = copy_values(reader, rows, total, out) {
                    break e;
                }
                let state = match state.map(|h| read_state(reader, h)).transpose() {
                    Ok(state) => state,
                    Err(e) => break e,
                };
                heard.end = Some(End::Done {
                    variables,
                    rows,
                    log,
                    state,
                });
                return heard;
            }
        }
    };
    heard.broken = Some(broken);
    heard
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float(name: &str) -> Recorded {
        Recorded::scalar(name, super::super::recorded::ValueType::Float64)
    }

    fn started() -> Message {
        Message::Started {
            sandbox: vec!["seccomp".into()],
        }
    }

    fn wire(messages: &[Message]) -> Vec<u8> {
        let mut wire = Vec::new();
        for m in messages {
            send(&mut wire, m).unwrap();
        }
        wire
    }

    fn hear(wire: &[u8], max_values: u64) -> (Conversation, Vec<u8>) {
        let mut results = Vec::new();
        let heard = read_conversation(
            &mut std::io::BufReader::new(wire),
            Some(&mut results),
            max_values,
            None,
        );
        (heard, results)
    }

    fn malformed(heard: &Conversation) -> &str {
        match &heard.broken {
            Some(ProtocolError::Malformed(reason)) => reason,
            other => panic!("not malformed: {other:?}"),
        }
    }

    /// Progress is the FMU's to write once it has loaded: whatever it claims (not a number,
    /// far outside the run, thousands of times) is clamped or ignored, one report at a time,
    /// and the results that follow still arrive.
    #[test]
    fn hostile_progress_is_clamped_or_ignored_and_never_kept() {
        let mut wire = wire(&[started()]);
        let claims = [None, Some(f64::MAX), Some(-f64::MAX), Some(0.5), Some(-0.0)];
        let lines = 20_000;
        for i in 0..lines {
            send(
                &mut wire,
                &Message::Progress {
                    time: claims[i % claims.len()],
                },
            )
            .unwrap();
        }
        // A NaN is written as `null` by the worker's JSON; a raw `NaN` is not JSON at all.
        wire.extend_from_slice(b"{\"type\":\"progress\",\"time\":null}\n");
        send(
            &mut wire,
            &Message::Done {
                variables: vec![],
                rows: 0,
                blob_bytes: 0,
                log: String::new(),
                state: None,
            },
        )
        .unwrap();
        let (mut count, mut latest, mut outside) = (0usize, f64::NAN, 0usize);
        let mut report = |t: f64| {
            count += 1;
            latest = t;
            if !(1.0..=2.0).contains(&t) {
                outside += 1;
            }
        };
        let sink = ProgressSink {
            start: 1.0,
            stop: 2.0,
            report: &mut report,
        };
        let mut results = Vec::new();
        let heard = read_conversation(&mut &wire[..], Some(&mut results), 100, Some(sink));
        assert!(heard.broken.is_none(), "{heard:?}");
        assert!(matches!(heard.end, Some(End::Done { rows: 0, .. })));
        // Every `None` is ignored; each number arrives clamped to the span, none kept.
        assert_eq!(count, lines - lines / claims.len());
        assert_eq!(outside, 0);
        assert_eq!(latest, 1.0, "the last number (-0) clamped to the start");
        // Before the worker started, progress is ours to send, and it never does.
        let early = self::wire(&[Message::Progress { time: Some(1.0) }]);
        let heard = read_conversation(&mut &early[..], None, 100, None);
        assert!(malformed(&heard).contains("progress before it started"));
    }

    #[test]
    fn results_are_copied_to_the_result_file_as_sent() {
        use super::super::recorded::{ValueType, Values};
        let output = SimOutput {
            time: vec![0.0, 0.5, 1.0],
            variables: vec![
                Recorded::scalar("h", ValueType::Float64),
                Recorded::scalar("n", ValueType::UInt64),
                Recorded::scalar("s", ValueType::String),
            ],
            columns: vec![
                Column {
                    name: "h".into(),
                    values: Values::Float(vec![1.0, f64::MIN_POSITIVE, -2.5]),
                },
                Column {
                    name: "n".into(),
                    values: Values::UInt(vec![0, u64::MAX, 7]),
                },
                Column {
                    name: "s".into(),
                    values: Values::Text(vec!["a b".into(), String::new(), "ü,\"".into()]),
                },
            ],
            log: "ok".into(),
            final_state: None,
        };
        let mut bytes = wire(&[started()]);
        send_output(&mut bytes, output.clone()).unwrap();
        let (heard, results) = hear(&bytes, 100);
        assert_eq!(heard.sandbox, Some(vec!["seccomp".to_string()]));
        assert_eq!(heard.broken, None);
        assert_eq!(
            heard.end,
            Some(End::Done {
                variables: output.variables.clone(),
                rows: 3,
                log: "ok".into(),
                state: None,
            })
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r");
        std::fs::write(&path, results).unwrap();
        let stored = super::super::result_file::ResultFile::open(&path).unwrap();
        let back = stored.read_all().unwrap();
        assert_eq!((back.time, back.columns), (output.time, output.columns));
    }

    /// Values may be NaN or ±∞ (kept as sent); a time point may not, wherever the reads split
    /// it.
    #[test]
    fn non_finite_values_pass_and_non_finite_times_are_refused() {
        let values = vec![f64::NAN, f64::INFINITY, f64::NEG_INFINITY];
        let output = |time: Vec<f64>| SimOutput {
            time,
            variables: vec![Recorded::scalar(
                "x",
                super::super::recorded::ValueType::Float64,
            )],
            columns: vec![Column {
                name: "x".into(),
                values: super::super::recorded::Values::Float(values.clone()),
            }],
            log: String::new(),
            final_state: None,
        };
        let mut bytes = wire(&[started()]);
        send_output(&mut bytes, output(vec![0.0, 1.0, 2.0])).unwrap();
        let (heard, results) = hear(&bytes, 100);
        assert_eq!(heard.broken, None);
        assert!(results.ends_with(&f64::NEG_INFINITY.to_le_bytes()));

        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let mut bytes = wire(&[started()]);
            send_output(&mut bytes, output(vec![0.0, 1.0, bad])).unwrap();
            // Read one byte at a time too, so every value is split across reads.
            for capacity in [8192, 1] {
                let mut reader = std::io::BufReader::with_capacity(capacity, &bytes[..]);
                let heard = read_conversation(&mut reader, Some(&mut Vec::new()), 100, None);
                assert!(
                    malformed(&heard).contains("time point 2 is"),
                    "{bad} {capacity}: {heard:?}"
                );
            }
        }
    }

    #[test]
    fn an_endless_line_is_refused_after_the_frame_bound() {
        // A worker that never ends its line: the reader stops at the bound, holding no more.
        let endless = std::io::repeat(b'x');
        let mut reader = std::io::BufReader::new(endless);
        let heard = read_conversation(&mut reader, None, 100, None);
        assert!(malformed(&heard).contains("longer than"), "{heard:?}");
        // A line just under the bound is read (and refused only as bad JSON).
        let mut line = vec![b' '; MAX_FRAME_BYTES - 1];
        line.push(b'\n');
        let e = read_message(&mut std::io::BufReader::new(&line[..])).unwrap_err();
        assert!(e.to_string().contains("unreadable"), "{e}");
    }

    #[test]
    fn the_parent_enforces_the_engines_cap() {
        let cap = super::super::engine::MAX_VALUES as u64;
        let done = |rows: u64, columns: usize| Message::Done {
            variables: (0..columns).map(|i| float(&format!("x{i}"))).collect(),
            rows,
            blob_bytes: 0,
            log: String::new(),
            state: None,
        };
        // One over the cap is refused before any value is read; the cap itself is accepted
        // (and then found truncated, since no values follow).
        let (heard, results) = hear(&wire(&[started(), done(cap / 2 + 1, 2)]), cap);
        assert!(malformed(&heard).contains("at most 20000000"), "{heard:?}");
        assert!(results.is_empty());
        let (heard, _) = hear(&wire(&[started(), done(cap / 2, 2)]), cap);
        assert!(
            matches!(heard.broken, Some(ProtocolError::Truncated(_))),
            "{heard:?}"
        );
        let (heard, _) = hear(&wire(&[started(), done(u64::MAX, 3)]), cap);
        assert!(malformed(&heard).contains("at most"), "{heard:?}");
    }

    #[test]
    fn duplicate_output_names_are_refused() {
        let done = Message::Done {
            variables: vec![float("h"), float("v"), float("h")],
            rows: 1,
            blob_bytes: 0,
            log: String::new(),
            state: None,
        };
        let (heard, results) = hear(&wire(&[started(), done]), 100);
        assert!(malformed(&heard).contains("'h' twice"), "{heard:?}");
        assert!(heard.end.is_none() && results.is_empty());
    }

    #[test]
    fn messages_out_of_order_are_refused_and_truncation_is_reported() {
        let done = Message::Done {
            variables: vec![float("x")],
            rows: 2,
            blob_bytes: 0,
            log: String::new(),
            state: None,
        };
        let (heard, _) = hear(&wire(std::slice::from_ref(&done)), 100);
        assert!(malformed(&heard).contains("before it started"));
        let (heard, _) = hear(&wire(&[started(), started()]), 100);
        assert!(malformed(&heard).contains("twice"));
        let (heard, _) = hear(b"{\"type\":\"started\",\"sandbox\":[]}\nnot json\n", 100);
        assert!(malformed(&heard).contains("unreadable"));
        // Results that stop short: the worker died while writing.
        let mut bytes = wire(&[started(), done]);
        bytes.extend_from_slice(&1.0f64.to_le_bytes());
        let (heard, _) = hear(&bytes, 100);
        assert!(
            matches!(&heard.broken, Some(ProtocolError::Truncated(r)) if r.contains("8 of 32")),
            "{heard:?}"
        );
        // A line cut off by the end of the stream.
        let (heard, _) = hear(b"{\"type\":\"star", 100);
        assert!(matches!(heard.broken, Some(ProtocolError::Truncated(_))));
        // Nothing is read after the answer: a Failed ends it.
        let failed = Message::Failed {
            reason: "no".into(),
            log: String::new(),
        };
        let mut bytes = wire(&[started(), failed]);
        bytes.extend(std::iter::repeat_n(b'x', 1 << 20));
        let (heard, _) = hear(&bytes, 100);
        assert!(heard.broken.is_none());
        assert!(matches!(heard.end, Some(End::Failed { .. })));
    }

    #[test]
    fn results_nobody_asked_for_are_refused() {
        let done = Message::Done {
            variables: vec![float("x")],
            rows: 0,
            blob_bytes: 0,
            log: String::new(),
            state: None,
        };
        let bytes = wire(&[started(), done]);
        let heard = read_conversation(&mut std::io::BufReader::new(&bytes[..]), None, 100, None);
        assert!(malformed(&heard).contains("nobody asked"));
    }

    #[test]
    fn every_spelling_any_face_accepted_parses_to_its_interface() {
        use std::str::FromStr;
        let cases = [
            // The API's (any case) and the dashboard form's.
            ("cs", Interface::Cs),
            ("CS", Interface::Cs),
            ("me", Interface::Me),
            ("Me", Interface::Me),
            // The CLI's.
            ("cosimulation", Interface::Cs),
            ("co-simulation", Interface::Cs),
            ("Co-Simulation", Interface::Cs),
            ("modelexchange", Interface::Me),
            ("model-exchange", Interface::Me),
            ("ModelExchange", Interface::Me),
            // The long names with the serde separator.
            ("co_simulation", Interface::Cs),
            ("model_exchange", Interface::Me),
        ];
        for (spelling, interface) in cases {
            assert_eq!(Interface::from_str(spelling), Ok(interface), "{spelling}");
        }
        for interface in [Interface::Cs, Interface::Me] {
            // The canonical name is the serde name, so stored settings read back.
            let json = serde_json::to_value(interface).unwrap();
            assert_eq!(json, serde_json::Value::String(interface.as_str().into()));
            assert_eq!(interface.as_str().parse(), Ok(interface));
        }
        for bad in ["", "xx", "c s", "cs ", "co", "fmi", "model"] {
            let err = Interface::from_str(bad).unwrap_err();
            assert_eq!(
                err.0,
                format!(
                    "interface must be cs or me (or co_simulation, model_exchange), not '{bad}'"
                )
            );
        }
    }

    #[test]
    fn every_spelling_any_face_accepted_parses_to_its_solver() {
        use std::str::FromStr;
        let cases = [
            // The API's.
            ("dormand_prince", Solver::DormandPrince),
            ("dormand-prince", Solver::DormandPrince),
            ("euler", Solver::Euler),
            // The CLI's (any case).
            ("Dormand-Prince", Solver::DormandPrince),
            ("dopri", Solver::DormandPrince),
            ("DOPRI5", Solver::DormandPrince),
            ("Euler", Solver::Euler),
            ("auto", Solver::Auto),
            ("bdf", Solver::Bdf),
            ("BDF", Solver::Bdf),
        ];
        for (spelling, solver) in cases {
            assert_eq!(Solver::from_str(spelling), Ok(solver), "{spelling}");
        }
        for solver in [
            Solver::Auto,
            Solver::DormandPrince,
            Solver::Bdf,
            Solver::Euler,
        ] {
            let json = serde_json::to_value(solver).unwrap();
            assert_eq!(json, serde_json::Value::String(solver.as_str().into()));
            assert_eq!(solver.as_str().parse(), Ok(solver));
        }
        for bad in [
            "",
            "rk4",
            "dormand prince",
            "dormandprince",
            "euler2",
            "cvode",
        ] {
            let err = Solver::from_str(bad).unwrap_err();
            assert_eq!(
                err.0,
                format!(
                    "solver must be auto, dormand_prince (or dopri), bdf or euler, not '{bad}'"
                )
            );
        }
    }
}

#[cfg(test)]
mod state_tests {
    use super::*;
    use crate::sim::fmu_state::MAX_STATE_BYTES;
    use crate::sim::recorded::{ValueType, Values};

    fn output(state: Option<SavedState>) -> SimOutput {
        SimOutput {
            time: vec![0.0, 1.0],
            variables: vec![Recorded::scalar("h", ValueType::Float64)],
            columns: vec![Column {
                name: "h".into(),
                values: Values::Float(vec![1.0, 0.5]),
            }],
            log: String::new(),
            final_state: state,
        }
    }

    fn hear(wire: &[u8]) -> Conversation {
        let mut results = Vec::new();
        read_conversation(&mut &wire[..], Some(&mut results), 100, None)
    }

    fn started() -> Vec<u8> {
        let mut bytes = Vec::new();
        send(&mut bytes, &Message::Started { sandbox: vec![] }).unwrap();
        bytes
    }

    /// The final state's bytes follow the results and arrive whole, with their time.
    #[test]
    fn a_final_state_arrives_after_the_results() {
        let state = SavedState {
            time: 1.0,
            bytes: (0..=255).collect(),
        };
        let mut bytes = started();
        send_output(&mut bytes, output(Some(state.clone()))).unwrap();
        let heard = hear(&bytes);
        assert_eq!(heard.broken, None);
        let Some(End::Done { state: got, .. }) = heard.end else {
            panic!("{heard:?}")
        };
        assert_eq!(got, Some(state));
    }

    /// A state cut short, larger than the bound, or at a time that is not a number is refused
    /// before more than the bound is read.
    #[test]
    fn a_truncated_oversized_or_timeless_state_is_refused() {
        let state = SavedState {
            time: 1.0,
            bytes: vec![7; 100],
        };
        let mut bytes = started();
        send_output(&mut bytes, output(Some(state))).unwrap();
        bytes.truncate(bytes.len() - 10);
        assert!(matches!(
            hear(&bytes).broken,
            Some(ProtocolError::Truncated(_))
        ));

        for header in [
            StateHeader {
                time: 1.0,
                bytes: MAX_STATE_BYTES + 1,
            },
            StateHeader {
                time: f64::INFINITY,
                bytes: 1,
            },
        ] {
            let mut bytes = started();
            let done = Message::Done {
                variables: vec![],
                rows: 0,
                blob_bytes: 0,
                log: String::new(),
                state: Some(header),
            };
            // An infinite time cannot even be written as JSON: send it as the worker's
            // bytes would come.
            let line = serde_json::to_string(&done)
                .unwrap()
                .replace("null", "1e999");
            bytes.extend_from_slice(line.as_bytes());
            bytes.push(b'\n');
            bytes.push(0);
            let heard = hear(&bytes);
            assert!(
                matches!(heard.broken, Some(ProtocolError::Malformed(_))),
                "{header:?}: {heard:?}"
            );
        }
    }
}
