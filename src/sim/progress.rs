//! Progress of a simulation as the worker reports it: the simulation time reached, sent as
//! [`Message::Progress`] lines between `Started` and the end, so a user can watch a long run.
//!
//! The engine calls a [`Progress`] after every step (Co-Simulation's fast loop) or every
//! solver step (Model Exchange, through [`ReportingFactory`]); the worker's [`Reporter`]
//! sends at most [`REPORTS_PER_SECOND`] of them a second and at most [`MAX_REPORTS`] in all,
//! so a model taking millions of tiny steps costs the channel nothing.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

use fmi_rs::sim::SimulationError;
use fmi_rs::sim::solver::{Dae, Ode, Solver, SolverFactory};

use super::protocol::{self, Message};

/// Where the engine says how far it has got: called with the simulation time after each step.
pub type Progress = Rc<dyn Fn(f64)>;

/// A [`Progress`] that goes nowhere (the engine run outside a worker).
pub fn ignored() -> Progress {
    Rc::new(|_| {})
}

/// Most progress lines a second.
pub const REPORTS_PER_SECOND: u32 = 5;

/// Most progress lines per run: an hour of them at the full rate.
pub const MAX_REPORTS: u32 = REPORTS_PER_SECOND * 3600;

/// The worker's side: throttles the engine's reports and writes them to the result channel.
pub struct Reporter<W: Write> {
    channel: RefCell<W>,
    last: Cell<Option<Instant>>,
    sent: Cell<u32>,
}

impl<W: Write> Reporter<W> {
    pub fn new(channel: W) -> Reporter<W> {
        Reporter {
            channel: RefCell::new(channel),
            last: Cell::new(None),
            sent: Cell::new(0),
        }
    }

    /// Sends `time` unless a report went out less than 1/[`REPORTS_PER_SECOND`] s ago or
    /// [`MAX_REPORTS`] were sent.
    pub fn reached(&self, time: f64) {
        let now = Instant::now();
        let gap = Duration::from_secs(1) / REPORTS_PER_SECOND;
        let due = self.last.get().is_none_or(|last| now - last >= gap);
        if due && self.sent.get() < MAX_REPORTS {
            self.last.set(Some(now));
            self.send(time);
        }
    }

    /// Sends the time the run ended at, whatever the throttle says (once: the bound per run
    /// is [`MAX_REPORTS`] + 1).
    pub fn finished(&self, time: f64) {
        self.send(time);
    }

    /// A channel that fails is left alone: the end of the run will say so.
    fn send(&self, time: f64) {
        self.sent.set(self.sent.get().saturating_add(1));
        let message = Message::Progress { time: Some(time) };
        let _ = protocol::send(&mut *self.channel.borrow_mut(), &message);
    }

    /// How many reports were sent.
    pub fn sent(&self) -> u32 {
        self.sent.get()
    }
}

/// Wraps a Model Exchange solver factory so that its solvers report each step they take.
pub struct ReportingFactory<'f, F> {
    pub inner: &'f F,
    pub progress: Progress,
}

impl<F: SolverFactory> SolverFactory for ReportingFactory<'_, F> {
    fn create<'a, O: Ode + 'a, D: Dae + 'a>(
        &self,
        start_time: f64,
        relative_tolerance: f64,
        ode: O,
        dae: Option<D>,
    ) -> Result<Box<dyn Solver + 'a>, SimulationError> {
        let inner = self
            .inner
            .create(start_time, relative_tolerance, ode, dae)?;
        Ok(Box::new(Reporting {
            inner,
            progress: Rc::clone(&self.progress),
        }))
    }
}

/// A solver that reports the time of every step it takes.
struct Reporting<'a> {
    inner: Box<dyn Solver + 'a>,
    progress: Progress,
}

impl Solver for Reporting<'_> {
    fn reset(&mut self, time: f64) -> Result<(), SimulationError> {
        self.inner.reset(time)
    }

    fn step(&mut self, next_time: f64) -> Result<(f64, &[f64], bool), SimulationError> {
        let (time, states, event) = self.inner.step(next_time)?;
        (self.progress)(time);
        Ok((time, states, event))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_throttled_and_bounded() {
        let reporter = Reporter::new(Vec::new());
        for i in 0..100_000 {
            reporter.reached(f64::from(i));
        }
        // A burst is one report (plus one per 200 ms it lasted).
        assert!(reporter.sent() <= 3, "{}", reporter.sent());
        let lines = reporter.channel.borrow().clone();
        let first = protocol::read_message(&mut &lines[..]).unwrap();
        assert_eq!(first, Some(Message::Progress { time: Some(0.0) }));

        // However long the run, never more than the bound.
        reporter.sent.set(MAX_REPORTS);
        reporter.last.set(None);
        reporter.reached(1.0);
        assert_eq!(reporter.sent(), MAX_REPORTS);
        // The end is always said.
        reporter.finished(2.0);
        assert_eq!(reporter.sent(), MAX_REPORTS + 1);
    }
}
