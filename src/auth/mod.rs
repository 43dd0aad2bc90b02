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

use crate::state::State;
use crate::store::{self, StoreError};
use tokens::{RequestFacts, TokenRejection};

/// How often `last_used_at` is written for a busy key. Writing on every request would turn
/// every read into a write; to-the-minute is what the keys page shows anyway.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub user_id: String,
    /// The API key used, `None` for a browser session.
    pub key_id: Option<String>,
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
    let st = state.clone();
    state
        .store
        .run(move |conn| {
            let claims = match st.keys.verify(&presented, &facts) {
                Ok(claims) => claims,
                Err(rejection) => return Ok(Err(AuthError::Rejected(rejection))),
            };
            let now = store::now_ms();
            let status = match live_key(conn, &claims.key_id, &claims.user_id, now)? {
                Ok(status) => status,
                Err(e) => return Ok(Err(e)),
            };
            if status
                .last_used_at
                .is_none_or(|t| now - t >= LAST_USED_RESOLUTION_MS)
            {
                store::api_keys::touch(conn, &claims.key_id, now)?;
            }
            Ok(Ok(Principal {
                user_id: claims.user_id,
                key_id: Some(claims.key_id),
            }))
        })
        .await?
}

/// Checks, before a request body is read, that a key is one of ours and still live: its
/// signature, and that it exists for its user, unrevoked and unexpired. The holder's own
/// checks run later, in [`authenticate_key`], with the request's facts.
pub async fn identify_key(state: &State, presented: String) -> Result<(), AuthError> {
    let claims = state.keys.identify(&presented)?;
    state
        .store
        .run(move |conn| {
            Ok(live_key(conn, &claims.key_id, &claims.user_id, store::now_ms())?.map(|_| ()))
        })
        .await?
}

/// The stored state of the key a token names: it must exist for the token's user and be
/// active (not revoked, not expired: expiry is also inside the token, and checked here too
/// because verified tokens are cached).
fn live_key(
    conn: &rusqlite::Connection,
    key_id: &str,
    user_id: &str,
    now: i64,
) -> Result<Result<store::api_keys::KeyStatus, AuthError>, StoreError> {
    let Some(status) = store::api_keys::status(conn, key_id)? else {
        return Ok(Err(AuthError::Rejected(TokenRejection::Invalid)));
    };
    if status.user_id != user_id {
        return Ok(Err(AuthError::Rejected(TokenRejection::Invalid)));
    }
    Ok(
        match crate::domain::keys::KeyState::of(status.revoked, status.expires_at, now) {
            crate::domain::keys::KeyState::Active => Ok(status),
            crate::domain::keys::KeyState::Revoked => Err(AuthError::Revoked),
            crate::domain::keys::KeyState::Expired => {
                Err(AuthError::Rejected(TokenRejection::Expired))
            }
        },
    )
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
