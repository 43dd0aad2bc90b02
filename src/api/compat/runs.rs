//! Compatibility routes for simulations that existing clients call: `POST /simulate`,
//! `GET /simulations/{run_id}`, `POST /execute_fmu`. The same run engine and credits as
//! `/api/v1/runs` underneath.

use std::collections::BTreeMap;

use poem::web::{Data, Json, Multipart, Path};
use poem::{Request, handler};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Caller;
use crate::api::auth::ReadRuns;
use crate::api::error::ApiError;
use crate::api::v1::runs::{RunCreate, Signal, new_run};
use crate::auth::AuthError;
use crate::domain::error::AppError;
use crate::domain::fmus;
use crate::domain::ids::RunId;
use crate::domain::runs::{self, RunStatus, Starter};
use crate::format::JsonNumber;
use crate::state::State;
use crate::store::runs::RunRow;

fn key_of(req: &Request) -> Result<String, ApiError> {
    crate::auth::key_from_headers(req.headers()).ok_or_else(|| AuthError::Missing.into())
}

fn idempotency_key(req: &Request) -> Option<String> {
    req.headers()
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(|k| k.trim().chars().take(255).collect())
        .filter(|k: &String| !k.is_empty())
}

#[derive(Deserialize)]
pub struct SimulateBody {
    fmu_id: String,
    stop_time: Option<f64>,
    step: Option<f64>,
    start_values: Option<BTreeMap<String, Value>>,
    input_signals: Option<Vec<SignalBody>>,
}

#[derive(Deserialize)]
struct SignalBody {
    name: String,
    t: Vec<f64>,
    u: Vec<f64>,
}

#[derive(Serialize)]
struct Summary {
    run_id: String,
    status: RunStatus,
    /// The last value of each recorded variable (`"NaN"`, `"Infinity"` or `"-Infinity"` for
    /// one that is not finite, as in the JSON results).
    key_results: BTreeMap<String, JsonNumber>,
    provenance: Value,
    artifacts: Value,
    summary_url: String,
    error: Option<String>,
    /// Whether the caller paid for the run, and why a failed run failed.
    charged: bool,
    failure_kind: Option<&'static str>,
}

/// `last_values`: the last value of each recorded variable (read from the stored result).
fn summary(state: &State, run: &RunRow, last_values: Vec<(String, f64)>) -> Summary {
    let key_results = last_values
        .into_iter()
        .map(|(name, v)| (name, JsonNumber(v)))
        .collect();
    let settings: Value = serde_json::from_str(&run.settings).unwrap_or(Value::Null);
    let base = &state.config.public_url;
    Summary {
        run_id: run.id.to_string(),
        status: run.status,
        key_results,
        provenance: serde_json::json!({
            "fmu_id": run.fmu_id,
            "fmu_sha256": run.fmu_id,
            "fmu_name": run.fmu_name,
            "settings": settings,
            "created_at": crate::domain::rfc3339_ms(run.created_at),
            "finished_at": run.finished_at.map(crate::domain::rfc3339_ms),
            "engine": format!("fmu-gateway {} (fmi-rs)", env!("CARGO_PKG_VERSION")),
        }),
        artifacts: serde_json::json!({
            "result_json": format!("{base}/api/v1/runs/{}/result", run.id),
            "result_csv": format!("{base}/api/v1/runs/{}/result?format=csv", run.id),
        }),
        summary_url: format!("{base}/simulations/{}", run.id),
        error: run.error.clone(),
        charged: run.charged,
        failure_kind: run.failure_kind.map(|k| k.as_str()),
    }
}

fn start_values(
    values: Option<BTreeMap<String, Value>>,
) -> Option<std::collections::HashMap<String, poem_openapi::types::Any<Value>>> {
    values.map(|m| {
        m.into_iter()
            .map(|(k, v)| (k, poem_openapi::types::Any(v)))
            .collect()
    })
}

/// `POST /simulate`.
#[handler]
pub async fn simulate(
    state: Data<&State>,
    req: &Request,
    body: Json<SimulateBody>,
) -> Result<Json<Summary>, ApiError> {
    let key = key_of(req)?;
    let body = body.0;
    let mut create = RunCreate::simple(
        body.fmu_id,
        body.stop_time,
        body.step,
        start_values(body.start_values),
    );
    create.inputs = body.input_signals.map(|s| {
        s.into_iter()
            .map(|s| Signal {
                name: crate::api::text::Text(s.name),
                t: s.t,
                u: s.u,
            })
            .collect()
    });
    let (run, output) = runs::start_and_wait(
        &state,
        Starter::Key(key),
        new_run(create, None)?,
        idempotency_key(req),
    )
    .await?;
    Ok(Json(summary(&state, &run, last_values(output).await?)))
}

