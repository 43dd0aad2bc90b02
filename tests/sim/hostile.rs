//! A corpus of hostile FMUs, built here from fmus/ with the HOSTILE_* defines. Each must end
//! as a failed run with a reason that says what happened, and harm nothing.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fmu_gateway::sim::plan::RunSettings;
use fmu_gateway::sim::protocol::Interface;
use fmu_gateway::sim::runner::SimError;
use fmu_gateway::sim::sandbox::Limits;

use crate::support::{Opened, open_file, run};

use crate::common::{Api, build_support};

fn hostile(define: &str, out: &std::path::Path) -> Opened {
    hostile_with(&[define], out)
}

/// A hostile FMU from `defines` (one `HOSTILE_*` attack plus its targets).
fn hostile_with(defines: &[&str], out: &std::path::Path) -> Opened {
    let fmus = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fmus");
    let name = defines[0].to_lowercase();
    let path = build_support::build_fmu(
        &fmus,
        "Hostile",
        build_support::FmiVersion::V3,
        defines,
        out,
        &name,
    )
    .expect("the hostile FMU builds");
    open_file(&path)
}

/// Runs an attack (defines as for [`hostile_with`]) in Co-Simulation.
async fn attack(defines: &[&str]) -> Result<(), SimError> {
    let dir = tempfile::tempdir().unwrap();
    let opened = hostile_with(defines, dir.path());
    let settings = RunSettings {
        interface: Some(Interface::Cs),
        stop_time: Some(1.0),
        output_interval: Some(0.1),
        ..Default::default()
    };
    let outcome = run(&opened, settings, Duration::from_secs(20), limits()).await?;
    panic!("the attack got through: {}", outcome.log)
}

/// This test process stands in for the server: the attacks aim at it.
fn target_pid() -> String {
    format!("HOSTILE_TARGET_PID={}", std::process::id())
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
    let me = app.get("/api/v1/me", &account.api_key).await;
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

#[tokio::test]
async fn an_fmu_cannot_kill_its_parent_or_the_server() {
    let all = failed_with(
        attack(&["HOSTILE_KILL_PARENT", &target_pid()]).await,
        "blocked",
    );
    assert!(all.contains("getppid() = 0"), "{all}");
    assert!(
        all.contains(&format!("kill({}): ", std::process::id())),
        "{all}"
    );
}

#[tokio::test]
async fn kill_minus_one_reaches_only_the_fmu_itself() {
    // The model refuses to send it unless it is pid 1 of a PID namespace.
    failed_with(attack(&["HOSTILE_KILL_ALL"]).await, "blocked: kill(-1)");
}

#[tokio::test]
async fn an_fmu_cannot_read_the_servers_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("root.key");
    std::fs::write(&key, "secret").unwrap();
    let define = format!("HOSTILE_KEY_PATH=\"{}\"", key.display());
    let all = failed_with(
        attack(&["HOSTILE_SECRETS", &target_pid(), &define]).await,
        "blocked",
    );
    assert!(all.contains("/environ: Permission denied"), "{all}");
    assert!(all.contains("/cmdline: Permission denied"), "{all}");
}

#[tokio::test]
async fn an_fmu_cannot_use_io_uring() {
    failed_with(
        attack(&["HOSTILE_IO_URING"]).await,
        "blocked: io_uring_setup: Operation not permitted",
    );
}

#[tokio::test]
async fn an_fmu_cannot_ptrace_or_prlimit_the_server() {
    let all = failed_with(attack(&["HOSTILE_PTRACE", &target_pid()]).await, "blocked");
    assert!(all.contains("Operation not permitted"), "{all}");
}

#[tokio::test]
async fn an_fmu_inherits_no_descriptors_of_the_server() {
    // A descriptor this process holds without close-on-exec, as a careless server might.
    let file = std::fs::File::open("/etc/hostname").unwrap();
    let leaked = unsafe { libc::dup(std::os::fd::AsRawFd::as_raw_fd(&file)) };
    assert!(leaked >= 0);
    let result = attack(&["HOSTILE_FDS"]).await;
    unsafe { libc::close(leaked) };
    failed_with(result, "blocked: no descriptors");
}

