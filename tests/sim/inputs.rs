//! Input signals as FMI tools read them: a time given twice is a step, its first value holding
//! just before it and its second from it on, for continuous and discrete inputs alike, in
//! Co-Simulation and Model Exchange, FMI 3 and 2. Proven on Echo, a model built here whose
//! outputs are its inputs (yu = u, yk = k), so each recorded row shows exactly the input
//! value the FMU held.

use std::time::Duration;

use fmu_gateway::sim::plan::RunSettings;
use fmu_gateway::sim::protocol::{InputSignal, Interface, SimOutput};
use fmu_gateway::sim::sandbox::Limits;

use crate::common::build_support::{FmiVersion, build_fmu};
use crate::support::{Opened, column, open_file, run};

fn echo(version: FmiVersion) -> Opened {
    let dir = tempfile::tempdir().unwrap();
    let fmus = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fmus");
    let file = build_fmu(&fmus, "Echo", version, &[], dir.path(), "Echo").expect("Echo builds");
    open_file(&file)
}

fn signal(name: &str, t: &[f64], u: &[f64]) -> InputSignal {
    InputSignal {
        name: name.into(),
        t: t.to_vec(),
        u: u.to_vec(),
    }
}

async fn simulate(opened: &Opened, interface: Interface, inputs: Vec<InputSignal>) -> SimOutput {
    let settings = RunSettings {
        interface: Some(interface),
        stop_time: Some(2.0),
        output_interval: Some(0.25),
        outputs: vec!["yu".into(), "yk".into(), "x".into()],
        inputs,
        ..Default::default()
    };
    let outcome = run(opened, settings, Duration::from_secs(60), Limits::default())
        .await
        .unwrap_or_else(|e| panic!("{interface:?}: {e}"));
    outcome.result.read_all().unwrap()
}

/// `(time, yu, yk)` rows, for comparing whole runs at once.
fn rows(out: &SimOutput) -> Vec<(f64, f64, f64)> {
    let (yu, yk) = (column(out, "yu"), column(out, "yk"));
    (0..out.time.len())
        .map(|i| (out.time[i], yu[i], yk[i]))
        .collect()
}

const VERSIONS: [FmiVersion; 2] = [FmiVersion::V3, FmiVersion::V2];

/// The usual step, `t: [0, 1, 1, 2]`, on an output point. Model Exchange records the time
/// of the step twice (an input event): the left values, then the right ones. Co-Simulation
/// holds each input over a communication step: the step that ends at t = 1 was taken with
/// the left values (so they are what t = 1 shows), the one from t = 1 with the right ones.
#[tokio::test]
async fn a_repeated_time_steps_exactly_there_in_both_interfaces() {
    let inputs = vec![
        signal("u", &[0.0, 1.0, 1.0, 2.0], &[0.0, 0.0, 1.0, 1.0]),
        signal("k", &[0.0, 1.0, 1.0], &[5.0, 5.0, 7.0]),
    ];
    for version in VERSIONS {
        let opened = echo(version);
        let before = |t: f64| (t, 0.0, 5.0);
        let after = |t: f64| (t, 1.0, 7.0);

        let me = simulate(&opened, Interface::Me, inputs.clone()).await;
        let mut expected: Vec<_> = [0.0, 0.25, 0.5, 0.75, 1.0].map(before).to_vec();
        expected.extend([1.0, 1.25, 1.5, 1.75, 2.0].map(after));
        assert_eq!(rows(&me), expected, "{version:?} ME");
        // x = ∫u: 0 until the step, then t - 1, to the tolerance (1e-6): fmi-rs's Model
        // Exchange driver gives the solver the right value of a continuous input from within
        // the relative tolerance of the step's time, so the solver's last stages before it see
        // the new value (a ramp, the bug this replaces, was off by 0.5).
        let x = column(&me, "x");
        assert!(
            x[4].abs() < 1e-5 && (x[9] - 1.0).abs() < 1e-5,
            "{version:?} ME x: {x:?}"
        );

        let cs = simulate(&opened, Interface::Cs, inputs.clone()).await;
        let mut expected: Vec<_> = [0.0, 0.25, 0.5, 0.75, 1.0].map(before).to_vec();
        expected.extend([1.25, 1.5, 1.75, 2.0].map(after));
        assert_eq!(rows(&cs), expected, "{version:?} CS");
        let x = column(&cs, "x");
        assert!(
            x[4].abs() < 1e-12 && (x[8] - 1.0).abs() < 1e-9,
            "{version:?} CS x: {x:?}"
        );
    }
}

