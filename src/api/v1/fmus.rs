//! `/api/v1/fmus`: upload FMUs, list and inspect them (with the built-in library), delete.

use std::collections::HashMap;

use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::multipart::Upload;
use poem_openapi::{ApiResponse, Multipart, Object, OpenApi, Tags};

use crate::api::auth::{Authed, ManageFmus, ReadFmus};
use crate::api::error::{OpError, declare_errors};
use crate::api::v1::validation::{ValidationCode, ValidationReport};
use crate::domain::fmus::{self, FmuRecord, Stored};
use crate::domain::ids::FmuId;
use crate::fmi::describe::{self, ModelInfo};
use crate::fmi::validation;
use crate::state::State;

#[derive(Tags)]
enum Tag {
    /// FMUs: your uploads and the built-in library.
    Fmus,
}

#[derive(Object)]
pub struct FmuInterface {
    pub model_identifier: String,
    pub can_handle_variable_communication_step_size: bool,
    pub can_get_and_set_fmu_state: bool,
    /// With `can_get_and_set_fmu_state`: runs of this interface can save their final state
    /// (`save_final_state`) and start from a saved one (`initial_state`).
    pub can_serialize_fmu_state: bool,
    pub needs_completed_integrator_step: bool,
    pub provides_directional_derivatives: bool,
    pub has_event_mode: bool,
}

impl From<&describe::Interface> for FmuInterface {
    fn from(i: &describe::Interface) -> Self {
        FmuInterface {
            model_identifier: i.model_identifier.clone(),
            can_handle_variable_communication_step_size: i
                .can_handle_variable_communication_step_size,
            can_get_and_set_fmu_state: i.can_get_and_set_fmu_state,
            can_serialize_fmu_state: i.can_serialize_fmu_state,
            needs_completed_integrator_step: i.needs_completed_integrator_step,
            provides_directional_derivatives: i.provides_directional_derivatives,
            has_event_mode: i.has_event_mode,
        }
    }
}

#[derive(Object)]
pub struct DefaultExperiment {
    #[oai(skip_serializing_if_is_none)]
    pub start_time: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub stop_time: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub tolerance: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub step_size: Option<f64>,
}

#[derive(Object)]
#[oai(example)]
pub struct FmuVariable {
    pub name: String,
    pub value_reference: u32,
    /// `Float64`, `Int32`, `Boolean`… (FMI 3) or `Real`, `Integer`, `Boolean`… (FMI 2).
    #[oai(rename = "type")]
    pub type_: String,
    pub causality: String,
    pub variability: String,
    #[oai(skip_serializing_if_is_none)]
    pub initial: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub start: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub unit: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// The `min` the variable declares (numbers only); start values below it are refused.
    #[oai(skip_serializing_if_is_none)]
    pub min: Option<f64>,
    /// The `max` the variable declares (numbers only); start values above it are refused.
    #[oai(skip_serializing_if_is_none)]
    pub max: Option<f64>,
    /// An FMI 3 array's dimensions, outermost first (absent for a scalar). Its start value is
    /// a JSON array (flat, or nested as the shape); it is recorded element by element.
    #[oai(skip_serializing_if_is_none)]
    pub shape: Option<Vec<FmuDimension>>,
    /// An enumeration's items: start values and results name them.
    #[oai(skip_serializing_if_is_none)]
    pub items: Option<Vec<FmuItem>>,
    /// Other names for this variable, usable wherever its name is (`outputs`, `start_values`,
    /// `inputs`; a column recorded under an alias carries the alias's name). Always present,
    /// often empty. FMI 3: the variable's `<Alias>` elements. FMI 2: the other variables with
    /// the same value reference and type, which are also listed as variables themselves; they
    /// are listed as aliases of the first of them in file order that is not a derivative.
    pub aliases: Vec<FmuAlias>,
}

