//! Warm starts: the cases of a sweep run as one batch in one sandboxed worker. Every case must
//! equal the same case run on its own, a model that crashes or fails on one case value must
//! fail that case alone, and the pool's deadline, cancel and protocol checks hold per case.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fmu_gateway::sim::batch::{BatchEnd, CaseOutcome, CaseResult};
use fmu_gateway::sim::kpi::{self, KpiKind, KpiSpec};
use fmu_gateway::sim::plan::{self, RunSettings};
use fmu_gateway::sim::protocol::{Batch, Case, Interface, Job, SimOutput};
use fmu_gateway::sim::runner::{SimError, WorkerPool};
use fmu_gateway::sim::sandbox::Limits;

use crate::common::build_support;
use crate::support::{Opened, open_file, open_library, pool};

const TIMEOUT: Duration = Duration::from_secs(60);

/// The Hostile model whose behaviour depends on k (HOSTILE_ON_K in fmus/src/model.c):
/// k = 2 an FMI error, 3 a segmentation fault, 4 a 10 s sleep, 5 a 0.5 s sleep; any other k
/// runs as Dahlquist.
fn on_k(version: build_support::FmiVersion, out: &std::path::Path) -> Opened {
    let fmus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fmus");
    let path = build_support::build_fmu(&fmus, "Hostile", version, &["HOSTILE_ON_K"], out, "on_k")
        .expect("the HOSTILE_ON_K model builds");
    open_file(&path)
}

fn base_job(opened: &Opened, settings: RunSettings) -> Job {
    plan::plan(&opened.info, &opened.fmu_dir(), &settings).expect("a valid plan")
}

fn cases(name: &str, values: &[&str]) -> Vec<Case> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| Case {
            index: 10 + i as u32,
            start_values: vec![(name.to_string(), v.to_string())],
        })
        .collect()
}

fn kpis_of(variable: &str) -> Vec<KpiSpec> {
    [
        KpiKind::Final,
        KpiKind::Min,
        KpiKind::Max,
        KpiKind::Mean,
        KpiKind::Integral,
        KpiKind::TimeOfMax,
        KpiKind::TimeOfMin,
        KpiKind::FirstCrossing { level: 0.5 },
    ]
    .into_iter()
    .map(|kind| KpiSpec {
        variable: variable.into(),
        kind,
    })
    .collect()
}

/// Runs `job` with `batch` on `pool`, collecting the cases as they are told.
async fn run_batch(
    pool: &WorkerPool,
    job: &Job,
    batch: Batch,
    timeout: Duration,
    cancel: Option<tokio::sync::oneshot::Receiver<()>>,
) -> (Vec<CaseOutcome>, BatchEnd) {
    let told = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&told);
    let job = Job {
        batch: Some(batch),
        ..job.clone()
    };
    let slot = pool.slot(None).await.unwrap();
    let end = slot
        .run_batch(
            job,
            timeout,
            cancel,
            Box::new(|_| tempfile::tempfile()),
            Box::new(move |o| sink.lock().unwrap().push(o)),
        )
        .await;
    let told = std::mem::take(&mut *told.lock().unwrap());
    (told, end)
}

/// The case run on its own: the job with the case's start values, no batch.
async fn single(pool: &WorkerPool, job: &Job, case: &Case) -> Result<SimOutput, SimError> {
    let job = Job {
        start_values: case.start_values(&job.start_values),
        batch: None,
        ..job.clone()
    };
    let outcome = pool.run(job, TIMEOUT).await?;
    Ok(outcome.result.read_all().unwrap())
}

/// Equal to the bit (NaN equals NaN, 0.0 differs from -0.0).
fn same_bits(a: &[f64], b: &[f64]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn same_kpis(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| x.map(f64::to_bits) == y.map(f64::to_bits))
}

