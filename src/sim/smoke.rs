//! The dynamic smoke test of an FMU: each interface it offers is instantiated, initialised,
//! stepped once (one communication step, or one fixed Euler step of Model Exchange), terminated
//! and freed, in the same sandboxed worker as a run. It catches what reading the files cannot:
//! an FMU that fails in `initialize`, crashes on its first step or does not load at all.

use std::path::Path;
use std::time::Duration;

use crate::fmi::describe::ModelInfo;
use crate::fmi::validation::{Code, Problem, SmokeInterface, SmokeOutcome, SmokeTest};

use super::plan::{self, RunSettings};
use super::protocol::{Interface, Solver};
use super::runner::{SimError, WorkerPool};

/// Longest a smoke test may take (loading, initialising and one step): a real model does it in
/// milliseconds; anything slower is reported as a failure rather than held up for.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Longest an upload waits for a free worker before its smoke test is skipped.
pub const SLOT_WAIT: Duration = Duration::from_secs(30);

/// Smoke-tests each interface of the FMU extracted in `dir`, one after the other.
pub async fn run(pool: &WorkerPool, info: &ModelInfo, dir: &Path) -> Vec<SmokeTest> {
    let mut tests = Vec::new();
    for (offered, interface, kind) in [
        (
            info.co_simulation.is_some(),
            Interface::Cs,
            SmokeInterface::CoSimulation,
        ),
        (
            info.model_exchange.is_some(),
            Interface::Me,
            SmokeInterface::ModelExchange,
        ),
    ] {
        if offered {
            tests.push(one(pool, info, dir, interface, kind).await);
        }
    }
    tests
}

/// A `smoke_test_failed` error for each smoke test the FMU failed.
pub fn problems(tests: &[SmokeTest]) -> Vec<Problem> {
    tests
        .iter()
        .filter(|t| t.outcome == SmokeOutcome::Failed)
        .map(|t| {
            let interface = t.interface.as_str();
            Problem::new(
                Code::SmokeTestFailed,
                interface,
                format!(
                    "instantiating, initialising and one step of {interface} failed: {}",
                    t.message.as_deref().unwrap_or("no reason given")
                ),
            )
        })
        .collect()
}

/// The step a smoke test takes: the default experiment's step size, else a hundredth of its
/// interval, else 1 ms.
fn step(info: &ModelInfo) -> f64 {
    let de = info.default_experiment.as_ref();
    let start = de.and_then(|d| d.start_time).unwrap_or(0.0);
    de.and_then(|d| d.step_size)
        .or_else(|| {
            de.and_then(|d| d.stop_time)
                .map(|stop| (stop - start) / 100.0)
        })
        .filter(|h| h.is_finite() && *h > 0.0)
        .unwrap_or(1e-3)
}

async fn one(
    pool: &WorkerPool,
    info: &ModelInfo,
    dir: &Path,
    interface: Interface,
    kind: SmokeInterface,
) -> SmokeTest {
    let start = info
        .default_experiment
        .as_ref()
        .and_then(|d| d.start_time)
        .unwrap_or(0.0);
    let h = step(info);
    let mut test = SmokeTest {
        interface: kind,
        outcome: SmokeOutcome::Passed,
        start_time: start,
        stop_time: start + h,
        duration_ms: 0,
        message: None,
        log: String::new(),
    };
    let settings = RunSettings {
        interface: Some(interface),
        solver: (interface == Interface::Me).then_some(Solver::Euler),
        start_time: Some(start),
        stop_time: Some(start + h),
        output_interval: Some(h),
        step_size: Some(h),
        record_events: Some(false),
        ..RunSettings::default()
    };
    let job = match plan::plan(info, dir, &settings) {
        Ok(job) => job,
        Err(problems) => {
            // What this server cannot run with the model's defaults is not the FMU's fault.
            test.outcome = SmokeOutcome::Skipped;
            test.message = Some(format!("not run: {problems}"));
            return test;
        }
    };
    // Runs use the same workers. An upload waits for one only so long: the smoke test is a
    // service to the uploader (the sandbox, not this test, is what keeps a model contained),
    // so a busy service skips it rather than hold the upload.
    let Ok(slot) = tokio::time::timeout(SLOT_WAIT, pool.slot(None)).await else {
        test.outcome = SmokeOutcome::Skipped;
        test.message = Some(format!(
            "not run: every worker was busy for {} s",
            SLOT_WAIT.as_secs()
        ));
        return test;
    };
    let started = std::time::Instant::now();
    let outcome = match (slot, tempfile::tempfile()) {
        (Ok(slot), Ok(results)) => {
            slot.run(job, TIMEOUT, None, results, Box::new(|_| {}))
                .await
        }
        (Err(e), _) => Err(e),
        (_, Err(e)) => Err(SimError::Internal(format!("a file for the results: {e}"))),
    };
    test.duration_ms = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(done) => test.log = done.log,
        Err(e) if e.is_service_fault() => {
            test.outcome = SmokeOutcome::Skipped;
            test.message = Some(format!("not run: {e}"));
        }
        Err(e) => {
            test.outcome = SmokeOutcome::Failed;
            test.message = Some(e.to_string());
            if let SimError::Failed { log, .. } = &e {
                test.log = log.clone();
            }
        }
    }
    test
}
