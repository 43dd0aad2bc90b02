//! Sign-up confirmed by mail, so that the sign-up page says nothing about which addresses
//! have accounts.
//!
//! Where mail is configured, the page's answer to any well-formed sign-up is the same "check
//! your inbox", given after the same work (the password is hashed either way). What differs
//! goes by mail, to the address's owner only, after the answer has gone: a link that creates
//! the account (one use, an hour) for a new address; for a taken one, a note that someone
//! tried, with the way to log in or reset the password. Without mail there is no channel to
//! the address's owner, so the page signs up at once as before and cannot hide a taken
//! address (README, Security model); the sign-up limits bound what can be learnt that way.

use crate::auth::session::{random_token, token_hash as hash};
use crate::auth::{self, password};
use crate::domain::accounts::{self, Registered};
use crate::domain::error::{AppError, AppResult};
use crate::domain::{Email, NewPassword, parse_name};
use crate::state::State;
use crate::store::pending_signups::PendingSignup;

/// How long a sign-up link works.
pub const LINK_TTL_MS: i64 = 60 * 60 * 1000;

fn not_valid() -> AppError {
    AppError::Invalid(
        "this sign-up link does not work: it was used already, has expired (links last an \
         hour) or is incomplete. Sign up again."
            .into(),
    )
}

/// What a sign-up left to be finished by mail: checked and hashed, not yet an account.
pub struct Started {
    email: Email,
    signup: PendingSignup,
}

/// Checks a sign-up's details (the page shows what is wrong with them, which depends on the
/// form alone) and hashes its password, as a direct sign-up does.
pub async fn start(
    state: &State,
    email: &str,
    new_password: &str,
    name: &str,
    from: std::net::IpAddr,
) -> AppResult<Started> {
    let email = Email::parse(email)?;
    let new_password = NewPassword::parse(new_password)?;
    let name = parse_name(Some(name))?;
    accounts::check_signup_rate(state).await?;
    let password_hash = password::hash(&state.hashers, new_password.expose().to_string()).await?;
    let signup = PendingSignup {
        email: email.as_str().to_string(),
        name,
        password_hash,
        address: Some(auth::rate_limit::ClientKey::of(from).to_string()),
    };
    Ok(Started { email, signup })
}

/// Mails what the sign-up needs: its link for a new address, a note for a taken one. Meant to
/// run after the answer has gone (the caller spawns it). At most a few mails per address and
/// hour, whoever asks, as for password resets.
pub async fn mail(state: &State, started: Started) {
    let Some(smtp) = &state.config.smtp else {
        return;
    };
    let Started { email, signup } = started;
    let limit_key = format!("signup:{}", email.normalized());
    if state.reset_limit.check(&limit_key).is_err() {
        tracing::info!("sign-up mail not sent: too many for this address this hour");
        return;
    }
    let (subject, body) = match state.store.user_by_email(email.normalized()).await {
        Ok(Some(_)) => (
            "Someone tried to sign up with your address",
            format!(
                "Someone, perhaps you, tried to create an FMU Gateway account with this \
                 address, which already has one. No new account was made.\n\n\
                 Log in: {login}\nForgot your password? {forgot}\n\n\
                 If it was not you, ignore this mail.\n",
                login = crate::links::absolute(&state.config.public_url, crate::links::LOGIN),
                forgot =
                    crate::links::absolute(&state.config.public_url, crate::links::FORGOT_PASSWORD),
            ),
        ),
        Ok(None) => {
            let token = random_token();
            let now = crate::store::now_ms();
            if let Err(e) = state
                .store
                .add_pending_signup(hash(&token), signup, now, now + LINK_TTL_MS)
                .await
            {
                tracing::error!(error = %e, "cannot keep a sign-up for its link");
                return;
            }
            let link = crate::links::confirm_signup(&state.config.public_url, &token);
            (
                "Finish signing up to FMU Gateway",
                format!(
                    "Open this link within an hour to create your FMU Gateway account (it \
                     works once):\n\n{link}\n\nIf you did not sign up, ignore this mail: no \
                     account is made without it.\n"
                ),
            )
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot look up a sign-up's address");
            return;
        }
    };
    if let Err(e) = crate::mail::send(smtp, email.as_str(), subject, body).await {
        tracing::error!(error = %e, "cannot send a sign-up mail");
    }
}

/// Whether a sign-up link still works (to show its button, or say why not).
pub async fn check(state: &State, token: &str) -> AppResult<()> {
    let valid = state
        .store
        .pending_signup_valid(hash(token), crate::store::now_ms())
        .await?;
    if valid { Ok(()) } else { Err(not_valid()) }
}

/// Uses a sign-up link: the account is made (with its free credits, capped per address as
/// for any sign-up). An address that got an account meanwhile (two sign-ups, two links) is a
/// conflict, told only to whoever holds the address's mail.
pub async fn finish(state: &State, token: &str) -> AppResult<Registered> {
    let signup = state
        .store
        .take_pending_signup(hash(token), crate::store::now_ms())
        .await?
        .ok_or_else(not_valid)?;
    let email = Email::parse(&signup.email)?;
    accounts::create(
        state,
        &email,
        signup.name,
        Some(signup.password_hash),
        None,
        signup.address,
    )
    .await
    .map_err(|e| match e {
        AppError::Conflict(_) => AppError::Conflict(
            "this address has an account already: log in, or reset its password".into(),
        ),
        other => other,
    })
}
