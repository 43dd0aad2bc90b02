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

/// The CLI's CSV holds non-finite values as FMPy writes them, and its input file takes a
/// step as a repeated time, as the API does.
#[test]
fn the_cli_writes_non_finite_values_as_fmpy_and_reads_steps() {
    let dir = tempfile::tempdir().unwrap();
    let fmu = write_library("VanDerPol", "3.0", dir.path());
    let out = Command::new(EXE)
        .args(["fmu", "simulate"])
        .arg(&fmu)
        .args([
            "--interface",
            "me",
            "--solver",
            "euler",
            "--step-size",
            "0.1",
        ])
        .args(["--output-interval", "0.1", "--stop-time", "2.1"])
        .args(["--start", "mu=10", "--start", "x0=-2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(csv.lines().count(), 23, "{csv}");
    assert!(
        csv.ends_with(",-1.2414792343054024e204,inf\n2,inf,nan\n2.1,nan,nan\n"),
        "{csv}"
    );

    // u steps from 0 to 1 at t = 1: y = ∫u is 0 until then.
    let fmu = write_library("Integrator", "3.0", dir.path());
    let input = dir.path().join("step.csv");
    std::fs::write(&input, "time,u\n0,0\n1,0\n1,1\n2,1\n").unwrap();
    let out = Command::new(EXE)
        .args(["fmu", "simulate"])
        .arg(&fmu)
        .args(["--stop-time", "2", "--output-interval", "0.5", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let csv = String::from_utf8(out.stdout).unwrap();
    let y: Vec<f64> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(y.len(), 5, "{csv}");
    for (i, y) in y.iter().enumerate() {
        let exact = (i as f64 * 0.5 - 1.0).max(0.0);
        assert!((y - exact).abs() < 1e-9, "{csv}");
    }
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
        ("me", "bdf"),
        ("me", "Auto"),
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
            "solver must be auto, dormand_prince (or dopri), bdf or euler, not 'rk4'",
        ),
    ] {
        let out = simulate(interface, solver);
        assert_eq!(out.status.code(), Some(2), "a usage error");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(message), "{stderr}");
    }
}

/// Each kind of CLI failure reaches the user as `error: …` naming what is at fault: a flag
/// value that makes no sense exits 2 (as clap's own usage errors do), anything else 1, and a
/// run the model made fail also prints the FMU's log.
#[test]
fn cli_failures_name_the_flag_file_or_row_and_exit_by_kind() {
    let dir = tempfile::tempdir().unwrap();
    let fmu = write_library("Integrator", "2.0", dir.path());
    let simulate = |args: &[&str]| {
        let out = Command::new(EXE)
            .args(["fmu", "simulate"])
            .arg(&fmu)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let csv = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let no_header = csv("no_header.csv", "u,time\n0,1\n");
    let bad_row = csv("bad_row.csv", "time,u\n0,1\n1,x\n");
    let missing = dir.path().join("missing.csv").display().to_string();
    for (args, code, message) in [
        (
            vec!["--start", "k"],
            2,
            "error: --start k: expected name=value\n".to_string(),
        ),
        (
            vec!["--timeout", "0"],
            2,
            "error: --timeout must be a positive number of seconds\n".into(),
        ),
        (
            vec!["--timeout", "1e300"],
            2,
            "error: --timeout 1e300 is too long\n".into(),
        ),
        (
            vec!["--input", &no_header],
            1,
            format!(
                "error: {no_header}: the first column must be 'time', followed by the inputs\n"
            ),
        ),
        (
            vec!["--input", &bad_row],
            1,
            format!("error: {bad_row} row 3: column 2 is not a number\n"),
        ),
        (vec!["--input", &missing], 1, format!("error: {missing}: ")),
        (
            vec!["--start-time", "2", "--stop-time", "1"],
            1,
            "error: stop_time (1) must be after start_time (2)\n".into(),
        ),
    ] {
        let (status, stderr) = simulate(&args);
        assert_eq!(status, Some(code), "{args:?}: {stderr}");
        assert!(stderr.starts_with(&message), "{args:?}: {stderr}");
    }
}

/// A run the FMU fails: its reason, then its own log, and exit status 1.
#[test]
fn a_failed_run_prints_the_fmus_log() {
    let dir = tempfile::tempdir().unwrap();
    let fmus = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fmus");
    let fmu = crate::common::build_support::build_fmu(
        &fmus,
        "Hostile",
        crate::common::build_support::FmiVersion::V3,
        &["HOSTILE_READ"],
        dir.path(),
        "hostile_read",
    )
    .expect("the hostile FMU builds");
    let out = Command::new(EXE)
        .args(["fmu", "simulate"])
        .arg(&fmu)
        .args(["--stop-time", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let (reason, log) = stderr
        .split_once("\nFMU log:\n")
        .unwrap_or_else(|| panic!("no FMU log in: {stderr}"));
    assert!(reason.starts_with("error: "), "{stderr}");
    assert!(
        log.contains("open /etc/hostname failed"),
        "the FMU's own message: {stderr}"
    );
}

/// Runs `fmu <task> <file>`: exit code, stdout, stderr.
fn fmu_command(task: &str, file: &std::path::Path) -> (Option<i32>, String, String) {
    let out = Command::new(EXE)
        .args(["fmu", task])
        .arg(file)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_and_info_report_an_entry_listed_twice_and_refuse_different_copies() {
    use crate::common::archives;
    let dir = tempfile::tempdir().unwrap();
    let fmu = dir.path().join("twice.fmu");
    let bytes = archives::with_entry_twice(
        archives::library_fmu("BouncingBall", "3.0"),
        "extra/notes.txt",
        b"identical",
        b"identical",
    );
    std::fs::write(&fmu, bytes).unwrap();
    let warning = "entry 'extra/notes.txt' appears 2 times in the archive with identical contents; it was extracted once";

    let (code, stdout, stderr) = fmu_command("validate", &fmu);
    assert_eq!(code, Some(0), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines[..2],
        [
            format!(
                "{} (FMI 3.0 model BouncingBall): valid, 0 errors, 1 warning",
                fmu.display()
            )
            .as_str(),
            format!("warning duplicate_entry extra/notes.txt: {warning}").as_str(),
        ],
        "{stdout}"
    );
    let (code, stdout, stderr) = fmu_command("info", &fmu);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("Warning ") && l.ends_with(warning)),
        "{stdout}"
    );

    std::fs::write(
        &fmu,
        archives::with_entry_twice(
            archives::library_fmu("BouncingBall", "3.0"),
            "extra/notes.txt",
            b"one",
            b"two",
        ),
    )
    .unwrap();
    let (code, _, stderr) = fmu_command("validate", &fmu);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "error: entry 'extra/notes.txt' appears twice with different contents (same size, different CRC-32)\n"
    );
}

#[test]
fn validate_refuses_and_info_explains_an_fmu_with_only_scheduled_execution() {
    use crate::common::archives;
    let dir = tempfile::tempdir().unwrap();
    let fmu = dir.path().join("scheduled.fmu");
    let bytes = archives::with_interfaces(
        archives::library_fmu("BouncingBall", "3.0"),
        r#"<ScheduledExecution modelIdentifier="BouncingBall"/>"#,
    );
    std::fs::write(&fmu, bytes).unwrap();
    let message = "this FMU implements only Scheduled Execution, which this server does not run yet (it runs Co-Simulation and Model Exchange)";

    let (code, _, stderr) = fmu_command("validate", &fmu);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr, format!("error: {message}\n"));

    // info describes it (that is its job) and says why it cannot run here.
    let (code, stdout, stderr) = fmu_command("info", &fmu);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout
            .lines()
            .any(|l| l == "Interfaces            Scheduled Execution"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|l| l == format!("Cannot run            {message}")),
        "{stdout}"
    );

    // An FMU with nothing declared is a broken file, for validate and info alike.
    std::fs::write(
        &fmu,
        archives::with_interfaces(archives::library_fmu("BouncingBall", "3.0"), ""),
    )
    .unwrap();
    let (code, _, stderr) = fmu_command("info", &fmu);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "error: modelDescription.xml breaks the FMI 3.0 standard: No interface type defined.\n"
    );
    // validate gives the report, then why nothing can run.
    let (code, _, stderr) = fmu_command("validate", &fmu);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: {}: invalid, 1 error, 0 warnings\nerror fmi_rule: No interface type defined.\n\
             the FMU implements neither Co-Simulation nor Model Exchange, so this server cannot run it\n",
            fmu.display()
        )
    );
}

