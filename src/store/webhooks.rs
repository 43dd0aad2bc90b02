//! The webhook tables: endpoints (with the secrets that sign for them), deliveries (one per
//! message and endpoint, with where it stands) and every attempt.

use super::StoreError;
use super::sql::{Connection, OptionalExtension, Row, params};
use super::sql::{FromSql, ToSql, Value};

use super::{Store, StoreResult, write_tx};
use crate::domain::ids::UserId;
use crate::domain::webhooks::events::{EventSet, EventType};
use crate::domain::webhooks::signing::WebhookSecret;
use crate::domain::webhooks::{AfterAttempt, Attempt, DeliveryStatus};

impl ToSql for EventType {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::from(self.as_str()))
    }
}

impl FromSql for EventType {
    fn column_result(value: &Value) -> StoreResult<EventType> {
        value.as_str()?.parse().map_err(StoreError::decode)
    }
}

impl ToSql for EventSet {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::from(self.to_stored()))
    }
}

impl FromSql for EventSet {
    fn column_result(value: &Value) -> StoreResult<EventSet> {
        EventSet::from_stored(value.as_str()?).map_err(StoreError::decode)
    }
}

impl ToSql for DeliveryStatus {
    fn to_sql(&self) -> StoreResult<Value> {
        Ok(Value::from(self.as_str()))
    }
}

impl FromSql for DeliveryStatus {
    fn column_result(value: &Value) -> StoreResult<DeliveryStatus> {
        value.as_str()?.parse().map_err(StoreError::decode)
    }
}

/// An endpoint as listed (never its secrets).
#[derive(Clone, Debug)]
pub struct EndpointRow {
    pub id: String,
    pub user_id: UserId,
    pub url: String,
    pub description: String,
    pub events: EventSet,
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Until when the secret before the last rotation still signs (when it does).
    pub previous_secret_until: Option<i64>,
}

/// A new endpoint with its first secret.
#[derive(Clone, Debug)]
pub struct NewEndpoint {
    pub id: String,
    pub user_id: UserId,
    pub url: String,
    pub description: String,
    pub events: EventSet,
    pub enabled: bool,
    pub secret: WebhookSecret,
    pub now: i64,
}

/// What an update changes; `None` keeps the field.
#[derive(Clone, Debug, Default)]
pub struct EndpointChanges {
    pub url: Option<String>,
    pub description: Option<String>,
    pub events: Option<EventSet>,
    pub enabled: Option<bool>,
}

/// A delivery with its attempts, newest attempt last.
#[derive(Clone, Debug)]
pub struct DeliveryRow {
    pub id: String,
    pub endpoint_id: String,
    pub message_id: String,
    pub event: EventType,
    pub status: DeliveryStatus,
    pub created_at: i64,
    /// When the next attempt is due (pending deliveries).
    pub next_attempt_at: Option<i64>,
    pub attempts: Vec<Attempt>,
}

/// When a deliverer claims deliveries, and for how long (ms since the epoch / ms).
#[derive(Debug, Clone, Copy)]
pub struct WebhookClaim {
    pub now: i64,
    /// How long a claim holds: longer than an attempt can take.
    pub lease_ms: i64,
    /// A process not seen since then has stopped: its claims made before then are void.
    pub silent_since: i64,
}

/// A delivery claimed for one attempt: what to send, where, signed with which secrets.
#[derive(Clone, Debug)]
pub struct DueDelivery {
    pub id: String,
    pub message_id: String,
    pub url: String,
    pub payload: String,
    /// The current secret first, then the previous one while its overlap lasts.
    pub secrets: Vec<WebhookSecret>,
    /// Attempts made since it was (re)sent, before this one.
    pub cycle_attempts: u32,
}

/// One pending delivery to record for each endpoint that hears an event.
#[derive(Clone, Debug)]
pub struct NewMessage {
    pub user_id: UserId,
    pub event: EventType,
    pub message_id: String,
    pub payload: String,
    pub now: i64,
}

