//! Where runs wait and who runs them: every run is queued in the database with its worker
//! job, and every process with workers (a `serve`, a `worker-node`) runs lanes (two per
//! worker) that lease queued runs (`store::queue`), runs them in the sandboxed worker,
//! keeps the results in the object store and settles with its lease's token.
//!
//! A lane heartbeats each run it holds every [`beat_every`]: the heartbeat renews the lease,
//! carries the simulated time reached (the progress another server shows) and brings back a
//! cancel asked on any server. A run whose worker vanished (its lease ran out) is leased
//! again, up to [`MAX_DELIVERIES`] times, then fails, refunded. A simulation's own error is
//! never retried: it settles the run like any other end.
//!
//! A worker node's lane with no run to take runs a batch of a sweep's cases instead
//! (`domain::sweeps::batches`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::charging::{FailureKind, ModelOrigin, RunEnd};
use super::{KeepState, reference};
use crate::domain::fmus;
use crate::domain::ids::RunId;
use crate::sim::protocol::Job;
use crate::sim::reference::{Reference, Tolerances};
use crate::sim::runner::{SimError, Slot};
use crate::state::State;
use crate::store::queue::{Beat, Claim, Expired, NodeKind};
use crate::store::runs::Settlement;

/// Leases a run gets before it fails as the service's fault: a run whose worker vanished
/// this often is more likely to take the next worker with it than to succeed.
pub const MAX_DELIVERIES: u32 = 3;

/// How often an idle lane looks for work another process queued (a run this process
/// queued wakes it at once).
const POLL: Duration = Duration::from_millis(250);

/// What a worker needs to run a queued run, stored with it (`run_jobs`).
#[derive(Serialize, Deserialize)]
pub struct QueuedJob {
    /// The worker job; `fmu_dir` is filled in by the process that leases it (its own cache).
    pub job: Job,
    pub timeout_ms: u64,
    pub origin: ModelOrigin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_state: Option<KeepState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<QueuedReference>,
}

/// A prepared reference as queued: its text is parsed again by the worker's process.
#[derive(Serialize, Deserialize)]
pub struct QueuedReference {
    pub text: String,
    pub tolerances: Tolerances,
    pub stored: reference::StoredReference,
}

impl From<&reference::Prepared> for QueuedReference {
    fn from(p: &reference::Prepared) -> Self {
        QueuedReference {
            text: p.text.clone(),
            tolerances: p.tolerances.clone(),
            stored: p.stored.clone(),
        }
    }
}

impl QueuedReference {
    fn prepared(self) -> Result<reference::Prepared, String> {
        let reference = Reference::parse(&self.text).map_err(|e| e.to_string())?;
        Ok(reference::Prepared {
            text: self.text,
            reference,
            tolerances: self.tolerances,
            stored: self.stored,
        })
    }
}

/// How often a lane renews the lease of a run it holds: often enough that a cancel reaches
/// the worker within a second, and at least three times per lease.
pub fn beat_every(lease: Duration) -> Duration {
    (lease / 3).min(Duration::from_secs(1))
}

/// How long a process may miss heartbeats before the others take it for dead (and take over
/// what it claimed but cannot finish): five beats.
pub fn silent_after(lease: Duration) -> Duration {
    5 * beat_every(lease)
}

/// Starts this process's lanes and its node heartbeat. Two lanes per worker: a lane holds
/// a worker only while the simulation runs, then keeps the result and settles the run, and
/// meanwhile the other lane leases the next run for that worker (with one lane per worker,
/// the worker idled through every settlement: 40 instead of 71 small runs/s on one worker, 8 at a time).
pub fn spawn_lanes(state: &State, kind: NodeKind) -> Vec<tokio::task::JoinHandle<()>> {
    let slots = state.workers.config().workers;
    let mut tasks: Vec<_> = (0..2 * slots)
        .map(|_| tokio::spawn(lane(state.clone(), kind)))
        .collect();
    tasks.push(tokio::spawn(node_heartbeat(state.clone(), kind, slots)));
    tasks
}

/// Says this node is alive, for `/metrics`' count of nodes.
async fn node_heartbeat(state: State, kind: NodeKind, slots: usize) {
    let host = std::env::var("HOSTNAME")
        .or_else(|_| std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()))
        .unwrap_or_default();
    let started = crate::store::now_ms();
    let mut tick = tokio::time::interval(beat_every(state.config.lease));
    loop {
        tick.tick().await;
        let seen = state
            .store
            .node_seen(&state.node_id, kind, &host, slots as u32, started)
            .await;
        if let Err(e) = seen {
            tracing::warn!(error = %e, "cannot record this node's heartbeat");
        }
    }
}

