//! Sweep batches leased by worker nodes.
//!
//! A sweep is driven by one process, the holder of its lease (`store::sweeps`), which runs
//! cases in its own workers. Processes that drive no sweep, `worker-node`s, take part too:
//! a node leases a batch of a driven sweep's queued cases ([`Store::lease_case_batch`]:
//! `lease_node`, `leased_until` on each case), renews that lease while it runs them
//! ([`Store::renew_case_batch`], which also brings back a cancel) and settles each case with
//! the attempt it claimed it with ([`Store::settle_cases`]), so a node whose lease ran out
//! settles nothing. The driver gives back the cases of a lease that ran out
//! ([`Store::reap_lapsed_cases`]): to the queue, or failed and refunded after the most
//! attempts, as for its own workers.

use super::sql::{OptionalExtension, params};
use super::sweeps::{
    CASE_COLUMNS, CaseRow, SweepRow, case_from_row, finish_if_done, get, requeue_interrupted,
};
use super::{Store, StoreResult, now_ms, write_tx};
use crate::domain::ids::SweepId;
use crate::domain::sweeps::status::SweepStatus;

/// Cases of one sweep leased to one node.
#[derive(Debug)]
pub struct CaseBatch {
    pub sweep: SweepRow,
    pub cases: Vec<CaseRow>,
}

/// What renewing a batch's lease found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchBeat {
    /// Renewed: run on.
    Held,
    /// The sweep was cancelled: stop its cases (they settle cancelled).
    Cancelled,
    /// The node holds none of its cases any more (its lease ran out and they were given
    /// back): stop; whatever it settles now is skipped.
    Lost,
}

/// Sweeps whose cases a node may lease: running, and driven (their driver's lease holds, so
/// it gives back what a vanished node leaves). Oldest first.
const HELPABLE: &str = "SELECT s.id FROM sweeps s
     WHERE s.status = 'running' AND s.runner_until >= ?1
       AND EXISTS (SELECT 1 FROM sweep_cases c WHERE c.sweep_id = s.id AND c.status = 'queued')
     ORDER BY s.started_at, s.id LIMIT 1";

impl Store {
    /// Whether some driven sweep has a queued case (a read: idle nodes ask several times a
    /// second).
    pub async fn has_leasable_cases(&self) -> StoreResult<bool> {
        self.run(|conn| {
            let found: Option<SweepId> = conn
                .query_row(HELPABLE, [now_ms()], |r| r.get(0))
                .optional()?;
            Ok(found.is_some())
        })
        .await
    }