/// One dimension of an array variable.
#[derive(Object)]
#[oai(example)]
pub struct FmuDimension {
    /// Its size: fixed, or the start value of the structural parameter that sets it.
    #[oai(skip_serializing_if_is_none)]
    pub size: Option<u64>,
    /// The structural parameter that sets it (give it a start value to resize the array).
    #[oai(skip_serializing_if_is_none)]
    pub parameter: Option<String>,
}

/// An enumeration item.
#[derive(Object)]
#[oai(example)]
pub struct FmuItem {
    pub name: String,
    pub value: i64,
}

/// Another name for a variable.
#[derive(Object)]
#[oai(example)]
pub struct FmuAlias {
    pub name: String,
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// The unit this name is meant to be shown in (FMI 3: the `<Alias>`'s `displayUnit`; FMI 2:
    /// the alias variable's). Values recorded under the alias are in the variable's own unit,
    /// or in this one with `display_units`.
    #[oai(skip_serializing_if_is_none)]
    pub display_unit: Option<String>,
}

/// Something the upload checks accepted but the FMU's author may want to fix: a warning of
/// its validation report (`GET /fmus/{id}/validation` has the whole report).
#[derive(Object)]
#[oai(example)]
pub struct FmuWarning {
    pub code: ValidationCode,
    /// Says what was found and names the element or entry.
    pub message: String,
}

impl From<&validation::Problem> for FmuWarning {
    fn from(p: &validation::Problem) -> Self {
        FmuWarning {
            code: p.code.into(),
            message: match p.line {
                Some(line) => format!("line {line}, {}: {}", p.subject, p.message),
                None => p.message.clone(),
            },
        }
    }
}

/// An FMU with its model description.
#[derive(Object)]
#[oai(example)]
pub struct Fmu {
    /// SHA-256 of the file. Library models are also reachable as `lib:<Model>` (FMI 3) and
    /// `lib:<Model>@fmi2`.
    pub id: String,
    #[oai(skip_serializing_if_is_none)]
    pub library_id: Option<String>,
    pub model_name: String,
    pub fmi_version: String,
    pub instantiation_token: String,
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub generation_tool: Option<String>,
    pub size_bytes: i64,
    pub created_at: String,
    /// The name of the file you uploaded.
    #[oai(skip_serializing_if_is_none)]
    pub file_name: Option<String>,
    #[oai(skip_serializing_if_is_none)]
    pub co_simulation: Option<FmuInterface>,
    #[oai(skip_serializing_if_is_none)]
    pub model_exchange: Option<FmuInterface>,
    #[oai(skip_serializing_if_is_none)]
    pub default_experiment: Option<DefaultExperiment>,
    pub platforms: Vec<String>,
    pub units: Vec<String>,
    pub variables: Vec<FmuVariable>,
    /// The warnings of its validation report, found when the file was first checked (so a
    /// second upload of the same bytes shows them too); empty for a clean FMU.
    pub warnings: Vec<FmuWarning>,
    /// The model's `<LogCategories>`: what a run may enable with `log_categories`.
    pub log_categories: Vec<String>,
    /// The reference results the FMU carries (FMI-LS-REF), which a run names in
    /// `reference.fmu_reference`; only in `GET /fmus/{id}`, left out when there are none.
    #[oai(skip_serializing_if_is_none)]
    pub references: Option<Vec<FmuReference>>,
    /// Why the FMU's FMI-LS-REF manifest could not be read (its references are then unusable).
    #[oai(skip_serializing_if_is_none)]
    pub references_problem: Option<String>,
    /// The carried references run when the file was first uploaded (free of charge, 30 s
    /// each, 60 s in all), with the default tolerances: each one's verdict, or why it did not
    /// run. Only in `GET /fmus/{id}`; left out for an FMU without references.
    #[oai(skip_serializing_if_is_none)]
    pub upload_reference_checks: Option<Vec<UploadReferenceCheck>>,
}

