//! The webhooks page: add an endpoint (its secret appears once, in place), rotate its
//! secret, pause or delete it, and see each one's recent deliveries with their attempts and a
//! "Resend" button. Every action is a plain form (CSRF-checked by the page middleware).

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Response, handler};
use serde::Deserialize;

use super::error::WebError;
use super::layout::{self, Nav, csrf_field, when};
use super::{CurrentSession, html, paths, see_other};
use crate::auth::session::Session;
use crate::domain::error::AppError;
use crate::domain::webhooks::{
    self, Attempt, DeliveryStatus, EndpointRequest, EndpointUpdate, EventSet, EventType, WithSecret,
};
use crate::state::State;
use crate::store::webhooks::{DeliveryRow, EndpointRow};

/// Deliveries shown per endpoint (the API lists more).
const SHOWN_DELIVERIES: usize = 10;

/// An endpoint and its recent deliveries.
struct Listed {
    endpoint: EndpointRow,
    deliveries: Vec<DeliveryRow>,
}

/// What the page says after an action: a secret to copy once, or why the form was refused.
enum Notice<'a> {
    None,
    Secret(&'a WithSecret, &'static str),
    /// Why the add form was refused, and what was typed in it.
    Refused(String, &'a NewEndpointForm),
}

async fn listed(state: &State, s: &Session) -> Result<Vec<Listed>, WebError> {
    let mut out = Vec::new();
    for endpoint in webhooks::list(state, &s.user.id).await? {
        let mut deliveries = webhooks::deliveries(state, &s.user.id, &endpoint.id).await?;
        deliveries.truncate(SHOWN_DELIVERIES);
        out.push(Listed {
            endpoint,
            deliveries,
        });
    }
    Ok(out)
}

fn secret_box(created: &WithSecret, what: &str) -> Markup {
    html! {
        div.alert.alert-success.new-key role="status" {
            p {
                strong { (what) " for " (created.endpoint.url) "." }
                " Copy it now: it will not be shown again. Verify deliveries with any Standard "
                "Webhooks library and this secret."
            }
            div.copy-row {
                code #new-secret-value { (created.secret.expose()) }
                button type="button" data-copy="#new-secret-value" { "Copy" }
            }
        }
    }
}

/// The add form; after a refusal it keeps what was typed.
fn add_form(s: &Session, typed: Option<&NewEndpointForm>) -> Markup {
    let url = typed.map(|f| f.url.as_str());
    let description = typed.and_then(|f| f.description.as_deref());
    html! {
        form.webhook-add method="post" action=(paths::WEBHOOKS) {
            (csrf_field(s))
            div.field {
                label for="webhook-url" { "Endpoint URL" }
                input #webhook-url type="url" name="url" required maxlength="2048" value=[url]
                    placeholder="https://ci.example.com/hooks/fmu-gateway";
            }
            div.field {
                label for="webhook-description" { "Description" }
                input #webhook-description type="text" name="description" maxlength="256"
                    value=[description] placeholder="e.g. CI pipeline";
            }
            fieldset.webhook-events {
                legend { "Events" }
                @for event in EventType::ALL {
                    label.check {
                        input type="checkbox" name=(event.as_str()) value="1"
                            checked[typed.is_none_or(|f| f.ticked(event))];
                        " " code { (event.as_str()) }
                    }
                }
            }
            button.primary type="submit" { "Add endpoint" }
        }
    }
}

fn status_badge(status: DeliveryStatus) -> Markup {
    let class = match status {
        DeliveryStatus::Delivered => "badge badge-active",
        DeliveryStatus::Pending => "badge",
        DeliveryStatus::Failed => "badge badge-revoked",
    };
    html! { span class=(class) { (status.as_str()) } }
}

fn attempt_line(a: &Attempt) -> Markup {
    html! {
        li {
            (when(a.attempted_at)) " · "
            @if let Some(code) = a.http_status { strong { (code) } } @else { strong { "no answer" } }
            " · " (a.latency_ms) " ms"
            @if let Some(error) = &a.error { br; span.muted { (error) } }
            @if let Some(excerpt) = a.response_excerpt.as_deref().filter(|e| !e.is_empty()) {
                details.attempt-answer {
                    summary { "Answer" @if a.response_truncated { " (first KiB)" } }
                    pre { (excerpt) }
                }
            }
        }
    }
}

