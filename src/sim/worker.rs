//! The worker process (`fmu-gateway worker`): reads one job, sandboxes itself, runs the FMU,
//! writes the result, exits. Everything an FMU can do wrong happens here, not in the server.

use std::io::{BufRead, Read, Write};
use std::os::fd::FromRawFd;
use std::path::Path;

use std::rc::Rc;

use super::engine;
use super::kpi;
use super::progress;
use super::protocol::{self, Job, Message, PROTOCOL_VERSION};
use super::sandbox;

/// Largest job the worker reads (input signals make jobs large).
const MAX_JOB_BYTES: u64 = 64 << 20;

/// Runs the worker on this process's stdin/stdout. Returns the exit code.
pub fn main() -> i32 {
    // The result channel is a private copy of stdout; fd 1 then points at stderr, so whatever
    // the FMU (or a library) prints cannot corrupt the protocol.
    // SAFETY: plain fd calls on descriptors this process owns.
    let channel = unsafe {
        let fd = libc::fcntl(1, libc::F_DUPFD_CLOEXEC, 3);
        if fd < 0 || libc::dup2(2, 1) < 0 {
            return 2;
        }
        // Nothing the server had open (by mistake or not) reaches the FMU: only stdio and
        // the channel stay.
        libc::close_range(3, (fd - 1) as libc::c_uint, 0);
        libc::close_range((fd + 1) as libc::c_uint, libc::c_uint::MAX, 0);
        std::fs::File::from_raw_fd(fd)
    };
    let mut out = std::io::BufWriter::new(channel);
    let sent = match read_job() {
        Ok(job) => run(&job, &mut out),
        Err(e) => protocol::send(
            &mut out,
            &Message::Failed {
                reason: e.to_string(),
                log: String::new(),
            },
        )
        .is_ok(),
    };
    if sent { 0 } else { 3 }
}

/// Why the worker could not read its job (sent back as the run's failure reason).
#[derive(Debug, thiserror::Error)]
enum JobError {
    #[error("cannot read the job: {0}")]
    Read(#[from] std::io::Error),
    #[error("malformed job: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error("job protocol version {0} is not {PROTOCOL_VERSION}")]
    Version(u32),
}

fn read_job() -> Result<Job, JobError> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .take(MAX_JOB_BYTES)
        .read_line(&mut line)?;
    let job: Job = serde_json::from_str(&line)?;
    if job.version != PROTOCOL_VERSION {
        return Err(JobError::Version(job.version));
    }
    Ok(job)
}

/// Sandboxes, reports the layers, simulates, reports the result. `false` if the parent has
/// stopped listening.
fn run(job: &Job, out: &mut std::io::BufWriter<std::fs::File>) -> bool {
    let entered = match sandbox::enter(
        Path::new(&job.fmu_dir),
        Path::new(&job.scratch_dir),
        &job.limits,
    ) {
        Ok(entered) => entered,
        Err(e) => {
            let failed = Message::Failed {
                reason: format!("sandbox: {e}"),
                log: String::new(),
            };
            return protocol::send(out, &failed).is_ok();
        }
    };
    let layers = entered.layers.iter().map(|l| l.to_wire()).collect();
    if protocol::send(out, &Message::Started { sandbox: layers }).is_err() {
        return false;
    }
    if job.outputs.first().map(String::as_str) == Some(PROBE) {
        return true;
    }
    // Inside the sandbox the FMU and scratch may be mounted elsewhere.
    let job = &Job {
        fmu_dir: entered.fmu_dir.display().to_string(),
        scratch_dir: entered.scratch_dir.display().to_string(),
        ..job.clone()
    };
    if let Some(batch) = &job.batch {
        return run_batch(job, batch, out);
    }
    let result = match progress_channel(out) {
        Ok(channel) => {
            let reporter = Rc::new(progress::Reporter::new(channel));
            let report = Rc::clone(&reporter);
            let result = engine::simulate(job, &(Rc::new(move |t| report.reached(t)) as _));
            // The time the run ended at, whatever the throttle held back.
            if let Some(&end) = result.as_ref().ok().and_then(|o| o.time.last()) {
                reporter.finished(end);
            }
            result
        }
        Err(e) => Err(engine::EngineError::Simulation(format!(
            "cannot report progress: {e}"
        ))),
    };
    let log = read_log(Path::new(&job.scratch_dir), 0, job.log_limit);
    match result {
        Ok(mut output) => {
            output.log = log;
            protocol::send_output(out, output).is_ok()
        }
        Err(e) => {
            let reason = failure_reason(&e, &log, job);
            protocol::send(out, &Message::Failed { reason, log }).is_ok()
        }
    }
}