/// One carried reference run at upload.
#[derive(Object)]
#[oai(example)]
pub struct UploadReferenceCheck {
    /// The reference's name (as in `references`).
    pub name: String,
    /// Its verdict, when it ran.
    #[oai(skip_serializing_if_is_none)]
    pub check: Option<super::runs::ReferenceCheck>,
    /// Why it did not run (it needs stimuli, the model refused its settings, time ran out).
    #[oai(skip_serializing_if_is_none)]
    pub error: Option<String>,
}

/// A reference result an FMU carries, with the experiment that reproduces it.
#[derive(Object)]
#[oai(example)]
pub struct FmuReference {
    /// Its experiment's name (or, for a bare result file, the file's path in the manifest).
    pub name: String,
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// The run's defaults when it names this reference.
    #[oai(skip_serializing_if_is_none)]
    pub start_time: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub stop_time: Option<f64>,
    /// The experiment's `stepSize`.
    #[oai(skip_serializing_if_is_none)]
    pub output_interval: Option<f64>,
    #[oai(skip_serializing_if_is_none)]
    pub tolerance: Option<f64>,
    /// Why it cannot be run here (its experiment needs parameters or stimuli).
    #[oai(skip_serializing_if_is_none)]
    pub unsupported: Option<String>,
}

impl From<crate::fmi::ls_ref::CarriedReference> for FmuReference {
    fn from(r: crate::fmi::ls_ref::CarriedReference) -> Self {
        FmuReference {
            name: r.name,
            description: r.description,
            start_time: r.start_time,
            stop_time: r.stop_time,
            output_interval: r.output_interval,
            tolerance: r.tolerance,
            unsupported: r.unsupported,
        }
    }
}

impl From<FmuRecord> for Fmu {
    fn from(r: FmuRecord) -> Self {
        let sizes = describe_sizes(&r.info);
        let ModelInfo {
            instantiation_token,
            description,
            generation_tool,
            co_simulation,
            model_exchange,
            default_experiment,
            units,
            variables,
            platforms,
            warnings,
            log_categories,
            validation,
            ..
        } = r.info;
        // Records stored before validation reports have their archive's warnings only.
        let warnings = match validation {
            Some(report) => report.warnings().map(Into::into).collect(),
            None => validation::archive_problems(&warnings)
                .iter()
                .map(Into::into)
                .collect(),
        };
        Fmu {
            id: r.id.to_string(),
            library_id: r.library_id,
            model_name: r.model_name,
            fmi_version: r.fmi_version,
            instantiation_token,
            description,
            generation_tool,
            size_bytes: r.size_bytes,
            created_at: crate::api::time(r.created_at),
            file_name: r.file_name,
            co_simulation: co_simulation.as_ref().map(Into::into),
            model_exchange: model_exchange.as_ref().map(Into::into),
            default_experiment: default_experiment.map(|e| DefaultExperiment {
                start_time: e.start_time,
                stop_time: e.stop_time,
                tolerance: e.tolerance,
                step_size: e.step_size,
            }),
            log_categories,
            platforms,
            units,
            variables: variables
                .into_iter()
                .map(|v| FmuVariable {
                    name: v.name,
                    value_reference: v.value_reference,
                    type_: v.r#type,
                    causality: v.causality,
                    variability: v.variability,
                    initial: v.initial,
                    start: v.start,
                    unit: v.unit,
                    description: v.description,
                    min: v.min,
                    max: v.max,
                    shape: (!v.shape.is_empty()).then(|| {
                        v.shape
                            .iter()
                            .map(|d| match d {
                                describe::Dimension::Fixed(n) => FmuDimension {
                                    size: Some(*n),
                                    parameter: None,
                                },
                                describe::Dimension::Parameter(p) => FmuDimension {
                                    size: sizes(p),
                                    parameter: Some(p.clone()),
                                },
                            })
                            .collect()
                    }),
                    items: (!v.items.is_empty()).then(|| {
                        v.items
                            .iter()
                            .map(|i| FmuItem {
                                name: i.name.clone(),
                                value: i.value,
                            })
                            .collect()
                    }),
                    aliases: v
                        .aliases
                        .into_iter()
                        .map(|a| FmuAlias {
                            name: a.name,
                            description: a.description,
                            display_unit: a.display_unit,
                        })
                        .collect(),
                })
                .collect(),
            warnings,
            references: None,
            references_problem: None,
            upload_reference_checks: None,
        }
    }
}

