//! Sweeps: many cases of one model, designed (a grid, a Latin hypercube, a Sobol sequence,
//! or explicit cases), quoted before money moves, paid for together, run in warm batches.
//!
//! Starting a sweep checks every case against the model (a 422 naming each problem, before
//! any credit moves), then holds the whole cost and records the sweep and its cases in one
//! transaction. The [`executor`] then gives batches of cases to workers; each case settles by
//! the runs' charging rule ([`crate::domain::runs::charging`]): a case the service failed is
//! refunded, exactly as a run. Cancelling refunds the cases not started. A stop of the
//! server leaves the cases in the database; the next start resumes the sweep.
//!
//! Servers sharing one PostgreSQL database each drive the sweeps they hold the lease of
//! (those they started or took over): a cancel on any server reaches the driver through the
//! database, and every server takes over, every half lease, the sweeps whose driver stopped
//! renewing ([`spawn_takeover`]). On SQLite the one server resumes every sweep at its start.

pub mod batches;
pub mod cases_parquet;
pub mod design;
pub mod events;
pub mod executor;
pub mod status;
pub mod watch;

use crate::objects::Key;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::Principal;
use crate::domain::error::{AppError, AppResult};
use crate::domain::fmus::{self, FmuRecord};
use crate::domain::ids::{Credits, SweepId, UserId};
use crate::domain::runs::{RunRequest, Starter, StoredSettings};
use crate::sim::kpi::{self, KpiSpec};
use crate::sim::plan::{self, Problem, Problems, RunSettings};
use crate::sim::protocol::Job;
use crate::state::State;
use crate::store::Engine;
use crate::store::runs::Idempotency;
use crate::store::sweeps::{CaseCounts, CaseRow, Orphans, Runner, SweepReservation, SweepRow};
use design::{Cases, Design};
pub use status::SweepStatus;

/// How long an idempotency key is remembered (as for runs).
const IDEMPOTENCY_WINDOW_MS: i64 = 24 * 3600 * 1000;
/// Sweeps one user may have queued or running at once.
pub const MAX_ACTIVE_SWEEPS: u32 = 3;
/// KPIs one sweep may compute.
pub const MAX_KPIS: usize = 50;
/// Cases a quote lists (the rest are counted).
pub const QUOTE_CASES: usize = 100;
/// Problems a refused design reports at most (the first ones, in case order).
const MAX_CASE_PROBLEMS: usize = 20;

/// A sweep request, as every face turns its input into it.
#[derive(Clone, Debug)]
pub struct SweepRequest {
    /// The model and the settings every case shares (as a run's).
    pub base: RunRequest,
    pub design: Design,
    /// The design as the caller gave it, kept to show it.
    pub design_shown: serde_json::Value,
    pub kpis: Vec<KpiSpec>,
    /// Keep each case's recorded trajectories (else only its KPIs).
    pub trajectories: bool,
}

/// What a sweep was made with, as stored.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Stored {
    pub settings: StoredSettings,
    /// The base start values, as the caller gave them.
    pub design: serde_json::Value,
    pub kpis: Vec<KpiSpec>,
    pub trajectories: bool,
    /// The input signals every case gets (their samples: the settings keep only names).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<crate::sim::protocol::InputSignal>,
}

impl SweepRow {
    /// The stored request; `None` (logged) if it does not parse.
    pub fn stored(&self) -> Option<Stored> {
        serde_json::from_str(&self.request)
            .inspect_err(|e| tracing::error!(sweep = %self.id, error = %e, "a sweep's stored request does not parse"))
            .ok()
    }

    /// The varied parameters, in order.
    pub fn parameter_names(&self) -> Vec<String> {
        serde_json::from_str(&self.parameters).unwrap_or_default()
    }
}

/// What a sweep would do and cost, before any credit moves.
#[derive(Clone, Debug)]
pub struct Quote {
    pub case_count: u32,
    /// The first [`QUOTE_CASES`] cases.
    pub cases: Vec<Vec<(String, String)>>,
    pub parameters: Vec<String>,
    pub credits_per_case: Credits,
    pub cost: Credits,
    pub balance: Credits,
    /// The most cases the balance pays for.
    pub affordable_cases: u64,
}

