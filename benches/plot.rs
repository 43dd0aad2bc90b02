//! What the interactive plot's data costs the server: `plot.json` of a 1M-row result.
//!
//! `cargo bench --bench plot` reports, for a result file of 1,000,000 rows and 6 Float64
//! columns in 2 units (a damped oscillation with noise and one-sample spikes):
//! - `ResultFile::plot_data` (read every column twice, keep each pixel column's first, lowest,
//!   highest and last sample, group by unit) at 1000 and 4096 pixels: time (median of
//!   BENCH_PLOT_RUNS, default 5), rows kept and the JSON's size;
//! - the downsampler alone (`RowPicker`) on the same 6 columns in memory.

use std::io::Write;
use std::time::{Duration, Instant};

use fmu_gateway::sim::downsample::RowPicker;
use fmu_gateway::sim::recorded::{Recorded, ValueType};
use fmu_gateway::sim::result_file::{Header, ResultFile};

const ROWS: usize = 1_000_000;
const COLUMNS: usize = 6;

fn column(c: usize, time: &[f64]) -> Vec<f64> {
    time.iter()
        .enumerate()
        .map(|(i, &t)| {
            let spike = if i % 99_991 == c { 40.0 } else { 0.0 };
            let noise = ((i * 7919 + c * 13) % 1000) as f64 * 1e-4;
            (-(t / 50.0)).exp() * (t * (1.0 + c as f64)).sin() + noise + spike
        })
        .collect()
}

/// Writes the result file: the header line, time, then each column.
fn write_result(path: &std::path::Path, time: &[f64], columns: &[Vec<f64>]) {
    let variables = (0..COLUMNS)
        .map(|c| {
            let mut r = Recorded::scalar(format!("x{c}"), ValueType::Float64);
            r.unit = Some(if c % 2 == 0 { "m" } else { "m/s" }.to_string());
            r
        })
        .collect();
    let header = Header {
        rows: ROWS as u64,
        variables,
        blob_bytes: 0,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    header.write(&mut out).unwrap();
    for v in time.iter().chain(columns.iter().flatten()) {
        out.write_all(&v.to_le_bytes()).unwrap();
    }
    out.flush().unwrap();
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn main() {
    let runs: usize = std::env::var("BENCH_PLOT_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let time: Vec<f64> = (0..ROWS).map(|i| i as f64 * 1e-4).collect();
    let columns: Vec<Vec<f64>> = (0..COLUMNS).map(|c| column(c, &time)).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.result");
    write_result(&path, &time, &columns);
    let file = ResultFile::open(&path).unwrap();

    println!("plot data of {ROWS} rows × {COLUMNS} Float64 columns in 2 units");
    for width in [1000, 4096] {
        let mut times = Vec::new();
        let mut data = None;
        for _ in 0..runs {
            let start = Instant::now();
            data = Some(file.plot_data(None, &[], width).unwrap());
            times.push(start.elapsed());
        }
        let data = data.unwrap();
        let kept: Vec<usize> = data.groups.iter().map(|g| g.time.len()).collect();
        let json = serde_json::to_vec(&data).unwrap().len();
        println!(
            "  plot_data width {width:>4}: {:>8.1} ms (median of {runs}), rows kept per unit {kept:?}, JSON {:.0} KiB",
            median(times).as_secs_f64() * 1e3,
            json as f64 / 1024.0
        );
    }

    let mut times = Vec::new();
    let mut kept = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let mut picker = RowPicker::new(&time, 1000);
        for c in &columns {
            picker.mark(c);
        }
        kept = picker.rows().len();
        times.push(start.elapsed());
    }
    println!(
        "  RowPicker alone (6 columns in memory, width 1000): {:.1} ms, {kept} rows kept",
        median(times).as_secs_f64() * 1e3
    );
}
