//! What `/ready` reports: whether this server can do its work, and if not, why.
//!
//! `/health` only says the process answers; `/ready` says it can serve users: the database
//! answers, the sandbox layers are known, and a real library simulation went through the real
//! worker pool at start-up. A server that cannot simulate stays reachable (so an operator can
//! look), says why here, and refuses new runs with 503 instead of taking credits for runs
//! that would fail.

use std::sync::RwLock;
use std::time::Duration;

use serde::Serialize;

/// The start-up checks, as they stand.
#[derive(Default)]
pub struct Readiness {
    state: RwLock<Checks>,
}

#[derive(Clone, Default, Serialize)]
struct Checks {
    /// The sandbox layers a worker reported, once the probe ran.
    sandbox: Option<Vec<crate::sim::sandbox::LayerStatus>>,
    /// Why the sandbox probe failed, if it did (then no run may start).
    sandbox_failure: Option<String>,
    /// `None` until the self-test ran; then how long it took, or why it failed.
    simulation: Option<Result<f64, String>>,
}

/// The JSON `/ready` answers.
#[derive(Serialize)]
pub struct Report {
    pub ready: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each worker sandbox layer: whether it is active and required, and how it was
    /// checked or why it is missing.
    pub sandbox: Vec<SandboxLayer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_test_ms: Option<f64>,
    /// Free space on the data volume, in MiB (absent if it cannot be measured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disk_free_mib: Option<u64>,
}

/// One layer of the worker sandbox, as `/ready` reports it.
#[derive(Serialize)]
pub struct SandboxLayer {
    pub layer: crate::sim::sandbox::Layer,
    pub active: bool,
    pub required: bool,
    pub detail: String,
}

impl Readiness {
    pub fn set_sandbox(&self, layers: Vec<crate::sim::sandbox::LayerStatus>) {
        self.write().sandbox = Some(layers);
    }

    /// The sandbox layers the start-up probe found (empty until it ran).
    pub fn sandbox(&self) -> Vec<crate::sim::sandbox::LayerStatus> {
        self.read().sandbox.clone().unwrap_or_default()
    }

    pub fn set_sandbox_failure(&self, problem: String) {
        self.write().sandbox_failure = Some(problem);
    }

    /// Why the sandbox probe failed, if it did.
    pub fn sandbox_problem(&self) -> Option<String> {
        self.read().sandbox_failure.clone()
    }

    pub fn set_self_test(&self, result: Result<Duration, String>) {
        self.write().simulation = Some(result.map(|d| d.as_secs_f64() * 1000.0));
    }

    /// Why simulations cannot run now, if they cannot.
    pub fn simulation_problem(&self) -> Option<String> {
        let checks = self.read();
        let self_test = match &checks.simulation {
            None => Some("the start-up self-test has not finished".into()),
            Some(Err(reason)) => Some(format!("the start-up self-test failed: {reason}")),
            Some(Ok(_)) => None,
        };
        match (self_test, &checks.sandbox_failure) {
            (Some(test), Some(sandbox)) => Some(format!("{test}; {sandbox}")),
            (test, sandbox) => test.or_else(|| sandbox.clone()),
        }
    }

    /// The report, given whether the database answered just now and, if the data volume is
    /// below its reserve, why.
    pub fn report(
        &self,
        database_ok: bool,
        disk_problem: Option<String>,
        disk_free_bytes: Option<u64>,
    ) -> Report {
        let checks = self.read().clone();
        let reason = if !database_ok {
            Some("the database does not answer".into())
        } else {
            disk_problem.or_else(|| self.simulation_problem())
        };
        Report {
            ready: reason.is_none(),
            reason,
            sandbox: checks
                .sandbox
                .unwrap_or_default()
                .into_iter()
                .map(|s| SandboxLayer {
                    required: s.layer.required(crate::sim::sandbox::running_as_root()),
                    layer: s.layer,
                    active: s.active,
                    detail: s.detail,
                })
                .collect(),
            self_test_ms: checks.simulation.and_then(Result::ok),
            disk_free_mib: disk_free_bytes.map(|b| b >> 20),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Checks> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Checks> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_sandbox_check_refuses_runs_even_after_a_passed_self_test() {
        let readiness = Readiness::default();
        readiness.set_self_test(Ok(Duration::from_millis(5)));
        assert_eq!(readiness.simulation_problem(), None);
        readiness.set_sandbox_failure("the worker sandbox check failed: no worker".into());
        let report = readiness.report(true, None, None);
        assert!(!report.ready);
        assert_eq!(
            report.reason.as_deref(),
            Some("the worker sandbox check failed: no worker")
        );
    }
}
