//! The server's side of simulation: a bounded pool of sandboxed worker processes.
//!
//! Each run gets a fresh `fmu-gateway worker` process in its own process group, a clean
//! environment (no server secrets), a scratch directory, and a wall-clock deadline after
//! which the whole group is killed. The pool limits how many run at once; the others wait in
//! a queue whose length is visible. Every failure is a [`SimError`] that says what happened.

use std::io::{BufReader, Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::protocol::{self, Conversation, End, Job, PROTOCOL_VERSION, ProtocolError};
use super::result_file::ResultFile;
use super::sandbox::Limits;

/// How a run can fail. The messages are shown to users.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    #[error("the simulation did not finish within {} s and was stopped", crate::format::Number(.0.as_secs_f64()))]
    Timeout(Duration),
    #[error("the FMU crashed: {0}")]
    Crashed(String),
    #[error("the FMU ran out of memory (the limit is {} MiB)", .0 >> 20)]
    OutOfMemory(u64),
    #[error("the FMU used more than its {0} s of CPU time")]
    CpuLimit(u64),
    /// The FMU or the request made the simulation fail; the log says more.
    #[error("{reason}")]
    Failed { reason: String, log: String },
    #[error("the run was cancelled")]
    Cancelled,
    /// Something on our side (spawning, missing files, the protocol, a sandbox layer, a
    /// worker that died before it loaded the model): not the user's fault.
    #[error("the simulation service failed: {0}")]
    Internal(String),
    /// The results could not be stored on the server's disk (the worker is not at fault).
    #[error("the simulation service failed: {0}")]
    Protocol(#[from] ProtocolError),
}

impl SimError {
    /// Failures of the service itself (the worker, the files, the protocol, the sandbox), as
    /// opposed to what the model did or the limits the caller chose.
    pub fn is_service_fault(&self) -> bool {
        matches!(self, SimError::Internal(_) | SimError::Protocol(_))
    }
}

/// A successful run: its results (in the file the run was given, checked and open), the FMU's
/// log, and the sandbox layers it ran under.
#[derive(Debug)]
pub struct RunOutcome {
    pub result: ResultFile,
    pub log: String,
    pub sandbox: Vec<String>,
    pub elapsed: Duration,
    /// The FMU state saved after the last step, when the job asked for it.
    pub final_state: Option<super::fmu_state::SavedState>,
}

/// Told each simulation time a worker reports (finite, within the run's start and stop
/// time), on the thread that reads the worker's answer.
pub type OnProgress = Box<dyn FnMut(f64) + Send>;

/// Settings of the pool.
#[derive(Clone, Debug)]
pub struct PoolConfig {
    /// The binary to run as `<exe> worker` (the server's own executable).
    pub exe: PathBuf,
    /// Where per-run scratch directories are made.
    pub scratch_root: PathBuf,
    /// Runs at once; more wait in the queue.
    pub workers: usize,
    pub limits: Limits,
    /// Bytes of FMU log kept per run.
    pub log_limit: usize,
}

pub struct WorkerPool {
    config: PoolConfig,
    slots: Semaphore,
    waiting: AtomicUsize,
}

/// Bytes of a worker's stderr kept for crash reports.
const MAX_STDERR_BYTES: u64 = 16 << 10;

impl WorkerPool {
    pub fn new(config: PoolConfig) -> Arc<WorkerPool> {
        let workers = config.workers.max(1);
        Arc::new(WorkerPool {
            slots: Semaphore::new(workers),
            waiting: AtomicUsize::new(0),
            config,
        })
    }

    /// Runs waiting for a free worker.
    pub fn queued(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Workers running a job now.
    pub fn busy(&self) -> usize {
        self.config
            .workers
            .max(1)
            .saturating_sub(self.slots.available_permits())
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    /// Runs one job (its `scratch_dir`, `limits`, `log_limit` and `version` are filled in
    /// here) with a wall-clock `timeout`; the results go to an unnamed temporary file.
    pub async fn run(&self, job: Job, timeout: Duration) -> Result<RunOutcome, SimError> {
        self.run_reporting(job, timeout, Box::new(|_| {})).await
    }

    /// As [`WorkerPool::run`], telling `progress` each simulation time the worker reports.
    pub async fn run_reporting(
        &self,
        job: Job,
        timeout: Duration,
        progress: OnProgress,
    ) -> Result<RunOutcome, SimError> {
        let results = tempfile::tempfile()
            .map_err(|e| SimError::Internal(format!("a file for the results: {e}")))?;
        self.slot(None)
            .await?
            .run(job, timeout, None, results, progress)
            .await
    }

    /// Waits for a free worker. `cancel` firing first ends the wait with
    /// `SimError::Cancelled` (the run never started, so it is not the caller's to pay).
    pub async fn slot(
        &self,
        cancel: Option<&mut tokio::sync::oneshot::Receiver<()>>,
    ) -> Result<Slot<'_>, SimError> {
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let permit = match cancel {
            Some(cancel) => tokio::select! {
                permit = self.slots.acquire() => permit,
                _ = cancel => {
                    self.waiting.fetch_sub(1, Ordering::Relaxed);
                    return Err(SimError::Cancelled);
                }
            },
            None => self.slots.acquire().await,
        };
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let permit = permit.map_err(|e| SimError::Internal(e.to_string()))?;
        Ok(Slot {
            pool: self,
            _permit: permit,
        })
    }

    /// Starts a worker that only enters the sandbox, and returns the layers it reports.
    pub async fn probe(&self) -> Result<Vec<String>, SimError> {
        let dir = make_scratch(&self.config.scratch_root)
            .map_err(|e| SimError::Internal(e.to_string()))?;
        let job = Job {
            version: PROTOCOL_VERSION,
            fmu_dir: dir.path().display().to_string(),
            scratch_dir: String::new(),
            interface: super::protocol::Interface::Cs,
            solver: Default::default(),
            start_time: 0.0,
            stop_time: 0.0,
            output_interval: 1.0,
            step_size: None,
            tolerance: 1e-6,
            start_values: vec![],
            outputs: vec![super::worker::PROBE.to_string()],
            recorded: vec![],
            inputs: vec![],
            record_events: false,
            cs_options: Default::default(),
            initial_state: None,
            save_final_state: false,
            log_fmi_calls: false,
            log_categories: vec![],
            log_limit: 0,
            limits: self.config.limits,
            batch: None,
        };
        let exe = self.config.exe.clone();
        let mut job = job;
        job.scratch_dir = job.fmu_dir.clone();
        let ended = tokio::task::spawn_blocking(move || {
            let (stop_tx, stop_rx) = std::sync::mpsc::channel::<Stop>();
            let run = Run {
                results: None,
                progress: Box::new(|_| {}),
            };
            execute(&exe, &job, Duration::from_secs(10), (stop_tx, stop_rx), run)
        })
        .await
        .map_err(|e| SimError::Internal(format!("supervisor: {e}")))??;
        let layers = ended.heard.sandbox.clone();
        drop(dir);
        layers.ok_or_else(
            || match ended.outcome(&self.config.limits, Duration::from_secs(10)) {
                Err(e) => e,
                Ok(_) => SimError::Internal("the probe ran a simulation".into()),
            },
        )
    }
}

/// A worker slot of the pool, held while one run executes.
pub struct Slot<'a> {
    pub(super) pool: &'a WorkerPool,
    _permit: tokio::sync::SemaphorePermit<'a>,
}

impl Slot<'_> {
    /// Runs `job` in this slot, stopped early (worker killed, `SimError::Cancelled`) when
    /// `cancel` fires. The results are copied into `results` (an empty file open for reading
    /// and writing) as the worker sends them, so the server never holds them in memory; the
    /// worker's progress reports go to `progress` as they arrive.
    pub async fn run(
        self,
        mut job: Job,
        timeout: Duration,
        cancel: Option<tokio::sync::oneshot::Receiver<()>>,
        results: std::fs::File,
        progress: OnProgress,
    ) -> Result<RunOutcome, SimError> {
        let config = &self.pool.config;
        check_model_files(Path::new(&job.fmu_dir))?;
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<Stop>();
        if let Some(cancel) = cancel {
            let stop = stop_tx.clone();
            tokio::spawn(async move {
                if cancel.await.is_ok() {
                    let _ = stop.send(Stop::Cancel);
                }
            });
        }
        let scratch = make_scratch(&config.scratch_root)
            .map_err(|e| SimError::Internal(format!("scratch directory: {e}")))?;
        job.version = PROTOCOL_VERSION;
        job.scratch_dir = scratch.path().display().to_string();
        job.limits = config.limits;
        job.log_limit = config.log_limit;
        let exe = config.exe.clone();
        let save_final_state = job.save_final_state;
        let ended = tokio::task::spawn_blocking(move || {
            let run = Run {
                results: Some(results),
                progress,
            };
            execute(&exe, &job, timeout, (stop_tx, stop_rx), run)
        })
        .await
        .map_err(|e| SimError::Internal(format!("supervisor: {e}")))?;
        drop(scratch);
        let outcome = ended?.outcome(&config.limits, timeout)?;
        check_final_state(save_final_state, &outcome)?;
        Ok(outcome)
    }
}

