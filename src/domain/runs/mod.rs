//! Runs: a simulation a user asked for, paid for exactly once.
//!
//! Starting a run checks everything the request and the model description can tell (a 422
//! naming every problem, before any credit moves), then reserves its credits, records the run
//! and (with an `Idempotency-Key`) the key, all in one transaction, so the balance can never
//! go negative and a retried request never charges twice. The run then waits for a worker
//! (`queued`), executes in a sandboxed worker (`running`), and when it ends one more
//! transaction settles it by the rule in [`charging`]: charged (and a usage row written), or
//! refunded. A run interrupted by a stop of the server is refunded at the next start.

pub mod charging;
pub mod progress;
pub mod queue;
pub mod reference;
pub mod status;

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::tokens::RequestFacts;
use crate::auth::{self, Principal};
use crate::domain::error::{AppError, AppResult};
use crate::domain::fmus::{self, FmuRecord};
use crate::domain::ids::{Credits, FmuId, KeyId, RunId, UserId};
use crate::domain::states;
use crate::objects::Key;
use crate::sim::plan::{self, RunSettings};
use crate::sim::protocol::{CsOptions, Interface, Solver};
use crate::sim::result_file::ResultFile;
use crate::sim::runner::SimError;
use crate::state::State;
use crate::store::queue::CancelRequest;
use crate::store::runs::{Idempotency, Reservation, RunCaps, RunRow, Settlement};
use crate::store::{Store, StoreError};
use charging::{FailureKind, ModelOrigin, RunEnd};
pub use status::RunStatus;

/// How long an idempotency key is remembered.
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// Who starts a run: an API key (checked for `simulate` on this FMU at this cost) or a
/// dashboard session.
pub enum Starter {
    Key(String),
    Session(UserId),
}

/// A run request: what every face (the v1 API, the compatibility routes, the dashboard's
/// form) turns its own input into. It is checked once, against the model, by [`start`].
#[derive(Clone, Debug)]
pub struct RunRequest {
    /// `lib:<Model>`, `lib:<Model>@fmi2`, `msl:<Model>`, or an uploaded FMU's id.
    pub fmu: String,
    pub settings: RunSettings,
    /// Wall-clock limit; at most (and by default) the configured maximum.
    pub timeout: Option<Duration>,
    /// The name usage rows show (default: the library id or the model name).
    pub name: Option<String>,
    /// FMU states: start from a saved one, save the final one.
    pub states: crate::domain::states::StateRequest,
    /// A reference to compare the result with once the run succeeds.
    pub reference: Option<reference::ReferenceRequest>,
}

/// The settings a run was made with, as stored and shown.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct StoredSettings {
    pub interface: Interface,
    pub solver: Solver,
    pub start_time: f64,
    pub stop_time: f64,
    pub output_interval: f64,
    pub step_size: Option<f64>,
    pub tolerance: f64,
    pub start_values: Vec<(String, String)>,
    pub outputs: Vec<String>,
    pub inputs: Vec<String>,
    pub timeout_seconds: f64,
    /// Left out when on (the default), so settings stored before it hash the same.
    #[serde(default = "on", skip_serializing_if = "is_on")]
    pub record_events: bool,
    #[serde(default, skip_serializing_if = "CsOptions::is_default")]
    pub cs_options: CsOptions,
    #[serde(default, skip_serializing_if = "is_off")]
    pub display_units: bool,
    // FMU states, left out when unused so settings stored before them hash the same.
    /// The state the run started from, as the request named it (a run or state id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initial_state: Option<String>,
    #[serde(default, skip_serializing_if = "is_off")]
    pub save_final_state: bool,
    // Logging, left out when unused (same reason).
    #[serde(default, skip_serializing_if = "is_off")]
    pub log_fmi_calls: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_categories: Vec<String>,
    /// The reference the result is compared with; left out when none, so settings stored
    /// before it hash the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<reference::StoredReference>,
}

