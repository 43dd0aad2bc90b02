//! Sweep batches on worker nodes: a `worker-node` with no run to take leases a batch of a
//! driven sweep's queued cases (`store::sweep_batches`), runs it in its sandboxed worker as
//! the driver would, heartbeats the batch's lease while it runs (a cancel made on any server
//! comes back on the heartbeat and stops the worker), and settles each case with the attempt
//! it claimed it with. The sweep's driver gives back the cases of a node whose lease ran out
//! and ends the sweep when its last case settles, wherever it ran.

use std::sync::Arc;

use tokio::sync::watch;

use super::executor::{Pace, Sweep, run_cases};
use crate::domain::error::AppResult;
use crate::domain::runs::charging::FailureKind;
use crate::domain::runs::queue::beat_every;
use crate::sim::runner::Slot;
use crate::state::State;
use crate::store::sweep_batches::BatchBeat;

/// Leases a batch of cases of the oldest driven sweep that has queued ones and runs it in
/// `slot`'s worker. `false` when there was none. `pace` sizes the batch (to last about
/// [`super::executor::BATCH_SECONDS`]) and learns from it.
pub async fn run_leased_batch(state: &State, slot: Slot<'_>, pace: &mut Pace) -> AppResult<bool> {
    let lease_ms = i64::try_from(state.config.lease.as_millis()).unwrap_or(i64::MAX);
    let leased = state
        .store
        .lease_case_batch(&state.node_id, pace.size, lease_ms)
        .await?;
    let Some(batch) = leased.filter(|b| !b.cases.is_empty()) else {
        return Ok(false);
    };
    let id = batch.sweep.id.clone();
    let sweep = match Sweep::load(state, &batch.sweep).await {
        Ok(sweep) => Arc::new(sweep),
        Err(e) => {
            // Given back at once (each claim counted an attempt: a model this node can never
            // load fails its cases, refunded, after the most attempts).
            let claimed = batch.cases.iter().map(|c| (c.index, c.attempts)).collect();
            let failure = (
                FailureKind::ServiceError,
                "the service could not run this case; it was refunded".to_string(),
            );
            let given_back = state
                .store
                .requeue_cases(&id, claimed, super::MAX_ATTEMPTS, failure)
                .await;
            match given_back {
                Ok(Some(row)) => super::executor::announce_end(state, &row).await,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(sweep = %id, error = %e, "cannot give back a batch's cases")
                }
            }
            return Err(e);
        }
    };
    let (stop, stopped) = watch::channel(false);
    let beats = tokio::spawn(keep_batch(state.clone(), id, lease_ms, stop));
    let ran = run_cases(&sweep, slot, batch.cases, stopped, pace).await;
    beats.abort();
    ran.map(|()| true)
}

/// Renews the batch's lease until aborted; stops the batch when its sweep was cancelled or
/// the lease was lost (its cases are another's: what this node settles now is skipped).
async fn keep_batch(
    state: State,
    id: crate::domain::ids::SweepId,
    lease_ms: i64,
    stop: watch::Sender<bool>,
) {
    let mut tick = tokio::time::interval(beat_every(state.config.lease));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        match state
            .store
            .renew_case_batch(&id, &state.node_id, lease_ms)
            .await
        {
            Ok(BatchBeat::Held) => {}
            Ok(BatchBeat::Cancelled | BatchBeat::Lost) => {
                let _ = stop.send(true);
                return;
            }
            // Tried again at the next beat; the lease holds a while.
            Err(e) => tracing::warn!(sweep = %id, error = %e, "cannot renew a sweep batch's lease"),
        }
    }
}
