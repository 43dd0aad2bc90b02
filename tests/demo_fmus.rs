//! Builds the demo FMUs from `fmus/` and simulates them with fmi-rs itself: Co-Simulation
//! results are checked against closed-form solutions, Model Exchange runs (forward Euler from
//! fmi-rs) are smoke tests.

// fmi-rs's simulate functions take the (non-Sync) recorder as an Arc
#![allow(clippy::arc_with_non_send_sync)]

#[path = "../fmus/build_support.rs"]
mod build_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use build_support::{FmiVersion, HOSTILE_DEFINES, LIBRARY_MODELS, build_fmu};
use fmi_rs::fmi3::LibraryKind;
use fmi_rs::fmi3::types::fmi3Status;
use fmi_rs::model_description::{fmi2 as md2, fmi3 as md3};
use fmi_rs::sim::solver::ForwardEulerFactory;
use fmi_rs::sim::{fmi2 as sim2, fmi3 as sim3};
use tempfile::TempDir;

const G: f64 = 9.81;
const E: f64 = 0.7;

fn fmus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fmus")
}

/// A built and extracted FMU; the temporary directory lives as long as this value.
struct Built {
    _dir: TempDir,
    fmu: PathBuf,
    unzipdir: PathBuf,
}

fn build(model: &str, version: FmiVersion, defines: &[&str]) -> Built {
    let dir = TempDir::new().unwrap();
    let fmu = build_fmu(&fmus_dir(), model, version, defines, dir.path(), model)
        .unwrap_or_else(|e| panic!("building {model} ({version:?}) failed: {e}"));
    let unzipdir = dir.path().join("unzipped");
    fmi_rs::zip::extract_zip_archive(&fmu, &unzipdir).unwrap();
    Built {
        _dir: dir,
        fmu,
        unzipdir,
    }
}

fn md3(built: &Built) -> Arc<md3::ModelDescription> {
    let md = md3::ModelDescription::from_path(&built.unzipdir.join("modelDescription.xml"))
        .expect("FMI 3 model description parses");
    let problems: Vec<String> = md.validate().into_iter().map(|p| p.message).collect();
    assert!(problems.is_empty(), "{}: {problems:#?}", md.modelName);
    Arc::new(md)
}

fn md2(built: &Built) -> Arc<md2::ModelDescription> {
    let md = md2::ModelDescription::from_path(&built.unzipdir.join("modelDescription.xml"))
        .expect("FMI 2 model description parses");
    let problems: Vec<String> = md.validate().into_iter().map(|p| p.message).collect();
    assert!(problems.is_empty(), "{}: {problems:#?}", md.modelName);
    Arc::new(md)
}

/// Recorded values: time and one column per requested variable.
struct Results {
    time: Vec<f64>,
    columns: Vec<Vec<f64>>,
}

impl Results {
    fn column(&self, i: usize) -> &[f64] {
        &self.columns[i]
    }

    /// The value of column `i` at the last row whose time equals `t` (within 1e-9).
    fn at(&self, i: usize, t: f64) -> f64 {
        let row = self
            .time
            .iter()
            .rposition(|&time| (time - t).abs() < 1e-9)
            .unwrap_or_else(|| panic!("no row at t={t}"));
        self.columns[i][row]
    }
}

#[derive(Clone, Copy)]
enum Run {
    Cs,
    CsEventMode,
    MeEuler(f64),
}

struct Experiment<'a> {
    stop_time: f64,
    output_interval: f64,
    start_values: &'a [(&'a str, &'a str)],
    record: &'a [&'a str],
}

fn simulate3(built: &Built, run: Run, exp: &Experiment) -> (Results, Vec<f64>) {
    let (time, rows, events) = simulate3_rows(built, run, exp);
    let columns = (0..exp.record.len())
        .map(|i| rows.iter().map(|row| row[i].as_f64().unwrap()[0]).collect())
        .collect();
    (Results { time, columns }, events)
}

/// The recorded times, typed rows (one value per recorded variable, arrays whole) and events.
fn simulate3_rows(
    built: &Built,
    run: Run,
    exp: &Experiment,
) -> (Vec<f64>, Vec<Vec<sim3::VariableValue>>, Vec<f64>) {
    let md = md3(built);
    let indices: Vec<usize> = exp
        .record
        .iter()
        .map(|name| {
            md.modelVariables
                .iter()
                .position(|v| v.name == *name)
                .unwrap_or_else(|| panic!("no variable {name}"))
        })
        .collect();
    let settings = sim3::SimulationSettings {
        unzipdir: built.unzipdir.clone(),
        model_description: md.clone(),
        library_kind: LibraryKind::Native,
        enable_dae: false,
        start_time: 0.0,
        stop_time: exp.stop_time,
        visible: false,
        logging_on: false,
        set_stop_time: true,
        output_interval: exp.output_interval,
        log_time_scale: false,
        tolerance: 1e-8,
        set_tolerance: false,
        start_values: exp
            .start_values
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        log_fmi_calls: false,
        intermediate_update: false,
        input_file: None,
        early_return_allowed: matches!(run, Run::CsEventMode),
        event_mode_used: matches!(run, Run::CsEventMode),
        log_file: None,
        initial_fmu_state_file: None,
        final_fmu_state_file: None,
    };
    let recorder = Arc::new(sim3::recorder::Recorder::new(sim3::Trajectories::new(
        md.clone(),
        indices.clone(),
    )));
    match run {
        Run::Cs | Run::CsEventMode => sim3::cs::simulate(&settings, None, recorder.clone()),
        Run::MeEuler(step) => sim3::me::simulate(
            &settings,
            &ForwardEulerFactory {
                fixed_step_size: step,
            },
            None,
            recorder.clone(),
        ),
    }
    .unwrap_or_else(|e| panic!("{} FMI 3 simulation failed: {e}", md.modelName));
    let mut trajectories = recorder.trajectories.borrow_mut();
    trajectories.validate().unwrap();
    let events = trajectories.events();
    (
        std::mem::take(&mut trajectories.time),
        std::mem::take(&mut trajectories.rows),
        events,
    )
}

