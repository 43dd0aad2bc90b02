//! Signed webhooks: endpoints a user registers, the events they hear, and the one entry point
//! that records a message for each of them ([`emit`]); [`deliverer`] sends what is due.
//!
//! Messages follow the Standard Webhooks specification (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`; see [`signing`]), so any of its libraries verifies them. A message is
//! recorded before [`emit`] returns and delivered at least once: retried with back-off for
//! about a day, across restarts.

pub mod deliverer;
pub mod events;
pub mod signing;
pub mod target;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde_json::{Value, json};

use crate::domain::Invalid;
use crate::domain::error::{AppError, AppResult};
use crate::domain::ids::{RunId, UserId};
use crate::domain::runs::charging::RunEnd;
use crate::sim::plan::{Problem, Problems};
use crate::state::State;
use crate::store::runs::RunRow;
use crate::store::webhooks::{DeliveryRow, EndpointChanges, EndpointRow, NewEndpoint, NewMessage};
use crate::store::{StoreResult, now_ms};

pub use events::{EventSet, EventType};
pub use signing::WebhookSecret;

/// Endpoints one account may have: enough for every pipeline, few enough that one event
/// cannot fan out without bound.
pub const MAX_ENDPOINTS: u32 = 10;

/// How long the secret replaced by a rotation keeps signing, beside the new one, so a
/// receiver can switch without missing a message.
pub const ROTATION_OVERLAP: Duration = Duration::from_secs(24 * 3600);

/// Deliveries listed per endpoint (the most recent).
pub const RECENT_DELIVERIES: u32 = 50;

/// The longest description.
pub const MAX_DESCRIPTION: usize = 256;

/// Where a delivery stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// An attempt is due (now or after a back-off).
    Pending,
    /// An attempt was answered with a 2xx.
    Delivered,
    /// Every attempt of the schedule failed (a resend starts it again).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryStatus {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            _ => Err(Invalid(format!("'{s}' is not a delivery status"))),
        }
    }
}

/// One attempt to deliver a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// Milliseconds since the epoch.
    pub attempted_at: i64,
    /// The receiver's status, when it answered.
    pub http_status: Option<u16>,
    /// Why the attempt failed without a status (refused target, timeout, connection), or
    /// what a status means here (a redirect, not followed).
    pub error: Option<String>,
    pub latency_ms: i64,
    /// The start of the answer's body, at most [`deliverer::EXCERPT_BYTES`].
    pub response_excerpt: Option<String>,
    /// Whether the body went on past the excerpt.
    pub response_truncated: bool,
}

/// What follows an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AfterAttempt {
    Delivered,
    /// Try again at this time (ms since the epoch).
    RetryAt(i64),
    /// The schedule is used up.
    GiveUp,
}

/// A new endpoint as asked for, before its URL is checked.
#[derive(Clone, Debug)]
pub struct EndpointRequest {
    pub url: String,
    pub description: Option<String>,
    pub events: Option<EventSet>,
    pub enabled: Option<bool>,
}

/// An endpoint with a secret to show once (after create and rotate).
pub struct WithSecret {
    pub endpoint: EndpointRow,
    pub secret: WebhookSecret,
}

/// How long recording an event's webhooks is tried again while the database does not answer
/// (a restart takes seconds): the event happened, and its settlement is already committed.
const RECORD_FOR: Duration = Duration::from_secs(120);

/// Runs `op` again, backing off from 250 ms to 5 s, while the database does not answer, for
/// at most `within`. Any other error, or the last one, is returned.
pub(crate) async fn while_unavailable<T, F, Fut>(within: Duration, mut op: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut wait = Duration::from_millis(250);
    loop {
        match op().await {
            Err(e) if e.is_unavailable() && tokio::time::Instant::now() + wait < deadline => {
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "the database did not answer; trying again");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            done => return done,
        }
    }
}

/// Records, in one transaction, one pending delivery of this event for each enabled endpoint
/// of the user subscribed to it (none when there is none), then wakes the deliverer. Durable
/// before it returns; tried again (as the one message) while the database does not answer.
/// `data` is the payload's `data`.
pub async fn emit(state: &State, user_id: &UserId, event: EventType, data: Value) -> AppResult<()> {
    let now = now_ms();
    let payload = json!({
        "type": event.as_str(),
        "timestamp": crate::domain::values::rfc3339_ms(now),
        "data": data,
    });
    let message = NewMessage {
        user_id: user_id.clone(),
        event,
        message_id: crate::domain::values::new_id("msg"),
        payload: payload.to_string(),
        now,
    };
    let recorded = while_unavailable(RECORD_FOR, || {
        state.store.enqueue_webhook_deliveries(message.clone())
    })
    .await?;
    if recorded > 0 {
        state.webhook_wake.notify_one();
    }
    Ok(())
}

