//! Watching a sweep as it runs, for every face that shows it live (the API's event stream,
//! the dashboard's progress bar): a snapshot read from the database first, then the hub's
//! events, and a fresh snapshot whenever the watcher fell behind, until the sweep's end.

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::sync::broadcast::{self, error::RecvError};

use super::events::SweepEvent;
use super::{SweepView, get};
use crate::domain::error::AppResult;
use crate::domain::ids::{SweepId, UserId};
use crate::state::State;

/// The sweep as it is now, and its events from that moment on: a `Progress` of the
/// snapshot's counts first, then what the hub publishes, and `End` last. A sweep that has
/// ended (or that this process is not running) gives its snapshot and its end at once.
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
    let stream = match live {
        Some(rx) if view.sweep.finished_at.is_none() => {
            let watcher = Watcher {
                rx,
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
            futures_util::stream::once(async move { first })
                .chain(rest)
                .boxed()
        }
        _ => {
            let end = SweepEvent::End {
                status: view.sweep.status,
                error: view.sweep.error.clone(),
            };
            futures_util::stream::iter([first, end]).boxed()
        }
    };
    Ok((view, stream))
}

/// One watcher's subscription, and what it needs to read a fresh snapshot.
struct Watcher {
    rx: broadcast::Receiver<SweepEvent>,
    state: State,
    user: UserId,
    id: SweepId,
}

impl Watcher {
    /// The next event; `None` when the sweep cannot be read any more (deleted).
    async fn next(&mut self) -> Option<SweepEvent> {
        match self.rx.recv().await {
            Ok(event) => Some(event),
            // Fell behind: a fresh snapshot replaces what was missed (the cases are in the
            // database).
            Err(RecvError::Lagged(_)) => {
                let view = get(&self.state, &self.user, &self.id).await.ok()?;
                Some(SweepEvent::Progress {
                    counts: view.counts,
                    eta_seconds: None,
                })
            }
            Err(RecvError::Closed) => {
                let view = get(&self.state, &self.user, &self.id).await.ok()?;
                Some(SweepEvent::End {
                    status: view.sweep.status,
                    error: view.sweep.error,
                })
            }
        }
    }
}