/// Why a simulation failed, as users read it: the engine's error with the FMU's last error
/// message, and a full scratch directory if it is full.
fn failure_reason(e: &engine::EngineError, log: &str, job: &Job) -> String {
    let reason = with_last_error(e.to_string(), log);
    // A full scratch also swallows the FMU's own last words (its log lives there).
    match sandbox::scratch_full(Path::new(&job.scratch_dir)) {
        Some(full) => format!("{reason} ({full})"),
        None => reason,
    }
}

/// Runs a batch's cases one after the other and reports each as it ends (`CaseDone` with its
/// KPIs and, when asked, its results; or `CaseFailed` with its part of the FMU's log), then
/// `BatchDone`. Case ends are the progress of a batch: no `Progress` lines. A failure that
/// hits every case alike (a KPI of no recorded column, an unreadable model description)
/// fails each case with it. `false` if the parent has stopped listening.
fn run_batch(
    job: &Job,
    batch: &protocol::Batch,
    out: &mut std::io::BufWriter<std::fs::File>,
) -> bool {
    let scratch = Path::new(&job.scratch_dir);
    let checked: Result<(), String> = batch
        .kpis
        .iter()
        .try_for_each(|spec| kpi::check(spec, &job.recorded));
    let mut listening = true;
    let mut report =
        |case: &protocol::Case,
         log_start: u64,
         result: Result<protocol::SimOutput, engine::EngineError>| {
            let sent = match result {
                Ok(output) => {
                    let kpis = kpi::of_output(&batch.kpis, &output);
                    let trajectory = batch.trajectories.then_some(&output);
                    protocol::send_case(out, case.index, kpis, trajectory)
                }
                Err(e) => {
                    let log = read_log(scratch, log_start, job.log_limit);
                    let reason = failure_reason(&e, &log, job);
                    protocol::send(
                        out,
                        &Message::CaseFailed {
                            index: case.index,
                            reason,
                            log,
                        },
                    )
                }
            };
            listening = sent.is_ok();
            listening
        };
    let warm = match checked
        .map_err(engine::EngineError::Request)
        .and_then(|()| engine::simulate_batch(job, batch, &mut report))
    {
        Ok(warm) => warm,
        Err(e) => {
            let reason = e.to_string();
            for case in &batch.cases {
                let failed = Message::CaseFailed {
                    index: case.index,
                    reason: reason.clone(),
                    log: String::new(),
                };
                if protocol::send(out, &failed).is_err() {
                    return false;
                }
            }
            false
        }
    };
    listening && protocol::send(out, &Message::BatchDone { warm }).is_ok()
}

/// A second writer on the result channel for progress lines. `out` holds nothing unsent
/// while the engine runs (`Started` was flushed), and each progress line is flushed whole,
/// so the lines never interleave.
fn progress_channel(
    out: &mut std::io::BufWriter<std::fs::File>,
) -> std::io::Result<std::io::BufWriter<std::fs::File>> {
    out.flush()?;
    Ok(std::io::BufWriter::new(out.get_ref().try_clone()?))
}

/// fmi-rs reports "FMI call failed"; the FMU's own last error message says why.
fn with_last_error(reason: String, log: &str) -> String {
    match log
        .lines()
        .rev()
        .find(|l| l.contains("[ERROR]") || l.contains("[FATAL]"))
    {
        Some(line) => {
            let message = line.rsplit("] ").next().unwrap_or(line).trim();
            format!("{reason}: {message}")
        }
        None => reason,
    }
}

/// A job whose only output is this name only enters the sandbox and reports its layers
/// (the server's start-up check).
pub const PROBE: &str = "\u{0}probe";

/// The FMU's log from byte `from` on (from its start if it is shorter: a fresh instance
/// began it again), cut to `limit` bytes (keeping the start and the end, where errors are).
fn read_log(scratch: &Path, from: u64, limit: usize) -> String {
    let Ok(bytes) = std::fs::read(scratch.join(engine::LOG_FILE)) else {
        return String::new();
    };
    let from = usize::try_from(from).unwrap_or(usize::MAX);
    let bytes = bytes.get(from..).unwrap_or(&bytes);
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= limit {
        return text.into_owned();
    }
    let half = limit / 2;
    let start: String = text.chars().take(half).collect();
    let end_chars: Vec<char> = text.chars().rev().take(half).collect();
    let end: String = end_chars.into_iter().rev().collect();
    format!(
        "{start}\n… (log truncated: {} bytes in all) …\n{end}",
        text.len()
    )
}