const ENDPOINT: &str = "SELECT id, user_id, url, description, events, enabled, created_at,
        updated_at, previous_expires_at, previous_secret IS NOT NULL
    FROM webhook_endpoints";

fn endpoint_from_row(r: &Row) -> StoreResult<(EndpointRow, bool)> {
    Ok((
        EndpointRow {
            id: r.get(0)?,
            user_id: r.get(1)?,
            url: r.get(2)?,
            description: r.get(3)?,
            events: r.get(4)?,
            enabled: r.get(5)?,
            created_at: r.get(6)?,
            updated_at: r.get(7)?,
            previous_secret_until: r.get(8)?,
        },
        r.get(9)?,
    ))
}

/// Hides an overlap that has ended (the row keeps it until the next rotation).
fn current(now: i64) -> impl Fn((EndpointRow, bool)) -> EndpointRow {
    move |(mut row, has_previous)| {
        if !has_previous || row.previous_secret_until.is_none_or(|t| t <= now) {
            row.previous_secret_until = None;
        }
        row
    }
}

fn get_endpoint(
    conn: &Connection,
    user_id: &UserId,
    id: &str,
    now: i64,
) -> StoreResult<Option<EndpointRow>> {
    let sql = format!("{ENDPOINT} WHERE user_id = ?1 AND id = ?2");
    Ok(conn
        .query_row(&sql, params![user_id, id], endpoint_from_row)
        .optional()?
        .map(current(now)))
}

fn attempts_of(conn: &Connection, delivery_id: &str) -> StoreResult<Vec<Attempt>> {
    let mut stmt = conn.prepare_cached(
        "SELECT attempted_at, http_status, error, latency_ms, response_excerpt, response_truncated
         FROM webhook_attempts WHERE delivery_id = ?1 ORDER BY id",
    )?;
    let rows = stmt.query_map([delivery_id], |r| {
        Ok(Attempt {
            attempted_at: r.get(0)?,
            http_status: r.get(1)?,
            error: r.get(2)?,
            latency_ms: r.get(3)?,
            response_excerpt: r.get(4)?,
            response_truncated: r.get(5)?,
        })
    })?;
    rows.collect::<Result<_, _>>()
}

const DELIVERY: &str = "SELECT d.id, d.endpoint_id, d.message_id, d.event, d.status,
        d.created_at, d.next_attempt_at
    FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id";

fn delivery_from_row(r: &Row) -> StoreResult<DeliveryRow> {
    let status: DeliveryStatus = r.get(4)?;
    Ok(DeliveryRow {
        id: r.get(0)?,
        endpoint_id: r.get(1)?,
        message_id: r.get(2)?,
        event: r.get(3)?,
        created_at: r.get(5)?,
        next_attempt_at: if status == DeliveryStatus::Pending {
            r.get(6)?
        } else {
            None
        },
        status,
        attempts: Vec::new(),
    })
}

