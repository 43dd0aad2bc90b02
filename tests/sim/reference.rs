//! The check an upload can run: every reference an FMU carries (FMI-LS-REF), each run through
//! the worker pool and sandbox with a time limit, compared, and reported by name.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fmu_gateway::domain::runs::reference::check_carried;
use fmu_gateway::sim::sandbox::Limits;

use crate::common::build_support::{
    self, LS_REF_DIR, dahlquist_references, exponential_csv, replace_entry,
};
use crate::support::{open_file, pool};

/// The verdicts of the references the FMU file at `path` carries, each run within `each`
/// seconds and all within `total`.
async fn carried(
    pool: &fmu_gateway::sim::runner::WorkerPool,
    path: &std::path::Path,
    each: u64,
    total: u64,
) -> Vec<fmu_gateway::domain::runs::reference::CarriedVerdict> {
    let opened = open_file(path);
    check_carried(
        pool,
        &opened.info,
        &opened.fmu_dir(),
        Duration::from_secs(each),
        Duration::from_secs(total),
    )
    .await
    .unwrap()
}

fn library_file(model: &str, dir: &std::path::Path) -> PathBuf {
    let (_, _, bytes) = fmu_gateway::fmi::library::DEMO_FMUS
        .iter()
        .find(|(m, v, _)| *m == model && *v == "3.0")
        .unwrap();
    let path = dir.join(format!("{model}.fmu"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn the_library_dahlquist_reproduces_its_references_and_a_wrong_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let (_scratch, pool) = pool(Limits::default());
    let path = library_file("Dahlquist", dir.path());
    let verdicts = carried(&pool, &path, 30, 60).await;
    let names: Vec<&str> = verdicts.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["default", "short"]);
    for v in &verdicts {
        let check = v.check.as_ref().unwrap_or_else(|| panic!("{v:?}"));
        assert!(check.passed, "{v:?}");
        assert_eq!(check.variables[0].points_compared, 101);
    }

    // "short" made wrong (k = 1.1); "default" still passes.
    let times: Vec<f64> = (0..=100).map(|i| i as f64 * 0.01).collect();
    let wrong = exponential_csv(&times, 1.1);
    replace_entry(&path, &format!("{LS_REF_DIR}/short.csv"), wrong.as_bytes()).unwrap();
    let verdicts = carried(&pool, &path, 30, 60).await;
    let passed: Vec<bool> = verdicts
        .iter()
        .map(|v| v.check.as_ref().unwrap().passed)
        .collect();
    assert_eq!(passed, [true, false]);
    assert_eq!(
        verdicts[1].check.as_ref().unwrap().variables[0].points_outside,
        99
    );
}

#[tokio::test]
async fn a_reference_that_cannot_run_says_why_and_a_slow_model_meets_the_time_limit() {
    let dir = tempfile::tempdir().unwrap();
    let (_scratch, pool) = pool(Limits::default());
    // An experiment that needs stimuli is listed with the reason, not run without them.
    let path = library_file("Dahlquist", dir.path());
    let experiments = "<Experiments><Experiment name=\"driven\" stopTime=\"1\">\
                       <Stimuli source=\"in.csv\"/><References source=\"short.csv\"/>\
                       </Experiment></Experiments>";
    replace_entry(
        &path,
        &format!("{LS_REF_DIR}/experiments.xml"),
        experiments.as_bytes(),
    )
    .unwrap();
    let verdicts = carried(&pool, &path, 30, 60).await;
    assert_eq!(verdicts.len(), 1);
    assert!(verdicts[0].check.is_none());
    assert!(
        verdicts[0].error.as_deref().unwrap().contains("Stimuli"),
        "{verdicts:?}"
    );

    // A model that sleeps in every step, carrying Dahlquist's references: stopped at the limit.
    let fmus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fmus");
    let slow = build_support::build_fmu(
        &fmus,
        "Hostile",
        build_support::FmiVersion::V3,
        &["HOSTILE_SLEEP"],
        dir.path(),
        "slow",
    )
    .unwrap();
    for (name, data) in dahlquist_references() {
        replace_entry(&slow, &name, &data).unwrap();
    }
    let started = Instant::now();
    let verdicts = carried(&pool, &slow, 2, 60).await;
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(verdicts.len(), 2);
    for v in &verdicts {
        let error = v.error.as_deref().unwrap_or_else(|| panic!("{v:?}"));
        assert!(error.contains("did not finish within 2 s"), "{error}");
    }
    // All references together get `total`: the first meets it, the second is not run.
    let started = Instant::now();
    let verdicts = carried(&pool, &slow, 30, 3).await;
    assert!(started.elapsed() < Duration::from_secs(15));
    let errors: Vec<&str> = verdicts.iter().filter_map(|v| v.error.as_deref()).collect();
    assert_eq!(errors.len(), 2, "{verdicts:?}");
    // The first is stopped at the budget (by its own limit, cut to what is left, or by the
    // budget itself); the second never gets a worker.
    assert!(errors[0].contains("3 s"), "{errors:?}");
    assert!(errors[1].contains("the 3 s for checking all"), "{errors:?}");
}