impl Quote {
    pub fn affordable(&self) -> bool {
        self.balance >= self.cost
    }
}

/// A checked sweep, ready to reserve.
struct Checked {
    principal: Principal,
    record: FmuRecord,
    cases: Cases,
    stored: Stored,
    cost: Credits,
}

/// A sweep with its counts by case status.
pub struct SweepView {
    pub sweep: SweepRow,
    pub counts: CaseCounts,
}

/// Checks the request and says what it would cost; nothing is reserved.
pub async fn quote(state: &State, starter: Starter, request: SweepRequest) -> AppResult<Quote> {
    let checked = check(state, starter, &request).await?;
    let balance = state
        .store
        .user(&checked.principal.user_id)
        .await?
        .map_or(Credits::ZERO, |u| u.credits);
    let per_case = state.config.run_cost;
    Ok(Quote {
        case_count: checked.cases.0.len() as u32,
        parameters: checked.cases.parameters(),
        cases: checked.cases.0.iter().take(QUOTE_CASES).cloned().collect(),
        credits_per_case: per_case,
        cost: checked.cost,
        balance,
        affordable_cases: match per_case.get() {
            0 => u64::from(state.config.max_sweep_cases),
            n => (balance.get() / n) as u64,
        },
    })
}

/// Checks, reserves the whole cost and starts the sweep; returns at once.
pub async fn start(
    state: &State,
    starter: Starter,
    request: SweepRequest,
    idempotency_key: Option<String>,
) -> AppResult<SweepRow> {
    crate::domain::runs::taking_work(state)?;
    let checked = check(state, starter, &request).await?;
    let Checked {
        principal,
        record,
        cases,
        stored,
        cost,
    } = checked;
    let request_text = serde_json::to_string(&stored)?;
    let parameters = serde_json::to_string(&cases.parameters())?;
    let hash = {
        let text =
            serde_json::to_string(&(&record.id, &request_text, &cases.0)).unwrap_or_default();
        hex::encode(Sha256::digest(text.as_bytes()))
    };
    let name = request
        .base
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| record.display_name().to_string());
    let now = crate::store::now_ms();
    let sweep = SweepRow {
        id: SweepId::generate(),
        user_id: principal.user_id.clone(),
        api_key_id: principal.key_id.clone(),
        fmu_id: record.id.clone(),
        name: name.chars().take(200).collect(),
        status: SweepStatus::Queued,
        request: request_text,
        parameters,
        case_count: cases.0.len() as u32,
        credits_per_case: state.config.run_cost,
        credits_reserved: cost,
        error: None,
        created_at: now,
        started_at: None,
        finished_at: None,
    };
    let idempotency = idempotency_key.map(|key| Idempotency {
        key,
        request_hash: hash,
        since: now - IDEMPOTENCY_WINDOW_MS,
    });
    let outcome = state
        .store
        .reserve_sweep(
            sweep.clone(),
            cases.0,
            idempotency,
            MAX_ACTIVE_SWEEPS,
            &runner(state),
        )
        .await?;
    match outcome {
        SweepReservation::Reserved => {}
        SweepReservation::Replay {
            same_request: true,
            sweep: Some(sweep),
        } => return Ok(*sweep),
        SweepReservation::Replay { .. } => {
            return Err(AppError::Invalid(
                "this Idempotency-Key was already used with a different request".into(),
            ));
        }
        SweepReservation::NoCredits => {
            let billing = crate::links::billing(&state.config.public_url);
            return Err(AppError::InsufficientCredits(format!(
                "this sweep costs {} ({} cases); your balance is too low. Buy credits at {billing}",
                cost.describe(),
                sweep.case_count
            )));
        }
        SweepReservation::Busy => {
            return Err(AppError::Busy(
                format!(
                    "you already have {MAX_ACTIVE_SWEEPS} sweeps queued or running, the most one \
                     account may have: wait for one to end (or cancel one) and try again"
                ),
                std::time::Duration::from_secs(30),
            ));
        }
        SweepReservation::AccountGone => {
            return Err(AppError::Auth(crate::auth::AuthError::Revoked));
        }
    }
    executor::spawn(state, sweep.id.clone());
    Ok(sweep)
}

