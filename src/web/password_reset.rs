//! "Forgot password?": how to get a reset link on a server that sends no email, and the page
//! a link opens to set a new password.

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use poem::{Response, handler};
use serde::Deserialize;

use super::error::WebError;
use super::layout::{self, Nav};
use super::{html, paths};
use crate::domain::error::AppError;
use crate::domain::password_reset;
use crate::request::ClientIp;
use crate::state::State;

/// The same page for every visitor. With mail: a form for the email; without: how to get a
/// link from the operator (it asks for no email, so it tells nobody whether an account exists).
#[handler]
pub fn forgot_page(state: Data<&State>) -> Response {
    html(StatusCode::OK, forgot_view(&state, None))
}

fn forgot_view(state: &State, sent: Option<&str>) -> Markup {
    let content = html! {
        section.auth-card {
            h1 { "Forgot your password?" }
            @if let Some(notice) = sent { (layout::alert("success", notice)) }
            @if state.config.smtp.is_some() {
                p { "Give the email of your account: we send a link to set a new password. It works once, for an hour." }
                form method="post" action=(paths::FORGOT_PASSWORD) {
                    label for="email" { "Email" }
                    input #email type="email" name="email" autocomplete="username" required;
                    button.primary type="submit" { "Send the link" }
                }
            } @else {
                p {
                    "This server sends no email, so it cannot mail you a link. Ask its operator \
                     for a reset link: they run "
                    code { "fmu-gateway admin reset-link --email <your email>" }
                    " and send you what it prints. A link works once, for an hour."
                }
            }
            p { a href=(paths::LOGIN) { "Back to log in" } }
        }
    };
    layout::page("Forgot password", Nav::None, None, content)
}

#[derive(Deserialize)]
pub struct ForgotForm {
    #[serde(default)]
    email: String,
}

/// The same answer whatever the email: the mail (or none) is sent after the answer, so its
/// timing does not tell either. The per-address limit on attempts applies as at log-in.
#[handler]
pub async fn forgot(
    state: Data<&State>,
    ClientIp(ip): ClientIp,
    Form(form): Form<ForgotForm>,
) -> Result<Response, WebError> {
    if state.config.smtp.is_none() {
        return Ok(html(StatusCode::OK, forgot_view(&state, None)));
    }
    if let Err(e) = crate::domain::accounts::throttle(&state, ip) {
        return Err(e.into());
    }
    let state = (*state).clone();
    let view_state = state.clone();
    tokio::spawn(async move { password_reset::mail_link(&state, &form.email).await });
    Ok(html(
        StatusCode::OK,
        forgot_view(
            &view_state,
            Some("If an account exists for that email, we sent it a link. Check your inbox."),
        ),
    ))
}

#[derive(Deserialize, Default)]
pub struct ResetQuery {
    #[serde(default)]
    token: String,
}

fn reset_view(token: &str, error: Option<&str>) -> Markup {
    let content = html! {
        section.auth-card {
            h1 { "Set a new password" }
            @if let Some(e) = error { (layout::alert("error", e)) }
            form method="post" action=(paths::RESET_PASSWORD) {
                input type="hidden" name="token" value=(token);
                label for="password" { "New password " span.muted { "(at least 8 characters)" } }
                input #password type="password" name="password" autocomplete="new-password" required minlength="8";
                button.primary type="submit" { "Set password" }
            }
            p.muted { "Every session of the account is logged out when the password changes." }
        }
    };
    layout::page("Set a new password", Nav::None, None, content)
}

/// The page a link opens: the form, or why the link does not work.
#[handler]
pub async fn reset_page(
    state: Data<&State>,
    Query(q): Query<ResetQuery>,
) -> Result<Response, WebError> {
    match password_reset::check(&state, &q.token).await {
        Ok(()) => Ok(html(StatusCode::OK, reset_view(&q.token, None))),
        Err(e) => failed(&q.token, e),
    }
}

#[derive(Deserialize)]
pub struct ResetForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    password: String,
}

#[handler]
pub async fn reset(
    state: Data<&State>,
    ClientIp(ip): ClientIp,
    Form(form): Form<ResetForm>,
) -> Result<Response, WebError> {
    let result = async {
        crate::domain::accounts::throttle(&state, ip)?;
        password_reset::reset(&state, &form.token, &form.password).await
    }
    .await;
    if let Err(e) = result {
        return failed(&form.token, e);
    }
    let content = html! {
        section.auth-card {
            h1 { "Your password was changed" }
            (layout::alert("success", "Every session of the account was logged out."))
            p { a.button.primary href=(paths::LOGIN) { "Log in" } }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page("Password changed", Nav::None, None, content),
    ))
}

/// The form again with the error, at its status.
fn failed(token: &str, err: AppError) -> Result<Response, WebError> {
    match WebError::from(err) {
        WebError::Status(status, message) => Ok(html(status, reset_view(token, Some(&message)))),
        other => Err(other),
    }
}
