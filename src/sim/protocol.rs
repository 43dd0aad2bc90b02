//! The versioned protocol between the server and a worker process.
//!
//! The parent writes one [`Job`] as a JSON line to the worker's stdin; the worker answers
//! with JSON lines of [`Message`] on its result channel (results as binary after `Done`) and
//! exits. The parent trusts nothing
//! else about the child: it enforces every limit itself and treats anything that does not
//! parse as a failed run.

use std::io::{BufRead, Write};

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

impl SimOutput {
    /// Results as CSV with a header `time,<variable>,…` (as fmusim writes them).
    pub fn to_csv(&self) -> Result<String, String> {
        let mut w = csv::Writer::from_writer(Vec::new());
        let mut header = vec!["time".to_string()];
        header.extend(self.columns.iter().map(|c| c.name.clone()));
        w.write_record(&header).map_err(|e| e.to_string())?;
        for (i, t) in self.time.iter().enumerate() {
            let mut row = vec![t.to_string()];
            row.extend(
                self.columns
                    .iter()
                    .map(|c| c.values.get(i).map_or(String::new(), |v| v.to_string())),
            );
            w.write_record(&row).map_err(|e| e.to_string())?;
        }
        String::from_utf8(w.into_inner().map_err(|e| e.to_string())?).map_err(|e| e.to_string())
    }
}

/// What the worker sends back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// The sandbox is in place and the FMU is about to load; lists the active layers.
    Started { sandbox: Vec<String> },
    /// The results follow this line as raw little-endian `f64`s: `rows` time values, then
    /// `rows` values of each column in order. Binary because formatting and parsing millions
    /// of numbers as JSON text cost more than simulating them (benches/engine.rs).
    Done {
        columns: Vec<String>,
        rows: u64,
        log: String,
    },
    /// The simulation failed in a way the FMU or the request explains.
    Failed { reason: String, log: String },
}

/// What the parent reads from a worker: the messages, with `Done`'s results decoded.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Started(Vec<String>),
    Done(SimOutput),
    Failed { reason: String, log: String },
}

/// Writes one message line.
pub fn send(out: &mut impl Write, message: &Message) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, message)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Writes the results: the `Done` line, then the values.
pub fn send_output(out: &mut impl Write, output: SimOutput) -> std::io::Result<()> {
    let rows = output.time.len();
    if output.columns.iter().any(|c| c.values.len() != rows) {
        return Err(std::io::Error::other(
            "a column has a different length than time",
        ));
    }
    let columns = output.columns.iter().map(|c| c.name.clone()).collect();
    serde_json::to_writer(
        &mut *out,
        &Message::Done {
            columns,
            rows: rows as u64,
            log: output.log,
        },
    )?;
    out.write_all(b"\n")?;
    for values in std::iter::once(&output.time).chain(output.columns.iter().map(|c| &c.values)) {
        for v in values {
            out.write_all(&v.to_le_bytes())?;
        }
    }
    out.flush()
}

/// Reads the next reply; `None` at the end of the stream. `max_values` bounds what a `Done`
/// may announce, so a broken worker cannot make the parent allocate without limit.
pub fn read_reply(reader: &mut impl BufRead, max_values: u64) -> Result<Option<Reply>, String> {
    let mut line = String::new();
    if reader.read_line(&mut line).map_err(|e| e.to_string())? == 0 {
        return Ok(None);
    }
    let message: Message =
        serde_json::from_str(&line).map_err(|e| format!("unreadable worker message: {e}"))?;
    Ok(Some(match message {
        Message::Started { sandbox } => Reply::Started(sandbox),
        Message::Failed { reason, log } => Reply::Failed { reason, log },
        Message::Done { columns, rows, log } => {
            let values = rows.saturating_mul(columns.len() as u64 + 1);
            if values > max_values {
                return Err(format!(
                    "the worker announced {values} values; at most {max_values} are accepted"
                ));
            }
            let mut read_column = || -> Result<Vec<f64>, String> {
                let mut bytes = vec![0u8; rows as usize * 8];
                reader
                    .read_exact(&mut bytes)
                    .map_err(|e| format!("truncated results: {e}"))?;
                Ok(bytes
                    .chunks_exact(8)
                    .map(|b| f64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                    .collect())
            };
            let time = read_column()?;
            let mut out = Vec::with_capacity(columns.len());
            for name in columns {
                out.push(Column {
                    name,
                    values: read_column()?,
                });
            }
            Reply::Done(SimOutput {
                time,
                columns: out,
                log,
            })
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_round_trip_through_the_binary_encoding() {
        let output = SimOutput {
            time: vec![0.0, 0.5, 1.0],
            columns: vec![Column {
                name: "h".into(),
                values: vec![1.0, f64::MIN_POSITIVE, -2.5],
            }],
            log: "ok".into(),
        };
        let mut wire = Vec::new();
        send(
            &mut wire,
            &Message::Started {
                sandbox: vec!["seccomp".into()],
            },
        )
        .unwrap();
        send_output(&mut wire, output.clone()).unwrap();
        let mut reader = std::io::BufReader::new(&wire[..]);
        assert_eq!(
            read_reply(&mut reader, 100).unwrap(),
            Some(Reply::Started(vec!["seccomp".into()]))
        );
        assert_eq!(
            read_reply(&mut reader, 100).unwrap(),
            Some(Reply::Done(output))
        );
        assert_eq!(read_reply(&mut reader, 100).unwrap(), None);
    }

    #[test]
    fn announced_sizes_are_bounded_and_truncation_is_an_error() {
        let mut wire = Vec::new();
        send(
            &mut wire,
            &Message::Done {
                columns: vec!["x".into()],
                rows: 1_000,
                log: String::new(),
            },
        )
        .unwrap();
        assert!(read_reply(&mut std::io::BufReader::new(&wire[..]), 100).is_err());
        assert!(
            read_reply(&mut std::io::BufReader::new(&wire[..]), 10_000)
                .unwrap_err()
                .contains("truncated")
        );
    }
}
