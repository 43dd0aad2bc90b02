//! Sends the deliveries that are due: at least once, with back-off, a bounded number at a
//! time, each attempt to the address its SSRF check approved.
//!
//! The loop claims due deliveries for a lease ([`LEASE`]), longer than an attempt can take,
//! and each attempt records its outcome and releases the claim in one transaction. A crash
//! mid-attempt leaves the claim, which the next start releases: the attempt is made again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

use super::signing::signature_header;
use super::target::{self, Target};
use super::{AfterAttempt, Attempt};
use crate::state::State;
use crate::store::now_ms;
use crate::store::webhooks::{DueDelivery, WebhookClaim};

/// The delays after each failed attempt of one cycle: at once, then 5 s, 5 min, 30 min, 2 h,
/// 5 h, 10 h and 14 h later (eight attempts over about a day and a half), each scaled by
/// `FMU_GATEWAY_WEBHOOK_RETRY_SCALE`.
pub const SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(14 * 3600),
];

/// Attempts sent at once; more due wait for one to finish.
pub const CONCURRENCY: usize = 8;

/// The longest one attempt may take (connecting, sending, reading the answer's excerpt).
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a claim holds a delivery: past any attempt (resolving included).
const LEASE: Duration = Duration::from_secs(60);

/// How long the loop sleeps with nothing due (it is woken sooner by new messages).
const IDLE: Duration = Duration::from_secs(30);

/// The same when several processes share the database (PostgreSQL).
const SHARED_IDLE: Duration = Duration::from_secs(1);

/// The answer's body kept per attempt.
pub const EXCERPT_BYTES: usize = 1024;

/// What receivers see as the sender.
pub const USER_AGENT: &str = concat!("fmu-gateway-webhooks/", env!("CARGO_PKG_VERSION"));

/// What follows a failed attempt, given the attempts of this cycle before it.
pub fn after_failure(earlier_attempts: u32, now: i64, scale: f64) -> AfterAttempt {
    match SCHEDULE.get(earlier_attempts as usize) {
        Some(delay) => AfterAttempt::RetryAt(now + scaled_ms(*delay, scale)),
        None => AfterAttempt::GiveUp,
    }
}

fn scaled_ms(delay: Duration, scale: f64) -> i64 {
    (delay.as_millis() as f64 * scale).round() as i64
}