fn simulate2(built: &Built, run: Run, exp: &Experiment) -> Results {
    let (time, rows) = simulate2_rows(built, run, exp);
    let columns = (0..exp.record.len())
        .map(|i| rows.iter().map(|row| row[i].to_f64().unwrap()).collect())
        .collect();
    Results { time, columns }
}

/// The recorded times and typed rows (one value per recorded variable).
fn simulate2_rows(
    built: &Built,
    run: Run,
    exp: &Experiment,
) -> (Vec<f64>, Vec<Vec<sim2::VariableValue>>) {
    let md = md2(built);
    let indices: Vec<usize> = exp
        .record
        .iter()
        .map(|name| {
            md.modelVariables
                .iter()
                .position(|v| v.name == *name)
                .unwrap_or_else(|| panic!("no variable {name}"))
        })
        .collect();
    let settings = sim2::SimulationSettings {
        unzipdir: built.unzipdir.clone(),
        model_description: md.clone(),
        start_time: 0.0,
        stop_time: exp.stop_time,
        logging_on: false,
        set_stop_time: true,
        output_interval: exp.output_interval,
        log_time_scale: false,
        tolerance: 1e-8,
        set_tolerance: false,
        start_values: exp
            .start_values
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        log_fmi_calls: false,
        input_file: None,
        early_return_allowed: false,
        event_mode_used: false,
        log_file: None,
        initial_fmu_state_file: None,
        final_fmu_state_file: None,
    };
    let recorder = Arc::new(sim2::recorder::Recorder::new(sim2::Trajectories::new(
        md.clone(),
        indices.clone(),
    )));
    match run {
        Run::Cs | Run::CsEventMode => sim2::cs::simulate(&settings, None, recorder.clone()),
        Run::MeEuler(step) => sim2::me::simulate(
            &settings,
            &ForwardEulerFactory {
                fixed_step_size: step,
            },
            None,
            recorder.clone(),
        ),
    }
    .unwrap_or_else(|e| panic!("{} FMI 2 simulation failed: {e}", md.modelName));
    let trajectories = recorder.trajectories.borrow();
    (trajectories.time.clone(), trajectories.rows.clone())
}

fn simulate(version: FmiVersion, built: &Built, run: Run, exp: &Experiment) -> Results {
    match version {
        FmiVersion::V3 => simulate3(built, run, exp).0,
        FmiVersion::V2 => simulate2(built, run, exp),
    }
}

const VERSIONS: [FmiVersion; 2] = [FmiVersion::V3, FmiVersion::V2];

#[test]
fn library_fmus_have_valid_model_descriptions() {
    for model in LIBRARY_MODELS {
        let built = build(model, FmiVersion::V3, &[]);
        let md = md3(&built);
        assert_eq!(md.modelName, model);
        assert_eq!(
            md.generationTool.as_deref(),
            Some("FMU Gateway demo models")
        );
        assert_eq!(md.modelExchange.as_ref().unwrap().modelIdentifier, model);
        assert_eq!(md.coSimulation.as_ref().unwrap().modelIdentifier, model);
        assert!(md.defaultExperiment.is_some());
        assert!(
            built
                .unzipdir
                .join(format!("binaries/x86_64-linux/{model}.so"))
                .is_file()
        );

        let built = build(model, FmiVersion::V2, &[]);
        let md = md2(&built);
        assert_eq!(md.modelName, model);
        assert!(md.guid.starts_with('{'));
        assert_eq!(md.modelExchange.as_ref().unwrap().modelIdentifier, model);
        assert_eq!(md.coSimulation.as_ref().unwrap().modelIdentifier, model);
        assert!(
            built
                .unzipdir
                .join(format!("binaries/linux64/{model}.so"))
                .is_file()
        );
    }
}

#[test]
fn builds_are_deterministic() {
    let a = build("BouncingBall", FmiVersion::V3, &[]);
    let b = build("BouncingBall", FmiVersion::V3, &[]);
    assert_eq!(
        std::fs::read(&a.fmu).unwrap(),
        std::fs::read(&b.fmu).unwrap()
    );
}

/// First bounce time, reconstructed from the first sample after the bounce: there
/// v(t) = e*g*tb - g*(t - tb), so tb = (v/g + t) / (1 + e).
fn first_bounce(results: &Results) -> (usize, f64) {
    let v = results.column(1);
    let row = v.iter().position(|&v| v > 0.0).expect("the ball bounces");
    let t = results.time[row];
    (row, (v[row] / G + t) / (1.0 + E))
}