/// The case's batch result equals its single run: time points and every column to the bit,
/// and each KPI equal to `kpi::compute` on the single run's column.
fn assert_equal_to_single(what: &str, result: &CaseResult, single: &SimOutput, kpis: &[KpiSpec]) {
    let stored = result
        .trajectory
        .as_ref()
        .expect("trajectories were asked for")
        .read_all()
        .unwrap();
    assert!(same_bits(&stored.time, &single.time), "{what}: time points");
    assert_eq!(stored.columns.len(), single.columns.len(), "{what}");
    for (a, b) in stored.columns.iter().zip(&single.columns) {
        assert_eq!(a.name, b.name, "{what}");
        match (a.values.as_floats(), b.values.as_floats()) {
            (Some(x), Some(y)) => assert!(same_bits(x, y), "{what}: {}", a.name),
            _ => assert_eq!(a.values, b.values, "{what}: {}", a.name),
        }
    }
    let expected = kpi::of_output(kpis, single);
    assert!(
        same_kpis(&result.kpis, &expected),
        "{what}: KPIs {:?} ≠ {expected:?}",
        result.kpis
    );
    // And `of_output` is `compute` on the column.
    for (spec, value) in kpis.iter().zip(&expected) {
        let column = single
            .columns
            .iter()
            .find(|c| c.name == spec.variable)
            .unwrap();
        let numbers = column.values.numbers().unwrap();
        let direct = kpi::compute(&spec.kind, &single.time, &numbers);
        assert_eq!(
            direct.map(f64::to_bits),
            value.map(f64::to_bits),
            "{what}: {}",
            spec.name()
        );
    }
}

/// Runs `values` of parameter `name` as one batch and each on its own; asserts every case
/// equal and returns whether the batch was warm.
async fn batch_equals_single_runs(
    opened: &Opened,
    settings: RunSettings,
    name: &str,
    values: &[&str],
    kpi_variable: &str,
) -> bool {
    let (_scratch, pool) = pool(Limits::default());
    let job = base_job(opened, settings);
    let kpis = kpis_of(kpi_variable);
    let batch = Batch {
        cases: cases(name, values),
        kpis: kpis.clone(),
        trajectories: true,
    };
    let (told, end) = run_batch(&pool, &job, batch.clone(), TIMEOUT, None).await;
    assert!(end.unrun.is_empty() && end.cause.is_none(), "{end:?}");
    assert_eq!(told.len(), values.len());
    for (case, outcome) in batch.cases.iter().zip(&told) {
        assert_eq!(outcome.index, case.index);
        let what = format!("{} {name}={:?}", opened.info.model_name, case.start_values);
        let result = outcome
            .result
            .as_ref()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let single = single(&pool, &job, case).await.unwrap();
        assert_equal_to_single(&what, result, &single, &kpis);
    }
    end.warm
}

#[tokio::test]
async fn every_case_of_a_batch_equals_the_case_run_on_its_own() {
    for version in crate::support::VERSIONS {
        let cs = |outputs: &[&str]| RunSettings {
            interface: Some(Interface::Cs),
            stop_time: Some(3.0),
            output_interval: Some(0.05),
            outputs: outputs.iter().map(|o| o.to_string()).collect(),
            ..Default::default()
        };
        let ball = open_library("BouncingBall", version);
        let warm = batch_equals_single_runs(
            &ball,
            cs(&["h", "v"]),
            "e",
            &["0.5", "0.6", "0.7", "0.8", "0.9"],
            "h",
        )
        .await;
        assert!(warm, "BouncingBall {version} CS reuses its instance");
        let dahlquist = open_library("Dahlquist", version);
        let warm =
            batch_equals_single_runs(&dahlquist, cs(&["x"]), "k", &["0.5", "1", "2.5"], "x").await;
        assert!(warm, "Dahlquist {version} CS reuses its instance");
    }
    // Integer and Boolean parameters (Feedthrough's inputs set as start values), each type
    // recorded as it is and its KPIs taken as numbers.
    for (version, int, boolean) in [
        ("3.0", "Int32_input", "Boolean_input"),
        ("2.0", "Int32_input", "Boolean_input"),
    ] {
        let feedthrough = open_library("Feedthrough", version);
        let outputs = [
            int.replace("input", "output"),
            boolean.replace("input", "output"),
        ];
        let settings = RunSettings {
            interface: Some(Interface::Cs),
            stop_time: Some(1.0),
            output_interval: Some(0.1),
            outputs: outputs.to_vec(),
            ..Default::default()
        };
        let warm = batch_equals_single_runs(
            &feedthrough,
            settings.clone(),
            int,
            &["-3", "0", "7"],
            &outputs[0],
        )
        .await;
        assert!(warm);
        let warm = batch_equals_single_runs(
            &feedthrough,
            settings,
            boolean,
            &["true", "false"],
            &outputs[1],
        )
        .await;
        assert!(warm);
    }
}

