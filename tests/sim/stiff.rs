//! Stiff models: Robertson's kinetics (`lib:Robertson`) through the real worker and the CLI,
//! with the automatic solver (Dormand–Prince switching to BDF), BDF, and the C core's implicit
//! Co-Simulation integrator; a long run's memory; a solver that gives up says why.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fmu_gateway::fmi::library::DEMO_FMUS;
use fmu_gateway::sim::plan::RunSettings;
use fmu_gateway::sim::protocol::{Interface, Solver};
use fmu_gateway::sim::runner::SimError;
use fmu_gateway::sim::sandbox::Limits;

use crate::support::{EXE, VERSIONS, column, open_library, run, simulate};

/// Robertson at t = 40 (Hairer & Wanner, Solving ODEs II; every stiff solver's test).
const AT_40: [(&str, f64); 3] = [
    ("y1", 0.715_827_1),
    ("y2", 9.185_535e-6),
    ("y3", 0.284_163_7),
];

fn relative_error(value: f64, expected: f64) -> f64 {
    ((value - expected) / expected).abs()
}

/// The values at t = 40 of a run that ends there, each within 1e-3 relative.
fn assert_literature_values_at_40(label: &str, time: &[f64], value: impl Fn(&str) -> f64) {
    assert_eq!(time.last(), Some(&40.0), "{label}");
    for (name, expected) in AT_40 {
        let got = value(name);
        let error = relative_error(got, expected);
        println!("{label}: {name}(40) = {got:.7e} (relative error {error:.1e})");
        assert!(
            error < 1e-3,
            "{label}: {name}(40) = {got}, expected {expected}"
        );
    }
}

fn to_40(solver: Option<Solver>) -> RunSettings {
    RunSettings {
        stop_time: Some(40.0),
        output_interval: Some(0.4),
        solver,
        ..RunSettings::default()
    }
}

#[tokio::test]
async fn robertson_reaches_the_literature_values_with_every_stiff_capable_path() {
    for version in VERSIONS {
        for (interface, solver) in [
            (Interface::Me, None),
            (Interface::Me, Some(Solver::Bdf)),
            (Interface::Cs, None),
        ] {
            let out = simulate("Robertson", version, interface, to_40(solver)).await;
            let label = format!("FMI {version} {interface:?} {solver:?}");
            assert_literature_values_at_40(&label, &out.time, |name| {
                *column(&out, name).last().unwrap()
            });
        }
    }
}

/// The automatic solver starts explicit and says in the run's log where it switched.
#[tokio::test]
async fn the_automatic_solver_logs_its_switch_to_bdf() {
    let opened = open_library("Robertson", "3.0");
    let settings = RunSettings {
        interface: Some(Interface::Me),
        ..to_40(None)
    };
    let outcome = run(
        &opened,
        settings,
        Duration::from_secs(60),
        Limits::default(),
    )
    .await
    .unwrap();
    let line = outcome
        .log
        .lines()
        .find(|l| l.contains("stiffness detected at t = "))
        .unwrap_or_else(|| panic!("no switch in the log: {}", outcome.log));
    assert!(line.ends_with(": continuing with BDF"), "{line}");
    let t: f64 = line
        .split("at t = ")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .unwrap()
        .parse()
        .unwrap();
    // Robertson turns stiff within its first fast transient (y2 settles by t ≈ 1e-3 … 1).
    assert!(t > 0.0 && t < 40.0, "{line}");

    // Dormand–Prince on its own never switches, and its log says nothing of it.
    let settings = RunSettings {
        interface: Some(Interface::Me),
        ..to_40(Some(Solver::DormandPrince))
    };
    let outcome = run(
        &opened,
        settings,
        Duration::from_secs(60),
        Limits::default(),
    )
    .await
    .unwrap();
    assert!(
        !outcome.log.contains("stiffness detected"),
        "{}",
        outcome.log
    );
}

