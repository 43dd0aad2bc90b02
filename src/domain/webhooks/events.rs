//! What a webhook endpoint can subscribe to, and the set it subscribes to.

use std::fmt;
use std::str::FromStr;

use crate::domain::Invalid;

/// An event a webhook is sent for. Its wire name (`run.succeeded`, …) is the payload's
/// `type` and what an endpoint's `events` list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    RunSucceeded,
    RunFailed,
    SweepCompleted,
    SweepFailed,
}

impl EventType {
    /// Every event, in the order the API lists them.
    pub const ALL: [EventType; 4] = [
        EventType::RunSucceeded,
        EventType::RunFailed,
        EventType::SweepCompleted,
        EventType::SweepFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::RunSucceeded => "run.succeeded",
            EventType::RunFailed => "run.failed",
            EventType::SweepCompleted => "sweep.completed",
            EventType::SweepFailed => "sweep.failed",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for EventType {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        EventType::ALL
            .into_iter()
            .find(|e| e.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = EventType::ALL.iter().map(|e| e.as_str()).collect();
                Invalid(format!(
                    "'{s}' is not an event type (expected one of {})",
                    names.join(", ")
                ))
            })
    }
}

/// The events an endpoint subscribes to: never empty, each once, in [`EventType::ALL`]'s
/// order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventSet(Vec<EventType>);

impl EventSet {
    /// Every event (an endpoint's default).
    pub fn all() -> EventSet {
        EventSet(EventType::ALL.to_vec())
    }

    /// The events given, once each; refused when there are none (an endpoint that hears
    /// nothing is a mistake, not a setting: disable it instead).
    pub fn of(events: impl IntoIterator<Item = EventType>) -> Result<EventSet, Invalid> {
        let mut list: Vec<EventType> = events.into_iter().collect();
        list.sort();
        list.dedup();
        if list.is_empty() {
            return Err(Invalid(
                "events must name at least one event type (disable the endpoint to pause it)"
                    .into(),
            ));
        }
        Ok(EventSet(list))
    }

    pub fn contains(&self, event: EventType) -> bool {
        self.0.contains(&event)
    }

    pub fn iter(&self) -> impl Iterator<Item = EventType> + '_ {
        self.0.iter().copied()
    }

    /// As stored: the wire names, comma-separated.
    pub fn to_stored(&self) -> String {
        let names: Vec<&str> = self.0.iter().map(|e| e.as_str()).collect();
        names.join(",")
    }

    /// From the stored form; a name this version does not know is an error, not dropped.
    pub fn from_stored(stored: &str) -> Result<EventSet, Invalid> {
        let events = stored
            .split(',')
            .map(EventType::from_str)
            .collect::<Result<Vec<_>, _>>()?;
        EventSet::of(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_unknown_names_are_refused() {
        for e in EventType::ALL {
            assert_eq!(e.as_str().parse::<EventType>().unwrap(), e);
        }
        let err = "run.started".parse::<EventType>().unwrap_err();
        assert!(err.0.contains("run.succeeded"), "{}", err.0);
    }

    #[test]
    fn a_set_is_never_empty_and_keeps_each_event_once() {
        assert!(EventSet::of([]).is_err());
        let set = EventSet::of([
            EventType::RunFailed,
            EventType::RunSucceeded,
            EventType::RunFailed,
        ])
        .unwrap();
        assert_eq!(set.to_stored(), "run.succeeded,run.failed");
        assert_eq!(EventSet::from_stored(&set.to_stored()).unwrap(), set);
        assert!(EventSet::from_stored("run.succeeded,bogus").is_err());
        assert_eq!(
            EventSet::all().to_stored(),
            "run.succeeded,run.failed,sweep.completed,sweep.failed"
        );
    }
}