/// The start values of the model's structural parameters, by name: the sizes they give.
fn describe_sizes(info: &ModelInfo) -> impl Fn(&str) -> Option<u64> + use<> {
    let starts: HashMap<String, u64> = info
        .variables
        .iter()
        .filter(|v| v.causality == "structuralParameter")
        .filter_map(|v| Some((v.name.clone(), v.start.as_deref()?.trim().parse().ok()?)))
        .collect();
    move |name| starts.get(name).copied()
}

#[derive(Multipart)]
#[oai(deny_unknown_fields)]
pub struct FmuUpload {
    /// The `.fmu` file.
    pub file: Upload,
}

#[derive(ApiResponse)]
enum UploadResponse {
    /// Stored: the FMU is now among yours.
    #[oai(status = 201)]
    Created(Json<Fmu>),
    /// You had already uploaded these exact bytes: the same FMU is returned, unchanged.
    #[oai(status = 200)]
    Existing(Json<Fmu>),
}

#[derive(ApiResponse)]
enum DeleteResponse {
    #[oai(status = 204)]
    Deleted,
}

declare_errors! {
    /// `POST /fmus`: not an FMU we can run is 422, over the size limit or the storage quota
    /// 413, the data volume below its reserve 503.
    UploadFmuErrors: [
        BAD_REQUEST,
        UNAUTHORIZED,
        FORBIDDEN,
        LENGTH_REQUIRED,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        UNPROCESSABLE_ENTITY,
        SERVICE_UNAVAILABLE,
    ];
    /// `GET /fmus`.
    ListFmusErrors: [UNAUTHORIZED, FORBIDDEN];
    /// `GET /fmus/{id}`, `GET /fmus/{id}/validation` and `DELETE /fmus/{id}`.
    FmuByIdErrors: [BAD_REQUEST, UNAUTHORIZED, FORBIDDEN, NOT_FOUND];
}

pub struct FmusApi;

#[OpenApi(tag = "Tag::Fmus")]
impl FmusApi {
    /// Uploads an FMU (FMI 2.0 or 3.0 with a Linux x86-64 binary).
    ///
    /// Send a multipart form with the file in the field `file`, with a `Content-Length`. The
    /// archive is checked (paths, sizes, links; different bytes under one name are refused,
    /// identical copies are a warning) before anything is stored. Then it is validated:
    /// `modelDescription.xml` against the rules of fmusim's `validate`, and a smoke test of each
    /// interface in the sandbox (instantiate, initialise, one step, terminate). Errors refuse it
    /// (422 `invalid_fmu`, each problem with its code, line and column) unless `lenient=true`,
    /// which accepts what can still be read and run, as FMPy does with `validate=False`, and
    /// keeps the errors in its report (`GET /fmus/{id}/validation`). An unsafe archive, XML no
    /// parser reads or a missing Linux x86-64 binary is refused either way. The same bytes
    /// always give the same id (their SHA-256) and the same report: 201 when the FMU is new
    /// among yours, 200 when you had uploaded it before.
    #[oai(path = "/fmus", method = "post", operation_id = "uploadFmu")]
    async fn upload(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageFmus>,
        body: FmuUpload,
        /// Accept an FMU whose validation found errors (they are kept in its report).
        lenient: Query<Option<bool>>,
    ) -> Result<UploadResponse, OpError<UploadFmuErrors>> {
        let name = fmus::upload_name(body.file.file_name());
        let strictness = if lenient.0 == Some(true) {
            fmus::Strictness::Lenient
        } else {
            fmus::Strictness::Strict
        };
        let file =
            fmus::receive(&state, &auth.principal.user_id, body.file.into_async_read()).await?;
        let (record, stored) =
            fmus::add_upload(&state, &auth.principal.user_id, file, &name, strictness).await?;
        Ok(match stored {
            Stored::Created => UploadResponse::Created(Json(record.into())),
            Stored::AlreadyThere => UploadResponse::Existing(Json(record.into())),
        })
    }

