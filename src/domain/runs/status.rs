//! Where a run is in its life: `queued` → `running` → one of the three ends.
//!
//! The names are the stored ones (the `runs.status` column) and the ones both faces show;
//! they are written here and nowhere else.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::charging::RunEnd;
use crate::domain::Invalid;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Recorded and paid for (credits reserved); waiting for a free worker.
    Queued,
    /// A worker is running it.
    Running,
    Succeeded,
    /// Ended without results; `failure_kind` says why and the charging rule who pays.
    Failed,
    /// Cancelled by its owner (while queued or while running).
    Cancelled,
}

impl RunStatus {
    /// Every status, in the order of a run's life.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Succeeded,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the run has ended (and been settled): it will not change again.
    pub fn is_finished(self) -> bool {
        !matches!(self, RunStatus::Queued | RunStatus::Running)
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Accepts exactly the five names [`RunStatus::as_str`] gives (lower case, as stored): a
/// status has no other spellings, old or new.
impl FromStr for RunStatus {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<RunStatus, Invalid> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
                Invalid(format!(
                    "'{s}' is not a run status: use one of {}",
                    names.join(", ")
                ))
            })
    }
}

/// The status a run has once it ended this way.
impl From<RunEnd> for RunStatus {
    fn from(end: RunEnd) -> RunStatus {
        match end {
            RunEnd::Succeeded => RunStatus::Succeeded,
            RunEnd::Failed(_) => RunStatus::Failed,
            RunEnd::CancelledQueued | RunEnd::CancelledRunning => RunStatus::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::runs::charging::FailureKind;

    #[test]
    fn every_status_parses_from_its_own_name_and_only_from_it() {
        for status in RunStatus::ALL {
            assert_eq!(status.as_str().parse::<RunStatus>(), Ok(status));
            assert_eq!(status.to_string(), status.as_str());
            // The serde name (stored settings, JSON) is the same name.
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::Value::String(status.as_str().into())
            );
            let upper = status.as_str().to_ascii_uppercase();
            assert!(upper.parse::<RunStatus>().is_err(), "{upper}");
        }
        for bad in ["", "done", "success", " queued", "canceled"] {
            let err = bad.parse::<RunStatus>().unwrap_err();
            assert_eq!(
                err.0,
                format!(
                    "'{bad}' is not a run status: use one of queued, running, succeeded, \
                     failed, cancelled"
                )
            );
        }
    }

    #[test]
    fn only_queued_and_running_are_unfinished() {
        let finished: Vec<RunStatus> = RunStatus::ALL
            .into_iter()
            .filter(|s| s.is_finished())
            .collect();
        assert_eq!(
            finished,
            [
                RunStatus::Succeeded,
                RunStatus::Failed,
                RunStatus::Cancelled
            ]
        );
    }

    #[test]
    fn every_end_is_a_finished_status() {
        let ends = [
            (RunEnd::Succeeded, RunStatus::Succeeded),
            (RunEnd::CancelledQueued, RunStatus::Cancelled),
            (RunEnd::CancelledRunning, RunStatus::Cancelled),
        ]
        .into_iter()
        .chain(
            FailureKind::ALL
                .into_iter()
                .map(|k| (RunEnd::Failed(k), RunStatus::Failed)),
        );
        for (end, status) in ends {
            assert_eq!(RunStatus::from(end), status, "{end:?}");
            assert!(status.is_finished());
        }
    }
}
