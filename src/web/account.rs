//! The account page: name, password, browser sessions, and deleting the account. Every
//! action is a plain form that answers with a redirect back here (and a notice), or the page
//! again with what went wrong.

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{Response, handler};
use serde::Deserialize;

use super::error::WebError;
use super::layout::{self, Nav, csrf_field, when};
use super::{CurrentSession, html, paths, see_other, with_query};
use crate::auth::session::{self, Session};
use crate::domain::account_settings;
use crate::domain::error::AppError;
use crate::request::ClientIp;
use crate::state::State;
use crate::store::sessions::SessionInfo;

/// What the last action did, carried in the redirect's query so a reload shows it again
/// instead of repeating the action.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Done {
    Renamed,
    PasswordChanged,
    SessionEnded,
}

impl Done {
    fn as_str(self) -> &'static str {
        match self {
            Done::Renamed => "renamed",
            Done::PasswordChanged => "password_changed",
            Done::SessionEnded => "session_ended",
        }
    }

    fn notice(self) -> &'static str {
        match self {
            Done::Renamed => "Your name was saved.",
            Done::PasswordChanged => {
                "Your password was changed. Every other session was logged out; this one stays."
            }
            Done::SessionEnded => "That session was logged out.",
        }
    }
}

#[derive(Deserialize, Default)]
pub struct PageQuery {
    done: Option<Done>,
}

/// The page, with a notice (`kind`, text) above it when there is one.
async fn render(
    state: &State,
    s: &Session,
    status: StatusCode,
    notice: Option<(&str, &str)>,
) -> Result<Response, WebError> {
    let sessions = account_settings::sessions(state, &s.user.id).await?;
    let content = html! {
        h1 { "Account settings" }
        @if let Some((kind, text)) = notice { (layout::alert(kind, text)) }
        div.account-settings {
            (profile_section(s))
            (password_section(s))
            (sessions_section(s, &sessions))
            (delete_section(s))
        }
    };
    Ok(html(
        status,
        layout::page("Account settings", Nav::None, Some(s), content),
    ))
}

fn profile_section(s: &Session) -> Markup {
    html! {
        section.card aria-labelledby="profile-h" {
            h2 #profile-h { "Profile" }
            p { "Email: " strong { (s.user.email) } }
            form method="post" action=(paths::ACCOUNT_NAME) {
                (csrf_field(s))
                label for="name" { "Name " span.muted { "(optional)" } }
                input #name type="text" name="name" autocomplete="name" maxlength="100"
                    value=(s.user.name.as_deref().unwrap_or(""));
                button.primary type="submit" { "Save name" }
            }
        }
    }
}

fn password_section(s: &Session) -> Markup {
    html! {
        section.card aria-labelledby="password-h" {
            h2 #password-h { "Password" }
            p.muted { "Changing it logs out every other session; this one stays." }
            form method="post" action=(paths::ACCOUNT_PASSWORD) {
                (csrf_field(s))
                label for="current_password" { "Current password" }
                input #current_password type="password" name="current_password" autocomplete="current-password" required;
                label for="new_password" { "New password " span.muted { "(at least 8 characters)" } }
                input #new_password type="password" name="new_password" autocomplete="new-password" required minlength="8";
                button.primary type="submit" { "Change password" }
            }
        }
    }
}

