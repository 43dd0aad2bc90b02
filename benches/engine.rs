//! Simulation engine costs, measured on the demo FMUs this project builds.
//!
//! `cargo bench --bench engine` reports:
//! - the native loop: Dahlquist (FMI 3, Co-Simulation) loaded in this process with fmi-rs and
//!   driven by a plain doStep + getFloat64 loop: the physical limit;
//! - the same run through the service's path (sandboxed worker process, fmi-rs's driver and
//!   recorder, results back as JSON): cost per step and its ratio to the native loop;
//! - Model Exchange per output point (Van der Pol with the default solver, `auto`);
//! - a stiff model: Robertson's kinetics (Model Exchange) to t = 1e8 with 500 output points,
//!   with `auto` (Dormand–Prince switching to BDF) and `bdf` (scripts/bench-stiff.sh sets the
//!   same run against FMPy with CVODE);
//! - the fixed cost of a small run end to end (spawn worker, load, 100 steps, results back):
//!   p50 and p99 over repeated runs;
//! - result streaming: a 1M-point BouncingBall result (6 variables) written as CSV and as JSON
//!   from the stored result file, a chunk at a time, against the previous way (the whole JSON
//!   file parsed into memory and the CSV built as one string): time, and peak memory growth
//!   of this process (VmHWM, reset before each case through /proc/self/clear_refs).
//!
//! Settings: BENCH_STEPS (default 200000), BENCH_SMALL_RUNS (default 40); BENCH_ONLY=results
//! runs only the result streaming part, BENCH_ONLY=stiff only the stiff model.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fmi_rs::fmi3::FMU3;
use fmi_rs::fmi3::log::DefaultLogger;
use fmi_rs::fmi3::native::NativeLibrary;
use fmu_gateway::fmi::describe::ModelInfo;
use fmu_gateway::fmi::{archive, describe, library::DEMO_FMUS};
use fmu_gateway::sim::plan::{RunSettings, plan};
use fmu_gateway::sim::protocol::{Interface, Solver};

/// A column as the previous version stored results (one JSON document).
#[derive(serde::Serialize, serde::Deserialize)]
struct Column {
    name: String,
    values: Vec<f64>,
}
use fmu_gateway::sim::result_file::Format;
use fmu_gateway::sim::runner::{PoolConfig, WorkerPool};

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(model: &str, dir: &Path) -> ModelInfo {
    let (_, _, bytes) = DEMO_FMUS
        .iter()
        .find(|(m, v, _)| *m == model && *v == "3.0")
        .unwrap();
    let file = dir.join(format!("{model}.fmu"));
    std::fs::write(&file, bytes).unwrap();
    archive::extract(&file, &dir.join(model), &archive::Limits::default()).unwrap();
    describe::describe(&dir.join(model)).unwrap()
}

/// doStep + getFloat64 of `output` in a loop, in this process: seconds per step.
fn native_loop(fmu_dir: &Path, info: &ModelInfo, output: &str, steps: u64, h: f64) -> f64 {
    let id = &info.co_simulation.as_ref().unwrap().model_identifier;
    let library =
        NativeLibrary::load(fmu_dir.join(format!("binaries/x86_64-linux/{id}.so"))).unwrap();
    let fmu = FMU3::instantiateCoSimulation(
        Box::new(library),
        None,
        &info.model_name,
        &info.instantiation_token,
        false,
        false,
        false,
        false,
        Arc::new(DefaultLogger::default()),
        false,
        None,
    )
    .unwrap();
    let x = info.variable(output).unwrap().value_reference;
    fmu.enterInitializationMode(None, 0.0, None);
    fmu.exitInitializationMode();
    let (mut event, mut terminate, mut early, mut last) = (false, false, false, 0.0);
    let mut value = [0.0];
    let mut sink = 0.0;
    let started = Instant::now();
    for i in 0..steps {
        fmu.doStep(
            i as f64 * h,
            h,
            true,
            &mut event,
            &mut terminate,
            &mut early,
            &mut last,
        );
        fmu.getFloat64(&[x], &mut value);
        sink += value[0];
    }
    let elapsed = started.elapsed();
    fmu.terminate();
    assert!(sink.is_finite());
    elapsed.as_secs_f64() / steps as f64
}

/// This process's peak resident memory (KiB) since the last [`reset_peak`].
fn peak_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
}

/// A writer that only counts (a client that reads as fast as we write).
#[derive(Default)]
struct Count(u64);