/// Model Exchange (fmi-rs's driver with our solver) cannot reuse an instance: each case gets
/// a fresh one in the same worker, and still equals its single run.
#[tokio::test]
async fn model_exchange_batches_are_cold_and_still_equal_single_runs() {
    for version in crate::support::VERSIONS {
        let ball = open_library("BouncingBall", version);
        let settings = RunSettings {
            interface: Some(Interface::Me),
            stop_time: Some(2.0),
            output_interval: Some(0.05),
            ..Default::default()
        };
        let warm = batch_equals_single_runs(&ball, settings, "e", &["0.6", "0.8"], "h").await;
        assert!(!warm, "BouncingBall {version} ME is not warm");
    }
}

fn settings_for_on_k() -> RunSettings {
    RunSettings {
        interface: Some(Interface::Cs),
        stop_time: Some(1.0),
        output_interval: Some(0.1),
        outputs: vec!["x".into()],
        ..Default::default()
    }
}

fn outcome_of(told: &[CaseOutcome], index: u32) -> &Result<CaseResult, SimError> {
    &told
        .iter()
        .find(|o| o.index == index)
        .unwrap_or_else(|| panic!("case {index} was not told"))
        .result
}

/// Every case is told exactly once or listed unrun, never both.
fn assert_each_case_once(batch: &Batch, told: &[CaseOutcome], end: &BatchEnd) {
    let mut seen: Vec<u32> = told
        .iter()
        .map(|o| o.index)
        .chain(end.unrun.iter().copied())
        .collect();
    seen.sort_unstable();
    let mut all: Vec<u32> = batch.cases.iter().map(|c| c.index).collect();
    all.sort_unstable();
    assert_eq!(
        seen,
        all,
        "told {:?}, unrun {:?}",
        told.iter().map(|o| o.index).collect::<Vec<_>>(),
        end.unrun
    );
}

/// A segmentation fault on one case value ends the worker: that case fails alone with the
/// crash, the cases after it are unrun, and run again in a fresh worker they succeed, equal
/// to their single runs.
#[tokio::test]
async fn a_case_that_crashes_fails_alone_and_the_rest_run_in_a_fresh_worker() {
    let dir = tempfile::tempdir().unwrap();
    let opened = on_k(build_support::FmiVersion::V3, dir.path());
    let (_scratch, pool) = pool(Limits::default());
    let job = base_job(&opened, settings_for_on_k());
    let batch = Batch {
        cases: cases("k", &["1", "3", "0.5", "1.5"]),
        kpis: kpis_of("x"),
        trajectories: true,
    };
    let (told, end) = run_batch(&pool, &job, batch.clone(), TIMEOUT, None).await;
    assert_each_case_once(&batch, &told, &end);
    assert!(outcome_of(&told, 10).is_ok());
    let crash = outcome_of(&told, 11).as_ref().unwrap_err();
    assert!(
        matches!(crash, SimError::Crashed(m) if m.contains("segmentation fault")),
        "{crash:?}"
    );
    assert_eq!(end.unrun, [12, 13]);
    assert_eq!(end.cause.as_ref(), Some(crash));

    // The caller's rerun of the unrun cases, in a fresh worker.
    let rerun = Batch {
        cases: batch.cases[2..].to_vec(),
        ..batch.clone()
    };
    let (again, end) = run_batch(&pool, &job, rerun.clone(), TIMEOUT, None).await;
    assert!(
        end.unrun.is_empty() && end.cause.is_none() && end.warm,
        "{end:?}"
    );
    for (case, outcome) in rerun.cases.iter().zip(&again) {
        let single = single(&pool, &job, case).await.unwrap();
        assert_equal_to_single(
            "rerun",
            outcome.result.as_ref().unwrap(),
            &single,
            &batch.kpis,
        );
    }
}