fn sessions_section(s: &Session, sessions: &[SessionInfo]) -> Markup {
    let current = s.id();
    html! {
        section.card.sessions-card aria-labelledby="sessions-h" {
            h2 #sessions-h { "Sessions" }
            p.muted { "Where you are logged in. Log out any you do not recognise, then change your password." }
            div.table-scroll {
                table #sessions {
                    thead { tr {
                        th scope="col" { "Device" } th scope="col" { "IP address" }
                        th scope="col" { "Logged in" } th scope="col" { "Last seen" }
                        th scope="col" { span.visually-hidden { "Action" } }
                    } }
                    tbody {
                        @for row in sessions {
                            @let id = hex::encode(&row.token_hash);
                            tr {
                                td {
                                    (row.device.as_deref().unwrap_or("Unknown device"))
                                    @if row.with_key { " " span.muted { "(API key log-in)" } }
                                }
                                td { code { (row.ip.as_deref().unwrap_or("unknown")) } }
                                td { (when(row.created_at)) }
                                td { @if let Some(t) = row.last_seen_at { (when(t)) } @else { "—" } }
                                td {
                                    @if id == current {
                                        span.badge.badge-current { "This browser" }
                                    } @else {
                                        form method="post" action=(paths::account_session_end(&id)) {
                                            (csrf_field(s))
                                            button.danger type="submit" { "Log out" }
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
}

fn delete_section(s: &Session) -> Markup {
    html! {
        section.card.danger-zone aria-labelledby="delete-h" {
            h2 #delete-h { "Delete account" }
            p {
                "Removes your API keys, sessions, runs and their results, saved states, and the \
                 models you uploaded (library models and files others also uploaded stay). Your \
                 credits are lost. Records of purchases and usage are kept for accounting, \
                 without your name or email. This cannot be undone."
            }
            form method="post" action=(paths::ACCOUNT_DELETE) {
                (csrf_field(s))
                label for="delete_password" { "Your password, to confirm" }
                input #delete_password type="password" name="password" autocomplete="current-password" required;
                button.danger type="submit" { "Delete my account" }
            }
        }
    }
}

#[handler]
pub async fn page(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Query(q): Query<PageQuery>,
) -> Result<Response, WebError> {
    let notice = q.done.map(|d| ("success", d.notice()));
    render(&state, &s, StatusCode::OK, notice).await
}

/// Back to the page, saying what was done.
fn done(what: Done) -> Response {
    see_other(&with_query(paths::ACCOUNT, [("done", what.as_str())]))
}

/// The page again with the error above it, at the error's status (a 429 says when to retry).
async fn failed(state: &State, s: &Session, err: AppError) -> Result<Response, WebError> {
    let retry_after = match &err {
        AppError::RateLimited(wait) => Some(crate::auth::rate_limit::retry_after_secs(*wait)),
        _ => None,
    };
    match WebError::from(err) {
        WebError::Status(status, message) => {
            let mut resp = render(state, s, status, Some(("error", &message))).await?;
            if let Some(secs) = retry_after {
                resp.headers_mut().insert("Retry-After", secs.into());
            }
            Ok(resp)
        }
        other => Err(other),
    }
}

#[derive(Deserialize)]
pub struct NameForm {
    #[serde(default)]
    name: String,
}

#[handler]
pub async fn rename(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Form(form): Form<NameForm>,
) -> Result<Response, WebError> {
    match account_settings::rename(&state, &s.user.id, &form.name).await {
        Ok(()) => Ok(done(Done::Renamed)),
        Err(e) => failed(&state, &s, e).await,
    }
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
}

/// Checking the current password is a guess like a log-in: it counts against the same
/// per-address limit.
#[handler]
pub async fn change_password(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    ClientIp(ip): ClientIp,
    Form(form): Form<PasswordForm>,
) -> Result<Response, WebError> {
    let result = async {
        crate::domain::accounts::throttle(&state, ip)?;
        account_settings::change_password(
            &state,
            &s.user.id,
            &form.current_password,
            &form.new_password,
            s.token_hash().to_vec(),
        )
        .await
    }
    .await;
    match result {
        Ok(_) => Ok(done(Done::PasswordChanged)),
        Err(e) => failed(&state, &s, e).await,
    }
}

#[handler]
pub async fn end_session(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    if id == s.id() {
        // This browser logs out with the log-out button, which also forgets the cookie.
        return failed(
            &state,
            &s,
            AppError::Invalid("to end this session, log out".into()),
        )
        .await;
    }
    match account_settings::end_session(&state, &s.user.id, &id).await {
        Ok(()) => Ok(done(Done::SessionEnded)),
        Err(e) => failed(&state, &s, e).await,
    }
}

#[derive(Deserialize)]
pub struct DeleteForm {
    #[serde(default)]
    password: String,
}

/// Deletes the account, forgets the cookie, and says so on the home page.
#[handler]
pub async fn delete(
    state: Data<&State>,
    CurrentSession(s): CurrentSession,
    ClientIp(ip): ClientIp,
    Form(form): Form<DeleteForm>,
) -> Result<Response, WebError> {
    let result = async {
        crate::domain::accounts::throttle(&state, ip)?;
        account_settings::delete_account(&state, &s.user.id, &form.password).await
    }
    .await;
    if let Err(e) = result {
        return failed(&state, &s, e).await;
    }
    let mut resp = see_other(&with_query(paths::HOME, [("account", "deleted")]));
    let cookie = session::removal_cookie(&state.config);
    resp.headers_mut().append(
        "Set-Cookie",
        cookie
            .to_string()
            .parse()
            .expect("a cookie is a valid header"),
    );
    Ok(resp)
}