impl std::io::Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The previous version's CSV: the stored JSON parsed whole, then one string.
fn previous_csv(json: &std::path::Path) -> usize {
    let bytes = std::fs::read(json).unwrap();
    let (time, columns): (Vec<f64>, Vec<Column>) = serde_json::from_slice(&bytes).unwrap();
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["time".to_string()];
    header.extend(columns.iter().map(|c| c.name.clone()));
    w.write_record(&header).unwrap();
    for (i, t) in time.iter().enumerate() {
        let mut row = vec![t.to_string()];
        row.extend(columns.iter().map(|c| c.values[i].to_string()));
        w.write_record(&row).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap().len()
}

/// The previous version's JSON answer: the stored JSON parsed whole, then serialised.
fn previous_json(json: &std::path::Path) -> usize {
    let bytes = std::fs::read(json).unwrap();
    let (time, columns): (Vec<f64>, Vec<Column>) = serde_json::from_slice(&bytes).unwrap();
    let variables: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    let map: std::collections::HashMap<&str, &Vec<f64>> = columns
        .iter()
        .map(|c| (c.name.as_str(), &c.values))
        .collect();
    serde_json::to_vec(&serde_json::json!({"time": time, "variables": variables, "columns": map}))
        .unwrap()
        .len()
}

fn measure(name: &str, values: u64, f: impl FnOnce() -> u64) {
    reset_peak();
    let base = rss_kib();
    let started = Instant::now();
    let bytes = f();
    let took = started.elapsed();
    println!(
        "{name:<44} {:>7.1} MB in {:>7.3} s = {:>6.1} ns/value, peak memory +{:>7} KiB",
        bytes as f64 / 1e6,
        took.as_secs_f64(),
        took.as_secs_f64() * 1e9 / values as f64,
        peak_kib().saturating_sub(base)
    );
}

/// Result streaming, against the previous way.
async fn result_streaming(pool: &WorkerPool, dir: &Path) {
    let ball = open("BouncingBall", dir);
    let settings = RunSettings {
        interface: Some(Interface::Cs),
        stop_time: Some(9.99),
        output_interval: Some(1e-5),
        step_size: Some(1e-5),
        outputs: ["h", "der(h)", "v", "der(v)", "g", "e"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    let job = plan(&ball, &dir.join("BouncingBall"), &settings).unwrap();
    let outcome = pool.run(job, Duration::from_secs(600)).await.unwrap();
    let result = outcome.result;
    let values = result.values();
    let output = result.read_all().unwrap();
    let legacy = dir.join("legacy.json");
    std::fs::write(
        &legacy,
        serde_json::to_vec(&(
            &output.time,
            output
                .columns
                .iter()
                .map(|c| Column {
                    name: c.name.clone(),
                    values: c.values.as_floats().unwrap().to_vec(),
                })
                .collect::<Vec<_>>(),
        ))
        .unwrap(),
    )
    .unwrap();
    drop(output);
    println!(
        "result streaming, {} rows × 7 numbers:",
        result.header().rows
    );
    for (name, format) in [
        ("streamed CSV (chunks from the result file)", Format::Csv),
        ("streamed JSON (chunks from the result file)", Format::Json),
    ] {
        measure(name, values, || {
            let mut out = Count::default();
            result.write_to(format, &mut out).unwrap();
            out.0
        });
    }
    measure(
        "previous CSV (whole JSON parsed, one string)",
        values,
        || previous_csv(&legacy) as u64,
    );
    measure(
        "previous JSON (whole JSON parsed, one value)",
        values,
        || previous_json(&legacy) as u64,
    );
}

/// Robertson to t = 1e8 with 500 output points in Model Exchange: time in the worker per
/// solver, and the final y1 (CS with a tight tolerance gives 2.0824e-5).
async fn stiff_model(pool: &WorkerPool, dir: &Path) {
    let robertson = open("Robertson", dir);
    for solver in [Solver::Auto, Solver::Bdf] {
        let settings = RunSettings {
            interface: Some(Interface::Me),
            solver: Some(solver),
            stop_time: Some(1e8),
            output_interval: Some(2e5),
            tolerance: Some(1e-6),
            ..Default::default()
        };
        let job = plan(&robertson, &dir.join("Robertson"), &settings).unwrap();
        let outcome = pool.run(job, Duration::from_secs(600)).await.unwrap();
        let output = outcome.result.read_all().unwrap();
        let y1 = output.columns.iter().find(|c| c.name == "y1").unwrap();
        println!(
            "ME Robertson to t = 1e8, {} points, {:<4}: {:>8.2} ms in the worker, y1(1e8) = {:.5e}",
            output.time.len(),
            solver.as_str(),
            outcome.elapsed.as_secs_f64() * 1e3,
            y1.values.as_floats().unwrap().last().unwrap()
        );
    }
}

#[tokio::main]
async fn main() {
    if std::env::var("BENCH_ONLY").as_deref() == Ok("stiff") {
        let tmp = tempfile::tempdir().unwrap();
        let pool = WorkerPool::new(PoolConfig {
            exe: env!("CARGO_BIN_EXE_fmu-gateway").into(),
            scratch_root: tmp.path().join("scratch"),
            workers: 1,
            limits: Default::default(),
            log_limit: 64 * 1024,
        });
        stiff_model(&pool, tmp.path()).await;
        return;
    }
    if std::env::var("BENCH_ONLY").as_deref() == Ok("results") {
        let tmp = tempfile::tempdir().unwrap();
        let pool = WorkerPool::new(PoolConfig {
            exe: env!("CARGO_BIN_EXE_fmu-gateway").into(),
            scratch_root: tmp.path().join("scratch"),
            workers: 1,
            limits: Default::default(),
            log_limit: 64 * 1024,
        });
        result_streaming(&pool, tmp.path()).await;
        return;
    }
    let steps = env_num("BENCH_STEPS", 200_000);
    let small_runs = env_num("BENCH_SMALL_RUNS", 40) as usize;
    let tmp = tempfile::tempdir().unwrap();
    let dahlquist = open("Dahlquist", tmp.path());
    let vdp = open("VanDerPol", tmp.path());
    let pool = WorkerPool::new(PoolConfig {
        exe: env!("CARGO_BIN_EXE_fmu-gateway").into(),
        scratch_root: tmp.path().join("scratch"),
        workers: 1,
        limits: Default::default(),
        log_limit: 64 * 1024,
    });

    // Two Co-Simulation cases: Dahlquist with one RK4 substep per doStep (the cheapest step
    // there is, so the per-step overhead shows in full) and Van der Pol with a 0.01 s
    // communication step (ten internal substeps, closer to a real model).
    let cases = [
        ("Dahlquist", &dahlquist, "x", 1e-3),
        ("VanDerPol", &vdp, "x0", 1e-2),
    ];
    for (model, info, output, h) in cases {
        let native = native_loop(&tmp.path().join(model), info, output, steps, h);
        let long = RunSettings {
            interface: Some(Interface::Cs),
            stop_time: Some(steps as f64 * h),
            output_interval: Some(h),
            outputs: vec![output.to_string()],
            ..Default::default()
        };
        let job = plan(info, &tmp.path().join(model), &long).unwrap();
        let outcome = pool.run(job, Duration::from_secs(600)).await.unwrap();
        let per_step = outcome.elapsed.as_secs_f64() / steps as f64;
        println!(
            "CS {model:<10} h={h:<6} native {:>7.3} µs/step, service path {:>7.3} µs/step = {:.2}× ({} points back)",
            native * 1e6,
            per_step * 1e6,
            per_step / native,
            outcome.result.header().rows
        );
    }
    let me = RunSettings {
        interface: Some(Interface::Me),
        stop_time: Some(steps as f64 * 0.01),
        output_interval: Some(0.01),
        tolerance: Some(1e-6),
        ..Default::default()
    };
    let job = plan(&vdp, &tmp.path().join("VanDerPol"), &me).unwrap();
    let outcome = pool.run(job, Duration::from_secs(600)).await.unwrap();
    println!(
        "service path (worker, ME Van der Pol, rtol 1e-6): {:>9.3} µs/output point over {} points",
        outcome.elapsed.as_secs_f64() / outcome.result.header().rows as f64 * 1e6,
        outcome.result.header().rows
    );

    stiff_model(&pool, tmp.path()).await;

    let small = RunSettings {
        interface: Some(Interface::Cs),
        stop_time: Some(0.1),
        output_interval: Some(1e-3),
        ..Default::default()
    };
    let mut times = Vec::new();
    for _ in 0..small_runs {
        let job = plan(&dahlquist, &tmp.path().join("Dahlquist"), &small).unwrap();
        let started = Instant::now();
        let outcome = pool.run(job, Duration::from_secs(60)).await.unwrap();
        assert_eq!(outcome.result.header().rows, 101);
        times.push(started.elapsed());
    }
    times.sort();
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3;
    println!(
        "small run end to end (100 steps), {small_runs} runs:   p50 {:.2} ms, p99 {:.2} ms",
        pct(0.5),
        pct(0.99)
    );
    result_streaming(&pool, tmp.path()).await;
}