/// `GET /simulations/{run_id}`.
#[handler]
pub async fn simulation(
    state: Data<&State>,
    caller: Caller<ReadRuns>,
    Path(id): Path<String>,
) -> Result<Json<Summary>, ApiError> {
    let run = runs::get(&state.store, &caller.principal.user_id, &RunId::from(id)).await?;
    let output = runs::kept_result(&state, &run).await?;
    Ok(Json(summary(&state, &run, last_values(output).await?)))
}

/// The last value of each variable of a stored result (none without one): a few positioned
/// reads, whatever the result's size.
async fn last_values(
    result: Option<crate::sim::result_file::ResultFile>,
) -> Result<Vec<(String, f64)>, AppError> {
    let Some(result) = result else {
        return Ok(vec![]);
    };
    tokio::task::spawn_blocking(move || result.last_values())
        .await?
        .map_err(AppError::from)
}

#[derive(Deserialize, Default)]
struct Payload {
    #[serde(default)]
    parameters: BTreeMap<String, Value>,
    #[serde(default)]
    metadata: Metadata,
}

#[derive(Deserialize, Default)]
struct Metadata {
    stop_time: Option<f64>,
    step: Option<f64>,
    fmu_name: Option<String>,
}

#[derive(Serialize)]
struct Executed {
    status: RunStatus,
    output_url: Option<String>,
    /// Seconds the simulation ran.
    execution_time: f64,
    credits_consumed: i64,
    run_id: String,
    error: Option<String>,
}

/// `POST /execute_fmu`: multipart with the FMU (`fmu`) and `payload`, a JSON string
/// `{parameters: {…}, metadata: {stop_time?, step?, fmu_name?}}`.
#[handler]
pub async fn execute_fmu(
    state: Data<&State>,
    req: &Request,
    mut form: Multipart,
) -> Result<Json<Executed>, ApiError> {
    let key = key_of(req)?;
    // The key must be able to upload as well as simulate.
    let principal = crate::auth::authenticate_key(
        &state,
        key.clone(),
        crate::auth::tokens::RequestFacts::op("manage_fmus"),
    )
    .await?;
    let mut uploaded = None;
    let mut payload = Payload::default();
    while let Some(field) = form
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("the multipart body is malformed: {e}")))?
    {
        match field.name() {
            Some("fmu") => {
                let name = fmus::upload_name(field.file_name());
                let file =
                    fmus::receive(&state, &principal.user_id, field.into_async_read()).await?;
                uploaded = Some(
                    fmus::add_upload(
                        &state,
                        &principal.user_id,
                        file,
                        &name,
                        fmus::Strictness::Strict,
                    )
                    .await?
                    .0,
                );
            }
            Some("payload") => {
                let text = field
                    .text()
                    .await
                    .map_err(|e| ApiError::bad_request(format!("reading payload: {e}")))?;
                payload = serde_json::from_str(&text).map_err(|e| {
                    ApiError::bad_request(format!("payload is not valid JSON: {e}"))
                })?;
            }
            _ => {}
        }
    }
    let record = uploaded
        .ok_or_else(|| ApiError::bad_request("send the FMU as a multipart field named 'fmu'"))?;
    let create = RunCreate::simple(
        record.id.to_string(),
        payload.metadata.stop_time,
        payload.metadata.step,
        start_values(Some(payload.parameters)),
    );
    let name = payload
        .metadata
        .fmu_name
        .or_else(|| record.file_name.clone());
    let new = new_run(create, name).map_err(ApiError::from)?;
    let (run, _) =
        runs::start_and_wait(&state, Starter::Key(key), new, idempotency_key(req)).await?;
    let run = if !run.status.is_finished() {
        runs::wait(&state.store, &run.id, state.config.max_run_time).await?
    } else {
        run
    };
    let execution_time = match (run.started_at, run.finished_at) {
        (Some(s), Some(f)) => (f - s) as f64 / 1000.0,
        _ => 0.0,
    };
    let output_url = (run.status == RunStatus::Succeeded).then(|| {
        format!(
            "{}/api/v1/runs/{}/result?format=csv",
            state.config.public_url, run.id
        )
    });
    if run.status == RunStatus::Failed && run.error.is_none() {
        tracing::error!(run = %run.id, "a failed run has no reason recorded");
        return Err(ApiError::internal());
    }
    Ok(Json(Executed {
        status: run.status,
        output_url,
        execution_time,
        credits_consumed: run.credits_charged.get(),
        run_id: run.id.to_string(),
        error: run.error,
    }))
}