/// An FMI error in one case fails that case only; its instance is freed and the next case
/// gets a fresh one, equal to its single run.
#[tokio::test]
async fn a_case_with_an_fmi_error_fails_alone_and_the_batch_goes_on() {
    for version in [build_support::FmiVersion::V3, build_support::FmiVersion::V2] {
        let dir = tempfile::tempdir().unwrap();
        let opened = on_k(version, dir.path());
        let (_scratch, pool) = pool(Limits::default());
        let job = base_job(&opened, settings_for_on_k());
        let batch = Batch {
            cases: cases("k", &["1", "2", "0.5", "2", "1.5"]),
            kpis: kpis_of("x"),
            trajectories: true,
        };
        let (told, end) = run_batch(&pool, &job, batch.clone(), TIMEOUT, None).await;
        assert!(end.unrun.is_empty() && end.cause.is_none(), "{end:?}");
        assert!(end.warm);
        assert_eq!(told.len(), 5);
        let failed: Vec<u32> = told
            .iter()
            .filter(|o| o.result.is_err())
            .map(|o| o.index)
            .collect();
        assert_eq!(failed, [11, 13], "the cases with k = 2");
        for (case, outcome) in batch.cases.iter().zip(&told) {
            assert_eq!(case.index, outcome.index);
            let single = single(&pool, &job, case).await;
            match (&outcome.result, single) {
                (
                    Err(SimError::Failed { reason, log }),
                    Err(SimError::Failed { reason: alone, .. }),
                ) => {
                    assert!(reason.contains("failed on purpose at k = 2"), "{reason}");
                    assert!(log.contains("failed on purpose at k = 2"), "{log}");
                    // The case's own log only, not its neighbours'.
                    assert_eq!(log.matches("failed on purpose").count(), 1, "{log}");
                    assert_eq!(reason, &alone);
                }
                (Ok(result), Ok(single)) => assert_equal_to_single(
                    &format!("{version:?} {:?}", case.start_values),
                    result,
                    &single,
                    &batch.kpis,
                ),
                (batch, single) => {
                    panic!("{:?}: batch {batch:?}, alone {single:?}", case.start_values)
                }
            }
        }
    }
}

/// The deadline is per case: eight cases of half a second each pass a 3 s deadline (4 s in
/// all), and a case that sleeps 10 s is stopped at it, the rest unrun.
#[tokio::test]
async fn the_deadline_is_per_case() {
    let dir = tempfile::tempdir().unwrap();
    let opened = on_k(build_support::FmiVersion::V3, dir.path());
    let (_scratch, pool) = pool(Limits::default());
    let job = base_job(&opened, settings_for_on_k());
    let deadline = Duration::from_secs(3);
    let batch = Batch {
        cases: cases("k", &["5"; 8]),
        kpis: vec![],
        trajectories: false,
    };
    let began = Instant::now();
    let (told, end) = run_batch(&pool, &job, batch, deadline, None).await;
    assert!(began.elapsed() > deadline, "{:?}", began.elapsed());
    assert!(end.unrun.is_empty() && end.cause.is_none(), "{end:?}");
    assert!(told.iter().all(|o| o.result.is_ok()), "{told:?}");

    let batch = Batch {
        cases: cases("k", &["1", "4", "1"]),
        kpis: vec![],
        trajectories: false,
    };
    let began = Instant::now();
    let (told, end) = run_batch(&pool, &job, batch.clone(), deadline, None).await;
    assert!(
        began.elapsed() < Duration::from_secs(8),
        "{:?}",
        began.elapsed()
    );
    assert_each_case_once(&batch, &told, &end);
    assert!(outcome_of(&told, 10).is_ok());
    assert_eq!(
        outcome_of(&told, 11).as_ref().unwrap_err(),
        &SimError::Timeout(deadline)
    );
    assert_eq!(end.unrun, [12]);
    assert_eq!(end.cause, Some(SimError::Timeout(deadline)));
}