/// A step between output points, after a ramp: the left value is where the ramp got to
/// (0.6), not a value interpolated towards the right one. Both interfaces stop at the step
/// (an input event; a variable communication step).
#[tokio::test]
async fn a_step_between_output_points_ends_a_ramp_at_its_left_value() {
    let inputs = vec![
        signal("u", &[0.0, 0.6, 0.6, 2.0], &[0.0, 0.6, 2.0, 2.0]),
        signal("k", &[0.0, 0.6, 0.6], &[1.0, 1.0, -1.0]),
    ];
    for version in VERSIONS {
        let opened = echo(version);
        let me = simulate(&opened, Interface::Me, inputs.clone()).await;
        assert_eq!(
            rows(&me),
            [
                (0.0, 0.0, 1.0),
                (0.25, 0.25, 1.0),
                (0.5, 0.5, 1.0),
                (0.6, 0.6, 1.0),
                (0.6, 2.0, -1.0),
                (0.75, 2.0, -1.0),
                (1.0, 2.0, -1.0),
                (1.25, 2.0, -1.0),
                (1.5, 2.0, -1.0),
                (1.75, 2.0, -1.0),
                (2.0, 2.0, -1.0),
            ],
            "{version:?} ME"
        );
        // Each communication step shows the inputs set at its start.
        let cs = rows(&simulate(&opened, Interface::Cs, inputs.clone()).await);
        let (to_step, from_step): (Vec<(f64, f64, f64)>, Vec<_>) =
            cs.iter().partition(|r| r.0 <= 0.6);
        assert_eq!(
            to_step,
            [
                (0.0, 0.0, 1.0),
                (0.25, 0.0, 1.0),
                (0.5, 0.25, 1.0),
                (0.6, 0.5, 1.0)
            ],
            "{version:?} CS"
        );
        // fmi-rs's FMI 2 driver (which the fast loop matches) skips the output point after
        // an input event between points (0.75 here): the rows, not the step, differ.
        let times: Vec<f64> = from_step.iter().map(|r| r.0).collect();
        let grid = [0.75, 1.0, 1.25, 1.5, 1.75, 2.0];
        match version {
            FmiVersion::V3 => assert_eq!(times, grid),
            FmiVersion::V2 => assert_eq!(times, grid[1..]),
        }
        assert!(
            from_step.iter().all(|r| (r.1, r.2) == (2.0, -1.0)),
            "{version:?} CS: {cs:?}"
        );
    }
}

/// A step at the start time (or a signal of one point, or a step at its last point) has
/// no left value inside the run: the run starts with the right value and keeps the last.
#[tokio::test]
async fn a_step_at_the_start_and_single_points_start_with_the_right_value() {
    let inputs = vec![
        signal("u", &[0.0, 0.0], &[1.0, 2.0]),
        signal("k", &[0.0], &[3.0]),
    ];
    for version in VERSIONS {
        let opened = echo(version);
        for interface in [Interface::Me, Interface::Cs] {
            let out = simulate(&opened, interface, inputs.clone()).await;
            let expected: Vec<_> = (0..=8).map(|i| (i as f64 * 0.25, 2.0, 3.0)).collect();
            assert_eq!(rows(&out), expected, "{version:?} {interface:?}");
        }
        // A step at the last point: the right value from there to the end of the run.
        let last = vec![signal("u", &[0.0, 1.0, 1.0], &[0.0, 0.0, 4.0])];
        let me = simulate(&opened, Interface::Me, last).await;
        let yu = column(&me, "yu");
        assert_eq!(
            (yu[4], yu[5], yu[yu.len() - 1]),
            (0.0, 4.0, 4.0),
            "{version:?}"
        );
    }
}