fn is_off(b: &bool) -> bool {
    !*b
}

fn on() -> bool {
    true
}

fn is_on(b: &bool) -> bool {
    *b
}

/// A run that has started: its row.
pub struct Started {
    pub run: RunRow,
}

fn hash_request(
    fmu: &FmuId,
    settings: &StoredSettings,
    inputs: &[crate::sim::protocol::InputSignal],
) -> String {
    let text = serde_json::to_string(&(fmu, settings, inputs)).unwrap_or_default();
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The names a check can use for this FMU: its id, and its library id.
fn fmu_names(record: &FmuRecord) -> Vec<String> {
    let mut names = vec![record.id.to_string()];
    names.extend(record.library_id.clone());
    names
}

/// Validates, authorises, reserves credits and records the run, then starts it. Returns as
/// soon as the run is recorded; [`wait`] waits for its end.
pub async fn start(
    state: &State,
    starter: Starter,
    new: RunRequest,
    idempotency_key: Option<String>,
) -> AppResult<Started> {
    taking_work(state)?;
    let cost = state.config.run_cost;
    let (principal, record) = authorize_simulation(state, starter, &new.fmu, cost).await?;
    // Held until the run ends: the cache keeps the extracted FMU while the worker reads it.
    let fmu = fmus::extracted(state, &record.id).await?;
    let fmu_dir = fmu.dir().to_path_buf();
    let max = state.config.max_run_time;
    let timeout = new.timeout.unwrap_or(max);
    // A carried reference's experiment fills the settings the request left open.
    let mut settings = new.settings.clone();
    let mut reference_problems = Vec::new();
    let prepared = match &new.reference {
        Some(request) => {
            let (request, dir, mut taken) = (request.clone(), fmu_dir.clone(), settings);
            let (prepared, taken) = tokio::task::spawn_blocking(move || {
                (reference::prepare(&request, &dir, &mut taken), taken)
            })
            .await?;
            settings = taken;
            prepared.map_err(|p| reference_problems.push(p)).ok()
        }
        None => None,
    };
    settings.states = states_settings(state, &principal.user_id, &record, &new).await?;
    let mut job = plan::plan(&record.info, &fmu_dir, &settings);
    if !reference_problems.is_empty() {
        match &mut job {
            Ok(_) => job = Err(plan::Problems(reference_problems)),
            Err(problems) => problems.0.extend(reference_problems),
        }
    }
    if timeout.is_zero() || timeout > max {
        let problem = plan::Problem::new(
            "timeout",
            format!(
                "timeout must be more than 0 and at most {} s",
                max.as_secs()
            ),
        );
        match &mut job {
            Ok(_) => job = Err(plan::Problems(vec![problem])),
            Err(problems) => problems.0.push(problem),
        }
    }
    let job = job.map_err(AppError::Problems)?;
    let origin = if record.library_id.is_some() {
        ModelOrigin::Library
    } else {
        ModelOrigin::Upload
    };
    let stored = StoredSettings {
        interface: job.interface,
        solver: job.solver,
        start_time: job.start_time,
        stop_time: job.stop_time,
        output_interval: job.output_interval,
        step_size: job.step_size,
        tolerance: job.tolerance,
        // The names as the caller gave them (an alias stays an alias); the job has resolved
        // them to the variables the worker knows.
        start_values: settings.start_values.clone(),
        outputs: job.recorded.iter().map(|v| v.name.clone()).collect(),
        inputs: settings.inputs.iter().map(|s| s.name.clone()).collect(),
        timeout_seconds: timeout.as_secs_f64(),
        record_events: job.record_events,
        cs_options: job.cs_options,
        display_units: new.settings.display_units,
        initial_state: new.states.initial.as_ref().map(|r| r.trim().to_string()),
        save_final_state: job.save_final_state,
        log_fmi_calls: job.log_fmi_calls,
        log_categories: job.log_categories.clone(),
        reference: prepared.as_ref().map(|p| p.stored.clone()),
    };
    let request_hash = hash_request(&record.id, &stored, &job.inputs);
    let name = new
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| record.display_name().to_string());
    let run = RunRow {
        id: RunId::generate(),
        user_id: principal.user_id.clone(),
        api_key_id: principal.key_id.clone(),
        fmu_id: record.id.clone(),
        fmu_name: name.chars().take(200).collect(),
        status: RunStatus::Queued,
        settings: serde_json::to_string(&stored)?,
        credits_reserved: cost,
        credits_charged: Credits::ZERO,
        error: None,
        log: None,
        created_at: crate::store::now_ms(),
        started_at: None,
        finished_at: None,
        failure_kind: None,
        charged: false,
        result_removed_at: None,
        reference_check: None,
        progress_time: None,
        lease_node: None,
    };
    let billing = crate::links::billing(&state.config.public_url);
    let max_active = state.config.max_active_runs_per_user;
    let idempotency = idempotency_key.map(|key| Idempotency {
        key,
        request_hash,
        since: run.created_at - IDEMPOTENCY_WINDOW_MS,
    });
    let keep_state = job.save_final_state.then(|| KeepState {
        user_id: principal.user_id.clone(),
        identity: states::Identity::of(&record, job.interface),
    });
    let queued = queue::QueuedJob {
        job,
        timeout_ms: timeout.as_millis() as u64,
        origin,
        keep_state,
        reference: prepared.as_ref().map(queue::QueuedReference::from),
    };
    let queued = serde_json::to_string(&queued)?;
    let outcome = state
        .store
        .reserve_run(
            run.clone(),
            queued,
            idempotency,
            RunCaps {
                max_active,
                per_minute: state.config.runs_per_minute,
            },
        )
        .await?;
    match outcome {
        Reservation::Replay {
            same_request: true,
            run: Some(run),
        } => {
            return Ok(Started { run: *run });
        }
        Reservation::Replay { .. } => {
            return Err(AppError::Invalid(
                "this Idempotency-Key was already used with a different request".into(),
            ));
        }
        Reservation::NoCredits => {
            return Err(AppError::InsufficientCredits(format!(
                "a run costs {cost} credit{}; your balance is too low. Buy credits at {billing}",
                if cost.get() == 1 { "" } else { "s" }
            )));
        }
        Reservation::Busy => {
            return Err(AppError::Busy(
                format!(
                    "you already have {max_active} run{} queued or running, the most one account may have: \
                     wait for one to finish (or cancel one) and try again",
                    if max_active == 1 { "" } else { "s" }
                ),
                BUSY_RETRY_AFTER,
            ));
        }
        Reservation::RateLimited { retry_after_ms } => {
            let wait = std::time::Duration::from_millis(retry_after_ms.max(1) as u64);
            return Err(AppError::RateLimited(wait));
        }
        Reservation::AccountGone => {
            return Err(AppError::Auth(crate::auth::AuthError::Revoked));
        }
        Reservation::Reserved => {}
    }
    state.queue_wake.notify_one();
    Ok(Started { run })
}

