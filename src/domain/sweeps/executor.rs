//! Runs a sweep's cases: batches to workers, outcomes to the ledger, events to watchers.
//!
//! A sweep runs in as many lanes as the pool has workers. A lane waits for a free worker
//! (the pool's queue is first come, first served), takes the next queued cases from the
//! database, runs them as one batch in that worker, and gives the worker back. Batches are
//! sized to last about [`BATCH_SECONDS`], so another user's run waits at most about that long
//! for a worker a sweep holds: a 10,000-case sweep cannot starve a single run. A worker holds
//! only one sweep's cases, so cases of different users never share a worker.
//!
//! Cases settle as they end, in groups (one transaction per [`FLUSH_EVERY`] or
//! [`FLUSH_CASES`]), each by the runs' charging rule. Cases a worker took but did not run (it
//! crashed on an earlier case, or never started) go back to the queue for a fresh worker, at
//! most [`super::MAX_ATTEMPTS`] times.
//!
//! A driver holds the sweep's lease (see `store::sweeps`) and renews it while it runs; each
//! renewal also reads the sweep's status, so a cancel made on any server stops this one's
//! workers. A driver whose lease another process took over (it stalled past the lease)
//! stops: its lanes claim nothing more, its workers stop, and what it still settles is
//! skipped by the store (the cases are the new driver's).

use crate::objects::Key;
use crate::objects::cache::Pinned;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};

use super::events::{CaseEnded, SweepEvent};
use super::{Stored, SweepStatus, base_settings, case_settings};
use crate::domain::error::{AppError, AppResult};
use crate::domain::fmus::{self, FmuRecord};
use crate::domain::ids::SweepId;
use crate::domain::runs::RunStatus;
use crate::domain::runs::charging::{self, FailureKind, ModelOrigin, RunEnd};
use crate::domain::webhooks::{self, EventType};
use crate::sim::batch::CaseOutcome;
use crate::sim::plan::{self, RunSettings};
use crate::sim::protocol::{Batch, Case};
use crate::sim::runner::{SimError, Slot};
use crate::state::State;
use crate::store::sweeps::{CaseCounts, CaseRow, CaseSettlement, Runner, SweepRow};

/// How long a batch should keep its worker.
pub const BATCH_SECONDS: f64 = 0.5;
/// The most cases in one batch.
pub const MAX_BATCH: u32 = 1_000;
/// Settle ended cases at least this often…
const FLUSH_EVERY: Duration = Duration::from_millis(200);
/// …or as soon as this many have ended.
const FLUSH_CASES: usize = 500;

/// Renew a lease at least this often, whatever its length: each renewal is also how a cancel
/// made on another server reaches this one's workers.
const RENEW_AT_LEAST_EVERY: Duration = Duration::from_secs(1);

/// This process driving one sweep: its registration in the hub and its lease.
struct Driving {
    state: State,
    id: SweepId,
    runner: Runner,
    generation: u64,
    /// Set once another process holds the sweep's lease: this one stops driving it.
    lost: AtomicBool,
}

impl Driving {
    fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Another process drives the sweep now: stop this one's workers and let its watchers
    /// follow the sweep from the database.
    fn lose(&self) {
        if !self.lost.swap(true, Ordering::Relaxed) {
            tracing::warn!(sweep = %self.id, "another server took this sweep over; stopped driving it");
        }
        self.state.sweeps.release(&self.id, self.generation);
    }
}

/// Renews the lease every third of its length (at least every
/// [`RENEW_AT_LEAST_EVERY`]) until aborted: a cancel (made by any server) fires this
/// process's cancel; a lease another process took ends the driving.
async fn keep_lease(driving: Arc<Driving>) {
    let every = (driving.state.config.lease / 3).min(RENEW_AT_LEAST_EVERY);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now: the lease was just taken.
    tick.tick().await;
    loop {
        tick.tick().await;
        let renewed = driving
            .state
            .store
            .renew_sweep_lease(&driving.id, &driving.runner)
            .await;
        match renewed {
            Ok(Some(SweepStatus::Cancelled)) => driving.state.sweeps.cancel(&driving.id),
            Ok(Some(_)) => {}
            Ok(None) => return driving.lose(),
            // Tried again at the next tick; the lease holds a while.
            Err(e) => {
                tracing::warn!(sweep = %driving.id, error = %e, "cannot renew a sweep's lease")
            }
        }
    }
}