/// Authenticates the caller for the whole cost, and checks the design, every case against
/// the model, and the KPIs.
async fn check(state: &State, starter: Starter, request: &SweepRequest) -> AppResult<Checked> {
    let max = u64::from(state.config.max_sweep_cases);
    // The design's own rules first: its size decides the cost the key is checked for.
    let cases = request.design.expand(max).map_err(AppError::Problems)?;
    let per_case = state.config.run_cost;
    let cost = Credits::new(per_case.get().saturating_mul(cases.0.len() as i64))
        .map_err(|e| AppError::Fault(e.to_string()))?;
    let (principal, record) =
        crate::domain::runs::authorize_simulation(state, starter, &request.base.fmu, cost).await?;
    let fmu = fmus::extracted(state, &record.id).await?;
    let fmu_dir = fmu.dir().to_path_buf();
    let max_time = state.config.max_run_time;
    let timeout = request.base.timeout.unwrap_or(max_time);
    let mut problems = unsupported(&request.base);
    if timeout.is_zero() || timeout > max_time {
        problems.push(Problem::new(
            "timeout",
            format!(
                "timeout (per case) must be more than 0 and at most {} s",
                max_time.as_secs()
            ),
        ));
    }
    if request.kpis.len() > MAX_KPIS {
        problems.push(Problem::new("kpis", format!("at most {MAX_KPIS} KPIs")));
    }
    let (settings, record_for_check, cases_for_check, kpis) = (
        request.base.settings.clone(),
        record.clone(),
        cases.clone(),
        request.kpis.clone(),
    );
    let dir = fmu_dir.clone();
    let (job, case_problems) = tokio::task::spawn_blocking(move || {
        check_cases(&record_for_check, &dir, &settings, &cases_for_check, &kpis)
    })
    .await?;
    problems.extend(case_problems);
    let job = match job {
        Ok(job) if problems.is_empty() => job,
        Ok(_) => return Err(AppError::Problems(Problems(problems))),
        Err(mut base) => {
            base.0.extend(problems);
            return Err(AppError::Problems(base));
        }
    };
    let stored = Stored {
        settings: stored_settings(&job, &request.base.settings, timeout),
        design: request.design_shown.clone(),
        kpis: request.kpis.clone(),
        trajectories: request.trajectories,
        inputs: request.base.settings.inputs.clone(),
    };
    Ok(Checked {
        principal,
        record,
        cases,
        stored,
        cost,
    })
}

/// What a sweep cannot do that a run can: each case would need its own state, reference or
/// call log.
fn unsupported(base: &RunRequest) -> Vec<Problem> {
    let mut problems = Vec::new();
    if base.states.initial.is_some() || base.states.save_final {
        problems.push(Problem::new(
            "base.initial_state",
            "a sweep's cases cannot start from or save FMU states",
        ));
    }
    if base.reference.is_some() {
        problems.push(Problem::new(
            "base.reference",
            "a sweep's cases cannot be compared with a reference",
        ));
    }
    if base.settings.logging.fmi_calls {
        problems.push(Problem::new(
            "base.log_fmi_calls",
            "a sweep's cases cannot record their FMI calls: run one case as a run to see them",
        ));
    }
    problems
}