#[test]
fn bouncing_ball_cs_matches_closed_form() {
    let expected = (2.0 / G).sqrt();
    let exp = Experiment {
        stop_time: 3.0,
        output_interval: 0.01,
        start_values: &[],
        record: &["h", "v"],
    };
    for version in VERSIONS {
        let built = build("BouncingBall", version, &[]);
        let results = simulate(version, &built, Run::Cs, &exp);
        let (row, bounce) = first_bounce(&results);
        assert!(
            (bounce - expected).abs() < 1e-6,
            "{version:?}: first bounce at {bounce}, expected {expected}"
        );
        // before the bounce: free fall
        for (t, h) in results.time[..row].iter().zip(results.column(0)) {
            assert!((h - (1.0 - G * t * t / 2.0)).abs() < 1e-9, "h({t}) = {h}");
        }
        // between the first and second bounce the ballistic apex h + v^2/2g is e^2 * h0
        let h = results.column(0);
        let v = results.column(1);
        let mut i = row;
        let mut peak = 0.0f64;
        while v[i] > 0.0 || h[i] > 0.0 && i < row + 40 {
            let apex = h[i] + v[i] * v[i] / (2.0 * G);
            assert!(
                (apex - E * E).abs() < 1e-4,
                "{version:?}: apex {apex} at t={}",
                results.time[i]
            );
            peak = peak.max(h[i]);
            i += 1;
        }
        assert!(peak <= E * E + 1e-9 && peak > E * E - 2e-4, "peak {peak}");
        // the ball never falls through the floor and ends up resting
        assert!(h.iter().all(|&h| h > -1e-9));
        assert!(h.last().unwrap().abs() < 1e-9 && v.last().unwrap().abs() < 1e-9);
    }
}

#[test]
fn bouncing_ball_cs_event_mode_reports_exact_event_times() {
    let built = build("BouncingBall", FmiVersion::V3, &[]);
    let exp = Experiment {
        stop_time: 3.0,
        output_interval: 0.01,
        start_values: &[],
        record: &["h", "v"],
    };
    let (results, events) = simulate3(&built, Run::CsEventMode, &exp);
    let t1 = (2.0 / G).sqrt();
    assert!(!events.is_empty());
    assert!(
        (events[0] - t1).abs() < 1e-9,
        "first event at {}",
        events[0]
    );
    // second bounce: after flying up with e*g*t1 for 2*e*t1
    assert!((events[1] - (t1 + 2.0 * E * t1)).abs() < 1e-9, "{events:?}");
    // at the first event row: h ~ 0 before the reset, v reversed after it
    let rows: Vec<usize> = (0..results.time.len())
        .filter(|&i| results.time[i] == events[0])
        .collect();
    assert_eq!(rows.len(), 2);
    assert!(results.column(0)[rows[0]].abs() < 1e-9);
    assert!((results.column(1)[rows[0]] + G * t1).abs() < 1e-9);
    assert!((results.column(1)[rows[1]] - E * G * t1).abs() < 1e-9);
}

#[test]
fn dahlquist_cs_matches_exp() {
    let exp = Experiment {
        stop_time: 10.0,
        output_interval: 0.1,
        start_values: &[],
        record: &["x"],
    };
    for version in VERSIONS {
        let built = build("Dahlquist", version, &[]);
        let results = simulate(version, &built, Run::Cs, &exp);
        for (t, x) in results.time.iter().zip(results.column(0)) {
            let exact = (-t).exp();
            assert!(
                ((x - exact) / exact).abs() < 1e-6,
                "{version:?}: x({t}) = {x}, expected {exact}"
            );
        }
        let x1 = results.at(0, 1.0);
        assert!(((x1 - (-1.0f64).exp()) / (-1.0f64).exp()).abs() < 1e-6);

        // a changed parameter is honoured: x(t) = exp(-k t)
        let exp_k = Experiment {
            start_values: &[("k", "2")],
            stop_time: 1.0,
            ..exp
        };
        let results = simulate(version, &built, Run::Cs, &exp_k);
        let x = results.at(0, 1.0);
        assert!(((x - (-2.0f64).exp()) / (-2.0f64).exp()).abs() < 1e-6);
    }
}

#[test]
fn integrator_cs_integrates_inputs() {
    for version in VERSIONS {
        let built = build("Integrator", version, &[]);
        let exp = Experiment {
            stop_time: 5.0,
            output_interval: 0.1,
            start_values: &[("u", "2"), ("k", "1")],
            record: &["y", "x"],
        };
        let results = simulate(version, &built, Run::Cs, &exp);
        assert!((results.at(0, 5.0) - 10.0).abs() < 1e-9, "{version:?}");
        assert!((results.at(0, 2.5) - 5.0).abs() < 1e-9, "{version:?}");
        let exp = Experiment {
            start_values: &[("u", "2"), ("k", "3")],
            ..exp
        };
        let results = simulate(version, &built, Run::Cs, &exp);
        assert!((results.at(0, 5.0) - 30.0).abs() < 1e-9, "{version:?}");
    }
}

#[test]
fn van_der_pol_cs_reaches_its_limit_cycle() {
    for version in VERSIONS {
        let built = build("VanDerPol", version, &[]);
        let exp = Experiment {
            stop_time: 20.0,
            output_interval: 0.01,
            start_values: &[],
            record: &["x0", "x1"],
        };
        let results = simulate(version, &built, Run::Cs, &exp);
        assert!(results.column(0).iter().all(|x| x.is_finite()));
        // for mu = 1 the limit cycle has an amplitude of about 2.0086
        let late = results
            .time
            .iter()
            .zip(results.column(0))
            .filter(|(t, _)| **t > 10.0)
            .map(|(_, x)| x.abs())
            .fold(0.0, f64::max);
        assert!(
            (late - 2.0086).abs() < 2e-3,
            "{version:?}: amplitude {late}"
        );
        // der(x0) = x1: a short RK4 step from the start agrees with the Taylor expansion
        let x0 = results.at(0, 0.01);
        let expected = 2.0 - 0.01 * 0.01 / 2.0 * 2.0;
        assert!((x0 - expected).abs() < 1e-6, "{version:?}: x0(0.01) = {x0}");
    }
}

