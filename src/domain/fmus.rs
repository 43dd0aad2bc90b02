//! The FMU registry: content-addressed storage in the data directory, metadata in SQLite.
//!
//! An FMU's id is the SHA-256 of its file. The file is kept as `fmus/<id>.fmu` and extracted
//! once to `fmus/<id>/`, which workers read. Uploads are private to the users who uploaded
//! them; the built-in library is visible to everyone. Nothing here runs FMU code.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::domain::error::AppError;
use crate::domain::ids::{FmuId, UserId};
use crate::fmi::archive::{self, Limits};
use crate::fmi::describe::{self, ModelInfo};
use crate::fmi::validation::{self, Code, Problem, Report};
use crate::objects::Key;
use crate::objects::cache::Pinned;
use crate::state::State;
use crate::store::fmus::{FmuRow, NewFmu, Owned};
use crate::store::{self, StoreError};

/// Why a registry operation failed. The faces turn it into HTTP through [`AppError`], once.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The archive is not one we accept (paths, links, sizes, duplicates…).
    #[error(transparent)]
    Archive(#[from] archive::ArchiveError),
    /// The model description is not one we can run.
    #[error(transparent)]
    Describe(#[from] describe::DescribeError),
    /// The validation report has errors and the upload was not lenient.
    #[error("{}", .0.error_summary())]
    Refused(Box<Report>),
    /// The upload could not be read from the request.
    #[error("reading the upload: {0}")]
    Unreadable(std::io::Error),
    #[error("{0}")]
    TooLarge(String),
    #[error("{0}")]
    OverQuota(String),
    /// The data volume is below its reserve.
    #[error("{0}")]
    VolumeLow(String),
    #[error("FMU not found")]
    NotFound,
    /// A stored FMU could not be fetched from the object store or extracted into the cache:
    /// ours to fix, not the caller's.
    #[error("re-extracting {id}: {source}")]
    Reextract { id: FmuId, source: std::io::Error },
    /// A built-in library model did not install: this binary is broken.
    #[error("library model {model}: {source}")]
    Library {
        model: String,
        source: Box<RegistryError>,
    },
    #[error("stored model info of {id}: {source}")]
    StoredInfo {
        id: FmuId,
        source: serde_json::Error,
    },
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a registry task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl From<RegistryError> for AppError {
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Archive(_)
            | RegistryError::Describe(_)
            | RegistryError::Unreadable(_) => AppError::Invalid(e.to_string()),
            RegistryError::Refused(report) => AppError::InvalidFmu(report),
            RegistryError::TooLarge(m) => AppError::TooLarge(m),
            RegistryError::OverQuota(m) => AppError::QuotaExceeded(m),
            RegistryError::VolumeLow(m) => AppError::Unavailable(m),
            RegistryError::NotFound => AppError::NotFound("FMU"),
            RegistryError::Store(e) => AppError::Store(e),
            RegistryError::Reextract { .. }
            | RegistryError::Library { .. }
            | RegistryError::StoredInfo { .. }
            | RegistryError::Io { .. }
            | RegistryError::Task(_) => AppError::Registry(e),
        }
    }
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Wraps an I/O error with what the registry was doing.
fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> RegistryError {
    move |source| RegistryError::Io { what, source }
}

/// An FMU as a user sees it.
#[derive(Clone, Debug, Serialize)]
pub struct FmuRecord {
    pub id: FmuId,
    pub library_id: Option<String>,
    pub model_name: String,
    pub fmi_version: String,
    pub size_bytes: i64,
    pub created_at: i64,
    pub file_name: Option<String>,
    pub info: ModelInfo,
}

impl FmuRecord {
    fn from_row(row: FmuRow) -> Result<FmuRecord> {
        let info: ModelInfo =
            serde_json::from_str(&row.info).map_err(|source| RegistryError::StoredInfo {
                id: row.id.clone(),
                source,
            })?;
        Ok(FmuRecord {
            id: row.id,
            library_id: row.library_id,
            model_name: row.model_name,
            fmi_version: row.fmi_version,
            size_bytes: row.size_bytes,
            created_at: row.created_at,
            file_name: row.file_name,
            info,
        })
    }

    /// The name users know it by: the library id, else the model name.
    pub fn display_name(&self) -> &str {
        self.library_id.as_deref().unwrap_or(&self.model_name)
    }
}

/// The registry's directory in the data directory.
pub fn root(data_dir: &Path) -> PathBuf {
    data_dir.join("fmus")
}

/// The extracted FMU that workers read, from the local cache (filled from the stored archive
/// on a miss), held in the cache until the returned [`Pinned`] is dropped: keep it for as
/// long as a worker may read the directory.
pub async fn extracted(state: &State, id: &FmuId) -> Result<Pinned> {
    let objects = &state.objects;
    state
        .fmu_cache
        .get(id.as_str(), |dir| async move {
            let archive = objects.local_copy(&Key::FmuArchive(id.clone())).await?;
            tokio::task::spawn_blocking(move || {
                archive::extract(archive.path(), &dir, &Limits::default())
                    .map(|_| ())
                    .map_err(std::io::Error::other)
            })
            .await
            .map_err(std::io::Error::other)?
        })
        .await
        .map_err(|source| RegistryError::Reextract {
            id: id.clone(),
            source,
        })
}

fn temp_path(data_dir: &Path, what: &str) -> PathBuf {
    root(data_dir).join(format!(".{what}-{:016x}", rand::random::<u64>()))
}

/// Whether an FMU was new to the caller (whoever else has the same bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    Created,
    AlreadyThere,
}

