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

impl Session {
    /// How the account page names this session: the hex of its token's hash (what the list
    /// of sessions shows; it cannot be turned back into the cookie).
    pub fn id(&self) -> String {
        hex::encode(&self.token_hash)
    }

    /// The hash of this session's token, to keep it when the others end.
    pub fn token_hash(&self) -> &[u8] {
        &self.token_hash
    }
}

/// Where a session is opened from, recorded so the user can tell their sessions apart.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The client's address, as the rate limits see it ([`crate::request::ClientIp`]).
    pub ip: std::net::IpAddr,
    /// "Browser on OS" ([`describe_device`]).
    pub device: String,
}

/// A short "Browser on OS" from a User-Agent header, enough to recognise one's own devices.
/// Order matters: Edge and Opera also say Chrome, and Chrome also says Safari.
pub fn describe_device(user_agent: &str) -> String {
    const BROWSERS: [(&str, &str); 10] = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("FxiOS/", "Firefox"),
        ("HeadlessChrome/", "Headless Chrome"),
        ("Chrome/", "Chrome"),
        ("CriOS/", "Chrome"),
        ("Safari/", "Safari"),
        ("curl/", "curl"),
        ("reqwest", "reqwest"),
    ];
    const SYSTEMS: [(&str, &str); 7] = [
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("CrOS", "ChromeOS"),
        ("Linux", "Linux"),
    ];
    let find = |table: &[(&str, &'static str)]| {
        table
            .iter()
            .find(|(needle, _)| user_agent.contains(needle))
            .map(|(_, name)| *name)
    };
    match (find(&BROWSERS), find(&SYSTEMS)) {
        (Some(b), Some(os)) => format!("{b} on {os}"),
        (Some(b), None) => b.to_string(),
        (None, Some(os)) => format!("A browser on {os}"),
        (None, None) => "Unknown device".to_string(),
    }
}

/// 256 random bits, hex.
pub fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// What is stored of a secret token (a session's, a reset or sign-up link's): its SHA-256,
/// so a copy of the database opens nothing.
pub fn token_hash(token: &str) -> Vec<u8> {
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
    origin: &Origin,
) -> Result<Cookie, StoreError> {
    let token = random_token();
    let csrf = random_token();
    let token_hash = token_hash(&token);
    let now = store::now_ms();
    let expires = now + state.config.session_ttl.as_millis() as i64;
    let session = OpenSession {
        token_hash,
        user_id: user_id.clone(),
        csrf_token: csrf,
        api_key_id: api_key_id.cloned(),
        created_at: now,
        expires_at: expires,
        device: origin.device.clone(),
        ip: origin.ip.to_string(),
    };
    state.store.open_session(session).await?;
    Ok(session_cookie(&state.config, token))
}

/// The live session for a cookie value, extending it when it is past half its lifetime.
pub async fn find(state: &State, token: &str) -> Result<Option<Session>, StoreError> {
    if token.len() != 64 {
        return Ok(None);
    }
    let token_hash = token_hash(token);
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

#[cfg(test)]
mod tests {
    use super::describe_device;

    #[test]
    fn devices_are_named_by_browser_and_system() {
        let cases = [
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
                "Safari on iOS",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
                "Chrome on macOS",
            ),
            ("curl/8.5.0", "curl"),
            ("", "Unknown device"),
        ];
        for (ua, want) in cases {
            assert_eq!(describe_device(ua), want, "{ua}");
        }
    }
}
