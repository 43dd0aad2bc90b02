//! Who is making a request: passwords, browser sessions, API keys, CSRF, and rate limits.
//!
//! Handlers never parse credentials: the API face gets a [`Principal`] from its security
//! scheme, the HTML face a session from the session middleware. Both end up in the functions
//! here, so the rules (revocation, expiry, attenuation) live in one place.

pub mod csrf;
pub mod password;
pub mod rate_limit;
pub mod session;
pub mod tokens;

use crate::domain::ids::{KeyId, UserId};
use crate::domain::keys::KeyState;
use crate::state::State;
use crate::store::api_keys::KeyStatus;
use crate::store::{self, StoreError};
use tokens::{RequestFacts, TokenRejection};

/// How often `last_used_at` is written for a busy key. Writing on every request would turn
/// every read into a write; to-the-minute is what the keys page shows anyway.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    /// The API key used, `None` for a browser session.
    pub key_id: Option<KeyId>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no API key was sent: use `Authorization: Bearer <key>` or `X-API-Key: <key>`")]
    Missing,
    #[error("{0}")]
    Rejected(#[from] TokenRejection),
    #[error("this API key has been revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Verifies an API key for one request: signature, expiry and the holder's own checks
/// against `facts`, then that the key still exists, has not expired and is not revoked (in
/// the database on every request, so a revocation takes effect at once, for every token
/// attenuated from the key too).
pub async fn authenticate_key(
    state: &State,
    presented: String,
    facts: RequestFacts,
) -> Result<Principal, AuthError> {
    // A key seen before is a lookup; verifying one (an attenuated token's datalog, or a
    // key's first use) is CPU work for the blocking pool.
    let claims = match state.keys.cached(&presented) {
        Some(claims) => claims,
        None => {
            let st = state.clone();
            tokio::task::spawn_blocking(move || st.keys.verify(&presented, &facts))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??
        }
    };
    let now = store::now_ms();
    let status = live_key(state, &claims.key_id, &claims.user_id, now).await?;
    if status
        .last_used_at
        .is_none_or(|t| now - t >= LAST_USED_RESOLUTION_MS)
    {
        state.store.key_used(&claims.key_id).await?;
    }
    Ok(Principal {
        user_id: claims.user_id,
        key_id: Some(claims.key_id),
    })
}

/// Checks, before a request body is read, that a key is one of ours and still live: its
/// signature, and that it exists for its user, unrevoked and unexpired. The holder's own
/// checks run later, in [`authenticate_key`], with the request's facts.
pub async fn identify_key(state: &State, presented: String) -> Result<(), AuthError> {
    let claims = state.keys.identify(&presented)?;
    live_key(state, &claims.key_id, &claims.user_id, store::now_ms()).await?;
    Ok(())
}

/// The stored state of the key a token names: it must exist for the token's user and be
/// active (not revoked, not expired: expiry is also inside the token, and checked here too
/// because verified tokens are cached).
async fn live_key(
    state: &State,
    key_id: &KeyId,
    user_id: &UserId,
    now: i64,
) -> Result<KeyStatus, AuthError> {
    let Some(status) = state.store.key_status(key_id).await? else {
        return Err(AuthError::Rejected(TokenRejection::Invalid));
    };
    if status.user_id != *user_id {
        return Err(AuthError::Rejected(TokenRejection::Invalid));
    }
    match KeyState::of(status.revoked, status.expires_at, now) {
        KeyState::Active => Ok(status),
        KeyState::Revoked => Err(AuthError::Revoked),
        KeyState::Expired => Err(AuthError::Rejected(TokenRejection::Expired)),
    }
}

/// The API key in a request's headers: `Authorization: Bearer …` or `X-API-Key: …`.
pub fn key_from_headers(headers: &poem::http::HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(poem::http::header::AUTHORIZATION) {
        let value = value.to_str().ok()?.trim();
        let (scheme, token) = value.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_string());
    }
    headers
        .get("x-api-key")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().to_string())
}