/// Whether the service takes new simulations: not while a start-up check fails, nor while
/// the data volume is low (settling the work in flight needs its space).
pub fn taking_work(state: &State) -> AppResult<()> {
    if let Some(reason) = state.readiness.simulation_problem() {
        return Err(AppError::Unavailable(format!(
            "simulations are unavailable: {reason}"
        )));
    }
    if let Some(problem) =
        crate::machine::disk_problem(&state.config.data_dir, state.config.disk_reserve_bytes)
    {
        return Err(AppError::Unavailable(problem));
    }
    Ok(())
}

/// Who may simulate which model at what cost: the caller (an API key is checked for
/// `simulate` on this FMU at this `cost`, so an attenuated key cannot exceed its limits), the
/// caller's rate of new work, and the model, resolved in the caller's view. What every kind
/// of simulation (a run, a sweep) does before its own checks.
pub async fn authorize_simulation(
    state: &State,
    starter: Starter,
    fmu: &str,
    cost: Credits,
) -> AppResult<(Principal, FmuRecord)> {
    // Library ids are the same for everyone, so the FMU can be named before the key is
    // checked; visibility is checked with the key's user below.
    let user_for_lookup = match &starter {
        Starter::Session(user_id) => user_id.clone(),
        Starter::Key(_) => UserId::from(String::new()),
    };
    let named = fmus::resolve(state, &user_for_lookup, fmu).await.ok();
    let principal = match starter {
        Starter::Session(user_id) => Principal {
            user_id,
            key_id: None,
        },
        Starter::Key(key) => {
            let names = named
                .as_ref()
                .map(fmu_names)
                .unwrap_or_else(|| vec![fmu.trim().to_ascii_lowercase()]);
            let facts = RequestFacts {
                operation: "simulate",
                fmu: names,
                cost: Some(cost.get()),
            };
            auth::authenticate_key(state, key, facts).await?
        }
    };
    let limiter_key = principal
        .key_id
        .as_ref()
        .map_or_else(|| principal.user_id.to_string(), KeyId::to_string);
    state
        .run_limit
        .check(&limiter_key)
        .map_err(AppError::RateLimited)?;
    // What was found above is visible to this caller (their own view, or a library model
    // everyone sees); only an upload named under an API key needs the key's user.
    let record = match named {
        Some(record) => record,
        None => fmus::resolve(state, &principal.user_id, fmu).await?,
    };
    Ok((principal, record))
}

