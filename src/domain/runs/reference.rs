//! A run's reference check: what a run request asks to be compared with (inline CSV, or a
//! reference the FMU carries under FMI-LS-REF), how it is checked before the run starts, and
//! the comparison once the run has succeeded (`sim::reference`). A failed comparison does not
//! fail the run or change its charge: the simulation did what was asked, and the check is a
//! verdict on its results, stored with the run.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::fmi::describe::ModelInfo;
use crate::fmi::ls_ref::{self, CarriedReference};
use crate::sim::plan::{self, Problem, RunSettings};
use crate::sim::reference::{Reference, ReferenceCheck, Tolerance, Tolerances, compare};
use crate::sim::result_file::ResultFile;
use crate::sim::runner::WorkerPool;

/// Largest inline reference (bytes of CSV); the request body limit bounds it too. A larger
/// reference belongs in the FMU (FMI-LS-REF), where it is read from disk.
pub const MAX_INLINE_REFERENCE_BYTES: usize = 512 << 10;

/// Where a run's reference comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum ReferenceSource {
    /// CSV text sent with the request.
    Inline(String),
    /// The name of a reference the FMU carries (an FMI-LS-REF experiment, or a result file).
    Carried(String),
}

/// What a run request asks to be compared with, and how closely.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferenceRequest {
    pub source: ReferenceSource,
    pub tolerances: Tolerances,
}

/// The reference as the run's stored settings name it (so an idempotent retry with another
/// reference is another request): the carried reference's name, or the inline CSV's digest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fmu_reference: Option<String>,
    /// SHA-256 (hex) of the inline CSV.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csv_sha256: Option<String>,
    pub abs_tol: f64,
    pub rel_tol: f64,
    /// Per-variable tolerances, by name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerances: Vec<(String, Tolerance)>,
}

/// A reference read and checked, ready to compare a result with.
#[derive(Clone, Debug)]
pub struct Prepared {
    /// The CSV as given, kept beside the result for the run page's plot.
    pub text: String,
    pub reference: Reference,
    pub tolerances: Tolerances,
    pub stored: StoredReference,
}

/// The field a problem with the reference names.
fn field(source: &ReferenceSource) -> &'static str {
    match source {
        ReferenceSource::Inline(_) => "reference.csv",
        ReferenceSource::Carried(_) => "reference.fmu_reference",
    }
}

/// Reads and checks the reference a run asks for. A carried reference's experiment settings
/// (start, stop, output interval, tolerance) fill what `settings` leaves to the model, so
/// that the run reproduces the experiment the reference came from.
pub fn prepare(
    request: &ReferenceRequest,
    fmu_dir: &Path,
    settings: &mut RunSettings,
) -> Result<Prepared, Problem> {
    let field = field(&request.source);
    let tolerances = &request.tolerances;
    if let Some(problem) = std::iter::once(&tolerances.default)
        .chain(tolerances.by_variable.iter().map(|(_, t)| t))
        .find_map(|t| t.problem())
    {
        return Err(Problem::new("reference", problem));
    }
    let (text, stored) = match &request.source {
        ReferenceSource::Inline(csv) => {
            if csv.len() > MAX_INLINE_REFERENCE_BYTES {
                return Err(Problem::new(
                    field,
                    format!(
                        "an inline reference may have at most {} KiB of CSV; carry a larger one \
                         in the FMU (FMI-LS-REF)",
                        MAX_INLINE_REFERENCE_BYTES >> 10
                    ),
                ));
            }
            let digest = hex::encode(Sha256::digest(csv.as_bytes()));
            (csv.clone(), (None, Some(digest)))
        }
        ReferenceSource::Carried(name) => {
            let carried = find_carried(fmu_dir, name).map_err(|m| Problem::new(field, m))?;
            apply_experiment(&carried, settings);
            let text = ls_ref::read_reference(fmu_dir, &carried)
                .map_err(|e| Problem::new(field, e.to_string()))?;
            (text, (Some(name.clone()), None))
        }
    };
    let reference = Reference::parse(&text).map_err(|e| Problem::new(field, e.to_string()))?;
    Ok(Prepared {
        text,
        reference,
        tolerances: tolerances.clone(),
        stored: StoredReference {
            fmu_reference: stored.0,
            csv_sha256: stored.1,
            abs_tol: tolerances.default.abs_tol,
            rel_tol: tolerances.default.rel_tol,
            tolerances: tolerances.by_variable.clone(),
        },
    })
}

