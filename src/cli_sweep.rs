//! `fmu-gateway fmu sweep`: a sweep on an engineer's own machine, with the service's designs,
//! planning, KPIs and warm-start batches in sandboxed workers; the cases go to a CSV file.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cli::{CliError, RunFlags};
use crate::domain::sweeps::case_settings;
use crate::domain::sweeps::design::{self, Axis, Bounds, Design, Distribution, Levels};
use crate::fmi::describe;
use crate::sim::batch::CaseOutcome;
use crate::sim::kpi::{self, KpiKind, KpiSpec};
use crate::sim::plan::{self, Problem, Problems};
use crate::sim::protocol::{Batch, Case};
use crate::sim::runner::{PoolConfig, SimError, WorkerPool};

/// The most cases one `fmu sweep` runs (the service's cap is lower and configurable).
pub const MAX_CASES: u64 = 1_000_000;
/// Cases per batch: long enough to amortise a worker, short enough to spread over workers.
const BATCH: usize = 500;
/// Workers a case is given to before it fails as not run.
const MAX_ATTEMPTS: u32 = 3;

/// What `fmu sweep` takes, besides the run settings.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct SweepFlags {
    /// A grid parameter (repeatable; every combination, the last fastest):
    /// `name=v1,v2,…` or `name=start:stop:num` (num evenly spaced values, both ends in).
    #[arg(long)]
    pub grid: Vec<String>,
    /// A Latin hypercube of N samples of the --uniform and --normal parameters.
    #[arg(long, value_name = "N")]
    pub lhs: Option<u32>,
    /// A scrambled Sobol sequence of N points of the --uniform parameters.
    #[arg(long, value_name = "N")]
    pub sobol: Option<u32>,
    /// The seed of --lhs or --sobol (default 0): the same seed, the same cases.
    #[arg(long)]
    pub seed: Option<u64>,
    /// A sampled parameter, `name=low:high` (repeatable).
    #[arg(long)]
    pub uniform: Vec<String>,
    /// A normally distributed parameter of --lhs, `name=mean:sd` (repeatable).
    #[arg(long)]
    pub normal: Vec<String>,
    /// Explicit cases: a CSV file with a header of names and one case per line (an empty
    /// cell keeps the base value).
    #[arg(long, value_name = "FILE")]
    pub cases: Option<PathBuf>,
    /// A KPI of each case (repeatable): `kind:variable`, or `first_crossing:variable:level`;
    /// kinds: final, min, max, mean, integral, time_of_max, time_of_min, first_crossing.
    #[arg(long = "kpi")]
    pub kpi: Vec<String>,
    /// Workers at once (default: the machine's cores).
    #[arg(long)]
    pub workers: Option<usize>,
}

/// One case's KPIs, or why it has none.
pub type CaseKpis = Result<Vec<Option<f64>>, SimError>;

/// A finished sweep: its cases in order (their values and KPIs), as the CSV lists them.
pub struct Swept {
    pub parameters: Vec<String>,
    pub kpis: Vec<KpiSpec>,
    pub cases: Vec<(Vec<(String, String)>, CaseKpis)>,
}

impl Swept {
    pub fn failed(&self) -> usize {
        self.cases.iter().filter(|(_, r)| r.is_err()).count()
    }

    /// `index,status,<parameters>,<KPIs>,error`, one line per case, as the service's
    /// `cases.csv`.
    pub fn write_csv(&self, out: impl std::io::Write) -> csv::Result<()> {
        let mut w = csv::Writer::from_writer(out);
        let header = ["index".to_string(), "status".to_string()]
            .into_iter()
            .chain(self.parameters.iter().cloned())
            .chain(self.kpis.iter().map(KpiSpec::name))
            .chain(["error".to_string()]);
        w.write_record(header)?;
        for (i, (values, result)) in self.cases.iter().enumerate() {
            let mut record = vec![
                i.to_string(),
                if result.is_ok() {
                    "succeeded"
                } else {
                    "failed"
                }
                .to_string(),
            ];
            for name in &self.parameters {
                let value = values.iter().find(|(n, _)| n == name);
                record.push(value.map(|(_, l)| l.clone()).unwrap_or_default());
            }
            match result {
                Ok(kpis) => {
                    for v in kpis {
                        record.push(
                            v.map(|v| crate::format::Number(v).to_string())
                                .unwrap_or_default(),
                        );
                    }
                    record.push(String::new());
                }
                Err(e) => {
                    record.extend(self.kpis.iter().map(|_| String::new()));
                    record.push(e.to_string());
                }
            }
            w.write_record(&record)?;
        }
        w.flush()?;
        Ok(())
    }
}

/// Why a sweep's flags make no sense; one message naming the flag.
fn flag(message: impl Into<String>) -> CliError {
    CliError::Request(Problems(vec![Problem::new("flags", message.into())]))
}