/// After a run's settlement: `run.succeeded` or `run.failed` (a cancellation is not an
/// event). A webhook that cannot be recorded (the database did not answer for minutes) is
/// logged; it never undoes the settlement.
pub async fn run_ended(state: &State, run_id: &RunId, end: RunEnd) {
    let event = match end {
        RunEnd::Succeeded => EventType::RunSucceeded,
        RunEnd::Failed(_) => EventType::RunFailed,
        RunEnd::CancelledQueued | RunEnd::CancelledRunning => return,
    };
    let run = while_unavailable(RECORD_FOR, || state.store.get_run(run_id)).await;
    let recorded = match run {
        Ok(Some(run)) => {
            let data = run_data(&state.config.public_url, &run);
            emit(state, &run.user_id, event, data).await
        }
        Ok(None) => return,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = recorded {
        tracing::error!(%run_id, error = %e, "could not record the run's webhooks");
    }
}

/// A run as a webhook's `data`: what `GET /api/v1/runs/{id}` says of it, without its log
/// and settings, with links to it and its results. Absent values are left out.
pub fn run_data(public_url: &str, run: &RunRow) -> Value {
    let base = public_url.trim_end_matches('/');
    let mut data = json!({
        "id": run.id.as_str(),
        "status": run.status.as_str(),
        "fmu_id": run.fmu_id.as_str(),
        "fmu_name": run.fmu_name,
        "created_at": crate::domain::values::rfc3339_ms(run.created_at),
        "credits_charged": run.credits_charged.get(),
        "charged": run.charged,
    });
    let mut links = json!({ "self": format!("{base}/api/v1/runs/{}", run.id) });
    if run.status == crate::domain::runs::status::RunStatus::Succeeded {
        links["result"] = json!(format!("{base}/api/v1/runs/{}/result", run.id));
    }
    let optional = [
        (
            "started_at",
            run.started_at.map(crate::domain::values::rfc3339_ms),
        ),
        (
            "finished_at",
            run.finished_at.map(crate::domain::values::rfc3339_ms),
        ),
        (
            "failure_kind",
            run.failure_kind.map(|k| k.as_str().to_string()),
        ),
        ("error", run.error.clone()),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            data[name] = json!(value);
        }
    }
    data["links"] = links;
    data
}

/// The URL refused with the field named, as a 422.
fn url_problem(e: target::TargetError) -> AppError {
    AppError::Problems(Problems(vec![Problem::new("url", e.to_string())]))
}

/// Checks a URL as the deliverer will (resolving it), and returns it as given.
async fn checked_url(state: &State, url: &str) -> AppResult<String> {
    target::check(url, state.config.webhook_allow_private)
        .await
        .map_err(url_problem)?;
    Ok(url.trim().to_string())
}

fn checked_description(text: &str) -> AppResult<String> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION {
        return Err(AppError::Problems(Problems(vec![Problem::new(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        )])));
    }
    if text.chars().any(char::is_control) {
        return Err(AppError::Problems(Problems(vec![Problem::new(
            "description",
            "no control characters",
        )])));
    }
    Ok(text.to_string())
}

/// Registers an endpoint: its URL checked against the SSRF rule now (and again at every
/// attempt), a new secret, every event unless some are named.
pub async fn create(
    state: &State,
    user_id: &UserId,
    request: EndpointRequest,
) -> AppResult<WithSecret> {
    let url = checked_url(state, &request.url).await?;
    let description = checked_description(request.description.as_deref().unwrap_or(""))?;
    let secret = WebhookSecret::generate();
    let now = now_ms();
    let id = crate::domain::values::new_id("whk");
    let added = state
        .store
        .add_webhook(
            NewEndpoint {
                id: id.clone(),
                user_id: user_id.clone(),
                url,
                description,
                events: request.events.unwrap_or_else(EventSet::all),
                enabled: request.enabled.unwrap_or(true),
                secret: secret.clone(),
                now,
            },
            MAX_ENDPOINTS,
        )
        .await?;
    if !added {
        return Err(AppError::Conflict(format!(
            "an account may have at most {MAX_ENDPOINTS} webhook endpoints: delete one first"
        )));
    }
    let endpoint = get(state, user_id, &id).await?;
    Ok(WithSecret { endpoint, secret })
}