/// A worker that succeeded sent a final state exactly when the job asked for one. The FMU's
/// code shares the worker's channel, so a missing or unasked-for state is the model's doing,
/// as any malformed answer is.
fn check_final_state(asked: bool, outcome: &RunOutcome) -> Result<(), SimError> {
    match (asked, outcome.final_state.is_some()) {
        (true, false) => Err(SimError::Crashed(
            "its worker sent no final FMU state".into(),
        )),
        (false, true) => Err(SimError::Crashed(
            "its worker sent an FMU state nobody asked for".into(),
        )),
        _ => Ok(()),
    }
}

/// The model's files must be where the job says before a worker starts: if they are not,
/// the service lost them (or was given a relative path), which is never the caller's doing.
pub(super) fn check_model_files(dir: &Path) -> Result<(), SimError> {
    if !dir.is_absolute() {
        return Err(SimError::Internal(format!(
            "the model's directory {} is not an absolute path",
            dir.display()
        )));
    }
    let description = dir.join(crate::fmi::archive::MODEL_DESCRIPTION);
    match std::fs::metadata(&description) {
        Ok(meta) if meta.is_file() => Ok(()),
        Ok(_) => Err(SimError::Internal(format!(
            "{} is not a file",
            description.display()
        ))),
        Err(e) => Err(SimError::Internal(format!(
            "the model's files are missing ({}: {e})",
            description.display()
        ))),
    }
}

