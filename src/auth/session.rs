//! Server-side browser sessions.
//!
//! The cookie holds 256 random bits; the database keeps only their SHA-256, the user and the
//! session's CSRF token. Logging out deletes the row, so a copied cookie dies with it.

use poem::web::cookie::{Cookie, SameSite};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::domain::ids::{KeyId, UserId};
use crate::state::State;
use crate::store::sessions::OpenSession;
use crate::store::{self, StoreError, users::User};

/// A live session and its user, as the HTML face sees it.
#[derive(Clone, Debug)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    token_hash: Vec<u8>,
}

/// 256 random bits, hex.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// The cookie name. With `Secure` we use the `__Host-` prefix, which makes browsers refuse
/// the cookie unless it is Secure, host-only and `Path=/`.
pub fn cookie_name(config: &Config) -> &'static str {
    if config.secure_cookies {
        "__Host-fmugw_session"
    } else {
        "fmugw_session"
    }
}

/// Starts a session for the user; returns the cookie to set. `api_key_id` is the key the
/// user logged in with, if any: the session ends when that key is revoked or expires.
pub async fn start(
    state: &State,
    user_id: &UserId,
    api_key_id: Option<&KeyId>,
) -> Result<Cookie, StoreError> {
    let token = random_token();
    let csrf = random_token();
    let token_hash = hash(&token);
    let now = store::now_ms();
    let expires = now + state.config.session_ttl.as_millis() as i64;
    let session = OpenSession {
        token_hash,
        user_id: user_id.clone(),
        csrf_token: csrf,
        api_key_id: api_key_id.cloned(),
        created_at: now,
        expires_at: expires,
    };
    state.store.open_session(session).await?;
    Ok(session_cookie(&state.config, token))
}

/// The live session for a cookie value, extending it when it is past half its lifetime.
pub async fn find(state: &State, token: &str) -> Result<Option<Session>, StoreError> {
    if token.len() != 64 {
        return Ok(None);
    }
    let token_hash = hash(token);
    let ttl = state.config.session_ttl.as_millis() as i64;
    let found = state.store.live_session(token_hash.clone(), ttl).await?;
    Ok(found.map(|(user, csrf_token)| Session {
        user,
        csrf_token,
        token_hash,
    }))
}

/// Ends this session (logout).
pub async fn end(state: &State, session: &Session) -> Result<(), StoreError> {
    let token_hash = session.token_hash.clone();
    state.store.end_session(token_hash).await
}

/// Ends every session of the user ("log out everywhere").
pub async fn end_all(state: &State, user_id: &UserId) -> Result<usize, StoreError> {
    state.store.end_user_sessions(user_id).await
}

fn session_cookie(config: &Config, value: String) -> Cookie {
    let mut cookie = Cookie::new_with_str(cookie_name(config), value);
    cookie.set_http_only(true);
    cookie.set_same_site(SameSite::Lax);
    cookie.set_secure(config.secure_cookies);
    cookie.set_path("/");
    cookie.set_max_age(config.session_ttl);
    cookie
}

/// A cookie that makes the browser forget the session.
pub fn removal_cookie(config: &Config) -> Cookie {
    let mut cookie = session_cookie(config, String::new());
    cookie.set_max_age(std::time::Duration::ZERO);
    cookie
}

/// Live browser sessions opened with each of the user's keys (for the keys page).
pub async fn live_by_key(
    state: &State,
    user_id: &UserId,
) -> Result<std::collections::HashMap<KeyId, i64>, StoreError> {
    let rows = state.store.sessions_by_key(user_id).await?;
    Ok(rows.into_iter().collect())
}
