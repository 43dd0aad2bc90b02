//! Log in, sign up, log out.

use maud::{Markup, html};
use poem::http::StatusCode;
use poem::web::{Data, Form, Query};
use poem::{Request, Response, handler};
use serde::Deserialize;

use super::layout::{self, Nav, csrf_field};
use super::{CurrentSession, html, paths, see_other};
use crate::auth::session::{self, Origin, Session};
use crate::domain::accounts::{self, Registration};
use crate::domain::error::AppError;
use crate::domain::ids::{KeyId, UserId};
use crate::domain::signup;
use crate::request::ClientIp;
use crate::state::State;

#[derive(Deserialize, Default)]
pub struct LoginForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    api_key: String,
}

fn login_view(form: &LoginForm, error: Option<&str>) -> Markup {
    let content = html! {
        section.auth-card {
            h1 { "Log in" }
            @if let Some(e) = error { (layout::alert("error", e)) }
            form method="post" action=(paths::LOGIN) {
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="username" required value=(form.email);
                label for="password" { "Password" }
                input #password type="password" name="password" autocomplete="current-password" required;
                button.primary type="submit" { "Log in" }
            }
            p { a href=(paths::FORGOT_PASSWORD) { "Forgot password?" } }
            details.alt-login {
                summary { "Log in with an API key instead" }
                form method="post" action=(paths::LOGIN) {
                    label for="api_key" { "API key" }
                    input #api_key type="password" name="api_key" autocomplete="off" required placeholder="fmugw_…";
                    button type="submit" { "Log in with key" }
                }
            }
            p { "No account yet? " a href=(paths::REGISTER) { "Sign up" } }
        }
    };
    layout::page("Log in", Nav::None, None, content)
}

#[handler]
pub fn login_page(req: &Request) -> Response {
    if req.extensions().get::<Session>().is_some() {
        return see_other(paths::DASHBOARD);
    }
    html(StatusCode::OK, login_view(&LoginForm::default(), None))
}

/// The login form: email + password, or an API key.
/// Where a log-in or sign-up comes from, for the session it opens.
fn origin_of(req: &Request, ip: std::net::IpAddr) -> Origin {
    let agent = req
        .headers()
        .get("user-agent")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Origin {
        ip,
        device: session::describe_device(agent),
    }
}

#[handler]
pub async fn login_form(
    state: Data<&State>,
    req: &Request,
    ClientIp(ip): ClientIp,
    Form(form): Form<LoginForm>,
) -> Response {
    let state = *state;
    let result = async {
        accounts::throttle(state, ip)?;
        if !form.api_key.trim().is_empty() {
            let (user, principal) = accounts::login_with_key(state, &form.api_key).await?;
            Ok((user, principal.key_id))
        } else {
            let user = accounts::login_with_password(state, &form.email, &form.password).await?;
            Ok((user, None))
        }
    }
    .await;
    match result {
        Ok((user, key_id)) => {
            start_session(state, &user.id, key_id.as_ref(), &origin_of(req, ip)).await
        }
        Err(e) => form_error(e, |msg| login_view(&form, Some(msg))),
    }
}