/// The base job (or the base settings' problems), and every problem of the cases and KPIs:
/// each case is planned as the run it is (base settings with the case's values), so a
/// value of the wrong type, out of its range, or a structural parameter that breaks a shape
/// is found now, named by the case, before any credit moves.
fn check_cases(
    record: &FmuRecord,
    fmu_dir: &std::path::Path,
    base: &RunSettings,
    cases: &Cases,
    kpis: &[KpiSpec],
) -> (Result<Job, Problems>, Vec<Problem>) {
    let job = plan::plan(&record.info, fmu_dir, base);
    let mut problems = Vec::new();
    if let Ok(job) = &job {
        for (i, spec) in kpis.iter().enumerate() {
            if let Err(message) = kpi::check(spec, &job.recorded) {
                problems.push(Problem::new(format!("kpis[{i}]"), message));
            }
        }
        'cases: for (i, case) in cases.0.iter().enumerate() {
            if let Err(case_problems) =
                plan::plan(&record.info, fmu_dir, &case_settings(base, case))
            {
                for p in case_problems.0 {
                    if problems.len() >= MAX_CASE_PROBLEMS {
                        problems.push(Problem::new(
                            "design",
                            "more cases have problems; fix these first",
                        ));
                        break 'cases;
                    }
                    let field = p.field.strip_prefix("start_values.").map_or_else(
                        || format!("design.cases[{i}].{}", p.field),
                        |name| format!("design.cases[{i}].{name}"),
                    );
                    problems.push(Problem::new(field, p.message));
                }
            }
        }
    }
    (job, problems)
}

/// A case's run settings: the base's, with the case's start values replacing those of the
/// same name.
pub fn case_settings(base: &RunSettings, case: &[(String, String)]) -> RunSettings {
    let mut settings = base.clone();
    settings
        .start_values
        .retain(|(name, _)| !case.iter().any(|(n, _)| n == name));
    settings.start_values.extend(case.iter().cloned());
    settings
}

fn stored_settings(
    job: &Job,
    settings: &RunSettings,
    timeout: std::time::Duration,
) -> StoredSettings {
    StoredSettings {
        interface: job.interface,
        solver: job.solver,
        start_time: job.start_time,
        stop_time: job.stop_time,
        output_interval: job.output_interval,
        step_size: job.step_size,
        tolerance: job.tolerance,
        start_values: settings.start_values.clone(),
        outputs: job.recorded.iter().map(|v| v.name.clone()).collect(),
        inputs: settings.inputs.iter().map(|s| s.name.clone()).collect(),
        timeout_seconds: timeout.as_secs_f64(),
        record_events: job.record_events,
        cs_options: job.cs_options,
        display_units: settings.display_units,
        initial_state: None,
        save_final_state: false,
        log_fmi_calls: false,
        log_categories: job.log_categories.clone(),
        reference: None,
    }
}

/// The run settings a stored sweep's cases are planned from.
pub fn base_settings(sweep: &Stored) -> RunSettings {
    let stored = &sweep.settings;
    RunSettings {
        interface: Some(stored.interface),
        solver: Some(stored.solver),
        start_time: Some(stored.start_time),
        stop_time: Some(stored.stop_time),
        output_interval: Some(stored.output_interval),
        step_size: stored.step_size,
        tolerance: Some(stored.tolerance),
        start_values: stored.start_values.clone(),
        outputs: stored.outputs.clone(),
        inputs: sweep.inputs.clone(),
        record_events: Some(stored.record_events),
        display_units: stored.display_units,
        cs_options: stored.cs_options,
        states: Default::default(),
        logging: crate::sim::call_log::LogSettings {
            fmi_calls: false,
            categories: stored.log_categories.clone(),
        },
    }
}

pub async fn get(state: &State, user_id: &UserId, id: &SweepId) -> AppResult<SweepView> {
    let sweep = state
        .store
        .user_sweep(user_id, id)
        .await?
        .ok_or(AppError::NotFound("sweep"))?;
    let counts = state.store.sweep_counts(&sweep.id).await?;
    Ok(SweepView { sweep, counts })
}

pub async fn list(
    state: &State,
    user_id: &UserId,
    limit: u32,
    offset: u64,
) -> AppResult<(Vec<SweepRow>, u64)> {
    let limit = limit.clamp(1, 500);
    let offset = crate::domain::usage::page_offset(offset)?;
    Ok(state.store.list_sweeps(user_id, limit, offset).await?)
}