/// The carried reference named `name`, or why there is none to run.
fn find_carried(fmu_dir: &Path, name: &str) -> Result<CarriedReference, String> {
    let carried = ls_ref::carried_references(fmu_dir).map_err(|e| e.to_string())?;
    let names: Vec<&str> = carried.iter().map(|r| r.name.as_str()).collect();
    let Some(found) = carried.iter().find(|r| r.name == name) else {
        return Err(if names.is_empty() {
            "this FMU carries no reference results (FMI-LS-REF)".to_string()
        } else {
            format!(
                "this FMU carries no reference '{name}'; it carries {}",
                names
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    };
    if let Some(why) = &found.unsupported {
        return Err(why.clone());
    }
    Ok(found.clone())
}

/// Fills the settings the request left open from the experiment.
fn apply_experiment(carried: &CarriedReference, settings: &mut RunSettings) {
    settings.start_time = settings.start_time.or(carried.start_time);
    settings.stop_time = settings.stop_time.or(carried.stop_time);
    settings.output_interval = settings.output_interval.or(carried.output_interval);
    settings.tolerance = settings.tolerance.or(carried.tolerance);
}

/// Compares the result at `path` (the run's local copy, before it is removed) with the
/// reference, off the async threads. A result that cannot be read gives a failed verdict that
/// says why (the run itself succeeded).
pub async fn check(path: std::path::PathBuf, prepared: Prepared) -> ReferenceCheck {
    tokio::task::spawn_blocking(move || {
        ResultFile::open(&path)
            .and_then(|file| compare(&file, &prepared.reference, &prepared.tolerances))
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
    .unwrap_or_else(|e| {
        tracing::error!(error = %e, "a reference check could not read its result");
        unreadable(&e)
    })
}

fn unreadable(e: &dyn std::fmt::Display) -> ReferenceCheck {
    ReferenceCheck {
        passed: false,
        variables: vec![],
        problems: vec![format!("the result could not be compared: {e}")],
    }
}

/// The verdict stored with a run, if it has one.
pub fn stored_check(json: Option<&str>) -> Option<ReferenceCheck> {
    serde_json::from_str(json?)
        .inspect_err(|e| tracing::error!(error = %e, "a run's reference check does not parse"))
        .ok()
}

/// One carried reference run at upload: its name and verdict, or why it could not run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CarriedVerdict {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check: Option<ReferenceCheck>,
    /// Why the reference was not compared (it needs stimuli, the model refused its settings,
    /// the run failed or ran out of time).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Runs every reference the FMU extracted at `fmu_dir` carries, each through the same pool
/// and sandbox as runs (no credits: the caller's upload is being checked, not simulated for
/// them), each within `time_limit` and all within `total` (waiting for a worker included:
/// those left when it is spent are reported as not run), with the default tolerances; returns
/// their verdicts in the manifest's order. What the upload path calls to report whether an FMU
/// reproduces its own references here.
pub async fn check_carried(
    pool: &WorkerPool,
    info: &ModelInfo,
    fmu_dir: &Path,
    time_limit: Duration,
    total: Duration,
) -> Result<Vec<CarriedVerdict>, ls_ref::LsRefError> {
    let carried = ls_ref::carried_references(fmu_dir)?;
    let deadline = tokio::time::Instant::now() + total;
    let mut verdicts = Vec::with_capacity(carried.len());
    for reference in carried {
        let name = reference.name.clone();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let checked = tokio::time::timeout(
            left,
            check_one(pool, info, fmu_dir, &reference, time_limit.min(left)),
        )
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "the {} s for checking all of the FMU's references were spent before this one \
                 finished",
                total.as_secs()
            ))
        });
        let verdict = match checked {
            Ok(check) => CarriedVerdict {
                name,
                check: Some(check),
                error: None,
            },
            Err(error) => CarriedVerdict {
                name,
                check: None,
                error: Some(error),
            },
        };
        verdicts.push(verdict);
    }
    Ok(verdicts)
}

async fn check_one(
    pool: &WorkerPool,
    info: &ModelInfo,
    fmu_dir: &Path,
    reference: &CarriedReference,
    time_limit: Duration,
) -> Result<ReferenceCheck, String> {
    let request = ReferenceRequest {
        source: ReferenceSource::Carried(reference.name.clone()),
        tolerances: Tolerances::default(),
    };
    let mut settings = RunSettings::default();
    let prepared = prepare(&request, fmu_dir, &mut settings).map_err(|p| p.message)?;
    // Record what the reference compares (the model's outputs may not include it).
    settings.outputs = prepared
        .reference
        .columns
        .iter()
        .map(|c| recorded_name(&c.name))
        .collect();
    settings.outputs.dedup();
    let job = plan::plan(info, fmu_dir, &settings).map_err(|e| e.to_string())?;
    let outcome = pool.run(job, time_limit).await.map_err(|e| e.to_string())?;
    let result = outcome.result;
    tokio::task::spawn_blocking(move || compare(&result, &prepared.reference, &prepared.tolerances))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())
}

/// The variable a CSV column belongs to: an array element `y[2]` is recorded as `y`.
fn recorded_name(column: &str) -> String {
    match column.split_once('[') {
        Some((name, _)) if column.ends_with(']') => name.to_string(),
        _ => column.to_string(),
    }
}