#[test]
fn info_lists_an_alias_and_simulate_records_and_sets_through_it() {
    use crate::common::archives;
    let dir = tempfile::tempdir().unwrap();
    for version in ["3.0", "2.0"] {
        let fmu = dir.path().join(format!("alias-{version}.fmu"));
        std::fs::write(&fmu, archives::bouncing_ball_with_alias(version)).unwrap();
        let (code, stdout, stderr) = fmu_command("info", &fmu);
        assert_eq!(code, Some(0), "{stderr}");
        let lines: Vec<&str> = stdout.lines().collect();
        let h = lines
            .iter()
            .position(|l| l.starts_with("h "))
            .unwrap_or_else(|| panic!("no h in {stdout}"));
        // the library's BouncingBall has its own alias h_ft, shown in feet (FMI 3: the
        // <Alias>'s displayUnit; FMI 2: the alias variable's)
        let h_ft = "  alias h_ft [ft]: Height of the ball, shown in feet";
        assert_eq!(
            lines[h + 1..h + 3],
            [h_ft, "  alias height: Height of the ball"],
            "FMI {version}: {stdout}"
        );

        let csv_path = dir.path().join(format!("alias-{version}.csv"));
        let out = Command::new(EXE)
            .args(["fmu", "simulate"])
            .arg(&fmu)
            .args([
                "--stop-time",
                "0.5",
                "--output-interval",
                "0.1",
                "--start",
                "height=2",
                "--output",
                "height",
                "-o",
            ])
            .arg(&csv_path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "FMI {version}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let csv = std::fs::read_to_string(&csv_path).unwrap();
        let mut rows = csv.lines();
        assert_eq!(rows.next(), Some("time,height"), "FMI {version}: {csv}");
        // h starts at 2 and falls freely: 2 - g t² / 2 at t = 0.5.
        let first: Vec<f64> = rows
            .next()
            .unwrap()
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        assert_eq!(first, [0.0, 2.0], "FMI {version}: {csv}");
        let last: Vec<f64> = rows
            .last()
            .unwrap()
            .split(',')
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            (last[1] - (2.0 - 9.81 * 0.25 / 2.0)).abs() < 1e-6,
            "FMI {version}: {csv}"
        );
    }
}

