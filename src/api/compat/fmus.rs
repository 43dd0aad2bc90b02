//! Compatibility routes for FMUs that existing clients call: `POST /fmus`,
//! `GET /fmus/{id}/variables`, `GET /fmus/by-hash/{sha256}`, `GET /library?query=`.

use poem::http::StatusCode;
use poem::web::{Data, Json, Multipart, Path, Query};
use poem::{IntoResponse, Response, handler};
use serde::{Deserialize, Serialize};

use super::Caller;
use crate::api::auth::{ManageFmus, ReadFmus};
use crate::api::error::ApiError;
use crate::domain::fmus::{self, FmuRecord, Stored};
use crate::state::State;

#[derive(Serialize)]
struct FmuRef {
    id: String,
    fmi_version: String,
    model_name: String,
    guid: String,
    sha256: String,
}

impl From<FmuRecord> for FmuRef {
    fn from(r: FmuRecord) -> Self {
        FmuRef {
            id: r.id.to_string(),
            fmi_version: r.fmi_version,
            model_name: r.model_name,
            guid: r.info.instantiation_token,
            sha256: r.id.to_string(),
        }
    }
}

/// `POST /fmus` (multipart, field `file`).
#[handler]
pub async fn upload(
    state: Data<&State>,
    caller: Caller<ManageFmus>,
    mut form: Multipart,
) -> Result<Response, ApiError> {
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("the multipart body is malformed: {e}")))?
    {
        if field.name() != Some("file") {
            continue;
        }
        let name = fmus::upload_name(field.file_name());
        let file =
            fmus::receive(&state, &caller.principal.user_id, field.into_async_read()).await?;
        let (record, stored) = fmus::add_upload(
            &state,
            &caller.principal.user_id,
            file,
            &name,
            fmus::Strictness::Strict,
        )
        .await?;
        let status = if stored == Stored::Created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        };
        return Ok(Json(FmuRef::from(record))
            .with_status(status)
            .into_response());
    }
    Err(ApiError::bad_request(
        "send the FMU as a multipart field named 'file'",
    ))
}

#[derive(Serialize)]
struct VariableOut {
    name: String,
    causality: String,
    variability: String,
    #[serde(rename = "declaredType")]
    declared_type: String,
}

/// `GET /fmus/{id}/variables`.
#[handler]
pub async fn variables(
    state: Data<&State>,
    caller: Caller<ReadFmus>,
    Path(id): Path<String>,
) -> Result<Json<Vec<VariableOut>>, ApiError> {
    let record = fmus::resolve(&state, &caller.principal.user_id, &id).await?;
    Ok(Json(
        record
            .info
            .variables
            .into_iter()
            .map(|v| VariableOut {
                name: v.name,
                causality: v.causality,
                variability: v.variability,
                declared_type: v.r#type,
            })
            .collect(),
    ))
}

/// `GET /fmus/by-hash/{sha256}`.
#[handler]
pub async fn by_hash(
    state: Data<&State>,
    caller: Caller<ReadFmus>,
    Path(sha): Path<String>,
) -> Result<Json<FmuRef>, ApiError> {
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(
            "a SHA-256 is 64 hexadecimal characters",
        ));
    }
    Ok(Json(
        fmus::resolve(&state, &caller.principal.user_id, &sha)
            .await?
            .into(),
    ))
}

#[derive(Deserialize)]
pub struct LibraryQuery {
    query: Option<String>,
}

#[derive(Serialize)]
struct LibraryEntry {
    id: String,
    model_name: String,
    fmi_version: String,
    description: Option<String>,
    sha256: String,
    interfaces: Vec<&'static str>,
}

/// `GET /library?query=` for API clients: the built-in models and the caller's uploads.
#[handler]
pub async fn library(
    state: Data<&State>,
    caller: Caller<ReadFmus>,
    Query(q): Query<LibraryQuery>,
) -> Result<Json<Vec<LibraryEntry>>, ApiError> {
    let records = fmus::list(&state, &caller.principal.user_id, q.query.as_deref()).await?;
    Ok(Json(
        records
            .into_iter()
            .map(|r| LibraryEntry {
                id: r.library_id.clone().unwrap_or_else(|| r.id.to_string()),
                interfaces: [
                    r.info.co_simulation.as_ref().map(|_| "cs"),
                    r.info.model_exchange.as_ref().map(|_| "me"),
                ]
                .into_iter()
                .flatten()
                .collect(),
                model_name: r.model_name,
                fmi_version: r.fmi_version,
                description: r.info.description,
                sha256: r.id.to_string(),
            })
            .collect(),
    ))
}

#[derive(Serialize)]
struct RegistryList {
    items: Vec<FmuRef>,
}

/// `GET /registry/fmus` (an old route): the caller's uploaded models as `{items: [...]}`.
#[handler]
pub async fn registry_list(
    state: Data<&State>,
    caller: Caller<ReadFmus>,
) -> Result<Json<RegistryList>, ApiError> {
    let records = fmus::list(&state, &caller.principal.user_id, None).await?;
    Ok(Json(RegistryList {
        items: records
            .into_iter()
            .filter(|r| r.library_id.is_none())
            .map(FmuRef::from)
            .collect(),
    }))
}
