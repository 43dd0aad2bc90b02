//! What a running sweep tells its watchers (the API's event stream, the dashboard): the
//! cases as they end, its progress, and its end. Held in memory only: everything an event
//! says is also in the database, so a watcher that joins late (or falls behind) starts from
//! a snapshot read there. The hub holds a sweep exactly while a driver in this process runs
//! it: another process's sweep is watched from the database ([`super::watch`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use tokio::sync::{broadcast, watch};

use crate::domain::ids::SweepId;
use crate::domain::runs::RunStatus;
use crate::store::sweeps::CaseCounts;

use super::SweepStatus;

/// Events a watcher may fall behind by before it is sent a fresh snapshot instead.
const BACKLOG: usize = 1024;

#[derive(Clone, Debug)]
pub enum SweepEvent {
    /// Cases ended (in one settlement).
    Cases(Vec<CaseEnded>),
    Progress {
        counts: CaseCounts,
        eta_seconds: Option<f64>,
    },
    End {
        status: SweepStatus,
        error: Option<String>,
    },
}

#[derive(Clone, Debug)]
pub struct CaseEnded {
    pub index: u32,
    pub status: RunStatus,
    pub kpis: Option<Vec<Option<f64>>>,
    pub error: Option<String>,
    pub charged: bool,
}

struct Entry {
    events: broadcast::Sender<SweepEvent>,
    cancel: watch::Sender<bool>,
    /// When this process began running the sweep, and the cases it has ended since: the
    /// rate an ETA is estimated from.
    since: Instant,
    ended_here: u32,
    /// Which registration made the entry: only its driver releases it.
    generation: u64,
}

/// The sweeps this process is running.
#[derive(Default)]
pub struct Hub {
    sweeps: Mutex<HashMap<SweepId, Entry>>,
    generations: AtomicU64,
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SweepId, Entry>> {
        self.sweeps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The executor begins a sweep: returns what says it was cancelled, and the
    /// registration to [`Hub::release`] it with.
    pub fn register(&self, id: &SweepId) -> (watch::Receiver<bool>, u64) {
        let mut sweeps = self.lock();
        let entry = sweeps.entry(id.clone()).or_insert_with(|| Entry {
            events: broadcast::channel(BACKLOG).0,
            cancel: watch::channel(false).0,
            since: Instant::now(),
            ended_here: 0,
            generation: self.generations.fetch_add(1, Ordering::Relaxed),
        });
        (entry.cancel.subscribe(), entry.generation)
    }

    /// The driver of registration `generation` stops driving the sweep without its end (it
    /// lost its lease to another process, or left the rest to whoever ends it): its batches
    /// stop, and its watchers, seeing the events close, go on from the database.
    pub fn release(&self, id: &SweepId, generation: u64) {
        let mut sweeps = self.lock();
        if sweeps.get(id).is_some_and(|e| e.generation == generation)
            && let Some(entry) = sweeps.remove(id)
        {
            let _ = entry.cancel.send(true);
        }
    }

    /// The sweeps a driver in this process is running.
    pub fn driving(&self) -> Vec<SweepId> {
        self.lock().keys().cloned().collect()
    }

    /// Events from now on; `None` when this process is not running the sweep.
    pub fn subscribe(&self, id: &SweepId) -> Option<broadcast::Receiver<SweepEvent>> {
        self.lock().get(id).map(|e| e.events.subscribe())
    }

    pub fn publish(&self, id: &SweepId, event: SweepEvent) {
        let mut sweeps = self.lock();
        if let Some(entry) = sweeps.get_mut(id) {
            if let SweepEvent::Cases(cases) = &event {
                entry.ended_here += cases.len() as u32;
            }
            // No watcher is fine.
            let _ = entry.events.send(event);
        }
    }

    /// Stops the sweep's running batches.
    pub fn cancel(&self, id: &SweepId) {
        if let Some(entry) = self.lock().get(id) {
            let _ = entry.cancel.send(true);
        }
    }

    /// The sweep ended: tells its watchers and forgets it.
    pub fn end(&self, id: &SweepId, status: SweepStatus, error: Option<String>) {
        if let Some(entry) = self.lock().remove(id) {
            let _ = entry.events.send(SweepEvent::End { status, error });
        }
    }

    /// Seconds until the `remaining` cases end at the rate seen so far; `None` before any
    /// ended here.
    pub fn eta_seconds(&self, id: &SweepId, remaining: u32) -> Option<f64> {
        let sweeps = self.lock();
        let entry = sweeps.get(id)?;
        if entry.ended_here == 0 {
            return None;
        }
        let rate = f64::from(entry.ended_here) / entry.since.elapsed().as_secs_f64().max(1e-3);
        Some(f64::from(remaining) / rate)
    }
}