/// How an upload treats the errors of its validation report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strictness {
    /// Errors refuse it.
    #[default]
    Strict,
    /// Errors are recorded and it is accepted, as FMPy reads a model with `validate=False`,
    /// unless it cannot be read or run at all (an unsafe archive, XML no parser reads, no
    /// binary for this platform).
    Lenient,
}

/// Stores an uploaded file (already written to `tmp_file` by the caller, who enforced the
/// size limit) for `user_id`: checks it, extracts it once, records its metadata. A new FMU is
/// validated (its files, then a smoke test of each interface in the sandbox) and its report
/// stored with it; one the service knows already keeps the report it got then.
pub async fn add_upload(
    state: &State,
    user_id: &UserId,
    upload: UploadFile,
    file_name: &str,
    strictness: Strictness,
) -> Result<(FmuRecord, Stored)> {
    // `upload` removes its temp file when dropped, whatever happens below.
    let tmp_file = upload.path.clone();
    let data_dir = state.config.data_dir.clone();
    let limits = Limits::default();
    let (id, size) = tokio::task::spawn_blocking({
        let f = tmp_file.clone();
        move || hash_file(&f)
    })
    .await?
    .map_err(io("reading the stored upload"))?;
    let id = FmuId::from(id);

    match state.store.fmu_info(&id).await? {
        Some(json) => {
            let info: ModelInfo =
                serde_json::from_str(&json).map_err(|source| RegistryError::StoredInfo {
                    id: id.clone(),
                    source,
                })?;
            if let Some(report) = info.validation
                && strictness == Strictness::Strict
                && report.has_errors()
            {
                return Err(RegistryError::Refused(Box::new(report)));
            }
        }
        None => {
            let (tmp, data) = (tmp_file.clone(), data_dir.clone());
            let checked =
                tokio::task::spawn_blocking(move || check(&data, &tmp, &limits)).await??;
            let checked = smoke_test(state, checked, strictness).await?;
            let (mut info, stored) = place(state, &tmp_file, &id, checked).await?;
            check_references(state, &id, &mut info).await;
            let info_json =
                serde_json::to_string(&info).map_err(|source| RegistryError::StoredInfo {
                    id: id.clone(),
                    source,
                })?;
            state
                .store
                .add_fmu(NewFmu {
                    id: id.clone(),
                    model_name: info.model_name.clone(),
                    fmi_version: info.fmi_version.clone(),
                    size_bytes: size as i64,
                    stored_bytes: stored as i64,
                    info: info_json,
                    created_at: store::now_ms(),
                })
                .await?;
        }
    }
    drop(upload);
    let quota = i64::try_from(state.config.storage_quota_bytes).unwrap_or(i64::MAX);
    let upload = state
        .store
        .add_upload(&id, user_id, file_name, store::now_ms(), quota)
        .await?;
    if let Owned::OverQuota { used, adding } = upload.owned {
        // Files extracted for this request alone go again; bytes others own stay.
        let orphan = state.store.forget_unowned_fmu(&id).await?;
        if orphan {
            remove_files(state, &id).await;
        }
        return Err(over_quota(used, adding, state.config.storage_quota_bytes));
    }
    let record = FmuRecord::from_row(upload.row.ok_or(RegistryError::NotFound)?)?;
    Ok((
        record,
        // New to the caller is what counts: whether another account stored the same bytes
        // must not show (it would tell anyone whether a given FMU was ever uploaded here).
        if upload.owned == Owned::Added {
            Stored::Created
        } else {
            Stored::AlreadyThere
        },
    ))
}