    /// Leases up to `limit` queued cases (lowest index first) of the oldest driven sweep that
    /// has some, to `node` for `lease_ms`: they become `running`, one attempt more.
    pub async fn lease_case_batch(
        &self,
        node: &str,
        limit: u32,
        lease_ms: i64,
    ) -> StoreResult<Option<CaseBatch>> {
        let node = node.to_string();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            let Some(id) = tx
                .query_row(HELPABLE, [now], |r| r.get::<SweepId>(0))
                .optional()?
            else {
                return Ok(None);
            };
            let Some(sweep) = get(&tx, &id)? else {
                return Ok(None);
            };
            let sql = format!(
                "UPDATE sweep_cases SET status = 'running', attempts = attempts + 1,
                     lease_node = ?3, leased_until = ?4
                 WHERE sweep_id = ?1 AND idx IN (
                     SELECT idx FROM sweep_cases WHERE sweep_id = ?1 AND status = 'queued'
                     ORDER BY idx LIMIT ?2)
                 RETURNING {CASE_COLUMNS}"
            );
            let mut cases = {
                let mut stmt = tx.prepare_cached(&sql)?;
                let until = now.saturating_add(lease_ms);
                let rows = stmt.query_map(params![id, limit, node, until], case_from_row)?;
                rows.collect::<Result<Vec<_>, _>>()?
            };
            tx.commit()?;
            cases.sort_by_key(|c| c.index);
            Ok(Some(CaseBatch { sweep, cases }))
        })
        .await
    }

    /// Renews the lease of the cases of sweep `id` that `node` still runs, for `lease_ms`.
    pub async fn renew_case_batch(
        &self,
        id: &SweepId,
        node: &str,
        lease_ms: i64,
    ) -> StoreResult<BatchBeat> {
        let (id, node) = (id.clone(), node.to_string());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let held = tx.execute(
                "UPDATE sweep_cases SET leased_until = ?3
                 WHERE sweep_id = ?1 AND lease_node = ?2 AND status = 'running'",
                params![id, node, now_ms().saturating_add(lease_ms)],
            )?;
            let status: Option<SweepStatus> = tx
                .query_row("SELECT status FROM sweeps WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()?;
            tx.commit()?;
            Ok(match status {
                _ if held == 0 => BatchBeat::Lost,
                Some(SweepStatus::Cancelled) | None => BatchBeat::Cancelled,
                Some(_) => BatchBeat::Held,
            })
        })
        .await
    }

    /// Gives back the cases of sweep `id` whose node's lease ran out: to the queue, or failed
    /// and refunded once they have had `max_attempts` workers (all of them, if the sweep was
    /// cancelled). Returns the sweep's row if this ended it. A read first: the driver asks
    /// twice a second while nodes run its cases.
    pub async fn reap_lapsed_cases(
        &self,
        id: &SweepId,
        max_attempts: u32,
    ) -> StoreResult<Option<SweepRow>> {
        const LAPSED: &str = "SELECT idx, attempts FROM sweep_cases
             WHERE sweep_id = ?1 AND status = 'running' AND leased_until < ?2";
        let id = id.clone();
        self.run(move |conn| {
            let now = now_ms();
            let any: Option<u32> = conn
                .query_row(LAPSED, params![id, now], |r| r.get(0))
                .optional()?;
            if any.is_none() {
                return Ok(None);
            }
            let tx = write_tx(conn)?;
            let Some(sweep) = get(&tx, &id)? else {
                return Ok(None);
            };
            let lapsed: Vec<(u32, u32)> = {
                let mut stmt = tx.prepare_cached(LAPSED)?;
                let rows = stmt.query_map(params![id, now], |r| Ok((r.get(0)?, r.get(1)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            requeue_interrupted(&tx, &sweep, lapsed, max_attempts)?;
            let ended = finish_if_done(&tx, &id, now)?;
            tx.commit()?;
            Ok(ended)
        })
        .await
    }

    /// The cases of sweep `id` that worker nodes settled (or whose lapsed lease ended them)
    /// at `since` or later (ms since the epoch), in index order: what the sweep's driver
    /// relays to its watchers.
    pub async fn node_cases_ended_since(
        &self,
        id: &SweepId,
        since: i64,
    ) -> StoreResult<Vec<CaseRow>> {
        let id = id.clone();
        self.run(move |conn| {
            let sql = format!(
                "SELECT {CASE_COLUMNS} FROM sweep_cases WHERE sweep_id = ?1
                 AND status IN ('succeeded', 'failed', 'cancelled') AND lease_node IS NOT NULL
                 AND finished_at >= ?2 ORDER BY idx"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(params![id, since], case_from_row)?;
            rows.collect()
        })
        .await
    }

    /// Ends the leases `node` holds (a node stopping on purpose): its drivers give the cases
    /// back at their next look rather than after the lease. Returns how many cases.
    pub async fn release_node_cases(&self, node: &str) -> StoreResult<usize> {
        self.write_one(
            "UPDATE sweep_cases SET leased_until = 0
                 WHERE lease_node = ?1 AND status = 'running'",
            node,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sweeps::Orphans;
    use crate::store::sweeps::tests::{runner, store_with_sweep, success};

    const MINUTE: i64 = 60_000;

    async fn balance(store: &Store) -> i64 {
        store
            .run(|c| c.query_row("SELECT credits FROM users WHERE id = 'u'", [], |r| r.get(0)))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_node_leases_a_batch_of_a_driven_sweep_renews_it_and_settles_it_with_its_attempt() {
        let driver = runner("server", MINUTE);
        let (_dir, store, id) = store_with_sweep(4, &driver).await;
        // Not started by its driver yet: nothing to lease.
        assert!(!store.has_leasable_cases().await.unwrap());
        let mine = store.claim_cases(&id, 1, &driver).await.unwrap().unwrap();
        assert_eq!(mine[0].index, 0);
        assert!(store.has_leasable_cases().await.unwrap());

        let batch = store
            .lease_case_batch("n1", 2, MINUTE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(batch.sweep.id, id);
        let indices: Vec<u32> = batch.cases.iter().map(|c| c.index).collect();
        assert_eq!(indices, [1, 2]);
        assert!(batch.cases.iter().all(|c| c.attempts == 1));
        assert_eq!(
            store.renew_case_batch(&id, "n1", MINUTE).await.unwrap(),
            BatchBeat::Held
        );
        assert_eq!(
            store.renew_case_batch(&id, "n2", MINUTE).await.unwrap(),
            BatchBeat::Lost
        );

        let settled = store
            .settle_cases(&id, batch.cases.iter().map(success).collect())
            .await
            .unwrap();
        assert_eq!(settled.indices, [1, 2]);
        assert_eq!(store.sweep_counts(&id).await.unwrap().succeeded, 2);
        // Nothing of its own left running.
        assert_eq!(
            store.renew_case_batch(&id, "n1", MINUTE).await.unwrap(),
            BatchBeat::Lost
        );
        // The driver's own case has no node lease: never reaped.
        assert_eq!(store.reap_lapsed_cases(&id, 3).await.unwrap(), None);
        assert_eq!(store.sweep_counts(&id).await.unwrap().running, 1);
    }

    #[tokio::test]
    async fn a_lapsed_batch_goes_back_to_the_queue_and_fails_refunded_after_the_most_attempts() {
        let driver = runner("server", MINUTE);
        let (_dir, store, id) = store_with_sweep(1, &driver).await;
        assert_eq!(balance(&store).await, 9);
        store.claim_cases(&id, 0, &driver).await.unwrap().unwrap();
        for attempt in 1..=3 {
            // Leased for no time: lapsed at once, as a killed node's lease does.
            let batch = store.lease_case_batch("n1", 5, -1).await.unwrap().unwrap();
            assert_eq!(batch.cases.len(), 1);
            assert_eq!(batch.cases[0].attempts, attempt);
            let ended = store.reap_lapsed_cases(&id, 3).await.unwrap();
            // The stale node settles nothing.
            let late = store
                .settle_cases(&id, vec![success(&batch.cases[0])])
                .await
                .unwrap();
            assert!(late.indices.is_empty(), "attempt {attempt}");
            if attempt < 3 {
                assert_eq!(ended, None);
                assert_eq!(store.sweep_counts(&id).await.unwrap().queued, 1);
            } else {
                let ended = ended.expect("the last attempt ends the sweep");
                assert_eq!(ended.status, SweepStatus::Failed);
            }
        }
        assert_eq!(balance(&store).await, 10, "refunded");
        assert!(
            store
                .lease_case_batch("n1", 5, MINUTE)
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn a_stopping_node_gives_its_cases_back_and_a_cancel_comes_back_on_the_heartbeat() {
        let driver = runner("server", MINUTE);
        let (_dir, store, id) = store_with_sweep(3, &driver).await;
        store.claim_cases(&id, 0, &driver).await.unwrap().unwrap();
        let batch = store
            .lease_case_batch("n1", 2, MINUTE)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(batch.cases.len(), 2);
        assert_eq!(store.release_node_cases("n1").await.unwrap(), 2);
        assert_eq!(store.reap_lapsed_cases(&id, 3).await.unwrap(), None);
        assert_eq!(store.sweep_counts(&id).await.unwrap().queued, 3);

        let batch = store
            .lease_case_batch("n2", 1, MINUTE)
            .await
            .unwrap()
            .unwrap();
        store.cancel_sweep(&id).await.unwrap().unwrap();
        assert_eq!(
            store.renew_case_batch(&id, "n2", MINUTE).await.unwrap(),
            BatchBeat::Cancelled
        );
        // The stopped case settles as the node reports it; the sweep ends, all else refunded.
        let mut stopped = success(&batch.cases[0]);
        stopped.end = crate::domain::runs::charging::RunEnd::CancelledRunning;
        stopped.kpis = None;
        let settled = store.settle_cases(&id, vec![stopped]).await.unwrap();
        assert_eq!(settled.ended.unwrap().status, SweepStatus::Cancelled);
        assert_eq!(
            balance(&store).await,
            9,
            "the running case charged, the others refunded"
        );
    }

    #[tokio::test]
    async fn a_takeover_requeues_the_drivers_cases_and_leaves_a_nodes_live_lease_alone() {
        let (lapsed, next) = (runner("a", -1), runner("b", MINUTE));
        let (_dir, store, id) = store_with_sweep(4, &lapsed).await;
        store.claim_cases(&id, 1, &lapsed).await.unwrap().unwrap();
        // The driver's lease has run out: its sweep is not one to lease cases of.
        assert!(!store.has_leasable_cases().await.unwrap());
        store
            .run({
                let id = id.clone();
                move |c| {
                    c.execute(
                        "UPDATE sweeps SET runner_until = ?2 WHERE id = ?1",
                        params![id, now_ms() + MINUTE],
                    )
                }
            })
            .await
            .unwrap();
        let batch = store
            .lease_case_batch("n1", 2, MINUTE)
            .await
            .unwrap()
            .unwrap();
        store
            .run({
                let id = id.clone();
                move |c| c.execute("UPDATE sweeps SET runner_until = 0 WHERE id = ?1", [&id])
            })
            .await
            .unwrap();
        let taken = store
            .recover_sweeps(3, Orphans::LeaseExpired { driving: vec![] }, &next)
            .await
            .unwrap();
        assert_eq!(taken.resume, vec![id.clone()]);
        let counts = store.sweep_counts(&id).await.unwrap();
        assert_eq!(
            (counts.queued, counts.running),
            (2, 2),
            "the driver's case requeued"
        );
        assert_eq!(
            store.renew_case_batch(&id, "n1", MINUTE).await.unwrap(),
            BatchBeat::Held
        );
        let settled = store
            .settle_cases(&id, batch.cases.iter().map(success).collect())
            .await
            .unwrap();
        assert_eq!(settled.indices.len(), 2);
    }
}
