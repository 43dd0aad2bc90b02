//! The server's side of a batch: the cases of one sweep run one after the other in one
//! sandboxed worker (warm starts: the process, the sandbox and the model are set up once, and
//! on the fast Co-Simulation loop one instance is reset between cases).
//!
//! Contract: every case of the batch is either reported exactly once through `on_case`, as
//! it ends, or listed in [`BatchEnd::unrun`] (for the caller to run again in a fresh worker).
//! The wall-clock deadline is per case. A crash, a timeout, a cancel or a malformed answer
//! during case k reports case k with that error (classified as for a single run) and lists
//! the cases after it as unrun; a worker that fails before it loads the model leaves every
//! case unrun. Once the model is loaded, its code shares the worker's channel: everything
//! the worker sends is checked as [`protocol::read_conversation`] checks a run's answer
//! (bounded lines, results copied to files with bounded counts), and cases may only be
//! reported in the batch's order, each once, with one KPI per requested KPI.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::protocol::{
    Batch, Job, Message, PROTOCOL_VERSION, ProtocolError, Trajectory, check_done, copy_values,
    read_message,
};
use super::result_file::ResultFile;
use super::runner::{
    SimError, Slot, Stopped, WorkerPool, check_model_files, explain_exit, make_scratch,
    start_worker,
};

/// A case that ran to its end.
#[derive(Debug)]
pub struct CaseResult {
    /// One per KPI the batch asked for, in order ([`super::kpi::compute`]).
    pub kpis: Vec<Option<f64>>,
    /// The case's results, when the batch asked for trajectories (checked and open).
    pub trajectory: Option<ResultFile>,
    /// From the end of the case before it (or the worker's start) to this case's end.
    pub elapsed: Duration,
}

/// How one case ended.
#[derive(Debug)]
pub struct CaseOutcome {
    pub index: u32,
    pub result: Result<CaseResult, SimError>,
}

/// How a batch ended.
#[derive(Debug)]
pub struct BatchEnd {
    /// Cases never reported, in the batch's order: to run again in a fresh worker.
    pub unrun: Vec<u32>,
    /// The worker reused one instance for its cases (reset between them). False when each
    /// case instantiated its own, and when the batch stopped before the worker said.
    pub warm: bool,
    /// Why the batch stopped before its last case, if it did.
    pub cause: Option<SimError>,
}

/// Gives the file a case's trajectory is written to (empty, open for reading and writing);
/// asked only when the batch asks for trajectories, once per case that sends one.
pub type TrajectoryFile = Box<dyn FnMut(u32) -> std::io::Result<std::fs::File> + Send>;

/// Told each case as it ends, on the thread that reads the worker's answer.
pub type OnCase = Box<dyn FnMut(CaseOutcome) + Send>;

impl WorkerPool {
    /// Runs a batch job in the next free slot (see [`Slot::run_batch`]).
    pub async fn run_batch(
        &self,
        job: Job,
        per_case_timeout: Duration,
        trajectory_file: TrajectoryFile,
        on_case: OnCase,
    ) -> BatchEnd {
        match self.slot(None).await {
            Ok(slot) => {
                slot.run_batch(job, per_case_timeout, None, trajectory_file, on_case)
                    .await
            }
            Err(e) => unrun_all(&job, e),
        }
    }
}