/// Starts a run and waits briefly for it (up to the configured `sync_wait`): the answer of
/// the API's run creation, on both the v1 and the compatibility routes. Returns the run as it
/// then is, with its results when it succeeded in time.
pub async fn start_and_wait(
    state: &State,
    starter: Starter,
    request: RunRequest,
    idempotency_key: Option<String>,
) -> AppResult<(RunRow, Option<ResultFile>)> {
    let started = start(state, starter, request, idempotency_key).await?;
    let run = wait(&state.store, &started.run.id, state.config.sync_wait).await?;
    let output = kept_result(state, &run).await?;
    Ok((run, output))
}

/// What `Retry-After` says when a user is at their cap of active runs: a guess at when one of
/// their runs ends (most take seconds).
const BUSY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

/// Where the worker writes a run's results as it runs (`runs/<id>.partial` in the data
/// directory); a succeeded run's are then put in the object store ([`Key::Result`]).
fn partial_path(state: &State, run_id: &RunId) -> PathBuf {
    state
        .config
        .data_dir
        .join("runs")
        .join(format!("{run_id}.partial"))
}

/// Where earlier versions kept a run's results (one JSON document in the data directory),
/// converted on first read.
fn legacy_result_path(state: &State, run_id: &RunId) -> PathBuf {
    partial_path(state, run_id).with_extension("json")
}

/// A new, empty file for a run's results, in the data directory; [`keep_result`] puts it in
/// the object store when the run succeeds, and it is removed once the run is settled.
fn create_result_file(state: &State, run_id: &RunId) -> std::io::Result<(PathBuf, std::fs::File)> {
    let path = partial_path(state, run_id);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    Ok((path, file))
}

/// Whose the final state a run saves is, and which FMU it belongs to.
#[derive(Serialize, Deserialize)]
pub struct KeepState {
    pub user_id: UserId,
    pub identity: states::Identity,
}

