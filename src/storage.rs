//! Keeping the data volume bounded over time: results are removed once they are older than
//! the retention period (`FMU_GATEWAY_RESULT_RETENTION_DAYS`, default 30).
//!
//! The run itself stays (its settings, cost and status are the account's history); only the
//! result file goes, and the run records when, so a later fetch answers 410 with the date
//! rather than a 500 for a missing file. The upload quota and the free-space reserve are
//! enforced where uploads and runs come in (`domain::fmus::receive`, `domain::runs::start`).

use crate::domain::error::AppResult;
use crate::state::State;
use crate::store;

/// Removes the results half-written by runs a stop interrupted (`runs/*.partial`): called at
/// start-up, after those runs were failed and refunded, when no run can be writing one.
pub fn remove_partial_results(data_dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(data_dir.join("runs")) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "partial"))
        .filter(|e| std::fs::remove_file(e.path()).is_ok())
        .count()
}

/// Runs handled per database round trip.
const BATCH: u32 = 500;

/// Removes the results of every succeeded run that ended longer than the retention period
/// ago; returns how many were removed. A file that cannot be removed is logged and left for
/// the next pass (its run still says its results are kept).
pub async fn remove_expired_results(state: &State) -> AppResult<usize> {
    let retention = state.config.result_retention_ms();
    let before = store::now_ms().saturating_sub(retention);
    let mut removed = 0;
    loop {
        let ids = state.store.expired_results(before, BATCH).await?;
        let mut done = Vec::with_capacity(ids.len());
        for id in &ids {
            match crate::domain::runs::remove_result(state, id).await {
                Ok(()) => done.push(id.clone()),
                Err(e) => tracing::warn!(run = %id, error = %e, "cannot remove expired results"),
            }
        }
        removed += done.len();
        let last_batch = ids.len() < BATCH as usize || done.is_empty();
        state.store.results_removed(done).await?;
        if last_batch {
            return Ok(removed);
        }
    }
}