/// One lane: waits for work, takes a worker, leases a run, runs it; again. A worker node's
/// lane with no run to take runs a batch of a sweep's cases (runs first: a sweep's batch
/// lasts about half a second, so a run waits at most that long for a worker).
async fn lane(state: State, kind: NodeKind) {
    let mut pace = crate::domain::sweeps::executor::Pace::default();
    loop {
        let runs = match state.store.has_queued_work().await {
            Ok(runs) => runs,
            Err(e) => {
                tracing::warn!(error = %e, "cannot look for queued runs");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let cases = !runs
            && kind == NodeKind::Worker
            && match state.store.has_leasable_cases().await {
                Ok(cases) => cases,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot look for sweep cases");
                    false
                }
            };
        if !runs && !cases {
            idle(&state).await;
            continue;
        }
        // A worker first, then the lease: a leased run never waits for a worker.
        let slot = match state.workers.slot(None).await {
            Ok(slot) => slot,
            Err(e) => {
                tracing::error!(error = %e, "cannot take a worker");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        if !runs {
            match crate::domain::sweeps::batches::run_leased_batch(&state, slot, &mut pace).await {
                Ok(true) => {}
                Ok(false) => idle(&state).await,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot run a sweep batch");
                    tokio::time::sleep(POLL).await;
                }
            }
            continue;
        }
        let lease_ms = state.config.lease.as_millis() as i64;
        let claimed = state
            .store
            .claim_run(&state.node_id, lease_ms, MAX_DELIVERIES, settle_expired)
            .await;
        match claimed {
            Ok((claim, expired)) => {
                for (run_id, end) in expired {
                    super::announce_end(&state, &run_id, end).await;
                }
                match claim {
                    Some(claim) => run_claimed(&state, claim, slot).await,
                    None => {
                        drop(slot);
                        idle(&state).await;
                    }
                }
            }
            Err(e) => {
                drop(slot);
                tracing::warn!(error = %e, "cannot lease a queued run");
                tokio::time::sleep(POLL).await;
            }
        }
    }
}

/// Waits until this process queues a run, or the next look at the queue.
async fn idle(state: &State) {
    tokio::select! {
        _ = state.queue_wake.notified() => {}
        _ = tokio::time::sleep(POLL) => {}
    }
}

/// How a run that cannot be delivered again ends: refunded either way, as the service's
/// fault (its workers vanished), or cancelled as asked (its worker vanished before it could
/// stop it).
fn settle_expired(expired: Expired<'_>) -> Settlement {
    let (end, error) = if expired.cancel_requested {
        (RunEnd::CancelledQueued, SimError::Cancelled.to_string())
    } else {
        (
            RunEnd::Failed(FailureKind::Interrupted),
            format!(
                "the worker running run {} stopped responding {MAX_DELIVERIES} times; its credits \
                 were refunded",
                expired.run.id
            ),
        )
    };
    Settlement {
        end,
        charged: false,
        error: Some(error),
        log: None,
        reference_check: None,
    }
}

/// Runs a leased run in `slot` and settles it with the lease's token; a lease lost meanwhile
/// (the worker was too slow to renew it and another took the run) stops it unsettled.
async fn run_claimed(state: &State, claim: Claim, slot: Slot<'_>) {
    let Claim { run, job, token } = claim;
    let run_id = run.id.clone();
    let queued: QueuedJob = match serde_json::from_str(&job) {
        Ok(queued) => queued,
        Err(e) => {
            tracing::error!(%run_id, error = %e, "a queued run's job cannot be read");
            let failed = Err(SimError::Internal("its job could not be read".into()));
            let origin = ModelOrigin::Upload;
            settle(state, &run_id, &token, origin, failed, None).await;
            return;
        }
    };
    let QueuedJob {
        mut job,
        timeout_ms,
        origin,
        keep_state,
        reference,
    } = queued;
    let reference = match reference.map(QueuedReference::prepared).transpose() {
        Ok(reference) => reference,
        Err(e) => {
            tracing::error!(%run_id, error = %e, "a queued run's reference cannot be read");
            None
        }
    };
    // Held until the run ends: the cache keeps the extracted FMU while the worker reads it.
    let fmu = match fmus::extracted(state, &run.fmu_id).await {
        Ok(fmu) => fmu,
        Err(e) => {
            tracing::error!(%run_id, error = %e, "cannot fetch a queued run's FMU");
            let failed = Err(SimError::Internal("its model could not be fetched".into()));
            settle(state, &run_id, &token, origin, failed, None).await;
            return;
        }
    };
    job.fmu_dir = fmu.dir().display().to_string();
    let (cancel_tx, cancel_rx) = tokio::sync::oneshot::channel();
    state
        .cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(run_id.clone(), cancel_tx);
    let lost = Arc::new(AtomicBool::new(false));
    let beats = tokio::spawn(heartbeats(
        state.clone(),
        run_id.clone(),
        token.clone(),
        lost.clone(),
    ));
    let timeout = Duration::from_millis(timeout_ms);
    let (result, partial) = super::execute_in(state, &run_id, job, timeout, cancel_rx, slot).await;
    let result = super::keep_final_state(state, &run_id, keep_state.as_ref(), result).await;
    beats.abort();
    state
        .cancels
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&run_id);
    if lost.load(Ordering::SeqCst) {
        tracing::warn!(%run_id, "lost the lease of a run (another worker has it now); not settling it");
        if let Some(partial) = partial {
            let _ = tokio::fs::remove_file(partial).await;
        }
        return;
    }
    // The comparison runs once the results are kept, before the run is settled, so the
    // verdict is stored in the same transaction that ends the run.
    let check = match (&result, reference, &partial) {
        (Ok(_), Some(prepared), Some(partial)) => {
            super::keep_reference(state, &run_id, &prepared).await;
            let verdict = reference::check(partial.clone(), prepared).await;
            serde_json::to_string(&verdict).ok()
        }
        _ => None,
    };
    if let Some(partial) = partial {
        let _ = tokio::fs::remove_file(partial).await;
    }
    settle(state, &run_id, &token, origin, result, check).await;
    drop(fmu);
}

async fn settle(
    state: &State,
    run_id: &RunId,
    token: &str,
    origin: ModelOrigin,
    result: Result<crate::sim::runner::RunOutcome, SimError>,
    check: Option<String>,
) {
    if let Err(e) = super::settle(state, run_id, Some(token), origin, result, check).await {
        tracing::error!(%run_id, error = %e, "could not settle a run");
    }
}

/// Renews the lease of a run this lane holds until the lane aborts it; stops the worker
/// when the run's owner cancels it or the lease is lost.
async fn heartbeats(state: State, run_id: RunId, token: String, lost: Arc<AtomicBool>) {
    let lease = state.config.lease;
    let mut tick = tokio::time::interval(beat_every(lease));
    tick.tick().await;
    loop {
        tick.tick().await;
        let until = crate::store::now_ms() + lease.as_millis() as i64;
        let time = state.progress.get(&run_id).map(|p| p.time);
        let stop = match state
            .store
            .heartbeat_run(&run_id, &token, until, time)
            .await
        {
            Ok(Beat::Held) => false,
            Ok(Beat::CancelRequested) => true,
            Ok(Beat::Lost) => {
                lost.store(true, Ordering::SeqCst);
                true
            }
            // The database is away: keep running, the next beat may get through (and if the
            // lease runs out meanwhile, the settlement's token check refuses this worker).
            Err(e) => {
                tracing::warn!(%run_id, error = %e, "cannot renew a run's lease");
                false
            }
        };
        if stop {
            let sender = state
                .cancels
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&run_id);
            if let Some(sender) = sender {
                let _ = sender.send(());
            }
        }
    }
}