/// The error for an upload that does not fit in the account's storage quota.
fn over_quota(used: i64, adding: i64, quota: u64) -> RegistryError {
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1 << 20));
    RegistryError::OverQuota(format!(
        "this FMU needs {} of storage, and your uploads and saved states already use {} of your {} quota: \
         delete models you no longer need",
        mib(adding.max(0) as u64),
        mib(used.max(0) as u64),
        mib(quota)
    ))
}

/// Each carried reference (FMI-LS-REF) may run this long at upload.
const REFERENCE_CHECK_TIME: std::time::Duration = std::time::Duration::from_secs(30);
/// All of an upload's carried references together (waiting for workers included).
const REFERENCE_CHECKS_TIME: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs the references a newly stored FMU carries (none: nothing to do) and keeps their
/// verdicts with it. Free of charge and bounded in time; a check that cannot run is a
/// verdict that says why, never a refused upload: the FMU is valid, the verdict informs.
async fn check_references(state: &State, id: &FmuId, info: &mut ModelInfo) {
    let Ok(fmu) = extracted(state, id).await else {
        return;
    };
    let checks = crate::domain::runs::reference::check_carried(
        &state.workers,
        info,
        fmu.dir(),
        REFERENCE_CHECK_TIME,
        REFERENCE_CHECKS_TIME,
    )
    .await;
    let outcome = match checks {
        Ok(verdicts) if verdicts.is_empty() => return,
        Ok(verdicts) => ReferenceChecks {
            verdicts,
            problem: None,
        },
        Err(e) => ReferenceChecks {
            verdicts: vec![],
            problem: Some(e.to_string()),
        },
    };
    // Each reference the FMU does not meet here is a warning of its validation report.
    let failed = outcome
        .verdicts
        .iter()
        .filter_map(|v| match (&v.check, &v.error) {
            (Some(check), _) if !check.passed => Some(Problem::new(
                Code::ReferenceFailed,
                v.name.clone(),
                format!(
                    "the FMU does not reproduce its reference result \"{}\" here: {} of its \
                     variables are outside the default tolerances",
                    v.name,
                    check.variables.iter().filter(|c| !c.passed).count() + check.problems.len()
                ),
            )),
            (_, Some(error)) => Some(Problem::new(
                Code::ReferenceFailed,
                v.name.clone(),
                format!(
                    "its reference result \"{}\" could not be checked: {error}",
                    v.name
                ),
            )),
            _ => None,
        })
        .chain(outcome.problem.as_ref().map(|why| {
            Problem::new(
                Code::ReferenceFailed,
                "extra/org.fmi-standard.fmi-ls-ref",
                format!("its reference results cannot be read: {why}"),
            )
        }));
    if let Some(report) = info.validation.as_mut() {
        report.extend(failed);
    }
    let key = Key::ReferenceChecks(id.clone());
    let written = match serde_json::to_vec(&outcome) {
        Ok(json) => state.objects.put_bytes(&key, json.into()).await,
        Err(e) => Err(std::io::Error::other(e)),
    };
    if let Err(e) = written {
        tracing::error!(%id, error = %e, "could not keep an upload's reference checks");
    }
}

/// The verdicts of an FMU's carried references, run at its upload.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ReferenceChecks {
    pub verdicts: Vec<crate::domain::runs::reference::CarriedVerdict>,
    /// Why its FMI-LS-REF manifest could not be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What the upload check of an FMU's references found; `None` for an FMU without references
