//! `/api/v1/webhooks`: signed webhook endpoints, their secrets, deliveries and resends.

use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, Tags};

use crate::api::auth::{Authed, ManageWebhooks, ReadWebhooks};
use crate::api::body::JsonBody;
use crate::api::choice::{Choice, Names};
use crate::api::error::{OpError, declare_errors};
use crate::api::text::Text;
use crate::domain::error::AppError;
use crate::domain::webhooks::{
    self, Attempt, DeliveryStatus, EndpointRequest, EndpointUpdate, EventSet, EventType, WithSecret,
};
use crate::sim::plan::{Problem, Problems};
use crate::state::State;
use crate::store::webhooks::{DeliveryRow, EndpointRow};

#[derive(Tags)]
enum Tag {
    /// Signed webhooks (Standard Webhooks) when runs and sweeps end.
    Webhooks,
}

/// An event a webhook is sent for.
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(rename = "WebhookEvent", remote = "EventType")]
pub enum EventName {
    #[oai(rename = "run.succeeded")]
    RunSucceeded,
    #[oai(rename = "run.failed")]
    RunFailed,
    #[oai(rename = "sweep.completed")]
    SweepCompleted,
    #[oai(rename = "sweep.failed")]
    SweepFailed,
}

impl Names for EventName {
    type Domain = EventType;
}

/// Where a delivery stands: `pending` (an attempt is due), `delivered` (answered 2xx) or
/// `failed` (every attempt of the schedule failed).
#[derive(Enum, Clone, Copy, Debug, PartialEq, Eq)]
#[oai(
    rename = "WebhookDeliveryStatus",
    rename_all = "snake_case",
    remote = "DeliveryStatus"
)]
pub enum DeliveryStatusName {
    Pending,
    Delivered,
    Failed,
}

/// A webhook endpoint (never its secret).
#[derive(Object)]
#[oai(example)]
pub struct Webhook {
    /// `whk_…`.
    pub id: String,
    pub url: String,
    pub description: String,
    /// The events it is sent.
    pub events: Vec<EventName>,
    /// A disabled (paused) endpoint is sent nothing: events while it is paused are not
    /// recorded for it, and its pending deliveries wait until it is enabled again.
    pub enabled: bool,
    pub created_at: String,
    pub updated_at: String,
    /// After a rotation, until when the previous secret still signs too (each message then
    /// carries both signatures).
    #[oai(skip_serializing_if_is_none)]
    pub previous_secret_expires_at: Option<String>,
}

impl From<EndpointRow> for Webhook {
    fn from(row: EndpointRow) -> Self {
        Webhook {
            id: row.id,
            url: row.url,
            description: row.description,
            events: row.events.iter().map(Into::into).collect(),
            enabled: row.enabled,
            created_at: crate::api::time(row.created_at),
            updated_at: crate::api::time(row.updated_at),
            previous_secret_expires_at: row.previous_secret_until.map(crate::api::time),
        }
    }
}

/// An endpoint with its signing secret, shown this once.
#[derive(Object)]
#[oai(example)]
pub struct WebhookWithSecret {
    pub webhook: Webhook,
    /// `whsec_…`: give it to your Standard Webhooks library to verify deliveries. Shown
    /// this once: store it now.
    pub secret: String,
}

impl From<WithSecret> for WebhookWithSecret {
    fn from(w: WithSecret) -> Self {
        WebhookWithSecret {
            secret: w.secret.expose().to_string(),
            webhook: w.endpoint.into(),
        }
    }
}

/// A new endpoint.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct WebhookCreate {
    /// Where to POST: `https://` and a public address (checked now and before each attempt).
    #[oai(validator(max_length = 2048))]
    pub url: Text,
    /// A note to tell endpoints apart (at most 256 characters).
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<Text>,
    /// The events to send (at least one); default all.
    #[oai(skip_serializing_if_is_none, validator(min_items = 1))]
    pub events: Option<Vec<Choice<EventName>>>,
    /// Default true.
    #[oai(skip_serializing_if_is_none)]
    pub enabled: Option<bool>,
}

/// Changes to an endpoint; what is left out stays.
#[derive(Object)]
#[oai(deny_unknown_fields, example)]
pub struct WebhookUpdate {
    #[oai(skip_serializing_if_is_none, validator(max_length = 2048))]
    pub url: Option<Text>,
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<Text>,
    /// The events to send (at least one).
    #[oai(skip_serializing_if_is_none, validator(min_items = 1))]
    pub events: Option<Vec<Choice<EventName>>>,
    #[oai(skip_serializing_if_is_none)]
    pub enabled: Option<bool>,
}