fn deliveries_table(s: &Session, deliveries: &[DeliveryRow]) -> Markup {
    html! {
        @if deliveries.is_empty() {
            p.muted { "No deliveries yet: one is made when a run of yours ends." }
        } @else {
            div.table-scroll {
                table.webhook-deliveries {
                    thead { tr {
                        th scope="col" { "Event" } th scope="col" { "Message" }
                        th scope="col" { "Status" } th scope="col" { "Attempts" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody {
                        @for d in deliveries {
                            tr #{"delivery-" (d.id)} {
                                td { code { (d.event.as_str()) } br; (when(d.created_at)) }
                                td { code { (d.message_id) } }
                                td {
                                    (status_badge(d.status))
                                    @if let Some(next) = d.next_attempt_at { br; span.muted { "next " (when(next)) } }
                                }
                                td { ol.attempts { @for a in &d.attempts { (attempt_line(a)) } } }
                                td.actions {
                                    form method="post" action=(paths::webhook(paths::WEBHOOK_RESEND, &d.id)) {
                                        (csrf_field(s))
                                        button type="submit" aria-label={ "Resend " (d.message_id) } { "Resend" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn endpoint_section(s: &Session, listed: &Listed) -> Markup {
    let e = &listed.endpoint;
    let events: Vec<&str> = e.events.iter().map(|e| e.as_str()).collect();
    html! {
        section.webhook #{"webhook-" (e.id)} aria-labelledby={"webhook-title-" (e.id)} {
            h2 #{"webhook-title-" (e.id)} { code.webhook-url { (e.url) } }
            p {
                @if e.enabled { span.badge.badge-active { "Enabled" } } @else { span.badge.badge-revoked { "Paused" } }
                " " span.muted { (events.join(", ")) }
                @if !e.description.is_empty() { " · " (e.description) }
            }
            @if let Some(until) = e.previous_secret_until {
                p.muted { "The previous secret also signs until " (when(until)) "." }
            }
            div.webhook-actions {
                form method="post" action=(paths::webhook(paths::WEBHOOK_ENABLED, &e.id)) {
                    (csrf_field(s))
                    input type="hidden" name="enabled" value=(if e.enabled { "0" } else { "1" });
                    button type="submit" { @if e.enabled { "Pause" } @else { "Enable" } }
                }
                form method="post" action=(paths::webhook(paths::WEBHOOK_ROTATE, &e.id)) {
                    (csrf_field(s))
                    button type="submit" aria-label={ "Rotate the secret of " (e.url) } { "Rotate secret" }
                }
                details.confirm {
                    summary { "Delete…" }
                    form method="post" action=(paths::webhook(paths::WEBHOOK_DELETE, &e.id)) {
                        (csrf_field(s))
                        p { "Delete this endpoint and its deliveries? Pending ones will not be sent." }
                        button.danger type="submit" aria-label={ "Delete " (e.url) } { "Delete" }
                    }
                }
            }
            h3 { "Recent deliveries" }
            (deliveries_table(s, &listed.deliveries))
        }
    }
}

fn view(s: &Session, endpoints: &[Listed], notice: Notice<'_>) -> Markup {
    let content = html! {
        h1 { "Webhooks" }
        p {
            "When a run of yours succeeds or fails, we POST " code { "{type, timestamp, data}" }
            " to your endpoints, signed as the "
            a href="https://www.standardwebhooks.com/" { "Standard Webhooks" }
            " specification says (" code { "webhook-id" } ", " code { "webhook-timestamp" } ", "
            code { "webhook-signature" } "): verify it with any Standard Webhooks library. "
            "Failed deliveries are retried for about a day."
        }
        @match &notice {
            Notice::Secret(created, what) => (secret_box(created, what)),
            Notice::Refused(why, _) => (layout::alert("error", why)),
            Notice::None => {}
        }
        (add_form(s, match &notice { Notice::Refused(_, typed) => Some(*typed), _ => None }))
        @if endpoints.is_empty() {
            p.muted { "You have no webhook endpoints yet." }
        }
        @for listed in endpoints { (endpoint_section(s, listed)) }
    };
    layout::page("Webhooks", Nav::Webhooks, Some(s), content)
}

async fn render(
    state: &State,
    s: &Session,
    status: StatusCode,
    notice: Notice<'_>,
) -> Result<Response, WebError> {
    let endpoints = listed(state, s).await?;
    Ok(html(status, view(s, &endpoints, notice)))
}

#[handler]
pub async fn page(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
) -> Result<Response, WebError> {
    render(&state, &s, StatusCode::OK, Notice::None).await
}

#[derive(Deserialize)]
pub struct NewEndpointForm {
    url: String,
    description: Option<String>,
    #[serde(rename = "run.succeeded")]
    run_succeeded: Option<String>,
    #[serde(rename = "run.failed")]
    run_failed: Option<String>,
    #[serde(rename = "sweep.completed")]
    sweep_completed: Option<String>,
    #[serde(rename = "sweep.failed")]
    sweep_failed: Option<String>,
}

impl NewEndpointForm {
    /// Whether the event's box was ticked (a form sends only the boxes that are).
    fn ticked(&self, event: EventType) -> bool {
        match event {
            EventType::RunSucceeded => self.run_succeeded.is_some(),
            EventType::RunFailed => self.run_failed.is_some(),
            EventType::SweepCompleted => self.sweep_completed.is_some(),
            EventType::SweepFailed => self.sweep_failed.is_some(),
        }
    }

    fn events(&self) -> Result<EventSet, AppError> {
        Ok(EventSet::of(
            EventType::ALL.into_iter().filter(|e| self.ticked(*e)),
        )?)
    }
}

/// Whether a refusal is about what the user typed (shown above the form) rather than a fault.
fn refused(e: &AppError) -> bool {
    matches!(
        e,
        AppError::Invalid(_) | AppError::Problems(_) | AppError::Conflict(_)
    )
}

/// Adds an endpoint; the page comes back with its secret, once (or why it was refused).
#[handler]
pub async fn create(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Form(form): Form<NewEndpointForm>,
) -> Result<Response, WebError> {
    let request = form.events().map(|events| EndpointRequest {
        url: form.url.clone(),
        description: form.description.clone(),
        events: Some(events),
        enabled: Some(true),
    });
    let created = match request {
        Ok(request) => webhooks::create(&state, &s.user.id, request).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(created) => {
            let notice = Notice::Secret(&created, "The signing secret");
            render(&state, &s, StatusCode::CREATED, notice).await
        }
        Err(e) if refused(&e) => {
            let status = match e {
                AppError::Conflict(_) => StatusCode::CONFLICT,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            render(&state, &s, status, Notice::Refused(e.to_string(), &form)).await
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Deserialize)]
pub struct EnabledForm {
    enabled: String,
}

/// Pauses or enables an endpoint.
#[handler]
pub async fn set_enabled(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<String>,
    Form(form): Form<EnabledForm>,
) -> Result<Response, WebError> {
    let update = EndpointUpdate {
        enabled: Some(form.enabled == "1"),
        ..EndpointUpdate::default()
    };
    webhooks::update(&state, &s.user.id, &id, update).await?;
    Ok(see_other(paths::WEBHOOKS))
}

/// A new secret, shown once; the previous one signs too for a day.
#[handler]
pub async fn rotate(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let rotated = webhooks::rotate_secret(&state, &s.user.id, &id).await?;
    let notice = Notice::Secret(&rotated, "The new signing secret");
    render(&state, &s, StatusCode::OK, notice).await
}

#[handler]
pub async fn delete(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    webhooks::delete(&state, &s.user.id, &id).await?;
    Ok(see_other(paths::WEBHOOKS))
}

/// Sends a delivery again (same message); back to the page, where its attempts show.
#[handler]
pub async fn resend(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    webhooks::resend(&state, &s.user.id, &id).await?;
    Ok(see_other(paths::WEBHOOKS))
}