/// The user's enabled endpoints subscribed to `event`.
fn subscribed(conn: &Connection, user_id: &UserId, event: EventType) -> StoreResult<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, events FROM webhook_endpoints WHERE user_id = ?1 AND enabled = 1",
    )?;
    let rows = stmt.query_map([user_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let rows: Vec<(String, EventSet)> = rows.collect::<Result<_, _>>()?;
    Ok(rows
        .into_iter()
        .filter(|(_, events)| events.contains(event))
        .map(|(id, _)| id)
        .collect())
}

fn with_attempts(conn: &Connection, mut row: DeliveryRow) -> StoreResult<DeliveryRow> {
    row.attempts = attempts_of(conn, &row.id)?;
    Ok(row)
}

/// Webhooks: each method is one transaction.
impl Store {
    /// Adds an endpoint unless the user already has `cap` of them; `false` when they have.
    pub async fn add_webhook(&self, new: NewEndpoint, cap: u32) -> StoreResult<bool> {
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let count: u32 = tx.query_row(
                "SELECT COUNT(*) FROM webhook_endpoints WHERE user_id = ?1",
                [&new.user_id],
                |r| r.get(0),
            )?;
            if count >= cap {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO webhook_endpoints
                    (id, user_id, url, description, events, enabled, secret, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8)",
                params![
                    new.id,
                    new.user_id,
                    new.url,
                    new.description,
                    new.events,
                    new.enabled,
                    new.secret.expose(),
                    new.now
                ],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    /// The user's endpoints, oldest first.
    pub async fn webhooks(&self, user_id: &UserId, now: i64) -> StoreResult<Vec<EndpointRow>> {
        let user_id = user_id.clone();
        self.run(move |conn| {
            let sql = format!("{ENDPOINT} WHERE user_id = ?1 ORDER BY created_at, id");
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map([&user_id], endpoint_from_row)?;
            let rows: Vec<(EndpointRow, bool)> = rows.collect::<Result<_, _>>()?;
            Ok(rows.into_iter().map(current(now)).collect())
        })
        .await
    }

    /// The user's endpoint with this id.
    pub async fn webhook(
        &self,
        user_id: &UserId,
        id: &str,
        now: i64,
    ) -> StoreResult<Option<EndpointRow>> {
        let (user_id, id) = (user_id.clone(), id.to_string());
        self.run(move |conn| get_endpoint(conn, &user_id, &id, now))
            .await
    }

    /// Changes the user's endpoint; `None` when there is no such endpoint.
    pub async fn update_webhook(
        &self,
        user_id: &UserId,
        id: &str,
        changes: EndpointChanges,
        now: i64,
    ) -> StoreResult<Option<EndpointRow>> {
        let (user_id, id) = (user_id.clone(), id.to_string());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let changed = tx.execute(
                "UPDATE webhook_endpoints SET url = COALESCE(?3, url),
                    description = COALESCE(?4, description), events = COALESCE(?5, events),
                    enabled = COALESCE(?6, enabled), updated_at = ?7
                 WHERE user_id = ?1 AND id = ?2",
                params![
                    user_id,
                    id,
                    changes.url,
                    changes.description,
                    changes.events,
                    changes.enabled,
                    now
                ],
            )?;
            let row = if changed == 1 {
                get_endpoint(&tx, &user_id, &id, now)?
            } else {
                None
            };
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    /// Deletes the user's endpoint with its deliveries; `false` when there is no such one.
    pub async fn delete_webhook(&self, user_id: &UserId, id: &str) -> StoreResult<bool> {
        let (user_id, id) = (user_id.clone(), id.to_string());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let deleted = tx.execute(
                "DELETE FROM webhook_endpoints WHERE user_id = ?1 AND id = ?2",
                params![user_id, id],
            )?;
            tx.commit()?;
            Ok(deleted == 1)
        })
        .await
    }

    /// Makes `secret` the endpoint's secret; the one it replaces keeps signing until
    /// `previous_until`. `None` when there is no such endpoint.
    pub async fn rotate_webhook_secret(
        &self,
        user_id: &UserId,
        id: &str,
        secret: WebhookSecret,
        previous_until: i64,
        now: i64,
    ) -> StoreResult<Option<EndpointRow>> {
        let (user_id, id) = (user_id.clone(), id.to_string());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let changed = tx.execute(
                "UPDATE webhook_endpoints SET previous_secret = secret,
                    previous_expires_at = ?4, secret = ?3, updated_at = ?5
                 WHERE user_id = ?1 AND id = ?2",
                params![user_id, id, secret.expose(), previous_until, now],
            )?;
            let row = if changed == 1 {
                get_endpoint(&tx, &user_id, &id, now)?
            } else {
                None
            };
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    /// Records one pending delivery of the message for each of the user's enabled endpoints
    /// subscribed to its event, due at once. Returns how many. Recording the same message
    /// again records nothing more (a retry after an answer lost in a database restart).
    pub async fn enqueue_webhook_deliveries(&self, message: NewMessage) -> StoreResult<usize> {
        self.run(move |conn| {
            // Most users have no endpoint: a read tells, without taking the write lock.
            if subscribed(conn, &message.user_id, message.event)?.is_empty() {
                return Ok(0);
            }
            let tx = write_tx(conn)?;
            let mut count = 0;
            for endpoint_id in subscribed(&tx, &message.user_id, message.event)? {
                count += tx.execute(
                    "INSERT INTO webhook_deliveries (id, endpoint_id, message_id, event, payload,
                        status, next_attempt_at, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, 'pending', ?6, ?6)
                     ON CONFLICT (endpoint_id, message_id) DO NOTHING",
                    params![
                        crate::domain::values::new_id("whd"),
                        endpoint_id,
                        message.message_id,
                        message.event,
                        message.payload,
                        message.now
                    ],
                )?;
            }
            tx.commit()?;
            Ok(count)
        })
        .await
    }

    /// The `limit` most recent deliveries to the user's endpoint, newest first, with their
    /// attempts; `None` when there is no such endpoint.
    pub async fn webhook_deliveries(
        &self,
        user_id: &UserId,
        endpoint_id: &str,
        limit: u32,
    ) -> StoreResult<Option<Vec<DeliveryRow>>> {
        let (user_id, endpoint_id) = (user_id.clone(), endpoint_id.to_string());
        self.run(move |conn| {
            let tx = conn.transaction()?;
            let exists: Option<i64> = tx
                .query_row(
                    "SELECT 1 FROM webhook_endpoints WHERE user_id = ?1 AND id = ?2",
                    params![user_id, endpoint_id],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                return Ok(None);
            }
            let sql = format!(
                "{DELIVERY} WHERE d.endpoint_id = ?1 ORDER BY d.created_at DESC, d.rowid DESC LIMIT ?2"
            );
            let rows: Vec<DeliveryRow> = {
                let mut stmt = tx.prepare_cached(&sql)?;
                let rows = stmt.query_map(params![endpoint_id, limit], delivery_from_row)?;
                rows.collect::<Result<_, _>>()?
            };
            let rows = rows
                .into_iter()
                .map(|row| with_attempts(&tx, row))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Some(rows))
        })
        .await
    }

    /// Starts a new attempt cycle for the user's delivery: pending, due now, the back-off
    /// from the start. `None` when there is no such delivery.
    pub async fn resend_webhook_delivery(
        &self,
        user_id: &UserId,
        delivery_id: &str,
        now: i64,
    ) -> StoreResult<Option<DeliveryRow>> {
        let (user_id, delivery_id) = (user_id.clone(), delivery_id.to_string());
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let changed = tx.execute(
                "UPDATE webhook_deliveries SET status = 'pending', cycle_attempts = 0,
                    next_attempt_at = ?3, claimed_until = NULL
                 WHERE id = ?2 AND endpoint_id IN
                    (SELECT id FROM webhook_endpoints WHERE user_id = ?1)",
                params![user_id, delivery_id, now],
            )?;
            let row = if changed == 1 {
                let sql = format!("{DELIVERY} WHERE d.id = ?1");
                let row = tx.query_row(&sql, [&delivery_id], delivery_from_row)?;
                Some(with_attempts(&tx, row)?)
            } else {
                None
            };
            tx.commit()?;
            Ok(row)
        })
        .await
    }

    /// Claims for process `node` up to `limit` deliveries due at `claim.now` (pending, to an
    /// enabled endpoint: a paused one's wait), oldest due first. A delivery another claim holds
    /// is taken only when that claim ran out, or when it was made before `claim.silent_since`
    /// by a process not seen since then (it died mid-attempt: its attempt is made again now
    /// rather than when the claim runs out).
    pub async fn claim_due_webhooks(
        &self,
        node: &str,
        claim: WebhookClaim,
        limit: u32,
    ) -> StoreResult<Vec<DueDelivery>> {
        let node = node.to_string();
        let WebhookClaim {
            now,
            lease_ms,
            silent_since,
        } = claim;
        let lease_until = now + lease_ms;
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            let due: Vec<DueDelivery> = {
                let mut stmt = tx.prepare_cached(
                    "SELECT d.id, d.message_id, e.url, d.payload, e.secret, e.previous_secret,
                        e.previous_expires_at, d.cycle_attempts
                     FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
                     WHERE d.status = 'pending' AND d.next_attempt_at <= ?1
                       AND (d.claimed_until IS NULL OR d.claimed_until <= ?1
                            OR (d.claimed_until - ?3 < ?4 AND NOT EXISTS (
                                SELECT 1 FROM worker_nodes n
                                WHERE n.id = d.claimed_by AND n.seen_at >= ?4)))
                       AND e.enabled = 1
                     ORDER BY d.next_attempt_at, d.rowid LIMIT ?2",
                )?;
                let rows = stmt.query_map(params![now, limit, lease_ms, silent_since], |r| {
                    let mut secrets = vec![WebhookSecret::from_stored(r.get(4)?)];
                    let previous: Option<String> = r.get(5)?;
                    let until: Option<i64> = r.get(6)?;
                    if let (Some(previous), Some(until)) = (previous, until)
                        && until > now
                    {
                        secrets.push(WebhookSecret::from_stored(previous));
                    }
                    Ok(DueDelivery {
                        id: r.get(0)?,
                        message_id: r.get(1)?,
                        url: r.get(2)?,
                        payload: r.get(3)?,
                        secrets,
                        cycle_attempts: r.get(7)?,
                    })
                })?;
                rows.collect::<Result<_, _>>()?
            };
            for d in &due {
                tx.execute(
                    "UPDATE webhook_deliveries SET claimed_until = ?2, claimed_by = ?3 WHERE id = ?1",
                    params![d.id, lease_until, node],
                )?;
            }
            tx.commit()?;
            Ok(due)
        })
        .await
    }

    /// Records an attempt and what follows it, and releases the claim.
    pub async fn record_webhook_attempt(
        &self,
        delivery_id: &str,
        attempt: Attempt,
        after: AfterAttempt,
    ) -> StoreResult<()> {
        let delivery_id = delivery_id.to_string();
        self.run(move |conn| {
            let tx = write_tx(conn)?;
            // The endpoint may have been deleted during the attempt: nothing to record then.
            tx.execute(
                "INSERT INTO webhook_attempts (delivery_id, attempted_at, http_status, error,
                    latency_ms, response_excerpt, response_truncated)
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7
                 WHERE EXISTS (SELECT 1 FROM webhook_deliveries WHERE id = ?1)",
                params![
                    delivery_id,
                    attempt.attempted_at,
                    attempt.http_status,
                    attempt.error,
                    attempt.latency_ms,
                    attempt.response_excerpt,
                    attempt.response_truncated
                ],
            )?;
            let (status, next) = match after {
                AfterAttempt::Delivered => (DeliveryStatus::Delivered, None),
                AfterAttempt::RetryAt(at) => (DeliveryStatus::Pending, Some(at)),
                AfterAttempt::GiveUp => (DeliveryStatus::Failed, None),
            };
            tx.execute(
                "UPDATE webhook_deliveries SET status = ?2, next_attempt_at = ?3,
                    cycle_attempts = cycle_attempts + 1, claimed_until = NULL,
                    claimed_by = NULL
                 WHERE id = ?1",
                params![delivery_id, status, next],
            )?;
            tx.commit()?;
            Ok(())
        })
        .await
    }

    /// Releases every claim (at start-up: no attempt of an earlier process is still running,
    /// so the ones it left are made again at once). Returns how many there were.
    pub async fn release_webhook_claims(&self) -> StoreResult<usize> {
        self.run(|conn| {
            let tx = write_tx(conn)?;
            let n = tx.execute(
                "UPDATE webhook_deliveries SET claimed_until = NULL, claimed_by = NULL
                 WHERE status = 'pending' AND claimed_until IS NOT NULL",
                params![],
            )?;
            tx.commit()?;
            Ok(n)
        })
        .await
    }

    /// When the next pending delivery of an enabled endpoint can be attempted (its due time,
    /// or its claim's end).
    pub async fn next_webhook_due(&self) -> StoreResult<Option<i64>> {
        self.run(|conn| {
            conn.query_row(
                "SELECT MIN(CASE WHEN COALESCE(d.claimed_until, 0) > d.next_attempt_at
                     THEN d.claimed_until ELSE d.next_attempt_at END)
                 FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
                 WHERE d.status = 'pending' AND e.enabled = 1",
                params![],
                |r| r.get(0),
            )
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::now_ms;
    use crate::store::queue::NodeKind;

    const LEASE_MS: i64 = 60_000;

    /// A store with one pending delivery due at 0.
    async fn one_due_delivery() -> (tempfile::TempDir, Store) {
        let (dir, store) = crate::store::fixtures::store_with_user(10).await;
        let endpoint = NewEndpoint {
            id: "whk_1".into(),
            user_id: UserId::from("u"),
            url: "https://93.184.215.14/hook".into(),
            description: String::new(),
            events: EventSet::all(),
            enabled: true,
            secret: WebhookSecret::generate(),
            now: 0,
        };
        assert!(store.add_webhook(endpoint, 10).await.unwrap());
        let message = NewMessage {
            user_id: UserId::from("u"),
            event: EventType::RunSucceeded,
            message_id: "msg_1".into(),
            payload: "{}".into(),
            now: 0,
        };
        assert_eq!(store.enqueue_webhook_deliveries(message).await.unwrap(), 1);
        (dir, store)
    }

    fn at(now: i64) -> WebhookClaim {
        WebhookClaim {
            now,
            lease_ms: LEASE_MS,
            silent_since: now - 5_000,
        }
    }

    /// How many deliveries `node` claims (of at most 8).
    async fn claims(store: &Store, node: &str, claim: WebhookClaim) -> usize {
        store
            .claim_due_webhooks(node, claim, 8)
            .await
            .unwrap()
            .len()
    }

    async fn seen(store: &Store, node: &str) {
        store
            .node_seen(node, NodeKind::Server, "h", 1, 0)
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_claim_holds_while_its_process_beats_and_is_taken_over_once_it_falls_silent() {
        let (_dir, store) = one_due_delivery().await;
        let now = now_ms();
        seen(&store, "a").await;
        seen(&store, "b").await;
        assert_eq!(claims(&store, "a", at(now)).await, 1);
        // Held by a live process: not another's, however often it asks.
        assert_eq!(claims(&store, "b", at(now + 1)).await, 0);
        // Ten seconds on, `a` still beats: still its own.
        seen(&store, "a").await;
        let later = now_ms() + 10_000;
        let live = WebhookClaim {
            silent_since: now - 1,
            ..at(later)
        };
        assert_eq!(claims(&store, "b", live).await, 0);
        // `a` falls silent (not seen since after its claim): `b` takes the delivery over, once.
        let silent = WebhookClaim {
            silent_since: now_ms() + 1,
            ..at(later)
        };
        assert_eq!(claims(&store, "b", silent).await, 1);
        assert_eq!(claims(&store, "c", at(later + 1)).await, 0);
    }

    #[tokio::test]
    async fn a_fresh_claim_of_a_process_not_yet_seen_is_left_alone_until_it_runs_out() {
        let (_dir, store) = one_due_delivery().await;
        let now = now_ms();
        // `a` claims before its first heartbeat is recorded: its claim is younger than the
        // silence that would void it.
        assert_eq!(claims(&store, "a", at(now)).await, 1);
        assert_eq!(claims(&store, "b", at(now + 4_000)).await, 0);
        // Run out: anyone's.
        let out = now + LEASE_MS;
        assert_eq!(claims(&store, "b", at(out)).await, 1);
    }
}