/// The state settings of a run: the initial state resolved (the user's, saved by this FMU
/// through the interface the run uses) and whether to save the final one. Before any credit
/// moves: a missing state is a 404, another FMU's a 422.
async fn states_settings(
    state: &State,
    user_id: &UserId,
    record: &FmuRecord,
    new: &RunRequest,
) -> AppResult<crate::sim::fmu_state::StateSettings> {
    let initial = match &new.states.initial {
        Some(reference) => {
            let interface =
                new.settings
                    .interface
                    .unwrap_or(if record.info.co_simulation.is_some() {
                        Interface::Cs
                    } else {
                        Interface::Me
                    });
            Some(states::initial_state(state, user_id, reference, record, interface).await?)
        }
        None => None,
    };
    Ok(crate::sim::fmu_state::StateSettings {
        initial,
        save_final: new.states.save_final,
    })
}

/// Keeps the final state of a successful run that saved one; a state that cannot be kept
/// fails the run (and its results are not kept either).
async fn keep_final_state(
    state: &State,
    run_id: &RunId,
    keep: Option<&KeepState>,
    result: Result<crate::sim::runner::RunOutcome, SimError>,
) -> Result<crate::sim::runner::RunOutcome, SimError> {
    let outcome = result?;
    let (Some(keep), Some(saved)) = (keep, outcome.final_state.as_ref()) else {
        return Ok(outcome);
    };
    match states::keep_run_state(state, &keep.user_id, run_id, &keep.identity, saved).await {
        Ok(()) => Ok(outcome),
        Err(e) => {
            let _ = remove_result(state, run_id).await;
            Err(e)
        }
    }
}

/// Runs a leased run's job in `slot`, its results written to a file in the data directory
/// as the worker sends them and put in the object store when it succeeds; its progress goes
/// to this process's board while it runs. Returns the outcome and the results' local file
/// (the caller removes it once the run is settled).
async fn execute_in(
    state: &State,
    run_id: &RunId,
    job: crate::sim::protocol::Job,
    timeout: Duration,
    cancel: tokio::sync::oneshot::Receiver<()>,
    slot: crate::sim::runner::Slot<'_>,
) -> (
    Result<crate::sim::runner::RunOutcome, SimError>,
    Option<PathBuf>,
) {
    let (partial, file) = match create_result_file(state, run_id) {
        Ok(created) => created,
        Err(e) => {
            let error = SimError::Internal(format!("a file for the results: {e}"));
            return (Err(error), None);
        }
    };
    state.progress.begin(run_id, job.start_time, job.stop_time);
    let report = state.progress.reporter(run_id);
    let result = slot.run(job, timeout, Some(cancel), file, report).await;
    state.progress.end(run_id);
    let result = keep_result(state, run_id, &partial, result).await;
    (result, Some(partial))
}

/// Counts a run's end and tells its owner's webhooks, once it is settled.
async fn announce_end(state: &State, run_id: &RunId, end: RunEnd) {
    state.metrics.run_ended(end);
    crate::domain::webhooks::run_ended(state, run_id, end).await;
}

/// Ends a run and settles its credits in one transaction, by the rule in [`charging`].
async fn settle(
    state: &State,
    run_id: &RunId,
    lease: Option<&str>,
    origin: ModelOrigin,
    result: Result<crate::sim::runner::RunOutcome, SimError>,
    reference_check: Option<String>,
) -> Result<(), AppError> {
    let result = result.map(|outcome| outcome.log);
    if let Err(e) = &result
        && e.is_service_fault()
    {
        tracing::error!(%run_id, error = %e, "a run failed because of the service");
    }
    let decide = move |run: &RunRow| {
        let (end, error, log) = match result {
            Ok(log) => (RunEnd::Succeeded, None, Some(log)),
            Err(SimError::Cancelled) if run.status == RunStatus::Queued => (
                RunEnd::CancelledQueued,
                Some(SimError::Cancelled.to_string()),
                None,
            ),
            Err(SimError::Cancelled) => (
                RunEnd::CancelledRunning,
                Some(SimError::Cancelled.to_string()),
                None,
            ),
            Err(e) => {
                let error = Some(e.to_string());
                let kind = FailureKind::from(&e);
                let log = match e {
                    SimError::Failed { log, .. } => Some(log),
                    _ => None,
                };
                (RunEnd::Failed(kind), error, log)
            }
        };
        Settlement {
            end,
            charged: charging::is_charged(end, origin),
            error,
            log,
            reference_check,
        }
    };
    let ended = state.store.settle_run(run_id, lease, decide).await?;
    if let Some(end) = ended {
        announce_end(state, run_id, end).await;
    }
    Ok(())
}

