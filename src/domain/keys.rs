//! API keys: create (the secret is returned once, here, and never stored), list, revoke.

use std::time::SystemTime;

use crate::domain::error::{AppError, AppResult};
use crate::domain::ids::{KeyId, UserId};
use crate::domain::parse_key_label;
use crate::state::State;
use crate::store::Store;
use crate::store::{self, api_keys::KeyRow};

/// Whether a key can be used now: the one rule the authenticator, the keys page, the API
/// and the dashboard all apply (a key is live until it is revoked or its expiry passes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    Active,
    Revoked,
    Expired,
}

impl KeyState {
    /// The state of a key revoked or not, with its expiry (ms since the epoch), at `now`.
    pub fn of(revoked: bool, expires_at: Option<i64>, now: i64) -> KeyState {
        if revoked {
            KeyState::Revoked
        } else if expires_at.is_some_and(|at| at <= now) {
            KeyState::Expired
        } else {
            KeyState::Active
        }
    }

    /// The state of a listed key now.
    pub fn of_row(key: &KeyRow) -> KeyState {
        KeyState::of(key.revoked_at.is_some(), key.expires_at, store::now_ms())
    }

    pub fn is_active(self) -> bool {
        self == KeyState::Active
    }

    /// The word shown to people.
    pub fn label(self) -> &'static str {
        match self {
            KeyState::Active => "Active",
            KeyState::Revoked => "Revoked",
            KeyState::Expired => "Expired",
        }
    }
}

/// A key just created: its row and the secret token, to show exactly once.
pub struct NewKey {
    pub row: KeyRow,
    pub token: String,
}

/// Mints a key for the user without storing it (registration stores it in its own
/// transaction; [`create`] stores it at once).
pub fn prepare(
    state: &State,
    user_id: &UserId,
    label: Option<&str>,
    expires: Option<SystemTime>,
) -> AppResult<NewKey> {
    let label = parse_key_label(label)?;
    let id = KeyId::generate();
    let token = state.keys.mint(user_id, &id, expires)?;
    let now = store::now_ms();
    let expires_at = expires.map(|t| {
        t.duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    });
    let row = KeyRow {
        id,
        user_id: user_id.clone(),
        label,
        created_at: now,
        expires_at,
        last_used_at: None,
        revoked_at: None,
        run_count: 0,
        primary_since: None,
    };
    Ok(NewKey { row, token })
}

pub async fn create(
    state: &State,
    user_id: &UserId,
    label: Option<&str>,
    expires: Option<SystemTime>,
) -> AppResult<NewKey> {
    let key = prepare(state, user_id, label, expires)?;
    state.store.add_key(key.row.clone()).await?;
    tracing::info!(%user_id, key_id = %key.row.id, "created an API key");
    Ok(key)
}

pub async fn list(store: &Store, user_id: &UserId) -> AppResult<Vec<KeyRow>> {
    Ok(store.user_keys(user_id).await?)
}

/// The user's primary key: the usable key they marked most recently, or with none marked,
/// the oldest usable key (the one made at sign-up, not a later "API login" key).
pub fn primary(keys: &[KeyRow]) -> Option<&KeyRow> {
    let usable = || keys.iter().filter(|k| KeyState::of_row(k).is_active());
    usable()
        .filter(|k| k.primary_since.is_some())
        .max_by_key(|k| k.primary_since)
        .or_else(|| usable().min_by_key(|k| (k.created_at, k.id.as_str().to_string())))
}

/// Marks one of the user's usable keys as primary; another user's, revoked or expired key is
/// "not found".
pub async fn mark_primary(store: &Store, user_id: &UserId, key_id: &KeyId) -> AppResult<KeyRow> {
    store
        .mark_primary_key(user_id, key_id)
        .await?
        .ok_or(AppError::NotFound("API key"))
}

/// Revokes one of the user's keys; another user's key id is "not found", not "forbidden",
/// so ids cannot be probed.
pub async fn revoke(store: &Store, user_id: &UserId, key_id: &KeyId) -> AppResult<KeyRow> {
    let row = store
        .revoke_key(user_id, key_id)
        .await?
        .ok_or(AppError::NotFound("API key"))?;
    tracing::info!(%user_id, %key_id, "revoked an API key");
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::KeyState;

    #[test]
    fn a_key_is_active_until_revoked_or_past_its_expiry() {
        assert_eq!(KeyState::of(false, None, 10), KeyState::Active);
        assert_eq!(KeyState::of(false, Some(11), 10), KeyState::Active);
        assert_eq!(KeyState::of(false, Some(10), 10), KeyState::Expired);
        assert_eq!(KeyState::of(true, Some(11), 10), KeyState::Revoked);
        assert_eq!(KeyState::of(true, Some(1), 10), KeyState::Revoked);
    }
}
