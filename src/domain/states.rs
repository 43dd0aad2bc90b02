//! Saved FMU states: what fmusim's `--final-fmu-state-file` writes and
//! `--initial-fmu-state-file` reads, kept for their owner.
//!
//! A state is saved by a run that asked for it (`save_final_state`) or uploaded. Its bytes are
//! kept content-addressed (`states/<sha256>` in the object store, shared by everyone who
//! has the same bytes); its record says whose it is and the FMU it belongs to — the FMU's
//! SHA-256, its instantiation token (FMI 2 guid), FMI version and interface — because the
//! bytes mean nothing to any other FMU, and restoring them into one is at best garbage. A run
//! from a state is refused unless the run's FMU is exactly that one. States count against
//! their owner's storage quota with their uploads; another user's state is not found.

use sha2::{Digest, Sha256};

use crate::domain::error::{AppError, AppResult};
use crate::domain::fmus::{self, FmuRecord};
use crate::domain::ids::{RunId, UserId};
use crate::format::Number;
use crate::objects::Key;
use crate::sim::fmu_state::{MAX_STATE_BYTES, SavedState};
use crate::sim::plan::{Problem, Problems};
use crate::sim::protocol::Interface;
use crate::sim::runner::SimError;
use crate::state::State;
use crate::store::states::{StateAdded, StateRow};

/// What a run asks of FMU states, as a face gives it: the state to start from (a run id,
/// whose saved state it is, or a state id) and whether to save the final one.
#[derive(Clone, Debug, Default)]
pub struct StateRequest {
    pub initial: Option<String>,
    pub save_final: bool,
}

/// The FMU a state belongs to.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    pub fmu_id: String,
    pub instantiation_token: String,
    /// The FMI major version, "2" or "3".
    pub fmi_version: String,
    pub interface: Interface,
}

impl Identity {
    pub fn of(record: &FmuRecord, interface: Interface) -> Identity {
        Identity {
            fmu_id: record.id.to_string(),
            instantiation_token: record.info.instantiation_token.clone(),
            fmi_version: major_version(&record.info.fmi_version).to_string(),
            interface,
        }
    }

    fn of_row(row: &StateRow) -> Identity {
        Identity {
            fmu_id: row.fmu_id.clone(),
            instantiation_token: row.instantiation_token.clone(),
            fmi_version: row.fmi_version.clone(),
            interface: if row.interface == "me" {
                Interface::Me
            } else {
                Interface::Cs
            },
        }
    }

    /// Why a state of `self` cannot be restored into `run`'s FMU and interface, if it cannot.
    fn mismatch(&self, run: &Identity) -> Option<String> {
        if self.fmu_id != run.fmu_id {
            Some(format!(
                "this state belongs to FMU {}, not to this run's FMU {}: a state can only be restored into the FMU that saved it",
                self.fmu_id, run.fmu_id
            ))
        } else if self.fmi_version != run.fmi_version {
            Some(format!(
                "this state was saved with FMI {}, and this run uses FMI {}",
                self.fmi_version, run.fmi_version
            ))
        } else if self.interface != run.interface {
            Some(format!(
                "this state was saved in a {} run, and this run is {}",
                self.interface.as_str(),
                run.interface.as_str()
            ))
        } else if self.instantiation_token != run.instantiation_token {
            Some("this state was saved by an FMU with another instantiation token".into())
        } else {
            None
        }
    }
}

/// "2" for "2.0", "3" for "3.0.1".
fn major_version(fmi_version: &str) -> &str {
    fmi_version.split('.').next().unwrap_or(fmi_version)
}

/// A state's id: it names the bytes for one FMU, so the same bytes saved for two FMUs (two
/// builds of one model can serialise alike) are two states.
fn state_id(fmu_id: &str, sha256: &str) -> String {
    let digest = Sha256::digest(format!("{fmu_id}:{sha256}").as_bytes());
    format!("st_{}", hex::encode(digest))
}

/// Puts the bytes in the object store under their SHA-256 unless already there (a put is
/// atomic: a reader never sees part of one).
async fn write_bytes(state: &State, sha256: &str, bytes: Vec<u8>) -> std::io::Result<()> {
    let key = Key::State(sha256.to_string());
    if state.objects.exists(&key).await? {
        return Ok(());
    }
    state.objects.put_bytes(&key, bytes.into()).await
}

/// Deletes a state's bytes from the object store (logged if it cannot).
pub(crate) async fn remove_bytes(state: &State, sha256: &str) {
    if let Err(e) = state.objects.delete(&Key::State(sha256.to_string())).await {
        tracing::warn!(sha256, error = %e, "cannot delete a state's bytes");
    }
}

