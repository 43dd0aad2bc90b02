//! `fmu-gateway fmu info|validate|simulate` on library FMUs.

use std::process::Command;

use fmu_gateway::fmi::library::DEMO_FMUS;

use crate::support::EXE;

fn write_library(model: &str, version: &str, dir: &std::path::Path) -> std::path::PathBuf {
    let (_, _, bytes) = DEMO_FMUS
        .iter()
        .find(|(m, v, _)| *m == model && *v == version)
        .unwrap();
    let path = dir.join(format!("{model}.fmu"));
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn info_validate_and_simulate_work_on_a_local_file() {
    let dir = tempfile::tempdir().unwrap();
    let fmu = write_library("BouncingBall", "3.0", dir.path());

    let out = Command::new(EXE)
        .args(["fmu", "info"])
        .arg(&fmu)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("BouncingBall")
            && text.contains("3.0")
            && text.contains("Co-Simulation, Model Exchange"),
        "{text}"
    );
    assert!(text.lines().any(|l| l.starts_with("h ")), "{text}");

    let out = Command::new(EXE)
        .args(["fmu", "validate"])
        .arg(&fmu)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let csv_path = dir.path().join("out.csv");
    let out = Command::new(EXE)
        .args(["fmu", "simulate"])
        .arg(&fmu)
        .args([
            "--interface",
            "me",
            "--stop-time",
            "1",
            "--output-interval",
            "0.01",
            "--start",
            "h=2",
            "--output",
            "h",
            "-o",
        ])
        .arg(&csv_path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("time,h"));
    let first: Vec<f64> = lines
        .next()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(first, vec![0.0, 2.0]);
    let last: Vec<f64> = csv
        .lines()
        .last()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!((last[0] - 1.0).abs() < 1e-12);
    // Dropped from 2 m: lands at t1 = sqrt(4/g), leaves with e·g·t1, flies until t = 1.
    let (g, e) = (9.81, 0.7);
    let t1 = (4.0f64 / g).sqrt();
    let expected = e * g * t1 * (1.0 - t1) - g / 2.0 * (1.0 - t1).powi(2);
    assert!((last[1] - expected).abs() < 1e-6, "{last:?} vs {expected}");
}

#[test]
fn the_cli_reads_inputs_from_csv_and_explains_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fmu = write_library("Integrator", "2.0", dir.path());
    let input = dir.path().join("in.csv");
    std::fs::write(&input, "time,u\n0,1\n10,1\n").unwrap();
    let out = Command::new(EXE)
        .args(["fmu", "simulate"])
        .arg(&fmu)
        .args(["--interface", "me", "--stop-time", "2", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).unwrap();
    let last: Vec<f64> = csv
        .lines()
        .last()
        .unwrap()
        .split(',')
        .map(|v| v.parse().unwrap())
        .collect();
    assert!((last[1] - 2.0).abs() < 1e-6, "{csv}");

    let out = Command::new(EXE)
        .args(["fmu", "simulate"])
        .arg(&fmu)
        .args(["--start", "nope=1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no variable 'nope'"));

    let not_fmu = dir.path().join("x.fmu");
    std::fs::write(&not_fmu, b"hello").unwrap();
    let out = Command::new(EXE)
        .args(["fmu", "validate"])
        .arg(&not_fmu)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a zip"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_cli_takes_the_spellings_every_face_takes_and_names_the_allowed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let fmu = write_library("Dahlquist", "3.0", dir.path());
    let simulate = |interface: &str, solver: &str| {
        Command::new(EXE)
            .args(["fmu", "simulate"])
            .arg(&fmu)
            .args(["--interface", interface, "--solver", solver])
            .args([
                "--stop-time",
                "1",
                "--output-interval",
                "0.5",
                "--step-size",
                "0.01",
            ])
            .output()
            .unwrap()
    };
    for (interface, solver) in [
        ("model-exchange", "dopri"),
        ("model_exchange", "dormand_prince"),
        ("ME", "Euler"),
        ("co-simulation", "dopri5"),
        ("cs", "dormand-prince"),
    ] {
        let out = simulate(interface, solver);
        assert!(
            out.status.success(),
            "{interface} {solver}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let csv = String::from_utf8(out.stdout).unwrap();
        assert_eq!(csv.lines().next(), Some("time,x"), "{csv}");
    }
    for (interface, solver, message) in [
        (
            "xx",
            "euler",
            "interface must be cs or me (or co_simulation, model_exchange), not 'xx'",
        ),
        (
            "me",
            "rk4",
            "solver must be dormand_prince (or dopri) or euler, not 'rk4'",
        ),
    ] {
        let out = simulate(interface, solver);
        assert_eq!(out.status.code(), Some(2), "a usage error");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
}