/// Stops this process's lanes at shutdown. Simulations still running are not waited for
/// (their workers die with this process). On SQLite, the one server of its database, every
/// run not ended fails now, refunded, rather than at the next start. On PostgreSQL the runs
/// this process held go back to the queue, where another process takes them at once.
pub async fn stop(state: &State, lanes: Vec<tokio::task::JoinHandle<()>>) {
    for lane in lanes {
        lane.abort();
    }
    if state.store.engine() == crate::store::Engine::Sqlite {
        match super::recover(&state.store).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                runs = n,
                "failed and refunded the runs still in progress at shutdown"
            ),
            Err(e) => {
                tracing::error!(error = %e, "could not settle the runs in progress at shutdown")
            }
        }
    } else {
        match state.store.requeue_node_runs(&state.node_id).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(runs = n, "gave the runs in progress back to the queue"),
            Err(e) => tracing::error!(error = %e, "could not give the runs in progress back"),
        }
        match state.store.release_node_cases(&state.node_id).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(cases = n, "gave the sweep cases in progress back"),
            Err(e) => {
                tracing::error!(error = %e, "could not give the sweep cases in progress back")
            }
        }
    }
    if let Err(e) = state.store.node_gone(&state.node_id).await {
        tracing::warn!(error = %e, "cannot remove this node from the list of nodes");
    }
}