/// Why a state could not be kept.
#[derive(Debug)]
enum KeepError {
    /// It would take the user past their storage quota (the message says by how much).
    OverQuota(String),
    /// Our disk or database failed.
    Fault(String),
}

/// Serialises the steps that add or remove a state's file together with its rows. Files are
/// shared by identical bytes: without it, a delete could find the bytes unused and remove the
/// file just after another user's save found it there and added its row (one server process
/// owns the data directory, so a process-wide lock covers every writer).
static FILES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Keeps `saved` as the user's state of the FMU `identity`, within their storage quota.
async fn keep(
    state: &State,
    user_id: &UserId,
    identity: &Identity,
    saved: &SavedState,
    source_run: Option<RunId>,
) -> Result<StateRow, KeepError> {
    let sha256 = hex::encode(Sha256::digest(&saved.bytes));
    let _files = FILES.lock().await;
    write_bytes(state, &sha256, saved.bytes.clone())
        .await
        .map_err(|e| KeepError::Fault(format!("writing the FMU state: {e}")))?;
    let row = StateRow {
        id: state_id(&identity.fmu_id, &sha256),
        user_id: user_id.clone(),
        sha256,
        fmu_id: identity.fmu_id.clone(),
        instantiation_token: identity.instantiation_token.clone(),
        fmi_version: identity.fmi_version.clone(),
        interface: identity.interface.as_str().to_string(),
        time: saved.time,
        size_bytes: saved.bytes.len() as i64,
        source_run,
        created_at: crate::store::now_ms(),
    };
    let quota = i64::try_from(state.config.storage_quota_bytes).unwrap_or(i64::MAX);
    match state.store.add_state(row.clone(), quota).await {
        Ok(StateAdded::Added(row)) => Ok(*row),
        Ok(StateAdded::OverQuota { used }) => {
            remove_file_if_unused(state, &row.sha256).await;
            Err(KeepError::OverQuota(over_quota(
                used,
                row.size_bytes,
                state.config.storage_quota_bytes,
            )))
        }
        Err(e) => Err(KeepError::Fault(e.to_string())),
    }
}

fn over_quota(used: i64, adding: i64, quota: u64) -> String {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1 << 20));
    format!(
        "this FMU state needs {} of storage, and your uploads and states already use {} of your {} quota: \
         delete states or models you no longer need",
        mib(adding.max(0) as u64),
        mib(used.max(0) as u64),
        mib(quota)
    )
}

/// Removes a state's file unless some user still has a state with those bytes.
async fn remove_file_if_unused(state: &State, sha256: &str) {
    if let Ok(false) = state.store.state_bytes_used(sha256).await {
        remove_bytes(state, sha256).await;
    }
}

/// Keeps the final state a run saved. A state that does not fit in the user's quota fails
/// the run as their request's doing (it is charged as the model's end would be); a disk or
/// database failure is the service's (refunded).
pub async fn keep_run_state(
    state: &State,
    user_id: &UserId,
    run_id: &RunId,
    identity: &Identity,
    saved: &SavedState,
) -> Result<(), SimError> {
    match keep(state, user_id, identity, saved, Some(run_id.clone())).await {
        Ok(_) => Ok(()),
        Err(KeepError::OverQuota(message)) => Err(SimError::Failed {
            reason: format!("the final FMU state was not kept: {message}"),
            log: String::new(),
        }),
        Err(KeepError::Fault(message)) => Err(SimError::Internal(message)),
    }
}

/// Uploads a state file (fmusim's `--final-fmu-state-file`, or one downloaded from a run)
/// for the user's FMU `fmu` (an id or library id), saved at simulation time `time`. States
/// are restored into Co-Simulation runs only (see [`crate::sim::fmu_state`]).
pub async fn upload(
    state: &State,
    user_id: &UserId,
    fmu: &str,
    time: f64,
    bytes: Vec<u8>,
) -> AppResult<StateRow> {
    let record = fmus::resolve(state, user_id, fmu).await?;
    let mut problems = Vec::new();
    if let Some(why) = crate::sim::fmu_state::cannot_serialise(&record.info) {
        problems.push(Problem::new("fmu", why));
    }
    if !time.is_finite() {
        problems.push(Problem::new(
            "time",
            format!("time must be a finite number, not {}", Number(time)),
        ));
    }
    if bytes.is_empty() {
        problems.push(Problem::new("body", "the state file is empty"));
    }
    if !problems.is_empty() {
        return Err(AppError::Problems(Problems(problems)));
    }
    if bytes.len() as u64 > MAX_STATE_BYTES {
        return Err(AppError::TooLarge(format!(
            "a state file may have at most {MAX_STATE_BYTES} bytes"
        )));
    }
    let identity = Identity::of(&record, Interface::Cs);
    let saved = SavedState { time, bytes };
    keep(state, user_id, &identity, &saved, None)
        .await
        .map_err(|e| match e {
            KeepError::OverQuota(m) => AppError::QuotaExceeded(m),
            KeepError::Fault(m) => AppError::Results(std::io::Error::other(m)),
        })
}