impl Slot<'_> {
    /// Runs the cases of `job.batch` in one worker in this slot, each within
    /// `per_case_timeout` of the end of the one before it (the first, of the worker's start),
    /// stopped early when `cancel` fires (the running case is reported
    /// `SimError::Cancelled`, the rest unrun). See the module's contract.
    pub async fn run_batch(
        self,
        mut job: Job,
        per_case_timeout: Duration,
        cancel: Option<tokio::sync::oneshot::Receiver<()>>,
        trajectory_file: TrajectoryFile,
        on_case: OnCase,
    ) -> BatchEnd {
        if let Err(e) = check_batch_job(&job) {
            return unrun_all(&job, e);
        }
        let Some(batch) = job.batch.clone() else {
            return unrun_all(
                &job,
                SimError::Internal("a batch job without a batch".into()),
            );
        };
        if batch.cases.is_empty() {
            return BatchEnd {
                unrun: Vec::new(),
                warm: false,
                cause: None,
            };
        }
        let config = &self.pool.config();
        let scratch = match make_scratch(&config.scratch_root) {
            Ok(scratch) => scratch,
            Err(e) => {
                let e = SimError::Internal(format!("scratch directory: {e}"));
                return unrun_all(&job, e);
            }
        };
        let (stop_tx, stop_rx) = std::sync::mpsc::channel();
        if let Some(cancel) = cancel {
            let stop = stop_tx.clone();
            tokio::spawn(async move {
                if cancel.await.is_ok() {
                    let _ = stop.send(super::runner::Stop::Cancel);
                }
            });
        }
        job.version = PROTOCOL_VERSION;
        job.scratch_dir = scratch.path().display().to_string();
        job.limits = config.limits;
        job.log_limit = config.log_limit;
        let exe = config.exe.clone();
        let limits = config.limits;
        // How many cases `on_case` has been told, should the supervisor itself fail.
        let told = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&told);
        let indices: Vec<u32> = batch.cases.iter().map(|c| c.index).collect();
        let supervised = tokio::task::spawn_blocking(move || {
            let worker = Supervised {
                exe: &exe,
                job: &job,
                batch: &batch,
                timeout: per_case_timeout,
                limits: &limits,
            };
            let mut on_case = on_case;
            let mut counting = |outcome: CaseOutcome| {
                on_case(outcome);
                counted.fetch_add(1, Ordering::SeqCst);
            };
            worker.run((stop_tx, stop_rx), trajectory_file, &mut counting)
        })
        .await;
        drop(scratch);
        supervised.unwrap_or_else(|e| BatchEnd {
            unrun: indices[told.load(Ordering::SeqCst).min(indices.len())..].to_vec(),
            warm: false,
            cause: Some(SimError::Internal(format!("supervisor: {e}"))),
        })
    }
}

/// What the parent refuses to send as a batch: no batch, a case number twice, or a final
/// state to save (a batch has no way to return one per case).
fn check_batch_job(job: &Job) -> Result<(), SimError> {
    let batch = job
        .batch
        .as_ref()
        .ok_or_else(|| SimError::Internal("a batch job without a batch".into()))?;
    let mut seen = std::collections::HashSet::with_capacity(batch.cases.len());
    if let Some(twice) = batch.cases.iter().find(|c| !seen.insert(c.index)) {
        return Err(SimError::Internal(format!(
            "case {} is twice in the batch",
            twice.index
        )));
    }
    if job.save_final_state {
        return Err(SimError::Internal(
            "a batch cannot save final FMU states".into(),
        ));
    }
    check_model_files(Path::new(&job.fmu_dir))
}

/// Every case unrun, for `cause`.
fn unrun_all(job: &Job, cause: SimError) -> BatchEnd {
    BatchEnd {
        unrun: job
            .batch
            .iter()
            .flat_map(|b| b.cases.iter().map(|c| c.index))
            .collect(),
        warm: false,
        cause: Some(cause),
    }
}

/// One batch's worker, supervised on a blocking thread.
struct Supervised<'a> {
    exe: &'a Path,
    job: &'a Job,
    batch: &'a Batch,
    timeout: Duration,
    limits: &'a super::sandbox::Limits,
}