#[tokio::test]
async fn an_fmu_cannot_connect_to_unix_sockets_outside() {
    use std::os::linux::net::SocketAddrExt;
    let name = format!("fmu-gateway-test-{}", std::process::id());
    let address = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
    let _abstract = std::os::unix::net::UnixListener::bind_addr(&address).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    let _pathname = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let all = failed_with(
        attack(&[
            "HOSTILE_UNIX_SOCKET",
            &format!("HOSTILE_SOCKET_NAME=\"{name}\""),
            &format!("HOSTILE_SOCKET_PATH=\"{}\"", path.display()),
        ])
        .await,
        "blocked",
    );
    assert!(
        all.contains("abstract socket: Operation not permitted"),
        "{all}"
    );
    assert!(
        all.contains("pathname socket: Operation not permitted"),
        "{all}"
    );
}

#[tokio::test]
async fn filling_the_disk_fills_only_the_runs_own_scratch() {
    let (scratch, pool) = crate::support::pool(limits());
    let dir = tempfile::tempdir().unwrap();
    let opened = hostile_with(&["HOSTILE_FILL_DISK"], dir.path());
    let job = fmu_gateway::sim::plan::plan(
        &opened.info,
        &opened.fmu_dir(),
        &RunSettings {
            stop_time: Some(1.0),
            ..Default::default()
        },
    )
    .unwrap();
    let result = pool.run(job, Duration::from_secs(20)).await.map(|_| ());
    // The default scratch is 64 MiB: the FMU got no further than that (and its own log,
    // which lives there too, could not say so).
    failed_with(result, "the run's scratch space of 64 MiB is full");
    let left: Vec<_> = walk(scratch.path());
    assert!(left.is_empty(), "left behind: {left:?}");
}

fn walk(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            found.push(e.path());
            found.extend(walk(&e.path()));
        }
    }
    found
}

#[tokio::test]
async fn a_fork_bomb_starts_nothing() {
    failed_with(attack(&["HOSTILE_FORK_BOMB"]).await, "blocked: fork");
}

/// The corpus can tell a breach: with the seccomp layer switched off, io_uring gets through
/// (so the allow-list is what stops it above).
#[tokio::test]
async fn without_seccomp_io_uring_gets_through() {
    use fmu_gateway::sim::sandbox::{Layer, LayerSet};
    let dir = tempfile::tempdir().unwrap();
    let opened = hostile("HOSTILE_IO_URING", dir.path());
    let mut disabled = LayerSet::default();
    disabled.insert(Layer::Seccomp);
    let limits = Limits {
        disabled,
        ..limits()
    };
    let settings = RunSettings {
        stop_time: Some(1.0),
        ..Default::default()
    };
    let outcome = run(&opened, settings, Duration::from_secs(20), limits)
        .await
        .expect("io_uring works without seccomp");
    assert!(outcome.log.contains("got through"), "{}", outcome.log);
    assert!(
        outcome
            .sandbox
            .iter()
            .any(|l| l == "seccomp missing: disabled by configuration"),
        "{:?}",
        outcome.sandbox
    );
}

/// The CPU limit still reads as such through the PID namespace's relay (the relay re-raises
/// the child's SIGXCPU).
#[tokio::test]
async fn an_fmu_that_burns_cpu_hits_its_cpu_limit() {
    let dir = tempfile::tempdir().unwrap();
    let opened = hostile("HOSTILE_LOOP", dir.path());
    let limits = Limits {
        cpu_seconds: 1,
        ..limits()
    };
    let settings = RunSettings {
        stop_time: Some(1.0),
        ..Default::default()
    };
    let err = run(&opened, settings, Duration::from_secs(20), limits)
        .await
        .unwrap_err();
    assert_eq!(err, SimError::CpuLimit(1));
}

/// A model with threads of its own works (real FMUs parallelise); a thread bomb stops at
/// the bound.
#[tokio::test]
async fn an_fmu_may_use_a_few_threads_but_not_thousands() {
    let dir = tempfile::tempdir().unwrap();
    let opened = hostile("HOSTILE_THREADS", dir.path());
    let settings = RunSettings {
        stop_time: Some(1.0),
        ..Default::default()
    };
    let outcome = run(&opened, settings, Duration::from_secs(20), limits())
        .await
        .expect("a model with 4 threads runs");
    assert!(outcome.log.contains("4 threads ran"), "{}", outcome.log);
    let all = failed_with(attack(&["HOSTILE_THREAD_BOMB"]).await, "blocked");
    let started: u64 = all
        .split("blocked: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{all}"));
    assert!(
        started <= fmu_gateway::sim::sandbox::MAX_FMU_THREADS,
        "{started} threads: {all}"
    );
}
