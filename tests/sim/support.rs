//! Opening library FMUs and running them through a worker pool like the server's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use fmu_gateway::fmi::describe::{self, ModelInfo};
use fmu_gateway::fmi::{archive, library};
use fmu_gateway::sim::plan::{self, RunSettings};
use fmu_gateway::sim::protocol::{Interface, SimOutput};
use fmu_gateway::sim::runner::{PoolConfig, RunOutcome, SimError, WorkerPool};
use fmu_gateway::sim::sandbox::Limits;

pub const EXE: &str = env!("CARGO_BIN_EXE_fmu-gateway");

/// An extracted FMU and its description, in a temp dir that lives as long as this.
pub struct Opened {
    pub dir: tempfile::TempDir,
    pub info: ModelInfo,
}

impl Opened {
    pub fn fmu_dir(&self) -> PathBuf {
        self.dir.path().join("fmu")
    }
}

pub fn open_file(path: &Path) -> Opened {
    let dir = tempfile::tempdir().unwrap();
    archive::extract(path, &dir.path().join("fmu"), &archive::Limits::default()).unwrap();
    let info = describe::describe(&dir.path().join("fmu")).unwrap();
    Opened { dir, info }
}

/// A library model: `version` is "3.0" or "2.0".
pub fn open_library(model: &str, version: &str) -> Opened {
    let (_, _, bytes) = library::DEMO_FMUS
        .iter()
        .find(|(m, v, _)| *m == model && *v == version)
        .unwrap_or_else(|| panic!("no library model {model} {version}"));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("model.fmu");
    std::fs::write(&file, bytes).unwrap();
    open_file(&file)
}

pub fn pool(limits: Limits) -> (tempfile::TempDir, Arc<WorkerPool>) {
    let scratch = tempfile::tempdir().unwrap();
    let pool = WorkerPool::new(PoolConfig {
        exe: EXE.into(),
        scratch_root: scratch.path().to_path_buf(),
        workers: 2,
        limits,
        log_limit: 64 * 1024,
    });
    (scratch, pool)
}

pub async fn run(
    opened: &Opened,
    settings: RunSettings,
    timeout: Duration,
    limits: Limits,
) -> Result<RunOutcome, SimError> {
    let job = plan::plan(&opened.info, &opened.fmu_dir(), &settings).expect("a valid plan");
    let (_scratch, pool) = pool(limits);
    pool.run(job, timeout).await
}

pub async fn simulate(
    model: &str,
    version: &str,
    interface: Interface,
    settings: RunSettings,
) -> SimOutput {
    let opened = open_library(model, version);
    let settings = RunSettings {
        interface: Some(interface),
        ..settings
    };
    match run(
        &opened,
        settings,
        Duration::from_secs(60),
        Limits::default(),
    )
    .await
    {
        Ok(outcome) => outcome.result.read_all().expect("the stored results"),
        Err(e) => panic!("{model} {version} {interface:?}: {e} {e:?}"),
    }
}

pub fn column<'a>(out: &'a SimOutput, name: &str) -> &'a [f64] {
    out.columns
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .values
        .as_floats()
        .unwrap_or_else(|| panic!("column {name} is not a float column"))
}

pub const VERSIONS: [&str; 2] = ["3.0", "2.0"];
pub const INTERFACES: [Interface; 2] = [Interface::Cs, Interface::Me];
