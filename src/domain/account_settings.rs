//! What a logged-in user can change about their own account: their name, their password,
//! their browser sessions, and whether the account exists at all.

use crate::auth::password;
use crate::domain::error::{AppError, AppResult};
use crate::domain::ids::UserId;
use crate::domain::{NewPassword, parse_name};
use crate::state::State;
use crate::store::deletion::Refused;
use crate::store::sessions::SessionInfo;

/// Sets the display name (empty clears it).
pub async fn rename(state: &State, user_id: &UserId, name: &str) -> AppResult<()> {
    let name = parse_name(Some(name))?;
    state.store.set_name(user_id, name).await?;
    Ok(())
}

/// Checks the account's current password: argon2 as at log-in, so a wrong one takes as long
/// as a right one. An account without a password (created over the API with an email alone)
/// has none to confirm with and is refused.
async fn confirm_password(state: &State, user_id: &UserId, given: &str) -> AppResult<()> {
    let stored = state.store.password_hash(user_id).await?;
    if password::verify(&state.hashers, given.to_string(), stored).await {
        Ok(())
    } else {
        Err(AppError::Invalid(
            "the current password is not right".into(),
        ))
    }
}

/// Sets a new password after checking the current one, and ends every other session of the
/// user (this one, `keep`, stays logged in). Returns how many sessions were ended.
pub async fn change_password(
    state: &State,
    user_id: &UserId,
    current: &str,
    new: &str,
    keep: Vec<u8>,
) -> AppResult<usize> {
    let new = NewPassword::parse(new)?;
    confirm_password(state, user_id, current).await?;
    let hash = password::hash(&state.hashers, new.expose().to_string()).await?;
    let ended = state.store.change_password(user_id, hash, keep).await?;
    tracing::info!(%user_id, sessions_ended = ended, "password changed");
    Ok(ended)
}

/// The user's live browser sessions, most recently used first.
pub async fn sessions(state: &State, user_id: &UserId) -> AppResult<Vec<SessionInfo>> {
    Ok(state.store.user_sessions(user_id).await?)
}

/// Ends one of the user's sessions, named by the hex of its token hash (what the account
/// page lists). Someone else's session, or one already over, is not found.
pub async fn end_session(state: &State, user_id: &UserId, id_hex: &str) -> AppResult<()> {
    let hash = hex::decode(id_hex).map_err(|_| AppError::NotFound("session"))?;
    if state.store.end_user_session(user_id, hash).await? {
        Ok(())
    } else {
        Err(AppError::NotFound("session"))
    }
}

/// Deletes the account after checking its password: sessions, keys, runs and their result
/// files, saved states, and uploads nobody else owns go; the ledger, usage and purchases stay
/// under the cleared user row (see `store::deletion`), and the email is free again.
pub async fn delete_account(state: &State, user_id: &UserId, password: &str) -> AppResult<()> {
    confirm_password(state, user_id, password).await?;
    let removed = match state
        .store
        .delete_account(user_id, crate::store::now_ms())
        .await?
    {
        Ok(removed) => removed,
        Err(Refused::RunsInProgress(n)) => {
            return Err(AppError::Conflict(format!(
                "{n} of your runs or sweeps are still in progress: cancel them or wait for \
                 them to finish, then delete the account"
            )));
        }
        Err(Refused::NoAccount) => return Err(AppError::NotFound("account")),
    };
    for run in &removed.runs {
        if let Err(e) = super::runs::remove_result(state, run).await {
            tracing::warn!(run_id = %run, error = %e, "cannot remove a deleted account's results");
        }
    }
    for fmu in &removed.fmus {
        super::fmus::remove_files(state, fmu).await;
    }
    for sha in &removed.state_files {
        super::states::remove_bytes(state, sha).await;
    }
    for sweep in &removed.sweeps {
        super::sweeps::remove_trajectories(state, sweep).await;
    }
    tracing::info!(
        %user_id,
        runs = removed.runs.len(),
        uploads = removed.fmus.len(),
        "account deleted"
    );
    Ok(())
}