impl Supervised<'_> {
    fn run(
        &self,
        stop: (
            std::sync::mpsc::Sender<super::runner::Stop>,
            std::sync::mpsc::Receiver<super::runner::Stop>,
        ),
        mut trajectory_file: TrajectoryFile,
        on_case: &mut dyn FnMut(CaseOutcome),
    ) -> BatchEnd {
        let all = || self.batch.cases.iter().map(|c| c.index).collect();
        let mut worker = match start_worker(self.exe, self.job, self.timeout, stop) {
            Ok(worker) => worker,
            Err(e) => {
                return BatchEnd {
                    unrun: all(),
                    warm: false,
                    cause: Some(e),
                };
            }
        };
        let heard = match worker.child.stdout.take() {
            Some(stdout) => {
                let mut reader = BufReader::with_capacity(64 << 10, stdout);
                let mut ended = |outcome: CaseOutcome| {
                    worker.case_ended();
                    on_case(outcome);
                };
                read_batch(
                    &mut reader,
                    self.batch,
                    super::engine::MAX_VALUES as u64,
                    &mut *trajectory_file,
                    &mut ended,
                )
            }
            None => HeardBatch::default(),
        };
        if heard.warm.is_none() {
            // Unless the worker finished, we stop listening: it must not hold its slot.
            worker.kill();
        }
        let exit = worker.end();
        if let Some(warm) = heard.warm {
            return BatchEnd {
                unrun: Vec::new(),
                warm,
                cause: None,
            };
        }
        let cases = &self.batch.cases[heard.reported.min(self.batch.cases.len())..];
        if heard.sandbox.is_none() {
            let cause = match exit.stopped {
                Some(Stopped::Cancelled) => SimError::Cancelled,
                Some(Stopped::Deadline) => SimError::Internal(format!(
                    "the worker did not start within {} s",
                    self.timeout.as_secs_f64()
                )),
                None => match (heard.broken, heard.failed) {
                    (Some(ProtocolError::Malformed(r)), _) => {
                        SimError::Internal(format!("the worker sent a malformed answer: {r}"))
                    }
                    (_, Some((reason, _))) => SimError::Internal(format!(
                        "the worker could not prepare the run: {reason}"
                    )),
                    _ => SimError::Internal(format!(
                        "the worker ended before it started the model: {}",
                        explain_exit(exit.status, exit.max_rss_kib, self.limits, &exit.stderr)
                    )),
                },
            };
            return BatchEnd {
                unrun: cases.iter().map(|c| c.index).collect(),
                warm: false,
                cause: Some(cause),
            };
        }
        let error = match exit.stopped {
            Some(Stopped::Deadline) => SimError::Timeout(self.timeout),
            Some(Stopped::Cancelled) => SimError::Cancelled,
            None => match (heard.broken, heard.failed) {
                (Some(ProtocolError::Malformed(r)), _) => {
                    SimError::Crashed(format!("its worker sent a malformed answer ({r})"))
                }
                (Some(e @ ProtocolError::Storage(_)), _) => e.into(),
                (_, Some((reason, log))) => SimError::Failed { reason, log },
                _ => explain_exit(exit.status, exit.max_rss_kib, self.limits, &exit.stderr),
            },
        };
        let Some((running, rest)) = cases.split_first() else {
            // Every case was reported; the worker failed after the last one.
            return BatchEnd {
                unrun: Vec::new(),
                warm: false,
                cause: None,
            };
        };
        on_case(CaseOutcome {
            index: running.index,
            result: Err(error.clone()),
        });
        BatchEnd {
            unrun: rest.iter().map(|c| c.index).collect(),
            warm: false,
            cause: Some(error),
        }
    }
}

/// What the parent heard from a batch's worker.
#[derive(Debug, Default)]
pub struct HeardBatch {
    /// The sandbox layers, once the worker said `Started`.
    pub sandbox: Option<Vec<String>>,
    /// Cases reported (so the batch's case at this position was running when the answer
    /// stopped, if it stopped early).
    pub reported: usize,
    /// `BatchDone`: every case reported; whether they reused one instance.
    pub warm: Option<bool>,
    /// A `Failed` message (the worker could not run the batch at all).
    pub failed: Option<(String, String)>,
    /// Why the answer stopped early, if it did.
    pub broken: Option<ProtocolError>,
}