/// Runs until aborted: claims what is due, sends it, sleeps until the next is due or a
/// message wakes it.
pub async fn run(state: State) {
    // On PostgreSQL other servers deliver too: their claims are theirs (a claim of a server
    // that died is taken over once it stops beating), and messages other processes record (a
    // worker node settling a run) wake no one here, so the loop looks every second.
    let shared = state.store.engine() == crate::store::Engine::Postgres;
    let idle = if shared { SHARED_IDLE } else { IDLE };
    let released = if shared {
        Ok(0)
    } else {
        state.store.release_webhook_claims().await
    };
    match released {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            deliveries = n,
            "webhook attempts cut short by the last stop will be made again"
        ),
        Err(e) => tracing::error!(error = %e, "cannot release webhook claims"),
    }
    let permits = Arc::new(Semaphore::new(CONCURRENCY));
    loop {
        let free = permits.available_permits();
        if free > 0 {
            start_due(&state, &permits, free).await;
        }
        let wait = if permits.available_permits() == 0 {
            idle
        } else {
            until_next_due(&state).await.min(idle)
        };
        tokio::select! {
            _ = state.webhook_wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Claims up to `free` due deliveries and starts an attempt for each.
async fn start_due(state: &State, permits: &Arc<Semaphore>, free: usize) {
    let now = now_ms();
    let claim = WebhookClaim {
        now,
        lease_ms: LEASE.as_millis() as i64,
        silent_since: now
            - crate::domain::runs::queue::silent_after(state.config.lease).as_millis() as i64,
    };
    let due = match state
        .store
        .claim_due_webhooks(&state.node_id, claim, free as u32)
        .await
    {
        Ok(due) => due,
        Err(e) => {
            tracing::error!(error = %e, "cannot claim due webhook deliveries");
            return;
        }
    };
    for delivery in due {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let state = state.clone();
        tokio::spawn(async move {
            deliver(&state, delivery).await;
            drop(permit);
            state.webhook_wake.notify_one();
        });
    }
}

/// How long until the next pending delivery can be attempted (at most [`IDLE`]).
async fn until_next_due(state: &State) -> Duration {
    match state.store.next_webhook_due().await {
        Ok(Some(at)) => {
            let ms = (at - now_ms()).clamp(10, IDLE.as_millis() as i64);
            Duration::from_millis(ms as u64)
        }
        Ok(None) => IDLE,
        Err(e) => {
            tracing::error!(error = %e, "cannot read when the next webhook is due");
            IDLE
        }
    }
}

/// One attempt, recorded with what follows it.
async fn deliver(state: &State, delivery: DueDelivery) {
    let attempt = attempt(state, &delivery).await;
    let succeeded = attempt.http_status.is_some_and(|s| (200..300).contains(&s));
    let after = if succeeded {
        AfterAttempt::Delivered
    } else {
        after_failure(
            delivery.cycle_attempts,
            now_ms(),
            state.config.webhook_retry_scale,
        )
    };
    if let Err(e) = state
        .store
        .record_webhook_attempt(&delivery.id, attempt, after)
        .await
    {
        // The claim stays until its lease ends; then the attempt is made again.
        tracing::error!(delivery = %delivery.id, error = %e, "cannot record a webhook attempt");
    }
}

/// The receiver's answer.
struct Answer {
    status: u16,
    location: Option<String>,
    excerpt: String,
    truncated: bool,
}

/// Checks the target (it may resolve elsewhere since the last attempt), then sends.
async fn attempt(state: &State, delivery: &DueDelivery) -> Attempt {
    let attempted_at = now_ms();
    let started = Instant::now();
    let answer = match target::check(&delivery.url, state.config.webhook_allow_private).await {
        Ok(target) => send(&target, delivery).await,
        Err(refused) => Err(refused.to_string()),
    };
    let latency_ms = started.elapsed().as_millis() as i64;
    match answer {
        Ok(answer) => Attempt {
            attempted_at,
            http_status: Some(answer.status),
            error: (300..400)
                .contains(&answer.status)
                .then(|| match answer.location {
                    Some(to) => format!("a redirect (to {to}), which is not followed"),
                    None => "a redirect, which is not followed".to_string(),
                }),
            latency_ms,
            response_excerpt: Some(answer.excerpt),
            response_truncated: answer.truncated,
        },
        Err(error) => Attempt {
            attempted_at,
            http_status: None,
            error: Some(error),
            latency_ms,
            response_excerpt: None,
            response_truncated: false,
        },
    }
}

/// Posts the signed message to exactly the checked address, redirects not followed.
async fn send(target: &Target, delivery: &DueDelivery) -> Result<Answer, String> {
    let mut client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(ATTEMPT_TIMEOUT)
        .user_agent(USER_AGENT)
        // A proxy would resolve the name again, elsewhere: connect directly.
        .no_proxy();
    if let Some(domain) = &target.domain {
        client = client.resolve(domain, target.addr);
    }
    let client = client.build().map_err(|e| format!("cannot send: {e}"))?;
    let timestamp = now_ms().div_euclid(1000);
    let signature = signature_header(
        &delivery.secrets,
        &delivery.message_id,
        timestamp,
        &delivery.payload,
    )
    .ok_or("the endpoint's secret cannot sign")?;
    let response = client
        .post(target.url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", &delivery.message_id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", signature)
        .body(delivery.payload.clone())
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = response.status().as_u16();
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .map(str::to_string);
    let (excerpt, truncated) = read_excerpt(response).await;
    Ok(Answer {
        status,
        location,
        excerpt,
        truncated,
    })
}

/// The start of the body (the rest is not read); a body cut short by an error keeps what came.
async fn read_excerpt(mut response: reqwest::Response) -> (String, bool) {
    let mut bytes = Vec::new();
    while bytes.len() <= EXCERPT_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    excerpt(&bytes)
}

/// At most [`EXCERPT_BYTES`] of `bytes` as text, cut on a character boundary, and whether
/// anything was left out. A body that is not UTF-8 shows replacement characters.
pub fn excerpt(bytes: &[u8]) -> (String, bool) {
    let mut truncated = bytes.len() > EXCERPT_BYTES;
    let head = &bytes[..bytes.len().min(EXCERPT_BYTES)];
    let text = match std::str::from_utf8(head) {
        Ok(text) => text.to_string(),
        // Only the last character is incomplete: the cut went through it.
        Err(e) if e.error_len().is_none() => {
            truncated = true;
            String::from_utf8_lossy(&head[..e.valid_up_to()]).into_owned()
        }
        Err(_) => String::from_utf8_lossy(head).into_owned(),
    };
    (text, truncated)
}

/// A failed request in a few words, with its root cause.
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("timed out after {} s", ATTEMPT_TIMEOUT.as_secs());
    }
    let mut root: &dyn std::error::Error = e;
    while let Some(source) = root.source() {
        root = source;
    }
    if e.is_connect() {
        format!("could not connect: {root}")
    } else {
        format!("the request failed: {root}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_backs_off_for_about_a_day_then_gives_up() {
        let total: Duration = SCHEDULE.iter().sum();
        assert!(total > Duration::from_secs(24 * 3600), "{total:?}");
        assert_eq!(after_failure(0, 1_000, 1.0), AfterAttempt::RetryAt(6_000));
        assert_eq!(after_failure(1, 0, 1.0), AfterAttempt::RetryAt(300_000));
        assert_eq!(
            after_failure(6, 0, 1.0),
            AfterAttempt::RetryAt(14 * 3_600_000)
        );
        assert_eq!(after_failure(7, 0, 1.0), AfterAttempt::GiveUp);
        // Scaled for tests: 5 s becomes 5 ms.
        assert_eq!(after_failure(0, 0, 0.001), AfterAttempt::RetryAt(5));
    }

    #[test]
    fn excerpts_are_cut_on_a_character_boundary() {
        let short = "ok".as_bytes();
        assert_eq!(excerpt(short), ("ok".to_string(), false));
        let exact = "a".repeat(EXCERPT_BYTES);
        assert_eq!(excerpt(exact.as_bytes()), (exact.clone(), false));
        let long = "a".repeat(EXCERPT_BYTES + 5);
        assert_eq!(excerpt(long.as_bytes()), (exact, true));
        // "é" is two bytes: with one byte of room left, it is left out whole.
        let mut text = "a".repeat(EXCERPT_BYTES - 1);
        text.push_str("éé");
        let (cut, truncated) = excerpt(text.as_bytes());
        assert!(truncated);
        assert_eq!(cut, "a".repeat(EXCERPT_BYTES - 1));
        assert!(cut.len() <= EXCERPT_BYTES);
    }
}