/// A private scratch directory (mode 0700), removed when dropped.
pub(super) fn make_scratch(root: &Path) -> std::io::Result<tempfile::TempDir> {
    std::fs::create_dir_all(root)?;
    tempfile::Builder::new().prefix("run-").tempdir_in(root)
}

/// What happened to one worker process.
struct Ended {
    heard: Conversation,
    /// The results file after the worker's answer, if there was one to write.
    results: Option<std::io::Result<std::fs::File>>,
    status: i32,
    max_rss_kib: i64,
    stderr: String,
    stopped: Option<Stopped>,
    elapsed: Duration,
}

/// What the watchdog hears: the worker ended by itself, the run is to be cancelled, or a
/// batch's case ended (its deadline starts again for the next case).
pub(super) enum Stop {
    Finished,
    Cancel,
    CaseEnded,
}

/// Why the watchdog killed a worker.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Stopped {
    Deadline,
    Cancelled,
}

impl Ended {
    /// The run's result: the worker's answer, or why there is none.
    ///
    /// The worker says `Started` just before it loads the FMU. Whatever goes wrong before
    /// that (a job it cannot read, a sandbox layer that will not apply, a worker that dies or
    /// hangs while starting) is the service's failure; from then on the FMU's code runs in
    /// the process and can write anything to the channel, so nothing it says after that can
    /// turn its own failure into ours.
    fn outcome(self, limits: &Limits, timeout: Duration) -> Result<RunOutcome, SimError> {
        let started = self.heard.sandbox.is_some();
        match self.stopped {
            Some(Stopped::Deadline) if started => return Err(SimError::Timeout(timeout)),
            Some(Stopped::Deadline) => {
                return Err(SimError::Internal(format!(
                    "the worker did not start within {} s",
                    timeout.as_secs_f64()
                )));
            }
            Some(Stopped::Cancelled) => return Err(SimError::Cancelled),
            None => {}
        }
        match self.heard.broken {
            // Once the FMU has loaded, its code can write to the channel: a malformed answer
            // is the model's doing. Before that it is ours.
            Some(ProtocolError::Malformed(reason)) if started => {
                return Err(SimError::Crashed(format!(
                    "its worker sent a malformed answer ({reason})"
                )));
            }
            Some(ProtocolError::Malformed(reason)) => {
                return Err(SimError::Internal(format!(
                    "the worker sent a malformed answer: {reason}"
                )));
            }
            Some(e @ ProtocolError::Storage(_)) => return Err(e.into()),
            // The worker died while answering; its exit status says why (below).
            Some(ProtocolError::Truncated(_)) | None => {}
        }
        let near_memory_limit =
            (self.max_rss_kib.max(0) as u64) << 10 >= limits.address_space_bytes / 2;
        match (self.heard.end, self.heard.sandbox) {
            (Some(End::Failed { reason, .. }), None) => Err(SimError::Internal(format!(
                "the worker could not prepare the run: {reason}"
            ))),
            (Some(End::Done { log, state, .. }), Some(sandbox)) => {
                let result = self
                    .results
                    .ok_or_else(|| std::io::Error::other("no results file"))
                    .and_then(|file| file)
                    .and_then(ResultFile::from_file)
                    .map_err(|e| SimError::Internal(format!("storing the results: {e}")))?;
                // Values the worker sent that no reader could serve (a Boolean that is not 0
                // or 1, text outside the blob or not UTF-8): the model's doing, as a malformed
                // answer is, and refused now rather than stored unreadable.
                result.check_values().map_err(|e| {
                    SimError::Crashed(format!("its worker sent unreadable results ({e})"))
                })?;
                Ok(RunOutcome {
                    result,
                    log,
                    sandbox,
                    elapsed: self.elapsed,
                    final_state: state,
                })
            }
            // An FMU that handles a failed allocation still ran out of memory.
            (Some(End::Failed { .. }), Some(_)) if near_memory_limit => {
                Err(SimError::OutOfMemory(limits.address_space_bytes))
            }
            (Some(End::Failed { reason, log }), Some(_)) => Err(SimError::Failed { reason, log }),
            // read_conversation never ends with Done before Started.
            (Some(End::Done { .. }), None) | (None, _) => {
                let exit = explain_exit(self.status, self.max_rss_kib, limits, &self.stderr);
                if started {
                    Err(exit)
                } else {
                    Err(SimError::Internal(format!(
                        "the worker ended before it started the model: {exit}"
                    )))
                }
            }
        }
    }
}