/// Held while a sweep is driven here, from [`spawn`] on: stops renewing the lease and
/// releases the hub's entry (unless the sweep's end removed it already) however the driving
/// ends.
struct DrivingGuard {
    driving: Arc<Driving>,
    cancel: watch::Receiver<bool>,
    renewer: tokio::task::JoinHandle<()>,
}

impl DrivingGuard {
    /// Registers the sweep in the hub and starts renewing its lease.
    fn start(state: &State, id: &SweepId) -> DrivingGuard {
        let (cancel, generation) = state.sweeps.register(id);
        let driving = Arc::new(Driving {
            state: state.clone(),
            id: id.clone(),
            runner: super::runner(state),
            generation,
            lost: AtomicBool::new(false),
        });
        DrivingGuard {
            renewer: tokio::spawn(keep_lease(driving.clone())),
            driving,
            cancel,
        }
    }
}

impl Drop for DrivingGuard {
    fn drop(&mut self) {
        self.renewer.abort();
        let d = &self.driving;
        d.state.sweeps.release(&d.id, d.generation);
    }
}

/// Everything the lanes of one sweep share (on its driver, or on a worker node running a
/// batch of it).
pub(super) struct Sweep {
    state: State,
    id: SweepId,
    record: FmuRecord,
    /// The extracted FMU, held in the cache while the sweep runs.
    fmu: Pinned,
    base: RunSettings,
    stored: Stored,
    origin: ModelOrigin,
    timeout: Duration,
}

impl Sweep {
    /// The sweep's model (extracted, from this process's cache) and settings.
    pub(super) async fn load(state: &State, row: &SweepRow) -> AppResult<Sweep> {
        let stored = row
            .stored()
            .ok_or_else(|| AppError::Fault("the sweep's request does not parse".into()))?;
        let record = fmus::resolve(state, &row.user_id, row.fmu_id.as_str()).await?;
        let fmu = fmus::extracted(state, &record.id).await?;
        let origin = if record.library_id.is_some() {
            ModelOrigin::Library
        } else {
            ModelOrigin::Upload
        };
        let timeout = Duration::try_from_secs_f64(stored.settings.timeout_seconds)
            .unwrap_or(state.config.max_run_time)
            .min(state.config.max_run_time);
        Ok(Sweep {
            state: state.clone(),
            id: row.id.clone(),
            base: base_settings(&stored),
            record,
            fmu,
            stored,
            origin,
            timeout,
        })
    }
}

/// Runs the sweep in the background until it ends (or another process takes it over). This
/// process must hold its lease: it reserved the sweep or took it over.
pub fn spawn(state: &State, id: SweepId) {
    // Registered and renewing before this returns: a watcher that comes after follows the
    // sweep live, and neither this process's takeover nor another's takes it over while its
    // model is read.
    let guard = DrivingGuard::start(state, &id);
    let state = state.clone();
    tokio::spawn(async move {
        if let Err(e) = drive(&state, &guard).await {
            tracing::error!(sweep = %id, error = %e, "a sweep could not run; its cases are refunded");
            let message = "the service could not run this case; it was refunded".to_string();
            match state
                .store
                .abandon_sweep(
                    &id,
                    (FailureKind::ServiceError, message),
                    &guard.driving.runner,
                )
                .await
            {
                Ok(Some(row)) => announce_end(&state, &row).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(sweep = %id, error = %e, "could not settle an abandoned sweep")
                }
            }
        }
        drop(guard);
    });
}