pub async fn list(state: &State, user_id: &UserId) -> AppResult<Vec<EndpointRow>> {
    Ok(state.store.webhooks(user_id, now_ms()).await?)
}

pub async fn get(state: &State, user_id: &UserId, id: &str) -> AppResult<EndpointRow> {
    state
        .store
        .webhook(user_id, id, now_ms())
        .await?
        .ok_or(AppError::NotFound("webhook endpoint"))
}

/// What an update asks for; `None` keeps the field.
#[derive(Clone, Debug, Default)]
pub struct EndpointUpdate {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<EventSet>,
    pub enabled: Option<bool>,
}

pub async fn update(
    state: &State,
    user_id: &UserId,
    id: &str,
    update: EndpointUpdate,
) -> AppResult<EndpointRow> {
    // An unknown endpoint is 404 before its new URL is judged.
    get(state, user_id, id).await?;
    let url = match update.url {
        Some(url) => Some(checked_url(state, &url).await?),
        None => None,
    };
    let description = match update.description {
        Some(d) => Some(checked_description(&d)?),
        None => None,
    };
    let changes = EndpointChanges {
        url,
        description,
        events: update.events,
        enabled: update.enabled,
    };
    state
        .store
        .update_webhook(user_id, id, changes, now_ms())
        .await?
        .ok_or(AppError::NotFound("webhook endpoint"))
}

/// Deletes an endpoint and its deliveries (pending ones are not sent).
pub async fn delete(state: &State, user_id: &UserId, id: &str) -> AppResult<()> {
    if state.store.delete_webhook(user_id, id).await? {
        Ok(())
    } else {
        Err(AppError::NotFound("webhook endpoint"))
    }
}

/// A new secret; the one it replaces signs too for [`ROTATION_OVERLAP`].
pub async fn rotate_secret(state: &State, user_id: &UserId, id: &str) -> AppResult<WithSecret> {
    let secret = WebhookSecret::generate();
    let now = now_ms();
    let until = now + ROTATION_OVERLAP.as_millis() as i64;
    let endpoint = state
        .store
        .rotate_webhook_secret(user_id, id, secret.clone(), until, now)
        .await?
        .ok_or(AppError::NotFound("webhook endpoint"))?;
    Ok(WithSecret { endpoint, secret })
}

/// The endpoint's most recent deliveries with their attempts, newest first.
pub async fn deliveries(state: &State, user_id: &UserId, id: &str) -> AppResult<Vec<DeliveryRow>> {
    state
        .store
        .webhook_deliveries(user_id, id, RECENT_DELIVERIES)
        .await?
        .ok_or(AppError::NotFound("webhook endpoint"))
}

/// Sends a delivery again: a new attempt cycle for the same message (same `webhook-id`).
pub async fn resend(state: &State, user_id: &UserId, delivery_id: &str) -> AppResult<DeliveryRow> {
    let row = state
        .store
        .resend_webhook_delivery(user_id, delivery_id, now_ms())
        .await?
        .ok_or(AppError::NotFound("webhook delivery"))?;
    state.webhook_wake.notify_one();
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn an_unanswered_call_is_made_again_until_the_database_answers() {
        let calls = AtomicU32::new(0);
        let got = while_unavailable(Duration::from_secs(10), || {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(StoreError::Pool("the server is restarting".into()))
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        assert_eq!(got.unwrap(), 2);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_refused_call_or_one_past_its_time_is_not_made_again() {
        let calls = AtomicU32::new(0);
        let refused: StoreResult<()> = while_unavailable(Duration::from_secs(10), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(StoreError::Decode("not a number".into())) }
        })
        .await;
        assert!(matches!(refused, Err(StoreError::Decode(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let calls = AtomicU32::new(0);
        let gone: StoreResult<()> = while_unavailable(Duration::from_millis(600), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(StoreError::Pool("down".into())) }
        })
        .await;
        assert!(matches!(gone, Err(StoreError::Pool(_))));
        // 250 ms, then the next wait (500 ms) would pass the 600 ms.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