fn numbers<const N: usize>(text: &str, what: &str) -> Result<[f64; N], CliError> {
    let parts: Vec<&str> = text.split(':').collect();
    let parsed: Option<Vec<f64>> = parts.iter().map(|p| p.trim().parse().ok()).collect();
    parsed.and_then(|v| v.try_into().ok()).ok_or_else(|| {
        flag(format!(
            "{what}: expected {N} numbers separated by ':', not '{text}'"
        ))
    })
}

fn named<'a>(text: &'a str, what: &str) -> Result<(&'a str, &'a str), CliError> {
    text.split_once('=')
        .map(|(n, v)| (n.trim(), v.trim()))
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| flag(format!("{what} {text}: expected name=…")))
}

impl SweepFlags {
    /// The design these flags give: exactly one of --grid, --lhs, --sobol and --cases.
    pub fn design(&self) -> Result<Design, CliError> {
        let given = [
            !self.grid.is_empty(),
            self.lhs.is_some(),
            self.sobol.is_some(),
            self.cases.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(flag(
                "give exactly one design: --grid, --lhs, --sobol or --cases",
            ));
        }
        if let Some(path) = &self.cases {
            let text = std::fs::read_to_string(path)
                .map_err(|e| flag(format!("{}: {e}", path.display())))?;
            return Ok(Design::Cases(design::cases_from_csv(&text, MAX_CASES)?));
        }
        if !self.grid.is_empty() {
            let mut axes = Vec::new();
            for g in &self.grid {
                let (name, levels) = named(g, "--grid")?;
                let levels = if levels.contains(':') {
                    let [start, stop, num] = numbers::<3>(levels, "--grid")?;
                    if num < 1.0 || num.fract() != 0.0 || num > f64::from(u32::MAX) {
                        return Err(flag(format!("--grid {g}: num must be a whole number ≥ 1")));
                    }
                    Levels::Range {
                        start,
                        stop,
                        num: num as u32,
                    }
                } else {
                    Levels::Values(levels.split(',').map(|v| v.trim().to_string()).collect())
                };
                axes.push(Axis {
                    name: name.to_string(),
                    levels,
                });
            }
            return Ok(Design::Grid(axes));
        }
        let seed = self.seed.unwrap_or(0);
        if let Some(n) = self.lhs {
            let mut parameters = Vec::new();
            for u in &self.uniform {
                let (name, range) = named(u, "--uniform")?;
                let [low, high] = numbers::<2>(range, "--uniform")?;
                parameters.push((name.to_string(), Distribution::Uniform { low, high }));
            }
            for g in &self.normal {
                let (name, range) = named(g, "--normal")?;
                let [mean, sd] = numbers::<2>(range, "--normal")?;
                parameters.push((name.to_string(), Distribution::Normal { mean, sd }));
            }
            return Ok(Design::LatinHypercube {
                n,
                seed,
                parameters,
            });
        }
        if !self.normal.is_empty() {
            return Err(flag(
                "--normal is for --lhs; a Sobol design samples --uniform ranges",
            ));
        }
        let seed =
            u32::try_from(seed).map_err(|_| flag("--seed of --sobol must fit in 32 bits"))?;
        let mut parameters = Vec::new();
        for u in &self.uniform {
            let (name, range) = named(u, "--uniform")?;
            let [low, high] = numbers::<2>(range, "--uniform")?;
            parameters.push((name.to_string(), Bounds { low, high }));
        }
        Ok(Design::Sobol {
            n: self.sobol.unwrap_or(0),
            seed,
            parameters,
        })
    }

    pub fn kpis(&self) -> Result<Vec<KpiSpec>, CliError> {
        self.kpi
            .iter()
            .map(|k| {
                let parts: Vec<&str> = k.split(':').map(str::trim).collect();
                let kind = match parts.as_slice() {
                    ["final", _] => KpiKind::Final,
                    ["min", _] => KpiKind::Min,
                    ["max", _] => KpiKind::Max,
                    ["mean", _] => KpiKind::Mean,
                    ["integral", _] => KpiKind::Integral,
                    ["time_of_max", _] => KpiKind::TimeOfMax,
                    ["time_of_min", _] => KpiKind::TimeOfMin,
                    ["first_crossing", _, level] => KpiKind::FirstCrossing {
                        level: level
                            .parse()
                            .ok()
                            .filter(|l: &f64| l.is_finite())
                            .ok_or_else(|| flag(format!("--kpi {k}: the level is not a number")))?,
                    },
                    _ => {
                        return Err(flag(format!(
                            "--kpi {k}: expected kind:variable (or first_crossing:variable:level)"
                        )));
                    }
                };
                Ok(KpiSpec {
                    variable: parts[1].to_string(),
                    kind,
                })
            })
            .collect()
    }
}