/// Reads a batch worker's whole answer: `Started`, then one `CaseDone` (with its trajectory's
/// values, written to the file `trajectory_file` gives, when the batch asks for them) or
/// `CaseFailed` per case in the batch's order, each handed to `on_case` as it arrives, then
/// `BatchDone`; or `Failed`. `Progress` lines are ignored. Memory stays bounded whatever the
/// worker sends (bounded lines, values never held, nothing read after the answer); what
/// breaks the protocol stops the reading with [`HeardBatch::broken`] set, the case in
/// progress not reported.
pub fn read_batch(
    reader: &mut impl BufRead,
    batch: &Batch,
    max_values: u64,
    trajectory_file: &mut dyn FnMut(u32) -> std::io::Result<std::fs::File>,
    on_case: &mut dyn FnMut(CaseOutcome),
) -> HeardBatch {
    let mut heard = HeardBatch::default();
    let mut since = Instant::now();
    let broken = loop {
        let message = match read_message(reader) {
            Ok(Some(message)) => message,
            Ok(None) => return heard,
            Err(e) => break e,
        };
        let started = heard.sandbox.is_some();
        match message {
            Message::Started { .. } if started => {
                break malformed("the worker said Started twice");
            }
            Message::Started { sandbox } => {
                heard.sandbox = Some(sandbox);
                since = Instant::now();
            }
            Message::Failed { reason, log } => {
                heard.failed = Some((reason, log));
                return heard;
            }
            _ if !started => break malformed("the worker reported before it started"),
            Message::Progress { .. } => {}
            Message::Done { .. } => break malformed("the worker sent a run's results in a batch"),
            Message::BatchDone { warm } => {
                if heard.reported != batch.cases.len() {
                    break ProtocolError::Malformed(format!(
                        "the batch ended with {} of {} cases reported",
                        heard.reported,
                        batch.cases.len()
                    ));
                }
                heard.warm = Some(warm);
                return heard;
            }
            Message::CaseDone {
                index,
                kpis,
                trajectory,
            } => {
                if let Err(e) = expect_case(batch, heard.reported, index) {
                    break e;
                }
                if kpis.len() != batch.kpis.len() {
                    break ProtocolError::Malformed(format!(
                        "case {index} has {} KPIs for {} asked",
                        kpis.len(),
                        batch.kpis.len()
                    ));
                }
                let trajectory = match (trajectory, batch.trajectories) {
                    (Some(t), true) => {
                        match read_trajectory(reader, index, t, max_values, trajectory_file) {
                            Ok(file) => Some(file),
                            Err(e) => break e,
                        }
                    }
                    (None, false) => None,
                    (Some(_), false) => {
                        break malformed("the worker sent results nobody asked for");
                    }
                    (None, true) => break malformed("the worker sent a case without its results"),
                };
                heard.reported += 1;
                let elapsed = since.elapsed();
                since = Instant::now();
                on_case(CaseOutcome {
                    index,
                    result: Ok(CaseResult {
                        kpis,
                        trajectory,
                        elapsed,
                    }),
                });
            }
            Message::CaseFailed { index, reason, log } => {
                if let Err(e) = expect_case(batch, heard.reported, index) {
                    break e;
                }
                heard.reported += 1;
                since = Instant::now();
                on_case(CaseOutcome {
                    index,
                    result: Err(SimError::Failed { reason, log }),
                });
            }
        }
    };
    heard.broken = Some(broken);
    heard
}

fn malformed(reason: &str) -> ProtocolError {
    ProtocolError::Malformed(reason.into())
}

/// A case report must be for the next case of the batch.
fn expect_case(batch: &Batch, reported: usize, index: u32) -> Result<(), ProtocolError> {
    match batch.cases.get(reported) {
        Some(case) if case.index == index => Ok(()),
        Some(case) => Err(ProtocolError::Malformed(format!(
            "the worker reported case {index} where case {} was next",
            case.index
        ))),
        None => Err(ProtocolError::Malformed(format!(
            "the worker reported case {index} after the last case"
        ))),
    }
}