/// The user's state named by `reference` (a run id: the state that run saved; else a state
/// id), not found if it is not theirs.
async fn find(state: &State, user_id: &UserId, reference: &str) -> AppResult<StateRow> {
    let reference = reference.trim();
    let row = if reference.starts_with("run_") {
        state
            .store
            .run_state(user_id, &RunId::from(reference))
            .await?
    } else {
        state.store.user_state(user_id, reference).await?
    };
    row.ok_or(AppError::NotFound("state"))
}

/// The state to start a run of `record` through `interface` from: the user's, and saved by
/// exactly this FMU (a 422 on `initial_state` otherwise).
pub async fn initial_state(
    state: &State,
    user_id: &UserId,
    reference: &str,
    record: &FmuRecord,
    interface: Interface,
) -> AppResult<SavedState> {
    let row = find(state, user_id, reference).await?;
    if let Some(why) = Identity::of_row(&row).mismatch(&Identity::of(record, interface)) {
        return Err(AppError::Problems(Problems(vec![Problem::new(
            "initial_state",
            why,
        )])));
    }
    let bytes = read_bytes(state, &row).await?;
    Ok(SavedState {
        time: row.time,
        bytes,
    })
}

async fn read_bytes(state: &State, row: &StateRow) -> AppResult<Vec<u8>> {
    let key = Key::State(row.sha256.clone());
    Ok(state.objects.get_bytes(&key).await?.to_vec())
}

/// The state a run saved and its bytes; not found if the run saved none (or it was deleted).
pub async fn of_run(
    state: &State,
    user_id: &UserId,
    run_id: &RunId,
) -> AppResult<(StateRow, Vec<u8>)> {
    crate::domain::runs::get(&state.store, user_id, run_id).await?;
    let row = state
        .store
        .run_state(user_id, run_id)
        .await?
        .ok_or(AppError::NotFound("state"))?;
    let bytes = read_bytes(state, &row).await?;
    Ok((row, bytes))
}

/// The user's states, newest first.
pub async fn list(state: &State, user_id: &UserId) -> AppResult<Vec<StateRow>> {
    Ok(state.store.user_states(user_id).await?)
}

/// Deletes the user's state (its file too, once nobody has those bytes).
pub async fn delete(state: &State, user_id: &UserId, id: &str) -> AppResult<()> {
    let _files = FILES.lock().await;
    let (sha256, still_used) = state
        .store
        .remove_state(user_id, id)
        .await?
        .ok_or(AppError::NotFound("state"))?;
    if !still_used {
        remove_bytes(state, &sha256).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            fmu_id: "a".repeat(64),
            instantiation_token: "{token}".into(),
            fmi_version: "3".into(),
            interface: Interface::Cs,
        }
    }

    #[test]
    fn a_state_fits_only_the_fmu_version_and_interface_that_saved_it() {
        let saved = identity();
        assert_eq!(saved.mismatch(&identity()), None);
        let other_fmu = Identity {
            fmu_id: "b".repeat(64),
            ..identity()
        };
        assert!(
            saved
                .mismatch(&other_fmu)
                .unwrap()
                .contains("belongs to FMU")
        );
        let fmi2 = Identity {
            fmi_version: "2".into(),
            ..identity()
        };
        assert!(saved.mismatch(&fmi2).unwrap().contains("FMI 3"));
        let me = Identity {
            interface: Interface::Me,
            ..identity()
        };
        assert!(saved.mismatch(&me).unwrap().contains("cs run"));
        let token = Identity {
            instantiation_token: "{other}".into(),
            ..identity()
        };
        assert!(
            saved
                .mismatch(&token)
                .unwrap()
                .contains("instantiation token")
        );
    }

    #[test]
    fn the_same_bytes_for_two_fmus_are_two_states() {
        let sha = "c".repeat(64);
        assert_ne!(
            state_id(&"a".repeat(64), &sha),
            state_id(&"b".repeat(64), &sha)
        );
        assert_eq!(major_version("3.0.1"), "3");
        assert_eq!(major_version("2.0"), "2");
    }
}
