//! The run queue: runs waiting for a worker are rows of `runs` (`status = 'queued'`) with
//! their worker job in `run_jobs`; a process that runs simulations leases one at a time.
//!
//! Why the runs table itself, and no `FOR UPDATE SKIP LOCKED` or pgmq: a lease changes the
//! run's row (queued → running, who holds it, until when), and every write already takes the
//! store's one write lock (SQLite's, or one advisory lock on PostgreSQL), so two claims can
//! never see the same queued run and row locks would add nothing. The queue then works the
//! same on both engines, its operations settle money with the runs' own `settle_in` in the
//! same transaction, and there is no second copy of a run's state to keep in step.
//!
//! A lease is a random token and a time: the holder renews it with heartbeats (which also
//! carry progress out and a cancel request back), and only the current token can settle the
//! run, so a worker whose lease ran out and was given to another can never settle twice.

use super::runs::{COLUMN_COUNT, COLUMNS, RunRow, Settlement, from_row, get, settle_in};
use super::sql::{OptionalExtension, params};
use super::{Store, StoreResult, now_ms, write_tx};
use crate::domain::ids::RunId;
use crate::domain::runs::charging::RunEnd;

/// A run a worker has leased: its row (now `running`), its job and the lease's token.
#[derive(Debug)]
pub struct Claim {
    pub run: RunRow,
    /// The worker job as queued (`domain::runs::queue::QueuedJob`, JSON).
    pub job: String,
    pub token: String,
}

/// What a heartbeat learned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Beat {
    /// The lease holds until the new time.
    Held,
    /// The lease holds, and the run's owner asked to cancel it.
    CancelRequested,
    /// The lease is gone (it ran out and another worker took the run, or the run ended):
    /// the holder must stop and settle nothing.
    Lost,
}

/// What a cancel request did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelRequest {
    /// The run was still queued: it is settled now, as this says.
    Settled(RunEnd),
    /// A worker holds the run: it learns of the cancel on its next heartbeat.
    Asked,
    /// The run had already ended.
    Ended,
}

/// A run whose lease ran out and that is not delivered again, as a claim's clean-up saw it.
pub struct Expired<'a> {
    pub run: &'a RunRow,
    /// Its owner had asked to cancel it.
    pub cancel_requested: bool,
}

/// The queue as `/metrics` shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueStats {
    pub queued: u64,
    /// How long the oldest queued run has waited (ms).
    pub oldest_queued_ms: i64,
    pub leased: u64,
    /// The earliest time a lease runs out (ms since the epoch), if any is held.
    pub earliest_lease_end: Option<i64>,
    /// Nodes whose heartbeat was seen since the time asked for, by kind.
    pub server_nodes: u64,
    pub worker_nodes: u64,
}

/// Which kind of process a node is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A `serve` process with workers of its own.
    Server,
    /// A `worker-node` process.
    Worker,
}

impl NodeKind {
    fn as_str(self) -> &'static str {
        match self {
            NodeKind::Server => "server",
            NodeKind::Worker => "worker",
        }
    }
}

/// A lease's token: 128 random bits.
fn new_token() -> String {
    format!("{:032x}", rand::random::<u128>())
}

