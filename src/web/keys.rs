//! The API keys page: generate (the secret appears once, in place), list, revoke in place.

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path};
use poem::{Response, handler};
use serde::Deserialize;

use super::error::WebError;
use super::layout::{self, Nav, csrf_field, when};
use super::{CurrentSession, WantsFragment, html, paths, see_other};
use crate::auth::session::Session;
use crate::domain::ids::KeyId;
use crate::domain::keys::{self, KeyState, NewKey};
use crate::state::State;
use crate::store::api_keys::KeyRow;

fn status_badge(k: &KeyRow) -> Markup {
    let state = KeyState::of_row(k);
    let class = if state.is_active() {
        "badge badge-active"
    } else {
        "badge badge-revoked"
    };
    html! { span class=(class) { (state.label()) } }
}

/// Live browser sessions opened by logging in with each key.
type SessionsByKey = std::collections::HashMap<KeyId, i64>;

/// One row; also the answer to an htmx revoke, which swaps the row in place. `sessions` is
/// how many browser sessions were opened by logging in with this key and are still live:
/// they end when the key is revoked.
pub fn key_row(k: &KeyRow, s: &Session, sessions: i64, primary: bool) -> Markup {
    html! {
        tr #{"key-" (k.id)} {
            td {
                (k.label)
                @if primary { " " span.badge.badge-active.primary-key { "Primary" } }
            }
            td { code { (k.id) } }
            td { (when(k.created_at)) }
            td { @if let Some(t) = k.last_used_at { (when(t)) } @else { span.muted { "never" } } }
            td.num { (k.run_count) }
            td.num title="Browser sessions opened by logging in with this key; they end when it is revoked" {
                (sessions)
            }
            td { (status_badge(k)) }
            td.actions {
                @if KeyState::of_row(k).is_active() && !primary {
                    form method="post" action=(paths::key_primary(&k.id))
                        hx-post=(paths::key_primary(&k.id)) hx-target="#keys-table" hx-swap="outerHTML" {
                        (csrf_field(s))
                        button type="submit" aria-label={ "Make " (k.label) " the primary key" } { "Make primary" }
                    }
                }
                @if k.revoked_at.is_none() {
                    form method="post" action=(paths::key_revoke(&k.id))
                        hx-post=(paths::key_revoke(&k.id)) hx-target="#keys-table" hx-swap="outerHTML"
                        hx-confirm={ "Revoke “" (k.label) "”? Programs using it will stop working at once." } {
                        (csrf_field(s))
                        button.danger type="submit" aria-label={ "Revoke " (k.label) } { "Revoke" }
                    }
                } @else {
                    span.muted { "revoked " (when(k.revoked_at.unwrap_or_default())) }
                }
            }
        }
    }
}

/// The keys table; re-sent out of band when a key is created.
pub fn keys_table(keys: &[KeyRow], s: &Session, sessions: &SessionsByKey, oob: bool) -> Markup {
    let primary = keys::primary(keys);
    html! {
        div #keys-table hx-swap-oob=[oob.then_some("true")] {
            @if keys.is_empty() {
                p.muted { "You have no API keys yet." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Label" } th scope="col" { "Key ID" } th scope="col" { "Created" }
                        th scope="col" { "Last used" } th scope="col" { "Runs" }
                        th scope="col" { "Browser sessions" } th scope="col" { "Status" }
                        th scope="col" { span.visually-hidden { "Actions" } }
                    } }
                    tbody #keys-body {
                        @for k in keys {
                            @let primary = primary.is_some_and(|p| p.id == k.id);
                            (key_row(k, s, sessions.get(&k.id).copied().unwrap_or(0), primary))
                        }
                    }
                }
            }
        }
    }
}

/// The new secret, shown once.
fn new_key_box(key: &NewKey) -> Markup {
    html! {
        div.alert.alert-success.new-key role="status" {
            p { strong { "Your new key “" (key.row.label) "”." } " Copy it now: it is not stored and will not be shown again." }
            div.copy-row {
                code #new-key-value { (key.token) }
                button type="button" data-copy="#new-key-value" { "Copy" }
            }
        }
    }
}