/// Puts a successful run's results (the worker wrote them to `partial` as it ran) in the
/// object store. Only once the put succeeded has the run succeeded: a failed put is the
/// service's fault (`SimError::Internal`: failed, refunded). The caller removes `partial`.
async fn keep_result(
    state: &State,
    run_id: &RunId,
    partial: &std::path::Path,
    result: Result<crate::sim::runner::RunOutcome, SimError>,
) -> Result<crate::sim::runner::RunOutcome, SimError> {
    let outcome = result?;
    match state
        .objects
        .put_file(&Key::Result(run_id.clone()), partial)
        .await
    {
        Ok(()) => Ok(outcome),
        Err(e) => {
            // The detail (the store's address, its answer) is logged, never shown.
            tracing::error!(%run_id, error = %e, "cannot put a run's results in the object store");
            Err(SimError::Internal(
                "its results could not be stored; the run was refunded".into(),
            ))
        }
    }
}

/// Keeps the reference a run is compared with, for its page (which draws it under the
/// result); only the plot needs it, so a failure is logged, not the run's.
async fn keep_reference(state: &State, run_id: &RunId, prepared: &reference::Prepared) {
    let key = Key::RunReference(run_id.clone());
    let bytes = bytes::Bytes::from(prepared.text.clone().into_bytes());
    if let Err(e) = state.objects.put_bytes(&key, bytes).await {
        tracing::warn!(%run_id, error = %e, "a run's reference could not be kept for its page");
    }
}

/// Removes a run's stored results (the retention clean-up, account deletion) and the
/// reference kept with them, and a result earlier versions stored; already gone is fine.
pub async fn remove_result(state: &State, run_id: &RunId) -> std::io::Result<()> {
    for key in [
        Key::Result(run_id.clone()),
        Key::RunReference(run_id.clone()),
    ] {
        state.objects.delete(&key).await?;
    }
    match std::fs::remove_file(legacy_result_path(state, run_id)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// When a succeeded run's results are (or were) removed: its end plus the retention period.
pub fn result_expires_at(state: &State, run: &RunRow) -> Option<i64> {
    if run.status != RunStatus::Succeeded {
        return None;
    }
    let retention = state.config.result_retention_ms();
    run.finished_at.map(|end| end.saturating_add(retention))
}

/// The results to show with a run: `None` unless it succeeded and they are still kept.
pub async fn kept_result(state: &State, run: &RunRow) -> AppResult<Option<ResultFile>> {
    if run.status == RunStatus::Succeeded && run.result_removed_at.is_none() {
        result(state, run).await.map(Some)
    } else {
        Ok(None)
    }
}

/// The reference a run was compared with, while its results are kept: what the run page
/// draws under the result. `None` for a run without one (or whose copy is gone).
pub async fn kept_reference(
    state: &State,
    run: &RunRow,
) -> AppResult<Option<crate::sim::reference::Reference>> {
    if run.reference_check.is_none() || run.result_removed_at.is_some() {
        return Ok(None);
    }
    let key = Key::RunReference(run.id.clone());
    let read = match state.objects.get_bytes(&key).await {
        Ok(bytes) => std::str::from_utf8(&bytes)
            .ok()
            .and_then(|text| crate::sim::reference::Reference::parse(text).ok()),
        Err(_) => None,
    };
    Ok(read)
}

/// Serialises conversions of results stored by earlier versions, so that parallel reads of
/// one old result convert it once, one old result in memory at a time.
static CONVERTING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A run's results, once it has succeeded and until the retention clean-up removed them:
/// the open file, read in chunks by whoever serves it. Results stored by earlier versions
/// (JSON) are converted on first read.
pub async fn result(state: &State, run: &RunRow) -> AppResult<ResultFile> {
    if let Some(removed) = run.result_removed_at {
        return Err(AppError::Removed(format!(
            "the results of run {} were removed on {}: results are kept for {} days after a \
             run ends",
            run.id,
            crate::domain::rfc3339_ms(removed),
            state.config.result_retention.as_secs() / 86_400
        )));
    }
    if run.status != RunStatus::Succeeded {
        return Err(AppError::Conflict(format!(
            "run {} has no results: it is {}",
            run.id, run.status
        )));
    }
    let key = Key::Result(run.id.clone());
    let legacy = legacy_result_path(state, &run.id);
    let file = match state.objects.open_file(&key).await {
        // Not there: an earlier version's JSON is converted (once, by whoever comes first),
        // and a reader that found neither because another one was converting at that moment
        // finds the converted result on its second look (the suite saw a 500 without it).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if legacy.exists() {
                convert_legacy(state, &run.id, legacy).await?;
            }
            state.objects.open_file(&key).await?
        }
        other => other?,
    };
    Ok(tokio::task::spawn_blocking(move || ResultFile::from_file(file)).await??)
}