/// Where one worker's answer goes: its results (none for the probe) and its progress.
struct Run {
    results: Option<std::fs::File>,
    progress: OnProgress,
}

/// Runs the worker process to completion on this (blocking) thread.
fn execute(
    exe: &Path,
    job: &Job,
    timeout: Duration,
    stop: (
        std::sync::mpsc::Sender<Stop>,
        std::sync::mpsc::Receiver<Stop>,
    ),
    run: Run,
) -> Result<Ended, SimError> {
    let Run {
        results,
        mut progress,
    } = run;
    let mut worker = start_worker(exe, job, timeout, stop)?;
    // The answer is read with bounded memory (bounded lines, results copied straight to the
    // file, at most the engine's cap of them) and nothing after it: the read end is closed
    // when the answer ends, so a worker that keeps writing gets EPIPE instead of our memory.
    let mut writer = results.map(|f| std::io::BufWriter::with_capacity(64 << 10, f));
    let heard = match worker.child.stdout.take() {
        Some(stdout) => {
            let mut reader = BufReader::with_capacity(64 << 10, stdout);
            let sink = writer.as_mut().map(|w| w as &mut dyn Write);
            let progress = protocol::ProgressSink {
                start: job.start_time,
                stop: job.stop_time,
                report: &mut *progress,
            };
            let heard = protocol::read_conversation(
                &mut reader,
                sink,
                super::engine::MAX_VALUES as u64,
                Some(progress),
            );
            if matches!(heard.broken, Some(ProtocolError::Malformed(_))) {
                // We stopped listening; the worker must not hold its slot until the deadline.
                worker.kill();
            }
            heard
        }
        None => Conversation::default(),
    };
    let results = writer.map(|w| w.into_inner().map_err(|e| e.into_error()));
    let exit = worker.end();
    Ok(Ended {
        heard,
        results,
        status: exit.status,
        max_rss_kib: exit.max_rss_kib,
        stderr: exit.stderr,
        stopped: exit.stopped,
        elapsed: exit.elapsed,
    })
}

