//! Who pays for a run: the one rule, written once.
//!
//! The caller pays for what their model used; the service pays for its own failures. Every
//! settlement (a run that ended, a run cancelled, a run interrupted by a stop of the server)
//! goes through [`is_charged`], and every finished run records the answer, so a user can see
//! for any failed run whether it cost them and why.
//!
//! | what ended the run | charged |
//! |---|---|
//! | it succeeded | yes |
//! | the caller's FMU reported an error, crashed or ran out of memory | yes |
//! | the run hit the caller's time limit (or the plan's maximum) or its CPU limit | yes |
//! | a library model (ours) reported an error, crashed or ran out of memory | no |
//! | the service failed (worker, files, protocol, sandbox) or stopped mid-run | no |
//! | cancelled while still queued | no |
//! | cancelled while running | yes |
//!
//! This module must never look at HTTP or SQL: it is the rule, not its plumbing.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::domain::Invalid;
use crate::sim::runner::SimError;

/// Why a run failed, as stored and shown (`failure_kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The FMU reported an error (or the integration of its equations failed).
    ModelError,
    /// The FMU's code crashed the worker (a signal, an abnormal exit).
    ModelCrashed,
    /// The FMU used more memory than a run may.
    OutOfMemory,
    /// The run used up its wall-clock time (the caller's timeout, or the plan's maximum) or
    /// its CPU time.
    TimeLimit,
    /// The service failed: the worker could not start or prepare, the model's files were
    /// missing, the protocol broke, a sandbox layer would not apply.
    ServiceError,
    /// The server stopped or died while the run was in progress.
    Interrupted,
}

impl FailureKind {
    /// Every kind, for documentation and exhaustive tests.
    pub const ALL: [FailureKind; 6] = [
        FailureKind::ModelError,
        FailureKind::ModelCrashed,
        FailureKind::OutOfMemory,
        FailureKind::TimeLimit,
        FailureKind::ServiceError,
        FailureKind::Interrupted,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::ModelError => "model_error",
            FailureKind::ModelCrashed => "model_crashed",
            FailureKind::OutOfMemory => "out_of_memory",
            FailureKind::TimeLimit => "time_limit",
            FailureKind::ServiceError => "service_error",
            FailureKind::Interrupted => "interrupted",
        }
    }

    /// Whether the model (rather than the service) made the run end.
    fn is_the_models(self) -> bool {
        matches!(
            self,
            FailureKind::ModelError | FailureKind::ModelCrashed | FailureKind::OutOfMemory
        )
    }
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts exactly the names [`FailureKind::as_str`] gives (as stored and shown).
impl FromStr for FailureKind {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<FailureKind, Invalid> {
        FailureKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| {
                Invalid(format!(
                    "'{s}' is not a failure kind: use one of {}",
                    FailureKind::ALL.map(FailureKind::as_str).join(", ")
                ))
            })
    }
}

/// How a run ended, as far as paying for it goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunEnd {
    Succeeded,
    Failed(FailureKind),
    /// Cancelled before a worker took it.
    CancelledQueued,
    /// Cancelled while a worker was running it.
    CancelledRunning,
}

/// Whose model ran: ours (the built-in library) or the caller's upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ModelOrigin {
    Library,
    Upload,
}

/// The rule: does the caller pay for a run that ended this way?
pub fn is_charged(end: RunEnd, origin: ModelOrigin) -> bool {
    match end {
        RunEnd::Succeeded | RunEnd::CancelledRunning => true,
        RunEnd::CancelledQueued => false,
        RunEnd::Failed(FailureKind::ServiceError | FailureKind::Interrupted) => false,
        // The caller chose how long the run may take, whoever wrote the model.
        RunEnd::Failed(FailureKind::TimeLimit) => true,
        RunEnd::Failed(kind) => {
            debug_assert!(kind.is_the_models());
            origin == ModelOrigin::Upload
        }
    }
}

impl From<&SimError> for FailureKind {
    fn from(e: &SimError) -> Self {
        match e {
            SimError::Failed { .. } => FailureKind::ModelError,
            SimError::Crashed(_) => FailureKind::ModelCrashed,
            SimError::OutOfMemory(_) => FailureKind::OutOfMemory,
            SimError::Timeout(_) | SimError::CpuLimit(_) => FailureKind::TimeLimit,
            // A cancelled run is settled as a cancel, never as a failure; should one arrive
            // here, the service is at fault and pays.
            SimError::Internal(_) | SimError::Protocol(_) | SimError::Cancelled => {
                FailureKind::ServiceError
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_of_who_pays() {
        use FailureKind::*;
        use ModelOrigin::*;
        let cases = [
            (RunEnd::Succeeded, Upload, true),
            (RunEnd::Succeeded, Library, true),
            (RunEnd::Failed(ModelError), Upload, true),
            (RunEnd::Failed(ModelCrashed), Upload, true),
            (RunEnd::Failed(OutOfMemory), Upload, true),
            (RunEnd::Failed(TimeLimit), Upload, true),
            (RunEnd::Failed(TimeLimit), Library, true),
            (RunEnd::Failed(ModelError), Library, false),
            (RunEnd::Failed(ModelCrashed), Library, false),
            (RunEnd::Failed(OutOfMemory), Library, false),
            (RunEnd::Failed(ServiceError), Upload, false),
            (RunEnd::Failed(Interrupted), Upload, false),
            (RunEnd::CancelledQueued, Upload, false),
            (RunEnd::CancelledRunning, Upload, true),
            (RunEnd::CancelledRunning, Library, true),
        ];
        for (end, origin, charged) in cases {
            assert_eq!(is_charged(end, origin), charged, "{end:?} {origin:?}");
        }
    }

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in FailureKind::ALL {
            assert_eq!(kind.as_str().parse::<FailureKind>(), Ok(kind));
            assert_eq!(kind.to_string(), kind.as_str());
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
        for bogus in ["bogus", "Model_Error", "model-error", ""] {
            let e = bogus.parse::<FailureKind>().unwrap_err();
            assert_eq!(
                e.0,
                format!(
                    "'{bogus}' is not a failure kind: use one of model_error, model_crashed, \
                     out_of_memory, time_limit, service_error, interrupted"
                )
            );
        }
    }

    #[test]
    fn sim_errors_map_to_kinds() {
        use crate::sim::protocol::ProtocolError;
        use std::time::Duration;
        let kind = |e: SimError| FailureKind::from(&e);
        assert_eq!(
            kind(SimError::Internal("x".into())),
            FailureKind::ServiceError
        );
        let storage = SimError::from(ProtocolError::Storage("disk full".into()));
        assert!(storage.is_service_fault());
        assert_eq!(
            storage.to_string(),
            "the simulation service failed: storing the results: disk full"
        );
        assert_eq!(kind(storage), FailureKind::ServiceError);
        assert_eq!(
            kind(SimError::Timeout(Duration::from_secs(1))),
            FailureKind::TimeLimit
        );
        assert_eq!(kind(SimError::CpuLimit(1)), FailureKind::TimeLimit);
        assert_eq!(
            kind(SimError::Crashed("x".into())),
            FailureKind::ModelCrashed
        );
        assert_eq!(kind(SimError::OutOfMemory(1)), FailureKind::OutOfMemory);
        let failed = SimError::Failed {
            reason: "x".into(),
            log: String::new(),
        };
        assert_eq!(kind(failed), FailureKind::ModelError);
    }
}