/// Cancel mid-batch: the cases that ended are told, the running one is cancelled, the rest
/// are unrun.
#[tokio::test]
async fn a_cancel_mid_batch_cancels_the_running_case_and_leaves_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let opened = on_k(build_support::FmiVersion::V3, dir.path());
    let (_scratch, pool) = pool(Limits::default());
    let job = base_job(&opened, settings_for_on_k());
    let batch = Batch {
        cases: cases("k", &["5"; 8]),
        kpis: vec![],
        trajectories: false,
    };
    let (cancel, cancelled) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let _ = cancel.send(());
    });
    let began = Instant::now();
    let (told, end) = run_batch(&pool, &job, batch.clone(), TIMEOUT, Some(cancelled)).await;
    // The eight cases take 4 s: the cancel stopped the batch.
    assert!(
        began.elapsed() < Duration::from_secs(4),
        "{:?}",
        began.elapsed()
    );
    assert_each_case_once(&batch, &told, &end);
    let (last, done) = told.split_last().unwrap();
    assert!(
        !done.is_empty() && done.iter().all(|o| o.result.is_ok()),
        "{told:?}"
    );
    assert_eq!(last.result.as_ref().unwrap_err(), &SimError::Cancelled);
    assert!(!end.unrun.is_empty());
    assert_eq!(end.cause, Some(SimError::Cancelled));
}

/// A worker whose answer breaks the protocol after its first case (here a script standing in
/// for one whose FMU wrote to the channel): the case in progress fails as a crash, the rest
/// are unrun, and the worker is not waited for. A worker that dies before it starts leaves
/// every case unrun, as the service's failure.
#[tokio::test]
async fn a_hostile_worker_answer_fails_the_case_in_progress_only() {
    let dir = tempfile::tempdir().unwrap();
    let opened = open_library("Dahlquist", "3.0");
    let job = base_job(&opened, settings_for_on_k());
    let batch = Batch {
        cases: cases("k", &["1", "2", "3"]),
        kpis: kpis_of("x")[..1].to_vec(),
        trajectories: false,
    };
    let started = r#"printf '{"type":"started","sandbox":[]}\n'"#;
    let case = r#"printf '{"type":"case_done","index":10,"kpis":[0.5]}\n'"#;
    let scripts = [
        format!("{started}\n{case}\n{case}\nsleep 30"),
        format!("{started}\n{case}\nyes x | tr -d '\\n'"),
        format!(
            "{started}\n{case}\nprintf '{{\"type\":\"case_done\",\"index\":11,\"kpis\":[1,2,3]}}\\n'\nsleep 30"
        ),
    ];
    for script in scripts {
        let exe = dir.path().join("worker.sh");
        std::fs::write(&exe, format!("#!/bin/sh\nread job\n{script}\n")).unwrap();
        std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let pool = fake_pool(&exe, dir.path());
        let began = Instant::now();
        let (told, end) = run_batch(&pool, &job, batch.clone(), TIMEOUT, None).await;
        assert!(
            began.elapsed() < Duration::from_secs(10),
            "{script}: {:?}",
            began.elapsed()
        );
        assert_each_case_once(&batch, &told, &end);
        assert_eq!(told[0].result.as_ref().unwrap().kpis, [Some(0.5)]);
        let crash = told[1].result.as_ref().unwrap_err();
        assert!(
            matches!(crash, SimError::Crashed(m) if m.contains("malformed answer")),
            "{script}: {crash:?}"
        );
        assert_eq!(end.unrun, [12], "{script}");
    }
    // Before Started: every case unrun, the service's fault.
    let exe = dir.path().join("dead.sh");
    std::fs::write(&exe, "#!/bin/sh\nexit 3\n").unwrap();
    std::fs::set_permissions(&exe, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let pool = fake_pool(&exe, dir.path());
    let (told, end) = run_batch(&pool, &job, batch.clone(), TIMEOUT, None).await;
    assert!(told.is_empty());
    assert_eq!(end.unrun, [10, 11, 12]);
    assert!(
        matches!(&end.cause, Some(e @ SimError::Internal(_)) if e.is_service_fault()),
        "{end:?}"
    );
}

fn fake_pool(exe: &std::path::Path, dir: &std::path::Path) -> Arc<WorkerPool> {
    WorkerPool::new(fmu_gateway::sim::runner::PoolConfig {
        exe: exe.to_path_buf(),
        scratch_root: dir.join("scratch"),
        workers: 1,
        limits: Limits::default(),
        log_limit: 1024,
    })
}