/// Converts a result an earlier version stored as JSON in the data directory, puts it in the
/// object store and removes the JSON; parallel reads convert it once.
async fn convert_legacy(state: &State, run_id: &RunId, legacy: PathBuf) -> AppResult<()> {
    let _converting = CONVERTING.lock().await;
    if !legacy.exists() {
        return Ok(());
    }
    let converted = partial_path(state, run_id).with_extension("converting");
    let (from, to) = (legacy.clone(), converted.clone());
    tokio::task::spawn_blocking(move || ResultFile::convert_legacy(&from, &to)).await??;
    let put = state
        .objects
        .put_file(&Key::Result(run_id.clone()), &converted)
        .await;
    let _ = std::fs::remove_file(&converted);
    put?;
    let _ = std::fs::remove_file(&legacy);
    Ok(())
}

/// Waits up to `limit` for the run to end; returns its row as it then is.
pub async fn wait(store: &Store, run_id: &RunId, limit: Duration) -> AppResult<RunRow> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut pause = Duration::from_millis(2);
    loop {
        let run = store
            .get_run(run_id)
            .await?
            .ok_or(AppError::NotFound("run"))?;
        if run.status.is_finished() || tokio::time::Instant::now() >= deadline {
            return Ok(run);
        }
        tokio::time::sleep(pause.min(deadline - tokio::time::Instant::now())).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

pub async fn get(store: &Store, user_id: &UserId, run_id: &RunId) -> AppResult<RunRow> {
    store
        .user_run(user_id, run_id)
        .await?
        .ok_or(AppError::NotFound("run"))
}

pub async fn list(
    store: &Store,
    user_id: &UserId,
    status: Option<RunStatus>,
    fmu: Option<String>,
    limit: u32,
    offset: u64,
) -> AppResult<(Vec<RunRow>, u64)> {
    let limit = limit.clamp(1, 500);
    let offset = crate::domain::usage::page_offset(offset)?;
    Ok(store.list_runs(user_id, status, fmu, limit, offset).await?)
}

/// How far a running run has got; `None` for a run not in a worker.
pub fn progress(state: &State, run: &RunRow) -> Option<progress::Progress> {
    if run.status != RunStatus::Running {
        return None;
    }
    // This process's worker reports as it runs (and nothing once it is done); another
    // process's, with its heartbeats.
    if run.lease_node.as_deref() == Some(state.node_id.as_str()) {
        return state.progress.get(&run.id);
    }
    state.progress.get(&run.id).or_else(|| {
        let time = run.progress_time?;
        let settings: StoredSettings = serde_json::from_str(&run.settings).ok()?;
        Some(progress::Progress {
            start_time: settings.start_time,
            stop_time: settings.stop_time,
            time: time.clamp(
                settings.start_time,
                settings.stop_time.max(settings.start_time),
            ),
        })
    })
}

/// Cancels a queued or running run (its credits are refunded when it stops).
pub async fn cancel(state: &State, user_id: &UserId, run_id: &RunId) -> AppResult<RunRow> {
    let run = get(&state.store, user_id, run_id).await?;
    if run.status.is_finished() {
        return Err(AppError::Conflict(format!(
            "run {run_id} has already ended ({})",
            run.status
        )));
    }
    let asked = state
        .store
        .request_cancel(run_id, |_| Settlement {
            end: RunEnd::CancelledQueued,
            charged: false,
            error: Some(SimError::Cancelled.to_string()),
            log: None,
            reference_check: None,
        })
        .await?;
    match asked {
        CancelRequest::Settled(end) => announce_end(state, run_id, end).await,
        // A worker of this process stops now; another process's on its next heartbeat.
        CancelRequest::Asked => {
            let sender = state
                .cancels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(run_id);
            if let Some(sender) = sender {
                let _ = sender.send(());
            }
        }
        CancelRequest::Ended => {}
    }
    wait(&state.store, run_id, Duration::from_secs(10)).await
}

/// At start-up (and at shutdown): every run left queued or running by the last stop was
/// interrupted by it; the service pays.
pub async fn recover(store: &Store) -> Result<usize, StoreError> {
    let message = "the service stopped during this run; its credits were refunded";
    store
        .settle_unfinished(move |_| {
            // Interrupted runs are never charged, whoever's model it was.
            let end = RunEnd::Failed(FailureKind::Interrupted);
            Settlement {
                end,
                charged: charging::is_charged(end, ModelOrigin::Upload),
                error: Some(message.to_string()),
                log: None,
                reference_check: None,
            }
        })
        .await
}

/// The start-up self-test: one tiny library simulation (Dahlquist, x' = -k x) through the
/// real pool and worker, checked against its closed form. Proves that the data directory, the
/// extracted library, the worker binary and the sandbox all work together before the server
/// says it is ready. Returns how long it took, or why it failed, in one line.
pub async fn self_test(state: &State) -> Result<Duration, String> {
    const MODEL: &str = "lib:Dahlquist";
    let started = std::time::Instant::now();
    // Nobody's view: library models are visible to everyone.
    let record = fmus::resolve(state, &UserId::from(""), MODEL)
        .await
        .map_err(|e| format!("{MODEL}: {e}"))?;
    let fmu = fmus::extracted(state, &record.id)
        .await
        .map_err(|e| format!("{MODEL}: {e}"))?;
    let dir = fmu.dir();
    let settings = RunSettings {
        stop_time: Some(0.1),
        output_interval: Some(0.05),
        outputs: vec!["x".into()],
        ..RunSettings::default()
    };
    let job = plan::plan(&record.info, dir, &settings).map_err(|e| format!("{MODEL}: {e}"))?;
    let outcome = state
        .workers
        .run(job, Duration::from_secs(30))
        .await
        .map_err(|e| format!("{MODEL}: {e}"))?;
    // Read back from the results file, as every reader of results does.
    let output = &outcome
        .result
        .read_all()
        .map_err(|e| format!("{MODEL}: reading the results: {e}"))?;
    let end = output
        .columns
        .first()
        .and_then(|c| {
            c.values
                .len()
                .checked_sub(1)
                .and_then(|i| c.values.number(i))
        })
        .zip(output.time.last().copied());
    match end {
        Some((x, t)) if (x - (-t).exp()).abs() < 1e-6 && (t - 0.1).abs() < 1e-9 => {
            Ok(started.elapsed())
        }
        other => Err(format!(
            "{MODEL} gave {other:?} at the end, not x(0.1) = exp(-0.1)"
        )),
    }
}
