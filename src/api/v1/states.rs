//! `/api/v1/states` and `/api/v1/runs/{id}/state`: saved FMU states (fmusim's
//! `--final-fmu-state-file` / `--initial-fmu-state-file`): download a run's, upload one,
//! list and delete yours. A run starts from one with `initial_state`.

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi, Tags};

use crate::api::auth::{Authed, ManageFmus, ReadRuns};
use crate::api::error::{OpError, declare_errors};
use crate::domain::ids::RunId;
use crate::domain::states;
use crate::state::State;
use crate::store::states::StateRow;

#[derive(Tags)]
enum Tag {
    /// Saved FMU states: a run's final state, to start other runs from.
    States,
}

/// A saved FMU state: whose FMU it belongs to and when it was saved. Only that FMU, through
/// the same FMI version and interface, can start from it.
#[derive(Object)]
#[oai(example)]
pub struct FmuState {
    /// `st_…`: what `initial_state` names (a run's id names the state it saved, too).
    pub id: String,
    /// The FMU it belongs to (its SHA-256).
    pub fmu_id: String,
    /// The FMI major version it was saved with: `2` or `3`.
    pub fmi_version: String,
    /// The interface it was saved through (`cs`).
    pub interface: String,
    /// The simulation time it holds: a run from it starts there.
    pub time: f64,
    /// Its size, counted against your storage quota.
    pub size_bytes: i64,
    /// SHA-256 of its bytes.
    pub sha256: String,
    /// The run that saved it (absent for an uploaded state).
    #[oai(skip_serializing_if_is_none)]
    pub source_run: Option<String>,
    pub created_at: String,
}

impl From<StateRow> for FmuState {
    fn from(row: StateRow) -> Self {
        FmuState {
            id: row.id,
            fmu_id: row.fmu_id,
            fmi_version: row.fmi_version,
            interface: row.interface,
            time: row.time,
            size_bytes: row.size_bytes,
            sha256: row.sha256,
            source_run: row.source_run.map(String::from),
            created_at: crate::api::time(row.created_at),
        }
    }
}

#[derive(ApiResponse)]
enum StateBytes {
    /// The state's bytes, as the FMU serialised them; `FMU-State-Time` is the simulation time
    /// it holds (what an upload of it gives as `time`).
    #[oai(status = 200, content_type = "application/octet-stream")]
    Bytes(
        Binary<Vec<u8>>,
        #[oai(header = "FMU-State-Time")] f64,
        #[oai(header = "FMU-State-Id")] String,
    ),
}

#[derive(ApiResponse)]
enum UploadedState {
    /// Stored (or you had these bytes for this FMU already: the same state).
    #[oai(status = 201)]
    Created(Json<FmuState>),
}

#[derive(ApiResponse)]
enum Deleted {
    #[oai(status = 204)]
    Deleted,
}

declare_errors! {
    /// `GET /runs/{id}/state`: an unknown run, or one that saved no state, is 404.
    GetRunStateErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND];
    /// `POST /states`: an unknown FMU is 404, one that cannot restore states (or an empty
    /// file, a time that is not finite) 422, a file over the size limit or the storage quota
    /// 413, one without a `Content-Length` 411. The body is taken as bytes whatever content
    /// type it names, but it must name one (415 without a `Content-Type`).
    UploadStateErrors: [
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        NOT_FOUND,
        LENGTH_REQUIRED,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        UNPROCESSABLE_ENTITY,
    ];
    /// `GET /states`.
    ListStatesErrors: [UNAUTHORIZED, FORBIDDEN];
    /// `DELETE /states/{id}`.
    DeleteStateErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND];
}

pub struct StatesApi;

#[OpenApi(tag = "Tag::States")]
impl StatesApi {
    /// The FMU state a run saved.
    ///
    /// A run created with `save_final_state` saves its FMU's state after the last step
    /// (fmusim's `--final-fmu-state-file`). These are its bytes; start another run from it
    /// with `initial_state` set to this run's id. 404 when the run saved none.
    #[oai(path = "/runs/:id/state", method = "get", operation_id = "getRunState")]
    async fn run_state(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
        id: Path<String>,
    ) -> Result<StateBytes, OpError<GetRunStateErrors>> {
        let (row, bytes) =
            states::of_run(&state, &auth.principal.user_id, &RunId::from(id.0)).await?;
        Ok(StateBytes::Bytes(Binary(bytes), row.time, row.id))
    }

    /// Uploads an FMU state file.
    ///
    /// The body is the state's bytes (`application/octet-stream`, with a `Content-Length`, at
    /// most 16 MiB), as fmusim's `--final-fmu-state-file` or `GET /runs/{id}/state` wrote
    /// them; `fmu` is the FMU it belongs to (an id or a library name) and `time` the
    /// simulation time it holds. The FMU must declare that it can get, set and serialise its
    /// state for Co-Simulation. The state counts against your storage quota.
    #[oai(path = "/states", method = "post", operation_id = "uploadState")]
    async fn upload(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageFmus>,
        /// The FMU the state belongs to: an upload's id or a library name.
        fmu: Query<String>,
        /// The simulation time the state holds.
        time: Query<f64>,
        body: Binary<Vec<u8>>,
    ) -> Result<UploadedState, OpError<UploadStateErrors>> {
        let row = states::upload(&state, &auth.principal.user_id, &fmu.0, time.0, body.0).await?;
        Ok(UploadedState::Created(Json(row.into())))
    }

    /// Your saved FMU states, newest first.
    ///
    /// Each names the FMU it belongs to and the simulation time it holds; start a run from
    /// one with `initial_state` set to its id.
    #[oai(path = "/states", method = "get", operation_id = "listStates")]
    async fn list(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadRuns>,
    ) -> Result<Json<Vec<FmuState>>, OpError<ListStatesErrors>> {
        let rows = states::list(&state, &auth.principal.user_id).await?;
        Ok(Json(rows.into_iter().map(Into::into).collect()))
    }

    /// Deletes one of your saved FMU states.
    ///
    /// Its storage is freed; runs that saved it keep their results but no longer their state.
    #[oai(path = "/states/:id", method = "delete", operation_id = "deleteState")]
    async fn delete(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageFmus>,
        id: Path<String>,
    ) -> Result<Deleted, OpError<DeleteStateErrors>> {
        states::delete(&state, &auth.principal.user_id, &id.0).await?;
        Ok(Deleted::Deleted)
    }
}
