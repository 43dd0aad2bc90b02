//! Progress from the real worker: reports of the simulation time reached, in order, within
//! the run's span, throttled, and ending at the stop time, for both interfaces.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fmu_gateway::sim::plan::{self, RunSettings};
use fmu_gateway::sim::progress::REPORTS_PER_SECOND;
use fmu_gateway::sim::protocol::Interface;
use fmu_gateway::sim::sandbox::Limits;

use crate::support::{open_library, pool};

#[tokio::test]
async fn the_worker_reports_growing_progress_that_ends_at_the_stop_time() {
    let opened = open_library("VanDerPol", "3.0");
    for (interface, stop_time) in [(Interface::Cs, 15_000.0), (Interface::Me, 15_000.0)] {
        let settings = RunSettings {
            interface: Some(interface),
            start_time: Some(10.0),
            stop_time: Some(stop_time),
            output_interval: Some(10.0),
            ..RunSettings::default()
        };
        let job = plan::plan(&opened.info, &opened.fmu_dir(), &settings).unwrap();
        let (_scratch, pool) = pool(Limits::default());
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&heard);
        let started = std::time::Instant::now();
        let outcome = pool
            .run_reporting(
                job,
                Duration::from_secs(120),
                Box::new(move |t| sink.lock().unwrap().push(t)),
            )
            .await
            .unwrap_or_else(|e| panic!("{interface:?}: {e}"));
        let elapsed = started.elapsed().as_secs_f64();
        let heard = heard.lock().unwrap().clone();
        assert!(heard.len() >= 2, "{interface:?}: {heard:?} in {elapsed} s");
        assert!(
            heard.windows(2).all(|w| w[0] <= w[1]),
            "{interface:?}: in order: {heard:?}"
        );
        assert!(heard.iter().all(|t| (10.0..=stop_time).contains(t)));
        assert_eq!(
            *heard.last().unwrap(),
            stop_time,
            "{interface:?}: ends at the stop time"
        );
        // Throttled: one report per 1/5 s at most, plus the first and the end.
        let bound = (elapsed * f64::from(REPORTS_PER_SECOND)).ceil() as usize + 2;
        assert!(
            heard.len() <= bound,
            "{interface:?}: {} reports in {elapsed} s",
            heard.len()
        );
        assert!(
            outcome.result.header().rows >= 1_500,
            "every output point is kept"
        );
    }
}
