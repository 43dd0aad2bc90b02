//! What warm starts buy a sweep: cases per second of a 10,000-case sweep of a small library
//! model on 2 workers, run as batches (one sandboxed worker per batch, one instance reset
//! between cases) against each case as its own run (a fresh worker, sandbox and instance).
//!
//! `cargo bench --bench sweep` runs lib:Dahlquist (FMI 3, Co-Simulation, stop 1 s, 50 output
//! points, k varying per case) with four KPIs of x and no trajectories:
//! - warm: BENCH_SWEEP_CASES (default 10,000) cases in batches of BENCH_SWEEP_BATCH (default
//!   500), two batches at a time on a pool of 2 workers;
//! - cold: BENCH_SWEEP_COLD (default 200) cases as separate `WorkerPool::run`s, two at a time,
//!   extrapolated to the same number of cases.
//!
//! Printed: cases/s and wall time of each, the per-case time inside a batch (the mean per
//! worker, and the 99th percentile and maximum of `CaseResult::elapsed`) and of a separate
//! run (median and 99th percentile).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fmu_gateway::fmi::{archive, describe, library};
use fmu_gateway::sim::batch::CaseOutcome;
use fmu_gateway::sim::kpi::{KpiKind, KpiSpec};
use fmu_gateway::sim::plan::{self, RunSettings};
use fmu_gateway::sim::protocol::{Batch, Case, Interface, Job};
use fmu_gateway::sim::runner::{PoolConfig, WorkerPool};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// lib:Dahlquist (FMI 3) extracted under `dir`, and its run for 1 s with 50 output points.
fn dahlquist_job(dir: &std::path::Path) -> Job {
    let (_, _, bytes) = library::DEMO_FMUS
        .iter()
        .find(|(m, v, _)| *m == "Dahlquist" && *v == "3.0")
        .expect("lib:Dahlquist");
    let file = dir.join("Dahlquist.fmu");
    std::fs::write(&file, bytes).unwrap();
    let fmu_dir = dir.join("Dahlquist");
    archive::extract(&file, &fmu_dir, &archive::Limits::default()).unwrap();
    let info = describe::describe(&fmu_dir).unwrap();
    let settings = RunSettings {
        interface: Some(Interface::Cs),
        stop_time: Some(1.0),
        output_interval: Some(0.02),
        outputs: vec!["x".into()],
        ..Default::default()
    };
    plan::plan(&info, &fmu_dir, &settings).unwrap()
}

fn case(index: usize) -> Case {
    Case {
        index: index as u32,
        start_values: vec![("k".into(), format!("{}", 0.5 + index as f64 * 1e-4))],
    }
}