#[test]
fn model_exchange_smoke_tests_with_forward_euler() {
    let euler = Run::MeEuler(1e-3);
    for version in VERSIONS {
        let built = build("BouncingBall", version, &[]);
        let exp = Experiment {
            stop_time: 3.0,
            output_interval: 0.01,
            start_values: &[],
            record: &["h", "v"],
        };
        let results = simulate(version, &built, euler, &exp);
        let (_, bounce) = first_bounce(&results);
        assert!(
            (bounce - (2.0 / G).sqrt()).abs() < 0.02,
            "{version:?}: bounce at {bounce}"
        );
        assert!(
            results
                .column(0)
                .iter()
                .all(|&h| h > -0.02 && h < 1.0 + 1e-9)
        );
        let peak_after_bounce = results
            .time
            .iter()
            .zip(results.column(0))
            .filter(|(t, _)| **t > 0.5 && **t < 1.3)
            .map(|(_, h)| *h)
            .fold(0.0, f64::max);
        assert!(
            (peak_after_bounce - E * E).abs() < 0.03,
            "{peak_after_bounce}"
        );
        assert!(
            results.column(0).last().unwrap().abs() < 1e-3,
            "ball rests at the end"
        );

        let built = build("Dahlquist", version, &[]);
        let exp = Experiment {
            stop_time: 10.0,
            output_interval: 0.1,
            start_values: &[],
            record: &["x"],
        };
        let results = simulate(version, &built, euler, &exp);
        let x1 = results.at(0, 1.0);
        assert!(
            (x1 - (-1.0f64).exp()).abs() < 1e-3,
            "{version:?}: x(1) = {x1}"
        );

        let built = build("VanDerPol", version, &[]);
        let exp = Experiment {
            stop_time: 20.0,
            output_interval: 0.01,
            start_values: &[],
            record: &["x0", "x1"],
        };
        let results = simulate(version, &built, euler, &exp);
        assert!(
            results
                .column(0)
                .iter()
                .all(|x| x.is_finite() && x.abs() < 2.5)
        );

        let built = build("Integrator", version, &[]);
        let exp = Experiment {
            stop_time: 5.0,
            output_interval: 0.1,
            start_values: &[("u", "2")],
            record: &["y"],
        };
        let results = simulate(version, &built, euler, &exp);
        assert!((results.at(0, 5.0) - 10.0).abs() < 1e-6, "{version:?}");
    }
}

#[test]
fn unknown_value_references_and_illegal_sets_are_rejected() {
    let built = build("BouncingBall", FmiVersion::V3, &[]);
    let fmu = fmi_rs::fmi3::builder::FMU3Builder::new(&built.fmu)
        .unwrap()
        .instantiate_cs("test")
        .unwrap();
    let mut value = [0.0];
    assert_eq!(fmu.getFloat64(&[99], &mut value), fmi3Status::Error);
    assert_eq!(fmu.getFloat64(&[1], &mut value), fmi3Status::Ok);
    assert_eq!(value[0], 1.0);
    // der(h) is calculated
    assert_eq!(fmu.setFloat64(&[2], &[1.0]), fmi3Status::Error);
    assert_eq!(fmu.setFloat64(&[5], &[3.71]), fmi3Status::Ok);
    assert_eq!(fmu.enterInitializationMode(None, 0.0, None), fmi3Status::Ok);
    assert_eq!(fmu.exitInitializationMode(), fmi3Status::Ok);
    // g is fixed after initialization, e is tunable
    assert_eq!(fmu.setFloat64(&[5], &[9.81]), fmi3Status::Error);
    assert_eq!(fmu.setFloat64(&[6], &[0.5]), fmi3Status::Ok);
    assert_eq!(fmu.getFloat64(&[4], &mut value), fmi3Status::Ok);
    assert_eq!(value[0], -3.71);
    let mut int_value = [0i32];
    assert_eq!(fmu.getInt32(&[1], &mut int_value), fmi3Status::Error);
    assert_eq!(fmu.terminate(), fmi3Status::Ok);
}

#[test]
fn hostile_variants_build() {
    for define in HOSTILE_DEFINES {
        let built = build("Hostile", FmiVersion::V3, &[define]);
        let md = md3(&built);
        assert_eq!(md.modelName, "Hostile");
        assert!(md.modelVariables.iter().any(|v| v.name == "breach"));
        assert!(
            built
                .unzipdir
                .join("binaries/x86_64-linux/Hostile.so")
                .is_file()
        );
    }
    let built = build("Hostile", FmiVersion::V2, &["HOSTILE_SOCKET"]);
    md2(&built);
    // hostile defines only go with the Hostile model and vice versa
    let dir = TempDir::new().unwrap();
    assert!(build_fmu(&fmus_dir(), "Hostile", FmiVersion::V3, &[], dir.path(), "x").is_err());
    assert!(
        build_fmu(
            &fmus_dir(),
            "Dahlquist",
            FmiVersion::V3,
            &["HOSTILE_LOOP"],
            dir.path(),
            "x"
        )
        .is_err()
    );
}