/// (or stored before uploads were checked).
pub async fn reference_checks(state: &State, id: &FmuId) -> Option<ReferenceChecks> {
    let key = Key::ReferenceChecks(id.clone());
    let bytes = match state.objects.get_bytes(&key).await {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::error!(%id, error = %e, "cannot read an upload's reference checks");
            return None;
        }
    };
    serde_json::from_slice(&bytes)
        .inspect_err(
            |e| tracing::error!(%id, error = %e, "an upload's reference checks do not parse"),
        )
        .ok()
}

/// Removes an FMU's stored objects (archive, reference checks) and its cached extraction
/// (unless a running job holds it: then the cache's bound removes it later). An object that
/// cannot be removed is logged: the FMU is gone from the registry either way.
pub(crate) async fn remove_files(state: &State, id: &FmuId) {
    for key in [
        Key::ReferenceChecks(id.clone()),
        Key::FmuArchive(id.clone()),
    ] {
        if let Err(e) = state.objects.delete(&key).await {
            tracing::error!(fmu = %id, object = key.path(), error = %e, "cannot delete an FMU's object");
        }
    }
    state.fmu_cache.forget(id.as_str());
}

use crate::objects::cache::tree_size;

/// A new FMU extracted to a temporary directory and checked, not yet in place. The directory
/// goes when this is dropped, unless [`place`] moved it.
struct Checked {
    dir: PathBuf,
    info: ModelInfo,
}