/// Runs `fmu simulate <fmu> <args>`, which must succeed; its CSV rows as numbers.
fn simulate_rows(fmu: &std::path::Path, args: &[&str]) -> Vec<Vec<f64>> {
    let out = Command::new(EXE)
        .args(["fmu", "simulate"])
        .arg(fmu)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
        .collect()
}

/// `--final-state` writes the FMU's state as fmusim's `--final-fmu-state-file` does, and
/// `--initial-state` (with `--start-time`, the time it holds) goes on from it exactly as one
/// run would, within 1e-12, for FMI 2 and FMI 3 Co-Simulation.
#[test]
fn simulate_saves_a_final_state_and_starts_from_it() {
    let dir = tempfile::tempdir().unwrap();
    for version in ["3.0", "2.0"] {
        let fmu = write_library("BouncingBall", version, dir.path());
        let state = dir.path().join(format!("state-{version}.bin"));
        let state_arg = state.to_str().unwrap();
        let grid = ["--output-interval", "0.1"];
        let first = simulate_rows(
            &fmu,
            &[&grid[..], &["--stop-time", "1", "--final-state", state_arg]].concat(),
        );
        assert_eq!(first.last().unwrap()[0], 1.0);
        assert!(std::fs::metadata(&state).unwrap().len() > 8);
        let continued = simulate_rows(
            &fmu,
            &[
                &grid[..],
                &[
                    "--start-time",
                    "1",
                    "--stop-time",
                    "2",
                    "--initial-state",
                    state_arg,
                ],
            ]
            .concat(),
        );
        let whole = simulate_rows(&fmu, &[&grid[..], &["--stop-time", "2"]].concat());
        let from = whole.iter().position(|r| r[0] >= 1.0 - 1e-9).unwrap();
        assert_eq!(whole.len() - from, continued.len(), "FMI {version}");
        for (a, b) in whole[from..].iter().zip(&continued) {
            for (x, y) in a.iter().zip(b) {
                assert!(
                    (x - y).abs() <= 1e-12 * x.abs().max(1.0),
                    "FMI {version}: {a:?} in one run, {b:?} continued"
                );
            }
        }

        // Without the time the file cannot hold, the CLI says what to give.
        let out = Command::new(EXE)
            .args(["fmu", "simulate"])
            .arg(&fmu)
            .args(["--stop-time", "2", "--initial-state", state_arg])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("--start-time"), "{stderr}");
    }
}