/// A running worker process: its job written, its stderr drained, a watchdog on it.
pub(super) struct Worker {
    pub child: std::process::Child,
    pid: libc::pid_t,
    watchdog: std::thread::JoinHandle<Option<Stopped>>,
    stop: std::sync::mpsc::Sender<Stop>,
    stderr: Option<std::thread::JoinHandle<String>>,
    started: Instant,
}

/// How a worker process ended.
pub(super) struct Exit {
    pub status: i32,
    pub max_rss_kib: i64,
    pub stderr: String,
    pub stopped: Option<Stopped>,
    pub elapsed: Duration,
}

/// Starts `<exe> worker` in its own process group with a clean environment, a watchdog that
/// kills the group when `timeout` passes without a [`Stop`] (a `CaseEnded` restarts it) or
/// when `Cancel` comes, and writes `job` to it.
pub(super) fn start_worker(
    exe: &Path,
    job: &Job,
    timeout: Duration,
    (stop_tx, stop_rx): (
        std::sync::mpsc::Sender<Stop>,
        std::sync::mpsc::Receiver<Stop>,
    ),
) -> Result<Worker, SimError> {
    let job_line = serde_json::to_vec(job).map_err(|e| SimError::Internal(e.to_string()))?;
    let started = Instant::now();
    let mut child = Command::new(exe)
        .arg("worker")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("LANG", "C.UTF-8")
        .current_dir(&job.scratch_dir)
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| SimError::Internal(format!("cannot start a worker: {e}")))?;
    let pid = child.id() as libc::pid_t;

    // The deadline and cancellation: a watchdog kills the whole process group unless the
    // run ends first.
    let watchdog = std::thread::spawn(move || {
        let mut deadline = Instant::now() + timeout;
        let stopped = loop {
            match stop_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(Stop::Finished) => return None,
                Ok(Stop::CaseEnded) => deadline = Instant::now() + timeout,
                Ok(Stop::Cancel) => break Stopped::Cancelled,
                Err(_) => break Stopped::Deadline,
            }
        };
        // SAFETY: kill takes plain integers. The group cannot have been reaped yet: the
        // supervisor only reaps after telling this watchdog the worker finished.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        Some(stopped)
    });

    // stderr is drained from the start, so a chatty worker can never block on it while we
    // are still writing its job.
    let stderr = child.stderr.take().map(|s| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = s.take(MAX_STDERR_BYTES).read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    });
    if let Some(mut stdin) = child.stdin.take() {
        // A worker that dies early closes the pipe; its exit status explains why.
        let _ = stdin
            .write_all(&job_line)
            .and_then(|_| stdin.write_all(b"\n"));
    }
    Ok(Worker {
        child,
        pid,
        watchdog,
        stop: stop_tx,
        stderr,
        started,
    })
}

