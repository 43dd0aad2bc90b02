//! What the object store costs a 10 MB result: kept (put) and fetched (opened and read whole,
//! as a CSV/JSON/MAT/Parquet download reads it), on the local backend before and after the
//! object store, and on S3 when a stand-in is given.
//!
//! `cargo bench --bench objects`. Before: the worker's file renamed into `runs/`, then
//! opened there. After: the file put through `object_store` (the local backend copies it
//! into place atomically), then opened through it (the local backend hands over its own
//! file: no copy). With `BENCH_S3=http://127.0.0.1:<port>` (moto, `scripts/s3-stand-in.sh`
//! then `<python> -m moto.server -p <port>`, a bucket `bench` created), the same against S3:
//! put in two 8 MiB parts, fetched to an unlinked scratch file.
//! Settings: BENCH_MB (default 10), BENCH_ROUNDS (default 20); the median is reported.

use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

use fmu_gateway::domain::ids::RunId;
use fmu_gateway::objects::{Backend, Key, Objects};

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn read_whole(mut file: std::fs::File) -> usize {
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).unwrap();
    bytes.len()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

async fn measure(label: &str, objects: &Objects, data: &Path, bytes: &[u8], rounds: usize) {
    let (mut puts, mut gets) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let scratch = data.join(format!("written-{round}"));
        std::fs::write(&scratch, bytes).unwrap();
        let key = Key::Result(RunId::from(format!("run_bench{round}")));
        let started = Instant::now();
        objects.put_file(&key, &scratch).await.unwrap();
        puts.push(started.elapsed());
        std::fs::remove_file(&scratch).unwrap();
        let started = Instant::now();
        let file = objects.open_file(&key).await.unwrap();
        assert_eq!(read_whole(file), bytes.len());
        gets.push(started.elapsed());
        objects.delete(&key).await.unwrap();
    }
    println!(
        "{label:<34} keep {:>10}   fetch {:>10}",
        ms(median(puts)),
        ms(median(gets))
    );
}

fn before(data: &Path, bytes: &[u8], rounds: usize) {
    let (mut puts, mut gets) = (Vec::new(), Vec::new());
    std::fs::create_dir_all(data.join("runs")).unwrap();
    for round in 0..rounds {
        let scratch = data.join("runs").join(format!("run_{round}.partial"));
        let kept = scratch.with_extension("result");
        std::fs::write(&scratch, bytes).unwrap();
        let started = Instant::now();
        std::fs::rename(&scratch, &kept).unwrap();
        puts.push(started.elapsed());
        let started = Instant::now();
        let file = std::fs::File::open(&kept).unwrap();
        assert_eq!(read_whole(file), bytes.len());
        gets.push(started.elapsed());
        std::fs::remove_file(&kept).unwrap();
    }
    println!(
        "{:<34} keep {:>10}   fetch {:>10}",
        "local, before (rename, open)",
        ms(median(puts)),
        ms(median(gets))
    );
}

#[tokio::main]
async fn main() {
    let env_num = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mb = env_num("BENCH_MB", 10);
    let rounds = env_num("BENCH_ROUNDS", 20);
    let bytes: Vec<u8> = (0..mb << 20).map(|i| (i * 7 % 251) as u8).collect();
    println!("a {mb} MiB result, median of {rounds} rounds");

    let dir = tempfile::tempdir().unwrap();
    before(dir.path(), &bytes, rounds);
    let local = Objects::open(&Backend::Local, dir.path()).unwrap();
    measure(
        "local, object store (put, open)",
        &local,
        dir.path(),
        &bytes,
        rounds,
    )
    .await;

    if let Ok(endpoint) = std::env::var("BENCH_S3") {
        let env = |name: &str| {
            Some(match name {
                "AWS_ACCESS_KEY_ID" | "AWS_SECRET_ACCESS_KEY" => "testing".to_string(),
                "AWS_REGION" => "us-east-1".into(),
                "AWS_ENDPOINT_URL" => endpoint.clone(),
                "AWS_ALLOW_HTTP" => "true".into(),
                _ => return None,
            })
        };
        let s3 = Backend::parse("s3://bench/results", env).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let remote = Objects::open(&s3, dir.path()).unwrap();
        measure("S3 (moto on loopback)", &remote, dir.path(), &bytes, rounds).await;
    }
}