/// One attempt to deliver a message.
#[derive(Object)]
#[oai(example)]
pub struct WebhookAttempt {
    pub attempted_at: String,
    /// The receiver's HTTP status, when it answered (only 2xx counts as delivered;
    /// redirects are not followed).
    #[oai(skip_serializing_if_is_none)]
    pub status_code: Option<u16>,
    /// Why the attempt failed: no answer (a refused target, a timeout, a connection
    /// failure), or a redirect.
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
    pub latency_ms: i64,
    /// The first KiB of the answer's body.
    #[oai(skip_serializing_if_is_none)]
    pub response_excerpt: Option<String>,
    /// Whether the body went on past the excerpt.
    pub response_truncated: bool,
}

impl From<Attempt> for WebhookAttempt {
    fn from(a: Attempt) -> Self {
        WebhookAttempt {
            attempted_at: crate::api::time(a.attempted_at),
            status_code: a.http_status,
            error: a.error,
            latency_ms: a.latency_ms,
            response_excerpt: a.response_excerpt,
            response_truncated: a.response_truncated,
        }
    }
}

/// One message to one endpoint, with every attempt.
#[derive(Object)]
#[oai(example)]
pub struct WebhookDelivery {
    /// `whd_…`: what `resend` takes.
    pub id: String,
    pub webhook_id: String,
    /// The `webhook-id` header of every attempt (`msg_…`): receivers deduplicate with it.
    pub message_id: String,
    pub event: EventName,
    pub status: DeliveryStatusName,
    pub created_at: String,
    /// When the next attempt is due, while `pending`.
    #[oai(skip_serializing_if_is_none)]
    pub next_attempt_at: Option<String>,
    /// Oldest first.
    pub attempts: Vec<WebhookAttempt>,
}

impl From<DeliveryRow> for WebhookDelivery {
    fn from(d: DeliveryRow) -> Self {
        WebhookDelivery {
            id: d.id,
            webhook_id: d.endpoint_id,
            message_id: d.message_id,
            event: d.event.into(),
            status: d.status.into(),
            created_at: crate::api::time(d.created_at),
            next_attempt_at: d.next_attempt_at.map(crate::api::time),
            attempts: d.attempts.into_iter().map(Into::into).collect(),
        }
    }
}

#[derive(ApiResponse)]
enum CreateResponse {
    #[oai(status = 201)]
    Created(Json<WebhookWithSecret>),
}

#[derive(ApiResponse)]
enum Deleted {
    #[oai(status = 204)]
    Deleted,
}

#[derive(ApiResponse)]
enum Resent {
    #[oai(status = 202)]
    Accepted(Json<WebhookDelivery>),
}

declare_errors! {
    /// `GET /webhooks`.
    ListWebhooksErrors: [UNAUTHORIZED, FORBIDDEN];
    /// `POST /webhooks`: a URL refused (not https, a private address, not resolving) or an
    /// empty `events` is 422; past the endpoints an account may have, 409.
    CreateWebhookErrors: [
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        CONFLICT,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        UNPROCESSABLE_ENTITY,
    ];
    /// `GET /webhooks/{id}`, `DELETE /webhooks/{id}`, `POST /webhooks/{id}/rotate-secret`,
    /// `GET /webhooks/{id}/deliveries`, `POST /webhooks/deliveries/{id}/resend`.
    WebhookErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND];
    /// `PATCH /webhooks/{id}`: as create, and an unknown endpoint is 404.
    UpdateWebhookErrors: [
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        UNPROCESSABLE_ENTITY,
    ];
}

/// The events named, or the problems with them (an unknown name is 400, none at all 422).
fn event_set(choices: Option<Vec<Choice<EventName>>>) -> Result<Option<EventSet>, AppError> {
    let Some(choices) = choices else {
        return Ok(None);
    };
    let mut problems = Vec::new();
    let mut events = Vec::new();
    for (i, choice) in choices.iter().enumerate() {
        match choice.value(&format!("events[{i}]")) {
            Ok(event) => events.push(event),
            Err(problem) => problems.push(problem),
        }
    }
    if !problems.is_empty() {
        return Err(AppError::Malformed(Problems(problems)));
    }
    EventSet::of(events)
        .map(Some)
        .map_err(|e| AppError::Problems(Problems(vec![Problem::new("events", e.0)])))
}

pub struct WebhooksApi;

#[OpenApi(tag = "Tag::Webhooks")]
impl WebhooksApi {
    /// Your webhook endpoints, oldest first.
    ///
    /// Secrets are never listed: an endpoint's secret is shown once, when it is created or
    /// rotated.
    #[oai(path = "/webhooks", method = "get", operation_id = "listWebhooks")]
    async fn list(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadWebhooks>,
    ) -> Result<Json<Vec<Webhook>>, OpError<ListWebhooksErrors>> {
        let rows = webhooks::list(&state, &auth.principal.user_id).await?;
        Ok(Json(rows.into_iter().map(Into::into).collect()))
    }

