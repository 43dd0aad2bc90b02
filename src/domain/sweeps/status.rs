//! Where a sweep is in its life. Its cases have a run's statuses ([`RunStatus`]).

use std::fmt;
use std::str::FromStr;

use crate::domain::Invalid;

/// A sweep's status: `queued` until a worker takes its first case, `running` until every case
/// has ended, then one of three ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SweepStatus {
    Queued,
    Running,
    /// Every case ran to its end (a case the model failed is still an answer).
    Completed,
    /// The service could not run some of its cases (they were refunded), or every case
    /// failed.
    Failed,
    Cancelled,
}

impl SweepStatus {
    pub const ALL: [SweepStatus; 5] = [
        SweepStatus::Queued,
        SweepStatus::Running,
        SweepStatus::Completed,
        SweepStatus::Failed,
        SweepStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SweepStatus::Queued => "queued",
            SweepStatus::Running => "running",
            SweepStatus::Completed => "completed",
            SweepStatus::Failed => "failed",
            SweepStatus::Cancelled => "cancelled",
        }
    }

    pub fn is_finished(self) -> bool {
        matches!(
            self,
            SweepStatus::Completed | SweepStatus::Failed | SweepStatus::Cancelled
        )
    }
}

impl fmt::Display for SweepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SweepStatus {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SweepStatus::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| Invalid(format!("'{s}' is not a sweep status")))
    }
}
