//! Results checked against closed forms, for both FMI versions and both interfaces.

use fmu_gateway::sim::plan::RunSettings;
use fmu_gateway::sim::protocol::Interface;

use crate::support::{INTERFACES, VERSIONS, column, simulate};

const G: f64 = 9.81;
const E: f64 = 0.7;

#[tokio::test]
async fn dahlquist_matches_the_exponential_within_1e_6() {
    for version in VERSIONS {
        for interface in INTERFACES {
            let settings = RunSettings {
                stop_time: Some(10.0),
                output_interval: Some(0.1),
                tolerance: Some(1e-10),
                ..Default::default()
            };
            let out = simulate("Dahlquist", version, interface, settings).await;
            let x = column(&out, "x");
            assert!(
                out.time.len() >= 101,
                "{version} {interface:?}: {} points",
                out.time.len()
            );
            for (t, x) in out.time.iter().zip(x) {
                let exact = (-t).exp();
                assert!(
                    ((x - exact) / exact).abs() < 1e-6,
                    "{version} {interface:?} t={t}: {x} vs {exact}"
                );
            }
        }
    }
}

/// The first and second bounce of a ball dropped from 1 m: t1 = sqrt(2 h0 / g), then it
/// leaves with v1 = e g t1 and lands again at t2 = t1 + 2 v1 / g.
#[tokio::test]
async fn the_bouncing_ball_bounces_when_and_as_high_as_the_closed_form_says() {
    let t1 = (2.0 / G).sqrt();
    let v1 = E * G * t1;
    let t2 = t1 + 2.0 * v1 / G;
    for version in VERSIONS {
        for interface in INTERFACES {
            let settings = RunSettings {
                stop_time: Some(1.5),
                output_interval: Some(0.01),
                tolerance: Some(1e-10),
                ..Default::default()
            };
            let out = simulate("BouncingBall", version, interface, settings).await;
            let (h, v) = (column(&out, "h"), column(&out, "v"));
            // Between the bounces the flight is a parabola; check every output point on it.
            let mut checked = 0;
            for (i, &t) in out.time.iter().enumerate() {
                let expected = if t < t1 - 1e-9 {
                    1.0 - G / 2.0 * t * t
                } else if t > t1 + 1e-9 && t < t2 - 1e-9 {
                    v1 * (t - t1) - G / 2.0 * (t - t1).powi(2)
                } else {
                    continue;
                };
                assert!(
                    (h[i] - expected).abs() < 1e-6,
                    "{version} {interface:?} t={t}: h={} expected {expected}",
                    h[i]
                );
                checked += 1;
            }
            assert!(checked > 100, "{checked}");
            // The bounce itself: the first time v turns positive is at t1 (event rows are
            // recorded at the event time).
            let first_up = (0..out.time.len()).find(|&i| v[i] > 0.0).unwrap();
            let t_event = out.time[first_up];
            match interface {
                Interface::Me => assert!(
                    (t_event - t1).abs() < 1e-6,
                    "{version} ME: bounce at {t_event}, expected {t1}"
                ),
                // CS reports at communication points only: the bounce lies in the step before.
                Interface::Cs => assert!(
                    out.time[first_up - 1] <= t1 && t1 <= t_event,
                    "{version} CS"
                ),
            }
            // The apex after the first bounce: e² h0.
            let apex = v1 * v1 / (2.0 * G);
            assert!((apex - E * E).abs() < 1e-12);
            let highest = (0..out.time.len())
                .filter(|&i| out.time[i] > t1 && out.time[i] < t2)
                .map(|i| h[i])
                .fold(f64::MIN, f64::max);
            assert!(
                highest <= apex + 1e-6 && highest > apex - 0.01,
                "{version} {interface:?}: {highest} vs {apex}"
            );
        }
    }
}

/// The period of Van der Pol's limit cycle (mu = 1), from upward zero crossings of x0,
/// against the literature value 6.6632868593… (reproduced here with a tight tolerance).
#[tokio::test]
async fn van_der_pol_settles_on_the_known_limit_cycle_period() {
    for version in VERSIONS {
        for interface in INTERFACES {
            let settings = RunSettings {
                stop_time: Some(40.0),
                output_interval: Some(1e-3),
                tolerance: Some(1e-10),
                ..Default::default()
            };
            let out = simulate("VanDerPol", version, interface, settings).await;
            let x0 = column(&out, "x0");
            let mut crossings = Vec::new();
            for i in 1..out.time.len() {
                if x0[i - 1] < 0.0 && x0[i] >= 0.0 {
                    let (ta, tb) = (out.time[i - 1], out.time[i]);
                    crossings.push(ta + (tb - ta) * (-x0[i - 1]) / (x0[i] - x0[i - 1]));
                }
            }
            assert!(crossings.len() >= 4, "{crossings:?}");
            let period = crossings[crossings.len() - 1] - crossings[crossings.len() - 2];
            assert!(
                (period - 6.663_286_859_3).abs() < 1e-4,
                "{version} {interface:?}: period {period}"
            );
        }
    }
}

