//! A corpus of hostile FMUs, built here from fmus/ with the HOSTILE_* defines. Each must end
//! as a failed run with a reason that says what happened, and harm nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fmu_gateway::sim::plan::RunSettings;
use fmu_gateway::sim::protocol::Interface;
use fmu_gateway::sim::runner::SimError;
use fmu_gateway::sim::sandbox::Limits;

use crate::support::{Opened, open_file, run};

#[path = "../../fmus/build_support.rs"]
#[allow(dead_code)]
mod build_support;

fn hostile(define: &str, out: &std::path::Path) -> Opened {
    let fmus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fmus");
    let name = define.to_lowercase();
    let path = build_support::build_fmu(
        &fmus,
        "Hostile",
        build_support::FmiVersion::V3,
        &[define],
        out,
        &name,
    )
    .expect("the hostile FMU builds");
    open_file(&path)
}

fn limits() -> Limits {
    Limits {
        address_space_bytes: 512 << 20,
        cpu_seconds: 10,
        ..Limits::default()
    }
}

async fn run_hostile(
    define: &str,
    interface: Interface,
    timeout: Duration,
) -> Result<(), SimError> {
    let dir = tempfile::tempdir().unwrap();
    let opened = hostile(define, dir.path());
    let settings = RunSettings {
        interface: Some(interface),
        stop_time: Some(1.0),
        output_interval: Some(0.1),
        ..Default::default()
    };
    run(&opened, settings, timeout, limits()).await.map(|_| ())
}

fn failed_with(result: Result<(), SimError>, needle: &str) -> String {
    match result {
        Err(SimError::Failed { reason, log }) => {
            let all = format!("{reason}\n{log}");
            assert!(all.contains(needle), "expected '{needle}' in: {all}");
            all
        }
        other => panic!("expected a failed run mentioning '{needle}', got {other:?}"),
    }
}

#[tokio::test]
async fn a_segfaulting_fmu_fails_the_run_and_says_so() {
    for interface in [Interface::Cs, Interface::Me] {
        let err = run_hostile("HOSTILE_SEGFAULT", interface, Duration::from_secs(20))
            .await
            .unwrap_err();
        assert!(
            matches!(err, SimError::Crashed(ref m) if m.contains("segmentation fault")),
            "{err:?}"
        );
    }
}

#[tokio::test]
async fn an_fmu_that_loops_forever_is_stopped_at_the_deadline() {
    let started = Instant::now();
    let err = run_hostile("HOSTILE_LOOP", Interface::Cs, Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(err, SimError::Timeout(Duration::from_secs(2)));
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("did not finish within 2 s"));
}

#[tokio::test]
async fn an_fmu_that_eats_memory_runs_out_at_the_limit() {
    let err = run_hostile("HOSTILE_ALLOC", Interface::Cs, Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::OutOfMemory(_)), "{err:?}");
    assert!(err.to_string().contains("ran out of memory"));
}

#[tokio::test]
async fn an_fmu_cannot_start_processes() {
    failed_with(
        run_hostile("HOSTILE_FORK", Interface::Cs, Duration::from_secs(20)).await,
        "fork failed",
    );
}

#[tokio::test]
async fn an_fmu_cannot_open_sockets() {
    failed_with(
        run_hostile("HOSTILE_SOCKET", Interface::Cs, Duration::from_secs(20)).await,
        "socket failed",
    );
}

#[tokio::test]
async fn an_fmu_cannot_read_files_outside_its_directory() {
    failed_with(
        run_hostile("HOSTILE_READ", Interface::Cs, Duration::from_secs(20)).await,
        "failed",
    );
}

#[tokio::test]
async fn an_fmu_cannot_write_outside_its_scratch_directory() {
    let target = std::path::Path::new("/tmp/fmu-gateway-hostile-write");
    let _ = std::fs::remove_file(target);
    failed_with(
        run_hostile("HOSTILE_WRITE", Interface::Cs, Duration::from_secs(20)).await,
        "failed",
    );
    assert!(!target.exists(), "the file was not written");
}

/// While a hostile FMU spins, the server answers other requests at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_keeps_serving_while_an_fmu_misbehaves() {
    let app =
        crate::common::spawn_app_with(|c| c.worker_exe = Some(crate::support::EXE.into())).await;
    let dir = tempfile::tempdir().unwrap();
    let opened = hostile("HOSTILE_LOOP", dir.path());
    let job = fmu_gateway::sim::plan::plan(
        &opened.info,
        &opened.fmu_dir(),
        &RunSettings {
            stop_time: Some(1.0),
            ..Default::default()
        },
    )
    .unwrap();
    let pool = app.state.workers.clone();
    let spinning = tokio::spawn(async move { pool.run(job, Duration::from_secs(3)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let client = crate::common::api_client();
    for _ in 0..20 {
        let started = Instant::now();
        let resp = client.get(app.at("/health")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    let account = app.register().await;
    let me = client
        .get(app.at("/api/v1/me"))
        .bearer_auth(&account.api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    assert!(matches!(spinning.await.unwrap(), Err(SimError::Timeout(_))));
}

#[tokio::test]
async fn the_sandbox_layers_are_active() {
    use fmu_gateway::sim::sandbox::{self, LayerStatus};
    let (_scratch, pool) = crate::support::pool(Limits::default());
    let reported = pool.probe().await.unwrap();
    let statuses: Vec<LayerStatus> = reported
        .iter()
        .map(|s| LayerStatus::from_wire(s).unwrap_or_else(|| panic!("unparsable layer {s:?}")))
        .collect();
    let missing = sandbox::missing_required(&statuses, sandbox::running_as_root());
    assert!(missing.is_empty(), "missing {missing:?} in {reported:#?}");
}