fn view(
    s: &Session,
    keys: &[KeyRow],
    sessions: &SessionsByKey,
    created: Option<&NewKey>,
) -> Markup {
    let content = html! {
        h1 { "API keys" }
        p {
            "Send a key as " code { "Authorization: Bearer <key>" } " or " code { "X-API-Key: <key>" } ". "
            "Keys are " a href="https://www.biscuitsec.org/" { "biscuit" } " tokens: you can restrict one offline, "
            "e.g. " code { "check if operation(\"read_usage\")" } ", and use the result as is. Verify tokens with the "
            a href="/api/v1/keys/public-key" { "public key" } "."
        }
        form.inline-form method="post" action=(paths::KEYS) hx-post=(paths::KEYS) hx-target="#new-key" hx-swap="innerHTML" {
            (csrf_field(s))
            label for="label" { "Label" }
            input #label type="text" name="label" maxlength="64" placeholder="e.g. CI pipeline";
            button.primary type="submit" { "Generate key" }
        }
        div #new-key { @if let Some(k) = created { (new_key_box(k)) } }
        (keys_table(keys, s, sessions, false))
    };
    layout::page("API keys", Nav::Keys, Some(s), content)
}

#[handler]
pub async fn page(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
) -> Result<Response, WebError> {
    let keys = keys::list(&state.store, &s.user.id).await?;
    let sessions = live_sessions(&state, &s).await?;
    Ok(html(StatusCode::OK, view(&s, &keys, &sessions, None)))
}

async fn live_sessions(state: &State, s: &Session) -> Result<SessionsByKey, WebError> {
    crate::auth::session::live_by_key(state, &s.user.id)
        .await
        .map_err(|e| WebError::from(crate::domain::error::AppError::from(e)))
}

#[derive(Deserialize)]
pub struct NewKeyForm {
    label: Option<String>,
}

/// Creates a key. htmx gets the secret in `#new-key` and the table out of band; a plain
/// form post gets the whole page with the secret on it.
#[handler]
pub async fn create(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    WantsFragment(fragment): WantsFragment,
    Form(form): Form<NewKeyForm>,
) -> Result<Response, WebError> {
    let key = keys::create(&state, &s.user.id, form.label.as_deref(), None).await?;
    let all = keys::list(&state.store, &s.user.id).await?;
    let sessions = live_sessions(&state, &s).await?;
    let markup = if fragment {
        html! { (new_key_box(&key)) (keys_table(&all, &s, &sessions, true)) }
    } else {
        view(&s, &all, &sessions, Some(&key))
    };
    Ok(html(StatusCode::CREATED, markup))
}

/// Revokes a key; htmx gets the table back to swap in place (the primary key may change).
#[handler]
pub async fn revoke(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    WantsFragment(fragment): WantsFragment,
    Path(id): Path<KeyId>,
) -> Result<Response, WebError> {
    keys::revoke(&state.store, &s.user.id, &id).await?;
    table_or_page(&state, &s, fragment).await
}

/// Marks a key as the primary one (the dashboard shows it); htmx gets the table back.
#[handler]
pub async fn make_primary(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    WantsFragment(fragment): WantsFragment,
    Path(id): Path<KeyId>,
) -> Result<Response, WebError> {
    keys::mark_primary(&state.store, &s.user.id, &id).await?;
    table_or_page(&state, &s, fragment).await
}

/// After a change to one key: the table for htmx, the page again (303) for a plain post.
async fn table_or_page(state: &State, s: &Session, fragment: bool) -> Result<Response, WebError> {
    if !fragment {
        return Ok(see_other(paths::KEYS));
    }
    let all = keys::list(&state.store, &s.user.id).await?;
    let sessions = live_sessions(state, s).await?;
    Ok(html(StatusCode::OK, keys_table(&all, s, &sessions, false)))
}