/// Derivatives that overflow (Dahlquist with k = -1e6: x = e^(1e6 t) passes 1.8e308 at
/// t ≈ 7.1e-4): each solver fails the run at that time, naming why, and it is the model's
/// error, not an out-of-memory or a time limit.
#[tokio::test]
async fn a_model_that_blows_up_fails_with_the_solvers_reason_and_time() {
    let opened = open_library("Dahlquist", "3.0");
    for solver in [Solver::Bdf, Solver::Auto, Solver::DormandPrince] {
        let settings = RunSettings {
            interface: Some(Interface::Me),
            solver: Some(solver),
            stop_time: Some(1.0),
            output_interval: Some(0.1),
            start_values: vec![("k".into(), "-1e6".into())],
            ..RunSettings::default()
        };
        let started = Instant::now();
        let err = run(
            &opened,
            settings,
            Duration::from_secs(60),
            Limits::default(),
        )
        .await
        .expect_err("the run must fail");
        let SimError::Failed { reason, .. } = &err else {
            panic!("{solver:?}: expected the model's failure, got {err:?}");
        };
        println!("{solver:?}: {reason} ({:?})", started.elapsed());
        assert!(
            reason.contains("step size underflow at t = 0.000695")
                || reason.contains("Newton iteration failed to converge at t = 0.000695"),
            "{solver:?}: {reason}"
        );
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}

fn write_library(model: &str, version: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let (_, _, bytes) = DEMO_FMUS
        .iter()
        .find(|(m, v, _)| *m == model && *v == version)
        .unwrap();
    let path = dir.join(format!("{model}-{version}.fmu"));
    std::fs::write(&path, bytes).unwrap();
    path
}

/// `fmu-gateway fmu simulate Robertson.fmu …` exactly as a user types it; returns its stdout, and the peak resident memory of it and every process under it
/// (the worker, its sandbox relay and the sandboxed child: `wait4` reports the largest of a
/// process and the descendants it reaped).
// The child is reaped by wait4 (not Child::wait), which also reports its peak memory.
#[allow(clippy::zombie_processes)]
fn simulate_with_peak_memory(args: &[&str]) -> (String, u64) {
    let child = Command::new(EXE)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let output = {
        use std::io::Read;
        let mut stdout = String::new();
        child.stdout.unwrap().read_to_string(&mut stdout).unwrap();
        let mut stderr = String::new();
        child.stderr.unwrap().read_to_string(&mut stderr).unwrap();
        (stdout, stderr)
    };
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value; wait4 writes into the two we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{args:?}: {}",
        output.1
    );
    (output.0, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn robertson_to_1e8_with_500_output_points_finishes_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    for version in ["3.0", "2.0"] {
        let fmu = write_library("Robertson", version, dir.path());
        let fmu = fmu.to_str().unwrap();
        for solver in ["auto", "bdf"] {
            let started = Instant::now();
            let (csv, peak) = simulate_with_peak_memory(&[
                "fmu",
                "simulate",
                fmu,
                "--interface",
                "me",
                "--solver",
                solver,
                "--stop-time",
                "1e8",
                "--output-interval",
                "2e5",
            ]);
            let rows: Vec<&str> = csv.lines().skip(1).collect();
            println!(
                "FMI {version} {solver}: {} rows in {:?}, peak RSS {:.1} MB; last {}",
                rows.len(),
                started.elapsed(),
                peak as f64 / 1e6,
                rows.last().unwrap()
            );
            assert_eq!(rows.len(), 501, "0, 2e5, …, 1e8");
            let last: Vec<f64> = rows
                .last()
                .unwrap()
                .split(',')
                .map(|v| v.parse().unwrap())
                .collect();
            assert_eq!(last[0], 1e8);
            // Mass is conserved (y1 + y2 + y3 = 1) and A is nearly used up by t = 1e8.
            assert!((last[1] + last[2] + last[3] - 1.0).abs() < 1e-5, "{last:?}");
            assert!(last[1] > 0.0 && last[1] < 1e-4, "{last:?}");
            assert!(peak < 100_000_000, "peak RSS {peak} bytes");
        }
    }
}

/// The same model, the CLI's `--solver` spellings, values at t = 40 in the CSV.
#[test]
fn the_cli_runs_robertson_with_bdf_and_auto() {
    let dir = tempfile::tempdir().unwrap();
    let fmu = write_library("Robertson", "2.0", dir.path());
    for solver in ["bdf", "auto", "BDF"] {
        let (csv, _) = simulate_with_peak_memory(&[
            "fmu",
            "simulate",
            fmu.to_str().unwrap(),
            "--interface",
            "model-exchange",
            "--solver",
            solver,
            "--stop-time",
            "40",
            "--output-interval",
            "4",
        ]);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        let last: Vec<f64> = csv
            .lines()
            .last()
            .unwrap()
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        let time = [last[0]];
        assert_literature_values_at_40(&format!("CLI {solver}"), &time, |name| {
            let i = header.iter().position(|h| *h == name).unwrap();
            last[i]
        });
    }
}

/// Dormand–Prince alone on Robertson to t = 1e8 crawls (its steps are held near the stability
/// limit, ~1e-4 and shrinking as the model stiffens): it ends at the CPU limit, reported as
/// such — not as running out of memory, which the issue saw.
#[tokio::test]
async fn the_explicit_solver_on_a_stiff_model_ends_at_the_cpu_limit_not_out_of_memory() {
    let opened = open_library("Robertson", "3.0");
    let settings = RunSettings {
        interface: Some(Interface::Me),
        solver: Some(Solver::DormandPrince),
        stop_time: Some(1e8),
        output_interval: Some(2e5),
        ..RunSettings::default()
    };
    let limits = Limits {
        cpu_seconds: 3,
        ..Limits::default()
    };
    let err = run(&opened, settings, Duration::from_secs(60), limits)
        .await
        .expect_err("Dormand-Prince cannot finish this in 3 s");
    assert!(matches!(err, SimError::CpuLimit(3)), "{err:?}");
}