// ---------------------------------------------------------------------------------- Feedthrough

use sim2::VariableValue as V2;
use sim3::VariableValue as V3;

/// String_input's start value (Feedthrough, both versions).
const TEXT: &str = "Hello, FMU Gateway & <friends>";

/// Feedthrough's FMI 3 outputs with the start values of their inputs.
fn feedthrough3_starts() -> Vec<(&'static str, V3)> {
    vec![
        ("Float32_continuous_output", V3::Float32(vec![1.25])),
        ("Float32_discrete_output", V3::Float32(vec![2.75])),
        ("Float64_continuous_output", V3::Float64(vec![3.25])),
        ("Float64_discrete_output", V3::Float64(vec![4.5])),
        ("Int8_output", V3::Int8(vec![-100])),
        ("UInt8_output", V3::UInt8(vec![200])),
        ("Int16_output", V3::Int16(vec![-30000])),
        ("UInt16_output", V3::UInt16(vec![60000])),
        ("Int32_output", V3::Int32(vec![-2_000_000_000])),
        ("UInt32_output", V3::UInt32(vec![4_000_000_000])),
        ("Int64_output", V3::Int64(vec![-9_000_000_000_000_000_000])),
        (
            "UInt64_output",
            V3::UInt64(vec![18_000_000_000_000_000_000]),
        ),
        ("Boolean_output", V3::Boolean(vec![true])),
        ("String_output", V3::String(vec![TEXT.to_owned()])),
        (
            "Binary_output",
            V3::Binary(vec![vec![0x00, 0xff, 0x10, 0x42]]),
        ),
        ("Enumeration_output", V3::Int64(vec![2])),
    ]
}

/// Start values at the ends of each type's range (fmi-rs literals; its String and Binary
/// literals cannot hold spaces) and the outputs they must produce.
/// Start values as fmi-rs takes them: (name, literal).
type Literals = Vec<(&'static str, &'static str)>;