impl Worker {
    /// Kills the worker's process group (we stopped listening to it).
    pub fn kill(&self) {
        // SAFETY: kill takes plain integers; the group leader is not reaped yet.
        unsafe { libc::kill(-self.pid, libc::SIGKILL) };
    }

    /// Restarts the watchdog's deadline (a batch's case ended).
    pub fn case_ended(&self) {
        let _ = self.stop.send(Stop::CaseEnded);
    }

    /// Waits for the worker to exit and reaps it, with the watchdog and the stderr reader.
    pub fn end(mut self) -> Exit {
        let (status, max_rss_kib) = wait_without_reaping_then_reap(self.pid, &self.stop);
        let stopped = self.watchdog.join().unwrap_or(None);
        let _ = self.child.try_wait();
        let stderr = self.stderr.and_then(|h| h.join().ok()).unwrap_or_default();
        Exit {
            status,
            max_rss_kib,
            stderr,
            stopped,
            elapsed: self.started.elapsed(),
        }
    }
}

/// Waits for the worker to exit, cancels the watchdog, then reaps it; returns the wait
/// status and the peak resident memory.
fn wait_without_reaping_then_reap(
    pid: libc::pid_t,
    watchdog: &std::sync::mpsc::Sender<Stop>,
) -> (i32, i64) {
    // SAFETY: waitid/wait4 write into the zeroed structs we own.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        while libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOWAIT,
        ) != 0
        {
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                break;
            }
        }
        let _ = watchdog.send(Stop::Finished);
        // Anything the FMU left running in the group goes too, while the unreaped leader
        // still holds the group id (so it cannot belong to anyone else yet).
        libc::kill(-pid, libc::SIGKILL);
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::wait4(pid, &mut status, 0, &mut usage);
        (status, usage.ru_maxrss)
    }
}

/// Why a worker ended without a result.
pub(super) fn explain_exit(
    status: i32,
    max_rss_kib: i64,
    limits: &Limits,
    stderr: &str,
) -> SimError {
    let near_memory_limit = (max_rss_kib as u64) << 10 >= limits.address_space_bytes / 2;
    if libc::WIFSIGNALED(status) {
        let signal = libc::WTERMSIG(status);
        if signal == libc::SIGXCPU {
            return SimError::CpuLimit(limits.cpu_seconds);
        }
        if near_memory_limit || signal == libc::SIGKILL {
            return SimError::OutOfMemory(limits.address_space_bytes);
        }
        let name = match signal {
            libc::SIGSEGV => "segmentation fault (SIGSEGV)".to_string(),
            libc::SIGBUS => "bus error (SIGBUS)".to_string(),
            libc::SIGFPE => "arithmetic exception (SIGFPE)".to_string(),
            libc::SIGILL => "illegal instruction (SIGILL)".to_string(),
            libc::SIGABRT => "aborted (SIGABRT)".to_string(),
            libc::SIGSYS => "a forbidden system call (SIGSYS)".to_string(),
            other => format!("killed by signal {other}"),
        };
        return SimError::Crashed(name);
    }
    if near_memory_limit || stderr.contains("memory allocation") {
        return SimError::OutOfMemory(limits.address_space_bytes);
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    let tail: String = stderr
        .lines()
        .rev()
        .take(5)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join("\n");
    SimError::Crashed(format!(
        "the worker exited with status {code} without a result{}",
        if tail.is_empty() {
            String::new()
        } else {
            format!(": {tail}")
        }
    ))
}
