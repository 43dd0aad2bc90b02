//! The landing page's example: one real run of the built-in BouncingBall, through the same
//! pool, worker and sandbox as every user's run, kept in memory once it has worked. If the
//! engine cannot run it, there is no example: the page never shows made-up results.

use std::time::Duration;

use crate::domain::fmus;
use crate::domain::ids::UserId;
use crate::sim::plan::{self, RunSettings};
use crate::state::State;

/// The model, and the variable plotted.
pub const MODEL: &str = "lib:BouncingBall";
pub const VARIABLE: &str = "h";
const STOP_TIME: f64 = 3.0;
const OUTPUT_INTERVAL: f64 = 0.01;

/// A finished run's `h` against time.
#[derive(Clone, Debug, PartialEq)]
pub struct Showcase {
    pub time: Vec<f64>,
    pub height: Vec<f64>,
}

/// After a failed run, how long visitors see no example before the next try: a broken
/// engine must not turn every visit to the public home page into another simulation.
const RETRY_AFTER: Duration = Duration::from_secs(300);

/// The kept example, and when it last failed.
#[derive(Default)]
pub struct Cache {
    kept: tokio::sync::OnceCell<Showcase>,
    failed_at: std::sync::Mutex<Option<std::time::Instant>>,
}

impl Cache {
    /// The example if it has run (without running it).
    pub fn ready(&self) -> Option<&Showcase> {
        self.kept.get()
    }

    fn failed_recently(&self) -> bool {
        let failed_at = self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        failed_at.is_some_and(|t| t.elapsed() < RETRY_AFTER)
    }

    fn record_failure(&self) {
        let mut failed_at = self.failed_at.lock().unwrap_or_else(|e| e.into_inner());
        *failed_at = Some(std::time::Instant::now());
    }
}

/// The example, run on first use and then kept. `None` while simulations are unavailable, or
/// for [`RETRY_AFTER`] after a failed run (logged).
pub async fn get(state: &State) -> Option<&Showcase> {
    let cache = &state.showcase;
    if let Some(kept) = cache.ready() {
        return Some(kept);
    }
    if state.readiness.simulation_problem().is_some() || cache.failed_recently() {
        return None;
    }
    match cache.kept.get_or_try_init(|| run(state)).await {
        Ok(showcase) => Some(showcase),
        Err(reason) => {
            cache.record_failure();
            tracing::warn!("the landing page's example run failed: {reason}");
            None
        }
    }
}

/// Runs the model once (no account: library models are everyone's, and nothing is charged).
async fn run(state: &State) -> Result<Showcase, String> {
    let record = fmus::resolve(state, &UserId::from(""), MODEL)
        .await
        .map_err(|e| format!("{MODEL}: {e}"))?;
    let fmu = fmus::extracted(state, &record.id)
        .await
        .map_err(|e| format!("{MODEL}: {e}"))?;
    let dir = fmu.dir();
    let settings = RunSettings {
        stop_time: Some(STOP_TIME),
        output_interval: Some(OUTPUT_INTERVAL),
        outputs: vec![VARIABLE.into()],
        ..RunSettings::default()
    };
    let job = plan::plan(&record.info, dir, &settings).map_err(|e| format!("{MODEL}: {e}"))?;
    let outcome = state
        .workers
        .run(job, Duration::from_secs(30))
        .await
        .map_err(|e| format!("{MODEL}: {e}"))?;
    let output = outcome
        .result
        .read_all()
        .map_err(|e| format!("{MODEL}: reading the results: {e}"))?;
    let column = output
        .columns
        .first()
        .ok_or_else(|| format!("{MODEL}: the result has no column {VARIABLE}"))?;
    let height = (0..column.values.len())
        .map(|i| column.values.number(i))
        .collect::<Option<Vec<f64>>>()
        .ok_or_else(|| format!("{MODEL}: {VARIABLE} is not numeric"))?;
    if height.len() != output.time.len() {
        return Err(format!(
            "{MODEL}: {} values of {VARIABLE} for {} time points",
            height.len(),
            output.time.len()
        ));
    }
    Ok(Showcase {
        time: output.time,
        height,
    })
}