async fn drive(state: &State, guard: &DrivingGuard) -> AppResult<()> {
    let (driving, cancel) = (&guard.driving, &guard.cancel);
    let id = &driving.id;
    let row = state
        .store
        .get_sweep(id)
        .await?
        .ok_or(AppError::NotFound("sweep"))?;
    let sweep = Arc::new(Sweep::load(state, &row).await?);
    let _relay = Relay::start(state, id);
    loop {
        let mut lanes = tokio::task::JoinSet::new();
        for _ in 0..state.workers.config().workers.max(1) {
            lanes.spawn(lane(sweep.clone(), driving.clone(), cancel.clone()));
        }
        let mut failed = None;
        while let Some(joined) = lanes.join_next().await {
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failed = Some(e),
                Err(e) => failed = Some(AppError::Fault(format!("a sweep lane: {e}"))),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        if driving.lost() {
            return Ok(());
        }
        // No case is left queued: the rest run on worker nodes (or none is left at all).
        if follow_nodes(state, driving).await? == Followed::Ended {
            return Ok(());
        }
    }
}

/// How far back the relay looks for cases nodes settled: more than the clocks of two machines
/// differ, and more than one look takes.
const RELAY_WINDOW_MS: i64 = 5_000;

/// Tells this process's watchers of the cases worker nodes settle, as the lanes do of their
/// own (on PostgreSQL, where worker nodes can be). Stops when dropped.
struct Relay(Option<tokio::task::JoinHandle<()>>);

impl Relay {
    fn start(state: &State, id: &SweepId) -> Relay {
        if state.store.engine() != crate::store::Engine::Postgres {
            return Relay(None);
        }
        Relay(Some(tokio::spawn(relay_node_cases(
            state.clone(),
            id.clone(),
        ))))
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(task) = self.0.take() {
            task.abort();
        }
    }
}

/// Every [`FOLLOW_EVERY`], publishes the cases nodes ended since the last look (those ended
/// before this process drove the sweep are in the snapshot a watcher starts from).
async fn relay_node_cases(state: State, id: SweepId) {
    let mut since = crate::store::now_ms();
    // Those ended just before are in the snapshot a watcher starts from: not told again.
    let mut told: HashSet<u32> = match state
        .store
        .node_cases_ended_since(&id, since - RELAY_WINDOW_MS)
        .await
    {
        Ok(cases) => cases.iter().map(|c| c.index).collect(),
        Err(_) => HashSet::new(),
    };
    loop {
        tokio::time::sleep(FOLLOW_EVERY).await;
        let cases = match state
            .store
            .node_cases_ended_since(&id, since - RELAY_WINDOW_MS)
            .await
        {
            Ok(cases) => cases,
            Err(e) => {
                tracing::warn!(sweep = %id, error = %e, "cannot read the cases worker nodes ended");
                continue;
            }
        };
        let mut events = Vec::new();
        for case in cases {
            since = since.max(case.finished_at.unwrap_or(since));
            if told.insert(case.index) {
                events.push(CaseEnded {
                    index: case.index,
                    status: case.status,
                    kpis: case.kpis,
                    error: case.error,
                    charged: case.charged,
                });
            }
        }
        if !events.is_empty() {
            state.sweeps.publish(&id, SweepEvent::Cases(events));
        }
    }
}

/// What [`follow_nodes`] saw last.
#[derive(Debug, PartialEq, Eq)]
enum Followed {
    /// The sweep ended (or is another process's now).
    Ended,
    /// Cases are queued again (a node's lease ran out): for this process's lanes.
    Queued,
}

/// How often a driver looks at the cases worker nodes run.
const FOLLOW_EVERY: Duration = Duration::from_millis(500);

/// Follows the sweep while worker nodes run its last cases: tells this process's watchers
/// the counts as they change, gives back the cases of a node whose lease ran out, and ends
/// the sweep when none is left (what the last node's settlement usually does itself).
async fn follow_nodes(state: &State, driving: &Driving) -> AppResult<Followed> {
    let id = &driving.id;
    let mut shown = None;
    loop {
        if driving.lost() {
            return Ok(Followed::Ended);
        }
        if let Some(row) = state
            .store
            .reap_lapsed_cases(id, super::MAX_ATTEMPTS)
            .await?
        {
            announce_end(state, &row).await;
            return Ok(Followed::Ended);
        }
        let row = state.store.get_sweep(id).await?;
        let Some(row) = row.filter(|r| r.finished_at.is_none()) else {
            return Ok(Followed::Ended);
        };
        let counts = state.store.sweep_counts(id).await?;
        if counts.queued + counts.running == 0 {
            // Settling nothing ends a sweep no case is left of.
            if let Some(row) = state.store.settle_cases(id, vec![]).await?.ended {
                announce_end(state, &row).await;
            }
            return Ok(Followed::Ended);
        }
        if counts.queued > 0 && row.status != SweepStatus::Cancelled {
            return Ok(Followed::Queued);
        }
        if shown != Some(counts) {
            shown = Some(counts);
            let hub = &state.sweeps;
            let eta_seconds = hub.eta_seconds(id, counts.queued + counts.running);
            hub.publish(
                id,
                SweepEvent::Progress {
                    counts,
                    eta_seconds,
                },
            );
        }
        tokio::time::sleep(FOLLOW_EVERY).await;
    }
}

/// Tells watchers (and, through webhooks, the owner's endpoints) that a sweep ended:
/// `sweep.completed` or `sweep.failed` (a cancellation is the owner's own doing, not an
/// event). A webhook that cannot be recorded is logged; the sweep has ended either way.
pub async fn announce_end(state: &State, sweep: &SweepRow) {
    state
        .sweeps
        .end(&sweep.id, sweep.status, sweep.error.clone());
    let event = match sweep.status {
        SweepStatus::Completed => EventType::SweepCompleted,
        SweepStatus::Failed => EventType::SweepFailed,
        _ => return,
    };
    let counts = webhooks::while_unavailable(Duration::from_secs(120), || {
        state.store.sweep_counts(&sweep.id)
    })
    .await;
    let recorded = match counts {
        Ok(counts) => {
            let data = sweep_data(&state.config.public_url, sweep, &counts);
            webhooks::emit(state, &sweep.user_id, event, data).await
        }
        Err(e) => Err(e.into()),
    };
    if let Err(e) = recorded {
        tracing::error!(sweep = %sweep.id, error = %e, "could not record the sweep's webhooks");
    }
}

/// A sweep as a webhook's `data`: what `GET /api/v1/sweeps/{id}` says of its end, with links
/// to it and its cases.
pub fn sweep_data(public_url: &str, sweep: &SweepRow, counts: &CaseCounts) -> serde_json::Value {
    let base = public_url.trim_end_matches('/');
    let per_case = sweep.credits_per_case.get();
    let mut data = serde_json::json!({
        "id": sweep.id.as_str(),
        "status": sweep.status.as_str(),
        "name": sweep.name,
        "fmu_id": sweep.fmu_id.as_str(),
        "case_count": sweep.case_count,
        "counts": {
            "succeeded": counts.succeeded,
            "failed": counts.failed,
            "cancelled": counts.cancelled,
        },
        "credits_charged": per_case * i64::from(counts.charged),
        "credits_refunded": per_case * i64::from(counts.ended() - counts.charged),
        "created_at": crate::domain::values::rfc3339_ms(sweep.created_at),
        "url": format!("{base}/api/v1/sweeps/{}", sweep.id),
        "cases_url": format!("{base}/api/v1/sweeps/{}/cases", sweep.id),
    });
    if let Some(at) = sweep.finished_at {
        data["finished_at"] = crate::domain::values::rfc3339_ms(at).into();
    }
    if let Some(error) = &sweep.error {
        data["error"] = error.clone().into();
    }
    data
}

/// One lane: batch after batch until no case is left or the sweep is cancelled.
async fn lane(
    sweep: Arc<Sweep>,
    driving: Arc<Driving>,
    mut cancel: watch::Receiver<bool>,
) -> AppResult<()> {
    let mut pace = Pace::default();
    loop {
        if *cancel.borrow() || driving.lost() {
            return Ok(());
        }
        let slot = tokio::select! {
            slot = sweep.state.workers.slot(None) => slot.map_err(|e| AppError::Fault(e.to_string()))?,
            _ = cancel.changed() => return Ok(()),
        };
        let claimed = sweep
            .state
            .store
            .claim_cases(&sweep.id, pace.size, &driving.runner)
            .await?;
        let Some(cases) = claimed else {
            driving.lose();
            return Ok(());
        };
        if cases.is_empty() {
            return Ok(());
        }
        run_cases(&sweep, slot, cases, cancel.clone(), &mut pace).await?;
    }
}

/// How many cases a lane claims at once: batches last about [`BATCH_SECONDS`] at the pace
/// of the last one.
pub struct Pace {
    pub(super) size: u32,
}

impl Default for Pace {
    fn default() -> Self {
        Pace { size: 4 }
    }
}

impl Pace {
    fn after(&mut self, ran: u32, took: Duration) {
        if ran > 0 {
            let per_case = took.as_secs_f64() / f64::from(ran);
            self.size = ((BATCH_SECONDS / per_case.max(1e-6)) as u32).clamp(1, MAX_BATCH);
        }
    }
}

/// Runs claimed cases as one batch in `slot`'s worker, settles them as they end (each as the
/// attempt it was claimed with), and gives back those the worker did not run; adjusts `pace`.
pub(super) async fn run_cases(
    sweep: &Arc<Sweep>,
    slot: Slot<'_>,
    cases: Vec<CaseRow>,
    cancel: watch::Receiver<bool>,
    pace: &mut Pace,
) -> AppResult<()> {
    let n = cases.len() as u32;
    let attempts: Arc<HashMap<u32, u32>> =
        Arc::new(cases.iter().map(|c| (c.index, c.attempts)).collect());
    let started = Instant::now();
    let (tx, rx) = mpsc::unbounded_channel();
    let settler = tokio::spawn(settle_as_they_end(sweep.clone(), rx, attempts.clone()));
    let unrun = run_batch(sweep, slot, cases, cancel, tx).await;
    settler
        .await
        .map_err(|e| AppError::Fault(format!("settling a batch: {e}")))??;
    let ran = n - unrun.len() as u32;
    if !unrun.is_empty() {
        let message = "the service could not run this case; it was refunded".to_string();
        let unrun = unrun
            .into_iter()
            .filter_map(|index| Some((index, *attempts.get(&index)?)))
            .collect();
        let ended = sweep
            .state
            .store
            .requeue_cases(
                &sweep.id,
                unrun,
                super::MAX_ATTEMPTS,
                (FailureKind::ServiceError, message),
            )
            .await?;
        if let Some(row) = ended {
            announce_end(&sweep.state, &row).await;
        }
    }
    pace.after(ran, started.elapsed());
    Ok(())
}

/// One case's end, as the engine reported it.
struct Ended {
    index: u32,
    result: Result<Vec<Option<f64>>, SimError>,
    elapsed: Duration,
    /// The succeeded case's trajectory, written locally, to put in the object store before
    /// the case counts as succeeded.
    trajectory: Option<PathBuf>,
}

/// Runs the claimed cases as one batch in `slot`'s worker (warm starts: see `sim::batch`),
/// sending each end to `ended` as it happens; returns the cases it did not run.
async fn run_batch(
    sweep: &Sweep,
    slot: Slot<'_>,
    cases: Vec<CaseRow>,
    cancel: watch::Receiver<bool>,
    ended: mpsc::UnboundedSender<Ended>,
) -> Vec<u32> {
    // Each case is planned as the run it is (its values were checked when the sweep started;
    // a case that no longer plans is the service's failure, refunded).
    let mut batch = Vec::with_capacity(cases.len());
    let mut job = None;
    for case in &cases {
        let settings = case_settings(&sweep.base, &case.start_values);
        match plan::plan(&sweep.record.info, sweep.fmu.dir(), &settings) {
            Ok(planned) => {
                batch.push(Case {
                    index: case.index,
                    start_values: planned.start_values.clone(),
                });
                job.get_or_insert(planned);
            }
            Err(problems) => {
                let _ = ended.send(Ended {
                    index: case.index,
                    result: Err(SimError::Internal(format!(
                        "the case no longer plans: {problems}"
                    ))),
                    elapsed: Duration::ZERO,
                    trajectory: None,
                });
            }
        }
    }
    let Some(mut job) = job else {
        return vec![];
    };
    job.batch = Some(Batch {
        cases: batch,
        kpis: sweep.stored.kpis.clone(),
        trajectories: sweep.stored.trajectories,
    });
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
    let mut watch_cancel = cancel;
    let watcher = tokio::spawn(async move {
        if watch_cancel.wait_for(|c| *c).await.is_ok() {
            let _ = stop_tx.send(());
        }
    });
    let (data_dir, id) = (sweep.state.config.data_dir.clone(), sweep.id.clone());
    let kept = sweep.stored.trajectories;
    let trajectory =
        move |index: u32| trajectory_file(&super::trajectory_path(&data_dir, &id, index));
    let (data_dir, id) = (sweep.state.config.data_dir.clone(), sweep.id.clone());
    let on_case = move |case: CaseOutcome| {
        let CaseOutcome { index, result } = case;
        let partial = super::trajectory_path(&data_dir, &id, index);
        let elapsed = result.as_ref().map_or(Duration::ZERO, |r| r.elapsed);
        let trajectory = (kept && result.is_ok()).then_some(partial.clone());
        if kept && trajectory.is_none() {
            let _ = std::fs::remove_file(&partial);
        }
        let _ = ended.send(Ended {
            index,
            result: result.map(|r| r.kpis),
            elapsed,
            trajectory,
        });
    };
    let end = slot
        .run_batch(
            job,
            sweep.timeout,
            Some(stop_rx),
            Box::new(trajectory),
            Box::new(on_case),
        )
        .await;
    watcher.abort();
    if let Some(cause) = &end.cause
        && cause.is_service_fault()
    {
        tracing::warn!(sweep = %sweep.id, error = %cause, unrun = end.unrun.len(), "a sweep batch stopped early");
    }
    end.unrun
}

/// The file a case's trajectory is written to in the data directory; put in the object
/// store when the case succeeds ([`keep_trajectory`]), removed in any case.
fn trajectory_file(partial: &std::path::Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = partial.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(partial)
}

/// Puts a succeeded case's trajectory in the object store: only then has it succeeded (a
/// failed put fails the case as the service's fault, refunded). Removes the local file.
async fn keep_trajectory(sweep: &Sweep, case: &mut Ended) {
    let Some(partial) = case.trajectory.take() else {
        return;
    };
    let key = Key::Trajectory(sweep.id.clone(), case.index);
    if case.result.is_ok()
        && let Err(e) = sweep.state.objects.put_file(&key, &partial).await
    {
        tracing::error!(sweep = %sweep.id, case = case.index, error = %e, "cannot put a trajectory in the object store");
        case.result = Err(SimError::Internal(
            "its trajectory could not be stored; the case was refunded".into(),
        ));
    }
    let _ = tokio::fs::remove_file(&partial).await;
}

/// Settles ended cases in groups and tells watchers, until the batch's sender is dropped.
async fn settle_as_they_end(
    sweep: Arc<Sweep>,
    mut ended: mpsc::UnboundedReceiver<Ended>,
    attempts: Arc<HashMap<u32, u32>>,
) -> AppResult<()> {
    let mut pending: Vec<CaseSettlement> = Vec::new();
    let mut last_flush = Instant::now();
    loop {
        let next = tokio::time::timeout(FLUSH_EVERY, ended.recv()).await;
        let closed = matches!(next, Ok(None));
        if let Ok(Some(mut case)) = next {
            keep_trajectory(&sweep, &mut case).await;
            // A case the lane did not claim is none of its business: attempt 0 matches none.
            let attempt = attempts.get(&case.index).copied().unwrap_or(0);
            pending.push(settlement(&case, sweep.origin, attempt));
        }
        let due = pending.len() >= FLUSH_CASES || last_flush.elapsed() >= FLUSH_EVERY || closed;
        if due && !pending.is_empty() {
            flush(&sweep, std::mem::take(&mut pending)).await?;
            last_flush = Instant::now();
        }
        if closed {
            return Ok(());
        }
    }
}

/// How `case` settles; `attempt` is the one its lane claimed it with.
fn settlement(case: &Ended, origin: ModelOrigin, attempt: u32) -> CaseSettlement {
    let (end, kpis, error) = match &case.result {
        Ok(kpis) => (RunEnd::Succeeded, Some(kpis.clone()), None),
        // A case stops only while running: it used a worker.
        Err(SimError::Cancelled) => (
            RunEnd::CancelledRunning,
            None,
            Some(SimError::Cancelled.to_string()),
        ),
        Err(e) => (
            RunEnd::Failed(FailureKind::from(e)),
            None,
            Some(e.to_string()),
        ),
    };
    if let Err(e) = &case.result
        && e.is_service_fault()
    {
        tracing::error!(case = case.index, error = %e, "a sweep case failed because of the service");
    }
    CaseSettlement {
        index: case.index,
        attempt: Some(attempt),
        end,
        charged: charging::is_charged(end, origin),
        kpis,
        error,
        elapsed_ms: Some(case.elapsed.as_secs_f64() * 1e3),
    }
}

async fn flush(sweep: &Sweep, cases: Vec<CaseSettlement>) -> AppResult<()> {
    let mut events: Vec<CaseEnded> = cases
        .iter()
        .map(|c| CaseEnded {
            index: c.index,
            status: RunStatus::from(c.end),
            kpis: c.kpis.clone(),
            error: c.error.clone(),
            charged: c.charged,
        })
        .collect();
    let settled = sweep.state.store.settle_cases(&sweep.id, cases).await?;
    // Cases another driver took over meanwhile were not settled here: not this one's news.
    let indices: HashSet<u32> = settled.indices.iter().copied().collect();
    events.retain(|e| indices.contains(&e.index));
    let hub = &sweep.state.sweeps;
    if !events.is_empty() {
        hub.publish(&sweep.id, SweepEvent::Cases(events));
    }
    let counts = sweep.state.store.sweep_counts(&sweep.id).await?;
    let eta_seconds = hub.eta_seconds(&sweep.id, counts.queued + counts.running);
    hub.publish(
        &sweep.id,
        SweepEvent::Progress {
            counts,
            eta_seconds,
        },
    );
    if let Some(row) = settled.ended {
        announce_end(&sweep.state, &row).await;
    }
    Ok(())
}