#[derive(Deserialize, Default)]
pub struct RegisterForm {
    #[serde(default)]
    email: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

fn register_view(form: &RegisterForm, error: Option<&str>) -> Markup {
    let content = html! {
        section.auth-card {
            h1 { "Create your account" }
            p.muted { "New accounts start with free credits to run simulations." }
            @if let Some(e) = error { (layout::alert("error", e)) }
            form method="post" action=(paths::REGISTER) {
                label for="email" { "Email" }
                input #email type="email" name="email" autocomplete="email" required value=(form.email);
                label for="name" { "Name " span.muted { "(optional)" } }
                input #name type="text" name="name" autocomplete="name" maxlength="100" value=(form.name);
                label for="password" { "Password " span.muted { "(at least 8 characters)" } }
                input #password type="password" name="password" autocomplete="new-password" required minlength="8";
                button.primary type="submit" { "Sign up" }
            }
            p { "Already have an account? " a href=(paths::LOGIN) { "Log in" } }
        }
    };
    layout::page("Sign up", Nav::None, None, content)
}

#[handler]
pub fn register_page(req: &Request) -> Response {
    if req.extensions().get::<Session>().is_some() {
        return see_other(paths::DASHBOARD);
    }
    html(
        StatusCode::OK,
        register_view(&RegisterForm::default(), None),
    )
}

/// After a sign-up that got no free credits: the reason, and the way on.
fn withheld_view(state: &State) -> Markup {
    let content = html! {
        section.auth-card {
            h1 { "Your account is ready" }
            (layout::alert("info", &accounts::withheld_notice(state)))
            p { a.button.primary href=(paths::DASHBOARD) { "Go to your dashboard" } }
        }
    };
    layout::page("Account created", Nav::None, None, content)
}

#[handler]
pub async fn register_form(
    state: Data<&State>,
    req: &Request,
    ClientIp(ip): ClientIp,
    Form(form): Form<RegisterForm>,
) -> Response {
    let state = *state;
    if state.config.smtp.is_some() {
        return register_by_mail(state, ip, &form).await;
    }
    let result = async {
        accounts::throttle(state, ip)?;
        let reg = Registration {
            email: &form.email,
            password: Some(&form.password),
            name: Some(&form.name),
            first_key: None,
            from: Some(ip),
        };
        accounts::register(state, reg).await
    }
    .await;
    match result {
        Ok(done) if done.free_credits_withheld => {
            let mut resp = start_session(state, &done.user.id, None, &origin_of(req, ip)).await;
            if resp.status() == StatusCode::SEE_OTHER {
                // The account exists and is logged in; say why it has no credits before
                // going on to the dashboard.
                let page = html(StatusCode::CREATED, withheld_view(state));
                let cookies: Vec<_> = resp
                    .headers()
                    .get_all("Set-Cookie")
                    .iter()
                    .cloned()
                    .collect();
                resp = page;
                for c in cookies {
                    resp.headers_mut().append("Set-Cookie", c);
                }
            }
            resp
        }
        Ok(done) => start_session(state, &done.user.id, None, &origin_of(req, ip)).await,
        Err(e) => form_error(e, |msg| register_view(&form, Some(msg))),
    }
}

/// Sign-up where mail is configured: the same answer for a new address and a taken one, and
/// the link (or a note) goes by mail after it (`domain::signup`). Only what is wrong with the
/// form itself is said on the page.
async fn register_by_mail(state: &State, ip: std::net::IpAddr, form: &RegisterForm) -> Response {
    let started = async {
        accounts::throttle(state, ip)?;
        signup::start(state, &form.email, &form.password, &form.name, ip).await
    }
    .await;
    match started {
        Ok(started) => {
            let mailer = state.clone();
            tokio::spawn(async move { signup::mail(&mailer, started).await });
            html(StatusCode::OK, check_inbox_view())
        }
        Err(e) => form_error(e, |msg| register_view(form, Some(msg))),
    }
}

fn check_inbox_view() -> Markup {
    let content = html! {
        section.auth-card {
            h1 { "Check your inbox" }
            (layout::alert("success", "We sent a link to the address you gave. Open it within an hour to finish signing up."))
            p.muted { "No mail after a few minutes? Look in your spam folder, or sign up again." }
            p { "Already have an account? " a href=(paths::LOGIN) { "Log in" } }
        }
    };
    layout::page("Check your inbox", Nav::None, None, content)
}

#[derive(Deserialize)]
pub struct SignupLink {
    #[serde(default)]
    token: String,
}

fn confirm_view(token: &str, error: Option<&str>) -> Markup {
    let content = html! {
        section.auth-card {
            h1 { "Finish signing up" }
            @if let Some(e) = error {
                (layout::alert("error", e))
                p { a href=(paths::REGISTER) { "Sign up again" } " · " a href=(paths::LOGIN) { "Log in" } }
            } @else {
                p { "Create your account and log in." }
                // A button, not the link itself: mail scanners that open links must not use it.
                form method="post" action=(paths::CONFIRM_SIGNUP) {
                    input type="hidden" name="token" value=(token);
                    button.primary type="submit" { "Create my account" }
                }
            }
        }
    };
    layout::page("Finish signing up", Nav::None, None, content)
}

/// `GET /register/confirm?token=…`: the button that finishes a mailed sign-up, or why the
/// link does not work.
#[handler]
pub async fn confirm_page(state: Data<&State>, Query(q): Query<SignupLink>) -> Response {
    match signup::check(&state, &q.token).await {
        Ok(()) => html(StatusCode::OK, confirm_view(&q.token, None)),
        Err(e) => form_error(e, |msg| confirm_view(&q.token, Some(msg))),
    }
}

/// `POST /register/confirm`: the account is made and logged in.
#[handler]
pub async fn confirm(
    state: Data<&State>,
    req: &Request,
    ClientIp(ip): ClientIp,
    Form(link): Form<SignupLink>,
) -> Response {
    let state = *state;
    let result = async {
        accounts::throttle(state, ip)?;
        signup::finish(state, &link.token).await
    }
    .await;
    match result {
        Ok(done) => start_session(state, &done.user.id, None, &origin_of(req, ip)).await,
        Err(e) => form_error(e, |msg| confirm_view(&link.token, Some(msg))),
    }
}

async fn start_session(
    state: &State,
    user_id: &UserId,
    key_id: Option<&KeyId>,
    origin: &Origin,
) -> Response {
    match session::start(state, user_id, key_id, origin).await {
        Ok(cookie) => {
            let mut resp = see_other(paths::DASHBOARD);
            resp.headers_mut().append(
                "Set-Cookie",
                cookie
                    .to_string()
                    .parse()
                    .expect("a cookie is a valid header"),
            );
            resp
        }
        Err(e) => form_error(
            AppError::from(e),
            |msg| html! { (layout::alert("error", msg)) },
        ),
    }
}

/// Re-renders a form with the error above it, with the error's status.
pub(super) fn form_error(err: AppError, view: impl FnOnce(&str) -> Markup) -> Response {
    let retry_after = match &err {
        AppError::RateLimited(wait) => Some(crate::auth::rate_limit::retry_after_secs(*wait)),
        _ => None,
    };
    let web = super::error::WebError::from(err);
    let super::error::WebError::Status(status, message) = web else {
        return see_other(paths::LOGIN);
    };
    let mut resp = html(status, view(&message));
    if let Some(secs) = retry_after {
        resp.headers_mut().insert("Retry-After", secs.into());
    }
    resp
}

#[handler]
pub fn logout_page(CurrentSession(s): CurrentSession) -> Response {
    let content = html! {
        section.auth-card {
            h1 { "Log out" }
            form method="post" action=(paths::LOGOUT) {
                (csrf_field(&s))
                button.primary type="submit" { "Log out of this browser" }
            }
            form method="post" action=(paths::LOGOUT) {
                (csrf_field(&s))
                input type="hidden" name="everywhere" value="1";
                button type="submit" { "Log out everywhere" }
            }
        }
    };
    html(
        StatusCode::OK,
        layout::page("Log out", Nav::None, Some(&s), content),
    )
}

#[derive(Deserialize)]
pub struct LogoutForm {
    everywhere: Option<String>,
}

/// Ends this session, or with `everywhere` all of the user's sessions, and forgets the cookie.
#[handler]
pub async fn logout(state: Data<&State>, req: &Request, Form(form): Form<LogoutForm>) -> Response {
    if let Some(s) = req.extensions().get::<Session>() {
        let ended = if form.everywhere.is_some() {
            session::end_all(&state, &s.user.id).await.map(|_| ())
        } else {
            session::end(&state, s).await
        };
        if let Err(e) = ended {
            return form_error(
                AppError::from(e),
                |msg| html! { (layout::alert("error", msg)) },
            );
        }
    }
    let mut resp = see_other(paths::LOGIN);
    let cookie = session::removal_cookie(&state.config);
    resp.headers_mut().append(
        "Set-Cookie",
        cookie
            .to_string()
            .parse()
            .expect("a cookie is a valid header"),
    );
    resp
}
