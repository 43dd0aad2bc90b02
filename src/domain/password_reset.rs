//! Password reset links. With SMTP configured, "Forgot password?" mails one to the account's
//! address; without it, the operator makes one (`fmu-gateway admin reset-link`) and hands it
//! to the user. Whoever opens it may set a new password once, within an hour, and every
//! session of the account ends.

use crate::auth::password;
use crate::auth::session::{random_token, token_hash as hash};
use crate::domain::NewPassword;
use crate::domain::error::{AppError, AppResult};
use crate::state::State;

/// How long a link works.
pub const LINK_TTL_MS: i64 = 60 * 60 * 1000;

fn not_valid() -> AppError {
    AppError::Invalid(
        "this reset link does not work: it was used already, has expired (links last an hour) \
         or is incomplete. Ask for a new one."
            .into(),
    )
}

/// A new reset link for the account with this email, under the configured public URL.
pub async fn issue_link(state: &State, email: &str) -> AppResult<String> {
    let user = super::accounts::find_by_email(&state.store, email).await?;
    let token = random_token();
    let now = crate::store::now_ms();
    state
        .store
        .add_password_reset(&user.id, hash(&token), now, now + LINK_TTL_MS)
        .await?;
    tracing::info!(user_id = %user.id, "password reset link issued");
    Ok(crate::links::reset_password(
        &state.config.public_url,
        &token,
    ))
}

/// "Forgot password?" with mail: sends a reset link to `email` if it is an account's, else
/// nothing. Meant to run after the answer has gone (the caller spawns it), so neither the
/// answer nor its timing tells whether the account exists. At most a few mails per address
/// per hour, whoever asks.
pub async fn mail_link(state: &State, email: &str) {
    let Some(smtp) = &state.config.smtp else {
        return;
    };
    let Ok(address) = crate::domain::Email::parse(email) else {
        return;
    };
    if state
        .reset_limit
        .check(&address.normalized().to_string())
        .is_err()
    {
        tracing::info!("password reset mail not sent: too many for this address this hour");
        return;
    }
    let link = match issue_link(state, email).await {
        Ok(link) => link,
        Err(AppError::NotFound(_)) => return,
        Err(e) => {
            tracing::error!(error = %e, "cannot issue a password reset link");
            return;
        }
    };
    let body = format!(
        "Someone, hopefully you, asked to reset the password of your FMU Gateway account.\n\n\
         Open this link within an hour to set a new one (it works once):\n\n{link}\n\n\
         Setting it logs out every session of the account. If it was not you, ignore this \
         mail: your password stays as it is.\n"
    );
    if let Err(e) = crate::mail::send(
        smtp,
        address.as_str(),
        "Reset your FMU Gateway password",
        body,
    )
    .await
    {
        tracing::error!(error = %e, "cannot send a password reset mail");
    }
}

/// Whether the link still works (to show its form, or say why not).
pub async fn check(state: &State, token: &str) -> AppResult<()> {
    if state
        .store
        .password_reset_valid(hash(token), crate::store::now_ms())
        .await?
    {
        Ok(())
    } else {
        Err(not_valid())
    }
}

/// Uses the link: the new password is set and every session of the account ends.
pub async fn reset(state: &State, token: &str, new: &str) -> AppResult<()> {
    let new = NewPassword::parse(new)?;
    check(state, token).await?;
    let password_hash = password::hash(&state.hashers, new.expose().to_string()).await?;
    let user = state
        .store
        .use_password_reset(hash(token), crate::store::now_ms(), password_hash)
        .await?
        .ok_or_else(not_valid)?;
    tracing::info!(user_id = %user, "password reset");
    Ok(())
}
