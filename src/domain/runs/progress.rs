//! How far each running run has got, as its worker reports it: kept in memory, one entry per
//! run while it is in a worker, removed when it ends. Display only: the numbers come from the
//! FMU's process (the reader has already dropped non-finite ones and clamped the rest to the
//! run's span, `sim::protocol::ProgressSink`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::domain::ids::RunId;
use crate::sim::runner::OnProgress;

/// The simulation time a run has reached, within its start and stop time.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    pub start_time: f64,
    pub stop_time: f64,
    pub time: f64,
}

impl Progress {
    /// The share of the simulated span done, 0 to 1 (1 for a run with no span).
    pub fn fraction(&self) -> f64 {
        let span = self.stop_time - self.start_time;
        if span > 0.0 {
            ((self.time - self.start_time) / span).clamp(0.0, 1.0)
        } else {
            1.0
        }
    }
}

/// The latest progress of every run in a worker.
#[derive(Default)]
pub struct Board(Mutex<HashMap<RunId, Progress>>);

impl Board {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, Progress>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A run entered a worker: it is at its start time.
    pub fn begin(&self, run_id: &RunId, start_time: f64, stop_time: f64) {
        let start = Progress {
            start_time,
            stop_time,
            time: start_time,
        };
        self.entries().insert(run_id.clone(), start);
    }

    /// What the worker pool tells each report of this run to: it becomes the run's latest.
    /// Reports after the run ended are dropped (its entry is gone).
    pub fn reporter(self: &Arc<Self>, run_id: &RunId) -> OnProgress {
        let (board, run_id) = (Arc::clone(self), run_id.clone());
        Box::new(move |time| {
            if let Some(progress) = board.entries().get_mut(&run_id) {
                progress.time = time;
            }
        })
    }

    pub fn get(&self, run_id: &RunId) -> Option<Progress> {
        self.entries().get(run_id).copied()
    }

    /// The run left its worker.
    pub fn end(&self, run_id: &RunId) {
        self.entries().remove(run_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_tracked_from_its_worker_to_its_end_only() {
        let board = Arc::new(Board::default());
        let id = RunId::from("r1".to_string());
        let mut report = board.reporter(&id);
        report(1.0);
        assert_eq!(board.get(&id), None, "not in a worker yet: nothing kept");
        board.begin(&id, 1.0, 3.0);
        report(2.5);
        let progress = board.get(&id).unwrap();
        assert_eq!((progress.time, progress.fraction()), (2.5, 0.75));
        board.end(&id);
        report(3.0);
        assert_eq!(board.get(&id), None);
        let instant = Progress {
            start_time: 2.0,
            stop_time: 2.0,
            time: 2.0,
        };
        assert_eq!(instant.fraction(), 1.0);
    }
}
