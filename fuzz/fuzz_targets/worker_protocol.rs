//! The worker protocol decoder (`sim::protocol::read_conversation`) on arbitrary bytes from a
//! worker: it may find them broken, never panic, never write more than the header and what it
//! was sent, and whatever it accepts as results — and the runner's `check_values` then passes —
//! reads back as a valid result file in every format (MAT when it holds only numbers). The
//! same bytes as a batch's answer (`sim::batch::read_batch`, protocol 3): the cases told are
//! the batch's, in its order, each once, with as many KPIs as asked, their trajectories
//! bounded like a run's results.
#![no_main]

use std::io::{BufReader, Write};

use fmu_gateway::sim::batch::{CaseOutcome, read_batch};
use fmu_gateway::sim::kpi::{KpiKind, KpiSpec};
use fmu_gateway::sim::protocol::{self, Batch, Case, End, MAX_FRAME_BYTES};
use fmu_gateway::sim::result_file::{Format, ResultFile};
use libfuzzer_sys::fuzz_target;

const CAP: u64 = 10_000;

fuzz_target!(|data: &[u8]| {
    batch_answer(data);
    let mut file = tempfile::tempfile().unwrap();
    let heard = {
        let mut sink = std::io::BufWriter::new(&mut file);
        // Progress is display only: whatever arrives is finite and within the span.
        let mut report = |t: f64| assert!(t.is_finite() && (0.0..=1.0).contains(&t), "{t}");
        let progress = protocol::ProgressSink {
            start: 0.0,
            stop: 1.0,
            report: &mut report,
        };
        let heard = protocol::read_conversation(
            &mut BufReader::new(data),
            Some(&mut sink as &mut dyn Write),
            CAP,
            Some(progress),
        );
        sink.flush().unwrap();
        heard
    };
    let written = file.metadata().unwrap().len();
    assert!(
        written <= MAX_FRAME_BYTES as u64 + 64 + data.len() as u64,
        "{written} bytes written"
    );
    if let Some(End::Done {
        variables, rows, ..
    }) = heard.end
    {
        assert!(heard.broken.is_none());
        let result = ResultFile::from_file(file).expect("accepted results form a valid file");
        assert_eq!(result.header().variables, variables);
        assert_eq!(result.header().rows, rows);
        if result.check_values().is_err() {
            // The runner refuses these (a Boolean that is not 0 or 1, text outside the blob).
            return;
        }
        // A MAT file holds only numbers: a result it cannot hold is refused before writing.
        let mat = result.mat_refusal().unwrap().is_none();
        for format in [Format::Json, Format::Csv, Format::Parquet, Format::Mat] {
            if format == Format::Mat && !mat {
                continue;
            }
            let mut out = Vec::new();
            result.write_to(format, &mut out).unwrap();
            if format == Format::Json {
                let _: serde_json::Value = serde_json::from_slice(&out).unwrap();
            }
        }
        let _ = result.last_values().unwrap();
        let _ = result.sampled(100).unwrap();
    }
});

/// `data` as the answer to a batch of cases 5, 1, 9 with one KPI and trajectories.
fn batch_answer(data: &[u8]) {
    let batch = Batch {
        cases: [5, 1, 9]
            .into_iter()
            .map(|index| Case {
                index,
                start_values: vec![],
            })
            .collect(),
        kpis: vec![KpiSpec {
            variable: "x".into(),
            kind: KpiKind::Max,
        }],
        trajectories: true,
    };
    let mut told = Vec::new();
    let mut files = |_: u32| tempfile::tempfile();
    let heard = read_batch(
        &mut BufReader::new(data),
        &batch,
        CAP,
        &mut files,
        &mut |o: CaseOutcome| {
            if let Ok(result) = &o.result {
                assert_eq!(result.kpis.len(), 1);
                let file = result.trajectory.as_ref().expect("trajectories were asked for");
                assert!(file.header().rows.saturating_mul(file.header().variables.len().max(1) as u64) <= CAP);
            }
            told.push(o.index);
        },
    );
    assert_eq!(told.len(), heard.reported);
    assert_eq!(told[..], [5, 1, 9][..told.len()]);
    if heard.warm.is_some() {
        assert_eq!(told.len(), 3);
        assert!(heard.broken.is_none());
    }
}