fn kpis() -> Vec<KpiSpec> {
    [
        KpiKind::Final,
        KpiKind::Max,
        KpiKind::Integral,
        KpiKind::Mean,
    ]
    .into_iter()
    .map(|kind| KpiSpec {
        variable: "x".into(),
        kind,
    })
    .collect()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `cases` cases in batches of `size`, two batches at a time; returns the wall time and
/// every case's time.
async fn warm(
    pool: &Arc<WorkerPool>,
    job: &Job,
    cases: usize,
    size: usize,
) -> (Duration, Vec<Duration>, bool) {
    let batches: Vec<Batch> = (0..cases)
        .collect::<Vec<_>>()
        .chunks(size)
        .map(|chunk| Batch {
            cases: chunk.iter().map(|&i| case(i)).collect(),
            kpis: kpis(),
            trajectories: false,
        })
        .collect();
    let queue = Arc::new(Mutex::new(batches));
    let times = Arc::new(Mutex::new(Vec::with_capacity(cases)));
    let failed = Arc::new(Mutex::new(0usize));
    let warm = Arc::new(Mutex::new(true));
    let began = Instant::now();
    let lanes: Vec<_> = (0..2)
        .map(|_| {
            let (pool, job, queue) = (Arc::clone(pool), job.clone(), Arc::clone(&queue));
            let (times, failed, warm) =
                (Arc::clone(&times), Arc::clone(&failed), Arc::clone(&warm));
            tokio::spawn(async move {
                loop {
                    let Some(batch) = queue.lock().unwrap().pop() else {
                        return;
                    };
                    let job = Job {
                        batch: Some(batch),
                        ..job.clone()
                    };
                    let (times, failed) = (Arc::clone(&times), Arc::clone(&failed));
                    let end = pool
                        .run_batch(
                            job,
                            Duration::from_secs(60),
                            Box::new(|_| tempfile::tempfile()),
                            Box::new(move |o: CaseOutcome| match o.result {
                                Ok(r) => times.lock().unwrap().push(r.elapsed),
                                Err(e) => {
                                    eprintln!("case {} failed: {e}", o.index);
                                    *failed.lock().unwrap() += 1;
                                }
                            }),
                        )
                        .await;
                    assert!(end.unrun.is_empty(), "{end:?}");
                    *warm.lock().unwrap() &= end.warm;
                }
            })
        })
        .collect();
    for lane in lanes {
        lane.await.unwrap();
    }
    let wall = began.elapsed();
    assert_eq!(*failed.lock().unwrap(), 0);
    let mut times = std::mem::take(&mut *times.lock().unwrap());
    assert_eq!(times.len(), cases);
    times.sort();
    let warm = *warm.lock().unwrap();
    (wall, times, warm)
}

/// Runs `cases` cases as separate runs, two at a time; returns the wall time and each run's.
async fn cold(pool: &Arc<WorkerPool>, job: &Job, cases: usize) -> (Duration, Vec<Duration>) {
    let next = Arc::new(Mutex::new(0usize));
    let times = Arc::new(Mutex::new(Vec::with_capacity(cases)));
    let began = Instant::now();
    let lanes: Vec<_> = (0..2)
        .map(|_| {
            let (pool, job, next, times) = (
                Arc::clone(pool),
                job.clone(),
                Arc::clone(&next),
                Arc::clone(&times),
            );
            tokio::spawn(async move {
                loop {
                    let i = {
                        let mut next = next.lock().unwrap();
                        *next += 1;
                        *next - 1
                    };
                    if i >= cases {
                        return;
                    }
                    let job = Job {
                        start_values: case(i).start_values(&job.start_values),
                        ..job.clone()
                    };
                    let started = Instant::now();
                    pool.run(job, Duration::from_secs(60)).await.unwrap();
                    times.lock().unwrap().push(started.elapsed());
                }
            })
        })
        .collect();
    for lane in lanes {
        lane.await.unwrap();
    }
    let wall = began.elapsed();
    let mut times = std::mem::take(&mut *times.lock().unwrap());
    times.sort();
    (wall, times)
}

#[tokio::main]
async fn main() {
    let cases = env_num("BENCH_SWEEP_CASES", 10_000);
    let size = env_num("BENCH_SWEEP_BATCH", 500).max(1);
    let cold_cases = env_num("BENCH_SWEEP_COLD", 200).max(1);
    let tmp = tempfile::tempdir().unwrap();
    let job = dahlquist_job(tmp.path());
    let pool = WorkerPool::new(PoolConfig {
        exe: env!("CARGO_BIN_EXE_fmu-gateway").into(),
        scratch_root: tmp.path().join("scratch"),
        workers: 2,
        limits: Default::default(),
        log_limit: 64 * 1024,
    });
    println!(
        "lib:Dahlquist FMI 3 CS, stop 1 s, 50 output points, {} KPIs, no trajectories, 2 workers",
        kpis().len()
    );

    let (wall, times, was_warm) = warm(&pool, &job, cases, size).await;
    // A case's time as the server sees it: from the previous case's end to its own (the
    // first case of a batch also carries starting the worker). Several case ends can arrive
    // in one read, so the median of these gaps says little; the mean per worker is the cost.
    println!(
        "warm: {cases} cases in batches of {size}: {:.2} s, {:.0} cases/s (instances reused: {was_warm}); per case per worker: mean {:.3} ms, p99 {:.3} ms, max {:.1} ms",
        wall.as_secs_f64(),
        cases as f64 / wall.as_secs_f64(),
        ms(wall) * 2.0 / cases as f64,
        ms(percentile(&times, 0.99)),
        ms(percentile(&times, 1.0)),
    );

    let (cold_wall, cold_times) = cold(&pool, &job, cold_cases).await;
    let rate = cold_cases as f64 / cold_wall.as_secs_f64();
    println!(
        "cold: {cold_cases} cases as separate runs: {:.2} s, {rate:.1} cases/s (so {cases} cases ≈ {:.0} s); per run: median {:.1} ms, p99 {:.1} ms",
        cold_wall.as_secs_f64(),
        cases as f64 / rate,
        ms(percentile(&cold_times, 0.5)),
        ms(percentile(&cold_times, 0.99)),
    );
    println!(
        "warm is {:.0}× the cold rate",
        (cases as f64 / wall.as_secs_f64()) / rate
    );
}