/// Runs the sweep: every case checked against the model first (nothing runs when one cannot
/// be), then in warm batches over `workers` sandboxed workers. A case whose worker ended
/// before reaching it is given to a fresh worker (at most three times).
pub async fn sweep(
    fmu: &std::path::Path,
    run: &RunFlags,
    flags: &SweepFlags,
    timeout: Duration,
) -> Result<Swept, CliError> {
    let opened = crate::cli::open(fmu)?;
    let fmu_dir = opened.dir.path().join("fmu");
    describe::check_platform(&fmu_dir, &opened.info)?;
    let settings = run.settings()?;
    if settings.states.initial.is_some() || settings.states.save_final {
        return Err(flag("a sweep's cases cannot start from or save FMU states"));
    }
    let design = flags.design()?;
    let cases = design.expand(MAX_CASES)?;
    let kpis = flags.kpis()?;
    let mut job = plan::plan(&opened.info, &fmu_dir, &settings)?;
    let mut problems: Vec<Problem> = kpis
        .iter()
        .enumerate()
        .filter_map(|(i, spec)| {
            kpi::check(spec, &job.recorded)
                .err()
                .map(|m| Problem::new(format!("--kpi {}", i + 1), m))
        })
        .collect();
    let mut planned = Vec::with_capacity(cases.0.len());
    for (i, case) in cases.0.iter().enumerate() {
        match plan::plan(&opened.info, &fmu_dir, &case_settings(&settings, case)) {
            Ok(case_job) => planned.push(Case {
                index: i as u32,
                start_values: case_job.start_values,
            }),
            Err(found) if problems.len() < 20 => problems.extend(
                found
                    .0
                    .into_iter()
                    .map(|p| Problem::new(format!("case {i}: {}", p.field), p.message)),
            ),
            Err(_) => {}
        }
    }
    if !problems.is_empty() {
        return Err(CliError::Request(Problems(problems)));
    }
    let workers = flags
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let pool = WorkerPool::new(PoolConfig {
        exe: std::env::current_exe().map_err(CliError::CurrentExe)?,
        scratch_root: opened.dir.path().join("scratch"),
        workers,
        limits: Default::default(),
        log_limit: 64 * 1024,
    });
    job.batch = None;
    let results = run_all(pool, job, planned, &kpis, timeout, workers).await;
    Ok(Swept {
        parameters: cases.parameters(),
        kpis,
        cases: cases.0.into_iter().zip(results).collect(),
    })
}

type Results = Arc<Mutex<Vec<Option<CaseKpis>>>>;

/// Runs the planned cases in batches over `lanes` workers; one result per case, in order.
async fn run_all(
    pool: Arc<WorkerPool>,
    job: crate::sim::protocol::Job,
    cases: Vec<Case>,
    kpis: &[KpiSpec],
    timeout: Duration,
    lanes: usize,
) -> Vec<CaseKpis> {
    let n = cases.len();
    let results: Results = Arc::new(Mutex::new((0..n).map(|_| None).collect()));
    let queue: Arc<Mutex<VecDeque<(Case, u32)>>> =
        Arc::new(Mutex::new(cases.into_iter().map(|c| (c, 0)).collect()));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..lanes {
        let (pool, job, queue, results, kpis) = (
            pool.clone(),
            job.clone(),
            queue.clone(),
            results.clone(),
            kpis.to_vec(),
        );
        tasks.spawn(async move {
            loop {
                let batch: Vec<(Case, u32)> = {
                    let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                    let take = q.len().min(BATCH);
                    q.drain(..take).collect()
                };
                if batch.is_empty() {
                    return;
                }
                let attempts: std::collections::HashMap<u32, (Case, u32)> = batch
                    .iter()
                    .map(|(c, a)| (c.index, (c.clone(), *a)))
                    .collect();
                let mut job = job.clone();
                job.batch = Some(Batch {
                    cases: batch.into_iter().map(|(c, _)| c).collect(),
                    kpis: kpis.clone(),
                    trajectories: false,
                });
                let sink = results.clone();
                let on_case = move |case: CaseOutcome| {
                    let mut r = sink.lock().unwrap_or_else(|p| p.into_inner());
                    r[case.index as usize] = Some(case.result.map(|c| c.kpis));
                };
                let end = pool
                    .run_batch(
                        job,
                        timeout,
                        Box::new(|_| Err(std::io::Error::other("no trajectories"))),
                        Box::new(on_case),
                    )
                    .await;
                let mut q = queue.lock().unwrap_or_else(|p| p.into_inner());
                for index in end.unrun {
                    let Some((case, tried)) = attempts.get(&index).cloned() else {
                        continue;
                    };
                    if tried + 1 >= MAX_ATTEMPTS {
                        let why = end.cause.clone().unwrap_or_else(|| {
                            SimError::Internal("its worker ended before it".into())
                        });
                        let mut r = results.lock().unwrap_or_else(|p| p.into_inner());
                        r[index as usize] = Some(Err(why));
                    } else {
                        q.push_back((case, tried + 1));
                    }
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let mut results = results.lock().unwrap_or_else(|p| p.into_inner());
    results
        .iter_mut()
        .map(|r| {
            r.take()
                .unwrap_or_else(|| Err(SimError::Internal("the case was never run".into())))
        })
        .collect()
}