    /// The built-in library and your uploads.
    ///
    /// `query` keeps the models whose name contains it (case-insensitive). Each entry is the
    /// FMU's metadata; `GET /fmus/{id}` adds its variables.
    #[oai(path = "/fmus", method = "get", operation_id = "listFmus")]
    async fn list(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadFmus>,
        query: Query<Option<String>>,
    ) -> Result<Json<Vec<Fmu>>, OpError<ListFmusErrors>> {
        let records = fmus::list(&state, &auth.principal.user_id, query.0.as_deref()).await?;
        Ok(Json(records.into_iter().map(Into::into).collect()))
    }

    /// One FMU with all its variables.
    ///
    /// `id` is an upload's id (its SHA-256), or a library name: `lib:<Model>` (FMI 3),
    /// `lib:<Model>@fmi2`, `msl:<Model>`.
    #[oai(path = "/fmus/:id", method = "get", operation_id = "getFmu")]
    async fn get(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadFmus>,
        id: Path<String>,
    ) -> Result<Json<Fmu>, OpError<FmuByIdErrors>> {
        let record = fmus::resolve(&state, &auth.principal.user_id, &id.0).await?;
        let carried = fmus::carried_references(&state, &record).await;
        let fmu_id = record.id.clone();
        let mut fmu = Fmu::from(record);
        match carried {
            Ok(list) if list.is_empty() => {}
            Ok(list) => fmu.references = Some(list.into_iter().map(Into::into).collect()),
            Err(problem) => fmu.references_problem = Some(problem),
        }
        if let Some(checks) = fmus::reference_checks(&state, &fmu_id).await {
            fmu.upload_reference_checks = Some(
                checks
                    .verdicts
                    .into_iter()
                    .map(|v| UploadReferenceCheck {
                        name: v.name,
                        check: v.check.map(Into::into),
                        error: v.error,
                    })
                    .collect(),
            );
            if fmu.references_problem.is_none() {
                fmu.references_problem = checks.problem;
            }
        }
        Ok(Json(fmu))
    }

    /// The FMU's validation report.
    ///
    /// Every problem found when the file was first checked, each with a severity, a stable
    /// code, the element or entry at fault and its line and column in `modelDescription.xml`,
    /// and the smoke test of each interface with its log and duration. An FMU you uploaded with
    /// `lenient=true` shows the errors it was accepted with.
    #[oai(
        path = "/fmus/:id/validation",
        method = "get",
        operation_id = "getFmuValidation"
    )]
    async fn validation(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ReadFmus>,
        id: Path<String>,
    ) -> Result<Json<ValidationReport>, OpError<FmuByIdErrors>> {
        let report = fmus::validation_report(&state, &auth.principal.user_id, &id.0).await?;
        Ok(Json((&report).into()))
    }

    /// Removes one of your uploads.
    ///
    /// Its files are deleted once no other account uses the same bytes, and your storage is
    /// freed. Library models are not yours to remove (404).
    #[oai(path = "/fmus/:id", method = "delete", operation_id = "deleteFmu")]
    async fn delete(
        &self,
        state: poem::web::Data<&State>,
        auth: Authed<ManageFmus>,
        id: Path<String>,
    ) -> Result<DeleteResponse, OpError<FmuByIdErrors>> {
        fmus::delete(&state, &auth.principal.user_id, &FmuId::from_hex(&id.0)).await?;
        Ok(DeleteResponse::Deleted)
    }
}