/// A page of the sweep's cases, by index.
pub async fn cases(
    state: &State,
    user_id: &UserId,
    id: &SweepId,
    offset: u32,
    limit: u32,
) -> AppResult<(SweepRow, Vec<CaseRow>)> {
    let view = get(state, user_id, id).await?;
    let cases = state
        .store
        .sweep_cases(id, offset, limit.clamp(1, 10_000))
        .await?;
    Ok((view.sweep, cases))
}

/// Every case of the sweep as CSV: `index,status,<parameters>,<KPIs>,error`, one line each
/// (a number in full, a KPI without a value left empty).
pub async fn cases_csv(state: &State, user_id: &UserId, id: &SweepId) -> AppResult<String> {
    let view = get(state, user_id, id).await?;
    let parameters = view.sweep.parameter_names();
    let kpis: Vec<String> = view
        .sweep
        .stored()
        .map(|s| s.kpis.iter().map(KpiSpec::name).collect())
        .unwrap_or_default();
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = ["index", "status"]
        .into_iter()
        .map(str::to_string)
        .chain(parameters.iter().cloned())
        .chain(kpis.iter().cloned())
        .chain(["error".to_string()]);
    let fault = |e: csv::Error| AppError::Fault(format!("writing CSV: {e}"));
    out.write_record(header).map_err(fault)?;
    let mut from = 0;
    loop {
        let page = state.store.sweep_cases(id, from, 5_000).await?;
        let Some(last) = page.last() else { break };
        from = last.index + 1;
        for case in &page {
            let mut record = vec![case.index.to_string(), case.status.to_string()];
            for name in &parameters {
                let value = case.start_values.iter().find(|(n, _)| n == name);
                record.push(value.map(|(_, l)| l.clone()).unwrap_or_default());
            }
            for i in 0..kpis.len() {
                let value = case.kpis.as_ref().and_then(|k| k.get(i).copied().flatten());
                record.push(
                    value
                        .map(|v| crate::format::Number(v).to_string())
                        .unwrap_or_default(),
                );
            }
            record.push(case.error.clone().unwrap_or_default());
            out.write_record(&record).map_err(fault)?;
        }
    }
    let bytes = out
        .into_inner()
        .map_err(|e| AppError::Fault(e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| AppError::Fault(e.to_string()))
}

/// Cancels a sweep: the cases not started are refunded now; those running stop and settle
/// as a cancelled run does (charged: they used a worker).
pub async fn cancel(state: &State, user_id: &UserId, id: &SweepId) -> AppResult<SweepView> {
    let view = get(state, user_id, id).await?;
    if view.sweep.status.is_finished() {
        return Err(AppError::Conflict(format!(
            "sweep {id} has already ended ({})",
            view.sweep.status
        )));
    }
    state.store.cancel_sweep(id).await?;
    state.sweeps.cancel(id);
    // Give the running batches a moment to stop, so the answer shows the sweep settled.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let view = get(state, user_id, id).await?;
        if view.sweep.finished_at.is_some() || tokio::time::Instant::now() >= deadline {
            return Ok(view);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Where the worker writes one case's trajectory in the data directory, before it is put in
/// the object store ([`Key::Trajectory`]).
pub fn trajectory_path(data_dir: &std::path::Path, id: &SweepId, index: u32) -> std::path::PathBuf {
    data_dir
        .join("sweeps")
        .join(id.as_str())
        .join(format!("{index}.partial"))
}

/// Removes a sweep's kept trajectories (already gone is fine).
pub async fn remove_trajectories(state: &State, id: &SweepId) {
    if let Err(e) = state.objects.delete_trajectories(id).await {
        tracing::warn!(sweep = %id, error = %e, "cannot remove a sweep's trajectories");
    }
}

/// A case's kept trajectory: its recorded points, as a run's result.
pub async fn case_result(
    state: &State,
    user_id: &UserId,
    id: &SweepId,
    index: u32,
) -> AppResult<crate::sim::result_file::ResultFile> {
    let view = get(state, user_id, id).await?;
    let kept = view.sweep.stored().is_some_and(|s| s.trajectories);
    if !kept {
        return Err(AppError::Conflict(format!(
            "sweep {id} kept no trajectories: start it with `trajectories: true` to keep them"
        )));
    }
    let case = state
        .store
        .sweep_cases_by_index(id, vec![index])
        .await?
        .pop()
        .ok_or(AppError::NotFound("case"))?;
    if case.status != crate::domain::runs::RunStatus::Succeeded {
        return Err(AppError::Conflict(format!(
            "case {index} has no trajectory: it is {}",
            case.status
        )));
    }
    let file = state
        .objects
        .open_file(&Key::Trajectory(id.clone(), index))
        .await?;
    let file =
        tokio::task::spawn_blocking(move || crate::sim::result_file::ResultFile::from_file(file))
            .await??;
    Ok(file)
}

/// How many times a case is given to a worker before a failure to run it is the service's
/// (refunded) rather than tried again.
pub const MAX_ATTEMPTS: u32 = 3;

/// This process as the driver of a sweep: its node id and the configured lease.
pub(crate) fn runner(state: &State) -> Runner {
    Runner {
        node: state.node_id.clone(),
        lease_ms: i64::try_from(state.config.lease.as_millis()).unwrap_or(i64::MAX),
    }
}

/// At start-up: the sweeps a stop interrupted resume here; their cases left running go back
/// to their queue (or fail refunded after [`MAX_ATTEMPTS`]). On SQLite that is every
/// unfinished sweep (one server per database); on PostgreSQL only those whose driver's lease
/// has run out (another server may be running the others).
pub async fn recover(state: &State) -> AppResult<usize> {
    let which = match state.store.engine() {
        Engine::Sqlite => Orphans::All,
        Engine::Postgres => Orphans::LeaseExpired {
            driving: state.sweeps.driving(),
        },
    };
    take_over(state, which).await
}

/// Takes over the sweeps whose driver stopped renewing its lease (its server died or
/// stalled), as [`recover`] does at start-up: they resume here.
pub async fn take_over_orphans(state: &State) -> AppResult<usize> {
    let driving = state.sweeps.driving();
    take_over(state, Orphans::LeaseExpired { driving }).await
}

async fn take_over(state: &State, which: Orphans) -> AppResult<usize> {
    let recovered = state
        .store
        .recover_sweeps(MAX_ATTEMPTS, which, &runner(state))
        .await?;
    for sweep in &recovered.ended {
        executor::announce_end(state, sweep).await;
    }
    let n = recovered.resume.len();
    for id in recovered.resume {
        executor::spawn(state, id);
    }
    Ok(n)
}

/// At a graceful stop on PostgreSQL: the sweeps this server drives are handed to the others
/// now rather than after their lease. (On SQLite the next start resumes them.)
pub async fn hand_over(state: &State) {
    if state.store.engine() != Engine::Postgres {
        return;
    }
    match state.store.release_sweeps(&state.node_id).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            sweeps = n,
            "handed the sweeps in progress to the other servers"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot hand the sweeps in progress over"),
    }
}

/// The periodic takeover of a server sharing its database (PostgreSQL): every half lease,
/// [`take_over_orphans`]. Stops when dropped. Nothing on SQLite, where the one server
/// resumed every sweep at its start.
pub fn spawn_takeover(state: &State) -> Takeover {
    if state.store.engine() != Engine::Postgres {
        return Takeover(None);
    }
    let state = state.clone();
    Takeover(Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.config.lease / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is now, and the start-up recovery has just looked.
        tick.tick().await;
        loop {
            tick.tick().await;
            match take_over_orphans(&state).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(
                    sweeps = n,
                    "took over sweeps whose server stopped renewing its lease"
                ),
                Err(e) => tracing::error!(error = %e, "cannot take over orphaned sweeps"),
            }
        }
    })))
}

/// The running [`spawn_takeover`] loop; dropping it stops the loop.
#[must_use = "the takeover stops when this is dropped"]
pub struct Takeover(Option<tokio::task::JoinHandle<()>>);

impl Drop for Takeover {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}
