//! Watching a sweep as it runs, for every face that shows it live (the API's event stream,
//! the dashboard's progress bar): a snapshot read from the database first, then the hub's
//! events while this process drives the sweep, and the database's counts (polled) while
//! another process drives it, until the sweep's end.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::events::SweepEvent;
use super::{SweepView, get};
use crate::domain::error::AppResult;
use crate::domain::ids::{SweepId, UserId};
use crate::state::State;
use crate::store::sweeps::CaseCounts;

/// How often a sweep another process drives is read again: about as often as its driver
/// settles a group of cases, and one small read per watcher.
const POLL: Duration = Duration::from_millis(500);

/// The sweep as it is now, and its events from that moment on: a `Progress` of the
/// snapshot's counts first, then what the hub publishes (or, for a sweep another server
/// runs, a `Progress` whenever its counts change), and `End` last. A sweep that has ended
/// gives its snapshot and its end at once.
pub async fn watch(
    state: &State,
    user: &UserId,
    id: &SweepId,
) -> AppResult<(SweepView, BoxStream<'static, SweepEvent>)> {
    get(state, user, id).await?;
    // Subscribed before the snapshot is read, so nothing ends unseen between the two.
    let live = state.sweeps.subscribe(id);
    let view = get(state, user, id).await?;
    let first = SweepEvent::Progress {
        counts: view.counts,
        eta_seconds: None,
    };
    if view.sweep.finished_at.is_some() {
        let end = SweepEvent::End {
            status: view.sweep.status,
            error: view.sweep.error.clone(),
        };
        return Ok((view, futures_util::stream::iter([first, end]).boxed()));
    }
    let watcher = Watcher {
        source: live.map_or(Source::Database, Source::Live),
        shown: view.counts,
        state: state.clone(),
        user: user.clone(),
        id: id.clone(),
    };
    let rest = futures_util::stream::unfold(Some(watcher), |w| async move {
        let mut w = w?;
        let event = w.next().await?;
        let more = !matches!(event, SweepEvent::End { .. });
        Some((event, more.then_some(w)))
    });
    let stream = futures_util::stream::once(async move { first })
        .chain(rest)
        .boxed();
    Ok((view, stream))
}

/// Where a watcher's events come from.
enum Source {
    /// This process drives the sweep: its hub's events.
    Live(broadcast::Receiver<SweepEvent>),
    /// Another process drives it (or nobody, until one takes it over): the database.
    Database,
}

/// One watcher's source, the counts it last showed, and what it needs to read a snapshot.
struct Watcher {
    source: Source,
    shown: CaseCounts,
    state: State,
    user: UserId,
    id: SweepId,
}

impl Watcher {
    /// The next event; `None` when the sweep cannot be read any more (deleted).
    async fn next(&mut self) -> Option<SweepEvent> {
        loop {
            match &mut self.source {
                Source::Live(rx) => match rx.recv().await {
                    Ok(event) => {
                        if let SweepEvent::Progress { counts, .. } = &event {
                            self.shown = *counts;
                        }
                        return Some(event);
                    }
                    // Fell behind: a fresh snapshot replaces what was missed (the cases are
                    // in the database).
                    Err(RecvError::Lagged(_)) => {
                        let view = get(&self.state, &self.user, &self.id).await.ok()?;
                        self.shown = view.counts;
                        return Some(SweepEvent::Progress {
                            counts: view.counts,
                            eta_seconds: None,
                        });
                    }
                    // This process stopped driving the sweep without its end (another took
                    // it over): the database tells the rest.
                    Err(RecvError::Closed) => self.source = Source::Database,
                },
                Source::Database => {
                    // Subscribed before the snapshot is read, as in `watch`: a sweep this
                    // process has taken over meanwhile is followed live from here.
                    let live = self.state.sweeps.subscribe(&self.id);
                    let view = get(&self.state, &self.user, &self.id).await.ok()?;
                    if view.sweep.finished_at.is_some() {
                        return Some(SweepEvent::End {
                            status: view.sweep.status,
                            error: view.sweep.error,
                        });
                    }
                    let polled = live.is_none();
                    if let Some(rx) = live {
                        self.source = Source::Live(rx);
                    }
                    if view.counts != self.shown {
                        self.shown = view.counts;
                        return Some(SweepEvent::Progress {
                            counts: view.counts,
                            eta_seconds: None,
                        });
                    }
                    if polled {
                        tokio::time::sleep(POLL).await;
                    }
                }
            }
        }
    }
}
