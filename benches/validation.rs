//! What validating an upload costs, measured on the demo FMUs and on generated model
//! descriptions.
//!
//! `cargo bench --bench validation` reports:
//! - the file checks (`fmi::validation::check_model_description`: our rules and fmi-rs's) and
//!   the summary (`describe::describe_with`) of BouncingBall, and of BouncingBall with 10,000
//!   and 100,000 generated parameters (clean, and each breaking a rule): time, and peak memory
//!   growth of this process (VmHWM, reset before each case through /proc/self/clear_refs);
//! - the smoke test of both interfaces in the sandboxed worker (what an upload waits for):
//!   p50 and p99 over repeated runs.
//!
//! Settings: BENCH_SMOKE_RUNS (default 20).

use std::path::Path;
use std::time::{Duration, Instant};

use fmu_gateway::fmi::{archive, describe, library::DEMO_FMUS, validation};
use fmu_gateway::sim::runner::{PoolConfig, WorkerPool};

fn proc_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux: writing 5 to clear_refs).
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// BouncingBall (FMI 3) extracted to `dir`, with `extra` generated parameters; `broken` gives
/// each a start value above its max.
fn model(dir: &Path, extra: usize, broken: bool) {
    let (_, _, bytes) = DEMO_FMUS
        .iter()
        .find(|(m, v, _)| *m == "BouncingBall" && *v == "3.0")
        .unwrap();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), bytes).unwrap();
    archive::extract(file.path(), dir, &archive::Limits::default()).unwrap();
    let path = dir.join("modelDescription.xml");
    let text = std::fs::read_to_string(&path).unwrap();
    let start = if broken { 2 } else { 0 };
    let mut vars = String::with_capacity(extra * 120);
    for i in 0..extra {
        vars.push_str(&format!(
            "    <Float64 name=\"p{i}\" valueReference=\"{}\" causality=\"parameter\" variability=\"fixed\" start=\"{start}\" max=\"1\"/>\n",
            100 + i
        ));
    }
    let text = text.replacen(
        "  </ModelVariables>",
        &format!("{vars}  </ModelVariables>"),
        1,
    );
    std::fs::write(&path, text).unwrap();
}

fn files(extra: usize, broken: bool) {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().join("fmu");
    model(&dir, extra, broken);
    let size = std::fs::metadata(dir.join("modelDescription.xml"))
        .unwrap()
        .len();
    reset_peak();
    let base = proc_kib("VmHWM");
    let started = Instant::now();
    let problems = validation::check_files(&dir, &[]).unwrap();
    let checks = started.elapsed();
    let started = Instant::now();
    let info = describe::describe_with(&dir, describe::Rules::Report).unwrap();
    let summary = started.elapsed();
    let peak = proc_kib("VmHWM").saturating_sub(base);
    println!(
        "{:>7} variables ({:>6.1} MB, {:>6} problems): checks {:>9.2} ms, summary {:>9.2} ms, peak +{:>4} MiB",
        info.variables.len(),
        size as f64 / 1e6,
        problems.len(),
        checks.as_secs_f64() * 1e3,
        summary.as_secs_f64() * 1e3,
        peak >> 10
    );
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

async fn smoke(runs: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("fmu");
    model(&dir, 0, false);
    let info = describe::describe(&dir).unwrap();
    let exe = env!("CARGO_BIN_EXE_fmu-gateway").into();
    let scratch = tempfile::tempdir().unwrap();
    let pool = WorkerPool::new(PoolConfig {
        exe,
        scratch_root: scratch.path().to_path_buf(),
        workers: 1,
        limits: Default::default(),
        log_limit: 64 * 1024,
    });
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let tests = fmu_gateway::sim::smoke::run(&pool, &info, &dir).await;
        times.push(started.elapsed());
        assert!(
            tests
                .iter()
                .all(|t| t.outcome == validation::SmokeOutcome::Passed),
            "{tests:?}"
        );
    }
    times.sort();
    println!(
        "smoke test, both interfaces of BouncingBall ({runs} uploads): p50 {:.1} ms, p99 {:.1} ms",
        percentile(&times, 0.5).as_secs_f64() * 1e3,
        percentile(&times, 0.99).as_secs_f64() * 1e3
    );
}

fn main() {
    for (extra, broken) in [
        (0, false),
        (10_000, false),
        (10_000, true),
        (100_000, false),
        (100_000, true),
    ] {
        files(extra, broken);
    }
    let runs = std::env::var("BENCH_SMOKE_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(smoke(runs));
}