impl Drop for Checked {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Checked {
    fn report(&mut self) -> &mut Report {
        self.info.validation.get_or_insert_with(Report::default)
    }
}

/// Extracts a new FMU and checks its files: the archive (unsafe ones are refused outright),
/// the model description against the standard's rules (problems go to the report), and that
/// it can be read and has a binary for this server (refused otherwise, lenient or not).
fn check(data_dir: &Path, file: &Path, limits: &Limits) -> Result<Checked> {
    let dir = temp_path(data_dir, "extract");
    let info = check_in(&dir, file, limits);
    match info {
        Ok(info) => Ok(Checked { dir, info }),
        Err(e) => {
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

/// [`check`] extracting into `dir`.
fn check_in(dir: &Path, file: &Path, limits: &Limits) -> Result<ModelInfo> {
    let extracted = archive::extract(file, dir, limits)?;
    let problems = validation::check_files(dir, &extracted.warnings)?;
    let report = Report::new(problems, store::now_ms());
    let mut info = match describe::describe_with(dir, describe::Rules::Report) {
        Ok(info) => info,
        // What no parser reads is refused whatever the strictness; the report says where.
        Err(_) if report.has_errors() => {
            return Err(RegistryError::Refused(Box::new(report)));
        }
        Err(e) => return Err(e.into()),
    };
    describe::check_platform(dir, &info)?;
    // Kept with the FMU, so a later upload of the same bytes (which is not extracted again)
    // and every read of it show them too.
    info.warnings = extracted.warnings;
    info.validation = Some(report);
    Ok(info)
}

/// Refuses a strict upload whose files have errors; otherwise smoke-tests each interface in
/// the sandbox and refuses a strict upload whose FMU failed one.
async fn smoke_test(
    state: &State,
    mut checked: Checked,
    strictness: Strictness,
) -> Result<Checked> {
    let refuse =
        |checked: &mut Checked| strictness == Strictness::Strict && checked.report().has_errors();
    if refuse(&mut checked) {
        return Err(RegistryError::Refused(Box::new(checked.report().clone())));
    }
    let tests = crate::sim::smoke::run(&state.workers, &checked.info, &checked.dir).await;
    let failed = crate::sim::smoke::problems(&tests);
    checked.report().extend(failed);
    checked.report().smoke_tests = tests;
    if refuse(&mut checked) {
        return Err(RegistryError::Refused(Box::new(checked.report().clone())));
    }
    Ok(checked)
}

/// Puts a checked FMU's archive in the object store and its extraction in the cache.
/// Returns its description and the bytes it counts for (archive and extracted tree), once the
/// archive is stored: a failed put is a fault, and the FMU is not recorded.
async fn place(
    state: &State,
    file: &Path,
    id: &FmuId,
    checked: Checked,
) -> Result<(ModelInfo, u64)> {
    put_archive(&state.objects, file, id).await?;
    let (file_bytes, tree) = (file_size(file)?, tree_size(&checked.dir));
    let info = checked.info.clone();
    // Someone may have cached the same bytes at the same moment: theirs is identical.
    let adopted = state
        .fmu_cache
        .get(id.as_str(), |dir| async move {
            std::fs::rename(&checked.dir, &dir)
        })
        .await;
    if let Err(e) = adopted {
        tracing::warn!(fmu = %id, error = %e, "a new FMU's extraction was not cached");
    }
    Ok((info, file_bytes + tree))
}

async fn put_archive(objects: &crate::objects::Objects, file: &Path, id: &FmuId) -> Result<()> {
    objects
        .put_file(&Key::FmuArchive(id.clone()), file)
        .await
        .map_err(io("storing the FMU"))
}

fn file_size(file: &Path) -> Result<u64> {
    Ok(std::fs::metadata(file)
        .map_err(io("reading the stored upload"))?
        .len())
}

/// SHA-256 (hex) and size of a file, read in chunks.
pub fn hash_file(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut file, &mut hasher)?;
    Ok((hex::encode(hasher.finalize()), size))
}

/// Writes upload bytes to a fresh temp file in the registry, refusing more than `max` bytes.
/// The file is removed when this is dropped.
pub struct UploadFile {
    pub path: PathBuf,
    file: std::fs::File,
    written: u64,
    max: u64,
}

impl UploadFile {
    pub fn create(data_dir: &Path, max: u64) -> std::io::Result<UploadFile> {
        std::fs::create_dir_all(root(data_dir))?;
        let path = temp_path(data_dir, "upload");
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(UploadFile {
            path,
            file,
            written: 0,
            max,
        })
    }

    /// Appends a chunk; `Err(TooLarge)` once past the limit.
    pub fn push(&mut self, chunk: &[u8]) -> Result<()> {
        self.written += chunk.len() as u64;
        if self.written > self.max {
            return Err(RegistryError::TooLarge(format!(
                "the FMU is larger than the {} MiB limit",
                self.max >> 20
            )));
        }
        self.file.write_all(chunk).map_err(io("writing the upload"))
    }
}

/// Bytes the user's uploads take on disk (what counts against their storage quota).
pub async fn storage_used(state: &State, user_id: &UserId) -> Result<i64> {
    Ok(state.store.storage_used(user_id).await?)
}

/// Streams an uploaded file into a temp file in the registry, refusing more than the
/// configured limit, more than the account's remaining storage quota, and anything while the
/// data volume is below its reserve. Every upload route (JSON API, compatibility route,
/// dashboard form) reads its file through this.
pub async fn receive(
    state: &State,
    user_id: &UserId,
    mut reader: impl tokio::io::AsyncRead + Unpin,
) -> Result<UploadFile> {
    use tokio::io::AsyncReadExt;
    if let Some(problem) =
        crate::machine::disk_problem(&state.config.data_dir, state.config.disk_reserve_bytes)
    {
        return Err(RegistryError::VolumeLow(problem));
    }
    let used = storage_used(state, user_id).await?;
    let quota = state.config.storage_quota_bytes;
    let quota_left = quota.saturating_sub(used.max(0) as u64);
    if quota_left == 0 {
        return Err(over_quota(used, 0, quota));
    }
    let mut target = UploadFile::create(&state.config.data_dir, state.config.max_upload_bytes)
        .map_err(io("creating the upload file"))?;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader
            .read(&mut buf)
            .await
            .map_err(RegistryError::Unreadable)?;
        if n == 0 {
            return Ok(target);
        }
        target.push(&buf[..n])?;
        if target.written > quota_left {
            return Err(over_quota(used, target.written as i64, quota));
        }
    }
}

/// The file name to remember for an upload (client-supplied: bounded, never used as a path).
pub fn upload_name(name: Option<&str>) -> String {
    name.unwrap_or("upload.fmu")
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect()
}

impl Drop for UploadFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Resolves what a caller names: an id (SHA-256), `lib:<Model>` / `lib:<Model>@fmi2`, or the
/// alias `msl:<Model>` that existing clients send.
/// The reference results an FMU carries (FMI-LS-REF), read from its extracted files, or why
/// they cannot be read.
pub async fn carried_references(
    state: &State,
    record: &FmuRecord,
) -> std::result::Result<Vec<crate::fmi::ls_ref::CarriedReference>, String> {
    let fmu = extracted(state, &record.id)
        .await
        .map_err(|e| e.to_string())?;
    tokio::task::spawn_blocking(move || {
        crate::fmi::ls_ref::carried_references(fmu.dir()).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

pub async fn resolve(state: &State, user_id: &UserId, reference: &str) -> Result<FmuRecord> {
    let reference = reference.trim();
    let library_id = reference
        .strip_prefix("lib:")
        .or_else(|| reference.strip_prefix("msl:"))
        .map(|name| format!("lib:{name}"));
    let row = match library_id {
        Some(lib) => state.store.library_model(user_id, &lib).await?,
        None => {
            state
                .store
                .visible_fmu(user_id, &FmuId::from_hex(reference))
                .await?
        }
    };
    let record = FmuRecord::from_row(row.ok_or(RegistryError::NotFound)?)?;
    if record.info.describe_version < describe::DESCRIBE_VERSION {
        return describe_again(state, record).await;
    }
    Ok(record)
}

/// Describes a record stored by an earlier version again from its files, and stores the new
/// description: what was added since (array shapes, enumeration items, display units) is then
/// known. The warnings found when it was extracted are kept. If its files cannot be described
/// any more, the record is used as it was (and a run that needs what it lacks says so).
async fn describe_again(state: &State, mut record: FmuRecord) -> Result<FmuRecord> {
    let fresh = match extracted(state, &record.id).await {
        Ok(fmu) => tokio::task::spawn_blocking(move || Ok(describe::describe(fmu.dir()))).await,
        Err(e) => Ok(Err(e)),
    };
    match fresh {
        Ok(Ok(Ok(mut info))) => {
            info.warnings = std::mem::take(&mut record.info.warnings);
            info.validation = record.info.validation.take();
            match serde_json::to_string(&info) {
                Ok(json) => state.store.update_fmu_info(&record.id, json).await?,
                Err(e) => tracing::error!(error = %e, "serialising a model description"),
            }
            record.info = info;
        }
        other => {
            tracing::warn!(fmu = %record.id, outcome = ?other.map(|r| r.map(|d| d.err())), "an FMU stored by an earlier version could not be described again");
        }
    }
    Ok(record)
}

/// The validation report of an FMU the user can see. Records stored before reports existed
/// get one made now from their files (without a smoke test).
pub async fn validation_report(state: &State, user_id: &UserId, reference: &str) -> Result<Report> {
    let record = resolve(state, user_id, reference).await?;
    if let Some(report) = record.info.validation {
        return Ok(report);
    }
    let fmu = extracted(state, &record.id).await?;
    tokio::task::spawn_blocking(move || {
        let problems = validation::check_files(fmu.dir(), &record.info.warnings)?;
        Ok(Report::new(problems, store::now_ms()))
    })
    .await?
}

/// Library models and the user's uploads.
pub async fn list(state: &State, user_id: &UserId, query: Option<&str>) -> Result<Vec<FmuRecord>> {
    let query = query.filter(|q| !q.trim().is_empty());
    let rows = state.store.fmus_for(user_id, query).await?;
    rows.into_iter().map(FmuRecord::from_row).collect()
}

/// Removes the user's upload; the files go when nobody uses them any more.
pub async fn delete(state: &State, user_id: &UserId, id: &FmuId) -> Result<()> {
    let still_used = state
        .store
        .remove_upload(id, user_id)
        .await?
        .ok_or(RegistryError::NotFound)?;
    if !still_used {
        remove_files(state, id).await;
    }
    Ok(())
}

/// Removes the FMUs that versions before the cache extracted beside their archives
/// (`fmus/<sha256>/`): workers read `cache/fmus/<sha256>/` now, and the old trees would only
/// take disk.
fn remove_old_extractions(data_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(root(data_dir)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_id = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if is_id && entry.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Installs the built-in library (the demo FMUs compiled into this binary) if missing, and
/// puts back an installed model's archive that the object store lacks (a data directory
/// moved to another store).
pub async fn seed_library(
    db: &crate::store::Store,
    objects: &crate::objects::Objects,
    data_dir: &Path,
) -> Result<usize> {
    let mut added = 0;
    std::fs::create_dir_all(root(data_dir)).map_err(io("creating the registry directory"))?;
    remove_old_extractions(data_dir);
    for (name, version, bytes) in crate::fmi::library::DEMO_FMUS {
        let id = FmuId::from(hex::encode(Sha256::digest(bytes)));
        if db.has_fmu_blocking(&id)? {
            let key = Key::FmuArchive(id.clone());
            if !objects
                .exists(&key)
                .await
                .map_err(io("reading the object store"))?
            {
                let archive = bytes::Bytes::from_static(bytes);
                objects
                    .put_bytes(&key, archive)
                    .await
                    .map_err(io("storing a library model"))?;
            }
            continue;
        }
        let file = temp_path(data_dir, "library");
        std::fs::write(&file, bytes).map_err(io("writing a library model"))?;
        // Built-in models get the file checks; the start-up self-test runs them instead of a
        // smoke test.
        let installed = check(data_dir, &file, &Limits::default()).and_then(|checked| {
            if checked
                .info
                .validation
                .as_ref()
                .is_some_and(Report::has_errors)
            {
                return Err(RegistryError::Refused(Box::new(
                    checked.info.validation.clone().unwrap_or_default(),
                )));
            }
            Ok(checked)
        });
        let installed = match installed {
            Ok(checked) => {
                let stored = put_archive(objects, &file, &id).await.and_then(|()| {
                    Ok((
                        checked.info.clone(),
                        file_size(&file)? + tree_size(&checked.dir),
                    ))
                });
                // The cache fills itself from the archive at the first run.
                drop(checked);
                stored
            }
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&file);
        let (info, stored) = installed.map_err(|e| RegistryError::Library {
            model: format!("{name} ({version})"),
            source: Box::new(e),
        })?;
        let library_id = crate::fmi::library::library_id(name, version);
        let json = serde_json::to_string(&info).map_err(|source| RegistryError::StoredInfo {
            id: id.clone(),
            source,
        })?;
        db.add_library_model_blocking(
            NewFmu {
                id: id.clone(),
                model_name: name.to_string(),
                fmi_version: info.fmi_version.clone(),
                size_bytes: bytes.len() as i64,
                stored_bytes: stored as i64,
                info: json,
                created_at: store::now_ms(),
            },
            &library_id,
        )?;
        added += 1;
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extractions_of_earlier_versions_go_and_archives_stay() {
        let dir = tempfile::tempdir().unwrap();
        let id = "ab".repeat(32);
        let old_tree = root(dir.path()).join(&id).join("binaries");
        std::fs::create_dir_all(&old_tree).unwrap();
        let archive = root(dir.path()).join(format!("{id}.fmu"));
        std::fs::write(&archive, b"zip").unwrap();
        let other = root(dir.path()).join("not-an-id");
        std::fs::create_dir_all(&other).unwrap();
        remove_old_extractions(dir.path());
        assert!(!root(dir.path()).join(&id).exists());
        assert!(archive.exists() && other.exists());
    }

    #[tokio::test]
    async fn a_rebuilt_library_model_replaces_the_old_one_on_start() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::store::Store::open(&dir.path().join("db.sqlite"), 2).unwrap();
        // What an older build of the binary left behind.
        let old = NewFmu {
            id: FmuId::from("0".repeat(64)),
            model_name: "BouncingBall".into(),
            fmi_version: "3.0".into(),
            size_bytes: 1,
            stored_bytes: 1,
            info: "{}".into(),
            created_at: 0,
        };
        db.add_library_model_blocking(old, "lib:BouncingBall")
            .unwrap();
        let objects =
            crate::objects::Objects::open(&crate::objects::Backend::Local, dir.path()).unwrap();
        assert_eq!(
            seed_library(&db, &objects, dir.path()).await.unwrap(),
            crate::fmi::library::DEMO_FMUS.len()
        );
        let row = db
            .library_model(&UserId::from("nobody"), "lib:BouncingBall")
            .await
            .unwrap()
            .unwrap();
        assert_ne!(row.id, FmuId::from("0".repeat(64)));
        assert!(
            db.has_fmu(&FmuId::from("0".repeat(64))).await.unwrap(),
            "the old row stays for whoever uploaded those bytes"
        );
        assert_eq!(
            seed_library(&db, &objects, dir.path()).await.unwrap(),
            0,
            "a second start changes nothing"
        );
    }
}