/// Copies a case's announced results into its file and opens them as a result file; values a
/// result file refuses are the worker's (the model's) doing.
fn read_trajectory(
    reader: &mut impl BufRead,
    index: u32,
    trajectory: Trajectory,
    max_values: u64,
    trajectory_file: &mut dyn FnMut(u32) -> std::io::Result<std::fs::File>,
) -> Result<ResultFile, ProtocolError> {
    let Trajectory {
        variables,
        rows,
        blob_bytes,
    } = trajectory;
    let total = check_done(&variables, rows, blob_bytes, max_values)?;
    let storage = |e: std::io::Error| ProtocolError::Storage(e.to_string());
    let file = trajectory_file(index).map_err(storage)?;
    let mut out = std::io::BufWriter::with_capacity(64 << 10, file);
    let header = super::result_file::Header {
        rows,
        variables,
        blob_bytes,
    };
    header.write(&mut out).map_err(storage)?;
    copy_values(reader, rows, total, &mut out)?;
    out.flush().map_err(storage)?;
    let file = out.into_inner().map_err(|e| storage(e.into_error()))?;
    let result = ResultFile::from_file(file).map_err(|e| {
        ProtocolError::Malformed(format!("case {index}'s results are unreadable ({e})"))
    })?;
    result.check_values().map_err(|e| {
        ProtocolError::Malformed(format!("case {index}'s results are unreadable ({e})"))
    })?;
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::kpi::{KpiKind, KpiSpec};
    use crate::sim::protocol::{Case, SimOutput, send_case};
    use crate::sim::recorded::{Column, Recorded, ValueType, Values};

    fn batch(indices: &[u32], kpis: usize, trajectories: bool) -> Batch {
        Batch {
            cases: indices
                .iter()
                .map(|&index| Case {
                    index,
                    start_values: vec![],
                })
                .collect(),
            kpis: (0..kpis)
                .map(|_| KpiSpec {
                    variable: "x".into(),
                    kind: KpiKind::Max,
                })
                .collect(),
            trajectories,
        }
    }

    fn started() -> Message {
        Message::Started { sandbox: vec![] }
    }

    fn wire(messages: &[Message]) -> Vec<u8> {
        let mut wire = Vec::new();
        for m in messages {
            crate::sim::protocol::send(&mut wire, m).unwrap();
        }
        wire
    }

    fn done(index: u32, kpis: usize) -> Message {
        Message::CaseDone {
            index,
            kpis: vec![Some(1.0); kpis],
            trajectory: None,
        }
    }

    /// Reads `wire` for `batch`: what was heard, and the cases told (index, ok).
    fn hear(wire: &[u8], batch: &Batch) -> (HeardBatch, Vec<(u32, bool)>) {
        let mut told = Vec::new();
        let mut files = |_: u32| tempfile::tempfile();
        let heard = read_batch(
            &mut std::io::BufReader::new(wire),
            batch,
            100,
            &mut files,
            &mut |o: CaseOutcome| told.push((o.index, o.result.is_ok())),
        );
        (heard, told)
    }

    fn malformed(heard: &HeardBatch) -> &str {
        match &heard.broken {
            Some(ProtocolError::Malformed(reason)) => reason,
            other => panic!("not malformed: {other:?} {heard:?}"),
        }
    }

    #[test]
    fn cases_in_order_then_batch_done() {
        let b = batch(&[7, 3, 9], 2, false);
        let failed = Message::CaseFailed {
            index: 3,
            reason: "no".into(),
            log: String::new(),
        };
        let bytes = wire(&[
            started(),
            done(7, 2),
            Message::Progress { time: Some(1.0) },
            failed,
            done(9, 2),
            Message::BatchDone { warm: true },
        ]);
        let (heard, told) = hear(&bytes, &b);
        assert!(heard.broken.is_none(), "{heard:?}");
        assert_eq!(heard.warm, Some(true));
        assert_eq!(told, [(7, true), (3, false), (9, true)]);
    }

    /// Whatever the FMU's code writes: a case out of order, twice, unknown, with the wrong
    /// number of KPIs, results nobody asked for, an early end. Each stops the reading with
    /// the case in progress untold.
    #[test]
    fn a_hostile_answer_is_refused_and_the_case_in_progress_is_not_told() {
        let b = batch(&[1, 2, 3], 1, false);
        let bad: [(Vec<Message>, &str); 7] = [
            (vec![done(2, 1)], "case 2 where case 1 was next"),
            (vec![done(1, 1), done(1, 1)], "case 1 where case 2 was next"),
            (vec![done(99, 1)], "case 99 where case 1 was next"),
            (vec![done(1, 0)], "0 KPIs for 1 asked"),
            (vec![done(1, 1000)], "1000 KPIs for 1 asked"),
            (
                vec![done(1, 1), Message::BatchDone { warm: true }],
                "1 of 3 cases reported",
            ),
            (
                vec![Message::Done {
                    variables: vec![],
                    rows: 0,
                    blob_bytes: 0,
                    log: String::new(),
                    state: None,
                }],
                "a run's results in a batch",
            ),
        ];
        for (messages, needle) in bad {
            let mut all = vec![started()];
            all.extend(messages);
            let (heard, told) = hear(&wire(&all), &b);
            assert!(malformed(&heard).contains(needle), "{needle}: {heard:?}");
            assert!(told.len() <= 1 && told.iter().all(|t| t.0 == 1), "{told:?}");
            assert_eq!(heard.reported, told.len());
        }
        // A case after the last one.
        let (heard, told) = hear(
            &wire(&[started(), done(1, 1), done(2, 1)]),
            &batch(&[1], 1, false),
        );
        assert!(
            malformed(&heard).contains("after the last case"),
            "{heard:?}"
        );
        assert_eq!(told.len(), 1);
        // Before Started, nothing is the model's yet.
        let (heard, _) = hear(&wire(&[done(1, 1)]), &b);
        assert!(malformed(&heard).contains("before it started"));
        // A line without end is refused at the frame bound.
        let mut reader = std::io::BufReader::new(std::io::repeat(b'x'));
        let heard = read_batch(
            &mut reader,
            &b,
            100,
            &mut |_| tempfile::tempfile(),
            &mut |_| {},
        );
        assert!(malformed(&heard).contains("longer than"), "{heard:?}");
    }

    fn output(rows: usize) -> SimOutput {
        SimOutput {
            time: (0..rows).map(|i| i as f64).collect(),
            variables: vec![Recorded::scalar("x", ValueType::Float64)],
            columns: vec![Column {
                name: "x".into(),
                values: Values::Float((0..rows).map(|i| i as f64 * 0.5).collect()),
            }],
            log: String::new(),
            final_state: None,
        }
    }

    #[test]
    fn trajectories_arrive_in_their_files_and_are_checked() {
        let b = batch(&[4, 5], 1, true);
        let mut bytes = wire(&[started()]);
        send_case(&mut bytes, 4, vec![Some(1.5)], Some(&output(4))).unwrap();
        send_case(&mut bytes, 5, vec![None], Some(&output(2))).unwrap();
        crate::sim::protocol::send(&mut bytes, &Message::BatchDone { warm: false }).unwrap();
        let mut asked = Vec::new();
        let mut files = |i: u32| {
            asked.push(i);
            tempfile::tempfile()
        };
        let mut results = Vec::new();
        let heard = read_batch(&mut &bytes[..], &b, 100, &mut files, &mut |o| {
            results.push(o)
        });
        assert_eq!(heard.warm, Some(false), "{heard:?}");
        assert_eq!(asked, [4, 5]);
        let first = results[0].result.as_ref().unwrap();
        assert_eq!(first.kpis, [Some(1.5)]);
        let stored = first.trajectory.as_ref().unwrap().read_all().unwrap();
        assert_eq!(
            (stored.time, stored.columns),
            (output(4).time, output(4).columns)
        );

        // More values than the cap, or a case without its results, is refused.
        let mut bytes = wire(&[started()]);
        send_case(&mut bytes, 4, vec![Some(1.5)], Some(&output(101))).unwrap();
        let (heard, told) = hear(&bytes, &b);
        assert!(malformed(&heard).contains("at most 100"), "{heard:?}");
        assert!(told.is_empty());
        let (heard, _) = hear(&wire(&[started(), done(4, 1)]), &b);
        assert!(malformed(&heard).contains("without its results"));
        let mut bytes = wire(&[started()]);
        send_case(&mut bytes, 4, vec![Some(1.5)], Some(&output(3))).unwrap();
        let (heard, _) = hear(&bytes, &batch(&[4], 1, false));
        assert!(malformed(&heard).contains("nobody asked"));
        // Results cut short: the worker died writing them.
        let mut bytes = wire(&[started()]);
        send_case(&mut bytes, 4, vec![Some(1.5)], Some(&output(3))).unwrap();
        bytes.truncate(bytes.len() - 3);
        let (heard, _) = hear(&bytes, &b);
        assert!(
            matches!(heard.broken, Some(ProtocolError::Truncated(_))),
            "{heard:?}"
        );
    }
}