fn feedthrough3_extremes() -> (Literals, Vec<(&'static str, V3)>) {
    let inputs = vec![
        ("Float32_continuous_input", "3.4028235e38"),
        ("Float32_discrete_input", "1.1754944e-38"),
        ("Float64_continuous_input", "-1.7976931348623157e308"),
        ("Float64_discrete_input", "5e-324"),
        ("Int8_input", "-128"),
        ("UInt8_input", "255"),
        ("Int16_input", "-32768"),
        ("UInt16_input", "65535"),
        ("Int32_input", "-2147483648"),
        ("UInt32_input", "4294967295"),
        ("Int64_input", "-9223372036854775808"),
        ("UInt64_input", "18446744073709551615"),
        ("Boolean_input", "false"),
        ("String_input", "ünïcode☃"),
        ("Binary_input", "deadbeef0000"),
        ("Enumeration_input", "1"),
    ];
    let outputs = vec![
        ("Float32_continuous_output", V3::Float32(vec![f32::MAX])),
        (
            "Float32_discrete_output",
            V3::Float32(vec![f32::MIN_POSITIVE]),
        ),
        ("Float64_continuous_output", V3::Float64(vec![f64::MIN])),
        ("Float64_discrete_output", V3::Float64(vec![5e-324])),
        ("Int8_output", V3::Int8(vec![i8::MIN])),
        ("UInt8_output", V3::UInt8(vec![u8::MAX])),
        ("Int16_output", V3::Int16(vec![i16::MIN])),
        ("UInt16_output", V3::UInt16(vec![u16::MAX])),
        ("Int32_output", V3::Int32(vec![i32::MIN])),
        ("UInt32_output", V3::UInt32(vec![u32::MAX])),
        ("Int64_output", V3::Int64(vec![i64::MIN])),
        ("UInt64_output", V3::UInt64(vec![u64::MAX])),
        ("Boolean_output", V3::Boolean(vec![false])),
        ("String_output", V3::String(vec!["ünïcode☃".to_owned()])),
        (
            "Binary_output",
            V3::Binary(vec![vec![0xde, 0xad, 0xbe, 0xef, 0, 0]]),
        ),
        ("Enumeration_output", V3::Int64(vec![1])),
    ];
    (inputs, outputs)
}

/// Every recorded row holds exactly the expected value of every output.
fn assert_rows<V: PartialEq + std::fmt::Debug>(
    label: &str,
    rows: &[Vec<V>],
    expected: &[(&str, V)],
) {
    assert!(rows.len() > 1, "{label}: {} rows", rows.len());
    for row in rows {
        for ((name, want), got) in expected.iter().zip(row) {
            assert_eq!(got, want, "{label}: {name}");
        }
    }
}

#[test]
fn feedthrough_fmi3_outputs_equal_their_inputs_exactly_in_every_type() {
    let built = build("Feedthrough", FmiVersion::V3, &[]);
    let (inputs, extremes) = feedthrough3_extremes();
    for run in [Run::Cs, Run::CsEventMode, Run::MeEuler(0.1)] {
        let starts = feedthrough3_starts();
        let record: Vec<&str> = starts.iter().map(|(name, _)| *name).collect();
        let exp = Experiment {
            stop_time: 1.0,
            output_interval: 0.1,
            start_values: &[],
            record: &record,
        };
        let (_, rows, _) = simulate3_rows(&built, run, &exp);
        assert_rows("start values", &rows, &starts);

        let exp = Experiment {
            start_values: &inputs,
            ..exp
        };
        let (_, rows, _) = simulate3_rows(&built, run, &exp);
        assert_rows("extreme values", &rows, &extremes);
    }
}

#[test]
fn feedthrough_fmi2_outputs_equal_their_inputs_exactly_in_every_type() {
    let built = build("Feedthrough", FmiVersion::V2, &[]);
    let starts = [
        ("Float64_continuous_output", V2::Real(3.25)),
        ("Float64_discrete_output", V2::Real(4.5)),
        ("Int32_output", V2::Integer(-2_000_000_000)),
        ("Boolean_output", V2::Boolean(1)),
        ("String_output", V2::String(TEXT.to_owned())),
        ("Enumeration_output", V2::Integer(2)),
    ];
    let extremes = [
        ("Float64_continuous_output", V2::Real(f64::MIN)),
        ("Float64_discrete_output", V2::Real(5e-324)),
        ("Int32_output", V2::Integer(i32::MAX)),
        ("Boolean_output", V2::Boolean(0)),
        (
            "String_output",
            V2::String("a string, with spaces".to_owned()),
        ),
        ("Enumeration_output", V2::Integer(1)),
    ];
    let record: Vec<&str> = starts.iter().map(|(name, _)| *name).collect();
    for run in [Run::Cs, Run::MeEuler(0.1)] {
        let exp = Experiment {
            stop_time: 1.0,
            output_interval: 0.1,
            start_values: &[],
            record: &record,
        };
        let (_, rows) = simulate2_rows(&built, run, &exp);
        assert_rows("start values", &rows, &starts);
        let exp = Experiment {
            start_values: &[
                ("Float64_continuous_input", "-1.7976931348623157e308"),
                ("Float64_discrete_input", "5e-324"),
                ("Int32_input", "2147483647"),
                ("Boolean_input", "false"),
                ("String_parameter", "a string, with spaces"),
                ("Enumeration_input", "1"),
            ],
            ..exp
        };
        let (_, rows) = simulate2_rows(&built, run, &exp);
        assert_rows("extreme values", &rows, &extremes);
    }
}

/// The value reference of a variable of an FMI 3 model description.
fn vr3(md: &md3::ModelDescription, name: &str) -> u32 {
    md.modelVariables
        .iter()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no variable {name}"))
        .valueReference
}

#[test]
fn feedthrough_typed_access_is_checked_and_fmu_state_keeps_every_type() {
    let built = build("Feedthrough", FmiVersion::V3, &[]);
    let md = md3(&built);
    let vr = |name| vr3(&md, name);
    let fmu = fmi_rs::fmi3::builder::FMU3Builder::new(&built.fmu)
        .unwrap()
        .instantiate_cs("test")
        .unwrap();

    // the wrong type, an unknown value reference, outside min/max: errors that change nothing
    let mut int8 = [0i8];
    assert_eq!(
        fmu.getInt8(&[vr("Float64_continuous_input")], &mut int8),
        fmi3Status::Error
    );
    assert_eq!(fmu.getInt8(&[999], &mut int8), fmi3Status::Error);
    assert_eq!(fmu.setInt32(&[vr("Int8_input")], &[1]), fmi3Status::Error);
    assert_eq!(
        fmu.setInt64(&[vr("Enumeration_input")], &[3]),
        fmi3Status::Error
    );
    assert_eq!(
        fmu.setFloat64(
            &[
                vr("Float64_fixed_parameter"),
                vr("Float64_tunable_parameter")
            ],
            &[1.0, 10.5]
        ),
        fmi3Status::Error
    );
    let mut float64 = [0.0];
    assert_eq!(
        fmu.getFloat64(&[vr("Float64_fixed_parameter")], &mut float64),
        fmi3Status::Ok
    );
    assert_eq!(float64, [1.5], "a refused set changes nothing");
    let too_long = "x".repeat(1024); // 1025 bytes with the NUL
    assert_eq!(
        fmu.setString(&[vr("String_input")], &[&too_long]),
        fmi3Status::Error
    );
    let fits = "y".repeat(1023);
    assert_eq!(
        fmu.setString(&[vr("String_input")], &[&fits]),
        fmi3Status::Ok
    );
    let mut text = [String::new()];
    assert_eq!(
        fmu.getString(&[vr("String_output")], &mut text),
        fmi3Status::Ok
    );
    assert_eq!(text[0], fits);
    // outputs cannot be set
    assert_eq!(fmu.setInt8(&[vr("Int8_output")], &[1]), fmi3Status::Error);

    // an FMU state holds every type, also through serialization
    let mut state = std::ptr::null_mut();
    assert_eq!(fmu.getFMUState(&mut state), fmi3Status::Ok);
    let mut size = 0;
    assert_eq!(fmu.serializedFMUStateSize(state, &mut size), fmi3Status::Ok);
    let mut bytes = vec![0u8; size];
    assert_eq!(fmu.serializeFMUState(state, &mut bytes), fmi3Status::Ok);
    assert_eq!(fmu.setUInt64(&[vr("UInt64_input")], &[7]), fmi3Status::Ok);
    assert_eq!(
        fmu.setString(&[vr("String_input")], &["changed"]),
        fmi3Status::Ok
    );
    assert_eq!(
        fmu.setBinary(&[vr("Binary_input")], &[&[1, 2, 3]]),
        fmi3Status::Ok
    );
    let mut binary = [vec![]];
    assert_eq!(
        fmu.getBinary(&[vr("Binary_output")], &mut binary),
        fmi3Status::Ok
    );
    assert_eq!(binary[0], [1, 2, 3]);
    // A state whose first String/Binary size was forged past its buffer is refused (the
    // bytes may come from a user's file), never read past the buffer. The size sits after
    // the 8-byte magic and the 3 × 64 numeric values (model.h: ModelData).
    let text_size_at = 8 + 3 * 8 * 64;
    let size = u64::from_le_bytes(bytes[text_size_at..text_size_at + 8].try_into().unwrap());
    assert!(
        (1..=1024).contains(&size),
        "the offset is a text size: {size}"
    );
    let mut forged = bytes.clone();
    forged[text_size_at..text_size_at + 8].copy_from_slice(&5000u64.to_le_bytes());
    let mut refused = std::ptr::null_mut();
    assert_eq!(
        fmu.deserializeFMUState(&forged, &mut refused),
        fmi3Status::Error
    );
    assert!(refused.is_null());
    let mut restored = std::ptr::null_mut();
    assert_eq!(
        fmu.deserializeFMUState(&bytes, &mut restored),
        fmi3Status::Ok
    );
    assert_eq!(fmu.setFMUState(restored), fmi3Status::Ok);
    let mut uint64 = [0u64];
    assert_eq!(
        fmu.getUInt64(&[vr("UInt64_output")], &mut uint64),
        fmi3Status::Ok
    );
    assert_eq!(uint64, [18_000_000_000_000_000_000]);
    assert_eq!(
        fmu.getString(&[vr("String_output")], &mut text),
        fmi3Status::Ok
    );
    assert_eq!(text[0], fits);
    assert_eq!(
        fmu.getBinary(&[vr("Binary_output")], &mut binary),
        fmi3Status::Ok
    );
    assert_eq!(binary[0], [0x00, 0xff, 0x10, 0x42]);
    assert_eq!(fmu.freeFMUState(&mut state), fmi3Status::Ok);
    assert_eq!(fmu.freeFMUState(&mut restored), fmi3Status::Ok);
}

#[test]
fn bouncing_ball_has_units_display_units_and_the_alias_h_ft() {
    let built = build("BouncingBall", FmiVersion::V3, &[]);
    let xml = std::fs::read_to_string(built.unzipdir.join("modelDescription.xml")).unwrap();
    assert!(xml.contains(r#"<Unit name="m"><BaseUnit m="1"/><DisplayUnit name="ft" factor="3.280839895013123"/></Unit>"#), "{xml}");
    assert!(xml.contains(r#"<DisplayUnit name="km/h" factor="3.6"/>"#));
    assert!(xml.contains(
        r#"<Alias name="h_ft" description="Height of the ball, shown in feet" displayUnit="ft"/>"#
    ));
    let md = md3(&built);
    for (name, want) in [("h", "m"), ("v", "m/s"), ("g", "m/s2")] {
        let var = md.modelVariables.iter().find(|v| v.name == name).unwrap();
        let md3::VariableType::Float64 { unit, .. } = &var.variableType else {
            panic!("{name} is not a Float64");
        };
        assert_eq!(unit.as_deref(), Some(want), "{name}");
    }

    let built = build("BouncingBall", FmiVersion::V2, &[]);
    let md = md2(&built);
    let h = md.modelVariables.iter().find(|v| v.name == "h").unwrap();
    let h_ft = md.modelVariables.iter().find(|v| v.name == "h_ft").unwrap();
    assert_eq!(h_ft.valueReference, h.valueReference);
    let exp = Experiment {
        stop_time: 1.0,
        output_interval: 0.1,
        start_values: &[],
        record: &["h", "h_ft"],
    };
    let results = simulate2(&built, Run::Cs, &exp);
    assert_eq!(results.column(0), results.column(1), "h_ft reads h");
}

// ----------------------------------------------------------------------------------- StateSpace

/// The state of StateSpace with its defaults (A upper triangular, diagonal -1 … -n, A[1,2] =
/// 0.5, B = I, x0 = 1 … n) and input u, solved by hand: x_i' = -i x_i + u_i, plus x_2 / 2
/// in x_1'. With u = 0: x_i = i e^(-i t) for i ≥ 2, and x_1 = 2 e^(-t) - e^(-2t) (n ≥ 2).
fn state_space_closed_form(n: usize, u: &[f64], t: f64) -> Vec<f64> {
    let exact = |i: usize| {
        let (rate, x0) = (i as f64, i as f64);
        let steady = u.get(i - 1).copied().unwrap_or(0.0) / rate;
        steady + (x0 - steady) * (-rate * t).exp()
    };
    let mut x: Vec<f64> = (1..=n).map(exact).collect();
    if n > 1 {
        assert!(
            u.iter().all(|&u| u == 0.0),
            "the coupled closed form is for u = 0"
        );
        x[0] = 2.0 * (-t).exp() - (-2.0 * t).exp();
    }
    x
}

fn float64s(value: &V3) -> &[f64] {
    match value {
        V3::Float64(values) => values,
        other => panic!("not Float64: {other:?}"),
    }
}

#[test]
fn state_space_fmi3_arrays_follow_the_closed_form_at_any_size() {
    let built = build("StateSpace", FmiVersion::V3, &[]);
    // default sizes (3), resized by the structural parameters, and u as an input
    let cases: [(usize, Literals, &[f64]); 4] = [
        (3, vec![], &[]),
        (2, vec![("n", "2"), ("r", "2")], &[]),
        (5, vec![("n", "5"), ("r", "5")], &[]),
        (
            1,
            vec![("n", "1"), ("r", "1"), ("m", "1"), ("u", "4")],
            &[4.0],
        ),
    ];
    for (n, start_values, u) in cases {
        for run in [Run::Cs, Run::MeEuler(1e-4)] {
            let tolerance = if matches!(run, Run::Cs) { 1e-9 } else { 1e-3 };
            let exp = Experiment {
                stop_time: 2.0,
                output_interval: 0.1,
                start_values: &start_values,
                record: &["y", "x", "A"],
            };
            let (time, rows, _) = simulate3_rows(&built, run, &exp);
            assert_eq!(time.len(), 21);
            for (t, row) in time.iter().zip(&rows) {
                let (y, x, a) = (float64s(&row[0]), float64s(&row[1]), float64s(&row[2]));
                let expected = state_space_closed_form(n, u, *t);
                assert_eq!((y.len(), x.len(), a.len()), (n, n, n * n), "n = {n}");
                for (i, (y, want)) in y.iter().zip(&expected).enumerate() {
                    assert!(
                        (y - want).abs() < tolerance * want.abs().max(1.0),
                        "n = {n}, t = {t}: y[{i}] = {y}, expected {want}"
                    );
                }
                assert_eq!(x, y, "C = I, D = 0");
                assert_eq!(a[0], -1.0);
                assert_eq!(a[n * n - 1], -(n as f64), "A[n,n], row-major");
            }
        }
    }
}

#[test]
fn state_space_fmi3_structural_parameters_are_bounded_and_arrays_are_counted() {
    let built = build("StateSpace", FmiVersion::V3, &[]);
    let md = md3(&built);
    let vr = |name| vr3(&md, name);
    let fmu = fmi_rs::fmi3::builder::FMU3Builder::new(&built.fmu)
        .unwrap()
        .instantiate_me("test")
        .unwrap();
    // structural parameters are set in Configuration Mode only, up to 16
    assert_eq!(fmu.setUInt64(&[vr("n")], &[4]), fmi3Status::Error);
    assert_eq!(fmu.enterConfigurationMode(), fmi3Status::Ok);
    assert_eq!(fmu.setUInt64(&[vr("n")], &[17]), fmi3Status::Error);
    assert_eq!(fmu.setUInt64(&[vr("n")], &[0]), fmi3Status::Error);
    assert_eq!(fmu.setUInt64(&[vr("n")], &[16]), fmi3Status::Ok);
    assert_eq!(fmu.exitConfigurationMode(), fmi3Status::Ok);
    let mut nx = 0;
    assert_eq!(fmu.getNumberOfContinuousStates(&mut nx), fmi3Status::Ok);
    assert_eq!(nx, 16, "array states count element by element");
    // get and set take every element: x0 has 16 now, A 16 x 16
    let mut x0 = vec![0.0; 16];
    assert_eq!(fmu.getFloat64(&[vr("x0")], &mut x0), fmi3Status::Ok);
    assert_eq!(x0, (1..=16).map(f64::from).collect::<Vec<_>>());
    let mut short = vec![0.0; 15];
    assert_eq!(fmu.getFloat64(&[vr("x0")], &mut short), fmi3Status::Error);
    let ones = vec![1.0; 16 * 16];
    assert_eq!(fmu.setFloat64(&[vr("A")], &ones[..255]), fmi3Status::Error);
    assert_eq!(fmu.setFloat64(&[vr("A")], &ones), fmi3Status::Ok);
    let mut a = vec![0.0; 16 * 16];
    assert_eq!(fmu.getFloat64(&[vr("A")], &mut a), fmi3Status::Ok);
    assert_eq!(a, ones);
    // several variables in one call, one after the other
    let mut both = vec![0.0; 16 + 3];
    assert_eq!(
        fmu.getFloat64(&[vr("x0"), vr("u")], &mut both),
        fmi3Status::Ok
    );
    assert_eq!(both[15], 16.0);
    assert_eq!(&both[16..], [0.0, 0.0, 0.0]);
}

#[test]
fn state_space_fmi2_is_flattened_with_structured_names() {
    let built = build("StateSpace", FmiVersion::V2, &[]);
    let md = md2(&built);
    let names: Vec<&str> = md.modelVariables.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(&names[..4], ["time", "A[1,1]", "A[1,2]", "A[1,3]"]);
    assert!(names.contains(&"der(x[3])") && names.contains(&"y[3]"));
    for run in [Run::Cs, Run::MeEuler(1e-4)] {
        let tolerance = if matches!(run, Run::Cs) { 1e-9 } else { 1e-3 };
        let exp = Experiment {
            stop_time: 2.0,
            output_interval: 0.1,
            start_values: &[],
            record: &["y[1]", "y[2]", "y[3]"],
        };
        let results = simulate2(&built, run, &exp);
        for (row, t) in results.time.iter().enumerate() {
            let expected = state_space_closed_form(3, &[], *t);
            for (i, want) in expected.iter().enumerate() {
                let y = results.column(i)[row];
                assert!((y - want).abs() < tolerance, "t = {t}: y[{}] = {y}", i + 1);
            }
        }
    }
}