impl Store {
    /// Whether a claim could find work now: a queued run with its job, or a lease that ran
    /// out. A read, so that idle workers poll without taking the write lock.
    pub async fn has_queued_work(&self) -> StoreResult<bool> {
        self.run(move |conn| {
            conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM runs WHERE status = 'queued'
                     OR (status = 'running' AND leased_until < ?1))",
                [now_ms()],
                |r| r.get(0),
            )
        })
        .await
    }

    /// Leases the oldest run that can be delivered to `node` for `lease_ms`, in one
    /// transaction that first settles what cannot be delivered again: runs whose lease ran
    /// out after `max_deliveries` leases, or whose owner asked to cancel them (and a queued
    /// run without a job, which only a version before the queue could leave), as `expired`
    /// decides. Returns the claim (if any) and how each settled run ended.
    pub async fn claim_run<F>(
        &self,
        node: &str,
        lease_ms: i64,
        max_deliveries: u32,
        expired: F,
    ) -> StoreResult<(Option<Claim>, Vec<(RunId, RunEnd)>)>
    where
        F: Fn(Expired<'_>) -> Settlement + Send + 'static,
    {
        let node = node.to_string();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let now = now_ms();
            let sql = format!(
                "SELECT {COLUMNS}, cancel_requested FROM runs
                 WHERE (status = 'running' AND leased_until < ?1
                        AND (deliveries >= ?2 OR cancel_requested = 1))
                    OR (status = 'queued' AND (deliveries >= ?2
                        OR NOT EXISTS (SELECT 1 FROM run_jobs j WHERE j.run_id = runs.id)))"
            );
            let dead: Vec<(RunRow, bool)> = {
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![now, max_deliveries], |r| {
                    Ok((from_row(r)?, r.get(COLUMN_COUNT)?))
                })?;
                rows.collect::<Result<_, _>>()?
            };
            let mut settled = Vec::new();
            for (run, cancel_requested) in &dead {
                let settlement = expired(Expired {
                    run,
                    cancel_requested: *cancel_requested,
                });
                if settle_in(&tx, run, &settlement)? {
                    settled.push((run.id.clone(), settlement.end));
                }
            }
            // A run whose worker vanished first (it has waited longest), then the oldest
            // queued one.
            let next: Option<RunId> = tx
                .query_row(
                    "SELECT id FROM runs WHERE status = 'running' AND leased_until < ?1
                       AND cancel_requested = 0 AND deliveries < ?2
                       AND EXISTS (SELECT 1 FROM run_jobs j WHERE j.run_id = runs.id)
                     ORDER BY leased_until LIMIT 1",
                    params![now, max_deliveries],
                    |r| r.get(0),
                )
                .optional()?;
            let next = match next {
                Some(id) => Some(id),
                None => tx
                    .query_row(
                        "SELECT id FROM runs WHERE status = 'queued' AND deliveries < ?1
                           AND EXISTS (SELECT 1 FROM run_jobs j WHERE j.run_id = runs.id)
                         ORDER BY created_at, id LIMIT 1",
                        params![max_deliveries],
                        |r| r.get(0),
                    )
                    .optional()?,
            };
            let claim = match next {
                None => None,
                Some(id) => {
                    let token = new_token();
                    tx.execute(
                        "UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?2),
                             lease_token = ?3, leased_until = ?4, lease_node = ?5,
                             deliveries = deliveries + 1, progress_time = NULL
                         WHERE id = ?1",
                        params![id, now, token, now + lease_ms, node],
                    )?;
                    let job: String =
                        tx.query_row("SELECT job FROM run_jobs WHERE run_id = ?1", [&id], |r| {
                            r.get(0)
                        })?;
                    let run = get(&tx, &id)?.ok_or(super::StoreError::NoRows)?;
                    Some(Claim { run, job, token })
                }
            };
            tx.commit()?;
            Ok((claim, settled))
        })
        .await
    }

    /// Renews a lease until `until` and records the simulated time the run has reached.
    pub async fn heartbeat_run(
        &self,
        id: &RunId,
        token: &str,
        until: i64,
        progress_time: Option<f64>,
    ) -> StoreResult<Beat> {
        let (id, token) = (id.clone(), token.to_string());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let cancel: Option<bool> = tx
                .query_row(
                    "UPDATE runs SET leased_until = ?3, progress_time = COALESCE(?4, progress_time)
                     WHERE id = ?1 AND lease_token = ?2 AND status = 'running'
                     RETURNING cancel_requested",
                    params![id, token, until, progress_time],
                    |r| r.get(0),
                )
                .optional()?;
            tx.commit()?;
            Ok(match cancel {
                None => Beat::Lost,
                Some(true) => Beat::CancelRequested,
                Some(false) => Beat::Held,
            })
        })
        .await
    }

    /// Asks to cancel a run: a queued one is settled at once (as `queued` decides), a leased
    /// one is flagged for its worker's next heartbeat.
    pub async fn request_cancel<F>(&self, id: &RunId, queued: F) -> StoreResult<CancelRequest>
    where
        F: FnOnce(&RunRow) -> Settlement + Send + 'static,
    {
        let id = id.clone();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let Some(run) = get(&tx, &id)? else {
                return Ok(CancelRequest::Ended);
            };
            let outcome = match run.status {
                crate::domain::runs::RunStatus::Queued => {
                    let settlement = queued(&run);
                    if settle_in(&tx, &run, &settlement)? {
                        CancelRequest::Settled(settlement.end)
                    } else {
                        CancelRequest::Ended
                    }
                }
                crate::domain::runs::RunStatus::Running => {
                    tx.execute(
                        "UPDATE runs SET cancel_requested = 1 WHERE id = ?1 AND status = 'running'",
                        [&id],
                    )?;
                    CancelRequest::Asked
                }
                _ => CancelRequest::Ended,
            };
            tx.commit()?;
            Ok(outcome)
        })
        .await
    }

    /// Gives the runs `node` holds back to the queue (a worker stopping on purpose), so
    /// another takes them at once instead of after their lease. Returns how many.
    pub async fn requeue_node_runs(&self, node: &str) -> StoreResult<usize> {
        self.write_one(
            "UPDATE runs SET status = 'queued', lease_token = NULL, leased_until = NULL,
                     lease_node = NULL, progress_time = NULL
                 WHERE lease_node = ?1 AND status = 'running'",
            node,
        )
        .await
    }

    /// Records (or renews) a node's heartbeat.
    pub async fn node_seen(
        &self,
        id: &str,
        kind: NodeKind,
        host: &str,
        slots: u32,
        started_at: i64,
    ) -> StoreResult<()> {
        let (id, host) = (id.to_string(), host.to_string());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            tx.execute(
                "INSERT INTO worker_nodes (id, kind, host, slots, started_at, seen_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
                params![id, kind.as_str(), host, slots, started_at, now_ms()],
            )?;
            // Nodes silent for a day are gone for good.
            tx.execute(
                "DELETE FROM worker_nodes WHERE seen_at < ?1",
                [now_ms() - 86_400_000],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// A node stopped on purpose.
    pub async fn node_gone(&self, id: &str) -> StoreResult<()> {
        let id = id.to_string();
        self.run(move |conn| {
            conn.execute("DELETE FROM worker_nodes WHERE id = ?1", [&id])?;
            Ok(())
        })
        .await
    }

    /// The queue's depth, its oldest wait, the leases held, and the nodes seen since
    /// `seen_since` (ms since the epoch).
    pub async fn queue_stats(&self, seen_since: i64) -> StoreResult<QueueStats> {
        self.run(move |conn| {
            let now = now_ms();
            let (queued, oldest): (i64, Option<i64>) = conn.query_row(
                "SELECT COUNT(*), MIN(created_at) FROM runs WHERE status = 'queued'",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let (leased, earliest): (i64, Option<i64>) = conn.query_row(
                "SELECT COUNT(*), MIN(leased_until) FROM runs
                 WHERE status = 'running' AND leased_until IS NOT NULL",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            let (servers, workers): (Option<i64>, Option<i64>) = conn.query_row(
                "SELECT SUM(CASE WHEN kind = 'server' THEN 1 ELSE 0 END),
                        SUM(CASE WHEN kind = 'worker' THEN 1 ELSE 0 END)
                 FROM worker_nodes WHERE seen_at >= ?1",
                [seen_since],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            Ok(QueueStats {
                queued: queued.max(0) as u64,
                oldest_queued_ms: oldest.map_or(0, |t| (now - t).max(0)),
                leased: leased.max(0) as u64,
                earliest_lease_end: earliest,
                server_nodes: servers.unwrap_or(0).max(0) as u64,
                worker_nodes: workers.unwrap_or(0).max(0) as u64,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::runs::RunStatus;
    use crate::domain::runs::charging::FailureKind;
    use crate::store::fixtures::{queued_run, store_with_user};
    use crate::store::runs::Reservation;

    /// A store with one user holding 10 credits and one queued run costing 1.
    async fn one_queued_run() -> (tempfile::TempDir, Store, RunId) {
        let (dir, store) = store_with_user(10).await;
        let run = queued_run("run_1", None, now_ms());
        let reserved = store
            .reserve_run(
                run,
                "{\"job\":1}".into(),
                None,
                crate::store::runs::RunCaps {
                    max_active: 4,
                    per_minute: 60,
                },
            )
            .await
            .unwrap();
        assert!(matches!(reserved, Reservation::Reserved));
        (dir, store, RunId::from("run_1"))
    }

    async fn balance(store: &Store) -> i64 {
        store
            .run(|c| c.query_row("SELECT credits FROM users WHERE id = 'u'", [], |r| r.get(0)))
            .await
            .unwrap()
    }

    fn interrupted(e: Expired<'_>) -> Settlement {
        let end = if e.cancel_requested {
            RunEnd::CancelledQueued
        } else {
            RunEnd::Failed(FailureKind::Interrupted)
        };
        Settlement {
            end,
            charged: false,
            error: Some("gone".into()),
            log: None,
            reference_check: None,
        }
    }

    fn succeeded(_: &RunRow) -> Settlement {
        Settlement {
            end: RunEnd::Succeeded,
            charged: true,
            error: None,
            log: Some(String::new()),
            reference_check: None,
        }
    }

    #[tokio::test]
    async fn a_run_whose_workers_vanish_is_leased_again_then_fails_refunded_and_no_stale_lease_settles()
     {
        let (_dir, store, id) = one_queued_run().await;
        assert_eq!(balance(&store).await, 9);
        let mut tokens = Vec::new();
        for delivery in 1..=3 {
            // A lease that has already run out: its worker "vanished".
            let (claim, reaped) = store.claim_run("n", -1, 3, interrupted).await.unwrap();
            let claim = claim.expect("leased again");
            assert!(reaped.is_empty());
            assert_eq!(claim.run.id, id);
            assert_eq!(claim.job, "{\"job\":1}");
            assert_eq!(claim.run.status, RunStatus::Running);
            let n: i64 = store
                .run(|c| c.query_row("SELECT deliveries FROM runs", [], |r| r.get(0)))
                .await
                .unwrap();
            assert_eq!(n, delivery);
            tokens.push(claim.token);
        }
        let (claim, reaped) = store.claim_run("n", 60_000, 3, interrupted).await.unwrap();
        assert!(claim.is_none());
        assert_eq!(
            reaped,
            vec![(id.clone(), RunEnd::Failed(FailureKind::Interrupted))]
        );
        assert_eq!(balance(&store).await, 10, "refunded");
        for token in &tokens {
            let late = store.settle_run(&id, Some(token), succeeded).await.unwrap();
            assert_eq!(late, None, "a stale worker settles nothing");
        }
        assert_eq!(balance(&store).await, 10);
        let jobs: i64 = store
            .run(|c| c.query_row("SELECT COUNT(*) FROM run_jobs", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(jobs, 0, "the job goes with the run's end");
    }

    #[tokio::test]
    async fn only_the_current_lease_settles_and_its_heartbeats_carry_a_cancel() {
        let (_dir, store, id) = one_queued_run().await;
        let (first, _) = store.claim_run("a", -1, 3, interrupted).await.unwrap();
        let first = first.unwrap();
        let (second, _) = store.claim_run("b", 60_000, 3, interrupted).await.unwrap();
        let second = second.unwrap();
        assert_eq!(second.run.lease_node.as_deref(), Some("b"));
        let until = now_ms() + 60_000;
        let beat = |token: String| {
            let (store, id) = (store.clone(), id.clone());
            async move {
                store
                    .heartbeat_run(&id, &token, until, Some(0.5))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(beat(first.token.clone()).await, Beat::Lost);
        assert_eq!(beat(second.token.clone()).await, Beat::Held);
        let asked = store.request_cancel(&id, succeeded).await.unwrap();
        assert_eq!(asked, CancelRequest::Asked);
        assert_eq!(beat(second.token.clone()).await, Beat::CancelRequested);
        let stale = store.settle_run(&id, Some(&first.token), succeeded).await;
        assert_eq!(stale.unwrap(), None);
        let settled = store.settle_run(&id, Some(&second.token), succeeded).await;
        assert_eq!(settled.unwrap(), Some(RunEnd::Succeeded));
        assert_eq!(balance(&store).await, 9, "charged once");
        assert_eq!(beat(second.token).await, Beat::Lost, "the run has ended");
    }

    #[tokio::test]
    async fn a_queued_cancel_settles_at_once_and_an_expired_cancelled_run_is_not_leased_again() {
        let (_dir, store, id) = one_queued_run().await;
        let cancelled = |_: &RunRow| Settlement {
            end: RunEnd::CancelledQueued,
            charged: false,
            error: None,
            log: None,
            reference_check: None,
        };
        let asked = store.request_cancel(&id, cancelled).await.unwrap();
        assert_eq!(asked, CancelRequest::Settled(RunEnd::CancelledQueued));
        assert_eq!(balance(&store).await, 10);
        let (claim, _) = store.claim_run("n", 60_000, 3, interrupted).await.unwrap();
        assert!(claim.is_none());

        // Asked to cancel while leased, and its worker vanished: cancelled, refunded.
        let (_dir, store, id) = one_queued_run().await;
        let (claim, _) = store.claim_run("n", -1, 3, interrupted).await.unwrap();
        assert!(claim.is_some());
        let asked = store.request_cancel(&id, succeeded).await.unwrap();
        assert_eq!(asked, CancelRequest::Asked);
        let (claim, reaped) = store.claim_run("m", 60_000, 3, interrupted).await.unwrap();
        assert!(claim.is_none());
        assert_eq!(reaped, vec![(id, RunEnd::CancelledQueued)]);
        assert_eq!(balance(&store).await, 10);
    }

    #[tokio::test]
    async fn a_stopping_node_gives_its_runs_back_to_the_queue() {
        let (_dir, store, id) = one_queued_run().await;
        let (claim, _) = store.claim_run("n", 60_000, 3, interrupted).await.unwrap();
        let token = claim.unwrap().token;
        assert!(!store.has_queued_work().await.unwrap());
        assert_eq!(store.requeue_node_runs("other").await.unwrap(), 0);
        assert_eq!(store.requeue_node_runs("n").await.unwrap(), 1);
        assert!(store.has_queued_work().await.unwrap());
        let stale = store.settle_run(&id, Some(&token), succeeded).await;
        assert_eq!(stale.unwrap(), None);
        let (claim, _) = store.claim_run("m", 60_000, 3, interrupted).await.unwrap();
        assert_eq!(claim.unwrap().run.id, id);
    }
}