    /// Registers an endpoint; the answer holds its signing secret, once.
    ///
    /// Each event is POSTed as `{type, timestamp, data}` with the Standard Webhooks headers
    /// `webhook-id`, `webhook-timestamp` and `webhook-signature`: verify them with any
    /// Standard Webhooks library and the `secret`. The URL must be https and resolve only to
    /// public addresses (checked now and before every attempt). At most 10 per account.
    #[oai(path = "/webhooks", method = "post", operation_id = "createWebhook")]
    async fn create(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageWebhooks>,
        body: JsonBody<WebhookCreate>,
    ) -> Result<CreateResponse, OpError<CreateWebhookErrors>> {
        let body = body.0;
        let request = EndpointRequest {
            url: body.url.0,
            description: body.description.map(|d| d.0),
            events: event_set(body.events)?,
            enabled: body.enabled,
        };
        let created = webhooks::create(&state, &auth.principal.user_id, request).await?;
        Ok(CreateResponse::Created(Json(created.into())))
    }

    /// One of your webhook endpoints.
    ///
    /// Its URL, events and whether it is enabled; never its secret.
    #[oai(path = "/webhooks/:id", method = "get", operation_id = "getWebhook")]
    async fn get(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadWebhooks>,
        id: Path<String>,
    ) -> Result<Json<Webhook>, OpError<WebhookErrors>> {
        let row = webhooks::get(&state, &auth.principal.user_id, &id.0).await?;
        Ok(Json(row.into()))
    }

    /// Changes an endpoint's URL, description, events or whether it is enabled.
    ///
    /// Fields left out stay as they are; a new URL is checked as on create.
    #[oai(
        path = "/webhooks/:id",
        method = "patch",
        operation_id = "updateWebhook"
    )]
    async fn update(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageWebhooks>,
        id: Path<String>,
        body: JsonBody<WebhookUpdate>,
    ) -> Result<Json<Webhook>, OpError<UpdateWebhookErrors>> {
        let body = body.0;
        let update = EndpointUpdate {
            url: body.url.map(|u| u.0),
            description: body.description.map(|d| d.0),
            events: event_set(body.events)?,
            enabled: body.enabled,
        };
        let row = webhooks::update(&state, &auth.principal.user_id, &id.0, update).await?;
        Ok(Json(row.into()))
    }

    /// Deletes an endpoint and its deliveries.
    ///
    /// Deliveries still pending are not sent.
    #[oai(
        path = "/webhooks/:id",
        method = "delete",
        operation_id = "deleteWebhook"
    )]
    async fn delete(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageWebhooks>,
        id: Path<String>,
    ) -> Result<Deleted, OpError<WebhookErrors>> {
        webhooks::delete(&state, &auth.principal.user_id, &id.0).await?;
        Ok(Deleted::Deleted)
    }

    /// Gives an endpoint a new secret; the answer holds it, once.
    ///
    /// The previous secret keeps signing for 24 hours: until then every delivery carries
    /// both signatures (space-separated in `webhook-signature`), so a receiver can switch to
    /// the new secret without missing a message.
    #[oai(
        path = "/webhooks/:id/rotate-secret",
        method = "post",
        operation_id = "rotateWebhookSecret"
    )]
    async fn rotate(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageWebhooks>,
        id: Path<String>,
    ) -> Result<Json<WebhookWithSecret>, OpError<WebhookErrors>> {
        let rotated = webhooks::rotate_secret(&state, &auth.principal.user_id, &id.0).await?;
        Ok(Json(rotated.into()))
    }

    /// An endpoint's 50 most recent deliveries, newest first, each with its attempts.
    ///
    /// Each attempt says when it was made, the receiver's status (or why there was none),
    /// how long it took and the start of the answer.
    #[oai(
        path = "/webhooks/:id/deliveries",
        method = "get",
        operation_id = "listWebhookDeliveries"
    )]
    async fn deliveries(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadWebhooks>,
        id: Path<String>,
    ) -> Result<Json<Vec<WebhookDelivery>>, OpError<WebhookErrors>> {
        let rows = webhooks::deliveries(&state, &auth.principal.user_id, &id.0).await?;
        Ok(Json(rows.into_iter().map(Into::into).collect()))
    }

    /// Sends a delivery again, as a new cycle of attempts.
    ///
    /// The message is the same (same body, same `webhook-id`, so a receiver that already
    /// has it can tell); its attempts start again from the beginning of the back-off.
    #[oai(
        path = "/webhooks/deliveries/:id/resend",
        method = "post",
        operation_id = "resendWebhookDelivery"
    )]
    async fn resend(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageWebhooks>,
        id: Path<String>,
    ) -> Result<Resent, OpError<WebhookErrors>> {
        let row = webhooks::resend(&state, &auth.principal.user_id, &id.0).await?;
        Ok(Resent::Accepted(Json(row.into())))
    }
}