/// `fmu validate` is the upload's validation: the rules with their codes and lines, and a smoke
/// test of each interface in the sandboxed worker; errors exit 1 unless `--lenient`.
#[test]
fn validate_prints_the_report_with_codes_lines_and_smoke_tests() {
    use crate::common::archives;
    let dir = tempfile::tempdir().unwrap();

    let clean = write_library("Dahlquist", "2.0", dir.path());
    let (code, stdout, stderr) = fmu_command("validate", &clean);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "{} (FMI 2.0 model Dahlquist): valid, 0 errors, 0 warnings\n",
            clean.display()
        ) + &["co_simulation", "model_exchange"]
            .map(|i| {
                let ms = stdout
                    .lines()
                    .find(|l| l.starts_with(&format!("smoke test {i}: passed (0 to 0.1) in ")))
                    .unwrap_or_else(|| panic!("no passed smoke test of {i} in {stdout}"));
                format!("{ms}\n")
            })
            .concat()
    );

    // A start value above its max, on the line that has it: an error, exit 1 (the report on
    // stderr), or 0 with --lenient (on stdout).
    let broken = dir.path().join("broken.fmu");
    let bytes =
        archives::with_model_description(archives::library_fmu("BouncingBall", "3.0"), |xml| {
            xml.replacen(
                r#"start="0.7" min="0" max="1""#,
                r#"start="1.7" min="0" max="1""#,
                1,
            )
        });
    std::fs::write(&broken, &bytes).unwrap();
    let text = archives::files_of(&bytes)
        .into_iter()
        .find(|(name, _)| name == "modelDescription.xml")
        .map(|(_, b)| String::from_utf8(b).unwrap())
        .unwrap();
    let line = text
        .lines()
        .position(|l| l.contains(r#"name="e""#))
        .unwrap()
        + 1;
    let (code, _, stderr) = fmu_command("validate", &broken);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(
        stderr.contains(&format!("error start_out_of_range at line {line}, column "))
            && stderr.contains(r#"<Float64 name="e">: start=1.7 is above max=1"#),
        "{stderr}"
    );
    let out = Command::new(EXE)
        .args(["fmu", "validate", "--lenient"])
        .arg(&broken)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("invalid, 1 error, 0 warnings"), "{stdout}");
    assert!(
        stdout.contains("smoke test co_simulation: passed"),
        "{stdout}"
    );

    // An FMU that fails in initialize: only the smoke test can tell.
    let fmus = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fmus");
    let failing = crate::common::build_support::build_fmu(
        &fmus,
        "Dahlquist",
        crate::common::build_support::FmiVersion::V3,
        &["FAIL_INITIALIZE"],
        dir.path(),
        "fail_initialize",
    )
    .expect("the FMU builds");
    let (code, _, stderr) = fmu_command("validate", &failing);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("error smoke_test_failed co_simulation: instantiating, initialising and one step of co_simulation failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("smoke test model_exchange: failed"),
        "{stderr}"
    );
}

/// `-o` picks the format by its extension (any case): each file holds the run's values (the
/// MAT file in Dymola's layout, Parquet typed); an unknown extension is refused before the
/// run, listing the known ones, and a MAT file of text is refused naming the column, with no
/// file left behind.
#[test]
fn simulate_writes_the_format_its_output_files_extension_names() {
    let dir = tempfile::tempdir().unwrap();
    let fmu = write_library("Feedthrough", "3.0", dir.path());
    let simulate = |output: &std::path::Path, outputs: &[&str]| {
        let mut command = Command::new(EXE);
        command
            .args(["fmu", "simulate"])
            .arg(&fmu)
            .args(["--stop-time", "0.2", "--output-interval", "0.1"])
            .args(["--start", "Int64_input=-9007199254740992"]);
        for name in outputs {
            command.args(["--output", name]);
        }
        command.arg("-o").arg(output).output().unwrap()
    };
    let numbers = ["Float64_discrete_output", "Int64_output", "Boolean_output"];
    let mut files = std::collections::BTreeMap::new();
    for name in ["r.json", "r.csv", "r.MAT", "r.parquet"] {
        let path = dir.path().join(name);
        let out = simulate(&path, &numbers);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        files.insert(name, std::fs::read(&path).unwrap());
    }
    let json: serde_json::Value = serde_json::from_slice(&files["r.json"]).unwrap();
    assert_eq!(json["time"], serde_json::json!([0.0, 0.1, 0.2]));
    assert_eq!(
        json["columns"]["Int64_output"][2],
        serde_json::json!(-9007199254740992i64)
    );
    let csv = String::from_utf8(files["r.csv"].clone()).unwrap();
    assert!(
        csv.starts_with("time,Float64_discrete_output,Int64_output,Boolean_output\n"),
        "{csv}"
    );
    let mat = crate::common::mat::dymola_variables(&files["r.MAT"]);
    assert_eq!(mat[2].0, "Int64_output");
    assert_eq!(mat[2].1, [-9007199254740992.0; 3]);
    assert_eq!(mat[3].1, [1.0; 3], "Booleans are 0 and 1");
    assert_eq!(&files["r.parquet"][..4], b"PAR1");
    assert_eq!(&files["r.parquet"][files["r.parquet"].len() - 4..], b"PAR1");

    let out = simulate(&dir.path().join("r.xlsx"), &numbers);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("r.xlsx") && stderr.contains(".json, .csv, .mat or .parquet"),
        "{stderr}"
    );
    assert!(!dir.path().join("r.xlsx").exists());

    let text = dir.path().join("text.mat");
    let out = simulate(&text, &["String_output"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("'String_output' is a string variable") && stderr.contains("Parquet"),
        "{stderr}"
    );
    assert!(!text.exists(), "no file is left for a refused format");
}

/// `fmu simulate --reference` for CI pipelines: exit 0 and the verdict on a pass, 3 on a
/// failed check (the results still written), 1 for a reference that cannot be read, 2 for a
/// tolerance without a reference; `--fmu-reference` runs an experiment the FMU carries.
#[test]
fn simulate_with_a_reference_exits_by_the_verdict() {
    use crate::common::build_support::{LS_REF_DIR, exponential_csv, replace_entry};
    let dir = tempfile::tempdir().unwrap();
    let fmu = write_library("Dahlquist", "3.0", dir.path());
    let times: Vec<f64> = (0..=20).map(|i| i as f64 * 0.05).collect();
    let good = dir.path().join("good.csv");
    std::fs::write(&good, exponential_csv(&times, 1.0)).unwrap();
    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, exponential_csv(&times, 1.2)).unwrap();
    let simulate = |extra: &[&str]| {
        let out = Command::new(EXE)
            .args(["fmu", "simulate"])
            .arg(&fmu)
            .args(["--stop-time", "1", "--output-interval", "0.01"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stdout, stderr) = simulate(&["--reference", good.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.starts_with("time,x\n"), "{stdout}");
    assert!(stderr.contains("pass x: max deviation"), "{stderr}");
    assert!(stderr.contains("21 points"), "{stderr}");
    assert!(stderr.ends_with("reference check PASSED\n"), "{stderr}");

    let (code, stdout, stderr) = simulate(&["--reference", bad.to_str().unwrap()]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stdout.starts_with("time,x\n"),
        "the results are still written"
    );
    assert!(stderr.contains("FAIL x:"), "{stderr}");
    assert!(stderr.contains("first at t = 0.05"), "{stderr}");
    assert!(stderr.ends_with("reference check FAILED\n"), "{stderr}");
    // Tolerances wide enough make it pass (exp(0.2 t) - 1 ≤ 0.23 on 0..1).
    let (code, _, stderr) = simulate(&["--reference", bad.to_str().unwrap(), "--rel-tol", "0.25"]);
    assert_eq!(code, Some(0), "{stderr}");

    let (code, _, stderr) = simulate(&["--reference", "/nonexistent.csv"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("/nonexistent.csv"), "{stderr}");
    let (code, _, stderr) = simulate(&["--abs-tol", "1e-3"]);
    assert_eq!(code, Some(2), "{stderr}");

    // A carried experiment: its own settings (0..1 s every 0.01 s) without any flag.
    let out = Command::new(EXE)
        .args(["fmu", "simulate"])
        .arg(&fmu)
        .args(["--fmu-reference", "short"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("0 of 101 points outside"), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 102);
    // The same FMU carrying a wrong reference fails.
    let short: Vec<f64> = (0..=100).map(|i| i as f64 * 0.01).collect();
    let wrong = exponential_csv(&short, 1.1);
    replace_entry(&fmu, &format!("{LS_REF_DIR}/short.csv"), wrong.as_bytes()).unwrap();
    let out = Command::new(EXE)
        .args(["fmu", "simulate"])
        .arg(&fmu)
        .args(["--fmu-reference", "short"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
}

/// `fmu sweep` runs the design's cases in warm batches and writes one line per case; each
/// case's KPI equals the same case simulated on its own by `fmu simulate`.
#[test]
fn a_sweep_on_a_local_file_writes_each_case_with_the_kpis_of_its_own_run() {
    let dir = tempfile::tempdir().unwrap();
    let fmu = write_library("Dahlquist", "3.0", dir.path());
    let out_path = dir.path().join("cases.csv");
    let out = Command::new(EXE)
        .args(["fmu", "sweep"])
        .arg(&fmu)
        .args(["--stop-time", "1", "--output-interval", "0.1"])
        .args([
            "--grid",
            "k=0.5:2:4",
            "--kpi",
            "final:x",
            "--kpi",
            "first_crossing:x:0.5",
        ])
        .arg("-o")
        .arg(&out_path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("4 cases: 4 succeeded, 0 failed"),
        "{stderr}"
    );
    let csv = std::fs::read_to_string(&out_path).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "index,status,k,final(x),\"first_crossing(x, 0.5)\",error"
    );
    assert_eq!(lines.len(), 5, "{csv}");
    for (i, k) in ["0.5", "1", "1.5", "2"].iter().enumerate() {
        let cells: Vec<&str> = lines[i + 1].split(',').collect();
        assert_eq!(
            &cells[..3],
            [i.to_string().as_str(), "succeeded", k],
            "{csv}"
        );
        // The same case alone: its last x.
        let alone = Command::new(EXE)
            .args(["fmu", "simulate"])
            .arg(&fmu)
            .args([
                "--stop-time",
                "1",
                "--output-interval",
                "0.1",
                "--output",
                "x",
            ])
            .arg("--start")
            .arg(format!("k={k}"))
            .output()
            .unwrap();
        assert!(alone.status.success());
        let text = String::from_utf8_lossy(&alone.stdout);
        let last = text.lines().last().unwrap().split(',').nth(1).unwrap();
        assert_eq!(
            cells[3], last,
            "case {i}: the KPI is the run's own last value"
        );
        // x = exp(-k t) crosses 0.5 at ln 2 / k; the KPI interpolates linearly between the
        // recorded 0.1 s points around it.
        let crossing: f64 = cells[4].parse().unwrap_or(f64::NAN);
        let k: f64 = k.parse().unwrap();
        let x = |t: f64| (-k * t).exp();
        let exact = std::f64::consts::LN_2 / k;
        if exact <= 1.0 {
            let before = (exact / 0.1).floor() * 0.1;
            let linear = before + 0.1 * (x(before) - 0.5) / (x(before) - x(before + 0.1));
            assert!(
                (crossing - linear).abs() < 1e-4,
                "case {i}: {crossing} vs {linear}"
            );
        } else {
            assert_eq!(cells[4], "", "case {i}: never crosses within 1 s");
        }
    }
    // Exactly one design; a KPI of something not recorded is named before anything runs.
    let both = Command::new(EXE)
        .args(["fmu", "sweep"])
        .arg(&fmu)
        .args(["--grid", "k=1", "--lhs", "4", "--uniform", "k=1:2"])
        .output()
        .unwrap();
    assert_eq!(both.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&both.stderr).contains("exactly one design"));
    let unknown = Command::new(EXE)
        .args(["fmu", "sweep"])
        .arg(&fmu)
        .args(["--grid", "k=1,2", "--kpi", "max:nothing"])
        .output()
        .unwrap();
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("nothing"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
}