#[tokio::test]
async fn inputs_are_interpolated_and_start_values_applied() {
    use fmu_gateway::sim::protocol::InputSignal;
    for version in VERSIONS {
        // u(t) = t, k = 2: ME integrates x' = k u exactly: x(t) = t².
        let ramp = InputSignal {
            name: "u".into(),
            t: vec![0.0, 5.0],
            u: vec![0.0, 5.0],
        };
        let settings = RunSettings {
            stop_time: Some(5.0),
            output_interval: Some(0.1),
            tolerance: Some(1e-10),
            start_values: vec![("k".into(), "2".into())],
            inputs: vec![ramp.clone()],
            ..Default::default()
        };
        let me = simulate("Integrator", version, Interface::Me, settings.clone()).await;
        let y = column(&me, "y");
        assert!(
            (y[y.len() - 1] - 25.0).abs() < 1e-6,
            "{version} ME: {}",
            y[y.len() - 1]
        );
        // CS: the importer sets the input at each communication point and the FMU holds it
        // over the step, so x(5) is the left Riemann sum 2 · Σ 0.1·t_i = 24.5.
        let cs = simulate("Integrator", version, Interface::Cs, settings).await;
        let y = column(&cs, "y");
        assert!(
            (y[y.len() - 1] - 24.5).abs() < 1e-6,
            "{version} CS: {}",
            y[y.len() - 1]
        );
    }
    // A start value changes the physics: dropped from 2 m the ball lands at sqrt(4 / g).
    let settings = RunSettings {
        stop_time: Some(1.0),
        output_interval: Some(0.001),
        start_values: vec![("h".into(), "2".into())],
        ..Default::default()
    };
    let out = simulate("BouncingBall", "3.0", Interface::Me, settings).await;
    let v = column(&out, "v");
    let first_up = out.time[(0..v.len()).find(|&i| v[i] > 0.0).unwrap()];
    assert!((first_up - (4.0 / G).sqrt()).abs() < 1e-6, "{first_up}");
}

#[tokio::test]
async fn euler_is_there_for_those_who_ask_for_it() {
    let settings = RunSettings {
        stop_time: Some(1.0),
        output_interval: Some(0.1),
        step_size: Some(1e-4),
        solver: Some(fmu_gateway::sim::protocol::Solver::Euler),
        ..Default::default()
    };
    let out = simulate("Dahlquist", "3.0", Interface::Me, settings).await;
    let x = column(&out, "x");
    let end = x[x.len() - 1];
    // First order: close, but not to 1e-6.
    assert!((end - (-1.0f64).exp()).abs() < 1e-4, "{end}");
}

#[test]
fn bad_requests_are_refused_before_any_fmu_code_runs() {
    use fmu_gateway::sim::plan::plan;
    let opened = crate::support::open_library("BouncingBall", "3.0");
    let dir = opened.fmu_dir();
    let cases: Vec<(RunSettings, &str)> = vec![
        (
            RunSettings {
                start_values: vec![("nope".into(), "1".into())],
                ..Default::default()
            },
            "no variable 'nope'",
        ),
        (
            RunSettings {
                start_values: vec![("h".into(), "high".into())],
                ..Default::default()
            },
            "is not a number",
        ),
        (
            RunSettings {
                outputs: vec!["nope".into()],
                ..Default::default()
            },
            "no variable 'nope'",
        ),
        (
            RunSettings {
                stop_time: Some(-1.0),
                ..Default::default()
            },
            "must be after start_time",
        ),
        (
            RunSettings {
                output_interval: Some(0.0),
                ..Default::default()
            },
            "positive",
        ),
        (
            RunSettings {
                output_interval: Some(1e-9),
                ..Default::default()
            },
            "output points",
        ),
        (
            RunSettings {
                tolerance: Some(2.0),
                ..Default::default()
            },
            "tolerance",
        ),
        (
            RunSettings {
                interface: Some(Interface::Me),
                solver: Some(fmu_gateway::sim::protocol::Solver::Euler),
                ..Default::default()
            },
            "step_size",
        ),
    ];
    for (settings, message) in cases {
        let err = plan(&opened.info, &dir, &settings).unwrap_err().to_string();
        assert!(err.contains(message), "{err} should mention {message}");
    }
    // Defaults come from the default experiment.
    let job = plan(&opened.info, &dir, &RunSettings::default()).unwrap();
    assert_eq!(
        (job.start_time, job.stop_time, job.output_interval),
        (0.0, 3.0, 0.01)
    );
    assert_eq!(job.interface, Interface::Cs);
}
